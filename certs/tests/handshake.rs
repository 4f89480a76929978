//! Real TLS handshakes: a rustls server with a minted leaf, Python's `ssl` as the client.

// A test binary: its helpers may panic like the tests that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use pipgate_certs::{Ca, Leaves, Scope};

/// Python's default context: CERT_REQUIRED + hostname check, and on 3.13 VERIFY_X509_STRICT,
/// which the script asserts so a future default change cannot hollow the test out.
const CLIENT: &str = r#"
import socket, ssl, sys
cafile, port, host, maxver = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
if sys.version_info >= (3, 13):
    assert ctx.verify_flags & ssl.VERIFY_X509_STRICT, "strict flag missing"
if maxver == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.set_alpn_protocols(["h2", "http/1.1"])
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(b"ping\n")
        reply = tls.recv(64).decode().strip()
        print(reply, tls.version(), tls.selected_alpn_protocol())
"#;

/// Interpreters from pyenv matching `version` (e.g. "3.13"), or None with the reason printed.
fn python(version: &str) -> Option<PathBuf> {
    let root = Command::new("pyenv")
        .arg("root")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| PathBuf::from("/root/.pyenv"));
    let found = std::fs::read_dir(root.join("versions"))
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == version || name.starts_with(&format!("{version}."))
        })
        .map(|e| e.path().join("bin/python3"))
        .find(|p| p.exists());
    if found.is_none() {
        eprintln!(
            "skipping: no python{version} under {}/versions",
            root.display()
        );
    }
    found
}

/// Serves `conns` TLS connections on an ephemeral loopback port: reads one line, answers pong.
fn serve(config: Arc<rustls::ServerConfig>, conns: usize) -> (u16, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut outcomes = Vec::new();
        for _ in 0..conns {
            let (tcp, _) = listener.accept().unwrap();
            outcomes.push(match answer(Arc::clone(&config), tcp) {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("error: {e}"),
            });
        }
        outcomes
    });
    (port, handle)
}

fn answer(config: Arc<rustls::ServerConfig>, tcp: TcpStream) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        if tls.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    tls.write_all(b"pong\n")?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// Runs the client; returns (success, stdout+stderr).
fn connect(python: &Path, cafile: &Path, port: u16, host: &str, maxver: &str) -> (bool, String) {
    // env -i: this machine exports REQUESTS_CA_BUNDLE/SSL_CERT_FILE-style variables that must
    // not leak into the client.
    let out = Command::new(python)
        .env_clear()
        .args(["-c", CLIENT])
        .arg(cafile)
        .arg(port.to_string())
        .arg(host)
        .arg(maxver)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn setup() -> (tempfile::TempDir, Leaves, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    // Constrained as pipgate makes its CAs, to the names the handshakes use.
    let scope = Scope::hosts(["localhost", "127.0.0.1"]).unwrap();
    let ca = Ca::init(&tmp.path().join("ca"), false, &scope).unwrap();
    let alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let leaves = Leaves::new(ca, alpn).unwrap();
    let cafile = tmp.path().join("ca/ca.pem");
    (tmp, leaves, cafile)
}

fn handshakes_with(version: &str) {
    let Some(python) = python(version) else {
        return;
    };
    let (_tmp, leaves, cafile) = setup();
    let cases = [
        ("localhost", "1.3"),
        ("localhost", "1.2"),
        ("127.0.0.1", "1.3"),
    ];
    for (host, maxver) in cases {
        let (port, server) = serve(leaves.server_config(host).unwrap(), 1);
        let (ok, out) = connect(&python, &cafile, port, host, maxver);
        assert!(ok, "python{version} {host} TLS{maxver}: {out}");
        let want_version = if maxver == "1.2" {
            "TLSv1.2"
        } else {
            "TLSv1.3"
        };
        assert_eq!(
            out.trim(),
            format!("pong {want_version} h2"),
            "python{version} {host}"
        );
        assert_eq!(server.join().unwrap(), ["ok"]);
    }

    // A CA the operator made with openssl (SHA-1 SKI): the leaf's AKI must still match it.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    for name in ["openssl-ca", "openssl-rsa-ca"] {
        let cafile = data.join(format!("{name}.pem"));
        let ca = Ca::load(&cafile, &data.join(format!("{name}.key"))).unwrap();
        let leaves = Leaves::new(ca, vec![b"http/1.1".to_vec()]).unwrap();
        let (port, server) = serve(leaves.server_config("localhost").unwrap(), 1);
        let (ok, out) = connect(&python, &cafile, port, "localhost", "1.3");
        assert!(ok, "python{version} {name}: {out}");
        assert_eq!(
            out.trim(),
            "pong TLSv1.3 http/1.1",
            "python{version} {name}"
        );
        assert_eq!(server.join().unwrap(), ["ok"]);
    }
}

#[test]
fn python313_strict_client_accepts_minted_leaves() {
    handshakes_with("3.13");
}

#[test]
fn python311_client_accepts_minted_leaves() {
    handshakes_with("3.11");
}

#[test]
fn python_rejects_a_leaf_for_another_name_or_ca() {
    // Control: the client really verifies, so the successes above mean something.
    let Some(python) = ["3.13", "3.11"].iter().find_map(|v| python(v)) else {
        return;
    };
    let (tmp, leaves, cafile) = setup();

    let (port, server) = serve(leaves.server_config("localhost").unwrap(), 1);
    let (ok, out) = connect(&python, &cafile, port, "pypi.org", "1.3");
    assert!(!ok && out.contains("CERTIFICATE_VERIFY_FAILED"), "{out}");
    server.join().unwrap();

    // A leaf the CA key signed for a name outside its constraints.
    let (port, server) = serve(leaves.server_config("evil.example").unwrap(), 1);
    let (ok, out) = connect(&python, &cafile, port, "evil.example", "1.3");
    assert!(
        !ok && out.contains("CERTIFICATE_VERIFY_FAILED") && out.contains("subtree violation"),
        "{out}"
    );
    server.join().unwrap();

    let other = tmp.path().join("other");
    Ca::init(&other, false, &Scope::Unconstrained).unwrap();
    let (port, server) = serve(leaves.server_config("localhost").unwrap(), 1);
    let (ok, out) = connect(&python, &other.join("ca.pem"), port, "localhost", "1.3");
    assert!(!ok && out.contains("CERTIFICATE_VERIFY_FAILED"), "{out}");
    server.join().unwrap();
}
