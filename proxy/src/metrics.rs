//! Counters for `/metrics`, rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use dashmap::DashMap;

/// Process-wide counters. Label sets are bounded: hosts are configured ones (or "other"),
/// rules and kinds are static strings.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// host -> status -> count; looked up by `&str`, so counting a request allocates nothing.
    requests: DashMap<String, DashMap<u16, AtomicU64>>,
    decisions: DashMap<(&'static str, &'static str), AtomicU64>,
    upstream_errors: DashMap<&'static str, AtomicU64>,
    auth_failures: DashMap<&'static str, AtomicU64>,
    /// argon2 verifications run (proxy credentials).
    pub auth_hashes: AtomicU64,
    pub connections_active: AtomicI64,
    pub connections_total: AtomicU64,
    pub tunnels_active: AtomicI64,
    pub connections_refused: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    pub panics: AtomicU64,
    /// Advisory feed refreshes that loaded or confirmed a snapshot, and those that failed.
    pub advisory_refreshes: AtomicU64,
    pub advisory_refresh_failures: AtomicU64,
}

fn bump<K: Eq + std::hash::Hash>(map: &DashMap<K, AtomicU64>, key: K) {
    // Fast path: the key exists, no write lock on the shard.
    if let Some(c) = map.get(&key) {
        c.fetch_add(1, Relaxed);
        return;
    }
    map.entry(key).or_default().fetch_add(1, Relaxed);
}

impl Metrics {
    pub(crate) fn request(&self, host: &str, status: u16) {
        if let Some(by_status) = self.requests.get(host) {
            bump(&by_status, status);
            return;
        }
        bump(&self.requests.entry(host.to_owned()).or_default(), status);
    }

    pub(crate) fn decision(&self, rule: &'static str, action: &'static str) {
        bump(&self.decisions, (rule, action));
    }

