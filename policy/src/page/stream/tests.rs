//! The streamed rewrite: cut anywhere, it writes what the whole page gives, and it writes it
//! before the page has ended.

use proptest::prelude::*;
use url::Url;

use super::*;

fn index() -> Index {
    crate::page::pypi()
}

fn page_url() -> Url {
    Url::parse("https://pypi.org/simple/pkg/").unwrap()
}

/// Feeds `body` cut at `cuts` (offsets, any order) and returns the output and summary.
fn streamed(body: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, Summary), RewriteError> {
    crate::page::fed_in_cuts(PageFormat::Html, body, cuts)
}

fn whole(body: &[u8]) -> Result<(Vec<u8>, Summary), RewriteError> {
    streamed(body, &[])
}

fn file(i: usize) -> String {
    format!(
        "<a href=\"https://files.pythonhosted.org/packages/ab/cd/pkg-{i}.0.tar.gz#sha256={i:064x}\" data-requires-python=\"&gt;=3.8\">pkg-{i}.0.tar.gz</a><br/>\n"
    )
}

#[test]
fn every_cut_of_the_pypi_fixture_gives_the_whole_page() {
    let body = include_bytes!("../../../testdata/pypi-project.html");
    let want = whole(body).unwrap();
    assert!(want.1.kept > 0);
    for cut in 0..=body.len() {
        assert_eq!(streamed(body, &[cut]).unwrap(), want, "cut at {cut}");
    }
    // And one byte at a time.
    let every: Vec<usize> = (0..body.len()).collect();
    assert_eq!(streamed(body, &every).unwrap(), want);
}

#[test]
fn absolute_links_are_written_before_the_page_ends() {
    let mut body = String::from("<!DOCTYPE html><html><head><title>x</title></head><body>\n");
    for i in 0..100 {
        body.push_str(&file(i));
    }
    let mut s = HtmlStream::new(
        &index(),
        &page_url(),
        PageFormat::Html,
        crate::rules::Judge::basic(&crate::Name::new("pkg")),
    );
    let mut out = Vec::new();
    let half = body.len() / 2;
    s.feed(&body.as_bytes()[..half], &mut out).unwrap();
    let early = String::from_utf8(out.clone()).unwrap();
    assert!(early.starts_with("<!DOCTYPE html>"), "{early}");
    let n = early.matches("<a href=").count();
    assert!(
        (40..=50).contains(&n),
        "{n} links written from half the page"
    );
    s.feed(&body.as_bytes()[half..], &mut out).unwrap();
    assert_eq!(s.finish(&mut out).unwrap().kept, 100);
    assert_eq!(
        (
            out,
            Summary {
                kept: 100,
                dropped: 0,
                ..Summary::default()
            }
        ),
        whole(body.as_bytes()).unwrap()
    );
}

#[test]
fn relative_links_wait_for_a_base_that_comes_later() {
    let body = format!(
        "{}<a href=\"../../packages/x/pkg-2.0.tar.gz\">pkg-2.0.tar.gz</a>\n{}<base href=\"https://files.pythonhosted.org/a/b/\">",
        file(1),
        file(3)
    );
    let (out, summary) = whole(body.as_bytes()).unwrap();
    let out = String::from_utf8(out).unwrap();
    // Resolved against the base although it came last, and the page order is kept.
    let hrefs: Vec<&str> = out
        .match_indices("href=\"")
        .map(|(i, _)| &out[i + 6..i + 40])
        .collect();
    assert_eq!(hrefs.len(), 3, "{out}");
    assert!(
        out.contains("href=\"https://files.pythonhosted.org/packages/x/pkg-2.0.tar.gz\""),
        "{out}"
    );
    let (one, two, three) = (
        out.find("pkg-1.0").unwrap(),
        out.find("pkg-2.0").unwrap(),
        out.find("pkg-3.0").unwrap(),
    );
    assert!(one < two && two < three, "{out}");
    assert_eq!(summary.kept, 3);

    // Streamed: the first link goes out at once, the relative one waits (and so does the one
    // after it, to keep the order) until the base arrives.
    let mut s = HtmlStream::new(
        &index(),
        &page_url(),
        PageFormat::Html,
        crate::rules::Judge::basic(&crate::Name::new("pkg")),
    );
    let mut w = Vec::new();
    let base_at = body.find("<base").unwrap();
    s.feed(&body.as_bytes()[..base_at], &mut w).unwrap();
    let early = String::from_utf8(w.clone()).unwrap();
    assert!(early.contains("pkg-1.0") && !early.contains("pkg-2.0") && !early.contains("pkg-3.0"));
    s.feed(&body.as_bytes()[base_at..], &mut w).unwrap();
    s.finish(&mut w).unwrap();
    assert_eq!(String::from_utf8(w).unwrap(), out);
}

#[test]
fn a_status_before_the_links_quarantines_them_after_fails_the_page() {
    let meta = "<meta name=\"pypi:project-status\" content=\"quarantined\">";
    let before = format!("<html><head>{meta}</head><body>{}{}", file(1), file(2));
    for cut in 0..before.len() {
        let (out, summary) = streamed(before.as_bytes(), &[cut]).unwrap();
        assert_eq!((summary.kept, summary.dropped), (0, 2));
        // Both are withheld by the quarantine rule, and counted as its.
        assert_eq!(summary.withheld.rules(), "quarantine:2");
        assert!(String::from_utf8(out).unwrap().contains("quarantined"));
    }
    let after = format!("<html><body>{}{meta}{}", file(1), file(2));
    for cut in 0..after.len() {
        assert_eq!(
            streamed(after.as_bytes(), &[cut]),
            Err(RewriteError::LateStatus)
        );
    }
    // A version after the first link is ignored, not an error.
    let version = format!(
        "{}<meta name=\"pypi:repository-version\" content=\"1.3\">",
        file(1)
    );
    let out = String::from_utf8(whole(version.as_bytes()).unwrap().0).unwrap();
    assert!(out.contains("content=\"1.1\""), "{out}");
}

