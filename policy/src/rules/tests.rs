//! The rules together: config through [`read`], the three writers agreeing on every generated
//! page, direct downloads judged as pages are, audit mode, explain.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use time::macros::datetime;
use url::Url;

use super::*;
use crate::{Answer, Ask, Check, Lookup, PageFormat, Policy, Target, Verdict};

/// Tables from JSON values, as the proxy gives them from TOML.
struct Json(serde_json::Value, Vec<String>);

impl Tables for Json {
    fn table<T: DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        let v = self.0.get(key)?.clone();
        match T::deserialize(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.1.push(format!("{key}: {e}"));
                None
            }
        }
    }

    fn error(&mut self, table: &'static str, key: &'static str, message: String) {
        self.1.push(format!("{table}.{key}: {message}"));
    }
}

const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

fn rules(tables: serde_json::Value, mode: Mode) -> Rules {
    let mut t = Json(tables, Vec::new());
    let files = read(&mut t, mode);
    assert!(t.1.is_empty(), "{:?}", t.1);
    Rules {
        private: vec![NamePattern::parse("corp-*").unwrap()],
        mode,
        files,
        ..Rules::default()
    }
}

fn standard(mode: Mode) -> Rules {
    rules(
        serde_json::json!({
            "cooldown": {"min_age": "7d", "exempt": ["certifi"]},
            "deny": {"packages": ["evilpkg", "pkg==2.0"],
                     "files": ["sha256:".to_owned() + &"e".repeat(64)]},
        }),
        mode,
    )
}

fn policy(rules: Rules) -> Policy {
    Policy::new(vec![crate::page::pypi()], rules).unwrap()
}

#[test]
fn bad_tables_are_refused_with_their_key() {
    let mut t = Json(
        serde_json::json!({"cooldown": {"min_age": "7d", "min_agee": "1d"}}),
        Vec::new(),
    );
    read(&mut t, Mode::Enforce);
    assert!(
        t.1[0].starts_with("cooldown: unknown field `min_agee`"),
        "{:?}",
        t.1
    );
    let mut t = Json(
        serde_json::json!({"deny": {"packages": ["x>>1"]}}),
        Vec::new(),
    );
    read(&mut t, Mode::Enforce);
    assert!(
        t.1[0].starts_with("deny.packages: ") && t.1[0].contains("x>>1"),
        "{:?}",
        t.1
    );
    let mut t = Json(serde_json::json!({"deny": {"mode": "watch"}}), Vec::new());
    read(&mut t, Mode::Enforce);
    assert!(t.1[0].contains("watch"), "{:?}", t.1);
}

/// One generated file: version, wheel or sdist, age in hours, hash byte, yanked.
type Gen = (usize, bool, u32, u8, bool);

const VERSIONS: [&str; 4] = ["1.0", "2.0", "2.1rc1", "3.0.post1"];

fn filename(project: &str, (v, wheel, ..): &Gen) -> String {
    if *wheel {
        format!("{project}-{}-py3-none-any.whl", VERSIONS[*v])
    } else {
        format!("{project}-{}.tar.gz", VERSIONS[*v])
    }
}

fn upload(hours: u32) -> String {
    rfc3339(NOW - time::Duration::hours(hours.into()))
}

fn sha((.., h, _): &Gen) -> String {
    format!("{:02x}", h).repeat(32)
}

fn json_page(project: &str, files: &[Gen]) -> Vec<u8> {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|g| {
            let f = filename(project, g);
            serde_json::json!({
                "filename": f,
                "url": format!("https://files.pythonhosted.org/packages/ab/{f}"),
                "hashes": {"sha256": sha(g)},
                "upload-time": upload(g.2),
                "yanked": g.4,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "meta": {"api-version": "1.1"}, "name": project, "files": files,
    }))
    .unwrap()
}

