//! An unfiltered CONNECT proxy (no TLS interception): the "without pipgate" control.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::runtime::{runtime, AbortOnDrop};

/// A blind tunnel that maps `host:port` CONNECT targets to local addresses, so clients use the
/// same URLs and host names as through pipgate but see the origins' own certificates and pages.
#[derive(Debug)]
pub struct DumbTunnel {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _task: AbortOnDrop,
}

impl DumbTunnel {
    /// Starts the tunnel; targets missing from `map` get `502`.
    pub fn start<I, K>(map: I) -> DumbTunnel
    where
        I: IntoIterator<Item = (K, SocketAddr)>,
        K: Into<String>,
    {
        let map: Arc<HashMap<String, SocketAddr>> = Arc::new(
            map.into_iter()
                .map(|(k, v)| (k.into().to_ascii_lowercase(), v))
                .collect(),
        );
        let rt = runtime();
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind tunnel");
        let addr = listener.local_addr().expect("tunnel addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let task_log = Arc::clone(&log);
        let task = rt.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                while conns.try_join_next().is_some() {}
                let map = Arc::clone(&map);
                let log = Arc::clone(&task_log);
                conns.spawn(async move {
                    let _ = handle(tcp, &map, &log).await;
                });
            }
        });
        DumbTunnel {
            addr,
            log,
            _task: AbortOnDrop(task.abort_handle()),
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY`.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every CONNECT target asked for, in order.
    pub fn targets(&self) -> Vec<String> {
        self.log.lock().expect("tunnel log").clone()
    }
}

async fn handle(
    mut client: TcpStream,
    map: &HashMap<String, SocketAddr>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let mut head = Vec::new();
    let mut buf = [0_u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len())
        + 4;
    let line = String::from_utf8_lossy(&head[..head.iter().position(|&b| b == b'\r').unwrap_or(0)])
        .into_owned();
    let mut words = line.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let target = target.to_ascii_lowercase();
    log.lock().expect("tunnel log").push(target.clone());
    let Some(dest) = map.get(&target) else {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let mut upstream = TcpStream::connect(dest).await?;
    let _ = upstream.set_nodelay(true);
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    // Bytes the client pipelined after the CONNECT head belong to the tunnel.
    if head.len() > end {
        upstream.write_all(&head[end..]).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
