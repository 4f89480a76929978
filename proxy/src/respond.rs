//! Errors become HTTP responses here, and only here: every refusal is a status plus one line
//! of text naming the cause, so the client, the log and `pipgate explain` tell the same story.

use http::{header, HeaderValue, Response, StatusCode};
use pipgate_policy::{Block, Refused, Rule};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::body::{self, Body};
use crate::decode::PageError;
use crate::head::HeadError;
use crate::upstream::UpstreamError;

/// How a refusal reaches a client hyper does not serve: as an HTTP/1.1 response, or (a client
/// that sent TLS, expecting the index itself) as a TLS alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    Http1,
    Tls,
}

/// Something pipgate answers instead of (or before) the upstream.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The client's request is malformed or refused as such (400).
    BadRequest(String),
    /// The request head is too large (431).
    HeadTooLarge(String),
    /// The client was too slow to send its request (408).
    ClientTimeout,
    /// Proxy authentication missing or wrong (407).
    ProxyAuth,
    /// A method index hosts are not asked with (405): the simple API is read-only.
    MethodNotAllowed(String),
    /// The destination is not allowed (403), with the config key that would allow it.
    Forbidden(Refused, String),
    /// The request names a host this tunnel was not opened for (421).
    Misdirected(String),
    /// The policy blocked it; the block carries its own status and rule.
    Blocked(Block),
    /// The upstream failed (502/504 by kind).
    Upstream { host: String, error: UpstreamError },
    /// The upstream answered something pipgate cannot vouch for (502): unparsable page,
    /// over the size limit, undecodable, a redirect off the allowed hosts.
    BadUpstreamAnswer { host: String, reason: String },
    /// pipgate is at a limit (503).
    Overloaded(String),
}

impl Failure {
    /// The answer to a request head that could not be read; `None` when the client left.
    pub(crate) fn from_head(e: HeadError) -> Option<Failure> {
        match e {
            HeadError::Closed => None,
            HeadError::Timeout => Some(Failure::ClientTimeout),
            HeadError::TooLarge(m) => Some(Failure::HeadTooLarge(m)),
            HeadError::Malformed(m) => Some(Failure::BadRequest(m)),
        }
    }

    /// A page that could not be read or rewritten: the upstream's fault (502), or pipgate at
    /// its memory budget for pages read whole (503).
    pub(crate) fn page(host: &str, e: PageError) -> Failure {
        match e {
            PageError::Busy(spent) => Failure::Overloaded(spent.to_string()),
            other => Failure::BadUpstreamAnswer {
                host: host.to_owned(),
                reason: other.to_string(),
            },
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::HeadTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Failure::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            Failure::ProxyAuth => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            Failure::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Failure::Forbidden(..) => StatusCode::FORBIDDEN,
            Failure::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            Failure::Blocked(b) => StatusCode::from_u16(b.status).unwrap_or(StatusCode::FORBIDDEN),
            Failure::Upstream { error, .. } => error.status(),
            Failure::BadUpstreamAnswer { .. } => StatusCode::BAD_GATEWAY,
            Failure::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The one-line text body (without the trailing newline).
    pub(crate) fn message(&self) -> String {
        match self {
            Failure::BadRequest(m) => format!("pipgate: bad request: {m}"),
            Failure::HeadTooLarge(m) => format!("pipgate: {m}"),
            Failure::ClientTimeout => "pipgate: request head not received in time".into(),
            Failure::ProxyAuth => "pipgate: proxy authentication required".into(),
            Failure::MethodNotAllowed(m) => format!("pipgate: method not allowed: {m}"),
            Failure::Forbidden(_, m) | Failure::Misdirected(m) => format!("pipgate: {m}"),
            Failure::Blocked(b) => b.message.clone(),
            Failure::Upstream { host, error } => format!("pipgate: upstream {host}: {error}"),
            Failure::BadUpstreamAnswer { host, reason } => {
                format!("pipgate: refusing the answer of {host}: {reason}")
            }
            Failure::Overloaded(m) => format!("pipgate: overloaded: {m}"),
        }
    }

    /// A short label for logs and metrics.
    pub(crate) fn rule(&self) -> &'static str {
        match self {
            Failure::Blocked(b) => b.rule.as_str(),
            Failure::BadRequest(_)
            | Failure::HeadTooLarge(_)
            | Failure::ClientTimeout
            | Failure::MethodNotAllowed(_) => "bad-request",
            Failure::ProxyAuth => "proxy-auth",
            Failure::Forbidden(why, _) => why.as_str(),
            Failure::Misdirected(_) => "misdirected",
            Failure::Upstream { .. } => "upstream-error",
            Failure::BadUpstreamAnswer { .. } => "bad-upstream-answer",
            Failure::Overloaded(_) => "overloaded",
        }
    }

    /// The `reason` label of `pipgate_refusals_total` for a connection this refuses.
    pub(crate) fn refusal(&self) -> &'static str {
        match self {
            Failure::Forbidden(why, _) => why.as_str(),
            Failure::Upstream { error, .. } => error.refusal(),
            other => other.rule(),
        }
    }

    /// The reason phrase of an HTTP/1.1 answer when it is not the status's own: a block's
    /// one-line reason (pip prints it with `-v`, and in the error of a refused CONNECT).
    fn reason(&self) -> Option<String> {
        match self {
            Failure::Blocked(_) | Failure::Forbidden(..) => Some(phrase(&self.message())),
            _ => None,
        }
    }

