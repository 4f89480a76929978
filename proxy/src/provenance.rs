//! `[policy.provenance]` on the wire: each file's PEP 740 provenance object fetched through the
//! upstream client (once per file: results are remembered by the file's sha256 and name, and
//! concurrent askers share one fetch), verified on the blocking pool against the trusted root,
//! and handed to the rule as the file's `Attestation` in the project's file listing
//! (`lookup.rs`). The first verified publisher of a project is pinned in the pins file.
//!
//! A provenance object that cannot be fetched (network, timeout, an error status) is
//! `Attestation::Unavailable`: the file is withheld for that request (the rule fails closed)
//! and the fetch is tried again next time; nothing about it is remembered.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::{header, Method, Request, StatusCode};
use pipgate_policy::rules::provenance::Settings;
use pipgate_policy::{Attestation, FileRecord, Name, Pins};
use pipgate_provenance::TrustedRoot;
use sha2::Digest as _;
use tokio::sync::{OnceCell, Semaphore};

use crate::body;
use crate::budget::PageBudget;
use crate::decode;
use crate::upstream::Upstream;

pub(crate) mod pins;

/// A provenance object is a few kilobytes; more is refused.
const MAX_PROVENANCE: usize = 1024 * 1024;

/// Provenance fetches under way at once, across every page and download: a first sight of a
/// project with hundreds of attested files does not open hundreds of requests.
const CONCURRENT_FETCHES: usize = 8;

/// Verdicts remembered in memory; past this the coldest go first (quick_cache's S3-FIFO: one
/// seen once and long ago before one asked for again), and a forgotten verdict is one refetch
/// away. The kept file is rewritten from memory when it grows past twice this.
const MAX_REMEMBERED: usize = 100_000;

/// Verdicts by (sha256 hex, file name).
type Verdicts = quick_cache::sync::Cache<(String, String), Attestation>;

/// Whether a kept file of `lines` is long enough to be rewritten from `memory`: past twice what
/// it holds.
fn too_long(lines: usize, memory: &Verdicts) -> bool {
    lines as u64 > memory.capacity().saturating_mul(2)
}

/// What verifying needs, for one runtime: the trusted root, the remembered verdicts, the pins.
pub(crate) struct Verifier {
    root: Root,
    /// The sha256 of the configured root's file (`None`: the embedded production root): a
    /// reload keeps the verdicts only when it verifies against the same root.
    root_digest: Option<[u8; 32]>,
    /// Verdicts by (sha256 hex, file name): a provenance object does not change, so a verdict
    /// (verified or invalid) holds for good. `Unavailable` is never remembered.
    verdicts: Arc<Verdicts>,
    inflight: DashMap<(String, String), Arc<OnceCell<Attestation>>>,
    fetches: Semaphore,
    /// Whether a first verified publisher is written to the pins (not by `pipgate provenance
    /// show`, which only looks).
    recording: AtomicBool,
    pins_path: PathBuf,
    pin_publisher: bool,
    pins: Arc<Pins>,
    budget: PageBudget,
    /// Where verdicts are kept across restarts (beside the CA), one JSON line each; `None`
    /// where that directory cannot be written.
    kept: Option<PathBuf>,
    /// Lines in the kept file, about: past twice what memory holds it is rewritten from memory.
    kept_lines: AtomicUsize,
}

/// One remembered verdict as the kept file holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    sha256: String,
    file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invalid: Option<String>,
}

impl Kept {
    /// The line of a verdict (`None` for `Unavailable`, which is never remembered).
    fn new(sha256: String, file: String, v: &Attestation) -> Option<Kept> {
        let (verified, invalid) = match v {
            Attestation::Verified { publisher } => (Some(publisher.clone()), None),
            Attestation::Invalid(why) => (None, Some(why.clone())),
            Attestation::Unavailable(_) => return None,
        };
        Some(Kept {
            sha256,
            file,
            verified,
            invalid,
        })
    }

