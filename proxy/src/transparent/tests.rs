use super::*;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::config::Config;

const INDEXES: &str = r#"
[[index]]
name = "pypi"
url = "https://pypi.org/simple/"
role = "public"
file_hosts = ["files.pythonhosted.org"]
[[index]]
name = "corp"
url = "https://private.test:8443/simple/"
role = "private"
file_hosts = ["private.test"]
[[index]]
name = "plain"
url = "http://plain.test/simple/"
role = "private"
"#;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn loops_are_detected() {
    let local = sa("10.200.0.1:8443");
    let own = [sa("127.0.0.1:3128"), sa("0.0.0.0:8443")];
    // Not redirected: conntrack reports the socket itself.
    assert!(loops_back(local, local, &own));
    assert!(loops_back(sa("127.0.0.1:3128"), local, &own));
    assert!(loops_back(sa("127.0.0.1:8443"), local, &own));
    assert!(loops_back(sa("[::ffff:10.200.0.1]:8443"), local, &own));
    assert!(!loops_back(sa("151.101.0.223:443"), local, &own));
    assert!(!loops_back(sa("151.101.0.223:8443"), local, &own));
}

#[tokio::test]
async fn a_connection_that_was_not_redirected_is_closed_without_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\ntransparent_listen = \"127.0.0.1:0\"\n[ca]\ncert = \"ca.pem\"\nkey = \"ca.key\"\n{INDEXES}"
    );
    pipgate_certs::Ca::init(dir.path(), false, &pipgate_certs::Scope::Unconstrained).unwrap();
    let config = Config::parse(&text, dir.path(), None).unwrap();
    let app = crate::App::bind(config).await.unwrap();
    let addr = app.transparent_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stop_rx.await;
    }));
    let mut client = TcpStream::connect(addr).await.unwrap();
    let hello = include_bytes!("../../testdata/client_hello.bin");
    let _ = client.write_all(hello).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(got.is_empty(), "a direct connection got {got:?}");
    let _ = stop_tx.send(());
    server.await.unwrap();
}
