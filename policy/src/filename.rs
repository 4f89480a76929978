//! Which projects a distribution file belongs to, from its file name alone.
//!
//! A file is attributed to every project its name can be read as, not only the likeliest one:
//! `corp-only-50.0-1.tar.gz` is `corp-only-50.0` version `1` to a naive split at the last dash
//! before a digit, but pip reads it as `corp-only` 50.0.post1 (it splits at the first dash whose
//! prefix is the project it looks for). Callers treat a file as private when any of its
//! readings is, so no reading a client may take can slip past the name rules.

use crate::{name::is_valid_name, Name};

/// Source-distribution suffixes pip and setuptools have produced, lower-case.
const SDIST_EXTS: &[&str] = &[
    ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar",
];

/// Suffix of PEP 658 metadata files, fetched beside the distribution.
const METADATA: &str = ".metadata";

/// Whether a path's last segment looks like a distribution (or its metadata), so that a request
/// for it on an index host is a file download rather than an unknown page.
pub(crate) fn looks_like_distribution(filename: &str) -> bool {
    let base = strip_suffix_ci(filename, METADATA).unwrap_or(filename);
    strip_suffix_ci(base, ".whl").is_some()
        || strip_suffix_ci(base, ".egg").is_some()
        || SDIST_EXTS
            .iter()
            .any(|e| strip_suffix_ci(base, e).is_some())
}

/// Every project a file name can be read as, the likeliest first, and whether it is a PEP 658
/// `.metadata` file.
///
/// Empty when the name does not parse, or cannot be read unambiguously; callers on public hosts
/// treat that as "cannot prove it is not private" and refuse.
pub(crate) fn projects_of(filename: &str) -> (Vec<Name>, bool) {
    let (base, metadata) = match strip_suffix_ci(filename, METADATA) {
        Some(b) => (b, true),
        None => (filename, false),
    };
    (readings(base), metadata)
}

fn readings(base: &str) -> Vec<Name> {
    if let Some(stem) = strip_suffix_ci(base, ".whl") {
        // {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl. Every installer takes the
        // name as the first dash-separated part (pip's regex `(?P<name>.+?)-` included, whatever
        // the number of parts), so a wheel has exactly one reading.
        let parts: Vec<&str> = stem.split('-').collect();
        return match parts.first() {
            Some(name) if (5..=6).contains(&parts.len()) && is_valid_name(name) => {
                vec![Name::new(name)]
            }
            _ => Vec::new(),
        };
    }
    let stem = strip_suffix_ci(base, ".egg")
        .or_else(|| SDIST_EXTS.iter().find_map(|e| strip_suffix_ci(base, e)));
    match stem {
        Some(stem) => split_readings(stem),
        None => Vec::new(),
    }
}

/// The readings of `{name}-{version}` (sdists and eggs): legacy names hold dashes and versions
/// may too (`50.0-1` is a post-release), so every separator may end the name. pip splits at the
/// first `-` whose prefix normalizes to the project it wants; pip 9 and older matched the prefix
/// before a `-` *or* `_` (they turned `_` into `-` first), and searched for the match anywhere
/// in the name when its start was not a name character. So: every `-` and `_` is a split point,
/// and a name whose part before the last one holds anything no project name can hold has no
/// unambiguous reading at all.
fn split_readings(stem: &str) -> Vec<Name> {
    let is_sep = |b: u8| b == b'-' || b == b'_';
    let bytes = stem.as_bytes();
    // A split needs something after it, the version.
    let splits: Vec<usize> = (1..bytes.len().saturating_sub(1))
        .filter(|&i| is_sep(bytes[i]))
        .collect();
    let Some(&last) = splits.last() else {
        return Vec::new();
    };
    let name_chars = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !bytes[..last].iter().all(name_chars) {
        return Vec::new();
    }
    // The likeliest reading first: the last dash before a digit (versions start with one).
    let likeliest = (0..bytes.len())
        .rev()
        .find(|&i| bytes[i] == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit));
    let mut out: Vec<Name> = Vec::with_capacity(splits.len());
    for at in likeliest.into_iter().chain(splits) {
        // A prefix ending in a separator run (`a--1.0`) normalizes to a name no project has.
        let prefix = &stem[..at];
        if is_valid_name(prefix) {
            let name = Name::new(prefix);
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The version part of `filename` (a distribution, not its `.metadata`) when read as a file
/// of `project`: a wheel's second part, or what follows the first separator whose prefix is
/// `project` in an sdist or egg (an egg's `-pyX.Y` tag is not part of it).
pub(crate) fn version_of<'a>(filename: &'a str, project: &Name) -> Option<&'a str> {
    if let Some(stem) = strip_suffix_ci(filename, ".whl") {
        let mut parts = stem.split('-');
        let name = parts.next()?;
        return (Name::new(name) == *project)
            .then(|| parts.next())
            .flatten();
    }
    let egg = strip_suffix_ci(filename, ".egg");
    let stem = egg.or_else(|| SDIST_EXTS.iter().find_map(|e| strip_suffix_ci(filename, e)))?;
    let at = stem
        .char_indices()
        .filter(|&(_, c)| c == '-' || c == '_')
        .map(|(i, _)| i)
        .find(|&i| i > 0 && Name::new(&stem[..i]) == *project)?;
    let version = &stem[at + 1..];
    let version = match egg {
        Some(_) => version.rsplit_once("-py").map_or(version, |(v, _)| v),
        None => version,
    };
    (!version.is_empty()).then_some(version)
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let (head, tail) = (s.get(..cut)?, s.get(cut..)?);
    tail.eq_ignore_ascii_case(suffix).then_some(head)
}

#[cfg(test)]
mod tests;
