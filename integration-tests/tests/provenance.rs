//! Issue 19 §2 on the wire: `[policy.provenance]` through real pipgate and real clients,
//! against a local TLS origin serving pypi.org and files.pythonhosted.org (`[upstream.resolve]`).
//!
//! The attested file is real: `circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl`,
//! published to PyPI from CircleCI, with its genuine provenance object (pypi-attestations'
//! test assets, fetched by `scripts/setup-testdata.sh`), verified offline against the
//! production Sigstore root embedded in pipgate. Its "newer release" 0.0.1.dev138 is a wheel of
//! our own offering dev137's provenance: a genuine attestation of another file, so the subject
//! check refuses it. `plainpkg` offers no attestation at all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pipgate_integration_tests::clients::clients_dir;
use pipgate_integration_tests::fixtures::{sha256_hex, wheel};
use pipgate_integration_tests::origin::{Origin, RunningOrigin};
use pipgate_integration_tests::pipgate::{pipgate_command, transcript, Pipgate};
use pipgate_integration_tests::probe::Probe;
use pipgate_integration_tests::tls::TestCa;

const PROJECT: &str = "circleci-sign-publish-example";
const GOOD: &str = "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl";
const BAD: &str = "circleci_sign_publish_example-0.0.1.dev138-py3-none-any.whl";
const PLAIN: &str = "plainpkg-1.0-py3-none-any.whl";
const PUBLISHER: &str = "circleci.com project fdd9283f-e619-46af-8f9c-851f7d3e8b2b";

/// The real test data (`scripts/setup-testdata.sh`), or `None` after a note outside CI.
fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("PIPGATE_PROVENANCE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/testdata/provenance")
        });
    if dir.join("READY").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "provenance test data missing at {}: run scripts/setup-testdata.sh",
        dir.display()
    );
    eprintln!(
        "provenance test data missing at {}: run scripts/setup-testdata.sh (not run)",
        dir.display()
    );
    None
}

struct File {
    name: &'static str,
    version: &'static str,
    bytes: Vec<u8>,
    provenance: Option<Vec<u8>>,
}

impl File {
    fn url(&self) -> String {
        format!("https://files.pythonhosted.org/packages/pv/{}", self.name)
    }
    fn provenance_url(&self, project: &str) -> String {
        format!(
            "https://pypi.org/integrity/{project}/{}/{}/provenance",
            self.version, self.name
        )
    }
}

/// The origin: a project page (PEP 691 JSON and HTML) and legacy JSON for each project, its
/// files, and their provenance objects.
fn origin(ca: &TestCa, projects: &[(&str, &[&File])]) -> RunningOrigin {
    origin_with(ca, projects, false)
}

