//! One intercepted request: authority check, policy decision, upstream exchange, and the
//! page rewrite (or the untouched stream for files).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use pipgate_policy::{Check, Name, PageFormat, ProjectStream, Summary, Target, Verdict};

use crate::body::{self, Body};
use crate::pages::{self, PageError};

mod page;
use crate::respond::Failure;
use crate::state::{Runtime, Shared};
use page::{
    derived_etag, page_error, page_response, record, rewrite_legacy, Answer, Caching, Outcome,
    PageStream, Rewriter,
};

/// What a client connection was opened for: requests must stay on this authority.
#[derive(Debug)]
pub struct Tunnel {
    /// Lower-cased host of the CONNECT (or of the absolute-form URL).
    pub host: String,
    pub port: u16,
    /// "https" for intercepted TLS, "http" for absolute-form plain-HTTP indexes.
    pub scheme: &'static str,
    pub client: SocketAddr,
}

/// The host pip 8/9 use by default; PyPI answers it with a redirect to pypi.org.
pub const LEGACY_PYPI: &str = "pypi.python.org";

/// A legacy JSON document at least this large is rewritten on a blocking-pool thread (~1 ms
/// of policy work at this size).
const OFF_THREAD: usize = 256 * 1024;

/// What the access log says about the policy's part in a request.
#[derive(Debug, Default)]
struct Note {
    index: Option<String>,
    name: Option<Name>,
    decision: Option<&'static str>,
    rule: Option<&'static str>,
    /// A page's link counts, once it has ended (a streamed page ends after the handler).
    links: Outcome,
}

/// Serves one request on an intercepted connection. Never fails: every error is a response.
pub async fn handle(
    shared: Arc<Shared>,
    tunnel: Arc<Tunnel>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let start = Instant::now();
    // One runtime for the whole request: a reload mid-request does not mix policies.
    let rt = shared.runtime.load_full();
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut note = Note::default();
    let resp = match route(&shared, &rt, &tunnel, req, &mut note).await {
        Ok(resp) => resp,
        Err(failure) => {
            if let Failure::Upstream { error, .. } = &failure {
                shared.metrics.upstream_error(error.kind());
            }
            if note.decision.is_none() {
                note.rule = Some(failure.rule());
            }
            tracing::debug!(client = %tunnel.client, host = %tunnel.host, %path, reason = %failure.message(), "refused");
            failure.into_response()
        }
    };
    let status = resp.status().as_u16();
    shared.metrics.request(&tunnel.host, status);
    // The access event is written when the body is done (or dropped), so `bytes` and
    // `duration_ms` describe the whole transfer, streamed files included.
    let log = AccessLog {
        tunnel,
        method,
        path,
        status,
        start,
        note,
        bytes: 0,
        complete: false,
    };
    let (parts, inner) = resp.into_parts();
    Ok(Response::from_parts(
        parts,
        http_body_util::BodyExt::boxed(Logged { inner, log }),
    ))
}

/// One request's access-log event, emitted on drop.
struct AccessLog {
    tunnel: Arc<Tunnel>,
    method: Method,
    path: String,
    status: u16,
    start: Instant,
    note: Note,
    bytes: u64,
    /// False when the client went away (or the upstream failed) before the body ended.
    complete: bool,
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let note = &self.note;
        let links = note.links.get();
        tracing::info!(
            target: "pipgate::access",
            client = %self.tunnel.client,
            method = %self.method,
            host = %self.tunnel.host,
            path = %self.path,
            status = self.status,
            bytes = self.bytes,
            complete = self.complete,
            duration_ms = self.start.elapsed().as_secs_f64() * 1000.0,
            index = note.index.as_deref(),
            name = note.name.as_ref().map(Name::as_str),
            decision = note.decision,
            rule = note.rule,
            kept = links.map(|l| l.kept),
            dropped = links.map(|l| l.dropped),
        );
    }
}

/// A response body that counts what it delivers for the access log.
struct Logged {
    inner: Body,
    log: AccessLog,
}

