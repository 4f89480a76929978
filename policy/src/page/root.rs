//! Root listings (`/simple/`, issue rule 6): every name that may be public, linked canonically,
//! rewritten as they arrive. PyPI's listing is tens of megabytes (~700,000 names): each name is
//! decided and written when its anchor (or JSON entry) ends, so nothing per name is stored, and
//! only what a chunk cut is held between chunks. A whole listing is the one-chunk case.
//!
//! Only the first `pypi:repository-version` meta before the first anchor counts (as on project
//! pages): the head is written before the first link, and a page streams past it.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::chunks::{Chunks, Scan};
use super::json::walk::{Document, Values, Walk};
use super::scan::{self, Part};
use super::{emit, html, PageFormat, Summary};
use crate::{Index, Name, RewriteError};

/// Which names a listing leaves out.
pub(crate) type Hidden<'h> = Box<dyn Fn(&Name) -> bool + Send + Sync + 'h>;

/// A root listing being re-synthesized as it arrives, in any of the three formats: bytes in,
/// the new listing out.
pub struct RootStream<'h>(Rewriter<'h>);

enum Rewriter<'h> {
    // Boxed: a listing makes one, and the two differ in size.
    Html(Box<HtmlRoot<'h>>),
    Json(Box<Walk<JsonRoot<'h>>>),
}

impl std::fmt::Debug for RootStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootStream").finish_non_exhaustive()
    }
}

impl<'h> RootStream<'h> {
    /// A rewrite of the root listing of `index` in `format` without the names `hidden` says.
    pub(crate) fn new(index: &Index, format: PageFormat, hidden: Hidden<'h>) -> RootStream<'h> {
        let filter = Filter {
            name: Name::new(""),
            hidden,
            kept: 0,
            dropped: 0,
        };
        RootStream(if format.is_html() {
            Rewriter::Html(Box::new(HtmlRoot {
                chunks: Chunks::default(),
                sink: Stream::new(index, filter),
                format,
            }))
        } else {
            Rewriter::Json(Box::new(Walk::new(JsonRoot {
                filter,
                api_version: None,
            })))
        })
    }

    /// The `Content-Type` of the output.
    pub fn content_type(&self) -> &'static str {
        match &self.0 {
            Rewriter::Html(h) => h.format.content_type(),
            Rewriter::Json(_) => PageFormat::JsonV1.content_type(),
        }
    }

    /// Takes the next bytes of the listing and appends what they complete to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        match &mut self.0 {
            Rewriter::Html(h) => h.chunks.feed(chunk, &mut h.sink, out),
            Rewriter::Json(j) => j.feed(chunk, out),
        }
    }

    /// The listing has ended: appends the rest of the output and says what it offered.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<Summary, RewriteError> {
        match self.0 {
            Rewriter::Html(h) => h.finish(out),
            Rewriter::Json(mut j) => {
                j.end(out)?;
                j.doc.finish(out)
            }
        }
    }

    /// How much of a whole listing of `len` bytes to feed at a time (see `ProjectStream`).
    pub(crate) fn whole_page_chunk(&self, len: usize) -> usize {
        match &self.0 {
            Rewriter::Html(_) => 32 * 1024,
            Rewriter::Json(_) => len.max(1),
        }
    }
}

struct HtmlRoot<'h> {
    chunks: Chunks,
    sink: Stream<'h>,
    format: PageFormat,
}

