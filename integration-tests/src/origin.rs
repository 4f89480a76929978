//! A local HTTPS (or plain HTTP) origin impersonating package-index hosts, with an access log.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::runtime::{runtime, AbortOnDrop};
use crate::tls::TestCa;

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `Host` header (HTTP/1) or `:authority` (HTTP/2), without the port.
    pub host: String,
    /// The method, upper case.
    pub method: String,
    /// Path and query, exactly as received.
    pub path: String,
    /// Every request header.
    pub headers: HeaderMap,
    /// How many bytes of request body arrived.
    pub body_len: usize,
}

#[derive(Debug, Clone)]
struct Route {
    path: String,
    status: u16,
    content_type: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Route {
    fn new(
        path: &str,
        status: u16,
        content_type: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Route {
        Route {
            path: path.to_owned(),
            status,
            content_type: content_type.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Bytes::from(body.into()),
        }
    }
}

/// Builds an origin: `Origin::builder(&ca).host("pypi.org").route(..).run()`.
#[derive(Debug)]
pub struct Origin;

impl Origin {
    /// Starts describing an origin whose certificate is signed by `ca`.
    pub fn builder(ca: &TestCa) -> OriginBuilder<'_> {
        OriginBuilder {
            ca,
            hosts: Vec::new(),
            routes: Vec::new(),
        }
    }
}

/// See [`Origin::builder`].
#[derive(Debug)]
pub struct OriginBuilder<'a> {
    ca: &'a TestCa,
    hosts: Vec<String>,
    routes: Vec<Route>,
}

impl OriginBuilder<'_> {
    /// Adds a host name to the certificate (the origin answers every host it is asked for).
    pub fn host(mut self, host: &str) -> Self {
        self.hosts.push(host.to_owned());
        self
    }

    /// Serves `body` with status 200 at exactly `path` (query strings are ignored when matching).
    /// Several routes on one path are alternative representations: the one whose content type
    /// the request's `Accept` prefers wins, else the first registered.
    pub fn route(self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.route_full(path, 200, content_type, &[], body)
    }

    /// Like [`OriginBuilder::route`] with any status and extra response headers.
    pub fn route_full(
        mut self,
        path: &str,
        status: u16,
        content_type: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Self {
        self.routes
            .push(Route::new(path, status, content_type, headers, body));
        self
    }

    /// Answers `path` with a redirect (`status` 301/302/307/308) to `location`.
    pub fn redirect(self, path: &str, status: u16, location: &str) -> Self {
        self.route_full(
            path,
            status,
            "text/plain",
            &[("location", location)],
            format!("see {location}\n"),
        )
    }

    /// Starts the origin over TLS (h2 and http/1.1) on 127.0.0.1 with an ephemeral port.
    pub fn run(self) -> RunningOrigin {
        let hosts: Vec<&str> = self.hosts.iter().map(String::as_str).collect();
        let acceptor = TlsAcceptor::from(self.ca.server_config(&hosts));
        start(self.routes, Some(acceptor))
    }

    /// Starts the origin over TLS with `config` instead of a certificate of the builder's CA
    /// (a self-signed certificate, a CA certificate as the server's own).
    pub fn run_with(self, config: std::sync::Arc<rustls::ServerConfig>) -> RunningOrigin {
        start(self.routes, Some(TlsAcceptor::from(config)))
    }

    /// Starts the origin over plain HTTP/1.1 (for `http://` indexes).
    pub fn run_plain(self) -> RunningOrigin {
        start(self.routes, None)
    }
}

/// A started origin; stops when dropped.
#[derive(Debug)]
pub struct RunningOrigin {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    routes: Arc<Mutex<Vec<Route>>>,
    _task: AbortOnDrop,
}

impl RunningOrigin {
    /// The bound address (127.0.0.1, ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request served so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("origin log").clone()
    }

    /// Whether any request path so far contains `needle` (case-insensitive).
    pub fn asked_for(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        self.requests()
            .iter()
            .any(|r| r.path.to_ascii_lowercase().contains(&needle))
    }

    /// Forgets the requests logged so far.
    pub fn clear_log(&self) {
        self.log.lock().expect("origin log").clear();
    }

    /// Replaces what `path` serves (every representation of it) from the next request on. A
    /// route with an `etag` header answers a matching `If-None-Match` with 304.
    pub fn set_route(
        &self,
        path: &str,
        status: u16,
        content_type: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) {
        let mut routes = self.routes.lock().expect("origin routes");
        routes.retain(|r| r.path != path);
        routes.push(Route::new(path, status, content_type, headers, body));
    }
}

