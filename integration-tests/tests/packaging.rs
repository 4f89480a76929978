//! Checks of `deploy/`: the systemd unit verifies, the Kubernetes manifests parse and wire the
//! proxy, the CA and the probes together, every config key is accepted by the real binary with
//! the documented default, and the Containerfile has its stages and its health check works.
// Test-support helpers abort the test that called them with a message: panicking is how a
// `#[test]` reports that.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pipgate_integration_tests::pipgate::{
    deploy_dir, pipgate_command, transcript as text, Pipgate,
};
use serde_norway::Value as Yaml;

fn read_deploy(rel: &str) -> String {
    let path = deploy_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The CA directory the deploy files name.
const DEPLOY_CA: &str = "/var/lib/pipgate/ca";

/// Runs `pipgate config check` on `toml` (written to `dir/name`). `config check` loads the CA
/// as `run` would, so the deploy files' CA directory is replaced by one `ca init` made in
/// `dir`, and named as the file named it again in what the check printed.
fn config_check(dir: &Path, name: &str, toml: &str) -> Output {
    let ca = dir.join("deploy-ca");
    let path = dir.join(name);
    std::fs::write(&path, toml.replace(DEPLOY_CA, &ca.display().to_string())).unwrap();
    // Made for this file's hosts (its name constraints must cover them); a file that does not
    // load gets the default CA, and the check reports the file's error.
    let init = |config: Option<&Path>| {
        let mut cmd = pipgate_command();
        cmd.args(["ca", "init", "--force", "--dir"]).arg(&ca);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.output().expect("run pipgate ca init")
    };
    if !init(Some(&path)).status.success() {
        let out = init(None);
        assert!(out.status.success(), "ca init: {}", text(&out));
    }
    let mut out = pipgate_command()
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .expect("run pipgate config check");
    out.stdout = String::from_utf8_lossy(&out.stdout)
        .replace(&ca.display().to_string(), DEPLOY_CA)
        .into_bytes();
    out
}

/// The effective config `pipgate config check` printed, parsed; panics if the check failed.
fn effective(dir: &Path, name: &str, toml: &str) -> toml::Table {
    let out = config_check(dir, name, toml);
    assert!(
        out.status.success(),
        "config check of {name} failed: {}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or_default();
    assert!(first.ends_with(": OK"), "unexpected first line {first:?}");
    let body: Vec<&str> = lines.collect();
    toml::from_str(&body.join("\n"))
        .unwrap_or_else(|e| panic!("effective config of {name}: {e}\n{stdout}"))
}

/// Every leaf key as a dotted path (`limits.max_connections`, `index.name`): array-of-table
/// entries are flattened into their table's path, so `[[index]]` keys read `index.KEY`.
fn leaf_keys(table: &toml::Table) -> BTreeMap<String, Vec<toml::Value>> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, Vec<toml::Value>>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            toml::Value::Array(items)
                if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
            {
                for item in items {
                    walk(prefix, item, out);
                }
            }
            other => out
                .entry(prefix.to_owned())
                .or_default()
                .push(other.clone()),
        }
    }
    let mut out = BTreeMap::new();
    walk("", &toml::Value::Table(table.clone()), &mut out);
    out
}

/// A user file made by the real `pipgate passwd` (password on stdin).
fn make_users_file(path: &Path) {
    let mut child = pipgate_command()
        .arg("passwd")
        .arg(path)
        .arg("ci")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pipgate passwd");
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "pipgate passwd: {}", text(&out));
}

/// A deployment config with its absolute deployment paths moved into `dir`, for a config
/// written to `dir` (the users file it names, relative to it, is made there by `pipgate
/// passwd`, with the user `ci`).
fn localize(toml: &str, dir: &Path) -> String {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    if toml.contains("credentials = \"users\"") {
        make_users_file(&dir.join("users"));
    }
    toml.replace("/etc/pipgate/", &format!("{}/", etc.display()))
}

// ---- config files ------------------------------------------------------------------------

