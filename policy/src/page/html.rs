//! HTML index pages through a WHATWG tokenizer: anchors, the first `<base href>`, PEP 503/708/792
//! `<meta>`s. Text inside `<script>`, `<style>` and comments never produces links.

use std::ops::Range;

use html5gum::emitters::callback::{CallbackEmitter, CallbackEvent};
use html5gum::Tokenizer;

use super::scan::Sink;

/// A byte range into [`Parsed::buf`]: attribute values are copied into one arena so a page of
/// thousands of anchors costs a handful of allocations. `u32` keeps an [`Anchor`] at 96 bytes,
/// which matters for root listings of 700,000 anchors; pages are capped well below 4 GiB
/// ([`MAX_PAGE`]), and an offset that did not fit would read as an empty value, not a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(r: Range<usize>) -> Span {
        let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Span {
            start: clamp(r.start),
            end: clamp(r.end),
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The largest page parsed. The arena holds at most three bytes per input byte (U+FFFD for a
/// NUL), so its offsets always fit a `u32`.
pub(crate) const MAX_PAGE: usize = 1 << 30;

/// The attributes of one `<a>` that pipgate may pass on.
#[derive(Debug, Default, Clone)]
pub(crate) struct Anchor {
    pub href: Option<Span>,
    pub rel: Option<Span>,
    pub requires_python: Option<Span>,
    pub yanked: Option<Span>,
    pub core_metadata: Option<Span>,
    pub dist_info_metadata: Option<Span>,
    pub provenance: Option<Span>,
    /// The anchor's text (collected only for root listings).
    pub text: Option<Span>,
}

/// The `<meta name=...>`s pipgate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaName {
    RepositoryVersion,
    ProjectStatus,
    ProjectStatusReason,
    Tracks,
}

/// What a page said, as spans into `buf`.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub buf: String,
    pub anchors: Vec<Anchor>,
    /// The first `<base>` with an `href`, as pip takes it.
    pub base: Option<Span>,
    pub metas: Vec<(MetaName, Span)>,
    /// How many of `metas` came before the first anchor (`None`: there is no anchor).
    pub metas_before_anchor: Option<usize>,
}

impl Parsed {
    pub(super) fn get(&self, span: &Span) -> &str {
        self.buf.get(span.range()).unwrap_or_default()
    }

    pub(super) fn opt(&self, span: &Option<Span>) -> Option<&str> {
        span.as_ref().map(|s| self.get(s))
    }

    /// Appends a copy of `a`, an anchor of `other`, with its values.
    pub(super) fn push_anchor(&mut self, other: &Parsed, a: &Anchor) {
        let mut copy = |span: &Option<Span>| {
            span.map(|s| {
                let start = self.buf.len();
                self.buf.push_str(other.get(&s));
                Span::new(start..self.buf.len())
            })
        };
        let anchor = Anchor {
            href: copy(&a.href),
            rel: copy(&a.rel),
            requires_python: copy(&a.requires_python),
            yanked: copy(&a.yanked),
            core_metadata: copy(&a.core_metadata),
            dist_info_metadata: copy(&a.dist_info_metadata),
            provenance: copy(&a.provenance),
            text: copy(&a.text),
        };
        self.anchors.push(anchor);
    }

    /// The first meta of a kind.
    #[cfg(test)]
    pub(super) fn meta(&self, name: MetaName) -> Option<&str> {
        self.metas
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| self.get(s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    A,
    Base,
    Meta,
    Ignored,
}

/// Attribute slots; the bit of each in `seen` enforces "first attribute wins" (WHATWG drops
/// duplicates), so `<a href=good href=bad>` means the same to us as to a browser.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Href = 0,
    Rel,
    RequiresPython,
    Yanked,
    CoreMetadata,
    DistInfoMetadata,
    Provenance,
    Name,
    Content,
}

#[derive(Debug, Default)]
pub(crate) struct Collector {
    out: Parsed,
    collect_text: bool,
    tag: Option<Tag>,
    slot: Option<Slot>,
    seen: u16,
    anchor: Anchor,
    meta_name: Option<Span>,
    meta_content: Option<Span>,
    /// Index into `out.anchors` of the anchor whose text is being collected.
    open_anchor: Option<usize>,
    /// That anchor's text so far; kept apart from `out.buf` so attribute values of tags
    /// inside the anchor do not end up in it.
    text: String,
}

impl Collector {
    pub(crate) fn new(collect_text: bool) -> Collector {
        Collector {
            collect_text,
            ..Collector::default()
        }
    }

    /// A start tag begins (its name lower-cased).
    pub(crate) fn open(&mut self, name: &[u8]) {
        self.tag = Some(match name {
            b"a" => Tag::A,
            b"base" => Tag::Base,
            b"meta" => Tag::Meta,
            _ => Tag::Ignored,
        });
        self.seen = 0;
        self.slot = None;
        self.anchor = Anchor::default();
        self.meta_name = None;
        self.meta_content = None;
    }

