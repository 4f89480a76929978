//! Issue 20: the caching gateway. A public or private download is stored on its first request
//! (verified against the sha256 its page advertised), answered from disk after that (after a
//! restart too, and with the origin down), hashed again before it is served whenever it
//! changed since pipgate last hashed it, evicted least-recently-used
//! beyond `max_size`, fetched once however many clients ask at once, and never served when the
//! current policy refuses it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use pipgate_integration_tests::origin::RunningOrigin;
use pipgate_integration_tests::pipgate::Pipgate;
use pipgate_integration_tests::probe::{http_get, unused_addr, Probe};
use pipgate_integration_tests::world::{Published, World, WorldConfig, PRIVATE_HOST};

fn metric(admin: std::net::SocketAddr, series: &str) -> u64 {
    let text = http_get(admin, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The world's config with a cache in `dir` (and `more` TOML in `[policy]`).
fn cached(world: &World, dir: &Path, max_size: Option<u64>, more: &str) -> WorldConfig {
    let mut config = world.pipgate_config();
    config.rules.push_str(more);
    config.rules.push_str(&format!(
        "\n[cache]\ndir = {:?}\n",
        dir.display().to_string()
    ));
    if let Some(max) = max_size {
        config.rules.push_str(&format!("max_size = {max}\n"));
    }
    config
}

/// How many times the public origin was asked for `f` itself (its page lookups aside).
fn fetches(world: &World, f: &Published) -> usize {
    let path = f.path();
    world
        .public_origin()
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .count()
}

fn get(p: &Pipgate, f: &Published) -> Vec<u8> {
    let resp = Probe::new(p.addr, &p.ca_pem).get(&f.url);
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.body
}

/// The stored file of `f`, once its commit (which follows the download's end) is done.
fn stored(dir: &Path, f: &Published) -> PathBuf {
    let path = entry(dir, f);
    for _ in 0..100 {
        if path.exists() {
            return path;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{} was not stored", f.filename)
}

/// Where `f` is stored.
fn entry(dir: &Path, f: &Published) -> PathBuf {
    dir.join("v1/files").join(&f.sha256[..2]).join(&f.sha256)
}

#[test]
fn a_file_is_fetched_once_and_served_from_disk_after_a_restart_and_with_the_origin_down() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let config = cached(&world, &dir, None, "");
    let f = world.file("pubdep", "1.0").clone();

    let p = world.start_pipgate(&config);
    assert_eq!(get(&p, &f), f.bytes);
    stored(&dir, &f);
    assert_eq!(get(&p, &f), f.bytes);
    assert_eq!(
        fetches(&world, &f),
        1,
        "the second download came from the cache"
    );
    let miss = p.log_line("the first download's access line", |l| {
        l.contains("pipgate::access") && l.contains(&f.path()) && l.contains("cache=miss")
    });
    assert!(miss.contains("status=200"), "{miss}");
    p.log_line("the second download's access line", |l| {
        l.contains("pipgate::access") && l.contains(&f.path()) && l.contains("cache=hit")
    });
    let admin = p.admin.unwrap();
    assert_eq!(metric(admin, "pipgate_cache_hits_total"), 1);
    assert_eq!(metric(admin, "pipgate_cache_misses_total"), 1);
    assert_eq!(
        metric(admin, "pipgate_cache_served_bytes_total"),
        f.bytes.len() as u64
    );
    assert_eq!(
        metric(admin, "pipgate_cache_size_bytes"),
        f.bytes.len() as u64
    );
    // A hit is a verified download like any other.
    assert_eq!(
        metric(admin, "pipgate_download_hashes_total{result=\"verified\"}"),
        2
    );

    // HEAD and a range, from disk.
    let probe = Probe::new(p.addr, &p.ca_pem);
    let head = probe.send(Probe::request("HEAD", &f.url)).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), f.bytes.len().to_string());
    let range = probe
        .send(Probe::request("GET", &f.url).header("Range", "bytes=10-19"))
        .unwrap();
    assert_eq!(range.status, 206);
    assert_eq!(range.body, &f.bytes[10..20]);
    assert_eq!(
        range.header("content-range"),
        format!("bytes 10-19/{}", f.bytes.len())
    );
    // Over HTTP/2 too.
    let h2 = probe.clone().h2().get(&f.url);
    assert_eq!((h2.status, &h2.body), (200, &f.bytes));
    assert_eq!(fetches(&world, &f), 1);

    // A restart: the entry is still there.
    drop(p);
    let p = world.start_pipgate(&config);
    assert_eq!(get(&p, &f), f.bytes);
    assert_eq!(fetches(&world, &f), 1, "served from disk after a restart");
    p.log_line("the download after the restart", |l| {
        l.contains("pipgate::access") && l.contains(&f.path()) && l.contains("cache=hit")
    });

    // The public origin unreachable (its page cannot be looked up either): the file is still
    // served, found by its URL.
    drop(p);
    let mut down = config.clone();
    down.public_addr = unused_addr();
    let p = world.start_pipgate(&down);
    assert_eq!(get(&p, &f), f.bytes);
    // A file never cached is not: the usual failure.
    let other = world.file("pubpkg", "1.0");
    let resp = Probe::new(p.addr, &p.ca_pem).get(&other.url);
    assert!(resp.status >= 500, "{}", resp.status);

    // `pipgate cache stats` and `purge NAME` read the directory.
    let stats = pipgate_cli(&p, &["cache", "stats"]);
    assert!(
        stats.contains("files = 1") && stats.contains("pubdep"),
        "{stats}"
    );
    let purged = pipgate_cli(&p, &["cache", "purge", "PubDep"]);
    assert!(purged.contains("purged 1 files"), "{purged}");
    assert!(!entry(&dir, &f).exists());
}

/// Runs `pipgate ARGS --config <p's config>`; its stdout.
fn pipgate_cli(p: &Pipgate, args: &[&str]) -> String {
    let out = pipgate_integration_tests::pipgate::pipgate_command()
        .args(args)
        .arg("--config")
        .arg(&p.config_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Flips a byte in the middle of the stored file of `f`.
fn corrupt(dir: &Path, f: &Published) {
    let path = stored(dir, f);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}

/// Waits until the stored file of `f` is whole again.
fn stored_whole(dir: &Path, f: &Published) {
    for _ in 0..100 {
        if std::fs::read(entry(dir, f)).ok().as_ref() == Some(&f.bytes) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{} was not stored again", f.filename)
}

#[test]
fn a_corrupted_entry_is_refetched_never_served() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let config = cached(&world, &dir, None, "");
    let p = world.start_pipgate(&config);
    let f = world.file("pubdep", "1.0").clone();
    assert_eq!(get(&p, &f), f.bytes);

    // Served once it has settled (its change time is past the racy window): stamped, so later
    // serves send it unhashed while it is unchanged.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(get(&p, &f), f.bytes);
    assert_eq!(fetches(&world, &f), 1);
    // Damaged while pipgate runs: the write changed the file's change time, so the next serve
    // hashes it before sending a byte, removes it and fetches it again for the same request.
    corrupt(&dir, &f);
    assert_eq!(get(&p, &f), f.bytes, "the flipped byte was not served");
    p.log_line("the damaged entry's warning", |l| {
        l.contains("does not have its sha256")
    });
    assert_eq!(fetches(&world, &f), 2, "it was fetched again");
    stored_whole(&dir, &f);
    // Whole again and unchanged since: served from disk without a fetch.
    assert_eq!(get(&p, &f), f.bytes);
    assert_eq!(fetches(&world, &f), 2);

    // Damaged while pipgate was down: the first serve after the start hashes the file before
    // sending any of it, so the same request fetches it again, whole.
    drop(p);
    corrupt(&dir, &f);
    let p = world.start_pipgate(&config);
    assert_eq!(get(&p, &f), f.bytes, "the flipped byte was not served");
    assert_eq!(fetches(&world, &f), 3);
    p.log_line("the damaged entry's warning", |l| {
        l.contains("does not have its sha256")
    });
    stored_whole(&dir, &f);
    assert_eq!(get(&p, &f), f.bytes);
    assert_eq!(fetches(&world, &f), 3);
}

/// The bytes of `f` with one bit flipped.
fn tampered(f: &Published) -> Vec<u8> {
    let mut bytes = f.bytes.clone();
    bytes[3] ^= 0x01;
    bytes
}

/// Makes `origin` answer `bytes` for `f`.
fn serve(origin: &RunningOrigin, f: &Published, bytes: Vec<u8>) {
    origin.set_route(&f.path(), 200, "application/octet-stream", &[], bytes);
}

#[test]
fn a_tampered_download_is_never_stored() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let p = world.start_pipgate(&cached(&world, &dir, None, ""));
    let f = world.file("pubdep", "1.0").clone();
    serve(world.public_origin(), &f, tampered(&f));
    let cut = Probe::new(p.addr, &p.ca_pem).send(Probe::request("GET", &f.url));
    assert!(cut.is_err(), "{:?}", cut.map(|r| r.status));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!entry(&dir, &f).exists());
    assert_eq!(metric(p.admin.unwrap(), "pipgate_cache_files"), 0);
}

#[test]
fn a_cached_file_of_a_version_later_denied_answers_403() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let p = world.start_pipgate(&cached(&world, &dir, None, ""));
    let f = world.file("pubdep", "1.0").clone();
    assert_eq!(get(&p, &f), f.bytes);
    stored(&dir, &f);
    let denied = cached(
        &world,
        &dir,
        None,
        "\n[policy.deny]\npackages = [\"pubdep==1.0\"]\n",
    );
    std::fs::write(&p.config_path, denied.to_toml()).unwrap();
    assert_eq!(p.reload().0, 200);
    let resp = Probe::new(p.addr, &p.ca_pem).get(&f.url);
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(resp.text().contains("deny"), "{}", resp.text());
    // Denied by its hash (which the page advertised): refused before the cache is asked.
    let denied = cached(
        &world,
        &dir,
        None,
        &format!("\n[policy.deny]\nfiles = [\"sha256:{}\"]\n", f.sha256),
    );
    std::fs::write(&p.config_path, denied.to_toml()).unwrap();
    assert_eq!(p.reload().0, 200);
    let resp = Probe::new(p.addr, &p.ca_pem).get(&f.url);
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(fetches(&world, &f), 1);
}

