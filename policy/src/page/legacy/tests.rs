//! The walk against the whole-document rewrite it replaced (kept here as the reference): the
//! same bytes out, the same counts, and an error for the same documents.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use url::Url;

use super::super::{link, Rewritten};
use super::rewrite;
use crate::{Index, RewriteError, Role};

/// The rewrite as it was: the whole document parsed into `Value`s, filtered, serialized.
#[derive(Deserialize, Serialize)]
struct Legacy {
    info: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_serial: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vulnerabilities: Option<Value>,
    urls: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    releases: Option<Map<String, Value>>,
}

fn reference(index: &Index, page_url: &Url, body: &[u8]) -> Result<Rewritten, RewriteError> {
    let mut doc: Legacy = serde_json::from_slice(body)?;
    let (mut kept, mut dropped) = (0, 0);
    let mut filter = |entries: Vec<Value>| -> Result<Vec<Value>, RewriteError> {
        let mut out = Vec::with_capacity(entries.len());
        for mut e in entries {
            let obj = e
                .as_object_mut()
                .ok_or_else(|| RewriteError::Json("file entry is not an object".to_owned()))?;
            let url = obj
                .get("url")
                .and_then(Value::as_str)
                .and_then(|u| link::resolve(page_url, u))
                .filter(|u| link::allowed(index, u) && link::filename(u).is_some());
            match url {
                Some(u) => {
                    obj.insert("url".to_owned(), Value::String(u.into()));
                    out.push(e);
                    kept += 1;
                }
                None => dropped += 1,
            }
        }
        Ok(out)
    };
    doc.urls = filter(std::mem::take(&mut doc.urls))?;
    if let Some(releases) = doc.releases.as_mut() {
        for (version, files) in releases.iter_mut() {
            let Value::Array(list) = std::mem::take(files) else {
                return Err(RewriteError::Json(format!(
                    "releases entry {:?} is not an array",
                    version
                        .chars()
                        .filter(|c| !c.is_control())
                        .collect::<String>()
                )));
            };
            *files = Value::Array(filter(list)?);
        }
    }
    let body = serde_json::to_vec(&doc)?;
    Ok(Rewritten {
        body,
        content_type: "application/json",
        kept,
        dropped,
        summary: crate::Summary {
            kept,
            dropped,
            ..crate::Summary::default()
        },
    })
}

fn index() -> Index {
    Index::new(
        "pypi",
        "https://pypi.org/simple/",
        Role::Public,
        &["files.pythonhosted.org".to_owned()],
    )
    .unwrap()
}

fn page_url() -> Url {
    Url::parse("https://pypi.org/pypi/x/json").unwrap()
}

/// Whether both accepted `body` (having checked they agree).
fn same(body: &[u8]) -> bool {
    let (index, url) = (index(), page_url());
    let new = rewrite(
        &index,
        &url,
        &crate::rules::Judge::basic(&crate::Name::new("pkg")),
        body,
    );
    let old = reference(&index, &url, body);
    match (new, old) {
        (Ok(new), Ok(old)) => {
            assert_eq!(
                String::from_utf8_lossy(&new.body),
                String::from_utf8_lossy(&old.body)
            );
            assert_eq!((new.kept, new.dropped), (old.kept, old.dropped));
            true
        }
        (Err(_), Err(_)) => false,
        (new, old) => panic!(
            "{}: new {:?}, old {:?}",
            String::from_utf8_lossy(body),
            new.map(|r| r.kept),
            old.map(|r| r.kept)
        ),
    }
}

const URLS: &[&str] = &[
    "https://files.pythonhosted.org/packages/ab/cd/x-1.0.tar.gz",
    "https://files.pythonhosted.org/packages/ab/cd/x-1.0-py3-none-any.whl#sha256=00",
    "/packages/x-1.0.tar.gz",
    "http://files.pythonhosted.org/x-1.0.tar.gz",
    "https://evil.example/x-1.0.tar.gz",
    "https://files.pythonhosted.org/",
    "javascript:alert(1)",
];

