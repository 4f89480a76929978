//! The whole configured policy: indexes plus name rules, built once and shared read-only.

use crate::{index::canonical_host, Error, Index, Role, Rules};

/// A validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    indexes: Vec<Index>,
    rules: Rules,
}

impl Policy {
    /// Builds a policy; index names must be unique.
    pub fn new(indexes: Vec<Index>, rules: Rules) -> Result<Policy, Error> {
        for (i, a) in indexes.iter().enumerate() {
            if indexes[..i].iter().any(|b| b.name() == a.name()) {
                return Err(Error::DuplicateIndex(a.name().to_owned()));
            }
        }
        Ok(Policy { indexes, rules })
    }

    /// The configured indexes, in config order.
    pub fn indexes(&self) -> &[Index] {
        &self.indexes
    }

    /// The name rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The index a host belongs to: an index host first, then a file host (config order within
    /// each). `host` is a bare host (no port), any case.
    pub fn index_for_host(&self, host: &str) -> Option<&Index> {
        let host = canonical_host(host)?;
        self.index_by_own_host(&host)
            .or_else(|| self.indexes.iter().find(|i| i.is_file_host(&host)))
    }

    pub(crate) fn index_by_own_host(&self, canonical: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.host() == canonical)
    }

    /// Whether pipgate terminates TLS for `host` (it is an index or file host).
    pub fn is_intercepted(&self, host: &str) -> bool {
        self.index_for_host(host).is_some()
    }

    /// The private indexes, in config order.
    pub fn private_indexes(&self) -> impl Iterator<Item = &Index> {
        self.indexes.iter().filter(|i| i.role() == Role::Private)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(name: &str, url: &str, role: Role, files: &[&str]) -> Index {
        let files: Vec<String> = files.iter().map(|s| s.to_string()).collect();
        Index::new(name, url, role, &files).unwrap()
    }

    #[test]
    fn hosts_and_roles() {
        let p = Policy::new(
            vec![
                idx(
                    "pypi",
                    "https://pypi.org/simple/",
                    Role::Public,
                    &["files.pythonhosted.org"],
                ),
                idx(
                    "corp",
                    "https://pypi.corp.example/simple/",
                    Role::Private,
                    &["pypi.org"],
                ),
            ],
            Rules::default(),
        )
        .unwrap();
        assert_eq!(p.index_for_host("PYPI.org").unwrap().name(), "pypi");
        assert_eq!(p.index_for_host("pypi.org.").unwrap().name(), "pypi");
        assert_eq!(
            p.index_for_host("files.pythonhosted.org").unwrap().name(),
            "pypi"
        );
        assert!(p.is_intercepted("pypi.corp.example"));
        assert!(!p.is_intercepted("evil.example"));
        assert!(!p.is_intercepted(""));
        assert_eq!(
            p.private_indexes().map(|i| i.name()).collect::<Vec<_>>(),
            ["corp"]
        );
    }

    #[test]
    fn duplicate_names_refused() {
        let a = idx("x", "https://a/", Role::Public, &[]);
        let b = idx("x", "https://b/", Role::Public, &[]);
        assert!(matches!(
            Policy::new(vec![a, b], Rules::default()),
            Err(Error::DuplicateIndex(n)) if n == "x"
        ));
    }
}
