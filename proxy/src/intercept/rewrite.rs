//! Page answers: a page read from upstream through the policy's rewrite, as it arrives, and
//! the response pipgate writes from it (whole, head only, or streamed).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::Frame;
use pipgate_policy::{Index, Judge, ProjectStream, RewriteError, RootStream, Summary};
use sha2::{Digest, Sha256};

use super::Intercepted;
use crate::body::{self, Body, BoxError};
use crate::budget::Share;
use crate::decode::{PageError, Source};
use crate::respond::Failure;
use crate::state::{Runtime, Shared};

/// Output held before the response head goes out. A page that fails within it gets a clean
/// 502 naming the reason; a page that ends within it gets a `Content-Length` and an `ETag`.
/// Past it the rewritten page streams, and a failure can only cut the body short.
const COMMIT: usize = 64 * 1024;

/// The output gathered into one body frame when upstream has delivered that much already.
const FRAME: usize = 64 * 1024;

/// The input handed to a root listing's rewrite thread at once, when that much has arrived.
const BATCH: usize = 256 * 1024;

/// What a page offered, known once its stream ends (for the access log).
pub(super) type Outcome = Arc<OnceLock<Summary>>;

/// The caching headers of a page answer, and what they are made from.
#[derive(Debug, Default)]
pub(super) struct Caching {
    /// Upstream's `Cache-Control`, passed on.
    pub cache_control: Option<HeaderValue>,
    /// The client's `If-None-Match`.
    pub client_etag: Option<HeaderValue>,
    /// pipgate's ETag for the page, when it is known before the body (see [`derived_etag`]).
    pub derived: Option<String>,
}

impl Caching {
    /// Whether the client holds the page named `etag`.
    fn client_has(&self, etag: &str) -> bool {
        self.client_etag
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    }
}

/// The ETag of a project page rewritten from an upstream representation with the strong ETag
/// `upstream`: the rewrite is a function of those bytes, the page URL, the index's hosts and
/// pipgate's version, so equal inputs name equal output without reading the body. A weak ETag
/// promises no equal bytes, and gives none.
///
/// The active rules are part of it (`rules`, their fingerprint): after a reload that blocks a
/// version, a client revalidating a page rewritten before gets the new page, not a `304`.
pub(super) fn derived_etag(
    upstream: Option<&HeaderValue>,
    page_url: &url::Url,
    index: &pipgate_policy::Index,
    content_type: &str,
    rules: &str,
) -> Option<String> {
    let upstream = upstream?.to_str().ok()?.trim();
    if !upstream.starts_with('"') {
        return None;
    }
    let mut h = Sha256::new();
    for part in [
        env!("CARGO_PKG_VERSION"),
        upstream,
        page_url.as_str(),
        content_type,
        &format!("{index:?}"),
        rules,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    Some(etag_from(&h.finalize()))
}

fn etag_from(digest: &[u8]) -> String {
    let short = digest.get(..12).unwrap_or(digest);
    format!("\"pg-{}\"", crate::digest::hex(short))
}

/// How a page is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// Streamed once [`COMMIT`] bytes of output are ready.
    Stream,
    /// Read and rewritten whole first, for a `Content-Length` (HTTP/1.0, which has no chunked
    /// framing): the output is held, in a share of the page budget.
    Whole,
    /// Rewritten through to the end for its length and digest, with the body left out (held
    /// no more than a chunk at a time).
    Head,
}

/// The rewrite a streamed page goes through.
#[derive(Debug)]
pub(super) enum Rewriter {
    Project(ProjectStream),
    Root(RootStream<'static>),
}

impl Rewriter {
    fn content_type(&self) -> &'static str {
        match self {
            Rewriter::Project(p) => p.content_type(),
            Rewriter::Root(r) => r.content_type(),
        }
    }

    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        match self {
            Rewriter::Project(p) => p.feed(chunk, out),
            Rewriter::Root(r) => r.feed(chunk, out),
        }
    }

    fn finish(self, out: &mut Vec<u8>) -> Result<Summary, RewriteError> {
        match self {
            Rewriter::Project(p) => p.finish(out),
            Rewriter::Root(r) => r.finish(out),
        }
    }
}

