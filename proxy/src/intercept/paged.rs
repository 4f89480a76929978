//! The page cache's part in an intercepted request (`[cache] pages`, see
//! `crate::cache::pages`): upstream's raw page is stored as it streams to its rewrite, and a
//! stored page is only ever an input to the same rewrite a live one gets, so every serve runs
//! today's policy and rules on it. The decision was made before this is asked, so a name that
//! is private (or a request refused) never reaches it.
//!
//! - `revalidate`: every request asks upstream with the stored page's validators; a `304` is
//!   answered from the stored page.
//! - `ttl`: a page validated less than `page_ttl` ago is answered without asking (with `Age`).
//! - On an upstream failure (no answer, a timeout, a 5xx) a page validated less than
//!   `stale_if_error` ago is answered, with `Age` and `Warning: 110`/`111`; past it the
//!   failure is answered as without a cache.

use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use pipgate_policy::{PageKind, Target};

use super::answer;
use super::request::{site_url, Asked};
use super::{Intercepted, Note};
use crate::body::{self, Body, BoxError};
use crate::cache::pages::{self, PageMeta, Stored};
use crate::cache::Cache;
use crate::config::PageCaching;
use crate::respond::Failure;
use crate::state::Runtime;

/// The headers of upstream's page that are stored with it (they describe its body).
const KEPT: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::ETAG,
    header::LAST_MODIFIED,
    header::CACHE_CONTROL,
];

/// A page request the cache may answer or store.
pub(super) struct Cacheable {
    cache: Arc<Cache>,
    key: String,
    stored: Option<Stored>,
    url: String,
    name: Option<String>,
    /// A file's `.metadata` (PEP 658): immutable (it is named by the file's hash), so a stored
    /// one is answered without asking upstream, untouched, like a cached file.
    metadata: bool,
}

/// The page cache's view of a request for `target` (None: pages are not cached, or this is no
/// page).
pub(super) fn consult(
    site: &Intercepted,
    rt: &Runtime,
    target: &Target<'_>,
    upstream: &Request<Body>,
) -> Option<Cacheable> {
    let cache = site.conn.shared.cache.as_ref()?;
    // pip asks for a file's metadata before the file: without it an install cannot start with
    // the index down, so it is kept with the pages.
    let metadata = matches!(target, Target::File { metadata: true, .. })
        && upstream.method() == http::Method::GET;
    if rt.config.cache.pages == PageCaching::Off || (PageKind::of(target).is_none() && !metadata) {
        return None;
    }
    let url = site_url(site, upstream.uri().path());
    let accept = upstream
        .headers()
        .get(header::ACCEPT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let key = pages::key(target.index().name(), &url, &accept);
    Some(Cacheable {
        stored: cache.pages.get(&key),
        cache: cache.clone(),
        key,
        url,
        name: target.name().map(|n| n.as_str().to_owned()),
        metadata,
    })
}

/// The exchange of a cacheable page request, and its answer.
pub(super) async fn exchange(
    site: &Intercepted,
    rt: &Arc<Runtime>,
    target: &Target<'_>,
    asked: Asked,
    mut upstream: Request<Body>,
    c: Cacheable,
    note: &mut Note,
) -> Result<Response<Body>, Failure> {
    let settings = &rt.config.cache;
    if c.metadata {
        if let Some(stored) = &c.stored {
            if let Some(body) = c.body(&stored.meta).await {
                c.cache.hit(body.len() as u64);
                note.cache = Some("hit");
                note.decision.get_or_insert("stream");
                return Ok(stored_page(&stored.meta, body));
            }
        }
        let resp = send(site, rt, upstream).await?;
        return live(site, rt, target, asked, resp, c, note).await;
    }
    let again = c.stored.as_ref().map(|_| unconditional(&upstream));
    if let Some(stored) = &c.stored {
        if settings.pages == PageCaching::Ttl && stored.age < settings.page_ttl {
            if let Some(body) = c.body(&stored.meta).await {
                c.cache.stats.page_hits.fetch_add(1, Relaxed);
                note.cache = Some("hit");
                let mark = Mark::Aged(stored);
                return rewritten(site, rt, target, asked, stored, body, note, mark).await;
            }
        }
        for (validator, conditional) in [
            (header::ETAG, header::IF_NONE_MATCH),
            (header::LAST_MODIFIED, header::IF_MODIFIED_SINCE),
        ] {
            if let Some(v) = stored
                .meta
                .header(validator.as_str())
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                upstream.headers_mut().insert(conditional, v);
            }
        }
    }
    let resp = match send(site, rt, upstream).await {
        Err(failure) => return stale(site, rt, target, asked, &c, note, failure).await,
        Ok(resp) => resp,
    };
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED {
        if let (Some(stored), Some(again)) = (&c.stored, again) {
            if let Some(body) = c.body(&stored.meta).await {
                c.cache.pages.validated(&c.key);
                c.cache.stats.page_hits.fetch_add(1, Relaxed);
                note.cache = Some("hit");
                let mark = Mark::Fresh;
                return rewritten(site, rt, target, asked, stored, body, note, mark).await;
            }
            // The stored page was lost: asked for again, whole.
            let resp = send(site, rt, again).await?;
            return live(site, rt, target, asked, resp, c, note).await;
        }
    }
    if status.is_server_error() && c.stored.is_some() {
        let failure = Failure::BadUpstreamAnswer {
            host: site.host.clone(),
            reason: format!("upstream answered {status}"),
        };
        return stale(site, rt, target, asked, &c, note, failure).await;
    }
    live(site, rt, target, asked, resp, c, note).await
}