#[test]
fn max_size_evicts_the_least_recently_used() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let a = world.file("pubdep", "1.0").clone();
    let b = world.file("pubpkg", "1.0").clone();
    let c = world.file("extlinks", "1.0").clone();
    let all = (a.bytes.len() + b.bytes.len() + c.bytes.len()) as u64;
    // Room for any two of them, not for three.
    let p = world.start_pipgate(&cached(&world, &dir, Some(all - 1), ""));
    let admin = p.admin.unwrap();
    // A commit (and its eviction) ends after the download it stores: wait for it in the index.
    let wait = |series: &str, n: u64| {
        for _ in 0..100 {
            if metric(admin, series) == n {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("{series} did not reach {n}")
    };
    get(&p, &a);
    wait("pipgate_cache_files ", 1);
    get(&p, &b);
    wait("pipgate_cache_files ", 2);
    get(&p, &a); // a is now more recent than b
    get(&p, &c); // b goes
    wait("pipgate_cache_evictions_total ", 1);
    assert!(entry(&dir, &a).exists() && !entry(&dir, &b).exists() && entry(&dir, &c).exists());
    get(&p, &a);
    get(&p, &b);
    assert_eq!((fetches(&world, &a), fetches(&world, &b)), (1, 2));
}

/// Publishes `bigpkg` 1.0, an 8 MiB file, on the public origin; its URL, path and bytes.
fn publish_big(world: &World) -> (String, String, Vec<u8>) {
    use pipgate_integration_tests::fixtures::{simple_html, FileLink};
    let bytes: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = "/packages/fixture/bigpkg-1.0-py3-none-any.whl".to_owned();
    let url = format!("https://files.pythonhosted.org{path}");
    let page = simple_html("bigpkg", &[FileLink::to_file(&url, &bytes)]);
    let origin = world.public_origin();
    origin.set_route("/simple/bigpkg/", 200, "text/html", &[], page);
    origin.set_route(&path, 200, "application/octet-stream", &[], bytes.clone());
    (url, path, bytes)
}

#[test]
fn sixteen_concurrent_first_downloads_make_one_upstream_request() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let p = world.start_pipgate(&cached(&world, &dir, None, ""));
    let (url, path, bytes) = publish_big(&world);
    let probe = Probe::new(p.addr, &p.ca_pem);
    let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (probe, url) = (probe.clone(), url.clone());
                s.spawn(move || probe.get(&url))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let r = h.join().unwrap();
                assert_eq!(r.status, 200);
                r.body
            })
            .collect()
    });
    assert!(bodies.iter().all(|b| *b == bytes));
    let asked = world
        .public_origin()
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .count();
    assert_eq!(asked, 1);
    let admin = p.admin.unwrap();
    assert_eq!(metric(admin, "pipgate_cache_misses_total"), 1);
    assert_eq!(metric(admin, "pipgate_cache_hits_total"), 15);
    assert_eq!(
        metric(admin, "pipgate_cache_fetched_bytes_total"),
        bytes.len() as u64
    );
}

