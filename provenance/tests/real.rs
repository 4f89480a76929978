//! The genuine PyPI attestations of pypi-attestations' test assets verify offline against the
//! production root (the staging ones against the staging root), and each is refused after any
//! single byte of the file, the statement, the signature or the certificate is changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use pipgate_provenance::{verify, verify_attestation, Error, Provenance, Publisher, TrustedRoot};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A real distribution file and where its attestation comes from.
struct Case {
    file: &'static str,
    /// A `.provenance` object (publisher inside) or a bare attestation and its publisher.
    source: Source,
}

enum Source {
    Provenance(&'static str),
    Attestation(&'static str, fn() -> Publisher),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            file: "pypi_attestations-0.0.19.tar.gz",
            source: Source::Provenance("pypi_attestations-0.0.19.tar.gz.provenance"),
        },
        Case {
            file: "gcb_attestation_test-0.0.0.tar.gz",
            source: Source::Provenance("gcb_attestation_test-0.0.0.tar.gz.provenance"),
        },
        Case {
            file: "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl",
            source: Source::Provenance(
                "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl.provenance",
            ),
        },
        Case {
            file: "gitlab_oidc_project-0.0.3.tar.gz",
            source: Source::Attestation(
                "gitlab_oidc_project-0.0.3.tar.gz.publish.attestation",
                || Publisher::gitlab("facutuesca/gitlab-oidc-project", ".gitlab-ci.yml"),
            ),
        },
        Case {
            file: "pypi_attestations-0.0.19.tar.gz",
            source: Source::Attestation("pypi_attestations-0.0.19.tar.gz.slsa.attestation", || {
                Publisher::github("trailofbits/pypi-attestations", "release.yml")
            }),
        },
        Case {
            file: "pypi_attestations-0.0.19.tar.gz",
            source: Source::Attestation(
                "pypi_attestations-0.0.19.tar.gz.publish.attestation",
                || Publisher::github("trailofbits/pypi-attestations", "release.yml"),
            ),
        },
        Case {
            file: "pypi_attestation_models-0.0.4a2.tar.gz",
            source: Source::Attestation(
                "pypi_attestation_models-0.0.4a2.tar.gz.attestation",
                || Publisher::github("trailofbits/pypi-attestation-models", "release.yml"),
            ),
        },
    ]
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join("assets").join(name)).unwrap()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The case's provenance as JSON (a bare attestation is wrapped in a one-bundle object).
fn provenance_json(dir: &Path, case: &Case) -> Value {
    match &case.source {
        Source::Provenance(name) => serde_json::from_slice(&read(dir, name)).unwrap(),
        Source::Attestation(name, publisher) => serde_json::json!({
            "version": 1,
            "attestation_bundles": [{
                "publisher": publisher(),
                "attestations": [serde_json::from_slice::<Value>(&read(dir, name)).unwrap()],
            }],
        }),
    }
}

fn check(json: &Value, file: &str, digest: &[u8; 32]) -> Result<Publisher, Error> {
    let provenance = Provenance::from_json(json.to_string().as_bytes())?;
    verify(&provenance, file, digest, TrustedRoot::production()).map(|v| v.publisher)
}

#[test]
fn the_committed_root_is_the_sigstore_wheels() {
    let Some(dir) = support::testdata() else {
        return;
    };
    let wheel = std::fs::read(dir.join("trusted_root.json")).unwrap();
    assert!(
        wheel == include_bytes!("../data/trusted_root.json"),
        "provenance/data/trusted_root.json differs from the sigstore wheel's production root"
    );
}

#[test]
fn genuine_attestations_verify_offline() {
    let Some(dir) = support::testdata() else {
        return;
    };
    for case in cases() {
        let json = provenance_json(&dir, &case);
        let digest = sha256(&read(&dir, case.file));
        let claimed: Publisher =
            serde_json::from_value(json["attestation_bundles"][0]["publisher"].clone()).unwrap();
        match check(&json, case.file, &digest) {
            Ok(publisher) => assert_eq!(publisher, claimed, "{}", case.file),
            Err(e) => panic!("{}: {e}", case.file),
        }
    }
}

#[test]
fn a_changed_byte_of_the_file_is_refused() {
    let Some(dir) = support::testdata() else {
        return;
    };
    for case in cases() {
        let json = provenance_json(&dir, &case);
        let file = read(&dir, case.file);
        for at in [0, file.len() / 2, file.len() - 1] {
            let mut changed = file.clone();
            changed[at] ^= 0x01;
            assert!(
                matches!(
                    check(&json, case.file, &sha256(&changed)),
                    Err(Error::SubjectDigest { .. })
                ),
                "{} byte {at}",
                case.file
            );
        }
    }
}

