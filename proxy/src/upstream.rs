//! The upstream leg: DNS (with `[upstream.resolve]` overrides), TCP, real TLS, pooled HTTP/1.1
//! and HTTP/2 connections, and errors sorted by cause so the client is told what failed.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::body::Body;
use crate::config::UpstreamSettings;
use socket::{socket, Socket};

/// Why an upstream exchange failed; each kind maps to one status and one metrics label.
#[derive(Debug, Clone)]
pub(crate) enum UpstreamError {
    /// The name did not resolve.
    Dns(String),
    /// TCP connect was refused or failed.
    Connect(String),
    /// TLS failed (most often: the certificate is not trusted).
    Tls(String),
    /// No answer in time.
    Timeout(&'static str),
    /// The peer broke HTTP (reset, bad framing, closed early).
    Protocol(String),
}

impl UpstreamError {
    /// Stable label for metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Dns(_) => "dns",
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Tls(_) => "tls",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Protocol(_) => "protocol",
        }
    }

    /// The `reason` label of `pipgate_refusals_total` for a connection refused because of it.
    pub(crate) fn refusal(&self) -> &'static str {
        match self {
            UpstreamError::Dns(_) => "upstream-dns",
            UpstreamError::Connect(_) => "upstream-connect",
            UpstreamError::Tls(_) => "upstream-tls",
            UpstreamError::Timeout(_) => "upstream-timeout",
            UpstreamError::Protocol(_) => "upstream-protocol",
        }
    }

    /// 504 for timeouts, 502 for everything else the upstream side did.
    pub(crate) fn status(&self) -> http::StatusCode {
        match self {
            UpstreamError::Timeout(_) => http::StatusCode::GATEWAY_TIMEOUT,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Dns(m) => write!(f, "DNS: {m}"),
            UpstreamError::Connect(m) => write!(f, "connect: {m}"),
            UpstreamError::Tls(m) => write!(f, "TLS: {m}"),
            UpstreamError::Timeout(what) => write!(f, "timeout: {what}"),
            UpstreamError::Protocol(m) => write!(f, "protocol: {m}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// Resolves and dials upstream addresses, honouring the resolve overrides.
#[derive(Clone, Debug)]
pub(crate) struct Dialer {
    resolve: Arc<HashMap<(String, u16), SocketAddr>>,
    connect_timeout: Duration,
}

impl Dialer {
    pub(crate) fn new(settings: &UpstreamSettings) -> Dialer {
        Dialer {
            resolve: Arc::new(settings.resolve.clone()),
            connect_timeout: settings.connect_timeout,
        }
    }

    /// Addresses for host:port: the override if configured, else DNS.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, UpstreamError> {
        if let Some(addr) = self.resolve.get(&(host.to_ascii_lowercase(), port)) {
            return Ok(vec![*addr]);
        }
        let lookup = tokio::net::lookup_host((host, port));
        match tokio::time::timeout(self.connect_timeout, lookup).await {
            Err(_) => Err(UpstreamError::Timeout("DNS lookup")),
            Ok(Err(e)) => Err(UpstreamError::Dns(format!("{host}: {e}"))),
            Ok(Ok(addrs)) => {
                let addrs: Vec<_> = addrs.collect();
                if addrs.is_empty() {
                    Err(UpstreamError::Dns(format!("{host}: no addresses")))
                } else {
                    Ok(addrs)
                }
            }
        }
    }

    /// Connects to the first address that answers, within the connect timeout.
    pub(crate) async fn connect(&self, addrs: &[SocketAddr]) -> Result<TcpStream, UpstreamError> {
        let mut last = UpstreamError::Connect("no address".into());
        for addr in addrs {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Err(_) => last = UpstreamError::Timeout("TCP connect"),
                Ok(Err(e)) => last = UpstreamError::Connect(format!("{addr}: {e}")),
                Ok(Ok(stream)) => {
                    // Small request/response exchanges must not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
            }
        }
        Err(last)
    }
}

impl tower::Service<Uri> for Dialer {
    type Response = TokioIo<Socket>;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| UpstreamError::Connect("URI without host".into()))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("http") => 80,
                _ => 443,
            });
            let addrs = this.resolve(&host, port).await?;
            Ok(socket(this.connect(&addrs).await?))
        })
    }
}

/// How much one upstream HTTP/2 stream may send before pipgate has passed it on: enough for
/// ~100 MB/s per download at a 20 ms round trip.
const H2_STREAM_WINDOW: u32 = 2 * 1024 * 1024;

/// The same for all of one upstream HTTP/2 connection's streams together. Every client's
/// download from a host shares that host's connection, and data a slow reader has not taken
/// yet holds this window as well as its stream's: at 2 MiB a stream it takes eight stalled
/// readers to shut it for everyone else (at 5 MiB, three did). It also bounds what slow
/// readers can leave buffered here per upstream connection.
const H2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// The pooled upstream HTTP client.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    client: Client<HttpsConnector<Dialer>, Body>,
    dialer: Dialer,
    tls: Arc<rustls::ClientConfig>,
    response_timeout: Duration,
}

