//! The leaf factory: mints per-host leaves under the CA and caches ready `ServerConfig`s.

mod host;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::crypto::{CryptoProvider, SecureRandom};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::{random_serial, Ca, Error};
pub(crate) use host::Host;

/// Leaf timing. Invariant: `backdate < lifetime`, and `lifetime` (which includes the backdate)
/// stays under the 200 days some clients accept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetime {
    /// From not-before to not-after, backdating included.
    pub(crate) total: Duration,
    /// How far not-before lies in the past, for clients whose clock runs slow.
    pub(crate) backdate: Duration,
}

impl Lifetime {
    pub(crate) const DEFAULT: Lifetime = Lifetime {
        total: Duration::days(90),
        backdate: Duration::hours(1),
    };

    /// A leaf is replaced once less than a third of its lifetime remains, so a client never
    /// meets one close to expiry even with a skewed clock.
    fn renew_at(&self, not_after: OffsetDateTime) -> OffsetDateTime {
        not_after - self.total / 3
    }
}

/// Wall clock, injectable so tests can walk through renewal without waiting.
pub(crate) type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Hosts kept before the cache is pruned. The proxy mints only for configured hosts, so this
/// is a backstop against a misuse that would mint for every SNI a client invents.
const MAX_CACHED_HOSTS: usize = 4096;

/// Mints and caches one leaf per host, all sharing one key and all signed by the CA.
pub struct Leaves {
    ca: Ca,
    /// The one leaf key: leaves differ only in names and validity, so a per-host key would buy
    /// nothing but minting time.
    leaf_key: KeyPair,
    signing_key: Arc<dyn SigningKey>,
    provider: Arc<CryptoProvider>,
    rng: &'static dyn SecureRandom,
    alpn: Vec<Vec<u8>>,
    /// Host key -> slot. A slot's mutex is what coalesces concurrent first handshakes: the
    /// first caller mints while the others wait for its result.
    cache: DashMap<String, Arc<Slot>>,
    minted: AtomicU64,
    lifetime: Lifetime,
    clock: Clock,
}

#[derive(Default)]
struct Slot(Mutex<Option<Arc<Leaf>>>);

struct Leaf {
    config: Arc<ServerConfig>,
    chain: Vec<CertificateDer<'static>>,
    renew_at: OffsetDateTime,
}

impl fmt::Debug for Leaves {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand: neither the CA key nor the leaf key may be printed.
        f.debug_struct("Leaves")
            .field("ca", &self.ca)
            .field("alpn", &self.alpn)
            .field("cached", &self.cache.len())
            .field("minted", &self.minted())
            .finish_non_exhaustive()
    }
}

impl Leaves {
    /// alpn: the ALPN protocols the produced ServerConfigs offer (the proxy passes [h2, http/1.1]).
    pub fn new(ca: Ca, alpn: Vec<Vec<u8>>) -> Result<Leaves, Error> {
        Leaves::with_options(
            ca,
            alpn,
            Lifetime::DEFAULT,
            Arc::new(OffsetDateTime::now_utc),
        )
    }

