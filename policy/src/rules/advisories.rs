//! `[policy.advisories]`: releases an OSV advisory feed lists (by default the `MAL-` records
//! of known-malicious uploads) are withheld from every door, for every client.
//!
//! ```toml
//! [policy.advisories]
//! source = "https://osv.mirror.corp.example/PyPI/all.zip"  # or a local OSV zip or directory
//! refresh = "1h"        # how often the source is fetched again (conditionally)
//! max_age = "48h"       # a snapshot older than this is stale
//! on_stale = "block"    # stale: public pages and files 503; or "allow"
//! include = ["MAL-"]    # id prefixes that block
//! ignore = ["MAL-2025-1234"]   # advisories reviewed and waived
//! ```
//! A record blocks the versions it lists and its `ECOSYSTEM` ranges (PEP 440 order), and every
//! file whose sha256 it lists, under any name; one with `introduced: "0"` and no end refuses
//! the whole project (pages 404, files 403). A withdrawn record blocks nothing.
//!
//! The feed is whole dumps, fetched (or read) by the proxy, never queried per package: no
//! request's name is sent anywhere. The proxy builds each [`Snapshot`] off the serving threads
//! and installs it in the rule's [`Feed`]; the rule reads the current one for each file.

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use pep440_rs::Version;
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

use super::Needs;
use super::{rfc3339, toml_list, toml_string, Configured, FileFacts, FileRecord, FileRule, Mode};
use crate::{Name, Rule};

mod snapshot;
#[cfg(test)]
mod tests;

pub use snapshot::{Advisory, Builder, Snapshot};

/// What to do when the snapshot is older than `max_age` (or none was ever loaded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStale {
    /// Public project pages and files fail with 503 (the default: fail closed).
    #[default]
    Block,
    /// Serve by the stale snapshot (or by none).
    Allow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    source: String,
    refresh: Option<String>,
    max_age: Option<String>,
    #[serde(default)]
    on_stale: OnStale,
    include: Option<Vec<String>>,
    #[serde(default)]
    ignore: Vec<String>,
    mode: Option<Mode>,
}

