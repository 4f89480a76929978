//! A small rustls + hyper client that speaks CONNECT through a proxy, for checks that need no pip.
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::runtime::block_on;
use crate::tls::{client_config_for, read_pem_certs};

/// How long any single probe exchange may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer, either from the proxy itself (CONNECT refused) or from inside the tunnel.
#[derive(Debug, Clone)]
pub struct ProbeResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
    /// True when this is the proxy's answer to CONNECT (the tunnel never opened).
    pub from_connect: bool,
    /// The certificate chain the TLS peer presented (empty for CONNECT answers).
    pub peer_certs: Vec<CertificateDer<'static>>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
}

impl ProbeResponse {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header value as a string ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

/// What to send: `Probe::request("GET", url).header(..)`.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    authority_override: Option<String>,
    sni_override: Option<String>,
    body: Vec<u8>,
}

impl ProbeRequest {
    /// Sends `body` with the request (its length as `Content-Length` / `content-length`).
    pub fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Opens the tunnel for the URL's host but names `authority` in `Host` / `:authority`.
    pub fn authority(mut self, authority: &str) -> Self {
        self.authority_override = Some(authority.to_owned());
        self
    }

    /// Opens the tunnel for the URL's host but sends (and verifies the certificate for) `sni`.
    pub fn sni(mut self, sni: &str) -> Self {
        self.sni_override = Some(sni.to_owned());
        self
    }
}

/// A client that reaches `https://` URLs through a CONNECT proxy, trusting given roots.
#[derive(Debug, Clone)]
pub struct Probe {
    proxy: SocketAddr,
    roots: Vec<CertificateDer<'static>>,
    http10_connect: bool,
    h2: bool,
}

impl Probe {
    /// Goes through `proxy`, trusting the certificates in `ca_pem` (pipgate's `ca.pem`).
    pub fn new(proxy: SocketAddr, ca_pem: &Path) -> Probe {
        Probe {
            proxy,
            roots: read_pem_certs(ca_pem),
            http10_connect: false,
            h2: false,
        }
    }

    /// Sends `CONNECT host:443 HTTP/1.0` with no headers at all, as pip on Python <= 3.11 does.
    pub fn http10_connect(mut self) -> Probe {
        self.http10_connect = true;
        self
    }

    /// Offers ALPN `h2` (then `http/1.1`) and speaks HTTP/2 when the proxy picks it.
    pub fn h2(mut self) -> Probe {
        self.h2 = true;
        self
    }

