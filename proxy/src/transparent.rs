//! Transparent mode: connections redirected to `transparent_listen` (iptables/nftables REDIRECT)
//! are intercepted, tunnelled or refused by their SNI (or Host) exactly as a CONNECT would be.
//!
//! The client believes it is talking to the index itself, so nothing can be answered in HTTP
//! before TLS: a refused TLS connection gets a TLS `access_denied` alert and is closed, and no
//! certificate is ever minted for a host that is not configured. The redirect rules must exempt
//! pipgate's own upstream traffic (an iptables `--uid-owner` match on its user, say) when they
//! sit in the OUTPUT chain of the same network namespace; otherwise pipgate would dial itself.

pub(crate) mod client_hello;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub use client_hello::{ClientHello, HelloError};

use crate::config::{Config, Unlisted};
use crate::head::{self, Rewind};
use crate::intercept::{self, Tunnel, LEGACY_PYPI};
use crate::respond::Failure;
use crate::state::Shared;
use crate::{connect, server};
use pipgate_policy::address as addr;

/// Most bytes buffered while waiting for a complete ClientHello (a hello may be split into
/// many small records; each costs a 5-byte header).
const MAX_BUFFERED: usize = 4 * client_hello::MAX_HELLO;

/// A fatal TLS alert record, `access_denied` (49): tells a TLS client why, without a certificate.
const ALERT_ACCESS_DENIED: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49];

/// Serves redirected connections on `listener` until `shutdown` resolves. `own` lists pipgate's
/// listeners: a connection whose original destination is one of them is refused (a loop).
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    own: Vec<SocketAddr>,
    shutdown: impl Future<Output = ()>,
) {
    let own: Arc<[SocketAddr]> = own.into();
    server::accept_loop(
        "transparent",
        listener,
        shared,
        shutdown,
        move |shared, stream, peer, stop| serve(shared, stream, peer, own.clone(), stop),
    )
    .await;
}

/// One redirected connection: original destination, then the first bytes decide.
async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    own: Arc<[SocketAddr]>,
    stop: watch::Receiver<bool>,
) {
    let orig = match stream
        .local_addr()
        .and_then(|local| Ok((local, original_dst(&stream)?)))
    {
        Ok((local, orig)) if loops_back(orig, local, &own) => {
            log_refusal(
                &shared.metrics,
                peer,
                orig,
                None,
                "the original destination is pipgate itself (not redirected, or a redirect loop)",
            );
            return;
        }
        Ok((_, orig)) => orig,
        Err(e) => {
            tracing::info!(target: "pipgate::access", client = %peer, mode = "transparent", decision = "refuse", reason = %format!("no original destination (not redirected by NAT?): {e}"));
            return;
        }
    };
    let limits = shared.runtime.load().config.limits.clone();
    let deadline = tokio::time::Instant::now() + limits.header_timeout;
    let mut buf = BytesMut::with_capacity(2048);
    let hello = loop {
        match client_hello::parse(&buf) {
            Ok(Some(hello)) => break hello,
            Ok(None) if buf.len() >= MAX_BUFFERED => {
                return log_refusal(&shared.metrics, peer, orig, None, "ClientHello too large");
            }
            Ok(None) => {}
            Err(HelloError::NotTls) => {
                return plain_http(shared, stream, buf, orig, peer, stop).await
            }
            Err(e) => {
                let _ = stream.write_all(&ALERT_ACCESS_DENIED).await;
                return log_refusal(&shared.metrics, peer, orig, None, &e.to_string());
            }
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            // Closed, failed or too slow (slowloris before the hello): nothing to answer.
            _ => return,
        }
    };
    let rt = shared.runtime.load_full();
    let decision = decide(&rt.config, Proto::Tls, hello.sni.as_deref(), orig);
    drop(rt);
    let host = hello.sni.clone();
    match decision {
        Decision::Intercept(host) => {
            log_decision(&shared.metrics, peer, orig, &host, "intercept");
            let tunnel = Arc::new(Tunnel {
                host,
                port: orig.port(),
                scheme: "https",
                client: peer,
            });
            let io = Rewind::new(buf.freeze(), stream);
            connect::intercept_tls(shared, io, tunnel, limits, stop).await;
        }
        Decision::Refuse(reason) => {
            let _ = stream.write_all(&ALERT_ACCESS_DENIED).await;
            log_refusal(&shared.metrics, peer, orig, host.as_deref(), &reason);
        }
        tunnel => splice(shared, stream, buf.freeze(), tunnel, orig, peer, host).await,
    }
}