/// Where the feed comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An https URL of an OSV zip.
    Url(Url),
    /// A local OSV zip, or a directory of OSV JSON files (relative to the config's directory).
    Path(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Url(u) => f.write_str(u.as_str()),
            Source::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The feed a rule decides by: its settings and the current snapshot, which the proxy
/// replaces as it fetches.
pub struct Feed {
    source: Source,
    refresh: Duration,
    max_age: Duration,
    include: Vec<String>,
    ignore: Vec<String>,
    current: ArcSwapOption<Snapshot>,
    /// Matches (files withheld, names refused, downloads cut, or in audit mode reported) by
    /// the `include` prefix of the advisory, for `/metrics`.
    blocks: Vec<AtomicU64>,
    /// When the source last said the current snapshot is its content (unix seconds; a
    /// conditional fetch that answers 304 moves it on); `i64::MIN`: never.
    as_of: AtomicI64,
}

impl fmt::Debug for Feed {
    // The settings only: the snapshot is large, and the rules' fingerprint prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("source", &self.source)
            .field("refresh", &self.refresh)
            .field("max_age", &self.max_age)
            .field("include", &self.include)
            .field("ignore", &self.ignore)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// How often the source is fetched again.
    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// How old a snapshot may be before it is stale.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// A builder for a new snapshot with this feed's `include` and `ignore`.
    pub fn builder(&self) -> Builder {
        Builder::new(self.include.clone(), self.ignore.clone())
    }

    /// Makes `snapshot` the current one, as the source's content at `as_of`.
    pub fn install(&self, snapshot: Snapshot, as_of: OffsetDateTime) {
        self.current.store(Some(Arc::new(snapshot)));
        self.as_of.store(as_of.unix_timestamp(), Ordering::Release);
    }

    /// The source says, at `as_of`, that the current snapshot is still its content.
    pub fn confirm(&self, as_of: OffsetDateTime) {
        if self.current.load().is_some() {
            self.as_of
                .fetch_max(as_of.unix_timestamp(), Ordering::AcqRel);
        }
    }

    /// The current snapshot, if one was loaded.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// When the current snapshot was last confirmed.
    pub fn as_of(&self) -> Option<OffsetDateTime> {
        match self.as_of.load(Ordering::Acquire) {
            i64::MIN => None,
            t => OffsetDateTime::from_unix_timestamp(t).ok(),
        }
    }

    /// The snapshot's age at `now` (`None`: no snapshot).
    pub fn age(&self, now: OffsetDateTime) -> Option<Duration> {
        let as_of = self.as_of()?;
        Some((now - as_of).try_into().unwrap_or(Duration::ZERO))
    }

    /// Whether the snapshot is older than `max_age` at `now` (or there is none).
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        self.age(now).is_none_or(|a| a > self.max_age)
    }

    /// The `include` prefixes with the matches counted for each.
    pub fn blocks(&self) -> impl Iterator<Item = (&str, u64)> {
        self.include
            .iter()
            .zip(&self.blocks)
            .map(|(p, n)| (p.as_str(), n.load(Ordering::Relaxed)))
    }

    fn count(&self, a: &Advisory) {
        if let Some(n) = self.blocks.get(usize::from(a.include)) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes over `old`'s snapshot when it reads the same source the same way (a reload that
    /// leaves `[policy.advisories]` as it was does not start from nothing).
    pub fn adopt(&self, old: &Feed) {
        // Counters are counters: what was counted under a prefix the new feed still includes
        // carries over, whatever else changed.
        for (prefix, n) in old.blocks() {
            if let Some(i) = self.include.iter().position(|p| p == prefix) {
                self.blocks[i].fetch_add(n, Ordering::Relaxed);
            }
        }
        let same =
            self.source == old.source && self.include == old.include && self.ignore == old.ignore;
        if let (true, Some(s)) = (same, old.current.load_full()) {
            self.current.store(Some(s));
            self.as_of
                .store(old.as_of.load(Ordering::Acquire), Ordering::Release);
        }
    }
}

/// The advisories rule.
pub(super) struct Advisories {
    feed: Arc<Feed>,
    on_stale: OnStale,
    mode: Mode,
    /// The snapshot a page's judge decides by, taken once for the page (see `pinned`);
    /// `None` in the configured rule, which reads the feed's current one each time.
    pinned: Option<Arc<Snapshot>>,
}

impl fmt::Debug for Advisories {
    // The settings (the rules' fingerprint prints them), not the snapshot.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Advisories")
            .field("feed", &self.feed)
            .field("on_stale", &self.on_stale)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Advisories {
    /// `f` of the snapshot decided by: the pinned one, else the feed's current one.
    fn with<R>(&self, f: impl FnOnce(&Snapshot) -> Option<R>) -> Option<R> {
        match &self.pinned {
            Some(s) => f(s),
            None => f(self.feed.current.load().as_ref()?),
        }
    }
}

fn duration(
    key: &'static str,
    raw: Option<&str>,
    default: Duration,
) -> Result<Duration, (&'static str, String)> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match humantime::parse_duration(raw.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err((key, format!("{raw:?}: must be more than zero"))),
        Err(e) => Err((
            key,
            format!("{raw:?}: expected a duration like \"1h\" or \"48h\" ({e})"),
        )),
    }
}

impl Configured for Advisories {
    const TABLE: &'static str = "advisories";
    type Config = Config;

    fn build(config: Config, mode: Mode) -> Result<Advisories, (&'static str, String)> {
        let raw = config.source.trim();
        let source = if raw.contains("://") {
            let url = Url::parse(raw).map_err(|e| ("source", format!("{raw:?}: {e}")))?;
            if url.scheme() != "https" {
                return Err((
                    "source",
                    format!("{raw:?}: only an https URL or a local path (the feed decides what is blocked, so it is fetched over TLS)"),
                ));
            }
            Source::Url(url)
        } else if raw.is_empty() {
            return Err((
                "source",
                "empty: expected an https URL or a local path".to_owned(),
            ));
        } else {
            Source::Path(PathBuf::from(raw))
        };
        let refresh = duration(
            "refresh",
            config.refresh.as_deref(),
            Duration::from_secs(3600),
        )?;
        let max_age = duration(
            "max_age",
            config.max_age.as_deref(),
            Duration::from_secs(48 * 3600),
        )?;
        let include = config.include.unwrap_or_else(|| vec!["MAL-".to_owned()]);
        if let Some(p) = include.iter().find(|p| p.trim().is_empty()) {
            return Err((
                "include",
                format!("{p:?}: an empty prefix would include every record; list the prefixes"),
            ));
        }
        Ok(Advisories {
            feed: Arc::new(Feed {
                source,
                refresh,
                max_age,
                blocks: include.iter().map(|_| AtomicU64::new(0)).collect(),
                include,
                ignore: config.ignore,
                current: ArcSwapOption::empty(),
                as_of: AtomicI64::new(i64::MIN),
            }),
            on_stale: config.on_stale,
            mode: config.mode.unwrap_or(mode),
            pinned: None,
        })
    }
}

/// The advisory that blocks `file` of `project`, and why: its hash, else its version.
fn matching<'s>(
    s: &'s Snapshot,
    project: &Name,
    file: &FileFacts<'_>,
    version: Option<&Version>,
) -> Option<(&'s Advisory, String)> {
    if let Some(a) = file.sha256.and_then(|h| s.file(h)) {
        return Some((a, format!("{} {} ({})", file.filename, a.verb(), a.label())));
    }
    let v = version?;
    let a = s.version(project, v)?;
    Some((a, format!("{project} {v} {} ({})", a.verb(), a.label())))
}

