//! Tests of CA creation, loading and vetting.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use x509_parser::extensions::ParsedExtension;

use super::*;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_private_dir_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b");
    let ca = Ca::init(&dir, false, &Scope::Unconstrained).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&tmp.path().join("a")), 0o700);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir.join("ca.pem")), 0o644);
    // Our PEM encoder must agree with rcgen's byte for byte.
    assert_eq!(
        ca.cert_pem(),
        fs::read_to_string(dir.join("ca.pem")).unwrap()
    );
    let loaded = Ca::load(&dir.join("ca.pem"), &dir.join("ca.key")).unwrap();
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    // No temporary files left behind.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap();
    let key_before = fs::read(tmp.path().join("ca.key")).unwrap();
    let cert_before = fs::read(tmp.path().join("ca.pem")).unwrap();
    let err = Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err:?}");
    assert!(err.to_string().contains("ca.key"), "{err}");
    assert_eq!(fs::read(tmp.path().join("ca.key")).unwrap(), key_before);
    assert_eq!(fs::read(tmp.path().join("ca.pem")).unwrap(), cert_before);

    // Only the certificate present is refused too.
    fs::remove_file(tmp.path().join("ca.key")).unwrap();
    let err = Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap_err();
    assert!(err.to_string().contains("ca.pem"), "{err}");
}

#[test]
fn init_force_replaces_and_tightens_key_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap();
    let key = tmp.path().join("ca.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let second = Ca::init(tmp.path(), true, &Scope::Unconstrained).unwrap();
    assert_ne!(first.cert_der(), second.cert_der());
    assert_ne!(first.subject(), second.subject());
    assert_eq!(mode(&key), 0o600);
    let loaded = Ca::load(&tmp.path().join("ca.pem"), &key).unwrap();
    assert_eq!(loaded.cert_der(), second.cert_der());
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);
}

#[test]
fn generated_ca_has_the_required_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();

    let bc = x509.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let ku = x509.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
    assert!(!ku.value.digital_signature());
    let ski = x509
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    assert_eq!(ski.map(|k| k.len()), Some(20));

    let v = x509.validity();
    let days = (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400;
    assert!((3650..=3651).contains(&days), "{days}");
    assert!(v.not_before.timestamp() < OffsetDateTime::now_utc().unix_timestamp() - 3000);
    assert_eq!(
        x509.public_key()
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string()),
        Some("1.2.840.10045.3.1.7".to_owned()),
        "P-256"
    );

    let cn = ca.subject();
    assert!(cn.contains("O=pipgate"), "{cn}");
    let id = cn.rsplit("pipgate CA ").next().unwrap();
    assert_eq!(id.len(), 8, "{cn}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{cn}");
}

#[test]
fn debug_never_prints_key_material() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap();
    let key_pem = fs::read_to_string(tmp.path().join("ca.key")).unwrap();
    let debug = format!("{ca:?} {ca:#?}");
    assert!(debug.contains("redacted"), "{debug}");
    assert!(debug.contains("pipgate CA"), "{debug}");
    for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
        // Any 16-character run of the key's base64 would be a leak.
        for chunk in line.as_bytes().chunks(16).filter(|c| c.len() == 16) {
            let chunk = std::str::from_utf8(chunk).unwrap();
            assert!(!debug.contains(chunk), "key material in Debug: {debug}");
        }
    }
    // The raw key bytes, in the form a derived Debug would print them.
    let der = ca.key.serialize_der();
    assert!(!debug.contains(&format!("{:?}", &der[..8])), "{debug}");
}

#[test]
fn load_rejects_a_mismatched_pair() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    Ca::init(a.path(), false, &Scope::Unconstrained).unwrap();
    Ca::init(b.path(), false, &Scope::Unconstrained).unwrap();
    let err = Ca::load(&a.path().join("ca.pem"), &b.path().join("ca.key")).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&a.path().join("ca.pem").display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(&b.path().join("ca.key").display().to_string()),
        "{msg}"
    );
}

#[test]
fn load_names_a_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap();
    let missing = tmp.path().join("nope.key");
    let err = Ca::load(&tmp.path().join("ca.pem"), &missing).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.key"), "{err}");
}

