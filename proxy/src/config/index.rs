//! `[[index]]`: the indexes pipgate intercepts, and their roles.

use std::fmt;

use pipgate_policy::{Index, Role};

use super::section::Section;
use super::value::{quoted, Toml};

/// Without `[[index]]`, public PyPI.
pub(super) fn default_indexes() -> Vec<Index> {
    let pypi = Index::new(
        "pypi",
        "https://pypi.org/simple/",
        Role::Public,
        &["files.pythonhosted.org".to_owned()],
    );
    pypi.into_iter().collect()
}

/// Every `[[index]]` of the file; an invalid one is an error (and absent from the list).
pub(super) fn read(s: &mut Section<'_>) -> Vec<Index> {
    let indexes: Vec<Option<Index>> = s.sections("index", |ix| {
        let name: Option<String> = ix.require("name");
        let url: Option<String> = ix.require("url");
        let role: Option<Role> = ix.require("role");
        let file_hosts: Vec<String> = ix.list("file_hosts");
        let (name, url, role) = (name?, url?, role?);
        Index::new(&name, &url, role, &file_hosts)
            .map_err(|e| ix.error("url", ix.span_of("url"), e.to_string()))
            .ok()
    });
    if indexes.is_empty() {
        return default_indexes();
    }
    indexes.into_iter().flatten().collect()
}

/// Prints one index as an `[[index]]` table.
pub(super) struct Printed<'a>(pub &'a Index);

impl fmt::Display for Printed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ix = self.0;
        writeln!(f, "\n[[index]]")?;
        f.write_str("name = ")?;
        quoted(f, ix.name())?;
        f.write_str("\nurl = ")?;
        quoted(f, ix.url().as_str())?;
        writeln!(f, "\nrole = {}", Toml(&ix.role()))?;
        let hosts: Vec<String> = ix.file_hosts().to_vec();
        writeln!(f, "file_hosts = {}", super::value::List(&hosts))
    }
}
