//! The doors a second adversarial review found open (issue 13), each tried end to end: page
//! redirects into the file door, post-release sdist names, `Location` spellings, request
//! bodies on GET, upstream statuses that are no page, and a private index's own root listing.

// Helpers shared by tests fail the way the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use pipgate_integration_tests::fixtures::{self, FileLink, JSON_CT};
use pipgate_integration_tests::installer;
use pipgate_integration_tests::origin::{Origin, RunningOrigin};
use pipgate_integration_tests::pipgate::Pipgate;
use pipgate_integration_tests::probe::{raw_status, Probe};
use pipgate_integration_tests::venv;
use pipgate_integration_tests::world::{ExtraIndex, World, EVIL_HOST};

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::start)
}

/// An index page an attacker would like a client to take unfiltered: a link off every allowed
/// host.
fn unfiltered_page(name: &str) -> String {
    fixtures::simple_html(
        name,
        &[FileLink::new(&format!(
            "https://{EVIL_HOST}/packages/{name}-9.0.tar.gz"
        ))],
    )
}

/// `rd.test`, an index whose files live on `rdfiles.test`, both on one origin that answers with
/// the redirects and statuses under test; and a pipgate that knows it.
struct Redirects {
    origin: RunningOrigin,
    pipgate: Pipgate,
}

fn redirects() -> &'static Redirects {
    static R: OnceLock<Redirects> = OnceLock::new();
    R.get_or_init(|| {
        let w = world();
        let wheel = fixtures::wheel("normalized", "1.0", &[]);
        let file_url = format!(
            "https://rdfiles.test/packages/{}",
            fixtures::wheel_filename("normalized", "1.0")
        );
        let origin = Origin::builder(w.origin_ca())
            .host("rd.test")
            .host("rdfiles.test")
            // A project page redirected into the file door, where it would stream untouched.
            .redirect(
                "/simple/intofile/",
                302,
                "https://rdfiles.test/packages/intofile-1.0.tar.gz",
            )
            .route(
                "/packages/intofile-1.0.tar.gz",
                "text/html",
                unfiltered_page("intofile"),
            )
            .redirect(
                "/simple/intojson/",
                307,
                "https://rdfiles.test/packages/intojson-1.0.tar.gz",
            )
            .route(
                "/packages/intojson-1.0.tar.gz",
                JSON_CT,
                fixtures::simple_json(
                    "intojson",
                    &[FileLink::new(&format!(
                        "https://{EVIL_HOST}/packages/intojson-9.0.tar.gz"
                    ))],
                ),
            )
            // A project page redirected to another kind of page.
            .redirect("/simple/toroot/", 302, "https://rd.test/simple/")
            // PEP 503's normalizing redirect, relative: passed on, made absolute.
            .redirect("/simple/norm/", 301, "/simple/normalized/")
            .route(
                "/simple/normalized/",
                "text/html",
                fixtures::simple_html("normalized", &[FileLink::to_file(&file_url, &wheel)]),
            )
            .route(
                &format!(
                    "/packages/{}",
                    fixtures::wheel_filename("normalized", "1.0")
                ),
                "application/octet-stream",
                wheel.clone(),
            )
            // A file redirect whose Location reads as two different hosts.
            .redirect(
                "/packages/moved-1.0.tar.gz",
                302,
                "https://rdfiles.test\\@evil.test/packages/moved-1.0.tar.gz",
            )
            // The file door itself, answered with pages.
            .route(
                "/packages/page-1.0.tar.gz",
                "text/html; charset=utf-8",
                unfiltered_page("page"),
            )
            .route(
                "/packages/json-1.0.tar.gz",
                "application/json",
                "{\"url\": \"https://evil.test/x\"}",
            )
            .route_full(
                "/packages/gone-1.0.tar.gz",
                404,
                "text/html",
                &[],
                unfiltered_page("gone"),
            )
            .route("/packages/ok-1.0.tar.gz", "application/x-tar", "tar bytes")
            // Statuses that are no page.
            .route_full("/simple/notmod/", 304, "text/html", &[], "")
            .route_full(
                "/simple/notmodloc/",
                304,
                "text/html",
                &[("location", "https://rd.test/simple/normalized/")],
                "",
            )
            .route_full(
                "/simple/choices/",
                300,
                "text/html",
                &[("location", "https://rd.test/simple/normalized/")],
                unfiltered_page("choices"),
            )
            .route_full(
                "/simple/noloc/",
                302,
                "text/html",
                &[],
                unfiltered_page("noloc"),
            )
            .route_full(
                "/simple/created/",
                201,
                "text/html",
                &[],
                unfiltered_page("created"),
            )
            .run();
        let mut cfg = w.pipgate_config();
        cfg.admin = false;
        for host in ["rd.test", "rdfiles.test"] {
            cfg.extra_resolve
                .push((format!("{host}:443"), origin.addr()));
        }
        cfg.extra_indexes.push(ExtraIndex {
            name: "rd".to_owned(),
            url: "https://rd.test/simple/".to_owned(),
            role: "public".to_owned(),
            file_hosts: vec!["rdfiles.test".to_owned()],
        });
        let pipgate = w.start_pipgate(&cfg);
        Redirects { origin, pipgate }
    })
}

