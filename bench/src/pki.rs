//! Certificates for the benchmark: a throwaway CA for the origin and the client TLS configs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::Res;

/// The origin's CA; `pem` is what pipgate's `upstream.extra_roots` trusts.
pub(crate) struct OriginCa {
    pub pem: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for OriginCa {
    // By hand so the key never reaches output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginCa")
            .field("pem", &self.pem)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl OriginCa {
    /// Creates the CA and writes its certificate to `dir/origin-ca.pem`.
    pub(crate) fn new(dir: &Path) -> Res<OriginCa> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "pipgate bench origin CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let cert = params.self_signed(&key)?;
        let pem = dir.join("origin-ca.pem");
        std::fs::write(&pem, cert.pem())?;
        Ok(OriginCa { pem, cert, key })
    }

    pub(crate) fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A certificate chain (PEM) and key (PEM) for every name in `hosts`, written to
    /// `dir/origin-chain.pem` and `dir/origin-key.pem` for the origin process.
    pub(crate) fn write_server_cert(&self, hosts: &[String], dir: &Path) -> Res<()> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "bench origin");
        params.subject_alt_names = hosts
            .iter()
            .map(|h| Ok(SanType::DnsName(h.as_str().try_into()?)))
            .collect::<Res<Vec<_>>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        std::fs::write(
            dir.join(CHAIN),
            format!("{}{}", cert.pem(), self.cert.pem()),
        )?;
        std::fs::write(dir.join(KEY), key.serialize_pem())?;
        Ok(())
    }
}

const CHAIN: &str = "origin-chain.pem";
const KEY: &str = "origin-key.pem";

/// The origin's server config from what [`OriginCa::write_server_cert`] wrote to `dir`,
/// offering h2 and http/1.1 like PyPI's CDN (or http/1.1 alone).
pub(crate) fn server_config(dir: &Path, http1_only: bool) -> Res<Arc<ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    let chain = read_pem(&dir.join(CHAIN))?;
    let key = PrivateKeyDer::from_pem_file(dir.join(KEY))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = if http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

/// A client config trusting exactly `roots`, speaking HTTP/1.1, never resuming sessions (every
/// handshake is a full one, as the figures ask).
pub(crate) fn client_config(roots: &[CertificateDer<'static>]) -> Res<Arc<ClientConfig>> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file (pipgate's CA).
pub(crate) fn read_pem(path: &Path) -> Res<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    Ok(CertificateDer::pem_file_iter(path)?.collect::<Result<Vec<_>, _>>()?)
}
