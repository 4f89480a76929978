//! Issue 16, known-malicious releases: an OSV feed (a zip on a local HTTPS origin, as osv.dev
//! serves `PyPI/all.zip`) blocks by version, by `ECOSYSTEM` range, by every version and by file
//! hash, through every door and for real pip 9, pip 26 and uv; it refreshes, keeps the last
//! good snapshot, and fails closed once stale. The feed origin never hears a project name.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pipgate_integration_tests::clients::{self, Availability, Indexes, Route, Survey, Tool, Via};
use pipgate_integration_tests::origin::{Origin, RunningOrigin};
use pipgate_integration_tests::pipgate::{pipgate_command, Pipgate};
use pipgate_integration_tests::probe::{http_get, Probe};
use pipgate_integration_tests::world::{World, FILES_HOST, MALHASH_RENAMED_PATH, PUBLIC_HOST};

const FEED_HOST: &str = "osv.test";
const FEED_PATH: &str = "/PyPI/all.zip";
const HTML: &str = "text/html";
const JSON: &str = "application/vnd.pypi.simple.v1+json";

/// The feed origin, serving `zip` with an ETag.
fn feed_origin(world: &World, zip: Vec<u8>) -> RunningOrigin {
    Origin::builder(world.origin_ca())
        .host(FEED_HOST)
        .route_full(
            FEED_PATH,
            200,
            "application/zip",
            &[("etag", "\"v1\"")],
            zip,
        )
        .run()
}

/// A pipgate of `world` whose `[policy.advisories]` is `table` (its `source` the feed origin).
fn pipgate_with_feed(world: &World, feed: &RunningOrigin, table: &str) -> Pipgate {
    let mut config = world.pipgate_config();
    config
        .extra_resolve
        .push((format!("{FEED_HOST}:443"), feed.addr()));
    config.rules =
        format!("\n[policy.advisories]\nsource = \"https://{FEED_HOST}{FEED_PATH}\"\n{table}");
    world.start_pipgate(&config)
}

/// Ready, with a fresh snapshot loaded (in audit mode `/readyz` does not wait for one).
fn ready(p: &Pipgate) {
    p.wait_admin("/readyz", 20, |status, _| status == 200);
    p.wait_admin("/metrics", 20, |_, m| {
        m.contains("\npipgate_advisories_stale 0\n")
    });
}

fn page(probe: &Probe, project: &str, accept: &str) -> (u16, String) {
    let url = format!("https://{PUBLIC_HOST}/simple/{project}/");
    let r = probe
        .send(Probe::request("GET", &url).header("Accept", accept))
        .unwrap();
    (r.status, r.text())
}

fn get(probe: &Probe, url: &str) -> (u16, String) {
    let r = probe.get(url);
    (r.status, r.text())
}

