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
    c.bench_function("verify one wheel's provenance (parse + verify)", |b| {
        b.iter(|| {
            let provenance = Provenance::from_json(&json).unwrap();
            verify(&provenance, file, &digest, root).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
