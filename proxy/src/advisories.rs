//! The advisory feed's fetcher (`[policy.advisories]`): keeps the rule's snapshot current.
//!
//! An https source is fetched whole through pipgate's own upstream client (its roots, its
//! `[upstream.resolve]`), conditionally (`If-None-Match` / `If-Modified-Since`) every
//! `refresh`; a local zip or directory is read again when it changes. Parsing and indexing run
//! on the blocking pool, and the new snapshot is swapped in whole. A fetch or parse that fails
//! keeps the previous snapshot (logged, counted in `pipgate_advisories_refresh_failures_total`).
//! The last good download is kept beside the CA (`advisories-<key>.zip` and `.json`), so a
//! restart without network starts from it. Nothing about any request is ever sent: the feed
//! is the same whole dump for everyone.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, Method, Request, StatusCode};
use pipgate_policy::rules::{Builder, Feed, Snapshot, Source};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;

use crate::body;
use crate::decode;
use crate::state::{Runtime, Shared};

/// How often the fetcher looks at the configuration (a reload may add, change or drop the
/// feed) between refreshes.
const POLL: Duration = Duration::from_secs(1);
/// The largest feed download accepted (PyPI's whole OSV dump is a few hundred MB at most).
const MAX_FEED_BYTES: u64 = 4 << 30;
/// The largest single record read out of a zip or directory.
const MAX_RECORD_BYTES: u64 = 16 << 20;

/// What is remembered of the last good download, beside it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Meta {
    source: String,
    etag: Option<String>,
    last_modified: Option<String>,
    /// When the source last said this is its content (unix seconds).
    as_of: i64,
}

/// The fetcher's memory between refreshes.
#[derive(Default)]
struct State {
    /// The feed being kept current (a reload makes a new one).
    feed: Option<Arc<Feed>>,
    next: Option<Instant>,
    meta: Meta,
    /// A local source's modification time and size when it was last read.
    local: Option<(std::time::SystemTime, u64)>,
}