/// Why the upstream TLS roots could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootsError {
    /// An `upstream.extra_roots` file could not be read.
    #[error("upstream.extra_roots: cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file is not PEM.
    #[error("upstream.extra_roots: {} is not PEM: {reason}", path.display())]
    NotPem {
        path: PathBuf,
        reason: rustls_pki_types::pem::Error,
    },
    /// A certificate rustls will not take as a root.
    #[error("upstream.extra_roots: {}: {source}", path.display())]
    Refused {
        path: PathBuf,
        source: rustls::Error,
    },
    /// A file holds no certificate.
    #[error("upstream.extra_roots: {} holds no certificate", path.display())]
    Empty { path: PathBuf },
    /// The crypto provider lacks the default protocol versions.
    #[error("upstream TLS: {0}")]
    Tls(rustls::Error),
    /// No root at all: the system has none and `upstream.extra_roots` lists no CA.
    #[error("upstream TLS: {0}")]
    Verifier(rustls::client::VerifierBuilderError),
}

/// Builds the TLS client config: the OS roots plus the configured extra roots (their CA
/// certificates as roots, the others pinned: see `verify`).
pub(crate) fn tls_config(settings: &UpstreamSettings) -> Result<rustls::ClientConfig, RootsError> {
    use rustls_pki_types::pem::PemObject;
    let (mut pinned, mut cas) = (Vec::new(), Vec::new());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A malformed system root is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    for path in &settings.extra_roots {
        let pem = std::fs::read(path).map_err(|source| RootsError::Read {
            path: path.clone(),
            source,
        })?;
        let mut n = 0;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|reason| RootsError::NotPem {
                path: path.clone(),
                reason,
            })?;
            let listed = verify::Listed {
                cert,
                path: path.clone(),
            };
            if verify::is_ca(&listed.cert) {
                roots
                    .add(listed.cert.clone())
                    .map_err(|source| RootsError::Refused {
                        path: path.clone(),
                        source,
                    })?;
                cas.push(listed);
            } else {
                pinned.push(listed);
            }
            n += 1;
        }
        if n == 0 {
            return Err(RootsError::Empty { path: path.clone() });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(RootsError::Verifier)?;
    let verifier = verify::Verifier::new(webpki, pinned, cas, provider.clone());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(RootsError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

impl Upstream {
    pub(crate) fn new(settings: &UpstreamSettings) -> Result<Upstream, RootsError> {
        let tls = tls_config(settings)?;
        let dialer = Dialer::new(settings);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(dialer.clone());
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            // Fixed HTTP/2 windows, not hyper's adaptive (BDP) ones. The adaptive estimator only
            // grows a window on a sample faster than the fastest it has seen, and backs its
            // pings off to seconds once samples stop growing, so a pooled connection that first
            // carried many small responses never opened its window for the files that came
            // next: after the benchmark's keep-alive load a 10 MiB download ran at ~400 MB/s
            // against ~680-760 with these windows (bench/README.md). It also gives a stream and
            // its connection one window size, and four stalled readers shut the connection for
            // every other download from the host (`readers_that_stop_do_not_stall_other_...`).
            .http2_initial_stream_window_size(H2_STREAM_WINDOW)
            .http2_initial_connection_window_size(H2_CONNECTION_WINDOW)
            .build(connector);
        Ok(Upstream {
            client,
            dialer,
            tls: Arc::new(tls),
            response_timeout: settings.response_timeout,
        })
    }

    pub(crate) fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// Sends a request and waits for the response head (bounded by the response timeout).
    pub(crate) async fn send(
        &self,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout("waiting for the upstream response")),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }

    /// Dials host:port and completes a TLS handshake, then drops it: used before answering
    /// `200` to a CONNECT so that an unreachable or untrusted upstream is reported there.
    pub(crate) async fn probe_tls(&self, host: &str, port: u16) -> Result<(), UpstreamError> {
        let addrs = self.dialer.resolve(host, port).await?;
        let tcp = self.dialer.connect(&addrs).await?;
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| UpstreamError::Tls(format!("bad server name {host}: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        match tokio::time::timeout(self.dialer.connect_timeout, connector.connect(name, tcp)).await
        {
            Err(_) => Err(UpstreamError::Timeout("TLS handshake")),
            Ok(Err(e)) => Err(UpstreamError::Tls(tls_reason(&e))),
            Ok(Ok(_)) => Ok(()),
        }
    }
}

fn tls_reason(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls_text(tls),
        None => e.to_string(),
    }
}

/// A TLS error as the client is told it: a certificate refusal `verify` explained, as it
/// explained it; anything else as rustls says it.
fn tls_text(e: &rustls::Error) -> String {
    if let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = e {
        if let Some(words) = other.0.downcast_ref::<verify::Explained>() {
            return words.to_string();
        }
    }
    e.to_string()
}

/// Sorts a client error by walking its cause chain.
fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(up) = err.downcast_ref::<UpstreamError>() {
            return up.clone();
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return UpstreamError::Tls(tls_text(tls));
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return UpstreamError::Tls(tls_text(tls));
            }
        }
        source = err.source();
    }
    if e.is_connect() {
        UpstreamError::Connect(chain(e))
    } else {
        UpstreamError::Protocol(chain(e))
    }
}

/// The error and its causes on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

mod socket;
#[cfg(test)]
mod tests;
mod verify;
