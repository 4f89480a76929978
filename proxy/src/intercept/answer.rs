//! The answer side of an intercepted exchange: what pipgate makes of upstream's response, as a
//! redirect (checked), a file (streamed untouched) or a page (rewritten).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use pipgate_policy::{
    is_redirect, Ask, FileRecord, Index, Judge, Lookup, Name, PageFormat, PageKind, ProjectStream,
    Question, Rewritten, Target,
};

use super::request::{site_url, strip_hop_by_hop, Asked};
use super::rewrite::{
    derived_etag, page_error, page_response, record, rewrite_legacy, Answer, Caching, PageStream,
    Rewriter,
};
use super::{Cut, Intercepted, Note};
use crate::body::{self, Body};
use crate::decode::{self, PageError};
use crate::digest::{self, Verdict};
use crate::encode;
use crate::respond::Failure;
use crate::state::Runtime;

/// A legacy JSON document at least this large is rewritten on a blocking-pool thread (~1 ms
/// of policy work at this size).
const OFF_THREAD: usize = 256 * 1024;

/// Upstream's `resp` to the request for `target`, made into the client's answer.
pub(super) async fn respond(
    site: &Intercepted,
    rt: &Arc<Runtime>,
    target: &Target<'_>,
    asked: Asked,
    resp: Response<Body>,
    note: &mut Note,
    check: Option<Verdict>,
) -> Result<Response<Body>, Failure> {
    let kind = PageKind::of(target);
    if is_redirect(resp.status().as_u16()) && resp.headers().contains_key(header::LOCATION) {
        return redirect(rt, site, &asked.upstream_path, kind, resp);
    }
    if kind.is_none() {
        note.decision.get_or_insert("stream");
        // A HEAD has no bytes to judge.
        let check = check.filter(|_| asked.method != Method::HEAD);
        let fill = note.fill.take();
        return file(
            site,
            resp,
            rt.config.upstream.idle_timeout,
            &asked,
            check,
            fill,
        );
    }
    page_answer(site, rt, target, asked, resp, note).await
}

/// A page answer (upstream's, or a stored one) made into the client's: a page rewritten, or a
/// refusal in pipgate's words.
pub(super) async fn page_answer(
    site: &Intercepted,
    rt: &Arc<Runtime>,
    target: &Target<'_>,
    asked: Asked,
    resp: Response<Body>,
    note: &mut Note,
) -> Result<Response<Body>, Failure> {
    note.decision.get_or_insert("rewrite");
    if let Some(refusal) = page_status(site, resp.status(), &asked.path)? {
        return Ok(refusal);
    }
    if matches!(target, Target::LegacyJson { .. }) {
        return legacy_json(site, rt, target, asked, resp, note).await;
    }
    page(site, rt, target, asked, resp, note).await
}

/// Passes a redirect on when policy allows where it leads, with the `Location` it checked.
pub(super) fn redirect<B>(
    rt: &Runtime,
    site: &Intercepted,
    path: &str,
    asked: Option<PageKind>,
    resp: Response<B>,
) -> Result<Response<Body>, Failure> {
    let refuse = |reason: String| Failure::BadUpstreamAnswer {
        host: site.host.clone(),
        reason,
    };
    let location = resp
        .headers()
        .get(header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let from = url::Url::parse(&site_url(site, path))
        .map_err(|e| refuse(format!("bad request URL: {e}")))?;
    let checked = rt
        .config
        .policy
        .redirect(&from, asked, &location)
        .map_err(refuse)?;
    let checked = HeaderValue::from_str(checked.as_str())
        .map_err(|_| refuse(format!("unusable redirect Location {checked}")))?;
    let (mut parts, _) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::LOCATION, checked);
    Ok(Response::from_parts(parts, body::empty()))
}

