//! Cross-check with pypi-attestations' own verifier (the venv scripts/setup-testdata.sh
//! builds): on the genuine real attestations and on variants with one byte of the file digest,
//! the statement, the signature or the certificate changed, and with another publisher claimed,
//! both verifiers agree on every case.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use pipgate_provenance::fixtures::{Authority, Spec, Tamper, VALIDITY};
use pipgate_provenance::{verify, Provenance, Publisher, TrustedRoot};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// (file, provenance object or bare attestation, publisher for a bare attestation)
const CASES: &[(&str, &str, Option<&str>)] = &[
    (
        "pypi_attestations-0.0.19.tar.gz",
        "pypi_attestations-0.0.19.tar.gz.provenance",
        None,
    ),
    (
        "gcb_attestation_test-0.0.0.tar.gz",
        "gcb_attestation_test-0.0.0.tar.gz.provenance",
        None,
    ),
    (
        "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl",
        "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl.provenance",
        None,
    ),
    (
        "gitlab_oidc_project-0.0.3.tar.gz",
        "gitlab_oidc_project-0.0.3.tar.gz.publish.attestation",
        Some(
            r#"{"kind":"GitLab","repository":"facutuesca/gitlab-oidc-project","workflow_filepath":".gitlab-ci.yml"}"#,
        ),
    ),
    (
        "pypi_attestations-0.0.19.tar.gz",
        "pypi_attestations-0.0.19.tar.gz.slsa.attestation",
        Some(
            r#"{"kind":"GitHub","repository":"trailofbits/pypi-attestations","workflow":"release.yml"}"#,
        ),
    ),
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs tests/oracle.py on `input`; per case, `None` when pypi-attestations verified it.
fn run_oracle(python: &std::path::Path, input: &[Value]) -> Vec<Option<String>> {
    let home = std::env::temp_dir().join(format!("pipgate-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut child = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle.py"))
        // Offline and hermetic: its own HOME (no TUF cache but the wheel's embedded roots).
        .env_clear()
        .env("HOME", &home)
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&home);
    assert!(out.status.success(), "oracle failed");
    let oracle: Vec<Option<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(oracle.len(), input.len());
    oracle
}

#[test]
fn pipgate_and_pypi_attestations_agree() {
    let Some(dir) = support::testdata() else {
        return;
    };
    let python = dir.join("venv/bin/python");
    let assets = dir.join("assets");
    // (label, attestation, publisher (pypi-attestations' field names), file name, digest)
    let mut cases: Vec<(String, Value, Value, String, [u8; 32])> = Vec::new();
    for (file, source, publisher) in CASES {
        let digest: [u8; 32] = Sha256::digest(std::fs::read(assets.join(file)).unwrap()).into();
        let json: Value =
            serde_json::from_slice(&std::fs::read(assets.join(source)).unwrap()).unwrap();
        let (attestation, publisher) = match publisher {
            None => (
                json["attestation_bundles"][0]["attestations"][0].clone(),
                json["attestation_bundles"][0]["publisher"].clone(),
            ),
            Some(p) => (json, serde_json::from_str(p).unwrap()),
        };
        let mut push = |label: String, a: Value, p: Value, name: &str, d: [u8; 32]| {
            cases.push((label, a, p, name.to_string(), d));
        };
        push(
            format!("{source} genuine"),
            attestation.clone(),
            publisher.clone(),
            file,
            digest,
        );
        let mut other_digest = digest;
        other_digest[31] ^= 1;
        push(
            format!("{source} digest"),
            attestation.clone(),
            publisher.clone(),
            file,
            other_digest,
        );
        let mut other_publisher = publisher.clone();
        if let Some(repo) = other_publisher.get_mut("repository") {
            *repo = Value::String(format!("{}-fork", repo.as_str().unwrap()));
        } else if let Some(email) = other_publisher.get_mut("email") {
            *email = "other@example.com".into();
        } else {
            other_publisher["project_id"] = "00000000-0000-0000-0000-000000000000".into();
        }
        push(
            format!("{source} publisher"),
            attestation.clone(),
            other_publisher,
            file,
            digest,
        );
        for (section, field) in [
            ("envelope", "statement"),
            ("envelope", "signature"),
            ("verification_material", "certificate"),
        ] {
            let bytes = STANDARD
                .decode(attestation[section][field].as_str().unwrap())
                .unwrap();
            for at in [0, 1, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
                let mut changed = bytes.clone();
                changed[at] ^= 0x01;
                let mut a = attestation.clone();
                a[section][field] = Value::String(STANDARD.encode(&changed));
                push(
                    format!("{source} {field} byte {at}"),
                    a,
                    publisher.clone(),
                    file,
                    digest,
                );
            }
        }
    }

    let input: Vec<Value> = cases
        .iter()
        .map(|(_, a, p, name, d)| json!({"attestation": a, "publisher": p, "name": name, "digest": hex(d)}))
        .collect();
    let oracle = run_oracle(&python, &input);

    let mut accepted = 0;
    for ((label, a, p, name, d), theirs) in cases.iter().zip(&oracle) {
        let mut p = p.clone();
        // Our Publisher reads GitLab's workflow_filepath as workflow (alias): same JSON works.
        if let Some(obj) = p.as_object_mut() {
            obj.retain(|_, v| !v.is_null());
        }
        let provenance =
            json!({"version": 1, "attestation_bundles": [{"publisher": p, "attestations": [a]}]});
        let ours = Provenance::from_json(provenance.to_string().as_bytes())
            .and_then(|prov| verify(&prov, name, d, TrustedRoot::production()));
        assert_eq!(
            ours.is_ok(),
            theirs.is_none(),
            "{label}: pipgate {ours:?}, pypi-attestations {theirs:?}"
        );
        accepted += usize::from(theirs.is_none());
    }
    assert_eq!(accepted, CASES.len(), "exactly the genuine cases verify");
    eprintln!("{} cases, both verifiers agree", cases.len());
}

