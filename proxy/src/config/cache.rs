//! `[cache]`: where downloaded files are kept, and how much of them.
//!
//! ```toml
//! [cache]
//! dir = "/var/cache/pipgate"   # off unless set (the embedded default: $XDG_CACHE_HOME/pipgate)
//! max_size = "20GiB"           # least-recently-used files are evicted beyond it
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use toml_edit::Value;

use super::section::Section;
use super::value::{quoted, Problem, Setting, Toml};

/// The file cache's settings, read at start (a reload keeps the cache it started with).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// None: no cache, every download goes upstream.
    pub dir: Option<PathBuf>,
    /// Bytes of files kept; beyond it the least recently used are evicted.
    pub max_size: ByteSize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            dir: None,
            max_size: ByteSize(10 * GIB),
        }
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

impl CacheSettings {
    pub(super) fn read(s: &mut Section<'_>) -> CacheSettings {
        let mut c = CacheSettings {
            dir: s.get("dir"),
            ..CacheSettings::default()
        };
        s.set("max_size", &mut c.max_size);
        c
    }

    /// The embedded default's: the user's cache directory.
    pub(super) fn embedded() -> CacheSettings {
        CacheSettings {
            dir: dirs::cache_dir().map(|d| d.join("pipgate")),
            ..CacheSettings::default()
        }
    }
}

impl fmt::Display for CacheSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[cache]")?;
        match &self.dir {
            Some(dir) => writeln!(f, "dir = {}", Toml(dir))?,
            None => writeln!(f, "# dir unset: no cache")?,
        }
        writeln!(f, "max_size = {}", Toml(&self.max_size))
    }
}

/// A size in bytes, written `"20GiB"`, `"512MiB"`, `"64KiB"` (or `GB`/`MB`/`KB`, powers of
/// 1000) or as a whole number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    fn parse(s: &str) -> Option<ByteSize> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let unit = match unit.trim() {
            "" | "B" => 1,
            "KiB" => KIB,
            "MiB" => MIB,
            "GiB" => GIB,
            "TiB" => 1024 * GIB,
            "KB" | "kB" => 1000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            _ => return None,
        };
        n.checked_mul(unit).map(ByteSize)
    }
}

impl Setting for ByteSize {
    const EXPECTED: &'static str = "a size like \"20GiB\" or \"512MiB\"";

    fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
        if let Some(n) = v.as_integer() {
            return u64::try_from(n)
                .map(ByteSize)
                .map_err(|_| Problem::Invalid(format!("{n} is not a size")));
        }
        let s = v.as_str().ok_or(Problem::Type)?;
        ByteSize::parse(s).ok_or_else(|| {
            Problem::Invalid(format!(
                "invalid size {s:?}; expected one like \"20GiB\" or \"512MiB\""
            ))
        })
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, size) in [
            ("TiB", 1024 * GIB),
            ("GiB", GIB),
            ("MiB", MIB),
            ("KiB", KIB),
        ] {
            if n >= size && n.is_multiple_of(size) {
                return quoted(f, &format!("{}{unit}", n / size));
            }
        }
        write!(f, "{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let p = |s| ByteSize::parse(s).map(|b| b.0);
        assert_eq!(p("20GiB"), Some(20 * GIB));
        assert_eq!(p("512 MiB"), Some(512 * MIB));
        assert_eq!(p("1000"), Some(1000));
        assert_eq!(p("3MB"), Some(3_000_000));
        for bad in ["", "GiB", "1.5GiB", "-1", "1 parsec", "99999999999999TiB"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
