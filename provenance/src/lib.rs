//! Offline verification of PEP 740 provenance: Sigstore DSSE attestations from Trusted
//! Publishers, checked against a Sigstore trusted root with no network, no clock and no IO.
//!
//! What [`verify`] checks, for every attestation of every bundle (the steps of
//! sigstore-python's `Verifier.verify_dsse` and pypi-attestations' `Attestation.verify`):
//! 1. the transparency log entry: signed entry timestamp, RFC 6962 inclusion proof and signed
//!    checkpoint, all by a log key of the root valid at the entry's integrated time;
//! 2. the entry's `dsse` body records this statement's hash, this signature and this
//!    certificate;
//! 3. the certificate was valid at the integrated time, has the Sigstore profile's key
//!    usages, and chains to a Fulcio CA of the root valid then; its embedded SCT verifies
//!    against a certificate transparency log of the root;
//! 4. the envelope's signature (DSSE PAE, `application/vnd.in-toto+json`) verifies with the
//!    certificate's key;
//! 5. the statement's single subject is the file (by name, as `packaging` parses it, and
//!    sha256) with a predicate type PyPI knows;
//! 6. the certificate's claims are the bundle's Trusted Publisher.
//!
//! Not the `sigstore` crate (sigstore-rs 0.15): even with default features off, its `verify`
//! feature enables `fulcio` and `rekor`, that is reqwest, tokio, openidconnect, oauth2 and
//! webbrowser (`cargo tree`: ~600 lines), and a second generation of RustCrypto (digest 0.10 and
//! 0.11, der 0.7 and 0.8, base64 0.22 and 0.23) that deny.toml's duplicate ban refuses; all for
//! what is here a few hundred lines over rustls-webpki, x509-parser and sha2.

mod cert;
mod error;
mod filename;
mod model;
mod publisher;
mod root;
mod sct;
mod statement;
mod tlog;

#[cfg(feature = "test-support")]
pub mod fixtures;

pub use error::{Error, RootError};
pub use model::{Provenance, MAX_ATTESTATIONS};
pub use publisher::Publisher;
pub use root::TrustedRoot;
pub use statement::PREDICATE_TYPES;

/// The DSSE payload type of an in-toto statement.
const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// What a verified provenance object vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The publisher every attestation's certificate was checked against.
    pub publisher: Publisher,
    /// The predicate type of each verified attestation, in order.
    pub predicate_types: Vec<String>,
    /// The earliest integrated time (seconds since the epoch) of the verified log entries.
    pub integrated_time: i64,
    /// How many attestations verified (all of them, or `verify` fails).
    pub attestations: usize,
}

/// Verifies every attestation bundle of `provenance` for the distribution `filename` whose
/// sha256 is `sha256`, against `root`. Ok: the publisher the verified attestations bind to.
/// One failing attestation fails the whole object; so do bundles naming different publishers.
pub fn verify(
    provenance: &Provenance,
    filename: &str,
    sha256: &[u8; 32],
    root: &TrustedRoot,
) -> Result<Verified, Error> {
    let mut publisher: Option<&Publisher> = None;
    let mut predicate_types = Vec::new();
    let mut integrated_time = i64::MAX;
    for bundle in &provenance.bundles {
        if let Some(first) = publisher {
            if !first.same_publisher(&bundle.publisher) {
                return Err(Error::MultiplePublishers(
                    first.to_string(),
                    bundle.publisher.to_string(),
                ));
            }
        }
        publisher = Some(&bundle.publisher);
        if bundle.attestations.is_empty() {
            return Err(Error::NoAttestations);
        }
        for attestation in &bundle.attestations {
            let (predicate, time) =
                verify_bundled(attestation, &bundle.publisher, filename, sha256, root)?;
            predicate_types.push(predicate);
            integrated_time = integrated_time.min(time);
        }
    }
    let Some(publisher) = publisher else {
        return Err(Error::NoAttestations);
    };
    Ok(Verified {
        publisher: publisher.clone(),
        attestations: predicate_types.len(),
        predicate_types,
        integrated_time,
    })
}

/// DSSE's pre-authentication encoding of an in-toto payload.
pub(crate) fn pae(payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {PAYLOAD_TYPE} {} ",
        PAYLOAD_TYPE.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Who signed a bare attestation, verified in every respect but a Trusted Publisher policy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Signer {
    /// The certificate's email and URI subject alternative names.
    pub identities: Vec<String>,
    /// The OIDC issuer the certificate names (Fulcio's issuer claim).
    pub issuer: Option<String>,
    /// The statement's predicate type.
    pub predicate_type: String,
    /// The verified log entry's integrated time, seconds since the epoch.
    pub integrated_time: i64,
}

/// Verifies a bare PEP 740 attestation (the JSON PyPI's upload API takes) for `filename` and
/// `sha256` against `root`, with no publisher policy: the caller must judge the returned
/// identity. Used for attestations that name no Trusted Publisher (and by `provenance show`).
pub fn verify_attestation(
    attestation_json: &[u8],
    filename: &str,
    sha256: &[u8; 32],
    root: &TrustedRoot,
) -> Result<Signer, Error> {
    let attestation = model::Attestation::from_json(attestation_json)?;
    let cert = cert::SigningCert::parse(&attestation.certificate)?;
    let (predicate_type, integrated_time) =
        verify_signed(&attestation, &cert, filename, sha256, root)?;
    let claims = cert.claims();
    let issuer = match claims.v2(publisher::oid::ISSUER_V2)? {
        Some(issuer) => Some(issuer),
        None => claims.v1(publisher::oid::ISSUER_V1)?,
    };
    Ok(Signer {
        identities: claims.sans()?.into_iter().map(String::from).collect(),
        issuer: issuer.map(String::from),
        predicate_type,
        integrated_time,
    })
}

fn verify_bundled(
    attestation: &model::Attestation,
    publisher: &Publisher,
    filename: &str,
    sha256: &[u8; 32],
    root: &TrustedRoot,
) -> Result<(String, i64), Error> {
    let cert = cert::SigningCert::parse(&attestation.certificate)?;
    let verified = verify_signed(attestation, &cert, filename, sha256, root)?;
    publisher.check(&cert.claims())?;
    Ok(verified)
}

/// Steps 1 to 5 of the crate documentation: all but the publisher policy.
fn verify_signed(
    attestation: &model::Attestation,
    cert: &cert::SigningCert<'_>,
    filename: &str,
    sha256: &[u8; 32],
    root: &TrustedRoot,
) -> Result<(String, i64), Error> {
    // pypi-attestations verifies the first entry (`to_bundle`); so does this.
    let entry = attestation
        .entries
        .first()
        .ok_or_else(|| Error::Malformed("attestation has no transparency log entry".into()))?;
    let time = tlog::verify(
        entry,
        root,
        cert,
        &attestation.statement,
        &attestation.signature,
    )?;
    let ca = cert.verify_at(root, time)?;
    sct::verify(cert, ca, root)?;
    cert.verify_signature(&pae(&attestation.statement), &attestation.signature)?;
    let predicate = statement::check(&attestation.statement, filename, sha256)?;
    Ok((predicate, time))
}
