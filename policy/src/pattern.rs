//! Name patterns from the config (`acme-*`, `internal-tools`), matched on normalized names.

use crate::{name::normalize, Error, Name};

/// An exact project name or a glob with `*` (any run) and `?` (one character).
///
/// Invariant: the stored pattern is PEP 503-normalized, so `Acme_*` and `acme-*` are the same
/// pattern and match the same names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamePattern {
    normalized: String,
    glob: bool,
}

impl NamePattern {
    /// Parses and normalizes a pattern; refuses empty patterns and characters that cannot occur
    /// in a project name (a typo there would silently protect nothing).
    pub fn parse(raw: &str) -> Result<NamePattern, Error> {
        let bad = |reason| Error::BadPattern {
            pattern: raw.to_owned(),
            reason,
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(bad("empty pattern"));
        }
        if !trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*' | b'?'))
        {
            return Err(bad(
                "only letters, digits, '-', '_', '.', '*' and '?' are allowed",
            ));
        }
        let normalized = normalize(trimmed);
        if !normalized
            .bytes()
            .any(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
        {
            return Err(bad("pattern has no name characters"));
        }
        let glob = normalized.contains(['*', '?']);
        Ok(NamePattern { normalized, glob })
    }

    /// The normalized pattern text.
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &Name) -> bool {
        if self.glob {
            glob_match(self.normalized.as_bytes(), name.as_str().as_bytes())
        } else {
            self.normalized == name.as_str()
        }
    }
}

/// A pattern in the config: a string that [`NamePattern::parse`] accepts; a refused one is an
/// error at its own place in the file.
impl<'de> serde::Deserialize<'de> for NamePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NamePattern;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a name pattern like \"acme-*\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NamePattern, E> {
                NamePattern::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl std::fmt::Display for NamePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.normalized)
    }
}

/// Iterative glob matching with single-star backtracking: O(len(p) * len(s)) worst case, no
/// recursion, so a hostile name cannot blow the stack or the clock.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        NamePattern::parse(p).unwrap().matches(&Name::new(n))
    }

    #[test]
    fn exact_and_normalized() {
        assert!(m("internal-tools", "Internal_Tools"));
        assert!(m("Internal.Tools", "internal-tools"));
        assert!(!m("internal-tools", "internal-tools2"));
        assert_eq!(NamePattern::parse("Acme_*").unwrap().as_str(), "acme-*");
    }

    #[test]
    fn globs() {
        assert!(m("acme-*", "acme-lib"));
        assert!(m("acme-*", "ACME.lib"));
        assert!(m("Acme_*", "acme--lib"));
        assert!(!m("acme-*", "acme"));
        assert!(!m("acme-*", "acmelib"));
        assert!(m("acme*", "acme"));
        assert!(m("a?me-*", "acme-x"));
        assert!(m("*-internal", "foo-bar-internal"));
        assert!(!m("*-internal", "internal"));
        assert!(m("*", "anything"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
    }

    #[test]
    fn refuses_bad_patterns() {
        for p in ["", "  ", "acme lib", "acme/*", "acme%2d", "..", "-"] {
            assert!(NamePattern::parse(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn hostile_glob_is_fast() {
        let p = NamePattern::parse(&"*a".repeat(50)).unwrap();
        let n = Name::new(&"a".repeat(5000));
        let start = std::time::Instant::now();
        assert!(p.matches(&n));
        assert!(!p.matches(&Name::new(&format!("{}b", "a".repeat(5000)))));
        assert!(start.elapsed().as_secs() < 2);
    }
}
