//! Tests of leaf shape, caching, coalescing and renewal.

use std::path::Path;
use std::sync::{Barrier, Mutex};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::*;
use crate::Scope;

fn fresh_ca() -> (tempfile::TempDir, Ca) {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap();
    (tmp, ca)
}

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

fn ski(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

fn aki(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(!san.critical);
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Checks everything clients.md demands of a leaf, against the CA that signed it.
fn assert_leaf_shape(leaves: &Leaves, host: &str) -> Vec<CertificateDer<'static>> {
    let chain = leaves.chain(host).unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(&chain[1], leaves.ca().cert_der());
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&chain[1]).unwrap();

    assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
    leaf.verify_signature(Some(ca.public_key())).unwrap();
    assert_eq!(aki(&leaf), ski(&ca), "AKI must equal the CA's SKI");
    assert!(aki(&leaf).is_some());

    let bc = leaf.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca);
    let ku = leaf.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.digital_signature() && !ku.value.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.server_auth && !eku.value.client_auth);

    let v = leaf.validity();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let backdate = now - v.not_before.timestamp();
    assert!((3590..=3610).contains(&backdate), "backdated {backdate}s");
    let lifetime_days = (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400;
    assert!(lifetime_days < 200, "{lifetime_days}");
    assert_eq!(lifetime_days, 90);

    let serial = leaf.raw_serial();
    assert_eq!(serial.len(), 16, "{serial:?}");
    assert!(serial[0] & 0x80 == 0, "positive serial");
    chain
}

#[test]
fn dns_leaf_has_the_required_shape() {
    let (_tmp, ca) = fresh_ca();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    let chain = assert_leaf_shape(&leaves, "PyPI.org.");
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(sans(&leaf), ["DNS:pypi.org"]);
    assert_eq!(leaf.subject().to_string(), "O=pipgate, CN=pypi.org");
}

#[test]
fn ip_literal_gets_an_ip_san() {
    let (_tmp, ca) = fresh_ca();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    let chain = assert_leaf_shape(&leaves, "127.0.0.1");
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(sans(&leaf), ["IP:[127, 0, 0, 1]"]);
    // No CN: OpenSSL would hold a CN of `127.0.0.1` to the CA's dNSName constraints.
    assert_eq!(leaf.subject().to_string(), "O=pipgate");
    let chain = assert_leaf_shape(&leaves, "[::1]");
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(sans(&leaf).len(), 1);
    assert!(sans(&leaf)[0].starts_with("IP:[0, 0,"), "{:?}", sans(&leaf));
}

#[test]
fn long_names_get_no_common_name() {
    let (_tmp, ca) = fresh_ca();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    let host = format!("{}.example.org", "a".repeat(60));
    let chain = assert_leaf_shape(&leaves, &host);
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(leaf.subject().to_string(), "O=pipgate");
    assert_eq!(sans(&leaf), [format!("DNS:{host}")]);
    // 63 characters still fit a CN.
    let host = format!("{}.org", "b".repeat(59));
    let chain = leaves.chain(&host).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(leaf.subject().to_string(), format!("O=pipgate, CN={host}"));
}

#[test]
fn leaves_of_an_openssl_ca_carry_its_sha1_ski() {
    // openssl derives SKIs with SHA-1 and rcgen with truncated SHA-256: an AKI recomputed from
    // the key instead of copied from the certificate would differ here.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    for name in ["openssl-ca", "openssl-rsa-ca"] {
        let ca = Ca::load(
            &dir.join(format!("{name}.pem")),
            &dir.join(format!("{name}.key")),
        )
        .unwrap();
        let leaves = Leaves::new(ca, alpn()).unwrap();
        assert_leaf_shape(&leaves, "pypi.org");
    }
}

#[test]
fn all_leaves_share_one_key_but_not_serials() {
    let (_tmp, ca) = fresh_ca();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    let a = leaves.chain("pypi.org").unwrap();
    let b = leaves.chain("files.pythonhosted.org").unwrap();
    let (_, a) = x509_parser::parse_x509_certificate(&a[0]).unwrap();
    let (_, b) = x509_parser::parse_x509_certificate(&b[0]).unwrap();
    assert_eq!(a.public_key().raw, b.public_key().raw);
    assert_ne!(a.raw_serial(), b.raw_serial());
    let (_, ca) = x509_parser::parse_x509_certificate(leaves.ca().cert_der()).unwrap();
    assert_ne!(
        a.public_key().raw,
        ca.public_key().raw,
        "leaf key is not the CA key"
    );
}

#[test]
fn cache_hits_reuse_the_config_and_spellings_share_it() {
    let (_tmp, ca) = fresh_ca();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    let first = leaves.server_config("pypi.org").unwrap();
    let again = leaves.server_config("PYPI.ORG.").unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(leaves.minted(), 1);
    assert_eq!(leaves.cached(), 1);
    assert_eq!(first.alpn_protocols, alpn());
    leaves.server_config("files.pythonhosted.org").unwrap();
    assert_eq!((leaves.minted(), leaves.cached()), (2, 2));
}

