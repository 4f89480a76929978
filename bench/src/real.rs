//! The nginx table (`--nginx PATH [--mitmdump PATH]`): the real shape. Debian's nginx
//! is the origin (HTTP/2, 16 KiB frames, the page pre-gzipped), and every load runs direct,
//! through mitmproxy (pass-through) and through pipgate, in an order that rotates with the
//! repetition. CPU figures are each proxy's scheduler time (`/proc/PID/task/*/schedstat`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::client::Route;
use crate::fixtures::{self, Fixtures, FILE_HOST, INDEX_HOST};
use crate::load;
use crate::mitm::Mitm;
use crate::nginx::Nginx;
use crate::pipgate::{Pipgate, Setup};
use crate::pki::{self, OriginCa};
use crate::procfs;
use crate::report::{percentile, Samples};
use crate::{Opts, Res};

/// Which column a route fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Direct,
    Mitm,
    Pipgate,
}

/// How a row is judged (pipgate's median against ...).
#[derive(Debug, Clone, Copy)]
enum Goal {
    None,
    /// ... a fixed bound.
    AtMost(f64),
    /// ... mitmproxy's median.
    AtMostMitm,
    /// ... this fraction of direct's median.
    AtLeastOfDirect(f64),
    /// ... direct's median plus this much.
    AtMostDirectPlus(f64),
}

#[derive(Debug, Clone)]
struct Row {
    name: &'static str,
    unit: &'static str,
    digits: usize,
    direct: Samples,
    mitm: Samples,
    pipgate: Samples,
    goal: Goal,
    goal_text: &'static str,
}

impl Row {
    fn new(name: &'static str, unit: &'static str, digits: usize) -> Row {
        Row {
            name,
            unit,
            digits,
            direct: Samples::default(),
            mitm: Samples::default(),
            pipgate: Samples::default(),
            goal: Goal::None,
            goal_text: "",
        }
    }

    fn goal(mut self, goal: Goal, text: &'static str) -> Row {
        self.goal = goal;
        self.goal_text = text;
        self
    }

    fn col(&mut self, via: Via) -> &mut Samples {
        match via {
            Via::Direct => &mut self.direct,
            Via::Mitm => &mut self.mitm,
            Via::Pipgate => &mut self.pipgate,
        }
    }

    /// "met by 12%" / "MISSED by 30%", relative to the bound.
    fn verdict(&self) -> String {
        if self.pipgate.0.is_empty() {
            return String::new();
        }
        let p = self.pipgate.median();
        let (bound, at_most) = match self.goal {
            Goal::None => return String::new(),
            Goal::AtMost(b) => (b, true),
            Goal::AtMostMitm if self.mitm.0.is_empty() => return "— (no mitmproxy)".into(),
            Goal::AtMostMitm => (self.mitm.median(), true),
            Goal::AtLeastOfDirect(f) => (f * self.direct.median(), false),
            Goal::AtMostDirectPlus(d) => (self.direct.median() + d, true),
        };
        let d = self.digits;
        if at_most == (p <= bound) {
            format!(
                "met ({:.d$} against {:.d$}, {:.0}% margin)",
                p,
                bound,
                (1.0 - p / bound).abs() * 100.0
            )
        } else {
            format!(
                "MISSED by {:.d$} {} ({:.0}%)",
                (p - bound).abs(),
                self.unit,
                (p / bound - 1.0).abs() * 100.0
            )
        }
    }
}

fn show(s: &Samples, unit: &str, digits: usize) -> String {
    if s.0.is_empty() {
        return "—".into();
    }
    let min = s.0.iter().copied().fold(f64::INFINITY, f64::min);
    let max = s.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{:.d$} [{:.d$}–{:.d$}] {unit}",
        s.median(),
        min,
        max,
        d = digits
    )
}

fn table(rows: &[&Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| figure | direct | mitmproxy | pipgate | target (pipgate) | verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.name,
            show(&r.direct, r.unit, r.digits),
            show(&r.mitm, r.unit, r.digits),
            show(&r.pipgate, r.unit, r.digits),
            r.goal_text,
            r.verdict()
        );
    }
    out
}