#[test]
fn known_malicious_releases_are_withheld_at_every_door_for_every_client() {
    let world = World::start_control_only();
    let feed = feed_origin(&world, world.osv_zip(&[]));
    let p = pipgate_with_feed(&world, &feed, "refresh = \"1h\"\n");
    ready(&p);
    let probe = Probe::new(p.addr, &p.ca_pem);

    // Pages: the listed versions are withheld from HTML and JSON alike, the rest offered.
    for (project, bad) in [
        ("malver", "2.0"),
        ("malrange", "2.0"),
        ("malhash", "2.0"),
        ("reupload", "2.0"),
    ] {
        for accept in [HTML, JSON] {
            let (status, text) = page(&probe, project, accept);
            assert_eq!(status, 200, "{project} {accept}: {text}");
            assert!(
                text.contains(&world.file(project, "1.0").filename),
                "{project} {accept}: {text}"
            );
            assert!(
                !text.contains(&world.file(project, bad).filename),
                "{project} {bad} offered ({accept}): {text}"
            );
        }
    }
    // The withdrawn record blocks nothing; a PYSEC- record is not included by default.
    for (project, version) in [("malgone", "1.0"), ("pysecpkg", "2.0")] {
        let (_, text) = page(&probe, project, HTML);
        assert!(
            text.contains(&world.file(project, version).filename),
            "{text}"
        );
    }
    // The legacy JSON API: the listed release is gone from `urls` and `releases`, and its own
    // document is a 404 naming the advisory.
    let (status, legacy) = get(&probe, &format!("https://{PUBLIC_HOST}/pypi/malver/json"));
    assert_eq!(status, 200, "{legacy}");
    assert!(
        legacy.contains(&world.file("malver", "1.0").filename)
            && !legacy.contains(&world.file("malver", "2.0").filename),
        "{legacy}"
    );
    let (status, text) = get(
        &probe,
        &format!("https://{PUBLIC_HOST}/pypi/malver/2.0/json"),
    );
    assert!(
        status == 404 && text.contains("rule advisory"),
        "{status} {text}"
    );
    // An every-version record refuses the project: 404 naming the advisory.
    let (status, text) = page(&probe, "malall", HTML);
    assert_eq!(status, 404, "{text}");
    assert!(
        text.contains("MAL-2026-9003: Malicious code in malall (PyPI)")
            && text.contains("rule advisory"),
        "{text}"
    );

    // Direct downloads (lock files, cached URLs): 403 naming the advisory, for the file and
    // its metadata; the re-upload under another name is caught by its hash.
    let malver = world.file("malver", "2.0");
    let (status, text) = get(&probe, &malver.url);
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("pipgate: malver 2.0 is known malicious (MAL-2026-9001: Malicious code in malver (PyPI))"),
        "{text}"
    );
    assert_eq!(get(&probe, &format!("{}.metadata", malver.url)).0, 403);
    let (status, text) = get(&probe, &world.file("reupload", "2.0").url);
    assert!(
        status == 403 && text.contains("MAL-2026-9005"),
        "{status} {text}"
    );
    let (status, text) = get(&probe, &world.file("malall", "1.0").url);
    assert!(
        status == 403 && text.contains("MAL-2026-9003"),
        "{status} {text}"
    );
    assert_eq!(get(&probe, &world.file("malver", "1.0").url).0, 200);
    assert_eq!(get(&probe, &world.file("malgone", "1.0").url).0, 200);
    // The listed file's bytes under a name no page offers: hashed as they stream and cut
    // before their end (HTTP/1.1 and HTTP/2), logged as the advisory's block.
    let stowaway = format!("https://{FILES_HOST}{MALHASH_RENAMED_PATH}");
    for probe in [probe.clone(), probe.clone().h2()] {
        let cut = probe.send(Probe::request("GET", &stowaway));
        assert!(cut.is_err(), "{:?}", cut.map(|r| (r.status, r.body.len())));
    }
    let line = p.log_line("the cut download", |l| {
        l.contains("stowaway-1.0") && l.contains("was cut")
    });
    assert!(line.contains("MAL-2026-9005"), "{line}");

    // Real clients pick the safe versions: pip 9 (HTML), the newest pip (JSON) and uv.
    let dir = clients::clients_dir();
    let Survey::Found(found) = clients::survey(&dir) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "no clients in CI"
        );
        return;
    };
    let route = Route {
        proxy_url: p.proxy_url(),
        ca_pem: p.ca_pem.clone(),
        via: Via::Env,
    };
    let indexes = Indexes {
        primary: Some(world.public_index_url()),
        extra: None,
    };
    let mut ran = 0;
    for (id, tool) in [
        ("pip-9.0.3-py3.6", Tool::Pip),
        ("pip-latest-py3.11", Tool::Pip),
        ("uv", Tool::UvInstall),
    ] {
        let Some(client) = found.iter().find_map(|(spec, a)| match a {
            Availability::Ready(c) if spec.id == id => Some(c),
            _ => None,
        }) else {
            continue;
        };
        let got = clients::resolve(tool, client, &route, &indexes, "adv-app")
            .unwrap_or_else(|e| panic!("{id}: {e}\n{}", e.transcript()));
        for (name, version) in [
            ("adv-app", "1.0"),
            ("malver", "1.0"),
            ("malrange", "1.0"),
            ("malhash", "1.0"),
            ("pysecpkg", "2.0"),
            ("malgone", "1.0"),
        ] {
            assert_eq!(
                got.versions.get(name).map(String::as_str),
                Some(version),
                "{id}: {name}\n{}",
                got.transcript
            );
        }
        ran += 1;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        assert_eq!(ran, 3, "pip 9, the newest pip and uv must all run in CI");
    }

    // Seen by the operator: explain, metrics, the access line.
    let out = pipgate_command()
        .args(["explain", "--config"])
        .arg(&p.config_path)
        .args(["malver", "2.0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("MAL-2026-9001: Malicious code in malver (PyPI): versions 2.0"),
        "{text}"
    );
    let metrics = http_get(p.admin.unwrap(), "/metrics").text();
    for want in [
        "pipgate_advisories_records 6",
        "pipgate_advisories_blocking_records 4",
        "pipgate_advisories_stale 0",
        "pipgate_decisions_total{rule=\"advisory\",action=\"withhold\"}",
        "pipgate_decisions_total{rule=\"advisory\",action=\"block\"}",
        "pipgate_advisory_blocks_total{prefix=\"MAL-\"}",
    ] {
        assert!(metrics.contains(want), "{want}\n{metrics}");
    }

    // The feed was fetched whole, and nothing it was asked names a project.
    let asked = feed.requests();
    assert!(!asked.is_empty());
    for r in &asked {
        assert_eq!(r.path, FEED_PATH, "{asked:?}");
        let headers = format!("{:?}", r.headers).to_ascii_lowercase();
        for name in ["malver", "malrange", "malall", "adv-app", "six"] {
            assert!(
                !headers.contains(name),
                "{name} sent to the feed: {headers}"
            );
        }
    }
}

