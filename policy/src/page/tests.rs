//! Page re-synthesis: the link rule in HTML and JSON, attributes, quarantine, root listings, legacy JSON, tracks.

use super::pypi;
use super::*;
use crate::{NamePattern, Rules};

fn policy() -> Policy {
    Policy::new(
        vec![pypi()],
        Rules {
            private: vec![NamePattern::parse("acme-*").unwrap()],
            allow_public: vec![NamePattern::parse("acme-sdk").unwrap()],
            ..Rules::default()
        },
    )
    .unwrap()
}

fn page_url() -> Url {
    Url::parse("https://pypi.org/simple/sampleproject/").unwrap()
}

fn html(body: &str) -> (String, Rewritten) {
    let p = policy();
    let r = p
        .rewrite_project(
            &p.indexes()[0],
            &page_url(),
            PageFormat::Html,
            body.as_bytes(),
        )
        .unwrap();
    (String::from_utf8(r.body.clone()).unwrap(), r)
}

/// The hrefs of a re-synthesized page, read back with the same tokenizer.
fn out_hrefs(out: &str) -> Vec<String> {
    let p = html::parse(out, false);
    p.anchors
        .iter()
        .filter_map(|a| p.opt(&a.href))
        .map(str::to_owned)
        .collect()
}

mod json;

const F: &str = "https://files.pythonhosted.org/p/x-1.0.tar.gz";

#[test]
fn content_types() {
    use PageFormat::*;
    assert_eq!(PageFormat::from_content_type("text/html"), Some(Html));
    assert_eq!(
        PageFormat::from_content_type("Text/HTML; charset=UTF-8"),
        Some(Html)
    );
    assert_eq!(
        PageFormat::from_content_type("application/vnd.pypi.simple.v1+html"),
        Some(HtmlV1)
    );
    assert_eq!(
        PageFormat::from_content_type("application/vnd.pypi.simple.v1+json;q=1"),
        Some(JsonV1)
    );
    assert_eq!(PageFormat::from_content_type("application/json"), None);
    assert_eq!(
        PageFormat::from_content_type("application/vnd.pypi.simple.latest+json"),
        None
    );
    assert_eq!(Html.content_type(), "text/html; charset=utf-8");
    assert_eq!(JsonV1.content_type(), "application/vnd.pypi.simple.v1+json");
}

#[test]
fn html_link_rule_cases() {
    let body = format!(
        r#"<a href="{F}#sha256=ab12">ok</a>
        <A HREF={F}#sha256=cd34>upper unquoted</A>
        <a href="https://files.pythonhosted.org/p/y-1.0.tar.gz&#35;sha256=ef56">entity</a>
        <a href="  ../../p/z-1.0.tar.gz  ">relative to pypi.org</a>
        <a href="//evil.example/x-1.0.tar.gz">scheme-relative</a>
        <a href="//files.pythonhosted.org/p/w-1.0.tar.gz">scheme-relative ok</a>
        <a href="http://files.pythonhosted.org/p/x-1.0.tar.gz">plain http</a>
        <a href="https://evil.example/x-1.0.tar.gz">evil</a>
        <a href="{F}" rel="download">rel download</a>
        <a href="{F}" rel="nofollow homepage">rel homepage</a>
        <a href="javascript:alert(1)">js</a>
        <a href="data:text/plain,x-1.0.tar.gz">data</a>
        <a href="https://files.pythonhosted.org/p/">no file name</a>
        <a>no href</a>
        <!-- <a href="{F}">comment</a> --><script>"<a href='{F}'>"</script>"#
    );
    let (out, r) = html(&body);
    assert_eq!(
        out_hrefs(&out),
        [
            format!("{F}#sha256=ab12"),
            format!("{F}#sha256=cd34"),
            "https://files.pythonhosted.org/p/y-1.0.tar.gz#sha256=ef56".to_owned(),
            "https://pypi.org/p/z-1.0.tar.gz".to_owned(),
            "https://files.pythonhosted.org/p/w-1.0.tar.gz".to_owned(),
        ]
    );
    assert_eq!((r.kept, r.dropped), (5, 8));
    assert!(!out.contains("evil") && !out.contains("script") && !out.contains("<!--"));
}