/// Keeps the configured feed current until the process ends.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut state = State::default();
    loop {
        let rt = shared.runtime.load_full();
        let Some(feed) = rt.config.policy.rules().files.feed() else {
            state = State::default();
            tokio::time::sleep(POLL).await;
            continue;
        };
        if !state.feed.as_ref().is_some_and(|f| Arc::ptr_eq(f, &feed)) {
            let same_source = state
                .feed
                .as_ref()
                .is_some_and(|f| f.source() == feed.source());
            if !same_source || feed.snapshot().is_none() {
                // A new source (or one the reload could not carry over): start over, from the
                // last good download if there is one.
                state = State::default();
                if let Source::Url(_) = feed.source() {
                    restore(&rt, &feed, &mut state).await;
                }
            }
            state.feed = Some(feed.clone());
        }
        if state.next.is_none_or(|t| t <= Instant::now()) {
            refresh(&shared, &rt, &feed, &mut state).await;
            state.next = Some(Instant::now() + feed.refresh());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Loads the feed once for a command that decides without a running pipgate (`explain`): a
/// local source is read, an https one's last good download restored, else (unless `offline`)
/// fetched. Failures are printed; the rule then says it has no snapshot.
pub(crate) async fn load_once(rt: &Runtime, offline: bool) {
    let Some(feed) = rt.config.policy.rules().files.feed() else {
        return;
    };
    let mut state = State::default();
    let result = match feed.source() {
        Source::Path(p) => local(&feed, &resolve(rt, p), &mut state).await.map(drop),
        Source::Url(u) => {
            restore(rt, &feed, &mut state).await;
            match (feed.snapshot(), offline) {
                (Some(_), _) | (None, true) => Ok(()),
                (None, false) => remote(rt, &feed, u, &mut state).await.map(drop),
            }
        }
    };
    if let Err(e) = result {
        eprintln!(
            "pipgate: the advisory feed {} could not be loaded: {e}",
            feed.source()
        );
    }
}

async fn refresh(shared: &Shared, rt: &Runtime, feed: &Arc<Feed>, state: &mut State) {
    let started = Instant::now();
    let result = match feed.source() {
        Source::Path(p) => local(feed, &resolve(rt, p), state).await,
        Source::Url(u) => remote(rt, feed, u, state).await,
    };
    match result {
        Ok(Some(s)) => {
            shared.metrics.advisory_refreshes.fetch_add(1, Relaxed);
            tracing::info!(
                target: "pipgate::advisories",
                source = %feed.source(),
                records = s.records,
                blocking = s.blocking,
                unreadable = s.unreadable,
                ms = started.elapsed().as_millis() as u64,
                "advisory snapshot loaded"
            );
        }
        Ok(None) => {
            shared.metrics.advisory_refreshes.fetch_add(1, Relaxed);
            tracing::debug!(target: "pipgate::advisories", source = %feed.source(), "advisory feed unchanged");
        }
        Err(error) => {
            shared
                .metrics
                .advisory_refresh_failures
                .fetch_add(1, Relaxed);
            tracing::warn!(
                target: "pipgate::advisories",
                source = %feed.source(),
                %error,
                "advisory feed refresh failed; the previous snapshot stays"
            );
        }
    }
}

/// A relative source path is relative to the config file's directory.
fn resolve(rt: &Runtime, p: &Path) -> PathBuf {
    match rt.config.source.as_deref().and_then(Path::parent) {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_owned(),
    }
}

/// Where the last good download of `source` is kept: beside the CA.
fn kept(rt: &Runtime, source: &str) -> PathBuf {
    let key = crate::digest::hex(&Sha256::digest(source.as_bytes())[..8]);
    let dir = rt
        .config
        .ca
        .cert
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    dir.join(format!("advisories-{key}.zip"))
}

/// Loads the last good download of the feed's source, if one was kept.
async fn restore(rt: &Runtime, feed: &Arc<Feed>, state: &mut State) {
    let source = feed.source().to_string();
    let zip = kept(rt, &source);
    let Ok(text) = tokio::fs::read(zip.with_extension("json")).await else {
        return;
    };
    let Ok(meta) = serde_json::from_slice::<Meta>(&text) else {
        return;
    };
    if meta.source != source {
        return;
    }
    let builder = feed.builder();
    match parse(builder, zip.clone()).await {
        Ok(snapshot) => {
            let as_of = OffsetDateTime::from_unix_timestamp(meta.as_of)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            tracing::info!(
                target: "pipgate::advisories",
                source,
                kept = %zip.display(),
                records = snapshot.records,
                as_of = %as_of,
                "advisory snapshot restored from the last good download"
            );
            feed.install(snapshot, as_of);
            state.meta = meta;
        }
        Err(error) => {
            tracing::warn!(target: "pipgate::advisories", kept = %zip.display(), %error, "the kept advisory download is unusable");
        }
    }
}

/// Reads a local zip or directory again when it changed; its age is its modification time.
async fn local(
    feed: &Arc<Feed>,
    path: &Path,
    state: &mut State,
) -> Result<Option<Arc<Snapshot>>, String> {
    let p = path.to_owned();
    let stamp = tokio::task::spawn_blocking(move || newest(&p))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if state.local == Some(stamp) && feed.snapshot().is_some() {
        return Ok(None);
    }
    let snapshot = parse(feed.builder(), path.to_owned()).await?;
    let as_of = OffsetDateTime::from(stamp.0);
    feed.install(snapshot, as_of);
    state.local = Some(stamp);
    Ok(feed.snapshot())
}

/// The newest modification time and the total size of a file, or of a directory's files.
fn newest(path: &Path) -> std::io::Result<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok((meta.modified()?, meta.len()));
    }
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    let mut size = 0;
    for file in json_files(path)? {
        let m = std::fs::metadata(&file)?;
        newest = newest.max(m.modified()?);
        size += m.len();
    }
    Ok((newest, size))
}

/// Every `*.json` file under `dir`, depth first (the malicious-packages repository nests them
/// by ecosystem and name).
fn json_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Parses and indexes a zip or a directory on the blocking pool.
async fn parse(mut builder: Builder, path: PathBuf) -> Result<Snapshot, String> {
    tokio::task::spawn_blocking(move || {
        let shown = path.display().to_string();
        if path.is_dir() {
            let files = json_files(&path).map_err(|e| format!("{shown}: {e}"))?;
            builder.reserve(files.len());
            for file in files {
                let mut f =
                    std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                let mut buf = Vec::new();
                (&mut f)
                    .take(MAX_RECORD_BYTES)
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                builder.add(&buf);
            }
        } else {
            read_zip(&path, &mut builder).map_err(|e| format!("{shown}: {e}"))?;
        }
        let snapshot = builder.finish();
        if snapshot.records == 0 {
            // An empty feed would unblock everything the last one blocked.
            return Err(format!("{shown}: no OSV records in it"));
        }
        Ok(snapshot)
    })
    .await
    .map_err(|e| e.to_string())?
}

fn read_zip(path: &Path, builder: &mut Builder) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format!("not a readable zip ({e})"))?;
    builder.reserve(zip.len());
    let mut buf = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format!("zip entry {i}: {e}"))?;
        let name = entry
            .name()
            .map_err(|e| format!("zip entry {i}: {e}"))?
            .into_owned();
        if !entry.is_file() || !name.ends_with(".json") {
            continue;
        }
        buf.clear();
        // A CRC mismatch (a corrupt download) is an error here: the snapshot is refused.
        (&mut entry)
            .take(MAX_RECORD_BYTES)
            .read_to_end(&mut buf)
            .map_err(|e| format!("{name}: {e}"))?;
        builder.add(&buf);
    }
    Ok(())
}

