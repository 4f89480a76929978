//! A snapshot of an OSV advisory feed, indexed for the page path: the records that block,
//! by PEP 503 name (versions and `ECOSYSTEM` ranges in PEP 440 order) and by file sha256.
//! Built record by record from their JSON (the proxy reads the zip or directory and hands each
//! record over), so a dump of 100k records is never held whole.

use std::collections::HashMap;
use std::str::FromStr;

use osv::schema::{Ecosystem, Event, RangeType, Vulnerability};
use pep440_rs::Version;

use crate::{normalize, Name};

/// One advisory that blocks: its id and summary, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisory {
    /// `MAL-2026-1234`.
    pub id: String,
    /// Its one-line summary (may be empty).
    pub summary: String,
    /// Which `include` prefix let it in (its position), for the blocks counted by prefix.
    pub(super) include: usize,
}

impl Advisory {
    /// `MAL-2026-1234: Malicious code in acme (PyPI)`.
    pub fn label(&self) -> String {
        if self.summary.is_empty() {
            self.id.clone()
        } else {
            format!("{}: {}", self.id, self.summary)
        }
    }

    /// What a match is called: malicious for `MAL-` records, else an advisory.
    pub(super) fn verb(&self) -> &'static str {
        if self.id.starts_with("MAL-") {
            "is known malicious"
        } else {
            "is affected by a known advisory"
        }
    }
}

/// One `ECOSYSTEM` range event, in PEP 440 terms.
#[derive(Debug, Clone)]
enum Bound {
    /// `introduced`; `None` is `"0"`, every version.
    Introduced(Option<Version>),
    Fixed(Version),
    LastAffected(Version),
}

impl Bound {
    fn version(&self) -> Option<&Version> {
        match self {
            Bound::Introduced(v) => v.as_ref(),
            Bound::Fixed(v) | Bound::LastAffected(v) => Some(v),
        }
    }
}

/// What one advisory says of one project.
#[derive(Debug, Clone)]
struct Affected {
    /// Index into [`Snapshot::advisories`].
    advisory: u32,
    /// Every version: `introduced: "0"` and nothing after it (or no versions and no ranges).
    all: bool,
    versions: Vec<Version>,
    /// Each range's events, sorted by version (`"0"` first).
    ranges: Vec<Vec<Bound>>,
}

impl Affected {
    fn matches(&self, v: &Version) -> bool {
        self.all || self.versions.contains(v) || self.ranges.iter().any(|r| in_range(r, v))
    }
}

/// OSV's evaluation of a range: walking its events in version order, each one at or below `v`
/// sets whether `v` is affected (`last_affected` only once `v` is above it).
fn in_range(events: &[Bound], v: &Version) -> bool {
    let mut affected = false;
    for e in events {
        match e {
            Bound::Introduced(None) => affected = true,
            Bound::Introduced(Some(at)) if v >= at => affected = true,
            Bound::Fixed(at) if v >= at => affected = false,
            Bound::LastAffected(at) if v > at => affected = false,
            _ => {}
        }
    }
    affected
}

/// The feed as of one fetch, indexed.
#[derive(Debug, Default)]
pub struct Snapshot {
    advisories: Vec<Advisory>,
    by_name: HashMap<String, Vec<Affected>>,
    by_sha256: HashMap<[u8; 32], u32>,
    /// Records read.
    pub records: usize,
    /// Records that block (PyPI, included, not withdrawn, not ignored).
    pub blocking: usize,
    /// Records that are not OSV JSON (skipped, counted).
    pub unreadable: usize,
}

impl Snapshot {
    /// Whether an advisory names `name` (its files' versions must then be read).
    pub fn names(&self, name: &Name) -> bool {
        self.by_name.contains_key(name.as_str())
    }

    /// The advisories that make every version of `name` blocked.
    pub fn whole(&self, name: &Name) -> Option<&Advisory> {
        self.by_name
            .get(name.as_str())?
            .iter()
            .find(|a| a.all)
            .map(|a| &self.advisories[a.advisory as usize])
    }

    /// The first advisory that affects `version` of `name`.
    pub fn version(&self, name: &Name, version: &Version) -> Option<&Advisory> {
        self.by_name
            .get(name.as_str())?
            .iter()
            .find(|a| a.matches(version))
            .map(|a| &self.advisories[a.advisory as usize])
    }

    /// The advisory that lists a file with this sha256 (hex, either case).
    pub fn file(&self, hex: &str) -> Option<&Advisory> {
        let digest = digest(hex)?;
        self.by_sha256
            .get(&digest)
            .map(|&i| &self.advisories[i as usize])
    }

    /// Every advisory about `name`, with what it affects, for `pipgate explain`.
    pub fn about(&self, name: &Name) -> Vec<(&Advisory, String)> {
        let Some(list) = self.by_name.get(name.as_str()) else {
            return Vec::new();
        };
        list.iter()
            .map(|a| {
                let what = if a.all {
                    "every version".to_owned()
                } else {
                    let mut parts: Vec<String> = Vec::new();
                    if !a.versions.is_empty() {
                        let v: Vec<String> = a.versions.iter().map(ToString::to_string).collect();
                        parts.push(format!("versions {}", v.join(", ")));
                    }
                    parts.extend(a.ranges.iter().map(|r| describe(r)));
                    parts.join("; ")
                };
                (&self.advisories[a.advisory as usize], what)
            })
            .collect()
    }
}

