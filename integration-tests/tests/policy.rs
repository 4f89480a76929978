//! Issue 3 end to end: through pipgate, a private name never resolves to a public link (and is
//! never even asked about upstream), external links are dropped, and errors fail closed.

// Helpers shared by tests (the page tests run once per format) fail the way the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use pipgate_integration_tests::fixtures::{self, sha256_hex, FileLink, JSON_CT};
use pipgate_integration_tests::installer::{self, only_file, Route};
use pipgate_integration_tests::origin::{Origin, RunningOrigin};
use pipgate_integration_tests::pipgate::{pipgate_command, Pipgate};
use pipgate_integration_tests::probe::{
    http_get, raw_exchange, raw_status, streamed_then_cut, unused_addr, Probe, ProbeRequest,
};
use pipgate_integration_tests::tls::TestCa;
use pipgate_integration_tests::venv;
use pipgate_integration_tests::world::{ExtraIndex, World};

/// One world for every test of this binary. Every test here relies on the same invariant: the
/// public origin is never asked anything about `acme-lib`, so sharing the access log is sound.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::start)
}

/// Panics if the public origin (pypi.org / files.pythonhosted.org) ever saw a request path
/// mentioning `acme` in any spelling pipgate might have forwarded.
fn assert_public_never_asked_about_acme(w: &World) {
    let leaked: Vec<String> = w
        .public_origin()
        .requests()
        .into_iter()
        .map(|r| format!("{} {}{}", r.method, r.host, r.path))
        .filter(|p| p.to_ascii_lowercase().contains("acme"))
        .collect();
    assert!(
        leaked.is_empty(),
        "the public origin heard of acme: {leaked:?}"
    );
}

#[test]
fn pip_takes_the_private_acme_lib_and_pypi_never_hears_of_it() {
    let w = world();
    let got = w.pip_download(
        &w.via_pipgate(),
        &[
            "--index-url",
            &w.private_index_url(),
            "--extra-index-url",
            &w.public_index_url(),
        ],
        "acme-lib",
    );
    let want = w.file("acme-lib", "1.0");
    assert_eq!(got.file_name().unwrap().to_str().unwrap(), want.filename);
    assert_eq!(sha256_hex(&std::fs::read(&got).unwrap()), want.sha256);
    assert!(w.private_origin().asked_for("/simple/acme-lib/"));
    assert_public_never_asked_about_acme(w);
}

#[test]
fn pip_install_of_a_public_package_with_a_dependency_works_alongside() {
    let w = world();
    let target = w.scratch("site-");
    let home = w.scratch("home-");
    installer::pip(
        venv::latest(),
        &w.via_pipgate(),
        &home,
        &[
            "install",
            "--target",
            target.to_str().unwrap(),
            "--index-url",
            &w.private_index_url(),
            "--extra-index-url",
            &w.public_index_url(),
            "pubpkg",
            "acme-lib",
        ],
    )
    .assert_ok();
    for (module, version) in [("pubpkg", "1.0"), ("pubdep", "1.0"), ("acme_lib", "1.0")] {
        let init = std::fs::read_to_string(target.join(module).join("__init__.py")).unwrap();
        assert!(
            init.contains(&format!("__version__ = \"{version}\"")),
            "{module}: {init}"
        );
        assert!(!init.contains("payload"), "{module}: {init}");
    }
    assert_public_never_asked_about_acme(w);
}

#[test]
fn uv_best_match_takes_the_private_acme_lib() {
    let w = world();
    let target = w.scratch("site-");
    let home = w.scratch("home-");
    installer::uv(
        venv::latest(),
        &w.via_pipgate(),
        &home,
        &[
            "pip",
            "install",
            "--target",
            target.to_str().unwrap(),
            "--index-url",
            &w.private_index_url(),
            "--extra-index-url",
            &w.public_index_url(),
            "--index-strategy",
            "unsafe-best-match",
            "acme-lib",
        ],
    )
    .assert_ok();
    let init = std::fs::read_to_string(target.join("acme_lib/__init__.py")).unwrap();
    assert!(init.contains("__version__ = \"1.0\""), "{init}");
    assert!(!init.contains("payload"), "{init}");
    assert_public_never_asked_about_acme(w);
}

#[test]
fn external_links_never_reach_pip() {
    let w = world();
    let got = w.pip_download(
        &w.via_pipgate(),
        &["--index-url", &w.public_index_url()],
        "extlinks",
    );
    let want = w.file("extlinks", "1.0");
    assert_eq!(got.file_name().unwrap().to_str().unwrap(), want.filename);
    assert_eq!(sha256_hex(&std::fs::read(&got).unwrap()), want.sha256);
    assert!(
        w.evil_origin().requests().is_empty(),
        "{:?}",
        w.evil_origin().requests()
    );
    // The pages pipgate hands out, in both formats, carry only the on-host file.
    let probe = w.probe();
    let html = probe.get("https://pypi.org/simple/extlinks/");
    assert_eq!(html.status, 200);
    let json = probe
        .send(Probe::request("GET", "https://pypi.org/simple/extlinks/").header("accept", JSON_CT))
        .unwrap();
    assert_eq!(json.status, 200);
    for page in [html.text(), json.text()] {
        assert!(page.contains(&want.filename), "{page}");
        assert!(!page.contains("evil.test"), "{page}");
        assert!(!page.contains("extlinks-2.0"), "{page}");
        assert!(!page.contains("extlinks-3.0"), "{page}");
        assert!(!page.contains("http://"), "{page}");
    }
}

