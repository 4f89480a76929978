//! Request classification: adversarial spellings of one project, and refused paths.

use super::*;
use crate::{Role, Rules};

fn policy() -> Policy {
    Policy::new(
        vec![
            Index::new(
                "pypi",
                "https://pypi.org/simple/",
                Role::Public,
                &["files.pythonhosted.org".to_owned()],
            )
            .unwrap(),
            Index::new("corp", "https://pypi.corp.example/", Role::Private, &[]).unwrap(),
        ],
        Rules::default(),
    )
    .unwrap()
}

fn project(p: &Policy, path: &str) -> String {
    match p.classify("pypi.org", path) {
        Ok(Target::Project { name, .. }) => name.to_string(),
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn adversarial_spellings_all_mean_acme_lib() {
    let p = policy();
    for path in [
        "/simple/acme-lib/",
        "/simple/Acme_Lib",
        "/simple/acme.lib/",
        "/simple/ACME--lib/",
        "/simple/acme%2Dlib/",
        "/simple/acme%2dlib",
        "/simple/acme-lib",
        "//simple//acme-lib/",
        "/simple/acme-lib/?format=json",
        "/simple/acme-lib?x=/../y",
        "/simple/acme-lib/#frag",
        "/simple/%41cme_lib/",
    ] {
        assert_eq!(project(&p, path), "acme-lib", "{path}");
    }
    // Old pip did not normalize before asking.
    assert_eq!(project(&p, "/simple/repoze.lru/"), "repoze-lru");
}

#[test]
fn refused_paths() {
    let p = policy();
    let cases = [
        ("/simple/../acme-lib/", PathError::DotSegment),
        ("/simple/acme-lib/..", PathError::DotSegment),
        ("/simple/%2e%2e/acme-lib/", PathError::DotSegment),
        ("/simple/./acme-lib/", PathError::DotSegment),
        ("/simple/acme%2Flib/", PathError::EncodedSlash),
        ("/simple/acme%2flib/", PathError::EncodedSlash),
        ("/simple/acme%5Clib/", PathError::EncodedSlash),
        ("/simple/acme%zzlib/", PathError::BadEscape),
        ("/simple/acme%2/", PathError::BadEscape),
        ("/simple/acme%/", PathError::BadEscape),
        ("/simple/acme%FFlib/", PathError::NotUtf8),
        ("/simple/acme%00lib/", PathError::BadChar),
        ("/simple/acme\\lib/", PathError::BadChar),
        ("/simple/acme lib/", PathError::BadName),
        ("/simple/-acme/", PathError::BadName),
        ("simple/acme/", PathError::NotAbsolute),
    ];
    for (path, want) in cases {
        let got = p.classify("pypi.org", path);
        assert_eq!(got, Err(want.clone()), "{path}");
        assert_eq!(want.rule(), crate::Rule::BadPath);
        assert!(!want.to_string().contains('\n'));
    }
    assert_eq!(
        p.classify("evil.example", "/simple/x/"),
        Err(PathError::UnknownHost)
    );
    assert_eq!(
        PathError::EncodedSlash.to_string(),
        "percent-encoded '/' in project name"
    );
}

#[test]
fn root_legacy_other() {
    let p = policy();
    for path in ["/simple/", "/simple", "//simple//", "/simple/?x"] {
        assert!(
            matches!(p.classify("pypi.org", path), Ok(Target::Root { .. })),
            "{path}"
        );
    }
    match p.classify("PyPI.org", "/pypi/Acme_Lib/json").unwrap() {
        Target::LegacyJson { name, version, .. } => {
            assert_eq!(name.as_str(), "acme-lib");
            assert_eq!(version, None);
        }
        t => panic!("{t:?}"),
    }
    match p.classify("pypi.org", "/pypi/acme.lib/1.0/json/").unwrap() {
        Target::LegacyJson { name, version, .. } => {
            assert_eq!(name.as_str(), "acme-lib");
            assert_eq!(version.as_deref(), Some("1.0"));
        }
        t => panic!("{t:?}"),
    }
    for path in [
        "/",
        "/project/acme-lib/",
        "/simple/a/b/",
        "/pypi/acme/",
        "/SIMPLE/acme/",
    ] {
        assert!(
            matches!(p.classify("pypi.org", path), Ok(Target::Other { .. })),
            "{path}"
        );
    }
}

#[test]
fn files_on_file_hosts_and_index_hosts() {
    let p = policy();
    match p
        .classify(
            "files.pythonhosted.org",
            "/packages/ab/cd/Acme_Lib-1.0-py3-none-any.whl.metadata?x",
        )
        .unwrap()
    {
        Target::File {
            index,
            filename,
            projects,
            metadata,
        } => {
            assert_eq!(index.name(), "pypi");
            assert_eq!(filename, "Acme_Lib-1.0-py3-none-any.whl.metadata");
            assert_eq!(projects, [Name::new("acme-lib")]);
            assert!(metadata);
        }
        t => panic!("{t:?}"),
    }
    match p
        .classify("files.pythonhosted.org", "/packages/acme%2Dlib-1.0.tar.gz")
        .unwrap()
    {
        Target::File {
            filename, projects, ..
        } => {
            assert_eq!(filename, "acme-lib-1.0.tar.gz");
            assert_eq!(projects, [Name::new("acme-lib"), Name::new("acme")]);
        }
        t => panic!("{t:?}"),
    }
    match p.classify("files.pythonhosted.org", "/packages/").unwrap() {
        Target::File {
            filename, projects, ..
        } => {
            assert_eq!(filename, "");
            assert!(projects.is_empty());
        }
        t => panic!("{t:?}"),
    }
    assert_eq!(
        p.classify("files.pythonhosted.org", "/packages/%2e%2e/x"),
        Err(PathError::DotSegment)
    );
    // A private index serving its own files: a download, not an unknown path.
    match p
        .classify("pypi.corp.example", "/packages/acme_lib-1.0.tar.gz")
        .unwrap()
    {
        Target::File {
            index, projects, ..
        } => {
            assert_eq!(index.name(), "corp");
            assert_eq!(projects, [Name::new("acme-lib"), Name::new("acme")]);
        }
        t => panic!("{t:?}"),
    }
    // The private index's prefix is "/": one segment is a project.
    assert!(matches!(
        p.classify("pypi.corp.example", "/Acme_Lib/"),
        Ok(Target::Project { .. })
    ));
}
