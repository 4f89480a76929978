use std::path::Path;

use super::*;
use std::time::Duration;

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

fn config(extra: &str) -> Config {
    let text = format!("{extra}\n[ca]\ncert = \"ca.pem\"\nkey = \"ca.key\"\n{INDEXES}");
    Config::parse(&text, Path::new("/nonexistent"), None).unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const PUBLIC_443: &str = "151.101.0.223:443";

#[test]
fn configured_hosts_are_intercepted_on_their_ports() {
    let c = config("");
    let d = |host, orig| decide(&c, Proto::Tls, Some(host), sa(orig));
    assert_eq!(
        d("pypi.org", PUBLIC_443),
        Decision::Intercept("pypi.org".into())
    );
    assert_eq!(
        d("files.pythonhosted.org", "10.0.0.1:443"),
        Decision::Intercept("files.pythonhosted.org".into())
    );
    assert_eq!(
        d("private.test", "10.0.0.1:8443"),
        Decision::Intercept("private.test".into())
    );
    assert_eq!(
        d("pypi.python.org", PUBLIC_443),
        Decision::Intercept("pypi.python.org".into())
    );
    assert!(
        matches!(d("pypi.org", "151.101.0.223:8443"), Decision::Refuse(r) if r.contains("port 443"))
    );
}

#[test]
fn unlisted_or_missing_sni_is_refused_by_default() {
    let c = config("");
    for sni in [Some("evil.test"), None] {
        match decide(&c, Proto::Tls, sni, sa(PUBLIC_443)) {
            Decision::Refuse(r) => assert!(r.contains("network.unlisted_hosts"), "{r}"),
            other => panic!("{sni:?}: {other:?}"),
        }
    }
}

#[test]
fn tunnel_mode_splices_to_public_original_destinations_only() {
    let c = config("[network]\nunlisted_hosts = \"tunnel\"");
    assert_eq!(
        decide(&c, Proto::Tls, None, sa(PUBLIC_443)),
        Decision::TunnelToOriginal
    );
    assert_eq!(
        decide(&c, Proto::Tls, Some("example.com"), sa(PUBLIC_443)),
        Decision::TunnelToOriginal
    );
    // Configured hosts are still intercepted, never tunnelled.
    assert_eq!(
        decide(&c, Proto::Tls, Some("pypi.org"), sa(PUBLIC_443)),
        Decision::Intercept("pypi.org".into())
    );
    for internal in [
        "127.0.0.1:443",
        "10.1.2.3:443",
        "169.254.169.254:443",
        "[::ffff:192.168.0.1]:443",
    ] {
        assert!(
            matches!(decide(&c, Proto::Tls, None, sa(internal)), Decision::Refuse(r) if r.contains("internal")),
            "{internal}"
        );
    }
    assert!(matches!(
        decide(&c, Proto::Tls, None, sa("151.101.0.223:22")),
        Decision::Refuse(_)
    ));
}

#[test]
fn tunnel_allow_dials_by_name_so_the_sni_cannot_pick_the_address() {
    let c = config("[network]\ntunnel_allow = [\"github.com\", \"*.example.org\"]");
    assert_eq!(
        decide(&c, Proto::Tls, Some("github.com"), sa("10.9.9.9:443")),
        Decision::TunnelByName {
            host: "github.com".into(),
            explicit: true
        }
    );
    assert_eq!(
        decide(&c, Proto::Tls, Some("a.example.org"), sa(PUBLIC_443)),
        Decision::TunnelByName {
            host: "a.example.org".into(),
            explicit: false
        }
    );
    assert!(matches!(
        decide(&c, Proto::Tls, Some("a.example.org"), sa("1.2.3.4:22")),
        Decision::Refuse(_)
    ));
    assert!(matches!(
        decide(&c, Proto::Tls, Some("example.org"), sa(PUBLIC_443)),
        Decision::Refuse(_)
    ));
    assert!(matches!(
        decide(&c, Proto::Tls, None, sa(PUBLIC_443)),
        Decision::Refuse(_)
    ));
}

#[test]
fn plain_http_only_for_http_indexes() {
    let c = config("");
    assert_eq!(
        decide(&c, Proto::Http, Some("plain.test"), sa("10.0.0.1:80")),
        Decision::Intercept("plain.test".into())
    );
    assert!(
        matches!(decide(&c, Proto::Http, Some("pypi.org"), sa("151.101.0.223:80")), Decision::Refuse(r) if r.contains("http://"))
    );
    assert!(matches!(
        decide(&c, Proto::Http, None, sa("151.101.0.223:80")),
        Decision::Refuse(_)
    ));
    assert!(matches!(
        decide(&c, Proto::Http, Some("plain.test"), sa("10.0.0.1:8080")),
        Decision::Refuse(_)
    ));
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
    pipgate_certs::Ca::init(dir.path(), false).unwrap();
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
