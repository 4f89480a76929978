//! Decisions: patterns, lookups, the decision order, fail-closed, explain().

use super::*;
use crate::{NamePattern, OnPrivateIndexError, Rules, Target};

const T0: time::OffsetDateTime = time::OffsetDateTime::UNIX_EPOCH;

fn pats(p: &[&str]) -> Vec<NamePattern> {
    p.iter().map(|s| NamePattern::parse(s).unwrap()).collect()
}

fn policy(with_private_index: bool, on_error: OnPrivateIndexError) -> Policy {
    let mut indexes = vec![Index::new(
        "pypi",
        "https://pypi.org/simple/",
        Role::Public,
        &["files.pythonhosted.org".to_owned()],
    )
    .unwrap()];
    if with_private_index {
        indexes.push(
            Index::new(
                "corp",
                "https://pypi.corp.example/simple/",
                Role::Private,
                &[],
            )
            .unwrap(),
        );
    }
    Policy::new(
        indexes,
        Rules {
            private: pats(&["acme-*", "internal-tools"]),
            allow_public: pats(&["acme-sdk"]),
            on_private_index_error: on_error,
            ..Rules::default()
        },
    )
    .unwrap()
}

/// `lookup` from `index`, for every name `t` may be about.
fn answers<'p>(t: &Target<'_>, index: &'p Index, lookup: Lookup) -> Vec<Answer<'p>> {
    t.names()
        .iter()
        .map(|n| Answer::new(index, n, lookup.clone()))
        .collect()
}

fn blocked(v: &Verdict) -> Option<(u16, Rule)> {
    match v {
        Verdict::Allow | Verdict::Audit(_) => None,
        Verdict::Block(b) => {
            assert!(!b.message.contains('\n'), "{}", b.message);
            assert!(b.message.starts_with("pipgate: "), "{}", b.message);
            Some((b.status, b.rule))
        }
    }
}

#[test]
fn patterns_alone_without_private_indexes() {
    let p = policy(false, OnPrivateIndexError::Block);
    let t = p.classify("pypi.org", "/simple/Acme_Lib/").unwrap();
    let Check::Done(v) = p.check(&t, T0) else {
        panic!("needs no lookup")
    };
    assert_eq!(blocked(&v), Some((404, Rule::PrivatePattern)));
    let Verdict::Block(b) = v else { unreachable!() };
    assert_eq!(
        b.message,
        "pipgate: 'acme-lib' is private (policy.private pattern 'acme-*'); public index 'pypi' is not consulted"
    );
    for (host, path, want) in [
        ("pypi.org", "/simple/requests/", None),
        ("pypi.org", "/simple/acme-sdk/", None),
        (
            "pypi.org",
            "/simple/internal.tools/",
            Some((404, Rule::PrivatePattern)),
        ),
        (
            "pypi.org",
            "/pypi/acme-lib/json",
            Some((404, Rule::PrivatePattern)),
        ),
        (
            "pypi.org",
            "/pypi/acme-lib/99.0/json",
            Some((404, Rule::PrivatePattern)),
        ),
        (
            "files.pythonhosted.org",
            "/p/acme_lib-99.0-py3-none-any.whl",
            Some((403, Rule::PrivatePattern)),
        ),
        (
            "files.pythonhosted.org",
            "/p/acme_lib-99.0-py3-none-any.whl.metadata",
            Some((403, Rule::PrivatePattern)),
        ),
        (
            "files.pythonhosted.org",
            "/p/acme-lib-99.0.tar.gz",
            Some((403, Rule::PrivatePattern)),
        ),
        (
            "files.pythonhosted.org",
            "/p/acme_lib-99.0-py3.8.egg",
            Some((403, Rule::PrivatePattern)),
        ),
        ("files.pythonhosted.org", "/p/requests-2.0.tar.gz", None),
        (
            "files.pythonhosted.org",
            "/p/setup.exe",
            Some((403, Rule::UnparsableFilename)),
        ),
        ("pypi.org", "/simple/", None),
        ("pypi.org", "/admin/", Some((404, Rule::UnknownPath))),
    ] {
        let t = p.classify(host, path).unwrap();
        let Check::Done(v) = p.check(&t, T0) else {
            panic!("{path}")
        };
        assert_eq!(blocked(&v), want, "{host}{path}");
    }
}