/// Keys whose value in config.example.toml is an example rather than the default (the file
/// says so in each comment).
const EXAMPLE_VALUED: &[&str] = &[
    "ca.cert",
    "ca.key",
    "index.name",
    "index.url",
    "index.role",
    "index.file_hosts",
    "policy.private",
];

#[test]
fn config_example_every_key_is_accepted_with_its_documented_default() {
    let dir = tempfile::tempdir().unwrap();
    let example = read_deploy("config.example.toml");
    let example_table: toml::Table = toml::from_str(&example).expect("config.example.toml parses");
    let written = leaf_keys(&example_table);

    // The real binary accepts the whole file (it refuses unknown keys, see the control below).
    let localized = localize(&example, dir.path());
    let eff = leaf_keys(&effective(dir.path(), "example.toml", &localized));
    for key in written.keys() {
        let shown = key.starts_with("upstream.resolve.")
            && eff.keys().any(|k| k.starts_with("upstream.resolve."));
        assert!(
            eff.contains_key(key) || shown,
            "key {key} of config.example.toml is not in the effective config: {eff:#?}"
        );
    }

    // Every key that has a default is documented, with that default as its value.
    let defaults = leaf_keys(&effective(dir.path(), "empty.toml", ""));
    let mut compared = 0;
    for (key, default) in &defaults {
        let Some(value) = written.get(key) else {
            panic!("config.example.toml does not document {key} (default {default:?})");
        };
        if EXAMPLE_VALUED.contains(&key.as_str()) {
            continue;
        }
        // Compare as the binary reads them: "5m" and "300s" are the same duration.
        assert_eq!(
            eff.get(key),
            Some(default),
            "{key}: config.example.toml sets {value:?}, the default is {default:?}"
        );
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} defaults compared");
    // The optional keys without a default are documented too.
    for key in ["admin_listen", "transparent_listen", "access.credentials"] {
        assert!(
            written.contains_key(key),
            "config.example.toml does not document {key}"
        );
    }
    assert!(
        example.contains("[upstream.resolve]"),
        "[upstream.resolve] is not documented"
    );
    println!(
        "config.example.toml: {} keys accepted, {compared} defaults match",
        written.len()
    );
}

#[test]
fn config_check_refuses_an_unknown_key_so_the_example_check_can_fail() {
    let dir = tempfile::tempdir().unwrap();
    let broken = read_deploy("config.example.toml").replace(
        "max_headers = 100",
        "max_headers = 100\nmax_header_count = 100",
    );
    assert!(broken.contains("max_header_count"));
    let out = config_check(dir.path(), "broken.toml", &localize(&broken, dir.path()));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_header_count"),
        "{}",
        text(&out)
    );
}

#[test]
fn gateway_and_sidecar_configs_pass_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = effective(
        dir.path(),
        "gateway.toml",
        &localize(&read_deploy("gateway.toml"), dir.path()),
    );
    assert_eq!(gateway["listen"].as_str(), Some("0.0.0.0:3128"));
    let admin: SocketAddr = gateway["admin_listen"].as_str().unwrap().parse().unwrap();
    assert!(
        admin.ip().is_loopback(),
        "the gateway's admin port must stay on loopback"
    );
    let access = gateway["access"].as_table().unwrap();
    assert!(
        !access["allow_clients"].as_array().unwrap().is_empty(),
        "gateway without allow_clients"
    );
    assert!(
        access.contains_key("credentials"),
        "gateway without credentials"
    );

    let sidecar = effective(dir.path(), "sidecar.toml", &read_deploy("sidecar.toml"));
    let listen: SocketAddr = sidecar["listen"].as_str().unwrap().parse().unwrap();
    assert!(
        listen.ip().is_loopback(),
        "the sidecar's proxy port must stay on loopback"
    );
}

