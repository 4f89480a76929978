//! The PEP 740 provenance object as served at a file's provenance URL, read into typed parts
//! (base64 decoded once, integers that protobuf JSON writes as strings read as integers).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer};

use crate::{Error, Publisher};

/// At most this many attestations in one provenance object: each costs a few milliseconds of
/// CPU to verify and every one must verify, so an index cannot make one file cost seconds.
/// PyPI serves one bundle of one or two.
pub const MAX_ATTESTATIONS: usize = 16;

/// The provenance object of one distribution file (PEP 740 JSON, version 1).
#[derive(Clone, Debug)]
pub struct Provenance {
    pub(crate) bundles: Vec<AttestationBundle>,
}

/// Attestations signed for one Trusted Publisher.
#[derive(Clone, Debug)]
pub(crate) struct AttestationBundle {
    pub(crate) publisher: Publisher,
    pub(crate) attestations: Vec<Attestation>,
}

/// One PEP 740 attestation: a DSSE envelope, its signing certificate and its log entries.
#[derive(Clone, Debug)]
pub(crate) struct Attestation {
    /// DER X.509.
    pub(crate) certificate: Vec<u8>,
    /// Invariant: not empty (checked in `from_json`).
    pub(crate) entries: Vec<LogEntry>,
    /// The in-toto statement, exactly the bytes that were signed.
    pub(crate) statement: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

/// A Rekor transparency log entry (sigstore protobuf-specs `TransparencyLogEntry`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogEntry {
    #[serde(deserialize_with = "int")]
    pub(crate) log_index: i64,
    pub(crate) log_id: LogId,
    pub(crate) kind_version: KindVersion,
    /// Absent (protobuf JSON leaves out a zero) in a Rekor v2 entry, which `tlog` refuses by its
    /// kind; a v1 entry without one is refused too (0 is outside every log key's validity).
    #[serde(default, deserialize_with = "int")]
    pub(crate) integrated_time: i64,
    pub(crate) inclusion_promise: Option<InclusionPromise>,
    pub(crate) inclusion_proof: Option<InclusionProof>,
    #[serde(deserialize_with = "b64")]
    pub(crate) canonicalized_body: Vec<u8>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogId {
    #[serde(deserialize_with = "b64")]
    pub(crate) key_id: Vec<u8>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct KindVersion {
    pub(crate) kind: String,
    pub(crate) version: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InclusionPromise {
    #[serde(deserialize_with = "b64")]
    pub(crate) signed_entry_timestamp: Vec<u8>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InclusionProof {
    #[serde(deserialize_with = "int")]
    pub(crate) log_index: i64,
    #[serde(deserialize_with = "b64")]
    pub(crate) root_hash: Vec<u8>,
    #[serde(deserialize_with = "int")]
    pub(crate) tree_size: i64,
    #[serde(default, deserialize_with = "b64_list")]
    pub(crate) hashes: Vec<Vec<u8>>,
    pub(crate) checkpoint: Option<Checkpoint>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) envelope: String,
}

impl Provenance {
    /// Reads a provenance object. Refuses anything but version 1, attestations of another
    /// version, undecodable base64, and an attestation without a transparency log entry.
    pub fn from_json(bytes: &[u8]) -> Result<Provenance, Error> {
        let wire: WireProvenance =
            serde_json::from_slice(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
        if wire.version != 1 {
            return Err(Error::Malformed(format!("version {}", wire.version)));
        }
        let mut bundles = Vec::new();
        for b in wire.attestation_bundles {
            let mut attestations = Vec::new();
            for a in b.attestations {
                attestations.push(Attestation::from_wire(a)?);
            }
            bundles.push(AttestationBundle {
                publisher: b.publisher,
                attestations,
            });
        }
        let count: usize = bundles.iter().map(|b| b.attestations.len()).sum();
        if count > MAX_ATTESTATIONS {
            return Err(Error::Malformed(format!(
                "{count} attestations (at most {MAX_ATTESTATIONS})"
            )));
        }
        Ok(Provenance { bundles })
    }

    /// Builds a provenance object of one bundle from a bare attestation (the
    /// `.publish.attestation` JSON PyPI's upload API takes) and the publisher it claims.
    pub fn from_attestation_json(
        attestation: &[u8],
        publisher: Publisher,
    ) -> Result<Provenance, Error> {
        Ok(Provenance {
            bundles: vec![AttestationBundle {
                publisher,
                attestations: vec![Attestation::from_json(attestation)?],
            }],
        })
    }

    /// The publishers the bundles claim, before any verification.
    pub fn claimed_publishers(&self) -> impl Iterator<Item = &Publisher> {
        self.bundles.iter().map(|b| &b.publisher)
    }
}

impl Attestation {
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Attestation, Error> {
        let wire: WireAttestation =
            serde_json::from_slice(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
        Attestation::from_wire(wire)
    }

    fn from_wire(a: WireAttestation) -> Result<Attestation, Error> {
        if a.version != 1 {
            return Err(Error::Malformed(format!(
                "attestation version {}",
                a.version
            )));
        }
        let m = a.verification_material;
        if m.transparency_entries.is_empty() {
            return Err(Error::Malformed(
                "attestation has no transparency log entry".into(),
            ));
        }
        let decode = |s: &str, what: &str| {
            STANDARD
                .decode(s)
                .map_err(|e| Error::Malformed(format!("{what}: {e}")))
        };
        Ok(Attestation {
            certificate: decode(&m.certificate, "certificate")?,
            entries: m.transparency_entries,
            statement: decode(&a.envelope.statement, "statement")?,
            signature: decode(&a.envelope.signature, "signature")?,
        })
    }
}

#[derive(Deserialize)]
struct WireProvenance {
    version: u64,
    attestation_bundles: Vec<WireBundle>,
}

#[derive(Deserialize)]
struct WireBundle {
    publisher: Publisher,
    attestations: Vec<WireAttestation>,
}

#[derive(Deserialize)]
struct WireAttestation {
    version: u64,
    verification_material: WireMaterial,
    envelope: WireEnvelope,
}

#[derive(Deserialize)]
struct WireMaterial {
    certificate: String,
    transparency_entries: Vec<LogEntry>,
}

#[derive(Deserialize)]
struct WireEnvelope {
    statement: String,
    signature: String,
}

/// An integer that protobuf JSON may write as a string (int64) or a number.
fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Int(i64),
        Str(String),
    }
    match IntOrString::deserialize(d)? {
        IntOrString::Int(i) => Ok(i),
        IntOrString::Str(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn b64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    STANDARD.decode(s).map_err(serde::de::Error::custom)
}

fn b64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
        .collect()
}
