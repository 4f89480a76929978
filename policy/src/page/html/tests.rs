//! What the tokenizer path reads from markup a browser would read the same way.

use super::*;

fn hrefs(html: &str) -> Vec<String> {
    let p = parse(html, false);
    p.anchors
        .iter()
        .filter_map(|a| p.opt(&a.href))
        .map(str::to_owned)
        .collect()
}

#[test]
fn upper_case_unquoted_and_entities() {
    assert_eq!(hrefs("<A HREF=x-1.tar.gz>x</A>"), ["x-1.tar.gz"]);
    assert_eq!(hrefs("<a href='a&amp;b'>"), ["a&b"]);
    assert_eq!(hrefs("<a href=\"&#x68;ttps://h/x\">"), ["https://h/x"]);
    assert_eq!(
        hrefs("<a href=\"&#104;ttps&colon;//h/x\">"),
        ["https://h/x"]
    );
    assert_eq!(hrefs("<a\nhref\n=\n\"x\"\n>"), ["x"]);
}

#[test]
fn first_duplicate_attribute_wins() {
    assert_eq!(hrefs("<a href=good href=bad>"), ["good"]);
}

#[test]
fn no_links_from_comments_scripts_or_end_tags() {
    let html = "<!-- <a href=c1> --><script>x='<a href=s1>'</script><style><a href=s2></style>\
                <title><a href=t1></title><textarea><a href=t2></textarea></a href=e1><a href=ok>";
    assert_eq!(hrefs(html), ["ok"]);
    // An unterminated comment swallows the rest, as in a browser.
    assert!(hrefs("<!-- <a href=x>").is_empty());
    // A tag cut by EOF is not a tag.
    assert!(hrefs("<a href=x").is_empty());
}

#[test]
fn base_and_metas() {
    let p = parse(
        "<base target=x><base href='https://b/one/'><base href='https://b/two/'>\
         <META NAME='pypi:tracks' CONTENT='https://pypi.org/simple/x/'>\
         <meta name=pypi:project-status content=quarantined>\
         <meta name=pypi:project-status-reason content='malware &amp; more'>",
        false,
    );
    assert_eq!(p.opt(&p.base), Some("https://b/one/"));
    assert_eq!(p.meta(MetaName::Tracks), Some("https://pypi.org/simple/x/"));
    assert_eq!(p.meta(MetaName::ProjectStatus), Some("quarantined"));
    assert_eq!(
        p.meta(MetaName::ProjectStatusReason),
        Some("malware & more")
    );
}

#[test]
fn empty_attribute_values_are_present() {
    let p = parse("<a href=x data-yanked data-requires-python=''>", false);
    let a = &p.anchors[0];
    assert_eq!(p.opt(&a.yanked), Some(""));
    assert_eq!(p.opt(&a.requires_python), Some(""));
    assert_eq!(p.opt(&a.core_metadata), None);
}

#[test]
fn anchor_text_for_root_listings() {
    let p = parse(
        "<a href=/simple/a/>A_b</a>\n<a href=/simple/c/>c<b>d</b></a><a>e</a>",
        true,
    );
    let texts: Vec<&str> = p.anchors.iter().filter_map(|a| p.opt(&a.text)).collect();
    assert_eq!(texts, ["A_b", "cd", "e"]);
}
