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

    /// Sets this name to `raw` normalized if `raw` is a valid name as written (see
    /// [`is_valid_name`]): the root listing's hot loop, in passes the compiler vectorizes (a
    /// byte-at-a-time loop took ~20 instructions a byte, callgrind). Leaves it empty and
    /// returns false otherwise.
    pub(crate) fn set_if_valid(&mut self, raw: &str) -> bool {
        let bytes = raw.as_bytes();
        let is_sep = |b: u8| (b == b'-') | (b == b'_') | (b == b'.');
        // No early exit, so it vectorizes.
        let bad = bytes.iter().fold(0u8, |bad, &b| {
            bad | u8::from(!(b.is_ascii_alphanumeric() | is_sep(b)))
        });
        let ends = matches!(
            (bytes.first(), bytes.last()),
            (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric()
        );
        self.0.clear();
        if bad != 0 || !ends {
            return false;
        }
        let mut out = std::mem::take(&mut self.0).into_bytes();
        out.extend_from_slice(bytes);
        out.make_ascii_lowercase();
        for b in out.iter_mut() {
            *b = if is_sep(*b) { b'-' } else { *b };
        }
        let runs = out.windows(2).fold(0u8, |runs, w| {
            runs | u8::from((w[0] == b'-') & (w[1] == b'-'))
        });
        if runs != 0 {
            // A run of separators is one dash (`a__b`): rare, so not worth a faster path.
            out.dedup_by(|b, a| *a == b'-' && *b == b'-');
        }
        // `out` is the ASCII it was given, lower-cased, with dashes: the conversion cannot
        // fail (it would leave the name empty).
        self.0 = String::from_utf8(out).unwrap_or_default();
        true
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
    if raw.is_ascii() {
        return normalize_ascii_into(raw, out);
    }
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

/// [`normalize_into`] for ASCII (every valid name, and the hundreds of thousands of a root
/// listing): the runs between separators are copied whole and lower-cased in place, instead of
/// a character at a time (callgrind: a third of a root listing's rewrite went to the latter).
fn normalize_ascii_into(raw: &str, out: &mut String) {
    let is_sep = |b: &u8| matches!(b, b'-' | b'_' | b'.');
    let start = out.len();
    let bytes = raw.as_bytes();
    let (mut run, mut i) = (0, 0);
    while i < bytes.len() {
        if is_sep(&bytes[i]) {
            // ASCII: every offset is a character boundary.
            out.push_str(raw.get(run..i).unwrap_or_default());
            out.push('-');
            i += bytes[i..].iter().take_while(|b| is_sep(b)).count();
            run = i;
        } else {
            i += 1;
        }
    }
    out.push_str(raw.get(run..).unwrap_or_default());
    if let Some(new) = out.get_mut(start..) {
        new.make_ascii_lowercase();
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

    proptest::proptest! {
        /// The ASCII fast path writes what the character-at-a-time path does, after whatever
        /// the buffer held.
        #[test]
        fn the_ascii_path_is_the_general_one(raw in "[-_.a-zA-Z0-9 ]{0,12}", prefix in "[a-z]{0,3}") {
            let mut general = prefix.clone();
            let mut in_sep = false;
            for c in raw.chars() {
                if matches!(c, '-' | '_' | '.') {
                    if !in_sep {
                        general.push('-');
                    }
                    in_sep = true;
                } else {
                    in_sep = false;
                    general.push(c.to_ascii_lowercase());
                }
            }
            let mut fast = prefix;
            normalize_ascii_into(&raw, &mut fast);
            proptest::prop_assert_eq!(fast, general);
        }
    }

    proptest::proptest! {
        /// The root listing's one pass is validity, then normalization.
        #[test]
        fn set_if_valid_is_validity_then_normalization(raw in "[-_.a-zA-Z0-9 \u{e9}\u{212a}]{0,10}") {
            let mut name = Name::new("previous");
            let ok = name.set_if_valid(&raw);
            proptest::prop_assert_eq!(ok, is_valid_name(&raw));
            if ok {
                proptest::prop_assert_eq!(name.as_str(), normalize(&raw));
            }
        }
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