struct Rows {
    page_id: Row,
    page_gz: Row,
    page_gz_bytes: Row,
    cpu_page_id: Row,
    cpu_page_gz: Row,
    cpu_10: Row,
    tput_10: Row,
    cpu_ka: Row,
    lat: Row,
    added: Row,
    conn: Row,
    rss: Row,
}

impl Rows {
    fn new() -> Rows {
        Rows {
            page_id: Row::new(
                "2.2 MB / 4,700-link page, identity to the client, p50",
                "ms",
                2,
            )
            .goal(Goal::AtMostMitm, "≤ mitmproxy"),
            page_gz: Row::new("same page, client accepts gzip, p50", "ms", 2)
                .goal(Goal::AtMostMitm, "≤ mitmproxy"),
            page_gz_bytes: Row::new("  bytes on the wire to that client", "kB", 0),
            cpu_page_id: Row::new("proxy CPU per page (identity client)", "ms", 2)
                .goal(Goal::AtMost(5.0), "≤ 5 ms"),
            cpu_page_gz: Row::new("proxy CPU per page (gzip client)", "ms", 2),
            cpu_10: Row::new("proxy CPU per 10 MiB download", "ms", 1)
                .goal(Goal::AtMost(10.0), "≤ 10 ms"),
            tput_10: Row::new("single 10 MiB stream", "MB/s", 0)
                .goal(Goal::AtLeastOfDirect(0.8), "≥ 0.8× direct"),
            cpu_ka: Row::new("proxy CPU per keep-alive request (c=64)", "µs", 1)
                .goal(Goal::AtMost(25.0), "≤ 25 µs"),
            lat: Row::new("small request p50 at c=1", "µs", 0)
                .goal(Goal::AtMostDirectPlus(100.0), "≤ direct + 100 µs"),
            added: Row::new("  added to direct (p50 − direct p50, same rep)", "µs", 0),
            conn: Row::new("new connection p50 (CONNECT + full TLS 1.3)", "ms", 2),
            rss: Row::new("peak RSS (64 keep-alive clients)", "MiB", 1),
        }
    }

    fn all(&self) -> Vec<&Row> {
        vec![
            &self.page_id,
            &self.page_gz,
            &self.page_gz_bytes,
            &self.cpu_page_id,
            &self.cpu_page_gz,
            &self.cpu_10,
            &self.tput_10,
            &self.cpu_ka,
            &self.lat,
            &self.added,
            &self.conn,
            &self.rss,
        ]
    }
}

/// Load sizes (smaller than the own-origin table's: mitmproxy needs ~1.7 ms of CPU per
/// request).
#[derive(Debug, Clone, Copy)]
struct Sizes {
    pages: usize,
    downloads: usize,
    ka_conns: usize,
    ka_per_conn: usize,
    latency: usize,
    handshakes: usize,
}

struct Column {
    via: Via,
    route: Route,
    /// The proxy's pid (none for direct).
    pid: Option<u32>,
}

/// CPU of `pid` so far (none: direct).
fn cpu(pid: Option<u32>) -> Res<Duration> {
    pid.map_or(Ok(Duration::ZERO), procfs::cpu_ns)
}

/// CPU of `pid` since `before`, after a short settle so closing work is counted too.
async fn spent(pid: Option<u32>, before: Duration) -> Res<Duration> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(cpu(pid)?.saturating_sub(before))
}