/// The exchange itself; a transport failure named for the host.
async fn send(
    site: &Intercepted,
    rt: &Runtime,
    req: Request<Body>,
) -> Result<Response<hyper::body::Incoming>, Failure> {
    rt.upstream
        .send(req)
        .await
        .map_err(|error| Failure::Upstream {
            host: site.host.clone(),
            error,
        })
}

/// Upstream's answer, stored (a page) or forgotten (the project is gone) on its way.
async fn live(
    site: &Intercepted,
    rt: &Arc<Runtime>,
    target: &Target<'_>,
    asked: Asked,
    resp: Response<hyper::body::Incoming>,
    c: Cacheable,
    note: &mut Note,
) -> Result<Response<Body>, Failure> {
    let status = resp.status();
    // A redirect is no page: answered (checked) as without a cache.
    if status != StatusCode::OK || !storable(resp.headers()) {
        if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) && c.stored.is_some() {
            c.cache.pages.remove(&c.key);
        }
        return answer::respond(site, rt, target, asked, resp.map(body::stream), note, None).await;
    }
    if c.metadata {
        c.cache.miss();
    } else {
        c.cache.stats.page_misses.fetch_add(1, Relaxed);
    }
    note.cache = Some("miss");
    let metadata = c.metadata;
    let meta = PageMeta {
        url: c.url,
        name: c.name,
        headers: KEPT
            .iter()
            .filter_map(|h| {
                let v = resp.headers().get(h)?.to_str().ok()?;
                Some((h.as_str().to_owned(), v.to_owned()))
            })
            .collect(),
        sha256: String::new(),
        len: 0,
    };
    let length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let limit = rt.config.limits.max_page_bytes;
    let resp = resp.map(|incoming| {
        http_body_util::BodyExt::boxed(Tee {
            inner: body::stream(incoming),
            kept: Vec::new(),
            len: 0,
            length,
            limit,
            store: Some((c.cache, c.key, meta)),
        })
    });
    if metadata {
        return answer::respond(site, rt, target, asked, resp, note, None).await;
    }
    answer::page_answer(site, rt, target, asked, resp, note).await
}

/// The stored page, when upstream failed and it is recent enough; the failure otherwise.
async fn stale(
    site: &Intercepted,
    rt: &Arc<Runtime>,
    target: &Target<'_>,
    asked: Asked,
    c: &Cacheable,
    note: &mut Note,
    failure: Failure,
) -> Result<Response<Body>, Failure> {
    let Some(stored) = c
        .stored
        .as_ref()
        .filter(|s| s.age < rt.config.cache.stale_if_error)
    else {
        return Err(failure);
    };
    let Some(body) = c.body(&stored.meta).await else {
        return Err(failure);
    };
    tracing::warn!(
        host = %site.host,
        url = %stored.meta.url,
        age_s = stored.age.as_secs(),
        "{}: answered with the page stored {}s ago (cache.stale_if_error)",
        failure.message(),
        stored.age.as_secs()
    );
    if let Failure::Upstream { error, .. } = &failure {
        site.conn.shared.metrics.upstream_error(error.kind());
    }
    c.cache.stats.stale.fetch_add(1, Relaxed);
    note.cache = Some("stale");
    let mark = Mark::Stale(stored);
    rewritten(site, rt, target, asked, stored, body, note, mark).await
}

