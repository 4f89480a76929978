//! The legacy JSON API (`/pypi/<name>/json`): metadata kept, file entries filtered by the link
//! rule.
//!
//! The document is walked with serde's visitors, and each file entry is filtered and written
//! as soon as it is read: only one entry at a time is a `serde_json::Value`, never the whole
//! document. (Parsed whole, a 24 MB document of 30,000 files took 163 MB and 210 ms; walked,
//! 74 MB and 125 ms.) The output is what serializing the parsed document gave: `info` (keys
//! sorted), `last_serial` and `vulnerabilities` when present and not null, the kept `urls`,
//! and `releases` sorted by key, a repeated key's last value winning as in a parsed object.
//! Other top-level keys are dropped; `info.download_url` is kept only when it passes the link
//! rule. Two refusals are stricter than the parse was: a bad entry
//! under a version that appears again later fails the page, and so does a top-level array.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use url::Url;

use super::{link, Rewritten, Summary};
use crate::rules::{FileFacts, Judge};
use crate::{Index, RewriteError};

pub(crate) fn rewrite(
    index: &Index,
    page_url: &Url,
    judge: &Judge,
    body: &[u8],
) -> Result<Rewritten, RewriteError> {
    let mut filter = Filter {
        index,
        page_url,
        judge,
        summary: Summary::default(),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut doc = de::Deserializer::deserialize_map(&mut de, Top(&mut filter))?;
    de.end()?;
    // `info.download_url` is a download link (PEP 438's rel="download" of this API): it stays
    // only when it passes the link rule. The other URLs of `info` (home page, project URLs,
    // docs) are metadata no installer downloads from, and are kept as they are.
    let offsite = match doc.info.get("download_url") {
        Some(Value::String(u)) if !u.is_empty() => link::resolve(page_url, u)
            .filter(|u| link::allowed(index, u))
            .is_none(),
        _ => false,
    };
    if offsite {
        doc.info.insert("download_url".to_owned(), Value::Null);
    }

    let releases_len: usize = doc
        .releases
        .iter()
        .flatten()
        .map(|(v, r)| v.len() + r.out.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(doc.urls.len() + releases_len + 4096);
    out.extend_from_slice(b"{\"info\":");
    serde_json::to_writer(&mut out, &doc.info)?;
    for (key, value) in [
        ("last_serial", &doc.last_serial),
        ("vulnerabilities", &doc.vulnerabilities),
    ] {
        if let Some(value) = value {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            serde_json::to_writer(&mut out, value)?;
        }
    }
    out.extend_from_slice(b",\"urls\":");
    out.extend_from_slice(&doc.urls);
    if let Some(releases) = doc.releases {
        out.extend_from_slice(b",\"releases\":{");
        for (i, (version, files)) in releases.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &version)?;
            out.push(b':');
            out.extend_from_slice(&files.out);
        }
        out.push(b'}');
    }
    out.push(b'}');
    let mut summary = filter.summary;
    summary.all_withheld = doc.urls_withheld;
    Ok(Rewritten {
        body: out,
        content_type: "application/json",
        kept: summary.kept,
        dropped: summary.dropped,
        summary,
    })
}

/// The link rule and the file rules over file entries, counting what they keep and drop.
struct Filter<'a> {
    index: &'a Index,
    page_url: &'a Url,
    judge: &'a Judge,
    /// What the entries offered and withheld so far.
    summary: Summary,
}

impl Filter<'_> {
    /// Writes `entry` (after `out`'s `[` or a previous entry) if its URL passes, made absolute.
    fn entry(&mut self, mut entry: Value, out: &mut Vec<u8>) -> Result<(), String> {
        let obj = entry.as_object_mut().ok_or("file entry is not an object")?;
        let url = obj
            .get("url")
            .and_then(Value::as_str)
            .and_then(|u| link::resolve(self.page_url, u))
            .filter(|u| link::allowed(self.index, u) && link::filename(u).is_some());
        let Some(url) = url else {
            self.summary.dropped += 1;
            return Ok(());
        };
        let str_of = |k: &str| obj.get(k).and_then(Value::as_str);
        let facts = FileFacts {
            filename: str_of("filename")
                .or_else(|| url.path_segments().and_then(|mut s| s.next_back()))
                .unwrap_or_default(),
            upload_time: str_of("upload_time_iso_8601"),
            sha256: obj
                .get("digests")
                .and_then(|d| d.get("sha256"))
                .and_then(Value::as_str),
            yanked: obj.get("yanked").and_then(Value::as_bool).unwrap_or(false),
            quarantined: false,
            unlisted: false,
            unknown: false,
            provenance: None,
            attestation: None,
        };
        if !self.summary.offers(self.judge, &facts) {
            return Ok(());
        }
        obj.insert("url".to_owned(), Value::String(url.into()));
        if out.len() > 1 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &entry).map_err(|e| e.to_string())?;
        self.summary.kept += 1;
        Ok(())
    }
}

