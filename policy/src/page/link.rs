//! The link rule (issue rule 5): which resolved URLs an index page may offer.

use std::borrow::Cow;

use url::{Position, Url};

use crate::Index;

/// A link that passed the rule, in the canonical form pipgate emits.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Checked<'a> {
    /// The absolute URL without its fragment, as the `url` crate serializes it.
    pub url: Cow<'a, str>,
    /// The last path segment, percent-decoded.
    pub filename: Cow<'a, str>,
    /// A `<name>=<hex>` fragment pip reads as the file's hash; always one [`valid_hash`]
    /// accepts (the emitter writes it unescaped).
    pub hash: Option<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Resolves `href` against `base` (or takes it as absolute when there is no usable base) and
/// applies the link rule. `None` when the link must be dropped.
pub(crate) fn check<'a>(index: &Index, base: Option<&Url>, href: &'a str) -> Option<Checked<'a>> {
    let href = href.trim_matches(|c: char| c.is_ascii_whitespace());
    if let Some(fast) = canonical(index, href) {
        return Some(fast);
    }
    if plainly_elsewhere(index, href) {
        return None;
    }
    let url = match base {
        Some(b) => resolve(b, href)?,
        None => Url::parse(href).ok()?,
    };
    if !allowed(index, &url) {
        return None;
    }
    let filename = filename(&url)?;
    let hash =
        hash_fragment(&url).map(|(n, v)| (Cow::Owned(n.to_owned()), Cow::Owned(v.to_owned())));
    Some(Checked {
        url: Cow::Owned(url[..Position::AfterQuery].to_owned()),
        filename: Cow::Owned(filename),
        hash,
    })
}

/// An absolute https URL whose authority is a plain lower-case host name (no userinfo, port or
/// escapes, so it is the host a URL parser finds) that is not allowed: dropped without parsing.
fn plainly_elsewhere(index: &Index, href: &str) -> bool {
    let Some(rest) = href.strip_prefix("https://") else {
        return false;
    };
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'\\' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let host = &rest[..end];
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    // A last label that is a number makes the whole host an IPv4 address to a URL parser.
    let last = host
        .strip_suffix('.')
        .unwrap_or(host)
        .rsplit('.')
        .next()
        .unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
    plain && !numeric && host != index.host() && !index.is_file_host(host)
}

/// Whether every byte is one the `url` crate leaves untouched in the path of a special URL (no
/// percent-encoding, no backslash-to-slash, no query or fragment start): ASCII letters and
/// digits and `-._~/%!$&'()*+,;=:@`.
///
/// Written as range compares folded without an early exit, which the compiler turns into
/// straight-line code; lookup tables with a branch per byte took 1.7 to 6 times the
/// instructions in these checks (callgrind, page benches).
#[cfg(test)]
fn canonical_path_bytes(p: &[u8]) -> bool {
    scan_path(p).canonical
}

/// What one pass over a URL path finds.
struct PathScan {
    /// Every byte is one [`canonical_path_bytes`] accepts.
    canonical: bool,
    /// A `%` occurs.
    percent: bool,
    /// A `/` is followed by a `.` (where a dot segment could start).
    slash_dot: bool,
}

/// The path checks of [`canonical`] in one pass: byte flags are accumulated as integers with
/// no early exit, which the compiler vectorizes (`bool` accumulators were not).
fn scan_path(p: &[u8]) -> PathScan {
    let (mut bad, mut percent) = (0u8, 0u8);
    for &b in p {
        let ok = (b == b'!')
            | (b.wrapping_sub(b'$') <= b';' - b'$')
            | (b == b'=')
            | (b.wrapping_sub(b'@') <= b'Z' - b'@')
            | (b == b'_')
            | (b.wrapping_sub(b'a') <= b'z' - b'a')
            | (b == b'~');
        bad |= u8::from(!ok);
        percent |= u8::from(b == b'%');
    }
    let next = p.get(1..).unwrap_or_default();
    let slash_dot = p.iter().zip(next).fold(0u8, |any, (&a, &b)| {
        any | u8::from((a == b'/') & (b == b'.'))
    });
    PathScan {
        canonical: bad == 0,
        percent: percent != 0,
        slash_dot: slash_dot != 0,
    }
}

/// Whether every byte is an ASCII hex digit (folded as above).
fn hex_bytes(v: &[u8]) -> bool {
    v.iter().fold(true, |ok, &b| {
        ok & ((b.wrapping_sub(b'0') <= 9) | ((b | 0x20).wrapping_sub(b'a') <= 5))
    })
}