#[test]
fn included_prefixes_and_waivers_are_the_operators_choice() {
    let world = World::start_control_only();
    let feed = feed_origin(&world, world.osv_zip(&[]));
    let p = pipgate_with_feed(
        &world,
        &feed,
        "include = [\"MAL-\", \"PYSEC-\"]\nignore = [\"MAL-2026-9001\"]\n",
    );
    ready(&p);
    let probe = Probe::new(p.addr, &p.ca_pem);
    let (_, text) = page(&probe, "pysecpkg", HTML);
    assert!(
        !text.contains(&world.file("pysecpkg", "2.0").filename),
        "{text}"
    );
    let (status, text) = get(&probe, &world.file("pysecpkg", "2.0").url);
    assert!(
        status == 403 && text.contains("is affected by a known advisory (PYSEC-2026-9006"),
        "{status} {text}"
    );
    // The waived advisory blocks nothing.
    assert_eq!(get(&probe, &world.file("malver", "2.0").url).0, 200);
    // `config check` prints the table as it reads it.
    let out = pipgate_command()
        .args(["config", "check", "--config"])
        .arg(&p.config_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "[policy.advisories]",
        "source = \"https://osv.test/PyPI/all.zip\"",
        "max_age = \"2days\"",
        "include = [\"MAL-\", \"PYSEC-\"]",
        "ignore = [\"MAL-2026-9001\"]",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
}

#[test]
fn the_feed_refreshes_keeps_its_last_good_snapshot_and_fails_closed_when_stale() {
    let world = World::start_control_only();
    let feed = feed_origin(&world, world.osv_zip(&[]));
    let p = pipgate_with_feed(&world, &feed, "refresh = \"1s\"\nmax_age = \"1h\"\n");
    ready(&p);
    let probe = Probe::new(p.addr, &p.ca_pem);
    let malver_one = world.file("malver", "1.0");
    assert_eq!(get(&probe, &malver_one.url).0, 200);
    // A refresh that finds nothing new asks conditionally and keeps the snapshot.
    p.wait_admin("/metrics", 10, |_, m| {
        m.contains("\npipgate_advisories_refreshes_total 2\n")
            || m.contains("\npipgate_advisories_refreshes_total 3\n")
    });
    assert!(
        feed.requests().iter().any(|r| r
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")),
        "{:?}",
        feed.requests()
    );

    // A new record in the feed blocks after the next refresh.
    let newer = serde_json::json!({
        "id": "MAL-2026-9100", "modified": "2026-12-01T00:00:00Z",
        "summary": "Malicious code in malver (PyPI)",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "malver"}, "versions": ["1.0"]}],
    });
    feed.set_route(
        FEED_PATH,
        200,
        "application/zip",
        &[("etag", "\"v2\"")],
        world.osv_zip(&[("MAL-2026-9100".to_owned(), newer)]),
    );
    p.wait_admin("/metrics", 10, |_, m| {
        m.contains("\npipgate_advisories_records 7\n")
    });
    let (status, text) = get(&probe, &malver_one.url);
    assert!(
        status == 403 && text.contains("MAL-2026-9100"),
        "{status} {text}"
    );

    // A corrupt download is refused, counted, and the snapshot it would have replaced stays.
    feed.set_route(
        FEED_PATH,
        200,
        "application/zip",
        &[("etag", "\"v3\"")],
        b"PK\x03\x04 this is not a zip".to_vec(),
    );
    p.wait_admin("/metrics", 10, |_, m| {
        m.contains("\npipgate_advisories_refresh_failures_total ")
            && !m.contains("\npipgate_advisories_refresh_failures_total 0\n")
    });
    assert_eq!(get(&probe, &malver_one.url).0, 403);
    p.log_line("the refused refresh", |l| {
        l.contains("advisory feed refresh failed") && l.contains("not a readable zip")
    });

    // A restart with the feed gone starts from the last good download kept beside the CA.
    let config = std::fs::read_to_string(&p.config_path).unwrap();
    let dir = p.config_path.parent().unwrap().to_owned();
    drop(p);
    drop(feed);
    let again = Pipgate::start(&dir, &config);
    ready(&again);
    let probe = Probe::new(again.addr, &again.ca_pem);
    let (status, text) = get(&probe, &malver_one.url);
    assert!(
        status == 403 && text.contains("MAL-2026-9100"),
        "{status} {text}"
    );
    again.log_line("the restored snapshot", |l| {
        l.contains("advisory snapshot restored from the last good download")
    });
}