/// Redirected plain HTTP (port 80): the Host header names the destination.
async fn plain_http(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    mut buf: BytesMut,
    orig: SocketAddr,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let limits = shared.runtime.load().config.limits.clone();
    let head = match head::read_head(
        &mut stream,
        &mut buf,
        limits.max_header_bytes,
        limits.max_headers,
        limits.header_timeout,
    )
    .await
    {
        Ok(head) => head,
        Err(e) => {
            let Some(failure) = Failure::from_head(e) else {
                return;
            };
            let _ = stream.write_all(&failure.to_http1()).await;
            return log_refusal(&shared.metrics, peer, orig, None, &failure.message());
        }
    };
    let host = head
        .header("host")
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .map(|a| a.host().trim_end_matches('.').to_ascii_lowercase());
    let rt = shared.runtime.load_full();
    let decision = decide(&rt.config, Proto::Http, host.as_deref(), orig);
    drop(rt);
    match decision {
        Decision::Intercept(host) => {
            log_decision(&shared.metrics, peer, orig, &host, "intercept");
            let tunnel = Arc::new(Tunnel {
                host,
                port: orig.port(),
                scheme: "http",
                client: peer,
            });
            // Boxed, as on intercepted tunnels (see `connect::serve_http`).
            let service = service_fn(move |req| {
                Box::pin(intercept::handle(shared.clone(), tunnel.clone(), req))
            });
            let io = Rewind::new(buf.freeze(), stream);
            let io = TokioIo::new(connect::cut_stalled_reader(io, limits.client_idle_timeout));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(io, service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
        Decision::Refuse(reason) => {
            let f = Failure::Forbidden(reason);
            let _ = stream.write_all(&f.to_http1()).await;
            let _ = stream.shutdown().await;
            log_refusal(&shared.metrics, peer, orig, host.as_deref(), &f.message());
        }
        tunnel => splice(shared, stream, buf.freeze(), tunnel, orig, peer, host).await,
    }
}

/// Blind splice for a tunnel decision: the client's first bytes are replayed upstream.
async fn splice(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    first: Bytes,
    decision: Decision,
    orig: SocketAddr,
    peer: SocketAddr,
    host: Option<String>,
) {
    let rt = shared.runtime.load_full();
    let addrs = match &decision {
        Decision::TunnelByName { host, explicit } => {
            match rt.upstream.dialer().resolve(host, orig.port()).await {
                Ok(addrs) => match addrs
                    .iter()
                    .find(|a| !explicit && addr::is_internal(a.ip()))
                {
                    Some(bad) => {
                        let _ = stream.write_all(&ALERT_ACCESS_DENIED).await;
                        let reason =
                            format!("{host} resolves to the internal address {}", bad.ip());
                        return log_refusal(&shared.metrics, peer, orig, Some(host), &reason);
                    }
                    None => addrs,
                },
                Err(e) => {
                    return log_refusal(&shared.metrics, peer, orig, Some(host), &e.to_string())
                }
            }
        }
        _ => vec![orig],
    };
    let dialed = rt.upstream.dialer().connect(&addrs).await;
    let idle = rt.config.limits.client_idle_timeout;
    drop(rt);
    let mut upstream = match dialed {
        Ok(s) => s,
        Err(e) => {
            shared.metrics.upstream_error(e.kind());
            return log_refusal(&shared.metrics, peer, orig, host.as_deref(), &e.to_string());
        }
    };
    if upstream.write_all(&first).await.is_err() {
        return;
    }
    log_decision(
        &shared.metrics,
        peer,
        orig,
        host.as_deref().unwrap_or("-"),
        "tunnel",
    );
    connect::splice(&shared, &mut stream, &mut upstream, idle).await;
}

/// Which protocol the redirected connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Tls,
    Http,
}

/// What to do with a redirected connection.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Serve it as this configured host (TLS terminated with a leaf for it, or plain HTTP).
    Intercept(String),
    /// Splice to where the host resolves, as a CONNECT would: the client cannot pick the
    /// address by claiming an allowed name. `explicit` hosts may resolve to internal addresses.
    TunnelByName { host: String, explicit: bool },
    /// Splice to the address the client dialled (`unlisted_hosts = "tunnel"`).
    TunnelToOriginal,
    /// Close it, for this reason.
    Refuse(String),
}

