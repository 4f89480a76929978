//! The benchmark proper: set up origin and pipgate, warm up, then every load direct and
//! through pipgate, alternating which goes first, and print the table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::Route;
use crate::fixtures::{self, Fixtures, FILE_HOST, INDEX_HOST};
use crate::load;
use crate::pipgate::{Pipgate, Setup};
use crate::pki::{self, OriginCa};
use crate::procfs;
use crate::report::{self, percentile, Row, Samples, Target};
use crate::{Opts, Res};

/// Load sizes.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    ka_conns: usize,
    ka_per_conn: usize,
    handshakes: usize,
    downloads: usize,
    latency_reqs: usize,
    pages: usize,
    idle: usize,
    mint_per_rep: usize,
    /// Repetitions of the 1 GiB stream (it is long).
    gib_reps: usize,
    /// Sequential GETs of the root listing each way, per repetition.
    roots: usize,
    /// Root listings rewritten at once, for the memory bound.
    roots_concurrent: usize,
    /// CONNECTs timed, idle and under the wrong-password flood.
    auth_connects: usize,
    /// Clients sending wrong passwords.
    auth_attackers: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        let k = if quick { 4 } else { 1 };
        Sizes {
            ka_conns: 64,
            ka_per_conn: 400 / k,
            handshakes: 400 / k,
            downloads: 24 / k,
            latency_reqs: 2000 / k,
            pages: 40 / k,
            idle: 2000,
            mint_per_rep: 10,
            gib_reps: if quick { 1 } else { 3 },
            roots: if quick { 1 } else { 3 },
            roots_concurrent: 32,
            auth_connects: 400 / k,
            auth_attackers: 20,
        }
    }
}

/// pipgate's CPU time across a load.
struct Cpu {
    pid: u32,
    tick: Duration,
    at: Duration,
}

impl Cpu {
    fn start(pid: u32, tick: Duration) -> Res<Cpu> {
        Ok(Cpu {
            pid,
            tick,
            at: procfs::cpu(pid, tick)?,
        })
    }

    /// CPU spent since `start`, after a short settle so closing work is counted too.
    async fn spent(&self) -> Res<Duration> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(procfs::cpu(self.pid, self.tick)?.saturating_sub(self.at))
    }
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

struct Rows {
    cpu_ka: Row,
    rps: Row,
    cpu_conn: Row,
    hs_wall: Row,
    cpu_10: Row,
    cpu_10_bench: Row,
    tput_10: Row,
    lat: Row,
    added: Row,
    cpu_lat: Row,
    page_plain: Row,
    page_rewrite: Row,
    page_ratio: Row,
    cpu_page_plain: Row,
    cpu_page_rewrite: Row,
    cool_page: Row,
    cool_ratio: Row,
    cpu_cool: Row,
    adv_load: Row,
    adv_cpu: Row,
    adv_rss: Row,
    adv_rss_growth: Row,
    adv_page: Row,
    adv_ratio: Row,
    rss_ka: Row,
    rss_idle: Row,
    rss_gib: Row,
    gib_growth: Row,
    tput_gib: Row,
    mint_first: Row,
    mint_cached: Row,
    mint_added: Row,
    root_plain: Row,
    root_rewrite: Row,
    root_ratio: Row,
    cpu_root_plain: Row,
    cpu_root: Row,
    root_rss: Row,
    root_rss_concurrent: Row,
    auth_idle: Row,
    auth_flood: Row,
    auth_ratio: Row,
    auth_hashes: Row,
}