/// Sends `request` on a fresh connection to `addr` and returns everything until the peer closes.
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The peer may close before reading (allow-list): a failed write is an answer too.
    let _ = s.write_all(request.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// deploy/gateway.toml, run for real on loopback ephemeral ports with its CA and users file in
/// `dir`; `extra_clients` are prepended to its allow-list.
fn start_gateway(dir: &Path, extra_clients: &str) -> Pipgate {
    let config = localize(&read_deploy("gateway.toml"), dir)
        .replace("\"0.0.0.0:3128\"", "\"127.0.0.1:0\"")
        .replace("\"127.0.0.1:9090\"", "\"127.0.0.1:0\"")
        .replace("/var/lib/pipgate/ca/", "ca/")
        .replace(
            "allow_clients = [",
            &format!("allow_clients = [{extra_clients}"),
        );
    let parsed: toml::Table = toml::from_str(&config).unwrap();
    assert_eq!(parsed["listen"].as_str(), Some("127.0.0.1:0"));
    Pipgate::start(dir, &config)
}

#[test]
fn gateway_config_refuses_outsiders_and_asks_for_credentials() {
    const CONNECT: &str = "CONNECT unlisted.example:443 HTTP/1.1\r\nHost: unlisted.example:443\r\n";
    let basic = |user_password: &str| {
        use base64::Engine as _;
        format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    };
    // As shipped, loopback is not among the allowed client networks: closed without a word.
    let outside = tempfile::tempdir().unwrap();
    let gateway = start_gateway(outside.path(), "");
    let answer = exchange(gateway.addr, &format!("{CONNECT}\r\n"));
    assert_eq!(answer, "", "a client outside allow_clients got an answer");
    drop(gateway);

    // Inside the allow-list, the credentials file is enforced.
    let inside = tempfile::tempdir().unwrap();
    let gateway = start_gateway(inside.path(), "\"127.0.0.0/8\", ");
    let none = exchange(gateway.addr, &format!("{CONNECT}\r\n"));
    assert!(
        none.starts_with("HTTP/1.1 407 "),
        "without credentials: {none}"
    );
    assert!(none
        .to_ascii_lowercase()
        .contains("proxy-authenticate: basic"));
    let wrong = exchange(gateway.addr, &format!("{CONNECT}{}\r\n", basic("ci:wrong")));
    assert!(
        wrong.starts_with("HTTP/1.1 407 "),
        "wrong password: {wrong}"
    );
    // The user `localize` created: past authentication, the host is refused by policy instead.
    let right = exchange(
        gateway.addr,
        &format!("{CONNECT}{}\r\n", basic("ci:s3cret")),
    );
    assert!(
        right.starts_with("HTTP/1.1 403 "),
        "right password: {right}"
    );
    assert!(
        right.contains("x-pipgate-rule: host-not-allowed"),
        "{right}"
    );
    // The access event names the user the credentials authenticated.
    let line = gateway.access_event("unlisted.example");
    assert!(line.contains(" user=ci "), "{line}");
}

// ---- systemd -----------------------------------------------------------------------------

/// `systemd-analyze verify` on `unit`; None (with the reason printed) when it cannot run here.
fn systemd_verify(unit: &Path) -> Option<Output> {
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            println!("SKIP systemd-analyze verify: systemd-analyze cannot be run ({e})");
            return None;
        }
    };
    Some(out)
}