impl FileRule for Advisories {
    fn rule(&self) -> Rule {
        Rule::Advisory
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn needs(&self) -> Needs {
        Needs {
            upload_time: false,
            version: true,
            sha256: true,
            provenance: false,
        }
    }

    fn uses_clock(&self) -> bool {
        // Its decisions change with each snapshot, and with the snapshot's age.
        true
    }

    fn feed(&self) -> Option<&Arc<Feed>> {
        Some(&self.feed)
    }

    fn unavailable(&self, now: OffsetDateTime) -> Option<String> {
        if self.on_stale == OnStale::Allow || !self.feed.is_stale(now) {
            return None;
        }
        let max_age = humantime::format_duration(self.feed.max_age);
        Some(match self.feed.age(now) {
            None => format!(
                "no advisory snapshot has been loaded yet from {} (policy.advisories.on_stale = \"block\")",
                self.feed.source
            ),
            Some(age) => format!(
                "the advisory snapshot is {} old, older than policy.advisories.max_age = {max_age} (policy.advisories.on_stale = \"block\")",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            ),
        })
    }

    fn versions_of(&self, project: &Name) -> bool {
        self.with(|s| s.names(project).then_some(())).is_some()
    }

    fn pinned(&self) -> Option<Arc<dyn FileRule>> {
        // One snapshot for a whole page: its files are not each a load of the feed's pointer.
        Some(Arc::new(Advisories {
            feed: Arc::clone(&self.feed),
            on_stale: self.on_stale,
            mode: self.mode,
            pinned: Some(self.feed.snapshot()?),
        }))
    }

    fn denies(&self, name: &Name) -> Option<String> {
        self.with(|s| {
            let a = s.whole(name)?;
            self.feed.count(a);
            Some(format!(
                "'{name}' {} in every version ({})",
                a.verb(),
                a.label()
            ))
        })
    }

    fn denies_digest(&self, hex: &str, _advertised: Option<&str>) -> Option<String> {
        self.with(|s| {
            let a = s.file(hex)?;
            self.feed.count(a);
            Some(format!(
                "its bytes are a file {} lists ({})",
                a.id(),
                a.label()
            ))
        })
    }

    fn withholds(
        &self,
        project: &Name,
        file: &FileFacts<'_>,
        version: Option<&Version>,
        _now: OffsetDateTime,
    ) -> Option<String> {
        self.with(|s| {
            let (a, why) = matching(s, project, file, version)?;
            self.feed.count(a);
            Some(why)
        })
    }

    fn explain(
        &self,
        name: &Name,
        files: Option<&[FileRecord]>,
        now: OffsetDateTime,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let stale = self.unavailable(now);
        let Some(s) = self.feed.snapshot() else {
            out.push(format!(
                "no advisory snapshot loaded yet from {}",
                self.feed.source
            ));
            out.extend(stale);
            return out;
        };
        let mut status = format!(
            "snapshot of {} records ({} blocking)",
            s.records, s.blocking
        );
        if let Some(at) = self.feed.as_of() {
            let _ = write!(status, ", as of {}", rfc3339(at));
        }
        out.push(status);
        out.extend(stale);
        let about = s.about(name);
        if about.is_empty() {
            out.push(format!("no advisory names '{name}'"));
        }
        for (a, what) in about {
            out.push(format!("{}: {what}", a.label()));
        }
        for f in files.into_iter().flatten() {
            let version =
                crate::filename::version_of(&f.filename, name).and_then(|v| v.parse().ok());
            if let Some((_, why)) = matching(&s, name, &f.facts(), version.as_ref()) {
                out.push(format!("withholds {}: {why}", f.filename));
            }
        }
        out
    }

    fn print(&self) -> Option<String> {
        let f = &self.feed;
        let on_stale = match self.on_stale {
            OnStale::Block => "block",
            OnStale::Allow => "allow",
        };
        Some(format!(
            "\n[policy.advisories]\nsource = {}\nrefresh = {}\nmax_age = {}\non_stale = {}\ninclude = {}\nignore = {}\nmode = {}\n",
            toml_string(&f.source.to_string()),
            toml_string(&humantime::format_duration(f.refresh).to_string()),
            toml_string(&humantime::format_duration(f.max_age).to_string()),
            toml_string(on_stale),
            toml_list(&f.include),
            toml_list(&f.ignore),
            toml_string(self.mode.as_str()),
        ))
    }
}
