//! The walk of a JSON page that arrives in chunks: its top-level object and the one array in it
//! that holds the page's entries (a project page's `files`, a root listing's `projects`), walked
//! here, strictly (keys are strings, commas and colons where they belong, one object and nothing
//! but whitespace after it). Every value inside them (an entry, or the value of any other key)
//! is handed to the [`Document`], which reads it with serde_json through [`Values::parse`], as
//! it would be read inside the whole page. A value the end of what has arrived may have cut is
//! waited for (`value.rs` tells which); anything else serde_json refuses fails the page. The
//! bytes are checked as UTF-8 here, all of them.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::DeserializeSeed;
use serde::Deserialize;

use super::value::{error_at, is_space, value};
use crate::RewriteError;

/// A kind of JSON page: which top-level keys it reads, and what it does with their values.
pub(crate) trait Document {
    /// The top-level keys the document tells apart.
    type Key: Copy + PartialEq + std::fmt::Debug;
    /// The key whose value is the array of entries, walked one entry at a time.
    const ENTRIES: Self::Key;
    /// One entry, for errors (`a file`).
    const ENTRY: &'static str;
    fn key(name: &str) -> Self::Key;
    /// A key with a bit may appear once (a second one fails the page); 0: any number of times.
    /// [`Document::ENTRIES`] must have one.
    fn bit(key: Self::Key) -> u8;
    /// The key's name, for errors.
    fn name(key: Self::Key) -> &'static str;
    /// The value of a member other than the entries, at `at` of `input`: its length, or
    /// `None` if the input may end before it does.
    fn member(
        &mut self,
        key: Self::Key,
        values: &mut Values,
        input: &str,
        at: usize,
    ) -> Result<Option<usize>, RewriteError>;
    /// One entry, at `at` of `input`, whose output (if any) goes to `out`: its length, or `None`
    /// if the input may end before it does.
    fn entry(
        &mut self,
        values: &mut Values,
        input: &str,
        at: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, RewriteError>;
}

/// How values are read out of the page for a [`Document`].
#[derive(Debug, Default)]
pub(crate) struct Values {
    /// Bytes of the page before the input being walked (errors name absolute offsets).
    offset: usize,
    /// Whether the input being walked is all the page has left (it has ended, and no byte
    /// that is not UTF-8 stops the walk short).
    last: bool,
    /// How many times a value was handed to serde_json (tests check the rescan rule with it).
    #[cfg(test)]
    pub(crate) parses: usize,
}

impl Values {
    /// [`value`] (counted, for the tests), with serde_json's error placed in the page.
    pub(crate) fn parse<'b, T: Deserialize<'b>>(
        &mut self,
        input: &'b str,
        at: usize,
    ) -> Result<Option<(T, usize)>, RewriteError> {
        self.parse_with(input, at, |t: T| t)
    }

    /// [`Values::parse`], the value handed to `f` where it was read (see [`value`]).
    pub(crate) fn parse_with<'b, T: Deserialize<'b>, R>(
        &mut self,
        input: &'b str,
        at: usize,
        f: impl FnOnce(T) -> R,
    ) -> Result<Option<(R, usize)>, RewriteError> {
        #[cfg(test)]
        {
            self.parses += 1;
        }
        value(input, self.last, With(f, PhantomData)).map_err(|e| {
            // serde_json counts lines and columns from the start of the value; the page's
            // byte offset says more.
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = text.strip_suffix(&suffix).unwrap_or(&text);
            self.error(message, at + error_at(input, &e).unwrap_or(0))
        })
    }

    /// A page that is not the JSON it should be, at byte `at` of what is being walked.
    pub(crate) fn error(&self, message: &str, at: usize) -> RewriteError {
        RewriteError::Json(format!("{message} at byte {}", self.offset + at))
    }
}

/// How much of a chunk is first added to a value the last one cut (more when that is not
/// enough): a file entry of PyPI's is a few hundred bytes. The tests and the fuzzer take a few
/// bytes, so that their pages cut anywhere complete values across several pieces.
#[cfg(not(any(test, fuzzing)))]
const PIECE: usize = 1024;
#[cfg(any(test, fuzzing))]
const PIECE: usize = 5;

/// A seed that reads a `T` and hands it to a function.
struct With<F, T>(F, PhantomData<T>);

impl<'de, T: Deserialize<'de>, R, F: FnOnce(T) -> R> DeserializeSeed<'de> for With<F, T> {
    type Value = R;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<R, D::Error> {
        T::deserialize(d).map(self.0)
    }
}