/// [`origin`], or (`html_only`) an index that has only PEP 503 HTML pages with PEP 740's
/// `data-provenance` attributes: no PEP 691 JSON, no legacy JSON API.
fn origin_with(ca: &TestCa, projects: &[(&str, &[&File])], html_only: bool) -> RunningOrigin {
    let mut b = Origin::builder(ca)
        .host("pypi.org")
        .host("files.pythonhosted.org");
    for (project, files) in projects {
        let mut json = Vec::new();
        let mut html = String::from("<!DOCTYPE html><html><body>\n");
        let mut legacy = Vec::new();
        for f in *files {
            let sha = sha256_hex(&f.bytes);
            let mut entry = serde_json::json!({
                "filename": f.name, "url": f.url(), "hashes": {"sha256": sha},
                "requires-python": ">=3", "upload-time": format!("2025-01-0{}T00:00:00Z", json.len() + 1),
            });
            let prov = f.provenance.as_ref().map(|_| f.provenance_url(project));
            if let Some(p) = &prov {
                entry["provenance"] = p.clone().into();
            }
            json.push(entry);
            html.push_str(&format!(
                "<a href=\"{}#sha256={sha}\" data-requires-python=\"&gt;=3\"{}>{}</a>\n",
                f.url(),
                prov.as_ref()
                    .map(|p| format!(" data-provenance=\"{p}\""))
                    .unwrap_or_default(),
                f.name
            ));
            legacy.push(serde_json::json!({
                "filename": f.name, "url": f.url(), "digests": {"sha256": sha},
                "packagetype": "bdist_wheel", "yanked": false,
            }));
            b = b.route(
                &format!("/packages/pv/{}", f.name),
                "application/octet-stream",
                f.bytes.clone(),
            );
            if let (Some(p), Some(body)) = (&prov, &f.provenance) {
                let path = p.trim_start_matches("https://pypi.org");
                b = b.route(path, "application/json", body.clone());
            }
        }
        html.push_str("</body></html>\n");
        let page =
            serde_json::json!({"meta": {"api-version": "1.1"}, "name": project, "files": json});
        let releases: serde_json::Map<String, serde_json::Value> = files
            .iter()
            .zip(&legacy)
            .map(|(f, l)| (f.version.to_owned(), serde_json::json!([l])))
            .collect();
        let doc = serde_json::json!({"info": {"name": project}, "urls": [], "releases": releases});
        if html_only {
            b = b.route(&format!("/simple/{project}/"), "text/html", html);
            continue;
        }
        b = b
            .route(
                &format!("/simple/{project}/"),
                "application/vnd.pypi.simple.v1+json",
                page.to_string(),
            )
            .route(&format!("/simple/{project}/"), "text/html", html)
            .route(
                &format!("/pypi/{project}/json"),
                "application/json",
                doc.to_string(),
            );
    }
    b.run()
}

fn config(ca: &TestCa, origin: &RunningOrigin, provenance: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n[ca]\ncert = \"ca/ca.pem\"\nkey = \"ca/ca.key\"\n\n[upstream]\nextra_roots = [{roots:?}]\n\n[upstream.resolve]\n\"pypi.org:443\" = \"{addr}\"\n\"files.pythonhosted.org:443\" = \"{addr}\"\n\n[policy.provenance]\n{provenance}\n",
        roots = ca.pem_path().display().to_string(),
        addr = origin.addr(),
    )
}

struct Scene {
    _ca: TestCa,
    _dir: tempfile::TempDir,
    dir: PathBuf,
    origin: RunningOrigin,
    pipgate: Pipgate,
    probe: Probe,
}

fn files(data: &Path) -> (File, File, File) {
    let assets = data.join("assets");
    let real = std::fs::read(assets.join(format!("{GOOD}.provenance"))).unwrap();
    let good = File {
        name: GOOD,
        version: "0.0.1.dev137",
        bytes: std::fs::read(assets.join(GOOD)).unwrap(),
        provenance: Some(real.clone()),
    };
    let bad = File {
        name: BAD,
        version: "0.0.1.dev138",
        bytes: wheel(PROJECT, "0.0.1.dev138", &[]),
        provenance: Some(real),
    };
    let plain = File {
        name: PLAIN,
        version: "1.0",
        bytes: wheel("plainpkg", "1.0", &[]),
        provenance: None,
    };
    (good, bad, plain)
}

fn scene(data: &Path, provenance: &str) -> Scene {
    scene_with(data, provenance, false)
}

fn scene_with(data: &Path, provenance: &str, html_only: bool) -> Scene {
    let (good, bad, plain) = files(data);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let ca = TestCa::new_in(&dir);
    let projects: [(&str, &[&File]); 2] = [(PROJECT, &[&good, &bad]), ("plainpkg", &[&plain])];
    let origin = origin_with(&ca, &projects, html_only);
    let pipgate = Pipgate::start(&dir.join("pg"), &config(&ca, &origin, provenance));
    let probe = Probe::new(pipgate.addr, &pipgate.ca_pem);
    Scene {
        _ca: ca,
        _dir: tmp,
        dir,
        origin,
        pipgate,
        probe,
    }
}

fn page(s: &Scene, project: &str, accept: &str) -> (u16, String) {
    let url = format!("https://pypi.org/simple/{project}/");
    let r = s
        .probe
        .send(Probe::request("GET", &url).header("Accept", accept))
        .unwrap();
    (r.status, r.text())
}