    fn verdict(&self) -> Option<Attestation> {
        match (&self.verified, &self.invalid) {
            (Some(publisher), None) => Some(Attestation::Verified {
                publisher: publisher.clone(),
            }),
            (None, Some(why)) => Some(Attestation::Invalid(why.clone())),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("pins", &self.pins_path)
            .field("remembered", &self.verdicts.len())
            .finish_non_exhaustive()
    }
}

enum Root {
    Production,
    Configured(Arc<TrustedRoot>),
}

/// Why `[policy.provenance]`'s files cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvenanceError {
    /// `trusted_root` does not read or parse.
    #[error("key 'policy.provenance.trusted_root': {path}: {why}")]
    TrustedRoot { path: PathBuf, why: String },
    /// `pins` does not read or parse.
    #[error("key 'policy.provenance.pins': {0}")]
    Pins(#[from] pins::PinsError),
}

/// `path` as the config names it: relative to the config file's directory.
pub(crate) fn resolve(config_source: Option<&Path>, path: &Path) -> PathBuf {
    match config_source.and_then(Path::parent) {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_owned(),
    }
}

impl Verifier {
    /// The verifier of `settings` (the rule's), its trusted root read and its pins loaded.
    pub(crate) fn new(
        settings: &Settings,
        config_source: Option<&Path>,
        state_dir: Option<&Path>,
        budget: PageBudget,
    ) -> Result<Verifier, ProvenanceError> {
        let mut root_digest: Option<[u8; 32]> = None;
        let root = match &settings.trusted_root {
            None => Root::Production,
            Some(p) => {
                let path = resolve(config_source, p);
                let fail = |why: String| ProvenanceError::TrustedRoot {
                    path: path.clone(),
                    why,
                };
                let bytes = std::fs::read(&path).map_err(|e| fail(e.to_string()))?;
                let root = TrustedRoot::from_json(&bytes).map_err(|e| fail(e.to_string()))?;
                root_digest = Some(sha2::Sha256::digest(&bytes).into());
                Root::Configured(Arc::new(root))
            }
        };
        let pins_path = resolve(config_source, &settings.pins_path);
        settings.pins.replace(pins::load(&pins_path)?);
        // Verdicts are kept per root and per pipgate version (a newer verifier decides anew).
        let key =
            root_digest.map_or_else(|| "production".to_owned(), |d| crate::digest::hex(&d[..8]));
        let kept = state_dir.map(|d| {
            d.join(format!(
                "provenance-verdicts-{key}-{}.jsonl",
                env!("CARGO_PKG_VERSION")
            ))
        });
        let verdicts = Arc::new(Verdicts::new(MAX_REMEMBERED));
        let kept_lines = kept.as_deref().map_or(0, |path| restore(path, &verdicts));
        Ok(Verifier {
            kept,
            kept_lines: kept_lines.into(),
            root,
            root_digest,
            verdicts,
            inflight: DashMap::new(),
            fetches: Semaphore::new(CONCURRENT_FETCHES),
            recording: AtomicBool::new(true),
            pins_path,
            pin_publisher: settings.pin_publisher,
            pins: Arc::clone(&settings.pins),
            budget,
        })
    }

    /// Takes over `old`'s verdicts when both verify against the same root (a reload does not
    /// fetch every provenance object again).
    pub(crate) fn adopt(&self, old: &Verifier) {
        if self.root_digest != old.root_digest {
            return;
        }
        for (key, verdict) in old.verdicts.iter() {
            self.verdicts.insert(key, verdict);
        }
    }

    /// Records no pins (a command that only looks).
    pub(crate) fn read_only(&self) {
        self.recording.store(false, Ordering::Relaxed);
    }

    /// The publisher pinned for `name`.
    pub(crate) fn pinned(&self, name: &Name) -> Option<String> {
        self.pins.get(name)
    }

    /// The pins file.
    pub(crate) fn pins_path(&self) -> &Path {
        &self.pins_path
    }

    /// `files` (a public listing of `project`) with each offered provenance verified; when
    /// pinning and `project` has no pin yet, the first verified publisher (in the listing's
    /// order) is pinned.
    pub(crate) async fn attest(
        &self,
        upstream: &Upstream,
        project: &Name,
        mut files: Vec<FileRecord>,
        idle: Duration,
    ) -> Vec<FileRecord> {
        let verdicts = files.iter().map(|f| async move {
            match (&f.provenance, &f.sha256) {
                (Some(url), Some(sha)) => {
                    Some(self.verdict(upstream, url, &f.filename, sha, idle).await)
                }
                // No sha256 to check a subject against: the rule says so.
                _ => None,
            }
        });
        let verdicts = futures_util::future::join_all(verdicts).await;
        for (f, v) in files.iter_mut().zip(verdicts) {
            f.attestation = v;
        }
        let recording = self.recording.load(Ordering::Relaxed);
        if recording && self.pin_publisher && self.pins.get(project).is_none() {
            let first = files.iter().find_map(|f| match &f.attestation {
                Some(Attestation::Verified { publisher }) => Some(publisher.clone()),
                _ => None,
            });
            if let Some(publisher) = first {
                self.pin(project, &publisher).await;
            }
        }
        files
    }

