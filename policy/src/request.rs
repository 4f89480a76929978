//! Request classification: which door to which project a request path is (issue rule 1).

use std::borrow::Cow;

use percent_encoding::percent_decode;

use crate::{
    filename::{looks_like_distribution, projects_of},
    index::canonical_host,
    Index, Name, PathError, Policy,
};

/// What a request on an intercepted host asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target<'p> {
    /// The index's root listing (`/simple/`).
    Root {
        /// The index.
        index: &'p Index,
    },
    /// A project page (`/simple/<name>/`, HTML or JSON).
    Project {
        /// The index.
        index: &'p Index,
        /// The normalized project name.
        name: Name,
    },
    /// The legacy JSON API (`/pypi/<name>/json`, `/pypi/<name>/<version>/json`).
    LegacyJson {
        /// The index.
        index: &'p Index,
        /// The normalized project name.
        name: Name,
        /// The version, when the path names one.
        version: Option<String>,
    },
    /// A file download (any path on a file host, or a distribution name on an index host).
    File {
        /// The index the host belongs to.
        index: &'p Index,
        /// The last path segment, percent-decoded.
        filename: String,
        /// Every project the file name can be read as, the likeliest first; empty when it does
        /// not parse (see `filename.rs`: a file is private when any of them is).
        projects: Vec<Name>,
        /// Whether this is a PEP 658 `.metadata` file.
        metadata: bool,
    },
    /// Anything else on an index host.
    Other {
        /// The index.
        index: &'p Index,
    },
}

impl<'p> Target<'p> {
    /// The index the request goes to.
    pub fn index(&self) -> &'p Index {
        match self {
            Target::Root { index }
            | Target::Project { index, .. }
            | Target::LegacyJson { index, .. }
            | Target::File { index, .. }
            | Target::Other { index } => index,
        }
    }

    /// The project the request is about, if any (for a file, its likeliest reading).
    pub fn name(&self) -> Option<&Name> {
        self.names().first()
    }

    /// Every project the request may be about: one for a page, every reading of a file's name.
    pub fn names(&self) -> &[Name] {
        match self {
            Target::Project { name, .. } | Target::LegacyJson { name, .. } => {
                std::slice::from_ref(name)
            }
            Target::File { projects, .. } => projects,
            Target::Root { .. } | Target::Other { .. } => &[],
        }
    }
}

impl Policy {
    /// Classifies a request for `host` (no port) with the request-target `path_and_query`.
    ///
    /// The path is percent-decoded segment by segment; empty segments (doubled or trailing
    /// slashes) are ignored and the query and fragment play no part. Anything that could make
    /// upstream see a different path than we decided on (dot segments, encoded slashes, bad
    /// escapes, non-UTF-8) is refused rather than guessed at.
    pub fn classify(&self, host: &str, path_and_query: &str) -> Result<Target<'_>, PathError> {
        let canonical = canonical_host(host).ok_or(PathError::UnknownHost)?;
        let (index, on_index_host) = match self.index_by_own_host(&canonical) {
            Some(i) => (i, true),
            None => (
                self.index_for_host(&canonical)
                    .ok_or(PathError::UnknownHost)?,
                false,
            ),
        };
        let segments = decode_path(path_and_query)?;
        if !on_index_host {
            // A directory path names no file, whatever its last segment is.
            let dir = path_and_query
                .split(['?', '#'])
                .next()
                .is_some_and(|p| p.ends_with('/'));
            let last = if dir { None } else { segments.last() };
            return Ok(file_target(index, last));
        }
        // The segments after the index's own path prefix, when the path is under it.
        let prefix = index.url().path_segments().into_iter().flatten();
        let under = prefix
            .filter(|s| !s.is_empty())
            .try_fold(&segments[..], |rest, p| match rest.split_first() {
                Some((first, rest)) if first == p => Some(rest),
                _ => None,
            });
        if let Some(rest) = under {
            match rest {
                [] => return Ok(Target::Root { index }),
                [name] => {
                    return Ok(Target::Project {
                        index,
                        name: project_name(name)?,
                    })
                }
                _ => {}
            }
        }
        match segments.as_slice() {
            [p, name, json] if p == "pypi" && json == "json" => {
                return Ok(Target::LegacyJson {
                    index,
                    name: project_name(name)?,
                    version: None,
                })
            }
            [p, name, version, json] if p == "pypi" && json == "json" => {
                return Ok(Target::LegacyJson {
                    index,
                    name: project_name(name)?,
                    version: Some(version.to_string()),
                })
            }
            _ => {}
        }
        // Private indexes commonly serve their files from their own host (devpi, pypiserver);
        // a distribution-looking name there is a file download, checked like one.
        match segments.last() {
            Some(last) if looks_like_distribution(last) => Ok(file_target(index, Some(last))),
            _ => Ok(Target::Other { index }),
        }
    }
}

fn file_target<'i>(index: &'i Index, last: Option<&Cow<'_, str>>) -> Target<'i> {
    let filename = last.map(|l| l.to_string()).unwrap_or_default();
    let (projects, metadata) = projects_of(&filename);
    Target::File {
        index,
        filename,
        projects,
        metadata,
    }
}

fn project_name(raw: &str) -> Result<Name, PathError> {
    let name = Name::new(raw);
    if name.is_valid() {
        Ok(name)
    } else {
        Err(PathError::BadName)
    }
}

/// Splits the path of a request-target into percent-decoded, non-empty segments (borrowed from
/// it where nothing was escaped: a request costs no allocation per segment).
pub(crate) fn decode_path(path_and_query: &str) -> Result<Vec<Cow<'_, str>>, PathError> {
    let path = path_and_query.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let segments = || path.split('/').filter(|s| !s.is_empty());
    let mut out = Vec::with_capacity(segments().count());
    for raw in segments() {
        out.push(decode_segment(raw)?);
    }
    Ok(out)
}

fn decode_segment(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let b = raw.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !hex(i + 1) || !hex(i + 2) {
                return Err(PathError::BadEscape);
            }
            let esc = &raw[i + 1..i + 3];
            if esc.eq_ignore_ascii_case("2f") || esc.eq_ignore_ascii_case("5c") {
                return Err(PathError::EncodedSlash);
            }
        }
    }
    let decoded = percent_decode(b)
        .decode_utf8()
        .map_err(|_| PathError::NotUtf8)?;
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathError::BadChar);
    }
    if decoded == "." || decoded == ".." {
        return Err(PathError::DotSegment);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests;