impl HtmlRoot<'_> {
    fn finish(self, out: &mut Vec<u8>) -> Result<Summary, RewriteError> {
        let rest = self.chunks.finish()?;
        let mut sink = self.sink;
        std::mem::swap(&mut sink.out, out);
        // The end of input closes what is still open; where the fast scanner gives up (or gave
        // up before), html5gum takes the rest, into the same sink.
        let reference = if rest.reference {
            Some(0)
        } else {
            match scan::tokenize_end(&rest.text, &mut sink) {
                Part::Consumed(_) => None,
                Part::Bailed(at) => Some(at),
            }
        };
        if let Some(at) = reference {
            html::tokenize_reference(rest.text.get(at..).unwrap_or_default(), &mut sink);
        }
        sink.close_text();
        sink.write_head();
        emit::tail(&mut sink.out);
        std::mem::swap(&mut sink.out, out);
        Ok(Summary {
            kept: sink.filter.kept,
            dropped: sink.filter.dropped,
            ..Summary::default()
        })
    }
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

/// An HTML root listing written as the scanner reads it: each anchor's name is decided and
/// emitted when its text ends.
///
/// It reads the markup exactly as [`html::Collector`] does with text collection on (the same
/// anchors, texts and first `pypi:repository-version` meta before an anchor).
struct Stream<'h> {
    filter: Filter<'h>,
    /// Where output goes: the caller's buffer, swapped in for each scan.
    out: Vec<u8>,
    /// The index URL, escaped once for the `href` attribute.
    prefix: Vec<u8>,
    tag: Option<Tag>,
    slot: Option<MetaSlot>,
    seen: u8,
    meta_name: Option<String>,
    meta_content: Option<String>,
    /// The content of the first `pypi:repository-version` meta before the first anchor.
    version: Option<String>,
    /// Whether an anchor has been seen: metas after it are late, and ignored.
    seen_anchor: bool,
    /// Whether the head has been written (before the first link, or at the end).
    head_written: bool,
    /// Whether an anchor's text is being collected.
    in_anchor: bool,
    text: String,
}

impl<'h> Stream<'h> {
    fn new(index: &Index, filter: Filter<'h>) -> Stream<'h> {
        let mut prefix = Vec::new();
        emit::escape_into(&mut prefix, index.url().as_str());
        Stream {
            filter,
            out: Vec::new(),
            prefix,
            tag: None,
            slot: None,
            seen: 0,
            meta_name: None,
            meta_content: None,
            version: None,
            seen_anchor: false,
            head_written: false,
            in_anchor: false,
            text: String::new(),
        }
    }

    fn write_head(&mut self) {
        if std::mem::replace(&mut self.head_written, true) {
            return;
        }
        let version = self
            .version
            .as_deref()
            .map(str::trim)
            .filter(|v| emit::is_v1(v))
            .unwrap_or("1.1");
        emit::head(&mut self.out, version, None, "Simple index");
    }

    /// The current anchor's text has ended: decide its name and emit the link.
    fn close_text(&mut self) {
        if !std::mem::take(&mut self.in_anchor) {
            return;
        }
        let text = std::mem::take(&mut self.text);
        let name = text.trim();
        if self.filter.keep(name) {
            self.write_head();
            let out = &mut self.out;
            out.extend_from_slice(b"<a href=\"");
            out.extend_from_slice(&self.prefix);
            // A kept name passed `is_valid_name` as written, so it and its normalized form are
            // ASCII letters, digits and `-_.` only: nothing in either needs escaping of any kind.
            out.extend_from_slice(self.filter.name.as_str().as_bytes());
            out.extend_from_slice(b"/\">");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"</a>\n");
        }
        self.text = text;
        self.text.clear();
    }

    fn meta_slot(&mut self, slot: MetaSlot) -> &mut Option<String> {
        match slot {
            MetaSlot::Name => &mut self.meta_name,
            MetaSlot::Content => &mut self.meta_content,
        }
    }
}