    /// Records `publisher` as `project`'s pin (unless one is there), in memory and in the file.
    async fn pin(&self, project: &Name, publisher: &str) {
        if !self.pins.add_if_absent(project, publisher) {
            return;
        }
        let path = self.pins_path.clone();
        let (name, who) = (project.clone(), publisher.to_owned());
        let written =
            tokio::task::spawn_blocking(move || pins::record(&path, &name, &who, false)).await;
        match written {
            Ok(Ok(())) => tracing::info!(
                target: "pipgate::policy",
                name = %project,
                publisher,
                pins = %self.pins_path.display(),
                "provenance: pinned the first verified publisher"
            ),
            Ok(Err(e)) => tracing::error!(
                target: "pipgate::policy",
                name = %project,
                error = %e,
                "provenance: the pin could not be written (kept in memory)"
            ),
            Err(e) => {
                tracing::error!(target: "pipgate::policy", error = %e, "provenance: pin task failed")
            }
        }
    }

    /// The verdict on `filename` (sha256 `sha`) from the provenance object at `url`.
    async fn verdict(
        &self,
        upstream: &Upstream,
        url: &str,
        filename: &str,
        sha: &str,
        idle: Duration,
    ) -> Attestation {
        let key = (sha.to_ascii_lowercase(), filename.to_owned());
        if let Some(v) = self.verdicts.get(&key) {
            return v;
        }
        let cell = self.inflight.entry(key.clone()).or_default().clone();
        let verdict = cell
            .get_or_init(|| async {
                let v = self
                    .fetch_and_verify(upstream, url, filename, sha, idle)
                    .await;
                if !matches!(v, Attestation::Unavailable(_)) {
                    self.verdicts.insert(key.clone(), v.clone());
                    self.keep(&key, &v).await;
                }
                v
            })
            .await
            .clone();
        self.inflight.remove_if(&key, |_, c| Arc::ptr_eq(c, &cell));
        verdict
    }

    /// Appends a verdict to the kept file (a failure to write costs only a refetch later).
    async fn keep(&self, key: &(String, String), v: &Attestation) {
        use tokio::io::AsyncWriteExt as _;
        let Some(path) = &self.kept else { return };
        let Some(line) = Kept::new(key.0.clone(), key.1.clone(), v) else {
            return;
        };
        let Ok(mut line) = serde_json::to_vec(&line) else {
            return;
        };
        line.push(b'\n');
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await;
        let Ok(mut f) = file else { return };
        if f.write_all(&line).await.is_err() {
            return;
        }
        // Past twice what memory holds, the file is rewritten from memory on the blocking pool
        // (not awaited: this verdict's askers do not wait for it). The count is set to about
        // what the rewrite writes first, so one keeper starts it.
        if too_long(
            self.kept_lines.fetch_add(1, Ordering::Relaxed) + 1,
            &self.verdicts,
        ) {
            self.kept_lines
                .store(self.verdicts.len(), Ordering::Relaxed);
            let (path, verdicts) = (path.clone(), Arc::clone(&self.verdicts));
            drop(tokio::task::spawn_blocking(move || {
                compact(&path, &verdicts)
            }));
        }
    }

