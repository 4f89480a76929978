//! Runs the release `pipgate` binary as a child process with a config pointing at the origin.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::fixtures::{FILE_HOST, INDEX_HOST};
use crate::Res;

/// What a benchmark pipgate is configured with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup<'a> {
    /// The origin every host resolves to, and the CA its certificate is signed by.
    pub origin: SocketAddr,
    pub origin_ca: &'a Path,
    /// Extra file hosts (all resolved to the origin) so that the first connection to each
    /// mints a fresh leaf.
    pub mint_hosts: &'a [String],
    /// `RUST_LOG`; by default pipgate's default level (`info`: one access line per request, as
    /// in production). Logs go to `dir/pipgate.log`.
    pub log: Option<&'a str>,
    /// More config before the first table (`admin_listen = ...`).
    pub top: &'a str,
    /// More config after the last table (tables of its own, such as `[access]`).
    pub extra: &'a str,
}

/// A running pipgate; killed on drop.
#[derive(Debug)]
pub(crate) struct Pipgate {
    child: Child,
    pub addr: SocketAddr,
    pub ca_pem: PathBuf,
}

impl Pipgate {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Initialises a CA in `dir`, writes the config and starts `bin run` (see [`Setup`]).
    pub(crate) fn start(bin: &Path, dir: &Path, setup: &Setup<'_>) -> Res<Pipgate> {
        let Setup {
            origin,
            origin_ca,
            mint_hosts,
            log,
            top,
            extra,
        } = *setup;
        std::fs::create_dir_all(dir)?;
        let ca_dir = dir.join("pipgate-ca");
        if !ca_dir.join("ca.pem").exists() {
            // Constrained as by default (pypi.org, files.pythonhosted.org), plus the subtree
            // of the `m<i>.bench.test` hosts the mint phase asks for.
            let out = Command::new(bin)
                .args(["ca", "init", "--permit", "bench.test", "--dir"])
                .arg(&ca_dir)
                .output()?;
            if !out.status.success() {
                return Err(
                    format!("pipgate ca init: {}", String::from_utf8_lossy(&out.stderr)).into(),
                );
            }
        }
        let mut resolve = String::new();
        let mut file_hosts = vec![format!("{FILE_HOST:?}")];
        for host in [INDEX_HOST, FILE_HOST]
            .into_iter()
            .chain(mint_hosts.iter().map(String::as_str))
        {
            resolve.push_str(&format!("\"{host}:443\" = \"{origin}\"\n"));
        }
        file_hosts.extend(mint_hosts.iter().map(|h| format!("{h:?}")));
        let config = format!(
            r#"listen = "{listen}:0"
{top}
[ca]
cert = {cert:?}
key = {key:?}

[upstream]
extra_roots = [{roots:?}]

[upstream.resolve]
{resolve}
[[index]]
name = "pypi"
url = "https://{INDEX_HOST}/simple/"
role = "public"
file_hosts = [{file_hosts}]

[policy]
# Some policy to evaluate on every request (no private index: nothing is looked up).
private = ["acme-*", "internal-*"]

[limits]
# One client address opens every connection here.
max_connections_per_client = 100000
"#,
            cert = ca_dir.join("ca.pem").display().to_string(),
            key = ca_dir.join("ca.key").display().to_string(),
            roots = origin_ca.display().to_string(),
            file_hosts = file_hosts.join(", "),
            listen = crate::place::server_ip(),
        );
        let config_path = dir.join("pipgate.toml");
        std::fs::write(&config_path, config + extra)?;
        let log_file = std::fs::File::create(dir.join("pipgate.log"))?;
        let mut cmd = crate::place::server_command(bin);
        cmd.arg("run").arg("--config").arg(&config_path);
        match log {
            Some(filter) => cmd.env("RUST_LOG", filter),
            None => cmd.env_remove("RUST_LOG"),
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.join("pipgate.log")).unwrap_or_default();
                return Err(format!("pipgate exited before listening:\n{log}").into());
            };
            if let Some(a) = line?.strip_prefix("pipgate: listening on ") {
                break a.trim().parse()?;
            }
        };
        // Keep draining stdout so pipgate never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Pipgate {
            child,
            addr,
            ca_pem: ca_dir.join("ca.pem"),
        })
    }
}

impl Drop for Pipgate {
    /// SIGTERM first (pipgate drains and exits, so a profiler wrapping it, such as
    /// `valgrind --tool=callgrind`, writes its output), SIGKILL after 20 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