impl Rows {
    fn new() -> Rows {
        Rows {
            cpu_ka: Row::new(
                "proxy CPU per keep-alive request (200 B, 64 concurrent)",
                "µs",
                1,
            )
            .target(Target::AtMost(40.0), "≤ 40 µs", "~42 µs"),
            rps: Row::new(
                "keep-alive requests/s (200 B, 64 concurrent, wall)",
                "req/s",
                0,
            ),
            cpu_conn: Row::new(
                "proxy CPU per new connection (CONNECT + full TLS 1.3)",
                "ms",
                3,
            )
            .target(Target::AtMost(0.45), "≤ 0.45 ms", "~0.45 ms"),
            hs_wall: Row::new("new connection wall p50 (4 concurrent)", "ms", 2),
            cpu_10: Row::new("proxy CPU per 10 MiB download", "ms", 1).target(
                Target::AtMost(20.0),
                "≤ 20 ms",
                "~25 ms",
            ),
            // The other two processes' share: with two cores, proxy + client + origin CPU per
            // download bounds the throughput any proxy can reach here.
            cpu_10_bench: Row::new(
                "client + origin CPU per 10 MiB download (both processes)",
                "ms",
                1,
            ),
            tput_10: Row::new("single-stream 10 MiB download", "MB/s", 0).target(
                Target::AtLeastOfDirect(0.6),
                "≥ 60% of direct",
                "~330 MB/s (direct ~610)",
            ),
            lat: Row::new("small request latency p50 (concurrency 1)", "µs", 0),
            added: Row::new(
                "added latency per small request (p50 pipgate − p50 direct)",
                "µs",
                0,
            )
            .target(Target::AtMost(100.0), "≤ 100 µs", ""),
            cpu_lat: Row::new("proxy CPU per small request (concurrency 1)", "µs", 1),
            page_plain: Row::new(
                "2.2 MB / 4,700-link page passed untouched (file path), p50",
                "ms",
                2,
            )
            .target(Target::None, "", "7.9 ms (direct 4.3)"),
            page_rewrite: Row::new(
                "2.2 MB / 4,700-link page re-synthesized by policy, p50",
                "ms",
                2,
            ),
            page_ratio: Row::new("re-synthesized / untouched (same rep)", "×", 2).target(
                Target::AtMost(1.3),
                "≤ 1.3×",
                "",
            ),
            cpu_page_plain: Row::new("proxy CPU per 4,700-link page, untouched", "ms", 2),
            cpu_page_rewrite: Row::new("proxy CPU per 4,700-link page, re-synthesized", "ms", 2),
            cool_page: Row::new(
                "same page, cooldown active (JSON upstream, HTML to the client), p50",
                "ms",
                2,
            ),
            cool_ratio: Row::new("cooldown page / re-synthesized page (same rep)", "×", 2).target(
                Target::AtMost(1.3),
                "≤ 1.3×",
                "",
            ),
            cpu_cool: Row::new("proxy CPU per 4,700-link page, cooldown active", "ms", 2),
            adv_load: Row::new(
                "advisory feed of 100,000 OSV records (local zip): load and index",
                "ms",
                0,
            )
            .target(Target::AtMost(2000.0), "≤ 2 s", ""),
            adv_cpu: Row::new(
                "pipgate's CPU from start to loaded (one parsing thread)",
                "ms",
                0,
            ),
            adv_rss: Row::new("peak RSS of pipgate with it loaded", "MiB", 1).target(
                Target::AtMost(64.0),
                "≤ 64 MiB",
                "",
            ),
            adv_rss_growth: Row::new("RSS once loaded", "MiB", 1),
            adv_page: Row::new(
                "same page, 100k-record advisory snapshot active, p50",
                "ms",
                2,
            ),
            adv_ratio: Row::new("advisories page / re-synthesized page (same rep)", "×", 2).target(
                Target::AtMost(1.1),
                "does not move (≤ 1.1×)",
                "",
            ),
            rss_ka: Row::new("peak RSS, 64 concurrent keep-alive clients", "MiB", 1).target(
                Target::AtMost(32.0),
                "≤ 32 MiB",
                "~18 MiB",
            ),
            rss_idle: Row::new(
                "peak RSS, 2,000 idle intercepted connections open",
                "MiB",
                1,
            )
            .target(Target::AtMost(128.0), "≤ 128 MiB", ""),
            rss_gib: Row::new("peak RSS while streaming 1 GiB", "MiB", 1),
            gib_growth: Row::new("RSS growth from 10% to end of the 1 GiB stream", "MiB", 1)
                .target(Target::AtMost(4.0), "flat (≤ 4 MiB)", ""),
            tput_gib: Row::new("single-stream 1 GiB download", "MB/s", 0),
            mint_first: Row::new("first connection to a new host (leaf minted), p50", "ms", 2),
            mint_cached: Row::new("connection to a cached host, p50", "ms", 2),
            mint_added: Row::new("added by a new host (first − cached)", "ms", 2).target(
                Target::AtMost(2.0),
                "≤ 2 ms",
                "",
            ),
            root_plain: Row::new(
                "60 MB / 600,000-name root listing passed untouched (file path), p50",
                "ms",
                0,
            ),
            root_rewrite: Row::new(
                "60 MB / 600,000-name root listing re-synthesized by policy, p50",
                "ms",
                0,
            ),
            root_ratio: Row::new(
                "root listing: re-synthesized / untouched (same rep)",
                "×",
                2,
            )
            .target(Target::AtMost(2.0), "≤ 2×", ""),
            cpu_root_plain: Row::new("proxy CPU per root listing, untouched", "ms", 0),
            cpu_root: Row::new("proxy CPU per root listing, re-synthesized", "ms", 0),
            root_rss: Row::new("peak RSS growth, one root listing re-synthesized", "MiB", 1)
                .target(Target::AtMost(32.0), "≤ 32 MiB", ""),
            root_rss_concurrent: Row::new(
                "peak RSS growth, 32 root listings re-synthesized at once",
                "MiB",
                1,
            ),
            auth_idle: Row::new(
                "CONNECT with proxy credentials (verified before), p50",
                "ms",
                3,
            ),
            auth_flood: Row::new(
                "the same while 20 other clients send wrong passwords, p50",
                "ms",
                3,
            ),
            auth_ratio: Row::new("CONNECT under the flood / idle (same rep)", "×", 2).target(
                Target::AtMost(2.0),
                "≤ 2×",
                "",
            ),
            auth_hashes: Row::new("argon2 runs during the flood (wrong attempts)", "", 0),
        }
    }

