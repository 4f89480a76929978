//! The crate's error types: configuration, request paths, and upstream pages.

use crate::verdict::Rule;

/// A configuration value that does not describe a usable policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name pattern is empty or holds characters no project name can have.
    #[error("invalid name pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as written in the config.
        pattern: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An index URL that is not an absolute http(s) URL with a host.
    #[error("index {index:?}: invalid url {url:?}: {reason}")]
    BadIndexUrl {
        /// The index name.
        index: String,
        /// The URL as written.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// An index name that is empty or not printable.
    #[error("invalid index name {0:?}")]
    BadIndexName(String),
    /// A `file_hosts` entry that is not a host name or IP address.
    #[error("index {index:?}: invalid file host {host:?}")]
    BadFileHost {
        /// The index name.
        index: String,
        /// The entry as written.
        host: String,
    },
    /// Two indexes share a name.
    #[error("duplicate index name {0:?}")]
    DuplicateIndex(String),
    /// A `network.tunnel_allow` entry that is no host name or `*.suffix`.
    #[error("invalid host pattern {pattern:?}: {reason}")]
    BadHostPattern {
        /// The entry as written.
        pattern: String,
        /// Why it was refused.
        reason: &'static str,
    },
}

/// Why a request path was refused before anything was asked upstream (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The host is neither an index host nor a file host.
    #[error("host is not intercepted")]
    UnknownHost,
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding")]
    BadEscape,
    /// A decoded segment is not UTF-8.
    #[error("path is not valid UTF-8")]
    NotUtf8,
    /// A `.` or `..` segment, raw or percent-encoded.
    #[error("dot segment in path")]
    DotSegment,
    /// `%2F` (or `%5C`) inside a segment, which would hide a `/` from us but not from upstream.
    #[error("percent-encoded '/' in project name")]
    EncodedSlash,
    /// A backslash, control character or NUL in the path.
    #[error("forbidden character in path")]
    BadChar,
    /// A project name no index can serve (PEP 508 syntax).
    #[error("invalid project name")]
    BadName,
    /// The path does not start with `/`.
    #[error("path is not absolute")]
    NotAbsolute,
}

impl PathError {
    /// The rule reported for metrics and logs.
    pub fn rule(&self) -> Rule {
        Rule::BadPath
    }
}

/// Why an upstream page could not be re-synthesized (the proxy answers 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// The body is not UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// An HTML page over 1 GiB (the proxy's own limits are far lower).
    #[error("page too large")]
    TooLarge,
    /// The body is not the JSON the API promises.
    #[error("JSON: {0}")]
    Json(String),
    /// A PEP 792 project status after the page's first link (an HTML meta), or after the
    /// files it would change (a JSON key): which links it withholds is unclear, so none are
    /// served.
    #[error("a PEP 792 project status after the links it applies to")]
    LateStatus,
    /// The page URL itself is not hierarchical.
    #[error("page URL cannot be a base")]
    BadPageUrl,
}

impl From<serde_json::Error> for RewriteError {
    fn from(e: serde_json::Error) -> Self {
        // serde_json's Display is one line ("... at line L column C").
        RewriteError::Json(e.to_string())
    }
}
