//! Reads the first request head on a client connection ourselves (httparse), so that CONNECT,
//! malformed lines, oversized heads and slow clients get a precise answer before any work.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub method: String,
    /// The request target as sent: `host:port` for CONNECT, `http://...` for absolute-form.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Header names lower-cased, values raw.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Length of the head in the buffer.
    pub len: usize,
}

impl Head {
    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Why a head could not be read; each maps to one status.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Not HTTP, or framing we refuse (400).
    Malformed(String),
    /// Head larger than the limit, or too many headers (431).
    TooLarge(String),
    /// Head not complete within the header timeout (408).
    Timeout,
    /// The client went away (no answer possible).
    Closed,
}

/// Reads until a complete head is in `buf`, within `timeout` and `max_bytes`.
pub(crate) async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    max_bytes: usize,
    max_headers: usize,
    timeout: Duration,
) -> Result<Head, HeadError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if !buf.is_empty() {
            if let Some(head) = parse(buf, max_headers)? {
                return Ok(head);
            }
        }
        if buf.len() >= max_bytes {
            return Err(HeadError::TooLarge(format!(
                "request head larger than {max_bytes} bytes"
            )));
        }
        buf.reserve(4096);
        let read = tokio::time::timeout_at(deadline, io.read_buf(buf)).await;
        match read {
            Err(_) => return Err(HeadError::Timeout),
            Ok(Err(_)) | Ok(Ok(0)) => return Err(HeadError::Closed),
            Ok(Ok(_)) => {}
        }
    }
}

/// Parses a head from the start of `buf`: `Ok(None)` while incomplete.
pub(crate) fn parse(buf: &[u8], max_headers: usize) -> Result<Option<Head>, HeadError> {
    let mut storage = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut storage);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooLarge(format!(
                "more than {max_headers} request headers"
            )))
        }
        Err(e) => return Err(HeadError::Malformed(format!("malformed request: {e}"))),
    };
    // httparse returns Complete only with method, path and version set.
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line".into()));
    };
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    let head = Head {
        method: method.to_owned(),
        target: target.to_owned(),
        version,
        headers,
        len,
    };
    check_framing(&head)?;
    Ok(Some(head))
}

/// Refuses the framing ambiguities request smuggling is built on.
fn check_framing(head: &Head) -> Result<(), HeadError> {
    let lengths: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_slice())
        .collect();
    let te = head.headers.iter().any(|(n, _)| n == "transfer-encoding");
    if te && !lengths.is_empty() {
        return Err(HeadError::Malformed(
            "both Content-Length and Transfer-Encoding".into(),
        ));
    }
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return Err(HeadError::Malformed(
            "conflicting Content-Length headers".into(),
        ));
    }
    if let Some(v) = lengths.first() {
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::Malformed("invalid Content-Length".into()));
        }
    }
    Ok(())
}

/// An IO that first yields bytes already read from the peer, then reads the peer.
#[derive(Debug)]
pub(crate) struct Rewind<T> {
    pre: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    pub(crate) fn new(pre: Bytes, inner: T) -> Self {
        Rewind { pre, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECT_10: &[u8] = b"CONNECT pypi.org:443 HTTP/1.0\r\n\r\n";

    #[test]
    fn every_prefix_is_incomplete_then_complete() {
        for i in 0..CONNECT_10.len() {
            assert!(parse(&CONNECT_10[..i], 8).unwrap().is_none(), "prefix {i}");
        }
        let head = parse(CONNECT_10, 8).unwrap().unwrap();
        assert_eq!(head.method, "CONNECT");
        assert_eq!(head.target, "pypi.org:443");
        assert_eq!(head.version, 0);
        assert!(head.headers.is_empty());
        assert_eq!(head.len, CONNECT_10.len());
    }

    #[test]
    fn the_fuzz_property_holds_on_captured_heads() {
        for head in [
            CONNECT_10,
            b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\nProxy-Authorization: Basic eDp5\r\n\r\nTLS",
            b"GET http://a/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"\x16\x03\x01",
        ] {
            crate::fuzzing::request_head_prefixes(head).unwrap();
        }
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let both = b"GET http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse(both, 8), Err(HeadError::Malformed(_))));
        let dup = b"GET http://a/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(parse(dup, 8), Err(HeadError::Malformed(_))));
        let fold = b"GET http://a/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n";
        assert!(matches!(parse(fold, 8), Err(HeadError::Malformed(_))));
        let bad_len = b"GET http://a/ HTTP/1.1\r\nContent-Length: +1\r\n\r\n";
        assert!(matches!(parse(bad_len, 8), Err(HeadError::Malformed(_))));
    }

    #[test]
    fn garbage_and_too_many_headers() {
        assert!(matches!(
            parse(b"\x16\x03\x01 hello\r\n\r\n", 8),
            Err(HeadError::Malformed(_))
        ));
        let many = b"GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\n\r\n";
        assert!(matches!(parse(many, 2), Err(HeadError::TooLarge(_))));
    }

    #[tokio::test]
    async fn read_head_limits_size_and_time() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        tokio::io::AsyncWriteExt::write_all(&mut client, &[b'a'; 300])
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let err = read_head(&mut server, &mut buf, 256, 8, Duration::from_secs(5)).await;
        assert!(matches!(
            err,
            Err(HeadError::TooLarge(_)) | Err(HeadError::Malformed(_))
        ));

        let (_client, mut server) = tokio::io::duplex(64);
        let mut buf = BytesMut::new();
        let err = read_head(&mut server, &mut buf, 256, 8, Duration::from_millis(50)).await;
        assert!(matches!(err, Err(HeadError::Timeout)));
    }
}