/// A page (a project page, HTML or JSON, or a root listing) being read from upstream and
/// rewritten as it arrives; see [`COMMIT`].
pub(super) struct PageStream {
    source: Source,
    rewrite: Rewrite,
}

/// The rewriting half of a [`PageStream`]: everything but where the bytes come from, so it can
/// run on a thread of its own while the bytes are read on the runtime.
struct Rewrite {
    shared: Arc<Shared>,
    /// The index host: failures name it.
    host: String,
    /// `None` once the page has ended.
    rewriter: Option<Rewriter>,
    content_type: &'static str,
    /// `limits.max_page_bytes`, against `fed` decoded bytes.
    limit: usize,
    fed: usize,
    outcome: Outcome,
    /// What an answer read whole holds of the page budget.
    share: Share,
}

/// One piece of a streamed page's body: a frame, the end (`Ok(None)`), or the failure that
/// cuts it. A channel that closes without the end cuts the body too: a rewrite that died must
/// never look like a page that ended.
type Piece = Result<Option<Frame<Bytes>>, BoxError>;

impl PageStream {
    pub(super) fn new(
        shared: Arc<Shared>,
        host: &str,
        source: Source,
        rewriter: Rewriter,
        limit: usize,
        share: Share,
    ) -> PageStream {
        PageStream {
            source,
            rewrite: Rewrite {
                shared,
                host: host.to_owned(),
                content_type: rewriter.content_type(),
                rewriter: Some(rewriter),
                limit,
                fed: 0,
                outcome: Outcome::default(),
                share,
            },
        }
    }

    /// Where the page's counts appear once it has ended (for the access log).
    pub(super) fn outcome(&self) -> Outcome {
        self.rewrite.outcome.clone()
    }

    /// The answer: a 304 when the client holds the page; else the page whole (HTTP/1.0, or a
    /// page that ends within [`COMMIT`] bytes of output), its head only (`HEAD`), or its first
    /// [`COMMIT`] bytes with the rest streamed.
    pub(super) async fn respond(
        mut self,
        answer: Answer,
        caching: Caching,
    ) -> Result<Response<Body>, Failure> {
        let content_type = self.rewrite.content_type;
        if let Some(etag) = caching.derived.as_deref().filter(|e| caching.client_has(e)) {
            // The client holds this very rewrite: no need to read (or rewrite) the body again.
            return Ok(not_modified(
                content_type,
                etag.to_owned(),
                caching.cache_control,
            ));
        }
        let host = self.rewrite.host.clone();
        let failed = |e: PageError| Failure::page(&host, e);
        let mut out = Vec::with_capacity(COMMIT + 16 * 1024);
        // A HEAD answer keeps only the length and digest of what went by.
        let (mut len, mut digest) = (0, Sha256::new());
        loop {
            let next = self.source.next().await;
            let ended = self.rewrite.absorb(next, &mut out).map_err(failed)?;
            match answer {
                Answer::Head => {
                    digest.update(&out);
                    len += out.len();
                    out.clear();
                }
                Answer::Whole => self
                    .rewrite
                    .share
                    .cover(out.capacity())
                    .map_err(|e| failed(PageError::Busy(e)))?,
                Answer::Stream => {}
            }
            if ended.is_some() {
                return Ok(match answer {
                    Answer::Head => {
                        let etag = caching
                            .derived
                            .clone()
                            .unwrap_or_else(|| etag_from(&digest.finalize()));
                        whole_response(None, len, content_type, etag, caching)
                    }
                    _ => page_response(out, content_type, caching),
                });
            }
            if answer == Answer::Stream && out.len() >= COMMIT {
                break;
            }
        }
        Ok(self.streamed(out, content_type, caching))
    }

