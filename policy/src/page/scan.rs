//! A single-pass scanner for the HTML that index pages are made of, following the WHATWG
//! tokenizer state by state for tags, attributes, comments and raw-text elements.
//!
//! It models exactly what it handles and gives up (`Bail`) on the rest (named character
//! references outside a small table, CR, NUL, `<!--` inside `<script>`), so the caller can fall
//! back to html5gum. The two are checked against each other by property tests and fuzzing.

use memchr::{memchr, memchr2, memmem};

use super::html::Collector;
use super::refs::decode_refs;

/// The page uses something this scanner does not model; use the full tokenizer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Bail;

pub(crate) type Scan<T> = Result<T, Bail>;

/// Elements whose content is not markup, exactly as html5gum's `naive_next_state` lists them
/// (so both paths agree), with whether character references are decoded inside (RCDATA).
fn raw_text_kind(name: &[u8]) -> Option<bool> {
    match name {
        b"textarea" | b"title" => Some(true),
        b"script" | b"style" | b"iframe" | b"xmp" | b"noembed" | b"noframe" | b"noscript" => {
            Some(false)
        }
        _ => None,
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b' ')
}

/// Byte ranges of one attribute's name and (raw, undecoded) value.
struct RawAttr {
    name: (usize, usize),
    value: Option<(usize, usize)>,
}

/// Where the scanner's events go: the [`Collector`] that builds a `Parsed` page, or a consumer
/// that streams (root listings emit each name as it is seen instead of storing 700,000 anchors).
/// The methods mean exactly what [`Collector`]'s methods of the same names do.
pub(crate) trait Sink {
    /// A start tag begins (its name lower-cased).
    fn open(&mut self, name: &[u8]);
    /// An attribute of the current start tag (its name lower-cased).
    fn attribute(&mut self, name: &[u8]);
    /// The value of the attribute named last (character references already decoded).
    fn value(&mut self, value: &str);
    /// The current start tag ends.
    fn close_tag(&mut self);
    /// An end tag (its name lower-cased).
    fn end(&mut self, name: &[u8]);
    /// Whether character data is wanted right now (the scanner skips decoding it otherwise).
    fn wants_text(&self) -> bool;
    /// Character data (decoded).
    fn text(&mut self, value: &str);
    /// Whether the value of the attribute just named is wanted; when not, it is neither
    /// decoded nor sent (a consumer that ignores it reads the page the same either way).
    fn wants_value(&self) -> bool {
        true
    }
}

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
}

struct Scanner<'a, 'c, C> {
    s: &'a str,
    b: &'a [u8],
    c: &'c mut C,
    name: Vec<u8>,
    scratch: String,
    /// Reused across tags so a page costs no allocation per tag.
    attrs: Vec<RawAttr>,
    lower: Vec<u8>,
}

pub(crate) fn tokenize<C: Sink>(html: &str, c: &mut C) -> Scan<()> {
    let b = html.as_bytes();
    // Input-stream preprocessing (CR normalization, NUL replacement) is left to html5gum.
    if memchr2(b'\r', b'\0', b).is_some() {
        return Err(Bail);
    }
    let mut s = Scanner {
        s: html,
        b,
        c,
        name: Vec::with_capacity(16),
        scratch: String::new(),
        attrs: Vec::new(),
        lower: Vec::new(),
    };
    s.run()
}

impl<C: Sink> Scanner<'_, '_, C> {
    fn run(&mut self) -> Scan<()> {
        let b = self.b;
        let mut i = 0;
        while i < b.len() {
            let Some(off) = memchr(b'<', &b[i..]) else {
                self.text(i, b.len(), true)?;
                return Ok(());
            };
            let lt = i + off;
            self.text(i, lt, true)?;
            i = match b.get(lt + 1) {
                Some(c) if c.is_ascii_alphabetic() => match self.tag(lt + 1, false)? {
                    Some(next) => self.after_start_tag(next)?,
                    None => return Ok(()),
                },
                Some(b'/') => match b.get(lt + 2) {
                    Some(c) if c.is_ascii_alphabetic() => match self.tag(lt + 2, true)? {
                        Some(next) => next,
                        None => return Ok(()),
                    },
                    Some(b'>') => lt + 3,
                    Some(_) => bogus_comment(b, lt + 2),
                    None => {
                        self.text(lt, b.len(), false)?;
                        return Ok(());
                    }
                },
                Some(b'!') => markup_declaration(b, lt + 2),
                Some(b'?') => bogus_comment(b, lt + 1),
                _ => {
                    self.text(lt, lt + 1, false)?;
                    lt + 1
                }
            };
        }
        Ok(())
    }

    /// Character data `b[from..to]`; decoded only when someone collects it.
    fn text(&mut self, from: usize, to: usize, decode: bool) -> Scan<()> {
        if from >= to || !self.c.wants_text() {
            return Ok(());
        }
        let raw = self.s.get(from..to).ok_or(Bail)?;
        if decode && memchr(b'&', raw.as_bytes()).is_some() {
            self.scratch.clear();
            decode_refs(raw, false, &mut self.scratch)?;
            let text = std::mem::take(&mut self.scratch);
            self.c.text(&text);
            self.scratch = text;
        } else {
            self.c.text(raw);
        }
        Ok(())
    }

