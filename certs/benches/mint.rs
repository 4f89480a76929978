//! Leaf minting cost (a cache miss: a fresh host) against a cache hit.

// A bench binary: setup failures may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pipgate_certs::{Ca, Leaves, Scope};

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path(), false, &Scope::Unconstrained).unwrap();
    let leaves = Leaves::new(ca, vec![b"h2".to_vec(), b"http/1.1".to_vec()]).unwrap();

    let mut n = 0u64;
    c.bench_function("mint_fresh_leaf", |b| {
        b.iter(|| {
            // A host never seen before, so every iteration signs a new leaf and builds its
            // ServerConfig (plus a cache insert, as in production).
            n += 1;
            black_box(leaves.server_config(&format!("h{n}.example.org")).unwrap())
        })
    });

    leaves.server_config("pypi.org").unwrap();
    c.bench_function("cache_hit", |b| {
        b.iter(|| black_box(leaves.server_config(black_box("pypi.org")).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
