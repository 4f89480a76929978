//! The operator's view (issue 17): `/decisions`, `/explain`, the dashboard in headless
//! Chromium, the metrics an operator alerts on, and logs a shipper can parse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use pipgate_integration_tests::probe::{http_get, raw_exchange};
use pipgate_integration_tests::world::{World, PUBLIC_HOST};

/// Blocks acme-lib (private) once through the world's pipgate.
fn block_acme(world: &World) {
    let r = world
        .probe()
        .get(&format!("https://{PUBLIC_HOST}/simple/acme-lib/"));
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn decisions_and_explain_answer_as_json_and_text() {
    let world = World::start();
    let p = world.pipgate();
    let admin = p.admin.unwrap();
    let empty = http_get(admin, "/decisions");
    assert_eq!(empty.status, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&empty.body).unwrap(),
        serde_json::json!([])
    );
    block_acme(&world);
    block_acme(&world);
    let r = http_get(admin, "/decisions?limit=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .headers
        .get("content-type")
        .is_some_and(|v| v == "application/json"));
    let all: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(all.len(), 1, "limit=1: {all:?}");
    let d = &all[0];
    assert_eq!(d["action"], "block");
    assert_eq!(d["rule"], "private-index");
    assert_eq!(d["name"], "acme-lib");
    assert_eq!(d["index"], "pypi");
    assert_eq!(d["status"], 404);
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("private index 'corp'"),
        "{d}"
    );
    let two: Vec<serde_json::Value> =
        serde_json::from_slice(&http_get(admin, "/decisions?limit=10").body).unwrap();
    assert_eq!(two.len(), 2);
    assert!(
        two[0]["time"].as_str() >= two[1]["time"].as_str(),
        "newest first"
    );
    let bad = http_get(admin, "/decisions?limit=many");
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("limit=many"), "{}", bad.text());

    let e = http_get(admin, "/explain?name=Acme_Lib");
    assert_eq!(e.status, 200);
    assert!(
        e.text().contains("served by private index 'corp'"),
        "{}",
        e.text()
    );
    assert_eq!(http_get(admin, "/explain").status, 400);
    assert_eq!(http_get(admin, "/explain?name=a%2Fb").status, 400);

    // HEAD /healthz answers like GET, without a body.
    let raw = raw_exchange(
        admin,
        b"HEAD /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
    );
    let head = String::from_utf8_lossy(&raw);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head:?}");
}

/// The dashboard is one self-contained page; in headless Chromium it renders the recent blocks
/// (the DOM has the row, and the screenshot has the block rows' red).
#[test]
fn dashboard_renders_recent_blocks_in_chromium() {
    let world = World::start();
    let p = world.pipgate();
    let admin = p.admin.unwrap();
    block_acme(&world);
    let page = http_get(admin, "/");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("acme-lib"), "{html}");
    // Self-contained: nothing to fetch from anywhere.
    for external in ["src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(external), "{external}: {html}");
    }
    assert!(page
        .headers
        .get("content-security-policy")
        .is_some_and(|v| v.to_str().unwrap().starts_with("default-src 'none'")));
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is missing (scripts/setup-system.sh installs it)");
        }
        eprintln!("skipped: no chromium");
        return;
    };
    let dir = world.scratch("chromium-");
    let url = format!("http://{admin}/");
    let chrome = |args: &[&str]| {
        let out = Command::new(chromium)
            .env_clear()
            .env("HOME", &dir)
            .env("PATH", "/usr/bin:/bin")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .args(args)
            .arg(&url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        out
    };
    let dom = String::from_utf8_lossy(&chrome(&["--dump-dom"]).stdout).into_owned();
    assert!(dom.contains("<table id=\"recent\">"), "{dom}");
    assert!(dom.contains("<td>acme-lib</td>"), "{dom}");
    let shot = dir.join("dashboard.png");
    chrome(&[&format!("--screenshot={}", shot.display())]);
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    // The block rows' action cell is drawn in #b31d28: a rendered table has its pixels.
    let red = buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|px| {
            px.len() >= 3
                && (px[0] as i32 - 0xb3).abs() < 24
                && (px[1] as i32 - 0x1d).abs() < 24
                && (px[2] as i32 - 0x28).abs() < 24
        })
        .count();
    assert!(
        red > 20,
        "the screenshot shows no block row ({red} red pixels, {}x{})",
        info.width,
        info.height
    );
    std::fs::copy(&shot, world.scratch("keep-").join("dashboard.png")).ok();
}

