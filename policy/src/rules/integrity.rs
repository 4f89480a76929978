//! `[policy.integrity]`: every download from a public file host must have the bytes its index
//! advertised. On by default.
//!
//! ```toml
//! [policy.integrity]
//! verify_hashes = true        # false: downloads are not checked
//! on_unknown_hash = "serve"   # or "block": a file whose sha256 cannot be learnt is refused
//! ```
//! The proxy hashes a download as it streams and holds its last bytes back until the digest is
//! judged here (`denies_digest`): a mismatch cuts the download, so no client ever holds the
//! whole of a file with other bytes than the page promised. The advertised sha256 is the one
//! the project page gives (a direct download looks the page up, as the cooldown does for
//! upload times). A `.metadata` file is not checked against it: its bytes are not the
//! distribution's.

use std::fmt::Write as _;

use pep440_rs::Version;
use serde::Deserialize;
use time::OffsetDateTime;

use super::{Configured, FileFacts, FileRecord, FileRule, Mode, Needs};
use crate::{Name, Rule};

/// What to do with a public download whose sha256 the index does not advertise (or the lookup
/// of its page failed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnknownHash {
    /// Serve it unverified, and count it (the default: PyPI advertises every hash, so an
    /// unknown one is an index that does not, or a lookup that failed).
    #[default]
    Serve,
    /// Refuse it (403), and withhold such files from pages.
    Block,
}

impl OnUnknownHash {
    fn as_str(self) -> &'static str {
        match self {
            OnUnknownHash::Serve => "serve",
            OnUnknownHash::Block => "block",
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    verify_hashes: Option<bool>,
    #[serde(default)]
    on_unknown_hash: OnUnknownHash,
    mode: Option<Mode>,
}

/// The integrity rule.
#[derive(Debug)]
pub(super) struct Integrity {
    verify: bool,
    on_unknown: OnUnknownHash,
    mode: Mode,
}

impl Configured for Integrity {
    const TABLE: &'static str = "integrity";
    type Config = Config;

    fn build(config: Config, mode: Mode) -> Result<Integrity, (&'static str, String)> {
        let verify = config.verify_hashes.unwrap_or(true);
        if !verify && config.on_unknown_hash == OnUnknownHash::Block {
            return Err((
                "on_unknown_hash",
                "\"block\" needs verify_hashes = true: no hash is learnt otherwise".into(),
            ));
        }
        Ok(Integrity {
            verify,
            on_unknown: config.on_unknown_hash,
            mode: config.mode.unwrap_or(mode),
        })
    }
}

impl FileRule for Integrity {
    fn rule(&self) -> Rule {
        Rule::HashMismatch
    }

    fn withheld_as(&self) -> Rule {
        Rule::HashUnknown
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn needs(&self) -> Needs {
        Needs {
            sha256: self.verify,
            ..Needs::default()
        }
    }

    fn verifies_digests(&self) -> bool {
        self.verify
    }

    fn denies_digest(&self, hex: &str, advertised: Option<&str>) -> Option<String> {
        let expected = advertised.filter(|_| self.verify)?;
        (!expected.eq_ignore_ascii_case(hex)).then(|| {
            format!(
                "its bytes have sha256:{hex}, but the index advertised sha256:{} (policy.integrity)",
                expected.to_ascii_lowercase()
            )
        })
    }

    fn withholds(
        &self,
        _project: &Name,
        file: &FileFacts<'_>,
        _version: Option<&Version>,
        _now: OffsetDateTime,
    ) -> Option<String> {
        let unknown = self.verify && self.on_unknown == OnUnknownHash::Block;
        (unknown && file.sha256.is_none()).then(|| {
            format!(
                "{}: its sha256 cannot be learnt, so its bytes cannot be verified (policy.integrity.on_unknown_hash = \"block\")",
                file.filename
            )
        })
    }

    fn explain(
        &self,
        _name: &Name,
        files: Option<&[FileRecord]>,
        _now: OffsetDateTime,
    ) -> Vec<String> {
        if !self.verify {
            return vec!["downloads are not checked (verify_hashes = false)".into()];
        }
        let mut out =
            vec!["every download must have the sha256 its project page advertises".to_owned()];
        let unknown = files.map(|f| f.iter().filter(|f| f.sha256.is_none()).count());
        match (unknown, self.on_unknown) {
            (Some(0), _) => {}
            (Some(n), on) => out.push(format!(
                "{n} file(s) without an advertised sha256: {}",
                match on {
                    OnUnknownHash::Serve => "served unverified",
                    OnUnknownHash::Block => "withheld",
                }
            )),
            (None, on) => out.push(format!(
                "the hashes could not be learnt now: files would be {}",
                match on {
                    OnUnknownHash::Serve => "served unverified",
                    OnUnknownHash::Block => "withheld",
                }
            )),
        }
        out
    }

    fn print(&self) -> Option<String> {
        let mut out = String::from("\n[policy.integrity]\n");
        let _ = writeln!(out, "verify_hashes = {}", self.verify);
        let _ = writeln!(out, "on_unknown_hash = \"{}\"", self.on_unknown.as_str());
        let _ = writeln!(out, "mode = \"{}\"", self.mode);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integrity(verify: Option<bool>, on_unknown: OnUnknownHash) -> Integrity {
        Integrity::build(
            Config {
                verify_hashes: verify,
                on_unknown_hash: on_unknown,
                mode: None,
            },
            Mode::Enforce,
        )
        .unwrap()
    }

    const A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    #[test]
    fn a_digest_must_equal_the_advertised_one() {
        let r = integrity(None, OnUnknownHash::Serve);
        assert!(r.needs().sha256 && r.verifies_digests());
        assert_eq!(r.denies_digest(A, Some(A)), None);
        // Upper-case hex on a page is the same digest.
        assert_eq!(r.denies_digest(A, Some(&A.to_ascii_uppercase())), None);
        let why = r.denies_digest(B, Some(A)).unwrap();
        assert!(
            why.contains(&format!("sha256:{B}")) && why.contains(&format!("sha256:{A}")),
            "{why}"
        );
        // Nothing advertised: nothing to compare (served, counted by the proxy).
        assert_eq!(r.denies_digest(B, None), None);
    }

    #[test]
    fn off_checks_nothing_and_needs_no_lookup() {
        let r = integrity(Some(false), OnUnknownHash::Serve);
        assert!(!r.needs().sha256 && !r.verifies_digests());
        assert_eq!(r.denies_digest(B, Some(A)), None);
        let bad = Integrity::build(
            Config {
                verify_hashes: Some(false),
                on_unknown_hash: OnUnknownHash::Block,
                mode: None,
            },
            Mode::Enforce,
        );
        assert_eq!(bad.unwrap_err().0, "on_unknown_hash");
    }

    #[test]
    fn unknown_hashes_are_withheld_only_when_asked() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let pkg = Name::new("pkg");
        let unknown = FileFacts {
            filename: "pkg-1.0.tar.gz",
            ..FileFacts::default()
        };
        let known = FileFacts {
            sha256: Some(A),
            ..unknown
        };
        let serve = integrity(None, OnUnknownHash::Serve);
        assert_eq!(serve.withholds(&pkg, &unknown, None, now), None);
        let block = integrity(None, OnUnknownHash::Block);
        let why = block.withholds(&pkg, &unknown, None, now).unwrap();
        assert!(why.starts_with("pkg-1.0.tar.gz: ") && why.contains("on_unknown_hash"));
        assert_eq!(block.withholds(&pkg, &known, None, now), None);
        assert_eq!(block.withheld_as(), Rule::HashUnknown);
    }
}