#[test]
fn check_asks_private_indexes_only_for_public_names() {
    let p = policy(true, OnPrivateIndexError::Block);
    let t = p.classify("pypi.org", "/simple/requests/").unwrap();
    match p.check(&t, T0) {
        Check::Lookup(v) => assert_eq!(
            v.iter()
                .map(|q| (q.index.name(), q.name.as_str()))
                .collect::<Vec<_>>(),
            [("corp", "requests")]
        ),
        c => panic!("{c:?}"),
    }
    for (host, path) in [
        ("pypi.corp.example", "/simple/acme-lib/"),
        ("pypi.org", "/simple/"),
        ("files.pythonhosted.org", "/p/setup.exe"),
    ] {
        let t = p.classify(host, path).unwrap();
        assert!(matches!(p.check(&t, T0), Check::Done(_)), "{host}{path}");
    }
    let t = p.classify("pypi.org", "/nope").unwrap();
    assert!(matches!(
        p.check(&t, T0),
        Check::Done(Verdict::Block(Block {
            status: 404,
            rule: Rule::UnknownPath,
            ..
        }))
    ));
}

#[test]
fn decision_order() {
    let p = policy(true, OnPrivateIndexError::Block);
    let corp = &p.indexes()[1];
    let pypi = &p.indexes()[0];
    let found = |tracks: &[&str]| Lookup::Found {
        tracks: tracks.iter().map(|t| Url::parse(t).unwrap()).collect(),
    };
    let decide = |path: &str, l: Lookup| {
        let t = p.classify("pypi.org", path).unwrap();
        blocked(&p.decide(&t, &answers(&t, corp, l), T0))
    };
    // 1. allow_public wins over everything, even a private-index hit.
    assert_eq!(decide("/simple/acme-sdk/", found(&[])), None);
    // 2. PEP 708 tracks pointing at this public project allow it, even if a pattern matches.
    assert_eq!(
        decide(
            "/simple/acme-lib/",
            found(&["https://pypi.org/simple/Acme.Lib/"])
        ),
        None
    );
    assert_eq!(
        decide(
            "/simple/acme-lib/",
            found(&["https://pypi.org/simple/acme-lib"])
        ),
        None
    );
    // Tracks elsewhere do not.
    assert_eq!(
        decide(
            "/simple/acme-lib/",
            found(&["https://pypi.org/simple/other/"])
        ),
        Some((404, Rule::PrivatePattern))
    );
    assert_eq!(
        decide(
            "/simple/acme-lib/",
            found(&["https://evil.example/simple/acme-lib/"])
        ),
        Some((404, Rule::PrivatePattern))
    );
    // 3. pattern.
    assert_eq!(
        decide("/simple/acme-lib/", Lookup::NotFound),
        Some((404, Rule::PrivatePattern))
    );
    // 4. private index has it.
    assert_eq!(
        decide("/simple/corp-thing/", found(&[])),
        Some((404, Rule::PrivateIndex))
    );
    // 5. private index failed: closed by default, 503 naming the private index.
    let t = p.classify("pypi.org", "/simple/corp-thing/").unwrap();
    match p.decide(&t, &answers(&t, corp, Lookup::Failed("timeout".into())), T0) {
        Verdict::Block(b) => {
            assert_eq!((b.status, b.rule), (503, Rule::PrivateIndexUnavailable));
            assert!(
                b.message.contains("'corp'") && b.message.contains("'corp-thing'"),
                "{}",
                b.message
            );
        }
        v => panic!("{v:?}"),
    }
    // 6. otherwise allowed.
    assert_eq!(decide("/simple/requests/", Lookup::NotFound), None);
    // A lookup that claims to come from a public index is ignored.
    let t = p.classify("pypi.org", "/simple/requests/").unwrap();
    assert_eq!(
        blocked(&p.decide(&t, &answers(&t, pypi, found(&[])), T0)),
        None
    );
    // Files get 403 for the same reasons.
    let t = p
        .classify(
            "files.pythonhosted.org",
            "/x/corp_thing-1.0-py3-none-any.whl",
        )
        .unwrap();
    assert_eq!(
        blocked(&p.decide(&t, &answers(&t, corp, found(&[])), T0)),
        Some((403, Rule::PrivateIndex))
    );
}