pub(crate) async fn run(opts: &Opts, nginx_bin: &Path) -> Res<()> {
    let dir = tempfile::Builder::new()
        .prefix("pipgate-bench-nginx-")
        .tempdir()?;
    let fx = Fixtures::generate();
    let ca = OriginCa::new(dir.path())?;
    ca.write_server_cert(&[INDEX_HOST.to_owned(), FILE_HOST.to_owned()], dir.path())?;
    let nginx = Nginx::start(nginx_bin, dir.path(), &fx)?;
    let setup = Setup {
        origin: nginx.addr,
        origin_ca: &ca.pem,
        mint_hosts: &[],
        log: opts.pipgate_log.as_deref(),
        top: "",
        extra: &opts.pipgate_extra,
    };
    let pg = Pipgate::start(&opts.pipgate, &dir.path().join("pipgate"), &setup)?;
    let mitm = match &opts.mitmdump {
        Some(bin) => Some(Mitm::start(bin, dir.path(), &ca.pem)?),
        None => None,
    };
    let mut cols = vec![Column {
        via: Via::Direct,
        route: Route {
            addr: nginx.addr,
            proxied: false,
            connect_to: None,
            tls: pki::client_config(&[ca.der()])?,
        },
        pid: None,
    }];
    if let Some(m) = &mitm {
        cols.push(Column {
            via: Via::Mitm,
            route: Route {
                addr: m.addr,
                proxied: true,
                // mitmproxy resolves the CONNECT target itself: give it nginx's address.
                connect_to: Some(nginx.addr.to_string()),
                tls: pki::client_config(&pki::read_pem(&m.ca_pem)?)?,
            },
            pid: Some(m.pid()),
        });
    }
    cols.push(Column {
        via: Via::Pipgate,
        route: Route {
            addr: pg.addr,
            proxied: true,
            connect_to: None,
            tls: pki::client_config(&pki::read_pem(&pg.ca_pem)?)?,
        },
        pid: Some(pg.pid()),
    });
    let k = if opts.quick { 2 } else { 1 };
    let sizes = Sizes {
        pages: 30 / k,
        downloads: 12 / k,
        ka_conns: 64,
        ka_per_conn: 50 / k,
        latency: 600 / k,
        handshakes: 120 / k,
    };
    println!(
        "pipgate-bench: nginx origin {} (h2, gzip_static; page {} bytes, {} gzipped), pipgate {} (pid {}), mitmproxy {}, {} reps; load average at start {}",
        nginx.addr,
        fx.page.len(),
        nginx.page_gz_len,
        pg.addr,
        pg.pid(),
        mitm.as_ref().map_or("not run".to_owned(), |m| format!("{} (pid {})", m.addr, m.pid())),
        opts.reps,
        crate::run::load_average()
    );
    // Warm-up: leaves minted, upstream connections open, every path once.
    for c in &cols {
        let mut files = c.route.open(FILE_HOST).await?;
        files.get(fixtures::SMALL).await?;
        files.get(fixtures::TEN_MIB).await?;
        for enc in [None, Some("gzip")] {
            let mut index = c.route.open(INDEX_HOST).await?;
            index.accept_encoding = enc;
            let n = index.get(fixtures::PAGE).await?;
            println!(
                "pipgate-bench: {:?} page, Accept-Encoding {:?}: {n} bytes, Content-Encoding {:?}",
                c.via, enc, index.last_encoding
            );
        }
    }
    // The loads of this table `--only` names (page, download, keepalive, latency, handshake).
    let wants = |name: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == name);
    let mut rows = Rows::new();
    for rep in 0..opts.reps {
        let t = std::time::Instant::now();
        let mut order: Vec<&Column> = cols.iter().collect();
        order.rotate_left(rep % cols.len());
        let mut lat_direct = None;
        let mut lat_pg = None;
        for c in order.iter().filter(|_| wants("page")) {
            page(c, None, sizes, &mut rows).await?;
            page(c, Some("gzip"), sizes, &mut rows).await?;
        }
        for c in order.iter().filter(|_| wants("download")) {
            download(c, sizes, &mut rows).await?;
        }
        for c in order.iter().filter(|_| wants("keepalive")) {
            keepalive(c, sizes, &mut rows).await?;
        }
        for c in order.iter().filter(|_| wants("latency")) {
            let p50 = latency(c, sizes, &mut rows).await?;
            match c.via {
                Via::Direct => lat_direct = Some(p50),
                Via::Pipgate => lat_pg = Some(p50),
                Via::Mitm => {}
            }
        }
        if let (Some(d), Some(p)) = (lat_direct, lat_pg) {
            rows.added.pipgate.push(p - d);
        }
        for c in order.iter().filter(|_| wants("handshake")) {
            let times = load::handshakes(&c.route, FILE_HOST, sizes.handshakes, 4).await?;
            rows.conn.col(c.via).push(percentile(&times, 50.0));
        }
        eprintln!(
            "pipgate-bench: nginx rep {}/{} done in {:.0} s (load average {})",
            rep + 1,
            opts.reps,
            t.elapsed().as_secs_f64(),
            crate::run::load_average()
        );
    }
    println!();
    println!(
        "nginx origin; all on 127.0.0.1, 2 shared cores (load average at end {}). median [min–max] over {} reps, the order of direct, mitmproxy and pipgate rotating; CPU = the proxy's schedstat time.",
        crate::run::load_average(),
        opts.reps
    );
    println!();
    print!("{}", table(&rows.all()));
    drop(mitm);
    drop(pg);
    drop(nginx);
    Ok(())
}

