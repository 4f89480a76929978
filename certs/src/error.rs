//! The one error type of pipgate-certs; every file-related variant names its path.

use std::path::PathBuf;

/// Why a CA could not be created or loaded, or a leaf could not be minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A CA file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A CA file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The target file exists and overwriting was not asked for.
    #[error("{} already exists; refusing to overwrite it without --force", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Only one of the CA certificate and key exists, so a new pair would orphan or replace it.
    #[error(
        "{} exists but {} does not; refusing to create a new CA over half of an existing one \
         (restore the missing file, or move the other one away)",
        present.display(),
        missing.display()
    )]
    Incomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// The certificate file is not a usable CA certificate.
    #[error("{} is not a usable CA certificate: {reason}", path.display())]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file is not a usable private key.
    #[error("{} is not a usable CA private key: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error("{} does not match the public key of {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The host is neither a valid DNS name nor an IP literal.
    #[error("cannot mint a certificate for {host:?}: not a valid DNS name or IP address")]
    InvalidHost {
        /// The host as given (possibly truncated for display).
        host: String,
    },
    /// A constrained CA was asked for with no host to permit.
    #[error("a constrained CA needs at least one host to permit")]
    EmptyScope,
    /// rcgen failed to build or sign a certificate.
    #[error("generating {what} failed: {source}")]
    Generate {
        /// Which certificate or key was being made.
        what: &'static str,
        /// rcgen's error, boxed so rcgen's version is no part of this API.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// rustls refused the key or configuration.
    #[error("building the TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

impl Error {
    pub(crate) fn generate(what: &'static str, source: rcgen::Error) -> Self {
        Error::Generate {
            what,
            source: Box::new(source),
        }
    }
}
