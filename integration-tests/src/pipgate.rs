//! Runs the real `pipgate` binary as a child process on ephemeral ports.
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long pipgate may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `<target>/<profile>` of the running test binary (`.../target/debug/deps/x` -> `.../target/debug`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("test binary lives in <target>/<profile>/deps")
}

/// The cargo target directory the tests were built in.
pub fn target_dir() -> PathBuf {
    let profile = profile_dir();
    profile.parent().map(Path::to_path_buf).unwrap_or(profile)
}

/// The `pipgate` binary: `$PIPGATE_BIN`, else `<target>/<profile>/pipgate`, built once per
/// test process with `cargo build -p pipgate-proxy --bin pipgate` (a no-op when up to date) so a
/// stale binary is never tested by accident.
pub fn pipgate_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PIPGATE_BIN") {
            return PathBuf::from(bin);
        }
        let profile = profile_dir();
        let bin = profile.join("pipgate");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_path_buf();
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(&workspace)
            .args(["build", "-p", "pipgate-proxy", "--bin", "pipgate"])
            .env("CARGO_TARGET_DIR", target_dir());
        if profile.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status();
        match status {
            Ok(s) if s.success() => {}
            other if bin.exists() => {
                eprintln!(
                    "warning: building pipgate failed ({other:?}); testing the existing {}",
                    bin.display()
                );
            }
            other => panic!(
                "cannot build pipgate ({other:?}) and {} does not exist",
                bin.display()
            ),
        }
        bin
    })
    .clone()
}

/// A `Command` for the pipgate binary (for `ca init`, `config check`, `explain`, ...).
/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("deploy")
}