impl Drop for Logged {
    fn drop(&mut self) {
        // hyper stops polling once a body says it has ended, so `None` may never be seen.
        if http_body::Body::is_end_stream(&self.inner) {
            self.log.complete = true;
        }
    }
}

impl http_body::Body for Logged {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.log.bytes += data.len() as u64;
                }
            }
            std::task::Poll::Ready(None) => this.log.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

async fn route(
    shared: &Arc<Shared>,
    rt: &Arc<Runtime>,
    tunnel: &Tunnel,
    req: Request<Incoming>,
    note: &mut Note,
) -> Result<Response<Body>, Failure> {
    check_authority(tunnel, &req)?;
    check_method_and_body(&req)?;
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    if tunnel.host == LEGACY_PYPI {
        return Ok(redirect_to_pypi(&path_and_query));
    }
    let policy = &rt.config.policy;
    let target = policy
        .classify(&tunnel.host, &path_and_query)
        .map_err(|e| match e {
            pipgate_policy::PathError::UnknownHost => Failure::Forbidden(format!(
                "{} is no configured index or file host",
                tunnel.host
            )),
            other => Failure::BadRequest(other.to_string()),
        })?;
    let index = target.index();
    note.index = Some(index.name().to_owned());
    note.name = target.name().cloned();

    let verdict = match policy.check(&target) {
        Check::Done(v) => v,
        Check::Lookup(questions) => {
            let idle = rt.config.upstream.idle_timeout;
            let answers = rt.lookups.answer(&rt.upstream, questions, idle).await;
            policy.decide(&target, &answers)
        }
    };
    match verdict {
        Verdict::Allow => {}
        Verdict::Block(block) => {
            note.decision = Some("block");
            note.rule = Some(block.rule.as_str());
            shared.metrics.decision(block.rule.as_str(), "block");
            tracing::warn!(
                target: "pipgate::policy",
                client = %tunnel.client,
                index = index.name(),
                name = note.name.as_ref().map(Name::as_str),
                rule = block.rule.as_str(),
                action = "block",
                status = block.status,
                "{}", block.message
            );
            return Err(Failure::Blocked(block));
        }
    }

    let page = PageKind::of(&target);
    // Ask upstream for exactly what was decided: the canonical URL of the project (or root),
    // not the client's spelling of it, so no parser differential sits between the two.
    let upstream_path = match &target {
        Target::Project { index, name } => index.project_url(name).path().to_owned(),
        Target::Root { index } => index.url().path().to_owned(),
        _ => path_and_query.clone(),
    };
    let upstream_uri = upstream_uri(tunnel, &upstream_path)?;
    // The body is never forwarded (`check_method_and_body` refused any that was declared): a
    // body on a GET is a second request to an upstream that reads it as one (CL.0).
    let (mut parts, _body) = req.into_parts();
    let client_method = parts.method.clone();
    let client_version = parts.version;
    let client_etag = parts.headers.get(header::IF_NONE_MATCH).cloned();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    if page.is_some() {
        // A 304 or 206 on an index page would hand the client an unfiltered or stale copy.
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
        // pipgate decodes before rewriting; ask for what it can decode.
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, br, zstd"),
        );
        if parts.method == Method::HEAD {
            parts.method = Method::GET;
        }
    }
    parts.uri = upstream_uri;
    parts.version = http::Version::HTTP_11;
    let upstream_req = Request::from_parts(parts, body::empty());
    let resp = rt
        .upstream
        .send(upstream_req)
        .await
        .map_err(|error| Failure::Upstream {
            host: tunnel.host.clone(),
            error,
        })?;

    if is_redirect(resp.status()) && resp.headers().contains_key(header::LOCATION) {
        return check_redirect(rt, tunnel, &upstream_path, page, resp);
    }
    if page.is_none() {
        note.decision = Some("stream");
        return file_answer(
            tunnel,
            resp,
            rt.config.upstream.idle_timeout,
            &path_and_query,
        );
    }
    note.decision = Some("rewrite");
    let status = resp.status();
    // Only a page (200) is rewritten, and only a refusal (4xx) is relayed, in pipgate's words.
    // Anything else would hand the client something pipgate did not write: a 304 (it asked for
    // no conditional, so it can only be wrong), a 206, a 3xx without a usable Location.
    if status.is_client_error() {
        return Ok(page_error(tunnel, status, &path_and_query));
    }
    if status != StatusCode::OK {
        let reason = if status.is_server_error() {
            format!("upstream answered {status}")
        } else {
            format!("unexpected {status} for an index page")
        };
        return Err(Failure::BadUpstreamAnswer {
            host: tunnel.host.clone(),
            reason,
        });
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut caching = Caching {
        cache_control: resp.headers().get(header::CACHE_CONTROL).cloned(),
        client_etag,
        derived: None,
    };
    let (resp_parts, incoming) = resp.into_parts();
    let limits = &rt.config.limits;
    let idle = rt.config.upstream.idle_timeout;
    let host = tunnel.host.as_str();
    let bad = |reason: String| Failure::BadUpstreamAnswer {
        host: host.to_owned(),
        reason,
    };
    let page_url = url::Url::parse(&tunnel_url(tunnel, &upstream_path))
        .map_err(|e| Failure::BadRequest(format!("bad URL: {e}")))?;
    let format = || {
        PageFormat::from_content_type(&content_type).ok_or_else(|| {
            bad(format!(
                "unexpected content type {content_type:?} for an index page"
            ))
        })
    };
    // Project pages and root listings, HTML or JSON, are rewritten as they arrive; the legacy
    // JSON API is read whole first.
    let rewriter = match &target {
        Target::Project { index, .. } => {
            let rewriter = ProjectStream::new(index, &page_url, format()?);
            // A project page is a function of upstream's bytes, the URL, the index and
            // pipgate's version: upstream's strong ETag names it before the body is read. (A
            // root listing also depends on what pipgate has learnt of private names.)
            let upstream_etag = resp_parts.headers.get(header::ETAG);
            caching.derived =
                derived_etag(upstream_etag, &page_url, index, rewriter.content_type());
            Some(Rewriter::Project(rewriter))
        }
        Target::Root { index } => {
            let known = rt.lookups.known_private();
            let known = move |n: &Name| known.contains(n);
            Some(Rewriter::Root(policy.root_stream(index, format()?, known)))
        }
        _ => None,
    };
    if let Some(rewriter) = rewriter {
        let source = pages::Source::new(&resp_parts.headers, incoming, idle)
            .map_err(|e| Failure::page(host, e))?;
        let page = PageStream::new(
            shared.clone(),
            host,
            source,
            rewriter,
            limits.max_page_bytes,
            rt.budget.share(),
        );
        note.links = page.outcome();
        let answer = if client_method == Method::HEAD {
            Answer::Head
        } else if client_version < http::Version::HTTP_11 {
            // HTTP/1.0 has no chunked framing: a cut close-delimited body would look whole.
            Answer::Whole
        } else {
            Answer::Stream
        };
        return page.respond(answer, caching).await;
    }
    let mut share = rt.budget.share();
    let body = pages::read_decoded(
        &resp_parts.headers,
        incoming,
        limits.max_page_bytes,
        idle,
        &mut share,
    )
    .await
    .map_err(|e| Failure::page(host, e))?;
    // The walk holds about three times the document at its peak.
    share
        .cover(body.len().saturating_mul(3))
        .map_err(|e| Failure::page(host, PageError::Busy(e)))?;
    let index = target.index();
    let rewritten = if body.len() < OFF_THREAD {
        rewrite_legacy(rt, index, &page_url, &content_type, &body)
    } else {
        // A large document takes milliseconds: not on the thread that serves everyone else's
        // connections.
        let (rt, index) = (Arc::clone(rt), index.clone());
        tokio::task::spawn_blocking(move || {
            rewrite_legacy(&rt, &index, &page_url, &content_type, &body)
        })
        .await
        .unwrap_or_else(|e| Err(PageError::Rewrite(format!("the rewrite failed: {e}"))))
    }
    .map_err(|e| Failure::page(host, e))?;
    let summary = Summary {
        kept: rewritten.kept,
        dropped: rewritten.dropped,
    };
    record(shared, &note.links, summary);
    let mut resp = page_response(rewritten.body, rewritten.content_type, caching);
    if client_method == Method::HEAD {
        *resp.body_mut() = body::empty();
    }
    Ok(resp)
}

