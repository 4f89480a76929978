//! `CONNECT host:port` on the proxy listener: ask the policy what the connection may be, then do
//! the I/O the answer implies (for an intercepted host, reach it before answering `200`; for a
//! tunnel, resolve, refuse internal addresses unless named, dial, splice).

use std::time::{Duration, Instant};

use bytes::Bytes;
use pipgate_policy::{Arrival, Destination, Refused, Route};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::access::Access;
use crate::conn::Conn;
use crate::head::{Head, Rewind};
use crate::respond::{Failure, Form};
use crate::{tls, tunnel};

/// A successful upstream handshake is trusted for this long before CONNECT probes again.
const HEALTHY_FOR: Duration = Duration::from_secs(30);

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// Serves a CONNECT whose head is `head`; `rest` is what the client sent after it.
pub(crate) async fn connect(conn: Conn, mut stream: TcpStream, rest: Bytes, head: Head) {
    let Some((host, port)) = crate::config::split_host_port(&head.target) else {
        let f = Failure::BadRequest(format!("CONNECT target {:?} is not host:port", head.target));
        return refuse(&conn, &mut stream, &head.target, None, f).await;
    };
    let host = host.trim_end_matches('.').to_owned();
    let config = &conn.rt.config;
    let dest = Destination {
        arrival: Arrival::Connect,
        host: Some(&host),
        port,
        original: None,
    };
    match config.policy.route(&config.network, &dest) {
        Route::Intercept { host, probe } => {
            // Boxed, as every step that ends before the connection does: the task keeps no room
            // for it while the connection is served.
            // With a file cache, an unreachable upstream does not refuse the CONNECT: its
            // requests may be answered from the cache (the others get the usual 502 each).
            if probe && conn.shared.cache.is_none() {
                if let Err(f) = Box::pin(reach(&conn, &host, port)).await {
                    return refuse(&conn, &mut stream, &head.target, Some(port), f).await;
                }
            }
            if stream.write_all(ESTABLISHED).await.is_err() {
                return;
            }
            tls::intercept(conn, Rewind::new(rest, stream), host, port).await;
        }
        Route::TunnelByName { host, explicit } => {
            let what = format!("CONNECT to {host}");
            let dialed =
                Box::pin(tunnel::dial_by_name(&conn.rt, &host, port, explicit, &what)).await;
            let mut upstream = match dialed {
                Ok(s) => s,
                Err(f) => return refuse(&conn, &mut stream, &head.target, Some(port), f).await,
            };
            if stream.write_all(ESTABLISHED).await.is_err() {
                return;
            }
            Access {
                client: Some(conn.peer),
                user: conn.user.as_deref(),
                mode: Some(conn.mode),
                method: Some("CONNECT"),
                host: Some(&host),
                port: Some(port),
                decision: Some("tunnel"),
                ..Access::default()
            }
            .emit();
            let idle = conn.limits().client_idle_timeout;
            tunnel::splice(&conn.shared, &mut stream, &mut upstream, &rest, idle).await;
        }
        // A CONNECT names its host: it is never spliced to an address of the client's choosing.
        Route::TunnelToOriginal(_) => {
            let f = Failure::Forbidden(
                Refused::HostNotAllowed,
                format!("CONNECT to {host}:{port} refused"),
            );
            refuse(&conn, &mut stream, &head.target, Some(port), f).await;
        }
        Route::Refuse(why, reason) => {
            let f = Failure::Forbidden(why, reason);
            refuse(&conn, &mut stream, &head.target, Some(port), f).await;
        }
    }
}

/// Reaches `host:port` (DNS, TCP and a TLS handshake) before the client is told `200`, so an
/// unreachable or untrusted upstream is reported to the CONNECT; a success is trusted for
/// [`HEALTHY_FOR`].
async fn reach(conn: &Conn, host: &str, port: u16) -> Result<(), Failure> {
    let shared = &conn.shared;
    let key = (host.to_owned(), port);
    if let Some(at) = shared.healthy.get(&key) {
        if at.elapsed() < HEALTHY_FOR {
            return Ok(());
        }
    }
    match conn.rt.upstream.probe_tls(host, port).await {
        Ok(()) => {
            shared.healthy.insert(key, Instant::now());
            Ok(())
        }
        Err(error) => {
            shared.healthy.remove(&key);
            Err(Failure::Upstream {
                host: host.to_owned(),
                error,
            })
        }
    }
}

async fn refuse(conn: &Conn, stream: &mut TcpStream, target: &str, port: Option<u16>, f: Failure) {
    if let Failure::Upstream { error, .. } = &f {
        conn.shared.metrics.upstream_error(error.kind());
    }
    conn.shared.metrics.refusal(conn.mode.as_str(), f.refusal());
    let reason = f.message();
    Access {
        client: Some(conn.peer),
        user: conn.user.as_deref(),
        mode: Some(conn.mode),
        method: Some("CONNECT"),
        host: Some(target),
        port,
        decision: Some("refuse"),
        status: Some(f.status().as_u16()),
        rule: Some(f.rule()),
        reason: Some(&reason),
        ..Access::default()
    }
    .emit();
    f.send_raw(stream, Form::Http1).await;
}