#[test]
fn an_unusable_cache_dir_degrades_to_pass_through_with_a_warning() {
    let world = World::start_control_only();
    // A directory cannot be made under a regular file (root ignores permissions).
    let blocker = world.scratch("blocker-").join("file");
    std::fs::write(&blocker, b"").unwrap();
    let p = world.start_pipgate(&cached(&world, &blocker.join("cache"), None, ""));
    p.log_line("the warning", |l| {
        l.contains("level=warn") && l.contains("downloads pass through uncached")
    });
    let f = world.file("pubdep", "1.0").clone();
    assert_eq!(get(&p, &f), f.bytes);
    assert_eq!(get(&p, &f), f.bytes);
    assert_eq!(fetches(&world, &f), 2);
}

#[test]
fn real_pip_then_uv_from_fresh_environments_fetch_each_file_once() {
    use pipgate_integration_tests::installer::{self, Route};
    use pipgate_integration_tests::venv;
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let p = world.start_pipgate(&cached(&world, &dir, None, ""));
    let route = Route {
        proxy_url: p.proxy_url(),
        ca_pem: p.ca_pem.clone(),
    };
    let index = world.public_index_url();
    let pip_target = world.scratch("pip-target-");
    installer::pip(
        venv::latest(),
        &route,
        &world.scratch("home-"),
        &[
            "install",
            "--no-cache-dir",
            "--target",
            pip_target.to_str().unwrap(),
            "--index-url",
            &index,
            "pubpkg",
        ],
    )
    .assert_ok();
    let (pubpkg, pubdep) = (world.file("pubpkg", "1.0"), world.file("pubdep", "1.0"));
    stored(&dir, pubpkg);
    stored(&dir, pubdep);
    let uv_target = world.scratch("uv-target-");
    installer::uv(
        venv::latest(),
        &route,
        &world.scratch("home-"),
        &[
            "pip",
            "install",
            "--target",
            uv_target.to_str().unwrap(),
            "--index-url",
            &index,
            "pubpkg",
        ],
    )
    .assert_ok();
    for target in [&pip_target, &uv_target] {
        for module in ["pubpkg", "pubdep"] {
            let init = target.join(module).join("__init__.py");
            assert!(init.exists(), "{}", init.display());
        }
    }
    assert_eq!((fetches(&world, pubpkg), fetches(&world, pubdep)), (1, 1));
    assert!(metric(p.admin.unwrap(), "pipgate_cache_hits_total") >= 2);
}

