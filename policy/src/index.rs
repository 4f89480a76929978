//! Configured package indexes: where they live, which hosts serve their files, and their role.

use url::{Host, Url};

use crate::{Error, Name};

/// Whether an index may define private names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A public index (pypi.org): never asked about a private name.
    Public,
    /// A private index: every project it serves is private.
    Private,
}

/// A configured simple-repository index.
///
/// Invariants: `url` is http(s) with a host, no query or fragment, and a path ending in `/`;
/// `host` and every `file_hosts` entry are canonical (lower-case, IPv6 in brackets, no trailing
/// dot) so plain string comparison is host comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    name: String,
    url: Url,
    role: Role,
    host: String,
    port: u16,
    file_hosts: Vec<String>,
}

impl Index {
    /// Validates and builds an index; see the type's invariants.
    pub fn new(name: &str, url: &str, role: Role, file_hosts: &[String]) -> Result<Index, Error> {
        if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::BadIndexName(name.to_owned()));
        }
        let bad = |reason: &str| Error::BadIndexUrl {
            index: name.to_owned(),
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let mut parsed = Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("scheme must be http or https"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("query and fragment are not allowed"));
        }
        let host = match parsed.host_str() {
            Some(h) => canonical_host(h).ok_or_else(|| bad("invalid host"))?,
            None => return Err(bad("missing host")),
        };
        if !parsed.path().ends_with('/') {
            let path = format!("{}/", parsed.path());
            parsed.set_path(&path);
        }
        let default_port = if parsed.scheme() == "http" { 80 } else { 443 };
        let port = parsed.port().unwrap_or(default_port);
        let mut hosts = Vec::with_capacity(file_hosts.len());
        for raw in file_hosts {
            let h = canonical_host(raw).ok_or_else(|| Error::BadFileHost {
                index: name.to_owned(),
                host: raw.clone(),
            })?;
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        Ok(Index {
            name: name.to_owned(),
            url: parsed,
            role,
            host,
            port,
            file_hosts: hosts,
        })
    }

    /// The configured name (used in messages and logs).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The index URL, always ending in `/`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Public or private.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The canonical index host (no port).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The index port (the scheme's default when the URL has none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Canonical hosts that serve this index's files.
    pub fn file_hosts(&self) -> &[String] {
        &self.file_hosts
    }

    /// Whether the index is configured with a plain `http://` URL.
    pub fn is_http(&self) -> bool {
        self.url.scheme() == "http"
    }

    /// Whether `host` (canonical) serves files for this index.
    pub(crate) fn is_file_host(&self, host: &str) -> bool {
        self.file_hosts.iter().any(|h| h == host)
    }

    /// The project page URL: the index URL plus `<name>/`.
    pub fn project_url(&self, name: &Name) -> Url {
        let mut url = self.url.clone();
        // An http(s) URL always has path segments; the `if let` only satisfies the type.
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty().push(name.as_str()).push("");
        }
        url
    }
}

/// Canonical form of a host as written in config or a request: lower-case, IPv4 dotted quad,
/// IPv6 in brackets, without one trailing dot. `None` when it is not a host name or address.
pub(crate) fn canonical_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let raw = raw.strip_suffix('.').unwrap_or(raw);
    if raw.is_empty() {
        return None;
    }
    let parsed = if raw.contains(':') && !raw.starts_with('[') {
        Host::parse(&format!("[{raw}]")).ok()?
    } else {
        Host::parse(raw).ok()?
    };
    match parsed {
        Host::Domain(d) => {
            let ok = d.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
            ok.then_some(d)
        }
        Host::Ipv4(a) => Some(a.to_string()),
        Host::Ipv6(a) => Some(format!("[{a}]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_canonical_index() {
        let i = Index::new(
            "pypi",
            "https://PyPI.org/simple",
            Role::Public,
            &["Files.PythonHosted.org.".to_owned()],
        )
        .unwrap();
        assert_eq!(i.url().as_str(), "https://pypi.org/simple/");
        assert_eq!(i.host(), "pypi.org");
        assert_eq!(i.port(), 443);
        assert_eq!(i.file_hosts(), ["files.pythonhosted.org"]);
        assert!(!i.is_http());
        assert_eq!(
            i.project_url(&Name::new("Acme_Lib")).as_str(),
            "https://pypi.org/simple/acme-lib/"
        );
        let h = Index::new("corp", "http://127.0.0.1:8080/", Role::Private, &[]).unwrap();
        assert!(h.is_http());
        assert_eq!(h.port(), 8080);
        assert_eq!(h.host(), "127.0.0.1");
        assert_eq!(
            h.project_url(&Name::new("x")).as_str(),
            "http://127.0.0.1:8080/x/"
        );
    }

    #[test]
    fn refuses_bad_indexes() {
        for url in [
            "ftp://x/simple/",
            "https://",
            "not a url",
            "https://x/s?q=1",
            "file:///x",
        ] {
            assert!(Index::new("x", url, Role::Public, &[]).is_err(), "{url}");
        }
        for host in ["", "a b", "a/b", "a..b", "http://x"] {
            assert!(
                Index::new("x", "https://x/", Role::Public, &[host.to_owned()]).is_err(),
                "{host:?}"
            );
        }
        assert!(Index::new("", "https://x/", Role::Public, &[]).is_err());
    }

    #[test]
    fn canonical_hosts() {
        assert_eq!(canonical_host("::1").as_deref(), Some("[::1]"));
        assert_eq!(canonical_host("[::1]").as_deref(), Some("[::1]"));
        assert_eq!(
            canonical_host("EXAMPLE.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(canonical_host("127.0.0.1").as_deref(), Some("127.0.0.1"));
    }
}
