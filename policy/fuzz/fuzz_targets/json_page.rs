//! JSON project pages, root listings and legacy JSON: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipgate_policy::PageFormat;

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
    if let Ok(out) = policy.rewrite_project(index, &url, PageFormat::JsonV1, data) {
        let again = policy.rewrite_project(index, &url, PageFormat::JsonV1, &out.body);
        assert!(matches!(again, Ok(ref r) if r.kept == out.kept && r.dropped == 0));
    }
    let _ = policy.rewrite_root(index, &url, PageFormat::JsonV1, data, &|_| false);
    let _ = policy.rewrite_legacy_json(index, &url, data);
    let _ = pipgate_policy::private_page_tracks(PageFormat::JsonV1, &url, data);
});
