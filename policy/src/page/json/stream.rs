//! PEP 691 JSON project pages rewritten as they arrive: bytes in, the page's files out as soon
//! as each one is complete, with only a value the chunk cut held between chunks. A whole page is
//! the one-chunk case, so the buffered and the streamed rewrite are one code path.
//!
//! The top-level object and its `files` array are walked here, strictly (keys are strings,
//! commas and colons where they belong, one object and nothing but whitespace after it); every
//! value inside them (a file, `meta`, `name`, `versions`, a status, an unknown key's value) is
//! handed to serde_json, which validates it as it would inside the whole page. A value the end
//! of what has arrived may have cut is waited for (`value.rs` tells which); anything else
//! serde_json refuses fails the page. The bytes are checked as UTF-8 here, all of them.
//!
//! The output is `{"files":[...],"meta":{...},"name":...,"versions":[...]}` (PyPI's own key
//! order): files go out as they pass the link rule, everything else is written at the end.
//! PEP 792 statuses decide whether any file is offered. One that arrives after the files it
//! would change (one that quarantines after a file was written, or one that lifts a quarantine
//! after a file was withheld) fails the page: it gets an error, never files it meant to withhold.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use url::Url;

use super::value::{error_at, is_space, value};
use super::{file_out, write, File, Meta, MetaOut, Status};
use crate::page::{emit, title_name, Summary};
use crate::{Index, RewriteError};

/// A JSON project page being re-synthesized; see the module docs.
#[derive(Debug)]
pub(crate) struct JsonStream {
    index: Index,
    page_url: Url,
    /// Where the walk of the top-level structure stands.
    state: State,
    /// Input not consumed yet: a value the chunk cut.
    pending: Vec<u8>,
    /// `pending` is parsed again only once it has grown to this length, so a value cut many
    /// times over (a huge string) costs O(n) in all, not O(n²).
    rescan_at: usize,
    /// Bytes of the page before `pending` (errors name absolute offsets).
    offset: usize,
    /// The known top-level keys seen so far (bits of [`Key::bit`]): a second one fails the page.
    seen: u8,
    api_version: Option<String>,
    meta_status: Option<Status<'static>>,
    top_status: Option<Status<'static>>,
    name: Option<String>,
    versions: Option<Vec<String>>,
    /// Whether the statuses seen so far quarantine the project (the top-level one wins).
    quarantined: bool,
    /// Whether the page has ended: what is left is all there is.
    ended: bool,
    /// Whether the input being walked is all the page has left (it has ended, and no byte
    /// that is not UTF-8 stops the walk short).
    last: bool,
    kept: usize,
    dropped: usize,
    /// Files that passed the link rule but were withheld by a quarantine.
    withheld: usize,
    /// How many times a value was handed to serde_json (tests check the rescan rule with it).
    #[cfg(test)]
    pub(super) parses: usize,
}

/// The top-level keys the output depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Files,
    Meta,
    Name,
    Versions,
    Status,
    /// Any other key: its value is checked and dropped.
    Other,
}

impl Key {
    fn of(key: &str) -> Key {
        match key {
            "files" => Key::Files,
            "meta" => Key::Meta,
            "name" => Key::Name,
            "versions" => Key::Versions,
            "project-status" => Key::Status,
            _ => Key::Other,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Key::Files => 1,
            Key::Meta => 2,
            Key::Name => 4,
            Key::Versions => 8,
            Key::Status => 16,
            Key::Other => 0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Key::Files => "files",
            Key::Meta => "meta",
            Key::Name => "name",
            Key::Versions => "versions",
            Key::Status => "project-status",
            Key::Other => "",
        }
    }
}

/// What the walk expects next (after any whitespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The page's `{`.
    Start,
    /// A key or `}`, just after `{`.
    FirstKey,
    /// A key, after a `,`.
    Key,
    /// The `:` after a key.
    Colon(Key),
    /// The value of a key other than `files`.
    Value(Key),
    /// The `[` of `files`.
    Files,
    /// A file or `]`, just after `[`.
    FirstFile,
    /// A file, after a `,`.
    File,
    /// `,` or `]` after a file.
    AfterFile,
    /// `,` or `}` after a member.
    AfterMember,
    /// Nothing: the page has ended.
    Done,
}

