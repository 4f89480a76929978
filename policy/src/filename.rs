//! Which project a distribution file belongs to, from its file name alone.

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

/// The project a file name belongs to, and whether it is a PEP 658 `.metadata` file.
///
/// `None` when the name does not parse; callers on public hosts treat that as "cannot prove it
/// is not private" and refuse.
pub(crate) fn project_of(filename: &str) -> (Option<Name>, bool) {
    let (base, metadata) = match strip_suffix_ci(filename, METADATA) {
        Some(b) => (b, true),
        None => (filename, false),
    };
    (parse_project(base).map(Name::new), metadata)
}

fn parse_project(base: &str) -> Option<&str> {
    let raw = if let Some(stem) = strip_suffix_ci(base, ".whl") {
        // {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl; names never hold '-'.
        let parts: Vec<&str> = stem.split('-').collect();
        if !(5..=6).contains(&parts.len()) {
            return None;
        }
        parts[0]
    } else if let Some(stem) = strip_suffix_ci(base, ".egg") {
        // {name}-{version}(-{pyver}(-{platform})?)?.egg, names escaped with '_'.
        let (name, rest) = stem.split_once('-')?;
        if rest.is_empty() {
            return None;
        }
        name
    } else {
        let stem = SDIST_EXTS.iter().find_map(|e| strip_suffix_ci(base, e))?;
        // {name}-{version}: legacy names may contain '-', versions start with a digit and (in
        // all but pathological cases) hold none, so the last '-' before a digit separates them.
        let b = stem.as_bytes();
        let sep = (0..b.len())
            .rev()
            .find(|&i| b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit))?;
        &stem[..sep]
    };
    is_valid_name(raw).then_some(raw)
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let (head, tail) = (s.get(..cut)?, s.get(cut..)?);
    tail.eq_ignore_ascii_case(suffix).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proj(f: &str) -> Option<String> {
        project_of(f).0.map(|n| n.to_string())
    }

    #[test]
    fn wheels_sdists_eggs() {
        assert_eq!(
            proj("acme_lib-1.0-py3-none-any.whl").as_deref(),
            Some("acme-lib")
        );
        assert_eq!(
            proj("Acme.Lib-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl").as_deref(),
            Some("acme-lib")
        );
        assert_eq!(proj("acme-lib-1.0.tar.gz").as_deref(), Some("acme-lib"));
        assert_eq!(proj("acme_lib-1.0.tar.gz").as_deref(), Some("acme-lib"));
        assert_eq!(proj("acme-lib-1.0.ZIP").as_deref(), Some("acme-lib"));
        assert_eq!(proj("acme-lib-2.0rc1.tar.bz2").as_deref(), Some("acme-lib"));
        assert_eq!(proj("py-3to2-1.0.tar.gz").as_deref(), Some("py-3to2"));
        assert_eq!(proj("acme_lib-1.0-py2.7.egg").as_deref(), Some("acme-lib"));
        assert_eq!(proj("acme-lib-1.0.tgz").as_deref(), Some("acme-lib"));
    }

    #[test]
    fn metadata_suffix() {
        assert!(project_of("acme_lib-1.0-py3-none-any.whl.metadata").1);
        assert_eq!(
            proj("acme_lib-1.0-py3-none-any.whl.metadata").as_deref(),
            Some("acme-lib")
        );
        assert!(!project_of("acme_lib-1.0-py3-none-any.whl").1);
    }

    #[test]
    fn unparsable() {
        for f in [
            "",
            "acme.whl",
            "acme-1.0.whl",
            "setup.exe",
            "acme.tar.gz",
            "-1.0.tar.gz",
            "x.metadata",
            "a b-1.0.tar.gz",
        ] {
            assert_eq!(proj(f), None, "{f}");
        }
    }

    #[test]
    fn distribution_suffixes() {
        assert!(looks_like_distribution("a-1.0.tar.gz"));
        assert!(looks_like_distribution("a-1-py3-none-any.whl.metadata"));
        assert!(!looks_like_distribution("index.html"));
        assert!(!looks_like_distribution("json"));
    }
}
