//! PEP 691 JSON project pages: typed serde in, typed serde out, only the keys PEP 691/700/714/740
//! and 792 define. Pages are read as a stream (`stream.rs`); a whole page is one chunk of it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize, Serializer};
use url::Url;

use super::link;
use crate::rules::FileRecord;
use crate::{Index, RewriteError};

mod stream;
mod value;
pub(crate) mod walk;
mod write;

pub(crate) use stream::JsonStream;

#[derive(Deserialize, Default)]
struct Meta<'a> {
    #[serde(borrow, default, rename = "api-version")]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "project-status")]
    project_status: Option<Status<'a>>,
    #[serde(borrow, default)]
    tracks: Option<Vec<Cow<'a, str>>>,
}

/// PEP 792 status: an object `{status, reason}`; a bare string is read too.
#[derive(Deserialize, Serialize, Clone, Debug)]
#[serde(untagged)]
enum Status<'a> {
    Full {
        #[serde(borrow)]
        status: Cow<'a, str>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        reason: Option<Cow<'a, str>>,
    },
    Bare(#[serde(borrow)] Cow<'a, str>),
}

impl Status<'_> {
    fn quarantined(&self) -> bool {
        let s = match self {
            Status::Full { status, .. } | Status::Bare(status) => status,
        };
        s.trim().eq_ignore_ascii_case("quarantined")
    }

    /// The status and its reason, as an HTML head writes them.
    fn parts(&self) -> (&str, Option<&str>) {
        match self {
            Status::Full { status, reason } => (status.trim(), reason.as_deref()),
            Status::Bare(status) => (status.trim(), None),
        }
    }

    /// The status with its strings copied out of the page, to outlive the chunk it came in.
    fn into_owned(self) -> Status<'static> {
        match self {
            Status::Full { status, reason } => Status::Full {
                status: Cow::Owned(status.into_owned()),
                reason: reason.map(|r| Cow::Owned(r.into_owned())),
            },
            Status::Bare(status) => Status::Bare(Cow::Owned(status.into_owned())),
        }
    }
}

#[derive(Deserialize)]
struct File<'a> {
    #[serde(borrow)]
    filename: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "pairs")]
    hashes: Pairs<'a>,
    #[serde(
        borrow,
        default,
        rename = "requires-python",
        deserialize_with = "borrowed"
    )]
    requires_python: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    yanked: Option<Yanked<'a>>,
    #[serde(borrow, default, rename = "core-metadata")]
    core_metadata: Option<Flag<'a>>,
    #[serde(borrow, default, rename = "dist-info-metadata")]
    dist_info_metadata: Option<Flag<'a>>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(borrow, default, rename = "upload-time", deserialize_with = "borrowed")]
    upload_time: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    provenance: Option<Cow<'a, str>>,
}

/// `yanked`: `false`/`true` or the reason (PEP 592/691).
#[derive(Serialize)]
#[serde(untagged)]
enum Yanked<'a> {
    Flag(bool),
    Reason(Cow<'a, str>),
}

impl Yanked<'_> {
    fn is_yanked(&self) -> bool {
        !matches!(self, Yanked::Flag(false))
    }

    /// The `data-yanked` value: the reason, or empty.
    fn attribute(&self) -> Option<&str> {
        match self {
            Yanked::Flag(false) => None,
            Yanked::Flag(true) => Some(""),
            Yanked::Reason(r) => Some(r),
        }
    }
}

/// `core-metadata`: `true`/`false` or a hashes dict (PEP 658/714).
enum Flag<'a> {
    Bool(bool),
    Hashes(Pairs<'a>),
}