/// The verdict a public download's digest gets, when a rule judges files by their bytes: the
/// sha256 its index `advertised` (`[policy.integrity]`, on by default) or a denied hash
/// (`policy.deny.files`, advisories). A refused digest cuts the download before its last
/// bytes, and is logged, counted and noted in `cut` (the access line and recent decisions) as
/// the rule's block (or only reported, in audit mode).
pub(super) fn digest_check(
    site: &Intercepted,
    rt: &Arc<Runtime>,
    target: &Target<'_>,
    advertised: Option<String>,
    cut: &Cut,
) -> Option<Verdict> {
    let Target::File {
        index, filename, ..
    } = target
    else {
        return None;
    };
    let rules = rt.config.policy.rules();
    let verifies = rules.verifies_digests(index);
    if index.role() != pipgate_policy::Role::Public || !(verifies || rules.needs(index).sha256) {
        return None;
    }
    // The index by its place in the runtime's policy (which the verdict holds): cloning it
    // for every download cost a few allocations.
    let Some(at) = rt
        .config
        .policy
        .indexes()
        .iter()
        .position(|i| std::ptr::eq(i, *index) || i.name() == index.name())
    else {
        // Not reachable (a target's index is one of its policy's); refused, not unchecked.
        let message = format!("pipgate: {filename}: its index is not in the policy");
        return Some(Box::new(move |_: &str| Err(message.clone())));
    };
    let (rt, filename) = (Arc::clone(rt), filename.clone());
    let (shared, peer, cut) = (site.conn.shared.clone(), site.conn.peer, Arc::clone(cut));
    Some(Box::new(move |hex: &str| {
        let policy = &rt.config.policy;
        let index = &policy.indexes()[at];
        let denied = policy
            .rules()
            .digest_denied(index, hex, advertised.as_deref());
        if verifies {
            let result = match (&advertised, &denied) {
                (None, _) => "unknown",
                (Some(_), Some(d)) if d.rule == pipgate_policy::Rule::HashMismatch => "mismatch",
                (Some(_), _) => "verified",
            };
            shared.metrics.download_hash(result);
        }
        let Some(denied) = denied else {
            return Ok(());
        };
        let action = match denied.mode {
            pipgate_policy::Mode::Enforce => "block",
            pipgate_policy::Mode::Audit => "audit",
        };
        shared.metrics.decision(denied.rule.as_str(), action);
        let message = format!(
            "pipgate: {filename}: {} (rule {})",
            denied.reason, denied.rule
        );
        tracing::warn!(
            target: "pipgate::policy",
            client = %peer,
            index = index.name(),
            file = %filename,
            rule = denied.rule.as_str(),
            action,
            "{message}; {}",
            match denied.mode {
                pipgate_policy::Mode::Enforce => "the download was cut before its end",
                pipgate_policy::Mode::Audit => "served (audit)",
            }
        );
        let _ = cut.set((denied.rule.as_str(), action, message.clone()));
        match denied.mode {
            pipgate_policy::Mode::Enforce => Err(message),
            pipgate_policy::Mode::Audit => Ok(()),
        }
    }))
}

/// A file's answer, streamed untouched (cut if upstream stalls for `idle`; with `check`, its
/// last bytes held until its digest is judged), unless it is an index page (a wheel is not
/// HTML): that is refused when it is a success (502) and worded by pipgate when it is not, so
/// no page ever reaches a client through the file door unfiltered.
fn file(
    site: &Intercepted,
    resp: Response<Body>,
    idle: std::time::Duration,
    asked: &Asked,
    check: Option<Verdict>,
    fill: Option<super::cached::Pending>,
) -> Result<Response<Body>, Failure> {
    let path = &asked.path;
    let page_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .filter(|ct| PageFormat::is_page_content_type(ct));
    match page_type {
        None => {
            let (mut parts, incoming) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let body = body::stream_with_idle(incoming, idle);
            // Only a whole file is judged by its digest, or stored (a range's bytes are not
            // the file's): such a download was asked for whole.
            let body = match check {
                _ if asked.whole && parts.status == StatusCode::OK => {
                    let body = match fill {
                        Some(fill) => fill.store(body, &parts.headers),
                        None => body,
                    };
                    let body = match check {
                        Some(check) => digest::checked(body, check),
                        None => body,
                    };
                    match client_range(asked, &parts.headers) {
                        Some(range) => {
                            parts.status = StatusCode::PARTIAL_CONTENT;
                            range.set_headers(&mut parts.headers);
                            digest::ranged(body, range)
                        }
                        None => body,
                    }
                }
                // It was asked for whole: part of it cannot be judged, so it is not passed on.
                _ if asked.whole && parts.status == StatusCode::PARTIAL_CONTENT => {
                    return Err(Failure::BadUpstreamAnswer {
                        host: site.host.clone(),
                        reason: "a partial answer (206) to a request for a whole file".into(),
                    })
                }
                _ => body,
            };
            Ok(Response::from_parts(parts, body))
        }
        Some(ct) if resp.status().is_success() => Err(Failure::BadUpstreamAnswer {
            host: site.host.clone(),
            reason: format!("a file answered with the content type of an index page ({ct:?})"),
        }),
        Some(_) => Ok(page_error(site, resp.status(), path)),
    }
}

