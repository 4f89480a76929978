//! Index pages: parsed, filtered by the link rule, and written fresh (issue rules 5-7).

mod chunks;
mod emit;
mod files;
mod html;
mod json;
mod legacy;
mod link;
mod project;
mod refs;
mod root;
mod scan;
mod stream;

use url::Url;

pub use files::{files_of_legacy_json, files_of_page, with_legacy_times};
pub use root::RootStream;
use stream::HtmlStream;
pub use stream::Summary;

use crate::rules::Judge;
use crate::{Index, Name, Policy, RewriteError, Role};

/// The three wire formats of a simple-repository page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageFormat {
    /// `text/html` (PEP 503).
    Html,
    /// `application/vnd.pypi.simple.v1+html` (PEP 691).
    HtmlV1,
    /// `application/vnd.pypi.simple.v1+json` (PEP 691).
    JsonV1,
}

impl PageFormat {
    /// The format of a response `Content-Type`, ignoring parameters and case. Anything else
    /// (including plain `application/json`) is not a simple page.
    pub fn from_content_type(content_type: &str) -> Option<PageFormat> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("text/html") {
            Some(PageFormat::Html)
        } else if essence.eq_ignore_ascii_case("application/vnd.pypi.simple.v1+html") {
            Some(PageFormat::HtmlV1)
        } else if essence.eq_ignore_ascii_case("application/vnd.pypi.simple.v1+json") {
            Some(PageFormat::JsonV1)
        } else {
            None
        }
    }

    /// Whether a `Content-Type` is one an installer reads as an index page (HTML, XHTML, a
    /// PEP 691 type, or JSON): the file door never passes such an answer (a wheel is not HTML).
    pub fn is_page_content_type(content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        essence == "text/html"
            || essence == "application/xhtml+xml"
            || essence.starts_with("application/vnd.pypi.simple.")
            || essence == "application/json"
            || essence == "text/json"
            || essence.ends_with("+json")
    }

    /// The `Content-Type` of pages pipgate writes in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            PageFormat::Html => "text/html; charset=utf-8",
            PageFormat::HtmlV1 => "application/vnd.pypi.simple.v1+html",
            PageFormat::JsonV1 => "application/vnd.pypi.simple.v1+json",
        }
    }

    fn is_html(self) -> bool {
        !matches!(self, PageFormat::JsonV1)
    }
}

/// A project page being re-synthesized as it arrives, in any of the three formats: bytes in,
/// the new page out, with only what a chunk cut held between chunks. A whole page is the
/// one-chunk case, so the output never depends on where the chunks were cut.
#[derive(Debug)]
pub struct ProjectStream(Rewriter);

#[derive(Debug)]
enum Rewriter {
    // Boxed: the two differ in size by hundreds of bytes, and a page makes one.
    Html(Box<HtmlStream>),
    Json(Box<json::JsonStream>),
}

impl ProjectStream {
    /// A rewrite of the project page of `index` fetched from `page_url` in `format`, by the
    /// link rule and the rules every page gets (quarantine) only; see [`ProjectStream::judged`].
    pub fn new(index: &Index, page_url: &Url, format: PageFormat) -> ProjectStream {
        let judge = Judge::basic(&Name::new(&title_name(page_url)));
        ProjectStream::judged(index, page_url, format, format, judge)
    }

    /// A rewrite of the project page of `index` fetched from `page_url` in `input`, each file
    /// judged by `judge`, written in `output`. A JSON page can be written as HTML (for a client
    /// that wants HTML, when the rules need the upload times only JSON carries); an HTML page
    /// is always written as HTML.
    pub fn judged(
        index: &Index,
        page_url: &Url,
        input: PageFormat,
        output: PageFormat,
        judge: Judge,
    ) -> ProjectStream {
        ProjectStream(if input.is_html() {
            Rewriter::Html(Box::new(HtmlStream::new(index, page_url, input, judge)))
        } else {
            let html = output.is_html().then_some(output);
            Rewriter::Json(Box::new(json::JsonStream::new(
                index, page_url, judge, html,
            )))
        })
    }