    fn all(&self) -> Vec<Row> {
        vec![
            self.cpu_ka.clone(),
            self.rps.clone(),
            self.cpu_conn.clone(),
            self.hs_wall.clone(),
            self.cpu_10.clone(),
            self.cpu_10_bench.clone(),
            self.tput_10.clone(),
            self.lat.clone(),
            self.added.clone(),
            self.cpu_lat.clone(),
            self.page_plain.clone(),
            self.page_rewrite.clone(),
            self.page_ratio.clone(),
            self.cpu_page_plain.clone(),
            self.cpu_page_rewrite.clone(),
            self.cool_page.clone(),
            self.cool_ratio.clone(),
            self.cpu_cool.clone(),
            self.adv_load.clone(),
            self.adv_cpu.clone(),
            self.adv_rss.clone(),
            self.adv_rss_growth.clone(),
            self.adv_page.clone(),
            self.adv_ratio.clone(),
            self.rss_ka.clone(),
            self.rss_idle.clone(),
            self.rss_gib.clone(),
            self.gib_growth.clone(),
            self.tput_gib.clone(),
            self.mint_first.clone(),
            self.mint_cached.clone(),
            self.mint_added.clone(),
            self.root_plain.clone(),
            self.root_rewrite.clone(),
            self.root_ratio.clone(),
            self.cpu_root_plain.clone(),
            self.cpu_root.clone(),
            self.root_rss.clone(),
            self.root_rss_concurrent.clone(),
            self.auth_idle.clone(),
            self.auth_flood.clone(),
            self.auth_ratio.clone(),
            self.auth_hashes.clone(),
        ]
    }
}

struct Ctx {
    direct: Route,
    proxy: Route,
    pid: u32,
    /// The origin process (its CPU counts with the client's in "client + origin").
    origin_pid: u32,
    tick: Duration,
    sizes: Sizes,
    /// `--one-thread-client`: the download load's client on a one-thread runtime.
    one_thread_client: bool,
    mint_hosts: Vec<String>,
    /// A second pipgate, requiring proxy credentials (the `auth` load).
    auth: Option<AuthGate>,
    /// A third, with a 7-day cooldown (the `cooldown` load), its route and pid.
    cool: Option<(Pipgate, Route)>,
    /// The `advisories` load: the generated feed and the pipgate it runs with (one per rep,
    /// started fresh so that each rep measures a load).
    adv: Option<Advisories>,
}

/// The `advisories` load's setup: where its feed is, and how its pipgates are configured.
struct Advisories {
    dir: PathBuf,
    extra: String,
    origin: std::net::SocketAddr,
    origin_ca: PathBuf,
}

/// The pipgate of the `auth` load, and the credentials it accepts.
struct AuthGate {
    pipgate: Pipgate,
    admin: std::net::SocketAddr,
    /// `Proxy-Authorization` value of its one user.
    good: String,
}

impl Ctx {
    /// The routes in this repetition's order: direct first on even reps, pipgate first on odd.
    fn order(&self, rep: usize) -> [(bool, &Route); 2] {
        if rep & 1 == 0 {
            [(false, &self.direct), (true, &self.proxy)]
        } else {
            [(true, &self.proxy), (false, &self.direct)]
        }
    }
}

