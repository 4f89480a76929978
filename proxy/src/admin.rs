//! The admin listener: `/healthz` (liveness), `/readyz` (CA loaded, listeners bound),
//! `/metrics` (Prometheus text), `POST /reload`, and the operator's view: `/` (a dashboard),
//! `/decisions` (the recent blocks, JSON) and `/explain?name=` (`pipgate explain`).

mod dashboard;

use std::future::Future;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::decisions::RING;
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
                async move { Ok::<_, std::convert::Infallible>(answer(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer<B>(shared: &Shared, req: Request<B>) -> Response<Body> {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let query = req.uri().query().unwrap_or_default();
    let (status, ctype, text) = match (get, req.method(), req.uri().path()) {
        (true, _, "/") => {
            let mut resp = text_response(StatusCode::OK, "text/html; charset=utf-8", dashboard::page(shared));
            // Self-contained: nothing is loaded from anywhere, not even from here.
            resp.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; img-src data:",
                ),
            );
            return resp;
        }
        (true, _, "/decisions") => match limit(query) {
            Ok(n) => {
                let recent = shared.decisions.recent(n);
                let json = serde_json::to_string_pretty(&recent).unwrap_or_default() + "\n";
                (StatusCode::OK, "application/json", json)
            }
            Err(why) => (StatusCode::BAD_REQUEST, "text/plain", why),
        },
        (true, _, "/explain") => match explain_query(query) {
            Ok((name, version)) => {
                let rt = shared.runtime.load_full();
                let text = rt.explain(&name, version.as_deref(), false).await;
                (StatusCode::OK, "text/plain; charset=utf-8", text)
            }
            Err(why) => (StatusCode::BAD_REQUEST, "text/plain", why),
        },
        (true, _, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        (true, _, "/readyz") => {
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
        (true, _, "/metrics") => {
            let mut out = shared
                .metrics
                .render(shared.leaves.minted(), shared.leaves.cached());
            if let Some(feed) = shared.runtime.load().config.policy.rules().files.feed() {
                let now = time::OffsetDateTime::now_utc();
                crate::metrics::advisories(&mut out, &shared.metrics, &feed, now);
            }
            if let Some(cache) = &shared.cache {
                cache.render(&mut out);
            }
            (StatusCode::OK, "text/plain; version=0.0.4", out)
        }
        (_, &Method::POST, "/reload") => match reload::reload(shared) {
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
            "not found: / /decisions?limit=N /explain?name=NAME /healthz /readyz /metrics POST /reload\n".to_owned(),
        ),
    };
    text_response(status, ctype, text)
}

fn text_response(status: StatusCode, ctype: &'static str, text: String) -> Response<Body> {
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// How many decisions `/decisions?limit=N` asks for (default 100, at most the ring's size).
fn limit(query: &str) -> Result<usize, String> {
    let mut limit = 100;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "limit" {
            limit = v
                .parse::<usize>()
                .map_err(|_| format!("limit={v}: want a whole number from 0 to {RING}\n"))?;
        }
    }
    Ok(limit.min(RING))
}

/// The name (and version) of `/explain?name=NAME[&version=V]`.
fn explain_query(query: &str) -> Result<(pipgate_policy::Name, Option<String>), String> {
    let (mut name, mut version) = (None, None);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "name" => name = Some(v.trim().to_owned()),
            "version" => version = Some(v.trim().to_owned()).filter(|v| !v.is_empty()),
            _ => {}
        }
    }
    match name {
        Some(n) => match pipgate_policy::Name::new(&n) {
            name if name.is_valid() => Ok((name, version)),
            _ => Err(format!(
                "explain: {n:?} is not a project name (letters, digits, '.', '_' and '-')\n"
            )),
        },
        None => Err("explain: give a project name: /explain?name=NAME[&version=V]\n".to_owned()),
    }
}