#[test]
fn public_files_of_a_private_name_are_forbidden() {
    let w = world();
    let probe = w.probe();
    let attacker = w.file("acme-lib", "99.0");
    let dir = attacker.url.rsplit_once('/').unwrap().0;
    for url in [
        attacker.url.clone(),
        format!("{}.metadata", attacker.url),
        format!("{dir}/Acme.Lib-99.0-py3-none-any.whl"),
        format!("{dir}/acme-lib-99.0.tar.gz"),
        format!("{dir}/ACME_LIB-99.0.zip"),
    ] {
        let resp = probe.get(&url);
        assert_eq!(resp.status, 403, "{url}: {}", resp.text());
        assert!(
            !resp.from_connect,
            "{url}: refused inside the tunnel, per file"
        );
    }
    let head = probe.send(Probe::request("HEAD", &attacker.url)).unwrap();
    assert_eq!(head.status, 403);
    let ranged = probe
        .send(Probe::request("GET", &attacker.url).header("range", "bytes=0-99"))
        .unwrap();
    assert_eq!(ranged.status, 403);
    // The private copy, on the private index's own host, is served.
    let private = w.file("acme-lib", "1.0");
    let ok = probe.get(&private.url);
    assert_eq!(ok.status, 200);
    assert_eq!(sha256_hex(&ok.body), private.sha256);
    assert_public_never_asked_about_acme(w);
}

#[test]
fn every_door_to_a_private_project_on_the_public_index_is_a_404_naming_the_rule() {
    let w = world();
    let probe = w.probe();
    for path in [
        "/pypi/acme-lib/json",
        "/pypi/acme-lib/99.0/json",
        "/pypi/Acme_Lib/json",
        "/simple/acme-lib/",
        "/simple/Acme_Lib/",
        "/simple/acme.lib/",
        "/simple/ACME--lib/",
        "/simple/acme%2Dlib/",
        "/simple/acme-lib",
        "//simple//acme-lib/",
        "/simple/acme-lib/?x=1",
    ] {
        let resp = probe.get(&format!("https://pypi.org{path}"));
        assert_eq!(resp.status, 404, "{path}: {}", resp.text());
        let body = resp.text();
        assert!(body.contains("acme-lib"), "{path}: {body}");
        assert!(
            body.contains("corp") || body.contains("private"),
            "{path}: {body}"
        );
    }
    // The same doors stay open for a public name.
    for path in ["/pypi/pubpkg/json", "/pypi/pubpkg/1.0/json"] {
        let resp = probe.get(&format!("https://pypi.org{path}"));
        assert!(
            resp.status == 200 || (300..400).contains(&resp.status),
            "{path}: {} {}",
            resp.status,
            resp.text()
        );
    }
    // The JSON form is refused the same way.
    let json = probe
        .send(Probe::request("GET", "https://pypi.org/simple/acme-lib/").header("accept", JSON_CT))
        .unwrap();
    assert_eq!(json.status, 404);
    // A name private by pattern only (`internal-*`) is refused, naming the pattern.
    let pattern = probe.get("https://pypi.org/simple/Internal.Tools/");
    assert_eq!(pattern.status, 404, "{}", pattern.text());
    assert!(pattern.text().contains("internal-*"), "{}", pattern.text());
    assert!(!w.public_origin().asked_for("internal"));
    assert_public_never_asked_about_acme(w);
}

#[test]
fn a_public_json_page_is_resynthesized() {
    let w = world();
    let resp = w
        .probe()
        .send(Probe::request("GET", "https://pypi.org/simple/pubpkg/").header("accept", JSON_CT))
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.header("content-type").starts_with(JSON_CT),
        "{:?}",
        resp.headers
    );
    let page: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let want = w.file("pubpkg", "1.0");
    assert!(page["meta"]["api-version"].is_string(), "{page}");
    assert_eq!(page["name"], "pubpkg");
    let files = page["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{page}");
    assert_eq!(files[0]["filename"], want.filename.as_str());
    assert_eq!(files[0]["url"], want.url.as_str());
    assert_eq!(files[0]["hashes"]["sha256"], want.sha256.as_str());
    assert_eq!(
        files[0]["core-metadata"]["sha256"],
        sha256_hex(want.metadata.as_bytes()).as_str()
    );
    // The HTML form of the same project keeps the hash too, and nothing of the upstream markup.
    let html = w.probe().get("https://pypi.org/simple/pubpkg/");
    assert_eq!(html.status, 200);
    assert!(
        html.text().contains(&format!("#sha256={}", want.sha256)),
        "{}",
        html.text()
    );
    assert!(!html.text().contains("pipgate integration-test fixture"));
}

#[test]
fn the_public_root_listing_hides_private_names() {
    let w = world();
    // The listing is filtered by what pipgate knows, not by asking about every name in it:
    // asking for acme-lib first (refused on the public index) makes it a name known to be
    // private, whatever ran before.
    let private = w.probe().get("https://pypi.org/simple/acme-lib/");
    assert_eq!(private.status, 404, "{}", private.text());
    let resp = w.probe().get("https://pypi.org/simple/");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.text();
    assert!(body.contains("pubpkg"), "{body}");
    assert!(!body.contains("acme"), "{body}");
}

