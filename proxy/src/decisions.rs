//! The recent decisions: the last blocks and withheld files, newest first, for the operator
//! (`GET /decisions`, the dashboard) and for `pipgate exec`'s summary. A bounded ring (its
//! memory does not grow with traffic), plus counts by name for the dashboard's top list.

use std::collections::{HashMap, VecDeque};
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

    /// Decisions recorded since start (the ring holds the last [`RING`]).
    pub(crate) fn total(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).total
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
        assert_eq!(d.total(), (RING + 5) as u64);
        let top = d.top_names(2);
        assert_eq!(top[0], ("n0".to_owned(), 335));
        assert_eq!(top.len(), 2);
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
