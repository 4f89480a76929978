//! Graceful shutdown (issue 2): on SIGTERM pipgate stops accepting, lets an in-flight download
//! finish, then exits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipgate_integration_tests::origin::Origin;
use pipgate_integration_tests::runtime::runtime;
use pipgate_integration_tests::tls::{client_config_for, read_pem_certs};
use pipgate_integration_tests::world::{World, FILES_HOST};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SIZE: usize = 16 * 1024 * 1024;

fn pid_of(config: &std::path::Path) -> u32 {
    let needle = config.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if comm.trim() == "pipgate" && String::from_utf8_lossy(&cmdline).contains(&needle) {
            return pid;
        }
    }
    panic!("no pipgate process for {needle}");
}

#[test]
fn sigterm_drains_in_flight_downloads_then_exits() {
    let world = World::start();
    let big = Origin::builder(world.origin_ca())
        .host(FILES_HOST)
        .host("pypi.org")
        .route(
            "/packages/big-1.0-py3-none-any.whl",
            "application/octet-stream",
            vec![7u8; SIZE],
        )
        .run();
    let mut cfg = world.pipgate_config();
    cfg.public_addr = big.addr();
    let p = world.start_pipgate(&cfg);
    let pid = pid_of(&p.config_path);
    let roots = read_pem_certs(&p.ca_pem);
    let proxy = p.addr;

    let received = runtime().block_on(async move {
        let mut tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
        tcp.write_all(format!("CONNECT {FILES_HOST}:443 HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        let tls_config = client_config_for(&roots, &[b"http/1.1"]);
        let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&tls_config))
            .connect(FILES_HOST.try_into().unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(
            format!("GET /packages/big-1.0-py3-none-any.whl HTTP/1.1\r\nHost: {FILES_HOST}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        // Read slowly: the download is still in flight when SIGTERM arrives.
        let mut total = 0usize;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut signalled = false;
        let start = Instant::now();
        loop {
            let n = tls.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            total += n;
            if !signalled && total > 1024 * 1024 {
                signalled = true;
                let ok = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .unwrap()
                    .success();
                assert!(ok);
                tokio::time::sleep(Duration::from_millis(300)).await;
                // No new connections once draining.
                let refused = tokio::net::TcpStream::connect(proxy).await;
                assert!(refused.is_err(), "pipgate still accepts after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(start.elapsed() < Duration::from_secs(60), "download too slow");
        }
        total
    });
    assert!(
        received > SIZE,
        "the in-flight download completed: {received} bytes (body {SIZE})"
    );
    // The process is gone soon after its last connection ended.
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    });
    assert!(gone, "pipgate did not exit after draining");
}
