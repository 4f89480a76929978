//! CPU of verifying one real file's provenance (issue 19: first sight of a wheel ≤ 5 ms).
//! Reads the real test data (scripts/setup-testdata.sh); without it there is nothing to time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use pipgate_provenance::{verify, Provenance, TrustedRoot};
use sha2::{Digest, Sha256};

fn bench(c: &mut Criterion) {
    let dir = std::env::var_os("PIPGATE_PROVENANCE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/testdata/provenance")
        })
        .join("assets");
    let file = "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl";
    let (Ok(wheel), Ok(json)) = (
        std::fs::read(dir.join(file)),
        std::fs::read(dir.join(format!("{file}.provenance"))),
    ) else {
        eprintln!(
            "no test data in {}: run scripts/setup-testdata.sh",
            dir.display()
        );
        return;
    };
    let digest: [u8; 32] = Sha256::digest(&wheel).into();
    let root = TrustedRoot::production();
    let once = || {
        let provenance = Provenance::from_json(&json).unwrap();
        verify(&provenance, file, &digest, root).unwrap()
    };
    // Wall time suffers from a busy machine; the thread's CPU time does not. Counted in clock
    // ticks (utime + stime of /proc/thread-self/stat), so over many runs.
    if let Some(before) = cpu_ticks() {
        let runs = 1000;
        for _ in 0..runs {
            std::hint::black_box(once());
        }
        if let Some(after) = cpu_ticks() {
            // Linux reports these in USER_HZ, 100 per second on every architecture we build.
            let ms = (after - before) as f64 * 10.0 / f64::from(runs);
            println!("CPU per verification: {ms:.2} ms ({runs} runs, /proc/thread-self/stat)");
        }
    }
    c.bench_function("verify one wheel's provenance (parse + verify)", |b| {
        b.iter(once)
    });
}

/// This thread's user + system CPU time, in clock ticks.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesized command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

criterion_group!(benches, bench);
criterion_main!(benches);
