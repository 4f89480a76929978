//! Throughput of page re-synthesis: project pages (HTML, JSON) and a PyPI-sized root listing.
// Fixed inputs built here; a failure to build them is a broken bench, not a peer's doing.
#![allow(clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pipgate_policy::{Index, Name, PageFormat, Policy, ProjectStream, Role, Rules, Tables};
use url::Url;

fn policy() -> Policy {
    let index = Index::new(
        "pypi",
        "https://pypi.org/simple/",
        Role::Public,
        &["files.pythonhosted.org".to_owned()],
    )
    .expect("index");
    Policy::new(vec![index], Rules::default()).expect("policy")
}

/// Rule tables from JSON values (the proxy reads them from TOML).
struct Json(serde_json::Value);

impl Tables for Json {
    fn table<T: serde::de::DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        serde_json::from_value(self.0.get(key)?.clone()).ok()
    }
    fn error(&mut self, _: &'static str, _: &'static str, message: String) {
        panic!("{message}");
    }
}

/// The policy with a 7-day cooldown.
fn cooldown_policy() -> Policy {
    let index = policy().indexes()[0].clone();
    let mut t = Json(serde_json::json!({"cooldown": {"min_age": "7d"}}));
    let files = pipgate_policy::rules::read(&mut t, pipgate_policy::Mode::Enforce);
    let rules = Rules {
        files,
        ..Rules::default()
    };
    Policy::new(vec![index], rules).expect("policy")
}

fn hex(seed: usize) -> String {
    let mut s = String::with_capacity(64);
    for i in 0..8 {
        let _ = write!(
            s,
            "{:08x}",
            (seed.wrapping_mul(2654435761) ^ (i * 40503)) as u32
        );
    }
    s
}

/// A PyPI-like project page with `n` files (one in 16 off-host, to exercise the drop path).
fn html_page(n: usize) -> String {
    let mut s = String::from("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.3\">\n    <title>Links for bigproject</title>\n  </head>\n  <body>\n    <h1>Links for bigproject</h1>\n");
    for i in 0..n {
        let host = if i % 16 == 0 {
            "mirror.example"
        } else {
            "files.pythonhosted.org"
        };
        let h = hex(i);
        // Like PyPI, newer files advertise PEP 658 metadata under both attribute names.
        let meta = if i % 4 == 0 {
            format!(" data-dist-info-metadata=\"sha256={h}\" data-core-metadata=\"sha256={h}\"")
        } else {
            String::new()
        };
        let v = format!("{}.{}.{}", i / 100, i / 10 % 10, i % 10);
        let _ = writeln!(
            s,
            "    <a href=\"https://{host}/packages/{}/{}/{}/bigproject-{v}-py3-none-any.whl#sha256={h}\" data-requires-python=\"&gt;=3.8\"{meta}>bigproject-{v}-py3-none-any.whl</a><br />",
            &h[..2], &h[2..4], &h[4..60]
        );
    }
    s.push_str("  </body>\n</html>\n");
    s
}

fn json_page(n: usize) -> String {
    let mut s = String::from("{\"meta\":{\"api-version\":\"1.3\",\"_last-serial\":1},\"name\":\"bigproject\",\"files\":[");
    for i in 0..n {
        let host = if i % 16 == 0 {
            "mirror.example"
        } else {
            "files.pythonhosted.org"
        };
        let h = hex(i);
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"core-metadata\":{{\"sha256\":\"{h}\"}},\"data-dist-info-metadata\":{{\"sha256\":\"{h}\"}},\"filename\":\"bigproject-{v}-cp311-cp311-manylinux_2_17_x86_64.whl\",\"hashes\":{{\"sha256\":\"{h}\"}},\"provenance\":null,\"requires-python\":\">=3.8\",\"size\":123456,\"upload-time\":\"2024-01-01T00:00:00.000000Z\",\"url\":\"https://{host}/packages/{}/{}/{}/bigproject-{v}-cp311-cp311-manylinux_2_17_x86_64.whl\",\"yanked\":false}}",
            &h[..2], &h[2..4], &h[4..60],
            v = format_args!("{}.{}.{}", i / 100, i / 10 % 10, i % 10)
        );
    }
    s.push_str("],\"versions\":[\"1.0\"]}");
    s
}

/// The benchmark's page as PEP 691 JSON (`bench/src/fixtures.rs`): PyPI's keys per file, no
/// PEP 658 metadata, one file every 2 hours up to an hour before `now`.
fn json_page_timed(n: usize, now: time::OffsetDateTime) -> String {
    let mut s = String::from("{\"files\":[");
    for i in 0..n {
        let h = hex(i);
        let file = format!("bigproject-{}.{}.{}.tar.gz", i / 100, i / 10 % 10, i % 10);
        let t = now - time::Duration::seconds((n - i) as i64 * 7_200 - 3_600);
        let t = t
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time");
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"filename\":\"{file}\",\"hashes\":{{\"sha256\":\"{h}\"}},\"requires-python\":\">=3.9\",\"size\":{},\"upload-time\":\"{t}\",\"url\":\"https://files.pythonhosted.org/packages/{}/{}/{}/{file}\",\"yanked\":false}}",
            10_000 + i,
            &h[..2],
            &h[2..4],
            &h[4..60],
        );
    }
    s.push_str("],\"meta\":{\"_last-serial\":1,\"api-version\":\"1.1\"},\"name\":\"bigproject\",\"versions\":[]}");
    s
}

