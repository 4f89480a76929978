//! `GET /` on the admin port: one self-contained HTML page (no external assets, no framework)
//! with the counters, the recent blocks, the most blocked names and an explain box. Rendered on
//! the server, so it shows everything without script; the script only runs the explain box in
//! place. Everything that came from a client or an index is HTML-escaped.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::state::Shared;

/// How many recent decisions the page lists.
const RECENT: usize = 50;

/// How many names the top list shows.
const TOP: usize = 10;

pub(super) fn page(shared: &Shared) -> String {
    let counts = shared.metrics.decision_counts();
    let by_action = |action: &str| -> u64 {
        counts
            .iter()
            .filter(|((_, a), _)| *a == action)
            .map(|(_, n)| n)
            .sum()
    };
    let rt = shared.runtime.load();
    let mut out = String::with_capacity(16 * 1024);
    out.push_str(HEAD);
    let _ = write!(
        out,
        "<header><h1>pipgate</h1><span class=\"muted\">version {} &middot; {}</span></header>",
        env!("CARGO_PKG_VERSION"),
        if shared.ready.load(Relaxed) {
            "ready"
        } else {
            "not ready"
        }
    );
    out.push_str("<section class=\"cards\">");
    let cards: [(&str, u64); 6] = [
        ("requests", shared.metrics.requests_total()),
        ("blocked", by_action("block")),
        ("files withheld", by_action("withhold")),
        ("audited (served)", by_action("audit")),
        (
            "connections open",
            shared.metrics.connections_active.load(Relaxed).max(0) as u64,
        ),
        (
            "tunnels open",
            shared.metrics.tunnels_active.load(Relaxed).max(0) as u64,
        ),
    ];
    for (label, n) in cards {
        let _ = write!(
            out,
            "<div class=\"card\"><div class=\"n\">{n}</div><div class=\"muted\">{label}</div></div>"
        );
    }
    out.push_str("</section>");

    out.push_str("<section><h2>Recent blocks</h2>");
    let recent = shared.decisions.recent(RECENT);
    if recent.is_empty() {
        out.push_str("<p class=\"muted\" id=\"no-blocks\">Nothing blocked or withheld yet.</p>");
    } else {
        out.push_str("<table id=\"recent\"><thead><tr><th>time (UTC)</th><th>action</th><th>rule</th><th>name</th><th>index</th><th>client</th><th>reason</th></tr></thead><tbody>");
        for d in &recent {
            let client = match &d.user {
                Some(u) => format!("{} ({u})", d.client),
                None => d.client.clone(),
            };
            let _ = write!(
                out,
                "<tr class=\"{action}\"><td>{time}</td><td>{action}</td><td>{rule}</td><td>{name}</td><td>{index}</td><td>{client}</td><td>{reason}</td></tr>",
                time = escape(d.time.trim_end_matches('Z').replace('T', " ").as_str()),
                action = d.action,
                rule = d.rule,
                name = escape(d.name.as_deref().unwrap_or("-")),
                index = escape(d.index.as_deref().unwrap_or("-")),
                client = escape(&client),
                reason = escape(d.reason.strip_prefix("pipgate: ").unwrap_or(&d.reason)),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");

    out.push_str("<div class=\"row\"><section><h2>Most blocked names</h2>");
    let top = shared.decisions.top_names(TOP);
    if top.is_empty() {
        out.push_str("<p class=\"muted\">None yet.</p>");
    } else {
        out.push_str("<table id=\"top\"><tbody>");
        for (name, n) in top {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{n}</td></tr>",
                escape(&name)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section><section><h2>By rule</h2>");
    if counts.is_empty() {
        out.push_str("<p class=\"muted\">No decisions yet.</p>");
    } else {
        out.push_str("<table id=\"rules\"><tbody>");
        for ((rule, action), n) in &counts {
            let _ = write!(
                out,
                "<tr><td>{rule}</td><td>{action}</td><td class=\"num\">{n}</td></tr>"
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section></div>");

    let indexes: Vec<String> = rt
        .config
        .policy
        .indexes()
        .iter()
        .map(|ix| escape(ix.name()))
        .collect();
    let _ = write!(
        out,
        "<section><h2>Explain a name</h2><form id=\"explain\" action=\"/explain\" method=\"get\"><input name=\"name\" placeholder=\"project name\" required pattern=\"[A-Za-z0-9._-]+\"> <input name=\"version\" placeholder=\"version (optional)\"> <button>explain</button></form><pre id=\"explained\" class=\"muted\">What pipgate does with a name on its indexes ({}), and why.</pre></section>",
        indexes.join(", ")
    );
    out.push_str(TAIL);
    out
}

/// Text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>pipgate</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em 1.5em;color:#1b1f24;background:#fafbfc}
header{display:flex;align-items:baseline;gap:1em}h1{margin:.2em 0}h2{font-size:1.05em;margin:1.2em 0 .4em}
.muted{color:#6a737d}.cards{display:flex;flex-wrap:wrap;gap:.8em}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:.6em 1em;min-width:8em}
.card .n{font-size:1.6em;font-weight:600}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border-bottom:1px solid #e1e4e8;padding:.3em .5em;text-align:left;vertical-align:top}
th{font-weight:600;background:#f3f4f6}.num{text-align:right}
tr.block td:nth-child(2){color:#b31d28;font-weight:600}tr.withhold td:nth-child(2){color:#b08800;font-weight:600}tr.audit td:nth-child(2){color:#0366d6}
.row{display:grid;grid-template-columns:1fr 1fr;gap:1.5em}
pre{background:#fff;border:1px solid #e1e4e8;padding:.6em;white-space:pre-wrap}
input{padding:.3em}button{padding:.3em .8em}
</style></head><body>
"#;

const TAIL: &str = r#"<p class="muted">JSON: <a href="/decisions?limit=100">/decisions</a> &middot; Prometheus: <a href="/metrics">/metrics</a></p>
<script>
document.getElementById('explain').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = document.getElementById('explained');
  const q = new URLSearchParams(new FormData(e.target));
  out.textContent = 'asking...';
  try {
    const r = await fetch('/explain?' + q.toString());
    out.textContent = await r.text();
    out.className = r.ok ? '' : 'muted';
  } catch (err) {
    out.textContent = 'pipgate did not answer: ' + err;
  }
});
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }
}
