//! The in-toto statement inside the envelope: one subject, naming the file and its sha256,
//! with a predicate type PyPI knows (pypi-attestations `Attestation.verify`).

use serde::Deserialize;

use crate::filename::DistName;
use crate::tlog::hex;
use crate::Error;

/// The predicate types PyPI accepts (pypi-attestations `AttestationType`).
pub const PREDICATE_TYPES: [&str; 2] = [
    "https://slsa.dev/provenance/v1",
    "https://docs.pypi.org/attestations/publish/v1",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<Subject>,
    predicate_type: String,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    name: String,
    digest: std::collections::BTreeMap<String, String>,
}

/// Checks the statement against the file; returns its predicate type.
pub(crate) fn check(statement: &[u8], filename: &str, sha256: &[u8; 32]) -> Result<String, Error> {
    let st: Statement = serde_json::from_slice(statement)
        .map_err(|e| Error::Statement(format!("not an in-toto statement: {e}")))?;
    if st.type_ != "https://in-toto.io/Statement/v1" {
        return Err(Error::Statement(format!("type {:?}", st.type_)));
    }
    let [subject] = st.subject.as_slice() else {
        return Err(Error::Statement("not exactly one subject".into()));
    };
    if subject.name.is_empty() {
        return Err(Error::Statement("subject has no name".into()));
    }
    let file = DistName::parse(filename).map_err(|_| Error::BadFilename(filename.into()))?;
    let attested = DistName::parse(&subject.name)
        .map_err(|e| Error::Statement(format!("subject {:?}: {e}", subject.name)))?;
    if attested != file {
        return Err(Error::SubjectName {
            subject: subject.name.clone(),
            filename: filename.into(),
        });
    }
    if subject.digest.get("sha256") != Some(&hex(sha256)) {
        return Err(Error::SubjectDigest {
            filename: filename.into(),
        });
    }
    if !PREDICATE_TYPES.contains(&st.predicate_type.as_str()) {
        return Err(Error::Statement(format!(
            "unknown predicate type {:?}",
            st.predicate_type
        )));
    }
    Ok(st.predicate_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "foo-1.0.tar.gz";
    const DIGEST: [u8; 32] = [0x11; 32];

    fn statement(subjects: &str, predicate: &str) -> Vec<u8> {
        format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":{subjects},"predicateType":"{predicate}","predicate":null}}"#
        )
        .into_bytes()
    }

    fn one(name: &str, digest: &str) -> String {
        format!(r#"[{{"name":"{name}","digest":{{"sha256":"{digest}"}}}}]"#)
    }

    #[test]
    fn one_subject_naming_the_file_and_its_digest() {
        let good = one(FILE, &hex(&DIGEST));
        let publish = PREDICATE_TYPES[1];
        assert_eq!(
            check(&statement(&good, publish), FILE, &DIGEST).unwrap(),
            publish
        );
        assert!(check(&statement(&good, PREDICATE_TYPES[0]), FILE, &DIGEST).is_ok());
        let refused = |st: Vec<u8>, file: &str| check(&st, file, &DIGEST).unwrap_err();
        assert!(matches!(
            refused(statement(&good, "https://example.com/v1"), FILE),
            Error::Statement(_)
        ));
        let two = format!(
            "[{},{}]",
            &good[1..good.len() - 1],
            &good[1..good.len() - 1]
        );
        assert!(matches!(
            refused(statement(&two, publish), FILE),
            Error::Statement(_)
        ));
        assert!(matches!(
            refused(statement("[]", publish), FILE),
            Error::Statement(_)
        ));
        // pypi-attestations compares the digest as lowercase hex, exactly.
        let upper = one(FILE, &"AB".repeat(32));
        assert!(matches!(
            check(&statement(&upper, publish), FILE, &[0xab; 32]),
            Err(Error::SubjectDigest { .. })
        ));
        let no_sha = format!(r#"[{{"name":"{FILE}","digest":{{"sha512":"00"}}}}]"#);
        assert!(matches!(
            refused(statement(&no_sha, publish), FILE),
            Error::SubjectDigest { .. }
        ));
        assert!(matches!(
            refused(statement(&one("", &hex(&DIGEST)), publish), FILE),
            Error::Statement(_)
        ));
        assert!(matches!(
            refused(statement(&good, publish), "foo-1.0.egg"),
            Error::BadFilename(_)
        ));
        let v02 = String::from_utf8(statement(&good, publish))
            .unwrap()
            .replace("Statement/v1", "Statement/v0.1");
        assert!(matches!(
            refused(v02.into_bytes(), FILE),
            Error::Statement(_)
        ));
    }
}
