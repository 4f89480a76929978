//! `[access]`: who may use the proxy.

use std::fmt;
use std::path::PathBuf;

use ipnet::IpNet;

use super::section::Section;
use super::value::{List, Toml};

/// Who may use the proxy.
#[derive(Clone, Debug, Default)]
pub struct AccessSettings {
    /// Empty means everyone who can reach the listener.
    pub allow_clients: Vec<IpNet>,
    /// File of `user:$argon2...` lines; None means no authentication.
    pub credentials: Option<PathBuf>,
}

impl AccessSettings {
    pub(super) fn read(s: &mut Section<'_>) -> AccessSettings {
        AccessSettings {
            allow_clients: s.list("allow_clients"),
            credentials: s.get("credentials"),
        }
    }
}

impl fmt::Display for AccessSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[access]")?;
        writeln!(f, "allow_clients = {}", List(&self.allow_clients))?;
        if let Some(path) = &self.credentials {
            writeln!(f, "credentials = {}", Toml(path))?;
        }
        Ok(())
    }
}
