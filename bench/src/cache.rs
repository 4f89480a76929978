//! The `cache` load (issue 20): a 10 MiB download answered from pipgate's file cache, against
//! the same download direct from the origin, and pipgate's CPU per cached download (each serve
//! re-hashes the stored file before sending it). Its own pipgate, with `[cache] dir`; its own
//! table, printed after the main one.

use std::path::Path;
use std::time::Duration;

use crate::client::Route;
use crate::fixtures::{self, FILE_HOST};
use crate::load;
use crate::pipgate::{Pipgate, Setup};
use crate::pki;
use crate::procfs;
use crate::report::{percentile, Row, Target};
use crate::Res;

/// `reps` rounds of `n` sequential 10 MiB downloads each way, on one connection each.
pub(crate) async fn rows(
    bin: &Path,
    dir: &Path,
    setup: Setup<'_>,
    direct: &Route,
    reps: usize,
    n: usize,
) -> Res<Vec<Row>> {
    let cache_dir = dir.join("file-cache");
    let extra = format!("\n[cache]\ndir = {:?}\n", cache_dir.display().to_string());
    let setup = Setup {
        mint_hosts: &[],
        extra: &extra,
        ..setup
    };
    let gate = Pipgate::start(bin, &dir.join("cache"), &setup)?;
    let cached = Route {
        addr: gate.addr,
        proxied: true,
        connect_to: None,
        tls: pki::client_config(&pki::read_pem(&gate.ca_pem)?)?,
    };
    // The first download stores the file (a miss); wait for its commit.
    let mut conn = cached.open(FILE_HOST).await?;
    conn.get(fixtures::TEN_MIB).await?;
    for _ in 0..100 {
        if std::fs::read_dir(cache_dir.join("v1/files"))?
            .next()
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut tput = Row::new(
        "cached 10 MiB download (from pipgate's disk cache)",
        "MB/s",
        0,
    )
    .target(Target::AtLeastOfDirect(1.0), "≥ direct", "");
    let mut cpu = Row::new("proxy CPU per cached 10 MiB download", "ms", 1).target(
        Target::AtMost(20.0),
        "≤ 20",
        "",
    );
    let tick = procfs::tick();
    for rep in 0..reps {
        for proxied in [rep % 2 == 0, rep % 2 != 0] {
            let route = if proxied { &cached } else { direct };
            let mut conn = route.open(FILE_HOST).await?;
            conn.get(fixtures::TEN_MIB).await?;
            let before = procfs::cpu(gate.pid(), tick)?;
            let (times, bytes) = load::sequential(&mut conn, fixtures::TEN_MIB, n).await?;
            if bytes != fixtures::TEN_MIB_LEN as u64 {
                return Err(format!("10 MiB download returned {bytes} bytes").into());
            }
            let mbps = bytes as f64 / percentile(&times, 50.0);
            if proxied {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let spent = procfs::cpu(gate.pid(), tick)?.saturating_sub(before);
                cpu.pipgate.push(spent.as_secs_f64() * 1e3 / n as f64);
                tput.pipgate.push(mbps);
            } else {
                tput.direct.push(mbps);
            }
        }
    }
    Ok(vec![tput, cpu])
}