pub(crate) async fn run(opts: Opts) -> Res<()> {
    let sizes = Sizes::new(opts.quick);
    let dir = tempfile::Builder::new()
        .prefix("pipgate-bench-")
        .tempdir()?;
    let fx = Arc::new(Fixtures::generate());
    let mint_hosts: Vec<String> = (0..opts.reps * sizes.mint_per_rep)
        .map(|i| format!("m{i}.bench.test"))
        .collect();
    let ca = OriginCa::new(dir.path())?;
    let mut names = vec![INDEX_HOST.to_owned(), FILE_HOST.to_owned()];
    names.extend(mint_hosts.iter().cloned());
    ca.write_server_cert(&names, dir.path())?;
    let origin_process = crate::origin::Process::spawn(dir.path(), opts.origin_http1)?;
    let origin = origin_process.addr;
    let setup = Setup {
        origin,
        origin_ca: &ca.pem,
        mint_hosts: &mint_hosts,
        log: opts.pipgate_log.as_deref(),
        top: "",
        extra: &opts.pipgate_extra,
    };
    let pg = Pipgate::start(&opts.pipgate, dir.path(), &setup)?;
    let wants = |name: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == name);
    let auth = if wants("auth") {
        Some(auth_gate(&opts, dir.path(), setup)?)
    } else {
        None
    };
    let cool = if wants("cooldown") {
        let extra = "\n[policy.cooldown]\nmin_age = \"7d\"\n";
        let setup = Setup {
            mint_hosts: &[],
            extra,
            ..setup
        };
        let gate = Pipgate::start(&opts.pipgate, &dir.path().join("cooldown"), &setup)?;
        let route = Route {
            addr: gate.addr,
            proxied: true,
            connect_to: None,
            tls: pki::client_config(&pki::read_pem(&gate.ca_pem)?)?,
        };
        Some((gate, route))
    } else {
        None
    };
    let adv = if wants("advisories") {
        let zip = dir.path().join("osv-100k.zip");
        let t = Instant::now();
        std::fs::write(&zip, fixtures::osv_zip(fixtures::OSV_RECORDS)?)?;
        eprintln!(
            "pipgate-bench: generated {} OSV records ({} bytes zipped) in {:.1} s",
            fixtures::OSV_RECORDS,
            std::fs::metadata(&zip)?.len(),
            t.elapsed().as_secs_f64()
        );
        Some(Advisories {
            dir: dir.path().to_owned(),
            extra: format!(
                "\n[policy.advisories]\nsource = {:?}\nrefresh = \"1h\"\n",
                zip.display().to_string()
            ),
            origin,
            origin_ca: ca.pem.clone(),
        })
    } else {
        None
    };
    let ctx = Ctx {
        direct: Route {
            addr: origin,
            proxied: false,
            connect_to: None,
            tls: pki::client_config(&[ca.der()])?,
        },
        proxy: Route {
            addr: pg.addr,
            proxied: true,
            connect_to: None,
            tls: pki::client_config(&pki::read_pem(&pg.ca_pem)?)?,
        },
        pid: pg.pid(),
        origin_pid: origin_process.pid(),
        tick: procfs::tick(),
        sizes,
        one_thread_client: opts.one_thread_client,
        mint_hosts,
        auth,
        cool,
        adv,
    };
    println!(
        "pipgate-bench: origin {origin} ({}), pipgate {} (pid {}), page {} bytes, {} reps{}; load average at start {}",
        if opts.origin_http1 { "http/1.1" } else { "h2 + http/1.1" },
        pg.addr,
        ctx.pid,
        fx.page.len(),
        opts.reps,
        if opts.quick { " (quick)" } else { "" },
        load_average()
    );
    warm_up(&ctx, &fx).await?;
    let mut rows = Rows::new();
    for rep in 0..opts.reps {
        let t = Instant::now();
        if wants("keepalive") {
            rep_keepalive(&ctx, rep, &mut rows).await?;
        }
        if wants("handshake") {
            rep_handshakes(&ctx, rep, &mut rows).await?;
        }
        if wants("download") {
            rep_download(&ctx, rep, &mut rows).await?;
        }
        if wants("latency") {
            rep_latency(&ctx, rep, &mut rows).await?;
        }
        if wants("page") {
            rep_page(&ctx, rep, &mut rows).await?;
        }
        if wants("cooldown") {
            rep_cooldown(&ctx, rep, &mut rows).await?;
        }
        if wants("advisories") {
            rep_advisories(&opts, &ctx, rep, &mut rows).await?;
        }
        if wants("gib") && rep < sizes.gib_reps {
            rep_gib(&ctx, rep, &mut rows).await?;
        }
        if wants("mint") {
            rep_mint(&ctx, rep, &mut rows).await?;
        }
        if wants("root") {
            rep_root(&ctx, rep, &mut rows).await?;
        }
        if wants("auth") {
            rep_auth(&ctx, &mut rows).await?;
        }
        eprintln!(
            "pipgate-bench: rep {}/{} done in {:.0} s (load average {})",
            rep + 1,
            opts.reps,
            t.elapsed().as_secs_f64(),
            load_average()
        );
    }
    // Last: the allocator keeps much of what 32 root listings at once and 2,000 connections
    // used, which would inflate every later peak (the 64 keep-alive clients of the next rep
    // read ~40 MiB instead of ~14 when the listings ran inside the reps).
    if wants("root") {
        for _ in 0..opts.reps {
            rep_roots_at_once(&ctx, &mut rows).await?;
        }
    }
    if wants("idle") {
        for _ in 0..opts.reps {
            rep_idle(&ctx, &mut rows).await?;
        }
    }
    println!();
    println!(
        "All on 127.0.0.1; 2 shared cores (client, origin and pipgate on one box with whatever else runs; load average at end {}). median [min–max] over {} interleaved reps; CPU = pipgate utime+stime from /proc.",
        load_average(),
        opts.reps
    );
    println!();
    print!("{}", report::table(&rows.all()));
    if wants("cache") {
        let setup = Setup {
            origin,
            origin_ca: &ca.pem,
            mint_hosts: &[],
            log: opts.pipgate_log.as_deref(),
            top: "",
            extra: "",
        };
        let sizes = crate::cache::Sizes {
            downloads: ctx.sizes.downloads,
            ka_conns: ctx.sizes.ka_conns,
            ka_per_conn: ctx.sizes.ka_per_conn,
            pages: ctx.sizes.pages,
        };
        let cache = crate::cache::rows(
            &opts.pipgate,
            dir.path(),
            setup,
            &ctx.direct,
            opts.reps,
            sizes,
        )
        .await?;
        println!();
        print!("{}", report::table(&cache.vs_direct));
        println!();
        print!(
            "{}",
            report::table_with(
                &cache.vs_uncached,
                "pipgate without the cache (1st install)",
                "pipgate with the cache (2nd install)"
            )
        );
    }
    Ok(())
}

/// Every path once each way: leaves minted, upstream pool filled, pages cached nowhere.
async fn warm_up(ctx: &Ctx, fx: &Fixtures) -> Res<()> {
    for route in [&ctx.direct, &ctx.proxy] {
        let mut files = route.open(FILE_HOST).await?;
        for path in [fixtures::SMALL, fixtures::TEN_MIB, fixtures::PAGE_AS_FILE] {
            files.get(path).await?;
        }
        let mut index = route.open(INDEX_HOST).await?;
        let n = index.get(fixtures::PAGE).await?;
        if route.proxied {
            println!(
                "pipgate-bench: the re-synthesized page is {n} bytes (upstream {})",
                fx.page.len()
            );
        }
    }
    Ok(())
}

async fn rep_keepalive(ctx: &Ctx, rep: usize, rows: &mut Rows) -> Res<()> {
    let s = ctx.sizes;
    let total = (s.ka_conns * s.ka_per_conn) as f64;
    for (proxied, route) in ctx.order(rep) {
        let mut cpu = None;
        let pid = ctx.pid;
        let tick = ctx.tick;
        let before = || {
            if proxied {
                procfs::reset_peak(pid)?;
                cpu = Some(Cpu::start(pid, tick)?);
            }
            Ok(())
        };
        let wall = load::keepalive(
            route,
            FILE_HOST,
            fixtures::SMALL,
            s.ka_conns,
            s.ka_per_conn,
            before,
        )
        .await?;
        let rps = total / wall.as_secs_f64();
        if let Some(cpu) = cpu {
            let spent = cpu.spent().await?;
            rows.cpu_ka.pipgate.push(spent.as_secs_f64() * 1e6 / total);
            rows.rss_ka.pipgate.push(procfs::peak_rss_mib(ctx.pid)?);
            rows.rps.pipgate.push(rps);
        } else {
            rows.rps.direct.push(rps);
        }
    }
    Ok(())
}