fn legacy_page(project: &str, files: &[Gen]) -> Vec<u8> {
    let mut releases = serde_json::Map::new();
    for g in files {
        let f = filename(project, g);
        let entry = serde_json::json!({
            "filename": f,
            "url": format!("https://files.pythonhosted.org/packages/ab/{f}"),
            "digests": {"sha256": sha(g)},
            "upload_time_iso_8601": upload(g.2),
            "yanked": g.4,
        });
        let list = releases
            .entry(VERSIONS[g.0].to_owned())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(a) = list {
            a.push(entry);
        }
    }
    serde_json::to_vec(&serde_json::json!({
        "info": {"name": project}, "urls": [], "releases": releases,
    }))
    .unwrap()
}

/// The file names a written page offers.
fn offered(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut names: Vec<String> = text
        .split("/packages/ab/")
        .skip(1)
        .filter_map(|s| s.split(['"', '#']).next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// JSON written as JSON, JSON written as HTML and the legacy JSON API offer the same files,
    /// and none of them is one a rule withholds; each file withheld is counted by its rule.
    #[test]
    fn the_three_writers_agree(
        files in proptest::collection::vec(
            (0..VERSIONS.len(), any::<bool>(), prop_oneof![Just(1u32), Just(100), Just(1000)],
             prop_oneof![Just(0xeeu8), any::<u8>()], any::<bool>()),
            0..12),
        project in prop_oneof![Just("pkg"), Just("certifi"), Just("other")],
    ) {
        // One entry per file name (a page lists a file once).
        let mut seen = std::collections::HashSet::new();
        let files: Vec<Gen> = files.into_iter().filter(|g| seen.insert(filename(project, g))).collect();
        let p = policy(standard(Mode::Enforce));
        let index = &p.indexes()[0];
        let name = Name::new(project);
        let url = Url::parse(&format!("https://pypi.org/simple/{project}/")).unwrap();
        let judge = || p.rules().judge(index, &name, NOW);
        let json = json_page(project, &files);
        let as_json = p
            .rewrite_judged(index, &url, PageFormat::JsonV1, PageFormat::JsonV1, judge(), &json)
            .unwrap();
        let as_html = p
            .rewrite_judged(index, &url, PageFormat::JsonV1, PageFormat::Html, judge(), &json)
            .unwrap();
        let legacy_url = Url::parse(&format!("https://pypi.org/pypi/{project}/json")).unwrap();
        let legacy = p
            .rewrite_legacy_json(index, &legacy_url, &judge(), &legacy_page(project, &files))
            .unwrap();
        prop_assert_eq!(offered(&as_json.body), offered(&as_html.body));
        prop_assert_eq!(offered(&as_json.body), offered(&legacy.body));
        prop_assert!(as_html.content_type.starts_with("text/html"));
        let mut withheld = 0;
        for g in &files {
            let f = filename(project, g);
            let h = sha(g);
            let t = upload(g.2);
            let facts = FileFacts {
                filename: &f,
                upload_time: Some(&t),
                sha256: Some(&h),
                yanked: g.4,
                quarantined: false,
                unlisted: false,
                unknown: false,
                provenance: None,
                attestation: None,
            };
            let kept = offered(&as_json.body).contains(&f);
            let verdict = judge().file(&facts);
            prop_assert_eq!(kept, verdict.is_none(), "{} {:?}", f, verdict);
            withheld += usize::from(!kept);
            // Cooldown: an hour-old public file of a non-exempt name is never offered.
            if g.2 == 1 && project != "certifi" {
                prop_assert!(!kept);
            }
            // Deny: pkg 2.0 and the denied hash never are.
            if (project == "pkg" && g.0 == 1) || g.3 == 0xee {
                prop_assert!(!kept);
            }
        }
        prop_assert_eq!(as_json.summary.withheld.enforced(), withheld);
        prop_assert_eq!(as_html.summary.withheld.enforced(), withheld);
    }
}

#[test]
fn html_written_from_json_carries_upload_times() {
    let p = policy(standard(Mode::Enforce));
    let index = &p.indexes()[0];
    let files = [(0, true, 1000, 1, false), (2, false, 1000, 2, true)];
    let json = json_page("other", &files);
    let url = Url::parse("https://pypi.org/simple/other/").unwrap();
    let judge = p.rules().judge(index, &Name::new("other"), NOW);
    let html = p
        .rewrite_judged(
            index,
            &url,
            PageFormat::JsonV1,
            PageFormat::Html,
            judge,
            &json,
        )
        .unwrap();
    let text = String::from_utf8(html.body).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
    assert!(
        text.contains(&format!("data-upload-time=\"{}\"", upload(1000))),
        "{text}"
    );
    assert!(
        text.contains(&format!("#sha256={}", "01".repeat(32))),
        "{text}"
    );
    assert!(text.contains("data-yanked=\"\""), "{text}");
    assert_eq!(html.kept, 2);
}

#[test]
fn audit_mode_keeps_and_counts() {
    let p = policy(standard(Mode::Audit));
    let index = &p.indexes()[0];
    let json = json_page("pkg", &[(1, true, 1, 3, false), (0, true, 1000, 4, false)]);
    let url = Url::parse("https://pypi.org/simple/pkg/").unwrap();
    let judge = p.rules().judge(index, &Name::new("pkg"), NOW);
    let out = p
        .rewrite_judged(
            index,
            &url,
            PageFormat::JsonV1,
            PageFormat::JsonV1,
            judge,
            &json,
        )
        .unwrap();
    assert_eq!(out.kept, 2);
    assert_eq!(out.summary.withheld.enforced(), 0);
    assert_eq!(out.summary.withheld.rules(), "deny(audit):1");
    assert_eq!(
        p.rules().files.audited(),
        ["deny", "cooldown", "hash-mismatch"]
    );
    // A denied name is allowed, but reported.
    let t = p.classify("pypi.org", "/simple/evilpkg/").unwrap();
    assert!(matches!(p.check(&t, NOW), Check::Done(Verdict::Audit(b)) if b.rule == Rule::Deny));
}

#[test]
fn direct_downloads_are_judged_as_pages_are() {
    let p = policy(standard(Mode::Enforce));
    let index = &p.indexes()[0];
    let files = [(0, true, 1, 1, false), (0, false, 1000, 2, false)];
    let json = json_page("other", &files);
    let url = Url::parse("https://pypi.org/simple/other/").unwrap();
    let records: Arc<[FileRecord]> = crate::files_of_page(index, &url, PageFormat::JsonV1, &json)
        .unwrap()
        .into();
    let decide = |path: &str, lookup: &Lookup| {
        let t = p.classify("files.pythonhosted.org", path).unwrap();
        let Check::Lookup(questions) = p.check(&t, NOW) else {
            panic!("no lookup for {path}");
        };
        assert!(questions.iter().all(|q| q.ask == Ask::Files));
        let answers: Vec<Answer<'_>> = questions
            .iter()
            .map(|q| Answer::new(q.index, &q.name, lookup.clone()))
            .collect();
        p.decide(&t, &answers, NOW)
    };
    let listed = Lookup::Files(records);
    let new = decide("/packages/ab/other-1.0-py3-none-any.whl", &listed);
    let Verdict::Block(b) = new else {
        panic!("{new:?}")
    };
    assert_eq!((b.status, b.rule), (403, Rule::Cooldown));
    assert!(b.message.contains("available from"), "{}", b.message);
    let meta = decide("/packages/ab/other-1.0-py3-none-any.whl.metadata", &listed);
    assert!(matches!(meta, Verdict::Block(b) if b.rule == Rule::Cooldown));
    assert_eq!(
        decide("/packages/ab/other-1.0.tar.gz", &listed),
        Verdict::Allow
    );
    // Not on its page, or the page could not be read: the upload time is unknown (block).
    let unknown = decide("/packages/ab/other-9.0.tar.gz", &listed);
    assert!(
        matches!(&unknown, Verdict::Block(b) if b.message.contains("not on its project page")),
        "{unknown:?}"
    );
    let failed = decide(
        "/packages/ab/other-1.0.tar.gz",
        &Lookup::Failed("503".into()),
    );
    assert!(matches!(failed, Verdict::Block(b) if b.rule == Rule::Cooldown));
    // A denied version needs no upload time to be refused; a denied name is 404/403.
    let t = p.classify("pypi.org", "/simple/evilpkg/").unwrap();
    assert!(matches!(p.check(&t, NOW), Check::Done(Verdict::Block(b)) if b.status == 404));
    let denied = decide("/packages/ab/pkg-2.0.tar.gz", &Lookup::NotFound);
    assert!(
        matches!(&denied, Verdict::Block(b) if b.rule == Rule::Deny),
        "{denied:?}"
    );
}

#[test]
fn explain_names_what_each_rule_withholds() {
    let p = policy(standard(Mode::Enforce));
    let index = &p.indexes()[0];
    let name = Name::new("pkg");
    let json = json_page("pkg", &[(0, true, 1, 1, false), (1, true, 1000, 2, false)]);
    let url = Url::parse("https://pypi.org/simple/pkg/").unwrap();
    let files = crate::files_of_page(index, &url, PageFormat::JsonV1, &json).unwrap();
    let answers = [Answer::new(index, &name, Lookup::Files(files.into()))];
    let text = p.explain(&name, None, &answers, NOW);
    assert!(
        text.contains("cooldown: pkg-1.0-py3-none-any.whl withheld until"),
        "{text}"
    );
    assert!(
        text.contains("deny: versions matching 'pkg==2.0' are withheld"),
        "{text}"
    );
    let only = p.explain(&name, Some("2.0"), &answers, NOW);
    assert!(!only.contains("pkg-1.0-py3"), "{only}");
    assert_eq!(p.explain_questions(&name, &[]).len(), 1);
    // A private name's public page is never asked for.
    assert!(p
        .explain_questions(&Name::new("corp-thing"), &[])
        .is_empty());
}

#[test]
fn private_indexes_are_exempt() {
    let corp =
        crate::Index::new("corp", "https://corp.example/simple/", Role::Private, &[]).unwrap();
    let r = standard(Mode::Enforce);
    let judge = r.judge(&corp, &Name::new("pkg"), NOW);
    let t = upload(1);
    let facts = FileFacts {
        filename: "pkg-2.0.tar.gz",
        upload_time: Some(&t),
        ..FileFacts::default()
    };
    assert_eq!(judge.file(&facts), None);
    assert!(r.denied(&corp, &Name::new("evilpkg")).is_none());
}

#[test]
fn the_fingerprint_follows_the_rules() {
    let print = |r: Rules| r.files.fingerprint().to_owned();
    let a = print(standard(Mode::Enforce));
    let b = print(standard(Mode::Audit));
    let c = print(rules(
        serde_json::json!({"cooldown": {"min_age": "8d"}}),
        Mode::Enforce,
    ));
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_eq!(a, print(standard(Mode::Enforce)));
}

#[test]
fn a_direct_download_classifies_with_all_its_readings() {
    let p = policy(standard(Mode::Enforce));
    let t = p
        .classify("files.pythonhosted.org", "/p/pkg-2.0.tar.gz")
        .unwrap();
    assert!(matches!(t, Target::File { .. }));
}

#[test]
fn a_private_download_asks_its_own_index_for_the_digest_the_cache_keys_it_by() {
    let corp = crate::Index::new(
        "corp",
        "https://corp.example/simple/",
        Role::Private,
        &["files.corp.example".to_owned()],
    )
    .unwrap();
    let p = Policy::new(vec![crate::page::pypi(), corp], standard(Mode::Enforce)).unwrap();
    let t = p
        .classify("files.corp.example", "/f/acme-2.0-py3-none-any.whl")
        .unwrap();
    let questions = p.digest_questions(&t);
    assert!(!questions.is_empty());
    assert!(questions
        .iter()
        .all(|q| q.ask == Ask::Files && q.index.name() == "corp"));
    let digest = "a".repeat(64);
    let listing: Arc<[FileRecord]> = vec![FileRecord {
        filename: "acme-2.0-py3-none-any.whl".to_owned(),
        sha256: Some(digest.clone()),
        ..FileRecord::default()
    }]
    .into();
    let answers: Vec<Answer<'_>> = questions
        .iter()
        .map(|q| Answer::new(q.index, &q.name, Lookup::Files(Arc::clone(&listing))))
        .collect();
    assert_eq!(p.advertised_sha256(&t, &answers), Some(digest));
    // Not for its .metadata, nor a public download (asked before the decision when needed).
    let meta = p
        .classify(
            "files.corp.example",
            "/f/acme-2.0-py3-none-any.whl.metadata",
        )
        .unwrap();
    assert!(p.digest_questions(&meta).is_empty());
    let public = p
        .classify("files.pythonhosted.org", "/p/acme-2.0-py3-none-any.whl")
        .unwrap();
    assert!(p.digest_questions(&public).is_empty());
}

#[test]
fn a_private_name_is_never_looked_up_on_a_public_index() {
    let corp =
        crate::Index::new("corp", "https://corp.example/simple/", Role::Private, &[]).unwrap();
    let p = Policy::new(vec![crate::page::pypi(), corp], standard(Mode::Enforce)).unwrap();
    let t = p
        .classify("files.pythonhosted.org", "/p/acme-2.0-py3-none-any.whl")
        .unwrap();
    // First round: the private index only.
    let Check::Lookup(first) = p.check(&t, NOW) else {
        panic!("no questions")
    };
    assert!(first
        .iter()
        .all(|q| q.ask == Ask::Private && q.index.role() == Role::Private));
    let corp = first[0].index;
    let private = [Answer::new(
        corp,
        &Name::new("acme"),
        Lookup::Found { tracks: vec![] },
    )];
    assert!(
        matches!(p.next(&t, &private, NOW), Check::Done(Verdict::Block(b)) if b.rule == Rule::PrivateIndex)
    );
    // Not private: then, and only then, the public index's page of it.
    let public = [Answer::new(corp, &Name::new("acme"), Lookup::NotFound)];
    let Check::Lookup(second) = p.next(&t, &public, NOW) else {
        panic!("no second round")
    };
    assert!(second
        .iter()
        .all(|q| q.ask == Ask::Files && q.index.role() == Role::Public));
    let mut all = public.to_vec();
    all.extend(
        second
            .iter()
            .map(|q| Answer::new(q.index, &q.name, Lookup::NotFound)),
    );
    assert!(matches!(p.next(&t, &all, NOW), Check::Done(_)));
    // explain: the same order.
    assert!(p.explain_questions(&Name::new("acme"), &private).is_empty());
    assert_eq!(p.explain_questions(&Name::new("acme"), &public).len(), 1);
}

#[test]
fn config_check_prints_toml_strings() {
    assert_eq!(
        toml_list(["a", "b\"c\\d", "e\u{7}"]),
        r#"["a", "b\"c\\d", "e\u0007"]"#
    );
}

#[test]
fn a_quarantined_projects_file_is_refused_when_its_page_is_looked_up() {
    let p = policy(standard(Mode::Enforce));
    let index = &p.indexes()[0];
    let url = Url::parse("https://pypi.org/simple/other/").unwrap();
    let json = br#"{"meta":{"api-version":"1.1","project-status":{"status":"quarantined"}},
        "name":"other","files":[{"filename":"other-1.0.tar.gz",
        "url":"https://files.pythonhosted.org/p/other-1.0.tar.gz","hashes":{},
        "upload-time":"2020-01-01T00:00:00Z"}]}"#;
    let files = crate::files_of_page(index, &url, PageFormat::JsonV1, json).unwrap();
    assert!(files[0].quarantined);
    let html = br#"<html><head><meta name="pypi:project-status" content="quarantined"></head>
        <a href="https://files.pythonhosted.org/p/other-1.0.tar.gz">x</a>"#;
    let from_html = crate::files_of_page(index, &url, PageFormat::Html, html).unwrap();
    assert!(from_html[0].quarantined);
    let t = p
        .classify("files.pythonhosted.org", "/p/other-1.0.tar.gz")
        .unwrap();
    let answers = [Answer::new(
        index,
        &Name::new("other"),
        Lookup::Files(files.into()),
    )];
    let v = p.decide(&t, &answers, NOW);
    assert!(
        matches!(&v, Verdict::Block(b) if b.rule == Rule::Quarantine),
        "{v:?}"
    );
}

