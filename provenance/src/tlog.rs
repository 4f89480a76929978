//! The Rekor (v1) transparency log entry: its signed entry timestamp, its RFC 6962 inclusion
//! proof and signed checkpoint, and that its `dsse` body binds this envelope and certificate.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cert::SigningCert;
use crate::model::{InclusionProof, LogEntry};
use crate::root::{LogKey, TrustedRoot};
use crate::Error;

/// Verifies `entry` against the root's log keys and checks that it records this envelope
/// (`statement`, `signature`) signed by `cert`. Returns the integrated time, now verified.
///
/// Both the inclusion proof with its checkpoint and the signed entry timestamp are required,
/// as sigstore-python requires them for a Rekor v1 entry whose integrated time it trusts.
pub(crate) fn verify(
    entry: &LogEntry,
    root: &TrustedRoot,
    cert: &SigningCert<'_>,
    statement: &[u8],
    signature: &[u8],
) -> Result<i64, Error> {
    let kv = &entry.kind_version;
    match (kv.kind.as_str(), kv.version.as_str()) {
        ("dsse", "0.0.1") => {}
        // Rekor v2 records no time: a v2 bundle's time is an RFC 3161 timestamp, and a PEP 740
        // attestation has no field to carry one, so nothing says when the certificate was
        // valid (sigstore-python finds no verified time either).
        (kind, "0.0.2") => {
            return Err(Error::LogEntry(format!(
                "a Rekor v2 entry ({kind}/0.0.2) carries no time, and a PEP 740 attestation \
                 no RFC 3161 timestamp for it"
            )))
        }
        (kind, version) => {
            return Err(Error::LogEntry(format!(
                "unsupported entry kind {kind}/{version}"
            )))
        }
    }
    let key = root
        .log_key(&entry.log_id.key_id)
        .ok_or_else(|| Error::LogEntry("signed by a log the trusted root does not name".into()))?;
    if !key.valid.contains(entry.integrated_time) {
        return Err(Error::LogEntry(format!(
            "integrated time {} is outside the log key's validity",
            entry.integrated_time
        )));
    }
    verify_set(entry, key)?;
    let proof = entry
        .inclusion_proof
        .as_ref()
        .ok_or_else(|| Error::LogEntry("no inclusion proof".into()))?;
    verify_inclusion(&entry.canonicalized_body, proof)?;
    verify_checkpoint(proof, key)?;
    check_body(&entry.canonicalized_body, cert, statement, signature)
        .map(|()| entry.integrated_time)
}

/// The signed entry timestamp: the log's signature over the RFC 8785 canonical JSON of body,
/// integrated time, log id and index. Every value is an integer, base64 or hex, so the
/// canonical form is this fixed key order with no escaping.
fn verify_set(entry: &LogEntry, key: &LogKey) -> Result<(), Error> {
    let promise = entry
        .inclusion_promise
        .as_ref()
        .ok_or_else(|| Error::LogEntry("no signed entry timestamp".into()))?;
    let payload = format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        STANDARD.encode(&entry.canonicalized_body),
        entry.integrated_time,
        hex(&entry.log_id.key_id),
        entry.log_index,
    );
    if key.verify(payload.as_bytes(), &promise.signed_entry_timestamp) {
        Ok(())
    } else {
        Err(Error::LogEntry(
            "signed entry timestamp does not verify".into(),
        ))
    }
}