    /// Starts a request.
    pub fn request(method: &str, url: &str) -> ProbeRequest {
        ProbeRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            authority_override: None,
            sni_override: None,
            body: Vec::new(),
        }
    }

    /// Opens a tunnel to `url`'s host, completes TLS, writes `bytes` verbatim inside it and
    /// returns everything read until the proxy closes or goes quiet for 5 s (for malformed or
    /// smuggling requests that hyper would refuse to send).
    pub fn raw_tls(&self, url: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
        block_on(async {
            tokio::time::timeout(PROBE_TIMEOUT, self.raw_tls_inner(url, bytes))
                .await
                .map_err(|_| format!("timed out after {PROBE_TIMEOUT:?}"))?
        })
    }

    async fn raw_tls_inner(&self, url: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let target = Target::parse(url)?;
        let mut tcp = TcpStream::connect(self.proxy)
            .await
            .map_err(|e| format!("connect to proxy: {e}"))?;
        let connect = format!(
            "CONNECT {h}:{p} HTTP/1.1\r\nHost: {h}:{p}\r\n\r\n",
            h = target.host,
            p = target.port
        );
        tcp.write_all(connect.as_bytes())
            .await
            .map_err(|e| format!("send CONNECT: {e}"))?;
        let (status, _, _) = read_head(&mut tcp).await?;
        if status != 200 {
            return Err(format!("CONNECT answered {status}"));
        }
        let connector = TlsConnector::from(client_config_for(&self.roots, &[b"http/1.1"]));
        let name = ServerName::try_from(target.host.clone()).map_err(|e| format!("SNI: {e}"))?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {}: {e}", target.host))?;
        tls.write_all(bytes)
            .await
            .map_err(|e| format!("write in tunnel: {e}"))?;
        let mut out = Vec::new();
        let mut chunk = [0_u8; 4096];
        while !response_complete(&out) {
            match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => out.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        Ok(out)
    }

    /// GET `url`; panics on transport errors (use [`Probe::send`] to see them).
    pub fn get(&self, url: &str) -> ProbeResponse {
        self.send(Probe::request("GET", url))
            .unwrap_or_else(|e| panic!("GET {url} through {}: {e}", self.proxy))
    }

    /// Sends `req`; `Err` describes a transport failure (refused, TLS, timeout, protocol).
    pub fn send(&self, req: ProbeRequest) -> Result<ProbeResponse, String> {
        block_on(async {
            tokio::time::timeout(PROBE_TIMEOUT, self.exchange(req))
                .await
                .map_err(|_| format!("timed out after {PROBE_TIMEOUT:?}"))?
        })
    }

    async fn exchange(&self, req: ProbeRequest) -> Result<ProbeResponse, String> {
        let target = Target::parse(&req.url)?;
        let mut tcp = TcpStream::connect(self.proxy)
            .await
            .map_err(|e| format!("connect to proxy: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let connect = if self.http10_connect {
            format!("CONNECT {}:{} HTTP/1.0\r\n\r\n", target.host, target.port)
        } else {
            format!(
                "CONNECT {h}:{p} HTTP/1.1\r\nHost: {h}:{p}\r\n\r\n",
                h = target.host,
                p = target.port
            )
        };
        tcp.write_all(connect.as_bytes())
            .await
            .map_err(|e| format!("send CONNECT: {e}"))?;
        let (status, headers, rest) = read_head(&mut tcp).await?;
        if status != 200 {
            let body = read_body(&mut tcp, &headers, rest).await;
            return Ok(ProbeResponse {
                status,
                headers,
                body,
                from_connect: true,
                peer_certs: Vec::new(),
                alpn: None,
            });
        }
        let alpn: &[&[u8]] = if self.h2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let connector = TlsConnector::from(client_config_for(&self.roots, alpn));
        let sni = req
            .sni_override
            .clone()
            .unwrap_or_else(|| target.host.clone());
        let name = ServerName::try_from(sni).map_err(|e| format!("SNI: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {}: {e}", target.host))?;
        let (_, conn) = tls.get_ref();
        let peer_certs: Vec<CertificateDer<'static>> = conn
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default();
        let negotiated = conn.alpn_protocol().map(<[u8]>::to_vec);
        let authority = req.authority_override.clone().unwrap_or_else(|| {
            if target.port == 443 {
                target.host.clone()
            } else {
                format!("{}:{}", target.host, target.port)
            }
        });
        let is_h2 = negotiated.as_deref() == Some(b"h2");
        let mut builder = http::Request::builder().method(req.method.as_str());
        builder = if is_h2 {
            builder.uri(format!("https://{authority}{}", target.path))
        } else {
            builder
                .uri(target.path.as_str())
                .header(http::header::HOST, authority.as_str())
        };
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = builder
            .body(Full::new(Bytes::from(req.body.clone())))
            .map_err(|e| format!("build request: {e}"))?;
        let io = TokioIo::new(tls);
        let response = if is_h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            sender
                .send_request(request)
                .await
                .map_err(|e| format!("h2 request: {e}"))?
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("h1 handshake: {e}"))?;
            tokio::spawn(conn);
            sender
                .send_request(request)
                .await
                .map_err(|e| format!("h1 request: {e}"))?
        };
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("read body: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(ProbeResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            from_connect: false,
            peer_certs,
            alpn: negotiated,
        })
    }
}

