//! The admin listener: `/healthz` (liveness), `/readyz` (CA loaded, listeners bound),
//! `/metrics` (Prometheus text) and `POST /reload`.

use std::future::Future;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::reload;
use crate::state::Shared;

pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            () = &mut shutdown => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&shared, req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer<B>(shared: &Shared, req: Request<B>) -> Response<Body> {
    let (status, ctype, text) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        (&Method::GET, "/readyz") => {
            let now = time::OffsetDateTime::now_utc();
            let rt = shared.runtime.load();
            // In audit mode a stale feed blocks nothing, so it does not make pipgate unready.
            let unavailable = rt
                .config
                .policy
                .rules()
                .files
                .unavailable(now)
                .filter(|d| d.mode == pipgate_policy::Mode::Enforce);
            match (shared.ready.load(SeqCst), unavailable) {
                (true, None) => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
                // Public pages and files are refused until the rule can decide again.
                (true, Some(d)) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready: {} (rule {})\n", d.reason, d.rule),
                ),
                (false, _) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready\n".to_owned(),
                ),
            }
        }
        (&Method::GET, "/metrics") => {
            let mut out = shared
                .metrics
                .render(shared.leaves.minted(), shared.leaves.cached());
            if let Some(feed) = shared.runtime.load().config.policy.rules().files.feed() {
                let now = time::OffsetDateTime::now_utc();
                crate::metrics::advisories(&mut out, &shared.metrics, &feed, now);
            }
            (StatusCode::OK, "text/plain; version=0.0.4", out)
        }
        (&Method::POST, "/reload") => match reload::reload(shared) {
            Ok(summary) => (StatusCode::OK, "text/plain", format!("{summary}\n")),
            Err(e) => (
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("reload rejected: {e}\n"),
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: /healthz /readyz /metrics POST /reload\n".to_owned(),
        ),
    };
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}
