//! The file cache's part in an intercepted request (see `crate::cache`): asked once the policy
//! has allowed a download, before anything goes upstream. A hit is answered from disk (whole,
//! as a range, or as a HEAD), after the same digest verdict a download gets at its end; a miss
//! goes upstream with the right to store what comes back.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use pipgate_policy::Target;

use super::request::{site_url, Asked};
use super::{Intercepted, Note};
use crate::body::{self, Body, BoxError};
use crate::cache::{Begin, Cache, Filling, Follower, Hit, Meta};
use crate::digest::{ByteRange, Verdict};

/// What the cache made of a request.
pub(super) enum Consulted {
    /// Answered from the cache.
    Answer(Response<Body>),
    /// Ask upstream (the digest verdict, still to apply).
    Upstream(Option<Verdict>),
}

/// A miss's right to store its download, with what is known of it before upstream answers.
#[derive(Debug)]
pub(super) struct Pending {
    filling: Filling,
    url: String,
    name: Option<String>,
}

/// Whether the file cache may answer or store `target`: a whole download whose sha256 is known,
/// one a rule judges by its digest (`checked`) or one its index advertised a digest for (a
/// private index's, asked for the key). The sha256 is the key, and a fill is only stored when
/// its bytes have it.
pub(super) fn may_store(
    site: &Intercepted,
    target: &Target<'_>,
    advertised: Option<&str>,
    checked: bool,
) -> bool {
    site.conn.shared.cache.is_some()
        && (checked || advertised.is_some())
        && matches!(
            target,
            Target::File {
                metadata: false,
                ..
            }
        )
}

/// A download [`may_store`] allows is answered from the cache or fetched with the right to
/// store it; everything else goes upstream as before.
pub(super) async fn consult(
    site: &Intercepted,
    target: &Target<'_>,
    advertised: Option<&str>,
    asked: &Asked,
    check: Option<Verdict>,
    note: &mut Note,
) -> Consulted {
    let cache = match site.conn.shared.cache.as_ref() {
        Some(cache) if may_store(site, target, advertised, check.is_some()) => cache,
        _ => return Consulted::Upstream(check),
    };
    let url = url_of(site, &asked.path);
    let Some(key) = cache.key(advertised, &url) else {
        return Consulted::Upstream(check);
    };
    if asked.method == Method::HEAD {
        // No bytes are served: what is known of the file is enough.
        return match cache.peek(&key) {
            Some(meta) => {
                note.cache = Some("hit");
                note.decision.get_or_insert("stream");
                cache.hit(0);
                Consulted::Answer(head(&meta, StatusCode::OK, None))
            }
            None => Consulted::Upstream(check),
        };
    }
    // A range is cut from a stored file, not from one still arriving.
    let follow = asked.range.is_none();
    match cache.begin(&key, follow).await {
        Begin::Hit(hit) => {
            note.cache = Some("hit");
            note.decision.get_or_insert("stream");
            Consulted::Answer(serve(cache, hit, &key, asked, check).await)
        }
        Begin::Follow(follower) => {
            note.cache = Some("hit");
            note.decision.get_or_insert("stream");
            Consulted::Answer(follow_fill(cache, follower, &key, check))
        }
        Begin::Fill(filling) => {
            cache.miss();
            note.cache = Some("miss");
            note.fill = Some(Pending {
                filling,
                url,
                name: target.name().map(|n| n.as_str().to_owned()),
            });
            Consulted::Upstream(check)
        }
        Begin::Pass => {
            cache.miss();
            note.cache = Some("miss");
            Consulted::Upstream(check)
        }
    }
}

/// The cache's name of a download: its URL without the query.
fn url_of(site: &Intercepted, path: &str) -> String {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    site_url(site, path)
}

