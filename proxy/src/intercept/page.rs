//! Index pages: the policy's rewrite, and the response pipgate writes from it.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use pipgate_policy::{Name, PageFormat, Target};
use sha2::{Digest, Sha256};

use super::Tunnel;
use crate::body::{self, Body};
use crate::respond::Failure;
use crate::state::Runtime;

pub(super) fn rewrite(
    rt: &Runtime,
    target: &Target<'_>,
    page_url: &url::Url,
    content_type: &str,
    body: &[u8],
) -> Result<pipgate_policy::Rewritten, String> {
    let policy = &rt.config.policy;
    match target {
        Target::LegacyJson { index, .. } => {
            if !content_type
                .to_ascii_lowercase()
                .starts_with("application/json")
            {
                return Err(format!(
                    "unexpected content type {content_type:?} for the JSON API"
                ));
            }
            policy
                .rewrite_legacy_json(index, page_url, body)
                .map_err(|e| e.to_string())
        }
        Target::Project { index, .. } | Target::Root { index } => {
            let format = PageFormat::from_content_type(content_type).ok_or_else(|| {
                format!("unexpected content type {content_type:?} for an index page")
            })?;
            if let Target::Root { .. } = target {
                let lookups = &rt.lookups;
                let is_private = |n: &Name| lookups.known_private(n);
                policy
                    .rewrite_root(index, page_url, format, body, &is_private)
                    .map_err(|e| e.to_string())
            } else {
                policy
                    .rewrite_project(index, page_url, format, body)
                    .map_err(|e| e.to_string())
            }
        }
        _ => Err("not a page".into()),
    }
}

pub(super) fn page_response(
    rewritten: pipgate_policy::Rewritten,
    cache_control: Option<HeaderValue>,
    client_etag: Option<HeaderValue>,
    head: bool,
) -> Response<Body> {
    // The ETag names the filtered bytes, never upstream's copy.
    let digest = Sha256::digest(&rewritten.body);
    let mut etag = String::with_capacity(36);
    etag.push_str("\"pg-");
    for b in &digest[..12] {
        etag.push_str(&format!("{b:02x}"));
    }
    etag.push('"');
    let not_modified = client_etag
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let len = rewritten.body.len();
    let mut resp = if not_modified {
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if head {
        Response::new(body::empty())
    } else {
        Response::new(body::full(rewritten.body))
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(rewritten.content_type),
    );
    if !not_modified {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if let Some(cc) = cache_control {
        h.insert(header::CACHE_CONTROL, cc);
    }
    resp
}

/// Upstream's status for a page it did not serve, with pipgate's own text (never its markup).
pub(super) fn page_error(
    tunnel: &Tunnel,
    status: StatusCode,
    path: &str,
) -> Result<Response<Body>, Failure> {
    if status.is_server_error() {
        return Err(Failure::BadUpstreamAnswer {
            host: tunnel.host.clone(),
            reason: format!("upstream answered {status}"),
        });
    }
    let text = format!("pipgate: {} answered {status} for {path}\n", tunnel.host);
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}