/// A root listing too large to rewrite on the thread that serves connections (over 256 KiB)
/// is rewritten elsewhere, and filtered all the same: private names gone, public ones kept.
#[test]
fn a_large_root_listing_is_filtered_too() {
    use std::fmt::Write as _;
    let w = world();
    let mut page = String::from("<!DOCTYPE html><html><body>\n");
    for i in 0..20_000 {
        let _ = writeln!(page, "<a href=\"/simple/pkg-{i}/\">pkg-{i}</a>");
        if i % 1000 == 0 {
            let _ = writeln!(
                page,
                "<a href=\"/simple/internal-tool-{i}/\">internal-tool-{i}</a>"
            );
        }
    }
    page.push_str("</body></html>\n");
    assert!(page.len() > 512 * 1024, "{} bytes", page.len());
    let origin = Origin::builder(w.origin_ca())
        .host("pypi.org")
        .route("/simple/", "text/html", page)
        .run();
    let mut cfg = w.pipgate_config();
    cfg.public_addr = origin.addr();
    cfg.admin = false;
    let pg = w.start_pipgate(&cfg);
    let resp = Probe::new(pg.addr, &pg.ca_pem).get("https://pypi.org/simple/");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.text();
    assert!(!body.contains("internal-tool"), "a private name was listed");
    assert_eq!(body.matches("</a>").count(), 20_000);
    assert!(body.contains(">pkg-19999</a>"));
}

#[test]
fn a_private_index_that_cannot_answer_fails_closed_with_503() {
    let w = world();
    let pubpkg = &w.file("pubpkg", "1.0").filename;
    // Down (connection refused), a 5xx, and a certificate pipgate does not trust.
    let broken = Origin::builder(w.origin_ca())
        .host("private.test")
        .route_full("/simple/pubpkg/", 500, "text/plain", &[], "boom")
        .run();
    let stranger_ca = TestCa::new_in(&w.scratch("ca-"));
    let untrusted = Origin::builder(&stranger_ca)
        .host("private.test")
        .route("/simple/pubpkg/", "text/html", "<a href=\"x\">x</a>")
        .run();
    for (case, addr) in [
        ("down", unused_addr()),
        ("5xx", broken.addr()),
        ("untrusted TLS", untrusted.addr()),
    ] {
        let mut cfg = w.pipgate_config();
        cfg.private_addr = addr;
        cfg.admin = false;
        let pg = w.start_pipgate(&cfg);
        let resp = Probe::new(pg.addr, &pg.ca_pem).get("https://pypi.org/simple/pubpkg/");
        assert_eq!(resp.status, 503, "{case}: {}", resp.text());
        let body = resp.text();
        assert!(
            body.contains("corp") || body.contains("private.test"),
            "{case}: {body}"
        );
        assert!(!body.contains(pubpkg.as_str()), "{case}: {body}");
    }
    assert!(
        broken.asked_for("/simple/pubpkg/"),
        "the 5xx case reached its origin"
    );

    // `on_private_index_error = "allow"` is the explicit opt-out: the public page is served.
    let mut cfg = w.pipgate_config();
    cfg.private_addr = unused_addr();
    cfg.admin = false;
    cfg.on_private_index_error = "allow".to_owned();
    let pg = w.start_pipgate(&cfg);
    let resp = Probe::new(pg.addr, &pg.ca_pem).get("https://pypi.org/simple/pubpkg/");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains(pubpkg.as_str()));
}

#[test]
fn the_private_index_serves_its_own_pages_and_files() {
    let w = world();
    let probe = w.probe();
    let want = w.file("acme-lib", "1.0");
    let page = probe.get("https://private.test/simple/acme-lib/");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains(&want.url), "{}", page.text());
    // Private pages lose their off-host links too (1.5 lives on evil.test).
    assert!(!page.text().contains("evil.test"), "{}", page.text());
    let json = probe
        .send(
            Probe::request("GET", "https://private.test/simple/acme-lib/")
                .header("accept", JSON_CT),
        )
        .unwrap();
    assert_eq!(json.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(json["files"][0]["hashes"]["sha256"], want.sha256.as_str());
    assert_eq!(json["files"].as_array().map(Vec::len), Some(1), "{json}");
    let file = probe.get(&want.url);
    assert_eq!(file.status, 200);
    assert_eq!(sha256_hex(&file.body), want.sha256);
}

#[test]
fn index_redirects_are_checked() {
    let w = world();
    let probe = w.probe();
    let stays = probe.get("https://pypi.org/simple/moved/");
    assert_eq!(stays.status, 301, "{}", stays.text());
    assert_eq!(stays.header("location"), "https://pypi.org/simple/pubdep/");
    let leaves = probe.get("https://pypi.org/simple/escaped/");
    assert!(
        !(300..400).contains(&leaves.status),
        "a redirect to evil.test was passed on: {} {:?}",
        leaves.status,
        leaves.headers
    );
    assert!(!leaves.header("location").contains("evil.test"));
    assert!(w.evil_origin().requests().is_empty());
}

