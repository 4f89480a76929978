//! `[upstream]`: how pipgate reaches indexes and file hosts.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::section::Section;
use super::value::{List, Toml};

/// How pipgate reaches upstream servers.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    /// PEM files of roots trusted besides the system's (a private index's own CA).
    pub extra_roots: Vec<PathBuf>,
    pub connect_timeout: Duration,
    /// Per-request timeout for the response head from upstream.
    pub response_timeout: Duration,
    /// A body that stalls longer than this between two chunks is cut.
    pub idle_timeout: Duration,
    /// "host:port" (host lower-cased) -> address dialled instead of DNS.
    pub resolve: HashMap<(String, u16), SocketAddr>,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            extra_roots: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            resolve: HashMap::new(),
        }
    }
}

impl UpstreamSettings {
    pub(super) fn read(s: &mut Section<'_>) -> UpstreamSettings {
        let mut u = UpstreamSettings {
            extra_roots: s.list("extra_roots"),
            ..UpstreamSettings::default()
        };
        s.set("connect_timeout", &mut u.connect_timeout);
        s.set("response_timeout", &mut u.response_timeout);
        s.set("idle_timeout", &mut u.idle_timeout);
        for (from, span, to) in s.entries::<SocketAddr>("resolve") {
            match split_host_port(&from) {
                Some(host_port) => {
                    u.resolve.insert(host_port, to);
                }
                None => s.error(
                    &format!("resolve.\"{from}\""),
                    span,
                    format!("{from:?} is not host:port"),
                ),
            }
        }
        u
    }
}

impl fmt::Display for UpstreamSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[upstream]")?;
        writeln!(f, "extra_roots = {}", List(&self.extra_roots))?;
        writeln!(f, "connect_timeout = {}", Toml(&self.connect_timeout))?;
        writeln!(f, "response_timeout = {}", Toml(&self.response_timeout))?;
        writeln!(f, "idle_timeout = {}", Toml(&self.idle_timeout))?;
        if !self.resolve.is_empty() {
            writeln!(f, "[upstream.resolve]")?;
            let mut rows: Vec<_> = self.resolve.iter().collect();
            rows.sort();
            for ((host, port), to) in rows {
                let from = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                writeln!(f, "{from:?} = {}", Toml(to))?;
            }
        }
        Ok(())
    }
}

/// Splits "host:port" (IPv6 in brackets), lower-casing the host.
pub(crate) fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), port.parse().ok()?))
}
