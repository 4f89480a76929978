//! Host name patterns of `network.tunnel_allow`: a name, or `*.suffix` for the names under a
//! suffix, parsed once into labels (in the spirit of linkerd's `MatchHost`), so matching is a
//! comparison of labels, never of strings a peer spelled.

use std::fmt;

use url::Host;

use crate::Error;

/// A host name, or every name under a suffix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this name (canonical: lower case, no trailing dot).
    Exact(String),
    /// Any name with at least one label before these, which are stored last label first
    /// (`*.corp.example` is `["example", "corp"]`).
    Under(Vec<String>),
}

impl HostPattern {
    /// Parses `github.com` or `*.corp.example`. Refused: IP addresses (a tunnel is allowed to a
    /// name; where it resolves is checked apart), schemes, ports and paths, a bare `*` or `*.`,
    /// a `*` anywhere but the leading label, and anything no DNS name holds.
    pub fn parse(raw: &str) -> Result<HostPattern, Error> {
        let bad = |reason: &'static str| Error::BadHostPattern {
            pattern: raw.to_owned(),
            reason,
        };
        let s = raw.trim().to_ascii_lowercase();
        let s = s.strip_suffix('.').unwrap_or(&s);
        if s.contains("://") || s.contains(['/', ':', '@', '[', ']']) {
            return Err(bad("want a host name, without scheme, port or path"));
        }
        let (under, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if name.is_empty() || name == "*" {
            return Err(bad("a wildcard needs a suffix, as in *.example.org"));
        }
        if name.contains('*') {
            return Err(bad(
                "* may only stand as the first label, as in *.example.org",
            ));
        }
        match Host::parse(name) {
            Ok(Host::Domain(_)) => {}
            Ok(Host::Ipv4(_) | Host::Ipv6(_)) => {
                return Err(bad(
                    "IP addresses are not allowed; name the host (where it resolves is checked)",
                ))
            }
            Err(_) => return Err(bad("not a host name")),
        }
        let labels: Vec<&str> = name.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !labels.iter().all(label_ok) {
            return Err(bad("not a host name"));
        }
        Ok(if under {
            HostPattern::Under(labels.iter().rev().map(|l| (*l).to_owned()).collect())
        } else {
            HostPattern::Exact(name.to_owned())
        })
    }

    /// Whether `host` (canonical: lower case, no trailing dot) is this name or under it.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => name == host,
            HostPattern::Under(suffix) => {
                let mut labels = host.rsplit('.');
                suffix.iter().all(|want| labels.next() == Some(want))
                    && labels.next().is_some_and(|l| !l.is_empty())
            }
        }
    }

    /// Whether this names one host exactly: only such an entry vouches for its host on other
    /// ports and at internal addresses (a name under a wildcard could resolve anywhere).
    pub fn is_exact(&self) -> bool {
        matches!(self, HostPattern::Exact(_))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Under(suffix) => {
                f.write_str("*")?;
                for label in suffix.iter().rev() {
                    write!(f, ".{label}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }

    #[test]
    fn exact_names_and_suffixes() {
        assert_eq!(p("GitHub.com."), HostPattern::Exact("github.com".into()));
        assert!(p("github.com").matches("github.com"));
        assert!(!p("github.com").matches("api.github.com"));
        let under = p("*.Example.org");
        assert_eq!(
            under,
            HostPattern::Under(vec!["org".into(), "example".into()])
        );
        assert!(under.matches("a.example.org") && under.matches("a.b.example.org"));
        for not in [
            "example.org",
            "aexample.org",
            "a.example.org.evil",
            "org",
            "",
        ] {
            assert!(!under.matches(not), "{not}");
        }
        assert!(p("github.com").is_exact() && !under.is_exact());
        assert_eq!(under.to_string(), "*.example.org");
        assert_eq!(p("github.com").to_string(), "github.com");
    }

    #[test]
    fn refused_spellings() {
        for s in [
            "",
            "*",
            "*.",
            "*.*.example.org",
            "a.*.org",
            "https://github.com",
            "github.com:443",
            "github.com/x",
            "user@github.com",
            "10.0.0.1",
            "[::1]",
            "::1",
            "a..b",
            "a b.org",
        ] {
            assert!(HostPattern::parse(s).is_err(), "{s:?}");
        }
    }
}
