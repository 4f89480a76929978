//! The fast scanner against html5gum: same reading wherever the scanner answers.

use proptest::prelude::*;

use super::super::html::{parse_reference, same, Collector, Parsed};
use super::*;

fn fast(html: &str, text: bool) -> Option<Parsed> {
    let mut c = Collector::new(text);
    tokenize(html, &mut c).ok().map(|()| c.finish())
}

fn check(html: &str) {
    for text in [false, true] {
        let reference = parse_reference(html, text);
        if let Some(f) = fast(html, text) {
            assert!(
                same(&f, &reference),
                "differs on {html:?}\nfast: {f:?}\nref: {reference:?}"
            );
        }
    }
}

#[test]
fn agrees_on_tricky_markup() {
    for html in [
        "<a href=x>y</a>",
        "<A HREF=x>Y</A>",
        "<a href='x' href=\"y\">",
        "<a href = \"x\" / >",
        "<a/href=x>",
        "<a href=x/>",
        "<a href=\"x\"data-yanked>",
        "<a =x href=y>",
        "<a href=\"&amp;&lt;&#47;&#x2F;&sol;&colon;\">",
        "<a href=\"a & b\">",
        "<a href=\"a &= b\">",
        "<!-- <a href=c> --><a href=ok>",
        "<!--><a href=ok1><!---><a href=ok2>",
        "<!-- x --!><a href=ok>",
        "<!-- x ---><a href=ok>",
        "<!----><a href=ok>",
        "<!DOCTYPE html><a href=ok>",
        "<!doctype html public \"x>y\"><a href=ok>",
        "<![CDATA[<a href=c>]]><a href=ok>",
        "<?xml x><a href=ok>",
        "</ a href=x><a href=ok>",
        "</><a href=ok>",
        "</a href=bad><a href=ok>",
        "<script><a href=s></script><a href=ok>",
        "<script>x</script ><a href=ok>",
        "<script>x</scriptx><a href=s></script><a href=ok>",
        "<SCRIPT>x</SCRIPT><a href=ok>",
        "<style><a href=s></style><a href=ok>",
        "<title><a href=t>&amp;</title><a href=ok>",
        "<textarea></textarea ><a href=ok>",
        "<noscript><a href=n></noscript><a href=ok>",
        "<noframes><a href=n></noframes>",
        "<plaintext><a href=p>",
        "<a href=x",
        "<a href=\"x",
        "<a href=",
        "<a",
        "<",
        "</",
        "a < b <a href=ok>",
        "<a href=ok>t1</a><a href=ok2>t2<b>t3</b>&amp;</a>tail",
        "<a href=1><a href=2>text",
        "<base href=b1><base href=b2><meta name=pypi:tracks content=t><META name=\"PYPI:TRACKS\" CONTENT=t2>",
        "<meta content=c name=pypi:project-status>",
        "<a href=\"\u{e9}\u{1F600}\">\u{e9}</a>",
        "<a data-yanked=\"\" href=x data-requires-python=&gt;=3>",
    ] {
        assert!(fast(html, true).is_some(), "{html:?} should be modelled");
        check(html);
    }
}

#[test]
fn bails_where_it_does_not_model() {
    for html in [
        "<a href=\"&notit;\">",
        "<a href=\"&amp\">",
        "<a href=\"?a=1&b=2\">",
        "<a href=\"&#0;\">",
        "<a href=\"&#128;\">",
        "<a href=\"&#x110000;\">",
        "<a href=x>\r\n",
        "<a href=x\0>",
        "<script><!--<script></script>--></script>",
    ] {
        assert!(fast(html, false).is_none(), "{html:?}");
        check(html);
    }
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<a href=x>".to_owned()),
        Just("<A HREF='y' REL=download>".to_owned()),
        Just("</a>".to_owned()),
        Just("<a href=\"z\" data-yanked data-core-metadata=true>".to_owned()),
        Just("<base href=b>".to_owned()),
        Just("<meta name=pypi:tracks content=t>".to_owned()),
        Just("<!--".to_owned()),
        Just("-->".to_owned()),
        Just("--!>".to_owned()),
        Just("<script>".to_owned()),
        Just("</script>".to_owned()),
        Just("<title>".to_owned()),
        Just("</title>".to_owned()),
        Just("<!DOCTYPE html>".to_owned()),
        Just("&amp;".to_owned()),
        Just("&".to_owned()),
        Just("<".to_owned()),
        Just(">".to_owned()),
        Just("/".to_owned()),
        Just("=".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just(" ".to_owned()),
        "[a-z]{1,3}",
        "[ -~]{0,4}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Wherever the fast scanner answers, it answers what html5gum answers.
    #[test]
    fn scanner_agrees_with_html5gum(pieces in prop::collection::vec(piece(), 0..24)) {
        check(&pieces.concat());
    }
}
