//! `pipgate exec -- CMD`: the command goes through a pipgate of its own, and what pipgate
//! blocked is printed after it, with the rule and the reason; the exit status is the command's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use pipgate_integration_tests::clients::{clients_dir, survey, Availability, Survey};
use pipgate_integration_tests::pipgate::pipgate_command;
use pipgate_integration_tests::venv;
use pipgate_integration_tests::world::{World, PUBLIC_HOST};

/// A config file and CA for `pipgate exec` against the world's origins.
fn exec_config(world: &World) -> std::path::PathBuf {
    let dir = world.scratch("exec-");
    std::fs::write(dir.join("pipgate.toml"), world.pipgate_config().to_toml()).unwrap();
    let out = pipgate_command()
        .args(["ca", "init", "--dir"])
        .arg(dir.join("ca"))
        .arg("--config")
        .arg(dir.join("pipgate.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    dir.join("pipgate.toml")
}

/// `pipgate exec --config CONFIG -- program args` under `env -i`, with the trap variables set
/// to what would break the command if pipgate left them alone.
fn exec(config: &Path, home: &Path, path: &str, program: &Path, args: &[&str]) -> Output {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = Command::new(pipgate_command().get_program());
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_CACHE_DIR", "1")
        .env("PIP_RETRIES", "0")
        .env("UV_NO_CACHE", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        // This machine exports both; they override pip's --cert/PIP_CERT in every version.
        .env("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
        .env("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
        .env("NO_PROXY", format!("localhost,{PUBLIC_HOST}"))
        .arg("exec")
        .arg("--config")
        .arg(config)
        .arg("--")
        .arg(program)
        .args(args);
    cmd.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ACME_LINE: &str = "pipgate: blocked acme-lib on pypi: private-index (";

#[test]
fn exec_reports_what_pip_and_uv_were_refused() {
    let world = World::start_control_only();
    let config = exec_config(&world);
    let v = venv::latest();
    let path = format!("{}:/usr/bin:/bin", v.dir.join("bin").display());
    let index = format!("https://{PUBLIC_HOST}/simple/");
    let home = world.scratch("home-");
    let dest = world.scratch("dl-");
    let dest = dest.to_str().unwrap();

    // pip: acme-lib is private (the private index has it); its public page is refused.
    let pip = |req: &str| {
        exec(
            &config,
            &home,
            &path,
            &v.python(),
            &[
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-d",
                dest,
                "--index-url",
                &index,
                req,
            ],
        )
    };
    let out = pip("acme-lib");
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "pip's own status: {stdout}\n{stderr}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(ACME_LINE))
        .collect();
    assert_eq!(lines.len(), 1, "one line per distinct block: {stderr}");
    assert!(
        lines[0].contains("served by private index 'corp'"),
        "{stderr}"
    );
    // The summary comes after everything the command printed.
    assert!(stderr.trim_end().ends_with(')'), "{stderr}");

    // An allowed download: the command's success, and nothing to report.
    let out = pip("pubdep");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("pipgate: blocked"), "{stderr}");

    // uv (rustls, SSL_CERT_FILE) through the same wrapper.
    let out = exec(
        &config,
        &home,
        &path,
        &v.bin("uv"),
        &[
            "pip",
            "install",
            "--target",
            &format!("{dest}/uv-target"),
            "--python",
            v.python().to_str().unwrap(),
            "--index-url",
            &index,
            "acme-lib",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains(ACME_LINE), "{stderr}");

    // A command that cannot be started: 127, as a shell says.
    let out = exec(&config, &home, &path, Path::new("/nonexistent/pip"), &[]);
    assert_eq!(out.status.code(), Some(127), "{:?}", text(&out));
}

/// pip-compile and poetry from the client matrix, when the setup built them.
#[test]
fn exec_wraps_pip_compile_and_poetry() {
    let Survey::Found(found) = survey(&clients_dir()) else {
        // `cargo xtask test` builds the matrix: under CI its absence is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "no client matrix at {}",
            clients_dir().display()
        );
        eprintln!("skipped: no client matrix at {}", clients_dir().display());
        return;
    };
    let world = World::start_control_only();
    let config = exec_config(&world);
    let index = format!("https://{PUBLIC_HOST}/simple/");
    for (spec, availability) in found {
        let client = match (spec.id, availability) {
            ("pip-tools" | "poetry", Availability::Ready(c)) => c,
            ("pip-tools" | "poetry", other) => {
                eprintln!("skipped {}: {other:?}", spec.id);
                continue;
            }
            _ => continue,
        };
        let work = world.scratch("work-");
        let home = work.join("home");
        let bin = client.root.join("venv").join("bin");
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let out = if spec.id == "pip-tools" {
            std::fs::write(work.join("requirements.in"), "acme-lib\n").unwrap();
            exec(
                &config,
                &home,
                &path,
                &client.bin("pip-compile"),
                &[
                    "--index-url",
                    &index,
                    "--cache-dir",
                    work.join("cache").to_str().unwrap(),
                    "-o",
                    work.join("requirements.txt").to_str().unwrap(),
                    work.join("requirements.in").to_str().unwrap(),
                ],
            )
        } else {
            std::fs::write(
                work.join("pyproject.toml"),
                format!(
                    "[project]\nname = \"probe\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = [\"acme-lib\"]\n\n[tool.poetry]\npackage-mode = false\n\n[[tool.poetry.source]]\nname = \"pypi-mirror\"\nurl = \"{index}\"\npriority = \"primary\"\n"
                ),
            )
            .unwrap();
            exec(
                &config,
                &home,
                &path,
                &client.bin("poetry"),
                &["lock", "--no-interaction", "-C", work.to_str().unwrap()],
            )
        };
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{}: {stdout}\n{stderr}", spec.id);
        assert!(
            stderr.contains(ACME_LINE),
            "{}: {stdout}\n{stderr}",
            spec.id
        );
    }
}
