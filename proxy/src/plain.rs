//! Absolute-form plain-HTTP requests on the proxy listener (`GET http://host/...`), for
//! indexes configured with an `http://` URL only: each request is routed by its own URL.

use http::Request;
use hyper::body::Incoming;
use pipgate_policy::{Arrival, Destination, Refused, Route};

use crate::access::Access;
use crate::body::Body;
use crate::conn::Conn;
use crate::intercept::{self, Intercepted, Scheme};
use crate::respond::Failure;
use crate::serve::{self, Answer, Handler, Protocols, Serving};

/// Serves the absolute-form requests on `io` (which replays the first head).
pub(crate) fn serve<IO>(conn: Conn, io: IO) -> Serving
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = conn.limits().clone();
    let stop = conn.stop.clone();
    let io = serve::guard(io, limits.client_idle_timeout);
    serve::http(io, Protocols::Http1, &limits, stop, AbsoluteForm(conn))
}

/// Absolute-form plain HTTP on the proxy listener: each request names its own host.
struct AbsoluteForm(Conn);

impl Handler for AbsoluteForm {
    fn answer(&self, req: Request<Incoming>) -> Answer {
        let conn = self.0.clone();
        Box::pin(async move { Ok(request(conn, req).await) })
    }
}

/// One absolute-form request: served as a request for its own host, when that is an
/// `http://` index's.
pub(crate) async fn request(conn: Conn, req: Request<Incoming>) -> http::Response<Body> {
    // Decided apart, so nothing borrowed from the request is held across the exchange.
    match route(&conn, &req) {
        Ok((host, port)) => {
            let site = std::sync::Arc::new(Intercepted {
                host,
                port,
                scheme: Scheme::Http,
                conn,
            });
            intercept::handle(site, req).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// The host and port an absolute-form request may be served on, or the refusal (logged).
fn route(conn: &Conn, req: &Request<Incoming>) -> Result<(String, u16), Box<Failure>> {
    let uri = req.uri();
    let host = uri
        .host()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(80);
    // The runtime of this request: a reload applies to the next request on the connection.
    let rt = conn.shared.runtime.load();
    let route = if uri.scheme_str() == Some("http") {
        let dest = Destination {
            arrival: Arrival::AbsoluteForm,
            host: Some(&host),
            port,
            original: None,
        };
        rt.config.policy.route(&rt.config.network, &dest)
    } else {
        Route::Refuse(
            Refused::PlainHttp,
            format!("{uri}: only http:// URLs are served in absolute form"),
        )
    };
    let (why, reason) = match route {
        Route::Intercept { host, .. } => return Ok((host, port)),
        Route::Refuse(why, reason) => (why, reason),
        _ => (
            Refused::PlainHttp,
            format!("plain-HTTP request for {host}:{port} refused"),
        ),
    };
    let f = Failure::Forbidden(why, reason);
    let message = f.message();
    conn.shared.metrics.refusal(conn.mode.as_str(), f.refusal());
    Access {
        client: Some(conn.peer),
        user: conn.user.as_deref(),
        mode: Some(conn.mode),
        method: Some(req.method().as_str()),
        host: Some(&host),
        port: Some(port),
        decision: Some("refuse"),
        status: Some(f.status().as_u16()),
        rule: Some(f.rule()),
        reason: Some(&message),
        ..Access::default()
    }
    .emit();
    Err(Box::new(f))
}
