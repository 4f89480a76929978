//! The CA: create, load and vet the pair that signs every leaf.

mod files;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::crypto::SecureRandom;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;

use crate::{pem_encode, random_bytes, random_serial, Error, Scope};

/// How long a CA created by pipgate is valid: long enough that nobody re-distributes it, short
/// enough to be a finite trust decision.
const CA_LIFETIME: Duration = Duration::days(3650);
/// Backdating of the CA's not-before, so clients with a slow clock accept it at once.
const CA_BACKDATE: Duration = Duration::hours(1);

/// pipgate's certificate authority: its certificate and (private) key.
///
/// Invariant: `key` matches the public key in `cert_der`, the certificate is a CA, and `signer`
/// reproduces the certificate's subject byte for byte and carries its Subject Key Identifier, so
/// leaves chain to `cert_der` by name and by Authority Key Identifier.
pub struct Ca {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
    /// rcgen's view of the CA, rebuilt from the parsed certificate (not the original DER: rcgen
    /// 0.13 signs only under a `Certificate` it made). Only its subject and key identifier are
    /// used; its own DER is never sent.
    signer: rcgen::Certificate,
    subject: String,
    /// The end of the CA's validity: no leaf may outlive it.
    not_after: OffsetDateTime,
    /// The hosts its name constraints let it vouch for.
    scope: Scope,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand so the private key can never end up in a log line.
        f.debug_struct("Ca")
            .field("subject", &self.subject)
            .field("scope", &self.scope)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Writes DIR/ca.pem and DIR/ca.key (key file created 0600, dir created 0700 if missing);
    /// refuses to overwrite an existing file unless force. The certificate carries `scope` as
    /// a critical nameConstraints extension (none for [`Scope::Unconstrained`]). Returns the
    /// loaded Ca.
    pub fn init(dir: &Path, force: bool, scope: &Scope) -> Result<Ca, Error> {
        files::create_private_dir(dir)?;
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        if !force {
            // Checked up front so neither file is touched when either exists; `write_new`
            // below re-checks atomically.
            for path in [&key_path, &cert_path] {
                if files::exists(path)? {
                    return Err(Error::Exists { path: path.clone() });
                }
            }
        }
        let rng = rustls::crypto::ring::default_provider().secure_random;
        let (cert_pem, key_pem) = generate(rng, scope)?;
        // Key first: if the certificate write then fails, the next start reports a half pair
        // instead of silently minting a new key over the old one.
        if force {
            let nonce = u32::from_be_bytes(random_bytes(rng)?);
            files::write_replace(&key_path, key_pem.as_bytes(), files::KEY_MODE, nonce)?;
            files::write_replace(&cert_path, cert_pem.as_bytes(), files::CERT_MODE, nonce)?;
        } else {
            files::write_new(&key_path, key_pem.as_bytes(), files::KEY_MODE)?;
            files::write_new(&cert_path, cert_pem.as_bytes(), files::CERT_MODE)?;
        }
        tracing::info!(cert = %cert_path.display(), key = %key_path.display(), "created a new CA");
        Ca::from_pem(
            cert_pem.as_bytes(),
            &cert_path,
            key_pem.as_bytes(),
            &key_path,
        )
    }

    /// Loads an existing pair; missing, unreadable, unparsable or mismatched (key does not match
    /// the certificate's public key, or the cert is not a CA) files are errors naming the path.
    pub fn load(cert: &Path, key: &Path) -> Result<Ca, Error> {
        let cert_bytes = files::read(cert)?;
        let key_bytes = files::read(key)?;
        Ca::from_pem(&cert_bytes, cert, &key_bytes, key)
    }