/// Our unit's lines in `systemd-analyze` output (it may also talk about units of the host).
fn unit_findings(out: &Output, unit_name: &str) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter(|l| l.contains(unit_name))
        .map(str::to_owned)
        .collect()
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let unit = read_deploy("systemd/pipgate.service");
    let directives: Vec<(&str, &str)> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect();
    let has = |key: &str, value: &str| directives.iter().any(|(k, v)| *k == key && *v == value);
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        (
            "ExecStart",
            "/usr/local/bin/pipgate run --config /etc/pipgate/config.toml --log-format json",
        ),
    ] {
        assert!(has(k, v), "pipgate.service lacks {k}={v}");
    }
    assert!(directives
        .iter()
        .any(|(k, v)| *k == "StateDirectory" && v.contains("pipgate")));
    assert!(directives
        .iter()
        .any(|(k, _)| *k == "RestrictAddressFamilies"));

    let Some(sanity) = ({
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("pipgate-probe.service");
        std::fs::write(&probe, "[Service]\nExecStart=/bin/sh -c true\n").unwrap();
        systemd_verify(&probe).map(|out| (out, dir))
    }) else {
        return;
    };
    if !sanity.0.status.success() {
        println!(
            "SKIP systemd-analyze verify: it fails on a trivial unit here: {}",
            text(&sanity.0)
        );
        return;
    }

    // verify insists that ExecStart binaries exist: point the unit at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let bin = pipgate_integration_tests::pipgate::pipgate_bin();
    assert!(bin.exists(), "{} missing", bin.display());
    let local = unit.replace("/usr/local/bin/pipgate", &bin.display().to_string());
    let path = dir.path().join("pipgate.service");
    std::fs::write(&path, &local).unwrap();
    let out = systemd_verify(&path).unwrap();
    let findings = unit_findings(&out, "pipgate.service");
    assert!(
        out.status.success() && findings.is_empty(),
        "systemd-analyze verify: {}",
        text(&out)
    );

    // The same check flags a broken copy, so a clean result above means something.
    let broken_path = dir.path().join("pipgate-broken.service");
    std::fs::write(
        &broken_path,
        local.replace(
            "SystemCallFilter=@system-service",
            "SystemCallFilter=@system-servic\nProtectSystm=strict",
        ),
    )
    .unwrap();
    let broken = systemd_verify(&broken_path).unwrap();
    assert!(
        unit_findings(&broken, "pipgate-broken.service").len() >= 2,
        "a broken unit went unnoticed: {}",
        text(&broken)
    );

    // systemd's own exposure score (0 = locked down, 10 = unprotected); 2.0 or better.
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout).into_owned();
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("");
    println!("systemd-analyze security: {}", overall.trim());
    if overall.is_empty() {
        println!(
            "SKIP systemd-analyze security: no offline report here: {}",
            text(&security)
        );
    } else {
        assert!(
            security.status.success(),
            "exposure above 2.0: {}",
            text(&security)
        );
    }
}

// ---- Kubernetes ----------------------------------------------------------------------------

fn yaml_docs(rel: &str) -> Vec<Yaml> {
    parse_yaml(&read_deploy(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn parse_yaml(text: &str) -> Result<Vec<Yaml>, serde_norway::Error> {
    use serde::Deserialize as _;
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Yaml::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn get<'a>(v: &'a Yaml, path: &[&str]) -> &'a Yaml {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(*key)
            .unwrap_or_else(|| panic!("missing {} in {cur:?}", path.join(".")));
    }
    cur
}

fn str_at<'a>(v: &'a Yaml, path: &[&str]) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a string", path.join(".")))
}

fn seq(v: &Yaml) -> &[Yaml] {
    v.as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

fn kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d.get("kind").and_then(Yaml::as_str) == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} document"))
}

fn env_of(container: &Yaml) -> BTreeMap<String, String> {
    seq(get(container, &["env"]))
        .iter()
        .map(|e| {
            (
                str_at(e, &["name"]).to_owned(),
                str_at(e, &["value"]).to_owned(),
            )
        })
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("{addr}: {e}"))
        .port()
}