proptest! {
    /// PyPI's form of an upload time is read as `time`'s RFC 3339 parser reads it, and so is
    /// every near miss (a field out of range, lowercase, an offset, a long fraction): the fast
    /// reading either agrees or leaves it to `time`.
    #[test]
    fn upload_times_read_as_rfc3339_reads_them(
        year in prop_oneof![Just(0u32), Just(1970), 1990..2100u32, Just(9999)],
        month in 0..14u32,
        day in 0..33u32,
        hour in 0..25u32,
        minute in 0..61u32,
        second in 0..62u32,
        frac in prop_oneof![Just(String::new()), "\\.[0-9]{1,12}", Just(".".to_owned())],
        end in prop_oneof![Just("Z"), Just("z"), Just("+00:00"), Just("-05:30"), Just("")],
        t in prop_oneof![Just('T'), Just('t'), Just(' ')],
    ) {
        let s = format!("{year:04}-{month:02}-{day:02}{t}{hour:02}:{minute:02}:{second:02}{frac}{end}");
        let general = OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).ok();
        prop_assert_eq!(upload_time(&s), general, "{}", s);
        if let Some(fast) = utc(&s) {
            prop_assert_eq!(Some(fast), general, "{}", s);
        }
    }
}

#[test]
fn pypis_upload_times_take_the_fast_reading() {
    let t = utc("2024-01-01T00:00:00.123456Z").unwrap();
    assert_eq!(t, datetime!(2024-01-01 00:00:00.123456 UTC));
    assert_eq!(
        utc("2024-02-29T23:59:59Z"),
        Some(datetime!(2024-02-29 23:59:59 UTC))
    );
    assert_eq!(utc("2023-02-29T00:00:00Z"), None);
}