impl State {
    /// What was expected, for the error naming what came instead.
    fn expected(self) -> &'static str {
        match self {
            State::Start => "expected `{` at the start of the page",
            State::FirstKey => "expected a string key or `}`",
            State::Key => "expected a string key after `,`",
            State::Colon(_) => "expected `:` after a key",
            State::Value(_) | State::File => "expected a value",
            State::Files => "invalid type: `files` must be an array",
            State::FirstFile => "expected a file or `]`",
            State::AfterFile => "expected `,` or `]` after a file",
            State::AfterMember => "expected `,` or `}` after a member",
            State::Done => "trailing characters after the page",
        }
    }
}

impl JsonStream {
    /// A rewrite of the JSON project page of `index` fetched from `page_url`.
    pub(crate) fn new(index: &Index, page_url: &Url) -> JsonStream {
        JsonStream {
            index: index.clone(),
            page_url: page_url.clone(),
            state: State::Start,
            pending: Vec::new(),
            rescan_at: 0,
            offset: 0,
            seen: 0,
            api_version: None,
            meta_status: None,
            top_status: None,
            name: None,
            versions: None,
            quarantined: false,
            ended: false,
            last: false,
            kept: 0,
            dropped: 0,
            withheld: 0,
            #[cfg(test)]
            parses: 0,
        }
    }