impl Redirects {
    fn probe(&self) -> Probe {
        Probe::new(self.pipgate.addr, &self.pipgate.ca_pem)
    }
}

#[test]
fn a_page_redirected_into_the_file_door_fails_closed() {
    let r = redirects();
    for (page, kind) in [
        ("https://rd.test/simple/intofile/", "a project page"),
        ("https://rd.test/simple/intojson/", "a project page"),
        ("https://rd.test/simple/toroot/", "a project page"),
    ] {
        let resp = r.probe().get(page);
        assert_eq!(resp.status, 502, "{page}: {}", resp.text());
        let text = resp.text();
        assert!(
            text.contains(&format!("which is not {kind}")),
            "{page}: {text}"
        );
        assert!(resp.header("location").is_empty(), "{page}");
        assert!(!text.contains("evil"), "{page}: {text}");
    }
    // Real pip follows redirects and would read the file door's answer as the page.
    let w = world();
    let route = installer::Route {
        proxy_url: r.pipgate.proxy_url(),
        ca_pem: r.pipgate.ca_pem.clone(),
    };
    let dest = w.scratch("dl-");
    let out = installer::pip(
        venv::latest(),
        &route,
        &w.scratch("home-"),
        &[
            "download",
            "--no-deps",
            "-d",
            dest.to_str().unwrap(),
            "--index-url",
            "https://rd.test/simple/",
            "intofile",
        ],
    );
    assert!(!out.status.success(), "{out}");
    assert!(
        w.evil_origin().requests().is_empty(),
        "{:?}",
        w.evil_origin().requests()
    );
}

#[test]
fn a_relayed_location_is_the_url_that_was_checked() {
    let r = redirects();
    let resp = r.probe().get("https://rd.test/simple/Norm/");
    assert_eq!(resp.status, 301, "{}", resp.text());
    assert_eq!(
        resp.header("location"),
        "https://rd.test/simple/normalized/"
    );
    // A WHATWG parser reads rdfiles.test, an RFC 3986 one evil.test: the client gets the one
    // pipgate checked.
    let resp = r
        .probe()
        .get("https://rdfiles.test/packages/moved-1.0.tar.gz");
    assert_eq!(resp.status, 302, "{}", resp.text());
    assert_eq!(
        resp.header("location"),
        "https://rdfiles.test/@evil.test/packages/moved-1.0.tar.gz"
    );
}

#[test]
fn the_file_door_never_passes_an_index_page() {
    let r = redirects();
    for file in ["page-1.0.tar.gz", "json-1.0.tar.gz"] {
        let resp = r
            .probe()
            .get(&format!("https://rdfiles.test/packages/{file}"));
        assert_eq!(resp.status, 502, "{file}: {}", resp.text());
        assert!(
            resp.text().contains("the content type of an index page"),
            "{file}: {}",
            resp.text()
        );
        assert!(!resp.text().contains("evil"));
    }
    // A refusal that comes as a page keeps its status, in pipgate's words.
    let resp = r
        .probe()
        .get("https://rdfiles.test/packages/gone-1.0.tar.gz");
    assert_eq!(resp.status, 404, "{}", resp.text());
    assert!(!resp.text().contains("evil"), "{}", resp.text());
    assert!(resp.header("content-type").starts_with("text/plain"));
    let resp = r.probe().get("https://rdfiles.test/packages/ok-1.0.tar.gz");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"tar bytes");
}

