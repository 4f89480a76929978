//! Root listings (`/simple/`, issue rule 6): every name that may be public, linked canonically.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{emit, html, utf8, PageFormat, Rewritten};
use crate::{Index, Name, RewriteError};

#[derive(Deserialize)]
struct RootIn<'a> {
    #[serde(borrow, default)]
    meta: Option<MetaIn<'a>>,
    #[serde(borrow)]
    projects: Vec<ProjectIn<'a>>,
}

#[derive(Deserialize)]
struct MetaIn<'a> {
    #[serde(borrow, default, rename = "api-version")]
    api_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ProjectIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Serialize)]
struct RootOut<'a> {
    meta: MetaOut<'a>,
    projects: Vec<ProjectOut<'a>>,
}

#[derive(Serialize)]
struct MetaOut<'a> {
    #[serde(rename = "api-version")]
    api_version: &'a str,
}

#[derive(Serialize)]
struct ProjectOut<'a> {
    name: &'a str,
}

pub(crate) fn rewrite(
    index: &Index,
    _page_url: &Url,
    format: PageFormat,
    body: &[u8],
    hidden: &dyn Fn(&Name) -> bool,
) -> Result<Rewritten, RewriteError> {
    let mut f = Filter {
        name: Name::new(""),
        hidden,
        kept: 0,
        dropped: 0,
    };
    if format == PageFormat::JsonV1 {
        let root: RootIn<'_> = serde_json::from_slice(body)?;
        let api_version = root
            .meta
            .as_ref()
            .and_then(|m| m.api_version.as_deref())
            .filter(|v| emit::is_v1(v))
            .unwrap_or("1.1");
        let projects: Vec<ProjectOut<'_>> = root
            .projects
            .iter()
            .filter(|p| f.keep(&p.name))
            .map(|p| ProjectOut {
                name: p.name.trim(),
            })
            .collect();
        let mut out = Vec::with_capacity(body.len());
        serde_json::to_writer(
            &mut out,
            &RootOut {
                meta: MetaOut { api_version },
                projects,
            },
        )?;
        return Ok(Rewritten {
            body: out,
            content_type: format.content_type(),
            kept: f.kept,
            dropped: f.dropped,
        });
    }
    let parsed = html::parse(utf8(body)?, true);
    let version = parsed
        .meta(html::MetaName::RepositoryVersion)
        .map(str::trim)
        .filter(|v| emit::is_v1(v))
        .unwrap_or("1.1");
    let mut out = Vec::with_capacity(body.len());
    emit::head(&mut out, version, None, "Simple index");
    let prefix = index.url().as_str();
    let mut href = String::new();
    for a in &parsed.anchors {
        let Some(text) = parsed.opt(&a.text) else {
            continue;
        };
        if f.keep(text) {
            let name = &f.name;
            // A valid normalized name is [a-z0-9-] only, so it needs no percent-encoding.
            href.clear();
            href.push_str(prefix);
            href.push_str(name.as_str());
            href.push('/');
            out.extend_from_slice(b"<a href=\"");
            emit::escape_into(&mut out, &href);
            out.extend_from_slice(b"\">");
            emit::escape_into(&mut out, text.trim());
            out.extend_from_slice(b"</a>\n");
        }
    }
    emit::tail(&mut out);
    Ok(Rewritten {
        body: out,
        content_type: format.content_type(),
        kept: f.kept,
        dropped: f.dropped,
    })
}

/// Decides each listed name, counting; one `Name` buffer serves the whole listing.
struct Filter<'h> {
    name: Name,
    hidden: &'h dyn Fn(&Name) -> bool,
    kept: usize,
    dropped: usize,
}

impl Filter<'_> {
    // Names that are not PEP 508 names cannot be projects; listing them would only invite
    // requests that pipgate refuses anyway.
    fn keep(&mut self, raw: &str) -> bool {
        self.name.set(raw.trim());
        let ok = self.name.is_valid() && !(self.hidden)(&self.name);
        if ok {
            self.kept += 1;
        } else {
            self.dropped += 1;
        }
        ok
    }
}
