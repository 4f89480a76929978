//! Minted chains checked by the OpenSSL CLI: `verify -x509_strict` and the extension dump.

// A test binary: its helpers may panic like the tests that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pipgate_certs::{Ca, Leaves, Scope};

fn openssl_available() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: no `openssl` binary on PATH");
    }
    ok
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// Writes the CA PEM and the leaf for `host` (converted from DER by openssl itself).
fn export(leaves: &Leaves, host: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let ca = dir.join("exported-ca.pem");
    std::fs::write(&ca, leaves.ca().cert_pem()).unwrap();
    let chain = leaves.chain(host).unwrap();
    let der = dir.join("leaf.der");
    std::fs::write(&der, &chain[0]).unwrap();
    let pem = dir.join("leaf.pem");
    let (ok, out) = openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-out",
        pem.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    (ca, pem)
}

/// The value line printed after an extension header in `openssl x509 -text`.
fn ext_value(text: &str, header: &str) -> String {
    let mut lines = text.lines();
    lines
        .find(|l| l.trim_start().starts_with(header))
        .unwrap_or_else(|| panic!("no {header} in\n{text}"));
    lines.next().unwrap().trim().to_owned()
}

fn ext_header<'a>(text: &'a str, header: &str) -> &'a str {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(header))
        .unwrap_or_else(|| panic!("no {header} in\n{text}"))
}

/// Strict verification for the host's name or IP, plus the extension shapes of clients.md.
fn check(leaves: &Leaves, host: &str, dir: &Path) {
    let (ca, leaf) = export(leaves, host, dir);
    let name_check = if host.parse::<std::net::IpAddr>().is_ok() {
        "-verify_ip"
    } else {
        "-verify_hostname"
    };
    let (ok, out) = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        name_check,
        host,
        "-CAfile",
        ca.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("leaf.pem: OK"), "{host}: {out}");

    let (ok, leaf_text) = openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok, "{leaf_text}");
    let (ok, ca_text) = openssl(&["x509", "-in", ca.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok, "{ca_text}");

    let ski = ext_value(&ca_text, "X509v3 Subject Key Identifier");
    let aki = ext_value(&leaf_text, "X509v3 Authority Key Identifier");
    // OpenSSL 3 prints the bare hex; older versions prefix "keyid:".
    assert_eq!(aki.trim_start_matches("keyid:"), ski, "AKI vs CA SKI");

    assert_eq!(
        ext_header(&ca_text, "X509v3 Basic Constraints"),
        "X509v3 Basic Constraints: critical"
    );
    assert!(ext_value(&ca_text, "X509v3 Basic Constraints").starts_with("CA:TRUE"));
    assert_eq!(
        ext_header(&ca_text, "X509v3 Key Usage"),
        "X509v3 Key Usage: critical"
    );
    assert!(ext_value(&ca_text, "X509v3 Key Usage").contains("Certificate Sign, CRL Sign"));

    assert_eq!(
        ext_header(&leaf_text, "X509v3 Key Usage"),
        "X509v3 Key Usage: critical"
    );
    assert_eq!(
        ext_value(&leaf_text, "X509v3 Key Usage"),
        "Digital Signature"
    );
    assert_eq!(
        ext_value(&leaf_text, "X509v3 Extended Key Usage"),
        "TLS Web Server Authentication"
    );
    assert_eq!(
        ext_value(&leaf_text, "X509v3 Basic Constraints"),
        "CA:FALSE"
    );
    let san = ext_value(&leaf_text, "X509v3 Subject Alternative Name");
    let want = if name_check == "-verify_ip" {
        format!("IP Address:{host}")
    } else {
        format!("DNS:{host}")
    };
    assert_eq!(san, want);
    assert!(
        leaf_text.contains("ASN1 OID: prime256v1"),
        "leaf key is P-256"
    );
}

#[test]
fn pipgate_ca_leaves_pass_strict_verification() {
    if !openssl_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Constrained as pipgate makes its CAs: the name constraints must not cost strictness.
    let scope = Scope::hosts(["localhost", "pypi.org", "127.0.0.1", "example.org"]).unwrap();
    let ca = Ca::init(&tmp.path().join("ca"), false, &scope).unwrap();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    for host in [
        "localhost",
        "pypi.org",
        "127.0.0.1",
        &format!("{}.example.org", "x".repeat(61)),
    ] {
        check(&leaves, host, tmp.path());
    }
    let (ok, ca_text) = openssl(&[
        "x509",
        "-in",
        tmp.path().join("ca/ca.pem").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok && ca_text.contains("ASN1 OID: prime256v1"), "{ca_text}");
    assert_eq!(
        ext_header(&ca_text, "X509v3 Name Constraints"),
        "X509v3 Name Constraints: critical"
    );
    let permitted = name_constraints(&ca_text);
    assert_eq!(
        permitted,
        [
            "Permitted:",
            "DNS:localhost",
            "DNS:pypi.org",
            "DNS:example.org",
            "IP:127.0.0.1/255.255.255.255",
            "Excluded:",
            "IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0",
        ],
        "{ca_text}"
    );
}

/// The lines of the Name Constraints extension in `openssl x509 -text`.
fn name_constraints(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("X509v3 Name Constraints"))
        .skip(1)
        .take_while(|l| !l.starts_with("X509v3 ") && !l.starts_with("Signature Algorithm"))
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What OpenSSL says of the leaf for `host` under `leaves`' CA (`-x509_strict`).
fn verify(leaves: &Leaves, host: &str, dir: &Path) -> (bool, String) {
    let (ca, leaf) = export(leaves, host, dir);
    openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        ca.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ])
}

