//! Issue 6: every limit driven over a real socket — the misbehaving client gets a clear error,
//! and a well-behaved client is served at the same time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use pipgate_integration_tests::pipgate::{pipgate_command, Pipgate};
use pipgate_integration_tests::probe::{http_get, raw_exchange, streamed_then_cut, Probe};
use pipgate_integration_tests::world::{World, FILES_HOST, PUBLIC_HOST};
use pipgate_integration_tests::{fixtures, installer, venv};

/// The world's config with extra TOML sections appended (`[limits]`, `[access]`).
fn start_with(world: &World, name: &str, extra: &str) -> Pipgate {
    let mut toml = world.pipgate_config().to_toml();
    toml.push('\n');
    toml.push_str(extra);
    Pipgate::start(&world.scratch(name), &toml)
}

/// A well-behaved client: a real page through the proxy.
fn served(p: &Pipgate) {
    let resp = Probe::new(p.addr, &p.ca_pem).get(&format!("https://{PUBLIC_HOST}/simple/pubdep/"));
    assert_eq!(resp.status, 200, "well-behaved client: {}", resp.text());
    assert!(resp.text().contains("pubdep"), "{}", resp.text());
}

/// CONNECT pypi.org:443 through `p`, then TLS trusting pipgate's CA, offering `alpn`.
async fn tunnel_to_pypi(
    p: &Pipgate,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    tunnel(p, tcp, "pypi.org", alpn).await
}

