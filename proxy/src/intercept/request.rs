//! The request side of an intercepted exchange: what the client may ask (its authority, its
//! method, no body) and the request pipgate sends upstream in its place.

use std::borrow::Cow;
use std::fmt::Write as _;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use pipgate_policy::{PageFormat, PageKind, Target};

use super::{Intercepted, Scheme};
use crate::body::{self, Body};
use crate::lookup::ACCEPT_JSON;
use crate::respond::Failure;

/// What the answer needs to know of the client's request once it has gone upstream.
#[derive(Debug)]
pub(super) struct Asked {
    pub(super) method: Method,
    pub(super) version: http::Version,
    /// The client's `If-None-Match` (pages only ever revalidate against pipgate's ETag).
    pub(super) etag: Option<HeaderValue>,
    /// The client's path and query (messages name it).
    pub(super) path: String,
    /// The path pipgate asked upstream for.
    pub(super) upstream_path: String,
    /// The page format the client asked for (its `Accept`).
    pub(super) wants: PageFormat,
    /// A download asked for whole and as stored (judged by its digest, or one the file cache
    /// may store): a `206` for it is refused, and the client's range is cut from the whole.
    pub(super) whole: bool,
    /// The client's `Range` and `If-Range`, when the download is asked for whole instead (the
    /// range is cut from it).
    pub(super) range: Option<(HeaderValue, Option<HeaderValue>)>,
    /// The client's `Accept-Encoding` (whether its page may be gzipped).
    pub(super) accept_encoding: Option<HeaderValue>,
}

/// The page format an `Accept` header prefers: the PEP 691 type with the highest `q` (JSON on
/// a tie), and `text/html` when it names neither (PEP 691: HTML is the default).
pub(super) fn wanted_format(accept: Option<&HeaderValue>) -> PageFormat {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return PageFormat::Html;
    };
    let mut best = (0.0f32, PageFormat::Html);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let format =
            match media.as_str() {
                "application/vnd.pypi.simple.v1+json"
                | "application/vnd.pypi.simple.latest+json" => PageFormat::JsonV1,
                "application/vnd.pypi.simple.v1+html"
                | "application/vnd.pypi.simple.latest+html" => PageFormat::HtmlV1,
                _ => continue,
            };
        let better = q > best.0 || (q == best.0 && format == PageFormat::JsonV1);
        if q > 0.0 && better {
            best = (q, format);
        }
    }
    best.1
}

/// Refuses a request whose authority is not the one the connection was opened for (421), or
/// that is ambiguous about it (400).
pub(super) fn check_authority<B>(site: &Intercepted, req: &Request<B>) -> Result<(), Failure> {
    // RFC 9112 3.2: more than one Host line is a 400; two names for one request is how
    // authority confusion starts.
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(Failure::BadRequest("more than one Host header".into()));
    }
    let default_port = site.scheme.default_port();
    if let (Some(uri), Some(host)) = (req.uri().authority(), host_header) {
        let from_host = std::str::from_utf8(host.as_bytes())
            .ok()
            .and_then(|h| HostPort::parse(h, default_port));
        if req.version() < http::Version::HTTP_2
            && from_host != HostPort::parse(uri.as_str(), default_port)
        {
            return Err(Failure::BadRequest(format!(
                "request target authority {uri} differs from Host {}",
                String::from_utf8_lossy(host.as_bytes())
            )));
        }
    }
    let authority = match req.uri().authority() {
        Some(a) => Some(Cow::Borrowed(a.as_str())),
        None => host_header.map(|h| String::from_utf8_lossy(h.as_bytes())),
    };
    // HTTP/1.0 inside the tunnel may omit Host: the tunnel's host is meant.
    let Some(authority) = authority else {
        return Ok(());
    };
    let Some(asked) = HostPort::parse(&authority, default_port) else {
        return Err(Failure::BadRequest(format!("bad authority {authority:?}")));
    };
    if !asked.is(&site.host, site.port) {
        return Err(Failure::Misdirected(format!(
            "this connection was opened for {}:{}; a request for {}:{} is refused",
            site.host,
            site.port,
            asked.host().to_ascii_lowercase(),
            asked.port
        )));
    }
    Ok(())
}

/// Index hosts are read-only: only `GET` and `HEAD` are served (405 otherwise), and a request
/// that declares a body is refused (400), over HTTP/1.1 (`Content-Length`, `Transfer-Encoding`)
/// and HTTP/2 (`content-length`) alike. A body pipgate forwarded would be a second request to
/// an upstream that reads it as one (CL.0 smuggling), asking what pipgate never decided.
pub(super) fn check_method_and_body<B>(req: &Request<B>) -> Result<(), Failure> {
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        return Err(Failure::MethodNotAllowed(format!(
            "{method}: index hosts are served for GET and HEAD only"
        )));
    }
    let headers = req.headers();
    let declared_length = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .any(|v| v.as_bytes().iter().any(|&b| b != b'0'));
    if declared_length || headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(Failure::BadRequest(format!(
            "a {method} request with a body is refused"
        )));
    }
    Ok(())
}

