//! Request paths and names: never panic; a classified name is always normalized.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipgate_policy::{normalize, Check, Name};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Some(policy) = common::policy() else {
        return;
    };
    assert_eq!(normalize(&normalize(s)), normalize(s));
    for host in ["pypi.org", "files.pythonhosted.org", "corp.test"] {
        if let Ok(t) = policy.classify(host, s) {
            if let Some(n) = t.name() {
                assert_eq!(&Name::new(n.as_str()), n);
            }
            if let Check::Done(pipgate_policy::Verdict::Block(b)) =
                policy.check(&t, time::OffsetDateTime::UNIX_EPOCH)
            {
                assert!(!b.message.contains('\n'));
            }
        }
    }
});