/// What both manifests must get right; returns (pod, pipgate container, app container, config).
fn check_pod(rel: &str, dir: &Path) -> (Yaml, Yaml, Yaml, toml::Table) {
    let docs = yaml_docs(rel);
    let config_map = kind(&docs, "ConfigMap");
    let pod = kind(&docs, "Pod").clone();
    assert_eq!(str_at(&pod, &["apiVersion"]), "v1");
    let spec = get(&pod, &["spec"]);
    let all: Vec<&Yaml> = seq(get(spec, &["initContainers"]))
        .iter()
        .chain(seq(get(spec, &["containers"])))
        .collect();
    for c in &all {
        assert!(!str_at(c, &["name"]).is_empty());
        assert!(
            !str_at(c, &["image"]).is_empty(),
            "{rel}: container without image"
        );
    }
    let pipgate = (*all
        .iter()
        .find(|c| str_at(c, &["name"]) == "pipgate")
        .expect("pipgate container"))
    .clone();
    assert!(str_at(&pipgate, &["image"]).starts_with("pipgate"));
    // A native sidecar when it sits among the init containers.
    if seq(get(spec, &["initContainers"])).contains(&pipgate) {
        assert_eq!(
            str_at(&pipgate, &["restartPolicy"]),
            "Always",
            "{rel}: init-container pipgate must be a sidecar"
        );
    }
    let apps = seq(get(spec, &["containers"]));
    assert!(!apps.is_empty(), "{rel}: no application container");
    let app = apps
        .iter()
        .find(|c| str_at(c, &["name"]) != "pipgate")
        .expect("app container")
        .clone();

    // The config in the ConfigMap is one the binary accepts.
    let config_text = str_at(config_map, &["data", "config.toml"]);
    let config = effective(dir, &format!("{rel}.toml").replace('/', "_"), config_text);
    let cm_name = str_at(config_map, &["metadata", "name"]);

    // Volumes: the config from that ConfigMap at /etc/pipgate, the CA from a Secret at
    // /var/lib/pipgate/ca, and the application gets the certificate but never the key.
    let volumes: BTreeMap<&str, &Yaml> = seq(get(spec, &["volumes"]))
        .iter()
        .map(|v| (str_at(v, &["name"]), v))
        .collect();
    let mount = |c: &Yaml, path: &str| -> String {
        let m = seq(get(c, &["volumeMounts"]))
            .iter()
            .find(|m| str_at(m, &["mountPath"]) == path)
            .unwrap_or_else(|| panic!("{rel}: nothing mounted at {path}"));
        str_at(m, &["name"]).to_owned()
    };
    let cfg_vol = volumes[mount(&pipgate, "/etc/pipgate").as_str()];
    assert_eq!(str_at(cfg_vol, &["configMap", "name"]), cm_name);
    let ca_vol = volumes[mount(&pipgate, "/var/lib/pipgate/ca").as_str()];
    let secret = str_at(ca_vol, &["secret", "secretName"]);
    let ca = config["ca"].as_table().unwrap();
    assert_eq!(ca["cert"].as_str(), Some("/var/lib/pipgate/ca/ca.pem"));
    assert_eq!(ca["key"].as_str(), Some("/var/lib/pipgate/ca/ca.key"));
    assert!(seq(get(&pipgate, &["args"]))
        .iter()
        .any(|a| a.as_str() == Some("/etc/pipgate/config.toml")));

    // The application's CA variables all name a file in a volume holding only ca.pem.
    let env = env_of(&app);
    let mut ca_files = Vec::new();
    for name in ["PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"] {
        let value = env
            .get(name)
            .unwrap_or_else(|| panic!("{rel}: app env lacks {name}"));
        ca_files.push(value.clone());
    }
    ca_files.dedup();
    assert_eq!(
        ca_files.len(),
        1,
        "{rel}: the CA variables disagree: {ca_files:?}"
    );
    let (dir_part, file) = ca_files[0].rsplit_once('/').unwrap();
    let app_vol = volumes[mount(&app, dir_part).as_str()];
    assert_eq!(str_at(app_vol, &["secret", "secretName"]), secret);
    let items = seq(get(app_vol, &["secret", "items"]));
    assert_eq!(
        items.len(),
        1,
        "{rel}: the app's CA volume must hold the certificate only"
    );
    assert_eq!(str_at(&items[0], &["key"]), "ca.pem");
    assert_eq!(str_at(&items[0], &["path"]), file);

    // Probes hit the admin port pipgate really listens on.
    let admin_port = port_of(config["admin_listen"].as_str().expect("admin_listen"));
    let ports = seq(get(&pipgate, &["ports"]));
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let http = get(&pipgate, &[probe, "httpGet"]);
        assert_eq!(str_at(http, &["path"]), path);
        let port = match get(http, &["port"]) {
            Yaml::Number(n) => n.as_u64().unwrap(),
            Yaml::String(name) => ports
                .iter()
                .find(|p| str_at(p, &["name"]) == name)
                .and_then(|p| get(p, &["containerPort"]).as_u64())
                .unwrap_or_else(|| panic!("{rel}: {probe} names unknown port {name}")),
            other => panic!("{rel}: {probe} port {other:?}"),
        };
        assert_eq!(
            port,
            u64::from(admin_port),
            "{rel}: {probe} misses admin_listen"
        );
    }
    (pod, pipgate, app, config)
}