/// The top-level object, as far as the output needs it.
#[derive(Default)]
struct Doc {
    info: Map<String, Value>,
    last_serial: Option<Value>,
    vulnerabilities: Option<Value>,
    /// The kept entries of `urls`, written: `[...]`.
    urls: Vec<u8>,
    /// Whether a rule withheld every entry of `urls` that the link rule let through.
    urls_withheld: bool,
    releases: Option<BTreeMap<String, Files>>,
}

/// One list of file entries, the kept ones written (`[...]`), with its counts (a version that
/// appears again replaces it, counts included).
struct Files {
    out: Vec<u8>,
    kept: usize,
    dropped: usize,
}

struct Top<'f, 'a>(&'f mut Filter<'a>);

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = Doc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a legacy JSON API document (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let filter = self.0;
        let mut doc = Doc::default();
        // Bits of the known keys seen: each may appear once.
        let mut seen = 0u8;
        let mut once = |bit: u8, key: &'static str| {
            if seen & bit != 0 {
                return Err(de::Error::duplicate_field(key));
            }
            seen |= bit;
            Ok(())
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "info" => {
                    once(1, "info")?;
                    doc.info = map.next_value()?;
                }
                "last_serial" => {
                    once(2, "last_serial")?;
                    doc.last_serial = map.next_value()?;
                }
                "vulnerabilities" => {
                    once(4, "vulnerabilities")?;
                    doc.vulnerabilities = map.next_value()?;
                }
                "urls" => {
                    once(8, "urls")?;
                    let withheld = filter.summary.withheld.enforced();
                    let urls = map.next_value_seed(List(filter))?;
                    doc.urls_withheld =
                        urls.kept == 0 && filter.summary.withheld.enforced() > withheld;
                    doc.urls = urls.out;
                }
                "releases" => {
                    once(16, "releases")?;
                    doc.releases = map.next_value_seed(Releases(filter))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if seen & 1 == 0 {
            return Err(de::Error::missing_field("info"));
        }
        if seen & 8 == 0 {
            return Err(de::Error::missing_field("urls"));
        }
        Ok(doc)
    }
}

/// A list of file entries, filtered as it is read.
struct List<'f, 'a>(&'f mut Filter<'a>);

impl<'de> DeserializeSeed<'de> for List<'_, '_> {
    type Value = Files;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Files, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for List<'_, '_> {
    type Value = Files;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of file entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Files, A::Error> {
        let filter = self.0;
        let (kept, dropped) = (filter.summary.kept, filter.summary.dropped);
        let mut out = vec![b'['];
        while let Some(entry) = seq.next_element::<Value>()? {
            filter.entry(entry, &mut out).map_err(de::Error::custom)?;
        }
        out.push(b']');
        Ok(Files {
            out,
            kept: filter.summary.kept - kept,
            dropped: filter.summary.dropped - dropped,
        })
    }
}

/// `releases`: null, or an object of versions to lists of file entries.
struct Releases<'f, 'a>(&'f mut Filter<'a>);

impl<'de> DeserializeSeed<'de> for Releases<'_, '_> {
    type Value = Option<BTreeMap<String, Files>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Releases<'_, '_> {
    type Value = Option<BTreeMap<String, Files>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of versions to file entries")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let filter = self.0;
        let mut releases = BTreeMap::new();
        while let Some(version) = map.next_key::<String>()? {
            let files = map.next_value_seed(List(filter))?;
            if let Some(earlier) = releases.insert(version, files) {
                // As in a parsed object, the last one counts.
                filter.summary.kept -= earlier.kept;
                filter.summary.dropped -= earlier.dropped;
            }
        }
        Ok(Some(releases))
    }
}

#[cfg(test)]
mod tests;
