//! Self-made attestations for tests (feature `test-support`): a Fulcio-like CA and a
//! Rekor-like log in a trusted root of their own, minting PEP 740 provenance objects the
//! verifier accepts, and the broken variants real data cannot provide (a certificate issued to
//! another publisher, one expired at the integrated time, a log entry that does not verify, a
//! wrong subject).
//!
//! ```
//! # use pipgate_provenance::{fixtures, Provenance, Publisher, TrustedRoot, verify};
//! let publisher = Publisher::github("psf/requests", "publish.yml");
//! let digest = [7u8; 32];
//! let (provenance, root) = fixtures::attest("requests-2.0.0.tar.gz", &digest, &publisher);
//! let root = TrustedRoot::from_json(&root).unwrap();
//! let provenance = Provenance::from_json(&provenance).unwrap();
//! let verified = verify(&provenance, "requests-2.0.0.tar.gz", &digest, &root).unwrap();
//! assert_eq!(verified.publisher, publisher);
//! ```

// Test support only, never on a path a peer reaches: a failure to mint is a broken test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use sha2::{Digest, Sha256};

use crate::tlog::hex;
use crate::Publisher;

mod claims;
mod merkle;

use claims::claims;
use merkle::{audit_path, leaf_hash, tree_hash};

/// When the fixtures' certificates start being valid: 2025-01-01T00:00:00Z. Verification has
/// no clock, so fixed times keep the fixtures valid forever.
pub const NOT_BEFORE: i64 = 1_735_689_600;
/// How long a minted signing certificate is valid, seconds (Fulcio's ten minutes).
pub const VALIDITY: i64 = 600;

/// What to break in a minted attestation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tamper {
    /// Nothing: a genuine attestation.
    None,
    /// The signed entry timestamp is signed over other data.
    SignedEntryTimestamp,
    /// One hash of the inclusion proof is changed (the checkpoint still signs the real root).
    InclusionProof,
    /// The checkpoint is signed by another key with the same key hint.
    Checkpoint,
    /// The log entry records another payload hash (a log entry for another statement).
    EntryBody,
    /// The DSSE signature is made over another statement.
    Signature,
    /// The certificate's embedded SCT is signed over another precertificate.
    Sct,
    /// The certificate's subject is empty and its subjectAltName not critical (RFC 5280 wants
    /// it critical; sigstore-python refuses it).
    SanNotCritical,
}

/// One attestation to mint. `Spec::new` makes a genuine one; change fields to break it.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The file name the statement's subject names.
    pub subject: String,
    /// The sha256 the statement's subject carries.
    pub sha256: [u8; 32],
    /// The publisher the provenance object claims.
    pub publisher: Publisher,
    /// The publisher the certificate is issued to (default: the claimed one).
    pub signed_by: Publisher,
    /// The statement's predicate type.
    pub predicate_type: String,
    /// Seconds from the certificate's start to the log's integrated time (default 60; outside
    /// `0..=VALIDITY` makes the certificate expired at the integrated time).
    pub integrated_after: i64,
    /// What to break.
    pub tamper: Tamper,
}

impl Spec {
    /// A genuine publish attestation of `filename` with digest `sha256` by `publisher`.
    pub fn new(filename: &str, sha256: &[u8; 32], publisher: &Publisher) -> Spec {
        Spec {
            subject: filename.into(),
            sha256: *sha256,
            publisher: publisher.clone(),
            signed_by: publisher.clone(),
            predicate_type: "https://docs.pypi.org/attestations/publish/v1".into(),
            integrated_after: 60,
            tamper: Tamper::None,
        }
    }
}

/// A self-made Sigstore: a CA that issues Fulcio-style certificates and a log that records
/// entries, with the trusted root naming both.
pub struct Authority {
    ca_key: KeyPair,
    ca: rcgen::Certificate,
    log_key: EcdsaKeyPair,
    log_spki: Vec<u8>,
    log_id: [u8; 32],
    ct_key: EcdsaKeyPair,
    ct_spki: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Private keys are never printed.
        f.debug_struct("Authority")
            .field("log_id", &hex(&self.log_id))
            .finish_non_exhaustive()
    }
}

impl Default for Authority {
    fn default() -> Self {
        Authority::new()
    }
}

/// Mints a genuine attestation with a fresh authority: `(provenance_json, trusted_root_json)`.
pub fn attest(filename: &str, sha256: &[u8; 32], publisher: &Publisher) -> (Vec<u8>, Vec<u8>) {
    let authority = Authority::new();
    (
        authority.provenance(&Spec::new(filename, sha256, publisher)),
        authority.trusted_root_json(),
    )
}

