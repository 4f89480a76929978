//! One request on an intercepted connection, as a sequence of named phases (in the spirit of
//! pingora's, as plain functions): the request's checks, the policy's decision, the request
//! pipgate sends upstream in its place, the exchange, and the answer (a checked redirect, a
//! file streamed untouched, or a page rewritten). Each phase can end the request with a
//! [`Failure`]; the access line is written when the answer's body has gone.

mod answer;
mod cached;
mod paged;
mod request;
mod rewrite;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use pipgate_policy::{Check, Name, PathError, Refused, Target, Verdict};

use crate::access::Access;
use crate::body::Body;
use crate::conn::Conn;
use crate::decisions::{self, Decision};
use crate::respond::Failure;
use crate::state::Runtime;
use rewrite::Outcome;

/// What an intercepted connection was opened for: every request on it must stay on this host
/// and port.
#[derive(Debug)]
pub(crate) struct Intercepted {
    /// The host (canonical: lower case, no trailing dot) of the CONNECT, the SNI, or the
    /// absolute-form URL.
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) scheme: Scheme,
    pub(crate) conn: Conn,
}

/// How requests reach an intercepted host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// TLS terminated by pipgate.
    Https,
    /// Plain HTTP, for `http://` indexes only.
    Http,
}

/// What the access line says about the policy's part in a request.
#[derive(Debug, Default)]
struct Note {
    index: Option<String>,
    name: Option<Name>,
    decision: Option<&'static str>,
    rule: Option<&'static str>,
    /// The block's one line (an audited rule's too).
    message: Option<String>,
    /// What an audited rule would have answered: its status and `message`.
    reason: Option<String>,
    /// `page` or `file`, once the request is classified (the duration metrics' kind).
    kind: Option<&'static str>,
    /// A page's link counts, once it has ended (a streamed page ends after the handler).
    links: Outcome,
    /// A download cut when its digest was judged (it ends after the handler).
    cut: Cut,
    /// `hit`, `miss` or `stale` (a page), for a request the cache was asked about.
    cache: Option<&'static str>,
    /// A miss's right to store its download.
    fill: Option<cached::Pending>,
}

/// The block a download's digest got at its end: rule, action (`block` or `audit`) and the
/// one line naming the file and both digests.
pub(super) type Cut = Arc<std::sync::OnceLock<(&'static str, &'static str, String)>>;

/// Serves one request. Never fails: every error is a response.
pub(crate) async fn handle(site: Arc<Intercepted>, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let shared = &site.conn.shared;
    // One runtime for the whole request: a reload mid-request does not mix policies.
    let rt = shared.runtime.load_full();
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut note = Note::default();
    let resp = match phases(&site, &rt, req, &mut note).await {
        Ok(resp) => resp,
        Err(failure) => {
            if let Failure::Upstream { error, .. } = &failure {
                shared.metrics.upstream_error(error.kind());
            }
            if note.decision.is_none() {
                note.rule = Some(failure.rule());
                // A block the answer decided (a release every file of which is withheld).
                if let Failure::Blocked(b) = &failure {
                    note.decision = Some("block");
                    note.message = Some(b.message.clone());
                }
            }
            tracing::debug!(client = %site.conn.peer, host = %site.host, %path, reason = %failure.message(), "refused");
            failure.into_response()
        }
    };
    let status = resp.status().as_u16();
    shared.metrics.request(&site.host, status);
    // The access line is written when the body is done (or dropped), so `bytes` and
    // `duration_ms` describe the whole transfer, streamed files included.
    let log = AccessLog {
        site: site.clone(),
        method,
        path,
        status,
        start,
        note,
        bytes: 0,
        complete: false,
    };
    let (parts, inner) = resp.into_parts();
    Response::from_parts(parts, http_body_util::BodyExt::boxed(Logged { inner, log }))
}