fn start(routes: Vec<Route>, tls: Option<TlsAcceptor>) -> RunningOrigin {
    let rt = runtime();
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind origin");
    let addr = listener.local_addr().expect("origin addr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let routes = Arc::new(Mutex::new(routes));
    let task_routes = Arc::clone(&routes);
    let task_log = Arc::clone(&log);
    let task = rt.spawn(async move {
        // Dropping the set (when the accept loop is aborted) aborts every connection too.
        let mut conns = JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            while conns.try_join_next().is_some() {}
            let _ = tcp.set_nodelay(true);
            let routes = Arc::clone(&task_routes);
            let log = Arc::clone(&task_log);
            let tls = tls.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let routes = Arc::clone(&routes);
                    let log = Arc::clone(&log);
                    async move { Ok::<_, Infallible>(serve(&routes, &log, req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    RunningOrigin {
        addr,
        log,
        routes,
        _task: AbortOnDrop(task.abort_handle()),
    }
}

async fn serve(
    routes: &Mutex<Vec<Route>>,
    log: &Mutex<Vec<Request>>,
    req: http::Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    // Drain the request body so keep-alive connections stay usable.
    let body_len = body.collect().await.map_or(0, |b| b.to_bytes().len());
    let host = parts
        .uri
        .host()
        .map(str::to_owned)
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_owned())
        })
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    log.lock().expect("origin log").push(Request {
        host,
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        headers: parts.headers.clone(),
        body_len,
    });
    let bare = path.split('?').next().unwrap_or_default();
    let routes = routes.lock().expect("origin routes").clone();
    let candidates: Vec<&Route> = routes.iter().filter(|r| r.path == bare).collect();
    let Some(route) = pick(&candidates, &parts.headers) else {
        return simple(StatusCode::NOT_FOUND, "not found on this test origin\n");
    };
    let etag = route
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("etag"));
    let asked = parts.headers.get(http::header::IF_NONE_MATCH);
    if let (Some((_, etag)), Some(asked)) = (etag, asked) {
        if asked.as_bytes() == etag.as_bytes() {
            let mut resp = simple(StatusCode::NOT_MODIFIED, "");
            if let Ok(v) = HeaderValue::from_str(etag) {
                resp.headers_mut().insert(http::header::ETAG, v);
            }
            return resp;
        }
    }
    respond(route, &parts.method, &parts.headers)
}

fn pick<'r>(candidates: &[&'r Route], headers: &HeaderMap) -> Option<&'r Route> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or("");
    let mut best: Option<(&Route, f32)> = None;
    for route in candidates {
        let q = quality(accept, &route.content_type);
        if best.is_none_or(|(_, bq)| q > bq) {
            best = Some((route, q));
        }
    }
    best.map(|(r, _)| r)
}

/// The q-value `accept` gives `content_type` (0.0 when absent; `*/*` counts just above zero so
/// an explicit mention wins).
fn quality(accept: &str, content_type: &str) -> f32 {
    let mut q_star = 0.0_f32;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.parse::<f32>().ok())
            .unwrap_or(1.0);
        if media == content_type.to_ascii_lowercase() {
            return q;
        }
        if media == "*/*" {
            q_star = q * 0.001;
        }
    }
    q_star
}

fn respond(route: &Route, method: &Method, req_headers: &HeaderMap) -> Response<Full<Bytes>> {
    let total = route.body.len();
    let mut status = StatusCode::from_u16(route.status).unwrap_or(StatusCode::OK);
    let mut body = route.body.clone();
    let mut content_range = None;
    if status == StatusCode::OK {
        if let Some(range) = req_headers
            .get(http::header::RANGE)
            .and_then(|r| r.to_str().ok())
        {
            match parse_range(range, total) {
                Some((start, end)) => {
                    status = StatusCode::PARTIAL_CONTENT;
                    body = route.body.slice(start..=end);
                    content_range = Some(format!("bytes {start}-{end}/{total}"));
                }
                None => {
                    let mut resp = simple(StatusCode::RANGE_NOT_SATISFIABLE, "");
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                        resp.headers_mut().insert(http::header::CONTENT_RANGE, v);
                    }
                    return resp;
                }
            }
        }
    }
    let len = body.len();
    let mut resp = Response::new(Full::new(if method == Method::HEAD {
        Bytes::new()
    } else {
        body
    }));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&route.content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        http::header::ACCEPT_RANGES,
        HeaderValue::from_static("bytes"),
    );
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(http::header::CONTENT_RANGE, cr);
    }
    for (k, v) in &route.headers {
        if let (Ok(k), Ok(v)) = (
            http::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(k, v);
        }
    }
    resp
}

/// One `bytes=` range (`a-b`, `a-`, `-n`) as inclusive offsets; `None` when unsatisfiable.
fn parse_range(spec: &str, total: usize) -> Option<(usize, usize)> {
    let spec = spec.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    if total == 0 {
        return None;
    }
    let (start, end) = if a.is_empty() {
        let n: usize = b.parse().ok()?;
        (total.saturating_sub(n), total - 1)
    } else {
        let start: usize = a.parse().ok()?;
        let end = if b.is_empty() {
            total - 1
        } else {
            b.parse::<usize>().ok()?.min(total - 1)
        };
        (start, end)
    };
    (start <= end && start < total).then_some((start, end))
}

fn simple(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-3", 10), Some((0, 3)));
        assert_eq!(parse_range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=-4", 10), Some((6, 9)));
        assert_eq!(parse_range("bytes=8-100", 10), Some((8, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }

    #[test]
    fn accept_quality() {
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(quality(pip, "application/vnd.pypi.simple.v1+json"), 1.0);
        assert!(quality(pip, "text/html") < quality(pip, "application/vnd.pypi.simple.v1+html"));
        assert_eq!(
            quality("text/html", "application/vnd.pypi.simple.v1+json"),
            0.0
        );
    }
}
