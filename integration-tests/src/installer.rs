//! Runs real pip and uv from a venv under `env -i`, pointed at a proxy and one CA bundle.
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::venv::Venv;

/// What one installer run did.
#[derive(Debug)]
pub struct Outcome {
    /// The command line, for messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Outcome {
    /// Panics with the whole transcript unless the run succeeded.
    pub fn assert_ok(&self) -> &Self {
        assert!(self.status.success(), "{self}");
        self
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> {} in {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A proxy and the CA bundle a client must trust to use it.
#[derive(Debug, Clone)]
pub struct Route {
    /// `http://127.0.0.1:PORT`.
    pub proxy_url: String,
    /// The only CA the client trusts.
    pub ca_pem: PathBuf,
}

fn run(mut cmd: Command, home: &Path) -> Outcome {
    std::fs::create_dir_all(home).expect("client home");
    let command = format!("{cmd:?}");
    let start = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {command}: {e}"));
    Outcome {
        command,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// `python -m pip ARGS` through `route` (`HTTPS_PROXY`, `PIP_CERT`), with short timeouts and no
/// retries so a misbehaving proxy fails the test quickly instead of stalling it.
pub fn pip(venv: &Venv, route: &Route, home: &Path, args: &[&str]) -> Outcome {
    let mut cmd = venv.pip(home);
    // HTTP_PROXY too, so a plain-http link that slipped through can never reach the network.
    cmd.env("HTTPS_PROXY", &route.proxy_url)
        .env("HTTP_PROXY", &route.proxy_url)
        .env("PIP_CERT", &route.ca_pem)
        .env("PIP_TIMEOUT", "20")
        .env("PIP_RETRIES", "0")
        .args(args);
    run(cmd, home)
}

/// `uv ARGS` through `route` (`HTTPS_PROXY`, `SSL_CERT_FILE`), cache off, using the venv's
/// interpreter.
pub fn uv(venv: &Venv, route: &Route, home: &Path, args: &[&str]) -> Outcome {
    let mut cmd = venv.clean_command(&venv.bin("uv"), home);
    cmd.env("HTTPS_PROXY", &route.proxy_url)
        .env("HTTP_PROXY", &route.proxy_url)
        .env("SSL_CERT_FILE", &route.ca_pem)
        .env("UV_NO_CACHE", "1")
        .env("UV_HTTP_TIMEOUT", "20")
        .env("UV_PYTHON", venv.python())
        .env("UV_PYTHON_DOWNLOADS", "never")
        .args(args);
    run(cmd, home)
}

/// The single file in `dir` (panics unless there is exactly one).
pub fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "expected one file in {}: {files:?}",
        dir.display()
    );
    files.into_iter().next().expect("one file")
}
