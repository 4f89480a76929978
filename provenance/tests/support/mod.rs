//! Where the real test data lives (scripts/setup-testdata.sh), and how a test without it ends:
//! under CI it fails, elsewhere it says so and passes over.

use std::path::PathBuf;

/// The test data directory, or `None` (after a note) when it is missing outside CI.
pub(crate) fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("PIPGATE_PROVENANCE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/testdata/provenance")
        });
    if dir.join("READY").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "provenance test data missing at {}: run scripts/setup-testdata.sh",
            dir.display()
        );
    }
    eprintln!(
        "provenance test data missing at {}: run scripts/setup-testdata.sh (not run)",
        dir.display()
    );
    None
}