/// The fast path for the overwhelmingly common link: an absolute `https://` URL to an allowed
/// host on the default port, already in canonical form, so it is emitted verbatim.
///
/// It accepts only strings the `url` crate would serialize unchanged (tested against it), and
/// declines everything else to [`check`]'s full resolution: relative links, ports, userinfo,
/// queries, dot segments (raw or `%2e`), non-ASCII, and fragments other than a hash.
fn canonical<'a>(index: &Index, href: &'a str) -> Option<Checked<'a>> {
    let rest = href.strip_prefix("https://")?;
    let host_end = memchr::memchr(b'/', rest.as_bytes())?;
    let host = &rest[..host_end];
    let host_ok = (host == index.host() && index.port() == 443 && !index.is_http())
        || index.is_file_host(host);
    if !host_ok {
        return None;
    }
    let after = &rest[host_end..];
    let (path, fragment) = match memchr::memchr(b'#', after.as_bytes()) {
        Some(i) => (&after[..i], Some(&after[i + 1..])),
        None => (after, None),
    };
    let p = path.as_bytes();
    let scan = scan_path(p);
    if !scan.canonical {
        return None;
    }
    // Dot segments, raw or percent-encoded, are normalized by a URL parser: decline them.
    let dot_escape = scan.percent
        && p.windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'2' && (w[2] | 0x20) == b'e');
    // Only a dot right after a slash can start one (file names have dots of their own).
    let dot_segment = scan.slash_dot && path.split('/').any(|seg| seg == "." || seg == "..");
    if dot_escape || dot_segment {
        return None;
    }
    let hash = match fragment {
        None => None,
        Some(f) => {
            let (n, v) = f.split_once('=')?;
            if !valid_hash(n, v) {
                return None;
            }
            Some((Cow::Borrowed(n), Cow::Borrowed(v)))
        }
    };
    let last = &path[memchr::memrchr(b'/', p).map_or(0, |i| i + 1)..];
    let filename = if scan.percent && last.contains('%') {
        let decoded = percent_encoding::percent_decode_str(last)
            .decode_utf8()
            .ok()?;
        valid_filename(&decoded).then_some(decoded)?
    } else {
        // Canonical path bytes are printable ASCII without `\`, the segment has no `/`, and
        // dot segments were declined: only an empty name is left to refuse.
        debug_assert!(last.is_empty() || valid_filename(last));
        (!last.is_empty()).then_some(Cow::Borrowed(last))?
    };
    Some(Checked {
        url: Cow::Borrowed(&href[..href.len() - fragment.map_or(0, |f| f.len() + 1)]),
        filename,
        hash,
    })
}

/// Hash names pip understands in a `#<name>=<hex>` fragment.
const HASH_NAMES: &[&str] = &[
    "sha256", "sha384", "sha512", "sha224", "sha1", "md5", "blake2b",
];

/// Resolves `href` against `base` the way pip and browsers do: surrounding ASCII whitespace is
/// not part of the URL. `None` when it does not resolve.
pub(crate) fn resolve(base: &Url, href: &str) -> Option<Url> {
    let href = href.trim_matches(|c: char| c.is_ascii_whitespace());
    if href.is_empty() {
        return None;
    }
    base.join(href).ok()
}

/// Whether a resolved URL may be served from a page of `index`.
///
/// https only (http only when the index itself is configured as http, and only to the index's
/// own host and port), no credentials, and the host must be the index host (on its port) or one
/// of its file hosts (on 443 or the index's port).
pub(crate) fn allowed(index: &Index, url: &Url) -> bool {
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let port = url.port_or_known_default();
    let on_index = host == index.host() && port == Some(index.port());
    match url.scheme() {
        "https" => {
            on_index
                || (index.is_file_host(host) && (port == Some(443) || port == Some(index.port())))
        }
        "http" => index.is_http() && on_index,
        _ => false,
    }
}

/// The file name a URL offers: its last path segment, percent-decoded. `None` for directory
/// links, undecodable names, or names a file system would not take.
pub(crate) fn filename(url: &Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?;
    if last.is_empty() {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(last)
        .decode_utf8()
        .ok()?;
    valid_filename(&decoded).then(|| decoded.into_owned())
}

/// A file name is one non-empty path component without control characters.
pub(crate) fn valid_filename(name: &str) -> bool {
    // Printable ASCII (space included) but for the separators, folded as above.
    let plain = name.bytes().fold(true, |ok, b| {
        ok & (b.wrapping_sub(b' ') <= b'~' - b' ') & (b != b'/') & (b != b'\\')
    });
    !name.is_empty()
        && name != "."
        && name != ".."
        && (plain || (!name.contains(['/', '\\']) && !name.chars().any(char::is_control)))
}

/// The `<name>=<hex>` hash of a URL fragment, when it is one pip would read.
pub(crate) fn hash_fragment(url: &Url) -> Option<(&str, &str)> {
    let (name, value) = url.fragment()?.split_once('=')?;
    valid_hash(name, value).then_some((name, value))
}

/// A hash entry worth passing on: a known algorithm and a hex digest.
pub(crate) fn valid_hash(name: &str, value: &str) -> bool {
    !value.is_empty() && hex_bytes(value.as_bytes()) && HASH_NAMES.contains(&name)
}

/// The tokens of a `rel` attribute that make pip (before 8.0) treat an anchor as an external
/// page to scrape rather than a file.
pub(crate) fn is_external_rel(rel: &str) -> bool {
    rel.split(|c: char| c.is_ascii_whitespace())
        .any(|t| t.eq_ignore_ascii_case("download") || t.eq_ignore_ascii_case("homepage"))
}

#[cfg(test)]
mod tests;