#[test]
fn openssl_rejects_leaves_outside_the_name_constraints() {
    if !openssl_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scope = Scope::hosts(["pypi.org", "files.pythonhosted.org"]).unwrap();
    let leaves = Leaves::new(Ca::init(tmp.path(), false, &scope).unwrap(), alpn()).unwrap();
    // The key holder can sign anything; clients refuse what the constraints do not permit,
    // and agree with `Scope::permits` on every case.
    for (host, verdict) in [
        ("pypi.org", None),
        ("test.pypi.org", None),
        ("evilpypi.org", Some("permitted subtree violation")),
        ("evil.example", Some("permitted subtree violation")),
        ("127.0.0.1", Some("excluded subtree violation")),
        ("::1", Some("excluded subtree violation")),
    ] {
        let (ok, out) = verify(&leaves, host, tmp.path());
        assert_eq!(scope.permits(host), verdict.is_none(), "{host}");
        match verdict {
            None => assert!(ok && out.contains("leaf.pem: OK"), "{host}: {out}"),
            Some(why) => assert!(!ok && out.contains(why), "{host}: {out}"),
        }
    }
}

#[test]
fn leaves_of_a_ca_made_by_openssl_now_pass_strict_verification() {
    if !openssl_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("corp.pem"), tmp.path().join("corp.key"));
    let (ok, out) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        "30",
        "-subj",
        "/C=NL/O=Corp/CN=Corp Inspection CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    assert!(ok, "{out}");
    let ca = Ca::load(&cert, &key).unwrap();
    // The exported PEM is the same certificate openssl wrote.
    let (ok, fp_file) = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert!(ok);
    let leaves = Leaves::new(ca, alpn()).unwrap();
    check(&leaves, "files.pythonhosted.org", tmp.path());
    let (_, fp_export) = openssl(&[
        "x509",
        "-in",
        tmp.path().join("exported-ca.pem").to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert_eq!(fp_file, fp_export);
}

#[test]
fn leaves_of_the_rsa_fixture_ca_pass_strict_verification() {
    if !openssl_available() {
        return;
    }
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let ca = Ca::load(
        &data.join("openssl-rsa-ca.pem"),
        &data.join("openssl-rsa-ca.key"),
    )
    .unwrap();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    check(&leaves, "pypi.org", tmp.path());
}

#[test]
fn a_leaf_does_not_verify_under_another_ca() {
    // Control: the checks above can fail.
    if !openssl_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let leaves = Leaves::new(
        Ca::init(&tmp.path().join("a"), false, &Scope::Unconstrained).unwrap(),
        alpn(),
    )
    .unwrap();
    let other = Ca::init(&tmp.path().join("b"), false, &Scope::Unconstrained).unwrap();
    let (_, leaf) = export(&leaves, "pypi.org", tmp.path());
    let (ok, out) = openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        tmp.path().join("b/ca.pem").to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(!ok, "verified under {}: {out}", other.subject());
    let (ok, out) = openssl(&[
        "verify",
        "-x509_strict",
        "-verify_hostname",
        "evil.example",
        "-CAfile",
        tmp.path().join("a/ca.pem").to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(!ok, "wrong host accepted: {out}");
}

#[test]
fn a_ca_without_ski_loads_but_strict_verifiers_refuse_it() {
    // Documents why Ca::load warns about such a CA: nothing in the leaf can fix it.
    if !openssl_available() {
        return;
    }
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let ca = Ca::load(&data.join("no-ski-ca.pem"), &data.join("no-ski-ca.key")).unwrap();
    let leaves = Leaves::new(ca, alpn()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (ca, leaf) = export(&leaves, "pypi.org", tmp.path());
    let (ca, leaf) = (ca.to_str().unwrap(), leaf.to_str().unwrap());
    let (ok, out) = openssl(&["verify", "-CAfile", ca, leaf]);
    assert!(ok, "{out}");
    let (ok, out) = openssl(&["verify", "-x509_strict", "-CAfile", ca, leaf]);
    assert!(
        !ok && out.contains("Missing Subject Key Identifier"),
        "{out}"
    );
}
