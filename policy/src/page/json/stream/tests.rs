//! The streamed JSON rewrite: cut anywhere, it writes what the whole page gives (or fails as
//! the whole page does), it writes files before the page has ended, and it keeps and drops
//! exactly what the whole-page serde rewrite it replaced did.

use proptest::prelude::*;
use serde_json::Value;

use super::super::{file_out, File, FileOut, Meta, MetaOut};
use super::*;

fn index() -> Index {
    crate::page::pypi()
}

fn page_url() -> Url {
    Url::parse("https://pypi.org/simple/pkg/").unwrap()
}

/// Feeds `body` cut at `cuts` (offsets, any order) and returns the output and summary.
fn streamed(body: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, Summary), RewriteError> {
    crate::page::fed_in_cuts(crate::PageFormat::JsonV1, body, cuts)
}

fn whole(body: &[u8]) -> Result<(Vec<u8>, Summary), RewriteError> {
    streamed(body, &[])
}

fn every_byte(body: &[u8]) -> Vec<usize> {
    (0..body.len()).collect()
}

/// What the whole page gives, once it is checked that the page cut anywhere gives the same,
/// error included: cut once, twice `gaps` apart, and byte by byte.
fn cut_anywhere(body: &[u8], gaps: &[usize]) -> Result<(Vec<u8>, Summary), RewriteError> {
    let want = whole(body);
    for cut in 0..=body.len() {
        assert_eq!(streamed(body, &[cut]), want, "cut at {cut}");
        for d in gaps {
            assert_eq!(streamed(body, &[cut, cut + d]), want, "cuts {cut}+{d}");
        }
    }
    assert_eq!(streamed(body, &every_byte(body)), want);
    want
}

/// A file on the file host (or, for `evil`, off it) with the keys PyPI writes, sorted.
fn file(i: usize, evil: bool) -> String {
    let host = if evil {
        "evil.test"
    } else {
        "files.pythonhosted.org"
    };
    format!(
        r#"{{"core-metadata":{{"sha256":"{i:064x}"}},"filename":"pkg-{i}.0.tar.gz","hashes":{{"sha256":"{i:064x}"}},"requires-python":">=3.8","size":{i},"upload-time":"2024-01-01T00:00:00Z","url":"https://{host}/packages/ab/pkg-{i}.0.tar.gz","yanked":false}}"#
    )
}

fn files(n: usize) -> String {
    let all: Vec<String> = (0..n).map(|i| file(i, i % 10 == 3)).collect();
    format!("[{}]", all.join(","))
}

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap()
}

fn urls(v: &Value) -> Vec<&str> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["url"].as_str().unwrap())
        .collect()
}

#[test]
fn every_cut_of_the_pypi_fixture_gives_the_whole_page() {
    let body = include_bytes!("../../../../testdata/pypi-project.json");
    // Two cuts close together: a value cut twice, or cut again just after it resumed.
    let (_, summary) = cut_anywhere(body, &[1, 2, 7]).unwrap();
    assert_eq!((summary.kept, summary.dropped), (4, 1));
}