/// What the walk expects next (after any whitespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State<K> {
    /// The page's `{`.
    Start,
    /// A key or `}`, just after `{`.
    FirstKey,
    /// A key, after a `,`.
    Key,
    /// The `:` after a key.
    Colon(K),
    /// The value of a key other than the entries.
    Value(K),
    /// The `[` of the entries.
    Entries,
    /// An entry or `]`, just after `[`.
    FirstEntry,
    /// An entry, after a `,`.
    Entry,
    /// `,` or `]` after an entry.
    AfterEntry,
    /// `,` or `}` after a member.
    AfterMember,
    /// Nothing: the page has ended.
    Done,
}

impl<K> State<K> {
    /// What was expected, for the error naming what came instead.
    fn expected(&self, entries: &str, entry: &str) -> String {
        match self {
            State::Start => "expected `{` at the start of the page".into(),
            State::FirstKey => "expected a string key or `}`".into(),
            State::Key => "expected a string key after `,`".into(),
            State::Colon(_) => "expected `:` after a key".into(),
            State::Value(_) | State::Entry => "expected a value".into(),
            State::Entries => format!("invalid type: `{entries}` must be an array"),
            State::FirstEntry => format!("expected {entry} or `]`"),
            State::AfterEntry => format!("expected `,` or `]` after {entry}"),
            State::AfterMember => "expected `,` or `}` after a member".into(),
            State::Done => "trailing characters after the page".into(),
        }
    }
}

/// A JSON page being walked as it arrives; see the module docs.
#[derive(Debug)]
pub(crate) struct Walk<D: Document> {
    pub(crate) doc: D,
    state: State<D::Key>,
    /// Input not consumed yet: a value the chunk cut.
    pub(crate) pending: Vec<u8>,
    /// `pending` is parsed again only once it has grown to this length, so a value cut many
    /// times over (a huge string) costs O(n) in all, not O(n²).
    rescan_at: usize,
    pub(crate) values: Values,
    /// The keys with a bit seen so far: a second one fails the page.
    seen: u8,
    /// Whether the page has ended: what is left is all there is.
    ended: bool,
}

impl<D: Document> Walk<D> {
    pub(crate) fn new(doc: D) -> Walk<D> {
        Walk {
            doc,
            state: State::Start,
            pending: Vec::new(),
            rescan_at: 0,
            values: Values::default(),
            seen: 0,
            ended: false,
        }
    }

