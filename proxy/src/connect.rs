//! After the first request head: CONNECT is intercepted (TLS terminated with a minted leaf and
//! served as HTTP/1.1 or HTTP/2), tunnelled blind, or refused; absolute-form requests go to
//! plain-HTTP indexes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::config::raw_split_host_port;
use crate::head::{Head, Rewind};
use crate::intercept::{self, Tunnel, LEGACY_PYPI};
use crate::respond::Failure;
use crate::state::{Runtime, Shared};
use pipgate_policy::address as addr;

/// A successful upstream handshake is trusted for this long before CONNECT probes again.
const HEALTHY_FOR: Duration = Duration::from_secs(30);

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// What to do with a CONNECT.
enum Plan {
    Intercept,
    Tunnel(Vec<SocketAddr>),
}

pub async fn connect(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    rest: Bytes,
    head: Head,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let rt = shared.runtime.load_full();
    let (host, port) = match raw_split_host_port(&head.target) {
        Some((h, p)) => (h.trim_end_matches('.').to_owned(), p),
        None => {
            let f =
                Failure::BadRequest(format!("CONNECT target {:?} is not host:port", head.target));
            return refuse(&mut stream, peer, &head.target, f).await;
        }
    };
    let plan = match plan(&shared, &rt, &host, port).await {
        Ok(plan) => plan,
        Err(f) => return refuse(&mut stream, peer, &head.target, f).await,
    };
    let tunnel = Arc::new(Tunnel {
        host,
        port,
        scheme: "https",
        client: peer,
    });
    match plan {
        Plan::Intercept => {
            if stream.write_all(ESTABLISHED).await.is_err() {
                return;
            }
            let limits = rt.config.limits.clone();
            drop(rt);
            intercept_tls(shared, Rewind::new(rest, stream), tunnel, limits, stop).await;
        }
        Plan::Tunnel(addrs) => {
            let dialed = rt.upstream.dialer().connect(&addrs).await;
            let idle = rt.config.limits.client_idle_timeout;
            drop(rt);
            let mut upstream = match dialed {
                Ok(s) => s,
                Err(error) => {
                    shared.metrics.upstream_error(error.kind());
                    let f = Failure::Upstream {
                        host: tunnel.host.clone(),
                        error,
                    };
                    return refuse(&mut stream, peer, &head.target, f).await;
                }
            };
            if stream.write_all(ESTABLISHED).await.is_err() {
                return;
            }
            if !rest.is_empty() && upstream.write_all(&rest).await.is_err() {
                return;
            }
            tracing::info!(target: "pipgate::access", client = %peer, method = "CONNECT", host = %tunnel.host, port, decision = "tunnel", "blind tunnel");
            splice(&shared, &mut stream, &mut upstream, idle).await;
        }
    }
}

/// Decides intercept / tunnel / refuse for host:port, probing the upstream before `200`.
async fn plan(shared: &Shared, rt: &Runtime, host: &str, port: u16) -> Result<Plan, Failure> {
    let policy = &rt.config.policy;
    let legacy = host == LEGACY_PYPI && policy.index_for_host("pypi.org").is_some();
    if legacy || policy.is_intercepted(host) {
        let allowed_port = port == 443
            || policy
                .indexes()
                .iter()
                .any(|ix| ix.host() == host && ix.port() == port && !ix.is_http());
        if !allowed_port {
            return Err(Failure::Forbidden(format!(
                "CONNECT to {host}:{port} refused: only port 443 (or the port of the index URL) is intercepted"
            )));
        }
        if !legacy {
            probe(shared, rt, host, port).await?;
        }
        return Ok(Plan::Intercept);
    }
    let network = &rt.config.network;
    if !network.tunnel_allowed(host) {
        return Err(Failure::Forbidden(format!(
            "CONNECT to {host} refused: it is no index or file host (allow it with network.tunnel_allow = [\"{host}\"], or network.unlisted_hosts = \"tunnel\")"
        )));
    }
    // Explicitly configured: named in tunnel_allow or given a resolve override.
    let explicit = network.tunnel_allow.iter().any(|h| h == host)
        || rt
            .config
            .upstream
            .resolve
            .contains_key(&(host.to_owned(), port));
    if port != 443 && !explicit {
        return Err(Failure::Forbidden(format!(
            "CONNECT to {host}:{port} refused: only port 443 is tunnelled unless the host is listed in network.tunnel_allow"
        )));
    }
    let addrs = rt
        .upstream
        .dialer()
        .resolve(host, port)
        .await
        .map_err(|error| Failure::Upstream {
            host: host.to_owned(),
            error,
        })?;
    if !explicit {
        if let Some(bad) = addrs.iter().find(|a| addr::is_internal(a.ip())) {
            return Err(Failure::Forbidden(format!(
                "CONNECT to {host} refused: it resolves to the internal address {} (loopback, private, link-local or metadata)",
                bad.ip()
            )));
        }
    }
    Ok(Plan::Tunnel(addrs))
}

