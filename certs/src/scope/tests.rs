//! Tests of the constraints pipgate writes and of subtree matching.

use proptest::prelude::*;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::*;
use crate::Ca;

fn pypi() -> Scope {
    Scope::hosts(["pypi.org", "files.pythonhosted.org", "pypi.python.org"]).unwrap()
}

#[test]
fn hosts_permit_dns_names_and_exclude_every_address() {
    let Scope::Constrained {
        permitted,
        excluded,
    } = Scope::hosts(["PyPI.org.", "files.pythonhosted.org", "pypi.org"]).unwrap()
    else {
        panic!("constrained");
    };
    assert_eq!(
        permitted,
        [
            Subtree::Dns("pypi.org".into()),
            Subtree::Dns("files.pythonhosted.org".into())
        ]
    );
    assert_eq!(
        excluded,
        [
            Subtree::Ip("0.0.0.0".parse().unwrap(), 0),
            Subtree::Ip("::".parse().unwrap(), 0)
        ]
    );
}

#[test]
fn an_ip_host_is_permitted_alone_and_its_family_no_longer_excluded() {
    let scope = Scope::hosts(["127.0.0.1", "pypi.org"]).unwrap();
    assert_eq!(scope.to_string(), "pypi.org, 127.0.0.1");
    assert!(scope.permits("127.0.0.1"));
    assert!(!scope.permits("127.0.0.2"));
    assert!(!scope.permits("::1"), "the other family stays excluded");
    let Scope::Constrained { excluded, .. } = &scope else {
        panic!("constrained");
    };
    assert_eq!(excluded, &[Subtree::Ip("::".parse().unwrap(), 0)]);

    let v6 = Scope::hosts(["[::1]"]).unwrap();
    assert!(v6.permits("[::1]") && v6.permits("::1"));
    assert!(!v6.permits("::2") && !v6.permits("127.0.0.1"));
    // Only addresses: DNS names are held to the reserved `invalid` subtree.
    assert!(!v6.permits("pypi.org"));
    assert_eq!(v6.to_string(), "invalid, [::1]");
}

#[test]
fn no_host_and_bad_hosts_are_refused() {
    assert!(matches!(
        Scope::hosts(std::iter::empty::<&str>()),
        Err(Error::EmptyScope)
    ));
    for bad in ["", "*.pypi.org", "a b", "pypi.org/x"] {
        assert!(
            matches!(Scope::hosts([bad]), Err(Error::InvalidHost { .. })),
            "{bad}"
        );
    }
}

#[test]
fn subtrees_cover_subdomains_on_label_boundaries_in_any_case() {
    let scope = pypi();
    for ok in [
        "pypi.org",
        "PYPI.ORG",
        "pypi.org.",
        "test.pypi.org",
        "a.b.pypi.org",
        "files.pythonhosted.org",
        "pypi.python.org",
    ] {
        assert!(scope.permits(ok), "{ok}");
    }
    for no in [
        "evilpypi.org",
        "pypi.org.evil",
        "org",
        "pythonhosted.org",
        "python.org",
        "127.0.0.1",
        "[::1]",
        "localhost",
        "",
        "*.pypi.org",
    ] {
        assert!(!scope.permits(no), "{no}");
    }
    assert!(Scope::Unconstrained.permits("anything.example"));
    assert!(Scope::Unconstrained.permits("10.0.0.1"));
}

#[test]
fn read_back_constraints_of_other_shapes() {
    // As OpenSSL accepts them: a leading dot covers only names below it; an empty name is
    // every name; excluded subtrees win.
    let scope = Scope::Constrained {
        permitted: vec![
            Subtree::Dns(".corp.example".into()),
            Subtree::Dns("Example.ORG".into()),
            Subtree::Ip("10.0.0.0".parse().unwrap(), 8),
        ],
        excluded: vec![Subtree::Dns("secret.example.org".into())],
    };
    assert!(scope.permits("a.corp.example"));
    assert!(!scope.permits("corp.example"));
    assert!(scope.permits("example.org") && scope.permits("www.example.org"));
    assert!(!scope.permits("secret.example.org") && !scope.permits("x.secret.example.org"));
    assert!(scope.permits("10.200.0.1") && !scope.permits("11.0.0.1"));
    // No IPv6 subtree is permitted, but an IPv4 one is: iPAddress names are constrained, so a
    // v6 address matches none (OpenSSL and webpki compare lengths).
    assert!(!scope.permits("::1"));

    let all = Scope::Constrained {
        permitted: vec![Subtree::Dns(String::new())],
        excluded: vec![],
    };
    assert!(all.permits("anything.example"));
    // Nothing permitted of the IP kind, nothing excluded: addresses are unconstrained.
    assert!(all.permits("192.0.2.1"));
}

