//! HTML project pages: anchors that pass the link rule become canonical PEP 503 anchors.

use url::Url;

use super::html::{Anchor, Parsed};
use super::{emit, link};
use crate::Index;

/// Writes the canonical anchor of a link that passed, with what survives of its attributes.
pub(crate) fn emit_file(out: &mut Vec<u8>, parsed: &Parsed, a: &Anchor, f: &FileLink<'_>) {
    let attrs = [
        ("data-requires-python", parsed.opt(&a.requires_python)),
        ("data-yanked", parsed.opt(&a.yanked)),
        ("data-core-metadata", f.core_metadata),
        ("data-provenance", f.provenance.as_ref().map(Url::as_str)),
    ];
    let hash = f.link.hash.as_ref().map(|(alg, hex)| (&**alg, &**hex));
    emit::anchor(out, &f.link.url, hash, &attrs, &f.link.filename);
}

/// A link that passed the rule, with what survives of its attributes.
pub(crate) struct FileLink<'a> {
    link: link::Checked<'a>,
    core_metadata: Option<&'a str>,
    provenance: Option<Url>,
}

impl FileLink<'_> {
    /// The provenance URL that survives the link rule, if any.
    pub(crate) fn provenance(&self) -> Option<&str> {
        self.provenance.as_ref().map(Url::as_str)
    }

    /// The file name the link offers.
    pub(crate) fn filename(&self) -> &str {
        &self.link.filename
    }

    /// The sha256 the link's fragment gives, if any.
    pub(crate) fn sha256(&self) -> Option<&str> {
        match &self.link.hash {
            Some((alg, hex)) if alg == "sha256" => Some(hex),
            _ => None,
        }
    }
}

pub(crate) fn file_link<'a>(
    index: &Index,
    base: Option<&Url>,
    parsed: &'a Parsed,
    a: &Anchor,
    href: &'a str,
) -> Option<FileLink<'a>> {
    if parsed.opt(&a.rel).is_some_and(link::is_external_rel) {
        return None;
    }
    let resolve = |s: &str| match base {
        Some(b) => link::resolve(b, s),
        None => Url::parse(s.trim_matches(|c: char| c.is_ascii_whitespace())).ok(),
    };
    let link = link::check(index, base, href)?;
    // PEP 714: data-core-metadata wins; the old name is read only when the new one is absent.
    let core_metadata = parsed
        .opt(&a.core_metadata)
        .or_else(|| parsed.opt(&a.dist_info_metadata))
        .map(str::trim)
        .filter(|v| valid_metadata_flag(v));
    let provenance = parsed
        .opt(&a.provenance)
        .and_then(resolve)
        .filter(|p| link::allowed(index, p));
    Some(FileLink {
        link,
        core_metadata,
        provenance,
    })
}

/// `true` or `<hash-name>=<hex>` (PEP 658); anything else is not passed on.
fn valid_metadata_flag(v: &str) -> bool {
    v == "true"
        || v.split_once('=')
            .is_some_and(|(n, h)| link::valid_hash(n, h))
}
