//! Issue 15, the supply-chain rules through every door: a 7-day cooldown (with an exempt
//! name), deny lists by name, version and hash, and audit mode, against a public index whose
//! JSON pages carry PEP 700 upload times and whose HTML pages carry none (as PyPI's). The
//! client matrix (`matrix.rs`, check 4) runs every installer against the same rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pipgate_integration_tests::installer::{self, Route};
use pipgate_integration_tests::pipgate::pipgate_command;
use pipgate_integration_tests::probe::{http_get, Probe};
use pipgate_integration_tests::venv;
use pipgate_integration_tests::world::{World, FILES_HOST, PUBLIC_HOST, RENAMED_PATH};

const HTML: &str = "text/html";
const JSON: &str = "application/vnd.pypi.simple.v1+json";

fn page(probe: &Probe, project: &str, accept: &str) -> (u16, String, String) {
    let url = format!("https://{PUBLIC_HOST}/simple/{project}/");
    let r = probe
        .send(Probe::request("GET", &url).header("Accept", accept))
        .unwrap();
    (r.status, r.header("content-type"), r.text())
}

fn get(probe: &Probe, url: &str) -> (u16, String) {
    let r = probe.get(url);
    (r.status, r.text())
}

#[test]
fn cooldown_and_deny_lists_hold_at_every_door() {
    let world = World::start_with(|w, c| c.rules = w.rules_toml("enforce"));
    let p = world.pipgate();
    let probe = Probe::new(p.addr, &p.ca_pem);
    let (new, old) = (world.file("fresh", "2.0"), world.file("fresh", "1.0"));

    // An HTML client (pip 8-22) gets HTML written from the JSON page, which alone says when
    // each file was uploaded: the hour-old 2.0 is withheld, 1.0 carries its upload time.
    let (status, ct, html) = page(&probe, "fresh", HTML);
    assert_eq!(
        (status, ct.as_str()),
        (200, "text/html; charset=utf-8"),
        "{html}"
    );
    assert!(
        html.contains(&old.filename) && html.contains("data-upload-time=\""),
        "{html}"
    );
    assert!(!html.contains(&new.filename), "{html}");
    // A JSON client keeps upload-time (its own cooldown keeps working).
    let (_, ct, json) = page(&probe, "fresh", JSON);
    assert_eq!(ct, JSON);
    assert!(
        json.contains(&old.filename) && json.contains("\"upload-time\""),
        "{json}"
    );
    assert!(!json.contains(&new.filename), "{json}");
    // The exempt name gets its new release; a denied version and a denied hash are withheld.
    let (_, _, exempt) = page(&probe, "exemptpkg", HTML);
    assert!(
        exempt.contains(&world.file("exemptpkg", "2.0").filename),
        "{exempt}"
    );
    for project in ["denyver", "denyhash"] {
        let (_, _, text) = page(&probe, project, HTML);
        assert!(
            text.contains(&world.file(project, "1.0").filename),
            "{text}"
        );
        assert!(
            !text.contains(&world.file(project, "2.0").filename),
            "{text}"
        );
    }
    // A denied name: the page is 404, naming the rule and the entry.
    let (status, _, text) = page(&probe, "evilpkg", HTML);
    assert_eq!(status, 404, "{text}");
    assert!(
        text.contains("policy.deny.packages entry 'evilpkg'") && text.contains("rule deny"),
        "{text}"
    );

    // A private name's file, downloaded from the public file host: refused by the name rules
    // before any rule looks its project page up, so the public index never hears the name.
    let acme = world.file("acme-lib", "99.0");
    let (status, text) = get(&probe, &acme.url);
    assert!(status == 403 && text.contains("private"), "{status} {text}");
    let explain = pipgate_command()
        .args(["explain", "--config"])
        .arg(&p.config_path)
        .arg("acme-lib")
        .output()
        .unwrap();
    assert!(explain.status.success());
    assert!(
        !world.public_origin().asked_for("/simple/acme-lib")
            && !world.public_origin().asked_for("/pypi/acme-lib"),
        "the public index was asked about a private name: {:?}",
        world.public_origin().requests()
    );

    // Direct downloads (lock files, cached URLs): the withheld file and its metadata are 403,
    // the body naming the rule, the upload time and when the file becomes available.
    let (status, text) = get(&probe, &new.url);
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("rule cooldown") && text.contains("available from"),
        "{text}"
    );
    assert_eq!(get(&probe, &format!("{}.metadata", new.url)).0, 403);
    assert_eq!(get(&probe, &old.url).0, 200);
    assert_eq!(get(&probe, &world.file("exemptpkg", "2.0").url).0, 200);
    // A file its project page does not list (uploaded after the listing pipgate read, say) is
    // refused even though unknown upload times are allowed here: it may be a minute old.
    let (status, text) = get(&probe, &world.file("fresh", "3.0").url);
    assert!(
        status == 403 && text.contains("not on its project page"),
        "{status} {text}"
    );
    let (status, text) = get(&probe, &world.file("denyver", "2.0").url);
    assert!(
        status == 403 && text.contains("denyver==2.0"),
        "{status} {text}"
    );
    let (status, text) = get(&probe, &world.file("denyhash", "2.0").url);
    assert!(
        status == 403 && text.contains("policy.deny.files"),
        "{status} {text}"
    );

    // The legacy JSON API: the new release is gone from `urls` and `releases`, and its own
    // document is a 404.
    let (status, legacy) = get(&probe, &format!("https://{PUBLIC_HOST}/pypi/fresh/json"));
    assert_eq!(status, 200, "{legacy}");
    assert!(
        legacy.contains(&old.filename) && !legacy.contains(&new.filename),
        "{legacy}"
    );
    let (status, text) = get(
        &probe,
        &format!("https://{PUBLIC_HOST}/pypi/fresh/2.0/json"),
    );
    assert!(
        status == 404 && text.contains("rule cooldown"),
        "{status} {text}"
    );
    assert_eq!(
        get(
            &probe,
            &format!("https://{PUBLIC_HOST}/pypi/fresh/1.0/json")
        )
        .0,
        200
    );

    // An index with HTML pages only: the upload times come from its legacy JSON API, for the
    // page and for a direct download alike.
    let (status, _, text) = page(&probe, "htmlonly", HTML);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(&world.file("htmlonly", "1.0").filename),
        "{text}"
    );
    assert!(
        !text.contains(&world.file("htmlonly", "2.0").filename),
        "{text}"
    );
    let (status, text) = get(&probe, &world.file("htmlonly", "2.0").url);
    assert!(
        status == 403 && text.contains("rule cooldown"),
        "{status} {text}"
    );
    assert_eq!(get(&probe, &world.file("htmlonly", "1.0").url).0, 200);

    // A denied file under another name, on no page: its download is hashed as it streams and
    // cut before its end (HTTP/1.1 and HTTP/2), counted and logged as the deny rule's block.
    let renamed = format!("https://{FILES_HOST}{RENAMED_PATH}");
    for probe in [probe.clone(), probe.clone().h2()] {
        let cut = probe.send(Probe::request("GET", &renamed));
        assert!(cut.is_err(), "{:?}", cut.map(|r| (r.status, r.body.len())));
    }
    let line = p.log_line("the cut download", |l| {
        l.contains("renamed-1.0") && l.contains("was cut")
    });
    assert!(line.contains("policy.deny.files"), "{line}");
    assert_eq!(get(&probe, &world.file("denyhash", "1.0").url).0, 200);

    // Real pip, downloading the new file by its URL: refused.
    let route = Route {
        proxy_url: p.proxy_url(),
        ca_pem: p.ca_pem.clone(),
    };
    let home = world.scratch("home-");
    let dest = world.scratch("dl-");
    let dest = dest.display().to_string();
    let out = installer::pip(
        venv::latest(),
        &route,
        &home,
        &["download", "--no-deps", "-d", &dest, &new.url],
    );
    assert!(!out.status.success(), "{out}");
    assert!(out.to_string().contains("403"), "{out}");

    // Counted by rule, and named on the access line.
    let metrics = http_get(p.admin.unwrap(), "/metrics").text();
    for line in [
        "pipgate_decisions_total{rule=\"cooldown\",action=\"withhold\"}",
        "pipgate_decisions_total{rule=\"cooldown\",action=\"block\"}",
        "pipgate_decisions_total{rule=\"deny\",action=\"withhold\"}",
        "pipgate_decisions_total{rule=\"deny\",action=\"block\"}",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    assert!(!metrics.contains("rule=\"external-link\""), "{metrics}");
    let line = p.access_event("/simple/denyhash/");
    assert!(
        line.contains("withheld") && line.contains("deny:1"),
        "{line}"
    );
}

