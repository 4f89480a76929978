//! Host names a leaf may be minted for: a DNS name or an IP literal, canonicalised.

use std::net::{IpAddr, Ipv6Addr};

use rustls_pki_types::DnsName;

use crate::Error;

/// Longest DNS name in presentation form (RFC 1035: 255 octets on the wire).
const MAX_DNS_LEN: usize = 253;

/// A validated host; its `key()` is the cache key, so spellings of one host share a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// Lower-case, no trailing dot, valid per RFC 1123 as rustls-pki-types checks it.
    Dns(String),
    /// An IP literal; gets an IP SAN, since clients never match IPs against DNS SANs.
    Ip(IpAddr),
}

impl Host {
    /// Parses `pypi.org`, `PyPI.org.`, `127.0.0.1`, `::1` or `[::1]`; anything else (empty,
    /// wildcards, spaces, over-long names) is an error, never a panic.
    pub(crate) fn parse(input: &str) -> Result<Host, Error> {
        let invalid = || Error::InvalidHost {
            host: input.chars().take(80).collect(),
        };
        if let Some(inner) = input.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| invalid());
        }
        if let Ok(ip) = input.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let name = input
            .strip_suffix('.')
            .unwrap_or(input)
            .to_ascii_lowercase();
        if name.is_empty() || name.len() > MAX_DNS_LEN || name.contains('*') {
            return Err(invalid());
        }
        // All-numeric names look like IPs to some verifiers ("127.1", "2130706433"); a leaf for
        // one would be a way to confuse them, and no index lives at such a name.
        if name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid());
        }
        DnsName::try_from(name.as_str()).map_err(|_| invalid())?;
        Ok(Host::Dns(name))
    }

    /// The canonical spelling, used as the cache key and in the certificate.
    pub(crate) fn key(&self) -> String {
        match self {
            Host::Dns(name) => name.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises_dns_names() {
        assert_eq!(
            Host::parse("PyPI.org.").unwrap(),
            Host::Dns("pypi.org".into())
        );
        assert_eq!(
            Host::parse("localhost").unwrap(),
            Host::Dns("localhost".into())
        );
        assert_eq!(
            Host::parse("files.pythonhosted.org").unwrap().key(),
            "files.pythonhosted.org"
        );
        assert_eq!(
            Host::parse("under_score.example").unwrap().key(),
            "under_score.example"
        );
    }

    #[test]
    fn parses_ip_literals() {
        assert_eq!(Host::parse("127.0.0.1").unwrap().key(), "127.0.0.1");
        assert_eq!(Host::parse("::1").unwrap().key(), "::1");
        assert_eq!(Host::parse("[::1]").unwrap().key(), "::1");
        assert_eq!(Host::parse("[0:0::1]").unwrap().key(), "::1");
    }

    #[test]
    fn rejects_what_is_no_host() {
        for bad in [
            "",
            ".",
            "..",
            "*.pypi.org",
            "pypi .org",
            "pypi.org:443",
            "a..b",
            "-a.b",
            "[127.0.0.1]",
            "[::1",
            "127.1",
            "2130706433",
            "0x7f.1",
            "é.example",
            "a/b",
            "a\0b",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}.example", "a.".repeat(130));
        assert!(Host::parse(&long).is_err());
        let label64 = format!("{}.example", "a".repeat(64));
        assert!(Host::parse(&label64).is_err());
    }

    #[test]
    fn error_names_the_host_truncated() {
        let msg = Host::parse(&"x".repeat(1000)).unwrap_err().to_string();
        assert!(msg.contains("xxxx"), "{msg}");
        assert!(msg.len() < 200, "{msg}");
    }
}
