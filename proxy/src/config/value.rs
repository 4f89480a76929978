//! One value's TOML form, both ways: how a setting is read from the file (with the form it
//! expects, for type errors) and how `config check` prints it back.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use pipgate_policy::{HostPattern, Role, Unlisted};
use toml_edit::Value;

/// Why a value was refused.
pub(super) enum Problem {
    /// The TOML type is not the one the key takes; the message is the setting's `EXPECTED`.
    Type,
    /// The type is right, the value is not.
    Invalid(String),
}

/// A value a config key can hold.
pub(super) trait Setting: Sized {
    /// The form the key takes, as the error for a value of the wrong type says it.
    const EXPECTED: &'static str;

    /// `base` is the config file's directory, which relative paths resolve against.
    fn read(v: &Value, base: &Path) -> Result<Self, Problem>;

    /// Writes the value as TOML.
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

fn string(v: &Value) -> Result<&str, Problem> {
    v.as_str().ok_or(Problem::Type)
}

/// Writes `s` as a TOML basic string (Rust's escapes are a subset of TOML's for these values).
pub(super) fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    write!(f, "{s:?}")
}

impl Setting for String {
    const EXPECTED: &'static str = "a string";

    fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
        string(v).map(str::to_owned)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        quoted(f, self)
    }
}

impl Setting for bool {
    const EXPECTED: &'static str = "true or false";

    fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
        v.as_bool().ok_or(Problem::Type)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Setting for PathBuf {
    const EXPECTED: &'static str = "a path like \"/etc/pipgate/ca.pem\"";

    /// Relative paths resolve against the config file's directory.
    fn read(v: &Value, base: &Path) -> Result<Self, Problem> {
        let path = Path::new(string(v)?);
        Ok(if path.is_absolute() {
            path.to_owned()
        } else {
            base.join(path)
        })
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        quoted(f, &self.display().to_string())
    }
}

impl Setting for Duration {
    const EXPECTED: &'static str = "a duration like \"5s\"";

    fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
        let s = string(v)?;
        humantime::parse_duration(s).map_err(|e| {
            Problem::Invalid(format!(
                "invalid duration {s:?} ({e}); expected one like \"5s\""
            ))
        })
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        quoted(f, &humantime::format_duration(*self).to_string())
    }
}

impl Setting for SocketAddr {
    const EXPECTED: &'static str = "an address like \"127.0.0.1:3128\"";

    fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
        let s = string(v)?;
        s.parse().map_err(|_| {
            Problem::Invalid(format!(
                "invalid address {s:?} (want ip:port, e.g. 127.0.0.1:3128)"
            ))
        })
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        quoted(f, &self.to_string())
    }
}

/// A listener address (`listen`, `admin_listen`, `transparent_listen`): `ip:port`, or
/// `host:port` (`"localhost:3128"`) resolved once, when the file is read. A name that resolves
/// to IPv4 and IPv6 binds its first IPv4 address (one listener; `localhost` is 127.0.0.1 then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ListenAddr(pub SocketAddr);

impl Setting for ListenAddr {
    const EXPECTED: &'static str = "an address like \"127.0.0.1:3128\" or \"localhost:3128\"";

    fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
        use std::net::ToSocketAddrs;
        let s = string(v)?;
        if let Ok(addr) = s.parse() {
            return Ok(ListenAddr(addr));
        }
        let invalid = || {
            Problem::Invalid(format!(
                "invalid address {s:?} (want host:port, e.g. 127.0.0.1:3128 or localhost:3128)"
            ))
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        if host.is_empty() {
            return Err(invalid());
        }
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| Problem::Invalid(format!("{s:?} does not resolve: {e}")))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .map(|a| ListenAddr(*a))
            .ok_or_else(|| Problem::Invalid(format!("{s:?} resolves to no address")))
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f)
    }
}

/// Whole numbers: `usize` and `u32` limits.
macro_rules! whole_number {
    ($($t:ty),*) => {$(
        impl Setting for $t {
            const EXPECTED: &'static str = "a whole number like 100";

            fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
                let n = v.as_integer().ok_or(Problem::Type)?;
                <$t>::try_from(n).map_err(|_| {
                    Problem::Invalid(format!("{n} is out of range (0 to {})", <$t>::MAX))
                })
            }

            fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{self}")
            }
        }
    )*};
}
whole_number!(usize, u32);

impl Setting for HostPattern {
    const EXPECTED: &'static str = "a host like \"github.com\" or \"*.github.com\"";

    fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
        HostPattern::parse(string(v)?).map_err(|e| Problem::Invalid(e.to_string()))
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        quoted(f, &self.to_string())
    }
}

impl Setting for IpNet {
    const EXPECTED: &'static str = "an address or CIDR like \"10.0.0.0/8\"";

    /// A bare address is the network of that one address.
    fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
        let s = string(v)?;
        s.parse()
            .ok()
            .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
            .ok_or_else(|| {
                Problem::Invalid(format!("{s:?} is not an address or CIDR (e.g. 10.0.0.0/8)"))
            })
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        quoted(f, &self.to_string())
    }
}

/// Keys that take one of a few words.
macro_rules! choice {
    ($t:ty, $expected:literal, { $($word:literal => $variant:path),+ $(,)? }) => {
        impl Setting for $t {
            const EXPECTED: &'static str = $expected;

            fn read(v: &Value, _: &Path) -> Result<Self, Problem> {
                match string(v)? {
                    $($word => Ok($variant),)+
                    other => Err(Problem::Invalid(format!(
                        "{other:?} is not one of {}", $expected
                    ))),
                }
            }

            fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let word = match self {
                    $($variant => $word,)+
                };
                quoted(f, word)
            }
        }
    };
}
choice!(Role, "\"public\" or \"private\"", {
    "public" => Role::Public,
    "private" => Role::Private,
});
choice!(Unlisted, "\"block\" or \"tunnel\"", {
    "block" => Unlisted::Block,
    "tunnel" => Unlisted::Tunnel,
});

/// Prints a value through its `Setting::write` (for `write!` arguments).
pub(super) struct Toml<'a, T>(pub &'a T);

impl<T: Setting> fmt::Display for Toml<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f)
    }
}

/// Prints a list of values as a TOML array.
pub(super) struct List<'a, T>(pub &'a [T]);

impl<T: Setting> fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            v.write(f)?;
        }
        f.write_str("]")
    }
}