async fn rep_handshakes(ctx: &Ctx, rep: usize, rows: &mut Rows) -> Res<()> {
    let n = ctx.sizes.handshakes;
    for (proxied, route) in ctx.order(rep) {
        let cpu = Cpu::start(ctx.pid, ctx.tick)?;
        let times = load::handshakes(route, FILE_HOST, n, 4).await?;
        let p50 = percentile(&times, 50.0);
        if proxied {
            let spent = cpu.spent().await?;
            rows.cpu_conn
                .pipgate
                .push(spent.as_secs_f64() * 1e3 / n as f64);
            rows.hs_wall.pipgate.push(p50);
        } else {
            rows.hs_wall.direct.push(p50);
        }
    }
    Ok(())
}

async fn rep_download(ctx: &Ctx, rep: usize, rows: &mut Rows) -> Res<()> {
    for (proxied, route) in ctx.order(rep) {
        let round = DownloadRound {
            route: route.clone(),
            n: ctx.sizes.downloads,
            pid: ctx.pid,
            origin_pid: ctx.origin_pid,
            tick: ctx.tick,
        };
        let got = if ctx.one_thread_client {
            tokio::task::spawn_blocking(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(round.run())
            })
            .await??
        } else {
            round.run().await?
        };
        if proxied {
            if let Some(ms) = got.cpu_ms {
                rows.cpu_10.pipgate.push(ms);
            }
            rows.cpu_10_bench.pipgate.push(got.others_ms);
            rows.tput_10.pipgate.push(got.mbps);
        } else {
            rows.cpu_10_bench.direct.push(got.others_ms);
            rows.tput_10.direct.push(got.mbps);
        }
    }
    Ok(())
}

/// One route's 10 MiB downloads, on whichever runtime runs it.
struct DownloadRound {
    route: Route,
    n: usize,
    pid: u32,
    origin_pid: u32,
    tick: Duration,
}

/// Per download: pipgate's CPU (ms; sampled when proxied), the client's and origin's CPU (ms),
/// and MB/s from the median time.
struct Downloaded {
    cpu_ms: Option<f64>,
    others_ms: f64,
    mbps: f64,
}

impl DownloadRound {
    async fn run(self) -> Res<Downloaded> {
        let n = self.n;
        let mut conn = self.route.open(FILE_HOST).await?;
        conn.get(fixtures::TEN_MIB).await?;
        let cpu = self
            .route
            .proxied
            .then(|| Cpu::start(self.pid, self.tick))
            .transpose()?;
        // The client (this process) and the origin process.
        let others = || -> Res<Duration> {
            Ok(procfs::cpu_ns(std::process::id())? + procfs::cpu_ns(self.origin_pid)?)
        };
        let others_before = others()?;
        let (times, bytes) = load::sequential(&mut conn, fixtures::TEN_MIB, n).await?;
        let others_ms = others()?.saturating_sub(others_before).as_secs_f64() * 1e3 / n as f64;
        if bytes != fixtures::TEN_MIB_LEN as u64 {
            return Err(format!("10 MiB download returned {bytes} bytes").into());
        }
        let cpu_ms = match cpu {
            Some(cpu) => Some(cpu.spent().await?.as_secs_f64() * 1e3 / n as f64),
            None => None,
        };
        Ok(Downloaded {
            cpu_ms,
            others_ms,
            // MB/s from the median download time (µs per 10 MiB).
            mbps: bytes as f64 / percentile(&times, 50.0),
        })
    }
}

async fn rep_latency(ctx: &Ctx, rep: usize, rows: &mut Rows) -> Res<()> {
    let mut p50 = [0.0; 2];
    for (proxied, route) in ctx.order(rep) {
        let mut conn = route.open(FILE_HOST).await?;
        conn.get(fixtures::SMALL).await?;
        // One request at a time, sleeping and waking cost pipgate more than the request itself
        // (bench/README.md).
        let cpu = proxied.then(|| Cpu::start(ctx.pid, ctx.tick)).transpose()?;
        let (times, _) =
            load::sequential(&mut conn, fixtures::SMALL, ctx.sizes.latency_reqs).await?;
        let m = percentile(&times, 50.0);
        p50[usize::from(proxied)] = m;
        if let Some(cpu) = cpu {
            let spent = cpu.spent().await?;
            let per = spent.as_secs_f64() * 1e6 / ctx.sizes.latency_reqs as f64;
            rows.cpu_lat.pipgate.push(per);
            rows.lat.pipgate.push(m);
        } else {
            rows.lat.direct.push(m);
        }
    }
    rows.added.pipgate.push(p50[1] - p50[0]);
    Ok(())
}

