//! Real Python installers (pip 8..26, uv, pip-tools, poetry) built by `scripts/setup-clients.sh`.
//!
//! The matrix is listed here as well as in the script so that a client the script skipped or
//! never built still shows up in the report, with its reason, instead of silently vanishing.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

mod checks;
mod invoke;
mod parse;
mod run;

pub use checks::{render_table, run_matrix, Cell, Row, Scenario};
pub use invoke::{resolve, Indexes, Resolution, Route, Tool, Via};
pub use run::ClientError;

/// Which installer a client directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `python -m pip` of the venv.
    Pip,
    /// `uv`, with the venv's 3.11 interpreter as its target Python.
    Uv,
    /// `pip-compile`, running on the venv's (newest compatible) pip.
    PipTools,
    /// `poetry`.
    Poetry,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "pip" => Some(Kind::Pip),
            "uv" => Some(Kind::Uv),
            "pip-tools" => Some(Kind::PipTools),
            "poetry" => Some(Kind::Poetry),
            _ => None,
        }
    }

    /// The table rows a client of this kind contributes (uv is exercised two ways).
    pub fn tools(self) -> &'static [Tool] {
        match self {
            Kind::Pip => &[Tool::Pip],
            Kind::Uv => &[Tool::UvInstall, Tool::UvCompile],
            Kind::PipTools => &[Tool::PipCompile],
            Kind::Poetry => &[Tool::PoetryLock],
        }
    }
}

/// One entry of the matrix as the setup script builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSpec {
    /// Directory name under the clients dir, e.g. `pip-8.1.2-py3.6`.
    pub id: &'static str,
    /// What the directory holds.
    pub kind: Kind,
    /// The interpreter line (`3.6`), shown when the client is missing.
    pub python: &'static str,
}

const fn spec(id: &'static str, kind: Kind, python: &'static str) -> ClientSpec {
    ClientSpec { id, kind, python }
}

/// Every client of issue 4, in table order; must match `CLIENTS` in `scripts/setup-clients.sh`.
pub const MATRIX: &[ClientSpec] = &[
    spec("pip-8.1.2-py3.6", Kind::Pip, "3.6"),
    spec("pip-9.0.3-py3.6", Kind::Pip, "3.6"),
    spec("pip-10.0.1-py3.6", Kind::Pip, "3.6"),
    spec("pip-18.1-py3.6", Kind::Pip, "3.6"),
    spec("pip-9.0.3-py2.7", Kind::Pip, "2.7"),
    spec("pip-20.3.4-py2.7", Kind::Pip, "2.7"),
    spec("pip-19.3.1-py3.11", Kind::Pip, "3.11"),
    spec("pip-20.3.4-py3.11", Kind::Pip, "3.11"),
    spec("pip-21.3.1-py3.11", Kind::Pip, "3.11"),
    spec("pip-22.3.1-py3.11", Kind::Pip, "3.11"),
    spec("pip-23.1.2-py3.11", Kind::Pip, "3.11"),
    spec("pip-23.3.2-py3.11", Kind::Pip, "3.11"),
    spec("pip-24.0-py3.11", Kind::Pip, "3.11"),
    spec("pip-24.3.1-py3.11", Kind::Pip, "3.11"),
    spec("pip-25.3-py3.11", Kind::Pip, "3.11"),
    spec("pip-latest-py3.11", Kind::Pip, "3.11"),
    spec("pip-latest-py3.13", Kind::Pip, "3.13"),
    spec("uv", Kind::Uv, "3.11"),
    spec("pip-tools", Kind::PipTools, "3.11"),
    spec("poetry", Kind::Poetry, "3.11"),
];

/// A client the setup script finished building.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The directory name, e.g. `pip-latest-py3.11`.
    pub id: String,
    /// What it is.
    pub kind: Kind,
    /// The installer's own version as installed (`26.3`, `0.13.9`).
    pub version: String,
    /// The venv interpreter's full version (`3.6.15`).
    pub python: String,
    /// Further facts from READY (pip-tools records the pip it runs on as `pip`).
    pub extra: BTreeMap<String, String>,
    /// `<clients dir>/<id>`.
    pub root: PathBuf,
}

impl Installed {
    /// A program in the client's venv (`python`, `uv`, `pip-compile`, `poetry`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.root.join("venv").join("bin").join(name)
    }

    /// Version text for the table: pip-tools also names the pip underneath it.
    pub fn version_label(&self) -> String {
        match self.extra.get("pip") {
            Some(pip) => format!("{} (pip {pip})", self.version),
            None => self.version.clone(),
        }
    }
}