async fn page(c: &Column, enc: Option<&'static str>, s: Sizes, rows: &mut Rows) -> Res<()> {
    let mut conn = c.route.open(INDEX_HOST).await?;
    conn.accept_encoding = enc;
    conn.get(fixtures::PAGE).await?;
    let before = cpu(c.pid)?;
    let (times, bytes) = load::sequential(&mut conn, fixtures::PAGE, s.pages).await?;
    let spent = spent(c.pid, before).await?;
    let p50 = percentile(&times, 50.0) / 1e3;
    let per_page = spent.as_secs_f64() * 1e3 / s.pages as f64;
    if enc.is_some() {
        rows.page_gz.col(c.via).push(p50);
        rows.page_gz_bytes.col(c.via).push(bytes as f64 / 1e3);
        if c.pid.is_some() {
            rows.cpu_page_gz.col(c.via).push(per_page);
        }
    } else {
        rows.page_id.col(c.via).push(p50);
        if c.pid.is_some() {
            rows.cpu_page_id.col(c.via).push(per_page);
        }
    }
    Ok(())
}

async fn download(c: &Column, s: Sizes, rows: &mut Rows) -> Res<()> {
    let mut conn = c.route.open(FILE_HOST).await?;
    conn.get(fixtures::TEN_MIB).await?;
    let before = cpu(c.pid)?;
    let (times, bytes) = load::sequential(&mut conn, fixtures::TEN_MIB, s.downloads).await?;
    let spent = spent(c.pid, before).await?;
    if bytes != fixtures::TEN_MIB_LEN as u64 {
        return Err(format!("10 MiB download returned {bytes} bytes").into());
    }
    rows.tput_10
        .col(c.via)
        .push(bytes as f64 / percentile(&times, 50.0));
    if c.pid.is_some() {
        rows.cpu_10
            .col(c.via)
            .push(spent.as_secs_f64() * 1e3 / s.downloads as f64);
    }
    Ok(())
}

async fn keepalive(c: &Column, s: Sizes, rows: &mut Rows) -> Res<()> {
    let mut before = None;
    let pid = c.pid;
    load::keepalive(
        &c.route,
        FILE_HOST,
        fixtures::SMALL,
        s.ka_conns,
        s.ka_per_conn,
        || {
            if let Some(pid) = pid {
                procfs::reset_peak(pid)?;
            }
            before = Some(cpu(pid)?);
            Ok(())
        },
    )
    .await?;
    if let (Some(pid), Some(before)) = (pid, before) {
        let spent = spent(Some(pid), before).await?;
        let n = (s.ka_conns * s.ka_per_conn) as f64;
        rows.cpu_ka.col(c.via).push(spent.as_secs_f64() * 1e6 / n);
        rows.rss.col(c.via).push(procfs::peak_rss_mib(pid)?);
    }
    Ok(())
}

async fn latency(c: &Column, s: Sizes, rows: &mut Rows) -> Res<f64> {
    let mut conn = c.route.open(FILE_HOST).await?;
    conn.get(fixtures::SMALL).await?;
    let (times, _) = load::sequential(&mut conn, fixtures::SMALL, s.latency).await?;
    let p50 = percentile(&times, 50.0);
    rows.lat.col(c.via).push(p50);
    Ok(p50)
}
