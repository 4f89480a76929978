//! The proxy listener's connections: the first request head (read ourselves, so CONNECT,
//! malformed lines, oversized heads and slow clients get a precise answer), proxy
//! authentication, then a CONNECT or absolute-form plain HTTP.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::{TcpListener, TcpStream};

use crate::accept::{self, canonical_ip};
use crate::access::Mode;
use crate::conn::Conn;
use crate::head;
use crate::respond::{Failure, Form};
use crate::state::Shared;
use crate::{connect, plain};

/// How long a request with wrong proxy credentials waits for its 407.
const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);

/// Serves the proxy listener until `shutdown` resolves, then lets in-flight connections finish
/// (bounded by [`accept::SHUTDOWN_GRACE`]).
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    accept::accept_loop("proxy", Mode::Proxy, listener, shared, shutdown, serve).await;
}

/// Whether the connection's first request may go on: it carries valid proxy credentials
/// (their user is noted in `conn`), or none are configured. A refusal has been answered (407)
/// when it returns false.
async fn authenticated(conn: &mut Conn, head: &head::Head, stream: &mut TcpStream) -> bool {
    // Owned here, not borrowed from `conn`, for the checks below to be held across awaits.
    let (rt, shared) = (conn.rt.clone(), conn.shared.clone());
    let Some(creds) = rt.credentials.as_ref() else {
        return true;
    };
    let header = head.header("proxy-authorization");
    let client = canonical_ip(conn.peer.ip());
    let metrics = &shared.metrics;
    let refusal = match creds.verify(header, client, &metrics.auth_hashes).await {
        Ok(user) => {
            conn.user = Some(user);
            return true;
        }
        Err(refusal) => refusal,
    };
    metrics.auth_failure(refusal.as_str());
    tracing::info!(client = %conn.peer, method = %head.method, reason = refusal.as_str(), "proxy authentication failed");
    if refusal != crate::auth::Refusal::Missing {
        // Wrong credentials wait for their answer: a client that guesses gets one try a second
        // per connection, not as many as pipgate can answer (which starved the clients that
        // had logged in: bench, `auth` load).
        let mut stop = conn.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(AUTH_FAILURE_DELAY) => {}
            _ = stop.changed() => {}
        }
    }
    Failure::ProxyAuth.send_raw(stream, Form::Http1).await;
    false
}

async fn serve(mut conn: Conn, mut stream: TcpStream) {
    let limits = conn.limits().clone();
    let mut buf = BytesMut::with_capacity(1024);
    // Boxed and freed once read, as the TLS handshake (see `tls::intercept`).
    let read = head::read_head(
        &mut stream,
        &mut buf,
        limits.max_header_bytes,
        limits.max_headers,
        limits.header_timeout,
    );
    let head = match Box::pin(read).await {
        Ok(head) => head,
        Err(e) => {
            // A TLS record (handshake, TLS 1.0-1.3) where a request line should be.
            if buf.starts_with(&[0x16, 0x03]) {
                conn.shared
                    .metrics
                    .refusal(conn.mode.as_str(), "tls-to-proxy-port");
                tracing::warn!(client = %conn.peer, "the client speaks TLS to the proxy port: its proxy URL is https://; pipgate's proxy port takes plain HTTP (CONNECT is then TLS end to end): set HTTPS_PROXY=http://HOST:PORT, not https://");
                return;
            }
            let Some(failure) = Failure::from_head(e) else {
                return;
            };
            tracing::info!(client = %conn.peer, status = failure.status().as_u16(), reason = %failure.message(), "bad request head");
            return failure.send_raw(&mut stream, Form::Http1).await;
        }
    };
    if !authenticated(&mut conn, &head, &mut stream).await {
        return;
    }
    if head.method.eq_ignore_ascii_case("CONNECT") {
        // Bytes the client sent after the head (a TLS hello in a hurry) are copied out: a view
        // into `buf` would keep its whole allocation alive for the tunnel's life.
        let rest = Bytes::copy_from_slice(buf.get(head.len..).unwrap_or_default());
        drop(buf);
        connect::connect(conn, stream, rest, head).await;
    } else if head.target.starts_with("http://") {
        // hyper reads the request again from the start.
        let io = head::Rewind::new(buf.freeze(), stream);
        plain::serve(conn, io).await;
    } else {
        let failure = Failure::BadRequest(format!(
            "{} {}: pipgate is a forward proxy; send CONNECT host:443 or an absolute http:// URL",
            head.method, head.target
        ));
        failure.send_raw(&mut stream, Form::Http1).await;
    }
}
