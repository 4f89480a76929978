//! Issue 2 end to end: pipgate as a TLS-intercepting forward proxy, its CLI and its error paths,
//! driven by real pip and by a raw rustls/hyper probe.
use std::process::Command;
use std::sync::OnceLock;

use pipgate_integration_tests::fixtures::sha256_hex;
use pipgate_integration_tests::installer::{self, only_file};
use pipgate_integration_tests::pipgate::pipgate_command;
use pipgate_integration_tests::probe::{
    http_get, raw_exchange, raw_head, raw_status, unused_addr, Probe, ProbeResponse,
};
use pipgate_integration_tests::tls::der_to_pem;
use pipgate_integration_tests::venv;
use pipgate_integration_tests::world::World;

/// One world (origins + pipgate) for every test of this binary: tests only read from it.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::start)
}

#[test]
fn pip_downloads_a_wheel_through_pipgate() {
    let w = world();
    let dest = w.scratch("dl-");
    let home = w.scratch("home-");
    let out = installer::pip(
        venv::latest(),
        &w.via_pipgate(),
        &home,
        &[
            "download",
            "--no-deps",
            "-d",
            dest.to_str().unwrap(),
            "--index-url",
            &w.public_index_url(),
            "pubdep",
        ],
    );
    out.assert_ok();
    let want = w.file("pubdep", "1.0");
    let got = only_file(&dest);
    assert_eq!(got.file_name().unwrap().to_str().unwrap(), want.filename);
    assert_eq!(sha256_hex(&std::fs::read(&got).unwrap()), want.sha256);
    // It really went through pipgate's interception (pipgate fetched the file upstream).
    assert!(w.public_origin().asked_for(&want.filename));
}

/// `threads = 2` runs a multi-threaded runtime (the default is one thread): pip and uv work
/// through it, and the private name still comes from the private index.
#[test]
fn pip_and_uv_work_through_pipgate_on_two_threads() {
    let w = world();
    let mut cfg = w.pipgate_config();
    cfg.threads = Some(2);
    let pg = w.start_pipgate(&cfg);
    pg.log_line("start line naming 2 threads", |l| {
        l.contains("pipgate listening") && l.contains("threads=2")
    });
    // Its runtime's worker threads, counted in /proc.
    let config = pg.config_path.to_string_lossy().into_owned();
    let process = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"/pipgate"))
                && args.contains(&config.as_bytes())
        })
        .expect("the pipgate process");
    let workers = std::fs::read_dir(process.path().join("task"))
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "pipgate-worker")
        })
        .count();
    assert_eq!(workers, 2);
    let route = installer::Route {
        proxy_url: pg.proxy_url(),
        ca_pem: pg.ca_pem.clone(),
    };
    let got = w.pip_download(&route, &["--index-url", &w.public_index_url()], "pubdep");
    assert_eq!(
        sha256_hex(&std::fs::read(&got).unwrap()),
        w.file("pubdep", "1.0").sha256
    );
    let target = w.scratch("uv-target-");
    installer::uv(
        venv::latest(),
        &route,
        &w.scratch("home-"),
        &[
            "pip",
            "install",
            "--target",
            target.to_str().unwrap(),
            "--index-url",
            &w.private_index_url(),
            "--extra-index-url",
            &w.public_index_url(),
            "--no-deps",
            "acme-lib",
        ],
    )
    .assert_ok();
    let init = std::fs::read_to_string(target.join("acme_lib/__init__.py")).unwrap();
    assert!(init.contains("__version__ = \"1.0\""), "{init}");
    assert!(
        !init.contains("payload"),
        "the public 99.0 was installed: {init}"
    );
    // Through this pipgate: its log has the wheel's download.
    pg.access_event(&w.file("acme-lib", "1.0").filename);
}