/// What the clients dir says about one matrix entry.
#[derive(Debug, Clone)]
pub enum Availability {
    /// Built and usable.
    Ready(Installed),
    /// Deliberately not built (missing interpreter), with the script's reason.
    Skip(String),
    /// Neither built nor skipped: the setup failed or never ran for it.
    Broken(String),
}

/// The state of the clients directory as a whole.
#[derive(Debug, Clone)]
pub enum Survey {
    /// The directory does not exist: `scripts/setup-clients.sh` never ran.
    Missing(PathBuf),
    /// Every matrix entry with what was found for it.
    Found(Vec<(ClientSpec, Availability)>),
}

/// Where the clients live: `PIPGATE_CLIENTS_DIR`, else `<workspace>/target/clients` (the
/// script's default).
pub fn clients_dir() -> PathBuf {
    match std::env::var_os("PIPGATE_CLIENTS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("clients"),
    }
}

/// Reads `dir` against [`MATRIX`].
pub fn survey(dir: &Path) -> Survey {
    if !dir.is_dir() {
        return Survey::Missing(dir.to_path_buf());
    }
    Survey::Found(
        MATRIX
            .iter()
            .map(|spec| (*spec, availability(dir, spec)))
            .collect(),
    )
}

fn availability(dir: &Path, spec: &ClientSpec) -> Availability {
    let root = dir.join(spec.id);
    if let Ok(reason) = std::fs::read_to_string(root.join("SKIP")) {
        return Availability::Skip(reason.trim().to_owned());
    }
    let ready = match std::fs::read_to_string(root.join("READY")) {
        Ok(text) => text,
        Err(_) if root.is_dir() => {
            return Availability::Broken(format!(
                "setup did not finish (see {})",
                root.join("setup.log").display()
            ))
        }
        Err(_) => {
            return Availability::Skip(format!(
                "not built: run scripts/setup-clients.sh {}",
                dir.display()
            ))
        }
    };
    let mut facts: BTreeMap<String, String> = ready
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let kind = facts.remove("kind").and_then(|k| Kind::parse(&k));
    let version = facts.remove("version");
    let python = facts.remove("python");
    facts.remove("id");
    match (kind, version, python) {
        (Some(kind), Some(version), Some(python)) if kind == spec.kind => {
            Availability::Ready(Installed {
                id: spec.id.to_owned(),
                kind,
                version,
                python,
                extra: facts,
                root,
            })
        }
        _ => Availability::Broken(format!(
            "{} does not describe a {:?} client",
            root.join("READY").display(),
            spec.kind
        )),
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Pip => "pip",
            Kind::Uv => "uv",
            Kind::PipTools => "pip-tools",
            Kind::Poetry => "poetry",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survey_reads_ready_skip_and_broken() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("pip-8.1.2-py3.6");
        std::fs::create_dir_all(&ready).unwrap();
        std::fs::write(
            ready.join("READY"),
            "id=pip-8.1.2-py3.6\nkind=pip\nversion=8.1.2\npython=3.6.15\n",
        )
        .unwrap();
        let skipped = dir.path().join("pip-9.0.3-py2.7");
        std::fs::create_dir_all(&skipped).unwrap();
        std::fs::write(skipped.join("SKIP"), "interpreter Python 2.7 not found\n").unwrap();
        std::fs::create_dir_all(dir.path().join("uv")).unwrap();

        let Survey::Found(found) = survey(dir.path()) else {
            panic!("the dir exists");
        };
        assert_eq!(found.len(), MATRIX.len());
        let by_id = |id: &str| &found.iter().find(|(s, _)| s.id == id).unwrap().1;
        match by_id("pip-8.1.2-py3.6") {
            Availability::Ready(c) => {
                assert_eq!((c.version.as_str(), c.python.as_str()), ("8.1.2", "3.6.15"));
                assert_eq!(c.bin("python"), ready.join("venv/bin/python"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(by_id("pip-9.0.3-py2.7"), Availability::Skip(r) if r.contains("Python 2.7"))
        );
        assert!(matches!(by_id("uv"), Availability::Broken(_)));
        assert!(matches!(by_id("poetry"), Availability::Skip(r) if r.contains("setup-clients")));
    }

    #[test]
    fn a_missing_dir_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nope");
        assert!(matches!(survey(&gone), Survey::Missing(p) if p == gone));
    }

    #[test]
    fn the_matrix_matches_the_setup_script() {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup-clients.sh"),
        )
        .unwrap();
        let ids: Vec<&str> = script
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"'))
            .filter_map(|l| l.split('|').next())
            .collect();
        let ours: Vec<&str> = MATRIX.iter().map(|s| s.id).collect();
        assert_eq!(ids, ours);
    }
}
