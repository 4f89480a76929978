//! Python virtual environments with real installers, built once under `<target>/it-venvs/`.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::pipgate::target_dir;

/// A virtual environment.
#[derive(Debug, Clone)]
pub struct Venv {
    /// Its root directory.
    pub dir: PathBuf,
}

impl Venv {
    /// `bin/python`.
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// `bin/<name>` (an installed executable such as `uv`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// A command for `program` with an empty environment (`env -i`) plus a minimal `PATH`, a
    /// scratch `HOME`, and pip's prompts, version check and cache off: nothing from this
    /// machine (its `REQUESTS_CA_BUNDLE`, say) can change what the client trusts or where it goes.
    pub fn clean_command(&self, program: &Path, home: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.join("bin").display()),
            )
            .env("HOME", home)
            .env("LANG", "C.UTF-8")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_NO_INPUT", "1")
            .env("PIP_NO_CACHE_DIR", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    }

    /// `python -m pip ARGS` under [`Venv::clean_command`].
    pub fn pip(&self, home: &Path) -> Command {
        let mut cmd = self.clean_command(&self.python(), home);
        cmd.args(["-m", "pip"]);
        cmd
    }
}

/// The real CPython 3.11 interpreter: `$PYTHON311`, else what `python3.11` on `PATH` resolves
/// to (through pyenv shims), else pyenv's `versions/3.11.*`.
pub fn python311() -> Option<PathBuf> {
    python("3.11")
}

/// The real CPython `version` ("3.13") interpreter: `$PYTHON3xx`, else what `python3.xx` on
/// `PATH` resolves to (through pyenv shims), else pyenv's `versions/3.xx.*`; `None` if absent.
pub fn python(version: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(format!("PYTHON{}", version.replace('.', ""))) {
        return Some(PathBuf::from(p));
    }
    if let Ok(out) = Command::new(format!("python{version}"))
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
    {
        let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !exe.is_empty() {
            return Some(PathBuf::from(exe));
        }
    }
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{version}."))
        })
        .map(|e| e.path().join("bin").join(format!("python{version}")))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

/// A Python 3.11 venv holding the newest pip and uv from PyPI, built once per target dir
/// (`<target>/it-venvs/py311-latest`); later runs reuse it.
pub fn latest() -> &'static Venv {
    static LATEST: OnceLock<Venv> = OnceLock::new();
    LATEST.get_or_init(|| build("py311-latest", &["pip", "uv"]))
}

/// Builds (or reuses) `<target>/it-venvs/<name>` with `packages` upgraded/installed from PyPI.
/// Built in a scratch directory and renamed into place, so concurrent test processes never
/// see a half-built venv.
pub fn build(name: &str, packages: &[&str]) -> Venv {
    let root = target_dir().join("it-venvs");
    let dir = root.join(name);
    let ready = dir.join(".pipgate-ready");
    if ready.exists() {
        return Venv { dir };
    }
    std::fs::create_dir_all(&root).expect("create it-venvs");
    let python = python311().expect("python3.11 is needed for the end-to-end tests");
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    run(Command::new(&python).args(["-m", "venv"]).arg(&tmp));
    // Setup talks to the real PyPI with this machine's own trust settings; only the clients
    // under test run with a clean environment.
    run(Command::new(tmp.join("bin").join("python"))
        .args(["-m", "pip", "install", "--quiet", "--upgrade"])
        .args(packages));
    std::fs::write(tmp.join(".pipgate-ready"), "").expect("mark venv ready");
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process won the race; its venv is as good as ours.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(ready.exists(), "venv {} not ready", dir.display());
    Venv { dir }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