#[test]
fn the_name_rules_read_their_keys_of_policy() {
    let mut t = Json(
        serde_json::json!({
            "private": ["Acme_*", "corp.tools"],
            "allow_public": ["acme-sdk"],
            "on_private_index_error": "allow",
            "mode": "audit",
        }),
        Vec::new(),
    );
    let rules = read_all(&mut t);
    assert!(t.1.is_empty(), "{:?}", t.1);
    let private: Vec<&str> = rules.private.iter().map(NamePattern::as_str).collect();
    assert_eq!(private, ["acme-*", "corp-tools"]);
    assert_eq!(rules.allow_public[0].as_str(), "acme-sdk");
    assert_eq!(rules.on_private_index_error, OnPrivateIndexError::Allow);
    assert_eq!(rules.mode, Mode::Audit);
    assert_eq!(
        rules.print_keys(),
        "private = [\"acme-*\", \"corp-tools\"]\nallow_public = [\"acme-sdk\"]\non_private_index_error = \"allow\"\nmode = \"audit\"\n"
    );

    let mut bad = Json(
        serde_json::json!({
            "private": ["ok", "not a name"],
            "allow_public": "acme-sdk",
            "on_private_index_error": "sometimes",
        }),
        Vec::new(),
    );
    let rules = read_all(&mut bad);
    assert!(rules.private.is_empty() && rules.allow_public.is_empty());
    assert_eq!(bad.1.len(), 3, "{:?}", bad.1);
    assert!(
        bad.1[0].starts_with("private: invalid name pattern \"not a name\""),
        "{:?}",
        bad.1
    );
    assert!(
        bad.1[1].contains("expected a list of name patterns"),
        "{:?}",
        bad.1
    );
    assert!(
        bad.1[2].contains("expected `block` or `allow`"),
        "{:?}",
        bad.1
    );
}

