//! Transparent mode: connections redirected to `transparent_listen` (iptables/nftables REDIRECT)
//! are intercepted, tunnelled or refused by their SNI (or Host) as the policy routes them, the
//! same decision a CONNECT gets.
//!
//! The client believes it is talking to the index itself, so nothing can be answered in HTTP
//! before TLS: a refused TLS connection gets a TLS alert and is closed, and no certificate is
//! ever minted for a host that is not configured. The redirect rules must exempt pipgate's own
//! upstream traffic (an iptables `--uid-owner` match on its user, say) when they sit in the
//! OUTPUT chain of the same network namespace; otherwise pipgate would dial itself.

pub(crate) mod client_hello;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::BytesMut;
use pipgate_policy::{Arrival, Destination, Refused, Route};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use client_hello::HelloError;

use crate::accept;
use crate::access::{Access, Mode};
use crate::conn::Conn;
use crate::head::{self, Rewind};
use crate::intercept::Scheme;
use crate::respond::{Failure, Form};
use crate::state::Shared;
use crate::{serve, tls, tunnel};

/// Most bytes buffered while waiting for a complete ClientHello (a hello may be split into
/// many small records; each costs a 5-byte header).
const MAX_BUFFERED: usize = 4 * client_hello::MAX_HELLO;

/// Serves redirected connections on `listener` until `shutdown` resolves. `own` lists pipgate's
/// listeners: a connection whose original destination is one of them is refused (a loop).
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    own: Vec<SocketAddr>,
    shutdown: impl Future<Output = ()>,
) {
    let own: Arc<[SocketAddr]> = own.into();
    accept::accept_loop(
        "transparent",
        Mode::Transparent,
        listener,
        shared,
        shutdown,
        move |conn, stream| serve(conn, stream, own.clone()),
    )
    .await;
}

/// One redirected connection: original destination, then the first bytes decide.
async fn serve(conn: Conn, mut stream: TcpStream, own: Arc<[SocketAddr]>) {
    let orig = match stream
        .local_addr()
        .and_then(|local| Ok((local, original_dst(&stream)?)))
    {
        // Not a client of pipgate's (nothing redirected it here): it is owed no answer.
        Ok((local, orig)) if loops_back(orig, local, &own) => {
            let reason =
                "the original destination is pipgate itself (not redirected, or a redirect loop)";
            return refused(&conn, Some(orig), None, "loop", reason);
        }
        Ok((_, orig)) => orig,
        Err(e) => {
            let reason = format!("no original destination (not redirected by NAT?): {e}");
            return refused(&conn, None, None, "no-destination", &reason);
        }
    };
    let deadline = tokio::time::Instant::now() + conn.limits().header_timeout;
    let mut buf = BytesMut::with_capacity(2048);
    let hello = loop {
        let failure = match client_hello::parse(&buf) {
            Ok(Some(hello)) => break hello,
            Ok(None) if buf.len() >= MAX_BUFFERED => {
                Failure::HeadTooLarge("ClientHello too large".into())
            }
            Ok(None) => {
                match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => continue,
                    // Closed, failed or too slow (slowloris before the hello): nothing to answer.
                    _ => return,
                }
            }
            Err(HelloError::NotTls) => return plain_http(conn, stream, buf, orig).await,
            Err(e) => Failure::BadRequest(e.to_string()),
        };
        return refuse(&conn, &mut stream, orig, None, Form::Tls, failure).await;
    };
    let dest = Destination {
        arrival: Arrival::RedirectedTls,
        host: hello.sni.as_deref(),
        port: orig.port(),
        original: Some(orig),
    };
    let route = conn.rt.config.policy.route(&conn.rt.config.network, &dest);
    if let Route::Intercept { host, .. } = route {
        decided(&conn, orig, &host, "intercept");
        let io = Rewind::new(buf.freeze(), stream);
        return tls::intercept(conn, io, host, orig.port()).await;
    }
    go(
        conn,
        stream,
        buf,
        orig,
        hello.sni.as_deref(),
        route,
        Form::Tls,
    )
    .await;
}