/// The range the client asked for, to be cut from the whole file upstream answered (`headers`
/// are its): one satisfiable byte range of a file whose length upstream gave, and whose
/// `If-Range`, if any, names this file (its strong ETag or exact Last-Modified). Otherwise the
/// whole file is the answer (RFC 9110 14.2).
fn client_range(asked: &Asked, headers: &http::HeaderMap) -> Option<digest::ByteRange> {
    let (range, if_range) = asked.range.as_ref()?;
    let total = headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    if let Some(validator) = if_range {
        let strong_etag = headers
            .get(header::ETAG)
            .filter(|e| !e.as_bytes().starts_with(b"W/"));
        let matches =
            strong_etag == Some(validator) || headers.get(header::LAST_MODIFIED) == Some(validator);
        if !matches {
            return None;
        }
    }
    digest::ByteRange::parse(range.to_str().ok()?, total)
}

/// Only a page (200) is rewritten (`None`), and only a refusal (4xx) is relayed, in pipgate's
/// words (`Some`). Anything else would hand the client something pipgate did not write: a 304
/// (it asked for no conditional, so it can only be wrong), a 206, a 3xx without a usable
/// `Location`.
fn page_status(
    site: &Intercepted,
    status: StatusCode,
    path: &str,
) -> Result<Option<Response<Body>>, Failure> {
    if status == StatusCode::OK {
        return Ok(None);
    }
    if status.is_client_error() {
        return Ok(Some(page_error(site, status, path)));
    }
    let reason = if status.is_server_error() {
        format!("upstream answered {status}")
    } else {
        format!("unexpected {status} for an index page")
    };
    Err(Failure::BadUpstreamAnswer {
        host: site.host.clone(),
        reason,
    })
}

/// A project page or root listing, rewritten as it arrives.
async fn page(
    site: &Intercepted,
    rt: &Arc<Runtime>,
    target: &Target<'_>,
    asked: Asked,
    resp: Response<Body>,
    note: &mut Note,
) -> Result<Response<Body>, Failure> {
    let (parts, incoming) = resp.into_parts();
    let content_type = content_type(&parts.headers);
    let format = PageFormat::from_content_type(&content_type)
        .ok_or_else(|| unexpected_type(site, &content_type, "an index page"))?;
    let page_url = page_url(site, &asked)?;
    let known = learnt_files(site, rt, target, format).await?;
    let page = Page {
        url: &page_url,
        format,
        wants: asked.wants,
        known: known.as_deref(),
    };
    let (rewriter, derived) = rewriter(rt, target, &page, &parts.headers);
    let out = encode::choose(
        rt.config.limits.page_compression,
        asked.accept_encoding.as_ref(),
        site.conn.peer,
    );
    let caching = Caching {
        cache_control: parts.headers.get(header::CACHE_CONTROL).cloned(),
        client_etag: encode::client_etag(asked.etag, out),
        derived,
    };
    let limits = &rt.config.limits;
    let source = decode::Source::new(&parts.headers, incoming, rt.config.upstream.idle_timeout)
        .map_err(|e| Failure::page(&site.host, e))?;
    let page = PageStream::new(
        site.conn.shared.clone(),
        &site.host,
        source,
        rewriter,
        limits.max_page_bytes,
        rt.budget.share(),
    );
    note.links = page.outcome();
    let answer = if asked.method == Method::HEAD {
        Answer::Head
    } else if asked.version < http::Version::HTTP_11 {
        // HTTP/1.0 has no chunked framing: a cut close-delimited body would look whole.
        Answer::Whole
    } else {
        Answer::Stream
    };
    let head = answer == Answer::Head;
    let resp = page.respond(answer, caching).await?;
    Ok(encode::apply(resp, out, head))
}