#[test]
fn kubernetes_sidecar_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, app, config) = check_pod("kubernetes/sidecar.yaml", dir.path());
    let env = env_of(&app);
    let proxy = env.get("HTTPS_PROXY").expect("HTTPS_PROXY");
    assert_eq!(
        proxy,
        &format!("http://{}", config["listen"].as_str().unwrap()),
        "HTTPS_PROXY misses listen"
    );
    // The ConfigMap carries deploy/sidecar.toml (same effective config).
    let file = effective(dir.path(), "sidecar.toml", &read_deploy("sidecar.toml"));
    assert_eq!(
        file, config,
        "sidecar.yaml's ConfigMap differs from deploy/sidecar.toml"
    );
}

#[test]
fn kubernetes_transparent_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (pod, pipgate, app, config) = check_pod("kubernetes/sidecar-transparent.yaml", dir.path());
    assert!(
        !env_of(&app).contains_key("HTTPS_PROXY"),
        "transparent: the app needs no HTTPS_PROXY"
    );
    let uid = get(&pipgate, &["securityContext", "runAsUser"])
        .as_u64()
        .expect("pipgate runAsUser");
    let app_uid = get(&app, &["securityContext", "runAsUser"])
        .as_u64()
        .expect("app runAsUser");
    assert_ne!(
        uid, app_uid,
        "the app must not share pipgate's UID (its traffic would skip the redirect)"
    );
    // Nor may it hold NET_ADMIN, with which it could drop the redirect.
    let app_caps = get(&app, &["securityContext", "capabilities"]);
    assert!(app_caps.get("add").is_none(), "the app adds capabilities");
    assert!(
        seq(get(app_caps, &["drop"]))
            .iter()
            .any(|c| c.as_str() == Some("ALL")),
        "the app keeps its default capabilities"
    );

    let transparent = config
        .get("transparent_listen")
        .and_then(toml::Value::as_str)
        .expect("the transparent ConfigMap sets transparent_listen");
    let to_port = port_of(transparent);
    let init = seq(get(&pod, &["spec", "initContainers"]))
        .iter()
        .find(|c| str_at(c, &["name"]) != "pipgate")
        .expect("redirect init container");
    assert!(
        init.get("restartPolicy").is_none(),
        "the redirect init container must run once and exit"
    );
    let caps: Vec<&str> = seq(get(init, &["securityContext", "capabilities", "add"]))
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        caps.contains(&"NET_ADMIN"),
        "the redirect needs NET_ADMIN: {caps:?}"
    );
    let script: String = seq(get(init, &["args"]))
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        script.contains(&format!("--uid-owner {uid} -j RETURN")),
        "pipgate's own traffic is not exempt:\n{script}"
    );
    for dport in [443, 80] {
        assert!(
            script.contains(&format!("--dport {dport} -j REDIRECT --to-ports {to_port}")),
            "port {dport} is not redirected to {to_port}:\n{script}"
        );
    }
    // REDIRECT of locally originated traffic lands on loopback: the listener must be there.
    let addr: SocketAddr = transparent.parse().unwrap();
    assert!(addr.ip().is_loopback() || addr.ip().is_unspecified());
    // The init image runs its args with `sh -c` (no command in the manifest).
    assert!(init.get("command").is_none());
    let file = read_deploy("Containerfile");
    let stage: Vec<String> = instructions(&file)
        .into_iter()
        .skip_while(|i| !(i.starts_with("FROM ") && i.ends_with(" AS net-init")))
        .take_while(|i| !i.starts_with("FROM ") || i.ends_with(" AS net-init"))
        .collect();
    assert!(
        stage.iter().any(|i| i == r#"ENTRYPOINT ["/bin/sh", "-c"]"#),
        "net-init stage: {stage:?}"
    );
    assert!(stage
        .iter()
        .any(|i| i.contains("install") && i.contains("iptables")));

    // And the script really installs those rules (in a namespace of its own).
    let Some(out) = run_in_fresh_netns(&script) else {
        return;
    };
    assert!(
        out.status.success(),
        "redirect script failed: {}",
        text(&out)
    );
    let rules = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = rules.lines().collect();
    assert!(
        lines.contains(&"-A OUTPUT -p tcp -j PIPGATE"),
        "no jump to PIPGATE:\n{rules}"
    );
    let pos = |pred: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .position(|l| l.starts_with("-A PIPGATE") && pred(l))
    };
    let exempt = pos(&|l| l.contains(&format!("--uid-owner {uid}")) && l.ends_with("-j RETURN"))
        .unwrap_or_else(|| panic!("no UID exemption:\n{rules}"));
    for dport in [443, 80] {
        let redirect = pos(&|l| {
            l.contains(&format!("--dport {dport} "))
                && l.ends_with(&format!("-j REDIRECT --to-ports {to_port}"))
        })
        .unwrap_or_else(|| panic!("no redirect of {dport}:\n{rules}"));
        assert!(exempt < redirect, "the exemption must come first:\n{rules}");
    }
    println!("redirect rules installed in a fresh netns:\n{rules}");
}

