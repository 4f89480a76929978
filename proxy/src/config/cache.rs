//! `[cache]`: where downloaded files are kept, and how much of them.
//!
//! ```toml
//! [cache]
//! dir = "/var/cache/pipgate"   # off unless set (the embedded default: $XDG_CACHE_HOME/pipgate)
//! max_size = "20GiB"           # least-recently-used files are evicted beyond it
//! pages = "revalidate"         # or "ttl" (served page_ttl without asking), or "off"
//! page_ttl = "10m"
//! stale_if_error = "24h"       # a page this old is served when upstream fails
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::Value;

use super::section::Section;
use super::value::{quoted, Problem, Setting, Toml};

/// The cache's settings. `dir` and `max_size` are read at start (a reload keeps the cache it
/// started with); the page keys apply on reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// None: no cache, every download goes upstream.
    pub dir: Option<PathBuf>,
    /// Bytes of files kept; beyond it the least recently used are evicted.
    pub max_size: ByteSize,
    /// Whether and how index pages are cached.
    pub pages: PageCaching,
    /// How long `pages = "ttl"` serves a stored page without asking upstream.
    pub page_ttl: Duration,
    /// How old a stored page may be and still be served when upstream fails.
    pub stale_if_error: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            dir: None,
            max_size: ByteSize(10 * GIB),
            pages: PageCaching::Revalidate,
            page_ttl: Duration::from_secs(600),
            stale_if_error: Duration::from_secs(24 * 3600),
        }
    }
}

/// `pages`: how a stored page is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCaching {
    /// Every request asks upstream with the stored page's validators; a `304` is answered
    /// from the stored page.
    Revalidate,
    /// A page stored less than `page_ttl` ago is answered without asking upstream.
    Ttl,
    /// Pages are not stored.
    Off,
}

impl Setting for PageCaching {
    const EXPECTED: &'static str = "\"revalidate\", \"ttl\" or \"off\"";

    fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
        match v.as_str() {
            Some("revalidate") => Ok(PageCaching::Revalidate),
            Some("ttl") => Ok(PageCaching::Ttl),
            Some("off") => Ok(PageCaching::Off),
            Some(other) => Err(Problem::Invalid(format!(
                "unknown pages {other:?}; expected {}",
                Self::EXPECTED
            ))),
            None => Err(Problem::Type),
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageCaching::Revalidate => "\"revalidate\"",
            PageCaching::Ttl => "\"ttl\"",
            PageCaching::Off => "\"off\"",
        })
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
        s.set("pages", &mut c.pages);
        s.set("page_ttl", &mut c.page_ttl);
        s.set("stale_if_error", &mut c.stale_if_error);
        c
    }

    /// Whether a reload changing `self` to `new` needs a restart to apply (the directory and
    /// its size; the page keys apply at once).
    pub fn needs_restart(&self, new: &CacheSettings) -> bool {
        self.dir != new.dir || self.max_size != new.max_size
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
        writeln!(f, "max_size = {}", Toml(&self.max_size))?;
        writeln!(f, "pages = {}", Toml(&self.pages))?;
        writeln!(f, "page_ttl = {}", Toml(&self.page_ttl))?;
        writeln!(f, "stale_if_error = {}", Toml(&self.stale_if_error))
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
