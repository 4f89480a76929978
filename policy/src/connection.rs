//! The connection decision: what pipgate does with a client connection before any request on
//! it is read (intercept, tunnel blind, or refuse), for every way a connection arrives. The
//! proxy asks, then does the I/O the answer implies (the upstream probe, DNS, the internal-
//! address check on what a name resolved to, the dial).

use std::net::SocketAddr;

use crate::{address, HostPattern, Policy};

/// The host pip 8 and 9 use by default. PyPI answers every request on it with a redirect to
/// the same path on pypi.org, and so does pipgate (it is intercepted whenever pypi.org is
/// configured), so the client comes back through the policy.
pub const LEGACY_PYPI: &str = "pypi.python.org";

/// What to do with a host that is no index or file host (`network.unlisted_hosts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unlisted {
    /// Refuse (the default).
    #[default]
    Block,
    /// Tunnel blind, still refusing internal addresses.
    Tunnel,
}

/// The hosts that are not indexes, and how they may be reached (`[network]`).
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// `network.unlisted_hosts`.
    pub unlisted: Unlisted,
    /// `network.tunnel_allow`: tunnelled blind even when unlisted hosts are blocked.
    pub tunnel_allow: Vec<HostPattern>,
    /// Host and port pairs the configuration names on its own (`[upstream.resolve]`): like an
    /// exact `tunnel_allow` entry, they vouch for other ports and internal addresses.
    pub named: Vec<(String, u16)>,
}

impl Network {
    /// Whether `host` (on `port`) is named exactly by the configuration, so that another port
    /// or an internal address is what the operator meant.
    fn explicit(&self, host: &str, port: u16) -> bool {
        self.tunnel_allow
            .iter()
            .any(|p| p.is_exact() && p.matches(host))
            || self.named.iter().any(|(h, p)| h == host && *p == port)
    }

    fn listed(&self, host: &str) -> bool {
        self.tunnel_allow.iter().any(|p| p.matches(host))
    }
}

/// How a connection reached pipgate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// `CONNECT host:port` on the proxy listener.
    Connect,
    /// TLS redirected to `transparent_listen`; the host is the ClientHello's SNI.
    RedirectedTls,
    /// Plain HTTP redirected to `transparent_listen`; the host is the `Host` header's.
    RedirectedHttp,
    /// An absolute-form request (`GET http://host/...`) on the proxy listener.
    AbsoluteForm,
}

impl Arrival {
    fn tls(self) -> bool {
        matches!(self, Arrival::Connect | Arrival::RedirectedTls)
    }
}

/// Where a connection wants to go.
#[derive(Clone, Copy, Debug)]
pub struct Destination<'a> {
    pub arrival: Arrival,
    /// The host it names (canonical: lower case, no trailing dot); `None` for a ClientHello
    /// without SNI or a request without `Host`.
    pub host: Option<&'a str>,
    /// The port it asked for (CONNECT, absolute form) or dialled (redirected).
    pub port: u16,
    /// The address it dialled, for redirected connections.
    pub original: Option<SocketAddr>,
}

/// The answer for a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Terminate TLS (or read plain HTTP) as this host, and decide every request on it.
    /// `probe`: reach the upstream before answering a CONNECT (false for the legacy alias,
    /// which pipgate answers itself).
    Intercept { host: String, probe: bool },
    /// Splice blind to where `host` resolves (never where the client says it is). `explicit`
    /// hosts may resolve to internal addresses.
    TunnelByName { host: String, explicit: bool },
    /// Splice blind to the address the client dialled (redirected, unlisted hosts tunnelled).
    TunnelToOriginal(SocketAddr),
    /// Refuse, for this reason (a 403, or a TLS `access_denied` alert).
    Refuse(Refused, String),
}

/// What kind of refusal a [`Route::Refuse`] is: the `reason` label of
/// `pipgate_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// The host is no index or file host, nor allowed to be tunnelled.
    HostNotAllowed,
    /// The host is served or tunnelled, but not on this port.
    Port,
    /// A redirected connection to an unlisted host at an internal address.
    InternalAddress,
    /// Plain HTTP to a host pipgate only serves over TLS.
    PlainHttp,
    /// A redirected connection whose destination cannot be known.
    NoDestination,
}

impl Refused {
    /// The stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::HostNotAllowed => "host-not-allowed",
            Refused::Port => "port",
            Refused::InternalAddress => "internal-address",
            Refused::PlainHttp => "plain-http",
            Refused::NoDestination => "no-destination",
        }
    }
}

impl Policy {
    /// Whether pipgate terminates TLS for `host`: an index or file host, or the legacy alias
    /// of pypi.org when pypi.org is configured.
    pub fn intercepts(&self, host: &str) -> bool {
        self.is_intercepted(host) || self.is_legacy_alias(host)
    }