#[test]
fn http10_connect_without_host_header_then_tls() {
    let w = world();
    let probe = Probe::new(w.pipgate().addr, w.ca_pem()).http10_connect();
    let page = probe.get("https://pypi.org/simple/pubdep/");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(!page.from_connect);
    let want = w.file("pubdep", "1.0");
    assert!(page.text().contains(&want.filename), "{}", page.text());
    let wheel = probe.get(&want.url);
    assert_eq!(wheel.status, 200);
    assert_eq!(sha256_hex(&wheel.body), want.sha256);
}

#[test]
fn the_raw_connect_bytes_pip_sends_get_a_200() {
    // Exactly what pip on Python <= 3.11 writes: no Host, no other header.
    let raw = raw_head(
        world().pipgate().addr,
        b"CONNECT pypi.org:443 HTTP/1.0\r\n\r\n",
    );
    assert_eq!(raw_status(&raw), 200, "{}", String::from_utf8_lossy(&raw));
}

#[test]
fn http2_is_offered_and_served() {
    let w = world();
    let page = w.probe().h2().get("https://pypi.org/simple/pubdep/");
    assert_eq!(page.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("pubdep-1.0"), "{}", page.text());
}

#[test]
fn files_stream_with_head_and_range() {
    let w = world();
    let want = w.file("pubdep", "1.0");
    let probe = w.probe();
    let head = probe.send(Probe::request("HEAD", &want.url)).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), want.bytes.len().to_string());
    assert!(head.body.is_empty());
    let part = probe
        .send(Probe::request("GET", &want.url).header("range", "bytes=0-9"))
        .unwrap();
    assert_eq!(part.status, 206, "{}", part.text());
    assert_eq!(part.body, want.bytes[..10]);
    let tail = probe
        .send(Probe::request("GET", &want.url).header("range", "bytes=-10"))
        .unwrap();
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, want.bytes[want.bytes.len() - 10..]);
}

#[test]
fn unlisted_host_is_refused_with_a_403_naming_host_and_key() {
    let w = world();
    for url in ["https://github.com/", "https://evil.test/"] {
        let resp = w.probe().get(url);
        let host = url.trim_start_matches("https://").trim_end_matches('/');
        assert!(resp.from_connect, "{url}: the tunnel must not open");
        assert_eq!(resp.status, 403, "{url}: {}", resp.text());
        let body = resp.text();
        assert!(body.contains(host), "{url}: {body}");
        assert!(
            body.contains("unlisted_hosts") || body.contains("tunnel_allow"),
            "{url}: {body}"
        );
    }
    assert!(w.evil_origin().requests().is_empty());
}

#[test]
fn connect_to_internal_addresses_is_refused() {
    let w = world();
    for target in [
        "127.0.0.1:22",
        "127.0.0.1:443",
        "169.254.169.254:443",
        "169.254.169.254:80",
        "10.0.0.1:443",
        "192.168.1.1:443",
        "[::1]:443",
        "[::ffff:127.0.0.1]:443",
        "2130706433:443",
        "0x7f.0.0.1:443",
        "pypi.org:22",
    ] {
        let raw = raw_head(
            w.pipgate().addr,
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
        );
        let status = raw_status(&raw);
        assert!(
            (400..500).contains(&status),
            "CONNECT {target} got {status}: {}",
            String::from_utf8_lossy(&raw)
        );
    }
}

#[test]
fn pypi_python_org_redirects_to_pypi_org() {
    let w = world();
    let resp = w.probe().get("https://pypi.python.org/simple/pubdep/");
    assert_eq!(resp.status, 301, "{}", resp.text());
    assert_eq!(resp.header("location"), "https://pypi.org/simple/pubdep/");
    let json = w.probe().get("https://pypi.python.org/pypi/pip/json");
    assert_eq!(json.status, 301);
    assert_eq!(json.header("location"), "https://pypi.org/pypi/pip/json");
}

