//! `[policy.deny]`: names, versions and files an operator has decided against.
//!
//! ```toml
//! [policy.deny]
//! packages = ["evilpkg", "requests==2.32.0", "urllib3>=2,<2.0.7"]
//! files = ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
//! ```
//! A bare name refuses the project (pages 404, files 403). A name with a PEP 440 specifier
//! withholds the matching versions' files from every door, so resolvers pick another version;
//! a file of such a name whose version cannot be read is withheld too. A file hash withholds
//! that file wherever it is offered, under any name.

use std::fmt::Write as _;

use pep440_rs::{Version, VersionSpecifiers};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{toml_list, Configured, FileFacts, FileRecord, FileRule, Mode, Needs};
use crate::{name::is_valid_name, Name, Rule};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    mode: Option<Mode>,
}

/// One `packages` entry.
#[derive(Debug)]
struct Entry {
    /// As written, for messages.
    raw: String,
    name: Name,
    /// `None`: the whole name.
    versions: Option<VersionSpecifiers>,
}

/// The deny rule.
#[derive(Debug)]
pub(super) struct Deny {
    packages: Vec<Entry>,
    /// Lower-case hex sha256 digests.
    files: Vec<String>,
    mode: Mode,
}

impl Configured for Deny {
    const TABLE: &'static str = "deny";
    type Config = Config;