    /// For the embedded default: both files missing -> create one constrained to `scope`
    /// (returns true); both present -> load, whatever its scope; exactly one present -> error
    /// (never silently replace an existing key).
    pub fn load_or_create(cert: &Path, key: &Path, scope: &Scope) -> Result<(Ca, bool), Error> {
        match (files::exists(cert)?, files::exists(key)?) {
            (true, true) => Ok((Ca::load(cert, key)?, false)),
            (true, false) => Err(Error::Incomplete {
                present: cert.to_owned(),
                missing: key.to_owned(),
            }),
            (false, true) => Err(Error::Incomplete {
                present: key.to_owned(),
                missing: cert.to_owned(),
            }),
            (false, false) => {
                for path in [cert, key] {
                    if let Some(parent) = path.parent() {
                        files::create_private_dir(parent)?;
                    }
                }
                let (cert_pem, key_pem) = generate(
                    rustls::crypto::ring::default_provider().secure_random,
                    scope,
                )?;
                files::write_new(key, key_pem.as_bytes(), files::KEY_MODE)?;
                files::write_new(cert, cert_pem.as_bytes(), files::CERT_MODE)?;
                tracing::info!(cert = %cert.display(), key = %key.display(), "created a new CA");
                let ca = Ca::from_pem(cert_pem.as_bytes(), cert, key_pem.as_bytes(), key)?;
                Ok((ca, true))
            }
        }
    }

    /// The CA certificate, PEM-encoded (what users hand to `PIP_CERT` / `SSL_CERT_FILE`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER-encoded.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA's subject, RFC 4514 style (for logs and `Debug`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The hosts the CA's name constraints let it vouch for.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    pub(crate) fn signer(&self) -> (&rcgen::Certificate, &KeyPair) {
        (&self.signer, &self.key)
    }

    /// Parses and vets a pair. `cert_path`/`key_path` only name the files in errors.
    fn from_pem(
        cert_pem: &[u8],
        cert_path: &Path,
        key_pem: &[u8],
        key_path: &Path,
    ) -> Result<Ca, Error> {
        let bad_cert = |reason: String| Error::Certificate {
            path: cert_path.to_owned(),
            reason,
        };
        let bad_key = |reason: String| Error::Key {
            path: key_path.to_owned(),
            reason,
        };

        let cert_der = CertificateDer::from_pem_slice(cert_pem)
            .map_err(|e| bad_cert(format!("no PEM CERTIFICATE block ({e})")))?;
        let key = parse_key(key_pem).map_err(bad_key)?;

        let (rest, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| bad_cert(format!("unparsable X.509 ({e})")))?;
        if !rest.is_empty() {
            return Err(bad_cert("trailing bytes after the certificate".into()));
        }
        match x509.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            Ok(_) => {
                return Err(bad_cert(
                    "not a CA (basicConstraints CA:TRUE is missing)".into(),
                ))
            }
            Err(e) => return Err(bad_cert(format!("invalid basicConstraints ({e})"))),
        }
        match x509.key_usage() {
            Ok(Some(ku)) if !ku.value.key_cert_sign() => {
                return Err(bad_cert("its keyUsage does not allow keyCertSign".into()))
            }
            Ok(_) => {}
            Err(e) => return Err(bad_cert(format!("invalid keyUsage ({e})"))),
        }
        let not_after = x509.validity().not_after;
        if not_after.timestamp() <= OffsetDateTime::now_utc().unix_timestamp() {
            return Err(bad_cert(format!("it expired on {not_after}")));
        }
        let not_after = OffsetDateTime::from_unix_timestamp(not_after.timestamp())
            .map_err(|e| bad_cert(format!("its notAfter is out of range ({e})")))?;
        // The raw key bytes (EC point, RSA modulus/exponent DER, Ed25519 key) are what both
        // sides expose, so equality here means the key signs for this certificate.
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(Error::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            });
        }
        let has_ski = x509.iter_extensions().any(|ext| {
            matches!(
                ext.parsed_extension(),
                ParsedExtension::SubjectKeyIdentifier(_)
            )
        });
        if !has_ski {
            // Strict verifiers (Python 3.13's default context, `openssl verify -x509_strict`)
            // reject any chain through a CA without SKI, whatever the leaf says; older clients
            // accept it. Warn rather than refuse a CA the operator chose.
            tracing::warn!(
                cert = %cert_path.display(),
                "CA certificate has no Subject Key Identifier: Python >= 3.13 and other strict \
                 TLS clients will reject every certificate pipgate mints under it"
            );
        }
        // rcgen re-encodes the subject from parsed attributes and panics on an empty RDN (0.13),
        // so refuse shapes it cannot carry before handing it the certificate.
        if x509.subject().iter().any(|rdn| rdn.iter().count() != 1) {
            return Err(bad_cert(
                "its subject has an empty or multi-valued RDN, which pipgate cannot reproduce"
                    .into(),
            ));
        }
        let scope = Scope::of(&x509).map_err(bad_cert)?;
        let subject = x509.subject().to_string();
        let subject_raw = x509.subject().as_raw().to_vec();

        let params = CertificateParams::from_ca_cert_der(&cert_der)
            .map_err(|e| bad_cert(format!("rcgen cannot use it ({e})")))?;
        let signer = params
            .self_signed(&key)
            .map_err(|e| bad_cert(format!("rcgen cannot sign with it ({e})")))?;

        // Leaves are matched to the CA by exact issuer bytes (rustls-webpki compares them
        // byte for byte); prove rcgen's re-encoding is exact before trusting it.
        let probe = CertificateParams::default()
            .signed_by(&key, &signer, &key)
            .map_err(|e| bad_cert(format!("signing a probe certificate failed ({e})")))?;
        let probe_issuer = x509_parser::parse_x509_certificate(probe.der())
            .map(|(_, p)| p.issuer().as_raw().to_vec())
            .map_err(|e| bad_cert(format!("probe certificate unparsable ({e})")))?;
        if probe_issuer != subject_raw {
            return Err(bad_cert(
                "its subject name cannot be reproduced byte for byte (repeated attribute types or unusual string types)".into(),
            ));
        }

        Ok(Ca {
            // Re-encoded rather than kept as read, so stray blocks or text in the file never
            // reach a bundle.
            cert_pem: pem_encode(&cert_der),
            cert_der: cert_der.into_owned(),
            key,
            signer,
            subject,
            not_after,
            scope,
        })
    }
}

