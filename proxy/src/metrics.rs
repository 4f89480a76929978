//! Counters for `/metrics`, rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

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
    /// (listener, reason) -> connections refused before any request was served.
    refusals: DashMap<(&'static str, &'static str), AtomicU64>,
    /// Alert (or failure) -> TLS handshakes with clients that failed.
    client_tls_failures: DashMap<&'static str, AtomicU64>,
    /// (kind, status class) -> request durations.
    durations: DashMap<(&'static str, &'static str), Histogram>,
    /// kind -> body bytes sent to clients.
    bytes_served: DashMap<&'static str, AtomicU64>,
    /// result (verified, mismatch, unknown) -> public downloads whose digest was judged.
    download_hashes: DashMap<&'static str, AtomicU64>,
    /// Unix time of the last successful load (start, or reload) of the configuration, and
    /// whether the last reload attempt succeeded.
    pub last_reload_success: AtomicI64,
    pub last_reload_ok: std::sync::atomic::AtomicBool,
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
    add(map, key, 1);
}

/// Adds `n` to `key`'s counter.
fn add<K: Eq + std::hash::Hash>(map: &DashMap<K, AtomicU64>, key: K, n: u64) {
    // Fast path: the key exists, no write lock on the shard.
    if let Some(c) = map.get(&key) {
        c.fetch_add(n, Relaxed);
        return;
    }
    map.entry(key).or_default().fetch_add(n, Relaxed);
}

impl Metrics {
    /// The configuration was loaded (at start, or by a reload), now.
    pub(crate) fn loaded(&self) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.last_reload_success.store(now, Relaxed);
        self.last_reload_ok.store(true, Relaxed);
    }

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
        if n > 0 {
            add(&self.decisions, (rule, action), n);
        }
    }

    pub(crate) fn upstream_error(&self, kind: &'static str) {
        bump(&self.upstream_errors, kind);
    }

    pub(crate) fn auth_failure(&self, reason: &'static str) {
        bump(&self.auth_failures, reason);
    }

    /// A connection refused by `listener` (`proxy`, `transparent`) for `reason`.
    pub(crate) fn refusal(&self, listener: &'static str, reason: &'static str) {
        bump(&self.refusals, (listener, reason));
    }

    /// A TLS handshake with a client that failed with `alert`.
    /// A public download ended and its digest was compared with the advertised one: `verified`,
    /// `mismatch` (cut), or `unknown` (nothing advertised: served unverified).
    pub(crate) fn download_hash(&self, result: &'static str) {
        bump(&self.download_hashes, result);
    }

    pub(crate) fn client_tls_failure(&self, alert: &'static str) {
        bump(&self.client_tls_failures, alert);
    }

    /// One answered request (or finished tunnel) of `kind`: how long it took, what it sent.
    pub(crate) fn served(&self, kind: &'static str, status: u16, took: Duration, bytes: u64) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let key = (kind, class);
        match self.durations.get(&key) {
            Some(h) => h.observe(took),
            None => self.durations.entry(key).or_default().observe(took),
        }
        if bytes > 0 {
            add(&self.bytes_served, kind, bytes);
        }
    }

    /// Decisions by (rule, action), for the dashboard.
    pub(crate) fn decision_counts(&self) -> Vec<((&'static str, &'static str), u64)> {
        sorted(&self.decisions)
    }

    /// Requests answered, in all.
    pub(crate) fn requests_total(&self) -> u64 {
        self.requests
            .iter()
            .map(|h| {
                h.value()
                    .iter()
                    .map(|e| e.value().load(Relaxed))
                    .sum::<u64>()
            })
            .sum()
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
        labelled(
            &mut out,
            "pipgate_decisions_total",
            "Policy decisions, by rule and action.",
            &self.decisions,
            |(rule, action)| format!("rule=\"{rule}\",action=\"{action}\""),
        );
        labelled(
            &mut out,
            "pipgate_upstream_errors_total",
            "Upstream failures, by kind.",
            &self.upstream_errors,
            |kind| format!("kind=\"{kind}\""),
        );
        labelled(
            &mut out,
            "pipgate_proxy_auth_failures_total",
            "Refused Proxy-Authorization, by reason (missing, invalid, repeated, backoff).",
            &self.auth_failures,
            |reason| format!("reason=\"{reason}\""),
        );
        labelled(
            &mut out,
            "pipgate_refusals_total",
            "Connections refused before a request was served, by listener and reason (host-not-allowed, port, internal-address, plain-http, no-destination, loop, upstream-<kind>, bad-request, ...).",
            &self.refusals,
            |(listener, reason)| format!("listener=\"{listener}\",reason=\"{reason}\""),
        );
        labelled(
            &mut out,
            "pipgate_download_hashes_total",
            "Whole public downloads whose sha256 was compared with the one their index advertised (policy.integrity), by result: verified, mismatch (cut before its end), unknown (none advertised: served unverified).",
            &self.download_hashes,
            |result| format!("result=\"{result}\""),
        );
        labelled(
            &mut out,
            "pipgate_client_tls_failures_total",
            "TLS handshakes with clients that failed, by the alert the client sent (unknown_ca: it lacks pipgate's CA) or what went wrong (not_tls, timeout, eof, protocol).",
            &self.client_tls_failures,
            |alert| format!("alert=\"{alert}\""),
        );
        labelled(
            &mut out,
            "pipgate_bytes_served_total",
            "Body bytes sent to clients, by kind (page, file, tunnel: both ways, other).",
            &self.bytes_served,
            |kind| format!("kind=\"{kind}\""),
        );
        self.render_durations(&mut out);
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
        let reload: [(&str, &str, i64); 2] = [
            (
                "pipgate_config_last_reload_successful",
                "Whether the last configuration reload succeeded (1; also before any reload) or was rejected (0).",
                i64::from(self.last_reload_ok.load(Relaxed)),
            ),
            (
                "pipgate_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load (start or reload).",
                self.last_reload_success.load(Relaxed),
            ),
        ];
        series(&mut out, "gauge", &reload);
        let _ = writeln!(
            out,
            "# HELP pipgate_build_info pipgate's version (the value is always 1).\n# TYPE pipgate_build_info gauge\npipgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        process(&mut out);
        out
    }

    fn render_durations(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP pipgate_request_duration_seconds Time from a request's head to the end of its answer's body (tunnels: their whole life), by kind (page, file, tunnel, other) and status class.\n# TYPE pipgate_request_duration_seconds histogram"
        );
        let mut keys: Vec<_> = self.durations.iter().map(|e| *e.key()).collect();
        keys.sort();
        for key @ (kind, class) in keys {
            let Some(h) = self.durations.get(&key) else {
                continue;
            };
            let labels = format!("kind=\"{kind}\",status_class=\"{class}\"");
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(&h.buckets) {
                cumulative += n.load(Relaxed);
                let _ = writeln!(
                    out,
                    "pipgate_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Relaxed);
            let sum = h.sum_us.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "pipgate_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}\npipgate_request_duration_seconds_sum{{{labels}}} {sum}\npipgate_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
    }
}

/// The histogram's upper bounds, in seconds (`+Inf` is the count).
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0,
];

/// A Prometheus histogram of durations, lock-free.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations in each bucket alone (made cumulative when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|le| secs <= *le) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(took.as_micros() as u64, Relaxed);
    }
}

