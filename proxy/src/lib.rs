//! The pipgate server: a TLS-inspecting forward proxy that filters Python package indexes.

mod accept;
mod access;
mod admin;
mod advisories;
mod auth;
mod body;
mod budget;
mod ca_scope;
mod cache;
pub mod cli;
pub mod config;
mod conn;
mod connect;
mod decisions;
mod decode;
mod digest;
mod encode;
mod exec;
mod front;
mod head;
mod intercept;
pub mod log;
mod lookup;
mod metrics;
mod plain;
mod provenance;
mod reload;
mod respond;
mod serve;
mod state;
mod tls;
mod transparent;
mod tunnel;
mod upstream;

/// Hooks for `proxy/fuzz`: the parsers of peer bytes, checked on every prefix of their input
/// as the unit tests check captured bytes. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// The request-head reader: a head that parses whole is incomplete at every shorter
    /// prefix and the same at its own length, and a prefix it refuses stays refused. `Err`
    /// says how the property broke.
    pub fn request_head_prefixes(data: &[u8]) -> Result<(), String> {
        prefixes(
            data,
            |b| crate::head::parse(b, 16),
            |h| h.len,
            |a, b| {
                (&a.method, &a.target, a.version, &a.headers, a.len)
                    == (&b.method, &b.target, b.version, &b.headers, b.len)
            },
        )
    }

    /// The same for transparent mode's ClientHello parser.
    pub fn client_hello_prefixes(data: &[u8]) -> Result<(), String> {
        prefixes(
            data,
            crate::transparent::client_hello::parse,
            |h| h.len,
            |a, b| a == b,
        )
    }

    /// The every-prefix property of a parser `parse` of partial input (`Ok(None)`: more is
    /// needed) whose result says how many bytes it took (`len`).
    fn prefixes<T: std::fmt::Debug, E: std::fmt::Debug>(
        data: &[u8],
        parse: impl Fn(&[u8]) -> Result<Option<T>, E>,
        len: impl Fn(&T) -> usize,
        same: impl Fn(&T, &T) -> bool,
    ) -> Result<(), String> {
        let whole = parse(data);
        let mut refused = None;
        for i in 0..=data.len() {
            let part = parse(&data[..i]);
            match (&part, refused) {
                (Err(_), None) => refused = Some(i),
                (Ok(_), Some(at)) => {
                    return Err(format!("refused at {at} bytes, accepted again at {i}"))
                }
                _ => {}
            }
            let Ok(Some(got)) = &part else {
                continue;
            };
            // Complete at `i`: exactly at its own length, and as the whole input reads.
            return match &whole {
                Ok(Some(want)) if len(got) == i && len(want) == i && same(got, want) => Ok(()),
                _ => Err(format!(
                    "complete at {i} bytes as {got:?}, the whole input as {whole:?}"
                )),
            };
        }
        Ok(())
    }
}

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use pipgate_certs::Leaves;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::state::{Runtime, Shared};

