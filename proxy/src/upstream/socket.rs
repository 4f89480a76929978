//! The upstream TCP stream, read through a buffer that exists only while it holds bytes.
//!
//! rustls asks its transport for at most 4 KiB per read (`read_tls`), so a 16 KiB TLS record
//! took several `recv` calls (strace of a download: 2.04 per record passed on). Read through
//! this buffer, one `recv` takes what the socket holds (up to [`READ_BUFFER`]: four full
//! records) and rustls's reads are served from memory (0.51 per record). The buffer is
//! allocated when the socket is readable and freed once it has been read out, so the idle
//! connections of the upstream pool hold none. Writes go straight through.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes one `recv` may take from an upstream socket.
const READ_BUFFER: usize = 64 * 1024;

/// An upstream connection's socket with its read buffer.
#[derive(Debug)]
pub(crate) struct Socket {
    tcp: TcpStream,
    /// Read from the socket and not yet taken: `buf[pos..]`. Empty, with nothing allocated,
    /// whenever it has been taken whole.
    buf: Vec<u8>,
    pos: usize,
}

impl Socket {
    pub(crate) fn new(tcp: TcpStream) -> TokioIo<Socket> {
        TokioIo::new(Socket {
            tcp,
            buf: Vec::new(),
            pos: 0,
        })
    }
}

impl Connection for Socket {
    fn connected(&self) -> Connected {
        self.tcp.connected()
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos == this.buf.len() {
            // A reader asking for as much as the buffer holds reads the socket itself.
            if out.remaining() >= READ_BUFFER {
                return Pin::new(&mut this.tcp).poll_read(cx, out);
            }
            loop {
                ready!(this.tcp.poll_read_ready(cx))?;
                let mut buf = Vec::with_capacity(READ_BUFFER);
                match this.tcp.try_read_buf(&mut buf) {
                    // 0 bytes: the end of the stream, passed on as an empty read.
                    Ok(_) => {
                        this.buf = buf;
                        this.pos = 0;
                        break;
                    }
                    // Readiness was stale (tokio has cleared it): wait again.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        let n = out.remaining().min(this.buf.len() - this.pos);
        out.put_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        if this.pos == this.buf.len() {
            this.buf = Vec::new();
            this.pos = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Small reads are served from one `recv`, a large one straight from the socket, the end
    /// of the stream reads as empty, and nothing stays allocated once read out.
    #[tokio::test]
    async fn reads_come_whole_and_in_order_and_the_buffer_is_freed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            peer.write_all(&sent).await.unwrap();
        });
        let mut s = Socket::new(TcpStream::connect(addr).await.unwrap()).into_inner();
        let mut got = Vec::new();
        let mut small = [0u8; 4096];
        let mut large = vec![0u8; READ_BUFFER];
        let mut turn = 0;
        loop {
            let n = if turn % 3 == 2 {
                s.read(&mut large).await.unwrap()
            } else {
                s.read(&mut small).await.unwrap()
            };
            let chunk = if turn % 3 == 2 {
                &large[..n]
            } else {
                &small[..n]
            };
            got.extend_from_slice(chunk);
            if s.pos == s.buf.len() {
                assert_eq!(s.buf.capacity(), 0, "a read-out buffer is freed");
            }
            if n == 0 {
                break;
            }
            turn += 1;
        }
        writer.await.unwrap();
        assert_eq!(got, data);
    }
}
