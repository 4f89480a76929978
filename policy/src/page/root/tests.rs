//! The streaming root listing against the stored-anchors one it replaced.

use proptest::prelude::*;
use url::Url;

use super::super::{emit, html, PageFormat};
use crate::{Index, Name, Policy, Role, Rules};

fn policy() -> Policy {
    let index = Index::new("pypi", "https://pypi.org/simple/", Role::Public, &[]).unwrap();
    Policy::new(vec![index], Rules::default()).unwrap()
}

fn hidden(n: &Name) -> bool {
    n.as_str() == "corp-x" || n.as_str().starts_with("priv")
}

/// The previous implementation, verbatim in effect: parse every anchor, then emit.
fn reference(index: &Index, body: &str) -> (String, usize, usize) {
    let parsed = html::parse(body, true);
    let version = parsed
        .meta(html::MetaName::RepositoryVersion)
        .map(str::trim)
        .filter(|v| emit::is_v1(v))
        .unwrap_or("1.1");
    let mut out = Vec::new();
    emit::head(&mut out, version, None, "Simple index");
    let (mut kept, mut dropped) = (0, 0);
    for a in &parsed.anchors {
        let Some(text) = parsed.opt(&a.text) else {
            continue;
        };
        let name = Name::new(text.trim());
        if name.is_valid() && !hidden(&name) {
            kept += 1;
            let href = format!("{}{}/", index.url(), name.as_str());
            out.extend_from_slice(b"<a href=\"");
            emit::escape_into(&mut out, &href);
            out.extend_from_slice(b"\">");
            emit::escape_into(&mut out, text.trim());
            out.extend_from_slice(b"</a>\n");
        } else {
            dropped += 1;
        }
    }
    emit::tail(&mut out);
    (String::from_utf8(out).unwrap(), kept, dropped)
}

fn streamed(p: &Policy, body: &str) -> (String, usize, usize) {
    let root = Url::parse("https://pypi.org/simple/").unwrap();
    let r = p
        .rewrite_root(
            &p.indexes()[0],
            &root,
            PageFormat::Html,
            body.as_bytes(),
            &hidden,
        )
        .unwrap();
    (String::from_utf8(r.body).unwrap(), r.kept, r.dropped)
}

fn check(body: &str) {
    let p = policy();
    assert_eq!(
        streamed(&p, body),
        reference(&p.indexes()[0], body),
        "{body:?}"
    );
}

#[test]
fn version_meta_after_the_first_link_rewrites_the_head() {
    let body = "<a href=/a/>alpha</a><meta name=\"pypi:repository-version\" content=\" 1.4 \">\
                <a>Beta_Two</a><meta name=pypi:repository-version content=1.9>";
    check(body);
    let (out, kept, dropped) = streamed(&policy(), body);
    assert!(out.starts_with("<!DOCTYPE html>") && out.contains("content=\"1.4\""));
    assert!(out.contains("<a href=\"https://pypi.org/simple/beta-two/\">Beta_Two</a>\n"));
    assert_eq!((kept, dropped), (2, 0));
}

#[test]
fn scanner_bail_falls_back_to_the_full_tokenizer() {
    // A CR and an unknown character reference are both outside the scanner's model.
    check(
        "<meta name=pypi:repository-version content=1.2>\r\n<a>one</a>\r\n<a>t&notareference;o</a>",
    );
    check("<a href=\"/x/\">two &bogusref; x</a><a>requests</a><a> corp.x </a><a>priv-1</a>");
}

#[test]
fn empty_and_linkless_pages() {
    check("");
    check("<html><body>no links</body></html>");
    check("<meta name=pypi:repository-version content=2.0><a></a>");
}

const PIECES: &[&str] = &[
    "<a href=\"/simple/x/\">",
    "<a href='/?a&amp;b' href=x>",
    "<A HREF=/y/>",
    "</a>",
    "</A >",
    "<b>",
    "</b>",
    "<br/>",
    "\n",
    "requests",
    "Acme_Lib",
    "corp.x",
    " spaced ",
    "Evil Name!",
    "a&lt;b",
    "&amp;",
    "priv-thing",
    "\u{fc}ber",
    "-x",
    "x-",
    "z9",
    "<meta name=\"pypi:repository-version\" content=\"1.2\">",
    "<META NAME=\"PyPI:Repository-Version\" content=\" 1.4 \">",
    "<meta name=\"pypi:repository-version\">",
    "<meta name=\"x\" content=\"1.5\">",
    "<meta content=\"1.7\" name=\"pypi:repository-version\" name=\"other\">",
    "<meta name=\"other\" name=\"pypi:repository-version\" content=\"1.8\">",
    "<meta name=pypi:repository-version content=1.x>",
    "<!-- <a>c</a> -->",
    "<script><a>s</a></script>",
    "<title><a>t</a></title>",
    "<a",
    "\r",
    "&unknownref;",
    "<textarea>x&amp;y</textarea>",
    "<style>a</style>",
    "<plaintext>",
    "</a x=1>",
    "<a/>",
    "<meta/name=pypi:repository-version/content=1.6>",
    "<meta name='pypi:repository-version' content='1.&#51;'>",
    "<!doctype html>",
    "<?pi <a>q</a> ?>",
];

proptest! {
    #[test]
    fn streaming_matches_the_stored_anchors_path(
        picks in prop::collection::vec(0..PIECES.len(), 0..40)
    ) {
        let body: String = picks.iter().map(|&i| PIECES[i]).collect();
        let p = policy();
        prop_assert_eq!(streamed(&p, &body), reference(&p.indexes()[0], &body));
    }
}

proptest! {
    /// What `Filter::keep` relies on to check names before normalizing them.
    #[test]
    fn validity_survives_normalization(raw in "[a-zA-Z0-9._\\- <&\"'\u{212a}\u{fc}]{0,8}") {
        prop_assert_eq!(crate::name::is_valid_name(&raw), Name::new(&raw).is_valid());
    }
}
