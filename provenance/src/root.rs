//! The Sigstore trusted root (trusted_root.json, protobuf-specs JSON form): Fulcio CAs and
//! transparency log keys, each with the time range it may be used for.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, SubjectPublicKeyInfoDer};
use serde::Deserialize;
use webpki::RawPublicKeyEntity;

use crate::RootError;

/// The production root, as the `sigstore` wheel ships it (tested equal to that copy).
pub(crate) const PRODUCTION_JSON: &[u8] = include_bytes!("../data/trusted_root.json");

/// A Sigstore trusted root: the Fulcio CAs a signing certificate may chain to and the
/// transparency log keys a log entry may be signed with.
#[derive(Clone, Debug)]
pub struct TrustedRoot {
    pub(crate) cas: Vec<CertificateAuthority>,
    pub(crate) logs: Vec<LogKey>,
    /// Certificate transparency logs, whose SCTs a Fulcio certificate embeds.
    pub(crate) ct_logs: Vec<LogKey>,
}

/// A time range in seconds since the epoch; `end` open when the root gives none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Validity {
    pub(crate) start: i64,
    pub(crate) end: Option<i64>,
}

impl Validity {
    pub(crate) fn contains(&self, t: i64) -> bool {
        self.start <= t && self.end.is_none_or(|end| t <= end)
    }
}

/// One Fulcio CA: its chain, issuing certificate first and the self-signed root last.
#[derive(Clone, Debug)]
pub(crate) struct CertificateAuthority {
    /// Invariant: not empty, every element DER that webpki parses (checked in `from_json`).
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) valid: Validity,
}

/// The signature scheme of a log key, from the root's `keyDetails`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyAlg {
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    Ed25519,
}

/// A transparency log's key, found by the log id entries carry.
#[derive(Clone, Debug)]
pub(crate) struct LogKey {
    pub(crate) key_id: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    pub(crate) spki: Vec<u8>,
    pub(crate) alg: KeyAlg,
    pub(crate) valid: Validity,
}

impl LogKey {
    /// Verifies `signature` over `message` with this key (rustls-webpki's ring algorithms).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let alg: &dyn SignatureVerificationAlgorithm = match self.alg {
            KeyAlg::EcdsaP256Sha256 => webpki::ring::ECDSA_P256_SHA256,
            KeyAlg::EcdsaP384Sha384 => webpki::ring::ECDSA_P384_SHA384,
            KeyAlg::Ed25519 => webpki::ring::ED25519,
        };
        let spki = SubjectPublicKeyInfoDer::from(self.spki.as_slice());
        RawPublicKeyEntity::try_from(&spki)
            .and_then(|k| k.verify_signature(alg, message, signature))
            .is_ok()
    }
}

impl TrustedRoot {
    /// The production root embedded in the binary (provenance/data/trusted_root.json).
    pub fn production() -> &'static TrustedRoot {
        static ROOT: OnceLock<TrustedRoot> = OnceLock::new();
        ROOT.get_or_init(|| {
            // safety: the embedded file is a constant that `tests::production_root_parses`
            // reads with this same function, so a root that does not parse never ships.
            #[allow(clippy::expect_used)]
            TrustedRoot::from_json(PRODUCTION_JSON).expect("embedded production trusted root")
        })
    }

    /// Reads a trusted_root.json. Keys of schemes this verifier does not know are skipped; a
    /// root left without a Fulcio CA or a log key is refused.
    pub fn from_json(bytes: &[u8]) -> Result<TrustedRoot, RootError> {
        let wire: WireRoot =
            serde_json::from_slice(bytes).map_err(|e| RootError::Malformed(e.to_string()))?;
        let mut cas = Vec::new();
        for ca in wire.certificate_authorities {
            let mut chain = Vec::new();
            for cert in ca.cert_chain.certificates {
                let der = decode(&cert.raw_bytes, "certificate")?;
                chain.push(CertificateDer::from(der));
            }
            let Some(anchor) = chain.last() else {
                continue;
            };
            webpki::anchor_from_trusted_cert(anchor)
                .map_err(|e| RootError::Malformed(format!("Fulcio CA certificate: {e}")))?;
            for cert in &chain[..chain.len() - 1] {
                x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| {
                    RootError::Malformed(format!("Fulcio intermediate certificate: {e}"))
                })?;
            }
            cas.push(CertificateAuthority {
                chain,
                valid: ca.valid_for.parse()?,
            });
        }
        let logs = keys(wire.tlogs)?;
        let ct_logs = keys(wire.ctlogs)?;
        if cas.is_empty() {
            return Err(RootError::Empty("Fulcio certificate authority"));
        }
        if logs.is_empty() {
            return Err(RootError::Empty("transparency log key"));
        }
        Ok(TrustedRoot { cas, logs, ct_logs })
    }

    pub(crate) fn log_key(&self, key_id: &[u8]) -> Option<&LogKey> {
        self.logs.iter().find(|k| k.key_id == key_id)
    }

    pub(crate) fn ct_key(&self, key_id: &[u8]) -> Option<&LogKey> {
        self.ct_logs.iter().find(|k| k.key_id == key_id)
    }
}