/// A counter family over `map`, its rows sorted by label.
fn labelled<K: Copy + Ord + Eq + std::hash::Hash>(
    out: &mut String,
    name: &str,
    help: &str,
    map: &DashMap<K, AtomicU64>,
    labels: impl Fn(K) -> String,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (key, n) in sorted(map) {
        let _ = writeln!(out, "{name}{{{}}} {n}", labels(key));
    }
}

/// Every (key, count) of `map`, sorted by key.
fn sorted<K: Copy + Ord + Eq + std::hash::Hash>(map: &DashMap<K, AtomicU64>) -> Vec<(K, u64)> {
    let mut rows: Vec<_> = map
        .iter()
        .map(|e| (*e.key(), e.value().load(Relaxed)))
        .collect();
    rows.sort();
    rows
}

/// The standard `process_*` series, from `/proc/self` (Linux; elsewhere they are left out).
fn process(out: &mut String) {
    let Some(p) = Process::read() else {
        return;
    };
    let gauges: [(&str, &str, f64); 5] = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.rss_bytes as f64,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            p.vsize_bytes as f64,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            p.open_fds as f64,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            p.max_fds as f64,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            p.start_time,
        ),
    ];
    series(out, "gauge", &gauges);
    series(
        out,
        "counter",
        &[(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            p.cpu_seconds,
        )],
    );
}

/// What `/proc/self` says of this process.
#[derive(Debug)]
struct Process {
    rss_bytes: u64,
    vsize_bytes: u64,
    cpu_seconds: f64,
    start_time: f64,
    open_fds: usize,
    max_fds: u64,
}

impl Process {
    fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command (which may hold spaces), from field 3 (`state`) on.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let ticks = clock_ticks();
        let page = page_size();
        let utime = field(14)?;
        let stime = field(15)?;
        let starttime = field(22)?;
        let vsize = field(23)?;
        let rss_pages = field(24)?;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
            .unwrap_or(0);
        Some(Process {
            rss_bytes: rss_pages * page,
            vsize_bytes: vsize,
            cpu_seconds: (utime + stime) as f64 / ticks as f64,
            start_time: boot as f64 + starttime as f64 / ticks as f64,
            open_fds,
            max_fds,
        })
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of `/proc`'s CPU times.
fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |v| v as u64)
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |v| v as u64)
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