fn entry() -> impl Strategy<Value = Value> {
    prop_oneof![
        40 => (0..URLS.len() + 1, any::<bool>(), "[a-z<&\"\\\\é]{0,6}").prop_map(|(u, extra, text)| {
            let mut e = json!({"filename": "x-1.0.tar.gz", "digests": {"sha256": "ab"}, "size": 1});
            if let Some(url) = URLS.get(u) {
                e["url"] = json!(url);
            }
            if extra {
                e["comment_text"] = json!(text);
            }
            e
        }),
        1 => Just(json!(1)),
        2 => Just(json!({"url": 7})),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(
            0.95,
            prop_oneof![
                9 => Just(json!({"name": "x", "b": [1], "a": null})),
                1 => Just(json!(null)),
            ],
        ),
        prop::option::of(prop_oneof![
            Just(json!(7)),
            Just(json!(null)),
            Just(json!("s"))
        ]),
        prop::option::of(prop_oneof![Just(json!([])), Just(json!(null))]),
        prop::option::weighted(
            0.95,
            prop_oneof![
                9 => prop::collection::vec(entry(), 0..4).prop_map(Value::Array),
                1 => Just(json!(null)),
            ],
        ),
        prop::option::of(prop_oneof![
            4 => prop::collection::btree_map("[0-9.a-z]{1,4}", prop_oneof![
                20 => prop::collection::vec(entry(), 0..4).prop_map(Value::Array),
                1 => Just(json!({})),
                1 => Just(json!(null)),
            ], 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => Just(json!(null)),
        ]),
        any::<bool>(),
    )
        .prop_map(|(info, serial, vulns, urls, releases, unknown)| {
            let mut doc = Map::new();
            if unknown {
                doc.insert("ownership".into(), json!({"roles": []}));
            }
            for (k, v) in [
                ("releases", releases),
                ("urls", urls),
                ("info", info),
                ("last_serial", serial),
                ("vulnerabilities", vulns),
            ] {
                if let Some(v) = v {
                    doc.insert(k.into(), v);
                }
            }
            Value::Object(doc)
        })
}

#[test]
fn the_walk_writes_what_the_whole_document_rewrite_wrote() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2000));
    let accepted = std::cell::Cell::new(0);
    runner
        .run(&document(), |doc| {
            if same(&serde_json::to_vec(&doc).unwrap()) {
                accepted.set(accepted.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // Mostly documents both accept, so the comparison is of output, not only of refusals.
    assert!(accepted.get() > 1000, "{} of 2000 accepted", accepted.get());
}

#[test]
fn whitespace_escapes_and_trailing_bytes_behave_as_before() {
    // Each body with whether both rewrites accept it.
    for (body, accepted) in [
        (&b" { \"urls\" : [ ] , \"info\" : { \"a\\u0041\" : \"\\u00e9\" } } \n"[..], true),
        (b"{\"urls\":[],\"info\":{}} x", false),
        (b"{\"urls\":[],\"info\":{},\"urls\":[]}", false),
        (b"{\"urls\":[],\"info\":{},\"last_serial\":1,\"last_serial\":2}", false),
        (b"{\"urls\":[],\"info\":{}", false),
        (b"{}", false),
        (b"", false),
        // A repeated key inside a file entry: the last one (off-host) counts, so it is dropped.
        (b"{\"info\":{},\"urls\":[{\"url\":\"https://files.pythonhosted.org/x-1.0.tar.gz\",\"url\":\"https://evil.example/x-1.0.tar.gz\"}]}", true),
    ] {
        assert_eq!(same(body), accepted, "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn a_repeated_version_counts_once_as_its_last_value() {
    let f = "https://files.pythonhosted.org/packages/x-1.0.tar.gz";
    let body = format!(
        r#"{{"info":{{}},"urls":[],"releases":{{"1.0":[{{"url":"{f}"}},{{"url":"{f}"}}],"1.0":[{{"url":"https://evil.example/x-1.0.tar.gz"}}]}}}}"#
    );
    assert!(same(body.as_bytes()));
    let r = rewrite(
        &index(),
        &page_url(),
        &crate::rules::Judge::basic(&crate::Name::new("pkg")),
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!((r.kept, r.dropped), (0, 1));
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        r#"{"info":{},"urls":[],"releases":{"1.0":[]}}"#
    );
}

#[test]
fn download_url_stays_only_when_it_passes_the_link_rule() {
    let info = |url: &str| json!({"info": {"name": "x", "download_url": url, "home_page": "https://github.com/x/x"}, "urls": []});
    let out = |url: &str| -> Value {
        let body = serde_json::to_vec(&info(url)).unwrap();
        serde_json::from_slice(
            &rewrite(
                &index(),
                &page_url(),
                &crate::rules::Judge::basic(&crate::Name::new("pkg")),
                &body,
            )
            .unwrap()
            .body,
        )
        .unwrap()
    };
    for offsite in [
        "https://evil.example/x-1.0.tar.gz",
        "http://files.pythonhosted.org/x-1.0.tar.gz",
        "javascript:alert(1)",
        "//evil.example/x.tar.gz",
    ] {
        assert_eq!(
            out(offsite)["info"]["download_url"],
            Value::Null,
            "{offsite}"
        );
    }
    let on_host = "https://files.pythonhosted.org/packages/x-1.0.tar.gz";
    assert_eq!(out(on_host)["info"]["download_url"], json!(on_host));
    assert_eq!(out("")["info"]["download_url"], json!(""));
    // Metadata URLs are kept as they are (no installer downloads from them).
    assert_eq!(
        out("")["info"]["home_page"],
        json!("https://github.com/x/x")
    );
}
