//! Each installer pointed at a proxy and a CA the way its users do it, asked to resolve one
//! requirement.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::run::{ClientError, Invocation};
use super::{parse, Installed};

/// How long one installer command may take; a hung client must not hang the suite.
const DEADLINE: Duration = Duration::from_secs(240);

/// One way of driving a client (uv contributes two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `python -m pip install --target DIR`.
    Pip,
    /// `uv pip install --target DIR`.
    UvInstall,
    /// `uv pip compile requirements.in`.
    UvCompile,
    /// pip-tools' `pip-compile requirements.in`.
    PipCompile,
    /// `poetry lock` on a project whose sources are the indexes under test.
    PoetryLock,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tool::Pip => "pip install",
            Tool::UvInstall => "uv pip install",
            Tool::UvCompile => "uv pip compile",
            Tool::PipCompile => "pip-compile",
            Tool::PoetryLock => "poetry lock",
        })
    }
}

/// How the client is told about the proxy and the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The tool's documented environment variables: pip `HTTPS_PROXY` + `PIP_CERT`, uv
    /// `HTTPS_PROXY` + `SSL_CERT_FILE`, poetry `HTTPS_PROXY` + `REQUESTS_CA_BUNDLE`.
    Env,
    /// pip only: a pip.conf with `proxy=` and `cert=`, named by `PIP_CONFIG_FILE`.
    PipConf,
}

/// A proxy the client goes through and the CA bundle that makes its interception trusted.
#[derive(Debug, Clone)]
pub struct Route {
    /// `http://127.0.0.1:PORT`.
    pub proxy_url: String,
    /// PEM file the client must trust.
    pub ca_pem: PathBuf,
    /// How the client learns both.
    pub via: Via,
}

/// Which indexes the client is given.
#[derive(Debug, Clone, Default)]
pub struct Indexes {
    /// `--index-url` / primary source; `None` leaves the tool's default (pip 8/9:
    /// `https://pypi.python.org/simple/`).
    pub primary: Option<String>,
    /// `--extra-index-url` / a second source.
    pub extra: Option<String>,
}

/// What a client resolved, by normalized name, and everything it printed.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// `acme-lib -> 1.0`, for the requirement and everything it pulled in.
    pub versions: BTreeMap<String, String>,
    /// The command, its environment and its output.
    pub transcript: String,
}

/// Runs `tool` of `client` through `route` to resolve `requirement` against `indexes`, in a
/// fresh temp dir that is also the client's HOME (so no cache or config survives).
pub fn resolve(
    tool: Tool,
    client: &Installed,
    route: &Route,
    indexes: &Indexes,
    requirement: &str,
) -> Result<Resolution, ClientError> {
    let work = tempfile::tempdir().map_err(|e| ClientError::Spawn(PathBuf::from("tempdir"), e))?;
    let work = work.path();
    let home = work.join("home");
    std::fs::create_dir_all(&home).map_err(|e| ClientError::Spawn(home.clone(), e))?;
    match tool {
        Tool::Pip => pip(client, route, indexes, requirement, work, &home),
        Tool::UvInstall | Tool::UvCompile => uv(tool, client, route, indexes, requirement, work),
        Tool::PipCompile => pip_compile(client, route, indexes, requirement, work, &home),
        Tool::PoetryLock => poetry(client, route, indexes, requirement, work, &home),
    }
}

/// The part of the environment every client gets: a PATH that finds its own venv first and a
/// throwaway HOME and XDG dirs.
fn base(client: &Installed, program: PathBuf, work: &Path) -> Invocation {
    let mut inv = Invocation::new(program, work, DEADLINE);
    let venv_bin = client.root.join("venv").join("bin");
    let mut path = OsString::from(venv_bin);
    path.push(":/usr/local/bin:/usr/bin:/bin");
    inv.env("PATH", path)
        .env("HOME", work.join("home"))
        .env("XDG_CONFIG_HOME", work.join("home/.config"))
        .env("XDG_CACHE_HOME", work.join("home/.cache"))
        .env("XDG_DATA_HOME", work.join("home/.local/share"))
        .env("LANG", "C.UTF-8");
    inv
}