    /// The `Content-Type` of the output.
    pub fn content_type(&self) -> &'static str {
        match &self.0 {
            Rewriter::Html(s) => s.content_type(),
            Rewriter::Json(s) => s.content_type(),
        }
    }

    /// Takes the next bytes of the page and appends what they complete to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        match &mut self.0 {
            Rewriter::Html(s) => s.feed(chunk, out),
            Rewriter::Json(s) => s.feed(chunk, out),
        }
    }

    /// How much of a whole page of `len` bytes to feed at a time. The HTML scanner is faster on
    /// chunks that fit the caches than in one pass over megabytes; the JSON walk copies
    /// whatever a chunk cut, so it takes the page in one piece.
    fn whole_page_chunk(&self, len: usize) -> usize {
        match &self.0 {
            Rewriter::Html(_) => 32 * 1024,
            Rewriter::Json(_) => len.max(1),
        }
    }

    /// The page has ended: appends the rest of the output and says what it offered.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<Summary, RewriteError> {
        match self.0 {
            Rewriter::Html(s) => s.finish(out),
            Rewriter::Json(s) => s.finish(out),
        }
    }
}

/// A re-synthesized page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewritten {
    /// The new body.
    pub body: Vec<u8>,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Links (or root entries) passed on.
    pub kept: usize,
    /// Links (or root entries) removed.
    pub dropped: usize,
    /// What the file rules withheld.
    pub summary: Summary,
}

impl Policy {
    /// Re-synthesizes a project page of `index` fetched from `page_url`, by the link rule and
    /// quarantine only (see [`Policy::rewrite_judged`]).
    pub fn rewrite_project(
        &self,
        index: &Index,
        page_url: &Url,
        format: PageFormat,
        body: &[u8],
    ) -> Result<Rewritten, RewriteError> {
        let judge = Judge::basic(&Name::new(&title_name(page_url)));
        self.rewrite_judged(index, page_url, format, format, judge, body)
    }

    /// Re-synthesizes a whole project page of `index` in `input`, each file judged by
    /// `judge`, written in `output` (see [`ProjectStream::judged`]).
    pub fn rewrite_judged(
        &self,
        index: &Index,
        page_url: &Url,
        input: PageFormat,
        output: PageFormat,
        judge: Judge,
        body: &[u8],
    ) -> Result<Rewritten, RewriteError> {
        let mut stream = ProjectStream::judged(index, page_url, input, output, judge);
        let mut out = Vec::with_capacity(body.len() + 512);
        for chunk in body.chunks(stream.whole_page_chunk(body.len())) {
            stream.feed(chunk, &mut out)?;
        }
        let content_type = stream.content_type();
        let summary = stream.finish(&mut out)?;
        Ok(Rewritten {
            body: out,
            content_type,
            kept: summary.kept,
            dropped: summary.dropped,
            summary,
        })
    }

    /// Re-synthesizes a root listing of `index` read whole: the one-chunk case of
    /// [`Policy::root_stream`].
    pub fn rewrite_root(
        &self,
        index: &Index,
        _page_url: &Url,
        format: PageFormat,
        body: &[u8],
        is_private: &(dyn Fn(&Name) -> bool + Sync),
    ) -> Result<Rewritten, RewriteError> {
        let mut stream = self.root_stream(index, format, is_private);
        // Links grow by the index URL's host part; untouched capacity costs no memory, and
        // growing a buffer of tens of megabytes copies it.
        let mut out = Vec::with_capacity(body.len().saturating_add(body.len() / 2));
        for chunk in body.chunks(stream.whole_page_chunk(body.len())) {
            stream.feed(chunk, &mut out)?;
        }
        let content_type = stream.content_type();
        let summary = stream.finish(&mut out)?;
        Ok(Rewritten {
            body: out,
            content_type,
            kept: summary.kept,
            dropped: summary.dropped,
            summary,
        })
    }