#[test]
fn audit_mode_serves_everything_and_reports_what_it_would_block() {
    let world = World::start_with(|w, c| c.rules = w.rules_toml("audit"));
    let p = world.pipgate();
    let probe = Probe::new(p.addr, &p.ca_pem);
    let new = world.file("fresh", "2.0");
    let (_, _, html) = page(&probe, "fresh", HTML);
    assert!(html.contains(&new.filename), "{html}");
    assert_eq!(get(&probe, &new.url).0, 200);
    // A denied name goes upstream (which has no evilpkg: its 404, in pipgate's words), and the
    // block it would have been is on the access line.
    let (status, _, text) = page(&probe, "evilpkg", HTML);
    assert_eq!(status, 404, "{text}");
    assert!(
        text.contains("answered 404") && !text.contains("policy.deny"),
        "{text}"
    );
    let line = p.access_event("/simple/evilpkg/");
    assert!(
        line.contains("audit") && line.contains("policy.deny.packages"),
        "{line}"
    );
    let line = p.access_event(&new.filename);
    assert!(
        line.contains("audit") && line.contains("cooldown"),
        "{line}"
    );
    let warn = p.log_line("audit warning", |l| l.contains("AUDIT mode"));
    assert!(warn.contains("cooldown") || warn.contains("deny"), "{warn}");
    let metrics = http_get(p.admin.unwrap(), "/metrics").text();
    assert!(
        metrics.contains("pipgate_decisions_total{rule=\"cooldown\",action=\"audit\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("action=\"withhold\""), "{metrics}");
    // Real pip picks the new release, as it would without the rules.
    let route = Route {
        proxy_url: p.proxy_url(),
        ca_pem: p.ca_pem.clone(),
    };
    let got = world.pip_download(
        &route,
        &["--index-url", &format!("https://{PUBLIC_HOST}/simple/")],
        "fresh",
    );
    assert!(got.ends_with(&new.filename), "{}", got.display());
}

