//! Re-synthesized pages gzipped for clients that accept it (`limits.page_compression`): real
//! pip and uv through a pipgate that gzips, the ETag/304 and HEAD answers of the gzipped
//! representation, and the default (`auto`) sending identity to a loopback client.

use std::sync::OnceLock;

use pipgate_integration_tests::fixtures::{self, FileLink};
use pipgate_integration_tests::installer::{self, only_file, Route};
use pipgate_integration_tests::origin::{Origin, RunningOrigin};
use pipgate_integration_tests::pipgate::Pipgate;
use pipgate_integration_tests::probe::Probe;
use pipgate_integration_tests::venv;
use pipgate_integration_tests::world::{ExtraIndex, World};

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::start)
}

/// A pipgate with `gz.test` as a public index at `origin`, and `more` config appended.
fn pipgate_for(w: &World, origin: &RunningOrigin, more: &str) -> Pipgate {
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
    cfg.rules.push_str(more);
    w.start_pipgate(&cfg)
}

/// The `bytes=` of an access line.
fn bytes_of(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("bytes="))
        .and_then(|b| b.parse().ok())
}

#[test]
fn pip_and_uv_install_from_gzipped_pages_and_caching_names_the_gzipped_bytes() {
    let w = world();
    // 2,000 older releases (never fetched) before the one real wheel: a page that streams, and
    // gzips well, served gzipped by upstream as PyPI's CDN does.
    let wheel = fixtures::wheel("zproj", "9.0", &[]);
    let wheel_path = format!("/packages/{}", fixtures::wheel_filename("zproj", "9.0"));
    let mut links: Vec<FileLink> = (0..2000)
        .map(|i| FileLink::new(&format!("https://gz.test/packages/zproj-0.{i}.tar.gz")))
        .collect();
    links.push(FileLink::to_file(
        &format!("https://gz.test{wheel_path}"),
        &wheel,
    ));
    let page = fixtures::simple_html("zproj", &links);
    let origin = Origin::builder(w.origin_ca())
        .host("gz.test")
        .route_full(
            "/simple/zproj/",
            200,
            "text/html",
            &[("content-encoding", "gzip"), ("etag", "\"up-1\"")],
            fixtures::gzip(page.as_bytes()),
        )
        .route(&wheel_path, "application/octet-stream", wheel.clone())
        .run();
    let url = "https://gz.test/simple/zproj/";

    // By default a loopback client gets identity even when it accepts gzip.
    let auto = pipgate_for(w, &origin, "");
    let plain = Probe::new(auto.addr, &auto.ca_pem)
        .send(Probe::request("GET", url).header("accept-encoding", "gzip"))
        .unwrap();
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(plain.header("content-encoding"), "", "{:?}", plain.headers);
    assert!(plain.text().contains(&wheel_path));
    let identity_etag = plain.header("etag");

    let pg = pipgate_for(w, &origin, "\n[limits]\npage_compression = \"gzip\"\n");
    let probe = Probe::new(pg.addr, &pg.ca_pem);
    let gz = probe
        .send(Probe::request("GET", url).header("accept-encoding", "gzip, deflate"))
        .unwrap();
    assert_eq!(gz.status, 200, "{}", gz.text());
    assert_eq!(gz.header("content-encoding"), "gzip", "{:?}", gz.headers);
    assert!(gz.header("content-length").is_empty(), "{:?}", gz.headers);
    assert!(gz.header("vary").contains("Accept-Encoding"));
    assert_eq!(
        fixtures::gunzip(&gz.body),
        plain.body,
        "the same page, gzipped"
    );
    assert!(
        gz.body.len() * 4 < plain.body.len(),
        "{} bytes",
        gz.body.len()
    );
    let gz_etag = gz.header("etag");
    assert!(gz_etag.ends_with("-gzip\""), "{gz_etag}");
    assert_ne!(gz_etag, identity_etag);

    // A client that does not take gzip gets identity, named as before.
    let id = probe
        .send(Probe::request("GET", url).header("accept-encoding", "gzip;q=0, br"))
        .unwrap();
    assert_eq!(id.header("content-encoding"), "");
    assert_eq!(id.body, plain.body);
    assert_eq!(id.header("etag"), identity_etag);

    // Revalidation: the gzipped tag revalidates the gzipped page; the identity tag does not.
    let again = probe
        .send(
            Probe::request("GET", url)
                .header("accept-encoding", "gzip")
                .header("if-none-match", &gz_etag),
        )
        .unwrap();
    assert_eq!(again.status, 304, "{:?}", again.headers);
    assert_eq!(again.header("etag"), gz_etag);
    assert!(again.body.is_empty());
    let other = probe
        .send(
            Probe::request("GET", url)
                .header("accept-encoding", "gzip")
                .header("if-none-match", &identity_etag),
        )
        .unwrap();
    assert_eq!(other.status, 200);
    assert_eq!(fixtures::gunzip(&other.body), plain.body);
    let id_again = probe
        .send(Probe::request("GET", url).header("if-none-match", &identity_etag))
        .unwrap();
    assert_eq!(id_again.status, 304, "{:?}", id_again.headers);

    // HEAD: the gzipped representation's headers, no body.
    let head = probe
        .send(Probe::request("HEAD", url).header("accept-encoding", "gzip"))
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-encoding"),
        "gzip",
        "{:?}",
        head.headers
    );
    assert_eq!(head.header("etag"), gz_etag);
    assert!(head.body.is_empty());

    // Real clients (env -i; both send Accept-Encoding: gzip) read the gzipped pages.
    let route = Route {
        proxy_url: format!("http://{}", pg.addr),
        ca_pem: pg.ca_pem.clone(),
    };
    let index = ["--index-url", "https://gz.test/simple/"];
    let dest = w.scratch("gz-pip-");
    let dest_arg = dest.display().to_string();
    let mut args = vec!["download", "--no-deps", "-d", dest_arg.as_str()];
    args.extend_from_slice(&index);
    args.push("zproj");
    installer::pip(venv::latest(), &route, &w.scratch("home-"), &args).assert_ok();
    assert_eq!(std::fs::read(only_file(&dest)).unwrap(), wheel);
    let target = w.scratch("gz-uv-");
    let target_arg = target.display().to_string();
    let mut args = vec!["pip", "install", "--no-deps", "--target", &target_arg];
    args.extend_from_slice(&index);
    args.push("zproj");
    installer::uv(venv::latest(), &route, &w.scratch("home-"), &args).assert_ok();
    assert!(target.join("zproj-9.0.dist-info").is_dir());

    // Every page answer with a body went gzipped: pip's and uv's included.
    pg.access_event("zproj-9.0");
    let log = pg.stderr();
    let pages: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("pipgate::access") && l.contains("/simple/zproj/"))
        .filter(|l| l.contains("status=200"))
        .map(|l| bytes_of(l).expect("bytes= in every access line"))
        .filter(|&b| b > 0)
        .collect();
    // The probes' two gzipped GETs and one identity GET, pip's and uv's.
    assert!(pages.len() >= 5, "{log}");
    let small = pages
        .iter()
        .filter(|&&b| b * 4 < plain.body.len() as u64)
        .count();
    assert_eq!(small, pages.len() - 1, "one identity answer only:\n{log}");
}