const JSON: &str = "application/vnd.pypi.simple.v1+json";

/// `pip install --pre` (or uv) of `requirement` into a fresh target, under `env -i`; the
/// version installed.
fn install(client: &str, s: &Scene, requirement: &str) -> Result<String, String> {
    let root = clients_dir().join(client);
    if !root.join("READY").is_file() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("client {client} missing in {}", root.display());
        }
        eprintln!("client {client} missing in {} (not run)", root.display());
        return Ok("skipped".into());
    }
    let bin = root.join("venv/bin");
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target");
    let mut cmd = if client == "uv" {
        let mut c = Command::new(bin.join("uv"));
        c.args(["pip", "install", "--prerelease", "allow", "--target"])
            .arg(&target)
            .arg("--python")
            .arg(bin.join("python"))
            .env("SSL_CERT_FILE", &s.pipgate.ca_pem)
            .env("UV_NO_CACHE", "1")
            .env("UV_NO_CONFIG", "1")
            .env("UV_PYTHON_DOWNLOADS", "never");
        c
    } else {
        let mut c = Command::new(bin.join("python"));
        c.args([
            "-m",
            "pip",
            "install",
            "--pre",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--ignore-requires-python",
            "--target",
        ])
        .arg(&target)
        .env("PIP_CERT", &s.pipgate.ca_pem);
        c
    };
    cmd.args(["--index-url", "https://pypi.org/simple/", requirement])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", work.path())
        .env("LANG", "C.UTF-8")
        .env("HTTPS_PROXY", s.pipgate.proxy_url())
        .env("https_proxy", s.pipgate.proxy_url());
    cmd.env_clear_keep();
    let out = cmd.output().unwrap();
    let text = transcript(&out);
    if !out.status.success() {
        return Err(text);
    }
    let dist: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dist-info"))
        .collect();
    match dist.as_slice() {
        [one] => Ok(one
            .trim_end_matches(".dist-info")
            .rsplit('-')
            .next()
            .unwrap_or_default()
            .to_owned()),
        _ => Err(format!("dist-infos {dist:?}\n{text}")),
    }
}

/// `Command::env_clear` that keeps what was set on it: `env -i` plus the given variables.
trait EnvClearKeep {
    fn env_clear_keep(&mut self);
}

impl EnvClearKeep for Command {
    fn env_clear_keep(&mut self) {
        let kept: Vec<(std::ffi::OsString, std::ffi::OsString)> = self
            .get_envs()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
            .collect();
        self.env_clear();
        self.envs(kept);
    }
}

/// The project page through pipgate, as JSON and as HTML: the genuine dev137 is listed with its
/// provenance, dev138 (another file's attestation) is not.
fn genuine_kept_broken_withheld_in_both_formats(s: &Scene) {
    for accept in [JSON, "text/html"] {
        let (status, text) = page(s, PROJECT, accept);
        assert_eq!(status, 200, "{text}");
        assert!(
            text.contains(GOOD) && !text.contains(BAD),
            "{accept}: {text}"
        );
        assert!(text.contains("provenance"), "{text}");
    }
}

/// The origin was asked once for each file's provenance object.
fn assert_each_provenance_fetched_once(s: &Scene) {
    let fetched = |name: &str| {
        s.origin
            .requests()
            .iter()
            .filter(|r| r.path.contains("/integrity/") && r.path.contains(name))
            .count()
    };
    assert_eq!(
        (fetched(GOOD), fetched(BAD)),
        (1, 1),
        "{:?}",
        s.origin.requests()
    );
}

/// Direct downloads (a lock file's URL): dev138 and its metadata 403 naming the rule, dev137
/// 200, and the required name without an attestation 403 `provenance-missing`.
fn file_door_refuses_broken_and_unattested(s: &Scene) {
    let get = |name: &str| {
        s.probe.get(&format!(
            "https://files.pythonhosted.org/packages/pv/{name}"
        ))
    };
    let bad = get(BAD);
    assert_eq!(bad.status, 403, "{}", bad.text());
    assert!(
        bad.text().contains("provenance-invalid")
            && bad.text().contains("(rule provenance-invalid)"),
        "{}",
        bad.text()
    );
    let meta = get(&format!("{BAD}.metadata"));
    assert_eq!(meta.status, 403, "{}", meta.text());
    let good = get(GOOD);
    assert_eq!(good.status, 200, "{}", good.text());
    let plain = get(PLAIN);
    assert_eq!(plain.status, 403, "{}", plain.text());
    assert!(
        plain.text().contains("provenance-missing"),
        "{}",
        plain.text()
    );
}