/// The kinds of index page: a redirect of one must land on another of the same kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageKind {
    Root,
    Project,
    LegacyJson,
}

impl PageKind {
    /// `None` for a file (or anything else that is no page).
    fn of(target: &Target<'_>) -> Option<PageKind> {
        match target {
            Target::Root { .. } => Some(PageKind::Root),
            Target::Project { .. } => Some(PageKind::Project),
            Target::LegacyJson { .. } => Some(PageKind::LegacyJson),
            Target::File { .. } | Target::Other { .. } => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            PageKind::Root => "the root listing",
            PageKind::Project => "a project page",
            PageKind::LegacyJson => "the JSON API",
        }
    }
}

/// The statuses that redirect: `300` offers choices and `304`/`305` are no redirects at all.
fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// A redirect passes only if the client's next request comes back through pipgate to a door
/// that decides it the same way: an intercepted host and port, and for a page, a URL that
/// classifies as the same kind of page (a page redirected to a file URL would be streamed to
/// the client untouched, as a file). The `Location` relayed is the URL that was checked, as
/// the `url` crate serializes it, never upstream's spelling of it (`https://pypi.org\@evil/`
/// is pypi.org to a WHATWG parser and evil to an RFC 3986 one).
fn check_redirect(
    rt: &Runtime,
    tunnel: &Tunnel,
    path: &str,
    asked: Option<PageKind>,
    resp: Response<Incoming>,
) -> Result<Response<Body>, Failure> {
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = tunnel_url(tunnel, path);
    let refuse = |reason: String| Failure::BadUpstreamAnswer {
        host: tunnel.host.clone(),
        reason,
    };
    let target = url::Url::parse(&base)
        .and_then(|b| b.join(location))
        .map_err(|_| refuse(format!("unparsable redirect Location {location:?}")))?;
    let policy = &rt.config.policy;
    let host = target.host_str().unwrap_or("").to_ascii_lowercase();
    let port = target.port_or_known_default().unwrap_or(0);
    let http = target.scheme() == "http";
    // The ports a CONNECT (`connect::plan`) or an absolute-form request (`connect::plain`)
    // would be served on.
    let served_port = if http {
        policy.indexes().iter().any(|ix| {
            ix.is_http()
                && ix.port() == port
                && (ix.host() == host || ix.file_hosts().contains(&host))
        })
    } else {
        port == 443
            || policy
                .indexes()
                .iter()
                .any(|ix| ix.host() == host && ix.port() == port && !ix.is_http())
    };
    let reachable = (target.scheme() == "https" || (http && tunnel.scheme == "http"))
        && policy.is_intercepted(&host)
        && target.username().is_empty()
        && target.password().is_none()
        && served_port;
    if !reachable {
        return Err(refuse(format!(
            "redirect to {target}, which is no index or file host pipgate serves"
        )));
    }
    if let Some(asked) = asked {
        let mut path_and_query = target.path().to_owned();
        if let Some(q) = target.query() {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        let landed = policy
            .classify(&host, &path_and_query)
            .ok()
            .as_ref()
            .and_then(PageKind::of);
        if landed != Some(asked) {
            return Err(refuse(format!(
                "redirect of {} to {target}, which is not {}",
                asked.describe(),
                asked.describe()
            )));
        }
    }
    let checked = HeaderValue::from_str(target.as_str())
        .map_err(|_| refuse(format!("unusable redirect Location {target}")))?;
    let (mut parts, _) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::LOCATION, checked);
    Ok(Response::from_parts(parts, body::empty()))
}

