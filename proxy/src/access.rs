//! The access log: one event type, one field set, for everything pipgate does with a client
//! (a request answered, a tunnel opened, a connection refused), so an operator's queries do
//! not depend on which path a client took.

use std::net::SocketAddr;
use std::time::Duration;

/// How a connection reached pipgate (the access line's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The proxy listener (`CONNECT`, absolute-form requests).
    Proxy,
    /// `transparent_listen` (redirected by NAT).
    Transparent,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Proxy => "proxy",
            Mode::Transparent => "transparent",
        }
    }
}

/// One access line. Fields that do not apply are left out of it.
#[derive(Debug, Default)]
pub(crate) struct Access<'a> {
    pub(crate) client: Option<SocketAddr>,
    /// The proxy user the client authenticated as.
    pub(crate) user: Option<&'a str>,
    pub(crate) mode: Option<Mode>,
    pub(crate) method: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    pub(crate) port: Option<u16>,
    /// Where a redirected connection was going.
    pub(crate) original_dst: Option<SocketAddr>,
    pub(crate) path: Option<&'a str>,
    /// What pipgate did: `rewrite`, `stream`, `block`, `intercept`, `tunnel`, `refuse`.
    pub(crate) decision: Option<&'static str>,
    pub(crate) status: Option<u16>,
    pub(crate) rule: Option<&'static str>,
    pub(crate) reason: Option<&'a str>,
    pub(crate) index: Option<&'a str>,
    pub(crate) name: Option<&'a str>,
    pub(crate) bytes: Option<u64>,
    /// False when the client went away (or upstream failed) before the body ended.
    pub(crate) complete: Option<bool>,
    pub(crate) duration: Option<Duration>,
    /// A page's links (root listing: names) passed on and removed.
    pub(crate) kept: Option<usize>,
    pub(crate) dropped: Option<usize>,
    /// The rules that withheld a page's files, with counts (`cooldown:3,deny(audit):1`).
    pub(crate) withheld: Option<&'a str>,
    /// What the file cache did: `hit` or `miss`.
    pub(crate) cache: Option<&'static str>,
}

impl Access<'_> {
    /// Writes the line (`target=pipgate::access`, batched by `log.rs`).
    pub(crate) fn emit(&self) {
        tracing::info!(
            target: "pipgate::access",
            client = self.client.map(display),
            user = self.user,
            mode = self.mode.map(Mode::as_str),
            method = self.method,
            host = self.host,
            port = self.port,
            original_dst = self.original_dst.map(display),
            path = self.path,
            status = self.status,
            bytes = self.bytes,
            complete = self.complete,
            // Rounded to the microsecond: finer is noise, and long to read.
            duration_ms = self.duration.map(|d| d.as_micros() as f64 / 1000.0),
            index = self.index,
            name = self.name,
            decision = self.decision,
            rule = self.rule,
            reason = self.reason,
            kept = self.kept,
            dropped = self.dropped,
            withheld = self.withheld,
            cache = self.cache,
            "{}",
            Summary(self)
        );
    }
}

/// The access line's message: what was asked and how it went (`GET pypi.org/simple/six/ 200
/// rewrite`), the parts that apply.
struct Summary<'s, 'a>(&'s Access<'a>);

impl std::fmt::Display for Summary<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.0;
        f.write_str(a.method.unwrap_or("-"))?;
        if let Some(host) = a.host {
            write!(f, " {host}")?;
        }
        match (a.path, a.port) {
            (Some(path), _) => f.write_str(path)?,
            (None, Some(port)) => write!(f, ":{port}")?,
            (None, None) => {}
        }
        if let Some(status) = a.status {
            write!(f, " {status}")?;
        }
        if let Some(decision) = a.decision {
            write!(f, " {decision}")?;
        }
        Ok(())
    }
}
