//! The loads, each run the same way through pipgate and direct; they return wall-clock
//! figures, and the caller reads pipgate's CPU and memory around them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use crate::client::{Conn, Route};
use crate::Res;

/// Opens `conns` keep-alive connections (untimed), then runs `per_conn` sequential GETs on each,
/// all at once; returns the wall time of the requests alone.
pub(crate) async fn keepalive(
    route: &Route,
    host: &str,
    path: &'static str,
    conns: usize,
    per_conn: usize,
    before: impl FnOnce() -> Res<()>,
) -> Res<Duration> {
    let mut opened = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut c = route.open(host).await?;
        // One request each so every connection is past its first-use setup.
        c.get(path).await?;
        opened.push(c);
    }
    before()?;
    let start = Instant::now();
    let mut set = JoinSet::new();
    for mut c in opened {
        set.spawn(async move {
            for _ in 0..per_conn {
                c.get(path).await?;
            }
            Res::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(start.elapsed())
}

/// `n` fresh connections (CONNECT + full TLS handshake + close_notify), `conc` at a time;
/// returns each one's wall time in ms.
pub(crate) async fn handshakes(route: &Route, host: &str, n: usize, conc: usize) -> Res<Vec<f64>> {
    let mut set = JoinSet::new();
    for w in 0..conc {
        let route = route.clone();
        let host = host.to_owned();
        let mine = n / conc + usize::from(w < n % conc);
        set.spawn(async move {
            let mut times = Vec::with_capacity(mine);
            for _ in 0..mine {
                let t = Instant::now();
                let mut tls = route.tls(&host).await?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                let _ = tls.shutdown().await;
            }
            Res::Ok(times)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        all.extend(r??);
    }
    Ok(all)
}

/// `n` sequential GETs of `path` on one warm connection; each one's wall time in µs and the
/// bytes of the last body.
pub(crate) async fn sequential(conn: &mut Conn, path: &str, n: usize) -> Res<(Vec<f64>, u64)> {
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        bytes = conn.get(path).await?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok((times, bytes))
}

/// Opens `n` connections (`conc` at a time), one small GET on each, and keeps them open.
pub(crate) async fn idle_fleet(
    route: &Route,
    host: &str,
    path: &'static str,
    n: usize,
    conc: usize,
) -> Res<Vec<Conn>> {
    let mut set = JoinSet::new();
    for w in 0..conc {
        let route = route.clone();
        let host = host.to_owned();
        let mine = n / conc + usize::from(w < n % conc);
        set.spawn(async move {
            let mut conns = Vec::with_capacity(mine);
            for _ in 0..mine {
                let mut c = route.open(&host).await?;
                c.get(path).await?;
                conns.push(c);
            }
            Res::Ok(conns)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        all.extend(r??);
    }
    Ok(all)
}

/// RSS samples taken every `every` while a future runs.
#[derive(Debug)]
pub(crate) struct Sampled<T> {
    pub value: T,
    pub wall: Duration,
    /// (seconds since start, RSS MiB).
    pub rss: Vec<(f64, f64)>,
}

/// Runs `fut`, sampling pipgate's RSS on a plain thread (not the loaded runtime).
pub(crate) async fn sampling<T>(
    pid: Option<u32>,
    every: Duration,
    fut: impl std::future::Future<Output = Res<T>>,
) -> Res<Sampled<T>> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let sampler = pid.map(|pid| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mib) = crate::procfs::rss_mib(pid) {
                    out.push((start.elapsed().as_secs_f64(), mib));
                }
                std::thread::sleep(every);
            }
            out
        })
    });
    let value = fut.await;
    let wall = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let rss = match sampler {
        Some(h) => h.join().map_err(|_| "RSS sampler died")?,
        None => Vec::new(),
    };
    Ok(Sampled {
        value: value?,
        wall,
        rss,
    })
}
