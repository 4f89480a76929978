//! HTML project pages and root listings: never panic, re-synthesis is a fixed point, and a
//! page streamed in chunks of any size rewrites exactly as the whole page does (or fails too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipgate_policy::{PageFormat, ProjectStream};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(pipgate_policy::fuzzing::scanner_matches_reference(text));
    }
    let Some(policy) = common::policy() else {
        return;
    };
    let index = &policy.indexes()[0];
    let Ok(url) = url::Url::parse("https://pypi.org/simple/x/") else {
        return;
    };
    let whole = policy.rewrite_project(index, &url, PageFormat::Html, data);
    if let Ok(out) = &whole {
        // Our own output must pass through unchanged in what it offers.
        let again = policy.rewrite_project(index, &url, PageFormat::Html, &out.body);
        assert!(matches!(again, Ok(ref r) if r.kept == out.kept && r.dropped == 0));
    }
    // The chunk size comes from the input, so the fuzzer explores the cuts too.
    let step = 1 + usize::from(data.first().copied().unwrap_or(0)) % 61;
    {
        let mut stream = ProjectStream::new(index, &url, PageFormat::Html);
        let mut out = Vec::new();
        let fed = data.chunks(step).try_for_each(|c| stream.feed(c, &mut out));
        let streamed = fed
            .and_then(|()| stream.finish(&mut out))
            .map(|s| (out, s.kept, s.dropped));
        // Which error a broken page reports may depend on what was read first; that it fails
        // may not.
        match (streamed, whole) {
            (Ok(s), Ok(w)) => assert_eq!(s, (w.body, w.kept, w.dropped)),
            (Err(_), Err(_)) => {}
            (s, w) => panic!("streamed {s:?}, whole {w:?}"),
        }
    }
    let _ = policy.rewrite_root(index, &url, PageFormat::Html, data, &|_| false);
    let _ = pipgate_policy::private_page_tracks(PageFormat::Html, &url, data);
});