/// CONNECT `host`:443 through `p` on `tcp` (connected to it), then TLS trusting pipgate's CA,
/// offering `alpn`.
async fn tunnel(
    p: &Pipgate,
    mut tcp: tokio::net::TcpStream,
    host: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = pipgate_integration_tests::tls::read_pem_certs(&p.ca_pem);
    let connect = format!("CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n");
    tcp.write_all(connect.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let config = pipgate_integration_tests::tls::client_config_for(&ca, alpn);
    tokio_rustls::TlsConnector::from(config)
        .connect(host.to_owned().try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Connects from a chosen loopback source address (127.0.0.2 is "another client").
fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{src}:0").parse().unwrap();
    socket.bind(&src.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_all(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn slowloris_head_is_cut_with_408_while_others_are_served() {
    let world = World::start();
    let p = start_with(&world, "slow", "[limits]\nheader_timeout = \"1s\"\n");
    let mut slow = TcpStream::connect(p.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: pyp")
        .unwrap();
    let start = Instant::now();
    // The well-behaved client is served while the slow one dangles.
    served(&p);
    let answer = read_all(slow);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("not received in time"), "{answer}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "cut after {:?}",
        start.elapsed()
    );
}

#[test]
fn oversized_heads_get_431_and_malformed_get_400() {
    let world = World::start();
    let p = start_with(
        &world,
        "big",
        "[limits]\nmax_header_bytes = 4096\nmax_headers = 20\n",
    );
    let big = format!(
        "CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\nX-Big: {}\r\n\r\n",
        "a".repeat(8000)
    );
    let answer = String::from_utf8_lossy(&raw_exchange(p.addr, big.as_bytes())).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(answer.contains("larger than 4096"), "{answer}");

    let mut many = String::from("CONNECT pypi.org:443 HTTP/1.1\r\n");
    for i in 0..30 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = String::from_utf8_lossy(&raw_exchange(p.addr, many.as_bytes())).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(answer.contains("more than 20"), "{answer}");

    let smuggle = "GET http://pypi.org/simple/ HTTP/1.1\r\nHost: pypi.org\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
    let answer = String::from_utf8_lossy(&raw_exchange(p.addr, smuggle.as_bytes())).into_owned();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("Content-Length and Transfer-Encoding"),
        "{answer}"
    );
    served(&p);
}

#[test]
fn per_client_cap_sheds_one_client_not_another() {
    let world = World::start();
    let p = start_with(&world, "cap", "[limits]\nmax_connections_per_client = 2\n");
    // Client 127.0.0.2 holds its two slots open (idle) ...
    let a1 = connect_from("127.0.0.2", p.addr);
    let a2 = connect_from("127.0.0.2", p.addr);
    std::thread::sleep(Duration::from_millis(200));
    // ... its third connection is shed with a 503 naming the limit ...
    let a3 = connect_from("127.0.0.2", p.addr);
    let answer = read_all(a3);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("max_connections_per_client"), "{answer}");
    // ... while 127.0.0.1 is served.
    served(&p);
    drop((a1, a2));
    // Slots come back when connections close.
    std::thread::sleep(Duration::from_millis(300));
    let mut again = connect_from("127.0.0.2", p.addr);
    again
        .write_all(b"CONNECT evil.test:443 HTTP/1.1\r\n\r\n")
        .unwrap();
    let answer = read_all(again);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

#[test]
fn global_cap_sheds_with_503() {
    let world = World::start();
    let p = start_with(&world, "global", "[limits]\nmax_connections = 3\n");
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(p.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let over = TcpStream::connect(p.addr).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let answer = read_all(over);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("limits.max_connections (3)"), "{answer}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    served(&p);
}

#[test]
fn allow_clients_closes_others_before_any_work() {
    let world = World::start();
    let p = start_with(
        &world,
        "acl",
        "[access]\nallow_clients = [\"127.0.0.2/32\"]\n",
    );
    let mut denied = connect_from("127.0.0.1", p.addr);
    let _ = denied.write_all(b"CONNECT evil.test:443 HTTP/1.1\r\n\r\n");
    assert_eq!(
        read_all(denied),
        "",
        "a refused client gets no answer at all"
    );
    let mut allowed = connect_from("127.0.0.2", p.addr);
    allowed
        .write_all(b"CONNECT evil.test:443 HTTP/1.1\r\n\r\n")
        .unwrap();
    let answer = read_all(allowed);
    assert!(
        answer.starts_with("HTTP/1.1 403"),
        "the allowed client is served: {answer}"
    );
}

#[test]
fn proxy_auth_requires_valid_credentials_and_never_logs_them() {
    let world = World::start();
    let dir = world.scratch("auth");
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users");
    let mut passwd = pipgate_command()
        .args(["passwd"])
        .arg(&users)
        .arg("ci")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    passwd
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret-pw\n")
        .unwrap();
    assert!(passwd.wait().unwrap().success());
    let stored = std::fs::read_to_string(&users).unwrap();
    assert!(stored.starts_with("ci:$argon2"), "{stored}");
    assert!(!stored.contains("s3cret-pw"));

    let p = start_with(
        &world,
        "auth-pg",
        &format!(
            "[access]\ncredentials = {:?}\n",
            users.display().to_string()
        ),
    );
    let ask = |auth: Option<&str>| {
        let mut req = format!("CONNECT {FILES_HOST}:443 HTTP/1.1\r\nHost: {FILES_HOST}:443\r\n");
        if let Some(a) = auth {
            req.push_str(&format!("Proxy-Authorization: Basic {a}\r\n"));
        }
        req.push_str("\r\n");
        let mut s = TcpStream::connect(p.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let none = ask(None);
    assert!(none.starts_with("HTTP/1.1 407"), "{none}");
    assert!(
        none.to_ascii_lowercase()
            .contains("proxy-authenticate: basic"),
        "{none}"
    );
    // base64("ci:wrong") and base64("ci:s3cret-pw")
    let started = Instant::now();
    let wrong = ask(Some("Y2k6d3Jvbmc="));
    assert!(wrong.starts_with("HTTP/1.1 407"), "{wrong}");
    // A wrong password waits for its answer (a guesser gets one try a second).
    assert!(started.elapsed() >= Duration::from_millis(900));
    let right = ask(Some("Y2k6czNjcmV0LXB3"));
    assert!(right.starts_with("HTTP/1.1 200"), "{right}");
    // The same wrong header again is refused without argon2; an unknown user costs a hash
    // like a known one (base64("nobody:x")).
    let again = ask(Some("Y2k6d3Jvbmc="));
    assert!(again.starts_with("HTTP/1.1 407"), "{again}");
    let unknown = ask(Some("bm9ib2R5Ong="));
    assert!(unknown.starts_with("HTTP/1.1 407"), "{unknown}");
    let metrics = http_get(p.admin.expect("admin listener"), "/metrics").text();
    for line in [
        "pipgate_proxy_auth_hashes_total 3",
        "pipgate_proxy_auth_failures_total{reason=\"missing\"} 1",
        "pipgate_proxy_auth_failures_total{reason=\"invalid\"} 2",
        "pipgate_proxy_auth_failures_total{reason=\"repeated\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }

    // Real pip sends the credentials from the proxy URL pre-emptively.
    let route = installer::Route {
        proxy_url: format!("http://ci:s3cret-pw@{}", p.addr),
        ca_pem: p.ca_pem.clone(),
    };
    let file = world.file("pubdep", "1.0");
    let dest = world.scratch("auth-dl");
    let home = world.scratch("auth-home");
    let index = world.public_index_url();
    let dest_s = dest.display().to_string();
    installer::pip(
        venv::latest(),
        &route,
        &home,
        &[
            "download",
            "--no-deps",
            "--index-url",
            &index,
            "-d",
            &dest_s,
            "pubdep",
        ],
    )
    .assert_ok();
    let got = std::fs::read(installer::only_file(&dest)).unwrap();
    assert_eq!(fixtures::sha256_hex(&got), file.sha256);
    // Everything about this download is in the log once its last request's line is.
    p.access_event(&file.filename);
    let log = p.stderr();
    assert!(
        !log.contains("s3cret-pw") && !log.contains("Y2k6czNjcmV0LXB3"),
        "credentials leaked to the log"
    );
}

/// A TLS origin (HTTP/1.1 only) that answers every request with a head promising 1 MB, sends
/// 10 bytes, and then stalls. Requests for paths containing "silent" get no answer at all;
/// those for "bigpage" (or "bigjson") get the first 4,000 links of a longer HTML (or JSON)
/// project page, then the stall.
fn stalling_origin(world: &World, hosts: &[&str]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = (*world.origin_ca().server_config(hosts)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let rt = pipgate_integration_tests::runtime::runtime();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&seen);
                // A page is HTML, a file is not (pipgate refuses a file that says it is a page).
                let content_type = if request.contains("/simple/") {
                    "text/html"
                } else {
                    "application/octet-stream"
                };
                let head = format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: 1000000\r\n\r\n0123456789");
                if request.contains("bigpage") {
                    let _ = tls.write_all(&partial_big_page()).await;
                } else if request.contains("bigjson") {
                    let _ = tls.write_all(&partial_big_json_page()).await;
                } else if !request.contains("silent") {
                    let _ = tls.write_all(head.as_bytes()).await;
                }
                let _ = tls.flush().await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    addr
}

/// A response head promising a 5 MB page, and its first 4,000 links (on the file host, and one
/// in ten on evil.test).
fn partial_big_page() -> Vec<u8> {
    let mut page = String::from("<!DOCTYPE html><html><head><title>bigpage</title></head><body>\n");
    for i in 0..4000 {
        let host = if i % 10 == 0 {
            "evil.test"
        } else {
            "stallfiles.test"
        };
        page.push_str(&format!(
            "<a href=\"https://{host}/packages/bigpage-{i}.0.tar.gz#sha256={i:064x}\">bigpage-{i}.0.tar.gz</a><br/>\n"
        ));
    }
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 5000000\r\n\r\n".to_vec();
    out.extend_from_slice(page.as_bytes());
    out
}

/// The head of a 5 MB JSON project page (PyPI's key order: files first) and its first 4,000
/// files (on the file host, and one in ten on evil.test).
fn partial_big_json_page() -> Vec<u8> {
    let mut page = String::from("{\"files\":[");
    for i in 0..4000 {
        let host = if i % 10 == 0 {
            "evil.test"
        } else {
            "stallfiles.test"
        };
        if i > 0 {
            page.push(',');
        }
        page.push_str(&format!(
            "{{\"filename\":\"bigjson-{i}.0.tar.gz\",\"hashes\":{{\"sha256\":\"{i:064x}\"}},\"url\":\"https://{host}/packages/bigjson-{i}.0.tar.gz\"}}"
        ));
    }
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {}\r\ncontent-length: 5000000\r\n\r\n",
        fixtures::JSON_CT
    )
    .into_bytes();
    out.extend_from_slice(page.as_bytes());
    out
}

/// A pipgate (upstream idle and response timeouts of 1 s) with one more public index,
/// `https://stall.test/simple/` with files on stallfiles.test, both served by [`stalling_origin`].
fn pipgate_with_stalling_index(world: &World) -> Pipgate {
    use pipgate_integration_tests::world::ExtraIndex;
    let stall = stalling_origin(world, &["stall.test", "stallfiles.test"]);
    let mut cfg = world.pipgate_config();
    cfg.extra_indexes.push(ExtraIndex {
        name: "stall".into(),
        url: "https://stall.test/simple/".into(),
        role: "public".into(),
        file_hosts: vec!["stallfiles.test".into()],
    });
    cfg.extra_resolve.push(("stall.test:443".into(), stall));
    cfg.extra_resolve
        .push(("stallfiles.test:443".into(), stall));
    let toml = cfg.to_toml().replacen(
        "[upstream]\n",
        "[upstream]\nidle_timeout = \"1s\"\nresponse_timeout = \"1s\"\n",
        1,
    );
    Pipgate::start(&world.scratch("stall"), &toml)
}

#[test]
fn upstream_stalling_mid_body_is_cut_and_others_are_served() {
    let world = World::start();
    let p = pipgate_with_stalling_index(&world);
    let probe = Probe::new(p.addr, &p.ca_pem);

    // No response head in time: 504 naming the timeout.
    let start = Instant::now();
    let silent = probe.get("https://stallfiles.test/packages/silent-1.0.tar.gz");
    assert_eq!(silent.status, 504, "{}", silent.text());
    assert!(silent.text().contains("timeout"), "{}", silent.text());
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );

    // A page that stalls before pipgate has written anything ends in a 502 naming the stall.
    let start = Instant::now();
    let page = probe.get("https://stall.test/simple/anything/");
    assert_eq!(page.status, 502, "{}", page.text());
    assert!(page.text().contains("stalled"), "{}", page.text());
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );

    // A large page streams: its first links reach the client rewritten while upstream has not
    // sent the rest; the stall then cuts the body (no last chunk), so the client sees a broken
    // page, never a complete-looking short one.
    let start = Instant::now();
    let raw = probe
        .raw_tls(
            "https://stall.test/simple/bigpage/",
            b"GET /simple/bigpage/ HTTP/1.1\r\nHost: stall.test\r\n\r\n",
        )
        .unwrap();
    let (_, body) = streamed_then_cut(&raw);
    let links = body
        .matches("<a href=\"https://stallfiles.test/packages/bigpage-")
        .count();
    assert!(links >= 1000, "{links} links streamed before the stall");
    assert!(
        !body.contains("evil.test"),
        "an off-host link was passed on"
    );
    assert!(
        !body.contains("</html>"),
        "the cut page ended like a whole one"
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );

    // A file is streamed: the head arrives, then the body is cut instead of hanging.
    let start = Instant::now();
    let file = probe.send(Probe::request(
        "GET",
        "https://stallfiles.test/packages/anything-1.0.tar.gz",
    ));
    match file {
        Err(e) => eprintln!("streamed body cut as a transport error: {e}"),
        Ok(r) => assert!(
            r.body.len() < 1_000_000,
            "a stalled body cannot be complete"
        ),
    }
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    served(&p);
    // The access event says the transfer was cut, and how far it got: nowhere, as the 10 bytes
    // upstream sent are the last it sent, held back until the digest could be judged.
    let line = p.access_event("anything-1.0.tar.gz");
    assert!(
        line.contains("complete=false") && line.contains("bytes=0"),
        "{line}"
    );
}

#[test]
fn a_large_json_page_streams_before_upstream_stalls_and_is_then_cut() {
    let world = World::start();
    let p = pipgate_with_stalling_index(&world);
    let probe = Probe::new(p.addr, &p.ca_pem);
    // Its first files reach the client rewritten while upstream has not sent the rest (nor
    // the page's meta or name); the stall then cuts the body: no last chunk, no end of the JSON.
    let start = Instant::now();
    let raw = probe
        .raw_tls(
            "https://stall.test/simple/bigjson/",
            format!(
                "GET /simple/bigjson/ HTTP/1.1\r\nHost: stall.test\r\nAccept: {}\r\n\r\n",
                fixtures::JSON_CT
            )
            .as_bytes(),
        )
        .unwrap();
    let (head, body) = streamed_then_cut(&raw);
    assert!(head.contains(fixtures::JSON_CT), "{head}");
    assert!(body.contains("{\"files\":[{\"filename\":\"bigjson-1.0.tar.gz\""));
    let files = body
        .matches("\"url\":\"https://stallfiles.test/packages/bigjson-")
        .count();
    assert!(files >= 1000, "{files} files streamed before the stall");
    assert!(
        !body.contains("evil.test"),
        "an off-host link was passed on"
    );
    assert!(
        !body.contains("\"meta\""),
        "the cut page ended like a whole one"
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    let line = p.access_event("/simple/bigjson/");
    assert!(line.contains("complete=false"), "{line}");
    served(&p);
}

#[test]
fn h2_rapid_reset_flood_does_not_reach_upstream_or_hurt_others() {
    let world = World::start();
    let p = start_with(&world, "reset", "");
    let rt = pipgate_integration_tests::runtime::runtime();
    let (opened, ended_with_error) = rt.block_on(async {
        let tls = tunnel_to_pypi(&p, &[b"h2"]).await;
        let (mut client, conn) = h2::client::handshake(tls).await.unwrap();
        let conn = tokio::spawn(conn);
        let mut opened = 0;
        for _ in 0..5000 {
            let req = http::Request::get("https://pypi.org/simple/pubdep/")
                .body(())
                .unwrap();
            let ready = match tokio::time::timeout(Duration::from_secs(2), client.ready()).await {
                Ok(Ok(c)) => c,
                _ => break,
            };
            client = ready;
            match client.send_request(req, true) {
                // Dropping the response future at once resets the stream (RST_STREAM CANCEL).
                Ok((resp, _)) => drop(resp),
                Err(_) => break,
            }
            opened += 1;
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
        let ended_with_error = matches!(ended, Ok(Ok(Err(_))));
        (opened, ended_with_error)
    });
    let forwarded = world
        .public_origin()
        .requests()
        .iter()
        .filter(|r| r.path == "/simple/pubdep/")
        .count();
    eprintln!("opened {opened} streams; upstream saw {forwarded}; connection ended with error: {ended_with_error}");
    assert!(
        ended_with_error,
        "pipgate should close a rapid-reset connection with GOAWAY"
    );
    assert!(
        forwarded < opened,
        "every reset stream reached upstream ({forwarded}/{opened})"
    );
    served(&p);
}

#[test]
fn idle_intercepted_connection_is_closed() {
    let world = World::start();
    let p = start_with(&world, "idle", "[limits]\nheader_timeout = \"1s\"\n");
    let rt = pipgate_integration_tests::runtime::runtime();
    let closed_after = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = tunnel_to_pypi(&p, &[b"http/1.1"]).await;
        tls.write_all(b"GET /simple/pubdep/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n")
            .await
            .unwrap();
        // Read the answer, then stay silent: pipgate must close the idle connection.
        let start = Instant::now();
        let mut total = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(15), tls.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => total.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("connection still open after 15 s idle"),
            }
        }
        assert!(
            total.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&total)
        );
        start.elapsed()
    });
    eprintln!("idle intercepted connection closed after {closed_after:?}");
    assert!(closed_after < Duration::from_secs(8), "{closed_after:?}");
}

#[test]
fn h2_concurrent_stream_limit_is_advertised_and_held() {
    let world = World::start();
    let p = start_with(
        &world,
        "streams",
        "[limits]\nh2_max_concurrent_streams = 7\n",
    );
    let rt = pipgate_integration_tests::runtime::runtime();
    let (advertised, statuses) = rt.block_on(async {
        let tls = tunnel_to_pypi(&p, &[b"h2"]).await;
        let (client, conn) = h2::client::handshake(tls).await.unwrap();
        tokio::spawn(conn);
        let get = || {
            http::Request::get("https://pypi.org/simple/pubdep/")
                .body(())
                .unwrap()
        };
        let mut first = client.clone().ready().await.unwrap();
        let (resp, _) = first.send_request(get(), true).unwrap();
        let status = resp.await.unwrap().status().as_u16();
        assert_eq!(status, 200);
        let advertised = first.current_max_send_streams();
        // 20 requests at once: the client queues beyond the limit, every one is answered.
        let mut pending = Vec::new();
        for _ in 0..20 {
            let mut c = client.clone().ready().await.unwrap();
            pending.push(tokio::spawn(async move {
                let (resp, _) = c.send_request(get(), true).unwrap();
                resp.await.map(|r| r.status().as_u16()).unwrap_or(0)
            }));
        }
        let mut statuses = Vec::new();
        for p in pending {
            statuses.push(p.await.unwrap());
        }
        (advertised, statuses)
    });
    assert_eq!(
        advertised, 7,
        "SETTINGS_MAX_CONCURRENT_STREAMS from limits.h2_max_concurrent_streams"
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[test]
fn idle_blind_tunnel_is_closed_after_client_idle_timeout() {
    let world = World::start();
    let mut cfg = world.pipgate_config();
    cfg.unlisted_hosts = "tunnel".into();
    let mut toml = cfg.to_toml();
    toml.push_str("\n[limits]\nclient_idle_timeout = \"1s\"\n");
    let p = Pipgate::start(&world.scratch("tunnel-idle"), &toml);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Say nothing: the tunnel is closed once it has been idle for client_idle_timeout.
    let start = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the idle tunnel to be closed");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    served(&p);
}

/// A client connection of any kind (a TLS tunnel, or plain TCP).
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

/// A download of `http(s)://host/path` through `p` whose reader stops after the first 64 KiB:
/// for https, CONNECT, TLS and an origin-form GET; for http, an absolute-form GET on the proxy
/// connection. Its receive buffer is kept small so pipgate's side fills quickly. Returned
/// undropped, it holds its stream open without reading.
async fn stalled_download(p: &Pipgate, scheme: &str, host: &str, path: &str) -> Box<dyn Conn> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let tcp = socket.connect(p.addr).await.unwrap();
    let (mut conn, target): (Box<dyn Conn>, String) = match scheme {
        "http" => (Box::new(tcp), format!("http://{host}{path}")),
        _ => (
            Box::new(tunnel(p, tcp, host, &[b"http/1.1"]).await),
            path.to_owned(),
        ),
    };
    let get = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    conn.write_all(get.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = 0;
    while seen < buf.len() {
        match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf[seen..])).await {
            Ok(Ok(n)) if n > 0 => seen += n,
            end => panic!(
                "{target}: {end:?} after {seen} bytes; pipgate: {}",
                p.stderr()
            ),
        }
    }
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "{target}: {:?}",
        &buf[..64]
    );
    conn
}

/// An origin for `big.test` (an extra public index) and its file host `bigfiles.test`, over
/// `scheme` ("https" or "http"), serving `big-1.0.tar.gz` (48 MiB) and `small-1.0.tar.gz`
/// (1 MiB), and a pipgate for them with `extra` appended to its config.
fn big_file_host(
    world: &World,
    name: &str,
    scheme: &str,
    extra: &str,
) -> (pipgate_integration_tests::origin::RunningOrigin, Pipgate) {
    use pipgate_integration_tests::origin::Origin;
    use pipgate_integration_tests::world::ExtraIndex;
    let origin = Origin::builder(world.origin_ca())
        .host("big.test")
        .host("bigfiles.test")
        .route(
            "/packages/big-1.0.tar.gz",
            "application/octet-stream",
            vec![b'x'; BIG],
        )
        .route(
            "/packages/small-1.0.tar.gz",
            "application/octet-stream",
            vec![b'y'; 1 << 20],
        );
    let (origin, port) = match scheme {
        "http" => (origin.run_plain(), 80),
        _ => (origin.run(), 443),
    };
    let mut cfg = world.pipgate_config();
    cfg.extra_indexes.push(ExtraIndex {
        name: "big".into(),
        url: format!("{scheme}://big.test/simple/"),
        role: "public".into(),
        file_hosts: vec!["bigfiles.test".into()],
    });
    for host in ["big.test", "bigfiles.test"] {
        cfg.extra_resolve
            .push((format!("{host}:{port}"), origin.addr()));
    }
    let mut toml = cfg.to_toml();
    toml.push('\n');
    toml.push_str(extra);
    let p = Pipgate::start(&world.scratch(name), &toml);
    (origin, p)
}

/// The size of [`big_file_host`]'s big file.
const BIG: usize = 48 << 20;

/// Every download from one file host shares pipgate's one HTTP/2 connection to it, and data a
/// slow reader has not taken yet holds that connection's flow-control window. Several readers
/// that stop must not leave the window shut for everyone else.
#[test]
fn readers_that_stop_do_not_stall_other_downloads_from_the_host() {
    let world = World::start();
    let (origin, p) = big_file_host(&world, "stalled-readers", "https", "");

    let rt = pipgate_integration_tests::runtime::runtime();
    let stalled: Vec<_> = (0..4)
        .map(|_| {
            rt.block_on(stalled_download(
                &p,
                "https",
                "bigfiles.test",
                "/packages/big-1.0.tar.gz",
            ))
        })
        .collect();
    // Time for the stalled streams to take all the window they are allowed.
    std::thread::sleep(Duration::from_secs(2));

    let start = Instant::now();
    let resp = Probe::new(p.addr, &p.ca_pem)
        .send(Probe::request(
            "GET",
            "https://bigfiles.test/packages/small-1.0.tar.gz",
        ))
        .expect("a download while four readers are stalled");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body.len(), 1 << 20);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // HTTP/1.1 requests carry a Host header; HTTP/2 ones carry :authority instead. (Each
    // project's page is looked up too, for the hashes the downloads are checked against.)
    let asked: Vec<_> = origin
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/packages/"))
        .collect();
    assert_eq!(asked.len(), 5, "{asked:?}");
    assert!(
        asked.iter().all(|r| r.headers.get("host").is_none()),
        "the downloads did not go upstream over HTTP/2: {asked:?}"
    );
    drop(stalled);
}