#[test]
fn config_check_prints_the_rules_and_names_bad_keys_by_line() {
    let world = World::start_with(|w, c| c.rules = w.rules_toml("enforce"));
    let config = &world.pipgate().config_path;
    let out = pipgate_command()
        .args(["config", "check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "[policy.cooldown]",
        "min_age = \"7days\"",
        "exempt = [\"exemptpkg\"]",
        "[policy.deny]",
        "packages = [\"denyver==2.0\", \"evilpkg\"]",
        "mode = \"enforce\"",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
    let good = std::fs::read_to_string(config).unwrap();
    for (bad, key, message) in [
        (
            "min_age = \"7d\"",
            "min_age = \"a week\"",
            "policy.cooldown",
        ),
        ("\"denyver==2.0\"", "\"denyver===\"", "policy.deny"),
        (
            "min_age = \"7d\"",
            "min_age = \"7d\"\nmin_agee = 1",
            "min_agee",
        ),
    ] {
        let text = good.replacen(bad, key, 1);
        let path = config.with_file_name("bad.toml");
        std::fs::write(&path, &text).unwrap();
        let out = pipgate_command()
            .args(["config", "check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        let line = text
            .lines()
            .position(|l| l.contains(key.lines().last().unwrap()))
            .unwrap()
            + 1;
        assert!(
            err.contains(message) && err.contains(&format!("line {line}")),
            "{line}: {err}"
        );
    }
}

#[test]
fn explain_says_what_each_rule_withholds() {
    let world = World::start_with(|w, c| c.rules = w.rules_toml("enforce"));
    let config = &world.pipgate().config_path;
    let run = |args: &[&str]| {
        let out = pipgate_command()
            .args(["explain", "--config"])
            .arg(config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run(&["fresh"]);
    let new = &world.file("fresh", "2.0").filename;
    assert!(
        text.contains(&format!("cooldown: {new} withheld until")),
        "{text}"
    );
    let text = run(&["denyver", "2.0"]);
    assert!(
        text.contains("versions matching 'denyver==2.0' are withheld"),
        "{text}"
    );
    let text = run(&["evilpkg"]);
    assert!(text.contains("blocked with 404 (deny)"), "{text}");
}

#[test]
fn a_reload_that_denies_a_version_changes_the_page_etag() {
    use pipgate_integration_tests::fixtures::{simple_html, FileLink};
    use pipgate_integration_tests::origin::Origin;
    use pipgate_integration_tests::world::ExtraIndex;
    let world = World::start_control_only();
    // A streamed page (2,000 links) with a strong upstream ETag: pipgate derives its own from
    // it before reading the body, so a revalidating client could get a 304 for a page written
    // under the old rules, were the rules not part of it.
    let links: Vec<FileLink> = (0..2000)
        .map(|i| FileLink::new(&format!("https://gz.test/packages/big-{i}.0.tar.gz")))
        .collect();
    let origin = Origin::builder(world.origin_ca())
        .host("gz.test")
        .route_full(
            "/simple/big/",
            200,
            HTML,
            &[("etag", "\"b1\"")],
            simple_html("big", &links),
        )
        .run();
    let mut cfg = world.pipgate_config();
    cfg.extra_resolve
        .push(("gz.test:443".to_owned(), origin.addr()));
    cfg.extra_indexes.push(ExtraIndex {
        name: "gz".to_owned(),
        url: "https://gz.test/simple/".to_owned(),
        role: "public".to_owned(),
        file_hosts: vec!["gz.test".to_owned()],
    });
    let p = world.start_pipgate(&cfg);
    let probe = Probe::new(p.addr, &p.ca_pem);
    let url = "https://gz.test/simple/big/";
    let first = probe.get(url);
    let etag = first.header("etag");
    assert!(
        first.text().contains("big-5.0.tar.gz") && etag.starts_with("\"pg-"),
        "{etag}"
    );
    let again = probe
        .send(Probe::request("GET", url).header("if-none-match", &etag))
        .unwrap();
    assert_eq!(again.status, 304);

    cfg.rules = "\n[policy.deny]\npackages = [\"big==5.0\"]\n".to_owned();
    std::fs::write(&p.config_path, cfg.to_toml()).unwrap();
    let (status, text) = p.reload();
    assert_eq!(status, 200, "{text}");
    let after = probe
        .send(Probe::request("GET", url).header("if-none-match", &etag))
        .unwrap();
    assert_eq!(
        after.status, 200,
        "a page written under the old rules must not be revalidated"
    );
    assert!(!after.text().contains("big-5.0.tar.gz"), "{}", after.text());
    assert!(after.text().contains("big-6.0.tar.gz"));
    assert_ne!(after.header("etag"), etag);
}