#[test]
fn invalid_hosts_are_errors_and_mint_nothing() {
    let (_tmp, ca) = fresh_ca();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    for bad in ["", "*.pypi.org", "pypi.org:443", "a b", "\u{0}"] {
        let err = leaves.server_config(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidHost { .. }), "{bad:?}: {err:?}");
    }
    assert_eq!((leaves.minted(), leaves.cached()), (0, 0));
}

#[test]
fn concurrent_first_handshakes_mint_once() {
    let (_tmp, ca) = fresh_ca();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    let barrier = Barrier::new(32);
    let configs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    leaves.server_config("pypi.org").unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(leaves.minted(), 1);
    assert!(configs.iter().all(|c| Arc::ptr_eq(c, &configs[0])));
}

#[test]
fn leaves_are_reminted_when_a_third_of_the_lifetime_remains() {
    let (_tmp, ca) = fresh_ca();
    let start = OffsetDateTime::now_utc();
    let now = Arc::new(Mutex::new(start));
    let clock_now = Arc::clone(&now);
    let clock: Clock = Arc::new(move || *clock_now.lock().unwrap());
    let leaves = Leaves::with_options(ca, alpn(), Lifetime::DEFAULT, clock).unwrap();
    let set = |t| *now.lock().unwrap() = t;

    let first = leaves.server_config("pypi.org").unwrap();
    let not_after = start - Duration::hours(1) + Duration::days(90);
    let renew_at = not_after - Duration::days(30);

    set(renew_at - Duration::seconds(1));
    assert!(Arc::ptr_eq(
        &first,
        &leaves.server_config("pypi.org").unwrap()
    ));
    assert_eq!(leaves.minted(), 1);

    set(renew_at);
    let second = leaves.server_config("pypi.org").unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(leaves.minted(), 2);
    let chain = leaves.chain("pypi.org").unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(
        leaf.validity().not_before.timestamp(),
        (renew_at - Duration::hours(1)).unix_timestamp()
    );
    // The renewed leaf is itself cached.
    assert!(Arc::ptr_eq(
        &second,
        &leaves.server_config("pypi.org").unwrap()
    ));
    assert_eq!((leaves.minted(), leaves.cached()), (2, 1));
}

#[test]
fn short_lifetimes_renew_in_real_time() {
    // The same path with a real clock: a 3 s leaf is due after 2 s.
    let (_tmp, ca) = fresh_ca();
    let lifetime = Lifetime {
        total: Duration::seconds(3),
        backdate: Duration::ZERO,
    };
    let leaves =
        Leaves::with_options(ca, alpn(), lifetime, Arc::new(OffsetDateTime::now_utc)).unwrap();
    leaves.server_config("pypi.org").unwrap();
    leaves.server_config("pypi.org").unwrap();
    assert_eq!(leaves.minted(), 1);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    leaves.server_config("pypi.org").unwrap();
    assert_eq!(leaves.minted(), 2);
}

#[test]
fn cache_is_bounded() {
    let (_tmp, ca) = fresh_ca();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    for i in 0..=MAX_CACHED_HOSTS {
        leaves.server_config(&format!("h{i}.example")).unwrap();
    }
    assert!(leaves.cached() <= MAX_CACHED_HOSTS, "{}", leaves.cached());
    assert_eq!(leaves.minted(), MAX_CACHED_HOSTS as u64 + 1);
}

#[test]
fn debug_prints_no_keys() {
    let (tmp, ca) = fresh_ca();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    leaves.server_config("pypi.org").unwrap();
    let debug = format!("{leaves:?}");
    assert!(
        debug.contains("redacted") && debug.contains("minted: 1"),
        "{debug}"
    );
    let key_pem = std::fs::read_to_string(tmp.path().join("ca.key")).unwrap();
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!debug.contains(&body[..16]), "{debug}");
    let leaf_der = leaves.leaf_key.serialize_der();
    assert!(!debug.contains(&format!("{:?}", &leaf_der[..8])), "{debug}");
}

#[test]
fn leaves_end_with_a_ca_that_expires_first() {
    let tmp = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params
        .distinguished_name
        .push(DnType::CommonName, "short-lived CA");
    let ca_end = OffsetDateTime::now_utc() + Duration::days(10);
    params.not_after = ca_end;
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (tmp.path().join("ca.pem"), tmp.path().join("ca.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let ca = Ca::load(&cert_path, &key_path).unwrap();
    assert_eq!(ca.not_after().unix_timestamp(), ca_end.unix_timestamp());

    let leaves = Leaves::new(ca, alpn()).unwrap();
    let chain = leaves.chain("pypi.org").unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        ca_end.unix_timestamp()
    );
    // Capped, it is still cached (not re-minted on every handshake).
    leaves.server_config("pypi.org").unwrap();
    assert_eq!(leaves.minted(), 1);

    // A CA with years left does not shorten them.
    let (_tmp, ca) = fresh_ca();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    let chain = leaves.chain("pypi.org").unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let v = leaf.validity();
    assert_eq!(
        (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400,
        90
    );
}