fn time(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).expect("fixture time")
}

fn p256_pair(rng: &SystemRandom) -> (EcdsaKeyPair, KeyPair) {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng).expect("P-256 key");
    let ring = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), rng)
        .expect("P-256 key");
    let rcgen = KeyPair::try_from(pkcs8.as_ref()).expect("P-256 key");
    (ring, rcgen)
}

impl Authority {
    /// A fresh CA (P-384, like Fulcio's) and log key (P-256, like Rekor's).
    pub fn new() -> Authority {
        let rng = SystemRandom::new();
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384 key");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "pipgate fixtures");
        dn.push(DnType::CommonName, "fixture-fulcio");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.not_before = time(NOT_BEFORE - 86_400 * 365);
        params.not_after = time(NOT_BEFORE + 86_400 * 365 * 20);
        let ca = params.self_signed(&ca_key).expect("fixture CA");
        let (log_key, log_rcgen) = p256_pair(&rng);
        let log_spki = log_rcgen.public_key_der();
        let log_id = Sha256::digest(&log_spki).into();
        let (ct_key, ct_rcgen) = p256_pair(&rng);
        let ct_spki = ct_rcgen.public_key_der();
        Authority {
            ca_key,
            ca,
            log_key,
            log_spki,
            log_id,
            ct_key,
            ct_spki,
            rng,
        }
    }

