//! The accept loop every client-facing listener shares: admission at the edge (allow-list and
//! connection caps, before any byte is read), one task per connection with panics contained,
//! and a bounded drain at shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::access::Mode;
use crate::conn::Conn;
use crate::respond::Failure;
use crate::state::{Runtime, Shared};

/// How long in-flight work may take to finish after a shutdown signal.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The accept loop every client-facing listener shares: admission (allow-list, caps), one task
/// per connection with panics contained, and a bounded drain at shutdown. `handle` serves one
/// admitted connection; its `watch` turns true when in-flight work should wind down.
pub(crate) async fn accept_loop<H, F>(
    label: &'static str,
    mode: Mode,
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    handle: H,
) where
    H: Fn(Conn, TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = label, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some((guard, rt)) = admit(&shared, &stream, peer) else {
            continue;
        };
        let conn = Conn {
            shared: shared.clone(),
            rt,
            peer,
            mode,
            user: None,
            stop: stop_rx.clone(),
        };
        let task = handle(conn, stream);
        let shared = shared.clone();
        tracker.spawn(async move {
            // A bug reachable by one peer must not take the process (or anyone else) down.
            if AssertUnwindSafe(task).catch_unwind().await.is_err() {
                shared.metrics.panics.fetch_add(1, Relaxed);
                tracing::error!(listener = label, client = %peer, "connection task panicked; connection dropped");
            }
            drop(guard);
        });
    }
    // Close the socket now, so new clients are refused instead of queueing in the backlog.
    drop(listener);
    tracing::info!(
        listener = label,
        "shutting down: no new connections; waiting for in-flight requests"
    );
    let _ = stop_tx.send(true);
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = label,
            "shutdown grace period over; dropping remaining connections"
        );
    }
}

/// Releases a connection's slots when it ends.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
    peer: std::net::IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.metrics.connections_active.fetch_sub(1, SeqCst);
        if let Ok(mut map) = self.shared.per_client.lock() {
            if let Some(n) = map.get_mut(&self.peer) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.peer);
                }
            }
        }
    }
}

/// Admission at the edge: allow-list and connection caps, before any byte is read. The runtime
/// it decided under goes with the connection.
fn admit(
    shared: &Arc<Shared>,
    stream: &TcpStream,
    peer: SocketAddr,
) -> Option<(ConnGuard, Arc<Runtime>)> {
    let rt = shared.runtime.load_full();
    let access = &rt.config.access;
    let ip = canonical_ip(peer.ip());
    if !access.allow_clients.is_empty() && !access.allow_clients.iter().any(|n| n.contains(&ip)) {
        shared.metrics.connections_refused.fetch_add(1, Relaxed);
        tracing::warn!(client = %peer, "client not in access.allow_clients; connection closed");
        return None;
    }
    let limits = &rt.config.limits;
    let active = shared.metrics.connections_active.fetch_add(1, SeqCst);
    let per_client = match shared.per_client.lock() {
        Ok(mut map) => {
            let n = map.entry(ip).or_insert(0);
            *n += 1;
            *n
        }
        Err(_) => 0,
    };
    shared.metrics.connections_total.fetch_add(1, Relaxed);
    let guard = ConnGuard {
        shared: shared.clone(),
        peer: ip,
    };
    let _ = stream.set_nodelay(true);
    let over = if active as usize >= limits.max_connections {
        Some(format!(
            "limits.max_connections ({}) reached",
            limits.max_connections
        ))
    } else if per_client > limits.max_connections_per_client {
        Some(format!(
            "limits.max_connections_per_client ({}) reached for {ip}",
            limits.max_connections_per_client
        ))
    } else {
        None
    };
    if let Some(reason) = over {
        shared.metrics.connections_refused.fetch_add(1, Relaxed);
        tracing::warn!(client = %peer, %reason, "load shed");
        // Answer 503 on the side so the accept loop never waits on a slow client.
        shed(stream, &Failure::Overloaded(reason).to_http1());
        return None;
    }
    Some((guard, rt))
}

/// Writes a 503 without blocking the accept loop; the socket is closed after.
fn shed(stream: &TcpStream, bytes: &[u8]) {
    // try_write never blocks; a full socket buffer on a fresh connection is unlikely, and a
    // client that cannot take 200 bytes is not owed an explanation.
    let _ = stream.try_write(bytes);
}

/// IPv4-mapped IPv6 peers (dual-stack listeners) are matched as IPv4.
pub(crate) fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}