/// Publishes `pagepkg` 1.0 on the public origin: a small file, and its page with the strong
/// ETag `"v1"` (the origin answers a matching `If-None-Match` with 304). The page's path and
/// URL, and the file's URL.
fn publish_page(world: &World) -> (String, String, String) {
    use pipgate_integration_tests::fixtures::{simple_html, FileLink};
    let bytes = b"pagepkg wheel bytes".to_vec();
    let file_path = "/packages/fixture/pagepkg-1.0-py3-none-any.whl";
    let file_url = format!("https://files.pythonhosted.org{file_path}");
    let page = simple_html("pagepkg", &[FileLink::to_file(&file_url, &bytes)]);
    let origin = world.public_origin();
    let path = "/simple/pagepkg/".to_owned();
    origin.set_route(&path, 200, "text/html", &[("etag", "\"v1\"")], page);
    origin.set_route(file_path, 200, "application/octet-stream", &[], bytes);
    let url = format!("https://pypi.org{path}");
    (path, url, file_url)
}

/// The requests the public origin had for `path`, and how many of them were conditional.
fn page_fetches(world: &World, path: &str) -> (usize, usize) {
    let asked: Vec<_> = world
        .public_origin()
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    let conditional = asked
        .iter()
        .filter(|r| r.headers.contains_key("if-none-match"))
        .count();
    (asked.len(), conditional)
}