/// Flips one bit of every byte, in turn, of the base64 field `field` of the first attestation's
/// `section`, and expects each variant refused.
fn every_byte_refused(section: &str, field: &str) {
    let Some(dir) = support::testdata() else {
        return;
    };
    for case in cases() {
        let json = provenance_json(&dir, &case);
        let digest = sha256(&read(&dir, case.file));
        let original = STANDARD
            .decode(
                json["attestation_bundles"][0]["attestations"][0][section][field]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        for at in 0..original.len() {
            let mut changed = original.clone();
            changed[at] ^= 0x01;
            let mut json = json.clone();
            json["attestation_bundles"][0]["attestations"][0][section][field] =
                Value::String(STANDARD.encode(&changed));
            if let Ok(p) = check(&json, case.file, &digest) {
                panic!(
                    "{} {field} byte {at} changed, still verified as {p}",
                    case.file
                );
            }
        }
    }
}

#[test]
fn a_changed_byte_of_the_statement_is_refused() {
    every_byte_refused("envelope", "statement");
}

#[test]
fn a_changed_byte_of_the_signature_is_refused() {
    every_byte_refused("envelope", "signature");
}

#[test]
fn a_changed_byte_of_the_certificate_is_refused() {
    every_byte_refused("verification_material", "certificate");
}

#[test]
fn another_publisher_is_refused() {
    let Some(dir) = support::testdata() else {
        return;
    };
    let case = &cases()[0];
    let digest = sha256(&read(&dir, case.file));
    for other in [
        Publisher::github("trailofbits/pypi-attestations", "other.yml"),
        Publisher::github("evil/pypi-attestations", "release.yml"),
        Publisher::gitlab("trailofbits/pypi-attestations", "release.yml"),
        Publisher::google("someone@example.com"),
    ] {
        let mut json = provenance_json(&dir, case);
        json["attestation_bundles"][0]["publisher"] = serde_json::to_value(&other).unwrap();
        assert!(
            matches!(
                check(&json, case.file, &digest),
                Err(Error::Publisher { .. })
            ),
            "{other}"
        );
    }
}

#[test]
fn another_file_name_is_refused() {
    let Some(dir) = support::testdata() else {
        return;
    };
    let case = &cases()[0];
    let json = provenance_json(&dir, case);
    let digest = sha256(&read(&dir, case.file));
    assert!(check(&json, "pypi_attestations-0.0.19.tar.gz", &digest).is_ok());
    // Same parts once parsed as packaging does: accepted, as pypi-attestations accepts it.
    assert!(check(&json, "PyPI.Attestations-0.0.19.0.tar.gz", &digest).is_ok());
    for other in [
        "pypi_attestations-0.0.20.tar.gz",
        "pypi_attestations-0.0.19.zip",
        "pypi_attestation-0.0.19.tar.gz",
        "pypi_attestations-0.0.19-py3-none-any.whl",
    ] {
        assert!(
            matches!(check(&json, other, &digest), Err(Error::SubjectName { .. })),
            "{other}"
        );
    }
}

#[test]
fn staging_attestations_verify_against_the_staging_root_only() {
    let Some(dir) = support::testdata() else {
        return;
    };
    let staging =
        TrustedRoot::from_json(&std::fs::read(dir.join("staging_root.json")).unwrap()).unwrap();
    let file = "rfc8785-0.1.2-py3-none-any.whl";
    let digest = sha256(&read(&dir, file));
    for name in [
        "rfc8785-0.1.2-py3-none-any.whl.attestation",
        "rfc8785-0.1.2-py3-none-any.whl.publish.attestation",
    ] {
        let signer = verify_attestation(&read(&dir, name), file, &digest, &staging).unwrap();
        assert_eq!(signer.identities, ["william@yossarian.net"]);
        assert_eq!(
            signer.issuer.as_deref(),
            Some("https://github.com/login/oauth")
        );
        assert!(
            verify_attestation(&read(&dir, name), file, &digest, TrustedRoot::production())
                .is_err()
        );
    }
    // The subject names the tag sets in another order than this file name: same wheel.
    let spt3g = read(
        &dir,
        "spt3g-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl.publish.attestation",
    );
    let digest: [u8; 32] = (0..32)
        .map(|i| {
            u8::from_str_radix(
                &"d2772f9a5199f05ed1be8d9aa78b879e51772e3ead9d73fe8057257b1aec7cf8"
                    [2 * i..2 * i + 2],
                16,
            )
            .unwrap()
        })
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let signer = verify_attestation(
        &spt3g,
        "spt3g-1.0-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        &digest,
        &staging,
    )
    .unwrap();
    assert_eq!(signer.identities, ["william@yossarian.net"]);
}

#[test]
fn a_changed_log_entry_is_refused() {
    let Some(dir) = support::testdata() else {
        return;
    };
    let case = &cases()[0];
    let digest = sha256(&read(&dir, case.file));
    let genuine = provenance_json(&dir, case);
    assert!(check(&genuine, case.file, &digest).is_ok());
    let flip_b64 = |v: &mut Value| {
        let mut bytes = STANDARD.decode(v.as_str().unwrap()).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        *v = Value::String(STANDARD.encode(bytes));
    };
    let bump = |v: &mut Value| {
        let n: i64 = v.as_str().unwrap().parse().unwrap();
        *v = Value::String((n + 1).to_string());
    };
    type Change = Box<dyn Fn(&mut Value)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "signed entry timestamp",
            Box::new(move |e| flip_b64(&mut e["inclusionPromise"]["signedEntryTimestamp"])),
        ),
        (
            "integrated time",
            Box::new(move |e| bump(&mut e["integratedTime"])),
        ),
        ("log index", Box::new(move |e| bump(&mut e["logIndex"]))),
        (
            "log id",
            Box::new(move |e| flip_b64(&mut e["logId"]["keyId"])),
        ),
        (
            "body",
            Box::new(move |e| flip_b64(&mut e["canonicalizedBody"])),
        ),
        (
            "proof hash",
            Box::new(move |e| flip_b64(&mut e["inclusionProof"]["hashes"][3])),
        ),
        (
            "proof root",
            Box::new(move |e| flip_b64(&mut e["inclusionProof"]["rootHash"])),
        ),
        (
            "proof index",
            Box::new(move |e| bump(&mut e["inclusionProof"]["logIndex"])),
        ),
        (
            "tree size",
            Box::new(move |e| bump(&mut e["inclusionProof"]["treeSize"])),
        ),
        (
            "checkpoint",
            Box::new(|e| {
                let v = &mut e["inclusionProof"]["checkpoint"]["envelope"];
                let text = v.as_str().unwrap().replacen("\n3", "\n4", 1);
                *v = Value::String(text);
            }),
        ),
        (
            "kind",
            Box::new(|e| e["kindVersion"]["version"] = "0.0.2".into()),
        ),
        (
            "no promise",
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("inclusionPromise");
            }),
        ),
        (
            "no proof",
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("inclusionProof");
            }),
        ),
        (
            "no checkpoint",
            Box::new(|e| {
                e["inclusionProof"]
                    .as_object_mut()
                    .unwrap()
                    .remove("checkpoint");
            }),
        ),
    ];
    for (what, change) in changes {
        let mut json = genuine.clone();
        change(
            &mut json["attestation_bundles"][0]["attestations"][0]["verification_material"]
                ["transparency_entries"][0],
        );
        assert_ne!(json, genuine, "{what}");
        match Provenance::from_json(json.to_string().as_bytes()) {
            Err(_) => {}
            Ok(p) => assert!(
                verify(&p, case.file, &digest, TrustedRoot::production()).is_err(),
                "{what} changed, still verified"
            ),
        }
    }
}

