use super::*;

fn rule(require: &[&str], pin: bool) -> Provenance {
    Provenance::build(
        Config {
            verify: Verify::Offered,
            require: require.iter().map(|s| s.to_string()).collect(),
            pin_publisher: pin,
            pins: None,
            trusted_root: None,
            mode: None,
        },
        Mode::Enforce,
    )
    .unwrap()
}

fn facts<'a>(prov: Option<&'a str>, att: Option<&'a Attestation>) -> FileFacts<'a> {
    FileFacts {
        filename: "requests-2.0-py3-none-any.whl",
        sha256: Some("ab"),
        provenance: prov,
        attestation: att,
        ..FileFacts::default()
    }
}

const NOW: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;
const URL: &str =
    "https://pypi.org/integrity/requests/2.0/requests-2.0-py3-none-any.whl/provenance";

#[test]
fn an_invalid_attestation_is_withheld_with_its_error() {
    let r = rule(&[], false);
    let bad = Attestation::Invalid("the DSSE signature does not verify".into());
    let (rule, why) = r
        .judge(
            &Name::new("requests"),
            &facts(Some(URL), Some(&bad)),
            None,
            NOW,
        )
        .unwrap();
    assert_eq!(rule, Rule::ProvenanceInvalid);
    assert!(
        why.contains("provenance-invalid: the DSSE signature does not verify"),
        "{why}"
    );
    let gone = Attestation::Unavailable("timeout".into());
    let (rule, why) = r
        .judge(
            &Name::new("requests"),
            &facts(Some(URL), Some(&gone)),
            None,
            NOW,
        )
        .unwrap();
    assert_eq!(rule, Rule::ProvenanceInvalid);
    assert!(why.contains("could not be fetched: timeout"), "{why}");
    // Offered but never verified (not on the listing): not served unverified.
    assert!(r
        .judge(&Name::new("requests"), &facts(Some(URL), None), None, NOW)
        .is_some());
}

#[test]
fn only_required_names_need_an_attestation() {
    let r = rule(&["requests", "acme-*"], false);
    let (rule, why) = r
        .judge(&Name::new("Requests"), &facts(None, None), None, NOW)
        .unwrap();
    assert_eq!(rule, Rule::ProvenanceMissing);
    assert!(why.contains("provenance-missing"), "{why}");
    assert!(r
        .judge(&Name::new("acme_lib"), &facts(None, None), None, NOW)
        .is_some());
    assert!(r
        .judge(&Name::new("six"), &facts(None, None), None, NOW)
        .is_none());
    let ok = Attestation::Verified {
        publisher: "github.com/psf/requests (publish.yml)".into(),
    };
    assert!(r
        .judge(
            &Name::new("requests"),
            &facts(Some(URL), Some(&ok)),
            None,
            NOW
        )
        .is_none());
}

#[test]
fn a_publisher_other_than_the_pinned_one_is_withheld() {
    let r = rule(&[], true);
    let name = Name::new("requests");
    let ok = Attestation::Verified {
        publisher: "github.com/psf/requests (publish.yml)".into(),
    };
    let evil = Attestation::Verified {
        publisher: "github.com/evil/requests".into(),
    };
    // Nothing pinned yet: the proxy pins the first verified publisher; the rule serves it.
    assert!(r
        .judge(&name, &facts(Some(URL), Some(&evil)), None, NOW)
        .is_none());
    assert!(r
        .settings
        .pins
        .add_if_absent(&name, "github.com/psf/requests (publish.yml)"));
    assert!(!r
        .settings
        .pins
        .add_if_absent(&name, "github.com/evil/requests"));
    assert!(r
        .judge(&name, &facts(Some(URL), Some(&ok)), None, NOW)
        .is_none());
    let (rule, why) = r
        .judge(&name, &facts(Some(URL), Some(&evil)), None, NOW)
        .unwrap();
    assert_eq!(rule, Rule::PublisherChanged);
    assert!(
        why.contains("publisher-changed: was github.com/psf/requests (publish.yml), now github.com/evil/requests"),
        "{why}"
    );
    // Without pin_publisher a change is served.
    let unpinned = rule_unpinned();
    assert!(unpinned
        .judge(&name, &facts(Some(URL), Some(&evil)), None, NOW)
        .is_none());
}

