//! HTML project pages: anchors that pass the link rule become canonical PEP 503 anchors.

use url::Url;

use super::html::{self, Anchor, MetaName, Parsed};
use super::{emit, link, title_name, utf8, PageFormat, Rewritten};
use crate::{Index, RewriteError};

pub(crate) fn rewrite_html(
    index: &Index,
    page_url: &Url,
    format: PageFormat,
    body: &[u8],
) -> Result<Rewritten, RewriteError> {
    let parsed = html::parse(utf8(body)?, false);
    // pip resolves links against the first <base href> (itself resolved against the page URL).
    // A base that does not resolve leaves only absolute links resolvable.
    let base = match &parsed.base {
        Some(span) => link::resolve(page_url, parsed.get(span)),
        None => Some(page_url.clone()),
    };
    let status = parsed.meta(MetaName::ProjectStatus).map(str::trim);
    let reason = parsed.meta(MetaName::ProjectStatusReason);
    // PEP 792: a quarantined project offers no files at all.
    let quarantined = status.is_some_and(|s| s.eq_ignore_ascii_case("quarantined"));
    let version = parsed
        .meta(MetaName::RepositoryVersion)
        .map(str::trim)
        .filter(|v| emit::is_v1(v))
        .unwrap_or("1.1");

    let mut out = Vec::with_capacity(body.len() / 2 + 512);
    emit::head(
        &mut out,
        version,
        status.map(|s| (s, reason)),
        &format!("Links for {}", title_name(page_url)),
    );
    let (mut kept, mut dropped) = (0, 0);
    let mut href_buf = String::new();
    for a in &parsed.anchors {
        let Some(href) = parsed.opt(&a.href) else {
            continue;
        };
        match file_link(index, base.as_ref(), &parsed, a, href) {
            Some(f) if !quarantined => {
                href_buf.clear();
                href_buf.push_str(&f.link.url);
                if let Some((alg, hex)) = &f.link.hash {
                    href_buf.push('#');
                    href_buf.push_str(alg);
                    href_buf.push('=');
                    href_buf.push_str(hex);
                }
                let mut attrs: Vec<(&'static str, &str)> = Vec::with_capacity(4);
                if let Some(v) = parsed.opt(&a.requires_python) {
                    attrs.push(("data-requires-python", v));
                }
                if let Some(v) = parsed.opt(&a.yanked) {
                    attrs.push(("data-yanked", v));
                }
                if let Some(v) = f.core_metadata {
                    attrs.push(("data-core-metadata", v));
                }
                if let Some(v) = f.provenance.as_ref() {
                    attrs.push(("data-provenance", v.as_str()));
                }
                emit::anchor(&mut out, &href_buf, &attrs, &f.link.filename);
                kept += 1;
            }
            _ => dropped += 1,
        }
    }
    emit::tail(&mut out);
    Ok(Rewritten {
        body: out,
        content_type: format.content_type(),
        kept,
        dropped,
    })
}

/// A link that passed the rule, with what survives of its attributes.
struct FileLink<'a> {
    link: link::Checked<'a>,
    core_metadata: Option<&'a str>,
    provenance: Option<Url>,
}

fn file_link<'a>(
    index: &Index,
    base: Option<&Url>,
    parsed: &'a Parsed,
    a: &Anchor,
    href: &'a str,
) -> Option<FileLink<'a>> {
    if parsed.opt(&a.rel).is_some_and(link::is_external_rel) {
        return None;
    }
    let resolve = |s: &str| match base {
        Some(b) => link::resolve(b, s),
        None => Url::parse(s.trim_matches(|c: char| c.is_ascii_whitespace())).ok(),
    };
    let link = link::check(index, base, href)?;
    // PEP 714: data-core-metadata wins; the old name is read only when the new one is absent.
    let core_metadata = parsed
        .opt(&a.core_metadata)
        .or_else(|| parsed.opt(&a.dist_info_metadata))
        .map(str::trim)
        .filter(|v| valid_metadata_flag(v));
    let provenance = parsed
        .opt(&a.provenance)
        .and_then(resolve)
        .filter(|p| link::allowed(index, p));
    Some(FileLink {
        link,
        core_metadata,
        provenance,
    })
}

/// `true` or `<hash-name>=<hex>` (PEP 658); anything else is not passed on.
fn valid_metadata_flag(v: &str) -> bool {
    v == "true"
        || v.split_once('=')
            .is_some_and(|(n, h)| link::valid_hash(n, h))
}