    async fn fetch_and_verify(
        &self,
        upstream: &Upstream,
        url: &str,
        filename: &str,
        sha: &str,
        idle: Duration,
    ) -> Attestation {
        let Some(digest) = sha256_bytes(sha) else {
            return Attestation::Invalid(format!(
                "the index's sha256 {sha:?} is not 64 hex digits"
            ));
        };
        let body = {
            let _permit = self.fetches.acquire().await;
            match fetch(upstream, url, idle, &self.budget).await {
                Ok(Some(b)) => b,
                // The index contradicts itself (or its CDN lags): withheld, but not remembered.
                Ok(None) => {
                    return Attestation::Unavailable(format!(
                        "the index offers an attestation at {url} but answers 404 there"
                    ))
                }
                Err(why) => return Attestation::Unavailable(why),
            }
        };
        let root = match &self.root {
            Root::Production => None,
            Root::Configured(r) => Some(Arc::clone(r)),
        };
        let name = filename.to_owned();
        // Verification is CPU (signatures, certificate paths): off the serving threads.
        let verified = tokio::task::spawn_blocking(move || {
            let root = root.as_deref().unwrap_or_else(|| TrustedRoot::production());
            let started = thread_cpu();
            let verdict = check(&body, &name, &digest, root);
            (verdict, thread_cpu().saturating_sub(started))
        })
        .await;
        let (verdict, cpu) = match verified {
            Ok(v) => v,
            Err(e) => {
                let why = format!("verification task failed: {e}");
                return Attestation::Unavailable(why);
            }
        };
        let cpu_us = u64::try_from(cpu.as_micros()).unwrap_or(u64::MAX);
        match &verdict {
            Attestation::Verified { publisher } => tracing::debug!(
                target: "pipgate::provenance",
                file = filename,
                publisher,
                cpu_us,
                "provenance verified"
            ),
            Attestation::Invalid(error) => tracing::info!(
                target: "pipgate::provenance",
                file = filename,
                error,
                cpu_us,
                "provenance does not verify"
            ),
            Attestation::Unavailable(_) => {}
        }
        verdict
    }
}

/// Loads the verdicts kept in `path` (later lines win, and the cache keeps the most recent
/// when there are more than it holds); returns the file's lines. A file `too_long` is
/// rewritten with what the cache kept, so it does not grow for good.
fn restore(path: &Path, into: &Verdicts) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let Ok(k) = serde_json::from_str::<Kept>(line) else {
            continue;
        };
        let Some(v) = k.verdict() else { continue };
        into.insert((k.sha256, k.file), v);
    }
    if too_long(lines, into) {
        compact(path, into)
    } else {
        lines
    }
}

/// Rewrites the kept file with the verdicts `from` holds (atomically, as the pins file is
/// written); returns its lines. A failure leaves the long file, read again and compacted next
/// time; a verdict appended while this runs may miss the new file, and is then one refetch away
/// after a restart.
fn compact(path: &Path, from: &Verdicts) -> usize {
    let mut out = String::new();
    let mut lines = 0;
    for ((sha256, file), v) in from.iter() {
        if let Some(line) = Kept::new(sha256, file, &v).and_then(|k| serde_json::to_string(&k).ok())
        {
            out.push_str(&line);
            out.push('\n');
            lines += 1;
        }
    }
    if pins::write_atomic(path, out.as_bytes()).is_ok() {
        lines
    } else {
        // Counted as empty: tried again after as many appends, not after each one.
        0
    }
}

/// The verdict of the provenance object `body` on `filename` with digest `sha`.
pub(crate) fn check(
    body: &[u8],
    filename: &str,
    sha: &[u8; 32],
    root: &TrustedRoot,
) -> Attestation {
    let provenance = match pipgate_provenance::Provenance::from_json(body) {
        Ok(p) => p,
        Err(e) => return Attestation::Invalid(format!("the provenance object does not read: {e}")),
    };
    match pipgate_provenance::verify(&provenance, filename, sha, root) {
        Ok(v) => Attestation::Verified {
            publisher: v.publisher.to_string(),
        },
        Err(e) => Attestation::Invalid(e.to_string()),
    }
}

