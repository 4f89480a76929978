//! What every connection shares: the reloadable runtime (config, policy, upstream client,
//! private-index answers), the leaf cache and the metrics.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use pipgate_certs::Leaves;
use pipgate_policy::{Answer, Name, Question};

use crate::auth::{Credentials, CredentialsError};
use crate::budget::PageBudget;
use crate::config::Config;
use crate::decisions::Decisions;
use crate::lookup::Lookups;
use crate::metrics::Metrics;
use crate::provenance::{ProvenanceError, Verifier};
use crate::upstream::{RootsError, Upstream};

/// Everything a reload replaces at once. A request holds one `Arc<Runtime>` from start to end,
/// so in-flight requests finish under the policy they started with.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub config: Config,
    pub upstream: Upstream,
    pub lookups: Lookups,
    pub credentials: Option<Credentials>,
    /// What pages read whole may hold at once (`limits.max_buffered_page_bytes`); a reload
    /// starts a new one, and in-flight pages finish on the old.
    pub budget: PageBudget,
    /// `[policy.provenance]`'s verifier (its trusted root, verdicts and pins), when it is on.
    pub verifier: Option<Arc<Verifier>>,
}

impl Runtime {
    /// Asks the private indexes `questions`, concurrently and through the answer cache: what
    /// policy needs before it can decide a request, and what `pipgate explain` shows. The one
    /// place either asks anyone anything.
    pub(crate) async fn answers<'p>(&'p self, questions: Vec<Question<'p>>) -> Vec<Answer<'p>> {
        let idle = self.config.upstream.idle_timeout;
        self.lookups.answer(&self.upstream, questions, idle).await
    }

    /// What `pipgate explain` (and the admin port's `/explain`) says of `name`: the policy's
    /// account, having asked what a request about the name would ask (unless `offline`).
    pub(crate) async fn explain(
        &self,
        name: &Name,
        version: Option<&str>,
        offline: bool,
    ) -> String {
        let policy = &self.config.policy;
        let answers = if offline {
            Vec::new()
        } else {
            // The same questions, through the same cache and client, as a request about the
            // name: the private indexes, then (for the rules that need them, and only for a
            // name they leave public) the public indexes' files of it.
            let mut answers = self
                .answers(policy.questions(std::slice::from_ref(name)))
                .await;
            let more = policy.explain_questions(name, &answers);
            answers.extend(self.answers(more).await);
            answers
        };
        let now = time::OffsetDateTime::now_utc();
        let mut out = policy.explain(name, version, &answers, now);
        let asks = policy.private_indexes().next().is_some()
            || !policy.explain_questions(name, &[]).is_empty();
        if offline && asks {
            out.push_str("(offline: no index was asked)\n");
        }
        out
    }

    /// A loud line for every rule in audit mode: it reports what it would block, and blocks
    /// nothing (at start and after each reload).
    pub(crate) fn warn_audited(&self) {
        for rule in self.config.policy.rules().files.audited() {
            tracing::warn!(
                target: "pipgate::policy",
                rule,
                "rule '{rule}' is in AUDIT mode: what it would block is logged and counted (decision audit), and served"
            );
        }
    }

    pub(crate) fn new(config: Config) -> Result<Runtime, RuntimeError> {
        let upstream = Upstream::new(&config.upstream)?;
        let budget = PageBudget::new(config.limits.max_buffered_page_bytes);
        let verifier = match config.policy.rules().files.provenance() {
            Some(settings) => Some(Arc::new(Verifier::new(
                settings,
                config.source.as_deref(),
                config.ca.cert.parent(),
                budget.clone(),
            )?)),
            None => None,
        };
        let lookups = Lookups::new(config.lookups, budget.clone(), verifier.clone());
        let credentials = match &config.access.credentials {
            Some(path) => Some(Credentials::load(path)?),
            None => None,
        };
        Ok(Runtime {
            config,
            upstream,
            lookups,
            credentials,
            budget,
            verifier,
        })
    }
}

/// Why a configuration that parsed cannot run: a file it names is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The upstream TLS roots (`upstream.extra_roots`).
    #[error(transparent)]
    Roots(#[from] RootsError),
    /// The credentials file (`access.credentials`).
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The trusted root or pins file of `[policy.provenance]`.
    #[error(transparent)]
    Provenance(#[from] ProvenanceError),
}

/// Process-wide state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub leaves: Leaves,
    pub metrics: Metrics,
    /// The last blocks and withheld files (`GET /decisions`, `pipgate exec`).
    pub decisions: Decisions,
    /// Set once the listeners are bound and the CA is loaded (`/readyz`).
    pub ready: AtomicBool,
    /// Open connections per client address (the per-client cap).
    pub per_client: Mutex<HashMap<IpAddr, usize>>,
    /// Upstreams that completed a TLS handshake recently: CONNECT skips the probe for them.
    pub healthy: dashmap::DashMap<(String, u16), Instant>,
    /// The file cache (`[cache]`), opened at start; None when off or unusable.
    pub cache: Option<Arc<crate::cache::Cache>>,
}

impl Shared {
    pub(crate) fn new(
        runtime: Runtime,
        leaves: Leaves,
        cache: Option<Arc<crate::cache::Cache>>,
    ) -> Arc<Shared> {
        let metrics = Metrics::default();
        metrics.loaded();
        Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
            leaves,
            metrics,
            decisions: Decisions::default(),
            ready: AtomicBool::new(false),
            per_client: Mutex::new(HashMap::new()),
            healthy: dashmap::DashMap::new(),
            cache,
        })
    }
}