// Hand-written visitors instead of `#[serde(untagged)]`, which buffers every value into an
// owned intermediate form before trying each variant; these run once per file of a page.
impl<'de: 'a, 'a> Deserialize<'de> for Yanked<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Yanked<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a boolean or a reason string")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Yanked::Flag(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Yanked::Reason(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Yanked::Reason(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Flag<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Flag<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a boolean or a map of hash names to digests")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Flag::Bool(v))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                m: M,
            ) -> Result<Self::Value, M::Error> {
                PairsVisitor.visit_map(m).map(Flag::Hashes)
            }
        }
        d.deserialize_any(V)
    }
}

/// A string borrowed from the page where it has no escapes. serde borrows a `#[serde(borrow)]`
/// `Cow<str>` field but not one inside an `Option` or a map: those would be copied, one
/// allocation per hash and per optional string of every file.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// An optional string, borrowed as [`Str`] is.
fn borrowed<'de, D>(d: D) -> Result<Option<Cow<'de, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<Str<'de>>::deserialize(d)?.map(|s| s.0))
}

/// A hash dict, read as name and digest pairs (no map per file) and written back as an object,
/// borrowed from the body where it has no escapes. The first pair is held inline (a file of PyPI's has one, sha256): reading a file allocates nothing.
#[derive(Default)]
struct Pairs<'a> {
    first: Option<(Cow<'a, str>, Cow<'a, str>)>,
    more: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Pairs<'a> {
    fn push(&mut self, pair: (Cow<'a, str>, Cow<'a, str>)) {
        match self.first {
            None => self.first = Some(pair),
            Some(_) => self.more.push(pair),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(Cow<'a, str>, Cow<'a, str>)> {
        self.first.iter().chain(&self.more)
    }
}

fn pairs<'de, D>(d: D) -> Result<Pairs<'de>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    d.deserialize_map(PairsVisitor)
}

struct PairsVisitor;

impl<'de> serde::de::Visitor<'de> for PairsVisitor {
    type Value = Pairs<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map of hash names to digests")
    }
    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
        let mut out = Pairs::default();
        while let Some((Str(k), Str(v))) = m.next_entry::<Str<'de>, Str<'de>>()? {
            out.push((k, v));
        }
        Ok(out)
    }
}

/// A hash dict as written: the pairs the link rule accepts, read off the page's own.
struct HashesOut<'a>(&'a Pairs<'a>);

impl<'a> HashesOut<'a> {
    fn valid(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0
            .iter()
            .filter(|(k, v)| link::valid_hash(k, v))
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
    }
}

impl<'a> HashesOut<'a> {
    /// The sha256 digest, if the page gave a valid one.
    fn sha256(&self) -> Option<&'a str> {
        self.valid().find(|(k, _)| *k == "sha256").map(|(_, v)| v)
    }

    /// The hash an HTML link carries in its fragment: sha256 when given, else the first.
    fn fragment(&self) -> Option<(&'a str, &'a str)> {
        self.valid()
            .find(|(k, _)| *k == "sha256")
            .or_else(|| self.valid().next())
    }
}

impl Serialize for HashesOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.valid())
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum FlagOut<'a> {
    Bool(bool),
    Hashes(HashesOut<'a>),
}

#[derive(Serialize)]
struct MetaOut<'a> {
    #[serde(rename = "api-version")]
    api_version: &'a str,
    #[serde(rename = "project-status", skip_serializing_if = "Option::is_none")]
    project_status: Option<&'a Status<'a>>,
}

/// A file as pipgate writes it. `write::file` writes it (by hand, for speed); the derived
/// serialization is what that must equal, byte for byte (the tests hold it to that).
#[derive(Serialize)]
struct FileOut<'a> {
    filename: &'a str,
    url: Cow<'a, str>,
    hashes: HashesOut<'a>,
    #[serde(rename = "requires-python", skip_serializing_if = "Option::is_none")]
    requires_python: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    yanked: Option<&'a Yanked<'a>>,
    // Only the PEP 714 name: pip 23.0/23.1 crash on a dict under `dist-info-metadata`.
    #[serde(rename = "core-metadata", skip_serializing_if = "Option::is_none")]
    core_metadata: Option<FlagOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(rename = "upload-time", skip_serializing_if = "Option::is_none")]
    upload_time: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<String>,
}