/// Redirected plain HTTP (port 80): the Host header names the destination.
async fn plain_http(conn: Conn, mut stream: TcpStream, mut buf: BytesMut, orig: SocketAddr) {
    let limits = conn.limits().clone();
    let read = head::read_head(
        &mut stream,
        &mut buf,
        limits.max_header_bytes,
        limits.max_headers,
        limits.header_timeout,
    );
    let head = match read.await {
        Ok(head) => head,
        Err(e) => {
            let Some(failure) = Failure::from_head(e) else {
                return;
            };
            return refuse(&conn, &mut stream, orig, None, Form::Http1, failure).await;
        }
    };
    let host = head
        .header("host")
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .map(|a| a.host().trim_end_matches('.').to_ascii_lowercase());
    let dest = Destination {
        arrival: Arrival::RedirectedHttp,
        host: host.as_deref(),
        port: orig.port(),
        original: Some(orig),
    };
    let route = conn.rt.config.policy.route(&conn.rt.config.network, &dest);
    if let Route::Intercept { host, .. } = route {
        decided(&conn, orig, &host, "intercept");
        // hyper reads the request again from the start.
        let io = serve::guard(
            Rewind::new(buf.freeze(), stream),
            limits.client_idle_timeout,
        );
        return tls::serve_intercepted(conn, io, host, orig.port(), Scheme::Http).await;
    }
    go(conn, stream, buf, orig, host.as_deref(), route, Form::Http1).await;
}

/// What is left of a route once interception is ruled out: a blind splice (the client's first
/// bytes replayed upstream), or the refusal in the client's own protocol.
async fn go(
    conn: Conn,
    mut stream: TcpStream,
    first: BytesMut,
    orig: SocketAddr,
    host: Option<&str>,
    route: Route,
    form: Form,
) {
    let dialed = match route {
        Route::TunnelByName { host, explicit } => {
            tunnel::dial_by_name(&conn.rt, &host, orig.port(), explicit, &host).await
        }
        Route::TunnelToOriginal(to) => tunnel::dial_original(&conn.rt, to).await,
        Route::Refuse(why, reason) => Err(Failure::Forbidden(why, reason)),
        Route::Intercept { .. } => Err(Failure::Forbidden(
            Refused::HostNotAllowed,
            "intercepted hosts are served".into(),
        )),
    };
    let mut upstream = match dialed {
        Ok(upstream) => upstream,
        Err(f) => return refuse(&conn, &mut stream, orig, host, form, f).await,
    };
    decided(&conn, orig, host.unwrap_or("-"), "tunnel");
    let idle = conn.limits().client_idle_timeout;
    tunnel::splice(&conn.shared, &mut stream, &mut upstream, &first, idle).await;
}

/// Counts and logs what a redirected connection was given.
fn decided(conn: &Conn, orig: SocketAddr, host: &str, decision: &'static str) {
    conn.shared.metrics.decision("transparent", decision);
    Access {
        client: Some(conn.peer),
        user: conn.user.as_deref(),
        mode: Some(conn.mode),
        original_dst: Some(orig),
        host: Some(host),
        decision: Some(decision),
        ..Access::default()
    }
    .emit();
}

/// Refuses a redirected connection, in the protocol it speaks.
async fn refuse(
    conn: &Conn,
    stream: &mut TcpStream,
    orig: SocketAddr,
    host: Option<&str>,
    form: Form,
    f: Failure,
) {
    if let Failure::Upstream { error, .. } = &f {
        conn.shared.metrics.upstream_error(error.kind());
    }
    let (why, reason) = (f.refusal(), f.message());
    f.send_raw(stream, form).await;
    refused(conn, Some(orig), host, why, &reason);
}

/// Counts and logs a refused redirected connection.
fn refused(
    conn: &Conn,
    orig: Option<SocketAddr>,
    host: Option<&str>,
    why: &'static str,
    reason: &str,
) {
    conn.shared.metrics.decision("transparent", "refuse");
    conn.shared.metrics.refusal(conn.mode.as_str(), why);
    Access {
        client: Some(conn.peer),
        user: conn.user.as_deref(),
        mode: Some(conn.mode),
        original_dst: orig,
        host,
        decision: Some("refuse"),
        reason: Some(reason),
        ..Access::default()
    }
    .emit();
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

#[cfg(test)]
mod tests;