    /// Takes the next bytes of the page and appends the files they complete to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        if self.pending.is_empty() {
            let used = self.walk(chunk, out)?;
            self.offset += used;
            self.pending.extend_from_slice(&chunk[used..]);
            return Ok(());
        }
        self.pending.extend_from_slice(chunk);
        if self.pending.len() < self.rescan_at {
            return Ok(());
        }
        let mut input = std::mem::take(&mut self.pending);
        let used = self.walk(&input, out)?;
        self.offset += used;
        input.drain(..used);
        self.pending = input;
        Ok(())
    }

    /// The page has ended: appends the rest of the output.
    pub(crate) fn finish(mut self, out: &mut Vec<u8>) -> Result<Summary, RewriteError> {
        let rest = std::mem::take(&mut self.pending);
        self.ended = true;
        self.walk(&rest, out)?;
        if self.state != State::Done {
            return Err(self.error("EOF while parsing the page", rest.len()));
        }
        if self.seen & Key::Files.bit() == 0 {
            return Err(RewriteError::Json("missing field `files`".into()));
        }
        if self.kept == 0 {
            out.extend_from_slice(b"{\"files\":[");
        }
        let api_version = self
            .api_version
            .as_deref()
            .filter(|v| emit::is_v1(v))
            .unwrap_or("1.1");
        let meta = MetaOut {
            api_version,
            project_status: self.meta_status.as_ref(),
        };
        let title;
        let name = match &self.name {
            Some(n) => n,
            None => {
                title = title_name(&self.page_url);
                &title
            }
        };
        let versions: &[String] = match &self.versions {
            Some(v) if !self.quarantined => v,
            _ => &[],
        };
        out.extend_from_slice(b"],\"meta\":");
        serde_json::to_writer(&mut *out, &meta)?;
        out.extend_from_slice(b",\"name\":");
        serde_json::to_writer(&mut *out, name)?;
        if let Some(status) = &self.top_status {
            out.extend_from_slice(b",\"project-status\":");
            serde_json::to_writer(&mut *out, status)?;
        }
        out.extend_from_slice(b",\"versions\":");
        serde_json::to_writer(&mut *out, versions)?;
        out.push(b'}');
        Ok(Summary {
            kept: self.kept,
            dropped: self.dropped,
        })
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
        self.last = self.ended && !broken;
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
                    let Some((key, len)) = self.parse::<Cow<'_, str>>(rest, at)? else {
                        return Ok(self.wait(len, at));
                    };
                    let key = Key::of(&key);
                    if self.seen & key.bit() != 0 {
                        let e = format!("duplicate field `{}`", key.name());
                        return Err(self.error(&e, at));
                    }
                    self.seen |= key.bit();
                    at += len;
                    self.state = State::Colon(key);
                    continue;
                }
                (State::Colon(Key::Files), b':') => State::Files,
                (State::Colon(key), b':') => State::Value(key),
                (State::Value(key), _) => {
                    let Some(len) = self.member(key, rest, at)? else {
                        return Ok(self.wait(len, at));
                    };
                    at += len;
                    self.state = State::AfterMember;
                    continue;
                }
                (State::Files, b'[') => State::FirstFile,
                (State::FirstFile, b']') | (State::AfterFile, b']') => State::AfterMember,
                (State::FirstFile | State::File, _) => {
                    let Some((file, len)) = self.parse::<File<'_>>(rest, at)? else {
                        return Ok(self.wait(len, at));
                    };
                    self.file(&file, out);
                    at += len;
                    self.state = State::AfterFile;
                    continue;
                }
                (State::AfterFile, b',') => State::File,
                (State::AfterMember, b',') => State::Key,
                (state, _) => return Err(self.error(state.expected(), at)),
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

    /// The value of a top-level member other than `files`, taken as serde would take it in
    /// the whole page; its length, or `None` if it is cut.
    fn member(&mut self, key: Key, input: &str, at: usize) -> Result<Option<usize>, RewriteError> {
        Ok(Some(match key {
            Key::Meta => {
                let Some((meta, len)) = self.parse::<Option<Meta<'_>>>(input, at)? else {
                    return Ok(None);
                };
                let meta = meta.unwrap_or_default();
                self.api_version = meta.api_version.map(Cow::into_owned);
                self.meta_status = meta.project_status.map(Status::into_owned);
                self.status_changed()?;
                len
            }
            Key::Name => {
                let Some((name, len)) = self.parse::<Option<Cow<'_, str>>>(input, at)? else {
                    return Ok(None);
                };
                self.name = name.map(Cow::into_owned);
                len
            }
            Key::Versions => {
                let Some((versions, len)) = self.parse::<Option<Vec<Cow<'_, str>>>>(input, at)?
                else {
                    return Ok(None);
                };
                self.versions = versions.map(|v| v.into_iter().map(Cow::into_owned).collect());
                len
            }
            Key::Status => {
                let Some((status, len)) = self.parse::<Option<Status<'_>>>(input, at)? else {
                    return Ok(None);
                };
                self.top_status = status.map(Status::into_owned);
                self.status_changed()?;
                len
            }
            Key::Other | Key::Files => {
                let Some((IgnoredAny, len)) = self.parse::<IgnoredAny>(input, at)? else {
                    return Ok(None);
                };
                len
            }
        }))
    }

    /// A status was read: the files already handled must not depend on it.
    fn status_changed(&mut self) -> Result<(), RewriteError> {
        let quarantined = self
            .top_status
            .as_ref()
            .or(self.meta_status.as_ref())
            .is_some_and(Status::quarantined);
        let late = if quarantined {
            self.kept > 0
        } else {
            self.withheld > 0
        };
        if quarantined != self.quarantined && late {
            return Err(RewriteError::LateStatus);
        }
        self.quarantined = quarantined;
        Ok(())
    }

    /// One file of the array: written if it passes the link rule and no quarantine holds.
    fn file(&mut self, file: &File<'_>, out: &mut Vec<u8>) {
        match file_out(&self.index, &self.page_url, file) {
            Some(_) if self.quarantined => {
                self.withheld += 1;
                self.dropped += 1;
            }
            Some(f) => {
                out.extend_from_slice(if self.kept == 0 {
                    b"{\"files\":["
                } else {
                    b","
                });
                write::file(out, &f);
                self.kept += 1;
            }
            None => self.dropped += 1,
        }
    }

    /// [`value`] (counted, for the tests), with serde_json's error placed in the page.
    fn parse<'b, T: Deserialize<'b>>(
        &mut self,
        input: &'b str,
        at: usize,
    ) -> Result<Option<(T, usize)>, RewriteError> {
        #[cfg(test)]
        {
            self.parses += 1;
        }
        value(input, self.last).map_err(|e| {
            // serde_json counts lines and columns from the start of the value; the page's
            // byte offset says more.
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = text.strip_suffix(&suffix).unwrap_or(&text);
            self.error(message, at + error_at(input, &e).unwrap_or(0))
        })
    }

    /// A page that is not the JSON PEP 691 describes, at byte `at` of what is being walked.
    fn error(&self, message: &str, at: usize) -> RewriteError {
        RewriteError::Json(format!("{message} at byte {}", self.offset + at))
    }
}

#[cfg(test)]
mod tests;
