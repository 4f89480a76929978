//! The CA and the leaf certificates pipgate mints for intercepted hosts.
//!
//! [`Ca`] owns the CA key (created 0600, never printed); [`Leaves`] mints short-lived leaves
//! under it with one shared leaf key and hands out ready rustls `ServerConfig`s, cached per host.
//! The shapes are the ones every client in `shared/clients.md` accepts, including Python 3.13's
//! `VERIFY_X509_STRICT`.

mod ca;
mod error;
mod leaves;
mod scope;

pub use ca::Ca;
pub use error::Error;
pub use leaves::Leaves;
pub use scope::{Scope, Subtree};

use rustls::crypto::SecureRandom;

/// Random bytes from the same CSPRNG rustls uses, so no second RNG dependency is needed.
fn random_bytes<const N: usize>(rng: &dyn SecureRandom) -> Result<[u8; N], Error> {
    let mut buf = [0u8; N];
    rng.fill(&mut buf).map_err(|_| Error::Random)?;
    Ok(buf)
}

/// A positive, non-zero, full-length 128-bit serial: RFC 5280 wants positive serials and CAB
/// guidance wants at least 64 random bits; fixing the top bits keeps the DER length constant.
fn random_serial(rng: &dyn SecureRandom) -> Result<rcgen::SerialNumber, Error> {
    let mut bytes = random_bytes::<16>(rng)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

/// PEM-encodes a certificate (64-column base64), avoiding a dependency for one small job.
fn pem_encode(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            // A chunk of k bytes yields k+1 significant sextets; the rest is padding.
            b64.push(if i <= chunk.len() {
                ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.chunks(64) {
        out.extend(line.iter().map(|&b| char::from(b)));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