#[test]
fn ip_subtree_bytes_need_a_contiguous_mask() {
    assert_eq!(
        ip_subtree(&[10, 0, 0, 0, 255, 0, 0, 0]),
        Some(Subtree::Ip("10.0.0.0".parse().unwrap(), 8))
    );
    assert_eq!(
        ip_subtree(&[0; 32]),
        Some(Subtree::Ip("::".parse().unwrap(), 0))
    );
    assert_eq!(ip_subtree(&[10, 0, 0, 0, 255, 0, 255, 0]), None);
    assert_eq!(ip_subtree(&[10, 0, 0, 0]), None);
    assert_eq!(
        Subtree::Ip("10.0.0.0".parse().unwrap(), 8).to_string(),
        "10.0.0.0/8"
    );
}

#[test]
fn a_constrained_ca_carries_a_critical_extension_listing_exactly_its_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path(), false, &pypi()).unwrap();
    assert_eq!(ca.scope(), &pypi());
    let (_, x509) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
    let nc = x509.name_constraints().unwrap().expect("nameConstraints");
    assert!(nc.critical, "RFC 5280: nameConstraints MUST be critical");
    let names = |list: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| {
        list.iter()
            .flatten()
            .map(|s| match &s.base {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) => format!("IP:{b:?}"),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&nc.value.permitted_subtrees),
        [
            "DNS:pypi.org",
            "DNS:files.pythonhosted.org",
            "DNS:pypi.python.org"
        ]
    );
    assert_eq!(
        names(&nc.value.excluded_subtrees),
        [format!("IP:{:?}", [0u8; 8]), format!("IP:{:?}", [0u8; 32])]
    );
    // Read back the same from the loaded pair.
    let loaded = Ca::load(&tmp.path().join("ca.pem"), &tmp.path().join("ca.key")).unwrap();
    assert_eq!(loaded.scope(), &pypi());
}

#[test]
fn an_unconstrained_ca_has_no_extension() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap();
    assert_eq!(ca.scope(), &Scope::Unconstrained);
    let (_, x509) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
    assert!(!x509
        .iter_extensions()
        .any(|e| matches!(e.parsed_extension(), ParsedExtension::NameConstraints(_))));
    assert_eq!(Scope::Unconstrained.to_string(), "any host");
}

/// A DNS label: what a host name is made of.
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?"
}

fn name(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 1..max).prop_map(|l| l.join("."))
}

proptest! {
    /// RFC 5280 dNSName semantics: a base covers itself and what is below it on a label
    /// boundary, whatever the case, and nothing else.
    #[test]
    fn dns_matching_is_label_suffix_matching(base in name(4), prefix in name(3), glued in label()) {
        let base = format!("{base}.example");
        let scope = Scope::hosts([base.as_str()]).unwrap();
        prop_assert!(scope.permits(&base));
        prop_assert!(scope.permits(&base.to_ascii_uppercase()));
        let below = format!("{prefix}.{base}");
        prop_assert!(scope.permits(&below));
        // Glued on without a dot, it is another name (`evilpypi.org`).
        let glued = format!("{glued}{base}");
        prop_assert!(!scope.permits(&glued));
        // A name is permitted exactly when it is the base or ends with ".base".
        let other = format!("{prefix}.example");
        prop_assert_eq!(
            scope.permits(&other),
            other == base || other.ends_with(&format!(".{base}"))
        );
    }

    /// Addresses: only the permitted one, never any other of either family.
    #[test]
    fn only_the_permitted_address(a in any::<[u8; 4]>(), b in any::<[u8; 4]>(), v6 in any::<[u8; 16]>()) {
        let a = std::net::Ipv4Addr::from(a).to_string();
        let b = std::net::Ipv4Addr::from(b).to_string();
        let scope = Scope::hosts([a.as_str(), "pypi.org"]).unwrap();
        prop_assert!(scope.permits(&a));
        prop_assert_eq!(scope.permits(&b), a == b);
        prop_assert!(!scope.permits(&std::net::Ipv6Addr::from(v6).to_string()));
        prop_assert!(!pypi().permits(&a));
    }
}