/// A page as upstream answered it: its URL and format, the format the client wants, and what
/// a lookup learnt of its files when the page itself does not say what the rules need.
struct Page<'a> {
    url: &'a url::Url,
    format: PageFormat,
    wants: PageFormat,
    known: Option<&'a [FileRecord]>,
}

/// When the file rules need upload times and a public index answered a project page in HTML
/// (it has no PEP 691 JSON), the files with their upload times from its legacy JSON API
/// (a lookup, cached and coalesced like a direct download's). With `[policy.provenance]`,
/// for every public project page and legacy JSON document: the files with their attestations
/// verified, which must be known before the first file is written, so a listing that cannot
/// be read fails the page (502) rather than serving files unverified. `None` when nothing is
/// needed.
async fn learnt_files(
    site: &Intercepted,
    rt: &Runtime,
    target: &Target<'_>,
    format: PageFormat,
) -> Result<Option<Arc<[FileRecord]>>, Failure> {
    let (Target::Project { index, name } | Target::LegacyJson { index, name, .. }) = target else {
        return Ok(None);
    };
    let needs = rt.config.policy.rules().needs(index);
    let public = index.role() == pipgate_policy::Role::Public;
    let times = matches!(target, Target::Project { .. })
        && format != PageFormat::JsonV1
        && needs.upload_time;
    if !public || !(times || needs.provenance) {
        return Ok(None);
    }
    let question = Question {
        index,
        name: name.clone(),
        ask: Ask::Files,
    };
    match rt.answers(vec![question]).await.pop().map(|a| a.lookup) {
        Some(Lookup::Files(files)) => Ok(Some(files)),
        _ if !needs.provenance => Ok(None),
        Some(Lookup::Failed(why)) => Err(Failure::BadUpstreamAnswer {
            host: site.host.clone(),
            reason: format!(
                "the files of '{name}' could not be listed to verify their attestations (policy.provenance): {why}"
            ),
        }),
        _ => Err(Failure::BadUpstreamAnswer {
            host: site.host.clone(),
            reason: format!(
                "the files of '{name}' could not be listed to verify their attestations (policy.provenance): the index has no page for it"
            ),
        }),
    }
}

/// The policy's rewrite for a page of `target` (upstream's format, written in the format the
/// client wants when upstream's is JSON), and the ETag its answer can be given before the body
/// is read (project pages only).
fn rewriter(
    rt: &Runtime,
    target: &Target<'_>,
    page: &Page<'_>,
    headers: &http::HeaderMap,
) -> (Rewriter, Option<String>) {
    let (page_url, format, wants) = (page.url, page.format, page.wants);
    match target {
        Target::Project { index, name } => {
            let rules = rt.config.policy.rules();
            let mut judge = rules.judge(index, name, time::OffsetDateTime::now_utc());
            if let Some(files) = page.known {
                judge = judge.knowing(files);
            }
            // JSON is written as JSON unless it was asked for on the client's behalf.
            let output = if format == PageFormat::JsonV1 {
                wants
            } else {
                format
            };
            let rewriter = ProjectStream::judged(index, page_url, format, output, judge);
            // A project page is a function of upstream's bytes, the URL, the index, the rules
            // and pipgate's version: upstream's strong ETag names it before the body is read,
            // unless a rule's decisions change with the clock (cooldown). (A root listing also
            // depends on what pipgate has learnt of private names.)
            let derived = if rules.uses_clock(index) {
                None
            } else {
                derived_etag(
                    headers.get(header::ETAG),
                    page_url,
                    index,
                    rewriter.content_type(),
                    rules.files.fingerprint(),
                )
            };
            (Rewriter::Project(rewriter), derived)
        }
        _ => {
            let known = rt.lookups.known_private();
            let known = move |n: &Name| known.contains(n);
            let index = target.index();
            let root = rt.config.policy.root_stream(index, format, known);
            (Rewriter::Root(root), None)
        }
    }
}

