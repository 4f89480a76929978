//! Issue 17, section 4: checks that tell the truth. `config check` of the shipped `deploy/`
//! files, `listen = "localhost:..."`, `pipgate passwd` on a terminal, the credentials file
//! watched, a private index's self-signed certificate pinned (and a CA used as a server's own
//! certificate explained), and the start-up hints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipgate_integration_tests::origin::Origin;
use pipgate_integration_tests::pipgate::{
    deploy_dir, pipgate_command, transcript as text, Pipgate,
};
use pipgate_integration_tests::probe::Probe;
use pipgate_integration_tests::tls::TestCa;

fn config_check(path: &Path) -> Output {
    pipgate_command()
        .args(["config", "check", "--config"])
        .arg(path)
        .output()
        .expect("run pipgate config check")
}

/// `pipgate passwd FILE USER` with the password on a pipe.
fn passwd_piped(file: &Path, user: &str, password: &str) {
    let mut child = pipgate_command()
        .arg("passwd")
        .arg(file)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pipgate passwd");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "pipgate passwd: {}", text(&out));
}

// ---- config check ------------------------------------------------------------------------

/// The deploy files, as a fresh checkout has them: every file they name that the repository
/// can ship is shipped (the gateway's `users`, relative to the config), and the CA, which no
/// repository should ship a key of, is made by `run` on first start (`[ca] create = true`):
/// `config check` passes. Without `create`, the missing CA is the one error, naming the
/// `ca init` command that makes it; with that CA made, each file passes as it is.
#[test]
fn deploy_configs_pass_config_check_once_their_ca_exists() {
    let deploy = deploy_dir();
    let scratch = tempfile::tempdir().unwrap();
    for name in ["gateway.toml", "sidecar.toml", "config.example.toml"] {
        let path = deploy.join(name);
        // On a fresh checkout: the CA does not exist yet, and `create = true` has `run` make
        // it, so what `run` needs is there.
        let out = config_check(&path);
        assert!(out.status.success(), "{name} in place: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("create = true"),
            "{name}: {}",
            text(&out)
        );
        // The file moved out of deploy/: its `users` named where it is.
        let moved = || {
            std::fs::read_to_string(&path).unwrap().replace(
                "credentials = \"users\"",
                &format!(
                    "credentials = {:?}",
                    deploy.join("users").display().to_string()
                ),
            )
        };
        // Without `create`, a CA that does not exist is the one error, with the command.
        let strict = scratch.path().join(format!("strict-{name}"));
        std::fs::write(&strict, moved().replace("create = true", "")).unwrap();
        let out = config_check(&strict);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        assert_eq!(stderr.lines().count(), 1, "{name}: only the CA: {stderr}");
        assert!(
            stderr.contains("key 'ca.cert'")
                && stderr.contains(
                    "the CA /var/lib/pipgate/ca/ca.pem does not exist; create it with: \
                     pipgate ca init --dir /var/lib/pipgate/ca"
                ),
            "{name}: {stderr}"
        );

        // The same file with its CA directory made by `ca init`, and nothing else changed
        // (its relative paths still naming the files in deploy/).
        let ca_dir = scratch.path().join(name).join("ca");
        let out = pipgate_command()
            .args(["ca", "init", "--dir"])
            .arg(&ca_dir)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let local = scratch.path().join(name).join("config.toml");
        let config = moved().replace("/var/lib/pipgate/ca", &ca_dir.display().to_string());
        std::fs::write(&local, config).unwrap();
        let out = config_check(&local);
        assert!(out.status.success(), "{name} with its CA: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(": OK"),
            "{}",
            text(&out)
        );
    }
}

