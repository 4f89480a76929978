//! The link rule, and the canonical fast path checked against full URL parsing.

use super::*;
use crate::page::pypi;
use crate::Role;

fn ok(index: &Index, page: &str, href: &str) -> bool {
    let base = Url::parse(page).unwrap();
    resolve(&base, href).is_some_and(|u| allowed(index, &u))
}

#[test]
fn link_rule() {
    let i = pypi();
    let page = "https://pypi.org/simple/x/";
    assert!(ok(&i, page, "https://files.pythonhosted.org/a/x-1.tar.gz"));
    assert!(ok(
        &i,
        page,
        "  https://FILES.pythonhosted.org/a/x-1.tar.gz\n"
    ));
    assert!(ok(&i, page, "../../packages/x-1.tar.gz"));
    assert!(ok(&i, page, "//files.pythonhosted.org/x-1.tar.gz"));
    assert!(!ok(&i, page, "//evil.example/x-1.tar.gz"));
    assert!(!ok(&i, page, "http://files.pythonhosted.org/x-1.tar.gz"));
    assert!(!ok(&i, page, "https://evil.example/x-1.tar.gz"));
    assert!(!ok(
        &i,
        page,
        "https://files.pythonhosted.org.evil.example/x-1.tar.gz"
    ));
    assert!(!ok(
        &i,
        page,
        "https://u:p@files.pythonhosted.org/x-1.tar.gz"
    ));
    assert!(!ok(
        &i,
        page,
        "https://files.pythonhosted.org:8443/x-1.tar.gz"
    ));
    assert!(!ok(&i, page, "https://pypi.org:8443/x-1.tar.gz"));
    assert!(!ok(&i, page, "javascript:alert(1)"));
    assert!(!ok(&i, page, "data:text/plain,x"));
    assert!(!ok(&i, page, "ftp://files.pythonhosted.org/x"));
    assert!(!ok(&i, page, ""));
    // WHATWG treats '\' as '/' in special URLs: the host is evil.example, and so refused.
    assert!(!ok(&i, page, "https:\\\\evil.example\\x-1.tar.gz"));
}

#[test]
fn http_only_for_http_index_host() {
    let i = Index::new(
        "corp",
        "http://10.0.0.1:8080/simple/",
        Role::Private,
        &["files.corp".to_owned()],
    )
    .unwrap();
    let page = "http://10.0.0.1:8080/simple/x/";
    assert!(ok(&i, page, "x-1.tar.gz"));
    assert!(ok(&i, page, "/packages/x-1.tar.gz"));
    assert!(!ok(&i, page, "http://10.0.0.1:8081/x-1.tar.gz"));
    assert!(!ok(&i, page, "http://files.corp/x-1.tar.gz"));
    assert!(ok(&i, page, "https://files.corp/x-1.tar.gz"));
}

#[test]
fn filenames_and_hashes() {
    let u = Url::parse("https://h/a/acme%20lib-1.0.tar.gz#sha256=AbC123").unwrap();
    assert_eq!(filename(&u).as_deref(), Some("acme lib-1.0.tar.gz"));
    assert_eq!(hash_fragment(&u), Some(("sha256", "AbC123")));
    assert_eq!(filename(&Url::parse("https://h/a/").unwrap()), None);
    assert_eq!(filename(&Url::parse("https://h/a/%2e%2e").unwrap()), None);
    assert_eq!(filename(&Url::parse("https://h/a/x%00y").unwrap()), None);
    assert_eq!(filename(&Url::parse("https://h/a/%FF").unwrap()), None);
    assert_eq!(
        hash_fragment(&Url::parse("https://h/x#egg=foo").unwrap()),
        None
    );
    assert_eq!(
        hash_fragment(&Url::parse("https://h/x#sha256=zz").unwrap()),
        None
    );
    assert!(is_external_rel("nofollow Download"));
    assert!(is_external_rel("homepage"));
    assert!(!is_external_rel("internal"));
}

/// The slow path alone: full resolution with the `url` crate.
fn slow<'a>(index: &Index, base: &Url, href: &'a str) -> Option<Checked<'a>> {
    let url = resolve(base, href)?;
    if !allowed(index, &url) {
        return None;
    }
    let filename = filename(&url)?;
    let hash =
        hash_fragment(&url).map(|(n, v)| (Cow::Owned(n.to_owned()), Cow::Owned(v.to_owned())));
    Some(Checked {
        url: Cow::Owned(url[..Position::AfterQuery].to_owned()),
        filename: Cow::Owned(filename),
        hash,
    })
}