/// Proxy variables in both spellings: clients differ in which one they read, and users who
/// set one usually set both. HTTP_PROXY too, so a plain-http link would also meet the proxy.
fn proxy_env(inv: &mut Invocation, route: &Route) {
    for k in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
        inv.env(k, &route.proxy_url);
    }
}

fn write(path: &Path, text: &str) -> Result<(), ClientError> {
    std::fs::write(path, text).map_err(|e| ClientError::Spawn(path.to_path_buf(), e))
}

fn pip(
    client: &Installed,
    route: &Route,
    indexes: &Indexes,
    requirement: &str,
    work: &Path,
    home: &Path,
) -> Result<Resolution, ClientError> {
    let target = work.join("target");
    let mut inv = base(client, client.bin("python"), work);
    // Flags every pip since 8.1 understands; the version self-check stays on for the default
    // index case, where pip 8/9 ask pypi.python.org/pypi/pip/json through the proxy.
    // -v: the transcript then names every URL pip fetched (the default-index case relies on it).
    inv.arg("-m")
        .arg("pip")
        .arg("install")
        .arg("-v")
        .arg("--no-cache-dir")
        .arg("--timeout")
        .arg("30")
        .arg("--target")
        .arg(&target);
    if indexes.primary.is_some() {
        inv.arg("--disable-pip-version-check");
    }
    if let Some(primary) = &indexes.primary {
        inv.arg("--index-url").arg(primary);
    }
    if let Some(extra) = &indexes.extra {
        inv.arg("--extra-index-url").arg(extra);
    }
    inv.arg(requirement);
    match route.via {
        Via::Env => {
            proxy_env(&mut inv, route);
            inv.env("PIP_CERT", &route.ca_pem);
        }
        Via::PipConf => {
            let conf = home.join("pip.conf");
            write(
                &conf,
                &format!(
                    "[global]\nproxy = {}\ncert = {}\n",
                    route.proxy_url,
                    route.ca_pem.display()
                ),
            )?;
            inv.env("PIP_CONFIG_FILE", conf);
        }
    }
    let mut transcript = inv.run()?;
    let versions = imported(client, work, &target, &mut transcript)?;
    finish(versions, transcript, "no .dist-info in --target")
}

