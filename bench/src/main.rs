//! `pipgate-bench`: pipgate's cost (CPU, latency, throughput, memory) against a local TLS
//! origin, each load run through pipgate and directly, interleaved over several repetitions.
//!
//! Usage: `pipgate-bench --pipgate target/release/pipgate [--reps 5] [--quick] [--only LOADS]`
//! (`scripts/bench.sh` builds both in release mode and runs this).

mod cache;
mod client;
mod fixtures;
mod load;
mod origin;
mod pipgate;
mod pki;
mod procfs;
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
    /// RUST_LOG for pipgate (default: unset, i.e. `info` with one access line per request).
    pub pipgate_log: Option<String>,
    /// Run only these loads (names as in `--help`); empty means all.
    pub only: Vec<String>,
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
        pipgate_log: None,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pipgate" => opts.pipgate = args.next().ok_or("--pipgate needs a path")?.into(),
            "--reps" => opts.reps = args.next().ok_or("--reps needs a number")?.parse()?,
            "--quick" => opts.quick = true,
            "--origin-http1" => opts.origin_http1 = true,
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
                    "usage: pipgate-bench [--pipgate PATH] [--reps N] [--quick] [--origin-http1] [--pipgate-log FILTER] [--only {}]",
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
        rt.block_on(run::run(opts))
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
