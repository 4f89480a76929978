//! The nginx origin (`--nginx PATH`): Debian's nginx serving the fixtures from files as a CDN
//! serves PyPI: TLS, HTTP/2 with nginx's default settings (16 KiB frames), the project page
//! pre-gzipped and sent compressed by `gzip_static` to a client that accepts gzip, files
//! identity. One worker process, access log off.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::{self, Fixtures, FILE_HOST, INDEX_HOST};
use crate::Res;

/// A running nginx; stopped on drop.
#[derive(Debug)]
pub(crate) struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    /// Bytes of the pre-gzipped page, as a gzip-accepting client receives it.
    pub page_gz_len: u64,
}

/// Writes `bytes` to `root/path`, creating the directories.
fn put(root: &Path, path: &str, bytes: &[u8]) -> Res<PathBuf> {
    let file = root.join(path.trim_start_matches('/'));
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&file, bytes)?;
    Ok(file)
}

impl Nginx {
    /// The pid of nginx's one worker (where the work is); the master only forks it.
    pub(crate) fn worker_pid(&self) -> Res<u32> {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))?;
        Ok(children
            .split_whitespace()
            .next()
            .ok_or("nginx has no worker")?
            .parse()?)
    }

    /// Writes the document roots and config under `dir` (TLS chain and key as the bench origin
    /// wrote them there) and starts `bin` in the foreground.
    pub(crate) fn start(bin: &Path, dir: &Path, fx: &Fixtures) -> Res<Nginx> {
        let index = dir.join("www-index");
        let files = dir.join("www-files");
        let page = put(&index, "/simple/bigproj/index.html", &fx.page)?;
        // gzip -6, as nginx's own gzip and PyPI's CDN answer (711 kB for the issue's page).
        let status = Command::new("gzip")
            .args(["-k", "-n", "-6", "-f"])
            .arg(&page)
            .status()?;
        if !status.success() {
            return Err("gzip of the page failed".into());
        }
        let page_gz_len = std::fs::metadata(page.with_extension("html.gz"))?.len();
        put(&index, "/simple/small/index.html", &fx.small_page)?;
        put(&index, "/simple/ten/index.html", &fx.ten_page)?;
        put(&files, fixtures::SMALL, &fx.small)?;
        put(&files, fixtures::TEN_MIB, &fx.ten)?;
        // A free port (released just before nginx binds it).
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::new(crate::place::server_ip(), port);
        let d = dir.display();
        let conf = format!(
            r#"worker_processes 1;
error_log {d}/nginx-error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-tmp;
    types {{ text/html html; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    ssl_certificate {d}/origin-chain.pem;
    ssl_certificate_key {d}/origin-key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen {addr} ssl http2;
        server_name {INDEX_HOST};
        root {index};
        location /simple/ {{
            gzip_static on;
            gzip_vary on;
            gzip_proxied any;
        }}
    }}
    server {{
        listen {addr} ssl http2;
        server_name {FILE_HOST};
        root {files};
    }}
}}
"#,
            index = index.display(),
            files = files.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        std::fs::create_dir_all(dir.join("nginx-tmp"))?;
        let child = crate::place::server_command(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut nginx = Nginx {
            child,
            addr,
            page_gz_len,
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = nginx.child.try_wait()? {
                return Err(format!(
                    "nginx exited ({status}): {}",
                    std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default()
                )
                .into());
            }
            if t.elapsed() > Duration::from_secs(10) {
                return Err("nginx did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The master forks its worker after it binds.
        while nginx.worker_pid().is_err() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL to the master leaves its worker; SIGTERM (fast shutdown) stops both.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