#[test]
fn failing_open_when_configured() {
    let p = policy(true, OnPrivateIndexError::Allow);
    let corp = &p.indexes()[1];
    let t = p.classify("pypi.org", "/simple/corp-thing/").unwrap();
    assert_eq!(
        p.decide(&t, &answers(&t, corp, Lookup::Failed("503".into())), T0),
        Verdict::Allow
    );
    // Patterns still apply when the index is down.
    let t = p.classify("pypi.org", "/simple/acme-x/").unwrap();
    assert_eq!(
        blocked(&p.decide(&t, &answers(&t, corp, Lookup::Failed("503".into())), T0)),
        Some((404, Rule::PrivatePattern))
    );
}

#[test]
fn messages_stay_on_one_line() {
    let p = policy(false, OnPrivateIndexError::Block);
    let idx = &p.indexes()[0];
    let t = Target::File {
        index: idx,
        filename: "evil\nname\r.exe".into(),
        projects: Vec::new(),
        metadata: false,
    };
    let Verdict::Block(b) = p.decide(&t, &[], T0) else {
        panic!()
    };
    assert!(!b.message.contains(['\n', '\r']));
}

#[test]
fn rule_labels_are_stable() {
    let all = [
        (Rule::BadPath, "bad-path"),
        (Rule::UnknownPath, "unknown-path"),
        (Rule::PrivatePattern, "private-pattern"),
        (Rule::PrivateIndex, "private-index"),
        (Rule::PrivateIndexUnavailable, "private-index-unavailable"),
        (Rule::UnparsableFilename, "unparsable-filename"),
    ];
    for (r, s) in all {
        assert_eq!(r.as_str(), s);
    }
}