/// What `run` needs and `config check` now checks: a CA key that does not belong to the
/// certificate, an unreadable credentials file, an extra_roots file that is not there.
#[test]
fn config_check_checks_the_files_run_needs() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        let out = pipgate_command()
            .args(["ca", "init", "--dir"])
            .arg(dir.path().join(sub))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let cases = [
        (
            "[ca]\ncert = \"a/ca.pem\"\nkey = \"b/ca.key\"\n",
            "does not match the public key",
        ),
        (
            "[ca]\ncert = \"a/ca.pem\"\nkey = \"a/ca.key\"\n[access]\ncredentials = \"nobody\"\n",
            "access.credentials: cannot read",
        ),
        (
            "[ca]\ncert = \"a/ca.pem\"\nkey = \"a/ca.key\"\n[upstream]\nextra_roots = [\"none.pem\"]\n",
            "upstream.extra_roots: cannot read",
        ),
        (
            "[ca]\ncert = \"c/pipgate-ca.crt\"\nkey = \"c/pipgate-ca.key\"\n",
            "create one with: pipgate ca init --dir",
        ),
    ];
    for (toml, want) in cases {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml).unwrap();
        let out = config_check(&path);
        assert_eq!(out.status.code(), Some(2), "{toml}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(want),
            "{toml}: want {want:?}: {}",
            text(&out)
        );
    }
}

// ---- listen ------------------------------------------------------------------------------

/// Sends `request` on a fresh connection and returns what comes back until the peer closes.
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

const CA: &str = "[ca]\ncert = \"ca/ca.pem\"\nkey = \"ca/ca.key\"\n";
const CONNECT: &str = "CONNECT unlisted.example:443 HTTP/1.1\r\nHost: unlisted.example:443\r\n";

#[test]
fn listen_takes_a_host_name_resolved_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipgate::start(dir.path(), &format!("listen = \"localhost:0\"\n{CA}"));
    assert_eq!(
        p.addr.ip().to_string(),
        "127.0.0.1",
        "{:?}",
        p.stdout_lines()
    );
    let answer = exchange(p.addr, &format!("{CONNECT}\r\n"));
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    drop(p);

    // A name that resolves to nothing is a config error naming the key and its line.
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!("# a comment\nlisten = \"no-such-host.invalid:3128\"\n{CA}"),
    )
    .unwrap();
    let out = config_check(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr.contains("at line 2: key 'listen': \"no-such-host.invalid:3128\" does not resolve"),
        "{stderr}"
    );
}

// ---- passwd ------------------------------------------------------------------------------

/// Drives `pipgate passwd FILE USER` on a pseudo-terminal (Python's `pty`): answers each
/// prompt only once it is shown, and returns everything the terminal showed and the exit code.
fn passwd_on_a_terminal(file: &Path, user: &str, answers: &[&str]) -> (String, i32) {
    const DRIVER: &str = r#"
import os, subprocess, sys, time, json
bin, file, user = sys.argv[1:4]
answers = json.loads(sys.argv[4])
master, slave = os.openpty()
p = subprocess.Popen([bin, "passwd", file, user], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
os.close(slave)
seen = b""
def read_until(needle, deadline):
    global seen
    while needle not in seen:
        if time.time() > deadline:
            raise SystemExit("timed out waiting for %r; seen %r" % (needle, seen))
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
prompts = [b"password for " + user.encode() + b": ", b"again, password for " + user.encode() + b": "]
for prompt, answer in zip(prompts, answers):
    read_until(prompt, time.time() + 20)
    os.write(master, answer.encode() + b"\n")
p.wait(timeout=60)
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
sys.stdout.write(json.dumps({"seen": seen.decode("utf-8", "replace"), "code": p.returncode}))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(DRIVER)
        .arg(pipgate_integration_tests::pipgate::pipgate_bin())
        .arg(file)
        .arg(user)
        .arg(serde_json::to_string(answers).unwrap())
        .output()
        .expect("python3 drives the terminal");
    assert!(out.status.success(), "pty driver: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["seen"].as_str().unwrap().to_owned(),
        i32::try_from(v["code"].as_i64().unwrap()).unwrap(),
    )
}

#[test]
fn passwd_on_a_terminal_asks_twice_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let (seen, code) = passwd_on_a_terminal(&users, "ci", &["Tr0ub4dor", "Tr0ub4dor"]);
    assert_eq!(code, 0, "{seen}");
    assert!(seen.contains("password for ci: "), "{seen}");
    assert!(seen.contains("again, password for ci: "), "{seen}");
    assert!(
        !seen.contains("Tr0ub4dor"),
        "the password was echoed: {seen}"
    );
    assert!(
        seen.contains("within 2s"),
        "says the change applies by itself: {seen}"
    );
    let file = std::fs::read_to_string(&users).unwrap();
    assert!(file.starts_with("ci:$argon2id$"), "{file}");

    // Two different answers change nothing.
    let (seen, code) = passwd_on_a_terminal(&users, "ci", &["one-password", "another-one"]);
    assert_eq!(code, 1, "{seen}");
    assert!(seen.contains("the two passwords differ"), "{seen}");
    assert!(
        !seen.contains("one-password") && !seen.contains("another-one"),
        "{seen}"
    );
    assert_eq!(
        std::fs::read_to_string(&users).unwrap(),
        file,
        "file changed"
    );

    // From a pipe: one line, no second prompt (the other tests' users files are made so).
    passwd_piped(&users, "ops", "from-a-pipe");
    let file = std::fs::read_to_string(&users).unwrap();
    assert!(file.contains("\nops:$argon2id$"), "{file}");
}

