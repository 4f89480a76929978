//! PEP 792 quarantine: a project its index marks `quarantined` offers no file (every index,
//! private ones included: it is the index's own word, so it is never only audited).

use pep440_rs::Version;
use time::OffsetDateTime;

use super::{FileFacts, FileRecord, FileRule, Mode, Needs};
use crate::{Name, Rule};

/// The quarantine rule; it has no config.
#[derive(Debug)]
pub(super) struct Quarantine;

impl FileRule for Quarantine {
    fn rule(&self) -> Rule {
        Rule::Quarantine
    }

    fn mode(&self) -> Mode {
        Mode::Enforce
    }

    fn needs(&self) -> Needs {
        Needs::default()
    }

    fn withholds(
        &self,
        project: &Name,
        file: &FileFacts<'_>,
        _version: Option<&Version>,
        _now: OffsetDateTime,
    ) -> Option<String> {
        file.quarantined.then(|| {
            format!(
                "{} is withheld: its index marks '{}' quarantined (PEP 792)",
                file.filename, project
            )
        })
    }

    fn explain(&self, _: &Name, _: Option<&[FileRecord]>, _: OffsetDateTime) -> Vec<String> {
        Vec::new()
    }

    fn print(&self) -> Option<String> {
        None
    }
}

/// Whether a PEP 792 status string quarantines.
pub(crate) fn is_quarantined(status: &str) -> bool {
    status.trim().eq_ignore_ascii_case("quarantined")
}