#[test]
fn advisories_fail_closed_until_a_snapshot_is_loaded_then_refuse_what_it_lists() {
    let p = policy(rules(
        serde_json::json!({"advisories": {"source": "/var/lib/osv", "max_age": "48h"}}),
        Mode::Enforce,
    ));
    let page = p.classify("pypi.org", "/simple/six/").unwrap();
    let Check::Done(Verdict::Block(b)) = p.check(&page, NOW) else {
        panic!("a page before any snapshot must be refused");
    };
    assert_eq!((b.status, b.rule), (503, Rule::Advisory));
    assert!(
        b.message
            .contains("no advisory snapshot has been loaded yet"),
        "{}",
        b.message
    );
    // Private indexes' and root listings are not the feed's business.
    let root = p.classify("pypi.org", "/simple/").unwrap();
    assert!(matches!(p.check(&root, NOW), Check::Done(Verdict::Allow)));

    let feed = p.rules().files.feed().unwrap();
    let mut b = feed.builder();
    b.add(
        serde_json::json!({
            "id": "MAL-2026-20", "modified": "2026-11-30T00:00:00Z", "summary": "Malicious code in evil (PyPI)",
            "affected": [{"package": {"ecosystem": "PyPI", "name": "evil"},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]},
                         {"package": {"ecosystem": "PyPI", "name": "six"}, "versions": ["9.0"]}],
        })
        .to_string()
        .as_bytes(),
    );
    feed.install(b.finish(), NOW);
    assert!(matches!(p.check(&page, NOW), Check::Done(Verdict::Allow)));
    let evil = p.classify("pypi.org", "/simple/evil/").unwrap();
    let Check::Done(Verdict::Block(b)) = p.check(&evil, NOW) else {
        panic!("a whole-package advisory refuses the page");
    };
    assert_eq!(b.status, 404);
    assert!(
        b.message
            .contains("MAL-2026-20: Malicious code in evil (PyPI)"),
        "{}",
        b.message
    );
    let download = p
        .classify("files.pythonhosted.org", "/p/six-9.0.tar.gz")
        .unwrap();
    let mut check = p.check(&download, NOW);
    let mut answers = Vec::new();
    // The download's page is looked up for its hash: answer that the index lists nothing.
    while let Check::Lookup(questions) = check {
        for q in questions {
            answers.push(Answer::new(
                q.index,
                &q.name,
                Lookup::Files(Arc::from(Vec::new())),
            ));
        }
        check = p.next(&download, &answers, NOW);
    }
    let Check::Done(Verdict::Block(b)) = check else {
        panic!("a listed version's download is refused");
    };
    assert_eq!(b.status, 403);
    assert!(
        b.message
            .starts_with("pipgate: six 9.0 is known malicious (MAL-2026-20"),
        "{}",
        b.message
    );
    // Stale again two days later.
    let later = NOW + time::Duration::hours(49);
    assert!(matches!(p.check(&page, later), Check::Done(Verdict::Block(b)) if b.status == 503));
}