/// The request pipgate sends upstream for the client's `req` to `target`: the canonical URL
/// of what was decided (never the client's spelling of it, so no parser differential sits
/// between the two), the client's headers less those of its hop and its credentials, and no
/// body. A page is asked for unconditionally and whole (a `304` or `206` would hand the client
/// an unfiltered or stale copy), in the encodings pipgate decodes, and `HEAD` as `GET`.
///
/// When the file rules need upload times (`json_for_rules`), a project page is asked for as
/// PEP 691 JSON whatever the client accepts, and written back in the format it wants.
pub(super) fn shape<B>(
    site: &Intercepted,
    target: &Target<'_>,
    path_and_query: &str,
    req: Request<B>,
    json_for_rules: bool,
    whole: bool,
) -> Result<(Request<Body>, Asked), Failure> {
    let upstream_path = match target {
        Target::Project { index, name } => index.project_url(name).path().to_owned(),
        Target::Root { index } => index.url().path().to_owned(),
        _ => path_and_query.to_owned(),
    };
    let uri = Uri::try_from(site_url(site, &upstream_path))
        .map_err(|e| Failure::BadRequest(format!("bad request target: {e}")))?;
    // The body is never forwarded (`check_method_and_body` refused any that was declared).
    let (mut parts, _body) = req.into_parts();
    let asked = Asked {
        method: parts.method.clone(),
        version: parts.version,
        etag: parts.headers.get(header::IF_NONE_MATCH).cloned(),
        path: path_and_query.to_owned(),
        upstream_path,
        wants: wanted_format(parts.headers.get(header::ACCEPT)),
        whole,
        range: None,
        accept_encoding: parts.headers.get(header::ACCEPT_ENCODING).cloned(),
    };
    let mut asked = asked;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    if PageKind::of(target).is_some() {
        for h in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
        ] {
            parts.headers.remove(h);
        }
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static(crate::decode::ACCEPT_ENCODINGS),
        );
        if parts.method == Method::HEAD {
            parts.method = Method::GET;
        }
        if json_for_rules && matches!(target, Target::Project { .. }) {
            parts
                .headers
                .insert(header::ACCEPT, HeaderValue::from_static(ACCEPT_JSON));
        }
    }
    if whole {
        // A download judged by its digest, or stored, is asked for whole and as stored: a
        // range's bytes, or an encoded body's, are not the file's (a range is cut from the
        // judged whole).
        let if_range = parts.headers.remove(header::IF_RANGE);
        asked.range = parts.headers.remove(header::RANGE).map(|r| (r, if_range));
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    Ok((Request::from_parts(parts, body::empty()), asked))
}

/// Headers that describe one hop, not the message (RFC 9110 7.6.1), plus proxy credentials.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        header::CONNECTION,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HOST,
    ] {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// `scheme://host[:port]path` of the connection (the port only when it is not the scheme's
/// default), in one allocation: it runs for every request.
pub(super) fn site_url(site: &Intercepted, path: &str) -> String {
    let scheme = site.scheme.as_str();
    let mut url = String::with_capacity(
        scheme.len() + "://".len() + site.host.len() + ":65535".len() + path.len(),
    );
    url.push_str(scheme);
    url.push_str("://");
    url.push_str(&site.host);
    if site.port != site.scheme.default_port() {
        let _ = write!(url, ":{}", site.port);
    }
    url.push_str(path);
    url
}

impl Scheme {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Https => 443,
            Scheme::Http => 80,
        }
    }
}

/// The host (trailing dot removed, compared without regard to case) and port of an authority.
#[derive(Debug)]
struct HostPort {
    authority: http::uri::Authority,
    port: u16,
}

impl HostPort {
    fn parse(authority: &str, default_port: u16) -> Option<HostPort> {
        let authority = authority.parse::<http::uri::Authority>().ok()?;
        let port = authority.port_u16().unwrap_or(default_port);
        Some(HostPort { authority, port })
    }

    fn host(&self) -> &str {
        self.authority.host().trim_end_matches('.')
    }

    fn is(&self, host: &str, port: u16) -> bool {
        self.port == port && self.host().eq_ignore_ascii_case(host)
    }
}

impl PartialEq for HostPort {
    fn eq(&self, other: &HostPort) -> bool {
        other.is(self.host(), self.port)
    }
}