/// RFC 9162 §2.1.3.2: the audit path from the entry's leaf hash reaches the proof's root.
pub(crate) fn verify_inclusion(body: &[u8], proof: &InclusionProof) -> Result<(), Error> {
    let bad = |why: &str| Error::LogEntry(format!("inclusion proof: {why}"));
    let (index, size) = (proof.log_index, proof.tree_size);
    if index < 0 || index >= size {
        return Err(bad("index outside the tree"));
    }
    let leaf: [u8; 32] = Sha256::new()
        .chain_update([0u8])
        .chain_update(body)
        .finalize()
        .into();
    let node = |l: &[u8], r: &[u8]| -> [u8; 32] {
        Sha256::new()
            .chain_update([1u8])
            .chain_update(l)
            .chain_update(r)
            .finalize()
            .into()
    };
    let (mut f, mut s) = (index as u64, (size - 1) as u64);
    let mut r = leaf;
    for p in &proof.hashes {
        if p.len() != 32 {
            return Err(bad("hash of the wrong length"));
        }
        if s == 0 {
            return Err(bad("longer than the tree"));
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(bad("shorter than the tree"));
    }
    if r.as_slice() != proof.root_hash.as_slice() {
        return Err(bad("does not lead to the root hash"));
    }
    Ok(())
}

/// The checkpoint (a signed note, transparency-dev formats) is signed by the log key and
/// names the proof's tree size and root hash.
fn verify_checkpoint(proof: &InclusionProof, key: &LogKey) -> Result<(), Error> {
    let bad = |why: &str| Error::LogEntry(format!("checkpoint: {why}"));
    let text = &proof
        .checkpoint
        .as_ref()
        .ok_or_else(|| bad("missing"))?
        .envelope;
    if text.matches("\n\n").count() != 1 {
        return Err(bad("not one text and one signature block"));
    }
    let Some(split) = text.find("\n\n") else {
        return Err(bad("no signature block"));
    };
    let (note, sigs) = (&text[..split + 1], &text[split + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(bad("malformed signature block"));
    }
    let hint = key.key_id.get(..4).ok_or_else(|| bad("log id too short"))?;
    let mut signed = false;
    for line in sigs.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return Err(bad("malformed signature line"));
        };
        let Some((_name, b64)) = rest.split_once(' ') else {
            return Err(bad("malformed signature line"));
        };
        let sig = STANDARD
            .decode(b64)
            .map_err(|_| bad("signature not base64"))?;
        if sig.len() < 5 {
            return Err(bad("signature too short"));
        }
        if &sig[..4] == hint {
            if !key.verify(note.as_bytes(), &sig[4..]) {
                return Err(bad("signature does not verify"));
            }
            signed = true;
        }
    }
    if !signed {
        return Err(bad("not signed by the entry's log"));
    }
    let mut lines = note.lines();
    let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(bad("too few lines"));
    };
    if origin.is_empty() {
        return Err(bad("empty origin"));
    }
    if size.parse::<i64>().ok() != Some(proof.tree_size) {
        return Err(bad("tree size is not the proof's"));
    }
    if STANDARD.decode(root).ok().as_deref() != Some(proof.root_hash.as_slice()) {
        return Err(bad("root hash is not the proof's"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseBody {
    api_version: String,
    kind: String,
    spec: DsseSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseSpec {
    payload_hash: Option<HashValue>,
    #[serde(default)]
    signatures: Vec<DsseSignature>,
}

#[derive(Deserialize)]
struct HashValue {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct DsseSignature {
    signature: String,
    verifier: String,
}

/// A `dsse` 0.0.1 body records the payload's sha256 and each signature with its verifier
/// (base64 of the PEM certificate). Its envelope hash covers uncanonicalized JSON and cannot
/// be recomputed; sigstore-python checks exactly these parts too.
fn check_body(
    body: &[u8],
    cert: &SigningCert<'_>,
    statement: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    let body: DsseBody = serde_json::from_slice(body)
        .map_err(|e| Error::LogBinding(format!("not a dsse entry body: {e}")))?;
    if body.kind != "dsse" || body.api_version != "0.0.1" {
        return Err(Error::LogBinding(format!(
            "body is {}/{}",
            body.kind, body.api_version
        )));
    }
    let hash = body
        .spec
        .payload_hash
        .ok_or_else(|| Error::LogBinding("no payload hash".into()))?;
    if hash.algorithm != "sha256" || hash.value != hex(&Sha256::digest(statement)) {
        return Err(Error::LogBinding(
            "payload hash is not the statement's".into(),
        ));
    }
    let [sig] = body.spec.signatures.as_slice() else {
        return Err(Error::LogBinding("not exactly one signature".into()));
    };
    if STANDARD.decode(&sig.signature).ok().as_deref() != Some(signature) {
        return Err(Error::LogBinding("signature is not the envelope's".into()));
    }
    let pem = STANDARD
        .decode(&sig.verifier)
        .map_err(|_| Error::LogBinding("verifier not base64".into()))?;
    let verifier = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|_| Error::LogBinding("verifier not a PEM certificate".into()))?
        .1;
    if verifier.label != "CERTIFICATE" || verifier.contents != cert.der() {
        return Err(Error::LogBinding(
            "verifier is not the signing certificate".into(),
        ));
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Checkpoint;
    use crate::root::{KeyAlg, Validity};

    fn refused(note: &str) -> String {
        let key = LogKey {
            key_id: vec![1, 2, 3, 4, 5],
            spki: vec![0x30, 0],
            alg: KeyAlg::EcdsaP256Sha256,
            valid: Validity {
                start: 0,
                end: None,
            },
        };
        let proof = InclusionProof {
            log_index: 0,
            root_hash: vec![0; 32],
            tree_size: 1,
            hashes: Vec::new(),
            checkpoint: Some(Checkpoint {
                envelope: note.into(),
            }),
        };
        verify_checkpoint(&proof, &key).unwrap_err().to_string()
    }

    #[test]
    fn malformed_checkpoints_are_refused_by_name() {
        let sig = STANDARD.encode([1, 2, 3, 4, 9, 9, 9]);
        let other = STANDARD.encode([9, 9, 9, 9, 9, 9, 9]);
        for (note, why) in [
            ("log - 1\n1\nAA==\n".to_string(), "not one text"),
            (
                format!("log - 1\n1\n\n\nAA==\n\n\u{2014} log {sig}\n"),
                "not one text",
            ),
            (
                "log - 1\n1\nAA==\n\n".to_string(),
                "malformed signature block",
            ),
            (
                format!("log - 1\n1\nAA==\n\n\u{2014} log {sig}"),
                "malformed signature block",
            ),
            (
                format!("log - 1\n1\nAA==\n\n- log {sig}\n"),
                "malformed signature line",
            ),
            (
                "log - 1\n1\nAA==\n\n\u{2014} log AQID\n".to_string(),
                "too short",
            ),
            (
                format!("log - 1\n1\nAA==\n\n\u{2014} log {other}\n"),
                "not signed by the entry's log",
            ),
            (
                format!("log - 1\n1\nAA==\n\n\u{2014} log {sig}\n"),
                "does not verify",
            ),
        ] {
            let got = refused(&note);
            assert!(got.contains(why), "{note:?}: {got}");
        }
    }
}
