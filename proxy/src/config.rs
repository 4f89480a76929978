//! The configuration file: TOML parsed once into typed settings, or the embedded default.
//!
//! Every value that needs more than serde (addresses, durations, URLs, patterns, CIDRs) is kept
//! `Spanned` while parsing so that a bad value is reported with its key and line.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use pipgate_policy::{Index, NamePattern, Network, OnPrivateIndexError, Policy, Role, Rules};
use toml::Spanned;

mod raw;
pub(crate) use raw::split_host_port;
#[cfg(test)]
mod tests;

/// The default listen address: loopback only, the port Squid made familiar.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3128";

/// A configuration error, naming the key and (when it came from a file) the line.
#[derive(Debug)]
pub struct ConfigError {
    /// The file, when there is one.
    pub file: Option<PathBuf>,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `upstream.connect_timeout`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("config error")?;
        if let Some(file) = &self.file {
            write!(f, " in {}", file.display())?;
        }
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where the CA lives, and whether it may be created.
#[derive(Clone, Debug)]
pub struct CaSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// True for the embedded default (the user's data dir): a missing pair is created.
    pub create_if_missing: bool,
}

/// How pipgate reaches upstream servers.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    pub extra_roots: Vec<PathBuf>,
    pub connect_timeout: Duration,
    /// Per-request timeout for the response head from upstream.
    pub response_timeout: Duration,
    /// A body that stalls longer than this between two chunks is cut.
    pub idle_timeout: Duration,
    /// "host:port" (host lower-cased) -> address dialled instead of DNS.
    pub resolve: HashMap<(String, u16), SocketAddr>,
}

/// Limits at the edge; every one has a documented default.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Time a client has to send a complete request head (slowloris).
    pub header_timeout: Duration,
    /// A client connection with no request in flight for this long is closed.
    pub client_idle_timeout: Duration,
    /// Largest decoded index page pipgate will rewrite; larger fails closed (502).
    pub max_page_bytes: usize,
    /// Bytes all pages read whole may hold at once (see `budget.rs`); past it, 503.
    pub max_buffered_page_bytes: usize,
    pub h2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_client: 512,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            header_timeout: Duration::from_secs(10),
            client_idle_timeout: Duration::from_secs(120),
            // PyPI's /simple/ root is tens of MB; a project page is rarely over 5 MB.
            max_page_bytes: 64 * 1024 * 1024,
            // Four of the largest pages at once, or a few hundred legacy JSON documents.
            max_buffered_page_bytes: 256 * 1024 * 1024,
            h2_max_concurrent_streams: 100,
        }
    }
}

/// Who may use the proxy.
#[derive(Clone, Debug, Default)]
pub struct AccessSettings {
    /// Empty means everyone who can reach the listener.
    pub allow_clients: Vec<IpNet>,
    /// File of `user:$argon2...` lines; None means no authentication.
    pub credentials: Option<PathBuf>,
}

/// How long private-index answers are remembered.
#[derive(Clone, Copy, Debug)]
pub struct LookupSettings {
    pub ttl: Duration,
    pub negative_ttl: Duration,
}

/// How many threads serve connections (`threads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// This many; 1 (the default) runs every connection on one thread.
    Count(std::num::NonZeroUsize),
    /// One per CPU the process may use (`"auto"`).
    Auto,
}

impl Threads {
    /// The number of threads to start.
    pub fn count(self) -> usize {
        match self {
            Threads::Count(n) => n.get(),
            Threads::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl fmt::Display for Threads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threads::Count(n) => write!(f, "{n}"),
            Threads::Auto => f.write_str("\"auto\""),
        }
    }
}