struct Target {
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("not an https URL: {url}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|e| format!("port in {url}: {e}"))?,
            ),
            _ => (authority, 443),
        };
        Ok(Target {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// Whether `raw` holds at least one whole response (head plus its framed body).
fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
        return false;
    };
    let Ok((_, headers)) = parse_head(&raw[..end]) else {
        return false;
    };
    let body = &raw[end..];
    if headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        return body.windows(5).any(|w| w == b"0\r\n\r\n");
    }
    match headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(len) => body.len() >= len,
        // No framing: the body runs until the peer closes.
        None => false,
    }
}

/// Reads a response head; returns status, headers and any bytes read past the head.
async fn read_head(tcp: &mut TcpStream) -> Result<(u16, HeaderMap, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 2048];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read CONNECT answer: {e}"))?;
        if n == 0 {
            return Err(format!(
                "proxy closed the connection after {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let (status, headers) = parse_head(&buf[..end])?;
    Ok((status, headers, buf[end..].to_vec()))
}

fn parse_head(head: &[u8]) -> Result<(u16, HeaderMap), String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(k), Ok(v)) = (
                http::header::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            ) {
                headers.append(k, v);
            }
        }
    }
    Ok((status, headers))
}

async fn read_body(tcp: &mut TcpStream, headers: &HeaderMap, mut body: Vec<u8>) -> Vec<u8> {
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut chunk = [0_u8; 4096];
    loop {
        if length.is_some_and(|l| body.len() >= l) {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    if let Some(l) = length {
        body.truncate(l);
    }
    body
}

/// A plain HTTP/1.1 GET straight to `addr` (pipgate's admin port, say).
pub fn http_get(addr: SocketAddr, path: &str) -> ProbeResponse {
    let raw = raw_exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or_else(|| {
            panic!(
                "no response head from {addr}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let (status, headers) = parse_head(&raw[..end]).unwrap_or_else(|e| panic!("{e}"));
    let mut body = raw[end..].to_vec();
    if headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        body = dechunk(&body);
    }
    ProbeResponse {
        status,
        headers,
        body,
        from_connect: false,
        peer_certs: Vec::new(),
        alpn: None,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..i]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        data = &data[i + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

/// Writes `bytes` to `addr` and returns everything read until the peer closes (or 10 s pass).
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    tcp.write_all(bytes).expect("write raw request");
    let mut out = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    out
}

/// Writes `bytes` to `addr` and returns what arrives up to the end of the first response head
/// (for CONNECT answers, where the connection stays open after a 200).
pub fn raw_head(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    tcp.write_all(bytes).expect("write raw request");
    let mut out = Vec::new();
    let mut chunk = [0_u8; 1024];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    out
}

/// A raw HTTP/1.1 answer that must be a page sent as it was rewritten and then cut: `200`,
/// chunked with no length, and no last chunk (a client sees a broken transfer, never a short
/// page that looks whole). Returns its head, lower case, and its body as text; panics naming
/// what is wrong.
pub fn streamed_then_cut(raw: &[u8]) -> (String, String) {
    let raw = String::from_utf8_lossy(raw);
    assert!(
        raw.starts_with("HTTP/1.1 200"),
        "{}",
        &raw[..raw.len().min(400)]
    );
    let end = raw.find("\r\n\r\n").expect("a whole response head");
    let head = raw[..end].to_ascii_lowercase();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(
        !raw.ends_with("0\r\n\r\n"),
        "the cut page ended like a whole one"
    );
    (head, raw[end + 4..].to_owned())
}

/// The status code of a raw HTTP response (panics if there is none).
pub fn raw_status(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

/// A 127.0.0.1 address nothing listens on (bound, then released: an "upstream down").
pub fn unused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = Target::parse("https://pypi.org/simple/x/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("pypi.org", 443, "/simple/x/")
        );
        let t = Target::parse("https://h:8443").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("h", 8443, "/"));
        assert!(Target::parse("http://h/").is_err());
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
