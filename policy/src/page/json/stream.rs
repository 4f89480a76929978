//! PEP 691 JSON project pages rewritten as they arrive: bytes in, the page's files out as soon
//! as each one is complete, with only a value the chunk cut held between chunks. A whole page is
//! the one-chunk case, so the buffered and the streamed rewrite are one code path. The walk of
//! the structure is `walk.rs`'s; this is what a project page does with its values.
//!
//! The output is `{"files":[...],"meta":{...},"name":...,"versions":[...]}` (PyPI's own key
//! order): files go out as they pass the link rule, everything else is written at the end.
//! PEP 792 statuses decide whether any file is offered. One that arrives after the files it
//! would change (one that quarantines after a file was written, or one that lifts a quarantine
//! after a file was withheld) fails the page: it gets an error, never files it meant to withhold.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use url::Url;

use super::walk::{Document, Values, Walk};
use super::{file_out, write, File, Meta, MetaOut, Status};
use crate::page::{emit, title_name, PageFormat, Summary};
use crate::rules::{FileFacts, Judge};
use crate::{Index, RewriteError, Rule};

/// A JSON project page being re-synthesized; see the module docs.
#[derive(Debug)]
pub(crate) struct JsonStream(Walk<Project>);

/// What a project page has said so far.
#[derive(Debug)]
struct Project {
    index: Index,
    page_url: Url,
    api_version: Option<String>,
    meta_status: Option<Status<'static>>,
    top_status: Option<Status<'static>>,
    name: Option<String>,
    versions: Option<Vec<String>>,
    /// Whether the statuses seen so far quarantine the project (the top-level one wins).
    quarantined: bool,
    /// The file rules.
    judge: Judge,
    /// The HTML format to write instead of JSON (a page asked for as JSON for its upload
    /// times, for a client that wants HTML).
    html: Option<PageFormat>,
    /// What the page has offered and withheld so far.
    summary: Summary,
    /// Scratch space for an attribute written for HTML.
    scratch: String,
}

/// The top-level keys the output depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
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

impl JsonStream {
    /// A rewrite of the JSON project page of `index` fetched from `page_url`, written as JSON,
    /// or in `html` when that is given.
    pub(crate) fn new(
        index: &Index,
        page_url: &Url,
        judge: Judge,
        html: Option<PageFormat>,
    ) -> JsonStream {
        JsonStream(Walk::new(Project {
            index: index.clone(),
            page_url: page_url.clone(),
            api_version: None,
            meta_status: None,
            top_status: None,
            name: None,
            versions: None,
            quarantined: false,
            judge,
            html,
            summary: Summary::default(),
            scratch: String::new(),
        }))
    }

    /// The `Content-Type` of the output.
    pub(crate) fn content_type(&self) -> &'static str {
        self.0.doc.html.unwrap_or(PageFormat::JsonV1).content_type()
    }

    /// Takes the next bytes of the page and appends the files they complete to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        self.0.feed(chunk, out)
    }

    /// How many times a value was handed to serde_json.
    #[cfg(test)]
    pub(super) fn parses(&self) -> usize {
        self.0.values.parses
    }

    /// The page has ended: appends the rest of the output.
    pub(crate) fn finish(mut self, out: &mut Vec<u8>) -> Result<Summary, RewriteError> {
        self.0.end(out)?;
        let p = self.0.doc;
        if p.html.is_some() {
            if p.summary.kept == 0 {
                p.write_head(out);
            }
            emit::tail(out);
            return Ok(p.summary);
        }
        if p.summary.kept == 0 {
            out.extend_from_slice(b"{\"files\":[");
        }
        let api_version = p
            .api_version
            .as_deref()
            .filter(|v| emit::is_v1(v))
            .unwrap_or("1.1");
        let meta = MetaOut {
            api_version,
            project_status: p.meta_status.as_ref(),
        };
        let title;
        let name = match &p.name {
            Some(n) => n,
            None => {
                title = title_name(&p.page_url);
                &title
            }
        };
        let versions: &[String] = match &p.versions {
            Some(v) if !p.quarantined => v,
            _ => &[],
        };
        out.extend_from_slice(b"],\"meta\":");
        serde_json::to_writer(&mut *out, &meta)?;
        out.extend_from_slice(b",\"name\":");
        serde_json::to_writer(&mut *out, name)?;
        if let Some(status) = &p.top_status {
            out.extend_from_slice(b",\"project-status\":");
            serde_json::to_writer(&mut *out, status)?;
        }
        out.extend_from_slice(b",\"versions\":");
        serde_json::to_writer(&mut *out, versions)?;
        out.push(b'}');
        Ok(p.summary)
    }
}