#[test]
fn explain_names_rules_and_indexes() {
    let p = policy(true, OnPrivateIndexError::Block);
    let corp = &p.indexes()[1];
    let text = p.explain(
        &Name::new("Acme_Lib"),
        None,
        &[Answer::new(corp, &Name::new("Acme_Lib"), Lookup::NotFound)],
        T0,
    );
    assert!(text.contains("name: acme-lib"), "{text}");
    assert!(
        text.contains("private: yes, by policy.private pattern 'acme-*'"),
        "{text}"
    );
    assert!(
        text.contains(
            "pypi (public, https://pypi.org/simple/acme-lib/): blocked with 404 (private-pattern)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "corp (private, https://pypi.corp.example/simple/acme-lib/): does not have it"
        ),
        "{text}"
    );

    let text = p.explain(
        &Name::new("corp-thing"),
        None,
        &[Answer::new(
            corp,
            &Name::new("corp-thing"),
            Lookup::Found { tracks: vec![] },
        )],
        T0,
    );
    assert!(
        text.contains("private: yes, served by private index 'corp'"),
        "{text}"
    );
    assert!(text.contains("serves the project (private)"), "{text}");

    let text = p.explain(
        &Name::new("acme-sdk"),
        None,
        &[Answer::new(corp, &Name::new("acme-sdk"), Lookup::NotFound)],
        T0,
    );
    assert!(text.contains("allow_public: pattern 'acme-sdk'"), "{text}");
    assert!(
        text.contains("serves its public page, links filtered (allow_public 'acme-sdk')"),
        "{text}"
    );

    let tracks = vec![Url::parse("https://pypi.org/simple/acme-lib/").unwrap()];
    let text = p.explain(
        &Name::new("acme-lib"),
        None,
        &[Answer::new(
            corp,
            &Name::new("acme-lib"),
            Lookup::Found { tracks },
        )],
        T0,
    );
    assert!(
        text.contains("pypi:tracks on 'corp': https://pypi.org/simple/acme-lib/"),
        "{text}"
    );
    assert!(text.contains("PEP 708"), "{text}");

    let text = p.explain(
        &Name::new("requests"),
        None,
        &[Answer::new(
            corp,
            &Name::new("requests"),
            Lookup::Failed("timed out".into()),
        )],
        T0,
    );
    assert!(text.contains("private: no"), "{text}");
    assert!(text.contains("could not answer: timed out"), "{text}");
    assert!(
        text.contains("blocked with 503 (private-index-unavailable)"),
        "{text}"
    );
}

#[test]
fn a_file_is_private_when_any_reading_of_its_name_is() {
    let p = policy(true, OnPrivateIndexError::Block);
    let corp = &p.indexes()[1];
    // `corp-only` is private only by the private index's answer.
    let t = p
        .classify("files.pythonhosted.org", "/p/corp-only-50.0-1.tar.gz")
        .unwrap();
    let Check::Lookup(questions) = p.check(&t, T0) else {
        panic!("a public file with a private index needs lookups")
    };
    let asked: Vec<&str> = questions.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(asked, ["corp-only-50-0", "corp", "corp-only"]);
    let say = |name: &str| {
        questions
            .iter()
            .map(|q| {
                let l = if q.name.as_str() == name {
                    Lookup::Found { tracks: vec![] }
                } else {
                    Lookup::NotFound
                };
                Answer::new(q.index, &q.name, l)
            })
            .collect::<Vec<_>>()
    };
    let Verdict::Block(b) = p.decide(&t, &say("corp-only"), T0) else {
        panic!("the pip reading is private")
    };
    assert_eq!((b.status, b.rule), (403, Rule::PrivateIndex));
    assert!(b.message.contains("of 'corp-only'"), "{}", b.message);
    assert_eq!(p.decide(&t, &say("nobody"), T0), Verdict::Allow);
    // A definite private reading wins over an index that could not answer about another.
    let mut mixed = say("corp-only");
    mixed[0].lookup = Lookup::Failed("timeout".into());
    assert_eq!(
        blocked(&p.decide(&t, &mixed, T0)),
        Some((403, Rule::PrivateIndex))
    );
    mixed[2].lookup = Lookup::NotFound;
    assert_eq!(
        blocked(&p.decide(&t, &mixed, T0)),
        Some((503, Rule::PrivateIndexUnavailable))
    );
    // An answer about one name says nothing about another.
    let other = vec![Answer::new(
        corp,
        &Name::new("other"),
        Lookup::Found { tracks: vec![] },
    )];
    assert_eq!(p.decide(&t, &other, T0), Verdict::Allow);
}

/// Generated distribution file names of a project `policy.private` names: whatever their
/// version and format, every one of them is refused on the public file host.
mod generated {
    use proptest::prelude::*;

    use super::*;

    fn version() -> impl Strategy<Value = String> {
        (
            "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}",
            prop::option::of("-(1|2|rc1|post2|dev3)"),
        )
            .prop_map(|(v, s)| v + s.as_deref().unwrap_or(""))
    }

    proptest! {
        #[test]
        fn no_file_of_a_private_name_is_served(
            spelling in prop::sample::select(vec!["internal-tools", "internal_tools", "Internal.Tools", "acme-lib", "ACME_x"]),
            version in version(),
            format in 0..4usize,
            metadata in any::<bool>(),
        ) {
            let p = policy(false, OnPrivateIndexError::Block);
            let file = match format {
                0 => format!("{}-{version}-py3-none-any.whl", spelling.replace(['-', '.'], "_")),
                1 => format!("{spelling}-{version}.tar.gz"),
                2 => format!("{spelling}-{version}.zip"),
                _ => format!("{spelling}-{version}-py3.11.egg"),
            };
            let file = if metadata { format!("{file}.metadata") } else { file };
            let t = p.classify("files.pythonhosted.org", &format!("/packages/x/{file}")).unwrap();
            let Check::Done(v) = p.check(&t, T0) else {
                panic!("patterns need no lookup")
            };
            prop_assert_eq!(blocked(&v), Some((403, Rule::PrivatePattern)), "{}", file);
        }
    }
}
