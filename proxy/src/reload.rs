//! Atomic config reload (SIGHUP, `POST /reload`): the new config is built completely first; any
//! error leaves the old one in force. Requests already running keep the runtime they loaded.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::config::{Config, ConfigErrors};
use crate::state::{Runtime, RuntimeError, Shared};

/// Why a reload was rejected (the previous configuration stays in force).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file does not make a configuration (every bad key, one per line).
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// It does, but a file it names cannot be used.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    /// It intercepts a host the running CA may not vouch for.
    #[error("{0}")]
    OutOfScope(Box<crate::OutOfScope>),
}

/// Rebuilds the runtime from the file the running one came from, and swaps it in.
pub(crate) fn reload(shared: &Shared) -> Result<String, ReloadError> {
    let current = shared.runtime.load();
    let Some(path) = current.config.source.clone() else {
        return Ok("running on the embedded default; nothing to reload".into());
    };
    let result = Config::load(&path)
        .map_err(ReloadError::from)
        .and_then(|config| {
            // The CA is read at start only: the new hosts must fit the one running.
            crate::ca_scope::check(&config, shared.leaves.ca().scope())
                .map_err(ReloadError::OutOfScope)?;
            Ok(Runtime::new(config)?)
        });
    match result {
        Ok(rt) => {
            if rt.config.listen != current.config.listen
                || rt.config.admin_listen != current.config.admin_listen
            {
                tracing::warn!("listen addresses changed in the file; they apply on restart only");
            }
            if rt.config.threads != current.config.threads {
                tracing::warn!("threads changed in the file; it applies on restart only");
            }
            if current.config.cache.needs_restart(&rt.config.cache) {
                tracing::warn!(
                    "[cache] dir or max_size changed in the file; it applies on restart only"
                );
            }
            let summary = format!(
                "reloaded {}: {} indexes, {} private patterns",
                path.display(),
                rt.config.policy.indexes().len(),
                rt.config.policy.rules().private.len()
            );
            rt.warn_audited();
            // The advisory snapshot carries over when the feed is the same: a reload must not
            // leave public pages refused until it is fetched again.
            let files = |r: &Runtime| r.config.policy.rules().files.feed();
            if let (Some(new), Some(old)) = (files(&rt), files(&current)) {
                new.adopt(&old);
            }
            // So do provenance verdicts, against the same trusted root.
            if let (Some(new), Some(old)) = (&rt.verifier, &current.verifier) {
                new.adopt(old);
            }
            shared.runtime.store(Arc::new(rt));
            shared.healthy.clear();
            shared.metrics.reloads.fetch_add(1, Relaxed);
            shared.metrics.loaded();
            tracing::info!("{summary}");
            Ok(summary)
        }
        Err(e) => {
            shared.metrics.reload_failures.fetch_add(1, Relaxed);
            shared.metrics.last_reload_ok.store(false, Relaxed);
            // One log line, however many keys were bad.
            let error = e.to_string().replace('\n', "; ");
            tracing::error!(%error, "reload rejected; the previous config stays in force");
            Err(e)
        }
    }
}