/// ALPN offered to intercepted clients: HTTP/2 for uv, HTTP/1.1 for pip.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why pipgate could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The CA could not be loaded or created.
    #[error("CA: {0}")]
    Ca(#[from] pipgate_certs::Error),
    /// The CA's name constraints leave out a host the configuration intercepts (a config
    /// error: exit code 2).
    #[error("{0}")]
    OutOfScope(Box<OutOfScope>),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The runtime (upstream roots, credentials) could not be built.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl StartError {
    /// Whether the configuration is at fault (exit code 2, as for a config error).
    pub fn is_config(&self) -> bool {
        matches!(self, StartError::OutOfScope(_))
    }
}

/// A bound, ready-to-run pipgate.
#[derive(Debug)]
pub struct App {
    shared: Arc<Shared>,
    /// True when the CA was created on this start.
    pub ca_created: bool,
    listener: TcpListener,
    admin: Option<TcpListener>,
    transparent: Option<TcpListener>,
}

impl App {
    /// Loads (or, on the embedded default, creates constrained to the configured hosts) the
    /// CA, refuses one that may not vouch for every intercepted host, and binds the listeners.
    pub async fn bind(config: Config) -> Result<App, StartError> {
        let (ca, ca_created) = ca_scope::load(&config)?;
        ca_scope::check(&config, ca.scope()).map_err(StartError::OutOfScope)?;
        ca_scope::warn_unconstrained(&config, ca.scope());
        let leaves = Leaves::new(ca, ALPN.iter().map(|p| p.to_vec()).collect())?;
        let listener = bind(config.listen).await?;
        let admin = match config.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let transparent = match config.transparent_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let runtime = Runtime::new(config)?;
        let cache = cache::Cache::open(&runtime.config.cache);
        let shared = Shared::new(runtime, leaves, cache);
        Ok(App {
            shared,
            ca_created,
            listener,
            admin,
            transparent,
        })
    }

    /// The recent decisions, readable while and after it runs.
    pub fn recent(&self) -> Recent {
        Recent(self.shared.clone())
    }

    /// A handle that reloads the configuration file (what SIGHUP does).
    pub fn reloader(&self) -> Reloader {
        Reloader(self.shared.clone())
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The transparent-mode listener (`transparent_listen`), when configured.
    pub fn transparent_addr(&self) -> Option<SocketAddr> {
        self.transparent.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        // pipgate's own addresses: a redirected connection aimed at one of them is a loop.
        let own: Vec<SocketAddr> = [
            self.local_addr(),
            self.admin_addr(),
            self.transparent_addr(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // The CA is loaded and every listener is bound (App::bind): ready, before the admin
        // port can answer its first /readyz.
        self.shared.ready.store(true, SeqCst);
        self.shared.runtime.load().warn_audited();
        // The advisory feed (when configured, now or after a reload) is kept current beside
        // the listeners; the task ends with the runtime.
        tokio::spawn(advisories::run(self.shared.clone()));
        // The credentials file is watched: a user added with `pipgate passwd` needs no reload.
        tokio::spawn(auth::watch(self.shared.clone()));
        if let Some(admin) = self.admin {
            let shared = self.shared.clone();
            let mut rx = stop_rx.clone();
            tokio::spawn(admin::run(admin, shared, async move {
                let _ = rx.changed().await;
            }));
        }
        // Both client listeners stop accepting at the same signal and drain side by side.
        let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
        let transparent = self.transparent.map(|listener| {
            let mut rx = drain_rx;
            tokio::spawn(transparent::run(
                listener,
                self.shared.clone(),
                own,
                async move {
                    let _ = rx.changed().await;
                },
            ))
        });
        let shutdown = async move {
            shutdown.await;
            let _ = drain_tx.send(true);
        };
        front::run(self.listener, self.shared.clone(), shutdown).await;
        if let Some(task) = transparent {
            let _ = task.await;
        }
        self.shared.ready.store(false, SeqCst);
        let _ = stop_tx.send(true);
    }
}

/// Reloads a running pipgate's configuration file; cheap to clone.
#[derive(Clone, Debug)]
pub struct Reloader(Arc<Shared>);

impl Reloader {
    /// Reads the file again and swaps the new configuration in, or keeps the old one and
    /// says why (logged, and counted in `pipgate_reload_failures_total`).
    pub fn reload(&self) -> Result<String, ReloadError> {
        reload::reload(&self.0)
    }
}

/// A running (or stopped) pipgate's recent decisions.
#[derive(Clone, Debug)]
pub struct Recent(Arc<Shared>);

impl Recent {
    /// One line per distinct block or withheld file, oldest first (what `pipgate exec`
    /// prints), and a last line when more were decided than the record keeps.
    pub fn distinct_lines(&self) -> Vec<String> {
        self.0.decisions.distinct_lines()
    }
}

pub use ca_scope::OutOfScope;
pub use exec::exec;
pub use reload::ReloadError;
pub use state::RuntimeError;

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}
