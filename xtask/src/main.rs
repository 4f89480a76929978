//! `cargo xtask test`: the one command that runs pipgate's whole test suite on a fresh machine.
//!
//! Steps, in linkerd's order: install what the tests need (apt packages, Python clients — in
//! the background while Rust builds), `cargo fmt --check`, `cargo clippy -D warnings`, build
//! the fuzz targets, then `cargo test` with the freshly built `pipgate` binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("deps") => {
            if duplicates(&root()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!(
                "usage: cargo xtask test [--no-setup] [-- <cargo test args>] | cargo xtask deps"
            );
            ExitCode::from(2)
        }
    }
}

fn root() -> PathBuf {
    // xtask lives one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn step(name: &str, cmd: &mut Command) -> bool {
    let start = Instant::now();
    println!("==> {name}");
    let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
    println!(
        "==> {name}: {} in {:.0}s",
        if ok { "ok" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    ok
}

/// Runs `cargo test`, passing its output through, and closes with the totals of every test
/// binary on one line (`N passed, M failed`): the last binaries cargo runs are doc-tests with
/// nothing in them, and their `0 passed` must not read as the suite's summary.
fn cargo_test(cmd: &mut Command, summary: &mut Option<String>) -> bool {
    use std::io::{BufRead, BufReader};
    let start = Instant::now();
    println!("==> cargo test");
    let child = cmd.stdout(std::process::Stdio::piped()).spawn();
    let Ok(mut child) = child else {
        println!("==> cargo test: cannot start cargo");
        return false;
    };
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                for part in rest.split(';') {
                    let mut words = part.split_whitespace().rev();
                    let (Some(what), Some(n)) = (words.next(), words.next()) else {
                        continue;
                    };
                    let n: u64 = n.parse().unwrap_or(0);
                    match what {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        "ignored" => ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    println!(
        "==> cargo test: {} in {:.0}s",
        if ok { "ok" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    *summary = Some(format!(
        "tests: {passed} passed, {failed} failed, {ignored} skipped"
    ));
    ok && failed == 0
}

/// deny.toml's `multiple-versions = "deny"`, checked with cargo itself: every crate that
/// appears in two versions must be in the `skip` list (with its reason).
fn duplicates(root: &Path) -> bool {
    println!("==> duplicate dependency versions (deny.toml)");
    let allowed: Vec<String> = std::fs::read_to_string(root.join("deny.toml"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("{ name = \""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_owned)
        .collect();
    let out = cargo()
        .args(["tree", "--duplicates", "--workspace", "--edges", "normal"])
        .args([
            "--target",
            "x86_64-unknown-linux-gnu",
            "--prefix",
            "none",
            "--depth",
            "0",
        ])
        .output();
    let Ok(out) = out else {
        println!("==> cannot run cargo tree");
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // `name vX.Y.Z`, once per distinct version: cargo tree also lists one version twice when a
    // proc-macro's build uses it with other features (lazy-regex's regex, memchr).
    let mut versions: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_alphanumeric()))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?, w.next()?))
        })
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let mut bad: Vec<&str> = versions
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| w[0].0)
        .filter(|name| !allowed.iter().any(|a| a == name))
        .collect();
    bad.sort_unstable();
    bad.dedup();
    if bad.is_empty() {
        println!(
            "==> duplicates: ok ({} allowed in deny.toml)",
            allowed.len()
        );
        true
    } else {
        println!("==> duplicates: FAILED: {} appear in two versions; unify them or add them to deny.toml's skip with a reason", bad.join(", "));
        false
    }
}

fn test(args: &[String]) -> ExitCode {
    let start = Instant::now();
    let root = root();
    let setup = !args.iter().any(|a| a == "--no-setup");
    let extra: Vec<String> = args
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .cloned()
        .collect();

    // Python clients take minutes to install and need no CPU-heavy work: start them first.
    let mut clients: Option<Child> = None;
    if setup {
        if !step(
            "system packages",
            Command::new("bash").arg(root.join("scripts/setup-system.sh")),
        ) {
            return ExitCode::FAILURE;
        }
        println!("==> python clients (background): scripts/setup-clients.sh");
        clients = Command::new("bash")
            .arg(root.join("scripts/setup-clients.sh"))
            .stdout(
                std::fs::File::create(root.join("target/setup-clients.log")).map_or_else(
                    |_| std::process::Stdio::inherit(),
                    std::process::Stdio::from,
                ),
            )
            .spawn()
            .ok();
    }

    let mut ok = step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    ) && duplicates(&root)
        && step(
            "cargo clippy",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        )
        && ["policy/fuzz/Cargo.toml", "proxy/fuzz/Cargo.toml"]
            .into_iter()
            .all(|manifest| {
                step(
                    &format!("fuzz targets build ({manifest})"),
                    cargo().args(["check", "--manifest-path", manifest, "--bins"]),
                )
            })
        && step(
            "build pipgate",
            cargo().args(["build", "-p", "pipgate-proxy", "--bin", "pipgate"]),
        );

    if let Some(mut child) = clients {
        let done = child.wait().map(|s| s.success()).unwrap_or(false);
        println!(
            "==> python clients: {} (log: target/setup-clients.log)",
            if done { "ok" } else { "FAILED" }
        );
        if let Ok(log) = std::fs::read_to_string(root.join("target/setup-clients.log")) {
            for line in log
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                println!("    {line}");
            }
        }
        ok &= done;
    }

    let mut summary = None;
    if ok {
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        let mut cmd = cargo();
        cmd.env("PIPGATE_BIN", target.join("debug/pipgate"))
            .env("PIPGATE_CLIENTS_DIR", root.join("target/clients"))
            .args([
                "test",
                "--workspace",
                "--exclude",
                "pipgate-bench",
                "--exclude",
                "xtask",
            ])
            .args(&extra);
        ok = cargo_test(&mut cmd, &mut summary);
    }
    println!(
        "==> {} in {:.0}s",
        if ok { "all passed" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    // The suite's closing line: totals over every test binary.
    if let Some(summary) = summary {
        println!("{summary}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
