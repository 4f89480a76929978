//! The `cache` load (issue 20). Two tables, printed after the main one:
//!
//! - a 10 MiB download answered from pipgate's file cache, against the same download direct
//!   from the origin, and pipgate's CPU per cached download (a file unchanged since pipgate
//!   hashed it is sent without hashing it again);
//! - pipgate with the cache against pipgate without it: peak RSS under the 64 keep-alive
//!   clients, a project page revalidated with `304` (`[cache] pages = "revalidate"`) against
//!   its plain re-synthesis, and `pip install` of [`fixtures::WHEELS`] real wheels into a fresh
//!   venv twice through one pipgate (the second install's wheels come from the cache).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::client::Route;
use crate::fixtures::{self, FILE_HOST, INDEX_HOST};
use crate::load;
use crate::pipgate::{Pipgate, Setup};
use crate::pki;
use crate::procfs;
use crate::report::{percentile, Row, Target};
use crate::Res;

/// How much of each load a repetition runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// Sequential 10 MiB downloads each way.
    pub downloads: usize,
    /// The keep-alive load: clients, and requests per client.
    pub ka_conns: usize,
    pub ka_per_conn: usize,
    /// Sequential project pages through each pipgate.
    pub pages: usize,
}

/// What the `cache` load prints: rows against direct, and rows with the cache against without.
pub(crate) struct Tables {
    pub vs_direct: Vec<Row>,
    pub vs_uncached: Vec<Row>,
}

/// A proxied route through `gate`.
fn route(gate: &Pipgate) -> Res<Route> {
    Ok(Route {
        addr: gate.addr,
        proxied: true,
        connect_to: None,
        tls: pki::client_config(&pki::read_pem(&gate.ca_pem)?)?,
    })
}

/// `[cache]` with `dir` and `more` lines.
fn cache_table(dir: &Path, more: &str) -> String {
    format!("\n[cache]\ndir = {:?}\n{more}", dir.display().to_string())
}