#[test]
fn an_index_page_passes_only_as_a_200_or_a_checked_redirect() {
    let r = redirects();
    for page in ["notmod", "notmodloc", "choices", "noloc", "created"] {
        let url = format!("https://rd.test/simple/{page}/");
        let resp = r.probe().get(&url);
        assert_eq!(resp.status, 502, "{url}: {}", resp.text());
        assert!(resp.header("location").is_empty(), "{url}");
        assert!(!resp.text().contains("evil"), "{url}");
    }
    assert!(r.origin.asked_for("/simple/notmod/"));
}

#[test]
fn a_post_release_sdist_of_a_private_name_is_refused_on_the_public_file_host() {
    let w = world();
    let probe = w.probe();
    // The private index serves acme-lib; pip reads every one of these as acme-lib 50.0.post1.
    for file in [
        "acme-lib-50.0-1.tar.gz",
        "acme-lib-50.0-1.zip",
        "acme_lib-50.0-1.tar.bz2",
        "acme-lib-50.0-1.tar.gz.metadata",
        "acme_lib_50.0-1.tar.gz",
    ] {
        let url = format!("https://files.pythonhosted.org/packages/fixture/{file}");
        let resp = probe.get(&url);
        assert_eq!(resp.status, 403, "{url}: {}", resp.text());
        assert_eq!(resp.header("x-pipgate-rule"), "private-index", "{url}");
        assert!(resp.text().contains("of 'acme-lib'"), "{}", resp.text());
    }
    let leaked: Vec<String> = w
        .public_origin()
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.to_ascii_lowercase().contains("acme"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    // And real pip, handed the URL (a lock file, say), gets no file.
    let dest = w.scratch("dl-");
    let out = installer::pip(
        venv::latest(),
        &w.via_pipgate(),
        &w.scratch("home-"),
        &[
            "download",
            "--no-deps",
            "-d",
            dest.to_str().unwrap(),
            "https://files.pythonhosted.org/packages/fixture/acme-lib-50.0-1.tar.gz",
        ],
    );
    assert!(!out.status.success(), "{out}");
    assert!(
        out.stdout.contains("403") || out.stderr.contains("403"),
        "{out}"
    );
}

#[test]
fn a_request_body_never_reaches_upstream() {
    let w = world();
    let smuggled = "GET /simple/acme-lib/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n";
    // HTTP/1.1: a Content-Length body after a GET (CL.0) and a chunked one.
    for framing in [
        format!("Content-Length: {}\r\n", smuggled.len()),
        "Transfer-Encoding: chunked\r\n".to_owned(),
    ] {
        let body = if framing.starts_with("Transfer") {
            format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len())
        } else {
            smuggled.to_owned()
        };
        let raw = format!("GET /simple/pubdep/ HTTP/1.1\r\nHost: pypi.org\r\n{framing}\r\n{body}");
        let out = w
            .probe()
            .raw_tls("https://pypi.org/", raw.as_bytes())
            .unwrap();
        assert_eq!(raw_status(&out), 400, "{}", String::from_utf8_lossy(&out));
        assert!(String::from_utf8_lossy(&out).contains("with a body is refused"));
    }
    // HTTP/2, with content-length, and HTTP/1.1 through hyper's client.
    for probe in [w.probe().h2(), w.probe()] {
        let resp = probe
            .send(
                Probe::request("GET", "https://pypi.org/simple/pubdep/").body(smuggled.as_bytes()),
            )
            .unwrap();
        assert_eq!(resp.status, 400, "{}", resp.text());
    }
    // Other methods are not served at all.
    let resp = w
        .probe()
        .send(Probe::request("POST", "https://pypi.org/simple/pubdep/").body(b"x"))
        .unwrap();
    assert_eq!(resp.status, 405, "{}", resp.text());
    assert_eq!(resp.header("allow"), "GET, HEAD");
    for r in w.public_origin().requests() {
        assert!(!r.path.contains("acme"), "{r:?}");
        assert_eq!(r.body_len, 0, "a body reached upstream: {r:?}");
        assert!(!r.headers.contains_key("content-length"), "{r:?}");
    }
}

#[test]
fn a_private_index_keeps_its_own_root_listing() {
    let w = world();
    let probe = w.probe();
    // The lookup makes acme-lib known private; the public listing hides it, the private keeps it.
    assert_eq!(probe.get("https://pypi.org/simple/acme-lib/").status, 404);
    let private = probe.get("https://private.test/simple/");
    assert_eq!(private.status, 200, "{}", private.text());
    assert!(
        private.text().contains(">acme-lib</a>"),
        "{}",
        private.text()
    );
    let public = probe.get("https://pypi.org/simple/");
    assert_eq!(public.status, 200);
    assert!(!public.text().contains("acme"), "{}", public.text());
}