#[test]
fn genuine_attestations_are_served_and_broken_ones_withheld_at_every_door() {
    let Some(data) = testdata() else { return };
    let s = scene(&data, "require = [\"plainpkg\"]\npin_publisher = true");

    // First sight by several clients at once: one fetch per provenance object.
    let together: Vec<_> = (0..6)
        .map(|_| {
            let probe = s.probe.clone();
            std::thread::spawn(move || {
                let url = format!("https://pypi.org/simple/{PROJECT}/");
                probe
                    .send(Probe::request("GET", &url).header("Accept", JSON))
                    .unwrap()
            })
        })
        .collect();
    for t in together {
        let r = t.join().unwrap();
        assert!(
            r.status == 200 && r.text().contains(GOOD) && !r.text().contains(BAD),
            "{}",
            r.text()
        );
    }
    // Both page formats: the genuine dev137 stays, dev138 (another file's attestation) goes.
    genuine_kept_broken_withheld_in_both_formats(&s);
    // Verified once per file: two page views and a second format fetched each provenance once.
    assert_each_provenance_fetched_once(&s);

    // The legacy JSON API loses the broken file too.
    let legacy = s
        .probe
        .get(&format!("https://pypi.org/pypi/{PROJECT}/json"));
    assert_eq!(legacy.status, 200, "{}", legacy.text());
    assert!(
        legacy.text().contains(GOOD) && !legacy.text().contains(BAD),
        "{}",
        legacy.text()
    );

    // A required name without an attestation: withheld from its page.
    let (_, text) = page(&s, "plainpkg", JSON);
    assert!(!text.contains(PLAIN), "{text}");
    // Direct downloads (a lock file's URL) get the same verdicts.
    file_door_refuses_broken_and_unattested(&s);

    // The first verified publisher was pinned.
    let pins = std::fs::read_to_string(s.dir.join("pg/provenance-pins.toml")).unwrap();
    assert!(pins.contains(PROJECT) && pins.contains(PUBLISHER), "{pins}");

    // Counted by rule, and in the access log.
    let metrics = s.pipgate.wait_admin("/metrics", 5, |st, body| {
        st == 200 && body.contains("provenance-invalid")
    });
    assert!(
        metrics.contains("rule=\"provenance-invalid\",action=\"withhold\"")
            && metrics.contains("rule=\"provenance-missing\""),
        "{metrics}"
    );
    let line = s.pipgate.access_event("provenance-invalid");
    assert!(line.contains(PROJECT), "{line}");

    // Real clients install the attested version, not the newer broken one.
    for client in ["pip-9.0.3-py3.6", "pip-latest-py3.11", "uv"] {
        let got = install(client, &s, PROJECT);
        match got {
            Ok(v) => assert!(v == "0.0.1.dev137" || v == "skipped", "{client}: {v}"),
            Err(t) => panic!("{client}: {t}"),
        }
        // A required name without an attestation does not install.
        if let Ok(v) = install(client, &s, "plainpkg") {
            assert_eq!(v, "skipped", "{client} installed plainpkg {v}");
        }
    }

    // explain says what the rule does of the project.
    let out = pipgate_command()
        .args(["explain", "--config"])
        .arg(&s.pipgate.config_path)
        .arg(PROJECT)
        .output()
        .unwrap();
    let text = transcript(&out);
    assert!(
        text.contains(&format!("pinned publisher: {PUBLISHER}"))
            && text.contains("provenance-invalid"),
        "{text}"
    );
}