/// Whether a `Content-Type` is one an installer reads as an index page.
fn is_page_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "text/html"
        || essence == "application/xhtml+xml"
        || essence.starts_with("application/vnd.pypi.simple.")
        || essence == "application/json"
        || essence == "text/json"
        || essence.ends_with("+json")
}

/// A file's answer, streamed untouched, unless it is an index page (a wheel is not HTML):
/// that is refused when it is a success (502) and worded by pipgate when it is not, so no page
/// ever reaches a client through the file door unfiltered.
fn file_answer(
    tunnel: &Tunnel,
    resp: Response<Incoming>,
    idle: std::time::Duration,
    path: &str,
) -> Result<Response<Body>, Failure> {
    let page_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .filter(|ct| is_page_content_type(ct));
    match page_type {
        None => Ok(passthrough(resp, idle)),
        Some(ct) if resp.status().is_success() => Err(Failure::BadUpstreamAnswer {
            host: tunnel.host.clone(),
            reason: format!("a file answered with the content type of an index page ({ct:?})"),
        }),
        Some(_) => Ok(page_error(tunnel, resp.status(), path)),
    }
}

fn passthrough(resp: Response<Incoming>, idle: std::time::Duration) -> Response<Body> {
    let (mut parts, incoming) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body::stream_with_idle(incoming, idle))
}

