//! The configuration file: TOML read once into typed settings, or the embedded default.
//!
//! Each table has a file of its own here (`ca`, `upstream`, `index`, `policy`, `network`,
//! `limits`, `access`, `cache`; the top-level keys are below): its settings type, the defaults
//! beside it, how it reads its keys, and how `config check` prints it back. Adding a key
//! touches that one file. Reading goes on past a bad key, so one run reports every bad key of a file, each
//! with its dotted name, its line and the form it expects.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use pipgate_policy::{Network, Policy};

mod access;
mod ca;
mod cache;
mod index;
mod limits;
mod network;
mod policy;
mod section;
#[cfg(test)]
mod tests;
mod upstream;
mod value;

pub use access::AccessSettings;
pub use ca::CaSettings;
pub use cache::{ByteSize, CacheSettings, PageCaching};
pub use limits::{Limits, PageCompression};
pub use policy::LookupSettings;
pub(crate) use upstream::split_host_port;
pub use upstream::UpstreamSettings;

use section::{Ctx, Section};
use value::{ListenAddr, Problem, Setting, Toml};

/// The default listen address: loopback only, the port Squid made familiar.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 3128);

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
            write!(f, ": key '{}'", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every error of one file, in the order of its lines (never empty).
#[derive(Debug)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    fn one(e: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![e])
    }

    /// The errors, first line first.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// How many threads serve connections (`threads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// This many; 1 (the default) runs every connection on one thread.
    Count(NonZeroUsize),
    /// One per CPU the process may use (`"auto"`).
    Auto,
}

impl Threads {
    /// The number of threads to start.
    pub fn count(self) -> usize {
        match self {
            Threads::Count(n) => n.get(),
            Threads::Auto => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        }
    }
}

impl Setting for Threads {
    const EXPECTED: &'static str = "a thread count like 1, or \"auto\"";

    fn read(v: &toml_edit::Value, _: &Path) -> Result<Self, Problem> {
        match v {
            toml_edit::Value::String(s) if s.value() == "auto" => Ok(Threads::Auto),
            toml_edit::Value::Integer(n) => usize::try_from(*n.value())
                .ok()
                .and_then(NonZeroUsize::new)
                .map(Threads::Count)
                .ok_or_else(|| Problem::Invalid(format!("{} threads: want 1 or more", n.value()))),
            _ => Err(Problem::Type),
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
    /// Read at start only (`[cache]`).
    pub cache: CacheSettings,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let in_file = |mut e: ConfigError| {
            e.file = Some(path.to_owned());
            e
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::one(in_file(ConfigError {
                file: None,
                line: None,
                key: String::new(),
                message: format!("cannot read: {e}"),
            }))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base, Some(path))
            .map_err(|errors| ConfigErrors(errors.0.into_iter().map(in_file).collect()))
    }

    /// The embedded default: pypi.org on 127.0.0.1:3128, the CA in the user's data directory.
    pub fn embedded() -> Result<Config, ConfigErrors> {
        let mut config = Config::parse("", Path::new("."), None)?;
        config.cache = CacheSettings::embedded();
        Ok(config)
    }

    /// Parses TOML text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path, source: Option<&Path>) -> Result<Config, ConfigErrors> {
        let doc = toml_edit::ImDocument::parse(text)
            .map_err(|e| ConfigErrors::one(syntax_error(text, &e)))?;
        let ctx = Ctx::new(text, base);
        let config = Config::read(&mut Section::root(&ctx, doc.as_table()), source);
        let errors = ctx.into_errors();
        match config {
            Some(config) if errors.is_empty() => Ok(config),
            _ if errors.is_empty() => Err(ConfigErrors::one(ConfigError {
                file: None,
                line: None,
                key: String::new(),
                message: "invalid configuration".to_owned(),
            })),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// Reads every table; None when what was read does not make a policy (the reason is
    /// recorded in `top`'s errors).
    fn read(top: &mut Section<'_>, source: Option<&Path>) -> Option<Config> {
        // Names (`localhost:3128`) are resolved here, once: the listeners are bound at start.
        let mut listen = ListenAddr(DEFAULT_LISTEN);
        top.set("listen", &mut listen);
        let listen = listen.0;
        let admin_listen = top.get("admin_listen").map(|a: ListenAddr| a.0);
        let transparent_listen = top.get("transparent_listen").map(|a: ListenAddr| a.0);
        let mut threads = Threads::Count(NonZeroUsize::MIN);
        top.set("threads", &mut threads);
        let ca = top.section("ca", CaSettings::read);
        let upstream = top.section("upstream", UpstreamSettings::read);
        let indexes = index::read(top);
        let policy::PolicySettings { rules, lookups } =
            top.section("policy", policy::PolicySettings::read);
        let mut network = top.section("network", network::read);
        // A resolve override names its host and port as exactly as a tunnel_allow entry.
        network.named = upstream.resolve.keys().cloned().collect();
        let limits = top.section("limits", Limits::read);
        let access = top.section("access", AccessSettings::read);
        let cache = top.section("cache", CacheSettings::read);
        let policy = Policy::new(indexes, rules)
            .map_err(|e| top.error("index", None, e.to_string()))
            .ok()?;
        Some(Config {
            source: source.map(ToOwned::to_owned),
            listen,
            admin_listen,
            transparent_listen,
            threads,
            ca,
            upstream,
            network,
            limits,
            access,
            lookups,
            policy,
            cache,
        })
    }
}

impl fmt::Display for Config {
    /// The effective configuration, defaults filled in, as TOML (`pipgate config check`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "listen = {}", Toml(&self.listen))?;
        if let Some(a) = &self.admin_listen {
            writeln!(f, "admin_listen = {}", Toml(a))?;
        }
        if let Some(a) = &self.transparent_listen {
            writeln!(f, "transparent_listen = {}", Toml(a))?;
        }
        writeln!(f, "threads = {}", Toml(&self.threads))?;
        write!(f, "{}{}", self.ca, self.upstream)?;
        for ix in self.policy.indexes() {
            write!(f, "{}", index::Printed(ix))?;
        }
        write!(f, "{}", policy::Printed(self.policy.rules(), &self.lookups))?;
        write!(f, "{}", network::Printed(&self.network))?;
        write!(f, "{}{}{}", self.limits, self.access, self.cache)
    }
}

/// The user's data directory for the embedded default (`$XDG_DATA_HOME/pipgate`).
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("pipgate")
}

/// A file that is not TOML: the parser's first line, at its position.
fn syntax_error(text: &str, e: &toml_edit::TomlError) -> ConfigError {
    // The parser's message is multi-line (it quotes the source); keep its first useful line.
    let message = e.message().lines().next().unwrap_or("invalid TOML");
    ConfigError {
        file: None,
        line: e.span().map(|s| section::line_of(text, s.start)),
        key: String::new(),
        message: format!("not TOML: {message}"),
    }
}