/// The self-made fixtures, judged by pypi-attestations against the fixtures' own trusted root:
/// the genuine ones verify there too, and each broken variant is refused there too.
#[test]
fn the_fixtures_are_judged_alike_by_pypi_attestations() {
    let Some(dir) = support::testdata() else {
        return;
    };
    let authority = Authority::new();
    let root_json = authority.trusted_root_json();
    let root_file = tempfile_path("fixture-root.json");
    std::fs::write(&root_file, &root_json).unwrap();
    let root = TrustedRoot::from_json(&root_json).unwrap();
    let file = "requests-2.32.0-py3-none-any.whl";
    let digest = [0x5a; 32];
    let github = Publisher::github("psf/requests", "publish.yml");
    let gitlab = Publisher::gitlab("psf/sub/requests", ".gitlab-ci.yml");
    let google = Publisher::google("release@requests.iam.gserviceaccount.com");
    let circleci: Publisher = serde_json::from_value(json!({
        "kind": "CircleCI",
        "project_id": "fdd9283f-e619-46af-8f9c-851f7d3e8b2b",
        "pipeline_definition_id": "8e4f8ab2-8d7c-4827-9f15-de076d6d647f",
        "vcs_origin": "github.com/psf/requests",
        "vcs_ref": "refs/heads/main",
    }))
    .unwrap();
    let genuine = |p: &Publisher| Spec::new(file, &digest, p);
    let mut specs: Vec<(String, Spec)> = vec![
        ("GitHub".into(), genuine(&github)),
        ("GitLab".into(), genuine(&gitlab)),
        ("Google".into(), genuine(&google)),
        ("CircleCI".into(), genuine(&circleci)),
    ];
    let genuine_count = specs.len();
    for tamper in [
        Tamper::SignedEntryTimestamp,
        Tamper::InclusionProof,
        Tamper::Checkpoint,
        Tamper::EntryBody,
        Tamper::Signature,
        Tamper::Sct,
        Tamper::SanNotCritical,
    ] {
        specs.push((
            format!("{tamper:?}"),
            Spec {
                tamper,
                ..genuine(&github)
            },
        ));
    }
    for after in [-1, VALIDITY + 1] {
        specs.push((
            format!("integrated {after}s after"),
            Spec {
                integrated_after: after,
                ..genuine(&github)
            },
        ));
    }
    for (label, signed_by) in [
        (
            "another repository",
            Publisher::github("evil/requests", "publish.yml"),
        ),
        (
            "another workflow",
            Publisher::github("psf/requests", "other.yml"),
        ),
        (
            "GitLab for GitHub",
            Publisher::gitlab("psf/requests", "publish.yml"),
        ),
    ] {
        specs.push((
            label.into(),
            Spec {
                signed_by,
                ..genuine(&github)
            },
        ));
    }
    specs.push((
        "another file".into(),
        Spec::new("requests-2.32.1-py3-none-any.whl", &digest, &github),
    ));
    specs.push((
        "another digest".into(),
        Spec::new(file, &[0x5b; 32], &github),
    ));

    let mut input = Vec::new();
    for (_, spec) in &specs {
        let mut publisher = serde_json::to_value(&spec.publisher).unwrap();
        if spec.publisher.kind == "GitLab" {
            let obj = publisher.as_object_mut().unwrap();
            let workflow = obj.remove("workflow").unwrap();
            obj.insert("workflow_filepath".into(), workflow);
        }
        input.push(json!({
            "attestation": authority.attestation(spec),
            "publisher": publisher,
            "name": file,
            "digest": hex(&digest),
            "root": root_file,
        }));
    }
    // The genuine GitHub one with its entry as Rekor v2 writes it (kind version 0.0.2, no
    // integrated time, no signed entry timestamp): no verified time, both refuse it.
    let mut v2 = input[0].clone();
    let entry = &mut v2["attestation"]["verification_material"]["transparency_entries"][0];
    entry["kindVersion"]["version"] = "0.0.2".into();
    let entry = entry.as_object_mut().unwrap();
    entry.remove("integratedTime");
    entry.remove("inclusionPromise");
    specs.push(("Rekor v2 entry".into(), genuine(&github)));
    input.push(v2);
    let oracle = run_oracle(&dir.join("venv/bin/python"), &input);
    let _ = std::fs::remove_file(&root_file);
    for (((label, spec), case), theirs) in specs.iter().zip(&input).zip(&oracle) {
        let provenance = json!({"version": 1, "attestation_bundles": [{
            "publisher": spec.publisher, "attestations": [case["attestation"]]}]});
        let ours = Provenance::from_json(provenance.to_string().as_bytes())
            .and_then(|p| verify(&p, file, &digest, &root));
        assert_eq!(
            ours.is_ok(),
            theirs.is_none(),
            "{label}: pipgate {ours:?}, pypi-attestations {theirs:?}"
        );
        assert_eq!(
            ours.is_ok(),
            specs.iter().take(genuine_count).any(|(l, _)| l == label),
            "{label}"
        );
    }
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("pipgate-oracle-{}-{name}", std::process::id()))
}