/// The decision, from the config, the name the client gave (SNI or Host) and where it dialled.
fn decide(config: &Config, proto: Proto, host: Option<&str>, orig: SocketAddr) -> Decision {
    let policy = &config.policy;
    let port = orig.port();
    let default_port = match proto {
        Proto::Tls => 443,
        Proto::Http => 80,
    };
    if let Some(host) = host {
        let legacy = host == LEGACY_PYPI && policy.index_for_host("pypi.org").is_some();
        if legacy || policy.is_intercepted(host) {
            let served = policy.indexes().iter().any(|ix| {
                let host_matches = ix.host() == host || ix.file_hosts().iter().any(|h| h == host);
                host_matches && ix.port() == port && ix.is_http() == (proto == Proto::Http)
            });
            return match proto {
                Proto::Tls if port == 443 || served => Decision::Intercept(host.to_owned()),
                Proto::Http if served => Decision::Intercept(host.to_owned()),
                Proto::Tls => Decision::Refuse(format!(
                    "TLS to {host}:{port} refused: only port 443 (or the port of the index URL) is intercepted"
                )),
                Proto::Http => Decision::Refuse(format!(
                    "plain-HTTP request for {host}:{port} refused: only indexes configured with an http:// URL are served without TLS"
                )),
            };
        }
        if listed(&config.network.tunnel_allow, host) {
            let explicit = config.network.tunnel_allow.iter().any(|h| h == host)
                || config
                    .upstream
                    .resolve
                    .contains_key(&(host.to_owned(), port));
            if port != default_port && !explicit {
                return Decision::Refuse(format!(
                    "{host}:{port} refused: only port {default_port} is tunnelled unless the host is listed in network.tunnel_allow"
                ));
            }
            return Decision::TunnelByName {
                host: host.to_owned(),
                explicit,
            };
        }
    }
    let what = match (proto, host) {
        (Proto::Tls, Some(h)) => format!("SNI {h}"),
        (Proto::Tls, None) => "a ClientHello without SNI".to_owned(),
        (Proto::Http, Some(h)) => format!("Host {h}"),
        (Proto::Http, None) => "a request without Host".to_owned(),
    };
    if config.network.unlisted_hosts != Unlisted::Tunnel {
        return Decision::Refuse(format!(
            "{what} names no index or file host (to {orig}; allow it with network.tunnel_allow, or network.unlisted_hosts = \"tunnel\")"
        ));
    }
    if port != default_port {
        return Decision::Refuse(format!(
            "{what} to {orig} refused: only port {default_port} is tunnelled to unlisted hosts"
        ));
    }
    if addr::is_internal(orig.ip()) {
        return Decision::Refuse(format!(
            "{what} to {orig} refused: {} is an internal address (loopback, private, link-local or metadata)",
            orig.ip()
        ));
    }
    Decision::TunnelToOriginal
}

/// `network.tunnel_allow` matching (a leading `*.` matches any subdomain), without the
/// `unlisted_hosts` switch, which is handled on its own.
fn listed(patterns: &[String], host: &str) -> bool {
    patterns.iter().any(|p| match p.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.')),
        None => p == host,
    })
}

/// True when the connection was not redirected (its original destination is the socket
/// itself) or was aimed at one of pipgate's own listeners: serving it would loop.
fn loops_back(orig: SocketAddr, local: SocketAddr, own: &[SocketAddr]) -> bool {
    let orig = canonical(orig);
    let local = canonical(local);
    if orig == local {
        return true;
    }
    own.iter().map(|l| canonical(*l)).any(|l| {
        l.port() == orig.port()
            && (l.ip() == orig.ip()
                || (l.ip().is_unspecified()
                    && (orig.ip() == local.ip() || orig.ip().is_loopback())))
    })
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) compared as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// The destination the client dialled before NAT rewrote it: `SO_ORIGINAL_DST` for IPv4
/// (including IPv4 clients of a dual-stack socket), `IP6T_SO_ORIGINAL_DST` for IPv6.
fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    use nix::sys::socket::{getsockopt, sockopt, SockaddrIn, SockaddrIn6};
    let v4 = |stream: &TcpStream| -> io::Result<SocketAddr> {
        let raw = getsockopt(stream, sockopt::OriginalDst)?;
        Ok(SocketAddr::V4(SockaddrIn::from(raw).into()))
    };
    match stream.local_addr()? {
        SocketAddr::V4(_) => v4(stream),
        SocketAddr::V6(local) if local.ip().to_ipv4_mapped().is_some() => v4(stream),
        SocketAddr::V6(_) => {
            let raw = getsockopt(stream, sockopt::Ip6tOriginalDst)?;
            Ok(SocketAddr::V6(SockaddrIn6::from(raw).into()))
        }
    }
}

fn log_decision(
    metrics: &crate::metrics::Metrics,
    peer: SocketAddr,
    orig: SocketAddr,
    host: &str,
    decision: &'static str,
) {
    metrics.decision("transparent", decision);
    tracing::info!(target: "pipgate::access", client = %peer, mode = "transparent", original_dst = %orig, host, decision);
}

fn log_refusal(
    metrics: &crate::metrics::Metrics,
    peer: SocketAddr,
    orig: SocketAddr,
    host: Option<&str>,
    reason: &str,
) {
    metrics.decision("transparent", "refuse");
    tracing::info!(target: "pipgate::access", client = %peer, mode = "transparent", original_dst = %orig, host, decision = "refuse", reason);
}

#[cfg(test)]
mod tests;