    /// The trusted_root.json naming this CA and this log.
    pub fn trusted_root_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://log.fixtures.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": STANDARD.encode(&self.log_spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2024-01-01T00:00:00Z"},
                },
                "logId": {"keyId": STANDARD.encode(self.log_id)},
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "pipgate fixtures", "commonName": "fixture-fulcio"},
                "uri": "https://ca.fixtures.invalid",
                "certChain": {"certificates": [{"rawBytes": STANDARD.encode(self.ca.der())}]},
                "validFor": {"start": "2024-01-01T00:00:00Z"},
            }],
            "ctlogs": [{
                "baseUrl": "https://ct.fixtures.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": STANDARD.encode(&self.ct_spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2024-01-01T00:00:00Z"},
                },
                "logId": {"keyId": STANDARD.encode(Sha256::digest(&self.ct_spki))},
            }],
            "timestampAuthorities": [],
        }))
        .expect("JSON")
    }

    /// The embedded SCT list extension's value (an OCTET STRING holding the TLS-encoded list)
    /// for the precertificate `precert`.
    fn sct(&self, precert: &[u8], tamper: bool) -> Vec<u8> {
        let (_, parsed) = x509_parser::parse_x509_certificate(precert).expect("precertificate");
        let mut tbs = parsed.tbs_certificate.as_ref().to_vec();
        if tamper {
            let last = tbs.len() - 1;
            tbs[last] ^= 1;
        }
        let timestamp = (NOT_BEFORE as u64) * 1000;
        let issuer_key_hash = Sha256::digest(self.ca_key.public_key_der());
        let mut signed = vec![0u8, 0u8];
        signed.extend(timestamp.to_be_bytes());
        signed.extend([0u8, 1u8]);
        signed.extend_from_slice(&issuer_key_hash);
        signed.extend(&(tbs.len() as u32).to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        signed.extend([0u8, 0u8]);
        let sig = self
            .ct_key
            .sign(&self.rng, &signed)
            .expect("SCT signature")
            .as_ref()
            .to_vec();
        let mut one = vec![0u8];
        one.extend_from_slice(&Sha256::digest(&self.ct_spki));
        one.extend(timestamp.to_be_bytes());
        one.extend([0u8, 0u8]); // no extensions
        one.extend([4u8, 3u8]); // sha256, ecdsa
        one.extend((sig.len() as u16).to_be_bytes());
        one.extend_from_slice(&sig);
        let mut list = ((one.len() + 2) as u16).to_be_bytes().to_vec();
        list.extend((one.len() as u16).to_be_bytes());
        list.extend_from_slice(&one);
        let mut octets = vec![0x04];
        if list.len() < 0x80 {
            octets.push(list.len() as u8);
        } else {
            octets.extend([0x81, list.len() as u8]);
        }
        octets.extend_from_slice(&list);
        octets
    }

    fn log_sign(&self, message: &[u8]) -> Vec<u8> {
        self.log_key
            .sign(&self.rng, message)
            .expect("log signature")
            .as_ref()
            .to_vec()
    }

    /// A provenance object (PEP 740 JSON) with one bundle holding the attestation `spec` asks.
    pub fn provenance(&self, spec: &Spec) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "version": 1,
            "attestation_bundles": [{
                "publisher": spec.publisher,
                "attestations": [self.attestation(spec)],
            }],
        }))
        .expect("JSON")
    }

    /// One PEP 740 attestation object, as JSON.
    pub fn attestation(&self, spec: &Spec) -> serde_json::Value {
        let (leaf_ring, leaf_rcgen) = p256_pair(&self.rng);
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.custom_extensions = claims(&spec.signed_by, spec.tamper != Tamper::SanNotCritical);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.not_before = time(NOT_BEFORE);
        params.not_after = time(NOT_BEFORE + VALIDITY);
        let mut serial = [0u8; 16];
        ring::rand::SecureRandom::fill(&self.rng, &mut serial).expect("serial");
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        // As Fulcio does: the precertificate (this certificate without the SCT) goes to the CT
        // log, whose SCT is then embedded as the last extension.
        let precert = params
            .clone()
            .signed_by(&leaf_rcgen, &self.ca, &self.ca_key)
            .expect("fixture precertificate");
        let sct = self.sct(precert.der(), spec.tamper == Tamper::Sct);
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2],
                sct,
            ));
        let cert = params
            .signed_by(&leaf_rcgen, &self.ca, &self.ca_key)
            .expect("fixture leaf");

        let statement = serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": spec.subject, "digest": {"sha256": hex(&spec.sha256)}}],
            "predicateType": spec.predicate_type,
            "predicate": null,
        }))
        .expect("JSON");
        let signed = if spec.tamper == Tamper::Signature {
            let mut other = statement.clone();
            other.push(b' ');
            other
        } else {
            statement.clone()
        };
        let signature = leaf_ring
            .sign(&self.rng, &crate::pae(&signed))
            .expect("signature")
            .as_ref()
            .to_vec();

        let recorded = if spec.tamper == Tamper::EntryBody {
            Sha256::digest(b"another statement")
        } else {
            Sha256::digest(&statement)
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hex(&Sha256::digest(b"envelope"))},
                "payloadHash": {"algorithm": "sha256", "value": hex(&recorded)},
                "signatures": [{
                    "signature": STANDARD.encode(&signature),
                    "verifier": STANDARD.encode(cert.pem()),
                }],
            },
        }))
        .expect("JSON");

        // A small log: our entry at index 5 of 11 (an audit path with both kinds of step).
        let (index, size) = (5usize, 11usize);
        let leaves: Vec<[u8; 32]> = (0..size)
            .map(|i| {
                if i == index {
                    leaf_hash(&body)
                } else {
                    leaf_hash(format!("other entry {i}").as_bytes())
                }
            })
            .collect();
        let root = tree_hash(&leaves);
        let mut proof = audit_path(index, &leaves);
        if spec.tamper == Tamper::InclusionProof {
            proof[0][0] ^= 1;
        }
        let note = format!(
            "log.fixtures.invalid - 1\n{size}\n{}\n",
            STANDARD.encode(root)
        );
        let note_sig = if spec.tamper == Tamper::Checkpoint {
            let (other, _) = p256_pair(&self.rng);
            other
                .sign(&self.rng, note.as_bytes())
                .expect("sig")
                .as_ref()
                .to_vec()
        } else {
            self.log_sign(note.as_bytes())
        };
        let mut hinted = self.log_id[..4].to_vec();
        hinted.extend_from_slice(&note_sig);
        let checkpoint = format!(
            "{note}\n\u{2014} log.fixtures.invalid {}\n",
            STANDARD.encode(hinted)
        );

        let integrated_time = NOT_BEFORE + spec.integrated_after;
        let log_index = 1000 + index as i64;
        let set_payload = format!(
            r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
            STANDARD.encode(&body),
            if spec.tamper == Tamper::SignedEntryTimestamp {
                integrated_time + 1
            } else {
                integrated_time
            },
            hex(&self.log_id),
            log_index,
        );
        let set = self.log_sign(set_payload.as_bytes());

        serde_json::json!({
            "version": 1,
            "verification_material": {
                "certificate": STANDARD.encode(cert.der()),
                "transparency_entries": [{
                    "logIndex": log_index.to_string(),
                    "logId": {"keyId": STANDARD.encode(self.log_id)},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": integrated_time.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": STANDARD.encode(set)},
                    "inclusionProof": {
                        "logIndex": index.to_string(),
                        "rootHash": STANDARD.encode(root),
                        "treeSize": size.to_string(),
                        "hashes": proof.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
                        "checkpoint": {"envelope": checkpoint},
                    },
                    "canonicalizedBody": STANDARD.encode(&body),
                }],
            },
            "envelope": {
                "statement": STANDARD.encode(&statement),
                "signature": STANDARD.encode(&signature),
            },
        })
    }
}
