//! PEP 503 project names: the only form in which names are ever compared.

use std::fmt;

/// A PEP 503-normalized project name.
///
/// Invariant: the inner string is the output of [`normalize`], so two `Name`s are equal exactly
/// when pip would treat them as the same project.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Name(String);

impl Name {
    /// Normalizes `raw` (`re.sub(r"[-_.]+", "-", raw).lower()`).
    pub fn new(raw: &str) -> Name {
        Name(normalize(raw))
    }

    /// Re-normalizes into this name's buffer: hot loops (root listings of hundreds of
    /// thousands of names) reuse one allocation.
    pub(crate) fn set(&mut self, raw: &str) {
        self.0.clear();
        normalize_into(raw, &mut self.0);
    }

    /// The normalized name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a name PEP 508 accepts (ASCII letters, digits and separators, starting
    /// and ending with a letter or digit). Anything else cannot be a real project.
    pub fn is_valid(&self) -> bool {
        is_valid_name(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// PEP 503 normalization: runs of `-`, `_` and `.` become one `-`, and ASCII letters are
/// lower-cased.
///
/// Only ASCII is lower-cased because Python's `str.lower()` on a valid project name (which is
/// ASCII by PEP 508) has the same effect; non-ASCII input is never a valid name and is kept as is
/// so that it cannot collide with a real one.
pub fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    normalize_into(raw, &mut out);
    out
}

fn normalize_into(raw: &str, out: &mut String) {
    let mut in_sep = false;
    for c in raw.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            in_sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
}

/// PEP 508 name syntax, checked on an already normalized or raw name.
pub(crate) fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() => b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_pep_503() {
        for raw in [
            "Acme_Lib",
            "acme.lib",
            "ACME--lib",
            "acme-_.lib",
            "acme-lib",
        ] {
            assert_eq!(normalize(raw), "acme-lib", "{raw}");
        }
        assert_eq!(normalize("repoze.lru"), "repoze-lru");
        assert_eq!(normalize("a__b"), "a-b");
        assert_eq!(Name::new("Foo.Bar").as_str(), "foo-bar");
        assert_eq!(Name::new("Foo").to_string(), "foo");
    }

    #[test]
    fn non_ascii_is_not_folded() {
        // U+212A KELVIN SIGN lower-cases to 'k' in Unicode; it must not alias "k".
        assert_ne!(normalize("\u{212a}"), "k");
        assert!(!Name::new("\u{212a}").is_valid());
    }

    #[test]
    fn validity() {
        assert!(Name::new("a").is_valid());
        assert!(Name::new("acme-lib2").is_valid());
        assert!(!Name::new("").is_valid());
        assert!(!Name::new("-a").is_valid());
        assert!(!Name::new("a b").is_valid());
        assert!(!Name::new("a/b").is_valid());
    }
}