/// Parses a PKCS#8 private key, explaining the other PEM kinds openssl produces.
fn parse_key(pem: &[u8]) -> Result<KeyPair, String> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(PrivateKeyDer::Pkcs8(der)) => KeyPair::try_from(&der).map_err(|e| format!("unsupported PKCS#8 key ({e})")),
        Ok(PrivateKeyDer::Sec1(_)) | Ok(PrivateKeyDer::Pkcs1(_)) => Err(
            "only PKCS#8 (\"BEGIN PRIVATE KEY\") keys are supported; convert with `openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW`".into(),
        ),
        Ok(_) => Err("unsupported key format".into()),
        Err(e) => Err(format!("no PEM PRIVATE KEY block ({e})")),
    }
}

/// A fresh CA: ECDSA P-256, CA:TRUE (pathlen 0), keyCertSign+cRLSign, SKI, 10 years, `scope`
/// as a critical nameConstraints extension, and a random id in the CN so two installations
/// are told apart. Returns (cert PEM, key PEM).
fn generate(rng: &dyn SecureRandom, scope: &Scope) -> Result<(String, String), Error> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::generate("the CA key", e))?;
    let id = random_bytes::<4>(rng)?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "pipgate");
    dn.push(DnType::CommonName, format!("pipgate CA {id}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - CA_BACKDATE;
    params.not_after = now + CA_LIFETIME;
    params.serial_number = Some(random_serial(rng)?);
    params.name_constraints = scope.name_constraints();
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::generate("the CA certificate", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}