/// Upstream bytes reach `from_json` and `verify`: every prefix of a real provenance object,
/// and many single-byte changes of it, are read and verified without a panic (and refused).
#[test]
fn prefixes_and_changed_bytes_never_panic() {
    let Some(dir) = support::testdata() else {
        return;
    };
    let case = &cases()[0];
    let digest = sha256(&read(&dir, case.file));
    let json = match &case.source {
        Source::Provenance(name) => read(&dir, name),
        Source::Attestation(..) => unreachable!(),
    };
    let try_it = |bytes: &[u8]| -> bool {
        Provenance::from_json(bytes)
            .and_then(|p| verify(&p, case.file, &digest, TrustedRoot::production()))
            .is_ok()
    };
    assert!(try_it(&json));
    for end in 0..json.len() - 1 {
        // The JSON's last byte is a newline: any shorter prefix that is not the whole object
        // fails to parse.
        if json[end..].iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        assert!(!try_it(&json[..end]), "prefix of {end} bytes verified");
    }
    // A deterministic walk over positions and values (xorshift), no randomness in the test.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % json.len() as u64) as usize;
        let value = (x >> 32) as u8;
        if json[at] == value {
            continue;
        }
        let mut changed = json.clone();
        changed[at] = value;
        // A change inside JSON whitespace or a publisher's unverified field may still verify;
        // what matters here is that nothing panics.
        let _ = try_it(&changed);
    }
}