    /// `n` decisions at once (files a page withheld, by rule).
    pub(crate) fn decisions(&self, rule: &'static str, action: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(c) = self.decisions.get(&(rule, action)) {
            c.fetch_add(n, Relaxed);
            return;
        }
        self.decisions
            .entry((rule, action))
            .or_default()
            .fetch_add(n, Relaxed);
    }

    pub(crate) fn upstream_error(&self, kind: &'static str) {
        bump(&self.upstream_errors, kind);
    }

    pub(crate) fn auth_failure(&self, reason: &'static str) {
        bump(&self.auth_failures, reason);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self, leaves_minted: u64, leaves_cached: usize) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(
            out,
            "# HELP pipgate_requests_total Requests answered, by host and status."
        );
        let _ = writeln!(out, "# TYPE pipgate_requests_total counter");
        let mut rows: Vec<_> = self
            .requests
            .iter()
            .flat_map(|host| {
                let name = host.key().clone();
                host.value()
                    .iter()
                    .map(|e| ((name.clone(), *e.key()), e.value().load(Relaxed)))
                    .collect::<Vec<_>>()
            })
            .collect();
        rows.sort();
        for ((host, status), n) in rows {
            let _ = writeln!(
                out,
                "pipgate_requests_total{{host=\"{}\",status=\"{status}\"}} {n}",
                escape(&host)
            );
        }
        let _ = writeln!(
            out,
            "# HELP pipgate_decisions_total Policy decisions, by rule and action."
        );
        let _ = writeln!(out, "# TYPE pipgate_decisions_total counter");
        let mut rows: Vec<_> = self
            .decisions
            .iter()
            .map(|e| (*e.key(), e.value().load(Relaxed)))
            .collect();
        rows.sort();
        for ((rule, action), n) in rows {
            let _ = writeln!(
                out,
                "pipgate_decisions_total{{rule=\"{rule}\",action=\"{action}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP pipgate_upstream_errors_total Upstream failures, by kind."
        );
        let _ = writeln!(out, "# TYPE pipgate_upstream_errors_total counter");
        let mut rows: Vec<_> = self
            .upstream_errors
            .iter()
            .map(|e| (*e.key(), e.value().load(Relaxed)))
            .collect();
        rows.sort();
        for (kind, n) in rows {
            let _ = writeln!(out, "pipgate_upstream_errors_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP pipgate_proxy_auth_failures_total Refused Proxy-Authorization, by reason (missing, invalid, repeated, backoff)."
        );
        let _ = writeln!(out, "# TYPE pipgate_proxy_auth_failures_total counter");
        let mut rows: Vec<_> = self
            .auth_failures
            .iter()
            .map(|e| (*e.key(), e.value().load(Relaxed)))
            .collect();
        rows.sort();
        for (reason, n) in rows {
            let _ = writeln!(
                out,
                "pipgate_proxy_auth_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let gauges: [(&str, &str, i64); 3] = [
            (
                "pipgate_connections_active",
                "Client connections open now.",
                self.connections_active.load(Relaxed),
            ),
            (
                "pipgate_tunnels_active",
                "Blind tunnels open now.",
                self.tunnels_active.load(Relaxed),
            ),
            (
                "pipgate_leaf_certificates_cached",
                "Leaf certificates in the cache.",
                leaves_cached as i64,
            ),
        ];
        series(&mut out, "gauge", &gauges);
        let counters: [(&str, &str, u64); 7] = [
            (
                "pipgate_proxy_auth_hashes_total",
                "argon2 verifications of proxy credentials run.",
                self.auth_hashes.load(Relaxed),
            ),
            (
                "pipgate_connections_total",
                "Client connections accepted.",
                self.connections_total.load(Relaxed),
            ),
            (
                "pipgate_connections_refused_total",
                "Client connections refused (limits, allow-list).",
                self.connections_refused.load(Relaxed),
            ),
            (
                "pipgate_leaf_certificates_minted_total",
                "Leaf certificates minted.",
                leaves_minted,
            ),
            (
                "pipgate_reloads_total",
                "Successful config reloads.",
                self.reloads.load(Relaxed),
            ),
            (
                "pipgate_reload_failures_total",
                "Rejected config reloads.",
                self.reload_failures.load(Relaxed),
            ),
            (
                "pipgate_panics_total",
                "Connection tasks that panicked (caught).",
                self.panics.load(Relaxed),
            ),
        ];
        series(&mut out, "counter", &counters);
        out
    }
}

/// Unlabelled series of one type, each with its help line.
fn series<V: std::fmt::Display>(out: &mut String, kind: &str, all: &[(&str, &str, V)]) {
    for (name, help, v) in all {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
}

/// The advisory feed's figures (`[policy.advisories]`), appended to the exposition when a feed
/// is configured.
pub(crate) fn advisories(
    out: &mut String,
    metrics: &Metrics,
    feed: &pipgate_policy::rules::Feed,
    now: time::OffsetDateTime,
) {
    let snapshot = feed.snapshot();
    let (records, blocking) = snapshot
        .as_ref()
        .map_or((0, 0), |s| (s.records, s.blocking));
    // No snapshot yet: the age is -1, so an alert on age > max_age does not stay silent.
    let age = feed.age(now).map_or(-1, |a| a.as_secs() as i64);
    let stale = u8::from(feed.is_stale(now));
    let gauges: [(&str, &str, i64); 5] = [
        (
            "pipgate_advisories_snapshot_age_seconds",
            "Age of the advisory snapshot (since its source last confirmed it); -1: none loaded.",
            age,
        ),
        (
            "pipgate_advisories_max_age_seconds",
            "policy.advisories.max_age: a snapshot older than this is stale.",
            feed.max_age().as_secs() as i64,
        ),
        (
            "pipgate_advisories_stale",
            "Whether the snapshot is older than max_age or none is loaded (then 1), else 0.",
            i64::from(stale),
        ),
        (
            "pipgate_advisories_records",
            "OSV records in the advisory snapshot.",
            records as i64,
        ),
        (
            "pipgate_advisories_blocking_records",
            "Records of the snapshot that block (PyPI, included, not withdrawn or ignored).",
            blocking as i64,
        ),
    ];
    series(out, "gauge", &gauges);
    let counters = [
        (
            "pipgate_advisories_refreshes_total",
            "Advisory feed refreshes that loaded or confirmed a snapshot.",
            metrics.advisory_refreshes.load(Relaxed),
        ),
        (
            "pipgate_advisories_refresh_failures_total",
            "Advisory feed refreshes that failed (the previous snapshot stayed).",
            metrics.advisory_refresh_failures.load(Relaxed),
        ),
    ];
    series(out, "counter", &counters);
    let _ = writeln!(
        out,
        "# HELP pipgate_advisory_blocks_total Files withheld, names refused and downloads cut by an advisory (or reported, in audit mode), by the include prefix that let it in.\n# TYPE pipgate_advisory_blocks_total counter"
    );
    for (prefix, n) in feed.blocks() {
        let _ = writeln!(
            out,
            "pipgate_advisory_blocks_total{{prefix=\"{}\"}} {n}",
            escape(prefix)
        );
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.request("pypi.org", 200);
        m.request("pypi.org", 200);
        m.decision("private-index", "block");
        m.upstream_error("tls");
        let text = m.render(3, 2);
        assert!(text.contains("pipgate_requests_total{host=\"pypi.org\",status=\"200\"} 2"));
        assert!(text.contains("pipgate_decisions_total{rule=\"private-index\",action=\"block\"} 1"));
        assert!(text.contains("pipgate_upstream_errors_total{kind=\"tls\"} 1"));
        assert!(text.contains("pipgate_leaf_certificates_minted_total 3"));
        assert!(text.contains("pipgate_leaf_certificates_cached 2"));
    }
}
