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
