//! The installer matrix of issue 4: every real client (pip 8..26, uv, pip-tools, poetry) through
//! pipgate, four checks each (the fourth: the supply-chain rules of issues 15 and 16), plus
//! no-pipgate controls that prove the checks can fail.
//!
//! Needs `scripts/setup-clients.sh` to have built the clients (into `target/clients`, or
//! `PIPGATE_CLIENTS_DIR`). The table goes to stderr even when libtest captures output.
use std::io::Write as _;
use std::time::Instant;

use pipgate_integration_tests::clients::{self, Cell, Scenario, Survey};
use pipgate_integration_tests::pipgate::target_dir;
use pipgate_integration_tests::world::World;

#[test]
fn installer_matrix() {
    let dir = clients::clients_dir();
    let survey = clients::survey(&dir);
    if let Survey::Missing(path) = &survey {
        let msg = format!(
            "no clients directory at {}: run scripts/setup-clients.sh first",
            path.display()
        );
        // In CI a missing directory means the setup step did not run: that must not pass.
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true and {msg}"
        );
        println!("installer matrix: SKIP ({msg})");
        return;
    }

    // The rules check (4) runs against the supply-chain rules; checks 1-3 go through them too
    // (project pages asked for as JSON for their upload times, written as HTML for old pips).
    // ... and against an advisory feed (issue 16): malver, malrange and malhash 2.0 are known
    // malicious.
    let world = World::start_with(|w, c| {
        c.rules = w.rules_toml("enforce") + &w.advisories_toml();
    });
    world
        .pipgate()
        .wait_admin("/readyz", 30, |status, _| status == 200);
    let evil = world.evil_origin();
    let evil_hits = || evil.requests().len();
    let log_dir = target_dir().join("matrix-logs");
    let _ = std::fs::remove_dir_all(&log_dir);
    let scenario = Scenario {
        pipgate: (world.proxy_url(), world.ca_pem().to_path_buf()),
        control: (
            world.control_proxy_url(),
            world.control_ca_pem().to_path_buf(),
        ),
        private_index: world.private_index_url(),
        public_index: world.public_index_url(),
        evil_hits: &evil_hits,
        log_dir: log_dir.clone(),
    };
    // Two cores: two clients at a time keeps pipgate and the origins responsive.
    let workers = std::env::var("PIPGATE_MATRIX_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(2);
    let started = Instant::now();
    let rows = clients::run_matrix(&survey, &scenario, workers);
    let table = clients::render_table(&rows);
    let summary = format!(
        "installer matrix: {} rows in {:.0}s with {workers} workers (transcripts in {})\n{table}",
        rows.len(),
        started.elapsed().as_secs_f64(),
        log_dir.display()
    );
    // Straight to the stderr handle, not eprintln!: libtest captures the print macros, and
    // the table is the matrix's report, wanted in every CI log, passing or not.
    let _ = std::io::stderr().lock().write_all(summary.as_bytes());
    let _ = std::fs::write(log_dir.join("table.txt"), &summary);

    let failed = rows
        .iter()
        .filter(|r| r.cells.iter().any(|c| matches!(c, Cell::Fail(_))))
        .count();
    assert_eq!(failed, 0, "{failed} row(s) failed\n{summary}");
    assert!(
        evil.requests().is_empty(),
        "the external host was contacted: {:?}",
        evil.requests()
    );
}