#[test]
fn passwd_help_describes_each_argument() {
    let out = pipgate_command()
        .args(["passwd", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "<FILE>",
        "The credentials file",
        "<USER>",
        "The user to add or change",
        "asked twice, without echo",
        "within 2 seconds",
    ] {
        assert!(help.contains(want), "{want:?} not in:\n{help}");
    }
}

// ---- credentials watched -----------------------------------------------------------------

fn basic(user_password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Proxy-Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

/// Waits for the `n`th log line containing `needle` (10 s at most).
fn wait_log(p: &Pipgate, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stderr().matches(needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} #{n}:\n{}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn credentials_file_is_watched_without_reload() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    passwd_piped(&users, "ci", "first");
    let p = Pipgate::start(
        dir.path(),
        &format!("listen = \"127.0.0.1:0\"\n{CA}[access]\ncredentials = \"users\"\n"),
    );
    let try_user =
        |user_password: &str| exchange(p.addr, &format!("{CONNECT}{}\r\n", basic(user_password)));
    assert!(try_user("ci:first").starts_with("HTTP/1.1 403 "));
    // Not a user yet (and the refusal is remembered: the change must drop that too).
    assert!(try_user("ops:second").starts_with("HTTP/1.1 407 "));

    // A new user, with no POST /reload (there is no admin port) and no SIGHUP.
    passwd_piped(&users, "ops", "second");
    wait_log(&p, "credentials file changed; its users apply", 1);
    let answer = try_user("ops:second");
    assert!(answer.starts_with("HTTP/1.1 403 "), "new user: {answer}");
    assert!(try_user("ci:first").starts_with("HTTP/1.1 403 "));

    // A file that cannot be used: logged, and the users in force stay.
    std::fs::write(&users, "ci:plaintext-password\n").unwrap();
    wait_log(&p, "cannot be used; the previous users stay in force", 1);
    assert!(try_user("ops:second").starts_with("HTTP/1.1 403 "));

    // A user removed: its remembered header stops working.
    std::fs::write(&users, "").unwrap();
    passwd_piped(&users, "ci", "first");
    wait_log(&p, "credentials file changed; its users apply", 2);
    let answer = try_user("ops:second");
    assert!(
        answer.starts_with("HTTP/1.1 407 "),
        "removed user: {answer}"
    );
}

// ---- self-signed private index -----------------------------------------------------------

const PAGE: &str = "<!DOCTYPE html><html><body>\
    <a href=\"https://HOST/files/six-1.0-py3-none-any.whl#sha256=0000000000000000000000000000000000000000000000000000000000000000\">six-1.0-py3-none-any.whl</a>\
    </body></html>";

fn server_config(cert: rcgen::Certificate, key: &rcgen::KeyPair) -> Arc<rustls::ServerConfig> {
    let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A private index on `host` whose server certificate is `config`'s, and a pipgate that
/// lists `root_pem` in `extra_roots` and dials the index on 127.0.0.1.
fn pipgate_for(
    dir: &Path,
    host: &str,
    config: Arc<rustls::ServerConfig>,
    root_pem: &str,
) -> (Pipgate, pipgate_integration_tests::origin::RunningOrigin) {
    let origin = Origin::builder(&TestCa::new())
        .route(
            "/simple/six/",
            "text/html",
            PAGE.replace("HOST", host).into_bytes(),
        )
        .run_with(config);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("server.pem"), root_pem).unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n{CA}\
         [upstream]\nextra_roots = [\"server.pem\"]\n\
         [upstream.resolve]\n\"{host}:443\" = \"{}\"\n\
         [[index]]\nname = \"corp\"\nurl = \"https://{host}/simple/\"\nrole = \"private\"\n",
        origin.addr()
    );
    (Pipgate::start(dir, &toml), origin)
}

#[test]
fn a_self_signed_server_certificate_in_extra_roots_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let host = "pypi.corp.test";

    // A self-signed server certificate (no basicConstraints CA:TRUE), as a private index
    // made with `openssl req -x509 -addext basicConstraints=CA:FALSE` would have.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = cert.pem();
    let (p, _origin) = pipgate_for(
        &dir.path().join("pinned"),
        host,
        server_config(cert, &key),
        &pem,
    );
    let probe = Probe::new(p.addr, &p.ca_pem);
    let r = probe.get(&format!("https://{host}/simple/six/"));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), p.stderr());
    assert!(
        r.text().contains("six-1.0-py3-none-any.whl"),
        "{}",
        r.text()
    );
    drop(p);

    // Pinned means that certificate only: another self-signed certificate for the same name
    // (another key) is refused, and the refusal says what to do.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec![host.to_owned()])
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    let (p, _origin) = pipgate_for(
        &dir.path().join("other"),
        host,
        server_config(other, &other_key),
        &pem,
    );
    let r = Probe::new(p.addr, &p.ca_pem).get(&format!("https://{host}/simple/six/"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains(&format!(
            "{host}'s certificate is not issued by a trusted root"
        )) && r
            .text()
            .contains("the certificate itself (it is then pinned)"),
        "{}",
        r.text()
    );
}

