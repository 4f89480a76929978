//! HTML project pages rewritten as they arrive: bytes in, canonical anchors out, with only a
//! cut tag (or a cut UTF-8 sequence) held between chunks. A whole page is the one-chunk case,
//! so the buffered and the streamed rewrite are one code path.
//!
//! Two things on a page apply to links that come before them, and are handled so that the
//! output never depends on where the chunks were cut:
//! - `<base href>` (the first one, anywhere in the document) resolves every relative link.
//!   A link whose outcome a base could change is held, with every link after it (to keep the
//!   page's order), until a base is seen or the page ends.
//! - The PEP 792 status `<meta>`s decide whether any file is offered, and the head pipgate
//!   writes carries them and the repository version. Only metas before the page's first anchor
//!   count (PEP 792 puts them in the head). A status after an anchor fails the page: it gets an
//!   error, never files it meant to withhold.

use url::Url;

use super::chunks::{Chunks, Scan};
use super::html::{self, Anchor, MetaName, Parsed};
use super::scan::{self, Part};
use super::{emit, link, project, title_name, PageFormat};
use crate::rules::{quarantine::is_quarantined, FileFacts, Judge, Mode, Tally, Withheld};
use crate::{Index, RewriteError};

/// An HTML project page being re-synthesized; see the module docs.
#[derive(Debug)]
pub(super) struct HtmlStream {
    chunks: Chunks,
    page: Page,
}

/// What the page has said so far, and the anchors it holds back.
#[derive(Debug)]
struct Page {
    index: Index,
    page_url: Url,
    format: PageFormat,
    /// The first `<meta>` of each kind the output depends on, from before the first anchor.
    version: Option<String>,
    status: Option<String>,
    reason: Option<String>,
    /// Whether an anchor has been seen: metas after it are late.
    seen_anchor: bool,
    /// Whether the head has been written.
    written: bool,
    /// Whether the page's first `<base href>` has been seen.
    base_seen: bool,
    /// What links resolve against: the page URL, then what the first `<base href>` resolved
    /// to (`None`: a base that does not resolve, which leaves only absolute links).
    base: Option<Url>,
    /// Anchors waiting for the base, in page order (spans into its own arena).
    held: Parsed,
    /// What each scan collects; its buffers are reused from chunk to chunk.
    collector: html::Collector,
    /// The file rules.
    judge: Judge,
    /// What the page has offered and withheld so far.
    summary: Summary,
}

/// What a finished page offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Links passed on.
    pub kept: usize,
    /// Links removed (by the link rule, and files withheld by a rule).
    pub dropped: usize,
    /// Files withheld (or, in audit mode, kept but reported) by each rule.
    pub withheld: Tally,
    /// The first [`Summary::SAMPLES`] files a rule withheld (or would have), in page order,
    /// for messages and the operator's list of recent decisions.
    pub samples: Vec<Withheld>,
    /// The legacy JSON API: every file of the document's own release (`urls`) was withheld,
    /// so `/pypi/<name>/<version>/json` answers as for a version that does not exist.
    pub all_withheld: bool,
}

impl Summary {
    /// How many withheld files a summary names (the rest are only counted).
    pub const SAMPLES: usize = 32;

    /// The first file a rule withheld (or would have).
    pub fn first_withheld(&self) -> Option<&Withheld> {
        self.samples.first()
    }

    /// Links dropped by the link rule (not withheld by a file rule).
    pub fn external(&self) -> usize {
        self.dropped.saturating_sub(self.withheld.enforced())
    }

    /// Whether `file`, a link that passed the link rule, is offered: every writer asks this
    /// of the same judge. A file a rule withholds is counted as its (and dropped); one an
    /// audit-mode rule would withhold is counted as its, and offered. The caller counts
    /// what it writes as kept.
    pub(crate) fn offers(&mut self, judge: &Judge, file: &FileFacts<'_>) -> bool {
        let Some(w) = judge.file(file) else {
            return true;
        };
        self.withheld.add(&w);
        let enforced = w.mode == Mode::Enforce;
        if self.samples.len() < Self::SAMPLES {
            self.samples.push(w);
        }
        self.dropped += usize::from(enforced);
        !enforced
    }
}

impl HtmlStream {
    /// A rewrite of the HTML project page of `index` fetched from `page_url`; `format` is one
    /// of the HTML formats (it sets the output's content type).
    pub(super) fn new(
        index: &Index,
        page_url: &Url,
        format: PageFormat,
        judge: Judge,
    ) -> HtmlStream {
        debug_assert!(format.is_html());
        HtmlStream {
            chunks: Chunks::default(),
            page: Page {
                index: index.clone(),
                page_url: page_url.clone(),
                format,
                version: None,
                status: None,
                reason: None,
                seen_anchor: false,
                written: false,
                base_seen: false,
                base: Some(page_url.clone()),
                held: Parsed::default(),
                collector: html::Collector::new(false),
                judge,
                summary: Summary::default(),
            },
        }
    }