/// Runs `script` with `sh -c` in a new network namespace (`unshare --net`), so the host's
/// rules are never touched, then lists the nat OUTPUT chain. None (with the reason printed)
/// when namespaces or iptables are not available here.
fn run_in_fresh_netns(script: &str) -> Option<Output> {
    let probe = Command::new("unshare")
        .args(["--net", "iptables", "-t", "nat", "-S", "OUTPUT"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            println!(
                "SKIP redirect script: no iptables in a new netns here: {}",
                text(&out)
            );
            return None;
        }
        Err(e) => {
            println!("SKIP redirect script: cannot run unshare ({e})");
            return None;
        }
    }
    let full = format!("{script}\niptables -t nat -S OUTPUT\n");
    Some(
        Command::new("unshare")
            .args(["--net", "/bin/sh", "-c"])
            .arg(full)
            .output()
            .unwrap(),
    )
}

#[test]
fn yaml_parser_rejects_broken_manifests() {
    let good = read_deploy("kubernetes/sidecar.yaml");
    assert!(parse_yaml(&good).is_ok());
    // A mis-indented key and an unclosed flow sequence are both refused.
    let misindented = good.replacen(
        "      image: pipgate:latest\n      restartPolicy",
        "      image: pipgate:latest\n     restartPolicy",
        1,
    );
    assert_ne!(misindented, good);
    assert!(
        parse_yaml(&misindented).is_err(),
        "mis-indented YAML parsed"
    );
    let unclosed = good.replacen(
        "capabilities:\n          drop: [\"ALL\"]",
        "capabilities:\n          drop: [\"ALL\"",
        1,
    );
    assert_ne!(unclosed, good);
    assert!(parse_yaml(&unclosed).is_err(), "unclosed sequence parsed");
}

// ---- Containerfile ---------------------------------------------------------------------------

/// Instructions with continuation lines joined; comments dropped.
fn instructions(containerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in containerfile.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(t);
            out.push(std::mem::take(&mut cur));
        }
    }
    out
}