#[test]
fn canonical_fast_path_examples() {
    let i = pypi();
    let f = "https://files.pythonhosted.org/packages/a/b/x-1.0.tar.gz";
    let href = format!("{f}#sha256=ab");
    let got = canonical(&i, &href).unwrap();
    assert_eq!(got.url, f);
    assert_eq!(got.filename, "x-1.0.tar.gz");
    assert_eq!(
        got.hash,
        Some((Cow::Borrowed("sha256"), Cow::Borrowed("ab")))
    );
    for declined in [
        "https://files.pythonhosted.org/a/../x-1.0.tar.gz",
        "https://files.pythonhosted.org/a/%2E%2e/x-1.0.tar.gz",
        "https://files.pythonhosted.org/a/x-1.0.tar.gz?x=1",
        "https://files.pythonhosted.org/a/x-1.0.tar.gz#egg=x",
        "https://files.pythonhosted.org:443/a/x-1.0.tar.gz",
        "https://FILES.pythonhosted.org/a/x-1.0.tar.gz",
        "https://files.pythonhosted.org\\a/x-1.0.tar.gz",
        "https://u@files.pythonhosted.org/a/x-1.0.tar.gz",
        "https://files.pythonhosted.org/a/x 1.0.tar.gz",
        "https://files.pythonhosted.org/a/\u{e9}.tar.gz",
        "https://evil.example/a/x-1.0.tar.gz",
        "http://files.pythonhosted.org/a/x-1.0.tar.gz",
        "/a/x-1.0.tar.gz",
    ] {
        assert!(canonical(&i, declined).is_none(), "{declined}");
    }
}

fn href_piece() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        Just("https://".to_owned()),
        Just("files.pythonhosted.org".to_owned()),
        Just("pypi.org".to_owned()),
        Just("evil.example".to_owned()),
        Just("1.2.3.4".to_owned()),
        Just("0x7f.1".to_owned()),
        Just("/".to_owned()),
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("%2e".to_owned()),
        Just("%2F".to_owned()),
        Just("%".to_owned()),
        Just("#sha256=".to_owned()),
        Just("#".to_owned()),
        Just("?".to_owned()),
        Just(":443".to_owned()),
        Just("@".to_owned()),
        Just("\\".to_owned()),
        "[a-f0-9]{1,4}",
        "[ -~]{1,3}",
        "\\PC{1,2}",
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
    /// Whatever the fast path accepts, full resolution accepts identically.
    #[test]
    fn fast_path_agrees_with_url_crate(
        prefix in proptest::sample::select(vec!["https://files.pythonhosted.org/", "https://pypi.org/", "https://", "https://files.", ""]),
        pieces in proptest::collection::vec(href_piece(), 1..10),
    ) {
        let i = pypi();
        let base = Url::parse("https://pypi.org/simple/x/").unwrap();
        let href = format!("{prefix}{}", pieces.concat());
        if plainly_elsewhere(&i, &href) {
            proptest::prop_assert!(slow(&i, &base, &href).is_none(), "href {:?}", href);
        }
        if let Some(fast) = canonical(&i, &href) {
            proptest::prop_assert_eq!(Some(fast), slow(&i, &base, &href), "href {:?}", href);
        }
    }
}

#[test]
fn byte_class_folds_match_their_definitions() {
    for b in 0..=255u8 {
        let path = b.is_ascii_alphanumeric() || b"-._~/%!$&'()*+,;=:@".contains(&b);
        assert_eq!(canonical_path_bytes(&[b]), path, "path byte {b:#04x}");
        assert_eq!(
            canonical_path_bytes(&[b'a', b, b'z']),
            path,
            "path byte {b:#04x}"
        );
        assert_eq!(hex_bytes(&[b]), b.is_ascii_hexdigit(), "hex byte {b:#04x}");
        if b.is_ascii() {
            let name = format!("x{}y", b as char);
            let want = (b == b' ' || b.is_ascii_graphic()) && b != b'/' && b != b'\\';
            assert_eq!(valid_filename(&name), want, "name byte {b:#04x}");
        }
    }
    assert!(canonical_path_bytes(b"") && hex_bytes(b""));
}
