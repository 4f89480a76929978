//! HTML project pages and root listings: never panic, and re-synthesis is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipgate_policy::PageFormat;

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
    if let Ok(out) = policy.rewrite_project(index, &url, PageFormat::Html, data) {
        // Our own output must pass through unchanged in what it offers.
        let again = policy.rewrite_project(index, &url, PageFormat::Html, &out.body);
        assert!(matches!(again, Ok(ref r) if r.kept == out.kept && r.dropped == 0));
    }
    let _ = policy.rewrite_root(index, &url, PageFormat::Html, data, &|_| false);
    let _ = pipgate_policy::private_page_tracks(PageFormat::Html, &url, data);
});