#[test]
fn downloads_must_have_the_sha256_their_page_advertised() {
    // On without its table.
    let p = policy(rules(serde_json::json!({}), Mode::Enforce));
    let index = &p.indexes()[0];
    assert!(p.rules().verifies_digests(index) && p.rules().needs(index).sha256);
    let json = json_page("other", &[(0, true, 1, 1, false)]);
    let url = Url::parse("https://pypi.org/simple/other/").unwrap();
    let records: Arc<[FileRecord]> = crate::files_of_page(index, &url, PageFormat::JsonV1, &json)
        .unwrap()
        .into();
    let advertised = records[0].sha256.clone().unwrap();
    let path = format!("/packages/ab/{}", records[0].filename);
    let t = p.classify("files.pythonhosted.org", &path).unwrap();
    let Check::Lookup(questions) = p.check(&t, NOW) else {
        panic!("a download looks its page up for the hash");
    };
    let answers: Vec<Answer<'_>> = questions
        .iter()
        .map(|q| Answer::new(q.index, &q.name, Lookup::Files(Arc::clone(&records))))
        .collect();
    assert_eq!(p.decide(&t, &answers, NOW), Verdict::Allow);
    assert_eq!(
        p.advertised_sha256(&t, &answers).as_deref(),
        Some(&advertised[..])
    );
    let rules = p.rules();
    assert!(rules
        .digest_denied(index, &advertised, Some(&advertised))
        .is_none());
    let other = "0".repeat(64);
    let d = rules
        .digest_denied(index, &other, Some(&advertised))
        .unwrap();
    assert_eq!((d.rule, d.mode), (Rule::HashMismatch, Mode::Enforce));
    assert!(
        d.reason.contains(&advertised) && d.reason.contains(&other),
        "{}",
        d.reason
    );
    // Not listed, or the lookup failed: nothing advertised (served unless on_unknown_hash).
    let t9 = p
        .classify("files.pythonhosted.org", "/packages/ab/other-9.0.tar.gz")
        .unwrap();
    assert_eq!(p.advertised_sha256(&t9, &answers), None);
    assert_eq!(p.decide(&t9, &answers, NOW), Verdict::Allow);
    // A .metadata file's bytes are not the distribution's.
    let meta = p
        .classify("files.pythonhosted.org", &format!("{path}.metadata"))
        .unwrap();
    assert_eq!(p.advertised_sha256(&meta, &answers), None);
    // Off: no lookup for the hash, nothing compared.
    let off = policy(rules_off());
    assert!(!off.rules().verifies_digests(&off.indexes()[0]));
    assert!(!off.rules().needs(&off.indexes()[0]).sha256);
}

