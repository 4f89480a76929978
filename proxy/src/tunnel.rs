//! Blind tunnels: a connection pipgate does not inspect, spliced to where its host resolves
//! (never to an address the client picks by claiming an allowed name), or to the address a
//! redirected client dialled.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use pipgate_policy::{address, Refused};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::respond::Failure;
use crate::state::{Runtime, Shared};

/// Resolves `host` and dials it, refusing an internal address (loopback, private, link-local,
/// metadata) unless the configuration names the host (`explicit`).
pub(crate) async fn dial_by_name(
    rt: &Runtime,
    host: &str,
    port: u16,
    explicit: bool,
    what: &str,
) -> Result<TcpStream, Failure> {
    let dialer = rt.upstream.dialer();
    let upstream = |error| Failure::Upstream {
        host: host.to_owned(),
        error,
    };
    let addrs = dialer.resolve(host, port).await.map_err(upstream)?;
    if !explicit {
        if let Some(bad) = addrs.iter().find(|a| address::is_internal(a.ip())) {
            return Err(Failure::Forbidden(Refused::InternalAddress, format!(
                "{what} refused: it resolves to the internal address {} (loopback, private, link-local or metadata)",
                bad.ip()
            )));
        }
    }
    dialer.connect(&addrs).await.map_err(upstream)
}

/// Dials the address a redirected client was going to.
pub(crate) async fn dial_original(rt: &Runtime, orig: SocketAddr) -> Result<TcpStream, Failure> {
    rt.upstream
        .dialer()
        .connect(&[orig])
        .await
        .map_err(|error| Failure::Upstream {
            host: orig.to_string(),
            error,
        })
}

/// Copies both ways (counted in `tunnels_active`) until either side closes or nothing moves
/// for `idle`; `first` (what the client sent before the tunnel was decided) goes first.
pub(crate) async fn splice(
    shared: &Shared,
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    first: &[u8],
    idle: Duration,
) {
    if !first.is_empty() && upstream.write_all(first).await.is_err() {
        return;
    }
    shared.metrics.tunnels_active.fetch_add(1, Relaxed);
    let start = Instant::now();
    let moved = AtomicU64::new(first.len() as u64);
    let _ = copy_with_idle(client, upstream, idle, &moved).await;
    shared.metrics.tunnels_active.fetch_sub(1, Relaxed);
    let moved = moved.load(Relaxed);
    shared.metrics.served("tunnel", 200, start.elapsed(), moved);
}

/// Copies both ways until either side closes or nothing moves for `idle`.
async fn copy_with_idle(
    a: &mut TcpStream,
    b: &mut TcpStream,
    idle: Duration,
    moved: &AtomicU64,
) -> std::io::Result<()> {
    let (mut ar, mut aw) = a.split();
    let (mut br, mut bw) = b.split();
    let last = std::sync::Mutex::new(Instant::now());
    let both = async {
        tokio::try_join!(
            pump(&mut ar, &mut bw, &last, moved),
            pump(&mut br, &mut aw, &last, moved)
        )
    };
    let watchdog = async {
        loop {
            tokio::time::sleep(idle / 4).await;
            let quiet = last.lock().map(|t| t.elapsed()).unwrap_or_default();
            if quiet >= idle {
                return;
            }
        }
    };
    tokio::select! {
        r = both => r.map(|_| ()),
        () = watchdog => Ok(()),
    }
}

async fn pump<R, W>(
    r: &mut R,
    w: &mut W,
    last: &std::sync::Mutex<Instant>,
    moved: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::io::AsyncReadExt::read(r, &mut buf).await?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        moved.fetch_add(n as u64, Relaxed);
        if let Ok(mut t) = last.lock() {
            *t = Instant::now();
        }
    }
}
