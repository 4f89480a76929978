//! Issue 19 §1: every public download must have the sha256 its index advertised. The public
//! file host is made to serve other bytes under a published file's URL: pipgate hashes the
//! download as it streams, holds its last bytes back and cuts it (HTTP/1.1 and HTTP/2), so no
//! client holds the whole wrong file; real pip, given the URL without a hash, fails too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pipgate_integration_tests::installer::{self, Route};
use pipgate_integration_tests::probe::{http_get, Probe};
use pipgate_integration_tests::venv;
use pipgate_integration_tests::world::World;

fn metric(admin: std::net::SocketAddr, series: &str) -> u64 {
    let text = http_get(admin, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_download_with_other_bytes_than_advertised_is_cut_before_its_end() {
    let world = World::start();
    let p = world.pipgate();
    let admin = p.admin.unwrap();
    let probe = Probe::new(p.addr, &p.ca_pem);
    let f = world.file("pubdep", "1.0").clone();

    // The genuine file: served whole, and counted as verified (its page was looked up).
    for probe in [probe.clone(), probe.clone().h2()] {
        let ok = probe.get(&f.url);
        assert_eq!((ok.status, &ok.body[..]), (200, &f.bytes[..]));
    }
    // A HEAD has no bytes to judge: answered, not counted.
    let head = probe.send(Probe::request("HEAD", &f.url)).unwrap();
    assert_eq!(head.status, 200);
    let verified = "pipgate_download_hashes_total{result=\"verified\"}";
    assert_eq!(metric(admin, verified), 2);

    // Same length, one byte changed: the origin's Content-Length still holds.
    let mut tampered = f.bytes.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    world
        .public_origin()
        .set_route(&f.path(), 200, "application/octet-stream", &[], tampered);
    for probe in [probe.clone(), probe.clone().h2()] {
        let cut = probe.send(Probe::request("GET", &f.url));
        assert!(cut.is_err(), "{:?}", cut.map(|r| (r.status, r.body.len())));
        // A range is no way around it: the file is asked for whole, and judged.
        let ranged = probe.send(Probe::request("GET", &f.url).header("Range", "bytes=0-9"));
        assert!(
            ranged.is_err(),
            "{:?}",
            ranged.map(|r| (r.status, r.body.len()))
        );
    }
    let actual = pipgate_integration_tests::fixtures::sha256_hex(&{
        let mut b = f.bytes.clone();
        b[mid] ^= 0x01;
        b
    });
    let line = p.log_line("the cut download", |l| {
        l.contains(&f.filename) && l.contains("was cut")
    });
    assert!(
        line.contains("rule=hash-mismatch")
            && line.contains(&format!("sha256:{}", f.sha256))
            && line.contains(&format!("sha256:{actual}")),
        "{line}"
    );
    let access = p.log_line("the cut download's access line", |l| {
        l.contains("pipgate::access") && l.contains(&f.path()) && l.contains("complete=false")
    });
    assert!(
        access.contains("decision=block") && access.contains("rule=hash-mismatch"),
        "{access}"
    );
    let mismatch = "pipgate_download_hashes_total{result=\"mismatch\"}";
    assert_eq!(metric(admin, mismatch), 4);
    assert_eq!(
        metric(
            admin,
            "pipgate_decisions_total{rule=\"hash-mismatch\",action=\"block\"}"
        ),
        4
    );
    let recent = http_get(admin, "/decisions?limit=5").text();
    assert!(recent.contains("\"rule\": \"hash-mismatch\""), "{recent}");

    // Another valid wheel under the same URL (a swapped upload, not a broken zip). Real pip,
    // given the URL alone (no hash of its own to check): the download fails.
    let swapped =
        pipgate_integration_tests::fixtures::wheel_with_marker("pubdep", "1.0", &[], "swapped");
    let actual = pipgate_integration_tests::fixtures::sha256_hex(&swapped);
    world
        .public_origin()
        .set_route(&f.path(), 200, "application/octet-stream", &[], swapped);
    let route = Route {
        proxy_url: p.proxy_url(),
        ca_pem: p.ca_pem.clone(),
    };
    let (home, dest) = (world.scratch("home-"), world.scratch("dl-"));
    let out = installer::pip(
        venv::latest(),
        &route,
        &home,
        &[
            "download",
            "--no-deps",
            "-d",
            &dest.display().to_string(),
            &f.url,
        ],
    );
    assert!(!out.status.success(), "{out}");
    assert!(
        std::fs::read_dir(&dest).unwrap().next().is_none(),
        "pip kept a file"
    );
    // Without pipgate (the control tunnel), the same pip takes the wrong bytes.
    let control = world.via_control();
    let out = installer::pip(
        venv::latest(),
        &control,
        &world.scratch("home-"),
        &[
            "download",
            "--no-deps",
            "-d",
            &dest.display().to_string(),
            &f.url,
        ],
    );
    assert!(out.status.success(), "{out}");
    let got = std::fs::read(dest.join(&f.filename)).unwrap();
    assert_eq!(
        pipgate_integration_tests::fixtures::sha256_hex(&got),
        actual
    );
}

#[test]
fn unknown_hashes_are_served_and_counted_or_blocked_and_checks_can_be_off() {
    let world = World::start();
    // fresh 3.0 is on the file host but on no page: its hash cannot be learnt.
    let unlisted = world.file("fresh", "3.0").clone();
    let p = world.pipgate();
    let probe = Probe::new(p.addr, &p.ca_pem);
    assert_eq!(probe.get(&unlisted.url).status, 200);
    let unknown = "pipgate_download_hashes_total{result=\"unknown\"}";
    assert_eq!(metric(p.admin.unwrap(), unknown), 1);

    let mut cfg = world.pipgate_config();
    cfg.rules = "\n[policy.integrity]\non_unknown_hash = \"block\"\n".into();
    let strict = world.start_pipgate(&cfg);
    let probe = Probe::new(strict.addr, &strict.ca_pem);
    let r = probe.get(&unlisted.url);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("rule hash-unknown"), "{}", r.text());
    // Refused before it streams: a block of the rule, not a judged download.
    let strict_admin = strict.admin.unwrap();
    assert_eq!(
        metric(
            strict_admin,
            "pipgate_decisions_total{rule=\"hash-unknown\",action=\"block\"}"
        ),
        1
    );
    assert_eq!(metric(strict_admin, unknown), 0);
    assert_eq!(probe.get(&world.file("pubdep", "1.0").url).status, 200);

    // verify_hashes = false: nothing is looked up or compared.
    let f = world.file("pubdep", "1.0").clone();
    let mut tampered = f.bytes.clone();
    tampered[0] ^= 0x01;
    world.public_origin().set_route(
        &f.path(),
        200,
        "application/octet-stream",
        &[],
        tampered.clone(),
    );
    cfg.rules = "\n[policy.integrity]\nverify_hashes = false\n".into();
    let off = world.start_pipgate(&cfg);
    let probe = Probe::new(off.addr, &off.ca_pem);
    world.public_origin().clear_log();
    let r = probe.get(&f.url);
    assert_eq!((r.status, &r.body[..]), (200, &tampered[..]));
    assert!(
        !world.public_origin().asked_for("/simple/pubdep/"),
        "looked the page up with verify_hashes = false"
    );

    // Audit mode: the mismatch is logged and counted as an audit, and the file served whole.
    cfg.rules = "\n[policy.integrity]\nmode = \"audit\"\n".into();
    let audit = world.start_pipgate(&cfg);
    let probe = Probe::new(audit.addr, &audit.ca_pem);
    let r = probe.get(&f.url);
    assert_eq!((r.status, &r.body[..]), (200, &tampered[..]));
    let line = audit.log_line("the audited mismatch", |l| {
        l.contains(&f.filename) && l.contains("served (audit)")
    });
    assert!(line.contains("rule=hash-mismatch"), "{line}");
    let admin = audit.admin.unwrap();
    assert_eq!(
        metric(
            admin,
            "pipgate_decisions_total{rule=\"hash-mismatch\",action=\"audit\"}"
        ),
        1
    );
    assert_eq!(
        metric(admin, "pipgate_download_hashes_total{result=\"mismatch\"}"),
        1
    );
}