/// The whole effective configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from; None for the embedded default.
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub transparent_listen: Option<SocketAddr>,
    /// Read at start only, like the listen addresses.
    pub threads: Threads,
    pub ca: CaSettings,
    pub upstream: UpstreamSettings,
    /// Hosts that are not indexes, and how they may be reached (`[network]`).
    pub network: Network,
    pub limits: Limits,
    pub access: AccessSettings,
    pub lookups: LookupSettings,
    pub policy: Policy,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_owned()),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base, Some(path)).map_err(|mut e| {
            e.file = Some(path.to_owned());
            e
        })
    }

    /// The embedded default: pypi.org on 127.0.0.1:3128, the CA in the user's data directory.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::parse("", Path::new("."), None)
    }

    /// Parses TOML text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path, source: Option<&Path>) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| from_toml(text, &e))?;
        raw.build(text, base, source)
    }
}

/// The user's data directory for the embedded default (`$XDG_DATA_HOME/pipgate`).
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("pipgate")
}

fn from_toml(text: &str, e: &toml::de::Error) -> ConfigError {
    // toml's message is multi-line (it quotes the source); keep its first useful line.
    let message = e
        .message()
        .lines()
        .next()
        .unwrap_or("invalid TOML")
        .to_owned();
    let key = unknown_field(&message).unwrap_or_default();
    ConfigError {
        file: None,
        line: e.span().map(|s| line_of(text, s.start)),
        key,
        message,
    }
}

/// Pulls the field name out of serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Context for turning spanned raw values into typed ones with good errors.
pub(crate) struct Ctx<'a> {
    pub text: &'a str,
    pub base: &'a Path,
}

impl Ctx<'_> {
    pub fn err(&self, key: &str, span: std::ops::Range<usize>, message: String) -> ConfigError {
        ConfigError {
            file: None,
            line: Some(line_of(self.text, span.start)),
            key: key.to_owned(),
            message,
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }

    pub fn duration(&self, key: &str, v: &Spanned<String>) -> Result<Duration, ConfigError> {
        humantime::parse_duration(v.get_ref()).map_err(|e| {
            self.err(
                key,
                v.span(),
                format!("invalid duration {:?}: {e}", v.get_ref()),
            )
        })
    }

    pub fn threads(&self, v: &Spanned<toml::Value>) -> Result<Threads, ConfigError> {
        match v.get_ref() {
            toml::Value::String(s) if s == "auto" => Ok(Threads::Auto),
            toml::Value::Integer(n) => usize::try_from(*n)
                .ok()
                .and_then(std::num::NonZeroUsize::new)
                .map(Threads::Count)
                .ok_or_else(|| {
                    self.err("threads", v.span(), format!("{n} threads: want 1 or more"))
                }),
            other => Err(self.err(
                "threads",
                v.span(),
                format!("{other} is not a thread count (want a number, e.g. 1, or \"auto\")"),
            )),
        }
    }

    pub fn socket_addr(&self, key: &str, v: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
        v.get_ref().parse().map_err(|_| {
            self.err(
                key,
                v.span(),
                format!(
                    "invalid address {:?} (want ip:port, e.g. 127.0.0.1:3128)",
                    v.get_ref()
                ),
            )
        })
    }

    pub fn patterns(
        &self,
        key: &str,
        v: &[Spanned<String>],
    ) -> Result<Vec<NamePattern>, ConfigError> {
        v.iter()
            .map(|p| {
                NamePattern::parse(p.get_ref()).map_err(|e| self.err(key, p.span(), e.to_string()))
            })
            .collect()
    }
}

/// Builds the policy from indexes and rules, defaulting to public PyPI.
pub(crate) fn default_indexes() -> Result<Vec<Index>, pipgate_policy::Error> {
    Ok(vec![Index::new(
        "pypi",
        "https://pypi.org/simple/",
        Role::Public,
        &["files.pythonhosted.org".to_owned()],
    )?])
}

pub(crate) fn rules(
    private: Vec<NamePattern>,
    allow_public: Vec<NamePattern>,
    on_error: OnPrivateIndexError,
) -> Rules {
    Rules {
        private,
        allow_public,
        on_private_index_error: on_error,
    }
}
