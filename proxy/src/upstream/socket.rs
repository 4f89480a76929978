//! The upstream TCP stream, read through a buffer.
//!
//! rustls asks its transport for at most 4 KiB per read (`read_tls`), so a 16 KiB TLS record
//! took four or five `recv` calls, and every download and page pipgate fetched paid one system
//! call per 4 KiB. Read through this buffer, one `recv` takes what the socket holds (up to
//! [`READ_BUFFER`]: four full records) and rustls's reads are served from memory. Writes go
//! straight through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::TcpStream;

/// Bytes one `recv` may take from an upstream socket.
const READ_BUFFER: usize = 64 * 1024;

/// An upstream connection's socket with its read buffer.
#[derive(Debug)]
pub(crate) struct Socket(BufReader<TcpStream>);

impl Socket {
    pub(crate) fn new(tcp: TcpStream) -> TokioIo<Socket> {
        TokioIo::new(Socket(BufReader::with_capacity(READ_BUFFER, tcp)))
    }
}

impl Connection for Socket {
    fn connected(&self) -> Connected {
        self.0.get_ref().connected()
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