#[test]
fn containerfile_stages_user_expose_healthcheck() {
    let file = read_deploy("Containerfile");
    let ins = instructions(&file);
    let froms: Vec<&String> = ins.iter().filter(|i| i.starts_with("FROM ")).collect();
    // Nothing is compiled in the image: it takes the binary `cargo xtask dist` wrote.
    assert!(
        !froms.iter().any(|f| f.contains("rust:")),
        "a Rust builder stage: {froms:?}"
    );
    assert!(!ins.iter().any(|i| i.contains("cargo build")));
    let last = froms.last().unwrap();
    assert!(
        last.contains("debian:") && last.contains("-slim"),
        "runtime stage: {last}"
    );
    assert!(file.contains("cargo xtask dist && docker build -f deploy/Containerfile"));
    let runtime: Vec<&String> = ins.iter().skip_while(|i| i != last).collect();
    let user = runtime
        .iter()
        .find(|i| i.starts_with("USER "))
        .expect("USER in the runtime stage");
    let uid = user.trim_start_matches("USER ").split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runs as root: {user}");
    assert!(runtime
        .iter()
        .any(|i| i == &"COPY --chmod=0755 dist/pipgate /usr/local/bin/pipgate"));
    assert!(runtime
        .iter()
        .any(|i| i.starts_with("VOLUME ") && i.contains("/var/lib/pipgate/ca")));
    assert!(runtime.iter().any(|i| i.starts_with("CMD ")
        && i.contains("\"run\", \"--config\", \"/etc/pipgate/config.toml\"")));
    // The baked-in config is deploy/sidecar.toml: EXPOSE its ports.
    assert!(runtime
        .iter()
        .any(|i| i == &"COPY deploy/sidecar.toml /etc/pipgate/config.toml"));
    let sidecar: toml::Table = toml::from_str(&read_deploy("sidecar.toml")).unwrap();
    let expose = runtime
        .iter()
        .find(|i| i.starts_with("EXPOSE "))
        .expect("EXPOSE");
    for key in ["listen", "admin_listen"] {
        let port = port_of(sidecar[key].as_str().unwrap());
        assert!(
            expose
                .split_whitespace()
                .any(|p| p == format!("{port}/tcp")),
            "{expose} lacks {key} port {port}"
        );
    }
    let hc = healthcheck_command(&file);
    assert!(hc.contains(&format!(
        "/dev/tcp/127.0.0.1/{}",
        port_of(sidecar["admin_listen"].as_str().unwrap())
    )));
}

/// The shell command of the Containerfile's HEALTHCHECK.
fn healthcheck_command(containerfile: &str) -> String {
    let ins = instructions(containerfile);
    let hc = ins
        .iter()
        .find(|i| i.starts_with("HEALTHCHECK "))
        .expect("HEALTHCHECK");
    let (_, cmd) = hc.split_once(" CMD ").expect("HEALTHCHECK ... CMD");
    cmd.trim().to_owned()
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn healthcheck_command_passes_against_the_baked_in_config_and_fails_without_pipgate() {
    if Command::new("bash")
        .arg("-c")
        .arg("true")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        println!("SKIP health check: no bash here (the runtime image has it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The image's own config, with ephemeral loopback ports and the CA in the harness's place.
    let config = read_deploy("sidecar.toml")
        .replace("\"127.0.0.1:3128\"", "\"127.0.0.1:0\"")
        .replace("\"0.0.0.0:9090\"", "\"127.0.0.1:0\"")
        .replace("/var/lib/pipgate/ca/", "ca/");
    let parsed: toml::Table = toml::from_str(&config).unwrap();
    for key in ["listen", "admin_listen"] {
        assert_eq!(
            parsed[key].as_str(),
            Some("127.0.0.1:0"),
            "{key} not replaced:\n{config}"
        );
    }
    let pipgate = Pipgate::start(dir.path(), &config);
    let admin = pipgate.admin.expect("admin listener");
    // Readiness is set just after the listeners announce themselves: allow it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut ready = http_get(admin, "/readyz");
    while !ready.starts_with("HTTP/1.1 200") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        ready = http_get(admin, "/readyz");
    }
    assert!(ready.starts_with("HTTP/1.1 200"), "/readyz: {ready}");

    let template = healthcheck_command(&read_deploy("Containerfile"));
    let run = |port: u16| {
        let cmd = template.replace(
            "/dev/tcp/127.0.0.1/9090",
            &format!("/dev/tcp/127.0.0.1/{port}"),
        );
        assert_ne!(cmd, template);
        Command::new("sh").arg("-c").arg(&cmd).output().unwrap()
    };
    let up = run(admin.port());
    assert!(
        up.status.success(),
        "health check failed against a running pipgate: {}",
        text(&up)
    );
    // Nothing listening: the same command must fail.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = run(closed);
    assert!(
        !down.status.success(),
        "health check passed with nothing listening"
    );
    // Something listening that is not healthy (answers 404): fails too.
    let not_found = run(pipgate.addr.port());
    assert!(
        !not_found.status.success(),
        "health check passed against the proxy port"
    );
    drop(pipgate);
}