#[test]
fn an_html_only_index_has_its_data_provenance_checked_through_the_whole_proxy() {
    let Some(data) = testdata() else { return };
    let s = scene_with(&data, "require = [\"plainpkg\"]", true);
    // Whatever the client accepts, the index answers HTML (the origin has nothing else): the
    // attested dev137 stays, dev138 (another file's attestation) goes, and the link keeps its
    // data-provenance for clients that read it.
    genuine_kept_broken_withheld_in_both_formats(&s);
    // Each provenance object was fetched once, from the URL the HTML named.
    assert_each_provenance_fetched_once(&s);
    // A required name whose HTML link has no data-provenance is withheld.
    let (_, text) = page(&s, "plainpkg", "text/html");
    assert!(!text.contains(PLAIN), "{text}");
    // The same verdicts at the file door.
    file_door_refuses_broken_and_unattested(&s);
    // A real client installs the attested version from the HTML-only index.
    for client in ["pip-9.0.3-py3.6", "pip-latest-py3.11"] {
        match install(client, &s, PROJECT) {
            Ok(v) => assert!(v == "0.0.1.dev137" || v == "skipped", "{client}: {v}"),
            Err(t) => panic!("{client}: {t}"),
        }
    }
}

#[test]
fn a_publisher_change_is_withheld_until_accepted() {
    let Some(data) = testdata() else { return };
    let pins = "# checked by ops\n[pins]\ncircleci-sign-publish-example = \"github.com/evil/example (publish.yml)\"\n";
    let s = scene(&data, "pin_publisher = true");
    std::fs::write(s.dir.join("pg/provenance-pins.toml"), pins).unwrap();
    assert_eq!(s.pipgate.reload().0, 200);
    let (_, text) = page(&s, PROJECT, JSON);
    assert!(!text.contains(GOOD), "{text}");
    let good = s.probe.get(&format!(
        "https://files.pythonhosted.org/packages/pv/{GOOD}"
    ));
    assert_eq!(good.status, 403, "{}", good.text());
    assert!(
        good.text().contains(&format!(
            "publisher-changed: was github.com/evil/example (publish.yml), now {PUBLISHER}"
        )) && good.text().contains("(rule publisher-changed)"),
        "{}",
        good.text()
    );
    let run = |cmd: &str| {
        let out = pipgate_command()
            .args(["provenance", cmd, "--config"])
            .arg(&s.pipgate.config_path)
            .arg(PROJECT)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", transcript(&out));
        transcript(&out)
    };
    let shown = run("show");
    assert!(
        shown.contains("pinned: github.com/evil/example (publish.yml)")
            && shown.contains(&format!("{GOOD}: verified, published by {PUBLISHER}"))
            && shown.contains("pipgate provenance accept"),
        "{shown}"
    );
    let accepted = run("accept");
    assert!(
        accepted.contains(&format!("pinned {PROJECT} to {PUBLISHER}")),
        "{accepted}"
    );
    let file = std::fs::read_to_string(s.dir.join("pg/provenance-pins.toml")).unwrap();
    assert!(
        file.starts_with("# checked by ops") && file.contains(PUBLISHER),
        "{file}"
    );
    assert_eq!(s.pipgate.reload().0, 200);
    let (_, text) = page(&s, PROJECT, JSON);
    assert!(text.contains(GOOD), "{text}");
    assert_eq!(
        s.probe
            .get(&format!(
                "https://files.pythonhosted.org/packages/pv/{GOOD}"
            ))
            .status,
        200
    );
    // Fetched once: the reload kept the verdicts, and show and accept read the ones kept
    // beside the CA.
    let fetched = s
        .origin
        .requests()
        .iter()
        .filter(|r| r.path.contains("/integrity/") && r.path.contains(GOOD))
        .count();
    assert_eq!(fetched, 1, "{:?}", s.origin.requests());
}

