//! The streaming root listing against the stored-anchors one it replaced, and against itself
//! fed in any chunks.

use proptest::prelude::*;
use url::Url;

use super::super::{emit, html, PageFormat, Summary};
use crate::{Index, Name, Policy, RewriteError, Role, Rules};

fn policy() -> Policy {
    let index = Index::new("pypi", "https://pypi.org/simple/", Role::Public, &[]).unwrap();
    Policy::new(vec![index], Rules::default()).unwrap()
}

fn hidden(n: &Name) -> bool {
    n.as_str() == "corp-x" || n.as_str().starts_with("priv")
}

/// The stored-anchors implementation: parse every anchor, then emit (with the version of the
/// first version meta before the first anchor, as project pages take it).
fn reference(index: &Index, body: &str) -> (String, usize, usize) {
    let parsed = html::parse(body, true);
    let early = parsed.metas_before_anchor.unwrap_or(parsed.metas.len());
    let version = parsed.metas[..early]
        .iter()
        .find(|(n, _)| *n == html::MetaName::RepositoryVersion)
        .map(|(_, s)| parsed.get(s))
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
fn a_version_meta_after_the_first_anchor_is_ignored() {
    let body = "<a href=/a/>alpha</a><meta name=\"pypi:repository-version\" content=\" 1.4 \">\
                <a>Beta_Two</a><meta name=pypi:repository-version content=1.9>";
    check(body);
    let (out, kept, dropped) = streamed(&policy(), body);
    assert!(out.starts_with("<!DOCTYPE html>") && out.contains("content=\"1.1\""));
    assert!(out.contains("<a href=\"https://pypi.org/simple/beta-two/\">Beta_Two</a>\n"));
    assert_eq!((kept, dropped), (2, 0));
    // Before it, it counts.
    let (out, _, _) = streamed(
        &policy(),
        "<meta name=\"pypi:repository-version\" content=\" 1.4 \"><a>alpha</a>",
    );
    assert!(out.contains("content=\"1.4\""), "{out}");
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

/// `body` rewritten from the chunks `cuts` makes of it (offsets, any order).
fn fed_in_cuts(
    format: PageFormat,
    body: &[u8],
    cuts: &[usize],
) -> Result<(Vec<u8>, Summary), RewriteError> {
    let p = policy();
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(body.len())).collect();
    cuts.sort_unstable();
    let mut s = p.root_stream(&p.indexes()[0], format, hidden);
    let mut out = Vec::new();
    let mut from = 0;
    for c in cuts.into_iter().chain([body.len()]) {
        s.feed(&body[from..c], &mut out)?;
        from = c;
    }
    let summary = s.finish(&mut out)?;
    Ok((out, summary))
}

proptest! {
    /// However the listing is cut into chunks (the scanner's bail-outs included), the output
    /// is what the whole listing gives.
    #[test]
    fn any_chunking_of_an_html_listing_writes_the_whole_listing(
        picks in prop::collection::vec(0..PIECES.len(), 0..40),
        cuts in prop::collection::vec(0..2000usize, 0..8),
    ) {
        let body: String = picks.iter().map(|&i| PIECES[i]).collect();
        let whole = fed_in_cuts(PageFormat::Html, body.as_bytes(), &[]);
        let cut = fed_in_cuts(PageFormat::Html, body.as_bytes(), &cuts);
        prop_assert_eq!(&cut, &whole);
        let (out, summary) = whole.unwrap();
        prop_assert_eq!(
            (String::from_utf8(out).unwrap(), summary.kept, summary.dropped),
            reference(&policy().indexes()[0], &body)
        );
    }

    /// The same for JSON listings, errors included.
    #[test]
    fn any_chunking_of_a_json_listing_writes_the_whole_listing(
        names in prop::collection::vec(prop::sample::select(vec!["requests", "corp-x", "Priv_1", " spaced ", "bad name", "x\"y", "\u{fc}"]), 0..6),
        meta_first in any::<bool>(),
        extra in prop::sample::select(vec!["", ",\"_last-serial\":5", ",\"meta\":{}", ",\"projects\":[]", ",]"]),
        cuts in prop::collection::vec(0..400usize, 0..8),
    ) {
        let projects: Vec<String> = names
            .iter()
            .map(|n| format!("{{\"_last-serial\": 1, \"name\": {}}}", serde_json::to_string(n).unwrap()))
            .collect();
        let projects = format!("\"projects\": [{}]", projects.join(", "));
        let meta = "\"meta\": {\"api-version\": \"1.2\", \"_last-serial\": 9}";
        let body = if meta_first {
            format!("{{{meta}, {projects}{extra}}}")
        } else {
            format!("{{{projects}, {meta}{extra}}}")
        };
        let whole = fed_in_cuts(PageFormat::JsonV1, body.as_bytes(), &[]);
        let cut = fed_in_cuts(PageFormat::JsonV1, body.as_bytes(), &cuts);
        prop_assert_eq!(&cut, &whole);
        if let Ok((out, summary)) = whole {
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let kept: Vec<&str> = v["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
            let want: Vec<&str> = names.iter().map(|n| n.trim()).filter(|n| crate::name::is_valid_name(n) && !hidden(&Name::new(n))).collect();
            prop_assert_eq!(kept, want);
            prop_assert_eq!(summary.kept + summary.dropped, names.len());
            prop_assert_eq!(&v["meta"]["api-version"], "1.2");
        }
    }
}

#[test]
fn json_listings_that_are_not_one_are_refused() {
    for body in [
        "",
        "{}",
        "[]",
        "{\"projects\": {}}",
        "{\"projects\": [], \"projects\": []}",
        "{\"projects\": [{\"nom\": 1}]}",
        "{\"projects\": []} x",
    ] {
        assert!(
            fed_in_cuts(PageFormat::JsonV1, body.as_bytes(), &[]).is_err(),
            "{body:?}"
        );
    }
}