    /// Every host [`Policy::intercepts`] (canonical, config order, each once): the hosts
    /// pipgate mints leaves for, so the ones its CA must be allowed to vouch for.
    pub fn intercepted_hosts(&self) -> Vec<&str> {
        let mut hosts: Vec<&str> = Vec::new();
        for ix in self.indexes() {
            for host in std::iter::once(ix.host()).chain(ix.file_hosts().iter().map(String::as_str))
            {
                if !hosts.contains(&host) {
                    hosts.push(host);
                }
            }
        }
        if self.is_legacy_alias(LEGACY_PYPI) && !hosts.contains(&LEGACY_PYPI) {
            hosts.push(LEGACY_PYPI);
        }
        hosts
    }

    /// Whether `host` is pypi.python.org standing for a configured pypi.org (pipgate answers
    /// it itself with a redirect).
    pub fn is_legacy_alias(&self, host: &str) -> bool {
        host == LEGACY_PYPI && self.index_for_host("pypi.org").is_some()
    }

    /// Whether pipgate serves `host:port` over TLS (`tls`) or plain HTTP: port 443 of an
    /// intercepted host, or the port of an index URL on that index's own hosts, in the URL's
    /// scheme.
    pub fn serves(&self, host: &str, port: u16, tls: bool) -> bool {
        (tls && port == 443 && self.intercepts(host))
            || self.indexes().iter().any(|ix| {
                (ix.host() == host || ix.file_hosts().iter().any(|h| h == host))
                    && ix.port() == port
                    && ix.is_http() != tls
            })
    }

    /// What to do with a connection to `dest`.
    pub fn route(&self, network: &Network, dest: &Destination<'_>) -> Route {
        let port = dest.port;
        let tls = dest.arrival.tls();
        if let Some(host) = dest.host.filter(|h| self.intercepts(h)) {
            if self.serves(host, port, tls) {
                return Route::Intercept {
                    host: host.to_owned(),
                    probe: !self.is_legacy_alias(host),
                };
            }
            return refused_port(dest.arrival, host, port);
        }
        if dest.arrival == Arrival::AbsoluteForm {
            let host = dest.host.unwrap_or_default();
            return Route::Refuse(Refused::PlainHttp, plain_only(host, port));
        }
        let default_port = if tls { 443 } else { 80 };
        if let Some(host) = dest.host {
            let connect = dest.arrival == Arrival::Connect;
            // A CONNECT to an unlisted host, when they are tunnelled, is tunnelled by name too.
            let listed = network.listed(host) || (connect && network.unlisted == Unlisted::Tunnel);
            if listed {
                let explicit = network.explicit(host, port);
                if port != default_port && !explicit {
                    return Route::Refuse(
                        Refused::Port,
                        if connect {
                            format!("CONNECT to {host}:{port} refused: only port 443 is tunnelled unless the host is listed in network.tunnel_allow")
                        } else {
                            format!("{host}:{port} refused: only port {default_port} is tunnelled unless the host is listed in network.tunnel_allow")
                        },
                    );
                }
                return Route::TunnelByName {
                    host: host.to_owned(),
                    explicit,
                };
            }
            if connect {
                return Route::Refuse(Refused::HostNotAllowed, format!(
                    "CONNECT to {host} refused: it is no index or file host (allow it with network.tunnel_allow = [\"{host}\"], or network.unlisted_hosts = \"tunnel\")"
                ));
            }
        }
        let Some(orig) = dest.original else {
            return Route::Refuse(Refused::NoDestination, "no destination".into());
        };
        let what = match (tls, dest.host) {
            (true, Some(h)) => format!("SNI {h}"),
            (true, None) => "a ClientHello without SNI".to_owned(),
            (false, Some(h)) => format!("Host {h}"),
            (false, None) => "a request without Host".to_owned(),
        };
        if network.unlisted != Unlisted::Tunnel {
            return Route::Refuse(Refused::HostNotAllowed, format!(
                "{what} names no index or file host (to {orig}; allow it with network.tunnel_allow, or network.unlisted_hosts = \"tunnel\")"
            ));
        }
        if port != default_port {
            return Route::Refuse(
                Refused::Port,
                format!(
                "{what} to {orig} refused: only port {default_port} is tunnelled to unlisted hosts"
            ),
            );
        }
        if address::is_internal(orig.ip()) {
            return Route::Refuse(Refused::InternalAddress, format!(
                "{what} to {orig} refused: {} is an internal address (loopback, private, link-local or metadata)",
                orig.ip()
            ));
        }
        Route::TunnelToOriginal(orig)
    }
}

/// The refusal of an intercepted host on a port pipgate does not serve it on.
fn refused_port(arrival: Arrival, host: &str, port: u16) -> Route {
    let why = match arrival {
        Arrival::Connect => format!(
            "CONNECT to {host}:{port} refused: only port 443 (or the port of the index URL) is intercepted"
        ),
        Arrival::RedirectedTls => format!(
            "TLS to {host}:{port} refused: only port 443 (or the port of the index URL) is intercepted"
        ),
        Arrival::RedirectedHttp | Arrival::AbsoluteForm => {
            return Route::Refuse(Refused::PlainHttp, plain_only(host, port))
        }
    };
    Route::Refuse(Refused::Port, why)
}

fn plain_only(host: &str, port: u16) -> String {
    format!("plain-HTTP request for {host}:{port} refused: only indexes configured with an http:// URL are served without TLS")
}

#[cfg(test)]
mod tests;
