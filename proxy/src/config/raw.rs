//! The file's shape as serde sees it; `build` turns it into typed settings.

use std::collections::{BTreeMap, HashMap};

use pipgate_policy::{Index, OnPrivateIndexError, Policy, Role};
use serde::Deserialize;
use toml::Spanned;

use super::{
    default_data_dir, default_indexes, rules, AccessSettings, CaSettings, Config, ConfigError, Ctx,
    Limits, LookupSettings, Threads, UpstreamSettings, DEFAULT_LISTEN,
};
use pipgate_policy::{HostPattern, Network, Unlisted};

type S = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    listen: Option<S>,
    admin_listen: Option<S>,
    transparent_listen: Option<S>,
    threads: Option<Spanned<toml::Value>>,
    ca: Option<RawCa>,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    index: Vec<RawIndex>,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    access: RawAccess,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCa {
    cert: S,
    key: S,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    #[serde(default)]
    extra_roots: Vec<S>,
    connect_timeout: Option<S>,
    response_timeout: Option<S>,
    idle_timeout: Option<S>,
    #[serde(default)]
    resolve: BTreeMap<String, S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    name: S,
    url: S,
    role: Spanned<RawRole>,
    #[serde(default)]
    file_hosts: Vec<S>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawRole {
    Public,
    Private,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawOnError {
    Block,
    Allow,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    private: Vec<S>,
    #[serde(default)]
    allow_public: Vec<S>,
    private_index_ttl: Option<S>,
    private_index_negative_ttl: Option<S>,
    on_private_index_error: Option<RawOnError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    unlisted_hosts: Option<RawUnlisted>,
    #[serde(default)]
    tunnel_allow: Vec<S>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawUnlisted {
    Block,
    Tunnel,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    header_timeout: Option<S>,
    client_idle_timeout: Option<S>,
    max_page_bytes: Option<usize>,
    max_buffered_page_bytes: Option<usize>,
    h2_max_concurrent_streams: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    #[serde(default)]
    allow_clients: Vec<S>,
    credentials: Option<S>,
}

fn opt_duration(
    ctx: &Ctx<'_>,
    key: &str,
    v: &Option<S>,
    default: u64,
) -> Result<std::time::Duration, ConfigError> {
    match v {
        Some(v) => ctx.duration(key, v),
        None => Ok(std::time::Duration::from_secs(default)),
    }
}

impl RawConfig {
    pub(super) fn build(
        self,
        text: &str,
        base: &std::path::Path,
        source: Option<&std::path::Path>,
    ) -> Result<Config, ConfigError> {
        let ctx = Ctx { text, base };
        let listen = match &self.listen {
            Some(v) => ctx.socket_addr("listen", v)?,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| plain("listen", "bad default"))?,
        };
        let admin_listen = self
            .admin_listen
            .as_ref()
            .map(|v| ctx.socket_addr("admin_listen", v))
            .transpose()?;
        let transparent_listen = self
            .transparent_listen
            .as_ref()
            .map(|v| ctx.socket_addr("transparent_listen", v))
            .transpose()?;
        let threads = match &self.threads {
            Some(v) => ctx.threads(v)?,
            None => Threads::Count(std::num::NonZeroUsize::MIN),
        };

        let ca = match &self.ca {
            Some(ca) => CaSettings {
                cert: ctx.path(ca.cert.get_ref()),
                key: ctx.path(ca.key.get_ref()),
                create_if_missing: false,
            },
            None => {
                let dir = default_data_dir();
                CaSettings {
                    cert: dir.join("ca.pem"),
                    key: dir.join("ca.key"),
                    create_if_missing: true,
                }
            }
        };

        let u = &self.upstream;
        let mut resolve = HashMap::new();
        for (from, to) in &u.resolve {
            let key = format!("upstream.resolve.\"{from}\"");
            let (host, port) = split_host_port(from)
                .ok_or_else(|| ctx.err(&key, to.span(), format!("{from:?} is not host:port")))?;
            resolve.insert((host, port), ctx.socket_addr(&key, to)?);
        }
        let upstream = UpstreamSettings {
            extra_roots: u
                .extra_roots
                .iter()
                .map(|p| ctx.path(p.get_ref()))
                .collect(),
            connect_timeout: opt_duration(&ctx, "upstream.connect_timeout", &u.connect_timeout, 5)?,
            response_timeout: opt_duration(
                &ctx,
                "upstream.response_timeout",
                &u.response_timeout,
                30,
            )?,
            idle_timeout: opt_duration(&ctx, "upstream.idle_timeout", &u.idle_timeout, 60)?,
            resolve,
        };

        let indexes = if self.index.is_empty() {
            default_indexes().map_err(|e| plain("index", &e.to_string()))?
        } else {
            let mut out = Vec::with_capacity(self.index.len());
            for (i, ix) in self.index.iter().enumerate() {
                let role = match ix.role.get_ref() {
                    RawRole::Public => Role::Public,
                    RawRole::Private => Role::Private,
                };
                let hosts: Vec<String> =
                    ix.file_hosts.iter().map(|h| h.get_ref().clone()).collect();
                let index = Index::new(ix.name.get_ref(), ix.url.get_ref(), role, &hosts)
                    .map_err(|e| ctx.err(&format!("index[{i}]"), ix.url.span(), e.to_string()))?;
                out.push(index);
            }
            out
        };

        let p = &self.policy;
        let private = ctx.patterns("policy.private", &p.private)?;
        let allow_public = ctx.patterns("policy.allow_public", &p.allow_public)?;
        let on_error = match p.on_private_index_error {
            Some(RawOnError::Allow) => OnPrivateIndexError::Allow,
            Some(RawOnError::Block) | None => OnPrivateIndexError::Block,
        };
        let lookups = LookupSettings {
            ttl: opt_duration(&ctx, "policy.private_index_ttl", &p.private_index_ttl, 300)?,
            negative_ttl: opt_duration(
                &ctx,
                "policy.private_index_negative_ttl",
                &p.private_index_negative_ttl,
                60,
            )?,
        };
        let policy = Policy::new(indexes, rules(private, allow_public, on_error))
            .map_err(|e| plain("index", &e.to_string()))?;

        let mut tunnel_allow = Vec::with_capacity(self.network.tunnel_allow.len());
        for h in &self.network.tunnel_allow {
            let pattern = HostPattern::parse(h.get_ref())
                .map_err(|e| ctx.err("network.tunnel_allow", h.span(), e.to_string()))?;
            tunnel_allow.push(pattern);
        }
        let network = Network {
            unlisted: match self.network.unlisted_hosts {
                Some(RawUnlisted::Tunnel) => Unlisted::Tunnel,
                Some(RawUnlisted::Block) | None => Unlisted::Block,
            },
            tunnel_allow,
            // A resolve override names its host and port as exactly as a tunnel_allow entry.
            named: upstream.resolve.keys().cloned().collect(),
        };

        let d = Limits::default();
        let l = &self.limits;
        let limits = Limits {
            max_connections: l.max_connections.unwrap_or(d.max_connections),
            max_connections_per_client: l
                .max_connections_per_client
                .unwrap_or(d.max_connections_per_client),
            max_header_bytes: l.max_header_bytes.unwrap_or(d.max_header_bytes),
            max_headers: l.max_headers.unwrap_or(d.max_headers),
            header_timeout: match &l.header_timeout {
                Some(v) => ctx.duration("limits.header_timeout", v)?,
                None => d.header_timeout,
            },
            client_idle_timeout: match &l.client_idle_timeout {
                Some(v) => ctx.duration("limits.client_idle_timeout", v)?,
                None => d.client_idle_timeout,
            },
            max_page_bytes: l.max_page_bytes.unwrap_or(d.max_page_bytes),
            max_buffered_page_bytes: l
                .max_buffered_page_bytes
                .unwrap_or(d.max_buffered_page_bytes),
            h2_max_concurrent_streams: l
                .h2_max_concurrent_streams
                .unwrap_or(d.h2_max_concurrent_streams),
        };

        let mut allow_clients = Vec::new();
        for c in &self.access.allow_clients {
            let net = parse_net(c.get_ref()).ok_or_else(|| {
                ctx.err(
                    "access.allow_clients",
                    c.span(),
                    format!(
                        "{:?} is not an address or CIDR (e.g. 10.0.0.0/8)",
                        c.get_ref()
                    ),
                )
            })?;
            allow_clients.push(net);
        }
        let access = AccessSettings {
            allow_clients,
            credentials: self
                .access
                .credentials
                .as_ref()
                .map(|p| ctx.path(p.get_ref())),
        };

        Ok(Config {
            source: source.map(ToOwned::to_owned),
            listen,
            admin_listen,
            transparent_listen,
            threads,
            ca,
            upstream,
            network,
            limits,
            access,
            lookups,
            policy,
        })
    }
}

fn plain(key: &str, message: &str) -> ConfigError {
    ConfigError {
        file: None,
        line: None,
        key: key.to_owned(),
        message: message.to_owned(),
    }
}

fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// Splits "host:port" (IPv6 in brackets), lower-casing the host.
pub(crate) fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), port.parse().ok()?))
}