#[test]
fn markup_the_fast_scanner_leaves_to_html5gum_mid_stream() {
    // CR line endings and a script with `<!--` make the fast scanner give up part-way.
    for tail in [
        "<a href=\"https://files.pythonhosted.org/x/pkg-9.0.zip\"\r\n>pkg-9.0.zip</a>",
        "<script><!-- <a href=\"https://files.pythonhosted.org/x/evil.zip\"> --></script>",
        "<plaintext><a href=\"https://files.pythonhosted.org/x/evil.zip\">",
    ] {
        let body = format!("{}{}{tail}{}", file(1), file(2), file(3));
        let want = whole(body.as_bytes()).unwrap();
        for cut in 0..=body.len() {
            assert_eq!(
                streamed(body.as_bytes(), &[cut]).unwrap(),
                want,
                "cut {cut} of {body}"
            );
        }
        let out = String::from_utf8(want.0).unwrap();
        assert!(!out.contains("evil.zip"), "{out}");
        assert!(out.contains("pkg-1.0") && out.contains("pkg-2.0"), "{out}");
    }
}

#[test]
fn utf8_and_byte_order_mark_cut_anywhere() {
    let body = format!(
        "\u{feff}<html><title>é✓</title>{}<a href=\"https://files.pythonhosted.org/x/p%C3%A9-1.0.zip\">pé</a>",
        file(1)
    );
    let want = whole(body.as_bytes()).unwrap();
    assert_eq!(want.1.kept, 2);
    for cut in 0..=body.len() {
        for cut2 in [cut + 1, cut + 2] {
            assert_eq!(streamed(body.as_bytes(), &[cut, cut2]).unwrap(), want);
        }
    }
    let mut bad = body.into_bytes();
    bad.insert(20, 0xff);
    for cut in 0..bad.len() {
        assert_eq!(streamed(&bad, &[cut]), Err(RewriteError::NotUtf8));
    }
}

#[test]
fn a_construct_cut_many_times_is_rescanned_only_as_it_doubles() {
    // A 1 MiB comment fed 1 KiB at a time: rescanning it on every chunk would scan it ~1,000
    // times; with the doubling rule the scans are a handful.
    let body = format!("{}<!--{}-->{}", file(1), "x".repeat(1 << 20), file(2));
    let cuts: Vec<usize> = (1..body.len() / 1024).map(|i| i * 1024).collect();
    let mut s = HtmlStream::new(
        &index(),
        &page_url(),
        PageFormat::Html,
        crate::rules::Judge::basic(&crate::Name::new("pkg")),
    );
    let mut out = Vec::new();
    let mut from = 0;
    for c in cuts.iter().copied().chain([body.len()]) {
        s.feed(&body.as_bytes()[from..c], &mut out).unwrap();
        from = c;
    }
    assert!(s.scans() < 40, "{} scans", s.scans());
    assert_eq!(s.finish(&mut out).unwrap().kept, 2);
}

/// Pieces a page is made of, including every construct that can be cut: tags with quoted and
/// unquoted values, entities, comments, raw text, a base, metas, CR, non-ASCII text.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0usize..50).prop_map(file),
        1 => Just("<a href=\"../../packages/r/rel-1.0.tar.gz#sha256=ab\">rel</a>".to_owned()),
        1 => Just("<a href=/p/unq-1.0.zip data-yanked>unq</a>".to_owned()),
        1 => Just("<a href=\"https://evil.test/x-1.0.zip\">x</a>".to_owned()),
        1 => Just("<a href=\"https://files.pythonhosted.org/d/dl-1.0.zip\" rel=\"download\">d</a>".to_owned()),
        1 => Just("<A HREF='https&#58;//files.pythonhosted.org/e/ent-1.0.zip'>e</A>".to_owned()),
        1 => Just("<base href=\"https://files.pythonhosted.org/b/c/\">".to_owned()),
        1 => Just("<base href=\"https://evil.test/b/\">".to_owned()),
        1 => Just("<meta name=\"pypi:repository-version\" content=\"1.2\">".to_owned()),
        1 => Just("<meta name=\"pypi:project-status\" content=\"archived\">".to_owned()),
        1 => Just("<!-- <a href=\"https://files.pythonhosted.org/c/com-1.0.zip\"> -->".to_owned()),
        1 => Just("<script>var a = '<a href=\"x\">';</script>".to_owned()),
        1 => Just("<title>é ✓ &amp; t</title>".to_owned()),
        1 => Just("text &amp; more é\n".to_owned()),
        1 => Just("<br/>\r\n".to_owned()),
        1 => Just("<!DOCTYPE html>".to_owned()),
        1 => Just("</p><? pi ?><!x>".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]
    #[test]
    fn cut_anywhere_the_output_is_the_whole_pages(
        pieces in prop::collection::vec(piece(), 0..24),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let body = pieces.concat();
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
        prop_assert_eq!(streamed(body.as_bytes(), &cuts), whole(body.as_bytes()), "{}", body);
    }
}
