//! Serving HTTP on a client connection, written once: intercepted TLS (HTTP/1.1 and HTTP/2)
//! and plain HTTP for `http://` indexes (HTTP/1.1), with the same limits, the same cut-off of
//! a client that stops reading, and the same graceful end at shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::body::Body;
use crate::config::Limits;

/// Which HTTP versions a connection may speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocols {
    /// HTTP/1.1 or HTTP/2, as ALPN chose (intercepted TLS).
    Auto,
    /// HTTP/1.1 only (plain HTTP).
    Http1,
}

/// Drives a hyper connection `conn` to its end, or, once `stop` turns true, asks it to finish
/// what it has begun (`graceful_shutdown`) and waits for that. A macro, not a function taking
/// the shutdown as a closure: the two connection types share no trait for it, and a closure
/// over `Pin<&mut C>` made the connection futures' `Send` unprovable to the compiler.
macro_rules! until_stopped {
    ($conn:ident, $stop:ident) => {{
        let mut stop = $stop;
        tokio::pin!($conn);
        tokio::select! {
            _ = $conn.as_mut() => {}
            _ = stop.changed() => {
                $conn.as_mut().graceful_shutdown();
                let _ = $conn.await;
            }
        }
    }};
}

/// A request's answer, boxed: hyper keeps room for one in-flight request future per HTTP/1
/// connection, so an idle connection would otherwise hold that whole (7 KB) state machine.
pub(crate) type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// Who answers the requests of a connection: an intercepted site (`tls.rs`), or the proxy
/// listener's absolute-form requests, each for its own host (`plain.rs`).
pub(crate) trait Handler: Send + Sync + 'static {
    fn answer(&self, req: Request<Incoming>) -> Answer;
}

/// A connection being served, boxed: an idle connection holds this and its task, nothing of
/// the handshake or the first head that came before.
pub(crate) type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves requests on `io` (a client connection [`guard`]ed, or TLS over one) with `handler`
/// until the client closes, the connection fails, or `stop` turns true (then in-flight
/// requests finish: hyper's graceful shutdown). Built here, run by awaiting the result: no
/// argument is kept beside the connection that took it.
pub(crate) fn http<IO, H>(
    io: IO,
    protocols: Protocols,
    limits: &Limits,
    stop: watch::Receiver<bool>,
    handler: H,
) -> Serving
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let io = TokioIo::new(io);
    let service = service_fn(move |req| handler.answer(req));
    match protocols {
        Protocols::Auto => {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                // Slowloris inside the tunnel: the next request head must arrive in time.
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192));
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(limits.h2_max_concurrent_streams)
                .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
                // Rapid reset (CVE-2023-44487): cap streams reset before they were answered.
                .max_pending_accept_reset_streams(Some(64))
                .max_local_error_reset_streams(Some(256))
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(20));
            Box::pin(async move {
                let conn = builder.serve_connection(io, service);
                until_stopped!(conn, stop);
            })
        }
        Protocols::Http1 => {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(io, service);
            Box::pin(async move { until_stopped!(conn, stop) })
        }
    }
}

/// A client connection whose writes fail with `TimedOut` once one has waited `limit`
/// (`client_idle_timeout`): a client that takes no bytes of a response is cut off. Until it is,
/// its download holds a share of the host's upstream HTTP/2 connection that nobody else can use
/// (`readers_that_stop_...` in the limits tests). Only a write that is already waiting arms the
/// timer. It wraps the client's socket itself, under any TLS: above TLS, rustls takes the
/// writes into its buffer and the timer never sees the socket stall.
pub(crate) fn guard<IO>(io: IO, limit: Duration) -> Pin<Box<tokio_io_timeout::TimeoutStream<IO>>>
where
    IO: AsyncRead + AsyncWrite,
{
    let mut io = tokio_io_timeout::TimeoutStream::new(io);
    io.set_write_timeout(Some(limit));
    Box::pin(io)
}
