//! A snapshot of an OSV advisory feed, indexed for the page path: the records that block,
//! by PEP 503 name (versions and `ECOSYSTEM` ranges in PEP 440 order) and by file sha256.
//! Built record by record from their JSON (the proxy reads the zip or directory and hands each
//! record over), so a dump of 100k records is never held whole.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::str::FromStr;

use osv::schema::{Ecosystem, Event, RangeType, Vulnerability};
use pep440_rs::Version;

use crate::{normalize, Name};

/// One advisory that blocks: its id and summary, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisory {
    /// Its id then its one-line summary, in one allocation (a feed has 100k of them).
    text: Box<str>,
    /// Where the id ends in `text`.
    id_len: u32,
    /// Which `include` prefix let it in (its position), for the blocks counted by prefix.
    pub(super) include: u16,
}

impl Advisory {
    fn new(id: &str, summary: &str, include: u16) -> Advisory {
        Advisory {
            text: format!("{id}{summary}").into_boxed_str(),
            // A record comes from a buffer of at most 16 MiB.
            id_len: u32::try_from(id.len()).unwrap_or(u32::MAX),
            include,
        }
    }

    fn split(&self) -> (&str, &str) {
        let at = usize::try_from(self.id_len).unwrap_or(usize::MAX);
        self.text.split_at_checked(at).unwrap_or((&self.text, ""))
    }

    /// `MAL-2026-1234`.
    pub fn id(&self) -> &str {
        self.split().0
    }

    /// Its one-line summary (may be empty).
    pub fn summary(&self) -> &str {
        self.split().1
    }

    /// `MAL-2026-1234: Malicious code in acme (PyPI)`.
    pub fn label(&self) -> String {
        if self.summary().is_empty() {
            self.id().to_owned()
        } else {
            format!("{}: {}", self.id(), self.summary())
        }
    }

    /// What a match is called: malicious for `MAL-` records, else an advisory.
    pub(super) fn verb(&self) -> &'static str {
        if self.id().starts_with("MAL-") {
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

/// What one advisory says of one project. Compact: a feed has 100k of them, nearly all
/// listing a few versions.
#[derive(Debug, Clone)]
struct Affected {
    /// Index into [`Snapshot::advisories`].
    advisory: u32,
    /// Every version: `introduced: "0"` and nothing after it (or no versions and no ranges).
    all: bool,
    /// The listed versions in [`canonical`] form, one per line.
    versions: Box<str>,
    /// Each range's events, sorted by version (`"0"` first).
    ranges: Box<[Box<[Bound]>]>,
}

impl Affected {
    /// Whether `v` (with `c`, its canonical form, made when first needed) is affected.
    fn matches(&self, v: &Version, c: &mut Option<String>) -> bool {
        if self.all || self.ranges.iter().any(|r| in_range(r, v)) {
            return true;
        }
        if self.versions.is_empty() {
            return false;
        }
        let c = c.get_or_insert_with(|| canonical(v));
        self.versions.lines().any(|listed| listed == c.as_str())
    }
}

/// A name's advisories: nearly always one, held inline (no allocation for the list).
#[derive(Debug, Clone)]
enum Listing {
    One(Affected),
    Many(Vec<Affected>),
}

impl Listing {
    fn iter(&self) -> std::slice::Iter<'_, Affected> {
        match self {
            Listing::One(a) => std::slice::from_ref(a).iter(),
            Listing::Many(v) => v.iter(),
        }
    }

    fn push(&mut self, a: Affected) {
        match self {
            Listing::Many(v) => v.push(a),
            Listing::One(first) => *self = Listing::Many(vec![first.clone(), a]),
        }
    }
}

/// A version as one string that two versions share exactly when PEP 440 calls them equal:
/// normalized, its release zero-padded or trimmed to its last non-zero part but at least two
/// (`1`, `1.0` and `1.0.0` are all `1.0`; `explain` shows this form).
fn canonical(v: &Version) -> String {
    let release = v.release();
    let keep = release.iter().rposition(|&n| n != 0).map_or(0, |i| i + 1);
    let parts: Vec<u64> = (0..keep.max(2))
        .map(|i| release.get(i).copied().unwrap_or(0))
        .collect();
    v.clone().with_release(parts).to_string()
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
    by_name: HashMap<Box<str>, Listing>,
    by_sha256: HashMap<[u8; 32], u32, DigestHash>,
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
        let mut c = None;
        self.by_name
            .get(name.as_str())?
            .iter()
            .find(|a| a.matches(version, &mut c))
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
                        let v: Vec<&str> = a.versions.lines().collect();
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

/// A lower-case or upper-case 64-digit hex sha256. Every file of every public page is looked
/// up by its digest: decoded without an early exit, which the compiler keeps branch-free.
fn digest(hex: &str) -> Option<[u8; 32]> {
    let b: &[u8; 64] = hex.as_bytes().try_into().ok()?;
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (hi, lo) = (nibble(pair[0]), nibble(pair[1]));
        bad |= (hi | lo) & 0xf0;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad == 0).then_some(out)
}

/// A hex digit's value, or 0xff.
fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0xff,
    }
}