/// Fetches an https source, conditionally; a new body is kept only once it parses.
async fn remote(
    rt: &Runtime,
    feed: &Arc<Feed>,
    url: &url::Url,
    state: &mut State,
) -> Result<Option<Arc<Snapshot>>, String> {
    let have = feed.snapshot().is_some();
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .header(
            header::USER_AGENT,
            concat!("pipgate/", env!("CARGO_PKG_VERSION")),
        );
    if have {
        if let Some(etag) = &state.meta.etag {
            req = req.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &state.meta.last_modified {
            req = req.header(header::IF_MODIFIED_SINCE, lm);
        }
    }
    let req = req.body(body::empty()).map_err(|e| e.to_string())?;
    let resp = rt.upstream.send(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let now = OffsetDateTime::now_utc();
    let zip = kept(rt, url.as_str());
    if status == StatusCode::NOT_MODIFIED && have {
        feed.confirm(now);
        state.meta.as_of = now.unix_timestamp();
        if tokio::fs::try_exists(&zip).await.unwrap_or(false) {
            save_meta(&zip, &state.meta).await;
        }
        return Ok(None);
    }
    if status != StatusCode::OK {
        return Err(format!("{url} answered {status}"));
    }
    let header_of = |name: header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let meta = Meta {
        source: url.to_string(),
        etag: header_of(header::ETAG),
        last_modified: header_of(header::LAST_MODIFIED),
        as_of: now.unix_timestamp(),
    };
    let (parts, incoming) = resp.into_parts();
    let mut source = decode::Source::new(
        &parts.headers,
        crate::body::stream(incoming),
        rt.config.upstream.idle_timeout,
    )
    .map_err(|e| e.to_string())?;
    // Beside the CA, to be kept for restarts; where that cannot be written (a read-only
    // mount), in the temp directory, and not kept.
    let (part, mut out, keep) = match create_part(&zip).await {
        Ok((part, out)) => (part, out, true),
        Err(e) => {
            tracing::warn!(target: "pipgate::advisories", error = %e, "the advisory download cannot be kept beside the CA; a restart will fetch it again");
            let name = zip
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let part =
                std::env::temp_dir().join(format!("pipgate-{}-{name}.part", std::process::id()));
            // A new file only (no following a link someone left in a shared temp dir).
            let _ = tokio::fs::remove_file(&part).await;
            let out = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&part)
                .await
                .map_err(|e| format!("{}: {e}", part.display()))?;
            (part, out, false)
        }
    };
    let mut len = 0u64;
    let written: Result<(), String> = async {
        while let Some(chunk) = source.next().await.map_err(|e| e.to_string())? {
            len += chunk.len() as u64;
            if len > MAX_FEED_BYTES {
                return Err(format!("{url}: larger than {MAX_FEED_BYTES} bytes"));
            }
            out.write_all(&chunk).await.map_err(|e| e.to_string())?;
        }
        out.flush().await.map_err(|e| e.to_string())
    }
    .await;
    drop(out);
    let parsed = match written {
        Ok(()) => parse(feed.builder(), part.clone()).await,
        Err(e) => Err(e),
    };
    let snapshot = match parsed {
        Ok(s) => s,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    feed.install(snapshot, now);
    if !keep {
        let _ = tokio::fs::remove_file(&part).await;
    } else if let Err(e) = tokio::fs::rename(&part, &zip).await {
        tracing::warn!(target: "pipgate::advisories", kept = %zip.display(), error = %e, "the advisory download could not be kept for restarts");
    } else {
        save_meta(&zip, &meta).await;
    }
    state.meta = meta;
    Ok(feed.snapshot())
}

/// The `.part` file a download is written to beside the kept one.
async fn create_part(zip: &Path) -> Result<(PathBuf, tokio::fs::File), String> {
    if let Some(dir) = zip.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let part = zip.with_extension("zip.part");
    let out = tokio::fs::File::create(&part)
        .await
        .map_err(|e| format!("{}: {e}", part.display()))?;
    Ok((part, out))
}

async fn save_meta(zip: &Path, meta: &Meta) {
    let Ok(text) = serde_json::to_vec(meta) else {
        return;
    };
    if let Err(e) = tokio::fs::write(zip.with_extension("json"), text).await {
        tracing::warn!(target: "pipgate::advisories", error = %e, "the advisory download's metadata could not be kept");
    }
}