    /// The `Content-Type` of the output.
    pub(super) fn content_type(&self) -> &'static str {
        self.page.format.content_type()
    }

    /// Takes the next bytes of the page and appends what they complete to `out`.
    pub(super) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        self.chunks.feed(chunk, &mut self.page, out)
    }

    /// The page has ended: appends the rest of the output.
    pub(super) fn finish(self, out: &mut Vec<u8>) -> Result<Summary, RewriteError> {
        let mut page = self.page;
        let rest = self.chunks.finish()?;
        let parsed = if rest.reference {
            html::parse_reference(&rest.text, false)
        } else {
            // The end of input closes what is still open, exactly as for a whole page.
            html::parse(&rest.text, false)
        };
        page.take(&parsed, out)?;
        // No `<base>` at all: held links resolve against the page URL.
        page.release(out);
        page.write_head(out);
        emit::tail(out);
        Ok(page.summary)
    }

    /// How many times input was scanned.
    #[cfg(test)]
    pub(super) fn scans(&self) -> usize {
        self.chunks.scans
    }
}

impl Scan for Page {
    fn scan(&mut self, text: &str, out: &mut Vec<u8>) -> Result<Part, RewriteError> {
        let mut c = std::mem::take(&mut self.collector);
        c.clear();
        let part = scan::tokenize_part(text, &mut c);
        let taken = self.take(c.parsed(), out);
        self.collector = c;
        taken?;
        Ok(part)
    }
}

impl Page {
    /// Takes what one scan found: metas, the base, then the anchors in page order.
    fn take(&mut self, parsed: &Parsed, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let early = if self.seen_anchor {
            0
        } else {
            parsed.metas_before_anchor.unwrap_or(parsed.metas.len())
        };
        for (i, (kind, span)) in parsed.metas.iter().enumerate() {
            self.meta(*kind, parsed.get(span), i >= early)?;
        }
        self.seen_anchor |= !parsed.anchors.is_empty();
        if !self.base_seen {
            if let Some(span) = &parsed.base {
                self.base_seen = true;
                self.base = link::resolve(&self.page_url, parsed.get(span));
                self.release(out);
            }
        }
        for a in &parsed.anchors {
            let Some(href) = parsed.opt(&a.href) else {
                continue;
            };
            let hold = !self.held.anchors.is_empty()
                || (!self.base_seen && !independent_of_base(parsed, a, href));
            if hold {
                self.held.push_anchor(parsed, a);
            } else {
                self.anchor(parsed, a, href, out);
            }
        }
        Ok(())
    }

    /// The first meta of each kind before the first anchor counts. After it, a status (or the
    /// reason of one) fails the page; a version is ignored (pipgate keeps the one it wrote).
    fn meta(&mut self, kind: MetaName, value: &str, late: bool) -> Result<(), RewriteError> {
        let slot = match kind {
            MetaName::RepositoryVersion => &mut self.version,
            MetaName::ProjectStatus => &mut self.status,
            MetaName::ProjectStatusReason => &mut self.reason,
            MetaName::Tracks => return Ok(()),
        };
        if slot.is_some() {
            return Ok(());
        }
        if !late {
            *slot = Some(value.to_owned());
            return Ok(());
        }
        let changes = match kind {
            MetaName::ProjectStatus => true,
            MetaName::ProjectStatusReason => self.status.is_some(),
            _ => false,
        };
        if changes {
            return Err(RewriteError::LateStatus);
        }
        Ok(())
    }

    /// Rewrites the held anchors, now that the base is known.
    fn release(&mut self, out: &mut Vec<u8>) {
        let held = std::mem::take(&mut self.held);
        for a in &held.anchors {
            if let Some(href) = held.opt(&a.href) {
                self.anchor(&held, a, href, out);
            }
        }
    }

    /// A link that passes the link rule is offered unless a file rule withholds it.
    fn anchor(&mut self, parsed: &Parsed, a: &Anchor, href: &str, out: &mut Vec<u8>) {
        let Some(f) = project::file_link(&self.index, self.base.as_ref(), parsed, a, href) else {
            self.summary.dropped += 1;
            return;
        };
        let facts = FileFacts {
            filename: f.filename(),
            upload_time: None,
            sha256: f.sha256(),
            yanked: a.yanked.is_some(),
            quarantined: self.status.as_deref().is_some_and(is_quarantined),
            unlisted: false,
            unknown: false,
            provenance: f.provenance(),
            attestation: None,
        };
        if self.summary.offers(&self.judge, &facts) {
            self.write_head(out);
            project::emit_file(out, parsed, a, &f);
            self.summary.kept += 1;
        }
    }

    fn write_head(&mut self, out: &mut Vec<u8>) {
        if self.written {
            return;
        }
        self.written = true;
        let status = self.status.as_deref().map(str::trim);
        let version = self
            .version
            .as_deref()
            .map(str::trim)
            .filter(|v| emit::is_v1(v))
            .unwrap_or("1.1");
        emit::head(
            out,
            version,
            status.map(|s| (s, self.reason.as_deref())),
            &format!("Links for {}", title_name(&self.page_url)),
        );
    }
}

/// Whether no `<base>` could change what becomes of an anchor: its URLs are absolute with an
/// authority (`scheme://`), which a URL parser resolves without looking at the base.
fn independent_of_base(parsed: &Parsed, a: &Anchor, href: &str) -> bool {
    let absolute = |s: &str| {
        let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
        s.starts_with("https://") || s.starts_with("http://")
    };
    parsed.opt(&a.rel).is_some_and(link::is_external_rel)
        || (absolute(href) && parsed.opt(&a.provenance).is_none_or(absolute))
}

#[cfg(test)]
mod tests;