impl FlagOut<'_> {
    /// The `data-core-metadata` value: `true`, or the first hash as `name=hex`, written into
    /// `buf` (one buffer for every file of a page).
    fn attribute<'b>(&self, buf: &'b mut String) -> Option<&'b str> {
        buf.clear();
        match self {
            FlagOut::Bool(true) => buf.push_str("true"),
            FlagOut::Bool(false) => return None,
            FlagOut::Hashes(h) => {
                let (k, v) = h.fragment()?;
                buf.push_str(k);
                buf.push('=');
                buf.push_str(v);
            }
        }
        Some(buf)
    }
}

fn file_out<'a>(index: &Index, page_url: &Url, f: &'a File<'a>) -> Option<FileOut<'a>> {
    // PEP 691: URLs may be relative to the page URL. A link must still name a file (rule 5),
    // even though JSON carries the name separately; its fragment is not passed on (hashes are).
    let url = link::check(index, Some(page_url), &f.url)?.url;
    if !link::valid_filename(&f.filename) {
        return None;
    }
    let core_metadata = f
        .core_metadata
        .as_ref()
        .or(f.dist_info_metadata.as_ref())
        .map(|m| match m {
            Flag::Bool(b) => FlagOut::Bool(*b),
            Flag::Hashes(h) => FlagOut::Hashes(HashesOut(h)),
        });
    let provenance = f
        .provenance
        .as_deref()
        .and_then(|p| link::resolve(page_url, p))
        .filter(|p| link::allowed(index, p))
        .map(String::from);
    Some(FileOut {
        filename: &f.filename,
        url,
        hashes: HashesOut(&f.hashes),
        requires_python: f.requires_python.as_deref(),
        yanked: f.yanked.as_ref(),
        core_metadata,
        size: f.size,
        upload_time: f.upload_time.as_deref(),
        provenance,
    })
}

/// The files of a whole JSON project page as facts for the file rules (a direct download is
/// judged by its page), each marked quarantined when the page's PEP 792 status says so.
pub(crate) fn records(body: &[u8]) -> Result<Vec<FileRecord>, RewriteError> {
    #[derive(Deserialize)]
    struct Whole<'a> {
        #[serde(borrow, default)]
        files: Vec<File<'a>>,
        #[serde(borrow, default)]
        meta: Option<Meta<'a>>,
        #[serde(borrow, default, rename = "project-status")]
        project_status: Option<Status<'a>>,
    }
    let page: Whole<'_> = serde_json::from_slice(body)?;
    let meta_status = page.meta.as_ref().and_then(|m| m.project_status.as_ref());
    let quarantined = page
        .project_status
        .as_ref()
        .or(meta_status)
        .is_some_and(Status::quarantined);
    Ok(page
        .files
        .iter()
        .filter(|f| link::valid_filename(&f.filename))
        .map(|f| FileRecord {
            filename: f.filename.clone().into_owned(),
            upload_time: f.upload_time.clone().map(Cow::into_owned),
            sha256: HashesOut(&f.hashes).sha256().map(str::to_ascii_lowercase),
            yanked: f.yanked.as_ref().is_some_and(Yanked::is_yanked),
            quarantined,
            provenance: f.provenance.clone().map(Cow::into_owned),
            attestation: None,
        })
        .collect())
}

/// PEP 708 `meta.tracks` of a JSON page.
pub(crate) fn tracks(page_url: &Url, body: &[u8]) -> Result<Vec<Url>, RewriteError> {
    #[derive(Deserialize)]
    struct TracksOnly<'a> {
        #[serde(borrow, default)]
        meta: Option<Meta<'a>>,
    }
    let page: TracksOnly<'_> = serde_json::from_slice(body)?;
    Ok(page
        .meta
        .and_then(|m| m.tracks)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| link::resolve(page_url, t))
        .collect())
}
