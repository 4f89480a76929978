//! Reads the first request head on a client connection ourselves (httparse), so that CONNECT,
//! malformed lines, oversized heads and slow clients get a precise answer before any work.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
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

/// An IO that first yields bytes already read from the peer, then reads the peer. Bytes it
/// holds are released once they have all been taken, so an idle connection keeps none.
#[derive(Debug)]
pub(crate) struct Rewind<T> {
    pre: Bytes,
    inner: T,
    /// Once `pre` is taken, a reader asking for fewer bytes than this is served from one read
    /// of up to this many into a buffer of its own (0: every read goes straight to `inner`).
    read_ahead: usize,
}

impl<T> Rewind<T> {
    pub(crate) fn new(pre: Bytes, inner: T) -> Self {
        Rewind {
            // An empty slice of a read buffer still holds that buffer.
            pre: if pre.is_empty() { Bytes::new() } else { pre },
            inner,
            read_ahead: 0,
        }
    }

    /// `inner` read `n` bytes at a time for readers that ask for less.
    pub(crate) fn reading_ahead(inner: T, n: usize) -> Self {
        Rewind {
            pre: Bytes::new(),
            inner,
            read_ahead: n,
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pre.is_empty() {
            if buf.remaining() >= this.read_ahead {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut ahead = BytesMut::with_capacity(this.read_ahead);
            // Nothing read: the end of the stream, passed on as an empty read.
            if ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut ahead
            ))? == 0
            {
                return Poll::Ready(Ok(()));
            }
            this.pre = ahead.freeze();
        }
        let n = this.pre.len().min(buf.remaining());
        buf.put_slice(&this.pre[..n]);
        this.pre.advance(n);
        if this.pre.is_empty() {
            // An advanced-to-empty `Bytes` still holds its buffer.
            this.pre = Bytes::new();
        }
        Poll::Ready(Ok(()))
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

    /// A reader that counts its reads and gives what is asked, as much as it has.
    struct Counted {
        data: Vec<u8>,
        pos: usize,
        reads: usize,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.reads += 1;
            let n = buf.remaining().min(self.data.len() - self.pos);
            let at = self.pos;
            buf.put_slice(&self.data[at..at + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    /// The bytes read ahead go first and are released once taken; then the peer is read.
    #[tokio::test]
    async fn the_bytes_read_ahead_come_first_and_are_released_once_taken() {
        struct Owner(std::sync::Arc<std::sync::atomic::AtomicBool>, Vec<u8>);
        impl AsRef<[u8]> for Owner {
            fn as_ref(&self) -> &[u8] {
                &self.1
            }
        }
        impl Drop for Owner {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pre = Bytes::from_owner(Owner(released.clone(), b"CONNECT".to_vec()));
        let inner = Counted {
            data: b" the rest".to_vec(),
            pos: 0,
            reads: 0,
        };
        let mut io = Rewind::new(pre, inner);
        let mut buf = [0u8; 4];
        assert_eq!(io.read(&mut buf).await.unwrap(), 4);
        assert!(!released.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(io.read(&mut buf).await.unwrap(), 3);
        assert_eq!(&buf[..3], b"ECT");
        assert!(
            released.load(std::sync::atomic::Ordering::SeqCst),
            "taken, then released"
        );
        let mut rest = String::new();
        io.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, " the rest");

        // A head with nothing after it, as `read_head` leaves it: the empty rest shares the
        // head's buffer until Rewind lets it go at once.
        let mut read = BytesMut::with_capacity(64);
        read.extend_from_slice(b"CONNECT");
        let head = read.split_to(7).freeze();
        let rest = read.freeze();
        assert!(rest.is_empty() && !head.is_unique());
        let inner = Counted {
            data: Vec::new(),
            pos: 0,
            reads: 0,
        };
        let _io = Rewind::new(rest, inner);
        assert!(head.is_unique(), "an empty rest holds nothing");
    }

    /// Reading ahead, small reads are served from one read of the peer per `n` bytes; a read
    /// as large as `n` goes straight to the peer.
    #[tokio::test]
    async fn reading_ahead_reads_the_peer_once_per_n_bytes() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let inner = Counted {
            data: data.clone(),
            pos: 0,
            reads: 0,
        };
        let mut io = Rewind::reading_ahead(inner, 64 * 1024);
        let mut got = Vec::new();
        let mut small = [0u8; 4096];
        for _ in 0..16 {
            let n = io.read(&mut small).await.unwrap();
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!((got.len(), io.inner.reads), (64 * 1024, 1));
        let mut large = vec![0u8; 64 * 1024];
        let n = io.read(&mut large).await.unwrap();
        got.extend_from_slice(&large[..n]);
        assert_eq!((n, io.inner.reads), (64 * 1024, 2), "straight to the peer");
        loop {
            let n = io.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, data);
        // 300,000 bytes: two 64 KiB reads above, three more ahead, one that finds the end.
        assert_eq!(io.inner.reads, 6);
    }

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