#[test]
fn a_ca_certificate_used_as_the_servers_own_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let host = "pypi.corp.test";
    // What `openssl req -x509` makes by default: basicConstraints CA:TRUE, served as the
    // index's own certificate and listed in extra_roots.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let pem = cert.pem();
    let (p, _origin) = pipgate_for(dir.path(), host, server_config(cert, &key), &pem);
    let r = Probe::new(p.addr, &p.ca_pem).get(&format!("https://{host}/simple/six/"));
    assert_eq!(r.status, 502, "{}", r.text());
    let body = r.text();
    assert!(
        body.contains("the certificate in extra_roots (")
            && body.contains(
                "server.pem) is a CA used as the server's own certificate; give pypi.corp.test \
                 a certificate issued by that CA"
            ),
        "{body}"
    );
}

// ---- start-up hints ----------------------------------------------------------------------

#[test]
fn startup_hints_name_the_credentials_form_and_warn_about_ca_bundle_variables() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    passwd_piped(&users, "ci", "pw");
    let p = Pipgate::start_with_env(
        dir.path(),
        &format!("listen = \"127.0.0.1:0\"\n{CA}[access]\ncredentials = \"users\"\n"),
        &[
            ("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"),
            ("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"),
        ],
        &[],
    );
    let port = p.addr.port();
    let wanted = format!("export HTTPS_PROXY=http://USER:PASSWORD@127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p.stdout_lines().iter().any(|l| l.contains(&wanted)) {
        assert!(Instant::now() < deadline, "{:?}", p.stdout_lines());
        std::thread::sleep(Duration::from_millis(20));
    }
    for var in ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] {
        let line = p.log_line(&format!("warning about {var}"), |l| {
            l.contains("level=warn") && l.contains(&format!("{var} is set"))
        });
        assert!(
            line.contains("it overrides pip's PIP_CERT and --cert")
                && line.contains(&format!("set {var}={}", p.ca_pem.display())),
            "{line}"
        );
    }
    drop(p);

    // No credentials, no such variables: the plain form, no warning.
    let dir = tempfile::tempdir().unwrap();
    let p = Pipgate::start_with_env(
        dir.path(),
        &format!("listen = \"127.0.0.1:0\"\n{CA}"),
        &[],
        &["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"],
    );
    let wanted = format!("export HTTPS_PROXY=http://127.0.0.1:{}", p.addr.port());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p.stdout_lines().iter().any(|l| l.trim() == wanted) {
        assert!(Instant::now() < deadline, "{:?}", p.stdout_lines());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!p.stderr().contains("_CA_BUNDLE is set"), "{}", p.stderr());
}
