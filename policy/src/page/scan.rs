//! A single-pass scanner for the HTML that index pages are made of, following the WHATWG
//! tokenizer state by state for tags, attributes, comments and raw-text elements.
//!
//! It models exactly what it handles and gives up (`Bail`) on the rest (named character
//! references outside a small table, CR, NUL, `<!--` inside `<script>`), so the caller can fall
//! back to html5gum. The two are checked against each other by property tests and fuzzing.

use memchr::{memchr, memchr2, memchr2_iter, memmem};

use super::refs::decode_refs;
pub(crate) use super::refs::{Bail, Scan};

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
    CLASS[usize::from(b)] & WS != 0
}

/// Byte ranges of one attribute's name and (raw, undecoded) value.
struct RawAttr {
    name: (usize, usize),
    value: Option<(usize, usize)>,
    /// Whether the value holds a `&` (so it may need decoding).
    amp: bool,
}

/// Where the scanner's events go: the `html::Collector` that builds a `Parsed` page, or a
/// consumer that streams (root listings emit each name as it is seen instead of storing
/// 700,000 anchors). The methods mean exactly what the collector's methods of the same names do.
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

struct Scanner<'a, 'c, C> {
    s: &'a str,
    b: &'a [u8],
    c: &'c mut C,
    /// The input may continue past `b` (streaming): a construct cut by the end of `b` is left
    /// unconsumed instead of being closed by the end-of-file rules.
    partial: bool,
    /// The end of the last complete construct: everything before it has been sent to the sink
    /// exactly once, and the tokenizer is in the data state there.
    done: usize,
    name: Vec<u8>,
    scratch: String,
    /// Reused across tags so a page costs no allocation per tag.
    attrs: Vec<RawAttr>,
    lower: Vec<u8>,
}

pub(crate) fn tokenize<C: Sink>(html: &str, c: &mut C) -> Scan<()> {
    // Input-stream preprocessing (CR normalization, NUL replacement) is left to html5gum.
    if memchr2(b'\r', b'\0', html.as_bytes()).is_some() {
        return Err(Bail);
    }
    Scanner::new(html, c, false).run().map(|_| ())
}

/// How far a [`tokenize_part`] got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Everything before this offset was tokenized and sent; the rest is a construct the next
    /// bytes will complete (scan it again, from here, with them).
    Consumed(usize),
    /// The scanner gave up at a construct it does not model; everything before this offset
    /// was tokenized and sent, and the tokenizer is in the data state there, so the full
    /// tokenizer can take over from it.
    Bailed(usize),
}

/// Tokenizes a prefix of a document whose end has not arrived yet. What it sends for the
/// consumed part is exactly what [`tokenize`] sends for that part of the whole document: a
/// tokenizer decides each construct from its own bytes, and a construct the prefix cuts is not
/// sent at all.
pub(crate) fn tokenize_part<C: Sink>(html: &str, c: &mut C) -> Part {
    if let Some(at) = memchr2(b'\r', b'\0', html.as_bytes()) {
        // Scan up to the byte the fast path cannot take; the caller hands the rest over.
        let mut s = Scanner::new(html.get(..at).unwrap_or_default(), c, true);
        return Part::Bailed(s.run().unwrap_or(s.done));
    }
    let mut s = Scanner::new(html, c, true);
    match s.run() {
        Ok(end) => Part::Consumed(end),
        Err(Bail) => Part::Bailed(s.done),
    }
}

/// Tokenizes the end of a document: what [`tokenize`] does, except that where the scanner
/// gives up it says where (`Bailed`, as [`tokenize_part`] does), so the full tokenizer can take
/// the rest without anything sent twice. `Consumed` always covers the whole input.
pub(crate) fn tokenize_end<C: Sink>(html: &str, c: &mut C) -> Part {
    if memchr2(b'\r', b'\0', html.as_bytes()).is_some() {
        // The end-of-file rules apply only to the real end: up to the byte the fast path cannot
        // take, this is still a part.
        return tokenize_part(html, c);
    }
    let mut s = Scanner::new(html, c, false);
    match s.run() {
        Ok(end) => Part::Consumed(end),
        Err(Bail) => Part::Bailed(s.done),
    }
}

impl<'a, 'c, C: Sink> Scanner<'a, 'c, C> {
    fn new(html: &'a str, c: &'c mut C, partial: bool) -> Self {
        Scanner {
            s: html,
            b: html.as_bytes(),
            c,
            partial,
            done: 0,
            name: Vec::with_capacity(16),
            scratch: String::new(),
            attrs: Vec::new(),
            lower: Vec::new(),
        }
    }

