//! Which hosts a CA may vouch for: its X.509 name constraints (RFC 5280 section 4.2.1.10).
//!
//! A CA without constraints lets whoever holds its key impersonate any host to every machine
//! that trusts it. pipgate's CAs carry a critical `nameConstraints` extension whose permitted
//! subtrees are the hosts it intercepts, so a stolen `ca.key` can mint nothing a client would
//! accept for any other host. [`Scope::permits`] answers "may this CA vouch for that host"
//! with the semantics OpenSSL and rustls-webpki apply, so `pipgate run` can refuse a
//! configuration whose leaves clients would reject.

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use crate::leaves::Host;
use crate::Error;

/// A DNS subtree that no real name is in (RFC 2606 reserves `.invalid`): permitted when only
/// IP addresses are, because without any permitted dNSName subtree RFC 5280 leaves DNS names
/// unconstrained.
const NO_DNS_NAME: &str = "invalid";

/// The hosts a CA may vouch for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// No `nameConstraints` extension: the CA may vouch for any host (the explicit opt-out of
    /// `pipgate ca init --unconstrained`, or a CA made elsewhere).
    Unconstrained,
    /// A `nameConstraints` extension. Per RFC 5280, a name is acceptable when no excluded
    /// subtree of its type contains it and, if any permitted subtree has its type, one does.
    Constrained {
        /// The permitted subtrees.
        permitted: Vec<Subtree>,
        /// The excluded subtrees (they win over permitted ones).
        excluded: Vec<Subtree>,
    },
}

/// One subtree of a name constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subtree {
    /// A DNS name and every name below it: `pypi.org` covers `pypi.org` and `a.pypi.org`, not
    /// `evilpypi.org`. A leading dot (`.corp.example`, as OpenSSL accepts) covers only the names
    /// below. Stored lower-case.
    Dns(String),
    /// An IP network: an address and a prefix length (`127.0.0.1/32`, `0.0.0.0/0`).
    Ip(IpAddr, u8),
    /// Any other kind (e-mail, directory name, URI...), as x509-parser prints it: shown, never
    /// matched against a host.
    Other(String),
}