    /// Seconds a client should wait before asking again, when waiting can help: a private
    /// index that cannot answer now (pip retries a 503 at once otherwise).
    fn retry_after(&self) -> Option<&'static str> {
        match self {
            Failure::Blocked(b) if b.rule == Rule::PrivateIndexUnavailable => Some(RETRY_AFTER),
            _ => None,
        }
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let status = self.status();
        let rule = self.rule();
        let reason = self.reason();
        let retry_after = self.retry_after();
        let mut text = self.message();
        text.push('\n');
        let mut resp = Response::new(body::full(text));
        *resp.status_mut() = status;
        if let Some(p) =
            reason.and_then(|r| hyper::ext::ReasonPhrase::try_from(r.into_bytes()).ok())
        {
            resp.extensions_mut().insert(p);
        }
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
        }
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("x-pipgate-rule", HeaderValue::from_static(rule));
        match self {
            Failure::ProxyAuth => {
                h.insert(
                    header::PROXY_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"pipgate\""),
                );
            }
            Failure::MethodNotAllowed(_) => {
                h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            _ => {}
        }
        resp
    }

    /// The TLS alert that tells a TLS client the same, for a connection refused before any
    /// HTTP could be spoken on it (transparent mode, an intercepted handshake): one fatal alert
    /// record, as rustls sends them. `None` when the client is owed nothing (it was too slow).
    pub(crate) fn tls_alert(&self) -> Option<[u8; 7]> {
        // RFC 8446 6: access_denied 49, decode_error 50, internal_error 80.
        let description = match self {
            Failure::ClientTimeout => return None,
            Failure::BadRequest(_) | Failure::HeadTooLarge(_) => 50,
            Failure::Upstream { .. }
            | Failure::BadUpstreamAnswer { .. }
            | Failure::Overloaded(_) => 80,
            Failure::ProxyAuth
            | Failure::MethodNotAllowed(_)
            | Failure::Forbidden(..)
            | Failure::Misdirected(_)
            | Failure::Blocked(_) => 49,
        };
        Some([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description])
    }

    /// Writes this answer on a connection hyper does not own, in the form the client speaks,
    /// and closes the connection's writing side.
    pub(crate) async fn send_raw<W: AsyncWrite + Unpin>(self, io: &mut W, form: Form) {
        let bytes = match form {
            Form::Http1 => Some(self.to_http1()),
            Form::Tls => self.tls_alert().map(|a| a.to_vec()),
        };
        // The failure is not held across the writes (an owned buffer only).
        drop(self);
        if let Some(bytes) = bytes {
            let _ = io.write_all(&bytes).await;
        }
        let _ = io.shutdown().await;
    }

    /// The same answer as raw HTTP/1.1 bytes, for the connection before hyper takes it.
    pub(crate) fn to_http1(&self) -> Vec<u8> {
        let status = self.status();
        let mut text = self.message();
        text.push('\n');
        let reason = self
            .reason()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nx-pipgate-rule: {}\r\nconnection: close\r\n",
            status.as_u16(),
            text.len(),
            self.rule(),
        );
        if matches!(self, Failure::ProxyAuth) {
            out.push_str("proxy-authenticate: Basic realm=\"pipgate\"\r\n");
        }
        if let Some(secs) = self.retry_after() {
            out.push_str(&format!("retry-after: {secs}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&text);
        out.into_bytes()
    }
}

/// `Retry-After` for a private index that cannot answer: long enough that pip's retries do not
/// hammer it, short enough that an install fails within a minute when it stays down.
const RETRY_AFTER: &str = "5";

/// `text` as a reason phrase (RFC 9112: tab, space, visible ASCII and obs-text): anything else
/// becomes `?`, and a very long reason is cut.
fn phrase(text: &str) -> String {
    text.chars()
        .take(512)
        .map(|c| {
            if c == '\t' || c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(status: u16, rule: Rule, message: &str) -> Failure {
        Failure::Blocked(Block {
            status,
            rule,
            message: message.to_owned(),
        })
    }

    #[test]
    fn a_block_carries_its_reason_as_the_reason_phrase() {
        let f = block(
            404,
            Rule::PrivateIndex,
            "pipgate: 'acme-lib' is served by private index 'corp' (rule private-index)",
        );
        let raw = String::from_utf8(f.to_http1()).unwrap();
        assert!(
            raw.starts_with("HTTP/1.1 404 pipgate: 'acme-lib' is served by private index 'corp' (rule private-index)\r\n"),
            "{raw}"
        );
        let resp = f.into_response();
        let p = resp.extensions().get::<hyper::ext::ReasonPhrase>().unwrap();
        assert!(p.as_bytes().starts_with(b"pipgate: 'acme-lib'"));
        assert!(resp.headers().get(header::RETRY_AFTER).is_none());
        // Anything but a block keeps the status's own phrase.
        let raw = String::from_utf8(Failure::ClientTimeout.to_http1()).unwrap();
        assert!(raw.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{raw}");
        assert!(Failure::ClientTimeout
            .into_response()
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .is_none());
    }

    #[test]
    fn a_reason_phrase_holds_no_line_breaks_or_control_bytes() {
        let f = block(403, Rule::Deny, "pipgate: a\r\nx-evil: 1\u{7}é");
        let raw = String::from_utf8(f.to_http1()).unwrap();
        let first = raw.lines().next().unwrap();
        assert_eq!(first, "HTTP/1.1 403 pipgate: a??x-evil: 1??");
        // Not a header of its own (the body may say what it likes).
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert!(!head.contains("\r\nx-evil"), "{raw}");
    }

    #[test]
    fn an_unavailable_private_index_says_when_to_ask_again() {
        let f = block(
            503,
            Rule::PrivateIndexUnavailable,
            "pipgate: private index 'corp' cannot answer",
        );
        assert!(String::from_utf8(f.to_http1())
            .unwrap()
            .contains("\r\nretry-after: 5\r\n"));
        let resp = f.into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
    }
}
