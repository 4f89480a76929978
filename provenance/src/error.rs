//! Why a provenance object, an attestation or a trusted root was refused: one line each.

/// Why verification failed. `Display` is one line naming the cause; it is what a client sees in
/// a `provenance-invalid` reason, so it never carries more than names, digests and times.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provenance object is not PEP 740 JSON of version 1.
    #[error("provenance object: {0}")]
    Malformed(String),
    /// The provenance object has no attestation bundle, or a bundle has no attestation.
    #[error("provenance object carries no attestation")]
    NoAttestations,
    /// The bundles of one provenance object name different publishers.
    #[error("provenance object names more than one publisher ({0} and {1})")]
    MultiplePublishers(String, String),
    /// The bundle's publisher is of a kind this verifier has no policy for.
    #[error("unsupported Trusted Publisher kind {0:?}")]
    UnsupportedPublisher(String),
    /// The distribution file name given to `verify` is not a wheel or sdist name.
    #[error("not a distribution file name: {0}")]
    BadFilename(String),
    /// The signing certificate is not DER X.509, or lacks what the Sigstore profile requires.
    #[error("signing certificate: {0}")]
    Certificate(String),
    /// The signing certificate does not chain to a Fulcio CA of the trusted root.
    #[error("signing certificate does not chain to a trusted Fulcio CA: {0}")]
    Chain(String),
    /// The certificate was not valid at the time the log integrated the entry.
    #[error("signing certificate was not valid at the log's integrated time {integrated_time} (valid {not_before}..{not_after})")]
    Expired {
        /// Seconds since the epoch, from the verified log entry.
        integrated_time: i64,
        /// Validity start, seconds since the epoch.
        not_before: i64,
        /// Validity end, seconds since the epoch.
        not_after: i64,
    },
    /// The certificate's embedded signed certificate timestamp does not verify.
    #[error("signing certificate's SCT: {0}")]
    Sct(String),
    /// The transparency log entry does not verify against the root's log keys.
    #[error("transparency log entry: {0}")]
    LogEntry(String),
    /// The log entry's body does not bind this envelope and certificate.
    #[error("transparency log entry does not match the attestation: {0}")]
    LogBinding(String),
    /// The DSSE envelope's signature does not verify with the certificate's key.
    #[error("envelope signature does not verify with the signing certificate's key")]
    Signature,
    /// The in-toto statement is malformed or of an unknown predicate type.
    #[error("statement: {0}")]
    Statement(String),
    /// The statement's subject is not the distribution file.
    #[error("statement subject {subject:?} is not {filename}")]
    SubjectName {
        /// The name the statement attests.
        subject: String,
        /// The file being verified.
        filename: String,
    },
    /// The statement's subject digest is not the file's sha256.
    #[error("statement's sha256 for {filename} is not the file's digest")]
    SubjectDigest {
        /// The file being verified.
        filename: String,
    },
    /// The certificate's identity is not the bundle's Trusted Publisher.
    #[error("signing certificate is not from the claimed publisher {publisher}: {detail}")]
    Publisher {
        /// The publisher the bundle claims.
        publisher: String,
        /// Which claim differed.
        detail: String,
    },
}

/// Why a trusted_root.json was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    /// Not the Sigstore trusted-root JSON (protobuf-specs form).
    #[error("trusted root: {0}")]
    Malformed(String),
    /// The root names no usable Fulcio CA or no usable transparency log key.
    #[error("trusted root has no usable {0}")]
    Empty(&'static str),
}