impl Cacheable {
    /// The stored page's body, read (and checked) off the serving thread.
    async fn body(&self, meta: &Arc<PageMeta>) -> Option<Bytes> {
        let (cache, key, meta) = (self.cache.clone(), self.key.clone(), meta.clone());
        tokio::task::spawn_blocking(move || cache.pages.body(&key, &meta))
            .await
            .ok()
            .flatten()
    }
}

/// A stored page as the answer upstream once gave, in frames of the size upstream's come in
/// (slices of one buffer), so it goes through the rewrite as a live page does.
fn stored_page(meta: &PageMeta, body: Bytes) -> Response<Body> {
    const CHUNK: usize = 64 * 1024;
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = (0..body.len())
        .step_by(CHUNK)
        .map(|at| Ok(Frame::data(body.slice(at..body.len().min(at + CHUNK)))))
        .collect();
    let body = http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(
        futures_util::stream::iter(frames),
    ));
    let mut resp = Response::new(body);
    for (name, value) in &meta.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

/// What a stored page's answer says of its age.
enum Mark<'a> {
    /// Upstream confirmed it just now (a `304`): nothing.
    Fresh,
    /// Served without asking (`ttl`): its `Age`.
    Aged(&'a Stored),
    /// Served because upstream failed: its `Age` and the `Warning`s of RFC 7234 5.5.
    Stale(&'a Stored),
}

/// The stored page `body` through the same rewrite a live page gets, marked with its age.
#[allow(clippy::too_many_arguments)]
async fn rewritten(
    site: &Intercepted,
    rt: &Arc<Runtime>,
    target: &Target<'_>,
    asked: Asked,
    stored: &Stored,
    body: Bytes,
    note: &mut Note,
    mark: Mark<'_>,
) -> Result<Response<Body>, Failure> {
    let resp = stored_page(&stored.meta, body);
    let mut resp = answer::page_answer(site, rt, target, asked, resp, note).await?;
    let (stored, stale) = match mark {
        Mark::Fresh => return Ok(resp),
        Mark::Aged(stored) => (stored, false),
        Mark::Stale(stored) => (stored, true),
    };
    let h = resp.headers_mut();
    h.insert(header::AGE, HeaderValue::from(stored.age.as_secs()));
    if stale {
        h.append(
            header::WARNING,
            HeaderValue::from_static("110 pipgate \"Response is Stale\""),
        );
        h.append(
            header::WARNING,
            HeaderValue::from_static("111 pipgate \"Revalidation Failed\""),
        );
    }
    Ok(resp)
}

/// Whether upstream lets its page be stored.
fn storable(headers: &HeaderMap) -> bool {
    !headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|d| {
                matches!(
                    d.trim().to_ascii_lowercase().as_str(),
                    "no-store" | "private"
                )
            })
        })
    })
}

/// `req` without the stored page's validators (to ask again when the stored body was lost).
fn unconditional(req: &Request<Body>) -> Request<Body> {
    let mut again = Request::new(body::empty());
    *again.method_mut() = req.method().clone();
    *again.uri_mut() = req.uri().clone();
    *again.version_mut() = req.version();
    *again.headers_mut() = req.headers().clone();
    again
}

/// Upstream's page body on its way to the rewrite, kept to be stored once it has all arrived
/// (and not when it is cut short, or larger than `limit`).
struct Tee {
    inner: Body,
    kept: Vec<Bytes>,
    len: usize,
    /// Upstream's `Content-Length`: a body read to it is whole even if its end was not polled
    /// (a decoder stops at the end of its stream).
    length: Option<usize>,
    limit: usize,
    store: Option<(Arc<Cache>, String, PageMeta)>,
}

impl Tee {
    fn commit(&mut self) {
        let Some((cache, key, meta)) = self.store.take() else {
            return;
        };
        let kept = std::mem::take(&mut self.kept);
        // Dropped outside a runtime (at shutdown): nothing is stored.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn_blocking(move || {
            if let Err(e) = cache.pages.put(&key, meta, &kept) {
                tracing::warn!(
                    "cache: a page could not be stored ({e}); it is asked for again next time"
                );
            }
        });
    }
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    this.len += data.len();
                    if this.len > this.limit {
                        this.store = None;
                        this.kept = Vec::new();
                    } else if this.store.is_some() {
                        this.kept.push(data.clone());
                    }
                }
                if this.inner.is_end_stream() {
                    this.commit();
                }
            }
            Some(Err(_)) => this.store = None,
            None => this.commit(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        if self.length == Some(self.len) {
            self.commit();
        }
    }
}
