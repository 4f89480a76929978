//! The load generator's connection: TCP (through `CONNECT` when proxied), a full TLS 1.3
//! handshake, then HTTP/1.1 keep-alive requests whose bodies are counted, not stored.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::Res;

/// How to reach a host: straight to the origin, or through pipgate.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// The address dialled: the origin itself, or pipgate.
    pub addr: SocketAddr,
    /// Whether to send `CONNECT host:443` first.
    pub proxied: bool,
    /// What to `CONNECT` to instead of `host:443` (mitmproxy resolves names itself, so it is
    /// sent the origin's address; SNI still names the host).
    pub connect_to: Option<String>,
    /// Trusts the origin CA (direct) or pipgate's CA (proxied).
    pub tls: Arc<ClientConfig>,
}

impl Route {
    /// TCP (+ CONNECT) + full TLS handshake with SNI `host`.
    pub(crate) async fn tls(&self, host: &str) -> Res<TlsStream<TcpStream>> {
        let mut tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        if self.proxied {
            let to = self
                .connect_to
                .clone()
                .unwrap_or_else(|| format!("{host}:443"));
            let req = format!("CONNECT {to} HTTP/1.1\r\nHost: {to}\r\n\r\n");
            tcp.write_all(req.as_bytes()).await?;
            read_connect_reply(&mut tcp).await?;
        }
        let name = ServerName::try_from(host.to_owned())?;
        Ok(TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?)
    }

    /// A ready HTTP/1.1 connection to `host`.
    pub(crate) async fn open(&self, host: &str) -> Res<Conn> {
        let tls = self.tls(host).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: host.to_owned(),
            accept_encoding: None,
            last_encoding: None,
        })
    }
}

/// Reads the proxy's reply head byte by byte (nothing past it may be consumed: TLS follows).
async fn read_connect_reply(tcp: &mut TcpStream) -> Res<()> {
    let mut head = BytesMut::with_capacity(128);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err("CONNECT reply head too long".into());
        }
        let b = tcp.read_u8().await?;
        head.extend_from_slice(&[b]);
    }
    if head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!("CONNECT refused: {}", String::from_utf8_lossy(&head)).into())
    }
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    host: String,
    /// `Accept-Encoding` sent with every request (none: the client takes identity).
    pub accept_encoding: Option<&'static str>,
    /// The `Content-Encoding` of the last answer.
    pub last_encoding: Option<String>,
}

impl Conn {
    /// GETs `path` and returns the number of body bytes (as sent: still compressed when the
    /// answer is); anything but 200 is an error.
    pub(crate) async fn get(&mut self, path: &str) -> Res<u64> {
        Ok(self.fetch(path, false).await?.0)
    }

    /// GETs `path` and returns its body as text (a 200 only, as [`Conn::get`]).
    pub(crate) async fn text(&mut self, path: &str) -> Res<String> {
        let body = self.fetch(path, true).await?.1;
        Ok(String::from_utf8(body)?)
    }

    async fn fetch(&mut self, path: &str, keep: bool) -> Res<(u64, Vec<u8>)> {
        self.sender.ready().await?;
        let mut req = Request::get(path)
            .header(header::HOST, &self.host)
            .header(header::ACCEPT, "text/html")
            .header(header::USER_AGENT, "pipgate-bench");
        if let Some(enc) = self.accept_encoding {
            req = req.header(header::ACCEPT_ENCODING, enc);
        }
        let req = req.body(Empty::new())?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        self.last_encoding = resp
            .headers()
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = resp.into_body();
        let mut n = 0u64;
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                n += data.remaining() as u64;
                if keep {
                    kept.extend_from_slice(data.chunk());
                }
            }
        }
        if status != StatusCode::OK {
            return Err(format!("GET {}{path}: {status}", self.host).into());
        }
        Ok((n, kept))
    }
}
