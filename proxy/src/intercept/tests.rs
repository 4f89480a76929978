//! The request checks and the upstream request's shape, with plain `http::Request<()>` values.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request};

use super::request::{check_authority, check_method_and_body, shape, strip_hop_by_hop};
use super::{Intercepted, Scheme};
use crate::access::Mode;
use crate::config::Config;
use crate::conn::Conn;
use crate::state::{Runtime, Shared};

fn conn() -> Conn {
    let config = Config::parse(
        "[ca]\ncert = \"ca.pem\"\nkey = \"ca.key\"\n",
        std::path::Path::new("/nonexistent"),
        None,
    )
    .unwrap();
    let rt = Arc::new(Runtime::new(config).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let ca =
        pipgate_certs::Ca::init(dir.path(), false, &pipgate_certs::Scope::Unconstrained).unwrap();
    let leaves = pipgate_certs::Leaves::new(ca, vec![b"http/1.1".to_vec()]).unwrap();
    let shared = Shared::new(
        Runtime::new(Config::embedded().unwrap()).unwrap(),
        leaves,
        None,
    );
    let (_tx, stop) = tokio::sync::watch::channel(false);
    Conn {
        shared,
        rt,
        peer: "127.0.0.1:5000".parse::<SocketAddr>().unwrap(),
        mode: Mode::Proxy,
        user: None,
        stop,
    }
}

fn site(host: &str, port: u16, scheme: Scheme) -> Intercepted {
    Intercepted {
        host: host.to_owned(),
        port,
        scheme,
        conn: conn(),
    }
}

fn get(uri: &str) -> http::request::Builder {
    Request::builder().method(Method::GET).uri(uri)
}

#[test]
fn a_request_stays_on_the_authority_its_connection_was_opened_for() {
    let s = site("pypi.org", 443, Scheme::Https);
    let ok = |r: Request<()>| check_authority(&s, &r).is_ok();
    assert!(ok(get("/simple/")
        .header("host", "pypi.org")
        .body(())
        .unwrap()));
    assert!(ok(get("/simple/")
        .header("host", "PyPI.org.:443")
        .body(())
        .unwrap()));
    // HTTP/1.0 without Host means the tunnel's host.
    assert!(ok(get("/simple/")
        .version(http::Version::HTTP_10)
        .body(())
        .unwrap()));
    // HTTP/2: the :authority.
    assert!(ok(get("https://pypi.org/simple/")
        .version(http::Version::HTTP_2)
        .body(())
        .unwrap()));
    let status = |r: Request<()>| check_authority(&s, &r).unwrap_err().status().as_u16();
    assert_eq!(
        status(get("/").header("host", "evil.test").body(()).unwrap()),
        421
    );
    assert_eq!(
        status(get("/").header("host", "pypi.org:8443").body(()).unwrap()),
        421
    );
    assert_eq!(
        status(
            get("https://evil.test/")
                .version(http::Version::HTTP_2)
                .body(())
                .unwrap()
        ),
        421
    );
    assert_eq!(
        status(
            get("/")
                .header("host", "pypi.org")
                .header("host", "evil.test")
                .body(())
                .unwrap()
        ),
        400
    );
    // HTTP/1.1 absolute form whose authority is not its Host.
    assert_eq!(
        status(
            get("https://pypi.org/")
                .header("host", "evil.test")
                .body(())
                .unwrap()
        ),
        400
    );
    assert_eq!(
        status(get("/").header("host", "a b").body(()).unwrap()),
        400
    );
    // Plain HTTP defaults to port 80.
    let plain = site("plain.test", 80, Scheme::Http);
    assert!(check_authority(
        &plain,
        &get("/").header("host", "plain.test").body(()).unwrap()
    )
    .is_ok());
}

#[test]
fn only_get_and_head_without_a_body_are_asked() {
    let ok = |r: Request<()>| check_method_and_body(&r).map_err(|f| f.status().as_u16());
    assert_eq!(ok(get("/").body(()).unwrap()), Ok(()));
    assert_eq!(ok(Request::head("/").body(()).unwrap()), Ok(()));
    assert_eq!(
        ok(get("/").header("content-length", "0").body(()).unwrap()),
        Ok(())
    );
    assert_eq!(ok(Request::post("/").body(()).unwrap()), Err(405));
    assert_eq!(ok(Request::put("/").body(()).unwrap()), Err(405));
    assert_eq!(
        ok(get("/").header("content-length", "12").body(()).unwrap()),
        Err(400)
    );
    assert_eq!(
        ok(get("/")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap()),
        Err(400)
    );
}

#[test]
fn hop_by_hop_headers_and_proxy_credentials_never_go_upstream() {
    let mut h = http::HeaderMap::new();
    for (k, v) in [
        ("connection", "keep-alive, x-secret"),
        ("x-secret", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-authorization", "Basic eDp5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("upgrade", "h2c"),
        ("host", "pypi.org"),
        ("accept", "text/html"),
    ] {
        h.append(k, HeaderValue::from_static(v));
    }
    strip_hop_by_hop(&mut h);
    let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(left, ["accept"]);
}

#[test]
fn the_upstream_request_is_the_canonical_one_unconditional_and_bodiless() {
    let s = site("pypi.org", 443, Scheme::Https);
    let rt = s.conn.rt.clone();
    let policy = &rt.config.policy;
    let target = policy.classify("pypi.org", "/simple/Acme_Lib").unwrap();
    let req = Request::head("/simple/Acme_Lib")
        .header("host", "pypi.org")
        .header(header::IF_NONE_MATCH, "\"x\"")
        .header(header::RANGE, "bytes=0-1")
        .header(header::ACCEPT_ENCODING, "identity")
        .header(header::CONTENT_LENGTH, "0")
        .body(())
        .unwrap();
    let (up, asked) = shape(&s, &target, "/simple/Acme_Lib", req, false, false).unwrap();
    assert_eq!(up.uri(), "https://pypi.org/simple/acme-lib/");
    assert_eq!(up.method(), Method::GET);
    for h in [
        header::IF_NONE_MATCH,
        header::RANGE,
        header::HOST,
        header::CONTENT_LENGTH,
    ] {
        assert!(!up.headers().contains_key(&h), "{h}");
    }
    assert_eq!(
        up.headers()[header::ACCEPT_ENCODING],
        "zstd, gzip;q=0.9, br;q=0.5"
    );
    assert_eq!(asked.method, Method::HEAD);
    assert_eq!(
        asked.etag.as_ref().map(|v| v.to_str().unwrap()),
        Some("\"x\"")
    );
    assert_eq!(asked.upstream_path, "/simple/acme-lib/");
    // A file keeps its path, its conditionals and its Range.
    let target = policy
        .classify("files.pythonhosted.org", "/packages/x-1.0.tar.gz")
        .unwrap();
    let files = site("files.pythonhosted.org", 443, Scheme::Https);
    let range = || {
        get("/packages/x-1.0.tar.gz")
            .header(header::RANGE, "bytes=0-1")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(())
            .unwrap()
    };
    let (up, _) = shape(
        &files,
        &target,
        "/packages/x-1.0.tar.gz",
        range(),
        false,
        false,
    )
    .unwrap();
    assert_eq!(
        up.uri(),
        "https://files.pythonhosted.org/packages/x-1.0.tar.gz"
    );
    assert_eq!(up.headers()[header::RANGE], "bytes=0-1");
    // One judged by its digest is asked for whole and unencoded: its bytes are the file's.
    let (up, _) = shape(
        &files,
        &target,
        "/packages/x-1.0.tar.gz",
        range(),
        false,
        true,
    )
    .unwrap();
    assert!(up.headers().get(header::RANGE).is_none());
    assert_eq!(up.headers()[header::ACCEPT_ENCODING], "identity");
}

#[test]
fn the_client_wants_the_pep_691_type_it_rates_highest() {
    use pipgate_policy::PageFormat::{Html, HtmlV1, JsonV1};
    let wants = |a: &str| super::request::wanted_format(Some(&HeaderValue::from_str(a).unwrap()));
    assert_eq!(super::request::wanted_format(None), Html);
    assert_eq!(wants("text/html"), Html);
    assert_eq!(wants("*/*"), Html);
    // pip >= 22.2 and uv.
    let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
    assert_eq!(wants(pip), JsonV1);
    assert_eq!(
        wants("application/vnd.pypi.simple.v1+html, text/html;q=0.5"),
        HtmlV1
    );
    assert_eq!(
        wants("application/vnd.pypi.simple.v1+json;q=0, text/html"),
        Html
    );
    assert_eq!(
        wants(
            "application/vnd.pypi.simple.v1+html;q=0.9, application/vnd.pypi.simple.v1+json;q=0.5"
        ),
        HtmlV1
    );
}