/// The phases of one request, in order.
async fn phases(
    site: &Intercepted,
    rt: &Arc<Runtime>,
    req: Request<Incoming>,
    note: &mut Note,
) -> Result<Response<Body>, Failure> {
    // 1. What the client may ask.
    request::check_authority(site, &req)?;
    request::check_method_and_body(&req)?;
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let policy = &rt.config.policy;
    if policy.is_legacy_alias(&site.host) {
        return Ok(answer::to_pypi(&path_and_query));
    }
    // 2. What policy decides.
    let target = classify(rt, site, &path_and_query)?;
    note.kind = Some(match target {
        Target::File { .. } => "file",
        _ => "page",
    });
    note.index = Some(target.index().name().to_owned());
    note.name = target.name().cloned();
    let advertised = decide(site, rt, &target, note).await?;
    // 3. The request pipgate sends upstream.
    let json_for_rules = policy.rules().needs(target.index()).upload_time;
    let check = answer::digest_check(site, rt, &target, advertised.clone(), &note.cut);
    // Asked for whole and as stored: a download judged by its digest, or one the file cache
    // may store.
    let whole = check.is_some() || cached::may_store(site, &target, advertised.as_deref(), false);
    let (upstream_req, asked) =
        request::shape(site, &target, &path_and_query, req, json_for_rules, whole)?;
    // 4. The file cache, asked only now that policy has allowed the download.
    let check =
        match cached::consult(site, &target, advertised.as_deref(), &asked, check, note).await {
            cached::Consulted::Answer(resp) => return Ok(resp),
            cached::Consulted::Upstream(check) => check,
        };
    // 5. The exchange: a page through the page cache, when it is on.
    if let Some(cacheable) = paged::consult(site, rt, &target, &upstream_req) {
        return paged::exchange(site, rt, &target, asked, upstream_req, cacheable, note).await;
    }
    let resp = rt
        .upstream
        .send(upstream_req)
        .await
        .map_err(|error| Failure::Upstream {
            host: site.host.clone(),
            error,
        })?;
    // 6. The answer.
    let resp = resp.map(crate::body::stream);
    answer::respond(site, rt, &target, asked, resp, note, check).await
}

/// Which door to which project the request is.
fn classify<'r>(
    rt: &'r Runtime,
    site: &Intercepted,
    path_and_query: &str,
) -> Result<Target<'r>, Failure> {
    rt.config
        .policy
        .classify(&site.host, path_and_query)
        .map_err(|e| match e {
            PathError::UnknownHost => Failure::Forbidden(
                Refused::HostNotAllowed,
                format!("{} is no configured index or file host", site.host),
            ),
            other => Failure::BadRequest(other.to_string()),
        })
}

/// The verdict for `target`, with whatever private indexes must be asked first; a block is
/// logged, counted and returned as the failure that answers it. Allowed: the sha256 the index
/// advertised for a public download, when the lookups learnt it.
async fn decide(
    site: &Intercepted,
    rt: &Runtime,
    target: &Target<'_>,
    note: &mut Note,
) -> Result<Option<String>, Failure> {
    let policy = &rt.config.policy;
    let now = time::OffsetDateTime::now_utc();
    // Ask what the rules need, round by round (private indexes first; a public index only
    // about names they leave public), until the policy decides.
    let mut answers = Vec::new();
    let verdict = loop {
        match policy.next(target, &answers, now) {
            Check::Done(v) => break v,
            Check::Lookup(questions) => answers.extend(rt.answers(questions).await),
        }
    };
    // A download allowed from a private index's file host: with a file cache, its listing
    // gives the digest the cache keys it by (a lookup that fails only leaves it uncached).
    if site.conn.shared.cache.is_some() && !matches!(verdict, Verdict::Block(_)) {
        let more = policy.digest_questions(target);
        if !more.is_empty() {
            answers.extend(rt.answers(more).await);
        }
    }
    let advertised = policy.advertised_sha256(target, &answers);
    let (block, audit) = match verdict {
        Verdict::Allow => return Ok(advertised),
        Verdict::Block(block) => (block, false),
        Verdict::Audit(block) => (block, true),
    };
    let action = if audit { "audit" } else { "block" };
    note.decision = Some(action);
    note.rule = Some(block.rule.as_str());
    site.conn
        .shared
        .metrics
        .decision(block.rule.as_str(), action);
    tracing::warn!(
        target: "pipgate::policy",
        client = %site.conn.peer,
        index = target.index().name(),
        name = note.name.as_ref().map(Name::as_str),
        rule = block.rule.as_str(),
        action,
        status = block.status,
        "{}", block.message
    );
    note.message = Some(block.message.clone());
    if !audit {
        return Err(Failure::Blocked(block));
    }
    // Audit mode: what would have been answered is logged and counted; the request goes on.
    note.reason = Some(format!("{} {}", block.status, block.message));
    Ok(advertised)
}

