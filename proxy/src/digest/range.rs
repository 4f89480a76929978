//! A range request for a download judged by its digest. A range's bytes cannot be judged alone
//! (and a client that resumes a cut download with `Range: bytes=N-` would otherwise complete
//! it with the refused bytes), so the whole file is fetched and judged, and the client gets
//! the part it asked for as a `206`, the last of it held back until the whole file's digest is
//! known: a refused digest cuts the range too.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http_body::Frame;

use crate::body::{Body, BoxError};

/// A single satisfiable byte range, inclusive, of a file of `total` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) total: u64,
}

impl ByteRange {
    /// The client's `Range` of a file of `total` bytes, when it is one satisfiable range in
    /// bytes (`a-b`, `a-`, `-n`). Anything else (several ranges, another unit, a range past the
    /// end, a malformed header) is `None`: the whole file is answered, as RFC 9110 allows a
    /// server to do for any range request.
    pub(crate) fn parse(range: &str, total: u64) -> Option<ByteRange> {
        let spec = range.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') || total == 0 {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let (first, last) = match (a.is_empty(), b.is_empty()) {
            // `-n`: the last n bytes.
            (true, false) => {
                let n = number(b)?.min(total);
                if n == 0 {
                    return None;
                }
                (total - n, total - 1)
            }
            (false, true) => (number(a)?, total - 1),
            (false, false) => (number(a)?, number(b)?.min(total - 1)),
            (true, true) => return None,
        };
        (first <= last && first < total).then_some(ByteRange { first, last, total })
    }

    /// Its `Content-Range` and `Content-Length`, set on `headers`.
    pub(crate) fn set_headers(&self, headers: &mut HeaderMap) {
        let range = format!("bytes {}-{}/{}", self.first, self.last, self.total);
        if let Ok(v) = HeaderValue::from_str(&range) {
            headers.insert(header::CONTENT_RANGE, v);
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.len()));
    }

    fn len(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// The bytes of `range` out of `whole` (a judged body, which fails instead of ending when its
/// digest is refused), the last of them held until `whole` has ended.
pub(crate) fn ranged(whole: Body, range: ByteRange) -> Body {
    http_body_util::BodyExt::boxed(Ranged {
        inner: whole,
        range,
        at: 0,
        held: None,
        done: false,
    })
}

struct Ranged {
    inner: Body,
    range: ByteRange,
    /// Bytes of the whole file seen so far.
    at: u64,
    /// The range's latest bytes, not yet sent.
    held: Option<Bytes>,
    done: bool,
}

impl http_body::Body for Ranged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(this.held.take().map(|b| Ok(Frame::data(b))));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers of the whole file are not the range's.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let (from, to) = (this.at, this.at + data.len() as u64);
                    this.at = to;
                    let start = this.range.first.max(from);
                    let end = (this.range.last + 1).min(to);
                    if start >= end {
                        continue;
                    }
                    // In bounds: start - from < data.len() and end - from <= data.len().
                    let part = data.slice((start - from) as usize..(end - from) as usize);
                    if let Some(previous) = this.held.replace(part) {
                        return Poll::Ready(Some(Ok(Frame::data(previous))));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None if this.at != this.range.total => {
                    return Poll::Ready(Some(Err(format!(
                        "the file had {} bytes, not the {} its length said",
                        this.at, this.range.total
                    )
                    .into())))
                }
                None => this.done = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.range.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::tests::{drain, frames};
    use crate::digest::{checked, Verdict};

    #[test]
    fn one_satisfiable_range_or_none() {
        let r = |s: &str| ByteRange::parse(s, 100).map(|r| (r.first, r.last));
        assert_eq!(r("bytes=0-9"), Some((0, 9)));
        assert_eq!(r("bytes=90-"), Some((90, 99)));
        assert_eq!(r("bytes=-10"), Some((90, 99)));
        assert_eq!(r("bytes=-1000"), Some((0, 99)));
        assert_eq!(r("bytes=50-1000"), Some((50, 99)));
        assert_eq!(r(" bytes = 1-2"), None);
        for bad in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=100-",
            "bytes=9-3",
            "bytes=-0",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-2-3",
            "",
        ] {
            assert_eq!(r(bad), None, "{bad}");
        }
        assert_eq!(ByteRange::parse("bytes=0-", 0), None);
    }

    #[tokio::test]
    async fn the_range_waits_for_the_whole_files_verdict() {
        let whole = || frames(&[b"abcd", b"efgh", b"ijkl"]);
        let range = ByteRange::parse("bytes=2-5", 12).unwrap();
        let allow: Verdict = Box::new(|_| Ok(()));
        let (out, end) = drain(ranged(checked(whole(), allow), range)).await;
        assert_eq!((out.as_slice(), end), (&b"cdef"[..], Ok(())));
        // Refused after the range was read: its last part never goes out.
        let refuse: Verdict = Box::new(|_| Err("mismatch".into()));
        let (out, end) = drain(ranged(checked(whole(), refuse), range)).await;
        assert_eq!(out, b"cd");
        assert_eq!(end, Err("mismatch".to_owned()));
        // A tail range (a resumed download) is cut the same way: its last part, all it got
        // before the verdict, is never sent.
        let tail = ByteRange::parse("bytes=6-", 12).unwrap();
        let refuse: Verdict = Box::new(|_| Err("mismatch".into()));
        let (out, end) = drain(ranged(checked(whole(), refuse), tail)).await;
        assert!(out.is_empty() && end.is_err(), "{out:?}");
        let allow: Verdict = Box::new(|_| Ok(()));
        let (out, end) = drain(ranged(checked(whole(), allow), tail)).await;
        assert_eq!((out.as_slice(), end), (&b"ghijkl"[..], Ok(())));
        // A file shorter than its declared length fails rather than ending short.
        let allow: Verdict = Box::new(|_| Ok(()));
        let long = ByteRange::parse("bytes=0-3", 20).unwrap();
        let (_, end) = drain(ranged(checked(whole(), allow), long)).await;
        assert!(end.is_err());
    }
}