/// Waits until `n` pages are stored under `dir`.
fn pages_stored(dir: &Path, n: usize) {
    for _ in 0..100 {
        let count = std::fs::read_dir(dir.join("v1/pages"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|shard| std::fs::read_dir(shard.path()).into_iter().flatten())
            .count();
        if count >= n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{n} pages were not stored");
}

#[test]
fn a_page_revalidates_with_a_304_and_is_served_stale_within_stale_if_error_with_the_origin_down() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let mut config = cached(&world, &dir, None, "");
    config
        .rules
        .push_str("pages = \"revalidate\"\nstale_if_error = \"4s\"\n");
    let (path, url, file_url) = publish_page(&world);
    let p = world.start_pipgate(&config);
    let first = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(first.text().contains(&file_url), "{}", first.text());
    p.log_line("the first page's access line", |l| {
        l.contains("pipgate::access") && l.contains(&path) && l.contains("cache=miss")
    });
    pages_stored(&dir, 1);

    // Asked again: one conditional request, a 304, and the page rewritten from the stored one.
    let second = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
    assert_eq!(page_fetches(&world, &path), (2, 1));
    p.log_line("the revalidated page's access line", |l| {
        l.contains("pipgate::access") && l.contains(&path) && l.contains("cache=hit")
    });
    let admin = p.admin.unwrap();
    assert_eq!(metric(admin, "pipgate_cache_page_hits_total"), 1);
    assert_eq!(metric(admin, "pipgate_cache_page_misses_total"), 1);
    assert_eq!(metric(admin, "pipgate_cache_pages"), 1);

    // The origin down, after a restart (the stored page survives it): the stored page is served
    // within stale_if_error, marked stale, and the file it links to is still reachable.
    drop(p);
    let mut down = config.clone();
    down.public_addr = unused_addr();
    let p = world.start_pipgate(&down);
    let stale = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert_eq!(stale.status, 200, "{}", stale.text());
    assert_eq!(stale.body, first.body);
    assert!(
        stale.header("warning").contains("110"),
        "{:?}",
        stale.header("warning")
    );
    assert!(!stale.header("age").is_empty());
    p.log_line("the stale page's access line", |l| {
        l.contains("pipgate::access") && l.contains(&path) && l.contains("cache=stale")
    });
    assert_eq!(metric(p.admin.unwrap(), "pipgate_cache_stale_total"), 1);

    // Beyond stale_if_error: the usual failure.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let failed = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert!(failed.status >= 502, "{} {}", failed.status, failed.text());
}

#[test]
fn a_ttl_page_is_served_without_asking_and_policy_applies_to_it_on_every_serve() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let mut config = cached(&world, &dir, None, "");
    config
        .rules
        .push_str("pages = \"ttl\"\npage_ttl = \"10m\"\n");
    let (path, url, file_url) = publish_page(&world);
    let p = world.start_pipgate(&config);
    let first = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert_eq!(first.status, 200, "{}", first.text());
    pages_stored(&dir, 1);
    let second = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert_eq!((second.status, &second.body), (200, &first.body));
    assert!(!second.header("age").is_empty());
    assert_eq!(
        page_fetches(&world, &path),
        (1, 0),
        "within page_ttl upstream is not asked"
    );

    // A version denied by a reload: the stored page is filtered by the new rules.
    let mut denied = cached(
        &world,
        &dir,
        None,
        "\n[policy.deny]\npackages = [\"pagepkg==1.0\"]\n",
    );
    denied
        .rules
        .push_str("pages = \"ttl\"\npage_ttl = \"10m\"\n");
    std::fs::write(&p.config_path, denied.to_toml()).unwrap();
    assert_eq!(p.reload().0, 200);
    let filtered = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert_eq!(filtered.status, 200);
    assert!(!filtered.text().contains(&file_url), "{}", filtered.text());
    assert_eq!(page_fetches(&world, &path), (1, 0));

    // A reload that makes the project private: the stored public page is never an answer, and
    // the public index is not asked (the private index has no such project: 404).
    let mut private = cached(&world, &dir, None, "");
    private.private_patterns.push("pagepkg".into());
    private
        .rules
        .push_str("pages = \"ttl\"\npage_ttl = \"10m\"\n");
    std::fs::write(&p.config_path, private.to_toml()).unwrap();
    assert_eq!(p.reload().0, 200);
    let gone = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert!(!gone.text().contains(&file_url));
    assert_eq!(page_fetches(&world, &path), (1, 0));
}