#[test]
fn index_pages_are_never_fetched_conditionally_or_partially() {
    let w = world();
    let probe = w.probe();
    let full = probe.get("https://pypi.org/simple/pubdep/");
    assert_eq!(full.status, 200);
    for (name, value) in [
        ("range", "bytes=0-10"),
        ("if-none-match", "\"upstream-etag\""),
        ("if-modified-since", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ] {
        let resp = probe
            .send(Probe::request("GET", "https://pypi.org/simple/pubdep/").header(name, value))
            .unwrap();
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        assert_eq!(resp.body, full.body, "{name}: a partial or different page");
    }
    // Upstream never saw those headers on an index page (files may use Range).
    for r in w.public_origin().requests() {
        if r.path.starts_with("/simple/") {
            for h in ["range", "if-range", "if-none-match", "if-modified-since"] {
                assert!(!r.headers.contains_key(h), "{h} forwarded on {}", r.path);
            }
        }
    }
}

#[test]
fn explain_names_the_rule() {
    let w = world();
    let run = |name: &str| {
        let out = pipgate_command()
            .args(["explain", "--config"])
            .arg(&w.pipgate().config_path)
            .arg(name)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "explain {name}: {text}");
        text
    };
    // The verdict line ("private: ...") must say yes/no and, for yes, which rule decided it.
    let verdict = |text: &str| -> String {
        text.lines()
            .find(|l| l.trim_start().to_ascii_lowercase().starts_with("private"))
            .unwrap_or_else(|| panic!("no private: line in {text}"))
            .to_ascii_lowercase()
    };
    let acme = run("Acme_Lib");
    assert!(acme.contains("acme-lib"), "{acme}");
    let line = verdict(&acme);
    assert!(line.contains("yes") && line.contains("corp"), "{acme}");
    assert!(acme.contains("404") || acme.contains("block"), "{acme}");
    let internal = run("internal.tools");
    assert!(internal.contains("internal-tools"), "{internal}");
    let line = verdict(&internal);
    assert!(
        line.contains("yes") && line.contains("internal-*"),
        "{internal}"
    );
    let public = run("pubpkg");
    assert!(public.contains("pubpkg"), "{public}");
    let line = verdict(&public);
    assert!(line.contains("no") && !line.contains("yes"), "{public}");
}

#[test]
fn a_plain_http_index_is_served_in_absolute_form_and_filtered() {
    let w = world();
    let wheel = fixtures::wheel("plainpkg", "1.0", &[]);
    let name = fixtures::wheel_filename("plainpkg", "1.0");
    let on_host = format!("http://plain.test/packages/{name}");
    let links = [
        FileLink::to_file(&on_host, &wheel),
        FileLink::new("https://evil.test/packages/plainpkg-2.0-py2.py3-none-any.whl"),
        FileLink::new("http://evil.test/packages/plainpkg-3.0-py2.py3-none-any.whl"),
        FileLink::new("http://plain.test:8080/packages/plainpkg-4.0-py2.py3-none-any.whl"),
    ];
    let plain = Origin::builder(w.origin_ca())
        .route(
            "/simple/plainpkg/",
            "text/html",
            fixtures::simple_html("plainpkg", &links),
        )
        .route(
            &format!("/packages/{name}"),
            "application/octet-stream",
            wheel.clone(),
        )
        .run_plain();
    let mut cfg = w.pipgate_config();
    cfg.admin = false;
    cfg.extra_resolve
        .push(("plain.test:80".to_owned(), plain.addr()));
    cfg.extra_indexes.push(ExtraIndex {
        name: "plain".to_owned(),
        url: "http://plain.test/simple/".to_owned(),
        role: "public".to_owned(),
        file_hosts: vec!["plain.test".to_owned()],
    });
    let pg = w.start_pipgate(&cfg);

    let raw = raw_exchange(
        pg.addr,
        b"GET http://plain.test/simple/plainpkg/ HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(raw_status(&raw), 200, "{text}");
    assert!(text.contains(&on_host), "{text}");
    for dropped in ["evil.test", "plainpkg-3.0", "plainpkg-4.0"] {
        assert!(!text.contains(dropped), "{dropped} survived: {text}");
    }

    // Real pip through the same pipgate (HTTP_PROXY carries the absolute-form requests).
    let dest = w.scratch("dl-");
    let home = w.scratch("home-");
    let route = Route {
        proxy_url: pg.proxy_url(),
        ca_pem: pg.ca_pem.clone(),
    };
    installer::pip(
        venv::latest(),
        &route,
        &home,
        &[
            "download",
            "--no-deps",
            "-d",
            dest.to_str().unwrap(),
            "--index-url",
            "http://plain.test/simple/",
            "--trusted-host",
            "plain.test",
            "plainpkg",
        ],
    )
    .assert_ok();
    assert_eq!(
        sha256_hex(&std::fs::read(only_file(&dest)).unwrap()),
        sha256_hex(&wheel)
    );
    assert!(w.evil_origin().requests().is_empty());

    // An https-only index asked for over plain http is refused, never fetched.
    let raw = raw_exchange(
        pg.addr,
        b"GET http://pypi.org/simple/pubdep/ HTTP/1.1\r\nHost: pypi.org\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(raw_status(&raw), 403, "{}", String::from_utf8_lossy(&raw));
}

#[test]
fn requests_and_blocks_are_logged_as_json_and_counted() {
    let w = world();
    let pg = w.start_pipgate_with_args(&w.pipgate_config(), &["--log-format", "json"]);
    let probe = Probe::new(pg.addr, &pg.ca_pem);
    assert_eq!(probe.get("https://pypi.org/simple/pubdep/").status, 200);
    assert_eq!(probe.get("https://pypi.org/simple/acme-lib/").status, 404);

    let admin = pg.admin.expect("admin port");
    let metrics = http_get(admin, "/metrics").text();
    let has = |prefix: &str, parts: &[&str]| {
        metrics
            .lines()
            .any(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p)))
    };
    assert!(
        has("pipgate_requests_total", &["pypi.org", "200"]),
        "{metrics}"
    );
    assert!(
        has("pipgate_requests_total", &["pypi.org", "404"]),
        "{metrics}"
    );
    assert!(has("pipgate_decisions_total", &["block"]), "{metrics}");

    // Once the last request's access line is written, every line must be JSON.
    pg.access_event("/simple/acme-lib/");
    let log = pg.stderr();
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |needles: &[&str]| {
        events.iter().any(|e| {
            let t = e.to_string();
            needles.iter().all(|n| t.contains(n))
        })
    };
    assert!(find(&["pypi.org", "/simple/pubdep/", "200"]), "{log}");
    assert!(find(&["acme-lib", "404", "rule"]), "no block event: {log}");
    // The issue names the fields: one event per request, and one per block.
    let has_keys = |keys: &[&str]| {
        events.iter().any(|e| {
            keys.iter()
                .all(|k| e.get(k).is_some() || e.get("fields").and_then(|f| f.get(k)).is_some())
        })
    };
    assert!(
        has_keys(&[
            "client",
            "method",
            "host",
            "path",
            "status",
            "bytes",
            "duration_ms"
        ]) || has_keys(&["client", "method", "host", "path", "status", "bytes", "duration"]),
        "no access event with every field: {log}"
    );
    assert!(
        has_keys(&["client", "index", "name", "rule", "action"]),
        "no block event with client/index/name/rule/action: {log}"
    );
}