    /// The value of the attribute named last (character references already decoded).
    pub(crate) fn value(&mut self, value: &str) {
        if let Some(slot) = self.slot.take() {
            let start = self.out.buf.len();
            self.out.buf.push_str(value);
            *self.slot_mut(slot) = Some(Span::new(start..self.out.buf.len()));
        }
    }

    /// An end tag (its name lower-cased).
    pub(crate) fn end(&mut self, name: &[u8]) {
        self.tag = None;
        if name == b"a" {
            self.close_text();
        }
    }

    /// Whether the value of the attribute named last is one pipgate reads.
    pub(crate) fn wants_value(&self) -> bool {
        self.slot.is_some()
    }

    /// Whether text is being collected right now (root listings, inside an anchor).
    pub(crate) fn wants_text(&self) -> bool {
        self.collect_text && self.open_anchor.is_some()
    }

    /// Character data (decoded).
    pub(crate) fn text(&mut self, value: &str) {
        if self.wants_text() {
            self.text.push_str(value);
        }
    }

    /// An attribute of the current start tag (its name lower-cased).
    pub(crate) fn attribute(&mut self, name: &[u8]) {
        self.slot = None;
        let slot = match (self.tag, name) {
            (Some(Tag::A), b"href") | (Some(Tag::Base), b"href") => Slot::Href,
            (Some(Tag::A), b"rel") => Slot::Rel,
            (Some(Tag::A), b"data-requires-python") => Slot::RequiresPython,
            (Some(Tag::A), b"data-yanked") => Slot::Yanked,
            (Some(Tag::A), b"data-core-metadata") => Slot::CoreMetadata,
            (Some(Tag::A), b"data-dist-info-metadata") => Slot::DistInfoMetadata,
            (Some(Tag::A), b"data-provenance") => Slot::Provenance,
            (Some(Tag::Meta), b"name") => Slot::Name,
            (Some(Tag::Meta), b"content") => Slot::Content,
            _ => return,
        };
        let bit = 1u16 << (slot as u16);
        if self.seen & bit != 0 {
            return;
        }
        self.seen |= bit;
        // Present with an empty value until a value event says otherwise (the tokenizer emits
        // no value event for `data-yanked` or `data-yanked=""`).
        let at = self.out.buf.len();
        *self.slot_mut(slot) = Some(Span::new(at..at));
        self.slot = Some(slot);
    }

    fn slot_mut(&mut self, slot: Slot) -> &mut Option<Span> {
        match slot {
            Slot::Href => &mut self.anchor.href,
            Slot::Rel => &mut self.anchor.rel,
            Slot::RequiresPython => &mut self.anchor.requires_python,
            Slot::Yanked => &mut self.anchor.yanked,
            Slot::CoreMetadata => &mut self.anchor.core_metadata,
            Slot::DistInfoMetadata => &mut self.anchor.dist_info_metadata,
            Slot::Provenance => &mut self.anchor.provenance,
            Slot::Name => &mut self.meta_name,
            Slot::Content => &mut self.meta_content,
        }
    }

    /// The current start tag ends.
    pub(crate) fn close_tag(&mut self) {
        self.slot = None;
        match self.tag.take() {
            Some(Tag::A) => {
                // The previous anchor's text ends here, not at `open`: html5gum's callback
                // emitter delivers the text before a tag only after the tag's name.
                self.close_text();
                let anchor = std::mem::take(&mut self.anchor);
                if self.out.anchors.is_empty() {
                    self.out.metas_before_anchor = Some(self.out.metas.len());
                }
                self.out.anchors.push(anchor);
                if self.collect_text {
                    self.open_anchor = Some(self.out.anchors.len() - 1);
                    self.text.clear();
                }
            }
            Some(Tag::Base) => {
                if self.out.base.is_none() {
                    self.out.base = self.anchor.href.take();
                }
            }
            Some(Tag::Meta) => {
                let name = self
                    .meta_name
                    .take()
                    .map(|s| self.out.get(&s).to_ascii_lowercase());
                let kind = match name.as_deref() {
                    Some("pypi:repository-version") => Some(MetaName::RepositoryVersion),
                    Some("pypi:project-status") => Some(MetaName::ProjectStatus),
                    Some("pypi:project-status-reason") => Some(MetaName::ProjectStatusReason),
                    Some("pypi:tracks") => Some(MetaName::Tracks),
                    _ => None,
                };
                if let (Some(kind), Some(content)) = (kind, self.meta_content.take()) {
                    self.out.metas.push((kind, content));
                }
            }
            Some(Tag::Ignored) | None => {}
        }
    }