    /// A tag whose name starts at `i`. Returns the index after its `>`, or `None` at EOF (a tag
    /// cut by the end of input is dropped, as in the tokenizer's "EOF in tag" rule).
    fn tag(&mut self, mut i: usize, end: bool) -> Scan<Option<usize>> {
        let b = self.b;
        let start = i;
        while i < b.len() && !is_ws(b[i]) && b[i] != b'/' && b[i] != b'>' {
            i += 1;
        }
        if i >= b.len() {
            return Ok(None);
        }
        self.name.clear();
        self.name
            .extend(b[start..i].iter().map(u8::to_ascii_lowercase));
        let mut attrs = std::mem::take(&mut self.attrs);
        attrs.clear();
        loop {
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            let Some(&c) = b.get(i) else {
                return Ok(None);
            };
            match c {
                b'>' => {
                    i += 1;
                    break;
                }
                b'/' => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            // Attribute name: the first character is taken whatever it is (even '=').
            let name_start = i;
            i += 1;
            while i < b.len() && !is_ws(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
                i += 1;
            }
            let name_end = i;
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            let mut value = None;
            if b.get(i) == Some(&b'=') {
                i += 1;
                while i < b.len() && is_ws(b[i]) {
                    i += 1;
                }
                match b.get(i) {
                    None => return Ok(None),
                    Some(&q @ (b'"' | b'\'')) => {
                        let Some(close) = memchr(q, &b[i + 1..]) else {
                            return Ok(None);
                        };
                        value = Some((i + 1, i + 1 + close));
                        i += close + 2;
                    }
                    // Missing value: the tag ends here.
                    Some(b'>') => {}
                    Some(_) => {
                        let v = i;
                        while i < b.len() && !is_ws(b[i]) && b[i] != b'>' {
                            i += 1;
                        }
                        if i >= b.len() {
                            return Ok(None);
                        }
                        value = Some((v, i));
                    }
                }
            }
            attrs.push(RawAttr {
                name: (name_start, name_end),
                value,
            });
        }
        let result = self.emit_tag(end, &attrs);
        self.attrs = attrs;
        result.map(|()| Some(i))
    }

    fn emit_tag(&mut self, end: bool, attrs: &[RawAttr]) -> Scan<()> {
        let b = self.b;
        if end {
            // Attributes on end tags are dropped by the tokenizer.
            let name = std::mem::take(&mut self.name);
            self.c.end(&name);
            self.name = name;
            return Ok(());
        }
        // Events are sent only once the whole tag is known to be complete.
        let name = std::mem::take(&mut self.name);
        self.c.open(&name);
        self.name = name;
        let mut lower = std::mem::take(&mut self.lower);
        for a in attrs {
            lower.clear();
            lower.extend(b[a.name.0..a.name.1].iter().map(u8::to_ascii_lowercase));
            self.c.attribute(&lower);
            if let Some((vs, ve)) = a.value.filter(|_| self.c.wants_value()) {
                let raw = self.s.get(vs..ve).ok_or(Bail)?;
                if memchr(b'&', raw.as_bytes()).is_some() {
                    self.scratch.clear();
                    decode_refs(raw, true, &mut self.scratch)?;
                    let v = std::mem::take(&mut self.scratch);
                    self.c.value(&v);
                    self.scratch = v;
                } else {
                    self.c.value(raw);
                }
            }
        }
        self.lower = lower;
        self.c.close_tag();
        Ok(())
    }

    /// After a start tag at `i`: raw-text elements swallow everything up to their end tag.
    fn after_start_tag(&mut self, i: usize) -> Scan<usize> {
        if self.name == b"plaintext" {
            self.text(i, self.b.len(), false)?;
            return Ok(self.b.len());
        }
        let Some(rcdata) = raw_text_kind(&self.name) else {
            return Ok(i);
        };
        let b = self.b;
        let tag = std::mem::take(&mut self.name);
        let mut from = i;
        let close = loop {
            let Some(off) = memmem::find(&b[from..], b"</") else {
                break None;
            };
            let at = from + off;
            let name_end = at + 2 + tag.len();
            let matches_name = b
                .get(at + 2..name_end)
                .is_some_and(|n| n.eq_ignore_ascii_case(&tag));
            if matches_name
                && b.get(name_end)
                    .is_some_and(|&c| is_ws(c) || c == b'/' || c == b'>')
            {
                break Some(at);
            }
            from = at + 2;
        };
        let content_end = close.unwrap_or(b.len());
        // Script data has escape states around `<!--` that this scanner does not model.
        if tag == b"script" && memmem::find(&b[i..content_end], b"<!--").is_some() {
            return Err(Bail);
        }
        self.name = tag;
        self.text(i, content_end, rcdata)?;
        match close {
            Some(at) => Ok(self.tag(at + 2, true)?.unwrap_or(b.len())),
            None => Ok(b.len()),
        }
    }
}

/// `<!` at `i - 2`: comments, doctypes and bogus comments. Returns the index after it.
fn markup_declaration(b: &[u8], i: usize) -> usize {
    let rest = &b[i.min(b.len())..];
    if rest.starts_with(b"--") {
        let k = i + 2;
        let body = &b[k.min(b.len())..];
        // `<!-->` and `<!--->` are (abruptly closed) empty comments.
        if body.starts_with(b">") {
            return k + 1;
        }
        if body.starts_with(b"->") {
            return k + 2;
        }
        let mut from = k;
        while let Some(off) = memmem::find(&b[from.min(b.len())..], b"--") {
            let at = from + off;
            match (b.get(at + 2), b.get(at + 3)) {
                (Some(b'>'), _) => return at + 3,
                (Some(b'!'), Some(b'>')) => return at + 4,
                _ => from = at + 1,
            }
        }
        return b.len();
    }
    // DOCTYPE, CDATA outside foreign content, and anything else end at the next '>'.
    bogus_comment(b, i)
}

fn bogus_comment(b: &[u8], i: usize) -> usize {
    match memchr(b'>', &b[i.min(b.len())..]) {
        Some(off) => i + off + 1,
        None => b.len(),
    }
}

#[cfg(test)]
mod tests;