impl Scan for Stream<'_> {
    fn scan(&mut self, text: &str, out: &mut Vec<u8>) -> Result<Part, RewriteError> {
        std::mem::swap(&mut self.out, out);
        let part = scan::tokenize_part(text, self);
        std::mem::swap(&mut self.out, out);
        Ok(part)
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
        if self.tag != Some(Tag::Meta) || self.version.is_some() || self.seen_anchor {
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
                self.seen_anchor = true;
                self.in_anchor = true;
                self.text.clear();
            }
            Some(Tag::Meta) if self.version.is_none() && !self.seen_anchor => {
                let is_version = self
                    .meta_name
                    .take()
                    .is_some_and(|n| n.eq_ignore_ascii_case("pypi:repository-version"));
                if is_version {
                    self.version = self.meta_content.take();
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

/// A PEP 691 JSON root listing: `{"meta": {...}, "projects": [{"name": ...}, ...]}`, written
/// as `{"projects":[...],"meta":{"api-version":...}}` (entries first, so it streams whatever
/// order upstream wrote its keys in).
struct JsonRoot<'h> {
    filter: Filter<'h>,
    api_version: Option<String>,
}

#[derive(Deserialize, Default)]
struct MetaIn<'a> {
    #[serde(borrow, default, rename = "api-version")]
    api_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ProjectIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// The top-level keys of a JSON root listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RootKey {
    Meta,
    Projects,
    Other,
}

impl Document for JsonRoot<'_> {
    type Key = RootKey;
    const ENTRIES: RootKey = RootKey::Projects;
    const ENTRY: &'static str = "a project";

    fn key(name: &str) -> RootKey {
        match name {
            "meta" => RootKey::Meta,
            "projects" => RootKey::Projects,
            _ => RootKey::Other,
        }
    }

    fn bit(key: RootKey) -> u8 {
        match key {
            RootKey::Meta => 1,
            RootKey::Projects => 2,
            RootKey::Other => 0,
        }
    }

    fn name(key: RootKey) -> &'static str {
        match key {
            RootKey::Meta => "meta",
            RootKey::Projects => "projects",
            RootKey::Other => "",
        }
    }

    fn member(
        &mut self,
        key: RootKey,
        values: &mut Values,
        input: &str,
        at: usize,
    ) -> Result<Option<usize>, RewriteError> {
        if key == RootKey::Meta {
            let Some((meta, len)) = values.parse::<Option<MetaIn<'_>>>(input, at)? else {
                return Ok(None);
            };
            self.api_version = meta.unwrap_or_default().api_version.map(Cow::into_owned);
            return Ok(Some(len));
        }
        Ok(values
            .parse::<IgnoredAny>(input, at)?
            .map(|(IgnoredAny, len)| len))
    }

    fn entry(
        &mut self,
        values: &mut Values,
        input: &str,
        at: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, RewriteError> {
        let Some((project, len)) = values.parse::<ProjectIn<'_>>(input, at)? else {
            return Ok(None);
        };
        let name = project.name.trim();
        if self.filter.keep(name) {
            out.extend_from_slice(if self.filter.kept == 1 {
                b"{\"projects\":[{\"name\":\""
            } else {
                b",{\"name\":\""
            });
            // Kept names are ASCII letters, digits and `-_.` (see `Stream::close_text`).
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        Ok(Some(len))
    }
}

impl JsonRoot<'_> {
    fn finish(self, out: &mut Vec<u8>) -> Result<Summary, RewriteError> {
        if self.filter.kept == 0 {
            out.extend_from_slice(b"{\"projects\":[");
        }
        let api_version = self
            .api_version
            .as_deref()
            .filter(|v| emit::is_v1(v))
            .unwrap_or("1.1");
        out.extend_from_slice(b"],\"meta\":{\"api-version\":");
        serde_json::to_writer(&mut *out, api_version)?;
        out.extend_from_slice(b"}}");
        Ok(Summary {
            kept: self.filter.kept,
            dropped: self.filter.dropped,
            ..Summary::default()
        })
    }
}

/// Decides each listed name, counting; one `Name` buffer serves the whole listing.
struct Filter<'h> {
    name: Name,
    hidden: Hidden<'h>,
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
        let ok = self.name.set_if_valid(raw) && !(self.hidden)(&self.name);
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
