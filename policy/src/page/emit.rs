//! Canonical PEP 503 HTML output: everything upstream-controlled is escaped here, once (or, for
//! a file hash, checked to hold nothing but a known name and hex digits).

use super::link;

/// Appends `s` escaped for both text and double-quoted attribute contexts.
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    // Most values (serialized URLs, file names) need no escaping at all: one branch-free
    // pass, which the compiler vectorizes, tells so before anything else is done.
    let special = b.iter().fold(0u8, |any, &c| {
        any | u8::from((c == b'&') | (c == b'<') | (c == b'>') | (c == b'"') | (c == b'\''))
    });
    if special == 0 {
        out.extend_from_slice(b);
    } else if b.len() <= SHORT {
        // Short values with markup (`>=3.8`): a byte loop costs less than setting up searches.
        for &c in b {
            match entity(c) {
                Some(e) => out.extend_from_slice(e),
                None => out.push(c),
            }
        }
    } else {
        escape_long(out, b);
    }
}

/// Up to this length a value that needs escaping is escaped byte by byte (callgrind: two SIMD
/// searches cost about 400 instructions on a 5-byte `>=3.8`).
const SHORT: usize = 64;

/// What a byte is written as, when it is not written as itself.
#[inline]
fn entity(c: u8) -> Option<&'static [u8]> {
    match c {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'"' => Some(b"&quot;"),
        b'\'' => Some(b"&#39;"),
        _ => None,
    }
}

/// Long values with markup jump from one special byte to the next with SIMD searches and copy
/// the runs between them whole. Each search's result is kept until passed, so the work stays
/// linear.
fn escape_long(out: &mut Vec<u8>, b: &[u8]) {
    let find_markup = |from: usize| memchr::memchr3(b'&', b'<', b'>', &b[from..]).map(|i| i + from);
    let find_quote = |from: usize| memchr::memchr2(b'"', b'\'', &b[from..]).map(|i| i + from);
    let (mut markup, mut quote) = (find_markup(0), find_quote(0));
    let mut last = 0;
    loop {
        let at = match (markup, quote) {
            (Some(m), Some(q)) => m.min(q),
            (Some(m), None) => m,
            (None, Some(q)) => q,
            (None, None) => break,
        };
        out.extend_from_slice(&b[last..at]);
        out.extend_from_slice(entity(b[at]).unwrap_or_default());
        last = at + 1;
        if markup == Some(at) {
            markup = find_markup(last);
        } else {
            quote = find_quote(last);
        }
    }
    out.extend_from_slice(&b[last..]);
}

/// The page head: doctype, repository version, optional PEP 792 status, title and heading.
pub(crate) fn head(
    out: &mut Vec<u8>,
    version: &str,
    status: Option<(&str, Option<&str>)>,
    title: &str,
) {
    out.extend_from_slice(
        b"<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"",
    );
    escape_into(out, version);
    out.extend_from_slice(b"\">\n");
    if let Some((status, reason)) = status {
        out.extend_from_slice(b"<meta name=\"pypi:project-status\" content=\"");
        escape_into(out, status);
        out.extend_from_slice(b"\">\n");
        if let Some(reason) = reason {
            out.extend_from_slice(b"<meta name=\"pypi:project-status-reason\" content=\"");
            escape_into(out, reason);
            out.extend_from_slice(b"\">\n");
        }
    }
    out.extend_from_slice(b"<title>");
    escape_into(out, title);
    out.extend_from_slice(b"</title>\n</head>\n<body>\n<h1>");
    escape_into(out, title);
    out.extend_from_slice(b"</h1>\n");
}

/// Closes what [`head`] opened.
pub(crate) fn tail(out: &mut Vec<u8>) {
    out.extend_from_slice(b"</body>\n</html>\n");
}

/// One `<a>`: the URL and attribute values are escaped; `attrs` names are ours (static), and an
/// attribute without a value is left out. `hash` is one [`link::valid_hash`] accepted (a name
/// of pipgate's list and hex digits), so it is written as it is.
pub(crate) fn anchor(
    out: &mut Vec<u8>,
    url: &str,
    hash: Option<(&str, &str)>,
    attrs: &[(&'static str, Option<&str>)],
    text: &str,
) {
    out.extend_from_slice(b"<a href=\"");
    escape_into(out, url);
    if let Some((name, hex)) = hash {
        debug_assert!(link::valid_hash(name, hex), "unchecked hash {name}={hex}");
        out.push(b'#');
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(hex.as_bytes());
    }
    out.push(b'"');
    for (name, value) in attrs {
        let Some(value) = value else { continue };
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_into(out, value);
        out.push(b'"');
    }
    out.push(b'>');
    escape_into(out, text);
    out.extend_from_slice(b"</a><br/>\n");
}

/// A PEP 691/629 API version string we can pass on: `1.<digits>`.
pub(crate) fn is_v1(version: &str) -> bool {
    version
        .strip_prefix("1.")
        .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_markup() {
        let markup = r#"<a href="x">&'"#;
        let want = "&lt;a href=&quot;x&quot;&gt;&amp;&#39;";
        // Short, long (past `SHORT`), and clean values take different paths.
        for n in [1, 10] {
            let mut out = Vec::new();
            escape_into(&mut out, &format!("é{}", markup.repeat(n)));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("é{}", want.repeat(n))
            );
        }
        let mut out = Vec::new();
        escape_into(&mut out, "https://h/x-1.0.tar.gz é");
        assert_eq!(String::from_utf8(out).unwrap(), "https://h/x-1.0.tar.gz é");
    }

    #[test]
    fn anchor_shape() {
        let mut out = Vec::new();
        anchor(
            &mut out,
            "https://h/x-1.tar.gz",
            Some(("sha256", "ab")),
            &[
                ("data-requires-python", Some(">=3.8")),
                ("data-yanked", None),
            ],
            "x-1.tar.gz",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<a href=\"https://h/x-1.tar.gz#sha256=ab\" data-requires-python=\"&gt;=3.8\">x-1.tar.gz</a><br/>\n"
        );
    }

    #[test]
    fn versions() {
        assert!(is_v1("1.0"));
        assert!(is_v1("1.12"));
        assert!(!is_v1("2.0"));
        assert!(!is_v1("1."));
        assert!(!is_v1("1.x"));
    }
}
