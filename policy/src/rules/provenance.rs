//! `[policy.provenance]`: PEP 740 attestations, verified for every client (pip 8 included: the
//! decision is pipgate's, not the installer's).
//!
//! ```toml
//! [policy.provenance]
//! verify = "offered"        # verify every attestation an index offers; or "off"
//! require = ["urllib3", "requests", "acme-*"]   # these must carry a valid attestation
//! pin_publisher = true      # the first verified publisher of a project is remembered
//! pins = "provenance-pins.toml"   # where pins live (relative to the config file)
//! trusted_root = "trusted_root.json"   # optional; default: the production root embedded
//! mode = "enforce"          # or "audit"
//! ```
//! The rule is sans-IO: the proxy fetches each file's provenance object, verifies it (crate
//! `pipgate-provenance`) and hands the outcome in as the file's [`Attestation`]
//! ([`FileFacts::attestation`], from the lookup of the project's files). The rule decides from
//! that, the name's `require` entry and the project's pin: withheld as `provenance-invalid`
//! (with the verifier's error), `provenance-missing` (a required name's file that offers no
//! attestation) or `publisher-changed` (a verified publisher other than the pinned one). The
//! pins are the proxy's to load and write; the rule reads the current set for each file.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pep440_rs::Version;
use serde::Deserialize;
use time::OffsetDateTime;

use super::{toml_list, toml_string, Configured, FileFacts, FileRecord, FileRule, Mode, Needs};
use crate::{Name, NamePattern, Rule};

#[cfg(test)]
mod tests;

/// Which attestations are verified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// Every attestation an index offers (the default).
    #[default]
    Offered,
    /// None: the rule is off.
    Off,
}

/// The outcome of verifying one file's provenance, as the proxy hands it to the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attestation {
    /// Every attestation of the provenance object verifies, binding the file to `publisher`
    /// (its PEP 740 Trusted Publisher, written as `github.com/psf/requests (publish.yml)`).
    Verified {
        /// The publisher, as pins record it.
        publisher: String,
    },
    /// The provenance object does not verify (or could not be read): why, in one line.
    Invalid(String),
    /// It could not be fetched just now (network, timeout, 5xx): not a verdict on the file,
    /// so not remembered, but the file is not served unverified either.
    Unavailable(String),
}

/// The pinned publisher of each project (`pins`), as the proxy loaded it; swapped in whole
/// when the file changes or a publisher is recorded.
#[derive(Debug, Default)]
pub struct Pins {
    current: ArcSwap<BTreeMap<Name, String>>,
}

impl Pins {
    /// The publisher pinned for `name`, if any.
    pub fn get(&self, name: &Name) -> Option<String> {
        self.current.load().get(name).cloned()
    }

    /// Every pin.
    pub fn all(&self) -> Arc<BTreeMap<Name, String>> {
        self.current.load_full()
    }

    /// Makes `pins` the current set.
    pub fn replace(&self, pins: BTreeMap<Name, String>) {
        self.current.store(Arc::new(pins));
    }

    /// Pins `publisher` for `name` unless it already has a pin; whether it was added.
    pub fn add_if_absent(&self, name: &Name, publisher: &str) -> bool {
        let mut added = false;
        self.current.rcu(|old| {
            if old.contains_key(name) {
                added = false;
                return Arc::clone(old);
            }
            added = true;
            let mut new = BTreeMap::clone(old);
            new.insert(name.clone(), publisher.to_owned());
            Arc::new(new)
        });
        added
    }
}

/// What the proxy needs of `[policy.provenance]` to feed the rule: where pins and the trusted
/// root are, whether to record publishers, and the pins it fills.
#[derive(Debug)]
pub struct Settings {
    /// The pins file as configured (relative paths: to the config file's directory).
    pub pins_path: PathBuf,
    /// The trusted root as configured; `None`: the production root embedded in the binary.
    pub trusted_root: Option<PathBuf>,
    /// Whether the first verified publisher of a project is pinned.
    pub pin_publisher: bool,
    /// The pins the rule decides by.
    pub pins: Arc<Pins>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    #[serde(default)]
    verify: Verify,
    #[serde(default)]
    require: Vec<String>,
    #[serde(default)]
    pin_publisher: bool,
    pins: Option<String>,
    trusted_root: Option<String>,
    mode: Option<Mode>,
}

