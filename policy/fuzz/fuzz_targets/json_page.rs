//! JSON project pages, root listings and legacy JSON: never panic, re-synthesis is a fixed
//! point, and a page streamed in chunks of any size rewrites exactly as the whole page does
//! (or fails with the same error). A JSON page written as HTML (for a client that wants HTML,
//! when the rules need the JSON's upload times) offers exactly the files the JSON output does,
//! and reads back as HTML the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipgate_policy::{PageFormat, ProjectStream};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some(policy) = common::policy() else {
        return;
    };
    let index = &policy.indexes()[0];
    let Ok(url) = url::Url::parse("https://pypi.org/simple/x/") else {
        return;
    };
    let whole = policy.rewrite_project(index, &url, PageFormat::JsonV1, data);
    if let Ok(out) = &whole {
        // Our own output passes through unchanged.
        let again = policy.rewrite_project(index, &url, PageFormat::JsonV1, &out.body);
        assert!(
            matches!(again, Ok(ref r) if r.body == out.body && r.kept == out.kept && r.dropped == 0)
        );
    }
    // The chunk sizes come from the input, so the fuzzer explores the cuts too: the first byte
    // picks one size, the second (when odd) makes every other chunk a single byte.
    let step = 1 + usize::from(data.first().copied().unwrap_or(0)) % 61;
    let alternate = data.get(1).is_some_and(|b| b % 2 == 1);
    {
        let mut stream = ProjectStream::new(index, &url, PageFormat::JsonV1);
        let mut out = Vec::new();
        let mut rest = data;
        let mut fed = Ok(());
        let mut n = 0usize;
        while !rest.is_empty() && fed.is_ok() {
            let size = if alternate && n % 2 == 1 { 1 } else { step };
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            fed = stream.feed(chunk, &mut out);
            rest = tail;
            n += 1;
        }
        let streamed = fed
            .and_then(|()| stream.finish(&mut out))
            .map(|s| (out, s.kept, s.dropped));
        assert_eq!(
            streamed,
            whole
                .as_ref()
                .map(|w| (w.body.clone(), w.kept, w.dropped))
                .map_err(|e| e.clone())
        );
    }
    let judge = || pipgate_policy::Judge::basic(&pipgate_policy::Name::new("x"));
    let html = policy.rewrite_judged(
        index,
        &url,
        PageFormat::JsonV1,
        PageFormat::Html,
        judge(),
        data,
    );
    match (&whole, &html) {
        (Ok(json), Ok(html)) => {
            assert_eq!((json.kept, json.dropped), (html.kept, html.dropped));
            // The HTML written passes the HTML rewrite with every link kept.
            let again = policy.rewrite_project(index, &url, PageFormat::Html, &html.body);
            assert!(
                matches!(again, Ok(ref r) if r.kept == html.kept && r.dropped == 0),
                "{again:?}"
            );
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "JSON and HTML output disagree: {:?} / {:?}",
            a.is_ok(),
            b.is_ok()
        ),
    }
    let _ = policy.rewrite_root(index, &url, PageFormat::JsonV1, data, &|_| false);
    let judge = pipgate_policy::Judge::basic(&pipgate_policy::Name::new("pkg"));
    if let Ok(out) = policy.rewrite_legacy_json(index, &url, &judge, data) {
        // The legacy walk's own output passes through unchanged too.
        let again = policy.rewrite_legacy_json(index, &url, &judge, &out.body);
        assert!(
            matches!(again, Ok(ref r) if r.body == out.body && r.kept == out.kept && r.dropped == 0)
        );
    }
    let _ = pipgate_policy::private_page_tracks(PageFormat::JsonV1, &url, data);
});
