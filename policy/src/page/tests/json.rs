//! PEP 691 JSON pages: the link rule, PEP 700/714/740 keys, quarantine, one-line errors.

use super::*;

fn json(body: &str) -> (serde_json::Value, Rewritten) {
    let p = policy();
    let r = p
        .rewrite_project(
            &p.indexes()[0],
            &page_url(),
            PageFormat::JsonV1,
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(r.content_type, "application/vnd.pypi.simple.v1+json");
    (serde_json::from_slice(&r.body).unwrap(), r)
}

fn urls(v: &serde_json::Value) -> Vec<String> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["url"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn json_link_rule_cases() {
    let files: Vec<String> = [
        F.to_owned(),
        "../../p/rel-1.0.tar.gz".to_owned(),
        "//evil.example/x-1.0.tar.gz".to_owned(),
        "http://files.pythonhosted.org/x-1.0.tar.gz".to_owned(),
        "https://evil.example/x-1.0.tar.gz".to_owned(),
        "javascript:alert(1)".to_owned(),
        "https://files.pythonhosted.org/p/".to_owned(),
        format!(" {F}#sha256=00 "),
    ]
    .iter()
    .map(|u| {
        format!(
            r#"{{"filename":"x-1.0.tar.gz","url":{},"hashes":{{"sha256":"ab"}}}}"#,
            serde_json::Value::from(u.as_str())
        )
    })
    .collect();
    let body = format!(
        r#"{{"meta":{{"api-version":"1.1"}},"name":"x","files":[{}]}}"#,
        files.join(",")
    );
    let (v, r) = json(&body);
    assert_eq!(urls(&v), [F, "https://pypi.org/p/rel-1.0.tar.gz", F]);
    assert_eq!((r.kept, r.dropped), (3, 5));
    assert_eq!(v["files"][0]["hashes"]["sha256"], "ab");
}

#[test]
fn json_fixture_keys() {
    let (v, r) = json(include_str!("../../../testdata/pypi-project.json"));
    assert_eq!((r.kept, r.dropped), (4, 1));
    assert_eq!(v["meta"]["api-version"], "1.3");
    assert_eq!(v["name"], "sampleproject");
    assert_eq!(v["versions"].as_array().unwrap().len(), 5);
    let f = &v["files"];
    assert_eq!(f[0]["size"], 15023);
    assert_eq!(f[0]["upload-time"], "2015-06-14T14:38:05.875222Z");
    assert_eq!(f[0]["core-metadata"], false);
    assert!(f[0].get("requires-python").is_none() && f[0].get("provenance").is_none());
    // dist-info-metadata is carried over under its PEP 714 name only.
    assert_eq!(
        f[1]["core-metadata"]["sha256"],
        "11aa22bb33cc44dd55ee66ff7788990011aa22bb33cc44dd55ee66ff77889900"
    );
    assert!(f[1].get("dist-info-metadata").is_none() && f[1].get("gpg-sig").is_none());
    // Unknown hash names are not passed on.
    assert!(f[1]["hashes"].get("blake2b_256").is_none());
    assert_eq!(f[2]["yanked"], "broken release <see #12>");
    assert_eq!(f[3]["provenance"], "https://pypi.org/integrity/sampleproject/2.0.0/sampleproject-2.0.0-py3-none-any.whl/provenance");
    assert_eq!(
        f[3]["core-metadata"]["sha256"],
        "22aa22bb33cc44dd55ee66ff7788990011aa22bb33cc44dd55ee66ff77889900"
    );
    assert!(!String::from_utf8(r.body).unwrap().contains("mirror"));
}

#[test]
fn json_quarantine_and_version() {
    for body in [
        format!(
            r#"{{"meta":{{"api-version":"2.0"}},"project-status":{{"status":"quarantined","reason":"malware"}},"versions":["1.0"],"files":[{{"filename":"x-1.0.tar.gz","url":"{F}","hashes":{{}}}}]}}"#
        ),
        format!(
            r#"{{"meta":{{"api-version":"2.0","project-status":{{"status":"quarantined"}}}},"versions":["1.0"],"files":[{{"filename":"x-1.0.tar.gz","url":"{F}","hashes":{{}}}}]}}"#
        ),
    ] {
        let (v, r) = json(&body);
        assert_eq!((r.kept, r.dropped), (0, 1));
        assert!(v["files"].as_array().unwrap().is_empty());
        assert!(v["versions"].as_array().unwrap().is_empty());
        assert_eq!(v["meta"]["api-version"], "1.1");
        let status = v
            .get("project-status")
            .or(v["meta"].get("project-status"))
            .unwrap();
        assert_eq!(status["status"], "quarantined");
    }
    assert_eq!(json(r#"{"files":[]}"#).0["name"], "sampleproject");
}

#[test]
fn json_errors_are_one_line() {
    let p = policy();
    let i = &p.indexes()[0];
    for (body, want) in [
        (&b"{}"[..], "JSON: missing field `files`"),
        (b"not json", "JSON: expected"),
        (
            b"{\"files\":[{\"filename\":\"x\"}]}",
            "JSON: missing field `url`",
        ),
        (
            b"{\"files\":[{\"filename\":\"x\",\"url\":\"u\",\"size\":\"big\"}]}",
            "JSON: invalid type",
        ),
    ] {
        let e = p
            .rewrite_project(i, &page_url(), PageFormat::JsonV1, body)
            .unwrap_err();
        assert!(e.to_string().starts_with(want), "{e}");
        assert!(!e.to_string().contains('\n'));
    }
}

#[test]
fn json_pages_stream_through_the_public_api() {
    let p = policy();
    let i = &p.indexes()[0];
    let body = include_bytes!("../../../testdata/pypi-project.json");
    let whole = p
        .rewrite_project(i, &page_url(), PageFormat::JsonV1, body)
        .unwrap();
    let mut s = ProjectStream::new(i, &page_url(), PageFormat::JsonV1);
    assert_eq!(s.content_type(), "application/vnd.pypi.simple.v1+json");
    let mut out = Vec::new();
    for chunk in body.chunks(7) {
        s.feed(chunk, &mut out).unwrap();
    }
    let summary = s.finish(&mut out).unwrap();
    assert_eq!(out, whole.body);
    assert_eq!((summary.kept, summary.dropped), (whole.kept, whole.dropped));
    // HTML still goes to the HTML stream.
    let s = ProjectStream::new(i, &page_url(), PageFormat::HtmlV1);
    assert_eq!(s.content_type(), "application/vnd.pypi.simple.v1+html");
}
