//! `[limits]`: what one client, and all of them together, may hold.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::section::Section;
use super::value::{Problem, Setting, Toml};

/// `page_compression`: how re-synthesized pages go to a client that accepts gzip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PageCompression {
    /// gzip (level 2) for a client that accepts it, unless it connects from a loopback
    /// address: over loopback deflating costs more time than the bytes it saves (the 2.2 MB
    /// bench page: p50 16.3 ms gzipped against 9.1 ms identity; bench/README.md).
    #[default]
    Auto,
    /// gzip whenever the client accepts it.
    Gzip,
    /// Never compressed.
    Identity,
}

impl Setting for PageCompression {
    const EXPECTED: &'static str = "\"auto\", \"gzip\" or \"identity\"";

    fn read(v: &toml_edit::Value, _: &Path) -> Result<Self, Problem> {
        match v.as_str() {
            Some("auto") => Ok(PageCompression::Auto),
            Some("gzip") => Ok(PageCompression::Gzip),
            Some("identity") => Ok(PageCompression::Identity),
            Some(other) => Err(Problem::Invalid(format!(
                "unknown page_compression {other:?}; expected {}",
                Self::EXPECTED
            ))),
            None => Err(Problem::Type),
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageCompression::Auto => "\"auto\"",
            PageCompression::Gzip => "\"gzip\"",
            PageCompression::Identity => "\"identity\"",
        })
    }
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
    /// Whether re-synthesized pages are gzipped for clients that accept it.
    pub page_compression: PageCompression,
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
            page_compression: PageCompression::Auto,
        }
    }
}

impl Limits {
    pub(super) fn read(s: &mut Section<'_>) -> Limits {
        let mut l = Limits::default();
        s.set("max_connections", &mut l.max_connections);
        s.set(
            "max_connections_per_client",
            &mut l.max_connections_per_client,
        );
        s.set("max_header_bytes", &mut l.max_header_bytes);
        s.set("max_headers", &mut l.max_headers);
        s.set("header_timeout", &mut l.header_timeout);
        s.set("client_idle_timeout", &mut l.client_idle_timeout);
        s.set("max_page_bytes", &mut l.max_page_bytes);
        s.set("max_buffered_page_bytes", &mut l.max_buffered_page_bytes);
        s.set(
            "h2_max_concurrent_streams",
            &mut l.h2_max_concurrent_streams,
        );
        s.set("page_compression", &mut l.page_compression);
        l
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[limits]")?;
        writeln!(f, "max_connections = {}", self.max_connections)?;
        writeln!(
            f,
            "max_connections_per_client = {}",
            self.max_connections_per_client
        )?;
        writeln!(f, "max_header_bytes = {}", self.max_header_bytes)?;
        writeln!(f, "max_headers = {}", self.max_headers)?;
        writeln!(f, "header_timeout = {}", Toml(&self.header_timeout))?;
        writeln!(
            f,
            "client_idle_timeout = {}",
            Toml(&self.client_idle_timeout)
        )?;
        writeln!(f, "max_page_bytes = {}", self.max_page_bytes)?;
        writeln!(
            f,
            "max_buffered_page_bytes = {}",
            self.max_buffered_page_bytes
        )?;
        writeln!(
            f,
            "h2_max_concurrent_streams = {}",
            self.h2_max_concurrent_streams
        )?;
        writeln!(f, "page_compression = {}", Toml(&self.page_compression))
    }
}
