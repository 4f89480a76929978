//! Self-made attestations (a test Fulcio-like CA and Rekor-like log in a trusted root of their
//! own) cover what real data cannot: a certificate of another publisher than the one claimed,
//! a certificate expired at the integrated time, log entries that do not verify, wrong
//! subjects, and the minting helper provwire's tests use.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pipgate_provenance::fixtures::{self, Authority, Spec, Tamper, VALIDITY};
use pipgate_provenance::{verify, Error, Provenance, Publisher, TrustedRoot};

const FILE: &str = "requests-2.32.0-py3-none-any.whl";
const DIGEST: [u8; 32] = [0xab; 32];

fn github() -> Publisher {
    Publisher::github("psf/requests", "publish.yml")
}

fn run(authority: &Authority, spec: &Spec) -> Result<Publisher, Error> {
    run_json(authority, &authority.provenance(spec))
}

/// `provenance` (JSON) verified against the authority's root.
fn run_json(authority: &Authority, provenance: &[u8]) -> Result<Publisher, Error> {
    let root = TrustedRoot::from_json(&authority.trusted_root_json()).unwrap();
    let provenance = Provenance::from_json(provenance).unwrap();
    verify(&provenance, FILE, &DIGEST, &root).map(|v| v.publisher)
}

#[test]
fn genuine_fixtures_verify_for_every_publisher_kind() {
    let authority = Authority::new();
    let circleci = Publisher {
        project_id: Some("fdd9283f-e619-46af-8f9c-851f7d3e8b2b".into()),
        pipeline_definition_id: Some("8e4f8ab2-8d7c-4827-9f15-de076d6d647f".into()),
        vcs_origin: Some("github.com/psf/requests".into()),
        vcs_ref: Some("refs/heads/main".into()),
        ..serde_json::from_str(r#"{"kind":"CircleCI"}"#).unwrap()
    };
    for publisher in [
        github(),
        Publisher::gitlab("group/sub/requests", "ci/release.yml"),
        Publisher::google("release@requests.iam.gserviceaccount.com"),
        circleci,
    ] {
        let got = run(&authority, &Spec::new(FILE, &DIGEST, &publisher));
        assert_eq!(got.as_ref(), Ok(&publisher), "{publisher}");
    }
}

#[test]
fn attest_mints_a_provenance_and_its_root() {
    let (provenance, root) = fixtures::attest(FILE, &DIGEST, &github());
    let root = TrustedRoot::from_json(&root).unwrap();
    let provenance = Provenance::from_json(&provenance).unwrap();
    let verified = verify(&provenance, FILE, &DIGEST, &root).unwrap();
    assert_eq!(verified.publisher, github());
    assert_eq!(verified.attestations, 1);
    assert_eq!(
        verified.predicate_types,
        ["https://docs.pypi.org/attestations/publish/v1"]
    );
    // Not against the production root, nor another authority's.
    assert!(verify(&provenance, FILE, &DIGEST, TrustedRoot::production()).is_err());
    let other = TrustedRoot::from_json(&Authority::new().trusted_root_json()).unwrap();
    assert!(matches!(
        verify(&provenance, FILE, &DIGEST, &other),
        Err(Error::LogEntry(_))
    ));
}

#[test]
fn a_certificate_of_another_publisher_is_refused() {
    let authority = Authority::new();
    for signed_by in [
        Publisher::github("evil/requests", "publish.yml"),
        Publisher::github("psf/requests", "other.yml"),
        Publisher::gitlab("psf/requests", "publish.yml"),
        Publisher::google("psf@example.com"),
    ] {
        let spec = Spec {
            signed_by: signed_by.clone(),
            ..Spec::new(FILE, &DIGEST, &github())
        };
        let err = run(&authority, &spec).unwrap_err();
        assert!(matches!(err, Error::Publisher { .. }), "{signed_by}: {err}");
        assert!(err
            .to_string()
            .contains("github.com/psf/requests (publish.yml)"));
    }
}

#[test]
fn a_certificate_expired_at_the_integrated_time_is_refused() {
    let authority = Authority::new();
    for after in [-1, VALIDITY + 1, 86_400] {
        let spec = Spec {
            integrated_after: after,
            ..Spec::new(FILE, &DIGEST, &github())
        };
        let err = run(&authority, &spec).unwrap_err();
        assert!(matches!(err, Error::Expired { .. }), "{after}: {err}");
    }
    for after in [0, VALIDITY] {
        let spec = Spec {
            integrated_after: after,
            ..Spec::new(FILE, &DIGEST, &github())
        };
        assert!(run(&authority, &spec).is_ok(), "{after}");
    }
}

#[test]
fn a_log_entry_that_does_not_verify_is_refused() {
    let authority = Authority::new();
    for (tamper, what) in [
        (Tamper::SignedEntryTimestamp, "signed entry timestamp"),
        (Tamper::InclusionProof, "inclusion proof"),
        (Tamper::Checkpoint, "checkpoint"),
    ] {
        let spec = Spec {
            tamper,
            ..Spec::new(FILE, &DIGEST, &github())
        };
        let err = run(&authority, &spec).unwrap_err();
        assert!(
            matches!(&err, Error::LogEntry(m) if m.contains(what)),
            "{tamper:?}: {err}"
        );
    }
    let spec = Spec {
        tamper: Tamper::EntryBody,
        ..Spec::new(FILE, &DIGEST, &github())
    };
    assert!(matches!(run(&authority, &spec), Err(Error::LogBinding(_))));
    let spec = Spec {
        tamper: Tamper::Signature,
        ..Spec::new(FILE, &DIGEST, &github())
    };
    assert_eq!(run(&authority, &spec), Err(Error::Signature));
}

#[test]
fn a_wrong_subject_is_refused() {
    let authority = Authority::new();
    let spec = Spec::new("requests-2.32.1-py3-none-any.whl", &DIGEST, &github());
    assert!(matches!(
        run(&authority, &spec),
        Err(Error::SubjectName { .. })
    ));
    let spec = Spec::new(FILE, &[0xac; 32], &github());
    assert!(matches!(
        run(&authority, &spec),
        Err(Error::SubjectDigest { .. })
    ));
    let spec = Spec::new("requests-2.32.0-py3-none-any", &DIGEST, &github());
    assert!(matches!(run(&authority, &spec), Err(Error::Statement(_))));
    let spec = Spec {
        predicate_type: "https://example.com/predicate/v1".into(),
        ..Spec::new(FILE, &DIGEST, &github())
    };
    assert!(matches!(run(&authority, &spec), Err(Error::Statement(_))));
    // Equal once parsed as packaging parses file names: accepted, as pypi-attestations does.
    let spec = Spec::new("Requests-2.32.0.0-py3-none-any.whl", &DIGEST, &github());
    assert!(run(&authority, &spec).is_ok());
}

#[test]
fn bundles_of_two_publishers_or_an_unknown_kind_are_refused() {
    let authority = Authority::new();
    let root = TrustedRoot::from_json(&authority.trusted_root_json()).unwrap();
    let other = Publisher::github("psf/requests-fork", "publish.yml");
    let json = serde_json::json!({
        "version": 1,
        "attestation_bundles": [
            {"publisher": github(), "attestations": [authority.attestation(&Spec::new(FILE, &DIGEST, &github()))]},
            {"publisher": other, "attestations": [authority.attestation(&Spec::new(FILE, &DIGEST, &other))]},
        ],
    });
    let provenance = Provenance::from_json(json.to_string().as_bytes()).unwrap();
    assert!(matches!(
        verify(&provenance, FILE, &DIGEST, &root),
        Err(Error::MultiplePublishers(..))
    ));

    let json = serde_json::json!({
        "version": 1,
        "attestation_bundles": [
            {"publisher": {"kind": "ActiveState", "repository": "psf/requests"},
             "attestations": [authority.attestation(&Spec::new(FILE, &DIGEST, &github()))]},
        ],
    });
    let provenance = Provenance::from_json(json.to_string().as_bytes()).unwrap();
    assert_eq!(
        verify(&provenance, FILE, &DIGEST, &root),
        Err(Error::UnsupportedPublisher("ActiveState".into()))
    );

    for empty in [
        r#"{"version":1,"attestation_bundles":[]}"#,
        r#"{"version":1,"attestation_bundles":[{"publisher":{"kind":"GitHub","repository":"a/b","workflow":"c"},"attestations":[]}]}"#,
    ] {
        let provenance = Provenance::from_json(empty.as_bytes()).unwrap();
        assert_eq!(
            verify(&provenance, FILE, &DIGEST, &root),
            Err(Error::NoAttestations)
        );
    }
    assert!(Provenance::from_json(br#"{"version":2,"attestation_bundles":[]}"#).is_err());
}

/// `edit` applied to the transparency entry of an otherwise genuine attestation.
fn with_entry(
    authority: &Authority,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result<Publisher, Error> {
    let genuine = authority.provenance(&Spec::new(FILE, &DIGEST, &github()));
    let mut provenance: serde_json::Value = serde_json::from_slice(&genuine).unwrap();
    edit(
        &mut provenance["attestation_bundles"][0]["attestations"][0]["verification_material"]
            ["transparency_entries"][0],
    );
    run_json(authority, provenance.to_string().as_bytes())
}

#[test]
fn a_rekor_v2_entry_is_refused_for_want_of_a_time() {
    let authority = Authority::new();
    assert_eq!(with_entry(&authority, |_| {}), Ok(github()));
    // As Rekor v2 writes it: kind version 0.0.2, no integrated time, no signed entry timestamp.
    let err = with_entry(&authority, |entry| {
        entry["kindVersion"]["version"] = "0.0.2".into();
        let entry = entry.as_object_mut().unwrap();
        entry.remove("integratedTime");
        entry.remove("inclusionPromise");
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::LogEntry(m) if m.contains("Rekor v2 entry (dsse/0.0.2)")),
        "{err}"
    );
    // A v1 entry without its time is refused too (0 is outside the log key's validity).
    let err = with_entry(&authority, |entry| {
        entry.as_object_mut().unwrap().remove("integratedTime");
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::LogEntry(m) if m.contains("integrated time 0 is outside")),
        "{err}"
    );
}

#[test]
fn two_attestations_of_one_publisher_both_verify() {
    let authority = Authority::new();
    let root = TrustedRoot::from_json(&authority.trusted_root_json()).unwrap();
    let slsa = Spec {
        predicate_type: "https://slsa.dev/provenance/v1".into(),
        ..Spec::new(FILE, &DIGEST, &github())
    };
    let broken = Spec {
        tamper: Tamper::Signature,
        ..Spec::new(FILE, &DIGEST, &github())
    };
    let bundle = |second: &Spec| {
        serde_json::json!({"version": 1, "attestation_bundles": [{"publisher": github(), "attestations": [
            authority.attestation(&Spec::new(FILE, &DIGEST, &github())), authority.attestation(second)]}]})
    };
    let provenance = Provenance::from_json(bundle(&slsa).to_string().as_bytes()).unwrap();
    let verified = verify(&provenance, FILE, &DIGEST, &root).unwrap();
    assert_eq!(verified.attestations, 2);
    // One bad attestation fails the object.
    let provenance = Provenance::from_json(bundle(&broken).to_string().as_bytes()).unwrap();
    assert_eq!(
        verify(&provenance, FILE, &DIGEST, &root),
        Err(Error::Signature)
    );
}

#[test]
fn a_certificate_without_a_valid_sct_is_refused() {
    let authority = Authority::new();
    let spec = Spec {
        tamper: Tamper::Sct,
        ..Spec::new(FILE, &DIGEST, &github())
    };
    assert!(matches!(run(&authority, &spec), Err(Error::Sct(_))));
    let spec = Spec {
        tamper: Tamper::SanNotCritical,
        ..Spec::new(FILE, &DIGEST, &github())
    };
    assert!(matches!(run(&authority, &spec), Err(Error::Certificate(_))));
    // A root that names no CT log vouches for no certificate.
    let mut root: serde_json::Value =
        serde_json::from_slice(&authority.trusted_root_json()).unwrap();
    root["ctlogs"] = serde_json::json!([]);
    let root = TrustedRoot::from_json(root.to_string().as_bytes()).unwrap();
    let provenance =
        Provenance::from_json(&authority.provenance(&Spec::new(FILE, &DIGEST, &github()))).unwrap();
    assert!(matches!(
        verify(&provenance, FILE, &DIGEST, &root),
        Err(Error::Sct(_))
    ));
}

#[test]
fn more_attestations_than_the_cap_are_refused_unread() {
    let authority = Authority::new();
    let one = authority.attestation(&Spec::new(FILE, &DIGEST, &github()));
    let object = |n: usize| {
        serde_json::json!({"version": 1, "attestation_bundles": [
            {"publisher": github(), "attestations": vec![one.clone(); n]}]})
        .to_string()
    };
    let root = TrustedRoot::from_json(&authority.trusted_root_json()).unwrap();
    let at_cap = Provenance::from_json(object(pipgate_provenance::MAX_ATTESTATIONS).as_bytes());
    assert_eq!(
        verify(&at_cap.unwrap(), FILE, &DIGEST, &root)
            .unwrap()
            .attestations,
        pipgate_provenance::MAX_ATTESTATIONS
    );
    assert!(matches!(
        Provenance::from_json(object(pipgate_provenance::MAX_ATTESTATIONS + 1).as_bytes()),
        Err(Error::Malformed(_))
    ));
}
