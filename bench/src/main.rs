//! `pipgate-bench`: pipgate's cost (CPU, latency, throughput, memory) against a local TLS
//! origin, each load run through pipgate and directly, interleaved over several repetitions.
//!
//! Usage: `pipgate-bench --pipgate target/release/pipgate [--reps 5] [--quick] [--only LOADS]`
//! (`scripts/bench.sh` builds both in release mode and runs this).

mod cache;
mod client;
mod fixtures;
mod load;
mod mitm;
mod nginx;
mod origin;
mod pipgate;
mod pki;
mod place;
mod procfs;
mod real;
mod report;
mod run;

use std::path::PathBuf;

/// Errors are reported, never recovered: a failed benchmark run prints why and exits 1.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Opts {
    pub pipgate: PathBuf,
    pub reps: usize,
    /// Smaller loads, for a quick look (figures are noisier).
    pub quick: bool,
    /// The origin offers only http/1.1 (like nginx without `http2 on`).
    pub origin_http1: bool,
    /// The 10 MiB download's client runs on a one-thread runtime of its own (as pip does: one
    /// thread), not on the bench's two-worker runtime, whose hand-offs slow "direct" most.
    pub one_thread_client: bool,
    /// RUST_LOG for pipgate (default: unset, i.e. `info` with one access line per request).
    pub pipgate_log: Option<String>,
    /// Run only these loads (names as in `--help`); empty means all.
    pub only: Vec<String>,
    /// nginx binary: run the nginx-origin table too (direct | mitmproxy | pipgate).
    pub nginx: Option<PathBuf>,
    /// mitmdump binary: the nginx table's mitmproxy column.
    pub mitmdump: Option<PathBuf>,
    /// Only the nginx table (skip the own-origin one).
    pub nginx_only: bool,
    /// More config for the nginx table's pipgate, appended after its last table, `[limits]`
    /// (`page_compression = "gzip"`, or tables of their own).
    pub pipgate_extra: String,
}

/// The loads, in the order they run.
pub const LOADS: &[&str] = &[
    "keepalive",
    "handshake",
    "download",
    "latency",
    "page",
    "cooldown",
    "advisories",
    "gib",
    "mint",
    "root",
    "auth",
    "idle",
    "cache",
];

fn parse_args() -> Res<Opts> {
    let mut opts = Opts {
        pipgate: PathBuf::from("target/release/pipgate"),
        reps: 5,
        quick: false,
        origin_http1: false,
        one_thread_client: false,
        pipgate_log: None,
        only: Vec::new(),
        nginx: None,
        mitmdump: None,
        nginx_only: false,
        pipgate_extra: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pipgate" => opts.pipgate = args.next().ok_or("--pipgate needs a path")?.into(),
            "--reps" => opts.reps = args.next().ok_or("--reps needs a number")?.parse()?,
            "--quick" => opts.quick = true,
            "--nginx" => opts.nginx = Some(args.next().ok_or("--nginx needs a path")?.into()),
            "--mitmdump" => {
                opts.mitmdump = Some(args.next().ok_or("--mitmdump needs a path")?.into())
            }
            "--nginx-only" => opts.nginx_only = true,
            "--pipgate-config" => {
                let extra = args.next().ok_or("--pipgate-config needs TOML")?;
                opts.pipgate_extra = format!("\n{}\n", extra.replace("\\n", "\n"));
            }
            "--origin-http1" => opts.origin_http1 = true,
            "--one-thread-client" => opts.one_thread_client = true,
            "--pipgate-log" => {
                opts.pipgate_log = Some(args.next().ok_or("--pipgate-log needs a filter")?)
            }
            "--only" => {
                let list = args.next().ok_or("--only needs a list")?;
                for name in list.split(',') {
                    if !LOADS.contains(&name) {
                        return Err(
                            format!("unknown load {name:?}; loads: {}", LOADS.join(",")).into()
                        );
                    }
                    opts.only.push(name.to_owned());
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: pipgate-bench [--pipgate PATH] [--reps N] [--quick] [--origin-http1] [--one-thread-client] [--pipgate-log FILTER] [--only {}] [--nginx PATH [--mitmdump PATH] [--nginx-only] [--pipgate-config TOML]]",
                    LOADS.join(",")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    if opts.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    Ok(opts)
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve-origin") {
        return serve_origin(&args[2..]);
    }
    let result = parse_args().and_then(|opts| {
        // Two workers: the machine has two cores, shared by the client, origin and pipgate.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async {
            if !opts.nginx_only {
                run::run(opts.clone()).await?;
            }
            if let Some(nginx) = &opts.nginx {
                println!();
                real::run(&opts, nginx).await?;
            }
            Ok(())
        })
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipgate-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `pipgate-bench --serve-origin DIR [--origin-http1]`: the origin, as a process of its own.
fn serve_origin(args: &[String]) -> std::process::ExitCode {
    let result = (|| -> Res<()> {
        let dir = PathBuf::from(args.first().ok_or("--serve-origin needs a directory")?);
        let http1_only = args.get(1).map(String::as_str) == Some("--origin-http1");
        // Two workers, like the client's runtime: the machine has two cores.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(origin::serve_process(&dir, http1_only))
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipgate-bench origin: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