#[test]
fn audit_mode_serves_and_logs() {
    let Some(data) = testdata() else { return };
    let s = scene(&data, "require = [\"plainpkg\"]\nmode = \"audit\"");
    let (_, text) = page(&s, PROJECT, JSON);
    assert!(text.contains(GOOD) && text.contains(BAD), "{text}");
    let bad = s
        .probe
        .get(&format!("https://files.pythonhosted.org/packages/pv/{BAD}"));
    assert_eq!(bad.status, 200, "{}", bad.text());
    let line = s.pipgate.access_event("decision=audit");
    assert!(line.contains("provenance-invalid"), "{line}");
    let got = install("pip-latest-py3.11", &s, PROJECT).unwrap();
    assert!(got == "0.0.1.dev138" || got == "skipped", "{got}");
}

/// Self-made fixtures (a test Fulcio-like CA and log, `trusted_root =` their root): a project
/// whose 1.0 is published from its own repository, 1.1 with a log entry that does not verify,
/// and 2.0 from another repository. The first publisher is pinned; pip 9 gets 1.0 until an
/// operator accepts the new publisher, then 2.0.
#[test]
fn self_made_publisher_change_with_a_test_root() {
    use pipgate_provenance::fixtures::{Authority, Spec, Tamper};
    use pipgate_provenance::Publisher;
    use sha2::Digest as _;
    let authority = Authority::new();
    let own = Publisher::github("acme/selfmade", "publish.yml");
    let evil = Publisher::github("evil/selfmade", "publish.yml");
    let mint = |name: &'static str, version: &'static str, by: &Publisher, tamper: Tamper| {
        let bytes = wheel("selfmade", version, &[]);
        let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        let mut spec = Spec::new(name, &digest, by);
        spec.tamper = tamper;
        File {
            name,
            version,
            provenance: Some(authority.provenance(&spec)),
            bytes,
        }
    };
    let v1 = mint("selfmade-1.0-py3-none-any.whl", "1.0", &own, Tamper::None);
    let v11 = mint(
        "selfmade-1.1-py3-none-any.whl",
        "1.1",
        &own,
        Tamper::InclusionProof,
    );
    let v12 = mint("selfmade-1.2-py3-none-any.whl", "1.2", &own, Tamper::None);
    let v2 = mint("selfmade-2.0-py3-none-any.whl", "2.0", &evil, Tamper::None);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let ca = TestCa::new_in(&dir);
    let origin = origin(&ca, &[("selfmade", &[&v1, &v11, &v12, &v2])]);
    // 1.2's provenance object cannot be fetched at first (the index answers 503).
    let v12_path = v12
        .provenance_url("selfmade")
        .replace("https://pypi.org", "");
    origin.set_route(&v12_path, 503, "text/plain", &[], "busy");
    std::fs::create_dir_all(dir.join("pg")).unwrap();
    std::fs::write(dir.join("pg/test-root.json"), authority.trusted_root_json()).unwrap();
    let toml = config(
        &ca,
        &origin,
        "pin_publisher = true\ntrusted_root = \"test-root.json\"",
    );
    let pipgate = Pipgate::start(&dir.join("pg"), &toml);
    let probe = Probe::new(pipgate.addr, &pipgate.ca_pem);
    let s = Scene {
        _ca: ca,
        _dir: tmp,
        dir,
        origin,
        pipgate,
        probe,
    };
    let (status, text) = page(&s, "selfmade", "text/html");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(v1.name) && !text.contains(v11.name) && !text.contains(v2.name),
        "{text}"
    );
    let pins = std::fs::read_to_string(s.dir.join("pg/provenance-pins.toml")).unwrap();
    assert!(
        pins.contains("github.com/acme/selfmade (publish.yml)"),
        "{pins}"
    );
    let tampered = s.probe.get(&v11.url());
    assert!(
        tampered.status == 403 && tampered.text().contains("provenance-invalid"),
        "{}",
        tampered.text()
    );
    let changed = s.probe.get(&v2.url());
    assert!(
        changed.status == 403
            && changed.text().contains("publisher-changed: was github.com/acme/selfmade (publish.yml), now github.com/evil/selfmade (publish.yml)"),
        "{}",
        changed.text()
    );
    // Not fetched: withheld (fail closed), nothing remembered, asked again next time.
    let busy = s.probe.get(&v12.url());
    assert!(
        busy.status == 403 && busy.text().contains("could not be fetched"),
        "{}",
        busy.text()
    );
    let got = install("pip-9.0.3-py3.6", &s, "selfmade").unwrap();
    assert!(got == "1.0" || got == "skipped", "{got}");
    let body = v12.provenance.clone().unwrap();
    s.origin
        .set_route(&v12_path, 200, "application/json", &[], body);
    let (_, text) = page(&s, "selfmade", JSON);
    assert!(text.contains(v12.name), "{text}");
    let got = install("pip-9.0.3-py3.6", &s, "selfmade").unwrap();
    assert!(got == "1.2" || got == "skipped", "{got}");
    let out = pipgate_command()
        .args(["provenance", "accept", "--config"])
        .arg(&s.pipgate.config_path)
        .arg("selfmade")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    assert_eq!(s.pipgate.reload().0, 200);
    let got = install("pip-9.0.3-py3.6", &s, "selfmade").unwrap();
    assert!(got == "2.0" || got == "skipped", "{got}");
    // A restart verifies nothing again: the verdicts were kept beside the CA.
    let fetches = |o: &RunningOrigin| {
        o.requests()
            .iter()
            .filter(|r| r.path.contains("/integrity/"))
            .count()
    };
    let before = fetches(&s.origin);
    let Scene {
        pipgate,
        origin,
        dir,
        ..
    } = s;
    drop(pipgate);
    let again = Pipgate::start(&dir.join("pg"), &toml);
    let probe = Probe::new(again.addr, &again.ca_pem);
    let r = probe
        .send(Probe::request("GET", "https://pypi.org/simple/selfmade/").header("Accept", JSON))
        .unwrap();
    assert!(
        r.status == 200 && r.text().contains(v2.name),
        "{}",
        r.text()
    );
    assert_eq!(fetches(&origin), before, "{:?}", origin.requests());
}