#[test]
fn a_page_written_to_fool_parsers_yields_only_the_on_host_link() {
    let w = world();
    let got = w.pip_download(
        &w.via_pipgate(),
        &["--index-url", &w.public_index_url()],
        "tricky",
    );
    let want = w.file("tricky", "1.0");
    assert_eq!(sha256_hex(&std::fs::read(&got).unwrap()), want.sha256);
    assert!(
        w.evil_origin().requests().is_empty(),
        "{:?}",
        w.evil_origin().requests()
    );
    let page = w.probe().get("https://pypi.org/simple/tricky/");
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    let lower = text.to_ascii_lowercase();
    assert!(
        text.contains(&format!("{}#sha256={}", want.url, want.sha256)),
        "{text}"
    );
    for banned in [
        "evil.test",
        "<base",
        "<script",
        "javascript:",
        "<!--",
        "&#104;",
        "tricky-7.0",
    ] {
        assert!(!lower.contains(banned), "{banned} survived: {text}");
    }
}

/// A pipgate with one more public index, `https://gz.test/simple/`, served by `origin`.
fn pipgate_with_gz_index(w: &World, origin: &RunningOrigin) -> Pipgate {
    let mut cfg = w.pipgate_config();
    cfg.admin = false;
    cfg.extra_resolve
        .push(("gz.test:443".to_owned(), origin.addr()));
    cfg.extra_indexes.push(ExtraIndex {
        name: "gz".to_owned(),
        url: "https://gz.test/simple/".to_owned(),
        role: "public".to_owned(),
        file_hosts: vec!["gz.test".to_owned()],
    });
    w.start_pipgate(&cfg)
}

#[test]
fn a_project_page_in_no_index_format_fails_closed() {
    let w = world();
    // An index page that is no page format (here a plain-text listing of a link): refused with
    // a 502 naming the content type, and nothing of it reaches the client.
    let origin = Origin::builder(w.origin_ca())
        .host("gz.test")
        .route(
            "/simple/textpkg/",
            "text/plain",
            "<a href=\"https://evil.test/textpkg-1.0.tar.gz\">textpkg-1.0.tar.gz</a>",
        )
        .run();
    let pg = pipgate_with_gz_index(w, &origin);
    let resp = Probe::new(pg.addr, &pg.ca_pem).get("https://gz.test/simple/textpkg/");
    assert_eq!(resp.status, 502, "{}", resp.text());
    let body = resp.text();
    assert!(
        body.contains("unexpected content type \"text/plain\""),
        "{body}"
    );
    assert!(!body.contains("evil.test"), "{body}");
}