fn rules_off() -> Rules {
    rules(
        serde_json::json!({"integrity": {"verify_hashes": false}}),
        Mode::Enforce,
    )
}

#[test]
fn unknown_hashes_block_when_asked_on_every_door() {
    let p = policy(rules(
        serde_json::json!({"integrity": {"on_unknown_hash": "block"}}),
        Mode::Enforce,
    ));
    let index = &p.indexes()[0];
    let judge = p.rules().judge(index, &Name::new("other"), NOW);
    let unknown = FileFacts {
        filename: "other-1.0.tar.gz",
        ..FileFacts::default()
    };
    let w = judge.file(&unknown).unwrap();
    assert_eq!(w.rule, Rule::HashUnknown);
    let known = FileFacts {
        sha256: Some("ab"),
        ..unknown
    };
    assert!(judge.file(&known).is_none());
    // A download whose page lookup failed is refused, naming the rule.
    let t = p
        .classify("files.pythonhosted.org", "/packages/ab/other-1.0.tar.gz")
        .unwrap();
    let answers = [Answer::new(
        index,
        &Name::new("other"),
        Lookup::Failed("timed out".into()),
    )];
    let v = p.decide(&t, &answers, NOW);
    assert!(
        matches!(&v, Verdict::Block(b) if b.status == 403 && b.rule == Rule::HashUnknown),
        "{v:?}"
    );
    let mut bad = Json(
        serde_json::json!({"integrity": {"on_unknown_hash": "drop"}}),
        Vec::new(),
    );
    read(&mut bad, Mode::Enforce);
    assert!(
        bad.1[0].starts_with("integrity: unknown variant `drop`"),
        "{:?}",
        bad.1
    );
}
