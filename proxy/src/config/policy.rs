//! `[policy]`: which names are private, and how private-index answers are used and remembered.

use std::fmt;
use std::time::Duration;

use pipgate_policy::{Rules, Tables};

use super::section::Section;
use super::value::Toml;

/// How long private-index answers are remembered.
#[derive(Clone, Copy, Debug)]
pub struct LookupSettings {
    /// A name a private index has (`policy.private_index_ttl`).
    pub ttl: Duration,
    /// A name it does not have (`policy.private_index_negative_ttl`).
    pub negative_ttl: Duration,
}

impl Default for LookupSettings {
    fn default() -> Self {
        LookupSettings {
            ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(60),
        }
    }
}

/// Everything `[policy]` sets.
pub(super) struct PolicySettings {
    pub rules: Rules,
    pub lookups: LookupSettings,
}

impl PolicySettings {
    pub(super) fn read(s: &mut Section<'_>) -> PolicySettings {
        // Every rule reads its own keys: the name rules `[policy]`'s own, the others their
        // tables (`[policy.cooldown]`, `[policy.deny]`, ...).
        let rules = pipgate_policy::rules::read_all(&mut RuleTables(s));
        let mut lookups = LookupSettings::default();
        s.set("private_index_ttl", &mut lookups.ttl);
        s.set("private_index_negative_ttl", &mut lookups.negative_ttl);
        PolicySettings { rules, lookups }
    }
}

/// The rules' tables under `[policy]`, with the file's line numbers in their errors.
struct RuleTables<'s, 'a>(&'s mut Section<'a>);

impl Tables for RuleTables<'_, '_> {
    fn table<T: serde::de::DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        self.0.serde(key)
    }

    fn error(&mut self, table: &'static str, key: &'static str, message: String) {
        let span = self.0.span_in(table, key).or_else(|| self.0.span_of(table));
        self.0.error(&format!("{table}.{key}"), span, message);
    }
}

/// Prints `[policy]` from the rules a policy holds and the lookup settings.
pub(super) struct Printed<'a>(pub &'a Rules, pub &'a LookupSettings);

impl fmt::Display for Printed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Printed(rules, lookups) = self;
        writeln!(f, "\n[policy]")?;
        f.write_str(&rules.print_keys())?;
        writeln!(f, "private_index_ttl = {}", Toml(&lookups.ttl))?;
        writeln!(
            f,
            "private_index_negative_ttl = {}",
            Toml(&lookups.negative_ttl)
        )?;
        f.write_str(&rules.files.print())
    }
}