#[test]
fn compressed_pages_are_decoded_rewritten_and_sent_without_stale_headers() {
    let w = world();
    let wheel = fixtures::wheel("gzpkg", "1.0", &[]);
    let url = format!(
        "https://gz.test/packages/{}",
        fixtures::wheel_filename("gzpkg", "1.0")
    );
    let page = fixtures::simple_html(
        "gzpkg",
        &[
            FileLink::to_file(&url, &wheel),
            FileLink::new("https://evil.test/packages/gzpkg-2.0-py2.py3-none-any.whl"),
        ],
    );
    let origin = Origin::builder(w.origin_ca())
        .host("gz.test")
        .route_full(
            "/simple/gzpkg/",
            200,
            "text/html",
            &[
                ("content-encoding", "gzip"),
                ("etag", "\"upstream-etag-1\""),
                ("content-md5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
            ],
            fixtures::gzip(page.as_bytes()),
        )
        .run();
    let pg = pipgate_with_gz_index(w, &origin);
    let resp = Probe::new(pg.addr, &pg.ca_pem).get("https://gz.test/simple/gzpkg/");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let encoding = resp.header("content-encoding");
    assert!(
        encoding.is_empty() || encoding == "identity",
        "stale encoding {encoding:?}"
    );
    assert!(resp.header("content-md5").is_empty(), "{:?}", resp.headers);
    assert_ne!(resp.header("etag"), "\"upstream-etag-1\"");
    let length = resp.header("content-length");
    if !length.is_empty() {
        assert_eq!(length, resp.body.len().to_string());
    }
    let text = resp.text();
    assert!(text.contains(&url), "{text}");
    assert!(!text.contains("evil.test"), "{text}");
}

#[test]
fn a_decompression_bomb_is_a_502_not_a_page() {
    let w = world();
    // 160 MiB of spaces gzip to about 160 KiB: well past the page limit (64 MiB by default).
    let bomb = fixtures::gzip(&vec![b' '; 160 * 1024 * 1024]);
    assert!(bomb.len() < 2 * 1024 * 1024);
    let origin = Origin::builder(w.origin_ca())
        .host("gz.test")
        .route_full(
            "/simple/bomb/",
            200,
            "text/html",
            &[("content-encoding", "gzip")],
            bomb,
        )
        .run();
    let pg = pipgate_with_gz_index(w, &origin);
    let resp = Probe::new(pg.addr, &pg.ca_pem).get("https://gz.test/simple/bomb/");
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert!(
        resp.body.len() < 64 * 1024,
        "the bomb's bytes reached the client"
    );
}

/// A private origin of its own (so its access log counts only this test's lookups) serving
/// `pubpkg` (declaring PEP 708 `pypi:tracks` on the public pubpkg) and `pubdep` (no tracks),
/// and a pipgate using it as `corp`.
fn pipgate_with_own_private_index(w: &World, allow_public: &[&str]) -> (RunningOrigin, Pipgate) {
    let wheel = fixtures::wheel("pubdep", "0.1", &[]);
    let link = FileLink::to_file(
        &format!(
            "https://private.test/packages/{}",
            fixtures::wheel_filename("pubdep", "0.1")
        ),
        &wheel,
    );
    let tracked = fixtures::simple_html("pubpkg", std::slice::from_ref(&link)).replace(
        "<title>",
        "<meta name=\"pypi:tracks\" content=\"https://pypi.org/simple/pubpkg/\">\n    <title>",
    );
    let private = Origin::builder(w.origin_ca())
        .host("private.test")
        .route("/simple/pubpkg/", "text/html", tracked)
        .route(
            "/simple/pubdep/",
            "text/html",
            fixtures::simple_html("pubdep", &[link]),
        )
        .run();
    let mut cfg = w.pipgate_config();
    cfg.admin = false;
    cfg.private_addr = private.addr();
    cfg.allow_public = allow_public.iter().map(|s| (*s).to_owned()).collect();
    let pg = w.start_pipgate(&cfg);
    (private, pg)
}

#[test]
fn private_index_answers_are_cached() {
    let w = world();
    let (private, pg) = pipgate_with_own_private_index(w, &[]);
    let probe = Probe::new(pg.addr, &pg.ca_pem);
    for _ in 0..3 {
        // A miss (the private index lacks extlinks) and a hit (it has pubdep).
        assert_eq!(probe.get("https://pypi.org/simple/extlinks/").status, 200);
        assert_eq!(probe.get("https://pypi.org/simple/pubdep/").status, 404);
        assert_eq!(probe.get("https://pypi.org/simple/PubDep/").status, 404);
    }
    let asked = |path: &str| {
        private
            .requests()
            .iter()
            .filter(|r| r.path.starts_with(path))
            .count()
    };
    assert_eq!(asked("/simple/extlinks/"), 1, "{:?}", private.requests());
    assert_eq!(asked("/simple/pubdep/"), 1, "{:?}", private.requests());
}

#[test]
fn pep708_tracks_and_allow_public_reopen_a_name_on_the_public_index() {
    let w = world();
    let (_private, pg) = pipgate_with_own_private_index(w, &[]);
    let probe = Probe::new(pg.addr, &pg.ca_pem);
    // pubpkg is on the private index but declares it tracks the public project: allowed.
    let tracked = probe.get("https://pypi.org/simple/pubpkg/");
    assert_eq!(tracked.status, 200, "{}", tracked.text());
    assert!(tracked.text().contains(&w.file("pubpkg", "1.0").filename));
    // pubdep is on the private index without tracks: private, the public page is refused.
    assert_eq!(probe.get("https://pypi.org/simple/pubdep/").status, 404);
    drop(pg);

    let (_private, pg) = pipgate_with_own_private_index(w, &["PubDep"]);
    let probe = Probe::new(pg.addr, &pg.ca_pem);
    let allowed = probe.get("https://pypi.org/simple/pubdep/");
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert!(allowed.text().contains(&w.file("pubdep", "1.0").filename));
}

/// The two formats a project page streams in, for the tests that run on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html",
            Format::Json => JSON_CT,
        }
    }

    /// A project page offering `links` (the JSON one with its keys sorted, as PyPI writes it:
    /// `files` before `meta` and `name`).
    fn page(self, name: &str, links: &[FileLink]) -> String {
        match self {
            Format::Html => fixtures::simple_html(name, links),
            Format::Json => fixtures::simple_json(name, links),
        }
    }

    /// How many files a page pipgate wrote offers; of a cut page, how many arrived whole.
    fn files_in(self, body: &str) -> usize {
        match self {
            Format::Html => body.matches("<a href=").count(),
            Format::Json => body.matches("{\"filename\":").count(),
        }
    }

    /// `GET url` asking for this format first, as pip and uv do for JSON.
    fn get(self, url: &str) -> ProbeRequest {
        Probe::request("GET", url).header("accept", self.content_type())
    }
}