    fn close_text(&mut self) {
        if let Some(i) = self.open_anchor.take() {
            let start = self.out.buf.len();
            self.out.buf.push_str(&self.text);
            let span = Span::new(start..self.out.buf.len());
            if let Some(a) = self.out.anchors.get_mut(i) {
                a.text = Some(span);
            }
        }
    }
}

/// Tokenizes `html` and collects what index pages carry. Never fails: HTML has no syntax
/// errors, only recoveries, and both tokenizers apply the ones a browser does.
///
/// The fast scanner handles the markup index pages are made of; on anything it does not model
/// exactly (unknown character references, CR, NUL, escaped script text) it gives up and the
/// page goes through html5gum, a complete WHATWG tokenizer, instead.
pub(crate) fn parse(html: &str, collect_text: bool) -> Parsed {
    let mut c = Collector::new(collect_text);
    // Values are most of an index page: size the arena once instead of doubling it through
    // tens of megabytes.
    c.out.buf.reserve(html.len() / 2);
    match super::scan::tokenize(html, &mut c) {
        Ok(()) => c.finish(),
        Err(super::scan::Bail) => parse_reference(html, collect_text),
    }
}

/// The same, always through html5gum (the reference the fast scanner is tested against).
pub(crate) fn parse_reference(html: &str, collect_text: bool) -> Parsed {
    let mut c = Collector::new(collect_text);
    tokenize_reference(html, &mut c);
    c.finish()
}

/// Tokenizes `html` with html5gum, sending what it finds to `sink` as the fast scanner would
/// (the same [`Sink`] calls for the same markup): the reference path of every page, and what
/// takes over from the scanner where it gave up.
pub(crate) fn tokenize_reference<S: Sink>(html: &str, sink: &mut S) {
    let mut emitter = CallbackEmitter::new(
        |ev: CallbackEvent<'_>| -> Option<std::convert::Infallible> {
            deliver(sink, ev);
            None
        },
    );
    // Switch to raw-text states after <script>, <style>, <title>, ... as a tree builder
    // would, so markup inside them is text and never a link.
    emitter.naively_switch_states(true);
    // The reader is a &str: its error type is Infallible.
    let _ = Tokenizer::new_with_emitter(html, emitter).finish();
}

fn deliver<S: Sink>(sink: &mut S, ev: CallbackEvent<'_>) {
    match ev {
        CallbackEvent::OpenStartTag { name } => sink.open(name),
        CallbackEvent::AttributeName { name } => sink.attribute(name),
        CallbackEvent::AttributeValue { value } => {
            // The tokenizer only emits UTF-8 (its input is a &str and entities decode to
            // scalar values); the lossy fallback keeps that assumption free of a panic path.
            match std::str::from_utf8(value) {
                Ok(v) => sink.value(v),
                Err(_) => sink.value(&String::from_utf8_lossy(value)),
            }
        }
        CallbackEvent::CloseStartTag { .. } => sink.close_tag(),
        CallbackEvent::EndTag { name } => sink.end(name),
        CallbackEvent::String { value } => {
            if sink.wants_text() {
                sink.text(&String::from_utf8_lossy(value));
            }
        }
        CallbackEvent::Comment { .. } | CallbackEvent::Doctype { .. } | CallbackEvent::Error(_) => {
        }
    }
}

/// The scanner's events build a `Parsed` page.
impl Sink for Collector {
    fn open(&mut self, name: &[u8]) {
        Collector::open(self, name);
    }
    fn attribute(&mut self, name: &[u8]) {
        Collector::attribute(self, name);
    }
    fn value(&mut self, value: &str) {
        Collector::value(self, value);
    }
    fn close_tag(&mut self) {
        Collector::close_tag(self);
    }
    fn end(&mut self, name: &[u8]) {
        Collector::end(self, name);
    }
    fn wants_text(&self) -> bool {
        Collector::wants_text(self)
    }
    fn text(&mut self, value: &str) {
        Collector::text(self, value);
    }
    fn wants_value(&self) -> bool {
        Collector::wants_value(self)
    }
}

/// Whether two parses found the same anchors, base and metas.
pub(crate) fn same(a: &Parsed, b: &Parsed) -> bool {
    fn anchors(p: &Parsed) -> Vec<[Option<&str>; 8]> {
        p.anchors
            .iter()
            .map(|a| {
                [
                    &a.href,
                    &a.rel,
                    &a.requires_python,
                    &a.yanked,
                    &a.core_metadata,
                    &a.dist_info_metadata,
                    &a.provenance,
                    &a.text,
                ]
                .map(|s| p.opt(s))
            })
            .collect()
    }
    fn metas(p: &Parsed) -> Vec<(MetaName, &str)> {
        p.metas.iter().map(|(n, s)| (*n, p.get(s))).collect()
    }
    anchors(a) == anchors(b) && metas(a) == metas(b) && a.opt(&a.base) == b.opt(&b.base)
}

impl Collector {
    pub(crate) fn finish(mut self) -> Parsed {
        self.close_text();
        self.out
    }

    /// What was collected so far, for a consumer that takes it chunk by chunk (project pages
    /// collect no text, so there is no anchor text to close).
    pub(crate) fn parsed(&self) -> &Parsed {
        &self.out
    }

    /// Forgets what was collected, keeping the allocations, between two complete chunks (the
    /// tokenizer is in the data state, so no tag is open).
    pub(crate) fn clear(&mut self) {
        self.out.buf.clear();
        self.out.anchors.clear();
        self.out.metas.clear();
        self.out.base = None;
        self.out.metas_before_anchor = None;
        self.tag = None;
        self.slot = None;
        self.open_anchor = None;
        self.text.clear();
    }
}

#[cfg(test)]
mod tests;
