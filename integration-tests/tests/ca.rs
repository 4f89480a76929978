//! Issue 17, section 2: a CA that can only vouch for package hosts. `pipgate ca init` writes
//! name constraints (inspected with `openssl x509 -text`); pipgate's leaves pass `openssl
//! verify -x509_strict`; a leaf the same key signs for another host (made here with openssl) is
//! refused by OpenSSL, Python's `ssl` and uv; `pipgate run` refuses a CA that cannot vouch for
//! a configured host, and warns about one without constraints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pipgate_integration_tests::pipgate::{pipgate_command, Pipgate};
use pipgate_integration_tests::tls::der_to_pem;
use pipgate_integration_tests::venv;
use pipgate_integration_tests::world::World;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One world (origins + pipgate, whose CA the harness made with `ca init --config`).
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::start)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    (out.status.success(), text(&out))
}

fn ca_init(dir: &Path, extra: &[&str]) -> Output {
    pipgate_command()
        .args(["ca", "init", "--dir"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

/// The Name Constraints lines of `openssl x509 -text` for `cert` (empty without the extension),
/// the header with its criticality first.
fn name_constraints(cert: &Path) -> Vec<String> {
    let (ok, out) = openssl(&["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
    assert!(ok, "{out}");
    let mut lines = out.lines().map(str::trim);
    let Some(header) = lines.find(|l| l.starts_with("X509v3 Name Constraints")) else {
        return Vec::new();
    };
    std::iter::once(header)
        .chain(lines.take_while(|l| !l.starts_with("X509v3 ") && !l.starts_with("Signature")))
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

const NO_V4: &str = "IP:0.0.0.0/0.0.0.0";
const NO_V6: &str = "IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0";

#[test]
fn ca_init_writes_the_intercepted_hosts_as_critical_name_constraints() {
    let tmp = tempfile::tempdir().unwrap();
    let defaults = [
        "DNS:pypi.org",
        "DNS:files.pythonhosted.org",
        "DNS:pypi.python.org",
    ];

    // The embedded default's hosts.
    let dir = tmp.path().join("default");
    let out = ca_init(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("the CA may vouch for pypi.org, files.pythonhosted.org, pypi.python.org"),
        "{}",
        text(&out)
    );
    let mut want = vec!["X509v3 Name Constraints: critical", "Permitted:"];
    want.extend(defaults);
    want.extend(["Excluded:", NO_V4, NO_V6]);
    assert_eq!(name_constraints(&dir.join("ca.pem")), want);

    // --permit adds subtrees; an IP literal is permitted alone and its family not excluded.
    let dir = tmp.path().join("permit");
    let out = ca_init(&dir, &["--permit", "corp.example", "--permit", "10.1.2.3"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut want = vec!["X509v3 Name Constraints: critical", "Permitted:"];
    want.extend(defaults);
    want.extend([
        "DNS:corp.example",
        "IP:10.1.2.3/255.255.255.255",
        "Excluded:",
        NO_V6,
    ]);
    assert_eq!(name_constraints(&dir.join("ca.pem")), want);

    // --config: every index and file host of that file, and only those.
    let config = tmp.path().join("corp.toml");
    std::fs::write(
        &config,
        "[[index]]\nname = \"corp\"\nurl = \"https://pypi.corp.example/simple/\"\nrole = \"private\"\nfile_hosts = [\"files.corp.example\"]\n",
    )
    .unwrap();
    let dir = tmp.path().join("config");
    let out = ca_init(&dir, &["--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        name_constraints(&dir.join("ca.pem")),
        [
            "X509v3 Name Constraints: critical",
            "Permitted:",
            "DNS:pypi.corp.example",
            "DNS:files.corp.example",
            "Excluded:",
            NO_V4,
            NO_V6
        ]
    );

    // --unconstrained: no extension at all.
    let dir = tmp.path().join("any");
    let out = ca_init(&dir, &["--unconstrained"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("the CA may vouch for any host"));
    assert_eq!(name_constraints(&dir.join("ca.pem")), Vec::<String>::new());

    // The opt-out does not mix with subtrees; a bad subtree is a config-class error.
    let out = ca_init(
        &tmp.path().join("x"),
        &["--unconstrained", "--permit", "a.example"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = ca_init(&tmp.path().join("y"), &["--permit", "*.corp.example"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("*.corp.example"), "{}", text(&out));
    assert!(!tmp.path().join("y/ca.key").exists());
}

/// A leaf for `host` signed by `ca_dir`'s key with openssl, shaped as every client accepts
/// (SAN, serverAuth, AKI, critical keyUsage): only the name constraints can refuse it.
fn forge(ca_dir: &Path, out_dir: &Path, host: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(out_dir).unwrap();
    let p = |name: &str| out_dir.join(name).to_str().unwrap().to_owned();
    let (key, csr, leaf, ext) = (p("leaf.key"), p("leaf.csr"), p("leaf.pem"), p("leaf.ext"));
    std::fs::write(
        &ext,
        format!(
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = DNS:{host}\n\
             subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
        ),
    )
    .unwrap();
    let (ok, out) = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        &format!("/CN={host}"),
    ]);
    assert!(ok, "{out}");
    let ca_pem = ca_dir.join("ca.pem");
    let ca_key = ca_dir.join("ca.key");
    let (ok, out) = openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        ca_pem.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-set_serial",
        "4242",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        &ext,
        "-out",
        &leaf,
    ]);
    assert!(ok, "{out}");
    (PathBuf::from(leaf), PathBuf::from(key))
}

fn verify_strict(ca_pem: &Path, leaf: &Path) -> (bool, String) {
    openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        ca_pem.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ])
}

/// Serves TLS with `leaf` on 127.0.0.1 (every connection answered `404`, so a client that
/// accepts the certificate gets an HTTP answer); the thread lives as long as the test process.
fn serve(leaf: &Path, key: &Path) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(leaf)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = tls.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

/// Python's default context (as pip uses it), the name `localhost`, the only CA `ca_pem`.
const PY_CLIENT: &str = r#"
import socket, ssl, sys
cafile, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=cafile)
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
try:
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
except ssl.SSLError as e:
    print("refused: %s" % e)
    sys.exit(3)
print("accepted")
"#;

fn python_says(python: &Path, ca_pem: &Path, port: u16) -> (Option<i32>, String) {
    let out = Command::new(python)
        .env_clear()
        .args(["-c", PY_CLIENT])
        .arg(ca_pem)
        .arg(port.to_string())
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

fn uv_says(ca_pem: &Path, port: u16, home: &Path) -> (bool, String) {
    let venv = venv::latest();
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = venv.clean_command(&venv.bin("uv"), home);
    cmd.env("SSL_CERT_FILE", ca_pem)
        .env("UV_NO_CACHE", "1")
        .env("UV_HTTP_TIMEOUT", "20")
        .env("UV_PYTHON", venv.python())
        .env("UV_PYTHON_DOWNLOADS", "never")
        .args(["pip", "install", "--dry-run", "--no-deps", "--index-url"])
        .arg(format!("https://localhost:{port}/simple/"))
        .arg("forged-probe");
    let out = cmd.output().unwrap();
    (out.status.success(), text(&out))
}

#[test]
fn pipgates_leaves_pass_strict_verification_and_a_forged_leaf_is_refused_everywhere() {
    let w = world();
    let ca_pem = w.ca_pem().to_path_buf();
    let ca_dir = ca_pem.parent().unwrap().to_path_buf();
    // The harness made this CA the default way: constrained to the world's hosts.
    let nc = name_constraints(&ca_pem);
    assert_eq!(
        nc.first().map(String::as_str),
        Some("X509v3 Name Constraints: critical")
    );
    assert!(nc.iter().any(|l| l == "DNS:private.test"), "{nc:?}");
    assert!(!nc.iter().any(|l| l == "DNS:localhost"), "{nc:?}");

    let dir = w.scratch("ca-forge-");
    for host in ["pypi.org", "files.pythonhosted.org", "private.test"] {
        let resp = w.probe().get(&format!("https://{host}/simple/"));
        let leaf = resp.peer_certs.first().expect("a presented certificate");
        let path = dir.join(format!("{host}.pem"));
        std::fs::write(&path, der_to_pem(leaf)).unwrap();
        let (ok, out) = verify_strict(&ca_pem, &path);
        assert!(ok && out.contains(": OK"), "{host}: {out}");
    }

    // The same key signs a leaf for `localhost`, outside the constraints. A control: the
    // identical forgery under an unconstrained CA is accepted by every client below, so what
    // refuses the first is the name constraints, not the leaf's shape.
    let (evil, evil_key) = forge(&ca_dir, &dir.join("evil"), "localhost");
    let open_ca = dir.join("open-ca");
    assert!(ca_init(&open_ca, &["--unconstrained"]).status.success());
    let (control, control_key) = forge(&open_ca, &dir.join("control"), "localhost");
    let open_pem = open_ca.join("ca.pem");

    let (ok, out) = verify_strict(&ca_pem, &evil);
    assert!(!ok && out.contains("permitted subtree violation"), "{out}");
    let (ok, out) = verify_strict(&open_pem, &control);
    assert!(ok && out.contains(": OK"), "control: {out}");

    let evil_port = serve(&evil, &evil_key);
    let control_port = serve(&control, &control_key);

    let mut tried = Vec::new();
    for version in ["2.7", "3.6", "3.11", "3.13"] {
        let Some(python) = venv::python(version) else {
            eprintln!("note: no python{version} on this machine; its ssl check is skipped");
            continue;
        };
        let (code, out) = python_says(&python, &open_pem, control_port);
        assert_eq!(code, Some(0), "python{version} control: {out}");
        let (code, out) = python_says(&python, &ca_pem, evil_port);
        assert_eq!(code, Some(3), "python{version} must refuse: {out}");
        assert!(
            out.contains("CERTIFICATE_VERIFY_FAILED"),
            "python{version}: {out}"
        );
        // From 3.7 the verify reason is in the message (2.7 and 3.6 print only the above).
        if version.starts_with("3.1") {
            assert!(
                out.contains("permitted subtree violation"),
                "python{version}: {out}"
            );
        }
        tried.push(version);
    }
    assert!(tried.contains(&"3.11"), "python3.11 is required: {tried:?}");
    eprintln!("python ssl refused the forged leaf on {tried:?}");

    // uv (rustls/webpki): the control reaches the server (a 404: not in the registry); the
    // forgery is refused during the handshake.
    let home = dir.join("uv-home");
    let (ok, out) = uv_says(&open_pem, control_port, &home);
    assert!(
        !ok && !out.to_lowercase().contains("certificate"),
        "uv control: {out}"
    );
    let (ok, out) = uv_says(&ca_pem, evil_port, &home);
    assert!(
        !ok && out.contains("NameConstraintViolation"),
        "uv must refuse: {out}"
    );
}

const CORP: &str =
    "listen = \"127.0.0.1:0\"\n\n[ca]\ncert = \"ca/ca.pem\"\nkey = \"ca/ca.key\"\n\n\
    [[index]]\nname = \"corp\"\nurl = \"https://pypi.corp.example/simple/\"\nrole = \"private\"\n\
    file_hosts = [\"files.corp.example\"]\n\n\
    [[index]]\nname = \"pypi\"\nurl = \"https://pypi.org/simple/\"\nrole = \"public\"\n\
    file_hosts = [\"files.pythonhosted.org\"]\n";

#[test]
fn run_refuses_a_ca_that_cannot_vouch_for_a_configured_host() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::path::absolute(tmp.path()).unwrap();
    let config = dir.join("pipgate.toml");
    std::fs::write(&config, CORP).unwrap();
    // A CA for the embedded default's hosts only.
    assert!(ca_init(&dir.join("ca"), &[]).status.success());

    let fix = format!(
        "pipgate ca init --dir {} --force --config {}",
        dir.join("ca").display(),
        config.display()
    );
    let want = format!(
        "pipgate: the CA at {} may not vouch for pypi.corp.example, files.corp.example (its \
         name constraints permit pypi.org, files.pythonhosted.org, pypi.python.org); make a \
         fitting CA with: {fix}",
        dir.join("ca/ca.pem").display()
    );
    let out = pipgate_command()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .any(|l| l == want),
        "want {want:?} in:\n{}",
        text(&out)
    );
    // `config check` reports what `run` would refuse.
    let out = pipgate_command()
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("may not vouch for pypi.corp.example"),
        "{}",
        text(&out)
    );

    // The printed command makes a CA that fits: then it starts, without a warning.
    let args: Vec<&str> = fix.split(' ').skip(1).collect();
    let out = pipgate_command().args(&args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = pipgate_command()
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let p = Pipgate::start(&dir, CORP);
    assert!(
        !p.stderr().contains("no name constraints"),
        "{}",
        p.stderr()
    );
}

#[test]
fn an_unconstrained_ca_is_warned_about_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(ca_init(&tmp.path().join("ca"), &["--unconstrained"])
        .status
        .success());
    let p = Pipgate::start(tmp.path(), CORP);
    let line = p.log_line("the unconstrained-CA warning", |l| {
        l.contains("no name constraints")
    });
    assert!(line.contains("level=warn"), "{line}");
    assert!(line.contains("can vouch for any host"), "{line}");
    assert!(line.contains("pipgate ca init --dir "), "{line}");
    assert_eq!(
        p.stderr().matches("no name constraints").count(),
        1,
        "one line: {}",
        p.stderr()
    );
}

#[test]
fn the_ca_made_on_first_start_is_constrained_to_the_configs_hosts() {
    // A config without [ca] uses the default location, where the first start makes the CA.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("pipgate.toml");
    let toml = CORP.replace("[ca]\ncert = \"ca/ca.pem\"\nkey = \"ca/ca.key\"\n", "");
    std::fs::write(&config, toml).unwrap();
    let data = tmp.path().join("data");
    let mut child = pipgate_command()
        .args(["run", "--config"])
        .arg(&config)
        .env("XDG_DATA_HOME", &data)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let listening = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.starts_with("pipgate: listening on ") => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(listening, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        name_constraints(&data.join("pipgate/ca.pem")),
        [
            "X509v3 Name Constraints: critical",
            "Permitted:",
            "DNS:pypi.corp.example",
            "DNS:files.corp.example",
            "DNS:pypi.org",
            "DNS:files.pythonhosted.org",
            "DNS:pypi.python.org",
            "Excluded:",
            NO_V4,
            NO_V6
        ]
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("no name constraints"));
}

#[test]
fn a_reload_that_adds_a_host_outside_the_running_ca_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let pypi_only = "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n[ca]\ncert = \"ca/ca.pem\"\nkey = \"ca/ca.key\"\n";
    let p = Pipgate::start(tmp.path(), pypi_only);
    // The harness made the CA for this config: pypi.org's hosts only.
    let with_corp = format!("admin_listen = \"127.0.0.1:0\"\n{CORP}");
    std::fs::write(&p.config_path, with_corp).unwrap();
    let (status, answer) = p.reload();
    assert_ne!(status, 200, "{answer}");
    assert!(
        answer.contains("may not vouch for pypi.corp.example, files.corp.example"),
        "{answer}"
    );
}
