//! The one body type pipgate's services return: boxed, so streamed and rewritten bodies mix.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};

/// Errors carried inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response or request body: streamed from a peer, or built by pipgate.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A peer's body passed through untouched (frames are forwarded as they arrive).
pub fn stream(incoming: hyper::body::Incoming) -> Body {
    incoming.map_err(|e| Box::new(e) as BoxError).boxed()
}