    fn build(config: Config, mode: Mode) -> Result<Deny, (&'static str, String)> {
        let packages = config
            .packages
            .iter()
            .map(|raw| entry(raw).map_err(|e| ("packages", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let files = config
            .files
            .iter()
            .map(|raw| file_hash(raw).map_err(|e| ("files", e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Deny {
            packages,
            files,
            mode: config.mode.unwrap_or(mode),
        })
    }
}

/// `name` or `name<specifier>` (`requests==2.32.0`, `urllib3>=2,<2.0.7`).
fn entry(raw: &str) -> Result<Entry, String> {
    let s = raw.trim();
    let cut = s
        .find(['<', '>', '=', '!', '~', ' ', '(', ';', '['])
        .unwrap_or(s.len());
    let (name, spec) = s.split_at(cut);
    if !is_valid_name(name) {
        return Err(format!(
            "{raw:?}: expected a project name, optionally followed by a PEP 440 specifier"
        ));
    }
    let spec = spec.trim();
    let versions = if spec.is_empty() {
        None
    } else {
        let parsed: VersionSpecifiers =
            spec.parse()
                .map_err(|e: pep440_rs::VersionSpecifiersParseError| {
                    // The parser's message quotes the specifier under a caret line: one line here.
                    let first = e.to_string();
                    let first = first.lines().next().unwrap_or_default().to_owned();
                    format!("{raw:?}: bad version specifier: {first}")
                })?;
        Some(parsed)
    };
    Ok(Entry {
        raw: s.to_owned(),
        name: Name::new(name),
        versions,
    })
}

/// `sha256:<64 hex digits>`.
fn file_hash(raw: &str) -> Result<String, String> {
    let hex = raw.trim().strip_prefix("sha256:").unwrap_or_default();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{raw:?}: expected \"sha256:\" and 64 hex digits"));
    }
    Ok(hex.to_ascii_lowercase())
}

impl FileRule for Deny {
    fn rule(&self) -> Rule {
        Rule::Deny
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn needs(&self) -> Needs {
        Needs {
            upload_time: false,
            version: self.packages.iter().any(|e| e.versions.is_some()),
            sha256: !self.files.is_empty(),
            provenance: false,
        }
    }

    fn denies(&self, name: &Name) -> Option<String> {
        self.packages
            .iter()
            .find(|e| e.versions.is_none() && e.name == *name)
            .map(|e| {
                format!(
                    "'{name}' is denied (policy.deny.packages entry '{}')",
                    e.raw
                )
            })
    }

    fn denies_digest(&self, hex: &str, _advertised: Option<&str>) -> Option<String> {
        self.files
            .iter()
            .find(|f| f.eq_ignore_ascii_case(hex))
            .map(|f| format!("its bytes have the denied hash sha256:{f} (policy.deny.files)"))
    }

    fn withholds(
        &self,
        project: &Name,
        file: &FileFacts<'_>,
        version: Option<&Version>,
        _now: OffsetDateTime,
    ) -> Option<String> {
        if let Some(sha) = file.sha256 {
            if self.files.iter().any(|f| f.eq_ignore_ascii_case(sha)) {
                return Some(format!(
                    "{} is denied by its hash (policy.deny.files entry 'sha256:{}')",
                    file.filename,
                    sha.to_ascii_lowercase()
                ));
            }
        }
        let mut restricting = self
            .packages
            .iter()
            .filter(|e| e.name == *project)
            .filter_map(|e| e.versions.as_ref().map(|v| (e, v)))
            .peekable();
        let (first, _) = *restricting.peek()?;
        match version {
            None => Some(format!(
                "{}: its version cannot be read, and policy.deny.packages restricts versions of '{project}' ('{}')",
                file.filename, first.raw
            )),
            Some(v) => restricting.find(|(_, s)| s.contains(v)).map(|(e, _)| {
                format!(
                    "{} is version {v}, denied (policy.deny.packages entry '{}')",
                    file.filename, e.raw
                )
            }),
        }
    }

    fn explain(&self, name: &Name, files: Option<&[FileRecord]>, _: OffsetDateTime) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.packages.iter().filter(|e| e.name == *name) {
            match &e.versions {
                None => out.push(format!(
                    "'{name}' is denied ('{}'): pages 404, files 403",
                    e.raw
                )),
                Some(_) => out.push(format!("versions matching '{}' are withheld", e.raw)),
            }
        }
        if let Some(files) = files {
            let hashed: Vec<&str> = files
                .iter()
                .filter(|f| {
                    f.sha256
                        .as_deref()
                        .is_some_and(|s| self.files.iter().any(|d| d.eq_ignore_ascii_case(s)))
                })
                .map(|f| f.filename.as_str())
                .collect();
            if !hashed.is_empty() {
                out.push(format!("withheld by hash: {}", hashed.join(", ")));
            }
        }
        out
    }

    fn print(&self) -> Option<String> {
        let mut out = String::from("\n[policy.deny]\n");
        let packages = toml_list(self.packages.iter().map(|e| e.raw.as_str()));
        let _ = writeln!(out, "packages = {packages}");
        let files = toml_list(self.files.iter().map(|f| format!("sha256:{f}")));
        let _ = writeln!(out, "files = {files}");
        let _ = writeln!(out, "mode = \"{}\"", self.mode);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny(packages: &[&str], files: &[&str]) -> Result<Deny, String> {
        Deny::build(
            Config {
                packages: packages.iter().map(|s| s.to_string()).collect(),
                files: files.iter().map(|s| s.to_string()).collect(),
                mode: None,
            },
            Mode::Enforce,
        )
        .map_err(|(_, e)| e)
    }

    fn withholds(d: &Deny, project: &str, filename: &str, version: &str) -> bool {
        let file = FileFacts {
            filename,
            ..FileFacts::default()
        };
        let v = version.parse::<Version>().ok();
        d.withholds(
            &Name::new(project),
            &file,
            v.as_ref(),
            OffsetDateTime::UNIX_EPOCH,
        )
        .is_some()
    }

    #[test]
    fn specifiers_follow_pep_440() {
        let d = deny(
            &["requests==2.32.0", "urllib3>=2,<2.0.7", "Foo_Bar~=1.4"],
            &[],
        )
        .unwrap();
        assert!(withholds(
            &d,
            "requests",
            "requests-2.32.0.tar.gz",
            "2.32.0"
        ));
        assert!(withholds(&d, "requests", "requests-2.32.0.tar.gz", "2.32"));
        assert!(!withholds(
            &d,
            "requests",
            "requests-2.32.1.tar.gz",
            "2.32.1"
        ));
        assert!(withholds(&d, "urllib3", "x", "2.0.6"));
        // Below the range by PEP 440 order; a pre-release inside it is denied like the rest
        // (a client with --pre must not get it either).
        assert!(!withholds(&d, "urllib3", "x", "2.0.0rc1"));
        assert!(withholds(&d, "urllib3", "x", "2.0.5rc1"));
        assert!(withholds(&d, "urllib3", "x", "2.0.6.post1"));
        assert!(!withholds(&d, "urllib3", "x", "2.0.7"));
        assert!(!withholds(&d, "urllib3", "x", "1.26.18"));
        assert!(withholds(&d, "foo-bar", "x", "1.9"));
        assert!(!withholds(&d, "foo-bar", "x", "2.0"));
        // Wildcards, arbitrary equality, dev and local releases, as PEP 440 orders them.
        let more = deny(&["a==2.*", "b===1.0", "c<1.0", "e==1.0"], &[]).unwrap();
        assert!(withholds(&more, "a", "x", "2.9.1") && !withholds(&more, "a", "x", "3.0"));
        assert!(withholds(&more, "b", "x", "1.0") && !withholds(&more, "b", "x", "1.0.0"));
        assert!(withholds(&more, "c", "x", "0.9.dev1") && !withholds(&more, "c", "x", "1.0"));
        // `<1.0` leaves 1.0's own pre-releases out, as PEP 440 says.
        assert!(!withholds(&more, "c", "x", "1.0.dev1"));
        assert!(withholds(&more, "e", "x", "1.0+local.7"));
        // Another project is untouched; an unreadable version of a restricted one is withheld.
        assert!(!withholds(&d, "other", "x", "2.32.0"));
        assert!(withholds(
            &d,
            "requests",
            "requests-latest.tar.gz",
            "not a version"
        ));
    }

    #[test]
    fn whole_names_and_hashes() {
        let h = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
        let d = deny(&["EvilPkg"], &[&format!("sha256:{h}")]).unwrap();
        assert!(d.denies(&Name::new("evilpkg")).is_some());
        assert!(d.denies(&Name::new("evilpkg2")).is_none());
        let file = FileFacts {
            filename: "anything-1.0.tar.gz",
            sha256: Some(&h.to_ascii_lowercase()),
            ..FileFacts::default()
        };
        let why = d
            .withholds(
                &Name::new("anything"),
                &file,
                None,
                OffsetDateTime::UNIX_EPOCH,
            )
            .unwrap();
        assert!(why.contains("sha256:9f86d0"), "{why}");
        assert!(d.denies_digest(&h.to_ascii_lowercase(), None).is_some());
        assert!(d.denies_digest(&"0".repeat(64), None).is_none());
    }

    #[test]
    fn bad_entries_are_named() {
        let e = deny(&["requests==="], &[]).unwrap_err();
        assert!(e.contains("requests===") && !e.contains('\n'), "{e}");
        let e = deny(&["b===1.0-weird"], &[]).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        let e = deny(&["==1.0"], &[]).unwrap_err();
        assert!(e.contains("project name"), "{e}");
        let e = deny(&[], &["md5:abc"]).unwrap_err();
        assert!(e.contains("64 hex"), "{e}");
        assert!(deny(&["pkg ==1.0, !=1.0.1"], &[]).is_ok());
    }
}