/// A finished command's status and both outputs, for assertion messages.
pub fn transcript(out: &std::process::Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn pipgate_command() -> Command {
    Command::new(pipgate_bin())
}

/// A running `pipgate run`; killed when dropped (and when the test process exits, even when the
/// handle lives in a `static` and is never dropped).
#[derive(Debug)]
pub struct Pipgate {
    /// The proxy listener.
    pub addr: SocketAddr,
    /// The admin listener, when the config set `admin_listen`.
    pub admin: Option<SocketAddr>,
    /// pipgate's CA certificate (what clients must trust).
    pub ca_pem: PathBuf,
    /// Where pipgate's stderr (its log) goes.
    pub stderr_path: PathBuf,
    /// The config file it runs with.
    pub config_path: PathBuf,
    stdout: Arc<Mutex<Vec<String>>>,
    // Closing this pipe makes the wrapper shell kill pipgate (see `start`).
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Pipgate {
    /// Writes `toml` to `dir/pipgate.toml`, creates a CA in `dir/ca/` with `pipgate ca init
    /// --config` (constrained to the hosts that config intercepts, as pipgate makes CAs by
    /// default) unless `dir/ca/ca.pem` exists (so the config should say `cert = "ca/ca.pem"`,
    /// `key = "ca/ca.key"`), and starts `pipgate run`. Panics with pipgate's stderr if it does
    /// not come up.
    pub fn start(dir: &Path, toml: &str) -> Pipgate {
        Pipgate::try_start(dir, toml).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Pipgate::start`], returning the failure (with pipgate's stderr) instead.
    pub fn try_start(dir: &Path, toml: &str) -> Result<Pipgate, String> {
        Pipgate::try_start_with_args(dir, toml, &[])
    }

    /// [`Pipgate::start`] with more `pipgate run` arguments (`--log-format json`, say).
    pub fn start_with_args(dir: &Path, toml: &str, args: &[&str]) -> Pipgate {
        Pipgate::try_start_with_args(dir, toml, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Pipgate::try_start`] with more `pipgate run` arguments.
    pub fn try_start_with_args(dir: &Path, toml: &str, args: &[&str]) -> Result<Pipgate, String> {
        Pipgate::try_start_with_env(dir, toml, args, &[], &[])
    }

    /// [`Pipgate::start`] with these environment variables set and those removed (pipgate's
    /// own environment, for the start-up warnings about it).
    pub fn start_with_env(
        dir: &Path,
        toml: &str,
        set: &[(&str, &str)],
        remove: &[&str],
    ) -> Pipgate {
        Pipgate::try_start_with_env(dir, toml, &[], set, remove).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_with_env(
        dir: &Path,
        toml: &str,
        args: &[&str],
        set: &[(&str, &str)],
        remove: &[&str],
    ) -> Result<Pipgate, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let config_path = dir.join("pipgate.toml");
        std::fs::write(&config_path, toml).map_err(|e| format!("write config: {e}"))?;
        let ca_dir = dir.join("ca");
        let ca_pem = ca_dir.join("ca.pem");
        if !ca_pem.exists() {
            let out = pipgate_command()
                .args(["ca", "init", "--dir"])
                .arg(&ca_dir)
                .arg("--config")
                .arg(&config_path)
                .output()
                .map_err(|e| format!("run pipgate ca init: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "pipgate ca init failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let stderr_path = dir.join("pipgate.stderr.log");
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| format!("stderr log: {e}"))?;
        // The wrapper shell runs pipgate in the background and kills it as soon as its own stdin
        // (a pipe from this process) closes: on Drop, and also when the test process dies.
        let script = r#"exec 3<&0
"$0" "$@" </dev/null 3<&- &
child=$!
( read _ <&3; kill $child 2>/dev/null ) >/dev/null 2>&1 &
wait $child"#;
        let mut command = Command::new("sh");
        for var in remove {
            command.env_remove(var);
        }
        command.envs(set.iter().copied());
        let mut child = command
            .arg("-c")
            .arg(script)
            .arg(pipgate_bin())
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("PIPGATE_RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("spawn pipgate: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let keep = Arc::clone(&lines);
        std::thread::spawn(move || {
            // Keeps draining stdout for the process's whole life so pipgate never blocks on it.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                keep.lock().expect("stdout lines").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let wants_admin = toml
            .lines()
            .any(|l| l.trim_start().starts_with("admin_listen"));
        let mut addr = None;
        let mut admin = None;
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        while addr.is_none() || (wants_admin && admin.is_none()) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = parse_announce(&line, "pipgate: listening on ") {
                        addr = Some(a);
                    } else if let Some(a) = parse_announce(&line, "pipgate: admin on ") {
                        admin = Some(a);
                    }
                }
                Err(e) => {
                    drop(stdin);
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "pipgate did not announce its listeners ({e:?}); stdout: {:?}; stderr:\n{}",
                        lines.lock().expect("stdout lines"),
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    ));
                }
            }
        }
        Ok(Pipgate {
            addr: addr.ok_or("no listen address")?,
            admin,
            ca_pem,
            stderr_path,
            config_path,
            stdout: lines,
            stdin,
            child,
        })
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY`.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything pipgate logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The access event whose line mentions `needle`. It is written when the response body
    /// ends, and access lines are written in batches, so it is waited for (2 s at most);
    /// panics with the log when there is none.
    pub fn access_event(&self, needle: &str) -> String {
        self.log_line(&format!("access event mentioning {needle:?}"), |l| {
            l.contains("pipgate::access") && l.contains(needle)
        })
    }

    /// The first log line for which `wanted` holds, waited for (2 s at most); panics with the
    /// log, naming `what`, when there is none.
    pub fn log_line(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let log = self.stderr();
            match log.lines().find(|l| wanted(l)) {
                Some(line) => return line.to_owned(),
                None if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                None => panic!("no {what}:\n{log}"),
            }
        }
    }

    /// Waits (up to `secs` seconds) until the admin endpoint `path` answers a body for which
    /// `wanted` holds; panics with the last answer otherwise.
    pub fn wait_admin(&self, path: &str, secs: u64, wanted: impl Fn(u16, &str) -> bool) -> String {
        let admin = self.admin.expect("admin_listen is set");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let r = crate::probe::http_get(admin, path);
            let text = r.text();
            if wanted(r.status, &text) {
                return text;
            }
            if std::time::Instant::now() >= deadline {
                panic!(
                    "{path} never became what was waited for; last ({}):\n{text}\nlog:\n{}",
                    r.status,
                    self.stderr()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `POST /reload` on the admin port: the status and the whole raw answer.
    pub fn reload(&self) -> (u16, String) {
        let admin = self.admin.expect("admin_listen is set");
        let raw = crate::probe::raw_exchange(
            admin,
            b"POST /reload HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }

    /// Every stdout line so far (the announce lines and setup hints).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout lines").clone()
    }
}

fn parse_announce(line: &str, prefix: &str) -> Option<SocketAddr> {
    line.trim()
        .strip_prefix(prefix)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Drop for Pipgate {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announce_lines() {
        assert_eq!(
            parse_announce(
                "pipgate: listening on 127.0.0.1:4242",
                "pipgate: listening on "
            ),
            Some("127.0.0.1:4242".parse().unwrap())
        );
        assert_eq!(
            parse_announce(
                "pipgate: admin on 127.0.0.1:1 (metrics)",
                "pipgate: admin on "
            ),
            Some("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(parse_announce("hello", "pipgate: admin on "), None);
    }
}
