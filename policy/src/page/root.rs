//! Root listings (`/simple/`, issue rule 6): every name that may be public, linked canonically.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{emit, html, scan, utf8, PageFormat, Rewritten};
use crate::name::is_valid_name;
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
            .filter(|p| f.keep(p.name.trim()))
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
    let text = utf8(body)?;
    let mut sink = Stream::new(index, hidden, text.len());
    if scan::tokenize(text, &mut sink).is_ok() {
        return Ok(sink.finish(format));
    }
    // The scanner gave up part-way (markup it does not model): start over from the full
    // tokenizer's anchors, through the same emitter.
    let parsed = html::parse_reference(text, true);
    let mut sink = Stream::new(index, hidden, text.len());
    sink.version = Some(
        parsed
            .meta(html::MetaName::RepositoryVersion)
            .map(str::to_owned),
    );
    for a in &parsed.anchors {
        if let Some(name) = parsed.opt(&a.text) {
            sink.text.clear();
            sink.text.push_str(name);
            sink.in_anchor = true;
            sink.close_text();
        }
    }
    Ok(sink.finish(format))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    A,
    Meta,
    Other,
}

#[derive(Clone, Copy)]
enum MetaSlot {
    Name = 0,
    Content,
}

/// A root listing written as the scanner reads it: each anchor's name is decided and emitted
/// when its text ends, so nothing per anchor is stored (a PyPI listing has ~700,000).
///
/// It reads the markup exactly as [`html::Collector`] does with text collection on (the same
/// anchors, texts and first `pypi:repository-version` meta); `matches_parsed_path` checks it.
struct Stream<'h> {
    filter: Filter<'h>,
    out: Vec<u8>,
    /// The index URL, escaped once for the `href` attribute.
    prefix: Vec<u8>,
    tag: Option<Tag>,
    slot: Option<MetaSlot>,
    seen: u8,
    meta_name: Option<String>,
    meta_content: Option<String>,
    /// The content of the first `pypi:repository-version` meta that has one, once seen (the
    /// outer `Some`; the fallback path sets `Some(None)` for a page without one).
    version: Option<Option<String>>,
    /// Bytes of `out` taken by the head, and the version it states. The head is written before
    /// the first link so links go straight into place; a meta seen later rewrites it.
    head: Option<(usize, String)>,
    /// Whether an anchor's text is being collected.
    in_anchor: bool,
    text: String,
}

impl<'h> Stream<'h> {
    fn new(index: &Index, hidden: &'h dyn Fn(&Name) -> bool, body_len: usize) -> Stream<'h> {
        let mut prefix = Vec::new();
        emit::escape_into(&mut prefix, index.url().as_str());
        Stream {
            filter: Filter {
                name: Name::new(""),
                hidden,
                kept: 0,
                dropped: 0,
            },
            // Links grow by the index URL's host part; untouched capacity costs no memory, and
            // growing a buffer of tens of megabytes copies it.
            out: Vec::with_capacity(body_len.saturating_add(body_len / 2)),
            prefix,
            tag: None,
            slot: None,
            seen: 0,
            meta_name: None,
            meta_content: None,
            version: None,
            head: None,
            in_anchor: false,
            text: String::new(),
        }
    }

    fn version(&self) -> &str {
        self.version
            .as_ref()
            .and_then(Option::as_deref)
            .map(str::trim)
            .filter(|v| emit::is_v1(v))
            .unwrap_or("1.1")
    }

    /// The current anchor's text has ended: decide its name and emit the link.
    fn close_text(&mut self) {
        if !std::mem::take(&mut self.in_anchor) {
            return;
        }
        let text = self.text.trim();
        if !self.filter.keep(text) {
            return;
        }
        if self.head.is_none() {
            let version = self.version().to_owned();
            emit::head(&mut self.out, &version, None, "Simple index");
            self.head = Some((self.out.len(), version));
        }
        let out = &mut self.out;
        out.extend_from_slice(b"<a href=\"");
        out.extend_from_slice(&self.prefix);
        // A kept name passed `is_valid_name` as written, so it and its normalized form are
        // ASCII letters, digits and `-_.` only: nothing in either needs escaping of any kind.
        out.extend_from_slice(self.filter.name.as_str().as_bytes());
        out.extend_from_slice(b"/\">");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"</a>\n");
    }