/// A range as `>=1.0, <2.0` pieces.
fn describe(events: &[Bound]) -> String {
    let parts: Vec<String> = events
        .iter()
        .map(|e| match e {
            Bound::Introduced(None) => "from the first version".to_owned(),
            Bound::Introduced(Some(v)) => format!("from {v}"),
            Bound::Fixed(v) => format!("fixed in {v}"),
            Bound::LastAffected(v) => format!("up to {v}"),
        })
        .collect();
    format!("range {}", parts.join(", "))
}

/// A lower-case or upper-case 64-digit hex sha256.
fn digest(hex: &str) -> Option<[u8; 32]> {
    let b = hex.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Builds a [`Snapshot`] one record at a time.
#[derive(Debug)]
pub struct Builder {
    include: Vec<String>,
    ignore: Vec<String>,
    snapshot: Snapshot,
}

impl Builder {
    pub(super) fn new(include: Vec<String>, ignore: Vec<String>) -> Builder {
        Builder {
            include,
            ignore,
            snapshot: Snapshot::default(),
        }
    }

    /// Adds one OSV record. One that is not OSV JSON is counted and skipped: a feed with one
    /// bad record still blocks everything else it lists.
    pub fn add(&mut self, json: &[u8]) {
        self.snapshot.records += 1;
        match serde_json::from_slice::<Vulnerability>(json) {
            Ok(record) => self.record(record),
            Err(_) => self.snapshot.unreadable += 1,
        }
    }

    fn record(&mut self, record: Vulnerability) {
        let include = self
            .include
            .iter()
            .position(|p| record.id.starts_with(p.as_str()));
        let (Some(include), None) = (include, &record.withdrawn) else {
            return;
        };
        if self.ignore.contains(&record.id) {
            return;
        }
        let s = &mut self.snapshot;
        let index = u32::try_from(s.advisories.len()).unwrap_or(u32::MAX);
        let mut blocked = false;
        for affected in record.affected.iter().flatten() {
            let Some(package) = &affected.package else {
                continue;
            };
            if package.ecosystem != Ecosystem::PyPI {
                continue;
            }
            let versions: Vec<Version> = affected
                .versions
                .iter()
                .flatten()
                .filter_map(|v| Version::from_str(v).ok())
                .collect();
            let ranges: Vec<Vec<Bound>> = affected
                .ranges
                .iter()
                .flatten()
                .filter(|r| matches!(r.range_type, RangeType::Ecosystem))
                .map(|r| bounds(&r.events))
                .filter(|b| !b.is_empty())
                .collect();
            let listed = affected.versions.as_ref().is_some_and(|v| !v.is_empty());
            let everything = ranges
                .iter()
                .any(|r| matches!(r.as_slice(), [Bound::Introduced(None)]));
            // Neither versions nor ranges: nothing narrows it, so every version.
            let all = everything || (!listed && affected.ranges.as_ref().is_none_or(Vec::is_empty));
            for hex in integrity(affected.database_specific.as_ref()) {
                if let Some(d) = digest(&hex) {
                    s.by_sha256.entry(d).or_insert(index);
                }
            }
            s.by_name
                .entry(normalize(&package.name))
                .or_default()
                .push(Affected {
                    advisory: index,
                    all,
                    versions,
                    ranges,
                });
            blocked = true;
        }
        if blocked {
            s.advisories.push(Advisory {
                include,
                id: record.id,
                summary: record
                    .summary
                    .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
                    .unwrap_or_default(),
            });
            s.blocking += 1;
        }
    }

    /// The snapshot.
    pub fn finish(self) -> Snapshot {
        let mut s = self.snapshot;
        s.by_name.shrink_to_fit();
        s.by_sha256.shrink_to_fit();
        s
    }
}

/// A range's events in PEP 440 order. An event whose version is not PEP 440 is dropped: a
/// dropped `introduced` covers less than the record says, a dropped `fixed` more (the
/// versions it lists are still matched).
fn bounds(events: &[Event]) -> Vec<Bound> {
    let mut out: Vec<Bound> = events
        .iter()
        .filter_map(|e| match e {
            Event::Introduced(v) if v == "0" => Some(Bound::Introduced(None)),
            Event::Introduced(v) => Version::from_str(v)
                .ok()
                .map(|v| Bound::Introduced(Some(v))),
            Event::Fixed(v) => Version::from_str(v).ok().map(Bound::Fixed),
            Event::LastAffected(v) => Version::from_str(v).ok().map(Bound::LastAffected),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| match (a.version(), b.version()) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    });
    out
}

/// The sha256 digests of `database_specific.indicators.package_integrity[].hashes` (the
/// malicious-packages project's records since 2026 list the files they saw). Other hashes in a
/// record (its sources' report digests, files inside the package) are not files' digests.
fn integrity(db: Option<&serde_json::Value>) -> Vec<String> {
    let Some(list) = db
        .and_then(|d| d.pointer("/indicators/package_integrity"))
        .and_then(serde_json::Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|f| f.pointer("/hashes/sha256")?.as_str())
        .map(str::to_ascii_lowercase)
        .collect()
}