#[test]
fn the_output_keeps_what_the_page_said_in_pypis_key_order() {
    let body = include_bytes!("../../../../testdata/pypi-project.json");
    let out = String::from_utf8(whole(body).unwrap().0).unwrap();
    assert!(
        out.starts_with("{\"files\":[{\"filename\":\"sampleproject-1.2.0.tar.gz\""),
        "{out}"
    );
    assert!(
        out.ends_with(r#"],"meta":{"api-version":"1.3"},"name":"sampleproject","versions":["1.2.0","1.3.0","1.3.1","2.0.0","3.0"]}"#),
        "{out}"
    );
}

#[test]
fn files_are_written_before_the_page_ends() {
    let body = format!(
        r#"{{"meta":{{"api-version":"1.1"}},"name":"pkg","files":{}}}"#,
        files(100)
    );
    let mut s = JsonStream::new(
        &index(),
        &page_url(),
        crate::rules::Judge::basic(&crate::Name::new("pkg")),
        None,
    );
    let mut out = Vec::new();
    let half = body.len() / 2;
    s.feed(&body.as_bytes()[..half], &mut out).unwrap();
    let early = String::from_utf8(out.clone()).unwrap();
    assert!(early.starts_with("{\"files\":[{"), "{early}");
    let n = early.matches("\"filename\"").count();
    // Half the page is ~50 files, 1 in 10 off the file host.
    assert!(
        (40..=50).contains(&n),
        "{n} files written from half the page"
    );
    assert!(!early.contains("evil.test"));
    s.feed(&body.as_bytes()[half..], &mut out).unwrap();
    let summary = s.finish(&mut out).unwrap();
    assert_eq!((summary.kept, summary.dropped), (90, 10));
    assert_eq!((out, summary), whole(body.as_bytes()).unwrap());
}

#[test]
fn files_before_meta_and_name_stream_too() {
    // PyPI sorts its keys: files come first, then meta, name, versions.
    let body = format!(
        r#"{{"files":{},"meta":{{"_last-serial":1,"api-version":"1.4"}},"name":"Pkg","versions":["0.0","1.0"]}}"#,
        files(20)
    );
    let meta_at = body.find("\"meta\"").unwrap();
    let mut s = JsonStream::new(
        &index(),
        &page_url(),
        crate::rules::Judge::basic(&crate::Name::new("pkg")),
        None,
    );
    let mut out = Vec::new();
    s.feed(&body.as_bytes()[..meta_at], &mut out).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out)
            .matches("\"filename\"")
            .count(),
        18
    );
    s.feed(&body.as_bytes()[meta_at..], &mut out).unwrap();
    s.finish(&mut out).unwrap();
    let v = json(&out);
    assert_eq!(v["meta"]["api-version"], "1.4");
    assert_eq!(v["name"], "Pkg");
    assert_eq!(v["versions"], serde_json::json!(["0.0", "1.0"]));
    assert_eq!(out, cut_anywhere(body.as_bytes(), &[]).unwrap().0);
    // No name: the URL's; no meta or a version that is not 1.x: 1.1.
    for (body, version) in [
        (r#"{"files":[]}"#, "1.1"),
        (
            r#"{"files":[],"meta":{"api-version":"2.0"},"name":null}"#,
            "1.1",
        ),
        (r#"{"meta":null,"files":[]}"#, "1.1"),
        (r#"{"meta":{},"files":[]}"#, "1.1"),
    ] {
        let v = json(&whole(body.as_bytes()).unwrap().0);
        assert_eq!(v["name"], "pkg", "{body}");
        assert_eq!(v["meta"]["api-version"], version, "{body}");
        assert_eq!(v["files"], serde_json::json!([]));
        assert_eq!(v["versions"], serde_json::json!([]));
    }
}

const Q: &str = r#"{"status":"quarantined","reason":"malware"}"#;

#[test]
fn a_status_before_the_files_quarantines_them() {
    for body in [
        format!(
            r#"{{"project-status":{Q},"versions":["1.0"],"files":{}}}"#,
            files(3)
        ),
        format!(
            r#"{{"meta":{{"project-status":"quarantined"}},"files":{}}}"#,
            files(3)
        ),
        format!(
            r#"{{"meta":{{"project-status":{Q}}},"project-status":null,"files":{}}}"#,
            files(3)
        ),
    ] {
        let (out, summary) = cut_anywhere(body.as_bytes(), &[]).unwrap();
        assert_eq!((summary.kept, summary.dropped), (0, 3), "{body}");
        let v = json(&out);
        assert!(urls(&v).is_empty());
        assert_eq!(v["versions"], serde_json::json!([]));
    }
}

#[test]
fn a_quarantine_after_a_written_file_fails_the_page() {
    for body in [
        format!(r#"{{"files":{},"project-status":{Q}}}"#, files(3)),
        format!(
            r#"{{"files":{},"meta":{{"project-status":"Quarantined "}}}}"#,
            files(3)
        ),
        // A top-level status lifting the meta's quarantine after files were withheld.
        format!(
            r#"{{"meta":{{"project-status":{Q}}},"files":{},"project-status":"active"}}"#,
            files(3)
        ),
    ] {
        let e = cut_anywhere(body.as_bytes(), &[]);
        assert_eq!(e, Err(RewriteError::LateStatus), "{body}");
    }
}

#[test]
fn a_late_status_that_changes_nothing_is_written_at_the_end() {
    let evil = format!("[{}]", file(1, true));
    for (body, status) in [
        // Archived: files stay; the status is passed on.
        (
            format!(r#"{{"files":{},"project-status":"archived"}}"#, files(2)),
            serde_json::json!("archived"),
        ),
        // A quarantine after files none of which was written: nothing to take back.
        (
            format!(r#"{{"files":{evil},"project-status":{Q}}}"#),
            serde_json::json!({"status": "quarantined", "reason": "malware"}),
        ),
        (
            format!(r#"{{"files":[],"project-status":{Q}}}"#),
            serde_json::json!({"status": "quarantined", "reason": "malware"}),
        ),
    ] {
        let (out, _) = cut_anywhere(body.as_bytes(), &[]).unwrap();
        assert_eq!(json(&out)["project-status"], status, "{body}");
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("],\"meta\":"), "{out}");
    }
    // The top-level status wins over the meta's, as in the whole-page rewrite.
    let body = format!(
        r#"{{"project-status":{{"status":"active"}},"meta":{{"project-status":{Q}}},"files":{}}}"#,
        files(2)
    );
    let (out, summary) = whole(body.as_bytes()).unwrap();
    assert_eq!(summary.kept, 2);
    assert_eq!(
        json(&out)["meta"]["project-status"]["status"],
        "quarantined"
    );
}

#[test]
fn duplicate_top_level_keys_fail_as_serde_would() {
    for key in ["files", "meta", "name", "versions", "project-status"] {
        let body = format!(
            r#"{{"files":[],"meta":{{}},"name":"x","versions":[],"project-status":null,"{key}":null}}"#
        );
        let e = cut_anywhere(body.as_bytes(), &[]).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("JSON: duplicate field `{key}`")),
            "{e}"
        );
    }
    // A key spelled with escapes is the same key.
    let e = whole(br#"{"files":[],"fil\u0065s":[]}"#).unwrap_err();
    assert!(e.to_string().contains("duplicate field `files`"), "{e}");
    // Keys the page does not use may repeat (serde ignores them too).
    assert!(whole(br#"{"files":[],"x":1,"x":[2],"meta":{"a":1,"a":2}}"#).is_ok());
    // Inside a file, duplicates are serde's business.
    let e = whole(br#"{"files":[{"filename":"a","filename":"b","url":"u"}]}"#).unwrap_err();
    assert!(e.to_string().contains("duplicate field `filename`"), "{e}");
}

#[test]
fn escapes_and_utf8_cut_anywhere() {
    let body = r#"{"name":"p\u00e9 \"k\" \\ \/ \ud83d\ude00 ✓é","versions":["1.0\u0000","2\t"],"files":[{"filename":"p\u00e9-1.0.tar.gz","url":"https:\/\/files.pythonhosted.org\/x\/p%C3%A9-1.0.tar.gz","hashes":{"sha256":"\u0061b"},"yanked":"bad \"release\" ✓ \ud83d\ude00"},{"filename":"q-1.0.tar.gz","url":"https://files.pythonhosted.org/x/q-1.0.tar.gz","hashes":{}}],"x":"]}\"[{\\"}"#;
    let (out, summary) = cut_anywhere(body.as_bytes(), &[1, 2, 3, 5]).unwrap();
    assert_eq!(summary.kept, 2);
    let v = json(&out);
    assert_eq!(v["name"], "pé \"k\" \\ / 😀 ✓é");
    assert_eq!(v["files"][0]["filename"], "pé-1.0.tar.gz");
    assert_eq!(v["files"][0]["hashes"]["sha256"], "ab");
    assert_eq!(v["files"][0]["yanked"], "bad \"release\" ✓ 😀");
    assert_eq!(v["versions"], serde_json::json!(["1.0\u{0}", "2\t"]));
}

#[test]
fn utf8_is_checked_everywhere_and_may_be_cut_anywhere() {
    // Even in values pipgate drops unread (serde_json alone would skip those unchecked).
    for bad in [
        &b"{\"files\":[],\"x\":\"\xff\"}"[..],
        b"{\"files\":[],\"x\xc3\":1}",
        b"{\"files\":[{\"filename\":\"a-1.0.zip\",\"url\":\"https://files.pythonhosted.org/a-1.0.zip\",\"gpg-sig\":\"\xed\xa0\x80\"}]}",
        b"{\"files\":[]} \xc3",
    ] {
        assert_eq!(cut_anywhere(bad, &[1]), Err(RewriteError::NotUtf8));
    }
    // An error before the first byte that is not UTF-8 is the one reported, however the page
    // was cut (found by the fuzz target: the whole page once said NotUtf8, a cut one not).
    for (bad, want) in [
        (
            &b"\x05{\"files\":[],\"x\":\"\x8b\"}"[..],
            "JSON: expected `{`",
        ),
        (
            b"{\"files\":[],\"name\":5,\"x\":\"\x8b\"}",
            "JSON: invalid type",
        ),
    ] {
        let e = cut_anywhere(bad, &[1]).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
    }
    let good = "{\"files\":[],\"x\":\"é✓😀\",\"name\":\"é✓😀\"}".as_bytes();
    assert!(cut_anywhere(good, &[1, 2]).is_ok());
}

#[test]
fn whitespace_numbers_literals_and_nesting_cut_anywhere() {
    let body = " \r\n\t{ \"n\" : -12.5e+3 , \"files\" :\n[ \n] , \"t\":true,\"f\":false,\"z\":null,\"i\":1234567,\"o\":{\"a\":[[],{},[{\"]\":\"}\"}],-0,1E-2]},\"name\"\t:\t\"x\" }\n\r\t ";
    let (out, _) = cut_anywhere(body.as_bytes(), &[1, 2, 3]).unwrap();
    assert_eq!(json(&out)["name"], "x");
}

#[test]
fn malformed_pages_fail_wherever_they_are_cut() {
    for bad in [
        "",
        " ",
        "[]",
        "null",
        "\u{feff}{\"files\":[]}",
        "{\"files\":[]}x",
        "{\"files\":[]}{}",
        "{\"files\":[]}}",
        "{\"files\":[],}",
        "{,\"files\":[]}",
        "{\"files\":[] \"name\":\"x\"}",
        "{\"files\" []}",
        "{\"files\":[}",
        "{\"files\":[,]}",
        "{\"files\":[{}]}",
        "{\"files\":[1]}",
        "{\"files\":{}}",
        "{\"files\":null}",
        "{\"files\":[],\"x\":}",
        "{\"files\":[],\"x\":01}",
        "{\"files\":[],\"x\":1.}",
        "{\"files\":[],\"x\":-}",
        "{\"files\":[],\"x\":tru}",
        "{\"files\":[],\"x\":\"\t\"}",
        "{\"files\":[],\"x\":\"\\x\"}",
        "{\"files\":[],\"x\":[1,]}",
        "{\"files\":[],\"name\":5}",
        "{\"files\":[],\"versions\":[1]}",
        "{\"files\":[],\"project-status\":5}",
        "{files:[]}",
        "{\"files\":[]",
        "{\"files\":[],\"name\":\"x\"",
    ] {
        assert!(
            cut_anywhere(bad.as_bytes(), &[1]).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn a_broken_byte_anywhere_fails_the_page_streamed_as_whole() {
    // Every position of a real page, broken in several ways: what the stream accepts, serde_json
    // accepts whole, and the stream answers the same cut anywhere.
    let page = include_bytes!("../../../../testdata/pypi-project.json");
    for at in 0..page.len() {
        for b in [b'"', b'\\', b',', b'}', b']', b'x', 0xff, b'\n'] {
            let mut bad = page.to_vec();
            bad[at] = b;
            let want = whole(&bad);
            if want.is_ok() {
                assert!(
                    serde_json::from_slice::<IgnoredAny>(&bad).is_ok(),
                    "accepted {at}: {b}"
                );
            }
            for cut in [at, at + 1, page.len() / 2] {
                assert_eq!(streamed(&bad, &[cut]), want, "byte {at} = {b}, cut {cut}");
            }
        }
        let mut cut_out = page.to_vec();
        cut_out.remove(at);
        let want = whole(&cut_out);
        assert!(want.is_err() || serde_json::from_slice::<IgnoredAny>(&cut_out).is_ok());
        assert_eq!(streamed(&cut_out, &[at]), want, "byte {at} removed");
    }
}

#[test]
fn errors_name_the_byte_of_the_page() {
    let body = r#"{"name":"x","files":[{"filename":"x","url":"u","size":"big"}]}"#;
    let at = body.find("\"big\"").unwrap();
    let e = cut_anywhere(body.as_bytes(), &[]).unwrap_err().to_string();
    assert!(e.starts_with("JSON: invalid type: string \"big\""), "{e}");
    // serde_json reports the byte after the value it refused.
    assert!(e.ends_with(&format!(" at byte {}", at + 5)), "{e}");
    let e = whole(b"{\"files\":[]}  x").unwrap_err().to_string();
    assert_eq!(e, "JSON: trailing characters after the page at byte 14");
    let e = whole(b"{\"files\":[\n").unwrap_err().to_string();
    assert_eq!(e, "JSON: EOF while parsing the page at byte 11");
    assert_eq!(
        whole(b"{\"name\":\"x\"}").unwrap_err().to_string(),
        "JSON: missing field `files`"
    );
}

#[test]
fn a_value_cut_many_times_is_parsed_again_only_as_it_doubles() {
    // A 1 MiB string fed 1 KiB at a time: parsing it again on every chunk would read it ~1,000
    // times; with the doubling rule a handful.
    let body = format!(
        r#"{{"files":[{},{{"filename":"big.tar.gz","url":"https://files.pythonhosted.org/big.tar.gz","x":"{}"}},{}]}}"#,
        file(1, false),
        "x".repeat(1 << 20),
        file(2, false)
    );
    let mut s = JsonStream::new(
        &index(),
        &page_url(),
        crate::rules::Judge::basic(&crate::Name::new("pkg")),
        None,
    );
    let mut out = Vec::new();
    for chunk in body.as_bytes().chunks(1024) {
        s.feed(chunk, &mut out).unwrap();
    }
    assert!(s.parses() < 60, "{} parses", s.parses());
    assert_eq!(s.finish(&mut out).unwrap().kept, 3);
}

#[test]
fn only_the_value_being_cut_is_held() {
    let body = format!(r#"{{"files":{}}}"#, files(200));
    let mut s = JsonStream::new(
        &index(),
        &page_url(),
        crate::rules::Judge::basic(&crate::Name::new("pkg")),
        None,
    );
    let mut out = Vec::new();
    let longest = (0..200).map(|i| file(i, false).len()).max().unwrap();
    for chunk in body.as_bytes().chunks(4096) {
        s.feed(chunk, &mut out).unwrap();
        assert!(
            s.0.pending.len() <= longest,
            "{} bytes held",
            s.0.pending.len()
        );
    }
}

/// The whole-page rewrite this stream replaced (serde over the whole page, typed output), kept
/// as the oracle of what a page keeps and drops: the output as a JSON value, and the counts.
fn reference(body: &[u8]) -> Result<(Value, usize, usize), String> {
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow, default)]
        meta: Option<Meta<'a>>,
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
        #[serde(borrow)]
        files: Vec<File<'a>>,
        #[serde(borrow, default)]
        versions: Option<Vec<Cow<'a, str>>>,
        #[serde(borrow, default, rename = "project-status")]
        project_status: Option<Status<'a>>,
    }
    #[derive(serde::Serialize)]
    struct PageOut<'a> {
        meta: MetaOut<'a>,
        name: &'a str,
        #[serde(rename = "project-status", skip_serializing_if = "Option::is_none")]
        project_status: Option<&'a Status<'a>>,
        files: Vec<FileOut<'a>>,
        versions: Vec<&'a str>,
    }
    let page: Page<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let meta = page.meta.as_ref();
    let top_status = page.project_status.as_ref();
    let meta_status = meta.and_then(|m| m.project_status.as_ref());
    let quarantined = top_status.or(meta_status).is_some_and(Status::quarantined);
    let api_version = meta
        .and_then(|m| m.api_version.as_deref())
        .filter(|v| emit::is_v1(v))
        .unwrap_or("1.1");
    let title = title_name(&page_url());
    let name = page.name.as_deref().unwrap_or(&title);
    let (index, url) = (index(), page_url());
    let mut files = Vec::new();
    let mut dropped = 0;
    for f in &page.files {
        match file_out(&index, &url, f) {
            Some(out) if !quarantined => files.push(out),
            _ => dropped += 1,
        }
    }
    let versions = if quarantined {
        Vec::new()
    } else {
        page.versions.iter().flatten().map(|v| v.as_ref()).collect()
    };
    let kept = files.len();
    let out = PageOut {
        meta: MetaOut {
            api_version,
            project_status: meta_status,
        },
        name,
        project_status: top_status,
        files,
        versions,
    };
    Ok((serde_json::to_value(&out).unwrap(), kept, dropped))
}

/// Top-level members of a page (the `files` member is added by [`page`]), each with its own
/// layout: values of every JSON kind, keys and strings with escapes, statuses in both places.
fn member() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#""meta":{"api-version":"1.3","_last-serial":123}"#,
        r#""meta" : { "_last-serial" : 1.5e3 , "api-version" : "1.0" }"#,
        r#""meta":{"api-version":"1.4","project-status":{"status":"archived","reason":"done"}}"#,
        r#""meta":{"api-version":"1.4","project-status":"quarantined"}"#,
        r#""meta":{"tracks":["https://corp.test/simple/pkg/"],"api-version":"2.1"}"#,
        r#""meta":null"#,
        r#""name":"Pkg""#,
        r#""name":"p\u00e9\"k\"""#,
        r#""name":null"#,
        r#""versions":["1.0","2.0rc1","3\u00e9"]"#,
        r#""versions":[]"#,
        r#""versions":null"#,
        r#""project-status":{"status":"quarantined","reason":"malware"}"#,
        r#""project-status":"deprecated""#,
        r#""project-status":null"#,
        r#""alternate-locations":["https://mirror.test/simple/pkg/"]"#,
        r#""x\"]}":{"deep":[[[[{"a":"]}\"["}]]]],"n":-0.5E-7,"t":true,"f":false,"z":null}"#,
        r#""number":12345678901234567890"#,
        r#""nothing":null"#,
    ])
    .prop_map(str::to_owned)
}

/// Files of every kind the rule sees: kept, dropped, relative, with PEP 658/714/740 keys.
fn file_member() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        file(1, false),
        file(2, true),
        file(3, false).replace(",", " ,\n "),
        r#"{"filename":"rel-1.0.tar.gz","url":"../../packages/rel-1.0.tar.gz","hashes":{"sha256":"ab","md5":"cd","blake2b_256":"ef"}}"#.to_owned(),
        r#"{"filename":"x-1.0.whl","url":"https://files.pythonhosted.org/x-1.0.whl#sha256=00","hashes":{},"dist-info-metadata":{"sha256":"01"},"provenance":"https://pypi.org/integrity/x","yanked":"bad \"one\"","gpg-sig":true}"#.to_owned(),
        r#"{"filename":"x-2.0.whl","url":"https://files.pythonhosted.org/x-2.0.whl","hashes":{"sha256":"02"},"core-metadata":true,"provenance":"https://evil.test/p","requires-python":null}"#.to_owned(),
        r#"{"filename":"","url":"https://files.pythonhosted.org/y-1.0.zip","hashes":{}}"#.to_owned(),
        r#"{"url":"javascript:alert(1)","filename":"j-1.0.zip","hashes":{"sha256":"03"},"size":0}"#.to_owned(),
    ])
}

fn space() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "\n  ", "\r\n\t"])
}