impl Document for Project {
    type Key = Key;
    const ENTRIES: Key = Key::Files;
    const ENTRY: &'static str = "a file";

    fn key(name: &str) -> Key {
        Key::of(name)
    }

    fn bit(key: Key) -> u8 {
        key.bit()
    }

    fn name(key: Key) -> &'static str {
        key.name()
    }

    /// The value of a top-level member other than `files`, taken as serde would take it in
    /// the whole page.
    fn member(
        &mut self,
        key: Key,
        values: &mut Values,
        input: &str,
        at: usize,
    ) -> Result<Option<usize>, RewriteError> {
        Ok(Some(match key {
            Key::Meta => {
                let Some((meta, len)) = values.parse::<Option<Meta<'_>>>(input, at)? else {
                    return Ok(None);
                };
                let meta = meta.unwrap_or_default();
                self.api_version = meta.api_version.map(Cow::into_owned);
                self.meta_status = meta.project_status.map(Status::into_owned);
                self.status_changed()?;
                len
            }
            Key::Name => {
                let Some((name, len)) = values.parse::<Option<Cow<'_, str>>>(input, at)? else {
                    return Ok(None);
                };
                self.name = name.map(Cow::into_owned);
                len
            }
            Key::Versions => {
                let Some((versions, len)) = values.parse::<Option<Vec<Cow<'_, str>>>>(input, at)?
                else {
                    return Ok(None);
                };
                self.versions = versions.map(|v| v.into_iter().map(Cow::into_owned).collect());
                len
            }
            Key::Status => {
                let Some((status, len)) = values.parse::<Option<Status<'_>>>(input, at)? else {
                    return Ok(None);
                };
                self.top_status = status.map(Status::into_owned);
                self.status_changed()?;
                len
            }
            Key::Other | Key::Files => {
                let Some((IgnoredAny, len)) = values.parse::<IgnoredAny>(input, at)? else {
                    return Ok(None);
                };
                len
            }
        }))
    }

    /// One file of the array: written if it passes the link rule and no quarantine holds.
    fn entry(
        &mut self,
        values: &mut Values,
        input: &str,
        at: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, RewriteError> {
        let Some(((), len)) =
            values.parse_with(input, at, |file: File<'_>| self.file(&file, out))?
        else {
            return Ok(None);
        };
        Ok(Some(len))
    }
}

impl Project {
    /// One file: written if it passes the link rule and the file rules.
    fn file(&mut self, file: &File<'_>, out: &mut Vec<u8>) {
        let Some(f) = file_out(&self.index, &self.page_url, file) else {
            self.summary.dropped += 1;
            return;
        };
        let facts = FileFacts {
            filename: f.filename,
            upload_time: f.upload_time,
            sha256: f.hashes.sha256(),
            yanked: f.yanked.is_some_and(super::Yanked::is_yanked),
            quarantined: self.quarantined,
            unlisted: false,
            unknown: false,
            provenance: f.provenance.as_deref(),
            attestation: None,
        };
        if !self.summary.offers(&self.judge, &facts) {
            return;
        }
        let first = self.summary.kept == 0;
        if self.html.is_some() {
            if first {
                self.write_head(out);
            }
            write::anchor(out, &f, &mut self.scratch);
        } else {
            out.extend_from_slice(if first { b"{\"files\":[" } else { b"," });
            write::file(out, &f);
        }
        self.summary.kept += 1;
    }
    /// The head of an HTML page written from this JSON page, with the status known so far.
    fn write_head(&self, out: &mut Vec<u8>) {
        let version = self
            .api_version
            .as_deref()
            .filter(|v| emit::is_v1(v))
            .unwrap_or("1.1");
        let status = self.top_status.as_ref().or(self.meta_status.as_ref());
        let title = match &self.name {
            Some(n) => format!("Links for {n}"),
            None => format!("Links for {}", title_name(&self.page_url)),
        };
        emit::head(out, version, status.map(Status::parts), &title);
    }

    /// A status was read: the files already handled must not depend on it.
    fn status_changed(&mut self) -> Result<(), RewriteError> {
        let quarantined = self
            .top_status
            .as_ref()
            .or(self.meta_status.as_ref())
            .is_some_and(Status::quarantined);
        let late = if quarantined {
            self.summary.kept > 0
        } else {
            self.summary.withheld.count(Rule::Quarantine) > 0
        };
        if quarantined != self.quarantined && late {
            return Err(RewriteError::LateStatus);
        }
        self.quarantined = quarantined;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