/// The default pins file, beside the config file.
pub const DEFAULT_PINS: &str = "provenance-pins.toml";

/// The provenance rule.
pub(super) struct Provenance {
    /// `Off`: the rule needs nothing and withholds nothing (the table stays for `print`).
    verify: Verify,
    require: Vec<NamePattern>,
    mode: Mode,
    settings: Settings,
}

impl fmt::Debug for Provenance {
    // The settings, not the pins: the rules' fingerprint prints this.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provenance")
            .field("verify", &self.verify)
            .field("require", &self.require)
            .field("mode", &self.mode)
            .field("pin_publisher", &self.settings.pin_publisher)
            .field("pins", &self.settings.pins_path)
            .field("trusted_root", &self.settings.trusted_root)
            .finish_non_exhaustive()
    }
}

impl Configured for Provenance {
    const TABLE: &'static str = "provenance";
    type Config = Config;

    fn build(config: Config, mode: Mode) -> Result<Provenance, (&'static str, String)> {
        let require = config
            .require
            .iter()
            .map(|p| NamePattern::parse(p).map_err(|e| ("require", format!("{p:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if config.verify == Verify::Off {
            // Nothing is verified: a requirement or a pin could never be met or kept.
            if !require.is_empty() {
                return Err((
                    "require",
                    "needs verify = \"offered\" (with verify = \"off\" no attestation is verified)"
                        .to_owned(),
                ));
            }
            if config.pin_publisher {
                return Err((
                    "pin_publisher",
                    "needs verify = \"offered\" (with verify = \"off\" no publisher is verified)"
                        .to_owned(),
                ));
            }
        }
        let path = |key: &'static str, raw: &str| {
            let raw = raw.trim();
            if raw.is_empty() {
                Err((key, "empty: expected a file path".to_owned()))
            } else {
                Ok(PathBuf::from(raw))
            }
        };
        let pins_path = path("pins", config.pins.as_deref().unwrap_or(DEFAULT_PINS))?;
        let trusted_root = match config.trusted_root.as_deref() {
            Some(raw) => Some(path("trusted_root", raw)?),
            None => None,
        };
        Ok(Provenance {
            verify: config.verify,
            require,
            mode: config.mode.unwrap_or(mode),
            settings: Settings {
                pins_path,
                trusted_root,
                pin_publisher: config.pin_publisher,
                pins: Arc::default(),
            },
        })
    }
}

impl Provenance {
    fn required(&self, name: &Name) -> Option<&NamePattern> {
        self.require.iter().find(|p| p.matches(name))
    }
}

impl FileRule for Provenance {
    fn rule(&self) -> Rule {
        Rule::ProvenanceInvalid
    }

    fn name(&self) -> &'static str {
        "provenance"
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn needs(&self) -> Needs {
        if self.verify == Verify::Off {
            return Needs::default();
        }
        Needs {
            sha256: true,
            provenance: true,
            ..Needs::default()
        }
    }

    fn uses_clock(&self) -> bool {
        // Not the clock, but state beside upstream's bytes (the pins, which an operator
        // changes): a page's ETag cannot be derived from upstream's.
        true
    }

    fn provenance(&self) -> Option<&Settings> {
        (self.verify == Verify::Offered).then_some(&self.settings)
    }

    fn withholds(
        &self,
        project: &Name,
        file: &FileFacts<'_>,
        version: Option<&Version>,
        now: OffsetDateTime,
    ) -> Option<String> {
        self.judge(project, file, version, now).map(|(_, why)| why)
    }

    fn judge(
        &self,
        project: &Name,
        file: &FileFacts<'_>,
        _version: Option<&Version>,
        _now: OffsetDateTime,
    ) -> Option<(Rule, String)> {
        if self.verify == Verify::Off {
            return None;
        }
        let name = file.filename;
        let invalid = |why: &str| {
            Some((
                Rule::ProvenanceInvalid,
                format!("{name}: provenance-invalid: {why}"),
            ))
        };
        match (file.provenance, file.attestation) {
            (_, Some(Attestation::Verified { publisher })) => {
                if !self.settings.pin_publisher {
                    return None;
                }
                let pinned = self.settings.pins.get(project)?;
                (pinned != *publisher).then(|| {
                    (
                        Rule::PublisherChanged,
                        format!(
                            "{name}: publisher-changed: was {pinned}, now {publisher} (policy.provenance.pin_publisher; once checked: pipgate provenance accept {project})"
                        ),
                    )
                })
            }
            (_, Some(Attestation::Invalid(why))) => invalid(why),
            (_, Some(Attestation::Unavailable(why))) => {
                invalid(&format!("its attestation could not be fetched: {why}"))
            }
            (Some(_), None) if file.sha256.is_none() => {
                invalid("the index offers an attestation but no sha256 to check it against")
            }
            (Some(_), None) => invalid(
                "its attestation has not been verified (the file is not on the project's listing as pipgate read it)",
            ),
            (None, None) if file.unlisted => invalid(
                "it is not on its project's listing as pipgate read it a moment ago (uploaded since?), so whether it carries an attestation cannot be checked yet",
            ),
            (None, None) if file.unknown => invalid(
                "its project's files could not be listed, so whether it carries an attestation cannot be checked",
            ),
            (None, None) => self.required(project).map(|p| {
                (
                    Rule::ProvenanceMissing,
                    format!(
                        "{name}: provenance-missing: the index offers no attestation for it, and '{project}' is required to carry one (policy.provenance.require '{p}')"
                    ),
                )
            }),
        }
    }

    fn explain(
        &self,
        name: &Name,
        files: Option<&[FileRecord]>,
        now: OffsetDateTime,
    ) -> Vec<String> {
        if self.verify == Verify::Off {
            return vec!["off (verify = \"off\")".into()];
        }
        let mut out = Vec::new();
        if let Some(p) = self.required(name) {
            out.push(format!("required to carry an attestation (pattern '{p}')"));
        }
        if self.settings.pin_publisher {
            match self.settings.pins.get(name) {
                Some(p) => out.push(format!("pinned publisher: {p}")),
                None => out.push("no publisher pinned yet (the first verified one will be)".into()),
            }
        }
        let Some(files) = files else {
            out.push("the files' attestations could not be learnt now".into());
            return out;
        };
        let mut verified = 0;
        let mut unattested = 0;
        for f in files {
            match self.judge(name, &f.facts(), None, now) {
                Some((rule, why)) => out.push(format!("{why} ({rule})")),
                None if f.attestation.is_some() => verified += 1,
                None => unattested += 1,
            }
        }
        out.push(format!(
            "{verified} file(s) with a verified attestation, {unattested} without one (served)"
        ));
        out
    }

    fn print(&self) -> Option<String> {
        let verify = match self.verify {
            Verify::Offered => "offered",
            Verify::Off => "off",
        };
        let mut out = format!("\n[policy.provenance]\nverify = \"{verify}\"\n");
        let require = toml_list(self.require.iter().map(NamePattern::as_str));
        let _ = writeln!(out, "require = {require}");
        let _ = writeln!(out, "pin_publisher = {}", self.settings.pin_publisher);
        let pins = self.settings.pins_path.display().to_string();
        let _ = writeln!(out, "pins = {}", toml_string(&pins));
        if let Some(root) = &self.settings.trusted_root {
            let root = root.display().to_string();
            let _ = writeln!(out, "trusted_root = {}", toml_string(&root));
        }
        let _ = writeln!(out, "mode = \"{}\"", self.mode);
        Some(out)
    }
}
