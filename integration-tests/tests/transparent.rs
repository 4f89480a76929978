//! Transparent mode for real: pip runs in a "pod" network namespace with no proxy setting at
//! all, its port-443 (and 80) traffic is REDIRECTed by nftables (or iptables) to pipgate's
//! `transparent_listen`, and the policy still holds. Needs root; skipped with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use pipgate_integration_tests::pipgate::Pipgate;
use pipgate_integration_tests::venv::{self, Venv};
use pipgate_integration_tests::world::World;

/// Every name pip resolves in the pod; all point at one address that only the redirect serves.
const POD_HOSTS: &[&str] = &[
    "pypi.org",
    "files.pythonhosted.org",
    "private.test",
    "evil.test",
    "pypi.python.org",
];

/// Runs a command, returning its output or a message naming it.
fn sh(program: &str, args: &[&str]) -> Result<Output, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program} {args:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{program} {args:?} -> {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// How the REDIRECT rule was installed, so it can be removed exactly.
#[derive(Debug)]
enum Rule {
    /// Our own nftables table (`family` ip or ip6), deleted whole.
    Nft { family: &'static str, table: String },
    /// One iptables (or ip6tables) rule in nat/PREROUTING, deleted by its exact spec.
    Iptables {
        program: &'static str,
        spec: Vec<String>,
    },
}

/// A "pod" namespace joined to the host namespace by a veth pair, with a hosts file for it
/// and a REDIRECT rule on the host end. Everything is removed on drop, even when a check fails.
#[derive(Debug)]
struct Pod {
    ns: String,
    host_if: String,
    /// The host end of the veth (where REDIRECT delivers, and pipgate listens).
    host_ip: IpAddr,
    /// The pod end.
    pod_ip: IpAddr,
    /// What the pod's hosts file maps every index name to: off-link, so it is routed through
    /// the host end and only reachable through the redirect.
    fake_remote: IpAddr,
    netns_etc: PathBuf,
    rule: Option<Rule>,
}

impl Pod {
    /// Creates the namespace, the veth pair and the hosts file. `Err` means "not permitted
    /// here" (the caller skips); nothing is left behind.
    fn create(v6: bool) -> Result<Pod, String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        // Private 10.x addresses that exist only inside this test's namespaces; varied by pid so
        // two test processes on one machine do not collide.
        let a = 200 + (pid % 50) as u8;
        let b = ((pid / 50) % 250) as u8;
        let c = (seq % 60) as u8 * 4;
        // IPv6: unique-local addresses, likewise only inside these namespaces.
        let ula = |last: u16, sub: u16| {
            let [a, b] = [u16::from(a), u16::from(b)];
            IpAddr::V6(Ipv6Addr::new(0xfd70, a, b, sub, 0, 0, 0, last))
        };
        let (host_ip, pod_ip, fake_remote) = if v6 {
            (ula(1, seq as u16), ula(2, seq as u16), ula(0x100, 0xffff))
        } else {
            (
                IpAddr::V4(Ipv4Addr::new(10, a, b, c + 1)),
                IpAddr::V4(Ipv4Addr::new(10, a, b, c + 2)),
                IpAddr::V4(Ipv4Addr::new(10, a, b.wrapping_add(1), 100)),
            )
        };
        let mut pod = Pod {
            ns: format!("pgt-{pid}-{seq}"),
            host_if: format!("pgth{}", (pid % 1_000_000) * 10 + seq % 10),
            host_ip,
            pod_ip,
            fake_remote,
            netns_etc: PathBuf::new(),
            rule: None,
        };
        pod.netns_etc = Path::new("/etc/netns").join(&pod.ns);
        reap_stale();
        sh("ip", &["netns", "add", &pod.ns])?;
        // From here on, Drop cleans up whatever was made.
        let pod_if = format!("pgtp{}", (pid % 1_000_000) * 10 + seq % 10);
        let bits = if v6 { 64 } else { 30 };
        let host_cidr = format!("{}/{bits}", pod.host_ip);
        let pod_cidr = format!("{}/{bits}", pod.pod_ip);
        let host_ip = pod.host_ip.to_string();
        let steps: Vec<Vec<&str>> = vec![
            vec![
                "link",
                "add",
                &pod.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &pod_if,
            ],
            vec!["link", "set", &pod_if, "netns", &pod.ns],
            vec!["addr", "add", &host_cidr, "dev", &pod.host_if],
            vec!["link", "set", &pod.host_if, "up"],
            vec!["-n", &pod.ns, "addr", "add", &pod_cidr, "dev", &pod_if],
            vec!["-n", &pod.ns, "link", "set", &pod_if, "up"],
            vec!["-n", &pod.ns, "link", "set", "lo", "up"],
            vec!["-n", &pod.ns, "route", "add", "default", "via", &host_ip],
        ];
        for mut step in steps {
            if v6 && step.contains(&"addr") {
                // No duplicate address detection: a tentative IPv6 address cannot be bound yet.
                step.push("nodad");
            }
            sh("ip", &step)?;
        }
        // `ip netns exec` bind-mounts /etc/netns/NAME/hosts over /etc/hosts.
        std::fs::create_dir_all(&pod.netns_etc).map_err(|e| format!("/etc/netns: {e}"))?;
        let hosts = format!(
            "127.0.0.1 localhost\n{} {}\n",
            pod.fake_remote,
            POD_HOSTS.join(" ")
        );
        std::fs::write(pod.netns_etc.join("hosts"), hosts).map_err(|e| format!("hosts: {e}"))?;
        Ok(pod)
    }

    /// Redirects the pod's TCP 443 and 80 to `port` on the host end (nftables, else iptables).
    fn redirect(&mut self, port: u16) -> Result<(), String> {
        let v6 = self.host_ip.is_ipv6();
        if find_program("nft").is_some() {
            let family = if v6 { "ip6" } else { "ip" };
            let table = format!("pipgate_test_{}", self.ns.replace('-', "_"));
            let script = format!(
                "table {family} {table} {{\n chain pre {{\n  type nat hook prerouting priority dstnat; policy accept;\n  iifname \"{}\" tcp dport {{ 80, 443 }} redirect to :{port}\n }}\n}}\n",
                self.host_if
            );
            let path = self.netns_etc.join("redirect.nft");
            std::fs::write(&path, script).map_err(|e| format!("nft script: {e}"))?;
            sh("nft", &["-f", &path.display().to_string()])?;
            self.rule = Some(Rule::Nft { family, table });
            return Ok(());
        }
        let program = if v6 { "ip6tables" } else { "iptables" };
        if find_program(program).is_some() {
            let spec: Vec<String> = [
                "PREROUTING",
                "-i",
                &self.host_if,
                "-p",
                "tcp",
                "-m",
                "multiport",
                "--dports",
                "80,443",
                "-j",
                "REDIRECT",
                "--to-ports",
                &port.to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let mut args = vec!["-t", "nat", "-A"];
            args.extend(spec.iter().map(String::as_str));
            sh(program, &args)?;
            self.rule = Some(Rule::Iptables { program, spec });
            return Ok(());
        }
        Err("neither nft nor iptables is installed (apt-get install nftables)".into())
    }

    /// A command run inside the pod: `ip netns exec NS program`, with an empty environment
    /// (`env -i`) plus what `venv` sets: no proxy variable can reach the client.
    fn command(&self, venv: &Venv, home: &Path, program: &Path) -> Command {
        let ip = find_program("ip").expect("ip");
        let mut cmd = venv.clean_command(&ip, home);
        cmd.args(["netns", "exec", &self.ns]).arg(program);
        cmd
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let mut failed = Vec::new();
        match self.rule.take() {
            Some(Rule::Nft { family, table }) => {
                failed.extend(sh("nft", &["delete", "table", family, &table]).err());
            }
            Some(Rule::Iptables { program, spec }) => {
                let mut args = vec!["-t", "nat", "-D"];
                args.extend(spec.iter().map(String::as_str));
                failed.extend(sh(program, &args).err());
            }
            None => {}
        }
        // Deleting the namespace destroys the pod end, and with it the whole veth pair.
        failed.extend(sh("ip", &["netns", "del", &self.ns]).err());
        if sh("ip", &["link", "show", &self.host_if]).is_ok() {
            failed.extend(sh("ip", &["link", "del", &self.host_if]).err());
        }
        if !self.netns_etc.as_os_str().is_empty() {
            if let Err(e) = std::fs::remove_dir_all(&self.netns_etc) {
                failed.push(format!("remove {}: {e}", self.netns_etc.display()));
            }
        }
        for f in failed {
            eprintln!("transparent test cleanup: {f}");
        }
    }
}

/// Removes what an earlier run killed before its Drop left behind (its process is gone):
/// namespaces `pgt-PID-N`, their nftables tables and hosts files. Deleting a namespace takes
/// its veth pair with it.
fn reap_stale() {
    let Ok(out) = sh("ip", &["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = ns
            .strip_prefix("pgt-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let table = format!("pipgate_test_{}", ns.replace('-', "_"));
        for family in ["ip", "ip6"] {
            let _ = sh("nft", &["delete", "table", family, &table]);
        }
        let _ = sh("ip", &["netns", "del", ns]);
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
    }
}

/// The port pipgate announced for its transparent listener (`pipgate: transparent on ADDR`).
fn announced_transparent_port(pipgate: &Pipgate) -> u16 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let port = pipgate.stdout_lines().iter().find_map(|l| {
            l.trim()
                .strip_prefix("pipgate: transparent on ")?
                .parse::<SocketAddr>()
                .ok()
                .map(|a| a.port())
        });
        if let Some(port) = port {
            return port;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pipgate did not announce its transparent listener: {:?}",
            pipgate.stdout_lines()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// What pip left in a `--target` directory: the `(project, version)` of each dist-info.
fn installed(target: &Path) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(target)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let stem = name.strip_suffix(".dist-info")?;
                    let (project, version) = stem.rsplit_once('-')?;
                    Some((project.to_owned(), version.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn run(mut cmd: Command) -> (bool, String) {
    let line = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{line}: {e}"));
    let text = format!(
        "`{line}` -> {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Probes from inside the pod with raw sockets: an unlisted SNI, a direct connection to the
/// transparent port (a loop), and plain HTTP to an https-only index.
const PROBES: &str = r#"
import json, socket, ssl, sys
cafile, direct_host, direct_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
def tls(host, port, sni):
    ctx = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection((host, port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname=sni) as t:
                return "handshake ok " + t.version()
    except Exception as e:
        return repr(e)
out["evil"] = tls("evil.test", 443, "evil.test")
out["pypi"] = tls("pypi.org", 443, "pypi.org")
out["direct"] = tls(direct_host, direct_port, "pypi.org")
try:
    with socket.create_connection(("pypi.org", 80), timeout=10) as s:
        s.sendall(b"GET /simple/pubpkg/ HTTP/1.1\r\nHost: pypi.org\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    out["http"] = data.decode("latin-1")
except Exception as e:
    out["http"] = repr(e)
print(json.dumps(out))
"#;

/// The traffic really went through the transparent listener, from the pod's address, to the
/// off-link address the hosts file named (not to anything the pod could reach by itself).
fn assert_went_through(pipgate: &Pipgate, pod: &Pod) {
    let client = SocketAddr::new(pod.pod_ip, 0).to_string();
    let from_pod = format!("client={}", client.strip_suffix('0').unwrap_or(&client));
    let to = format!("original_dst={}", SocketAddr::new(pod.fake_remote, 443));
    pipgate.log_line(&format!("transparent access line {from_pod} {to}"), |l| {
        l.contains("transparent") && l.contains(&from_pod) && l.contains(&to)
    });
}

/// A pod whose traffic reaches a pipgate started for it (config edited by `edit`), in a
/// fresh world. None (with the reason printed) where namespaces or NAT are not permitted.
struct Setup {
    // Field order is drop order: pipgate stops before the pod's rules and namespace go.
    pipgate: Pipgate,
    world: World,
    pod: Pod,
    port: u16,
}

fn setup(v6: bool, edit: impl FnOnce(String) -> String) -> Option<Setup> {
    let mut pod = match Pod::create(v6) {
        Ok(pod) => pod,
        Err(e) => {
            eprintln!(
                "skipped: cannot create a network namespace here (needs root and `ip netns`): {e}"
            );
            return None;
        }
    };
    let world = World::start();
    // Port 0: pipgate picks one and announces it; the redirect rule is written after.
    let transparent = SocketAddr::new(pod.host_ip, 0);
    let toml = format!(
        "transparent_listen = \"{transparent}\"\n{}",
        edit(world.pipgate_config().to_toml())
    );
    let pipgate = Pipgate::start(&world.scratch("pipgate-transparent-"), &toml);
    let port = announced_transparent_port(&pipgate);
    if let Err(e) = pod.redirect(port) {
        eprintln!("skipped: cannot install a REDIRECT rule here: {e}");
        return None;
    }
    Some(Setup {
        pipgate,
        world,
        pod,
        port,
    })
}

#[test]
fn pip_in_a_pod_without_proxy_settings_is_filtered_by_redirect() {
    let Some(Setup {
        pipgate,
        world,
        pod,
        port,
    }) = setup(false, |toml| toml)
    else {
        return;
    };
    let venv = venv::latest();
    let home = world.scratch("pod-home-");
    let python = venv.python();

    // The trap is real: unfiltered (the dumb tunnel), the public acme-lib 99.0 wins.
    let control_target = world.scratch("control-target-");
    let mut control = venv.pip(&home);
    control
        .env("HTTPS_PROXY", world.control_proxy_url())
        .env("PIP_CERT", world.control_ca_pem())
        .env("PIP_TIMEOUT", "20")
        .env("PIP_RETRIES", "0")
        .args(["install", "--no-deps", "--target"])
        .arg(&control_target)
        .args(["--index-url", &world.private_index_url()])
        .args(["--extra-index-url", &world.public_index_url(), "acme-lib"]);
    let (ok, transcript) = run(control);
    assert!(ok, "control install failed:\n{transcript}");
    assert_eq!(
        installed(&control_target),
        [("acme_lib".to_owned(), "99.0".to_owned())],
        "without pipgate the public acme-lib should win (else this test proves nothing)"
    );
    world.public_origin().clear_log();
    world.private_origin().clear_log();

    let pip = |target: &Path, args: &[&str]| {
        let mut cmd = pod.command(venv, &home, &python);
        cmd.args(["-m", "pip", "install", "--no-deps", "--target"])
            .arg(target)
            .args(args)
            // Only pipgate's CA; no proxy variable of any kind (env -i).
            .env("PIP_CERT", &pipgate.ca_pem)
            .env("PIP_TIMEOUT", "20")
            .env("PIP_RETRIES", "0");
        run(cmd)
    };

    // Private name: private index first, PyPI as extra; the private 1.0 must win.
    let target = world.scratch("pod-acme-");
    let (ok, transcript) = pip(
        &target,
        &[
            "--index-url",
            &world.private_index_url(),
            "--extra-index-url",
            &world.public_index_url(),
            "acme-lib",
        ],
    );
    assert!(
        ok,
        "pip in the pod failed:\n{transcript}\n--- pipgate\n{}",
        pipgate.stderr()
    );
    assert_eq!(
        installed(&target),
        [("acme_lib".to_owned(), "1.0".to_owned())],
        "{transcript}"
    );
    let module = std::fs::read_to_string(target.join("acme_lib").join("__init__.py")).unwrap();
    assert!(module.contains("__version__ = \"1.0\"") && !module.contains("payload"));
    assert!(
        !world.public_origin().asked_for("acme_lib-99.0"),
        "the public wheel was fetched: {:?}",
        world.public_origin().requests()
    );
    assert!(world.private_origin().asked_for("acme_lib-1.0"));

    // External links: only the on-host 1.0 of extlinks is offered.
    let target = world.scratch("pod-extlinks-");
    let (ok, transcript) = pip(
        &target,
        &["--index-url", &world.public_index_url(), "extlinks"],
    );
    assert!(
        ok,
        "pip in the pod failed:\n{transcript}\n--- pipgate\n{}",
        pipgate.stderr()
    );
    assert_eq!(
        installed(&target),
        [("extlinks".to_owned(), "1.0".to_owned())],
        "{transcript}"
    );
    assert!(
        world.evil_origin().requests().is_empty(),
        "evil.test was contacted: {:?}",
        world.evil_origin().requests()
    );

    assert_went_through(&pipgate, &pod);

    // Raw probes: unlisted SNI, a loop, plain HTTP.
    let mut probe = pod.command(venv, &home, &python);
    probe
        .args(["-c", PROBES])
        .arg(&pipgate.ca_pem)
        .arg(pod.host_ip.to_string())
        .arg(port.to_string());
    let (ok, transcript) = run(probe);
    assert!(ok, "{transcript}");
    let json_line = transcript
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{transcript}"));
    let probes: serde_json::Value = serde_json::from_str(json_line).unwrap();
    let get = |k: &str| probes[k].as_str().unwrap_or_default().to_owned();
    assert!(get("pypi").starts_with("handshake ok"), "{probes}");
    assert!(
        get("evil").to_ascii_uppercase().contains("ACCESS_DENIED"),
        "an unlisted SNI should get a TLS access_denied alert: {probes}"
    );
    assert!(
        !get("direct").starts_with("handshake ok"),
        "a connection straight to the transparent port is a loop and must be refused: {probes}"
    );
    let http = get("http");
    assert!(
        http.starts_with("HTTP/1.1 403") && http.contains("http://"),
        "plain HTTP to an https-only index should be refused with a reason: {probes}"
    );
    // Transparent decisions are counted like the others.
    let admin = pipgate.admin.expect("the world's config sets admin_listen");
    let metrics = pipgate_integration_tests::probe::http_get(admin, "/metrics").text();
    for action in ["intercept", "refuse"] {
        let line = format!("pipgate_decisions_total{{rule=\"transparent\",action=\"{action}\"}}");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    drop(pipgate);
    drop(world);
    drop(pod);
}

/// Splices a TLS connection to the server the client meant, replaying its ClientHello.
const SPLICE_PROBE: &str = r#"
import json, socket, ssl, sys
origin_ca, pipgate_ca, path = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}
def get(host, sni, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection((host, 443), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname=sni) as t:
                t.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, sni)).encode())
                data = b""
                while True:
                    d = t.recv(65536)
                    if not d:
                        break
                    data += d
                return data.split(b"\r\n", 1)[0].decode("latin-1")
    except Exception as e:
        return repr(e)
out["allowed"] = get("evil.test", "evil.test", origin_ca)
# Same address, a name that is not allowed.
out["other"] = get("evil.test", "other.test", pipgate_ca)
print(json.dumps(out))
"#;

#[test]
fn a_tunnel_allowed_sni_is_spliced_to_the_real_server_untouched() {
    let Some(Setup {
        pipgate,
        world,
        pod,
        port: _,
    }) = setup(false, |toml| {
        toml.replace("tunnel_allow = []", "tunnel_allow = [\"evil.test\"]")
    })
    else {
        return;
    };
    let venv = venv::latest();
    let home = world.scratch("pod-home-");
    let ext2 = world.file("extlinks", "2.0").path();
    let mut probe = pod.command(venv, &home, &venv.python());
    probe
        .args(["-c", SPLICE_PROBE])
        .arg(world.control_ca_pem())
        .arg(&pipgate.ca_pem)
        .arg(&ext2);
    let (ok, transcript) = run(probe);
    assert!(ok, "{transcript}");
    let json_line = transcript
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{transcript}"));
    let probes: serde_json::Value = serde_json::from_str(json_line).unwrap();
    // The pod verified evil.test's own certificate (the origins' CA, not pipgate's): the bytes
    // were spliced, not intercepted.
    assert_eq!(
        probes["allowed"],
        "HTTP/1.1 200 OK",
        "{probes}\n{}",
        pipgate.stderr()
    );
    assert!(world.evil_origin().asked_for(&ext2));
    assert!(
        probes["other"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_uppercase()
            .contains("ACCESS_DENIED"),
        "{probes}"
    );
    pipgate.log_line("transparent tunnel line for evil.test", |l| {
        l.contains("transparent") && l.contains("evil.test") && l.contains("tunnel")
    });
}

#[test]
fn ipv6_pod_private_name_resolves_privately() {
    let Some(Setup {
        pipgate,
        world,
        pod,
        port: _,
    }) = setup(true, |toml| toml)
    else {
        return;
    };
    let venv = venv::latest();
    let home = world.scratch("pod-home-");
    let target = world.scratch("pod6-acme-");
    let mut cmd = pod.command(venv, &home, &venv.python());
    cmd.args(["-m", "pip", "install", "--no-deps", "--target"])
        .arg(&target)
        .args(["--index-url", &world.private_index_url()])
        .args(["--extra-index-url", &world.public_index_url(), "acme-lib"])
        .env("PIP_CERT", &pipgate.ca_pem)
        .env("PIP_TIMEOUT", "20")
        .env("PIP_RETRIES", "0");
    let (ok, transcript) = run(cmd);
    assert!(
        ok,
        "pip in the IPv6 pod failed:\n{transcript}\n--- pipgate\n{}",
        pipgate.stderr()
    );
    assert_eq!(
        installed(&target),
        [("acme_lib".to_owned(), "1.0".to_owned())],
        "{transcript}"
    );
    assert!(!world.public_origin().asked_for("acme_lib-99.0"));
    // IP6T_SO_ORIGINAL_DST gave the IPv6 address the pod dialled.
    assert_went_through(&pipgate, &pod);
}