/// One request's access line, written on drop.
struct AccessLog {
    site: Arc<Intercepted>,
    method: Method,
    path: String,
    status: u16,
    start: Instant,
    note: Note,
    bytes: u64,
    /// False when the client went away (or the upstream failed) before the body ended.
    complete: bool,
}

impl AccessLog {
    /// Notes the request's block, or the files its page withheld, in the recent decisions.
    fn record(&self, links: Option<&pipgate_policy::Summary>) {
        let note = &self.note;
        let site = &self.site;
        let decision = |action, rule, reason: &str| Decision {
            time: decisions::now_rfc3339(),
            action,
            rule,
            status: self.status,
            index: note.index.clone(),
            name: note.name.as_ref().map(|n| n.as_str().to_owned()),
            host: site.host.clone(),
            path: self.path.clone(),
            client: site.conn.peer.to_string(),
            user: site.conn.user.as_deref().map(str::to_owned),
            reason: reason.to_owned(),
        };
        let recent = &site.conn.shared.decisions;
        if let (Some(action @ ("block" | "audit")), Some(rule)) = (note.decision, note.rule) {
            let reason = note.message.as_deref().unwrap_or_default();
            recent.push(decision(action, rule, reason));
        }
        for w in links.map_or(&[][..], |l| &l.samples) {
            let action = match w.mode {
                pipgate_policy::Mode::Enforce => "withhold",
                pipgate_policy::Mode::Audit => "audit",
            };
            recent.push(decision(action, w.rule.as_str(), &w.reason));
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        if let Some((rule, action, message)) = self.note.cut.get().cloned() {
            let note = &mut self.note;
            note.decision = Some(action);
            note.rule = Some(rule);
            note.message = Some(message);
        }
        let links = self.note.links.get();
        self.record(links);
        let kind = self.note.kind.unwrap_or("other");
        let metrics = &self.site.conn.shared.metrics;
        metrics.served(kind, self.status, self.start.elapsed(), self.bytes);
        let note = &self.note;
        let withheld = links.map(|l| l.withheld.rules()).filter(|w| !w.is_empty());
        Access {
            client: Some(self.site.conn.peer),
            user: self.site.conn.user.as_deref(),
            mode: Some(self.site.conn.mode),
            method: Some(self.method.as_str()),
            host: Some(&self.site.host),
            path: Some(&self.path),
            status: Some(self.status),
            bytes: Some(self.bytes),
            complete: Some(self.complete),
            duration: Some(self.start.elapsed()),
            index: note.index.as_deref(),
            name: note.name.as_ref().map(Name::as_str),
            decision: note.decision,
            rule: note.rule,
            reason: note.reason.as_deref().or(note.message.as_deref()),
            kept: links.map(|l| l.kept),
            dropped: links.map(|l| l.dropped),
            withheld: withheld.as_deref(),
            cache: note.cache,
            ..Access::default()
        }
        .emit();
    }
}

/// A response body that counts what it delivers for the access line.
struct Logged {
    inner: Body,
    log: AccessLog,
}

impl Drop for Logged {
    fn drop(&mut self) {
        // hyper stops polling once a body says it has ended, so `None` may never be seen.
        if http_body::Body::is_end_stream(&self.inner) {
            self.log.complete = true;
        }
    }
}

impl http_body::Body for Logged {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.log.bytes += data.len() as u64;
                }
            }
            std::task::Poll::Ready(None) => this.log.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
