//! The upstream TCP stream, read ahead into a buffer that exists only while it holds bytes.
//!
//! rustls asks its transport for at most 4 KiB per read (`read_tls`), so a 16 KiB TLS record
//! took several `recv` calls (strace of a download: 2.04 `recvfrom` per `writev` to the
//! client). Read ahead, one `recv` takes what the socket holds (up to [`READ_AHEAD`]: four full
//! records) and rustls's reads are served from memory (0.51 per `writev`). The buffer is
//! `head::Rewind`'s, released once read out, so the idle connections of the upstream pool hold
//! none. Writes go straight through.

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::head::Rewind;

/// Bytes one `recv` may take from an upstream socket.
const READ_AHEAD: usize = 64 * 1024;

/// An upstream connection's socket, read ahead.
pub(crate) type Socket = Rewind<TcpStream>;

pub(crate) fn socket(tcp: TcpStream) -> TokioIo<Socket> {
    TokioIo::new(Rewind::reading_ahead(tcp, READ_AHEAD))
}

impl Connection for Rewind<TcpStream> {
    fn connected(&self) -> Connected {
        self.get_ref().connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Over a real socket, small reads and reads as large as the read-ahead come whole and in
    /// order, and the end of the stream reads as empty.
    #[tokio::test]
    async fn reads_come_whole_and_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            peer.write_all(&sent).await.unwrap();
        });
        let mut s = socket(TcpStream::connect(addr).await.unwrap()).into_inner();
        let mut got = Vec::new();
        let mut small = [0u8; 4096];
        let mut large = vec![0u8; READ_AHEAD];
        for turn in 0.. {
            let buf: &mut [u8] = if turn % 3 == 2 {
                &mut large
            } else {
                &mut small
            };
            let n = s.read(buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap();
        assert_eq!(got, data);
    }
}
