//! `[policy.cooldown]`: a public file uploaded less than `min_age` ago is withheld, for every
//! client (pip 8 included: the decision is pipgate's, not the installer's).
//!
//! ```toml
//! [policy.cooldown]
//! min_age = "7d"
//! exempt = ["certifi", "acme-*"]
//! on_unknown_upload_time = "block"   # or "allow"
//! ```
//! Upload times are the index's own (PEP 700 `upload-time`). A file whose upload time cannot
//! be learnt is withheld unless `on_unknown_upload_time = "allow"`.

use std::fmt::Write as _;
use std::time::Duration;

use pep440_rs::Version;
use serde::Deserialize;
use time::OffsetDateTime;

use super::{
    rfc3339, toml_list, upload_time, Configured, FileFacts, FileRecord, FileRule, Mode, Needs,
};
use crate::{Name, NamePattern, Rule};

/// What to do with a public file whose upload time cannot be learnt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnknownUploadTime {
    /// Withhold it (the default: fail closed).
    #[default]
    Block,
    /// Serve it.
    Allow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    min_age: String,
    #[serde(default)]
    exempt: Vec<String>,
    #[serde(default)]
    on_unknown_upload_time: OnUnknownUploadTime,
    mode: Option<Mode>,
}

/// The cooldown rule.
#[derive(Debug)]
pub(super) struct Cooldown {
    min_age: Duration,
    exempt: Vec<NamePattern>,
    on_unknown: OnUnknownUploadTime,
    mode: Mode,
}

impl Configured for Cooldown {
    const TABLE: &'static str = "cooldown";
    type Config = Config;

