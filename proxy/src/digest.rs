//! A streamed download whose digest a rule judges: hashed (sha256) as it passes, with its last
//! frame held back until the digest is known, so a client never holds the whole of a file a
//! rule refuses by its bytes. When the rule refuses, the body ends in an error instead of its
//! last frame: hyper closes an HTTP/1.1 connection before the declared length (or the chunked
//! end) and resets an HTTP/2 stream. A large file is hashed beside the serving thread
//! (`hasher.rs`), so a single download's throughput does not pay for its hash.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::Frame;

use crate::body::{Body, BoxError};

mod hasher;
mod range;

use hasher::Hasher;

pub(crate) use range::{ranged, ByteRange};

/// What decides about a digest (lower-case hex): `Err(reason)` cuts the body.
pub(crate) type Verdict = Box<dyn FnOnce(&str) -> Result<(), String> + Send + Sync>;

/// `inner`, judged by `verdict` once its last byte has been hashed.
pub(crate) fn checked(inner: Body, verdict: Verdict) -> Body {
    let hasher = Hasher::for_len(http_body::Body::size_hint(&inner).exact());
    http_body_util::BodyExt::boxed(Checked {
        inner,
        hasher,
        held: None,
        trailers: None,
        ended: false,
        verdict: Some(verdict),
    })
}

struct Checked {
    inner: Body,
    hasher: Hasher,
    /// The last data frame seen, not yet sent.
    held: Option<Bytes>,
    /// Trailers that came after the data, sent once the digest is judged.
    trailers: Option<Frame<Bytes>>,
    /// The data has ended: only the digest is awaited.
    ended: bool,
    /// `None` once judged.
    verdict: Option<Verdict>,
}

impl Checked {
    /// The data has ended: judge the digest once it is known.
    fn poll_judge(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.verdict.is_none() {
            return Poll::Ready(Ok(()));
        }
        let digest = ready!(self.hasher.poll_finish(cx))?;
        let Some(verdict) = self.verdict.take() else {
            return Poll::Ready(Ok(()));
        };
        Poll::Ready(verdict(&hex(&digest)).map_err(BoxError::from))
    }
}

/// Lower-case hex of `bytes` (digests in logs, ETags, file names). By table: `{:02x}` per
/// byte cost ~15k instructions per digest, on every download.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

impl http_body::Body for Checked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                if let Err(e) = ready!(this.poll_judge(cx)) {
                    return Poll::Ready(Some(Err(e)));
                }
                // Judged: what was held, then the trailers, then the end.
                let next = this.held.take().map(Frame::data).or(this.trailers.take());
                return Poll::Ready(next.map(Ok));
            }
            ready!(this.hasher.poll_ready(cx));
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.hasher.update(&data);
                        let previous = this.held.replace(data);
                        // The last frame (upstream says so): judged now, not on a further
                        // poll, so the answer's end goes out with it (a small file in one
                        // write, not a body and then its end).
                        this.ended = this.inner.is_end_stream();
                        if let Some(previous) = previous {
                            return Poll::Ready(Some(Ok(Frame::data(previous))));
                        }
                    }
                    Err(trailers) => {
                        this.trailers = Some(trailers);
                        this.ended = true;
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.ended = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.verdict.is_none() && self.held.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    pub(super) fn frames(parts: &[&'static [u8]]) -> Body {
        let stream = futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok::<_, BoxError>(Frame::data(Bytes::from_static(p))))
                .collect::<Vec<_>>(),
        );
        http_body_util::StreamBody::new(stream).boxed()
    }

    /// Every frame the body gives, and how it ended.
    pub(super) async fn drain(mut body: Body) -> (Vec<u8>, Result<(), String>) {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => out.extend_from_slice(&f.into_data().unwrap_or_default()),
                Err(e) => return (out, Err(e.to_string())),
            }
        }
        (out, Ok(()))
    }

    #[tokio::test]
    async fn the_last_frame_waits_for_the_verdict() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let allow: Verdict = Box::new(|_| Ok(()));
        let (out, end) = drain(checked(frames(&[b"a", b"b", b"c"]), allow)).await;
        assert_eq!((out.as_slice(), end), (&b"abc"[..], Ok(())));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let s = seen.clone();
        let refuse: Verdict = Box::new(move |hex| {
            *s.lock().unwrap() = hex.to_owned();
            Err("denied".into())
        });
        let (out, end) = drain(checked(frames(&[b"a", b"b", b"c"]), refuse)).await;
        // Everything but the last frame went out; the body then failed instead of ending.
        assert_eq!(out, b"ab");
        assert_eq!(end, Err("denied".to_owned()));
        assert_eq!(*seen.lock().unwrap(), abc);
        let refuse: Verdict = Box::new(|_| Err("denied".into()));
        let (out, end) = drain(checked(frames(&[b"abc"]), refuse)).await;
        assert!(out.is_empty() && end.is_err());
    }

    #[tokio::test]
    async fn a_body_that_says_it_has_ended_is_judged_with_its_last_frame() {
        let whole = || {
            http_body_util::Full::new(Bytes::from_static(b"abc"))
                .map_err(BoxError::from)
                .boxed()
        };
        let allow: Verdict = Box::new(|_| Ok(()));
        let mut body = checked(whole(), allow);
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), &b"abc"[..]);
        // Nothing more to poll for: hyper ends the answer with this frame.
        assert!(http_body::Body::is_end_stream(&body));
        let refuse: Verdict = Box::new(|_| Err("denied".into()));
        let (out, end) = drain(checked(whole(), refuse)).await;
        assert!(out.is_empty() && end.is_err());
    }

    #[tokio::test]
    async fn a_large_file_hashed_off_thread_is_judged_the_same() {
        use sha2::Digest;
        // Bytes that differ, so a frame hashed twice, lost or out of order changes the digest.
        let data: Bytes = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let want = hex(&sha2::Sha256::digest(&data));
        // 16 KiB frames, as HTTP/2 brings them (handed over in batches), with the exact length
        // a Content-Length gives (so it goes off thread).
        let frame = 1 << 14;
        let frames = || {
            let parts: Vec<Result<Frame<Bytes>, BoxError>> = data
                .chunks(frame)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let body = http_body_util::StreamBody::new(futures_util::stream::iter(parts));
            Sized3(body).boxed()
        };
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let s = seen.clone();
        let allow: Verdict = Box::new(move |hex| {
            *s.lock().unwrap() = hex.to_owned();
            Ok(())
        });
        let (out, end) = drain(checked(frames(), allow)).await;
        assert_eq!((out.len(), end), (data.len(), Ok(())));
        assert_eq!(*seen.lock().unwrap(), want);
        let refuse: Verdict = Box::new(|_| Err("mismatch".into()));
        let (out, end) = drain(checked(frames(), refuse)).await;
        assert_eq!(out.len(), data.len() - frame, "all but the last frame");
        assert_eq!(end, Err("mismatch".to_owned()));
    }

    /// A body declaring 3 MiB, as a `Content-Length` does.
    struct Sized3<B>(B);

    impl<B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin> http_body::Body for Sized3<B> {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Pin::new(&mut self.0).poll_frame(cx)
        }
        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(3 << 20)
        }
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }
}