/// A project page of `n` file links on gz.test (about 100 to 200 bytes of output per link).
fn many_links(format: Format, name: &str, n: usize) -> String {
    let links: Vec<FileLink> = (0..n)
        .map(|i| FileLink::new(&format!("https://gz.test/packages/{name}-{i}.0.tar.gz")))
        .collect();
    format.page(name, &links)
}

#[test]
fn page_etags_come_from_pipgate_and_revalidate_small_and_streamed_pages() {
    page_etags_revalidate(Format::Html);
}

#[test]
fn json_page_etags_come_from_pipgate_and_revalidate_small_and_streamed_pages() {
    page_etags_revalidate(Format::Json);
}

fn page_etags_revalidate(format: Format) {
    let w = world();
    let ct = format.content_type();
    let origin = Origin::builder(w.origin_ca())
        .host("gz.test")
        .route_full(
            "/simple/small/",
            200,
            ct,
            &[("etag", "\"s1\"")],
            many_links(format, "small", 3),
        )
        .route_full(
            "/simple/big/",
            200,
            ct,
            &[("etag", "\"b1\"")],
            many_links(format, "big", 2000),
        )
        .route_full(
            "/simple/weak/",
            200,
            ct,
            &[("etag", "W/\"w1\"")],
            many_links(format, "weak", 2000),
        )
        .run();
    let pg = pipgate_with_gz_index(w, &origin);
    let probe = Probe::new(pg.addr, &pg.ca_pem);
    for page in ["small", "big"] {
        let url = format!("https://gz.test/simple/{page}/");
        let first = probe.send(format.get(&url)).unwrap();
        assert_eq!(first.status, 200, "{}", first.text());
        assert!(
            first.header("content-type").starts_with(ct),
            "{:?}",
            first.headers
        );
        let etag = first.header("etag");
        assert!(etag.starts_with("\"pg-"), "{page}: ETag {etag:?}");
        assert_eq!(
            format.files_in(&first.text()),
            if page == "big" { 2000 } else { 3 }
        );
        if format == Format::Json {
            let v: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
            assert_eq!(v["name"], page);
        }
        // The small page is answered whole; the big one streams.
        let length = first.header("content-length");
        if page == "small" {
            assert_eq!(length, first.body.len().to_string());
        } else {
            assert!(length.is_empty(), "{page}: Content-Length {length}");
        }
        let again = probe
            .send(format.get(&url).header("if-none-match", &etag))
            .unwrap();
        assert_eq!(again.status, 304, "{page}: {}", again.text());
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), etag);
        let other = probe
            .send(format.get(&url).header("if-none-match", "\"pg-0000\""))
            .unwrap();
        assert_eq!(other.status, 200);
        assert_eq!(other.body, first.body);
        // HEAD reads and rewrites the page whole, for its length, and sends no body.
        let head = probe
            .send(Probe::request("HEAD", &url).header("accept", ct))
            .unwrap();
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), first.body.len().to_string());
        assert_eq!(head.header("etag"), etag);
    }
    // HTTP/1.0 has no chunked framing, so a cut would look like the end: the big page is
    // answered whole, with its length.
    let raw = probe
        .raw_tls(
            "https://gz.test/simple/big/",
            format!("GET /simple/big/ HTTP/1.0\r\nHost: gz.test\r\nAccept: {ct}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(!head.contains("chunked"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", raw.len() - end)),
        "{head} with {} body bytes",
        raw.len() - end
    );
    assert_eq!(format.files_in(&String::from_utf8_lossy(&raw[end..])), 2000);

    // A weak upstream ETag promises no equal bytes: a streamed page then carries no ETag.
    let weak = probe
        .send(format.get("https://gz.test/simple/weak/"))
        .unwrap();
    assert_eq!(weak.status, 200);
    assert!(weak.header("etag").is_empty(), "{:?}", weak.headers);
    assert_eq!(format.files_in(&weak.text()), 2000);
    // The access event of a streamed page, written when its body ends, counts its links.
    let line = pg.access_event("/simple/weak/");
    assert!(
        line.contains("kept=2000") && line.contains("complete=true"),
        "{line}"
    );
}