fn uv(
    tool: Tool,
    client: &Installed,
    route: &Route,
    indexes: &Indexes,
    requirement: &str,
    work: &Path,
) -> Result<Resolution, ClientError> {
    let mut inv = base(client, client.bin("uv"), work);
    let target = work.join("target");
    let compiled = work.join("requirements.txt");
    inv.arg("pip");
    if tool == Tool::UvInstall {
        inv.arg("install").arg("--target").arg(&target);
    } else {
        let input = work.join("requirements.in");
        write(&input, &format!("{requirement}\n"))?;
        inv.arg("compile")
            .arg(&input)
            .arg("--no-header")
            .arg("-o")
            .arg(&compiled);
    }
    inv.arg("--python").arg(client.bin("python"));
    if let Some(primary) = &indexes.primary {
        inv.arg("--index-url").arg(primary);
    }
    if let Some(extra) = &indexes.extra {
        inv.arg("--extra-index-url").arg(extra);
    }
    if tool == Tool::UvInstall {
        inv.arg(requirement);
    }
    proxy_env(&mut inv, route);
    inv.env("SSL_CERT_FILE", &route.ca_pem)
        .env("UV_NO_CACHE", "1")
        .env("UV_NO_CONFIG", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("NO_COLOR", "1");
    let mut transcript = inv.run()?;
    if tool == Tool::UvInstall {
        let versions = imported(client, work, &target, &mut transcript)?;
        finish(versions, transcript, "no .dist-info in --target")
    } else {
        let text = std::fs::read_to_string(&compiled).unwrap_or_default();
        finish(
            parse::requirements(&text),
            transcript + &text,
            "empty compile output",
        )
    }
}

fn pip_compile(
    client: &Installed,
    route: &Route,
    indexes: &Indexes,
    requirement: &str,
    work: &Path,
    home: &Path,
) -> Result<Resolution, ClientError> {
    let input = work.join("requirements.in");
    let compiled = work.join("requirements.txt");
    write(&input, &format!("{requirement}\n"))?;
    let mut inv = base(client, client.bin("pip-compile"), work);
    inv.arg("--no-header")
        .arg("--no-emit-index-url")
        .arg("--cache-dir")
        .arg(home.join("pip-tools-cache"))
        .arg("--output-file")
        .arg(&compiled);
    if let Some(primary) = &indexes.primary {
        inv.arg("--index-url").arg(primary);
    }
    if let Some(extra) = &indexes.extra {
        inv.arg("--extra-index-url").arg(extra);
    }
    inv.arg(&input);
    // pip-tools drives its pip in-process, so pip's own variables configure it.
    proxy_env(&mut inv, route);
    inv.env("PIP_CERT", &route.ca_pem)
        .env("PIP_NO_CACHE_DIR", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    let transcript = inv.run()?;
    let text = std::fs::read_to_string(&compiled).unwrap_or_default();
    finish(
        parse::requirements(&text),
        transcript + &text,
        "empty compile output",
    )
}

/// A project whose sources are exactly the given indexes. Both are `primary`: poetry then
/// collects candidates from each and takes the highest, which is what makes a public copy of a
/// private name dangerous (with the public one `supplemental`, the private hit would win even
/// without pipgate and the confusion check would prove nothing).
fn poetry_project(indexes: &Indexes, requirement: &str) -> String {
    let mut text = format!(
        "[project]\nname = \"matrix-probe\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\n\
         dependencies = [\"{requirement}\"]\n\n[tool.poetry]\npackage-mode = false\n"
    );
    let sources = [
        ("primary-index", &indexes.primary),
        ("extra-index", &indexes.extra),
    ];
    for (name, url) in sources {
        if let Some(url) = url {
            text.push_str(&format!(
                "\n[[tool.poetry.source]]\nname = \"{name}\"\nurl = \"{url}\"\npriority = \"primary\"\n"
            ));
        }
    }
    text
}

fn poetry(
    client: &Installed,
    route: &Route,
    indexes: &Indexes,
    requirement: &str,
    work: &Path,
    home: &Path,
) -> Result<Resolution, ClientError> {
    write(
        &work.join("pyproject.toml"),
        &poetry_project(indexes, requirement),
    )?;
    let mut inv = base(client, client.bin("poetry"), work);
    inv.arg("lock").arg("--no-interaction");
    proxy_env(&mut inv, route);
    inv.env("REQUESTS_CA_BUNDLE", &route.ca_pem)
        .env("POETRY_CACHE_DIR", home.join("poetry-cache"))
        .env("POETRY_CONFIG_DIR", home.join("poetry-config"))
        .env("POETRY_DATA_DIR", home.join("poetry-data"))
        .env("POETRY_VIRTUALENVS_PATH", home.join("poetry-venvs"))
        .env("POETRY_NO_INTERACTION", "1")
        .env("NO_COLOR", "1");
    let transcript = inv.run()?;
    let text = std::fs::read_to_string(work.join("poetry.lock")).unwrap_or_default();
    finish(
        parse::poetry_lock(&text),
        transcript + &text,
        "no packages in poetry.lock",
    )
}

/// Imports every package installed into `target` with the client's own interpreter and checks
/// that each module reports the version its `.dist-info` claims: proof that the wheel really
/// installed and works on that Python (2.7 included), not just that a directory appeared.
fn imported(
    client: &Installed,
    work: &Path,
    target: &Path,
    transcript: &mut String,
) -> Result<BTreeMap<String, String>, ClientError> {
    let installed = parse::installed(target);
    if installed.is_empty() {
        return Ok(installed);
    }
    let mut inv = base(client, client.bin("python"), work);
    inv.arg("-c")
        .arg(IMPORT_PROBE)
        .env("PYTHONPATH", target)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for name in installed.keys() {
        inv.arg(name.replace('-', "_"));
    }
    let out = inv.run().map_err(|e| {
        ClientError::Output(
            format!("installed but not importable: {e}"),
            format!("{transcript}\n{}", e.transcript()),
        )
    })?;
    for (name, version) in &installed {
        let module = name.replace('-', "_");
        if !out.contains(&format!("{module}={version}\n")) {
            return Err(ClientError::Output(
                format!("{module} does not report version {version} when imported"),
                format!("{transcript}\n{out}"),
            ));
        }
    }
    transcript.push_str(&out);
    Ok(installed)
}

/// Prints `module=__version__` for each module named on the command line; valid Python 2 and 3.
const IMPORT_PROBE: &str = "import importlib, sys\nfor n in sys.argv[1:]:\n    m = importlib.import_module(n)\n    sys.stdout.write(n + '=' + m.__version__ + '\\n')\n";

fn finish(
    versions: BTreeMap<String, String>,
    transcript: String,
    empty: &str,
) -> Result<Resolution, ClientError> {
    if versions.is_empty() {
        return Err(ClientError::Output(empty.to_owned(), transcript));
    }
    Ok(Resolution {
        versions,
        transcript,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::Kind;

    /// A client whose venv python is the system's, for checks that need an interpreter only.
    fn system_python_client(root: &Path) -> Option<Installed> {
        let python = Path::new("/usr/bin/python3");
        if !python.exists() {
            return None;
        }
        std::fs::create_dir_all(root.join("venv/bin")).unwrap();
        std::os::unix::fs::symlink(python, root.join("venv/bin/python")).unwrap();
        Some(Installed {
            id: "system".into(),
            kind: Kind::Pip,
            version: "0".into(),
            python: "3".into(),
            extra: BTreeMap::new(),
            root: root.to_path_buf(),
        })
    }

    #[test]
    fn an_installed_package_must_import_with_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let Some(client) = system_python_client(&dir.path().join("client")) else {
            eprintln!("SKIP: no /usr/bin/python3");
            return;
        };
        let work = dir.path().join("work");
        let target = work.join("target");
        std::fs::create_dir_all(target.join("acme_lib-1.0.dist-info")).unwrap();
        std::fs::create_dir_all(target.join("acme_lib")).unwrap();
        let init = target.join("acme_lib/__init__.py");

        std::fs::write(&init, "__version__ = \"1.0\"\n").unwrap();
        let mut transcript = String::new();
        let got = imported(&client, &work, &target, &mut transcript).unwrap();
        assert_eq!(got["acme-lib"], "1.0");
        assert!(transcript.contains("acme_lib=1.0"), "{transcript}");

        std::fs::write(&init, "__version__ = \"99.0\"\n").unwrap();
        let err = imported(&client, &work, &target, &mut String::new()).unwrap_err();
        assert!(
            err.to_string().contains("does not report version 1.0"),
            "{err}"
        );

        std::fs::remove_file(&init).unwrap();
        std::fs::remove_dir(target.join("acme_lib")).unwrap();
        let err = imported(&client, &work, &target, &mut String::new()).unwrap_err();
        assert!(err.to_string().contains("not importable"), "{err}");
    }

    #[test]
    fn poetry_project_lists_both_indexes_as_primary() {
        let text = poetry_project(
            &Indexes {
                primary: Some("https://private.test/simple/".into()),
                extra: Some("https://pypi.org/simple/".into()),
            },
            "acme-lib",
        );
        assert!(text.contains("dependencies = [\"acme-lib\"]"), "{text}");
        assert_eq!(text.matches("priority = \"primary\"").count(), 2, "{text}");
        let private = text.find("private.test").unwrap();
        assert!(private < text.find("pypi.org").unwrap(), "{text}");
    }
}