/// The CPU time this thread has used (zero where the clock cannot be read): what one
/// verification costs, logged with it.
fn thread_cpu() -> Duration {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

fn sha256_bytes(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// GETs a provenance object: its body, `None` for a 404/410, the reason otherwise.
async fn fetch(
    upstream: &Upstream,
    url: &str,
    idle: Duration,
    budget: &PageBudget,
) -> Result<Option<Vec<u8>>, String> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(url)
        .header(
            header::ACCEPT,
            "application/vnd.pypi.integrity.v1+json, application/json",
        )
        .header(header::ACCEPT_ENCODING, "gzip, br, zstd")
        .header(
            header::USER_AGENT,
            concat!("pipgate/", env!("CARGO_PKG_VERSION")),
        )
        .body(body::empty())
        .map_err(|e| format!("bad provenance URL {url}: {e}"))?;
    let resp = upstream
        .send(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let (parts, incoming) = resp.into_parts();
    let mut share = budget.share();
    decode::read_decoded(
        &parts.headers,
        crate::body::stream(incoming),
        MAX_PROVENANCE,
        idle,
        &mut share,
    )
    .await
    .map(Some)
    .map_err(|e| format!("{url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full memory forgets its coldest verdicts, not all of them, and a kept file past twice
    /// the capacity is rewritten with what was kept.
    #[test]
    fn verdicts_past_the_capacity_keep_the_recent_and_compact_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verdicts.jsonl");
        let capacity = 50;
        let line = |i: usize| {
            let v = Attestation::Verified {
                publisher: format!("github.com/o/r{i}"),
            };
            serde_json::to_string(&Kept::new(format!("{i:064x}"), format!("f{i}.whl"), &v).unwrap())
                .unwrap()
        };
        let text: String = (0..capacity * 3).map(|i| line(i) + "\n").collect();
        std::fs::write(&path, &text).unwrap();

        let cache = Verdicts::new(capacity);
        restore(&path, &cache);
        let last = capacity * 3 - 1;
        let kept = cache.len();
        assert!(
            kept > capacity / 2 && kept <= capacity + capacity / 10,
            "{kept} kept"
        );
        let newest = format!("github.com/o/r{last}");
        assert!(matches!(
            cache.get(&(format!("{last:064x}"), format!("f{last}.whl"))),
            Some(Attestation::Verified { publisher }) if publisher == newest
        ));
        // The file now holds exactly what the cache kept, each line a verdict read back.
        let compacted = std::fs::read_to_string(&path).unwrap();
        assert_eq!(compacted.lines().count(), kept);
        let again = Verdicts::new(capacity);
        restore(&path, &again);
        assert_eq!(again.len(), kept);
        assert!(again
            .get(&(format!("{last:064x}"), format!("f{last}.whl")))
            .is_some());

        // More verdicts than it holds, one at a time as they are verified: never emptied.
        for i in 0..capacity * 4 {
            cache.insert(
                (format!("{i:x}"), "x".into()),
                Attestation::Invalid("no".into()),
            );
            assert!(!cache.is_empty());
        }
        assert!(cache.len() <= capacity + capacity / 10);
    }

    /// A kept file past twice what memory holds is rewritten from memory by the verdict that
    /// passes it, while running (here: a file already long, the verdict one more).
    #[tokio::test]
    async fn a_kept_file_past_twice_the_memory_is_rewritten_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            pins_path: dir.path().join("pins.toml"),
            trusted_root: None,
            pin_publisher: false,
            pins: Arc::new(Pins::default()),
        };
        let v = Verifier::new(&settings, None, Some(dir.path()), PageBudget::new(1 << 20)).unwrap();
        let path = v.kept.clone().unwrap();
        std::fs::write(&path, "an old line\n".repeat(10)).unwrap();
        v.kept_lines.store(MAX_REMEMBERED * 2, Ordering::Relaxed);
        assert!(
            !too_long(MAX_REMEMBERED * 2, &v.verdicts)
                && too_long(MAX_REMEMBERED * 2 + 1, &v.verdicts)
        );
        let key = ("ab".repeat(32), "f-1.0-py3-none-any.whl".to_owned());
        let verdict = Attestation::Invalid("a broken signature".into());
        v.verdicts.insert(key.clone(), verdict.clone());
        v.keep(&key, &verdict).await;
        // The rewrite runs on the blocking pool, not awaited by `keep`.
        let mut text = String::new();
        for _ in 0..200 {
            text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: Kept = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!((line.sha256, line.file), key);
        assert_eq!(line.invalid.as_deref(), Some("a broken signature"));
        assert_eq!(
            v.kept_lines.load(Ordering::Relaxed),
            1,
            "counted as what memory holds"
        );
    }

    #[test]
    fn hex_digests() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(sha256_bytes(&hex).unwrap()[31], 0xff);
        assert!(sha256_bytes("ab").is_none());
        assert!(sha256_bytes(&"zz".repeat(32)).is_none());
    }
}