    /// The answer once its first `COMMIT` bytes are out: those, then the rest as it is
    /// rewritten (chunked: a failure from here on cuts the body).
    fn streamed(
        self,
        first: Vec<u8>,
        content_type: &'static str,
        caching: Caching,
    ) -> Response<Body> {
        let first = Frame::data(Bytes::from(first));
        let frames = futures_util::stream::once(async { Ok(first) }).chain(self.spawn());
        let mut resp = Response::new(http_body_util::BodyExt::boxed(
            http_body_util::StreamBody::new(frames),
        ));
        page_headers(
            &mut resp,
            content_type,
            caching.derived,
            caching.cache_control,
        );
        resp
    }

    /// Rewrites the rest concurrently with the connection, so reading and rewriting the next
    /// chunks overlaps with encrypting and writing the last ones to the client (the 8,000-link
    /// page: p50 7.3 -> 6.4 ms against rewriting inside the connection's task). The channel
    /// holds a few pieces: a slow client slows the reading, it does not fill memory. A client
    /// that goes away closes the channel, which ends the rewrite (and the upstream exchange).
    ///
    /// A root listing (tens of megabytes of names, ~140 ms of policy work for PyPI's) is
    /// rewritten on a blocking-pool thread, fed by a task that reads upstream on the runtime:
    /// the thread that serves everyone else's connections keeps only the TLS and HTTP work of
    /// it, and the rewrite runs beside it on the other core. A project page is rewritten in a
    /// task of its own (on the other core it measured no faster: bench/README.md).
    fn spawn(self) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(4);
        let shared = self.rewrite.shared.clone();
        let root = matches!(self.rewrite.rewriter, Some(Rewriter::Root(_)));
        if root {
            self.rewrite_off_thread(tx);
        } else {
            let task = self.rewrite_in_task(tx);
            tokio::spawn(async move {
                // Like every connection task: a bug must not take the process down.
                if AssertUnwindSafe(task).catch_unwind().await.is_err() {
                    shared.metrics.panics.fetch_add(1, Relaxed);
                    tracing::error!("page rewrite task panicked; response cut");
                }
            });
        }
        // After an error nothing more is sent: the body ends cut, and hyper resets the stream
        // (or closes the connection) so the client sees a broken page, not a short one.
        futures_util::stream::unfold(Some(rx), |rx| async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(Ok(Some(frame))) => Some((Ok(frame), Some(rx))),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some((Err(e), None)),
                None => Some((Err("the page rewrite ended early".into()), None)),
            }
        })
    }

    async fn rewrite_in_task(mut self, tx: tokio::sync::mpsc::Sender<Piece>) {
        loop {
            let piece = self.step().await;
            let last = !matches!(piece, Ok(Some(_)));
            if tx.send(piece).await.is_err() || last {
                break;
            }
        }
    }

    /// The next piece of output; `None` once the page has ended. It waits for upstream only
    /// while it has nothing to send, and takes whatever else has already arrived (up to
    /// [`FRAME`]) so a fast upstream makes few, large frames.
    async fn step(&mut self) -> Piece {
        if self.rewrite.rewriter.is_none() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(FRAME + 16 * 1024);
        while out.len() < FRAME {
            let next = if out.is_empty() {
                self.source.next().await
            } else {
                match self.source.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            };
            if self.rewrite.take(next, &mut out)? {
                break;
            }
        }
        Ok(Some(Frame::data(Bytes::from(out))))
    }

    /// See [`PageStream::spawn`]: upstream's chunks go from a reading task to a blocking-pool
    /// thread through a small channel, in batches of what has arrived (up to [`BATCH`]: a
    /// chunk at a time, the thread slept and woke for every 16 KiB frame), and the thread's
    /// output to `tx`, a frame a batch.
    fn rewrite_off_thread(self, tx: tokio::sync::mpsc::Sender<Piece>) {
        let PageStream {
            mut source,
            mut rewrite,
        } = self;
        type Read = Result<Option<Bytes>, PageError>;
        let (batches, mut arrived) = tokio::sync::mpsc::channel::<Vec<Read>>(2);
        let shared = rewrite.shared.clone();
        tokio::spawn(async move {
            loop {
                let mut batch = vec![source.next().await];
                let mut size = 0;
                while let Some(Ok(Some(chunk))) = batch.last() {
                    size += chunk.len();
                    if size >= BATCH {
                        break;
                    }
                    match source.next().now_or_never() {
                        Some(next) => batch.push(next),
                        None => break,
                    }
                }
                let last = !matches!(batch.last(), Some(Ok(Some(_))));
                if batches.send(batch).await.is_err() || last {
                    break;
                }
            }
        });
        tokio::task::spawn_blocking(move || {
            let run = AssertUnwindSafe(move || {
                while rewrite.rewriter.is_some() {
                    let Some(batch) = arrived.blocking_recv() else {
                        // The reader is gone without the end: `tx` drops, the body is cut.
                        return;
                    };
                    let mut out = Vec::with_capacity(BATCH + BATCH / 2);
                    let mut failed = None;
                    for read in batch {
                        match rewrite.take(read, &mut out) {
                            Ok(false) => {}
                            Ok(true) => break,
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    if !out.is_empty()
                        && tx
                            .blocking_send(Ok(Some(Frame::data(Bytes::from(out)))))
                            .is_err()
                    {
                        return;
                    }
                    if let Some(e) = failed {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
                let _ = tx.blocking_send(Ok(None));
            });
            if std::panic::catch_unwind(run).is_err() {
                shared.metrics.panics.fetch_add(1, Relaxed);
                tracing::error!("page rewrite thread panicked; response cut");
            }
        });
    }
}

impl Rewrite {
    /// Takes one read of upstream: a chunk is rewritten into `out`; the end of the body
    /// finishes the page and gives its counts.
    fn absorb(
        &mut self,
        next: Result<Option<Bytes>, PageError>,
        out: &mut Vec<u8>,
    ) -> Result<Option<Summary>, PageError> {
        let rewrite = |e: RewriteError| PageError::Rewrite(e.to_string());
        let Some(rewriter) = self.rewriter.as_mut() else {
            return Err(PageError::Read("page read past its end".into()));
        };
        match next? {
            Some(chunk) => {
                self.fed = self.fed.saturating_add(chunk.len());
                if self.fed > self.limit {
                    return Err(PageError::TooLarge(self.limit));
                }
                rewriter.feed(&chunk, out).map_err(rewrite)?;
                Ok(None)
            }
            None => {
                let Some(rewriter) = self.rewriter.take() else {
                    return Err(PageError::Read("page read past its end".into()));
                };
                let summary = rewriter.finish(out).map_err(rewrite)?;
                record(&self.shared, &self.outcome, summary.clone());
                Ok(Some(summary))
            }
        }
    }

    /// [`Rewrite::absorb`] once the head has gone out: whether the page ended; a failure is
    /// logged, and cuts the client's body.
    fn take(
        &mut self,
        next: Result<Option<Bytes>, PageError>,
        out: &mut Vec<u8>,
    ) -> Result<bool, BoxError> {
        match self.absorb(next, out) {
            Ok(ended) => Ok(ended.is_some()),
            Err(reason) => {
                tracing::warn!(host = %self.host, %reason, "page failed while streaming; cutting the response");
                self.rewriter = None;
                Err(reason.to_string().into())
            }
        }
    }
}

/// What a page offered: counted in the metrics and kept for the access log.
/// Links the link rule dropped count once per page (`external-link`, `drop`); files a rule
/// withheld count one each, by rule (`withhold`, or `audit` when the rule only reports).
pub(super) fn record(shared: &Shared, outcome: &Outcome, summary: Summary) {
    if summary.external() > 0 {
        shared.metrics.decision("external-link", "drop");
    }
    for (rule, mode, n) in summary.withheld.iter() {
        shared
            .metrics
            .decisions(rule.as_str(), mode.withhold_action(), n as u64);
    }
    let _ = outcome.set(summary);
}

/// Rewrites a legacy JSON API document of `index` read whole. It takes the index rather than
/// the request's `Target`, which borrows from the runtime, so it can run on a blocking-pool
/// thread.
pub(super) fn rewrite_legacy(
    rt: &Runtime,
    index: &Index,
    page_url: &url::Url,
    judge: &Judge,
    content_type: &str,
    body: &[u8],
) -> Result<pipgate_policy::Rewritten, PageError> {
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(PageError::Rewrite(format!(
            "unexpected content type {content_type:?} for the JSON API"
        )));
    }
    rt.config
        .policy
        .rewrite_legacy_json(index, page_url, judge, body)
        .map_err(|e| PageError::Rewrite(e.to_string()))
}

/// A page answered whole: `Content-Length`, and pipgate's ETag (the body's digest unless one
/// was derived before the body).
pub(super) fn page_response(
    page: Vec<u8>,
    content_type: &'static str,
    caching: Caching,
) -> Response<Body> {
    // The ETag names the filtered bytes, never upstream's copy.
    let etag = caching
        .derived
        .clone()
        .unwrap_or_else(|| etag_from(&Sha256::digest(&page)));
    let len = page.len();
    whole_response(Some(page), len, content_type, etag, caching)
}

/// A page of `len` bytes named `etag`, with its body (or none, for `HEAD`); a `304` when the
/// client holds it.
fn whole_response(
    page: Option<Vec<u8>>,
    len: usize,
    content_type: &'static str,
    etag: String,
    caching: Caching,
) -> Response<Body> {
    if caching.client_has(&etag) {
        return not_modified(content_type, etag, caching.cache_control);
    }
    let mut resp = Response::new(page.map_or_else(body::empty, body::full));
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    page_headers(&mut resp, content_type, Some(etag), caching.cache_control);
    resp
}

fn not_modified(
    content_type: &'static str,
    etag: String,
    cache_control: Option<HeaderValue>,
) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::NOT_MODIFIED;
    page_headers(&mut resp, content_type, Some(etag), cache_control);
    resp
}

fn page_headers(
    resp: &mut Response<Body>,
    content_type: &'static str,
    etag: Option<String>,
    cache_control: Option<HeaderValue>,
) {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(v) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if let Some(cc) = cache_control {
        h.insert(header::CACHE_CONTROL, cc);
    }
}

/// Upstream's refusal of a page (or of a file that came as a page), with pipgate's own text
/// (never its markup).
pub(super) fn page_error(site: &Intercepted, status: StatusCode, path: &str) -> Response<Body> {
    let text = format!("pipgate: {} answered {status} for {path}\n", site.host);
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_etags_follow_every_input_and_only_strong_ones() {
        let index = |files: &str| {
            pipgate_policy::Index::new(
                "pypi",
                "https://pypi.org/simple/",
                pipgate_policy::Role::Public,
                &[files.to_owned()],
            )
            .unwrap()
        };
        let url = url::Url::parse("https://pypi.org/simple/six/").unwrap();
        let other_url = url::Url::parse("https://pypi.org/simple/seven/").unwrap();
        let (a, b) = (index("files.pythonhosted.org"), index("files.example"));
        let etag = |v: &str, url: &url::Url, ix: &pipgate_policy::Index, ct: &str| {
            derived_etag(
                Some(&HeaderValue::from_str(v).unwrap()),
                url,
                ix,
                ct,
                "rules",
            )
        };
        let base = etag("\"x\"", &url, &a, "text/html").unwrap();
        assert!(base.starts_with("\"pg-") && base.ends_with('"'), "{base}");
        assert_eq!(etag("\"x\"", &url, &a, "text/html").unwrap(), base);
        for changed in [
            etag("\"y\"", &url, &a, "text/html"),
            etag("\"x\"", &other_url, &a, "text/html"),
            etag("\"x\"", &url, &b, "text/html"),
            etag("\"x\"", &url, &a, "application/vnd.pypi.simple.v1+html"),
            etag("\"x\"", &url, &a, "application/vnd.pypi.simple.v1+json"),
            // A reload that changes the rules changes every derived ETag.
            derived_etag(
                Some(&HeaderValue::from_static("\"x\"")),
                &url,
                &a,
                "text/html",
                "other rules",
            ),
        ] {
            assert_ne!(changed.unwrap(), base);
        }
        assert_eq!(etag("W/\"x\"", &url, &a, "text/html"), None);
        assert_eq!(derived_etag(None, &url, &a, "text/html", "rules"), None);
    }
}
