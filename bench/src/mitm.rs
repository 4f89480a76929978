//! mitmproxy (`--mitmdump PATH`): the alternative a user would pick, run as `mitmdump` in
//! regular (forward) proxy mode with its default settings and no addons, so it passes every
//! answer through as the origin sent it. Its CA is made in a confdir of its own at first start;
//! it verifies the origin against the bench's origin CA.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::Res;

/// A running mitmdump; killed on drop.
#[derive(Debug)]
pub(crate) struct Mitm {
    child: Child,
    pub addr: SocketAddr,
    /// The CA its clients trust.
    pub ca_pem: PathBuf,
}

impl Mitm {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn start(bin: &Path, dir: &Path, origin_ca: &Path) -> Res<Mitm> {
        let confdir = dir.join("mitmproxy");
        std::fs::create_dir_all(&confdir)?;
        // A free port number (released before mitmdump binds it) on the servers' address.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::new(crate::place::server_ip(), port);
        let log = std::fs::File::create(dir.join("mitmdump.log"))?;
        let child = crate::place::server_command(bin)
            .args(["--mode", "regular", "--listen-host", &addr.ip().to_string()])
            .args(["--listen-port", &addr.port().to_string()])
            .args(["--set", &format!("confdir={}", confdir.display())])
            .args([
                "--set",
                &format!("ssl_verify_upstream_trusted_ca={}", origin_ca.display()),
            ])
            // No per-flow output (it would be most of its work).
            .args(["--set", "flow_detail=0", "--set", "termlog_verbosity=warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        let mut mitm = Mitm {
            child,
            addr,
            ca_pem: confdir.join("mitmproxy-ca-cert.pem"),
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() || !mitm.ca_pem.exists() {
            if let Some(status) = mitm.child.try_wait()? {
                return Err(format!(
                    "mitmdump exited ({status}): {}",
                    std::fs::read_to_string(dir.join("mitmdump.log")).unwrap_or_default()
                )
                .into());
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err("mitmdump did not listen within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(mitm)
    }
}

impl Drop for Mitm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