#[test]
fn a_request_for_another_host_inside_a_tunnel_is_misdirected() {
    let w = world();
    for probe in [w.probe(), w.probe().h2()] {
        let resp = probe
            .send(
                Probe::request("GET", "https://pypi.org/simple/pubdep/").authority("private.test"),
            )
            .unwrap();
        assert_eq!(resp.status, 421, "{}", resp.text());
        let resp = probe
            .send(
                Probe::request("GET", "https://files.pythonhosted.org/simple/pubdep/")
                    .authority("evil.test"),
            )
            .unwrap();
        assert_eq!(resp.status, 421, "{}", resp.text());
    }
    assert!(w.evil_origin().requests().is_empty());
}

#[test]
fn malformed_request_lines_get_400() {
    let w = world();
    for junk in [
        &b"THIS IS NOT HTTP\r\n\r\n"[..],
        b"CONNECT\r\n\r\n",
        b"CONNECT pypi.org:443 HTTP/9.9\r\n\r\n",
        b"CONNECT pypi.org:notaport HTTP/1.1\r\n\r\n",
    ] {
        let raw = raw_exchange(w.pipgate().addr, junk);
        assert_eq!(
            raw_status(&raw),
            400,
            "{:?} -> {}",
            String::from_utf8_lossy(junk),
            String::from_utf8_lossy(&raw)
        );
    }
}

#[test]
fn upstream_down_is_a_502_naming_the_cause() {
    let w = world();
    let mut cfg = w.pipgate_config();
    cfg.public_addr = unused_addr();
    cfg.admin = false;
    let pg = w.start_pipgate(&cfg);
    let resp: ProbeResponse =
        Probe::new(pg.addr, &pg.ca_pem).get("https://pypi.org/simple/pubdep/");
    assert_eq!(resp.status, 502, "{}", resp.text());
    let body = resp.text().to_ascii_lowercase();
    assert!(
        body.contains("refused") || body.contains("connect"),
        "{body}"
    );
}

#[test]
fn untrusted_upstream_certificate_is_a_502_naming_tls() {
    let w = world();
    let mut cfg = w.pipgate_config();
    cfg.extra_roots = None;
    cfg.admin = false;
    let pg = w.start_pipgate(&cfg);
    let resp = Probe::new(pg.addr, &pg.ca_pem).get("https://pypi.org/simple/pubdep/");
    assert_eq!(resp.status, 502, "{}", resp.text());
    let body = resp.text().to_ascii_lowercase();
    assert!(
        body.contains("tls") || body.contains("certificate"),
        "{body}"
    );
}

#[test]
fn config_with_an_unknown_key_is_refused_naming_key_and_line() {
    let w = world();
    let dir = w.scratch("badcfg-");
    let good = w.pipgate_config().to_toml();
    // Line 3 of the file is the unknown key.
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(2, "colour = \"blue\"");
    let bad = lines.join("\n");
    let path = dir.join("bad.toml");
    std::fs::write(&path, &bad).unwrap();
    let out = pipgate_command()
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("colour"), "{text}");
    assert!(text.contains("line 3"), "{text}");

    // `pipgate run` refuses it too, without listening.
    let run = pipgate_command()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(!String::from_utf8_lossy(&run.stdout).contains("listening on"));

    // The same file without the key passes and the effective config is printed.
    let ok_path = dir.join("good.toml");
    std::fs::write(&ok_path, &good).unwrap();
    std::fs::create_dir_all(dir.join("ca")).unwrap();
    std::fs::copy(&w.pipgate().ca_pem, dir.join("ca/ca.pem")).unwrap();
    std::fs::copy(
        w.pipgate().ca_pem.with_file_name("ca.key"),
        dir.join("ca/ca.key"),
    )
    .unwrap();
    let out = pipgate_command()
        .args(["config", "check", "--config"])
        .arg(&ok_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("private.test"), "{stdout}");
}

#[test]
fn ca_init_refuses_to_overwrite_without_force() {
    let w = world();
    let dir = w.scratch("ca-");
    let run = |extra: &[&str]| {
        let mut cmd: Command = pipgate_command();
        cmd.args(["ca", "init", "--dir"]).arg(&dir).args(extra);
        cmd.output().unwrap()
    };
    assert!(run(&[]).status.success());
    let first = std::fs::read(dir.join("ca.key")).unwrap();
    assert!(!run(&[]).status.success(), "second init must refuse");
    assert_eq!(std::fs::read(dir.join("ca.key")).unwrap(), first);
    assert!(run(&["--force"]).status.success());
    assert_ne!(std::fs::read(dir.join("ca.key")).unwrap(), first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "ca.key mode {mode:o}");
    }
}