/// Hashes a sha256 digest by its first eight bytes: the digests are already uniformly
/// distributed, and SipHash over 32 bytes cost more than the rest of a page's lookup.
#[derive(Clone, Copy, Debug, Default)]
struct DigestHash;

impl std::hash::BuildHasher for DigestHash {
    type Hasher = FirstEight;
    fn build_hasher(&self) -> FirstEight {
        FirstEight(0)
    }
}

/// See [`DigestHash`].
#[derive(Debug)]
struct FirstEight(u64);

impl std::hash::Hasher for FirstEight {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // An array hashes its elements after its length (a usize, through write_usize).
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
    fn write_usize(&mut self, _: usize) {}
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
        let include = u16::try_from(include).unwrap_or(u16::MAX);
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
            let versions: Vec<String> = affected
                .versions
                .iter()
                .flatten()
                .filter_map(|v| Version::from_str(v).ok())
                .map(|v| canonical(&v))
                .collect();
            let ranges: Vec<Box<[Bound]>> = affected
                .ranges
                .iter()
                .flatten()
                .filter(|r| matches!(r.range_type, RangeType::Ecosystem))
                .map(|r| bounds(&r.events))
                .filter(|b| !b.is_empty())
                .map(Vec::into_boxed_slice)
                .collect();
            let listed = affected.versions.as_ref().is_some_and(|v| !v.is_empty());
            let everything = ranges
                .iter()
                .any(|r| matches!(&**r, [Bound::Introduced(None)]));
            // Neither versions nor ranges: nothing narrows it, so every version.
            let all = everything || (!listed && affected.ranges.as_ref().is_none_or(Vec::is_empty));
            for hex in integrity(affected.database_specific.as_ref()) {
                if let Some(d) = digest(&hex) {
                    s.by_sha256.entry(d).or_insert(index);
                }
            }
            let a = Affected {
                advisory: index,
                all,
                versions: versions.join("\n").into_boxed_str(),
                ranges: ranges.into_boxed_slice(),
            };
            match s.by_name.entry(normalize(&package.name).into_boxed_str()) {
                Entry::Occupied(mut e) => e.get_mut().push(a),
                Entry::Vacant(e) => {
                    e.insert(Listing::One(a));
                }
            }
            blocked = true;
        }
        if blocked {
            let summary = record
                .summary
                .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            s.advisories
                .push(Advisory::new(&record.id, &summary, include));
            s.blocking += 1;
        }
    }

    /// The snapshot.
    pub fn finish(self) -> Snapshot {
        self.snapshot
    }

    /// Room for about `records` more records (a zip says how many entries it has): the indexes
    /// are sized once instead of doubling, which at 100k records is most of the peak memory.
    pub fn reserve(&mut self, records: usize) {
        let s = &mut self.snapshot;
        s.advisories.reserve(records);
        s.by_name.reserve(records);
        // The malicious-packages records list about two files each.
        s.by_sha256.reserve(2 * records);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_decode_in_either_case_and_refuse_anything_else() {
        let lower = "c8784cf0aa8fa13a43614fbd6d51902feeecafdc06fc4db2695fd2572db66db8";
        let d = digest(lower).unwrap();
        assert_eq!(d[0], 0xc8);
        assert_eq!(d[31], 0xb8);
        assert_eq!(digest(&lower.to_uppercase()), Some(d));
        for bad in [
            &lower[1..],
            "g".repeat(64).as_str(),
            &format!("{}z", &lower[..63]),
        ] {
            assert_eq!(digest(bad), None, "{bad}");
        }
        // Digests that share their first eight bytes are still told apart.
        let mut map: HashMap<[u8; 32], u32, DigestHash> = HashMap::default();
        let mut other = d;
        other[31] ^= 1;
        map.insert(d, 1);
        map.insert(other, 2);
        assert_eq!((map.get(&d), map.get(&other)), (Some(&1), Some(&2)));
    }
}