#[test]
fn base_href_is_honoured() {
    // pip resolves against the first <base href>; a base elsewhere makes relative links external.
    let (out, r) = html(
        r#"<base href="https://evil.example/"><a href="x-1.0.tar.gz">x</a><a href="{F}">"#
            .replace("{F}", F)
            .as_str(),
    );
    assert_eq!(out_hrefs(&out), [F]);
    assert_eq!((r.kept, r.dropped), (1, 1));
    assert!(!out.contains("<base"));
    // A relative base resolves against the page URL.
    let (out, _) = html(r#"<base href="/pkgs/"><a href="x-1.0.tar.gz">x</a>"#);
    assert_eq!(out_hrefs(&out), ["https://pypi.org/pkgs/x-1.0.tar.gz"]);
    // A base on a file host makes relative links resolve there.
    let (out, _) =
        html(r#"<a href="x-1.0.tar.gz">x</a><base href="https://files.pythonhosted.org/b/">"#);
    assert_eq!(
        out_hrefs(&out),
        ["https://files.pythonhosted.org/b/x-1.0.tar.gz"]
    );
}

#[test]
fn attributes_survive_escaped_and_nothing_else() {
    let body = format!(
        r#"<a href="{F}#sha256=AB" data-requires-python="&gt;=3.8,&lt;4" data-yanked="bad &quot;release&quot;"
            data-dist-info-metadata="sha256=01" data-provenance="https://pypi.org/integrity/x/prov"
            data-gpg-sig="true" onclick="evil()" class="x">text ignored</a>
           <a href="{F}" data-yanked data-dist-info-metadata="true" data-provenance="https://evil.example/p">y</a>
           <a href="{F}" data-core-metadata="sha256=02" data-dist-info-metadata="sha256=01">z</a>
           <a href="{F}#md5=zz" data-core-metadata="javascript:x">w</a>"#
    );
    let (out, _) = html(&body);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("<a ")).collect();
    assert_eq!(
        lines,
        [
            format!(
                r#"<a href="{F}#sha256=AB" data-requires-python="&gt;=3.8,&lt;4" data-yanked="bad &quot;release&quot;" data-core-metadata="sha256=01" data-provenance="https://pypi.org/integrity/x/prov">x-1.0.tar.gz</a><br/>"#
            ),
            format!(
                r#"<a href="{F}" data-yanked="" data-core-metadata="true">x-1.0.tar.gz</a><br/>"#
            ),
            format!(r#"<a href="{F}" data-core-metadata="sha256=02">x-1.0.tar.gz</a><br/>"#),
            format!(r#"<a href="{F}">x-1.0.tar.gz</a><br/>"#),
        ]
    );
    assert!(!out.contains("dist-info") && !out.contains("gpg") && !out.contains("onclick"));
}

#[test]
fn canonical_head_and_filename_encoding() {
    let (out, _) =
        html(r#"<a href="https://files.pythonhosted.org/p/a%20b%3Cc-1.0.tar.gz#sha256=00">x</a>"#);
    assert!(out.starts_with("<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"1.1\">\n"), "{out}");
    assert!(out.contains("<title>Links for sampleproject</title>"));
    assert!(out.contains("<h1>Links for sampleproject</h1>"));
    assert!(out.contains(r#"<a href="https://files.pythonhosted.org/p/a%20b%3Cc-1.0.tar.gz#sha256=00">a b&lt;c-1.0.tar.gz</a>"#), "{out}");
}

#[test]
fn quarantine_offers_no_files() {
    let body = format!(
        r#"<meta name="pypi:project-status" content="quarantined"><meta name="pypi:project-status-reason" content="malware"><a href="{F}">x</a>"#
    );
    let (out, r) = html(&body);
    assert!(out_hrefs(&out).is_empty());
    assert_eq!((r.kept, r.dropped), (0, 1));
    assert!(out.contains(r#"<meta name="pypi:project-status" content="quarantined">"#));
    assert!(out.contains(r#"<meta name="pypi:project-status-reason" content="malware">"#));
}

#[test]
fn html_edge_bodies() {
    let (out, r) = html("");
    assert_eq!((r.kept, r.dropped), (0, 0));
    assert!(out.contains("Links for sampleproject"));
    let p = policy();
    let err = p
        .rewrite_project(
            &p.indexes()[0],
            &page_url(),
            PageFormat::Html,
            b"<a href=\xff>",
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "not valid UTF-8");
    // A BOM is not content.
    let (out, _) = html(&format!("\u{feff}<a href={F}>"));
    assert_eq!(out_hrefs(&out), [F]);
}

#[test]
fn html_fixture() {
    let body = include_str!("../../testdata/pypi-project.html");
    let (out, r) = html(body);
    let hrefs = out_hrefs(&out);
    assert_eq!(hrefs.len(), 5, "{out}");
    assert_eq!((r.kept, r.dropped), (5, 2));
    assert!(hrefs.iter().all(
        |h| h.starts_with("https://files.pythonhosted.org/packages/") && h.contains("#sha256=")
    ));
    assert!(out.contains(r#"data-yanked="broken release &lt;see #12&gt;""#));
    assert!(out.contains(r#"data-requires-python="&gt;=2.7, !=3.0.*, !=3.1.*""#));
    assert!(out.contains(r#"content="1.3""#) && out.contains(r#"content="active""#));
    assert!(!out.contains("evil") && !out.contains("mirror") && !out.contains("SERIAL"));
}

#[test]
fn root_listing_html_and_json() {
    let p = policy();
    let i = &p.indexes()[0];
    let root = Url::parse("https://pypi.org/simple/").unwrap();
    let body = "<html><body><a href=\"/simple/requests/\">requests</a>\n<a href=\"/simple/acme-lib/\">Acme_Lib</a>\
                <a href=\"/simple/corp-x/\">corp.x</a><a href=\"/simple/acme-sdk/\">acme-sdk</a>\
                <a href=\"https://evil.example/\">Evil Name!</a><!-- <a>hidden</a> --></body></html>";
    let r = p
        .rewrite_root(i, &root, PageFormat::Html, body.as_bytes(), &|n| {
            n.as_str() == "corp-x"
        })
        .unwrap();
    let out = String::from_utf8(r.body).unwrap();
    assert_eq!((r.kept, r.dropped), (2, 3));
    assert!(
        out.contains(r#"<a href="https://pypi.org/simple/requests/">requests</a>"#),
        "{out}"
    );
    assert!(
        out.contains(r#"<a href="https://pypi.org/simple/acme-sdk/">acme-sdk</a>"#),
        "{out}"
    );
    assert!(
        !out.contains("acme-lib")
            && !out.contains("Acme")
            && !out.contains("corp")
            && !out.contains("evil")
    );

    let body = r#"{"meta":{"api-version":"1.1","_last-serial":1},"projects":[{"name":"requests"},{"name":"ACME.lib"},{"name":"corp_x"}]}"#;
    let r = p
        .rewrite_root(i, &root, PageFormat::JsonV1, body.as_bytes(), &|n| {
            n.as_str() == "corp-x"
        })
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["projects"], serde_json::json!([{"name": "requests"}]));
    assert_eq!((r.kept, r.dropped), (1, 2));
    assert!(p
        .rewrite_root(i, &root, PageFormat::JsonV1, b"{}", &|_| false)
        .is_err());
}

#[test]
fn a_private_index_root_listing_keeps_its_names() {
    let corp = Index::new(
        "corp",
        "https://pypi.corp.example/simple/",
        Role::Private,
        &[],
    )
    .unwrap();
    let p = Policy::new(
        vec![pypi(), corp],
        Rules {
            private: vec![NamePattern::parse("acme-*").unwrap()],
            ..Rules::default()
        },
    )
    .unwrap();
    let root = Url::parse("https://pypi.corp.example/simple/").unwrap();
    let body = "<a href=\"/simple/acme-lib/\">acme-lib</a><a href=\"/simple/corp-x/\">corp-x</a>";
    for (index, kept) in [(&p.indexes()[1], 2), (&p.indexes()[0], 0)] {
        let r = p
            .rewrite_root(index, &root, PageFormat::Html, body.as_bytes(), &|n| {
                n.as_str() == "corp-x"
            })
            .unwrap();
        assert_eq!((r.kept, r.dropped), (kept, 2 - kept), "{}", index.name());
    }
}

#[test]
fn legacy_json_filters_urls() {
    let p = policy();
    let i = &p.indexes()[0];
    let url = Url::parse("https://pypi.org/pypi/x/json").unwrap();
    let body = format!(
        r#"{{"info":{{"name":"x","home_page":"https://evil.example/"}},"last_serial":7,"vulnerabilities":[],
        "urls":[{{"filename":"x-1.0.tar.gz","url":"{F}","digests":{{"sha256":"ab"}}}},{{"filename":"e","url":"https://evil.example/x-1.0.tar.gz"}}],
        "releases":{{"1.0":[{{"url":"{F}"}},{{"url":"http://files.pythonhosted.org/x-1.0.tar.gz"}}],"0.1":[]}}}}"#
    );
    let r = p
        .rewrite_legacy_json(
            i,
            &url,
            &crate::rules::Judge::basic(&crate::Name::new("pkg")),
            body.as_bytes(),
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((r.kept, r.dropped), (2, 2));
    assert_eq!(v["urls"].as_array().unwrap().len(), 1);
    assert_eq!(v["urls"][0]["digests"]["sha256"], "ab");
    assert_eq!(v["releases"]["1.0"].as_array().unwrap().len(), 1);
    assert_eq!(v["releases"]["0.1"], serde_json::json!([]));
    assert_eq!(v["info"]["home_page"], "https://evil.example/");
    assert_eq!(v["last_serial"], 7);
    for bad in [
        &b"{}"[..],
        b"{\"info\":{},\"urls\":[1]}",
        b"{\"info\":{},\"urls\":[],\"releases\":{\"1\":{}}}",
        b"<html>",
    ] {
        assert!(
            p.rewrite_legacy_json(
                i,
                &url,
                &crate::rules::Judge::basic(&crate::Name::new("pkg")),
                bad
            )
            .is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn tracks_from_html_and_json() {
    let url = Url::parse("https://corp.example/simple/acme-lib/").unwrap();
    let html = br#"<meta name="pypi:tracks" content="https://pypi.org/simple/acme-lib/"><meta name="pypi:tracks" content="/simple/other/">"#;
    let t = private_page_tracks(PageFormat::Html, &url, html).unwrap();
    assert_eq!(
        t.iter().map(Url::as_str).collect::<Vec<_>>(),
        [
            "https://pypi.org/simple/acme-lib/",
            "https://corp.example/simple/other/"
        ]
    );
    let json = br#"{"meta":{"api-version":"1.2","tracks":["https://pypi.org/simple/acme-lib/"]},"files":[]}"#;
    let t = private_page_tracks(PageFormat::JsonV1, &url, json).unwrap();
    assert_eq!(t.len(), 1);
    assert!(private_page_tracks(PageFormat::JsonV1, &url, b"[").is_err());
    assert!(private_page_tracks(PageFormat::JsonV1, &url, b"{}")
        .unwrap()
        .is_empty());
}

#[test]
fn every_prefix_of_the_fixtures() {
    // Truncated pages (a cut connection, a size limit) must neither panic nor make the two
    // HTML readers disagree; truncated JSON must be refused with an error.
    let p = policy();
    let i = &p.indexes()[0];
    let html = include_str!("../../testdata/pypi-project.html");
    for cut in (0..=html.len()).filter(|&c| html.is_char_boundary(c)) {
        let prefix = &html[..cut];
        assert!(scanner_matches_reference(prefix), "cut at {cut}");
        let r = p
            .rewrite_project(i, &page_url(), PageFormat::Html, prefix.as_bytes())
            .unwrap();
        assert!(r.kept <= 5);
    }
    let json = include_bytes!("../../testdata/pypi-project.json");
    let whole = json.iter().rposition(|&b| b == b'}').unwrap() + 1;
    for cut in 0..whole {
        assert!(
            p.rewrite_project(i, &page_url(), PageFormat::JsonV1, &json[..cut])
                .is_err(),
            "cut at {cut}"
        );
    }
    assert!(p
        .rewrite_project(i, &page_url(), PageFormat::JsonV1, &json[..whole])
        .is_ok());
}
