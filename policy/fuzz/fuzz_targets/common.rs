//! The policy every target runs against: one public index with a file host, one private.

use pipgate_policy::{Index, NamePattern, Policy, Role, Rules};

pub fn policy() -> Option<Policy> {
    let public = Index::new(
        "pypi",
        "https://pypi.org/simple/",
        Role::Public,
        &["files.pythonhosted.org".to_owned()],
    )
    .ok()?;
    let private = Index::new("corp", "http://corp.test:8080/", Role::Private, &[]).ok()?;
    Policy::new(
        vec![public, private],
        Rules {
            private: vec![NamePattern::parse("acme-*").ok()?],
            ..Rules::default()
        },
    )
    .ok()
}
