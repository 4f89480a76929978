//! The pins file (`policy.provenance.pins`): the Trusted Publisher each project's files must
//! come from, one line a project, operator-editable:
//!
//! ```toml
//! [pins]
//! requests = "github.com/psf/requests (publish.yml)"
//! ```
//! Keys are project names (any spelling; normalized when read). pipgate adds the first
//! verified publisher of a project (`pin_publisher = true`), and `pipgate provenance accept`
//! replaces one; both read the file again, change one key and write it atomically (a
//! temporary file in the same directory, renamed over it), so an operator's comments and
//! other pins stay. A running pipgate reads the file at start and on reload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pipgate_policy::Name;
use toml_edit::{DocumentMut, Item, Table, Value};

/// Why the pins file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinsError {
    /// It exists but cannot be read.
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// It is not TOML, or not a `[pins]` table of strings.
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    /// It cannot be written.
    #[error("{0}: cannot write: {1}")]
    Write(PathBuf, std::io::Error),
}

const HEADER: &str = "# pipgate provenance pins (policy.provenance.pins): the Trusted Publisher each project's\n# files must come from. Edit by hand, or: pipgate provenance accept NAME\n";

fn read_doc(path: &Path) -> Result<DocumentMut, PinsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_owned(),
        Err(e) => return Err(PinsError::Read(path.to_owned(), e)),
    };
    text.parse::<DocumentMut>()
        .map_err(|e| PinsError::Parse(path.to_owned(), e.to_string().trim().replace('\n', " ")))
}

/// The pins in `path`; a file that does not exist has none.
pub(crate) fn load(path: &Path) -> Result<BTreeMap<Name, String>, PinsError> {
    let doc = read_doc(path)?;
    let bad = |m: String| PinsError::Parse(path.to_owned(), m);
    let mut out = BTreeMap::new();
    for (key, item) in doc.iter() {
        if key != "pins" {
            return Err(bad(format!(
                "unknown key '{key}' (expected a [pins] table)"
            )));
        }
        let table = item
            .as_table_like()
            .ok_or_else(|| bad("'pins' is not a table".into()))?;
        for (name, v) in table.iter() {
            let publisher = v.as_str().ok_or_else(|| {
                bad(format!(
                    "pins.{name}: expected a string like \"github.com/owner/repo (publish.yml)\""
                ))
            })?;
            out.insert(Name::new(name), publisher.to_owned());
        }
    }
    Ok(out)
}

/// Sets `name`'s pin to `publisher` in the file (only when it has none, unless `replace`),
/// keeping everything else in it; written atomically.
pub(crate) fn record(
    path: &Path,
    name: &Name,
    publisher: &str,
    replace: bool,
) -> Result<(), PinsError> {
    let mut doc = read_doc(path)?;
    let pins = doc
        .entry("pins")
        .or_insert_with(|| Item::Table(Table::new()));
    let Some(pins) = pins.as_table_like_mut() else {
        return Err(PinsError::Parse(
            path.to_owned(),
            "'pins' is not a table".into(),
        ));
    };
    // An existing key in another spelling is the same project.
    let existing = pins
        .iter()
        .map(|(k, _)| k.to_owned())
        .find(|k| Name::new(k) == *name);
    match existing {
        Some(_) if !replace => return Ok(()),
        Some(k) => {
            pins.insert(&k, Item::Value(Value::from(publisher)));
        }
        None => {
            pins.insert(name.as_str(), Item::Value(Value::from(publisher)));
        }
    }
    write_atomic(path, doc.to_string().as_bytes())
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PinsError> {
    let fail = |e| PinsError::Write(path.to_owned(), e);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_read_recorded_and_replaced_keeping_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins.toml");
        assert!(load(&path).unwrap().is_empty());
        std::fs::write(
            &path,
            "# ours\n[pins]\nRequests = \"github.com/psf/requests (publish.yml)\" # checked\n",
        )
        .unwrap();
        let name = Name::new("requests");
        record(&path, &name, "github.com/evil/requests (x.yml)", false).unwrap();
        assert_eq!(
            load(&path).unwrap()[&name],
            "github.com/psf/requests (publish.yml)"
        );
        record(
            &path,
            &Name::new("urllib3"),
            "github.com/urllib3/urllib3 (publish.yml)",
            false,
        )
        .unwrap();
        record(&path, &name, "github.com/psf/requests (release.yml)", true).unwrap();
        let pins = load(&path).unwrap();
        assert_eq!(pins[&name], "github.com/psf/requests (release.yml)");
        assert_eq!(pins.len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# ours\n"), "{text}");
        std::fs::write(&path, "[pins]\nx = 1\n").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("pins.x"));
        std::fs::write(&path, "other = 1\n").unwrap();
        assert!(load(&path).is_err());
    }
}