fn root_page(target_bytes: usize) -> String {
    let mut s = String::from("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.3\">\n    <title>Simple index</title>\n  </head>\n  <body>\n");
    let mut i = 0usize;
    while s.len() < target_bytes {
        let _ = writeln!(s, "    <a href=\"/simple/project-{i}/\">project-{i}</a>");
        i += 1;
    }
    s.push_str("  </body>\n</html>\n");
    s
}

/// CPU time this thread has run, in ns (Linux): wall-clock figures mean little on a machine
/// shared with compilers, so the bench also reports throughput per CPU second.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// The benchmark name filter when it is given first (`cargo bench -- NAME [options]`): the
/// per-CPU-second figures below honour it too, so a profile of one bench sees only that bench.
fn selected(label: &str) -> bool {
    let filter = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .filter(|a| !a.starts_with('-'));
    filter.is_none_or(|f| label.contains(f.trim_end_matches('$')))
}

fn cpu_throughput(label: &str, bytes: usize, iters: u32, mut f: impl FnMut()) {
    if !selected(label) {
        return;
    }
    f();
    let (Some(start), wall) = (cpu_ns(), std::time::Instant::now()) else {
        return;
    };
    for _ in 0..iters {
        f();
    }
    if let Some(end) = cpu_ns() {
        let cpu = (end - start) as f64 / 1e9;
        let mb = bytes as f64 * f64::from(iters) / 1e6;
        eprintln!(
            "{label}: {:.0} MB/s per CPU second ({:.0} MB/s wall), {:.2} ms CPU per page",
            mb / cpu,
            mb / wall.elapsed().as_secs_f64(),
            cpu * 1e3 / f64::from(iters)
        );
    }
}

fn bench(c: &mut Criterion) {
    let p = policy();
    let index = &p.indexes()[0];
    let page_url = Url::parse("https://pypi.org/simple/bigproject/").expect("url");
    let root_url = Url::parse("https://pypi.org/simple/").expect("url");
    let html = html_page(8000);
    let json = json_page(8000);
    let root = root_page(30 << 20);
    eprintln!(
        "sizes: html {} bytes, json {} bytes, root {} bytes",
        html.len(),
        json.len(),
        root.len()
    );

    cpu_throughput("html_project_8000", html.len(), 50, || {
        let _ = p.rewrite_project(index, &page_url, PageFormat::Html, html.as_bytes());
    });
    // As the proxy feeds it: the upstream's 16 KiB HTTP/2 frames, output written per frame.
    let stream_in = |format: PageFormat, page: &str| {
        let mut s = ProjectStream::new(index, &page_url, format);
        let mut out = Vec::with_capacity(64 * 1024);
        for chunk in page.as_bytes().chunks(16 * 1024) {
            out.clear();
            let _ = s.feed(chunk, &mut out);
        }
        let _ = s.finish(&mut out);
    };
    let streamed = || stream_in(PageFormat::Html, &html);
    let json_streamed = || stream_in(PageFormat::JsonV1, &json);
    cpu_throughput("html_project_8000_streamed_16k", html.len(), 50, streamed);
    cpu_throughput("json_project_8000", json.len(), 50, || {
        let _ = p.rewrite_project(index, &page_url, PageFormat::JsonV1, json.as_bytes());
    });
    cpu_throughput(
        "json_project_8000_streamed_16k",
        json.len(),
        50,
        json_streamed,
    );
    // A cooldown active: the JSON page (with upload times) written as HTML, each file judged.
    let cool = cooldown_policy();
    let cool_index = &cool.indexes()[0];
    let now = time::OffsetDateTime::now_utc();
    let cooled_in = |page: &str| {
        let judge = cool
            .rules()
            .judge(cool_index, &Name::new("bigproject"), now);
        let mut s = ProjectStream::judged(
            cool_index,
            &page_url,
            PageFormat::JsonV1,
            PageFormat::Html,
            judge,
        );
        let mut out = Vec::with_capacity(64 * 1024);
        for chunk in page.as_bytes().chunks(16 * 1024) {
            out.clear();
            let _ = s.feed(chunk, &mut out);
        }
        let _ = s.finish(&mut out);
    };
    cpu_throughput(
        "json_to_html_cooldown_8000_streamed_16k",
        json.len(),
        50,
        || cooled_in(&json),
    );
    // The benchmark's shape (bench/src/fixtures.rs): no PEP 658 metadata, sdists, upload times
    // every 2 hours up to an hour ago (the 1.3x is held on this page).
    let timed = json_page_timed(8000, now);
    cpu_throughput(
        "bench_json_to_html_cooldown_8000_streamed_16k",
        timed.len(),
        50,
        || cooled_in(&timed),
    );
    cpu_throughput("html_root_30mb", root.len(), 3, || {
        let _ = p.rewrite_root(index, &root_url, PageFormat::Html, root.as_bytes(), &|_| {
            false
        });
    });

    let mut g = c.benchmark_group("pages");
    g.throughput(Throughput::Bytes(html.len() as u64));
    g.bench_function("html_project_8000", |b| {
        b.iter(|| p.rewrite_project(index, &page_url, PageFormat::Html, html.as_bytes()))
    });
    g.bench_function("html_project_8000_streamed_16k", |b| b.iter(streamed));
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("json_project_8000", |b| {
        b.iter(|| p.rewrite_project(index, &page_url, PageFormat::JsonV1, json.as_bytes()))
    });
    g.bench_function("json_project_8000_streamed_16k", |b| b.iter(json_streamed));
    g.sample_size(10);
    g.throughput(Throughput::Bytes(root.len() as u64));
    g.bench_function("html_root_30mb", |b| {
        b.iter(|| {
            p.rewrite_root(index, &root_url, PageFormat::Html, root.as_bytes(), &|_| {
                false
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