#[test]
fn metrics_an_operator_alerts_on() {
    let world = World::start();
    let p = world.pipgate();
    block_acme(&world);
    let ok = world
        .probe()
        .get(&format!("https://{PUBLIC_HOST}/simple/pubdep/"));
    assert_eq!(ok.status, 200);
    // A CONNECT to a host that is neither an index nor allowed.
    let refused = raw_exchange(
        p.addr,
        b"CONNECT nowhere.example:443 HTTP/1.1\r\nHost: nowhere.example:443\r\n\r\n",
    );
    assert!(String::from_utf8_lossy(&refused).starts_with("HTTP/1.1 403"));
    // A client that does not trust pipgate's CA (curl, OpenSSL: alert unknown_ca), and one
    // that speaks TLS to the proxy port.
    // (curl is installed by scripts/setup-system.sh.)
    let curl = |args: &[&str]| {
        Command::new("curl")
            .env_clear()
            .args(["-sS", "--max-time", "10"])
            .args(args)
            .output()
            .expect("run curl")
    };
    let out = curl(&[
        "--proxy",
        &p.proxy_url(),
        "--cacert",
        "/etc/ssl/certs/ca-certificates.crt",
        &format!("https://{PUBLIC_HOST}/simple/"),
    ]);
    assert!(!out.status.success(), "{out:?}");
    let _ = curl(&[
        "--proxy",
        &format!("https://{}", p.addr),
        "--proxy-insecure",
        &format!("https://{PUBLIC_HOST}/simple/"),
    ]);
    let warn = p.log_line("CA rejection", |l| {
        l.contains("rejected pipgate's certificate")
    });
    assert!(warn.contains("level=warn"), "{warn}");
    assert!(warn.contains("PIP_CERT="), "{warn}");
    let tls = p.log_line("TLS to the proxy port", |l| {
        l.contains("speaks TLS to the proxy port")
    });
    assert!(tls.contains("HTTPS_PROXY=http://"), "{tls}");
    let metrics = p.wait_admin("/metrics", 10, |_, t| {
        t.contains("pipgate_client_tls_failures_total{alert=\"unknown_ca\"} 1")
    });
    for want in [
        "pipgate_build_info{version=\"",
        "pipgate_config_last_reload_successful 1",
        "pipgate_config_last_reload_success_timestamp_seconds ",
        "pipgate_refusals_total{listener=\"proxy\",reason=\"host-not-allowed\"} 1",
        "pipgate_refusals_total{listener=\"proxy\",reason=\"tls-to-proxy-port\"} 1",
        "pipgate_request_duration_seconds_bucket{kind=\"page\",status_class=\"4xx\",le=\"+Inf\"} 1",
        "pipgate_request_duration_seconds_count{kind=\"page\",status_class=\"2xx\"} 1",
        "pipgate_bytes_served_total{kind=\"page\"} ",
        "pipgate_proxy_auth_failures_total",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(metrics.contains(want), "{want}:\n{metrics}");
    }
    let rss: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss > 1e6 && rss < 1e9, "{rss}");
    // Every series line is `name{labels} value` with a number for a value.
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit_once(' ').map(|(_, v)| v).unwrap_or_default();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

/// Text logs are logfmt; the JSON form's access event has a message like every other.
#[test]
fn logs_are_logfmt_and_json_with_messages() {
    let world = World::start();
    block_acme(&world);
    let p = world.pipgate();
    let line = p.log_line("access", |l| {
        l.contains("target=pipgate::access") && l.contains("/simple/acme-lib/")
    });
    let pairs = logfmt(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("level"), Some("info"));
    assert_eq!(
        get("msg"),
        Some("GET pypi.org/simple/acme-lib/ 404 block"),
        "{line}"
    );
    assert_eq!(get("rule"), Some("private-index"));
    assert!(
        get("reason").unwrap().contains("private index 'corp'"),
        "{line}"
    );
    let ms = get("duration_ms").unwrap();
    assert!(
        ms.split('.').nth(1).is_none_or(|f| f.len() <= 3),
        "µs: {ms}"
    );
    // Every line of the log parses.
    for l in p.stderr().lines().filter(|l| !l.is_empty()) {
        logfmt(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }

    let config = world.pipgate_config();
    let json = world.start_pipgate_with_args(&config, &["--log-format", "json"]);
    let r = pipgate_integration_tests::probe::Probe::new(json.addr, &json.ca_pem)
        .get(&format!("https://{PUBLIC_HOST}/simple/acme-lib/"));
    assert_eq!(r.status, 404);
    let line = json.log_line("json access", |l| {
        l.contains("\"target\":\"pipgate::access\"")
    });
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        v["message"], "GET pypi.org/simple/acme-lib/ 404 block",
        "{line}"
    );
}

/// `key=value` pairs of a logfmt line (values bare, or quoted with `\` escapes).
fn logfmt(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ' ')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            return Err(format!("no key=value at {key:?}"));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.push(chars.next().ok_or("dangling escape")?),
                    Some(c) => value.push(c),
                    None => return Err("unterminated quote".into()),
                }
            }
            if chars.peek().is_some_and(|c| *c != ' ') {
                return Err(format!("junk after the quoted value of {key}"));
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ' ')).collect();
            if value.contains('"') || value.contains('=') {
                return Err(format!("unquoted value of {key} holds a quote or '='"));
            }
        }
        out.push((key, value));
    }
}