#[test]
fn a_json_page_that_breaks_after_it_began_streaming_is_cut_not_ended() {
    let w = world();
    // 3,000 files (~300 KB of output), then a byte no JSON reader takes.
    let mut page = many_links(Format::Json, "broken", 3000);
    let at = page.find("broken-2500.0").unwrap();
    page.insert(at - 40, '\u{1}');
    let origin = Origin::builder(w.origin_ca())
        .host("gz.test")
        .route("/simple/broken/", JSON_CT, page)
        .run();
    let pg = pipgate_with_gz_index(w, &origin);
    let probe = Probe::new(pg.addr, &pg.ca_pem);
    let raw = probe
        .raw_tls(
            "https://gz.test/simple/broken/",
            format!("GET /simple/broken/ HTTP/1.1\r\nHost: gz.test\r\nAccept: {JSON_CT}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    // What went out is the files before the break, rewritten; the body is cut (no last
    // chunk, no end of the JSON), so the client sees a broken transfer, not a short page.
    let (_, body) = streamed_then_cut(&raw);
    let files = Format::Json.files_in(&body);
    assert!(
        (1000..2500).contains(&files),
        "{files} files before the break"
    );
    assert!(
        !body.contains("\"versions\""),
        "the cut page ended like a whole one"
    );
    let line = pg.access_event("/simple/broken/");
    assert!(line.contains("complete=false"), "{line}");
    // The warning is logged before the access line, so it is there by now.
    assert!(
        pg.stderr().contains("page failed while streaming"),
        "{}",
        pg.stderr()
    );
    // A client that reads it as HTTP sees the transfer fail, never a page.
    let cut = probe.send(Format::Json.get("https://gz.test/simple/broken/"));
    assert!(
        cut.as_ref()
            .map_or(true, |r| serde_json::from_slice::<serde_json::Value>(
                &r.body
            )
            .is_err()),
        "a cut page parsed as JSON"
    );
}

#[test]
fn pip_and_uv_install_from_a_page_large_enough_to_stream() {
    install_from_a_page_large_enough_to_stream(Format::Html);
}

#[test]
fn pip_and_uv_install_from_a_json_page_large_enough_to_stream() {
    install_from_a_page_large_enough_to_stream(Format::Json);
}

fn install_from_a_page_large_enough_to_stream(format: Format) {
    let w = world();
    // 3,000 older releases (never fetched) before the one real wheel: 300 KB or so of rewritten
    // page, far past the 64 KiB pipgate holds before it streams.
    let wheel = fixtures::wheel("bigproj", "99.0", &[]);
    let wheel_path = format!("/packages/{}", fixtures::wheel_filename("bigproj", "99.0"));
    let mut links: Vec<FileLink> = (0..3000)
        .map(|i| FileLink::new(&format!("https://gz.test/packages/bigproj-0.{i}.tar.gz")))
        .collect();
    links.push(FileLink::to_file(
        &format!("https://gz.test{wheel_path}"),
        &wheel,
    ));
    links.push(FileLink::new(
        "https://evil.test/packages/bigproj-100.0-py2.py3-none-any.whl",
    ));
    let origin = Origin::builder(w.origin_ca())
        .host("gz.test")
        .route(
            "/simple/bigproj/",
            format.content_type(),
            format.page("bigproj", &links),
        )
        .route(&wheel_path, "application/octet-stream", wheel.clone())
        .run();
    let pg = pipgate_with_gz_index(w, &origin);
    let page = Probe::new(pg.addr, &pg.ca_pem)
        .send(format.get("https://gz.test/simple/bigproj/"))
        .unwrap();
    assert!(
        page.header("content-length").is_empty(),
        "not streamed: {:?}",
        page.headers
    );
    assert!(page.body.len() > 200_000, "{} bytes", page.body.len());
    assert_eq!(format.files_in(&page.text()), 3001);

    let route = Route {
        proxy_url: format!("http://{}", pg.addr),
        ca_pem: pg.ca_pem.clone(),
    };
    let index = ["--index-url", "https://gz.test/simple/"];
    let dest = w.scratch("big-pip-");
    let dest_arg = dest.display().to_string();
    let mut args = vec!["download", "--no-deps", "-d", dest_arg.as_str()];
    args.extend_from_slice(&index);
    args.push("bigproj");
    installer::pip(venv::latest(), &route, &w.scratch("home-"), &args).assert_ok();
    let got = only_file(&dest);
    assert_eq!(
        std::fs::read(&got).unwrap(),
        wheel,
        "pip took {}",
        got.display()
    );

    let target = w.scratch("big-uv-");
    let target_arg = target.display().to_string();
    let mut args = vec![
        "pip",
        "install",
        "--no-deps",
        "--target",
        target_arg.as_str(),
    ];
    args.extend_from_slice(&index);
    args.push("bigproj");
    installer::uv(venv::latest(), &route, &w.scratch("home-"), &args).assert_ok();
    assert!(
        target.join("bigproj-99.0.dist-info").is_dir(),
        "uv did not install 99.0"
    );
    assert!(w.evil_origin().requests().is_empty());
    // Both asked for the page in the format it was served in (pip and uv ask for JSON first).
    let asked: Vec<String> = origin
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/simple/bigproj/"))
        .map(|r| {
            r.headers
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(asked.len() >= 3, "{asked:?}");
    if format == Format::Json {
        assert!(asked.iter().all(|a| a.contains(JSON_CT)), "{asked:?}");
    }
}