#[test]
fn a_stale_snapshot_blocks_public_pages_or_is_allowed_as_configured() {
    let world = World::start_control_only();
    for (on_stale, mode, status) in [
        ("block", "enforce", 503),
        ("allow", "enforce", 200),
        // Audit mode reports the 503 it would give, serves, and stays ready.
        ("block", "audit", 200),
    ] {
        let feed = feed_origin(&world, world.osv_zip(&[]));
        let p = pipgate_with_feed(
            &world,
            &feed,
            &format!(
                "refresh = \"1s\"\nmax_age = \"3s\"\non_stale = {on_stale:?}\nmode = {mode:?}\n"
            ),
        );
        ready(&p);
        let probe = Probe::new(p.addr, &p.ca_pem);
        assert_eq!(page(&probe, "malver", HTML).0, 200);
        // The feed goes away: the snapshot ages past max_age.
        drop(feed);
        p.wait_admin("/metrics", 15, |_, m| {
            m.contains("\npipgate_advisories_stale 1\n")
        });
        let (got, text) = page(&probe, "malver", HTML);
        assert_eq!(got, status, "on_stale = {on_stale}: {text}\n{}", p.stderr());
        let (ready_status, ready_text) = {
            let r = http_get(p.admin.unwrap(), "/readyz");
            (r.status, r.text())
        };
        if mode == "audit" {
            assert_eq!(ready_status, 200, "{ready_text}");
            let line = p.log_line("the audited page", |l| {
                l.contains("pipgate::access")
                    && l.contains("/simple/malver/")
                    && l.contains("decision=audit")
            });
            assert!(line.contains("older than"), "{line}");
        } else if on_stale == "block" {
            assert!(
                text.contains("older than policy.advisories.max_age")
                    && text.contains("rule advisory"),
                "{text}"
            );
            assert_eq!(ready_status, 503, "{ready_text}");
            assert!(ready_text.contains("advisory snapshot"), "{ready_text}");
            // Downloads are refused too; the root listing is not the feed's business.
            assert_eq!(get(&probe, &world.file("malver", "1.0").url).0, 503);
        } else {
            assert!(
                !text.contains(&world.file("malver", "2.0").filename),
                "{text}"
            );
            assert_eq!(ready_status, 200, "{ready_text}");
        }
    }
}
