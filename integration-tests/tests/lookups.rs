//! Private-index lookups under load: a fleet asking for one name at once sends the private
//! index one question, not one per client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use pipgate_integration_tests::probe::Probe;
use pipgate_integration_tests::world::{World, PRIVATE_HOST, PUBLIC_HOST};

/// A private index that answers every request with 404 after `delay`, counting requests.
fn slow_private_index(world: &World, delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = (*world.origin_ca().server_config(&[PRIVATE_HOST])).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let rt = pipgate_integration_tests::runtime::runtime();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        counter.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        let resp = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
                        if tls.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, count)
}

#[test]
fn concurrent_requests_for_one_name_share_one_private_lookup() {
    let world = World::start();
    let (slow, asked) = slow_private_index(&world, Duration::from_millis(400));
    let mut cfg = world.pipgate_config();
    cfg.private_addr = slow;
    let p = world.start_pipgate(&cfg);
    let probe = Probe::new(p.addr, &p.ca_pem);
    let clients = 16;
    let barrier = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (probe, barrier) = (probe.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                probe
                    .get(&format!("https://{PUBLIC_HOST}/simple/pubdep/"))
                    .status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "{clients} concurrent requests should share one private-index lookup"
    );
    // The answer is cached: later requests do not ask again.
    assert_eq!(
        probe
            .get(&format!("https://{PUBLIC_HOST}/simple/pubdep/"))
            .status,
        200
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}