async fn probe(shared: &Shared, rt: &Runtime, host: &str, port: u16) -> Result<(), Failure> {
    let key = (host.to_owned(), port);
    if let Some(at) = shared.healthy.get(&key) {
        if at.elapsed() < HEALTHY_FOR {
            return Ok(());
        }
    }
    match rt.upstream.probe_tls(host, port).await {
        Ok(()) => {
            shared.healthy.insert(key, Instant::now());
            Ok(())
        }
        Err(error) => {
            shared.healthy.remove(&key);
            shared.metrics.upstream_error(error.kind());
            Err(Failure::Upstream {
                host: host.to_owned(),
                error,
            })
        }
    }
}

async fn refuse(stream: &mut TcpStream, peer: SocketAddr, target: &str, f: Failure) {
    tracing::info!(target: "pipgate::access", client = %peer, method = "CONNECT", host = %target, status = f.status().as_u16(), rule = f.rule(), reason = %f.message());
    let _ = stream.write_all(&f.to_http1()).await;
    let _ = stream.shutdown().await;
}

/// `io`, whose writes fail with `TimedOut` once one has waited `limit`: a client that takes no
/// bytes of a response for `client_idle_timeout` is cut off. Until it is, its download holds a
/// share of the host's upstream HTTP/2 connection that nobody else can use
/// (`readers_that_stop_...` in the limits tests). Only a write that is already waiting arms the
/// timer.
pub(crate) fn cut_stalled_reader<IO>(
    io: IO,
    limit: Duration,
) -> Pin<Box<tokio_io_timeout::TimeoutStream<IO>>>
where
    IO: AsyncRead + AsyncWrite,
{
    let mut io = tokio_io_timeout::TimeoutStream::new(io);
    io.set_write_timeout(Some(limit));
    Box::pin(io)
}

/// Terminates TLS with a leaf for the SNI (or the CONNECT host) and serves HTTP on it.
pub(crate) async fn intercept_tls<IO>(
    shared: Arc<Shared>,
    io: IO,
    tunnel: Arc<Tunnel>,
    limits: crate::config::Limits,
    stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = cut_stalled_reader(io, limits.client_idle_timeout);
    // A task is as large as its largest state. The handshake's futures are boxed (and freed
    // once done), and so is the serving of HTTP, so a connection that sits idle does not carry
    // room for a handshake (bench, 2,000 idle tunnels: 85 -> 76 MiB).
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = match Box::pin(tokio::time::timeout(limits.header_timeout, acceptor)).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            tracing::info!(client = %tunnel.client, host = %tunnel.host, error = %e, "TLS ClientHello refused");
            return;
        }
        Err(_) => return,
    };
    let sni = start
        .client_hello()
        .server_name()
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase());
    let leaf_host = match sni {
        None => tunnel.host.clone(),
        Some(sni) => {
            let rt = shared.runtime.load();
            let policy = &rt.config.policy;
            let mintable = policy.is_intercepted(&sni)
                || (sni == LEGACY_PYPI && policy.index_for_host("pypi.org").is_some());
            if !mintable {
                // Mint only for configured hosts: an SNI naming anything else gets no certificate.
                tracing::info!(client = %tunnel.client, host = %tunnel.host, %sni, "SNI names no intercepted host; closing");
                return;
            }
            sni
        }
    };
    let config = match shared.leaves.server_config(&leaf_host) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(host = %leaf_host, error = %e, "cannot mint a leaf certificate");
            return;
        }
    };
    let handshake = tokio::time::timeout(limits.header_timeout, start.into_stream(config));
    let tls = match Box::pin(handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(client = %tunnel.client, host = %tunnel.host, error = %e, "TLS handshake with client failed");
            return;
        }
        Err(_) => return,
    };
    Box::pin(serve_http(shared, TokioIo::new(tls), tunnel, &limits, stop)).await;
}