impl Scope {
    /// pipgate's constraints for a CA that vouches for exactly `hosts` (DNS names, which cover
    /// their subdomains, or IP literals, `[::1]` included).
    ///
    /// Every IP address is excluded (`0.0.0.0/0` and `::/0`) unless a host is an IP literal of
    /// that family, which is then permitted alone: a DNS-only constraint leaves iPAddress names
    /// unconstrained under RFC 5280, so without the exclusion the key could still vouch for any
    /// address. When no host is a DNS name, only the reserved `invalid` subtree is permitted, for
    /// the same reason. `hosts` must not be empty.
    pub fn hosts<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Result<Scope, Error> {
        let mut dns: Vec<Subtree> = Vec::new();
        let mut ips: Vec<Subtree> = Vec::new();
        for raw in hosts {
            let subtree = match Host::parse(raw)? {
                Host::Dns(name) => Subtree::Dns(name),
                Host::Ip(ip) => Subtree::Ip(ip, full_prefix(ip)),
            };
            let list = if matches!(subtree, Subtree::Dns(_)) {
                &mut dns
            } else {
                &mut ips
            };
            if !list.contains(&subtree) {
                list.push(subtree);
            }
        }
        if dns.is_empty() && ips.is_empty() {
            return Err(Error::EmptyScope);
        }
        if dns.is_empty() {
            dns.push(Subtree::Dns(NO_DNS_NAME.to_owned()));
        }
        let has = |v4: bool| {
            ips.iter()
                .any(|s| matches!(s, Subtree::Ip(ip, _) if ip.is_ipv4() == v4))
        };
        let mut excluded = Vec::new();
        if !has(true) {
            excluded.push(Subtree::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
        }
        if !has(false) {
            excluded.push(Subtree::Ip(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0));
        }
        dns.extend(ips);
        Ok(Scope::Constrained {
            permitted: dns,
            excluded,
        })
    }

    /// Whether a certificate for `host` (a DNS name, any case, or an IP literal) issued under
    /// this CA satisfies its name constraints, as OpenSSL and rustls-webpki check them. A host
    /// that is neither is never permitted by a constrained scope.
    pub fn permits(&self, host: &str) -> bool {
        let Scope::Constrained {
            permitted,
            excluded,
        } = self
        else {
            return true;
        };
        let Ok(host) = Host::parse(host) else {
            return false;
        };
        let same_kind = |s: &&Subtree| {
            matches!(
                (s, &host),
                (Subtree::Dns(_), Host::Dns(_)) | (Subtree::Ip(..), Host::Ip(_))
            )
        };
        if excluded.iter().any(|s| s.contains(&host)) {
            return false;
        }
        let mut of_kind = permitted.iter().filter(same_kind).peekable();
        of_kind.peek().is_none() || of_kind.any(|s| s.contains(&host))
    }

    /// The permitted subtrees, for messages (`pypi.org, files.pythonhosted.org`).
    pub fn permitted(&self) -> &[Subtree] {
        match self {
            Scope::Unconstrained => &[],
            Scope::Constrained { permitted, .. } => permitted,
        }
    }

    /// The extension rcgen writes (critical, as RFC 5280 requires); `None` when unconstrained.
    pub(crate) fn name_constraints(&self) -> Option<NameConstraints> {
        let Scope::Constrained {
            permitted,
            excluded,
        } = self
        else {
            return None;
        };
        let convert = |list: &[Subtree]| -> Vec<GeneralSubtree> {
            list.iter()
                .filter_map(|s| match s {
                    Subtree::Dns(name) => Some(GeneralSubtree::DnsName(name.clone())),
                    Subtree::Ip(ip, prefix) => Some(GeneralSubtree::IpAddress(
                        CidrSubnet::from_addr_prefix(*ip, *prefix),
                    )),
                    // Never built by `hosts`; only read back from certificates made elsewhere.
                    Subtree::Other(_) => None,
                })
                .collect()
        };
        Some(NameConstraints {
            permitted_subtrees: convert(permitted),
            excluded_subtrees: convert(excluded),
        })
    }

    /// Reads the constraints of a parsed certificate; an extension x509-parser cannot read, or
    /// an iPAddress subtree that is not an address and a contiguous mask, is an error.
    pub(crate) fn of(cert: &X509Certificate<'_>) -> Result<Scope, String> {
        let nc = match cert.name_constraints() {
            Ok(Some(nc)) => nc.value,
            Ok(None) => return Ok(Scope::Unconstrained),
            Err(e) => return Err(format!("invalid nameConstraints ({e})")),
        };
        let read = |list: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| {
            list.iter()
                .flatten()
                .map(|s| Subtree::read(&s.base))
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(Scope::Constrained {
            permitted: read(&nc.permitted_subtrees)?,
            excluded: read(&nc.excluded_subtrees)?,
        })
    }
}

impl Subtree {
    fn read(name: &GeneralName<'_>) -> Result<Subtree, String> {
        Ok(match name {
            GeneralName::DNSName(dns) => Subtree::Dns(dns.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => ip_subtree(bytes).ok_or_else(|| {
                "a nameConstraints iPAddress is not an address and mask".to_owned()
            })?,
            other => Subtree::Other(other.to_string()),
        })
    }

    /// RFC 5280 subtree matching for one host of the same kind (a different kind never
    /// matches). DNS: case-insensitive, whole labels only; an empty name contains every name.
    fn contains(&self, host: &Host) -> bool {
        match (self, host) {
            (Subtree::Dns(base), Host::Dns(name)) => {
                let base = base.strip_suffix('.').unwrap_or(base);
                dns_within(name, &base.to_ascii_lowercase())
            }
            (Subtree::Ip(net, prefix), Host::Ip(ip)) => ip_within(*ip, *net, *prefix),
            _ => false,
        }
    }
}

/// `name` (lower-case) is `base` or below it; `.base` covers only what is below.
fn dns_within(name: &str, base: &str) -> bool {
    if base.is_empty() {
        return true;
    }
    if base.starts_with('.') {
        return name.len() > base.len() && name.ends_with(base);
    }
    name == base
        || name
            .strip_suffix(base)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn ip_within(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    // Both left-aligned in 128 bits, so one mask serves either family.
    let (ip, net) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (
            u128::from(u32::from(a)) << 96,
            u128::from(u32::from(n)) << 96,
        ),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n)),
        // Families never match each other (OpenSSL and webpki compare lengths first).
        _ => return false,
    };
    let mask = u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0);
    ip & mask == net & mask
}

/// An iPAddress subtree's bytes: 4 address + 4 mask bytes, or 16 + 16; the mask must be a
/// run of ones then zeros.
fn ip_subtree(bytes: &[u8]) -> Option<Subtree> {
    let (addr, mask) = match bytes.len() {
        8 => {
            let (a, m) = bytes.split_at(4);
            let a: [u8; 4] = a.try_into().ok()?;
            let m: [u8; 4] = m.try_into().ok()?;
            (
                IpAddr::V4(Ipv4Addr::from(a)),
                u128::from(u32::from_be_bytes(m)) << 96,
            )
        }
        32 => {
            let (a, m) = bytes.split_at(16);
            let a: [u8; 16] = a.try_into().ok()?;
            let m: [u8; 16] = m.try_into().ok()?;
            (IpAddr::V6(Ipv6Addr::from(a)), u128::from_be_bytes(m))
        }
        _ => return None,
    };
    let prefix = mask.leading_ones();
    if mask.checked_shl(prefix).unwrap_or(0) != 0 {
        return None;
    }
    let prefix = u8::try_from(prefix).ok()?;
    Some(Subtree::Ip(addr, prefix))
}

fn full_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

impl fmt::Display for Subtree {
    /// `pypi.org`, `127.0.0.1` (a whole address), `10.0.0.0/8`, `[::1]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subtree::Dns(name) => f.write_str(name),
            Subtree::Ip(ip, prefix) if *prefix == full_prefix(*ip) => match ip {
                IpAddr::V4(v4) => write!(f, "{v4}"),
                IpAddr::V6(v6) => write!(f, "[{v6}]"),
            },
            Subtree::Ip(ip, prefix) => write!(f, "{ip}/{prefix}"),
            Subtree::Other(text) => f.write_str(text),
        }
    }
}

impl fmt::Display for Scope {
    /// `any host`, or the permitted subtrees joined by `, ` (what a message names).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Unconstrained => f.write_str("any host"),
            Scope::Constrained { permitted, .. } => {
                for (i, s) in permitted.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{s}")?;
                }
                Ok(())
            }
        }
    }
}
