//! The files a project page lists, with what the file rules judge a direct download by (its
//! upload time and hash): read from a page fetched for that purpose, not written anywhere.

use std::borrow::Cow;

use serde::Deserialize;
use url::Url;

use super::{html, json, link, utf8, PageFormat};
use crate::rules::{quarantine::is_quarantined, FileRecord};
use crate::{Index, RewriteError};

/// Every file the project page `body` of `index` (fetched from `page_url`, in `format`) lists
/// behind a link the link rule accepts (an HTML page carries no upload times).
pub fn files_of_page(
    index: &Index,
    page_url: &Url,
    format: PageFormat,
    body: &[u8],
) -> Result<Vec<FileRecord>, RewriteError> {
    if format == PageFormat::JsonV1 {
        let mut files = json::records(body)?;
        for f in &mut files {
            f.provenance = f
                .provenance
                .take()
                .and_then(|p| provenance_url(index, page_url, &p));
        }
        return Ok(files);
    }
    let parsed = html::parse(utf8(body)?, false);
    // PEP 792 puts the status in the head: only metas before the first link count.
    let early = parsed.metas_before_anchor.unwrap_or(parsed.metas.len());
    let quarantined = parsed.metas[..early]
        .iter()
        .find(|(n, _)| *n == html::MetaName::ProjectStatus)
        .is_some_and(|(_, s)| is_quarantined(parsed.get(s)));
    Ok(parsed
        .anchors
        .iter()
        .filter_map(|a| {
            let checked = link::check(index, Some(page_url), parsed.opt(&a.href)?)?;
            let sha256 = match &checked.hash {
                Some((alg, hex)) if alg == "sha256" => Some(hex.to_ascii_lowercase()),
                _ => None,
            };
            Some(FileRecord {
                filename: checked.filename.into_owned(),
                upload_time: None,
                sha256,
                yanked: a.yanked.is_some(),
                quarantined,
                provenance: parsed
                    .opt(&a.provenance)
                    .and_then(|p| provenance_url(index, page_url, p)),
                attestation: None,
            })
        })
        .collect())
}

/// A file's provenance URL resolved against its page, kept only when the link rule lets it be
/// fetched (https to the index's own hosts): the proxy fetches it, so a page must not be able to
/// point it anywhere else.
fn provenance_url(index: &Index, page_url: &Url, raw: &str) -> Option<String> {
    let url = link::resolve(page_url, raw)?;
    link::allowed(index, &url).then(|| url.into())
}

/// The files of a legacy JSON API document (`/pypi/<name>/json`: every release's entries),
/// with their upload times (`upload_time_iso_8601`) and sha256 digests: where upload times come
/// from when an index's project pages carry none (HTML only).
pub fn files_of_legacy_json(body: &[u8]) -> Result<Vec<FileRecord>, RewriteError> {
    #[derive(Deserialize)]
    struct Doc<'a> {
        #[serde(borrow, default)]
        releases: std::collections::BTreeMap<Cow<'a, str>, Vec<Entry<'a>>>,
        #[serde(borrow, default)]
        urls: Vec<Entry<'a>>,
    }
    #[derive(Deserialize)]
    struct Entry<'a> {
        #[serde(borrow)]
        filename: Cow<'a, str>,
        #[serde(borrow, default)]
        upload_time_iso_8601: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        digests: std::collections::BTreeMap<Cow<'a, str>, Cow<'a, str>>,
        #[serde(default)]
        yanked: bool,
    }
    let doc: Doc<'_> = serde_json::from_slice(body)?;
    let mut out: Vec<FileRecord> = Vec::new();
    for e in doc.releases.into_values().flatten().chain(doc.urls) {
        if !link::valid_filename(&e.filename) || out.iter().any(|f| f.filename == e.filename) {
            continue;
        }
        out.push(FileRecord {
            filename: e.filename.into_owned(),
            upload_time: e.upload_time_iso_8601.map(Cow::into_owned),
            sha256: e
                .digests
                .get("sha256")
                .filter(|h| link::valid_hash("sha256", h))
                .map(|h| h.to_ascii_lowercase()),
            yanked: e.yanked,
            quarantined: false,
            provenance: None,
            attestation: None,
        });
    }
    Ok(out)
}

