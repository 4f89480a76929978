//! How upstream server certificates are verified: the system roots and the CA certificates of
//! `upstream.extra_roots` through webpki, plus pinned certificates, and failures explained.
//!
//! A certificate of `extra_roots` that is not a CA (a private index's self-signed server
//! certificate, typically) is *pinned*: a server presenting exactly those bytes, for a name
//! the certificate holds, within its validity, is trusted, and nothing else is trusted
//! because of it. Such a certificate is never made a root: webpki does not check an anchor's
//! basicConstraints, so a server's key would otherwise be able to vouch for any host. The
//! server still proves it holds the pinned certificate's key: the handshake signature is
//! checked by the provider, as for every other certificate.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// One certificate of `upstream.extra_roots`, with the file it came from.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub cert: CertificateDer<'static>,
    pub path: PathBuf,
}

/// webpki over the roots, pins for `extra_roots`' non-CA certificates, plain-English errors.
#[derive(Debug)]
pub(crate) struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// Non-CA certificates of `extra_roots`, trusted as exactly themselves.
    pinned: Vec<Listed>,
    /// CA certificates of `extra_roots` (roots of `webpki`), to name their file in errors.
    cas: Vec<Listed>,
    provider: Arc<CryptoProvider>,
}

/// A verification failure said in words; `upstream::tls_text` shows it as it is.
#[derive(Debug)]
pub(crate) struct Explained(pub String);

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Explained {}

fn explained(text: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        Explained(text),
    ))))
}

/// True when `cert` says `basicConstraints CA:TRUE` (a certificate that does not parse is
/// left to webpki as a root, which refuses it with its own error).
pub(crate) fn is_ca(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref()).map_or(true, |(_, c)| c.is_ca())
}

impl Verifier {
    pub(crate) fn new(
        webpki: Arc<WebPkiServerVerifier>,
        pinned: Vec<Listed>,
        cas: Vec<Listed>,
        provider: Arc<CryptoProvider>,
    ) -> Verifier {
        Verifier {
            webpki,
            pinned,
            cas,
            provider,
        }
    }

    /// A pinned certificate: its names and validity are still checked.
    fn pinned(
        &self,
        pin: &Listed,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let file = pin.path.display();
        let host = name(server_name);
        let ee = webpki::EndEntityCert::try_from(&pin.cert)
            .map_err(|e| explained(format!("the pinned certificate in {file} is unusable: {e}")))?;
        if ee.verify_is_valid_for_subject_name(server_name).is_err() {
            return Err(explained(format!(
                "the certificate in upstream.extra_roots ({file}) is {host}'s own, but it does \
                 not name {host} (subjectAltName); make it again with {host} in it"
            )));
        }
        let (_, parsed) = x509_parser::parse_x509_certificate(pin.cert.as_ref()).map_err(|e| {
            explained(format!(
                "the pinned certificate in {file} does not parse: {e}"
            ))
        })?;
        let validity = parsed.validity();
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now_secs > validity.not_after.timestamp() {
            return Err(explained(format!(
                "the certificate in upstream.extra_roots ({file}) that {host} presents expired \
                 at {}; renew it on the server and list the new one",
                when(validity.not_after.timestamp())
            )));
        }
        if now_secs < validity.not_before.timestamp() {
            return Err(explained(format!(
                "the certificate in upstream.extra_roots ({file}) that {host} presents is not \
                 valid before {} (check the clocks)",
                when(validity.not_before.timestamp())
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    /// webpki's refusal of `end_entity` in words.
    fn explain(
        &self,
        error: rustls::Error,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
    ) -> rustls::Error {
        let host = name(server_name);
        let rustls::Error::InvalidCertificate(cert_error) = &error else {
            return error;
        };
        let listed_ca = self
            .cas
            .iter()
            .find(|c| c.cert.as_ref() == end_entity.as_ref());
        let text = match cert_error {
            CertificateError::Other(other)
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                match listed_ca {
                    Some(ca) => format!(
                        "the certificate in extra_roots ({}) is a CA used as the server's own \
                         certificate; give {host} a certificate issued by that CA, or a \
                         self-signed certificate without basicConstraints CA:TRUE and list that \
                         one (pipgate pins it)",
                        ca.path.display()
                    ),
                    None => format!(
                        "{host} presents a CA certificate (basicConstraints CA:TRUE) as its own; \
                         it needs a server certificate issued by a CA (or a self-signed one \
                         without CA:TRUE, listed in upstream.extra_roots)"
                    ),
                }
            }
            CertificateError::UnknownIssuer => format!(
                "{host}'s certificate is not issued by a trusted root (the system's, or a CA in \
                 upstream.extra_roots); add its CA certificate to upstream.extra_roots, or, for \
                 a self-signed server certificate, the certificate itself (it is then pinned)"
            ),
            CertificateError::NotValidForName => {
                format!("{host}'s certificate is not valid for the name {host}")
            }
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "{host}'s certificate is not valid for the name {host}; it names {}",
                if presented.is_empty() {
                    "no DNS name or address".to_owned()
                } else {
                    presented.join(", ")
                }
            ),
            CertificateError::Expired => format!("{host}'s certificate has expired"),
            CertificateError::ExpiredContext { not_after, .. } => format!(
                "{host}'s certificate expired at {}",
                when(i64::try_from(not_after.as_secs()).unwrap_or(i64::MAX))
            ),
            CertificateError::NotValidYet => format!("{host}'s certificate is not valid yet"),
            CertificateError::NotValidYetContext { not_before, .. } => format!(
                "{host}'s certificate is not valid before {} (check the clocks)",
                when(i64::try_from(not_before.as_secs()).unwrap_or(i64::MAX))
            ),
            _ => return error,
        };
        explained(text)
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = self
            .pinned
            .iter()
            .find(|p| p.cert.as_ref() == end_entity.as_ref())
        {
            return self.pinned(pin, server_name, now);
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| self.explain(e, end_entity, server_name))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn name(server_name: &ServerName<'_>) -> String {
    match server_name {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// A certificate time, RFC 3339.
fn when(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} (Unix time)"))
}
