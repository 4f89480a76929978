//! `[ca]`: where pipgate's CA lives.

use std::fmt;
use std::path::PathBuf;

use super::section::Section;
use super::value::Toml;

/// Where the CA lives, and whether it may be created.
#[derive(Clone, Debug)]
pub struct CaSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A missing pair is created on start (constrained to the config's hosts): the embedded
    /// default (the user's data dir), or `create = true`.
    pub create_if_missing: bool,
}

impl Default for CaSettings {
    /// The user's data directory (`$XDG_DATA_HOME/pipgate`), created on first run.
    fn default() -> Self {
        let dir = super::default_data_dir();
        CaSettings {
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
            create_if_missing: true,
        }
    }
}

impl CaSettings {
    /// A file that names a CA names both halves; pipgate creates them only with
    /// `create = true`.
    pub(super) fn read(s: &mut Section<'_>) -> CaSettings {
        if !s.is_present() {
            return CaSettings::default();
        }
        let cert = s.require("cert").unwrap_or_default();
        let key = s.require("key").unwrap_or_default();
        let mut create_if_missing = false;
        s.set("create", &mut create_if_missing);
        CaSettings {
            cert,
            key,
            create_if_missing,
        }
    }
}

impl fmt::Display for CaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[ca]")?;
        writeln!(f, "cert = {}", Toml(&self.cert))?;
        writeln!(f, "key = {}", Toml(&self.key))?;
        if self.create_if_missing {
            writeln!(f, "create = true")?;
        }
        Ok(())
    }
}
