//! The advisories rule: OSV records in, what they block out.

use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::rules::{Configured, FileFacts};

fn rule(table: serde_json::Value) -> Advisories {
    let config: Config = serde_json::from_value(table).unwrap();
    Advisories::build(config, Mode::Enforce).unwrap()
}

fn default_rule() -> Advisories {
    rule(json!({"source": "/var/lib/osv/PyPI"}))
}

fn record(id: &str, affected: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schema_version": "1.7.4",
        "id": id,
        "modified": "2026-11-30T10:00:00Z",
        "published": "2026-11-30T09:00:00Z",
        "summary": format!("Malicious code in {id}"),
        "affected": affected,
    }))
    .unwrap()
}

fn pypi(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut a = json!({"package": {"ecosystem": "PyPI", "name": name}});
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);
const HASH: &str = "c8784cf0aa8fa13a43614fbd6d51902feeecafdc06fc4db2695fd2572db66db8";

fn loaded(r: &Advisories, records: &[Vec<u8>]) {
    let mut b = r.feed.builder();
    for rec in records {
        b.add(rec);
    }
    r.feed.install(b.finish(), NOW);
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn file<'a>(name: &'a str, sha: Option<&'a str>) -> FileFacts<'a> {
    FileFacts {
        filename: name,
        sha256: sha,
        ..FileFacts::default()
    }
}

fn withheld(r: &Advisories, project: &str, version: &str) -> Option<String> {
    let f = format!("{project}-{version}.tar.gz");
    r.withholds(&Name::new(project), &file(&f, None), Some(&v(version)), NOW)
}

#[test]
fn versions_and_ranges_in_pep440_order() {
    let r = default_rule();
    loaded(
        &r,
        &[
            record(
                "MAL-2026-1",
                json!([pypi("Acme_Lib", json!({"versions": ["1.2", "1.3.0"]}))]),
            ),
            record(
                "MAL-2026-2",
                json!([pypi(
                    "ranged",
                    json!({"ranges": [{"type": "ECOSYSTEM", "events": [
                        {"introduced": "1.0"}, {"fixed": "1.5"}, {"introduced": "2.0rc1"}, {"last_affected": "2.1"}
                    ]}]})
                )]),
            ),
        ],
    );
    let why = withheld(&r, "acme-lib", "1.2").unwrap();
    assert_eq!(
        why,
        "acme-lib 1.2 is known malicious (MAL-2026-1: Malicious code in MAL-2026-1)"
    );
    // PEP 440 equality: 1.3 is 1.3.0.
    assert!(withheld(&r, "acme-lib", "1.3").is_some());
    assert!(withheld(&r, "acme-lib", "1.2.1").is_none());
    for (version, blocked) in [
        ("0.9", false),
        ("1.0", true),
        ("1.4.9", true),
        ("1.5", false),
        ("1.9", false),
        ("2.0b1", false),
        ("2.0rc1", true),
        ("2.0", true),
        ("2.1", true),
        ("2.1.post1", false),
        ("3.0", false),
    ] {
        assert_eq!(
            withheld(&r, "ranged", version).is_some(),
            blocked,
            "ranged {version}"
        );
    }
    assert!(r.denies(&Name::new("ranged")).is_none());
}

#[test]
fn an_all_versions_record_refuses_the_project() {
    let r = default_rule();
    loaded(
        &r,
        &[record(
            "MAL-2026-3",
            json!([pypi(
                "evil",
                json!({"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]})
            )]),
        )],
    );
    let why = r.denies(&Name::new("evil")).unwrap();
    assert!(
        why.contains("MAL-2026-3") && why.contains("every version"),
        "{why}"
    );
    assert!(withheld(&r, "evil", "0.0.1").is_some());
    assert!(r.denies(&Name::new("good")).is_none());
}

#[test]
fn withdrawn_ignored_and_not_included_records_block_nothing() {
    let r = rule(json!({"source": "/x", "include": ["MAL-", "GHSA-"], "ignore": ["MAL-2026-5"]}));
    let mut withdrawn: serde_json::Value = serde_json::from_slice(&record(
        "MAL-2026-4",
        json!([pypi("gone", json!({"versions": ["1.0"]}))]),
    ))
    .unwrap();
    withdrawn["withdrawn"] = json!("2026-11-30T12:00:00Z");
    loaded(
        &r,
        &[
            serde_json::to_vec(&withdrawn).unwrap(),
            record(
                "MAL-2026-5",
                json!([pypi("waived", json!({"versions": ["1.0"]}))]),
            ),
            record(
                "PYSEC-2026-6",
                json!([pypi("vuln", json!({"versions": ["1.0"]}))]),
            ),
            record(
                "GHSA-xxxx-yyyy-zzzz",
                json!([pypi("ghsa", json!({"versions": ["1.0"]}))]),
            ),
            record(
                "MAL-2026-7",
                json!([{"package": {"ecosystem": "npm", "name": "npmpkg"}, "versions": ["1.0"]}]),
            ),
            b"{not json".to_vec(),
        ],
    );
    assert!(withheld(&r, "gone", "1.0").is_none());
    assert!(withheld(&r, "waived", "1.0").is_none());
    assert!(withheld(&r, "vuln", "1.0").is_none());
    assert!(withheld(&r, "npmpkg", "1.0").is_none());
    let ghsa = withheld(&r, "ghsa", "1.0").unwrap();
    assert!(
        ghsa.contains("is affected by a known advisory (GHSA-"),
        "{ghsa}"
    );
    let s = r.feed.snapshot().unwrap();
    assert_eq!((s.records, s.blocking, s.unreadable), (6, 1, 1));
}

#[test]
fn a_listed_file_hash_is_withheld_under_any_name_and_cut_as_bytes() {
    let r = default_rule();
    let mut rec: serde_json::Value = serde_json::from_slice(&record(
        "MAL-2026-8",
        json!([pypi("0requests", json!({"versions": ["0.0.1"], "database_specific": {"indicators": {
            "evidence_files": [{"path": "x/__init__.py", "sha256": "b2a6588476f40845a2df173d57d436dc47c0dfd044bcffdc936be1b509cffd3d"}],
            "package_integrity": [{"filename": "0requests-0.0.1-py3-none-any.whl", "hashes": {"sha256": HASH.to_uppercase(), "md5": "c9a0424470c5d49ed5173303f41b874e"}}]
        }}}))]),
    ))
    .unwrap();
    // A source report's digest is not a file's.
    rec["database_specific"] = json!({"malicious-packages-origins": [{"sha256": "482493bb0425cda1267f50c860740681a8c0e91958623ed8d949b9db65b2e4a9"}]});
    loaded(&r, &[serde_json::to_vec(&rec).unwrap()]);
    let other = Name::new("innocent");
    let f = file("innocent-9.9-py3-none-any.whl", Some(HASH));
    let why = r.withholds(&other, &f, Some(&v("9.9")), NOW).unwrap();
    assert!(
        why.starts_with("innocent-9.9-py3-none-any.whl is known malicious (MAL-2026-8"),
        "{why}"
    );
    assert!(r.denies_digest(HASH, None).unwrap().contains("MAL-2026-8"));
    for not_files in [
        "b2a6588476f40845a2df173d57d436dc47c0dfd044bcffdc936be1b509cffd3d",
        "482493bb0425cda1267f50c860740681a8c0e91958623ed8d949b9db65b2e4a9",
    ] {
        assert!(r.denies_digest(not_files, None).is_none());
    }
}

#[test]
fn stale_or_missing_snapshots_make_public_pages_unavailable_unless_allowed() {
    let r = rule(json!({"source": "https://osv.example/PyPI/all.zip", "max_age": "48h"}));
    let none = r.unavailable(NOW).unwrap();
    assert!(
        none.contains(
            "no advisory snapshot has been loaded yet from https://osv.example/PyPI/all.zip"
        ),
        "{none}"
    );
    let mut b = r.feed.builder();
    b.add(&record(
        "MAL-2026-9",
        json!([pypi("x", json!({"versions": ["1"]}))]),
    ));
    r.feed.install(b.finish(), NOW - time::Duration::hours(47));
    assert!(r.unavailable(NOW).is_none());
    let later = NOW + time::Duration::hours(2);
    let stale = r.unavailable(later).unwrap();
    assert!(
        stale.contains("is 2days 1h old, older than policy.advisories.max_age = 2days"),
        "{stale}"
    );
    // A 304 confirms the snapshot: fresh again.
    r.feed.confirm(later);
    assert!(r.unavailable(later).is_none());
    let allow = rule(json!({"source": "/x", "on_stale": "allow"}));
    assert!(allow.unavailable(NOW).is_none());
}

#[test]
fn a_reload_keeps_the_snapshot_of_the_same_feed_only() {
    let old = default_rule();
    loaded(
        &old,
        &[record(
            "MAL-2026-10",
            json!([pypi("x", json!({"versions": ["1"]}))]),
        )],
    );
    let same = default_rule();
    same.feed.adopt(&old.feed);
    assert!(withheld(&same, "x", "1").is_some());
    assert_eq!(same.feed.as_of(), Some(NOW));
    let other = rule(json!({"source": "/elsewhere"}));
    other.feed.adopt(&old.feed);
    assert!(other.feed.snapshot().is_none());
    // The blocks counted before a reload stay counted after it (a counter does not reset).
    assert!(withheld(&old, "x", "1").is_some());
    let after = rule(json!({"source": "/elsewhere", "include": ["PYSEC-", "MAL-"]}));
    after.feed.adopt(&old.feed);
    let counts: Vec<(&str, u64)> = after.feed.blocks().collect();
    assert_eq!(counts, [("PYSEC-", 0), ("MAL-", 1)]);
}

#[test]
fn bad_settings_name_their_key() {
    let bad = |t: serde_json::Value| {
        let config: Config = serde_json::from_value(t).unwrap();
        Advisories::build(config, Mode::Enforce).unwrap_err()
    };
    assert_eq!(
        bad(json!({"source": "http://osv.example/all.zip"})).0,
        "source"
    );
    assert_eq!(bad(json!({"source": ""})).0, "source");
    assert_eq!(bad(json!({"source": "/x", "refresh": "soon"})).0, "refresh");
    assert_eq!(bad(json!({"source": "/x", "max_age": "0s"})).0, "max_age");
    assert_eq!(bad(json!({"source": "/x", "include": [""]})).0, "include");
    assert!(serde_json::from_value::<Config>(json!({"source": "/x", "refesh": "1h"})).is_err());
}

#[test]
fn explain_lists_the_advisories_and_the_files_they_withhold() {
    let r = default_rule();
    loaded(
        &r,
        &[record(
            "MAL-2026-11",
            json!([pypi("acme", json!({"versions": ["1.2"]}))]),
        )],
    );
    let files = [
        FileRecord {
            filename: "acme-1.2.tar.gz".into(),
            ..FileRecord::default()
        },
        FileRecord {
            filename: "acme-1.1.tar.gz".into(),
            ..FileRecord::default()
        },
    ];
    let lines = r.explain(&Name::new("acme"), Some(&files), NOW).join("\n");
    assert!(
        lines.contains("snapshot of 1 records (1 blocking), as of 2026-12-01T12:00:00Z"),
        "{lines}"
    );
    assert!(
        lines.contains("MAL-2026-11: Malicious code in MAL-2026-11: versions 1.2"),
        "{lines}"
    );
    assert!(lines.contains("withholds acme-1.2.tar.gz"), "{lines}");
    assert!(!lines.contains("acme-1.1.tar.gz"), "{lines}");
}

#[test]
fn matches_are_counted_by_include_prefix_but_explain_counts_nothing() {
    let r = rule(json!({"source": "/x", "include": ["MAL-", "PYSEC-"]}));
    loaded(
        &r,
        &[
            record(
                "MAL-2026-12",
                json!([pypi("a", json!({"versions": ["1"]}))]),
            ),
            record(
                "PYSEC-2026-13",
                json!([pypi("b", json!({"versions": ["1"]}))]),
            ),
        ],
    );
    assert!(withheld(&r, "a", "1").is_some());
    assert!(withheld(&r, "a", "1").is_some());
    assert!(withheld(&r, "b", "1").is_some());
    assert!(withheld(&r, "b", "2").is_none());
    let _ = r.explain(&Name::new("a"), None, NOW);
    let counts: Vec<(&str, u64)> = r.feed.blocks().collect();
    assert_eq!(counts, [("MAL-", 2), ("PYSEC-", 1)]);
    assert!(r.versions_of(&Name::new("a")) && !r.versions_of(&Name::new("zzz")));
}

#[test]
fn listed_versions_match_exactly_the_pep440_equal_ones() {
    let all = [
        "1",
        "1.0",
        "1.0.0",
        "1.0.1",
        "1.1",
        "0.1",
        "0.10",
        "1.0a1",
        "1.0.0a1",
        "1.0.0rc1",
        "1.0.post1",
        "1.0.0.post1",
        "1.0.dev1",
        "1.0.0.dev0",
        "1!1.0",
        "1!1",
        "1.0+local",
        "1.0.0+local",
        "1.0+other",
        "2.0.0.0",
        "2",
        "10.0",
        "1.00",
        "01.0",
    ];
    for a in all {
        let r = default_rule();
        loaded(
            &r,
            &[record(
                "MAL-2026-30",
                json!([pypi("p", json!({"versions": [a]}))]),
            )],
        );
        for b in all {
            let equal = v(a) == v(b);
            assert_eq!(
                withheld(&r, "p", b).is_some(),
                equal,
                "listed {a}, file {b}"
            );
        }
    }
}

#[test]
fn several_advisories_about_one_name_all_hold() {
    let r = default_rule();
    loaded(
        &r,
        &[
            record(
                "MAL-2026-40",
                json!([pypi("twice", json!({"versions": ["1.0"]}))]),
            ),
            record(
                "MAL-2026-41",
                json!([pypi("twice", json!({"versions": ["2.0"]}))]),
            ),
            record(
                "MAL-2026-42",
                json!([pypi("Twice", json!({"versions": ["3.0"]}))]),
            ),
        ],
    );
    for (version, id) in [
        ("1.0", "MAL-2026-40"),
        ("2.0", "MAL-2026-41"),
        ("3.0", "MAL-2026-42"),
    ] {
        assert!(
            withheld(&r, "twice", version).unwrap().contains(id),
            "{version}"
        );
    }
    assert!(withheld(&r, "twice", "4.0").is_none());
    assert_eq!(
        r.feed.snapshot().unwrap().about(&Name::new("twice")).len(),
        3
    );
}
