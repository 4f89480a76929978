//! The local TLS origin standing in for pypi.org and files.pythonhosted.org (hyper + rustls,
//! h2 and http/1.1 by ALPN, TCP_NODELAY), serving the fixtures from memory. It runs as a process
//! of its own (`pipgate-bench --serve-origin DIR`), as nginx does in the reference setup:
//! inside the client's process the two shared one runtime, and "direct" measured that runtime's
//! scheduling (small-request p50 77–88 µs there, ~20 µs with the origin apart).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::fixtures::{self, Fixtures};
use crate::Res;

/// A response body: a whole buffer, or one chunk repeated (the 1 GiB file, never in memory).
#[derive(Debug)]
pub(crate) enum OriginBody {
    Full(Option<Bytes>),
    Repeat { chunk: Bytes, left: u64 },
}

impl http_body::Body for OriginBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let next = match this {
            OriginBody::Full(b) => b.take(),
            OriginBody::Repeat { chunk, left } => {
                if *left == 0 {
                    None
                } else {
                    let n = (*left).min(chunk.len() as u64);
                    *left -= n;
                    Some(chunk.slice(..n as usize))
                }
            }
        };
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OriginBody::Full(b) => b.is_none(),
            OriginBody::Repeat { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OriginBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            OriginBody::Repeat { left, .. } => SizeHint::with_exact(*left),
        }
    }
}

/// Whether the request's `Accept` names PEP 691 JSON (PyPI answers it JSON then).
fn wants_json(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/vnd.pypi.simple.v1+json"))
}

/// `304 Not Modified` answers given so far (the `cache` load reads it at
/// [`NOT_MODIFIED_COUNT`] to show that pipgate's page revalidation did get them).
static NOT_MODIFIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The origin's count of `304`s, as a decimal body.
pub(crate) const NOT_MODIFIED_COUNT: &str = "/_bench/not-modified";

/// The project `i` of `/simple/pgbench-w<i>/` or of `/packages/wh/<i>/...`.
fn wheel_index(path: &str, prefix: &str) -> Option<usize> {
    let rest = path.strip_prefix(prefix)?;
    rest.split('/').next()?.parse().ok()
}

/// Whether `req` is for a wheel (answered after [`fixtures::WHEEL_DELAY_MS`]).
pub(crate) fn is_wheel(req: &Request<Incoming>) -> bool {
    req.uri().path().starts_with(fixtures::WHEEL_FILE_PREFIX)
}

/// A page with its `ETag`; `304` without a body when `If-None-Match` names it.
fn page(
    req: &Request<Incoming>,
    body: &Bytes,
    ctype: &'static str,
    etag: &str,
) -> Response<OriginBody> {
    let matches = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    let mut r = if matches {
        NOT_MODIFIED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut r = Response::new(OriginBody::Full(None));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(OriginBody::Full(Some(body.clone())));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(ctype),
        );
        r
    };
    if let Ok(v) = header::HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn respond(fx: &Fixtures, req: &Request<Incoming>) -> Response<OriginBody> {
    let path = req.uri().path();
    if let Some((page, _)) =
        wheel_index(path, fixtures::WHEEL_PAGE_PREFIX).and_then(|i| fx.wheels.get(i))
    {
        let mut r = Response::new(OriginBody::Full(Some(page.clone())));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return r;
    }
    if let Some((_, wheel)) =
        wheel_index(path, fixtures::WHEEL_FILE_PREFIX).and_then(|i| fx.wheels.get(i))
    {
        let mut r = Response::new(OriginBody::Full(Some(wheel.clone())));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/octet-stream"),
        );
        return r;
    }
    let (body, ctype) = match path {
        NOT_MODIFIED_COUNT => (
            OriginBody::Full(Some(Bytes::from(
                NOT_MODIFIED
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .to_string(),
            ))),
            "text/plain",
        ),
        fixtures::SMALL => (
            OriginBody::Full(Some(fx.small.clone())),
            "application/octet-stream",
        ),
        fixtures::TEN_MIB => (
            OriginBody::Full(Some(fx.ten.clone())),
            "application/octet-stream",
        ),
        fixtures::ONE_GIB => (
            OriginBody::Repeat {
                chunk: fx.chunk.clone(),
                left: fixtures::ONE_GIB_LEN,
            },
            "application/octet-stream",
        ),
        fixtures::SMALL_PAGE => (
            OriginBody::Full(Some(fx.small_page.clone())),
            "text/html; charset=utf-8",
        ),
        fixtures::TEN_PAGE => (
            OriginBody::Full(Some(fx.ten_page.clone())),
            "text/html; charset=utf-8",
        ),
        fixtures::PAGE if wants_json(req) => {
            return page(
                req,
                &fx.page_json,
                "application/vnd.pypi.simple.v1+json",
                &fx.page_json_etag,
            )
        }
        fixtures::PAGE => return page(req, &fx.page, "text/html; charset=utf-8", &fx.page_etag),
        // The same bytes as a file: pipgate refuses a file that says it is a page.
        fixtures::PAGE_AS_FILE => (
            OriginBody::Full(Some(fx.page.clone())),
            "application/octet-stream",
        ),
        fixtures::ROOT => (
            OriginBody::Full(Some(fx.root.clone())),
            "text/html; charset=utf-8",
        ),
        fixtures::ROOT_AS_FILE => (
            OriginBody::Full(Some(fx.root.clone())),
            "application/octet-stream",
        ),
        _ => {
            let mut r = Response::new(OriginBody::Full(Some(Bytes::from_static(b"not here\n"))));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
    };
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    r
}

/// The origin process: started with [`Process::spawn`], killed when dropped.
#[derive(Debug)]
pub(crate) struct Process {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl Process {
    /// Starts `pipgate-bench --serve-origin DIR` (this same binary) and reads the address it
    /// bound from its first line of output.
    pub(crate) fn spawn(dir: &std::path::Path, http1_only: bool) -> Res<Process> {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(std::env::current_exe()?);
        cmd.arg("--serve-origin").arg(dir);
        if http1_only {
            cmd.arg("--origin-http1");
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("origin: no stdout")?;
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let addr = match line.trim().strip_prefix("listening ") {
            Some(a) => a.parse()?,
            None => {
                let _ = child.kill();
                return Err(format!("origin process said {line:?}").into());
            }
        };
        Ok(Process { child, addr })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The origin process's main: serves until its standard input closes (the benchmark ended,
/// however it ended).
pub(crate) async fn serve_process(dir: &std::path::Path, http1_only: bool) -> Res<()> {
    let tls = crate::pki::server_config(dir, http1_only)?;
    let addr = start(tls, Arc::new(Fixtures::generate())).await?;
    println!("listening {addr}");
    tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while std::io::stdin().read(&mut buf).is_ok_and(|n| n > 0) {}
    })
    .await?;
    Ok(())
}

/// Binds 127.0.0.1:0 and serves until the runtime stops; returns the address.
pub(crate) async fn start(tls: Arc<rustls::ServerConfig>, fx: Arc<Fixtures>) -> Res<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let fx = fx.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: Request<Incoming>| {
                    let resp = respond(&fx, &req);
                    let delay = is_wheel(&req)
                        .then(|| std::time::Duration::from_millis(fixtures::WHEEL_DELAY_MS));
                    async move {
                        if let Some(d) = delay {
                            tokio::time::sleep(d).await;
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
