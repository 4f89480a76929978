//! The signing certificate: its path to a Fulcio CA at a given time (rustls-webpki), the
//! Sigstore X.509 profile (digitalSignature, codeSigning), and its Fulcio claims (x509-parser).

use std::time::Duration;

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::der::parse_der_utf8string;
use x509_parser::extensions::GeneralName;

use crate::root::{CertificateAuthority, TrustedRoot};
use crate::Error;

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER content octets: the EKU Fulcio issues.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Every scheme Fulcio CAs and signing keys use (sigstore's algorithm registry, ring-backed).
pub(crate) static ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ED25519,
];

/// The schemes an envelope is signed with: the curve's own hash, as sigstore-python verifies.
static ENVELOPE_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
];

/// A parsed signing certificate.
pub(crate) struct SigningCert<'a> {
    der: CertificateDer<'a>,
    parsed: X509Certificate<'a>,
}

impl<'a> SigningCert<'a> {
    pub(crate) fn parse(der: &'a [u8]) -> Result<SigningCert<'a>, Error> {
        let (rest, parsed) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| Error::Certificate(format!("not DER X.509: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::Certificate(
                "trailing bytes after the certificate".into(),
            ));
        }
        Ok(SigningCert {
            der: CertificateDer::from(der),
            parsed,
        })
    }

    /// The certificate is valid at `t` (seconds since the epoch), carries the Sigstore
    /// profile's key usages, and chains to a Fulcio CA of `root` whose range contains `t`.
    /// Returns the CA the path goes through.
    pub(crate) fn verify_at<'r>(
        &self,
        root: &'r TrustedRoot,
        t: i64,
    ) -> Result<&'r CertificateAuthority, Error> {
        let validity = self.parsed.validity();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        if t < not_before || t > not_after {
            return Err(Error::Expired {
                integrated_time: t,
                not_before,
                not_after,
            });
        }
        // RFC 5280 §4.2.1.6, which sigstore-python's chain policy enforces: a certificate
        // with an empty subject names itself in a critical subjectAltName. Fulcio's do.
        if self.parsed.subject().iter().next().is_none() {
            match self.parsed.subject_alternative_name() {
                Ok(Some(san)) if san.critical => {}
                _ => {
                    return Err(Error::Certificate(
                        "empty subject without a critical subjectAltName".into(),
                    ));
                }
            }
        }
        match self.parsed.key_usage() {
            Ok(Some(ku)) if ku.value.digital_signature() => {}
            Ok(_) => {
                return Err(Error::Certificate(
                    "key usage lacks digitalSignature".into(),
                ))
            }
            Err(e) => return Err(Error::Certificate(format!("key usage: {e}"))),
        }
        let ee =
            EndEntityCert::try_from(&self.der).map_err(|e| Error::Certificate(format!("{e:?}")))?;
        let time = UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(t).map_err(|_| Error::Chain(format!("integrated time {t}")))?,
        ));
        let mut last = String::from("no Fulcio CA of the trusted root was valid then");
        for ca in root.cas.iter().filter(|ca| ca.valid.contains(t)) {
            let Some((anchor, intermediates)) = ca.chain.split_last() else {
                continue;
            };
            let anchor = webpki::anchor_from_trusted_cert(anchor)
                .map_err(|e| Error::Chain(format!("{e:?}")))?;
            match ee.verify_for_usage(
                ALGS,
                &[anchor],
                intermediates,
                time,
                KeyUsage::required(CODE_SIGNING),
                None,
                None,
            ) {
                Ok(_) => return Ok(ca),
                Err(e) => last = format!("{e:?}"),
            }
        }
        Err(Error::Chain(last))
    }

    /// Verifies `signature` over `message` with the certificate's public key.
    pub(crate) fn verify_signature(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        let ee =
            EndEntityCert::try_from(&self.der).map_err(|e| Error::Certificate(format!("{e:?}")))?;
        if ENVELOPE_ALGS
            .iter()
            .any(|alg| ee.verify_signature(*alg, message, signature).is_ok())
        {
            Ok(())
        } else {
            Err(Error::Signature)
        }
    }

    pub(crate) fn parsed(&self) -> &X509Certificate<'a> {
        &self.parsed
    }

    pub(crate) fn der(&self) -> &[u8] {
        self.der.as_ref()
    }

    pub(crate) fn claims(&self) -> Claims<'_> {
        Claims { cert: &self.parsed }
    }
}

/// Read access to the Fulcio claims of a certificate.
pub(crate) struct Claims<'a> {
    cert: &'a X509Certificate<'a>,
}

impl<'a> Claims<'a> {
    fn raw(&self, oid: &str) -> Result<Option<&'a [u8]>, Error> {
        let mut found = None;
        for ext in self.cert.extensions() {
            if ext.oid.to_id_string() == oid {
                if found.is_some() {
                    return Err(Error::Certificate(format!("extension {oid} appears twice")));
                }
                found = Some(ext.value);
            }
        }
        Ok(found)
    }

    /// A claim whose value is a DER UTF8String (Fulcio's 1.3.6.1.4.1.57264.1.8 and later).
    pub(crate) fn v2(&self, oid: &str) -> Result<Option<&'a str>, Error> {
        let Some(raw) = self.raw(oid)? else {
            return Ok(None);
        };
        let bad = || Error::Certificate(format!("extension {oid} is not a DER UTF8String"));
        let (rest, obj) = parse_der_utf8string(raw).map_err(|_| bad())?;
        if !rest.is_empty() {
            return Err(bad());
        }
        obj.as_str().map(Some).map_err(|_| bad())
    }

    /// A claim whose value is the raw string (Fulcio's deprecated 1.3.6.1.4.1.57264.1.1..6).
    pub(crate) fn v1(&self, oid: &str) -> Result<Option<&'a str>, Error> {
        self.raw(oid)?
            .map(|raw| {
                std::str::from_utf8(raw)
                    .map_err(|_| Error::Certificate(format!("extension {oid} is not UTF-8")))
            })
            .transpose()
    }

    /// The certificate's email and URI subject alternative names.
    pub(crate) fn sans(&self) -> Result<Vec<&'a str>, Error> {
        let san = self
            .cert
            .subject_alternative_name()
            .map_err(|e| Error::Certificate(format!("subject alternative name: {e}")))?;
        Ok(san
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::RFC822Name(s) | GeneralName::URI(s) => Some(*s),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}