/// The keys of a root's `tlogs` or `ctlogs`; keys of unknown schemes are skipped.
fn keys(logs: Vec<WireLog>) -> Result<Vec<LogKey>, RootError> {
    let mut keys = Vec::new();
    for log in logs {
        let alg = match log.public_key.key_details.as_str() {
            "PKIX_ECDSA_P256_SHA_256" => KeyAlg::EcdsaP256Sha256,
            "PKIX_ECDSA_P384_SHA_384" => KeyAlg::EcdsaP384Sha384,
            "PKIX_ED25519" => KeyAlg::Ed25519,
            _ => continue,
        };
        let Some(raw) = log.public_key.raw_bytes else {
            continue;
        };
        keys.push(LogKey {
            key_id: decode(&log.log_id.key_id, "log id")?,
            spki: decode(&raw, "log key")?,
            alg,
            valid: match log.public_key.valid_for {
                Some(v) => v.parse()?,
                None => Validity {
                    start: i64::MIN,
                    end: None,
                },
            },
        });
    }
    Ok(keys)
}

fn decode(b64: &str, what: &str) -> Result<Vec<u8>, RootError> {
    STANDARD
        .decode(b64)
        .map_err(|e| RootError::Malformed(format!("{what}: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRoot {
    #[serde(default)]
    tlogs: Vec<WireLog>,
    #[serde(default)]
    ctlogs: Vec<WireLog>,
    #[serde(default)]
    certificate_authorities: Vec<WireCa>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLog {
    public_key: WireKey,
    log_id: WireLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireKey {
    raw_bytes: Option<String>,
    key_details: String,
    valid_for: Option<WireValidity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCa {
    cert_chain: WireChain,
    valid_for: WireValidity,
}

#[derive(Deserialize)]
struct WireChain {
    certificates: Vec<WireCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCert {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct WireValidity {
    start: String,
    end: Option<String>,
}

impl WireValidity {
    fn parse(self) -> Result<Validity, RootError> {
        Ok(Validity {
            start: rfc3339(&self.start)?,
            end: self.end.as_deref().map(rfc3339).transpose()?,
        })
    }
}

fn rfc3339(s: &str) -> Result<i64, RootError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| RootError::Malformed(format!("time {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_root_parses() {
        let root = TrustedRoot::from_json(PRODUCTION_JSON).unwrap();
        assert!(root.cas.len() >= 2);
        assert!(root.logs.iter().any(|k| k.alg == KeyAlg::EcdsaP256Sha256));
        assert!(std::ptr::eq(
            TrustedRoot::production(),
            TrustedRoot::production()
        ));
    }

    #[test]
    fn empty_roots_are_refused() {
        assert!(matches!(
            TrustedRoot::from_json(b"{}"),
            Err(RootError::Empty(_))
        ));
        assert!(matches!(
            TrustedRoot::from_json(b"not json"),
            Err(RootError::Malformed(_))
        ));
    }
}