#[test]
fn real_pip_and_uv_install_through_a_warm_cache_with_the_origin_down() {
    use pipgate_integration_tests::installer::{self, Route};
    use pipgate_integration_tests::venv;
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let config = cached(&world, &dir, None, "");
    let index = world.public_index_url();
    let install = |p: &Pipgate| {
        let route = Route {
            proxy_url: p.proxy_url(),
            ca_pem: p.ca_pem.clone(),
        };
        let pip_target = world.scratch("pip-target-");
        installer::pip(
            venv::latest(),
            &route,
            &world.scratch("home-"),
            &[
                "install",
                "--no-cache-dir",
                "--target",
                pip_target.to_str().unwrap(),
                "--index-url",
                &index,
                "pubpkg",
            ],
        )
        .assert_ok();
        let uv_target = world.scratch("uv-target-");
        installer::uv(
            venv::latest(),
            &route,
            &world.scratch("home-"),
            &[
                "pip",
                "install",
                "--target",
                uv_target.to_str().unwrap(),
                "--index-url",
                &index,
                "pubpkg",
            ],
        )
        .assert_ok();
        for target in [&pip_target, &uv_target] {
            for module in ["pubpkg", "pubdep"] {
                assert!(target.join(module).join("__init__.py").exists());
            }
        }
    };
    let p = world.start_pipgate(&config);
    install(&p);
    stored(&dir, world.file("pubpkg", "1.0"));
    stored(&dir, world.file("pubdep", "1.0"));
    // pip's and uv's pages (each asks with its own Accept), for both projects.
    pages_stored(&dir, 4);
    drop(p);
    let mut down = config.clone();
    down.public_addr = unused_addr();
    let p = world.start_pipgate(&down);
    install(&p);
    let admin = p.admin.unwrap();
    assert!(metric(admin, "pipgate_cache_stale_total") >= 4);
    assert!(metric(admin, "pipgate_cache_hits_total") >= 4);
}

#[test]
fn a_page_upstream_marks_no_store_is_not_kept_and_a_404_forgets_a_stored_page() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let p = world.start_pipgate(&cached(&world, &dir, None, ""));
    let (path, url, _) = publish_page(&world);
    let probe = Probe::new(p.addr, &p.ca_pem);
    assert_eq!(probe.get(&url).status, 200);
    pages_stored(&dir, 1);
    let admin = p.admin.unwrap();
    assert_eq!(metric(admin, "pipgate_cache_pages"), 1);

    // Gone upstream: the 404 is relayed and the stored page forgotten (with the origin down
    // afterwards nothing stale could be served for it).
    world
        .public_origin()
        .set_route(&path, 404, "text/html", &[], "gone");
    assert_eq!(probe.get(&url).status, 404);
    assert_eq!(metric(admin, "pipgate_cache_pages"), 0);

    // `Cache-Control: no-store`: answered, not kept.
    let page = pipgate_integration_tests::fixtures::simple_html("pagepkg", &[]);
    world.public_origin().set_route(
        &path,
        200,
        "text/html",
        &[("cache-control", "no-store")],
        page,
    );
    assert_eq!(probe.get(&url).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(metric(admin, "pipgate_cache_pages"), 0);
    assert_eq!(metric(admin, "pipgate_cache_page_misses_total"), 1);
}

