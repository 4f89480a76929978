//! The one body type pipgate's services return: boxed, so streamed and rewritten bodies mix.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};

/// Errors carried inside bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response or request body: streamed from a peer, or built by pipgate.
pub(crate) type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A peer's body passed through untouched (frames are forwarded as they arrive).
pub(crate) fn stream(incoming: hyper::body::Incoming) -> Body {
    incoming.map_err(|e| Box::new(e) as BoxError).boxed()
}

/// A peer's body passed through, cut with an error when no frame arrives for `idle`: an
/// upstream that stalls mid-body must not hold the client (and a connection slot) forever.
pub(crate) fn stream_with_idle(inner: Body, idle: std::time::Duration) -> Body {
    IdleTimeout {
        inner,
        idle,
        sleep: Box::pin(tokio::time::sleep(idle)),
    }
    .boxed()
}

struct IdleTimeout {
    inner: Body,
    idle: std::time::Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for IdleTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::future::Future;
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + self.idle;
                self.sleep.as_mut().reset(deadline);
                Poll::Ready(frame)
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                    "upstream body stalled for {}s",
                    self.idle.as_secs()
                )
                .into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