#[test]
fn load_rejects_garbage_and_unsupported_files() {
    let tmp = tempfile::tempdir().unwrap();
    Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap();
    let (cert, key) = (tmp.path().join("ca.pem"), tmp.path().join("ca.key"));

    let err = Ca::load(&testdata("garbage.pem"), &key).unwrap_err();
    assert!(matches!(err, Error::Certificate { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage.pem"), "{err}");

    let err = Ca::load(&cert, &testdata("garbage.pem")).unwrap_err();
    assert!(matches!(err, Error::Key { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage.pem"), "{err}");

    // A key where the certificate should be, and vice versa.
    assert!(matches!(
        Ca::load(&key, &key),
        Err(Error::Certificate { .. })
    ));
    assert!(matches!(Ca::load(&cert, &cert), Err(Error::Key { .. })));

    let err = Ca::load(
        &testdata("openssl-ca.pem"),
        &testdata("openssl-ca.sec1.key"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("PKCS#8"), "{err}");
}

#[test]
fn load_rejects_a_certificate_that_is_no_ca() {
    let err = Ca::load(&testdata("not-ca.pem"), &testdata("not-ca.key")).unwrap_err();
    assert!(matches!(err, Error::Certificate { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("not-ca.pem") && msg.contains("not a CA"),
        "{msg}"
    );
}

#[test]
fn load_rejects_a_subject_rcgen_cannot_reproduce() {
    let err = Ca::load(&testdata("two-ou-ca.pem"), &testdata("two-ou-ca.key")).unwrap_err();
    assert!(err.to_string().contains("byte for byte"), "{err}");
}

#[test]
fn load_accepts_openssl_made_cas() {
    let ca = Ca::load(&testdata("openssl-ca.pem"), &testdata("openssl-ca.key")).unwrap();
    assert!(
        ca.subject().contains("Example Corp Inspection CA"),
        "{}",
        ca.subject()
    );
    let rsa = Ca::load(
        &testdata("openssl-rsa-ca.pem"),
        &testdata("openssl-rsa-ca.key"),
    )
    .unwrap();
    assert!(rsa.subject().contains("Example RSA CA"));
}

#[test]
fn load_or_create_creates_then_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("data/pipgate/ca.pem");
    let key = tmp.path().join("data/pipgate/ca.key");
    let (created, fresh) = Ca::load_or_create(&cert, &key, &Scope::Unconstrained).unwrap();
    assert!(fresh);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&tmp.path().join("data/pipgate")), 0o700);
    let (loaded, fresh) = Ca::load_or_create(&cert, &key, &Scope::Unconstrained).unwrap();
    assert!(!fresh);
    assert_eq!(loaded.cert_der(), created.cert_der());
}

#[test]
fn load_or_create_never_replaces_half_a_pair() {
    let tmp = tempfile::tempdir().unwrap();
    Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap();
    let (cert, key) = (tmp.path().join("ca.pem"), tmp.path().join("ca.key"));
    let key_bytes = fs::read(&key).unwrap();

    fs::rename(&cert, tmp.path().join("moved.pem")).unwrap();
    let err = Ca::load_or_create(&cert, &key, &Scope::Unconstrained).unwrap_err();
    assert!(matches!(err, Error::Incomplete { .. }), "{err:?}");
    assert!(
        err.to_string().contains("ca.key") && err.to_string().contains("ca.pem"),
        "{err}"
    );
    assert_eq!(fs::read(&key).unwrap(), key_bytes, "key untouched");
    assert!(!cert.exists());

    fs::rename(tmp.path().join("moved.pem"), &cert).unwrap();
    fs::remove_file(&key).unwrap();
    let err = Ca::load_or_create(&cert, &key, &Scope::Unconstrained).unwrap_err();
    assert!(matches!(err, Error::Incomplete { .. }), "{err:?}");
    assert!(!key.exists());
}

#[test]
fn pem_encoding_round_trips_every_padding_case() {
    for len in [1usize, 2, 3, 47, 48, 49, 100] {
        let der: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        let pem = pem_encode(&der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), der.as_slice(), "len {len}");
    }
}

/// Writes a CA made from `params` with a fresh key; returns (cert path, key path).
fn write_ca(dir: &Path, params: CertificateParams) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("c.pem"), dir.join("c.key"));
    fs::write(&cert_path, cert.pem()).unwrap();
    fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params
}

#[test]
fn a_control_ca_loads() {
    // The two tests below change one thing each from this baseline.
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = write_ca(tmp.path(), ca_params());
    Ca::load(&cert, &key).unwrap();
}

#[test]
fn load_rejects_an_expired_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let mut params = ca_params();
    params.not_before = OffsetDateTime::now_utc() - Duration::days(20);
    params.not_after = OffsetDateTime::now_utc() - Duration::days(1);
    let (cert, key) = write_ca(tmp.path(), params);
    let err = Ca::load(&cert, &key).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn load_rejects_a_ca_whose_key_usage_forbids_signing_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let mut params = ca_params();
    params.key_usages = vec![KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let (cert, key) = write_ca(tmp.path(), params);
    let err = Ca::load(&cert, &key).unwrap_err();
    assert!(err.to_string().contains("keyCertSign"), "{err}");
}

#[test]
fn ca_and_leaves_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Ca>();
    assert_send_sync::<crate::Leaves>();
    assert_send_sync::<Error>();
}
