use proptest::prelude::*;

use super::*;

fn readings_of(f: &str) -> Vec<String> {
    projects_of(f).0.iter().map(|n| n.to_string()).collect()
}

fn likeliest(f: &str) -> Option<String> {
    readings_of(f).into_iter().next()
}

#[test]
fn wheels_sdists_eggs() {
    assert_eq!(readings_of("acme_lib-1.0-py3-none-any.whl"), ["acme-lib"]);
    assert_eq!(
        readings_of("Acme.Lib-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl"),
        ["acme-lib"]
    );
    assert_eq!(
        likeliest("acme-lib-1.0.tar.gz").as_deref(),
        Some("acme-lib")
    );
    assert_eq!(
        likeliest("acme_lib-1.0.tar.gz").as_deref(),
        Some("acme-lib")
    );
    assert_eq!(likeliest("acme-lib-1.0.ZIP").as_deref(), Some("acme-lib"));
    assert_eq!(
        likeliest("acme-lib-2.0rc1.tar.bz2").as_deref(),
        Some("acme-lib")
    );
    assert_eq!(likeliest("py-3to2-1.0.tar.gz").as_deref(), Some("py-3to2"));
    assert_eq!(
        likeliest("acme_lib-1.0-py2.7.egg").as_deref(),
        Some("acme-lib")
    );
    assert_eq!(likeliest("acme-lib-1.0.tgz").as_deref(), Some("acme-lib"));
}

#[test]
fn a_post_release_sdist_is_read_as_every_project_its_name_allows() {
    // pip reads this as corp-only 50.0.post1; the last-dash-before-a-digit split says
    // corp-only-50.0 version 1. Both readings count, and so does `corp`.
    for ext in [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".egg"] {
        let f = format!("corp-only-50.0-1{ext}");
        assert_eq!(
            readings_of(&f),
            ["corp-only-50-0", "corp", "corp-only"],
            "{f}"
        );
        let m = format!("{f}.metadata");
        assert_eq!(readings_of(&m), readings_of(&f), "{m}");
        assert!(projects_of(&m).1);
    }
    // pip 9 and older also split where an underscore stands (they read `_` as `-`).
    assert_eq!(
        readings_of("corp_only_50.0-1.tar.gz"),
        ["corp-only-50-0", "corp", "corp-only"]
    );
}

#[test]
fn metadata_suffix() {
    assert!(projects_of("acme_lib-1.0-py3-none-any.whl.metadata").1);
    assert_eq!(
        readings_of("acme_lib-1.0-py3-none-any.whl.metadata"),
        ["acme-lib"]
    );
    assert!(!projects_of("acme_lib-1.0-py3-none-any.whl").1);
}

#[test]
fn unparsable() {
    for f in [
        "",
        "acme.whl",
        "acme-1.0.whl",
        "a-b-c-d-e-f-g.whl",
        "setup.exe",
        "acme.tar.gz",
        "-1.0.tar.gz",
        "x.metadata",
        "a b-1.0.tar.gz",
        // pip 9 searched for the name anywhere once its start was no name character.
        "+corp_only-1.0.tar.gz",
        "a+corp_only-1.0.tar.gz",
        "acme-foo+corp_only-1.0.tar.gz",
        "caf\u{e9}-1.0.tar.gz",
    ] {
        assert_eq!(readings_of(f), Vec::<String>::new(), "{f}");
    }
}

#[test]
fn separators_that_end_no_name_are_skipped() {
    assert_eq!(readings_of("pkg--1.0.tar.gz"), ["pkg"]);
    assert_eq!(readings_of("pkg-1.0+local.tar.gz"), ["pkg"]);
}

#[test]
fn distribution_suffixes() {
    assert!(looks_like_distribution("a-1.0.tar.gz"));
    assert!(looks_like_distribution("a-1-py3-none-any.whl.metadata"));
    assert!(!looks_like_distribution("index.html"));
    assert!(!looks_like_distribution("json"));
}

/// A project name as people write them: letters and digits joined by `-`, `_` or `.`.
fn name() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z][a-zA-Z0-9]{0,5}",
        prop::collection::vec(("[-_.]", "[a-zA-Z0-9]{1,5}"), 0..4),
    )
        .prop_map(|(first, rest)| {
            let mut s = first;
            for (sep, part) in rest {
                s.push_str(&sep);
                s.push_str(&part);
            }
            s
        })
}

/// A version, with the dash spellings PEP 440 allows (`1.0-1`, `1.0-rc1`, `1.0-post2`).
fn version() -> impl Strategy<Value = String> {
    (
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}",
        prop::option::of("-(1|2|rc1|post2|dev3)"),
    )
        .prop_map(|(v, suffix)| v + suffix.as_deref().unwrap_or(""))
}

fn sdist_ext() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        ".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tbz", ".txz", ".tar", ".egg",
    ])
}

proptest! {
    /// However its name and version hold separators, a file is read as its own project, and as
    /// every project any installer's split could take it for.
    #[test]
    fn every_split_an_installer_may_make_is_a_reading(
        name in name(),
        version in version(),
        ext in sdist_ext(),
        metadata in any::<bool>(),
    ) {
        let stem = format!("{name}-{version}");
        let file = format!("{stem}{ext}{}", if metadata { ".metadata" } else { "" });
        let (got, is_metadata) = projects_of(&file);
        prop_assert_eq!(is_metadata, metadata);
        prop_assert!(got.contains(&Name::new(&name)), "{} not in {:?}", name, got);
        for (i, b) in stem.bytes().enumerate() {
            // pip >= 10: at a `-`; pip <= 9: at a `-` or `_`.
            if (b == b'-' || b == b'_') && is_valid_name(&stem[..i]) {
                prop_assert!(got.contains(&Name::new(&stem[..i])), "{} of {}", &stem[..i], file);
            }
        }
        for n in &got {
            prop_assert!(n.is_valid());
            prop_assert_eq!(&Name::new(n.as_str()), n);
        }
    }

    /// A wheel has one reading, its first part, as every installer takes it.
    #[test]
    fn a_wheel_is_read_as_its_first_part(
        name in name(),
        version in "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}",
        build in prop::option::of("-[0-9]{1,2}"),
    ) {
        let escaped = name.replace(['-', '.'], "_");
        let file = format!("{escaped}-{version}{}-py3-none-any.whl", build.unwrap_or_default());
        prop_assert_eq!(projects_of(&file).0, vec![Name::new(&name)]);
    }
}

#[test]
fn versions_as_read_for_a_project() {
    fn v<'a>(f: &'a str, p: &str) -> Option<&'a str> {
        super::version_of(f, &Name::new(p))
    }
    assert_eq!(
        v("requests-2.32.0-py3-none-any.whl", "requests"),
        Some("2.32.0")
    );
    assert_eq!(v("Foo_Bar-1.0-py3-none-any.whl", "foo-bar"), Some("1.0"));
    assert_eq!(v("requests-2.32.0-py3-none-any.whl", "other"), None);
    assert_eq!(v("corp-only-50.0-1.tar.gz", "corp-only"), Some("50.0-1"));
    assert_eq!(v("corp-only-50.0-1.tar.gz", "corp-only-50-0"), Some("1"));
    assert_eq!(v("pkg-1.0.zip", "pkg"), Some("1.0"));
    assert_eq!(v("pkg-1.0-py2.7.egg", "pkg"), Some("1.0"));
    assert_eq!(v("pkg-.tar.gz", "pkg"), None);
    assert_eq!(v("pkg.tar.gz", "pkg"), None);
}
