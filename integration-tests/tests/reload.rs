//! Issue 6, live changes: a reload changes `policy.private` while a client loops, the new rule
//! applies to new requests without a failed request, and a bad config leaves the old in force.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipgate_integration_tests::probe::{http_get, Probe};
use pipgate_integration_tests::world::{World, PUBLIC_HOST};

/// The pid of the pipgate process running with `config` (not its wrapper shell).
fn pipgate_pid(config: &std::path::Path) -> Option<u32> {
    let needle = config.display().to_string();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid: u32 = match entry.file_name().to_string_lossy().parse() {
            Ok(p) => p,
            Err(_) => continue,
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if comm.trim() == "pipgate" && String::from_utf8_lossy(&cmdline).contains(&needle) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn reload_applies_new_policy_atomically_without_failed_requests() {
    let world = World::start();
    let cfg = world.pipgate_config();
    let p = world.start_pipgate(&cfg);
    let probe = Probe::new(p.addr, &p.ca_pem);
    let url = format!("https://{PUBLIC_HOST}/simple/pubdep/");
    assert_eq!(probe.get(&url).status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let looper = {
        let (stop, seen, probe, url) = (stop.clone(), seen.clone(), probe.clone(), url.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let r = match probe.send(Probe::request("GET", &url)) {
                    Ok(r) => (r.status, r.text()),
                    Err(e) => (0, e),
                };
                seen.lock().unwrap().push(r);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // The new policy makes pubdep private.
    let mut private = cfg.clone();
    private.private_patterns.push("pubdep".into());
    std::fs::write(&p.config_path, private.to_toml()).unwrap();
    let (status, text) = p.reload();
    assert_eq!(status, 200, "{text}");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    looper.join().unwrap();

    let seen = seen.lock().unwrap().clone();
    let statuses: Vec<u16> = seen.iter().map(|(s, _)| *s).collect();
    assert!(
        seen.iter().all(|(s, _)| *s == 200 || *s == 404),
        "every request answered by one policy or the other: {seen:?}"
    );
    let first_block = statuses
        .iter()
        .position(|s| *s == 404)
        .expect("the new rule applied");
    assert!(first_block > 0, "the old rule served before the reload");
    assert!(
        statuses[first_block..].iter().all(|s| *s == 404),
        "once reloaded, the old policy never answers again: {statuses:?}"
    );
    assert!(
        seen[first_block].1.contains("pubdep") && seen[first_block].1.contains("private"),
        "{}",
        seen[first_block].1
    );
    eprintln!(
        "{} requests: {} under the old policy, {} under the new",
        statuses.len(),
        first_block,
        statuses.len() - first_block
    );

    // A broken config is rejected, naming the key; the last good one stays in force.
    std::fs::write(
        &p.config_path,
        format!("{}\nbogus_key = 1\n", private.to_toml()),
    )
    .unwrap();
    let (status, text) = p.reload();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("bogus_key"), "{text}");
    assert_eq!(
        probe.get(&url).status,
        404,
        "the reloaded policy is still in force"
    );
    let metrics = http_get(p.admin.unwrap(), "/metrics").text();
    assert!(metrics.contains("pipgate_reloads_total 1"), "{metrics}");
    assert!(
        metrics.contains("pipgate_reload_failures_total 1"),
        "{metrics}"
    );

    // SIGHUP reloads too: back to the original policy.
    std::fs::write(&p.config_path, cfg.to_toml()).unwrap();
    let pid = pipgate_pid(&p.config_path).expect("find pipgate's pid");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut last = 0;
    for _ in 0..50 {
        last = probe.get(&url).status;
        if last == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last, 200, "SIGHUP applied the original policy again");
}

#[test]
fn readyz_and_healthz() {
    let world = World::start();
    let p = world.pipgate();
    let admin = p.admin.expect("admin");
    assert_eq!(http_get(admin, "/healthz").status, 200);
    let ready = http_get(admin, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(http_get(admin, "/nope").status, 404);
}