#[test]
fn a_private_file_is_cached_by_the_digest_its_private_index_advertises() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let p = world.start_pipgate(&cached(&world, &dir, None, ""));
    let f = world.file("acme-lib", "1.0").clone();
    assert_eq!(f.url.split('/').nth(2), Some(PRIVATE_HOST), "{}", f.url);
    let private_fetches = || {
        world
            .private_origin()
            .requests()
            .iter()
            .filter(|r| r.path == f.path())
            .count()
    };
    // Bytes other than its page's digest: passed on (private indexes are exempt from the file
    // rules) but never stored.
    let origin = world.private_origin();
    serve(origin, &f, tampered(&f));
    assert_eq!(get(&p, &f), tampered(&f));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!entry(&dir, &f).exists(), "a mismatch was stored");
    serve(origin, &f, f.bytes.clone());
    assert_eq!(get(&p, &f), f.bytes);
    stored(&dir, &f);
    assert_eq!(get(&p, &f), f.bytes);
    assert_eq!(private_fetches(), 2, "the third download came from disk");
    p.log_line("the hit's access line", |l| {
        l.contains(&f.path()) && l.contains("cache=hit")
    });
    // The key came from the private index's own page; the public index was never asked
    // about the private name.
    assert!(
        world
            .public_origin()
            .requests()
            .iter()
            .all(|r| !r.path.contains("acme")),
        "{:?}",
        world.public_origin().requests()
    );
    // After a restart, with the private index's listing still there, from disk again.
    drop(p);
    let p = world.start_pipgate(&cached(&world, &dir, None, ""));
    assert_eq!(get(&p, &f), f.bytes);
    assert_eq!(private_fetches(), 2);
}

#[test]
fn a_page_whose_stored_body_is_lost_is_asked_for_again_and_one_over_max_page_bytes_is_not_kept() {
    let world = World::start_control_only();
    let dir = world.scratch("cache-");
    let mut config = cached(&world, &dir, None, "");
    config.rules.push_str("pages = \"revalidate\"\n");
    let (path, url, _) = publish_page(&world);
    let p = world.start_pipgate(&config);
    let first = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert_eq!(first.status, 200, "{}", first.text());
    pages_stored(&dir, 1);

    // The stored body goes missing while pipgate still knows the page: the conditional request
    // gets a 304 it cannot answer from, so the page is asked for again, unconditionally.
    for shard in std::fs::read_dir(dir.join("v1/pages")).unwrap().flatten() {
        for page in std::fs::read_dir(shard.path()).unwrap().flatten() {
            std::fs::remove_file(page.path()).unwrap();
        }
    }
    let second = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.body, first.body);
    assert_eq!(
        page_fetches(&world, &path),
        (3, 1),
        "first, the 304, then the page again"
    );
    let last = world
        .public_origin()
        .requests()
        .into_iter()
        .rfind(|r| r.path == path)
        .unwrap();
    assert!(!last.headers.contains_key("if-none-match"), "{last:?}");
    pages_stored(&dir, 1);
    drop(p);

    // A page larger than max_page_bytes is refused (502), and nothing of it is kept.
    use pipgate_integration_tests::fixtures::{simple_html, FileLink};
    let links: Vec<FileLink> = (0..200)
        .map(|i| {
            FileLink::to_file(
                &format!("https://files.pythonhosted.org/packages/x/bigpage-{i}.0.tar.gz"),
                format!("{i}").as_bytes(),
            )
        })
        .collect();
    let big = simple_html("bigpage", &links);
    assert!(big.len() > 8192);
    world.public_origin().set_route(
        "/simple/bigpage/",
        200,
        "text/html",
        &[("etag", "\"b1\"")],
        big,
    );
    let small_dir = world.scratch("cache-");
    let mut small = cached(&world, &small_dir, None, "");
    small
        .rules
        .push_str("pages = \"revalidate\"\n\n[limits]\nmax_page_bytes = 8192\n");
    let p = world.start_pipgate(&small);
    let refused = Probe::new(p.addr, &p.ca_pem).get("https://pypi.org/simple/bigpage/");
    assert_eq!(refused.status, 502, "{}", refused.text());
    assert!(
        refused.text().contains("max_page_bytes"),
        "{}",
        refused.text()
    );
    // The small page of the same pipgate is kept: the store works, the big one was not put in.
    let ok = Probe::new(p.addr, &p.ca_pem).get(&url);
    assert_eq!(ok.status, 200, "{}", ok.text());
    pages_stored(&small_dir, 1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(metric(p.admin.unwrap(), "pipgate_cache_pages "), 1);
}