    pub(crate) fn with_options(
        ca: Ca,
        alpn: Vec<Vec<u8>>,
        lifetime: Lifetime,
        clock: Clock,
    ) -> Result<Leaves, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| Error::generate("the leaf key", e))?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let signing_key = provider.key_provider.load_private_key(key_der)?;
        Ok(Leaves {
            ca,
            leaf_key,
            signing_key,
            rng: provider.secure_random,
            provider,
            alpn,
            cache: DashMap::new(),
            minted: AtomicU64::new(0),
            lifetime,
            clock,
        })
    }

    /// A rustls ServerConfig (ring provider, TLS 1.2+1.3) presenting a leaf for `host` (DNS name, or
    /// an IP literal -> IP SAN). Cached per host; concurrent callers for one host mint once
    /// (coalesced); re-minted when close to expiry. Sync: minting is sub-millisecond.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, Error> {
        Ok(Arc::clone(&self.leaf(host)?.config))
    }

    /// The chain presented for `host` (leaf first, then the CA), from the same cache as
    /// [`Leaves::server_config`]; for diagnostics and tests.
    pub fn chain(&self, host: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
        Ok(self.leaf(host)?.chain.clone())
    }

    /// Leaves minted so far (metrics).
    pub fn minted(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }

    /// Hosts in the cache (metrics).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The CA the leaves are signed by.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    fn leaf(&self, host: &str) -> Result<Arc<Leaf>, Error> {
        let host = Host::parse(host)?;
        let key = host.key();
        let slot = match self.cache.get(&key) {
            Some(slot) => Arc::clone(&slot),
            None => {
                if self.cache.len() >= MAX_CACHED_HOSTS {
                    self.prune();
                }
                // The shard lock is held only for this insert, never while minting.
                Arc::clone(&self.cache.entry(key).or_default())
            }
        };
        // A panic while minting cannot leave the Option half-written, so a poisoned lock
        // still holds a consistent value.
        let mut current = slot.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = (self.clock)();
        if let Some(leaf) = current.as_ref() {
            if now < leaf.renew_at {
                return Ok(Arc::clone(leaf));
            }
        }
        let leaf = Arc::new(self.mint(&host, now)?);
        *current = Some(Arc::clone(&leaf));
        Ok(leaf)
    }

    /// Drops leaves due for renewal; if that frees nothing, empties the cache (a later caller
    /// simply mints again).
    fn prune(&self) {
        let now = (self.clock)();
        self.cache.retain(|_, slot| match slot.0.try_lock() {
            Ok(leaf) => leaf.as_ref().is_some_and(|l| now < l.renew_at),
            // Busy slots are being minted for right now: keep them.
            Err(_) => true,
        });
        if self.cache.len() >= MAX_CACHED_HOSTS {
            self.cache.clear();
        }
    }

    fn mint(&self, host: &Host, now: OffsetDateTime) -> Result<Leaf, Error> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        // Never an empty subject: with one, strict verifiers demand a critical SAN, which
        // rcgen 0.13 cannot mark.
        dn.push(DnType::OrganizationName, "pipgate");
        let name = host.key();
        // CN is limited to 64 characters (RFC 5280 ub-common-name); the SAN carries the name.
        // An IP leaf gets no CN: OpenSSL checks the CN of a leaf without a DNS SAN against the
        // CA's dNSName constraints as if it were a host name, so `127.0.0.1` would fail them.
        if name.len() < 64 && matches!(host, Host::Dns(_)) {
            dn.push(DnType::CommonName, name.as_str());
        }
        params.distinguished_name = dn;
        params.subject_alt_names = vec![match host {
            Host::Ip(ip) => SanType::IpAddress(*ip),
            Host::Dns(dns) => SanType::DnsName(
                dns.as_str()
                    .try_into()
                    .map_err(|e| Error::generate("the leaf SAN", e))?,
            ),
        }];
        // Explicit CA:FALSE (and an SKI): a leaf must never be usable as an intermediate.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - self.lifetime.backdate;
        // A leaf never outlives its CA: clients would reject it at the CA's expiry anyway,
        // and one that looked valid longer would only hide when to renew the CA.
        let natural = params.not_before + self.lifetime.total;
        let ca_end = self.ca.not_after();
        params.not_after = natural.min(ca_end);
        params.serial_number = Some(random_serial(self.rng)?);
        let not_after = params.not_after;
        let renew_at = if ca_end < natural {
            tracing::warn!(host = %name, ca_expires = %ca_end, "the CA expires before a leaf's normal lifetime ends; leaves end with it: renew the CA");
            // Nothing better can be minted before the CA is replaced.
            ca_end
        } else {
            self.lifetime.renew_at(not_after)
        };

        let (issuer, issuer_key) = self.ca.signer();
        let cert = params
            .signed_by(&self.leaf_key, issuer, issuer_key)
            .map_err(|e| Error::generate("a leaf certificate", e))?;
        let chain = vec![cert.der().clone(), self.ca.cert_der().clone()];
        let certified = Arc::new(CertifiedKey::new(
            chain.clone(),
            Arc::clone(&self.signing_key),
        ));

        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(certified)));
        config.alpn_protocols = self.alpn.clone();
        let minted = self.minted.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(host = %name, %not_after, minted, "minted leaf certificate");
        Ok(Leaf {
            config: Arc::new(config),
            chain,
            renew_at,
        })
    }
}

/// Presents one chain whatever the ClientHello says: the config is already per host, and the
/// proxy checks SNI against the CONNECT target before choosing it.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}