fn rule_unpinned() -> Provenance {
    rule(&[], false)
}

#[test]
fn off_verifies_nothing_and_refuses_what_it_cannot_keep() {
    let off = |require: Vec<String>, pin: bool| {
        Provenance::build(
            Config {
                verify: Verify::Off,
                require,
                pin_publisher: pin,
                pins: None,
                trusted_root: None,
                mode: None,
            },
            Mode::Enforce,
        )
    };
    let r = off(vec![], false).unwrap();
    assert_eq!(r.needs(), Needs::default());
    assert!(r.provenance().is_none());
    let bad = Attestation::Invalid("x".into());
    assert!(r
        .judge(&Name::new("a"), &facts(Some(URL), Some(&bad)), None, NOW)
        .is_none());
    assert_eq!(off(vec!["a".into()], false).unwrap_err().0, "require");
    assert_eq!(off(vec![], true).unwrap_err().0, "pin_publisher");
}

#[test]
fn bad_keys_are_named_and_the_table_prints() {
    let bad = Provenance::build(
        Config {
            verify: Verify::Offered,
            require: vec!["not a name!".into()],
            pin_publisher: false,
            pins: None,
            trusted_root: None,
            mode: None,
        },
        Mode::Enforce,
    );
    assert_eq!(bad.unwrap_err().0, "require");
    let empty = Provenance::build(
        Config {
            verify: Verify::Offered,
            require: vec![],
            pin_publisher: false,
            pins: Some(" ".into()),
            trusted_root: None,
            mode: None,
        },
        Mode::Enforce,
    );
    assert_eq!(empty.unwrap_err().0, "pins");
    let printed = rule(&["requests"], true).print().unwrap();
    assert!(printed.contains("require = [\"requests\"]"), "{printed}");
    assert!(
        printed.contains("pins = \"provenance-pins.toml\""),
        "{printed}"
    );
    assert!(printed.contains("pin_publisher = true"), "{printed}");
}

#[test]
fn a_page_file_takes_the_listings_attestation_only_for_the_same_digest() {
    use crate::rules::{FileRecord, FileRules, Judge};
    let rules = FileRules::new(vec![Arc::new(rule(&[], false))]);
    let judge = |records: &[FileRecord]| {
        Judge::new(&rules.public, &Name::new("requests"), NOW).knowing(records)
    };
    let record = FileRecord {
        filename: "requests-2.0-py3-none-any.whl".into(),
        sha256: Some("ab".into()),
        provenance: Some(URL.into()),
        attestation: Some(Attestation::Invalid("bad signature".into())),
        ..FileRecord::default()
    };
    let page = FileFacts {
        filename: "requests-2.0-py3-none-any.whl",
        sha256: Some("AB"),
        provenance: Some(URL),
        ..FileFacts::default()
    };
    let w = judge(std::slice::from_ref(&record)).file(&page).unwrap();
    assert!(w.reason.contains("bad signature"), "{}", w.reason);
    // Another digest on the page: the listing's verdict does not speak for it (and it is not
    // served unverified).
    let other = FileFacts {
        sha256: Some("cd"),
        ..page
    };
    let w = judge(std::slice::from_ref(&record)).file(&other).unwrap();
    assert!(w.reason.contains("has not been verified"), "{}", w.reason);
    let good = FileRecord {
        attestation: Some(Attestation::Verified {
            publisher: "github.com/psf/requests (publish.yml)".into(),
        }),
        ..record
    };
    assert!(judge(&[good]).file(&page).is_none());
}