async fn rep_page(ctx: &Ctx, rep: usize, rows: &mut Rows) -> Res<()> {
    let n = ctx.sizes.pages;
    let mut plain_p50 = 0.0;
    let mut rewrite_p50 = 0.0;
    for (proxied, route) in ctx.order(rep) {
        // Untouched: the page's bytes as a file on the file host.
        let mut files = route.open(FILE_HOST).await?;
        files.get(fixtures::PAGE_AS_FILE).await?;
        let cpu = Cpu::start(ctx.pid, ctx.tick)?;
        let (plain, _) = load::sequential(&mut files, fixtures::PAGE_AS_FILE, n).await?;
        let plain_cpu = cpu.spent().await?;
        // Re-synthesized: the project page on the index host.
        let mut index = route.open(INDEX_HOST).await?;
        index.get(fixtures::PAGE).await?;
        let cpu = Cpu::start(ctx.pid, ctx.tick)?;
        let (rewrite, _) = load::sequential(&mut index, fixtures::PAGE, n).await?;
        let rewrite_cpu = cpu.spent().await?;
        let (p, r) = (
            percentile(&plain, 50.0) / 1e3,
            percentile(&rewrite, 50.0) / 1e3,
        );
        if proxied {
            rows.page_plain.pipgate.push(p);
            rows.page_rewrite.pipgate.push(r);
            rows.cpu_page_plain
                .pipgate
                .push(plain_cpu.as_secs_f64() * 1e3 / n as f64);
            rows.cpu_page_rewrite
                .pipgate
                .push(rewrite_cpu.as_secs_f64() * 1e3 / n as f64);
            (plain_p50, rewrite_p50) = (p, r);
        } else {
            rows.page_plain.direct.push(p);
            rows.page_rewrite.direct.push(r);
        }
    }
    rows.page_ratio.pipgate.push(rewrite_p50 / plain_p50);
    Ok(())
}

/// The project page through the main pipgate (re-synthesized from HTML) and through the
/// cooldown pipgate (asked for as JSON for its upload times, written as HTML, the newest
/// files withheld), alternating which goes first.
async fn rep_cooldown(ctx: &Ctx, rep: usize, rows: &mut Rows) -> Res<()> {
    let Some((gate, cool)) = &ctx.cool else {
        return Ok(());
    };
    let n = ctx.sizes.pages;
    let (mut plain, mut cooled) = (0.0, 0.0);
    let order = if rep & 1 == 0 {
        [(false, &ctx.proxy), (true, cool)]
    } else {
        [(true, cool), (false, &ctx.proxy)]
    };
    for (is_cool, route) in order {
        let mut index = route.open(INDEX_HOST).await?;
        index.get(fixtures::PAGE).await?;
        let pid = if is_cool { gate.pid() } else { ctx.pid };
        let cpu = Cpu::start(pid, ctx.tick)?;
        let (times, _) = load::sequential(&mut index, fixtures::PAGE, n).await?;
        let spent = cpu.spent().await?;
        let p50 = percentile(&times, 50.0) / 1e3;
        if is_cool {
            cooled = p50;
            rows.cool_page.pipgate.push(p50);
            rows.cpu_cool
                .pipgate
                .push(spent.as_secs_f64() * 1e3 / n as f64);
        } else {
            plain = p50;
        }
    }
    rows.cool_ratio.pipgate.push(cooled / plain);
    Ok(())
}