/// Serves HTTP/1.1 and HTTP/2 on an intercepted connection until it ends or shutdown.
async fn serve_http<IO>(
    shared: Arc<Shared>,
    io: TokioIo<IO>,
    tunnel: Arc<Tunnel>,
    limits: &crate::config::Limits,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed: hyper keeps room for one in-flight request future per HTTP/1 connection, so an
    // idle connection would otherwise hold that whole (7 KB) state machine.
    let service =
        service_fn(move |req| Box::pin(intercept::handle(shared.clone(), tunnel.clone(), req)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Slowloris inside the tunnel: the next request head must arrive in time.
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        // Rapid reset (CVE-2023-44487): cap streams reset before they were answered.
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Absolute-form plain-HTTP requests (`GET http://host/...`), for `http://` indexes only.
pub async fn plain<IO>(
    shared: Arc<Shared>,
    io: IO,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.runtime.load().config.limits.clone();
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        async move {
            let uri = req.uri();
            let host = uri
                .host()
                .unwrap_or("")
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let port = uri.port_u16().unwrap_or(80);
            let rt = shared.runtime.load();
            let is_http_index = uri.scheme_str() == Some("http")
                && rt.config.policy.indexes().iter().any(|ix| {
                    ix.is_http()
                        && ix.port() == port
                        && (ix.host() == host || ix.file_hosts().contains(&host))
                });
            drop(rt);
            if !is_http_index {
                let f = Failure::Forbidden(format!(
                    "plain-HTTP request for {host}:{port} refused: only indexes configured with an http:// URL are served without TLS"
                ));
                tracing::info!(target: "pipgate::access", client = %peer, host = %host, status = 403, rule = f.rule());
                return Ok(f.into_response());
            }
            let tunnel = Arc::new(Tunnel {
                host,
                port,
                scheme: "http",
                client: peer,
            });
            intercept::handle(shared, tunnel, req).await
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(
            TokioIo::new(cut_stalled_reader(io, limits.client_idle_timeout)),
            service,
        );
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A blind tunnel: bytes copied both ways (counted in `tunnels_active`) until either side
/// closes or nothing moves for `idle`.
pub(crate) async fn splice(shared: &Shared, a: &mut TcpStream, b: &mut TcpStream, idle: Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    shared.metrics.tunnels_active.fetch_add(1, Relaxed);
    let _ = copy_with_idle(a, b, idle).await;
    shared.metrics.tunnels_active.fetch_sub(1, Relaxed);
}

/// Copies both ways until either side closes or nothing moves for `idle`.
async fn copy_with_idle(
    a: &mut TcpStream,
    b: &mut TcpStream,
    idle: Duration,
) -> std::io::Result<()> {
    let (mut ar, mut aw) = a.split();
    let (mut br, mut bw) = b.split();
    let last = std::sync::Mutex::new(Instant::now());
    let both =
        async { tokio::try_join!(pump(&mut ar, &mut bw, &last), pump(&mut br, &mut aw, &last)) };
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

async fn pump<R, W>(r: &mut R, w: &mut W, last: &std::sync::Mutex<Instant>) -> std::io::Result<()>
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
        if let Ok(mut t) = last.lock() {
            *t = Instant::now();
        }
    }
}