#[test]
fn presented_leaf_passes_openssl_x509_strict() {
    let w = world();
    let dir = w.scratch("leaf-");
    for host in ["pypi.org", "files.pythonhosted.org", "private.test"] {
        let resp = w.probe().get(&format!("https://{host}/simple/"));
        let leaf = resp.peer_certs.first().expect("a presented certificate");
        let leaf_path = dir.join(format!("{host}.pem"));
        std::fs::write(&leaf_path, der_to_pem(leaf)).unwrap();
        let out = Command::new("openssl")
            .args([
                "verify",
                "-x509_strict",
                "-purpose",
                "sslserver",
                "-verify_hostname",
                host,
                "-CAfile",
            ])
            .arg(w.ca_pem())
            .arg(&leaf_path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains(": OK"),
            "{host}: {text}"
        );
    }
}

#[test]
fn admin_port_answers_health_and_metrics() {
    let w = world();
    let admin = w
        .pipgate()
        .admin
        .expect("world's pipgate has an admin port");
    // Traffic first, so the counters have something to count.
    assert_eq!(w.probe().get("https://pypi.org/simple/pubdep/").status, 200);
    let health = http_get(admin, "/healthz");
    assert_eq!(health.status, 200, "{}", health.text());
    let ready = http_get(admin, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let metrics = http_get(admin, "/metrics");
    assert_eq!(metrics.status, 200);
    let body = metrics.text();
    assert!(body.contains("# TYPE"), "{body}");
    assert!(body.contains("pypi.org"), "requests by host: {body}");
    let missing = http_get(admin, "/nope");
    assert_eq!(missing.status, 404);
    // The admin endpoints are not served on the proxy port.
    let raw = raw_exchange(
        w.pipgate().addr,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_ne!(raw_status(&raw), 200, "{}", String::from_utf8_lossy(&raw));
}

#[test]
fn python_313_strict_verification_accepts_pipgate_leaves() {
    // Python 3.13's default context sets VERIFY_X509_STRICT: the verifier that rejects a CA
    // without critical basicConstraints or a leaf without an authority key identifier.
    let Some(python) = venv::python("3.13") else {
        eprintln!("SKIPPED: no Python 3.13 interpreter on this machine");
        return;
    };
    let w = world();
    let script = r#"
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
assert ctx.verify_flags & ssl.VERIFY_X509_STRICT, "not strict"
conn = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=20)
conn.set_tunnel(sys.argv[3], 443)
conn.request("GET", sys.argv[4])
r = conn.getresponse()
print(r.status, r.read()[:200].decode(errors="replace"))
"#;
    let file = w.file("pubdep", "1.0").path();
    for (host, path) in [
        ("pypi.org", "/simple/pubdep/"),
        ("files.pythonhosted.org", &*file),
    ] {
        let out = Command::new(&python)
            .env_clear()
            .arg("-c")
            .arg(script)
            .arg(w.pipgate().addr.port().to_string())
            .arg(w.ca_pem())
            .arg(host)
            .arg(path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{host}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with("200 ") || stdout.starts_with("404 "),
            "{host}: {stdout}"
        );
    }
}

#[test]
fn ca_bundle_holds_pipgates_ca_and_the_system_roots() {
    let w = world();
    let out = pipgate_command()
        .args(["ca", "bundle", "--config"])
        .arg(&w.pipgate().config_path)
        .output()
        .unwrap();
    let bundle = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca = std::fs::read_to_string(&w.pipgate().ca_pem).unwrap();
    let ca_body: String = ca.lines().filter(|l| !l.starts_with("-----")).collect();
    let bundle_body: String = bundle.lines().collect();
    assert!(
        bundle_body.contains(&ca_body),
        "pipgate's CA is missing from the bundle"
    );
    let certs = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(
        certs >= 2,
        "only {certs} certificate(s): the system roots are missing"
    );
    assert!(
        !bundle.contains("PRIVATE KEY"),
        "a key leaked into the bundle"
    );
}

#[test]
fn sni_that_disagrees_with_the_connect_target_is_refused() {
    let w = world();
    let probe = w.probe();
    // An SNI for a host pipgate must not mint for: no certificate for it, no request through.
    let evil =
        probe.send(Probe::request("GET", "https://pypi.org/simple/pubdep/").sni("evil.test"));
    match &evil {
        Err(e) => assert!(e.contains("TLS"), "not a handshake refusal: {e}"),
        Ok(resp) => assert!(
            resp.status == 421 || resp.status == 403,
            "SNI evil.test inside a pypi.org tunnel got {} {}",
            resp.status,
            resp.text()
        ),
    }
    // An SNI (and Host) for another intercepted host: the request is not for this tunnel.
    let file = w.file("pubdep", "1.0");
    let other = probe.send(
        Probe::request("GET", &format!("https://pypi.org{}", file.path()))
            .sni("files.pythonhosted.org")
            .authority("files.pythonhosted.org"),
    );
    match &other {
        Err(e) => assert!(e.contains("TLS"), "{e}"),
        Ok(resp) => assert_eq!(resp.status, 421, "{}", resp.text()),
    }
    assert!(w.evil_origin().requests().is_empty());
}

#[test]
fn smuggling_and_authority_tricks_inside_a_tunnel_are_refused() {
    let w = world();
    let probe = w.probe();
    let url = "https://pypi.org/";
    let cases: [(&str, &[u16]); 4] = [
        (
            "GET /simple/pubdep/ HTTP/1.1\r\nHost: pypi.org\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "GET /simple/pubdep/ HTTP/1.1\r\nHost: pypi.org\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            &[400],
        ),
        (
            "GET /simple/pubdep/ HTTP/1.1\r\nHost: pypi.org\r\nX-Folded: a\r\n b\r\n\r\n",
            &[400],
        ),
        (
            "GET https://private.test/simple/acme-lib/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n",
            &[400, 421],
        ),
    ];
    for (i, (request, allowed)) in cases.into_iter().enumerate() {
        let raw = probe.raw_tls(url, request.as_bytes()).unwrap();
        let status = raw_status(&raw);
        let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        // RFC 9112 6.3: with both Transfer-Encoding and Content-Length a server may instead
        // go by the chunked framing alone, provided it closes the connection afterwards.
        let closed_after_te = i == 0 && status == 200 && text.contains("connection: close");
        assert!(
            allowed.contains(&status) || closed_after_te,
            "{request:?} -> {text}"
        );
    }
    // Whatever the client sent, upstream never saw ambiguous framing.
    for r in w.public_origin().requests() {
        let te = r.headers.contains_key("transfer-encoding");
        let cl = r.headers.get_all("content-length").iter().count();
        assert!(
            !(te && cl > 0) && cl <= 1,
            "ambiguous framing forwarded: {r:?}"
        );
    }
    assert!(w.evil_origin().requests().is_empty());
    // The private origin heard nothing from a pypi.org tunnel asking for private.test.
    assert!(
        !w.private_origin()
            .requests()
            .iter()
            .any(|r| r.host == "pypi.org"),
        "{:?}",
        w.private_origin().requests()
    );
}

#[test]
fn two_host_header_lines_are_a_400() {
    let w = world();
    let raw = w
        .probe()
        .raw_tls(
            "https://pypi.org/",
            b"GET /simple/pubdep/ HTTP/1.1\r\nHost: pypi.org\r\nHost: evil.test\r\n\r\n",
        )
        .unwrap();
    assert_eq!(raw_status(&raw), 400, "{}", String::from_utf8_lossy(&raw));
}