/// A valid page: the members in any order around `files`, whitespace between any two tokens.
fn page() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((member(), space(), space()), 0..7),
        prop::collection::vec((file_member(), space()), 0..8),
        any::<prop::sample::Index>(),
        (space(), space(), space()),
    )
        .prop_map(|(members, files, at, (a, b, c))| {
            // serde refuses duplicate known keys; keep the first of each.
            let mut seen = Vec::new();
            let mut parts: Vec<String> = Vec::new();
            for (m, s1, s2) in members {
                let key = m[..m.find(':').unwrap_or(0)].trim().to_owned();
                if key.starts_with("\"x")
                    || key == "\"number\""
                    || key == "\"nothing\""
                    || !seen.contains(&key)
                {
                    seen.push(key);
                    parts.push(format!("{s1}{m}{s2}"));
                }
            }
            let files: Vec<String> = files
                .into_iter()
                .map(|(f, s)| format!("{s}{f}{s}"))
                .collect();
            let files = format!("{b}\"files\"{b}:{c}[{}]{c}", files.join(","));
            parts.insert(at.index(parts.len() + 1), files);
            format!("{a}{{{}}}{a}", parts.join(","))
        })
}

fn cuts(len: usize, raw: &[prop::sample::Index]) -> Vec<usize> {
    raw.iter().map(|c| c.index(len + 1)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cut_anywhere_a_page_rewrites_as_the_whole_page(
        body in page(),
        raw in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let whole = whole(body.as_bytes());
        prop_assert_eq!(&streamed(body.as_bytes(), &cuts(body.len(), &raw)), &whole, "{}", body);
        match (&whole, reference(body.as_bytes())) {
            (Ok((out, s)), Ok((want, kept, dropped))) => {
                prop_assert_eq!(&json(out), &want, "{}", body);
                prop_assert_eq!((s.kept, s.dropped), (kept, dropped));
            }
            // A status after the files it would change: the whole-page rewrite had it all.
            (Err(RewriteError::LateStatus), Ok(_)) => {}
            (w, r) => prop_assert!(false, "stream {:?}, reference {:?}: {}", w, r, body),
        }
    }

    #[test]
    fn a_broken_page_fails_however_it_is_cut(
        body in page(),
        edits in prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                0u8..3,
                prop::sample::select(b"\"\\,:{}[]x0-.e \xff\xc3".to_vec()),
            ),
            1..3,
        ),
        raw in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        // One broken byte, or two (so that which error comes first matters).
        let mut bad = body.into_bytes();
        for (at, edit, byte) in edits {
            let at = at.index(bad.len());
            match edit {
                0 => bad[at] = byte,
                1 => bad.insert(at, byte),
                _ => {
                    bad.remove(at);
                }
            }
        }
        let whole = whole(&bad);
        prop_assert_eq!(&streamed(&bad, &cuts(bad.len(), &raw)), &whole);
        // Never accepts what serde_json refuses when it reads the page whole (skipping values
        // it does not keep, as the whole-page rewrite did).
        if whole.is_ok() {
            prop_assert!(serde_json::from_slice::<IgnoredAny>(&bad).is_ok(), "{}", String::from_utf8_lossy(&bad));
        }
    }
}