    /// A root listing of `index` in `format`, re-synthesized as it arrives. A public index's
    /// listing loses the names that are private, by pattern or by `known_private` (typically
    /// the proxy's cache of private-index answers; nobody is asked about each name); a private
    /// index's listing keeps every name (they are its own).
    pub fn root_stream<'h>(
        &self,
        index: &Index,
        format: PageFormat,
        known_private: impl Fn(&Name) -> bool + Send + Sync + 'h,
    ) -> RootStream<'h> {
        let public = index.role() == Role::Public;
        let private = self.rules().private.clone();
        let allow_public = self.rules().allow_public.clone();
        let hidden = move |n: &Name| {
            public
                && !allow_public.iter().any(|p| p.matches(n))
                && (private.iter().any(|p| p.matches(n)) || known_private(n))
        };
        RootStream::new(index, format, Box::new(hidden))
    }

    /// Filters a legacy `/pypi/<name>/json` document of `index`, each file judged by `judge`.
    pub fn rewrite_legacy_json(
        &self,
        index: &Index,
        page_url: &Url,
        judge: &Judge,
        body: &[u8],
    ) -> Result<Rewritten, RewriteError> {
        legacy::rewrite(index, page_url, judge, body)
    }
}

/// The PEP 708 `pypi:tracks` URLs a (private) project page declares, resolved against its URL.
pub fn private_page_tracks(
    format: PageFormat,
    page_url: &Url,
    body: &[u8],
) -> Result<Vec<Url>, RewriteError> {
    if format.is_html() {
        let parsed = html::parse(utf8(body)?, false);
        Ok(parsed
            .metas
            .iter()
            .filter(|(n, _)| *n == html::MetaName::Tracks)
            .filter_map(|(_, s)| link::resolve(page_url, parsed.get(s)))
            .collect())
    } else {
        json::tracks(page_url, body)
    }
}

/// See [`crate::fuzzing::scanner_matches_reference`].
pub(crate) fn scanner_matches_reference(text: &str) -> bool {
    [false, true].into_iter().all(|collect_text| {
        let mut c = html::Collector::new(collect_text);
        match scan::tokenize(text, &mut c) {
            Ok(()) => html::same(&c.finish(), &html::parse_reference(text, collect_text)),
            Err(scan::Bail) => true,
        }
    })
}

/// The body as text; a UTF-8 byte-order mark is not content.
fn utf8(body: &[u8]) -> Result<&str, RewriteError> {
    if body.len() > html::MAX_PAGE {
        return Err(RewriteError::TooLarge);
    }
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    std::str::from_utf8(body).map_err(|_| RewriteError::NotUtf8)
}

/// The project name shown in titles: the page URL's last non-empty segment, decoded.
fn title_name(page_url: &Url) -> String {
    let last = page_url
        .path_segments()
        .and_then(|mut s| s.rfind(|s| !s.is_empty()))
        .unwrap_or_default();
    percent_encoding::percent_decode_str(last)
        .decode_utf8_lossy()
        .into_owned()
}

/// PyPI as an index, for the tests of the page modules.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a constant that is valid
pub(crate) fn pypi() -> Index {
    Index::new(
        "pypi",
        "https://pypi.org/simple/",
        crate::Role::Public,
        &["files.pythonhosted.org".to_owned()],
    )
    .unwrap()
}

/// Feeds `body`, a project page of [`pypi`] at `/simple/pkg/` in `format`, cut at `cuts`
/// (offsets, any order), and returns the output and summary: the stream tests of every format
/// compare this with the one-chunk case.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a constant that is valid
pub(crate) fn fed_in_cuts(
    format: PageFormat,
    body: &[u8],
    cuts: &[usize],
) -> Result<(Vec<u8>, Summary), RewriteError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(body.len())).collect();
    cuts.sort_unstable();
    let page_url = Url::parse("https://pypi.org/simple/pkg/").unwrap();
    let mut s = ProjectStream::new(&pypi(), &page_url, format);
    let mut out = Vec::new();
    let mut from = 0;
    for c in cuts.into_iter().chain([body.len()]) {
        s.feed(&body[from..c], &mut out)?;
        from = c;
    }
    let summary = s.finish(&mut out)?;
    Ok((out, summary))
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
