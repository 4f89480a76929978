//! `cargo xtask test`: the one command that runs pipgate's whole test suite on a fresh machine.
//! `cargo xtask dist`: the release binary a CI runner or the container image downloads
//! instead of building (`dist/pipgate` and `dist/pipgate.sha256`).
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
        Some("dist") => dist(),
        Some("deps") => {
            if duplicates(&root()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!(
                "usage: cargo xtask test [--no-setup] [-- <cargo test args>] | cargo xtask deps | cargo xtask dist"
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
        // The real PEP 740 attestations and Sigstore roots the provenance tests verify (issue 19).
        if !step(
            "provenance test data",
            Command::new("bash").arg(root.join("scripts/setup-testdata.sh")),
        ) {
            return ExitCode::FAILURE;
        }
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
        && [
            "policy/fuzz/Cargo.toml",
            "proxy/fuzz/Cargo.toml",
            "provenance/fuzz/Cargo.toml",
        ]
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
            .env(
                "PIPGATE_PROVENANCE_TESTDATA",
                root.join("target/testdata/provenance"),
            )
            // The embedded default keeps a file cache under XDG_CACHE_HOME: a test that runs
            // it must not fill the machine's own.
            .env("XDG_CACHE_HOME", root.join("target/it-xdg-cache"))
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

/// How `dist` links the binary, best first.
#[derive(Clone, Copy, Debug)]
enum Linking {
    /// `x86_64-unknown-linux-musl`: static, with musl's resolver (needs the target installed,
    /// and a C compiler for musl since ring compiles C).
    Musl,
    /// glibc with `+crt-static`: static; name lookups still load the NSS modules of the
    /// machine it runs on (so it wants a glibc of the same major version there for `dns`).
    GlibcStatic,
    /// glibc, dynamically linked: runs where this machine's glibc version or newer is.
    Glibc,
}

impl Linking {
    fn target(self) -> &'static str {
        match self {
            Linking::Musl => "x86_64-unknown-linux-musl",
            Linking::GlibcStatic | Linking::Glibc => "x86_64-unknown-linux-gnu",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Linking::Musl => "static (musl)",
            Linking::GlibcStatic => "static (glibc, +crt-static)",
            Linking::Glibc => "dynamic (glibc)",
        }
    }
}

/// `cargo xtask dist`: a stripped release build of `pipgate`, statically linked when the
/// toolchain can (musl if its target is installed, else glibc with `+crt-static`, else a
/// plain glibc build, said so), copied to `dist/pipgate` with `dist/pipgate.sha256`
/// (`sha256sum -c` format). The binary is run (`--version`, and a config check that resolves
/// `localhost`, so a static build whose name lookups fail is caught here).
fn dist() -> ExitCode {
    let root = root();
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut tries = Vec::new();
    if installed
        .lines()
        .any(|l| l.trim() == Linking::Musl.target())
    {
        tries.push(Linking::Musl);
    } else {
        println!(
            "==> dist: {} is not installed (rustup target list --installed); building for glibc",
            Linking::Musl.target()
        );
    }
    tries.extend([Linking::GlibcStatic, Linking::Glibc]);
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    for linking in tries {
        let mut cmd = cargo();
        // `--target` always, so RUSTFLAGS reach the binary and not the build scripts.
        cmd.args([
            "build",
            "--locked",
            "--profile",
            "dist",
            "-p",
            "pipgate-proxy",
        ])
        .args(["--bin", "pipgate", "--target", linking.target()]);
        let mut flags = std::env::var("RUSTFLAGS").unwrap_or_default();
        if matches!(linking, Linking::Musl | Linking::GlibcStatic) {
            flags.push_str(" -C target-feature=+crt-static");
        }
        cmd.env("RUSTFLAGS", flags.trim());
        if !step(&format!("dist build, {}", linking.describe()), &mut cmd) {
            continue;
        }
        let built = target_dir.join(linking.target()).join("dist/pipgate");
        match package(&root, &built, linking) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(e) => println!("==> dist: {} build unusable: {e}", linking.describe()),
        }
    }
    println!("==> dist: FAILED");
    ExitCode::FAILURE
}

/// Copies `built` to `dist/`, checks that it runs, writes its digest and prints both.
fn package(root: &Path, built: &Path, linking: Linking) -> Result<(), String> {
    use sha2::Digest as _;
    let dist = root.join("dist");
    std::fs::create_dir_all(&dist).map_err(|e| format!("create {}: {e}", dist.display()))?;
    let bin = dist.join("pipgate");
    std::fs::copy(built, &bin).map_err(|e| format!("copy {}: {e}", built.display()))?;
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("run {}: {e}", bin.display()))?;
    if !version.status.success() {
        return Err(format!("{} --version failed", bin.display()));
    }
    // A name lookup through the binary's own resolver: a static glibc build links even
    // where its lookups cannot work.
    let scratch = std::env::temp_dir().join(format!("pipgate-dist-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&scratch);
    let config = scratch.join("check.toml");
    let _ = std::fs::write(&config, "listen = \"localhost:3128\"\n");
    let check = Command::new(&bin)
        .args(["config", "check", "--config"])
        .arg(&config)
        .env("XDG_DATA_HOME", &scratch)
        .output();
    let _ = std::fs::remove_dir_all(&scratch);
    match check {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "config check resolving localhost failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
        Err(e) => return Err(format!("run {}: {e}", bin.display())),
    }
    let bytes = std::fs::read(&bin).map_err(|e| format!("read {}: {e}", bin.display()))?;
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sum = dist.join("pipgate.sha256");
    std::fs::write(&sum, format!("{hex}  pipgate\n"))
        .map_err(|e| format!("write {}: {e}", sum.display()))?;
    let ldd = Command::new("ldd")
        .arg(&bin)
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or_default().trim().to_owned()
        })
        .unwrap_or_else(|e| format!("(ldd: {e})"));
    println!(
        "==> dist: {}",
        String::from_utf8_lossy(&version.stdout).trim()
    );
    println!(
        "==> dist: {} ({} bytes, {}; ldd: {ldd})",
        bin.display(),
        bytes.len(),
        linking.describe()
    );
    println!("==> dist: {} ({hex}  pipgate)", sum.display());
    Ok(())
}