/// A pipgate whose pages read whole may hold only 64 KiB at once, in front of `big.test`: a
/// 1 MiB root listing (with a private name in it) and a 256 KiB legacy JSON document.
fn small_budget() -> &'static (RunningOrigin, Pipgate) {
    static P: OnceLock<(RunningOrigin, Pipgate)> = OnceLock::new();
    P.get_or_init(|| {
        let w = world();
        let mut names: Vec<String> = (0..40_000).map(|i| format!("name-{i}")).collect();
        names.push("internal-secret".to_owned());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let root = fixtures::root_html(&names);
        assert!(root.len() > 1 << 20, "{}", root.len());
        let urls: Vec<serde_json::Value> = (0..2000)
            .map(|i| {
                serde_json::json!({
                    "filename": format!("big-{i}.0.tar.gz"),
                    "url": format!("https://big.test/packages/big-{i}.0.tar.gz"),
                    "digests": {"sha256": format!("{i:064x}")},
                })
            })
            .collect();
        let legacy = serde_json::json!({"info": {"name": "big"}, "urls": urls}).to_string();
        assert!(legacy.len() > 200 * 1024, "{}", legacy.len());
        let origin = Origin::builder(w.origin_ca())
            .host("big.test")
            .route("/simple/", "text/html", root)
            .route("/pypi/big/json", "application/json", legacy)
            .run();
        let mut cfg = w.pipgate_config();
        cfg.admin = false;
        cfg.extra_resolve
            .push(("big.test:443".to_owned(), origin.addr()));
        cfg.extra_indexes.push(ExtraIndex {
            name: "big".to_owned(),
            url: "https://big.test/simple/".to_owned(),
            role: "public".to_owned(),
            file_hosts: vec!["big.test".to_owned()],
        });
        let toml = format!(
            "{}\n[limits]\nmax_buffered_page_bytes = 65536\n",
            cfg.to_toml()
        );
        let dir = w.scratch("budget-");
        let pipgate = Pipgate::start(&dir, &toml);
        (origin, pipgate)
    })
}

#[test]
fn pages_read_whole_share_a_budget_and_root_listings_stream_past_it() {
    let (_, pg) = small_budget();
    let probe = Probe::new(pg.addr, &pg.ca_pem);
    // The root listing streams: sixteen times the budget, filtered, and complete.
    let root = probe.get("https://big.test/simple/");
    assert_eq!(root.status, 200, "{}", root.text());
    let text = root.text();
    assert_eq!(text.matches("<a href=").count(), 40_000);
    assert!(text.contains(">name-39999</a>") && text.ends_with("</html>\n"));
    assert!(
        !text.contains("internal-secret"),
        "a private name was listed"
    );
    // HEAD rewrites it through for its length, holding none of it.
    let head = probe
        .send(Probe::request("HEAD", "https://big.test/simple/"))
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), root.body.len().to_string());
    assert!(
        head.header("etag").starts_with("\"pg-"),
        "{:?}",
        head.headers
    );
    // An HTTP/1.0 client gets the page whole, which must fit in the budget: it does not.
    let raw = probe
        .raw_tls(
            "https://big.test/",
            b"GET /simple/ HTTP/1.0\r\nHost: big.test\r\n\r\n",
        )
        .unwrap();
    assert_eq!(raw_status(&raw), 503, "{}", String::from_utf8_lossy(&raw));
    assert!(String::from_utf8_lossy(&raw).contains("limits.max_buffered_page_bytes"));
    // The legacy JSON API is read whole: past the budget, a 503 naming the key, not a 502.
    let legacy = probe.get("https://big.test/pypi/big/json");
    assert_eq!(legacy.status, 503, "{}", legacy.text());
    assert!(
        legacy
            .text()
            .contains("limits.max_buffered_page_bytes (65536 bytes)"),
        "{}",
        legacy.text()
    );
    assert_eq!(legacy.header("x-pipgate-rule"), "overloaded");
    // And pipgate serves everyone else as before.
    let again = probe.get("https://big.test/simple/");
    assert_eq!(again.status, 200);
    assert_eq!(again.body, root.body);
}
