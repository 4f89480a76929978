//! The recent decisions: the last blocks and withheld files, newest first, for the operator
//! (`GET /decisions`, the dashboard) and for `pipgate exec`'s summary. A bounded ring (its
//! memory does not grow with traffic), plus counts by name for the dashboard's top list.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// How many decisions the ring keeps.
pub(crate) const RING: usize = 1000;

/// How many names the per-name counts follow; names first seen beyond it are counted only in
/// the total (a flood of random names cannot grow the map).
const NAMES: usize = 1000;

/// One block, or one withheld (or audited) file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Decision {
    /// RFC 3339, UTC.
    pub(crate) time: String,
    /// `block` (a request refused), `withhold` (a file kept off a page), `audit` (either, in
    /// audit mode: served, reported).
    pub(crate) action: &'static str,
    pub(crate) rule: &'static str,
    /// What the client was answered (a withheld file's page: the page's own status).
    pub(crate) status: u16,
    pub(crate) index: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) client: String,
    /// The proxy user, when credentials are on.
    pub(crate) user: Option<String>,
    /// The one-line reason, as the client and the log have it.
    pub(crate) reason: String,
}

impl Decision {
    /// The line `pipgate exec` prints for it.
    pub(crate) fn line(&self) -> String {
        let on = match (&self.name, &self.index) {
            (Some(n), Some(i)) => format!("{n} on {i}"),
            (Some(n), None) => n.clone(),
            (None, Some(i)) => format!("{} on {i}", self.path),
            (None, None) => format!("{}{}", self.host, self.path),
        };
        let verb = match self.action {
            "withhold" => "withheld a file of",
            "audit" => "would block (audit mode)",
            _ => "blocked",
        };
        let reason = self
            .reason
            .strip_prefix("pipgate: ")
            .unwrap_or(&self.reason);
        format!("pipgate: {verb} {on}: {} ({reason})", self.rule)
    }
}

#[derive(Debug, Default)]
struct Ring {
    recent: VecDeque<Decision>,
    total: u64,
    by_name: HashMap<String, u64>,
}

/// The shared record of recent decisions.
#[derive(Debug, Default)]
pub(crate) struct Decisions {
    ring: Mutex<Ring>,
}

impl Decisions {
    pub(crate) fn push(&self, d: Decision) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.total += 1;
        if let Some(name) = &d.name {
            if let Some(n) = ring.by_name.get_mut(name) {
                *n += 1;
            } else if ring.by_name.len() < NAMES {
                ring.by_name.insert(name.clone(), 1);
            }
        }
        if ring.recent.len() == RING {
            ring.recent.pop_back();
        }
        ring.recent.push_front(d);
    }

    /// The newest `limit`, newest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<Decision> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.recent.iter().take(limit).cloned().collect()
    }

    /// One line per distinct decision on record, oldest first ([`Decision::line`]), and a last
    /// line when more were decided than the ring keeps.
    pub(crate) fn distinct_lines(&self) -> Vec<String> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = HashSet::new();
        let mut lines: Vec<String> = ring
            .recent
            .iter()
            .rev()
            .map(Decision::line)
            .filter(|l| seen.insert(l.clone()))
            .collect();
        let more = ring.total.saturating_sub(ring.recent.len() as u64);
        if more > 0 {
            lines.push(format!(
                "pipgate: and {more} earlier decisions, no longer on record"
            ));
        }
        lines
    }

    /// The `limit` most decided-about names, most first (ties by name).
    pub(crate) fn top_names(&self, limit: usize) -> Vec<(String, u64)> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = ring.by_name.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }
}

/// The current time in RFC 3339 (UTC, whole seconds).
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(name: &str, reason: &str) -> Decision {
        Decision {
            time: now_rfc3339(),
            action: "block",
            rule: "private-index",
            status: 404,
            index: Some("pypi".into()),
            name: Some(name.into()),
            host: "pypi.org".into(),
            path: format!("/simple/{name}/"),
            client: "127.0.0.1:5000".into(),
            user: None,
            reason: reason.into(),
        }
    }

    #[test]
    fn keeps_the_newest_first_and_bounded() {
        let d = Decisions::default();
        for i in 0..RING + 5 {
            d.push(decision(&format!("n{}", i % 3), &i.to_string()));
        }
        let recent = d.recent(RING + 10);
        assert_eq!(recent.len(), RING);
        assert_eq!(recent[0].reason, (RING + 4).to_string());
        assert_eq!(recent[RING - 1].reason, "5");
        assert_eq!(d.recent(2).len(), 2);
        // Distinct lines, oldest first, and what fell out of the ring said.
        let lines = d.distinct_lines();
        assert_eq!(lines.len(), RING + 1);
        assert!(lines[0].ends_with("(5)"), "{}", lines[0]);
        assert_eq!(
            lines[RING],
            "pipgate: and 5 earlier decisions, no longer on record"
        );
        let top = d.top_names(2);
        assert_eq!(top[0], ("n0".to_owned(), 335));
        assert_eq!(top.len(), 2);
    }

    #[test]
    fn repeated_decisions_are_one_line() {
        let d = Decisions::default();
        for _ in 0..3 {
            d.push(decision("acme-lib", "private"));
        }
        d.push(decision("other", "private"));
        let lines = d.distinct_lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("acme-lib") && lines[1].contains("other"));
    }

    #[test]
    fn exec_line_names_rule_and_reason() {
        let d = decision(
            "acme-lib",
            "pipgate: acme-lib is private (served by private index 'corp')",
        );
        assert_eq!(
            d.line(),
            "pipgate: blocked acme-lib on pypi: private-index (acme-lib is private (served by private index 'corp'))"
        );
    }
}