    fn build(config: Config, mode: Mode) -> Result<Cooldown, (&'static str, String)> {
        let min_age = humantime::parse_duration(config.min_age.trim()).map_err(|e| {
            let m = format!(
                "{:?}: expected a duration like \"7d\" or \"36h\" ({e})",
                config.min_age
            );
            ("min_age", m)
        })?;
        let exempt = config
            .exempt
            .iter()
            .map(|p| NamePattern::parse(p).map_err(|e| ("exempt", format!("{p:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cooldown {
            min_age,
            exempt,
            on_unknown: config.on_unknown_upload_time,
            mode: config.mode.unwrap_or(mode),
        })
    }
}

impl Cooldown {
    fn exempt(&self, name: &Name) -> Option<&NamePattern> {
        self.exempt.iter().find(|p| p.matches(name))
    }

    /// When a file uploaded at `t` becomes available.
    fn available(&self, t: OffsetDateTime) -> OffsetDateTime {
        t.saturating_add(time::Duration::try_from(self.min_age).unwrap_or(time::Duration::MAX))
    }
}

impl FileRule for Cooldown {
    fn rule(&self) -> Rule {
        Rule::Cooldown
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn needs(&self) -> Needs {
        Needs {
            upload_time: true,
            version: false,
            sha256: false,
            provenance: false,
        }
    }

    fn uses_clock(&self) -> bool {
        true
    }

    fn withholds(
        &self,
        project: &Name,
        file: &FileFacts<'_>,
        _version: Option<&Version>,
        now: OffsetDateTime,
    ) -> Option<String> {
        if self.exempt(project).is_some() {
            return None;
        }
        if file.unlisted {
            return Some(format!(
                "{} is not on its project page as the index listed it a moment ago, so it may have been uploaded since (policy.cooldown)",
                file.filename
            ));
        }
        let Some(uploaded) = file.upload_time.and_then(upload_time) else {
            return match self.on_unknown {
                OnUnknownUploadTime::Allow => None,
                OnUnknownUploadTime::Block => Some(format!(
                    "{}: its upload time cannot be learnt (policy.cooldown.on_unknown_upload_time = \"block\")",
                    file.filename
                )),
            };
        };
        // In nanoseconds since the epoch: date arithmetic on every file of a page cost more
        // than reading its upload time.
        let age = now.unix_timestamp_nanos() - uploaded.unix_timestamp_nanos();
        let young = age < i128::try_from(self.min_age.as_nanos()).unwrap_or(i128::MAX);
        young.then(|| {
            let available = self.available(uploaded);
            format!(
                "{} was uploaded {}, less than {} ago (policy.cooldown.min_age); available from {}",
                file.filename,
                rfc3339(uploaded),
                humantime::format_duration(self.min_age),
                rfc3339(available)
            )
        })
    }

    fn explain(
        &self,
        name: &Name,
        files: Option<&[FileRecord]>,
        now: OffsetDateTime,
    ) -> Vec<String> {
        let age = humantime::format_duration(self.min_age);
        if let Some(p) = self.exempt(name) {
            return vec![format!("exempt by pattern '{p}' (min_age {age})")];
        }
        let Some(files) = files else {
            return vec![format!(
                "files uploaded less than {age} ago are withheld (upload times could not be learnt now)"
            )];
        };
        let mut out = Vec::new();
        let mut unknown = 0;
        for f in files {
            match f.upload_time.as_deref().and_then(upload_time) {
                Some(t) if self.available(t) > now => out.push(format!(
                    "{} withheld until {} (uploaded {})",
                    f.filename,
                    rfc3339(self.available(t)),
                    rfc3339(t)
                )),
                Some(_) => {}
                None => unknown += 1,
            }
        }
        if unknown > 0 {
            let action = match self.on_unknown {
                OnUnknownUploadTime::Block => "withheld",
                OnUnknownUploadTime::Allow => "served",
            };
            out.push(format!(
                "{unknown} file(s) without an upload time: {action}"
            ));
        }
        if out.is_empty() {
            out.push(format!("no file uploaded less than {age} ago"));
        }
        out
    }

    fn print(&self) -> Option<String> {
        let mut out = String::from("\n[policy.cooldown]\n");
        let _ = writeln!(
            out,
            "min_age = \"{}\"",
            humantime::format_duration(self.min_age)
        );
        let exempt = toml_list(self.exempt.iter().map(NamePattern::as_str));
        let _ = writeln!(out, "exempt = {exempt}");
        let unknown = match self.on_unknown {
            OnUnknownUploadTime::Block => "block",
            OnUnknownUploadTime::Allow => "allow",
        };
        let _ = writeln!(out, "on_unknown_upload_time = \"{unknown}\"");
        let _ = writeln!(out, "mode = \"{}\"", self.mode);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cooldown(exempt: &[&str], on_unknown: OnUnknownUploadTime) -> Cooldown {
        Cooldown::build(
            Config {
                min_age: "7d".into(),
                exempt: exempt.iter().map(|s| s.to_string()).collect(),
                on_unknown_upload_time: on_unknown,
                mode: None,
            },
            Mode::Enforce,
        )
        .unwrap()
    }

    fn file(upload_time: Option<&str>) -> FileFacts<'_> {
        FileFacts {
            filename: "pkg-2.0.tar.gz",
            upload_time,
            ..FileFacts::default()
        }
    }

    #[test]
    fn withholds_until_min_age_has_passed() {
        let c = cooldown(&[], OnUnknownUploadTime::Block);
        let now = datetime!(2026-12-01 12:00 UTC);
        let pkg = Name::new("pkg");
        let new = c.withholds(&pkg, &file(Some("2026-12-01T11:00:00.123456Z")), None, now);
        let new = new.unwrap();
        assert!(new.contains("available from 2026-12-08T11:00:00Z"), "{new}");
        let day_short = file(Some("2026-11-24T12:00:01Z"));
        assert!(c.withholds(&pkg, &day_short, None, now).is_some());
        let old = file(Some("2026-11-24T12:00:00Z"));
        assert!(c.withholds(&pkg, &old, None, now).is_none());
        let offset = file(Some("2026-11-24T13:00:00+01:00"));
        assert!(c.withholds(&pkg, &offset, None, now).is_none());
    }

    #[test]
    fn unknown_times_and_exemptions() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let block = cooldown(&["acme-*"], OnUnknownUploadTime::Block);
        let allow = cooldown(&[], OnUnknownUploadTime::Allow);
        let pkg = Name::new("pkg");
        assert!(block.withholds(&pkg, &file(None), None, now).is_some());
        assert!(block
            .withholds(&pkg, &file(Some("yesterday")), None, now)
            .is_some());
        assert!(allow.withholds(&pkg, &file(None), None, now).is_none());
        let acme = Name::new("Acme_Lib");
        assert!(block
            .withholds(&acme, &file(Some("2026-12-01T11:00:00Z")), None, now)
            .is_none());
    }

    #[test]
    fn a_file_its_listing_lacks_is_withheld_even_when_unknown_times_are_allowed() {
        let allow = cooldown(&[], OnUnknownUploadTime::Allow);
        let now = datetime!(2026-12-01 12:00 UTC);
        let unlisted = FileFacts {
            unlisted: true,
            ..file(None)
        };
        let why = allow
            .withholds(&Name::new("pkg"), &unlisted, None, now)
            .unwrap();
        assert!(why.contains("not on its project page"), "{why}");
        let exempt = cooldown(&["pkg"], OnUnknownUploadTime::Allow);
        assert!(exempt
            .withholds(&Name::new("pkg"), &unlisted, None, now)
            .is_none());
    }

    #[test]
    fn bad_config_is_named() {
        let bad = Cooldown::build(
            Config {
                min_age: "seven days".into(),
                exempt: vec![],
                on_unknown_upload_time: OnUnknownUploadTime::Block,
                mode: None,
            },
            Mode::Enforce,
        );
        assert_eq!(bad.unwrap_err().0, "min_age");
    }
}