/// The CPU time (user + system) the pipgate running `config` has used so far, from `/proc`.
fn pipgate_cpu(config: &Path) -> std::time::Duration {
    let needle = config.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains(&needle) || !cmdline.contains(" run ") || cmdline.starts_with("sh ") {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of stat (11 and 12 after the command name).
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        return std::time::Duration::from_millis(ticks * 10);
    }
    panic!("no pipgate process runs {needle}");
}

/// What verification costs (run with a release PIPGATE_BIN, `--ignored --nocapture`): each
/// first sight's CPU, as pipgate logs it, and the CPU of 300 page views whose verdicts are
/// remembered against 300 with the rule off.
#[test]
#[ignore = "a measurement: run it with a release build"]
fn measure_verification_cost() {
    let Some(data) = testdata() else { return };
    std::env::set_var("PIPGATE_RUST_LOG", "info,pipgate::provenance=debug");
    let on = scene(&data, "pin_publisher = true");
    let (status, _) = page(&on, PROJECT, JSON);
    assert_eq!(status, 200);
    for file in [GOOD, BAD] {
        let line = on.pipgate.log_line("a first verification", |l| {
            l.contains("pipgate::provenance") && l.contains(file)
        });
        let cpu = line
            .split("cpu_us=")
            .nth(1)
            .unwrap_or("?")
            .split_whitespace()
            .next()
            .unwrap_or("?");
        eprintln!("first sight of {file}: {cpu} µs of CPU to verify");
    }
    let off = scene(&data, "verify = \"off\"");
    let views = |s: &Scene| {
        let before = pipgate_cpu(&s.pipgate.config_path);
        for _ in 0..300 {
            assert_eq!(page(s, PROJECT, JSON).0, 200);
        }
        pipgate_cpu(&s.pipgate.config_path) - before
    };
    for round in 0..3 {
        let (a, b) = (views(&on), views(&off));
        eprintln!("round {round}: 300 page views, verdicts remembered: {a:?} CPU; rule off: {b:?}");
    }
    let fetched = on
        .origin
        .requests()
        .iter()
        .filter(|r| r.path.contains("/integrity/"))
        .count();
    eprintln!("provenance objects fetched in all: {fetched}");
    assert_eq!(fetched, 2);
}