/// `files` with the upload times (and hashes) `legacy` knows of the same file names filled in
/// where they lack them.
pub fn with_legacy_times(files: Vec<FileRecord>, legacy: &[FileRecord]) -> Vec<FileRecord> {
    files
        .into_iter()
        .map(|mut f| {
            if let Some(l) = legacy.iter().find(|l| l.filename == f.filename) {
                f.upload_time = f.upload_time.or_else(|| l.upload_time.clone());
                f.sha256 = f.sha256.or_else(|| l.sha256.clone());
                f.provenance = f.provenance.or_else(|| l.provenance.clone());
            }
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_html_pages_list_their_files() {
        let index = super::super::pypi();
        let url = Url::parse("https://pypi.org/simple/pkg/").unwrap();
        let json = br#"{"meta":{"api-version":"1.1"},"name":"pkg","files":[
            {"filename":"pkg-1.0.tar.gz","url":"https://files.pythonhosted.org/p/pkg-1.0.tar.gz",
             "hashes":{"sha256":"AB12"},"upload-time":"2026-01-01T00:00:00Z","yanked":"bad"},
            {"filename":"pkg-2.0.tar.gz","url":"x","hashes":{}}]}"#;
        let files = files_of_page(&index, &url, PageFormat::JsonV1, json).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].sha256.as_deref(), Some("ab12"));
        assert_eq!(
            files[0].upload_time.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert!(files[0].yanked && !files[1].yanked);
        let html = br#"<a href="https://files.pythonhosted.org/p/pkg-1.0.tar.gz#sha256=ab12">x</a>
            <a href="https://evil.example/pkg-3.0.tar.gz">y</a>"#;
        let files = files_of_page(&index, &url, PageFormat::Html, html).unwrap();
        assert_eq!(files.len(), 1);
        assert!(!files[0].quarantined);
        assert_eq!(files[0].filename, "pkg-1.0.tar.gz");
        assert_eq!(files[0].upload_time, None);
        let legacy = br#"{"info":{},"urls":[],"releases":{"1.0":[{"filename":"pkg-1.0.tar.gz",
            "upload_time_iso_8601":"2026-01-01T00:00:00.000000Z","digests":{"sha256":"AB12"}}]}}"#;
        let legacy = files_of_legacy_json(legacy).unwrap();
        let merged = with_legacy_times(files, &legacy);
        assert_eq!(
            merged[0].upload_time.as_deref(),
            Some("2026-01-01T00:00:00.000000Z")
        );
        assert_eq!(merged[0].sha256.as_deref(), Some("ab12"));
    }

    #[test]
    fn provenance_urls_are_resolved_and_kept_on_the_index_hosts_only() {
        let index = super::super::pypi();
        let url = Url::parse("https://pypi.org/simple/pkg/").unwrap();
        let f = "https://files.pythonhosted.org/p/pkg";
        let json = format!(
            r#"{{"meta":{{"api-version":"1.1"}},"name":"pkg","files":[
            {{"filename":"pkg-1.0.tar.gz","url":"{f}-1.0.tar.gz","hashes":{{}},"provenance":"/integrity/pkg/1.0/pkg-1.0.tar.gz/provenance"}},
            {{"filename":"pkg-2.0.tar.gz","url":"{f}-2.0.tar.gz","hashes":{{}},"provenance":"https://169.254.169.254/latest"}},
            {{"filename":"pkg-3.0.tar.gz","url":"{f}-3.0.tar.gz","hashes":{{}},"provenance":"http://pypi.org/p"}},
            {{"filename":"pkg-4.0.tar.gz","url":"{f}-4.0.tar.gz","hashes":{{}}}}]}}"#
        );
        let files = files_of_page(&index, &url, PageFormat::JsonV1, json.as_bytes()).unwrap();
        let prov: Vec<Option<&str>> = files.iter().map(|f| f.provenance.as_deref()).collect();
        assert_eq!(
            prov,
            [
                Some("https://pypi.org/integrity/pkg/1.0/pkg-1.0.tar.gz/provenance"),
                None,
                None,
                None
            ]
        );
        let html = format!(
            r#"<a href="{f}-1.0.tar.gz" data-provenance="https://pypi.org/integrity/x">a</a>
            <a href="{f}-2.0.tar.gz" data-provenance="https://evil.example/x">b</a>"#
        );
        let files = files_of_page(&index, &url, PageFormat::Html, html.as_bytes()).unwrap();
        assert_eq!(
            files[0].provenance.as_deref(),
            Some("https://pypi.org/integrity/x")
        );
        assert_eq!(files[1].provenance, None);
    }
}