    fn finish(mut self, format: PageFormat) -> Rewritten {
        self.close_text();
        let version = self.version().to_owned();
        match &self.head {
            None => emit::head(&mut self.out, &version, None, "Simple index"),
            Some((len, stated)) if *stated != version => {
                let mut head = Vec::new();
                emit::head(&mut head, &version, None, "Simple index");
                let len = *len;
                self.out.splice(..len, head);
            }
            Some(_) => {}
        }
        emit::tail(&mut self.out);
        Rewritten {
            body: self.out,
            content_type: format.content_type(),
            kept: self.filter.kept,
            dropped: self.filter.dropped,
        }
    }
}

impl scan::Sink for Stream<'_> {
    fn open(&mut self, name: &[u8]) {
        self.tag = Some(match name {
            b"a" => Tag::A,
            b"meta" => Tag::Meta,
            _ => Tag::Other,
        });
        self.seen = 0;
        self.slot = None;
        self.meta_name = None;
        self.meta_content = None;
    }

    fn attribute(&mut self, name: &[u8]) {
        self.slot = None;
        if self.tag != Some(Tag::Meta) || self.version.is_some() {
            return;
        }
        let slot = match name {
            b"name" => MetaSlot::Name,
            b"content" => MetaSlot::Content,
            _ => return,
        };
        // The first of duplicate attributes wins, as in the tokenizer.
        let bit = 1u8 << (slot as u8);
        if self.seen & bit != 0 {
            return;
        }
        self.seen |= bit;
        *self.meta_slot(slot) = Some(String::new());
        self.slot = Some(slot);
    }

    fn value(&mut self, value: &str) {
        if let Some(slot) = self.slot.take() {
            if let Some(v) = self.meta_slot(slot) {
                v.push_str(value);
            }
        }
    }

    fn close_tag(&mut self) {
        self.slot = None;
        match self.tag.take() {
            Some(Tag::A) => {
                // As in the collector: an anchor's text also ends where the next anchor opens.
                self.close_text();
                self.in_anchor = true;
                self.text.clear();
            }
            Some(Tag::Meta) if self.version.is_none() => {
                let is_version = self
                    .meta_name
                    .take()
                    .is_some_and(|n| n.eq_ignore_ascii_case("pypi:repository-version"));
                if is_version && self.meta_content.is_some() {
                    self.version = Some(self.meta_content.take());
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, name: &[u8]) {
        self.tag = None;
        if name == b"a" {
            self.close_text();
        }
    }

    fn wants_text(&self) -> bool {
        self.in_anchor
    }

    fn text(&mut self, value: &str) {
        if self.in_anchor {
            self.text.push_str(value);
        }
    }

    // Only a meta's name and content matter here, not the hrefs that make up most of a listing.
    fn wants_value(&self) -> bool {
        self.slot.is_some()
    }
}

impl Stream<'_> {
    fn meta_slot(&mut self, slot: MetaSlot) -> &mut Option<String> {
        match slot {
            MetaSlot::Name => &mut self.meta_name,
            MetaSlot::Content => &mut self.meta_content,
        }
    }
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
    // requests that pipgate refuses anyway. `raw` is trimmed. It is checked as written, which
    // the emitter's no-escaping relies on: normalizing only lower-cases ASCII letters and
    // folds runs of `-_.` into `-`, so a name is valid exactly when its normalization is
    // (`validity_survives_normalization`), and an invalid one costs no normalizing.
    fn keep(&mut self, raw: &str) -> bool {
        let ok = is_valid_name(raw) && {
            self.name.set(raw);
            !(self.hidden)(&self.name)
        };
        if ok {
            self.kept += 1;
        } else {
            self.dropped += 1;
        }
        ok
    }
}

#[cfg(test)]
mod tests;