impl Pending {
    /// Upstream's whole-file answer (`headers`, `body`), stored as it streams.
    pub(super) fn store(self, body: Body, headers: &HeaderMap) -> Body {
        // Asked for identity: anything else is not the file's bytes.
        if headers.contains_key(header::CONTENT_ENCODING) {
            return body;
        }
        let text = |h| {
            headers
                .get(h)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let len = text(header::CONTENT_LENGTH)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let meta = Meta {
            url: self.url,
            name: self.name,
            content_type: text(header::CONTENT_TYPE),
            etag: text(header::ETAG).filter(|e| !e.starts_with("W/")),
            last_modified: text(header::LAST_MODIFIED),
            len,
        };
        self.filling.wrap(body, meta)
    }
}

/// A stored file's answer: the digest verdict first (a file a rule now refuses by its hash is
/// cut as a download would be), then the file, or the client's range of it.
async fn serve(
    cache: &Arc<Cache>,
    hit: Hit,
    key: &str,
    asked: &Asked,
    check: Option<Verdict>,
) -> Response<Body> {
    let Hit { file, meta } = hit;
    let range = asked
        .range
        .as_ref()
        .and_then(|(range, if_range)| {
            let names_this = if_range.as_ref().is_none_or(|v| {
                let v = v.to_str().ok();
                v.is_some() && (v == meta.etag.as_deref() || v == meta.last_modified.as_deref())
            });
            names_this.then(|| ByteRange::parse(range.to_str().ok()?, meta.len))
        })
        .flatten();
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut resp = head(&meta, status, range);
    if let Some(Err(message)) = check.map(|check| check(key)) {
        *resp.body_mut() = refused(message);
        return resp;
    }
    let (first, len) = range.map_or((0, meta.len), |r| (r.first, r.last - r.first + 1));
    cache.hit(len);
    *resp.body_mut() = file_body(file, first, len);
    resp
}

/// A file another request is fetching, read from its fill as it arrives (after the same
/// digest verdict as a hit).
fn follow_fill(
    cache: &Arc<Cache>,
    follower: Follower,
    key: &str,
    check: Option<Verdict>,
) -> Response<Body> {
    let meta = follower.meta.clone();
    let mut resp = head(&meta, StatusCode::OK, None);
    if let Some(Err(message)) = check.map(|check| check(key)) {
        *resp.body_mut() = refused(message);
        return resp;
    }
    cache.hit(meta.len);
    *resp.body_mut() = follower.body(0, meta.len);
    resp
}

/// The head of a stored file's answer, with an empty body.
fn head(meta: &Meta, status: StatusCode, range: Option<ByteRange>) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let mut set = |name, value: Option<&str>| {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, meta.content_type.as_deref());
    set(header::ETAG, meta.etag.as_deref());
    set(header::LAST_MODIFIED, meta.last_modified.as_deref());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    match range {
        Some(range) => range.set_headers(h),
        None => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len));
        }
    }
    resp
}

/// A body that fails at once: the client sees the download cut, as a miss's would be.
fn refused(message: String) -> Body {
    let stream = futures_util::stream::iter([Err::<http_body::Frame<bytes::Bytes>, BoxError>(
        message.into(),
    )]);
    http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(stream))
}

/// `len` bytes of `file` from `first`, read on the blocking pool in blocks of up to 256 KiB,
/// one block ahead: the next is read while the last is sent.
fn file_body(file: std::fs::File, first: u64, len: u64) -> Body {
    let next = (len > 0).then(|| read_block(file, Some(first), block(len)));
    http_body_util::BodyExt::boxed(Blocks { left: len, next })
}

/// The size of the next block of a file with `left` bytes to send.
fn block(left: u64) -> usize {
    const BLOCK: u64 = 256 * 1024;
    // Both fit a usize: the smaller is at most BLOCK.
    usize::try_from(left.min(BLOCK)).unwrap_or(256 * 1024)
}

type Read = tokio::task::JoinHandle<std::io::Result<(std::fs::File, bytes::Bytes)>>;

/// Reads the next `want` bytes of `file` (from `seek`, when given) straight into a buffer of
/// their size: one copy, from the page cache into the frame the client's TLS encrypts.
fn read_block(mut file: std::fs::File, seek: Option<u64>, want: usize) -> Read {
    use std::io::{Read as _, Seek as _};
    tokio::task::spawn_blocking(move || {
        if let Some(at) = seek.filter(|&at| at > 0) {
            file.seek(std::io::SeekFrom::Start(at))?;
        }
        let mut buf = Vec::with_capacity(want);
        (&mut file).take(want as u64).read_to_end(&mut buf)?;
        if buf.len() < want {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the cached file is shorter than its entry says",
            ));
        }
        Ok((file, bytes::Bytes::from(buf)))
    })
}

/// A stored file's body: each block, with the next one's read already under way.
struct Blocks {
    left: u64,
    next: Option<Read>,
}

impl http_body::Body for Blocks {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        use std::future::Future as _;
        use std::task::Poll;
        let Some(read) = self.next.as_mut() else {
            return Poll::Ready(None);
        };
        let done = std::task::ready!(std::pin::Pin::new(read).poll(cx));
        self.next = None;
        let (file, data) = match done {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Poll::Ready(Some(Err(format!("cache: {e}").into()))),
            Err(e) => return Poll::Ready(Some(Err(format!("cache: {e}").into()))),
        };
        self.left = self.left.saturating_sub(data.len() as u64);
        if self.left > 0 {
            self.next = Some(read_block(file, None, block(self.left)));
        }
        Poll::Ready(Some(Ok(http_body::Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.next.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        // A client gone mid-download: the read under way finishes on its own, unread.
        if let Some(read) = self.next.take() {
            read.abort();
        }
    }
}