/// Files committed to the cache at `dir` (one `<sha256>.json` beside each).
fn stored(dir: &Path) -> usize {
    let Ok(shards) = std::fs::read_dir(dir.join("v1/files")) else {
        return 0;
    };
    shards
        .flatten()
        .filter_map(|s| std::fs::read_dir(s.path()).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count()
}

/// Waits (up to 5 s) until the cache at `dir` holds `n` files.
async fn wait_stored(dir: &Path, n: usize) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while stored(dir) < n {
        if Instant::now() > deadline {
            return Err(format!(
                "the cache at {} holds {} files, not {n}",
                dir.display(),
                stored(dir)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub(crate) async fn rows(
    bin: &Path,
    dir: &Path,
    setup: Setup<'_>,
    direct: &Route,
    reps: usize,
    sizes: Sizes,
) -> Res<Tables> {
    let tick = procfs::tick();
    let cache_dir = dir.join("file-cache");
    let extra = cache_table(&cache_dir, "");
    let setup = Setup {
        mint_hosts: &[],
        ..setup
    };
    let gate = Pipgate::start(
        bin,
        &dir.join("cache"),
        &Setup {
            extra: &extra,
            ..setup
        },
    )?;
    let cached = route(&gate)?;
    // The same pipgate without `[cache]`: what the cache is compared with.
    let plain_gate = Pipgate::start(bin, &dir.join("cache-none"), &setup)?;
    let plain = route(&plain_gate)?;
    // The first downloads store the files (misses); wait for their commits.
    let mut conn = cached.open(FILE_HOST).await?;
    conn.get(fixtures::TEN_MIB).await?;
    conn.get(fixtures::SMALL).await?;
    wait_stored(&cache_dir, 2).await?;
    let mut conn = plain.open(FILE_HOST).await?;
    conn.get(fixtures::TEN_MIB).await?;
    conn.get(fixtures::SMALL).await?;

    // Peak RSS under the main table's keep-alive load (64 clients, the 200 B file, a cache hit
    // for each request through the cached pipgate), first: the later loads would leave their
    // allocations in one pipgate's peak and not the other's.
    let mut rss = Row::new(
        "peak RSS, 64 concurrent keep-alive clients (200 B file, a hit each with the cache)",
        "MiB",
        1,
    );
    let mut rss_added = Row::new("RSS the cache adds (with − without, same rep)", "MiB", 1).target(
        Target::AtMost(32.0),
        "≤ 32 MiB",
        "",
    );
    for rep in 0..reps {
        let mut peaks = [0.0; 2];
        for with in [rep % 2 == 0, rep % 2 != 0] {
            let (route, pid) = if with {
                (&cached, gate.pid())
            } else {
                (&plain, plain_gate.pid())
            };
            load::keepalive(
                route,
                FILE_HOST,
                fixtures::SMALL,
                sizes.ka_conns,
                sizes.ka_per_conn,
                || procfs::reset_peak(pid),
            )
            .await?;
            let peak = procfs::peak_rss_mib(pid)?;
            peaks[usize::from(with)] = peak;
            if with {
                rss.pipgate.push(peak);
            } else {
                rss.direct.push(peak);
            }
        }
        rss_added.pipgate.push(peaks[1] - peaks[0]);
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
    let n = sizes.downloads;
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
    drop(gate);

    let mut vs_uncached = vec![rss, rss_added];
    vs_uncached.extend(
        pages(
            bin,
            dir,
            setup,
            direct,
            &plain,
            plain_gate.pid(),
            reps,
            sizes.pages,
        )
        .await?,
    );
    drop(plain_gate);
    vs_uncached.extend(pip_twice(bin, dir, setup, reps).await?);
    Ok(Tables {
        vs_direct: vec![tput, cpu],
        vs_uncached,
    })
}

/// The 2.2 MB project page, `n` times on one connection, through a pipgate with
/// `[cache] pages = "revalidate"` (each request a conditional one upstream, answered `304` by
/// the origin, the page re-synthesized from what is stored) and through `plain`, a pipgate
/// without a cache (a `200` from the origin, re-synthesized), alternating which goes first.
/// Until pipgate knows the page keys, its config check refuses them: the rows stay empty ("—")
/// and the reason goes to stderr.
#[allow(clippy::too_many_arguments)]
async fn pages(
    bin: &Path,
    dir: &Path,
    setup: Setup<'_>,
    direct: &Route,
    plain: &Route,
    plain_pid: u32,
    reps: usize,
    n: usize,
) -> Res<Vec<Row>> {
    let tick = procfs::tick();
    let mut p50 = Row::new(
        "2.2 MB / 4,700-link page: revalidated with 304 (with) vs a 200 re-synthesized (without), p50",
        "ms",
        2,
    )
    .target(Target::AtMostOfDirect(1.2), "≤ 1.2×", "");
    let mut cpu = Row::new("proxy CPU per 4,700-link page, revalidated vs 200", "ms", 2);
    let mut not_modified = Row::new("origin 304s per revalidated page", "", 2);
    let out = |p50, cpu, nm| Ok(vec![p50, cpu, nm]);
    let extra = cache_table(
        &dir.join("page-cache"),
        "pages = \"revalidate\"\npage_ttl = \"0s\"\nstale_if_error = \"0s\"\n",
    );
    let gate = match Pipgate::start(
        bin,
        &dir.join("cache-pages"),
        &Setup {
            extra: &extra,
            ..setup
        },
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("pipgate-bench: no revalidated-page rows: this pipgate refuses `[cache] pages` ({e})");
            return out(p50, cpu, not_modified);
        }
    };
    let revalidating = route(&gate)?;
    let mut counter = direct.open(INDEX_HOST).await?;
    for rep in 0..reps {
        for with in [rep % 2 == 0, rep % 2 != 0] {
            let (route, pid) = if with {
                (&revalidating, gate.pid())
            } else {
                (plain, plain_pid)
            };
            let mut index = route.open(INDEX_HOST).await?;
            // The first fetch stores the page (a 200) on the revalidating pipgate.
            index.get(fixtures::PAGE).await?;
            let count = |s: String| s.trim().parse::<u64>();
            let before_304 = count(counter.text(crate::origin::NOT_MODIFIED_COUNT).await?)?;
            let before = procfs::cpu(pid, tick)?;
            let (times, _) = load::sequential(&mut index, fixtures::PAGE, n).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let spent = procfs::cpu(pid, tick)?.saturating_sub(before);
            let after_304 = count(counter.text(crate::origin::NOT_MODIFIED_COUNT).await?)?;
            let ms = percentile(&times, 50.0) / 1e3;
            let cpu_ms = spent.as_secs_f64() * 1e3 / n as f64;
            if with {
                p50.pipgate.push(ms);
                cpu.pipgate.push(cpu_ms);
                not_modified
                    .pipgate
                    .push((after_304 - before_304) as f64 / n as f64);
            } else {
                p50.direct.push(ms);
                cpu.direct.push(cpu_ms);
            }
        }
    }
    out(p50, cpu, not_modified)
}

/// Where pip comes from: a venv of its own under the target directory (beside
/// `bench-mitmproxy`), made with `python3 -m venv` the first time.
fn pip_venv() -> Res<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory above pipgate-bench")?;
    let venv = target.join("bench-pip");
    if !venv.join("bin/pip").exists() {
        eprintln!(
            "pipgate-bench: making a venv with pip at {}",
            venv.display()
        );
        let status = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()?;
        if !status.success() {
            return Err("python3 -m venv failed".into());
        }
    }
    Ok(venv)
}

/// `pip install` of every fixture project into the fresh venv `target` through `gate`, under
/// `env -i` (PATH and HOME only: the machine's REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE, proxy
/// variables or pip config must not reach it), the proxy and CA given on the command line;
/// returns the install's wall time.
fn pip_install(pip: &Path, target: &Path, home: &Path, gate: &Pipgate) -> Res<Duration> {
    let status = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(target)
        .status()?;
    if !status.success() {
        return Err("python3 -m venv --without-pip failed".into());
    }
    let mut cmd = Command::new(pip);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .arg("--python")
        .arg(target.join("bin/python"))
        .args([
            "install",
            "--isolated",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--index-url",
            &format!("https://{INDEX_HOST}/simple/"),
            "--proxy",
            &format!("http://{}", gate.addr),
            "--cert",
        ])
        .arg(&gate.ca_pem);
    for i in 0..fixtures::WHEELS {
        cmd.arg(fixtures::wheel_project(i));
    }
    let t = Instant::now();
    let out = cmd.output()?;
    let wall = t.elapsed();
    if !out.status.success() {
        return Err(format!(
            "pip install through pipgate failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(wall)
}

/// Per rep, a fresh pipgate with an empty `[cache] dir` and two fresh venvs, `pip install`
/// into each in turn. What is measured is the wall time of the whole `pip install` (pip's
/// start, resolving through the index pages, downloads, unpacking): the pages come from the
/// origin both times (files only are cached here), the wheels from the origin the first time,
/// each after [`fixtures::WHEEL_DELAY_MS`] (a far upstream), and from pipgate's disk the second.
async fn pip_twice(bin: &Path, dir: &Path, setup: Setup<'_>, reps: usize) -> Res<Vec<Row>> {
    let mut row = Row::new(
        "pip install of 12 wheels (512 KiB, origin answers each after 250 ms) into a fresh venv: 1st (without) vs 2nd (with), one pipgate, wall",
        "s",
        2,
    )
    .target(Target::AtMostOfDirect(0.5), "2nd ≤ 0.5× 1st", "");
    let venv = pip_venv()?;
    let pip = venv.join("bin/pip");
    let work = dir.join("pip");
    let home = work.join("home");
    std::fs::create_dir_all(&home)?;
    for rep in 0..reps {
        let cache_dir = work.join(format!("cache-{rep}"));
        let extra = cache_table(&cache_dir, "");
        let gate = Pipgate::start(
            bin,
            &work.join("pipgate"),
            &Setup {
                extra: &extra,
                ..setup
            },
        )?;
        let first = pip_install(&pip, &work.join(format!("venv-{rep}-1")), &home, &gate)?;
        wait_stored(&cache_dir, fixtures::WHEELS).await?;
        let second = pip_install(&pip, &work.join(format!("venv-{rep}-2")), &home, &gate)?;
        row.direct.push(first.as_secs_f64());
        row.pipgate.push(second.as_secs_f64());
        drop(gate);
        for k in 1..=2 {
            let _ = std::fs::remove_dir_all(work.join(format!("venv-{rep}-{k}")));
        }
        let _ = std::fs::remove_dir_all(&cache_dir);
    }
    Ok(vec![row])
}