/// The legacy JSON API, read whole (within the page budget), then rewritten.
async fn legacy_json(
    site: &Intercepted,
    rt: &Arc<Runtime>,
    target: &Target<'_>,
    asked: Asked,
    resp: Response<Body>,
    note: &mut Note,
) -> Result<Response<Body>, Failure> {
    let (parts, incoming) = resp.into_parts();
    let content_type = content_type(&parts.headers);
    let page_url = page_url(site, &asked)?;
    let failed = |e| Failure::page(&site.host, e);
    let limits = &rt.config.limits;
    let mut share = rt.budget.share();
    let idle = rt.config.upstream.idle_timeout;
    let body = decode::read_decoded(
        &parts.headers,
        incoming,
        limits.max_page_bytes,
        idle,
        &mut share,
    )
    .await
    .map_err(failed)?;
    // The walk holds about three times the document at its peak.
    share
        .cover(body.len().saturating_mul(3))
        .map_err(|e| failed(PageError::Busy(e)))?;
    let Target::LegacyJson { name, version, .. } = target else {
        return Err(Failure::BadRequest("not a JSON API path".into()));
    };
    let now = time::OffsetDateTime::now_utc();
    let mut judge = rt.config.policy.rules().judge(target.index(), name, now);
    if let Some(files) = learnt_files(site, rt, target, PageFormat::JsonV1).await? {
        judge = judge.knowing(&files);
    }
    let rewritten = rewrite_legacy_json(rt, target.index(), page_url, judge, content_type, body)
        .await
        .map_err(failed)?;
    record(&site.conn.shared, &note.links, rewritten.summary.clone());
    if version.is_some() {
        withheld_release(&rewritten.summary)?;
    }
    let out = encode::choose(
        rt.config.limits.page_compression,
        asked.accept_encoding.as_ref(),
        site.conn.peer,
    );
    let caching = Caching {
        cache_control: parts.headers.get(header::CACHE_CONTROL).cloned(),
        client_etag: encode::client_etag(asked.etag, out),
        derived: None,
    };
    let mut resp = page_response(rewritten.body, rewritten.content_type, caching);
    let head = asked.method == Method::HEAD;
    if head {
        *resp.body_mut() = body::empty();
    }
    Ok(encode::apply(resp, out, head))
}

/// `/pypi/<name>/<version>/json` of a release every file of which a rule withheld: a 404, as
/// for a release the index does not have.
fn withheld_release(summary: &pipgate_policy::Summary) -> Result<(), Failure> {
    match summary.first_withheld() {
        Some(w) if summary.all_withheld && w.mode == pipgate_policy::Mode::Enforce => {
            Err(Failure::Blocked(pipgate_policy::Block {
                status: 404,
                rule: w.rule,
                message: format!(
                    "pipgate: this version is withheld: {} (rule {})",
                    w.reason, w.rule
                ),
            }))
        }
        _ => Ok(()),
    }
}

/// A legacy JSON document rewritten by the policy: a large one off the serving thread.
async fn rewrite_legacy_json(
    rt: &Arc<Runtime>,
    index: &Index,
    page_url: url::Url,
    judge: Judge,
    content_type: String,
    body: Vec<u8>,
) -> Result<Rewritten, PageError> {
    if body.len() < OFF_THREAD {
        return rewrite_legacy(rt, index, &page_url, &judge, &content_type, &body);
    }
    // A large document takes milliseconds: not on the thread that serves everyone else's
    // connections.
    let (rt, index) = (Arc::clone(rt), index.clone());
    tokio::task::spawn_blocking(move || {
        rewrite_legacy(&rt, &index, &page_url, &judge, &content_type, &body)
    })
    .await
    .unwrap_or_else(|e| Err(PageError::Rewrite(format!("the rewrite failed: {e}"))))
}

/// The URL pipgate asked upstream for, which links on the page resolve against.
fn page_url(site: &Intercepted, asked: &Asked) -> Result<url::Url, Failure> {
    url::Url::parse(&site_url(site, &asked.upstream_path))
        .map_err(|e| Failure::BadRequest(format!("bad URL: {e}")))
}

fn content_type(headers: &http::HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn unexpected_type(site: &Intercepted, content_type: &str, what: &str) -> Failure {
    Failure::BadUpstreamAnswer {
        host: site.host.clone(),
        reason: format!("unexpected content type {content_type:?} for {what}"),
    }
}

/// pipgate's own answer to pip 8 and 9's default host: PyPI's redirect to the same path on
/// pypi.org, so the client comes back through the policy.
pub(super) fn to_pypi(path_and_query: &str) -> Response<Body> {
    let location = format!("https://pypi.org{path_and_query}");
    let mut resp = Response::new(body::full(format!("pipgate: moved to {location}\n")));
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