/// A fresh pipgate whose `[policy.advisories]` is the generated 100k-record zip: how long it
/// takes to load and index it (as pipgate logs it), the CPU and memory that cost, then the
/// project page through it against the main pipgate, alternating which goes first.
async fn rep_advisories(opts: &Opts, ctx: &Ctx, rep: usize, rows: &mut Rows) -> Res<()> {
    let Some(adv) = &ctx.adv else {
        return Ok(());
    };
    let setup = Setup {
        origin: adv.origin,
        origin_ca: &adv.origin_ca,
        mint_hosts: &[],
        log: None,
        top: "",
        extra: &adv.extra,
    };
    let dir = adv.dir.join(format!("advisories-{rep}"));
    let gate = Pipgate::start(&opts.pipgate, &dir, &setup)?;
    let pid = gate.pid();
    let log = dir.join("pipgate.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ms = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("advisory snapshot loaded"))
        {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .ok_or_else(|| format!("no {key} in the load line: {line}"))
            };
            // A benchmark of records that did not parse would measure nothing.
            let want = fixtures::OSV_RECORDS.to_string();
            if field("blocking=")? != want || field("unreadable=")? != "0" {
                return Err(format!("the feed did not load whole: {line}").into());
            }
            break field("ms=")?.parse::<f64>()?;
        }
        if text.contains("advisory feed refresh failed") || Instant::now() > deadline {
            return Err(format!("the advisory feed did not load:\n{text}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    rows.adv_load.pipgate.push(ms);
    // utime + stime of every thread, the blocking-pool one that parsed included.
    let spent = procfs::cpu(pid, ctx.tick)?;
    rows.adv_cpu.pipgate.push(spent.as_secs_f64() * 1e3);
    rows.adv_rss.pipgate.push(procfs::peak_rss_mib(pid)?);
    rows.adv_rss_growth.pipgate.push(procfs::rss_mib(pid)?);
    let route = Route {
        addr: gate.addr,
        proxied: true,
        connect_to: None,
        tls: pki::client_config(&pki::read_pem(&gate.ca_pem)?)?,
    };
    let n = ctx.sizes.pages;
    let (mut plain, mut with) = (0.0, 0.0);
    let order = if rep & 1 == 0 {
        [(false, &ctx.proxy), (true, &route)]
    } else {
        [(true, &route), (false, &ctx.proxy)]
    };
    for (is_adv, route) in order {
        let mut index = route.open(INDEX_HOST).await?;
        index.get(fixtures::PAGE).await?;
        let (times, _) = load::sequential(&mut index, fixtures::PAGE, n).await?;
        let p50 = percentile(&times, 50.0) / 1e3;
        if is_adv {
            with = p50;
            rows.adv_page.pipgate.push(p50);
        } else {
            plain = p50;
        }
    }
    rows.adv_ratio.pipgate.push(with / plain);
    drop(gate);
    Ok(())
}

async fn rep_idle(ctx: &Ctx, rows: &mut Rows) -> Res<()> {
    procfs::reset_peak(ctx.pid)?;
    let fleet =
        load::idle_fleet(&ctx.proxy, FILE_HOST, fixtures::SMALL, ctx.sizes.idle, 16).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rows.rss_idle.pipgate.push(procfs::peak_rss_mib(ctx.pid)?);
    drop(fleet);
    // Let pipgate see 2,000 EOFs before the next load.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

async fn rep_gib(ctx: &Ctx, rep: usize, rows: &mut Rows) -> Res<()> {
    for (proxied, route) in ctx.order(rep) {
        let mut conn = route.open(FILE_HOST).await?;
        conn.get(fixtures::SMALL).await?;
        if proxied {
            procfs::reset_peak(ctx.pid)?;
        }
        let pid = proxied.then_some(ctx.pid);
        let s = load::sampling(pid, Duration::from_millis(50), conn.get(fixtures::ONE_GIB)).await?;
        if s.value != fixtures::ONE_GIB_LEN {
            return Err(format!("1 GiB download returned {} bytes", s.value).into());
        }
        let mbps = s.value as f64 / s.wall.as_secs_f64() / 1e6;
        if proxied {
            rows.tput_gib.pipgate.push(mbps);
            rows.rss_gib.pipgate.push(procfs::peak_rss_mib(ctx.pid)?);
            let from = s.wall.as_secs_f64() * 0.1;
            let later: Vec<f64> = s
                .rss
                .iter()
                .filter(|(t, _)| *t >= from)
                .map(|(_, m)| *m)
                .collect();
            let first = later.first().copied().unwrap_or(f64::NAN);
            let max = later.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            rows.gib_growth.pipgate.push(max - first);
        } else {
            rows.tput_gib.direct.push(mbps);
        }
    }
    Ok(())
}

async fn rep_mint(ctx: &Ctx, rep: usize, rows: &mut Rows) -> Res<()> {
    let per = ctx.sizes.mint_per_rep;
    let hosts = &ctx.mint_hosts[rep * per..(rep + 1) * per];
    let mut first = Samples::default();
    let mut cached = Samples::default();
    for host in hosts {
        let t = Instant::now();
        drop(ctx.proxy.tls(host).await?);
        first.push(t.elapsed().as_secs_f64() * 1e3);
        for _ in 0..2 {
            let t = Instant::now();
            drop(ctx.proxy.tls(host).await?);
            cached.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    rows.mint_first.pipgate.push(first.median());
    rows.mint_cached.pipgate.push(cached.median());
    rows.mint_added
        .pipgate
        .push(first.median() - cached.median());
    Ok(())
}

/// Root listings: the 60 MB listing untouched and re-synthesized, each way; then, through
/// pipgate, the memory one listing and 32 at once take.
async fn rep_root(ctx: &Ctx, rep: usize, rows: &mut Rows) -> Res<()> {
    let n = ctx.sizes.roots;
    let mut ratio = (0.0, 0.0);
    for (proxied, route) in ctx.order(rep) {
        let mut files = route.open(FILE_HOST).await?;
        let cpu = Cpu::start(ctx.pid, ctx.tick)?;
        let (plain, _) = load::sequential(&mut files, fixtures::ROOT_AS_FILE, n).await?;
        let plain_cpu = cpu.spent().await?;
        let mut index = route.open(INDEX_HOST).await?;
        let cpu = Cpu::start(ctx.pid, ctx.tick)?;
        let (rewrite, _) = load::sequential(&mut index, fixtures::ROOT, n).await?;
        let rewrite_cpu = cpu.spent().await?;
        let (p, r) = (
            percentile(&plain, 50.0) / 1e3,
            percentile(&rewrite, 50.0) / 1e3,
        );
        if proxied {
            rows.root_plain.pipgate.push(p);
            rows.root_rewrite.pipgate.push(r);
            rows.cpu_root
                .pipgate
                .push(rewrite_cpu.as_secs_f64() * 1e3 / n as f64);
            rows.cpu_root_plain
                .pipgate
                .push(plain_cpu.as_secs_f64() * 1e3 / n as f64);
            ratio = (p, r);
        } else {
            rows.root_plain.direct.push(p);
            rows.root_rewrite.direct.push(r);
        }
    }
    rows.root_ratio.pipgate.push(ratio.1 / ratio.0);
    // Memory: peak RSS over the RSS just before, one listing and then many at once.
    let mut index = ctx.proxy.open(INDEX_HOST).await?;
    let before = procfs::rss_mib(ctx.pid)?;
    procfs::reset_peak(ctx.pid)?;
    index.get(fixtures::ROOT).await?;
    rows.root_rss
        .pipgate
        .push(procfs::peak_rss_mib(ctx.pid)? - before);
    Ok(())
}

/// Many root listings rewritten at once: the peak RSS growth over the RSS just before.
async fn rep_roots_at_once(ctx: &Ctx, rows: &mut Rows) -> Res<()> {
    let mut conns = Vec::with_capacity(ctx.sizes.roots_concurrent);
    for _ in 0..ctx.sizes.roots_concurrent {
        conns.push(ctx.proxy.open(INDEX_HOST).await?);
    }
    let before = procfs::rss_mib(ctx.pid)?;
    procfs::reset_peak(ctx.pid)?;
    let mut set = tokio::task::JoinSet::new();
    for mut c in conns {
        set.spawn(async move { c.get(fixtures::ROOT).await });
    }
    while let Some(r) = set.join_next().await {
        let bytes = r??;
        if bytes < fixtures::ROOT_NAMES as u64 * 50 {
            return Err(format!("a concurrent root listing returned {bytes} bytes").into());
        }
    }
    rows.root_rss_concurrent
        .pipgate
        .push(procfs::peak_rss_mib(ctx.pid)? - before);
    Ok(())
}

/// The pipgate of the `auth` load: the main one's config plus one user, and an admin port for
/// its counters.
fn auth_gate(opts: &Opts, dir: &std::path::Path, setup: Setup<'_>) -> Res<AuthGate> {
    use std::io::Write as _;
    let dir = dir.join("auth");
    std::fs::create_dir_all(&dir)?;
    let users = dir.join("users");
    let mut passwd = std::process::Command::new(&opts.pipgate)
        .arg("passwd")
        .arg(&users)
        .arg("ci")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    passwd
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(b"bench-password\n")?;
    if !passwd.wait()?.success() {
        return Err("pipgate passwd failed".into());
    }
    let admin = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let extra = format!(
        "\n[access]\ncredentials = {:?}\n",
        users.display().to_string()
    );
    let top = format!("admin_listen = \"{admin}\"");
    let setup = Setup {
        mint_hosts: &[],
        top: &top,
        extra: &extra,
        ..setup
    };
    let pipgate = Pipgate::start(&opts.pipgate, &dir, &setup)?;
    Ok(AuthGate {
        pipgate,
        admin,
        good: format!("Basic {}", base64("ci:bench-password")),
    })
}

fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One CONNECT to the file host with `credentials` from `from` (any local address when
/// `None`): the reply's status and how long it took.
async fn connect_with(
    gate: std::net::SocketAddr,
    from: Option<std::net::IpAddr>,
    credentials: &str,
) -> Res<(u16, Duration)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = Instant::now();
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(ip) = from {
        socket.bind(std::net::SocketAddr::new(ip, 0))?;
    }
    let mut tcp = socket.connect(gate).await?;
    tcp.set_nodelay(true)?;
    let req = format!(
        "CONNECT {FILE_HOST}:443 HTTP/1.1\r\nHost: {FILE_HOST}:443\r\nProxy-Authorization: {credentials}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let elapsed = t.elapsed();
    let status = std::str::from_utf8(head.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("no status in the CONNECT reply")?;
    Ok((status, elapsed))
}

/// A good client's CONNECTs timed idle, then while other clients (each from an address of its
/// own) send CONNECTs with wrong passwords as fast as they are answered.
async fn rep_auth(ctx: &Ctx, rows: &mut Rows) -> Res<()> {
    let Some(auth) = &ctx.auth else {
        return Ok(());
    };
    let gate = auth.pipgate.addr;
    let n = ctx.sizes.auth_connects;
    let timed = |n: usize| async move {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let (status, t) = connect_with(gate, None, &auth.good).await?;
            if status != 200 {
                return Err(format!("a good CONNECT was answered {status}").into());
            }
            times.push(t.as_secs_f64() * 1e3);
        }
        Res::Ok(percentile(&times, 50.0))
    };
    // Verified once, then cached: what every later CONNECT of a fleet costs.
    timed(5).await?;
    let idle = timed(n).await?;
    let hashes_before = auth_hashes(auth.admin).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = tokio::task::JoinSet::new();
    for k in 0..ctx.sizes.auth_attackers {
        let stop = stop.clone();
        let from = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2 + k as u8));
        attackers.spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let wrong = format!("Basic {}", base64(&format!("ci:wrong-{k}-{i}")));
                let (status, _) = connect_with(gate, Some(from), &wrong).await?;
                if status != 407 {
                    return Err(format!("a wrong password was answered {status}").into());
                }
                i += 1;
            }
            Res::Ok(i)
        });
    }
    // Let the flood start (and the first wrong attempts reach argon2) before timing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let flood = timed(n).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while let Some(r) = attackers.join_next().await {
        r??;
    }
    let flood = flood?;
    rows.auth_idle.pipgate.push(idle);
    rows.auth_flood.pipgate.push(flood);
    rows.auth_ratio.pipgate.push(flood / idle);
    // A pipgate from before the counter existed has none.
    if let (Some(before), Some(after)) = (hashes_before, auth_hashes(auth.admin).await) {
        rows.auth_hashes.pipgate.push((after - before) as f64);
    }
    Ok(())
}

/// `pipgate_proxy_auth_hashes_total` from the admin endpoint, if it has one.
async fn auth_hashes(admin: std::net::SocketAddr) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(admin).await.ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix("pipgate_proxy_auth_hashes_total "))
        .and_then(|v| v.trim().parse().ok())
}