    /// Takes the next bytes of the page and appends the entries they complete to `out`.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        // A value the last chunk cut is completed from the start of this one, a piece at a
        // time: once it is, the rest of the chunk is walked where it lies, not copied first.
        while !self.pending.is_empty() {
            let held = self.pending.len();
            let want = self
                .rescan_at
                .saturating_sub(held)
                .max(PIECE)
                .min(chunk.len());
            self.pending.extend_from_slice(&chunk[..want]);
            if self.pending.len() < self.rescan_at {
                return Ok(());
            }
            let mut input = std::mem::take(&mut self.pending);
            let used = self.walk(&input, out)?;
            self.values.offset += used;
            if used >= held {
                // What follows the completed value is still in the chunk.
                chunk = &chunk[used - held..];
                input.clear();
                self.pending = input;
                break;
            }
            input.drain(..used);
            self.pending = input;
            chunk = &chunk[want..];
            if chunk.is_empty() {
                return Ok(());
            }
        }
        let used = self.walk(chunk, out)?;
        self.values.offset += used;
        self.pending.extend_from_slice(&chunk[used..]);
        Ok(())
    }

    /// The page has ended: walks what is left and checks it was one whole page with its
    /// entries. The document's own ending follows.
    pub(crate) fn end(&mut self, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let rest = std::mem::take(&mut self.pending);
        self.ended = true;
        self.walk(&rest, out)?;
        if self.state != State::Done {
            return Err(self.values.error("EOF while parsing the page", rest.len()));
        }
        if self.seen & D::bit(D::ENTRIES) == 0 {
            return Err(RewriteError::Json(format!(
                "missing field `{}`",
                D::name(D::ENTRIES)
            )));
        }
        Ok(())
    }

    /// Walks `input` as far as it is complete, returning how much of it was consumed.
    fn walk(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RewriteError> {
        // UTF-8 is checked here, once, so serde_json need not check each string again (and
        // values it skips are checked too). A character the chunk cut waits, unless the page
        // has ended. Past a byte that is no UTF-8, nothing is read: what comes before it is
        // walked first, so an error there is the one reported, however the page was cut.
        let (text, broken) = match std::str::from_utf8(input) {
            Ok(text) => (text, false),
            Err(e) => {
                let valid = std::str::from_utf8(&input[..e.valid_up_to()])
                    .map_err(|_| RewriteError::NotUtf8)?;
                (valid, e.error_len().is_some() || self.ended)
            }
        };
        self.values.last = self.ended && !broken;
        let used = self.walk_text(text, input.len(), out)?;
        if broken {
            return Err(RewriteError::NotUtf8);
        }
        Ok(used)
    }

    /// Walks `text`, the UTF-8 start of `len` bytes of input.
    fn walk_text(
        &mut self,
        text: &str,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, RewriteError> {
        let bytes = text.as_bytes();
        let mut at = 0;
        self.rescan_at = 0;
        loop {
            while bytes.get(at).copied().is_some_and(is_space) {
                at += 1;
            }
            let Some(&b) = bytes.get(at) else {
                return Ok(at);
            };
            // Every value ends with an ASCII byte, and so does every structural one: `at` is
            // at a character boundary.
            let Some(rest) = text.get(at..) else {
                return Err(RewriteError::NotUtf8);
            };
            let next = match (self.state, b) {
                (State::Start, b'{') => State::FirstKey,
                (State::FirstKey, b'}') | (State::AfterMember, b'}') => State::Done,
                (State::FirstKey | State::Key, b'"') => {
                    let Some((key, used)) = self.values.parse::<Cow<'_, str>>(rest, at)? else {
                        return Ok(self.wait(len, at));
                    };
                    let key = D::key(&key);
                    if self.seen & D::bit(key) != 0 {
                        let e = format!("duplicate field `{}`", D::name(key));
                        return Err(self.values.error(&e, at));
                    }
                    self.seen |= D::bit(key);
                    at += used;
                    self.state = State::Colon(key);
                    continue;
                }
                (State::Colon(key), b':') if key == D::ENTRIES => State::Entries,
                (State::Colon(key), b':') => State::Value(key),
                (State::Value(key), _) => {
                    let Some(used) = self.doc.member(key, &mut self.values, rest, at)? else {
                        return Ok(self.wait(len, at));
                    };
                    at += used;
                    self.state = State::AfterMember;
                    continue;
                }
                (State::Entries, b'[') => State::FirstEntry,
                (State::FirstEntry, b']') | (State::AfterEntry, b']') => State::AfterMember,
                (State::FirstEntry | State::Entry, _) => {
                    let Some(used) = self.doc.entry(&mut self.values, rest, at, out)? else {
                        return Ok(self.wait(len, at));
                    };
                    at += used;
                    self.state = State::AfterEntry;
                    continue;
                }
                (State::AfterEntry, b',') => State::Entry,
                (State::AfterMember, b',') => State::Key,
                (state, _) => {
                    let expected = state.expected(D::name(D::ENTRIES), D::ENTRY);
                    return Err(self.values.error(&expected, at));
                }
            };
            // Every transition not `continue`d above took exactly the one byte `b`.
            at += 1;
            self.state = next;
        }
    }

    /// A value at `at` of `len` bytes of input that the end of them may have cut: it waits
    /// for more (see `rescan_at`).
    fn wait(&mut self, len: usize, at: usize) -> usize {
        self.rescan_at = 2 * (len - at);
        at
    }
}