/// Reads a stalled download again: what the sockets hold drains, then the connection must end
/// (pipgate cut it) well short of the file, not go on or merely stay quiet.
async fn assert_cut(stream: &mut dyn Conn) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 1 << 16];
    let mut read = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => read += n,
            end => break format!("{end:?}"),
        }
    };
    assert!(
        read < BIG / 2,
        "{read} bytes after the stall, ended by {end}"
    );
    assert!(!end.contains("Elapsed"), "not cut, only stalled: {end}");
}

/// A reader that stops is cut off once it has taken no bytes for `client_idle_timeout`, which
/// frees its share of the host's upstream connection.
#[test]
fn a_reader_that_stops_is_cut_after_the_client_idle_timeout() {
    reader_that_stops_is_cut("https");
}

/// The same on a plain-HTTP index (`http://`, no tunnel).
#[test]
fn a_plain_http_reader_that_stops_is_cut_too() {
    reader_that_stops_is_cut("http");
}

fn reader_that_stops_is_cut(scheme: &str) {
    let world = World::start();
    let (_origin, p) = big_file_host(
        &world,
        &format!("cut-{scheme}-reader"),
        scheme,
        "[limits]\nclient_idle_timeout = \"2s\"\n",
    );
    let rt = pipgate_integration_tests::runtime::runtime();
    let mut conn = rt.block_on(stalled_download(
        &p,
        scheme,
        "bigfiles.test",
        "/packages/big-1.0.tar.gz",
    ));
    std::thread::sleep(Duration::from_secs(5));
    rt.block_on(assert_cut(conn.as_mut()));
    let line = p.access_event("/packages/big-1.0.tar.gz");
    assert!(line.contains("complete=false"), "{line}");
}
