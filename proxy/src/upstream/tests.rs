use std::collections::HashMap;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::*;

/// What an HTTP/2 client's opening frames grant the server: the initial stream window (its
/// SETTINGS) and the connection window (65,535 plus any WINDOW_UPDATE on stream 0).
fn windows(bytes: &[u8]) -> Option<(u32, u32)> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut rest = bytes.strip_prefix(PREFACE)?;
    let (mut stream, mut conn, mut updated) = (65_535, 65_535u32, false);
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (kind, id) = (rest[3], u32::from_be_bytes(rest[5..9].try_into().ok()?));
        let payload = rest.get(9..9 + len)?;
        match (kind, id) {
            (0x4, 0) if rest[4] & 1 == 0 => {
                for setting in payload.chunks_exact(6) {
                    if setting[..2] == [0, 4] {
                        stream = u32::from_be_bytes(setting[2..].try_into().ok()?);
                    }
                }
            }
            (0x8, 0) => {
                conn += u32::from_be_bytes(payload.try_into().ok()?) & 0x7fff_ffff;
                updated = true;
            }
            _ => {}
        }
        rest = &rest[9 + len..];
    }
    updated.then_some((stream, conn))
}

/// Reverting to hyper's adaptive windows opens both at 64 KiB and grows them by its own
/// estimate; pipgate's connections must offer the fixed windows from their first frames.
#[tokio::test]
async fn upstream_http2_connections_open_with_fixed_windows() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pipgate_certs::Ca::init(
        &dir.path().join("ca"),
        false,
        &pipgate_certs::Scope::Unconstrained,
    )
    .unwrap();
    let roots = dir.path().join("ca.pem");
    std::fs::write(&roots, ca.cert_pem()).unwrap();
    let leaves = pipgate_certs::Leaves::new(ca, vec![b"h2".to_vec()]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(leaves.server_config("origin.test").unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = UpstreamSettings {
        extra_roots: vec![roots],
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(5),
        resolve: HashMap::from([(
            ("origin.test".to_owned(), 443),
            listener.local_addr().unwrap(),
        )]),
    };
    let upstream = Upstream::new(&settings).unwrap();
    let client = tokio::spawn(async move {
        let req = Request::get("https://origin.test/simple/")
            .body(crate::body::empty())
            .unwrap();
        upstream.send(req).await
    });

    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = acceptor.accept(tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(w) = windows(&seen) {
                return w;
            }
            let mut buf = [0; 4096];
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed after {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no connection window update in the client's opening frames");
    client.abort();
    assert_eq!(found, (H2_STREAM_WINDOW, H2_CONNECTION_WINDOW));
}