fn redirect_to_pypi(path_and_query: &str) -> Response<Body> {
    let location = format!("https://pypi.org{path_and_query}");
    let mut resp = Response::new(body::full(format!("pipgate: moved to {location}\n")));
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Refuses a request whose authority is not the one the tunnel was opened for (421).
fn check_authority<B>(tunnel: &Tunnel, req: &Request<B>) -> Result<(), Failure> {
    // RFC 9112 3.2: more than one Host line is a 400; two names for one request is how
    // authority confusion starts.
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(Failure::BadRequest("more than one Host header".into()));
    }
    let default_port = if tunnel.scheme == "http" { 80 } else { 443 };
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
        None => req
            .headers()
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes())),
    };
    // HTTP/1.0 inside the tunnel may omit Host: the tunnel's host is meant.
    let Some(authority) = authority else {
        return Ok(());
    };
    let Some(asked) = HostPort::parse(&authority, default_port) else {
        return Err(Failure::BadRequest(format!("bad authority {authority:?}")));
    };
    if !asked.is(&tunnel.host, tunnel.port) {
        return Err(Failure::Misdirected(format!(
            "this connection was opened for {}:{}; a request for {}:{} is refused",
            tunnel.host,
            tunnel.port,
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
fn check_method_and_body<B>(req: &Request<B>) -> Result<(), Failure> {
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

/// `scheme://host[:port]path` of the tunnel (the port only when it is not the scheme's
/// default), in one allocation: it runs for every request.
fn tunnel_url(tunnel: &Tunnel, path: &str) -> String {
    let mut url = String::with_capacity(
        tunnel.scheme.len() + "://".len() + tunnel.host.len() + ":65535".len() + path.len(),
    );
    url.push_str(tunnel.scheme);
    url.push_str("://");
    url.push_str(&tunnel.host);
    let default = if tunnel.scheme == "http" { 80 } else { 443 };
    if tunnel.port != default {
        let _ = write!(url, ":{}", tunnel.port);
    }
    url.push_str(path);
    url
}

fn upstream_uri(tunnel: &Tunnel, path_and_query: &str) -> Result<Uri, Failure> {
    // The `Uri` keeps the string's allocation.
    Uri::try_from(tunnel_url(tunnel, path_and_query))
        .map_err(|e| Failure::BadRequest(format!("bad request target: {e}")))
}

/// Headers that describe one hop, not the message (RFC 9110 7.6.1), plus proxy credentials.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