    /// Returns how far it got: the whole input, or (partial) the start of a cut construct.
    fn run(&mut self) -> Scan<usize> {
        let b = self.b;
        let mut i = 0;
        while i < b.len() {
            self.done = i;
            let Some(off) = memchr(b'<', &b[i..]) else {
                if self.partial && self.c.wants_text() {
                    // A character reference may be cut: keep the text for the next bytes.
                    return Ok(i);
                }
                self.text(i, b.len(), true)?;
                return Ok(b.len());
            };
            let lt = i + off;
            self.text(i, lt, true)?;
            self.done = lt;
            // Where a cut construct ends the scan: unconsumed when more input may follow, or
            // closed by the end-of-file rules.
            let cut = if self.partial { lt } else { b.len() };
            i = match b.get(lt + 1) {
                Some(c) if c.is_ascii_alphabetic() => match self.tag(lt + 1, false)? {
                    Some(next) => self.after_start_tag(next)?,
                    None => return Ok(cut),
                },
                Some(b'/') => match b.get(lt + 2) {
                    Some(c) if c.is_ascii_alphabetic() => match self.tag(lt + 2, true)? {
                        Some(next) => next,
                        None => return Ok(cut),
                    },
                    Some(b'>') => lt + 3,
                    Some(_) => match bogus_comment(b, lt + 2) {
                        Some(next) => next,
                        None => return Ok(cut),
                    },
                    None if self.partial => return Ok(lt),
                    None => {
                        self.text(lt, b.len(), false)?;
                        return Ok(b.len());
                    }
                },
                Some(b'!') => match markup_declaration(b, lt + 2) {
                    Some(next) => next,
                    None => return Ok(cut),
                },
                Some(b'?') => match bogus_comment(b, lt + 1) {
                    Some(next) => next,
                    None => return Ok(cut),
                },
                None if self.partial => return Ok(lt),
                _ => {
                    self.text(lt, lt + 1, false)?;
                    lt + 1
                }
            };
        }
        Ok(b.len())
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
    fn tag(&mut self, i: usize, end: bool) -> Scan<Option<usize>> {
        let Some(next) = parse_tag(self.b, i, &mut self.name, &mut self.attrs) else {
            return Ok(None);
        };
        if self.partial && !end && !self.raw_text_complete(next)? {
            // Sent only once its raw text and end tag have arrived too.
            return Ok(None);
        }
        let attrs = std::mem::take(&mut self.attrs);
        let result = self.emit_tag(end, &attrs);
        self.attrs = attrs;
        result.map(|()| Some(next))
    }

    /// Whether the raw text that a start tag just parsed opens (if any) is complete in the
    /// input, its end tag included. `<plaintext>` never ends: the full tokenizer takes it.
    fn raw_text_complete(&mut self, after: usize) -> Scan<bool> {
        if self.name == b"plaintext" {
            return Err(Bail);
        }
        if raw_text_kind(&self.name).is_none() {
            return Ok(true);
        }
        let Some(close) = raw_text_close(self.b, after, &self.name) else {
            return Ok(false);
        };
        let (mut name, mut attrs) = (Vec::new(), Vec::new());
        Ok(parse_tag(self.b, close + 2, &mut name, &mut attrs).is_some())
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
            let name = &b[a.name.0..a.name.1];
            if name.iter().any(u8::is_ascii_uppercase) {
                lower.clear();
                lower.extend(name.iter().map(u8::to_ascii_lowercase));
                self.c.attribute(&lower);
            } else {
                self.c.attribute(name);
            }
            if let Some((vs, ve)) = a.value.filter(|_| self.c.wants_value()) {
                let raw = self.s.get(vs..ve).ok_or(Bail)?;
                if a.amp {
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
        let close = raw_text_close(b, i, &tag);
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

/// Where the end tag of raw text `tag` starting at `from` begins (its `<`), if it does.
fn raw_text_close(b: &[u8], mut from: usize, tag: &[u8]) -> Option<usize> {
    loop {
        let at = from + memmem::find(&b[from..], b"</")?;
        let name_end = at + 2 + tag.len();
        let matches_name = b
            .get(at + 2..name_end)
            .is_some_and(|n| n.eq_ignore_ascii_case(tag));
        if matches_name
            && b.get(name_end)
                .is_some_and(|&c| is_ws(c) || c == b'/' || c == b'>')
        {
            return Some(at);
        }
        from = at + 2;
    }
}

/// Parses the tag whose name starts at `i` into `name` (lower-cased) and `attrs`. Returns the
/// index after its `>`, or `None` when the input ends first.
fn parse_tag(
    b: &[u8],
    mut i: usize,
    name: &mut Vec<u8>,
    attrs: &mut Vec<RawAttr>,
) -> Option<usize> {
    let start = i;
    i = until(b, i, WS | SLASH | GT);
    if i >= b.len() {
        return None;
    }
    name.clear();
    name.extend(b[start..i].iter().map(u8::to_ascii_lowercase));
    attrs.clear();
    loop {
        i = skip_ws(b, i);
        let &c = b.get(i)?;
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
        i = until(b, i + 1, WS | SLASH | GT | EQ);
        let name_end = i;
        i = skip_ws(b, i);
        let mut value = None;
        let mut amp = false;
        if b.get(i) == Some(&b'=') {
            i = skip_ws(b, i + 1);
            match b.get(i) {
                None => return None,
                Some(&q @ (b'"' | b'\'')) => {
                    // One search finds the closing quote and whether a `&` comes before it.
                    let close = memchr2_iter(q, b'&', &b[i + 1..]).find(|&at| {
                        let quote = b[i + 1 + at] == q;
                        amp |= !quote;
                        quote
                    })?;
                    value = Some((i + 1, i + 1 + close));
                    i += close + 2;
                }
                // Missing value: the tag ends here.
                Some(b'>') => {}
                Some(_) => {
                    let v = i;
                    i = until(b, i, WS | GT);
                    if i >= b.len() {
                        return None;
                    }
                    value = Some((v, i));
                    amp = memchr(b'&', &b[v..i]).is_some();
                }
            }
        }
        attrs.push(RawAttr {
            name: (name_start, name_end),
            value,
            amp,
        });
    }
    Some(i)
}

/// Byte classes inside a tag, as bits of [`CLASS`]. Whitespace is the tokenizer's: tab, line
/// feed, form feed and space (CR never reaches this scanner).
const WS: u8 = 1;
const SLASH: u8 = 2;
const GT: u8 = 4;
const EQ: u8 = 8;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'\t' as usize] = WS;
    t[b'\n' as usize] = WS;
    t[0x0c] = WS;
    t[b' ' as usize] = WS;
    t[b'/' as usize] = SLASH;
    t[b'>' as usize] = GT;
    t[b'=' as usize] = EQ;
    t
};

/// The first index from `i` whose byte is in one of the classes `stop` (or the end).
#[inline]
fn until(b: &[u8], i: usize, stop: u8) -> usize {
    let rest = b.get(i..).unwrap_or_default();
    i + rest
        .iter()
        .position(|&c| CLASS[usize::from(c)] & stop != 0)
        .unwrap_or(rest.len())
}

/// The first index from `i` whose byte is not whitespace (or the end).
#[inline]
fn skip_ws(b: &[u8], i: usize) -> usize {
    let rest = b.get(i..).unwrap_or_default();
    i + rest.iter().position(|&c| !is_ws(c)).unwrap_or(rest.len())
}

/// `<!` at `i - 2`: comments, doctypes and bogus comments. Returns the index after it, or
/// `None` when the input ends inside it.
fn markup_declaration(b: &[u8], i: usize) -> Option<usize> {
    let rest = &b[i.min(b.len())..];
    if rest.starts_with(b"--") {
        let k = i + 2;
        let body = &b[k.min(b.len())..];
        // `<!-->` and `<!--->` are (abruptly closed) empty comments.
        if body.starts_with(b">") {
            return Some(k + 1);
        }
        if body.starts_with(b"->") {
            return Some(k + 2);
        }
        let mut from = k;
        while let Some(off) = memmem::find(&b[from.min(b.len())..], b"--") {
            let at = from + off;
            match (b.get(at + 2), b.get(at + 3)) {
                (Some(b'>'), _) => return Some(at + 3),
                (Some(b'!'), Some(b'>')) => return Some(at + 4),
                _ => from = at + 1,
            }
        }
        return None;
    }
    // DOCTYPE, CDATA outside foreign content, and anything else end at the next '>'.
    bogus_comment(b, i)
}

fn bogus_comment(b: &[u8], i: usize) -> Option<usize> {
    memchr(b'>', &b[i.min(b.len())..]).map(|off| i + off + 1)
}

#[cfg(test)]
mod tests;
