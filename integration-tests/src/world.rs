//! One ready scenario: a private index, an impersonated pypi.org, an external host, pipgate in
//! front of them, and an unfiltered tunnel as the "without pipgate" control.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::fixtures::{
    self, simple_html, simple_json, wheel_filename, wheel_metadata, FileLink, HTML_CT, JSON_CT,
};
use crate::installer::Route;
use crate::origin::{Origin, OriginBuilder, RunningOrigin};
use crate::pipgate::Pipgate;
use crate::probe::Probe;
use crate::tls::TestCa;
use crate::tunnel::DumbTunnel;

/// The private index host.
pub const PRIVATE_HOST: &str = "private.test";
/// The public index host.
pub const PUBLIC_HOST: &str = "pypi.org";
/// The public file host.
pub const FILES_HOST: &str = "files.pythonhosted.org";
/// A host that is neither index nor file host.
pub const EVIL_HOST: &str = "evil.test";

/// A file published on one of the origins.
#[derive(Debug, Clone)]
pub struct Published {
    /// Project name as published.
    pub project: String,
    /// Version.
    pub version: String,
    /// Absolute download URL.
    pub url: String,
    /// Wheel file name.
    pub filename: String,
    /// Hex sha256 of the wheel.
    pub sha256: String,
    /// The wheel bytes.
    pub bytes: Vec<u8>,
    /// The PEP 658 metadata served at `<url>.metadata`.
    pub metadata: String,
}

impl Published {
    fn new(project: &str, version: &str, base: &str, deps: &[&str], marker: &str) -> Published {
        let filename = wheel_filename(project, version);
        let bytes = fixtures::wheel_with_marker(project, version, deps, marker);
        Published {
            project: project.to_owned(),
            version: version.to_owned(),
            url: format!("{base}/packages/fixture/{filename}"),
            sha256: fixtures::sha256_hex(&bytes),
            filename,
            bytes,
            metadata: wheel_metadata(project, version, deps),
        }
    }

    /// The path part of [`Published::url`].
    pub fn path(&self) -> String {
        let after_scheme = self.url.split_once("://").map_or(&*self.url, |(_, r)| r);
        after_scheme
            .find('/')
            .map_or_else(|| "/".to_owned(), |i| after_scheme[i..].to_owned())
    }

    fn link(&self) -> FileLink {
        FileLink::to_file(&self.url, &self.bytes).with_metadata(self.metadata.as_bytes())
    }
}

/// Serves the wheel and its `.metadata` of each of `files` on `builder`.
fn serve_files<'a>(mut builder: OriginBuilder<'a>, files: &[&Published]) -> OriginBuilder<'a> {
    for f in files {
        builder = builder
            .route(&f.path(), "application/octet-stream", f.bytes.clone())
            .route(
                &format!("{}.metadata", f.path()),
                "application/octet-stream",
                f.metadata.clone(),
            );
    }
    builder
}

/// Serves `/simple/<name>/` as HTML (first, the default) and PEP 691 JSON.
fn serve_project<'a>(
    builder: OriginBuilder<'a>,
    name: &str,
    links: &[FileLink],
) -> OriginBuilder<'a> {
    let path = format!("/simple/{}/", fixtures::normalize(name));
    builder
        .route(&path, "text/html", simple_html(name, links))
        .route(&path, HTML_CT, simple_html(name, links))
        .route(&path, JSON_CT, simple_json(name, links))
}

/// Where the public file host serves denyhash 2.0's bytes under another project's name.
pub const RENAMED_PATH: &str = "/packages/fixture/renamed-1.0-py2.py3-none-any.whl";

/// Where the public file host serves malhash 2.0's bytes (an advisory lists their sha256)
/// under a name no page offers.
pub const MALHASH_RENAMED_PATH: &str = "/packages/fixture/stowaway-1.0-py2.py3-none-any.whl";

/// Long enough ago for any cooldown in the tests.
const OLD: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);
/// An hour ago: inside a 7-day cooldown.
const NEW: std::time::Duration = std::time::Duration::from_secs(3_600);

/// The rules scenario's projects, with PEP 700 upload times in their JSON pages (none in HTML,
/// as on PyPI): `rules-app` 1.0 (old) requires `fresh`, `exemptpkg`, `denyver` and `denyhash`
/// (and the advisories scenario's `malver`, `malrange` and `malhash`);
/// each has an old 1.0 and a 2.0 that one rule withholds: `fresh` 2.0 and `exemptpkg` 2.0 were
/// uploaded an hour ago (exemptpkg is exempt), `denyver` 2.0 is denied by version and
/// `denyhash` 2.0 by hash. `fresh` has a legacy JSON API too; `htmlonly` (1.0 old, 2.0 an hour
/// old) has HTML pages only, its upload times in its legacy JSON API. `fresh` 3.0 is a file no
/// page lists yet.
fn serve_rules_projects<'a>(
    mut public: OriginBuilder<'a>,
    base: &str,
) -> (OriginBuilder<'a>, Vec<Published>) {
    // The advisories scenario's projects too: the matrix runs every client against both.
    let deps = [
        "fresh",
        "exemptpkg",
        "denyver",
        "denyhash",
        "malver",
        "malrange",
        "malhash",
    ];
    let app = Published::new("rules-app", "1.0", base, &deps, "");
    let mut files = vec![app];
    public = serve_project(public, "rules-app", &[files[0].link().uploaded(OLD)]);
    for (project, new_age) in [
        ("fresh", NEW),
        ("exemptpkg", NEW),
        ("denyver", OLD),
        ("denyhash", OLD),
    ] {
        let one = Published::new(project, "1.0", base, &[], "");
        let two = Published::new(project, "2.0", base, &[], "withheld");
        let links = [one.link().uploaded(OLD), two.link().uploaded(new_age)];
        public = serve_project(public, project, &links);
        files.push(one);
        files.push(two);
    }
    // An index without PEP 691 for one project: HTML only (no upload times), and the legacy
    // JSON API, which has them.
    let one = Published::new("htmlonly", "1.0", base, &[], "");
    let two = Published::new("htmlonly", "2.0", base, &[], "withheld");
    public = public.route(
        "/simple/htmlonly/",
        "text/html",
        simple_html("htmlonly", &[one.link(), two.link()]),
    );
    let legacy = serde_json::json!({
        "info": { "name": "htmlonly", "version": "2.0" },
        "urls": [],
        "releases": {
            "1.0": [{ "filename": one.filename, "url": one.url,
                      "upload_time_iso_8601": fixtures::upload_time(OLD) }],
            "2.0": [{ "filename": two.filename, "url": two.url,
                      "upload_time_iso_8601": fixtures::upload_time(NEW) }],
        },
    });
    public = public.route(
        "/pypi/htmlonly/json",
        "application/json",
        legacy.to_string(),
    );
    files.push(one);
    files.push(two);
    let fresh: Vec<&Published> = files.iter().filter(|f| f.project == "fresh").collect();
    let entry = |f: &Published, ago| {
        serde_json::json!({ "filename": f.filename, "url": f.url,
            "digests": { "sha256": f.sha256 },
            "upload_time_iso_8601": fixtures::upload_time(ago) })
    };
    let (one, two) = (fresh[0], fresh[1]);
    let doc = |urls: Vec<serde_json::Value>, version: &str| {
        serde_json::json!({
            "info": { "name": "fresh", "version": version },
            "urls": urls,
            "releases": { "1.0": [entry(one, OLD)], "2.0": [entry(two, NEW)] },
        })
        .to_string()
    };
    public = public
        .route(
            "/pypi/fresh/json",
            "application/json",
            doc(vec![entry(two, NEW)], "2.0"),
        )
        .route(
            "/pypi/fresh/2.0/json",
            "application/json",
            doc(vec![entry(two, NEW)], "2.0"),
        )
        .route(
            "/pypi/fresh/1.0/json",
            "application/json",
            doc(vec![entry(one, OLD)], "1.0"),
        );
    // fresh 3.0: on the file host but not (yet) on its project page, as a file uploaded after
    // the page was read.
    files.push(Published::new("fresh", "3.0", base, &[], "withheld"));
    let refs: Vec<&Published> = files.iter().collect();
    public = serve_files(public, &refs);
    // denyhash 2.0's bytes under another name, on no page: only its digest gives it away.
    let denied = files
        .iter()
        .find(|f| f.project == "denyhash" && f.version == "2.0")
        .map(|f| f.bytes.clone())
        .unwrap_or_default();
    public = public.route(RENAMED_PATH, "application/octet-stream", denied);
    (public, files)
}

/// The advisories scenario's projects (issue 16), each an old 1.0 and a 2.0 unless said:
/// `adv-app` 1.0 requires `malver`, `malrange`, `malhash`, `pysecpkg` and `malgone`; an advisory lists
/// `malver` 2.0 by version, `malrange` 2.0 by an `ECOSYSTEM` range, `malhash` 2.0 by version
/// and by its file's sha256, whose bytes `reupload` 2.0 also serves (under its own name, so
/// only the hash gives it away); `malall` (1.0 only) by every version; `malgone` 1.0 by a
/// withdrawn record; `pysecpkg` 2.0 by a `PYSEC-` record. See [`World::osv_records`].
fn serve_advisory_projects<'a>(
    mut public: OriginBuilder<'a>,
    base: &str,
) -> (OriginBuilder<'a>, Vec<Published>) {
    let deps = ["malver", "malrange", "malhash", "pysecpkg", "malgone"];
    let app = Published::new("adv-app", "1.0", base, &deps, "");
    public = serve_project(public, "adv-app", &[app.link()]);
    let mut files = vec![app];
    for project in ["malver", "malrange", "malhash", "pysecpkg", "reupload"] {
        let one = Published::new(project, "1.0", base, &[], "");
        let mut two = Published::new(project, "2.0", base, &[], "malicious");
        if project == "reupload" {
            let original = files
                .iter()
                .find(|f| f.project == "malhash" && f.version == "2.0")
                .expect("malhash 2.0 first");
            two.bytes = original.bytes.clone();
            two.sha256 = original.sha256.clone();
        }
        public = serve_project(public, project, &[one.link(), two.link()]);
        files.push(one);
        files.push(two);
    }
    for project in ["malall", "malgone"] {
        let one = Published::new(project, "1.0", base, &[], "");
        public = serve_project(public, project, &[one.link()]);
        files.push(one);
    }
    // malver's legacy JSON API, both of its releases.
    let entry = |f: &Published| serde_json::json!({ "filename": f.filename, "url": f.url, "digests": { "sha256": f.sha256 } });
    let release = |v: &str| {
        files
            .iter()
            .find(|f| f.project == "malver" && f.version == v)
            .expect("malver releases")
    };
    let (one, two) = (release("1.0"), release("2.0"));
    let doc = |urls: Vec<serde_json::Value>, version: &str| {
        serde_json::json!({
            "info": { "name": "malver", "version": version },
            "urls": urls,
            "releases": { "1.0": [entry(one)], "2.0": [entry(two)] },
        })
        .to_string()
    };
    public = public
        .route(
            "/pypi/malver/json",
            "application/json",
            doc(vec![entry(two)], "2.0"),
        )
        .route(
            "/pypi/malver/2.0/json",
            "application/json",
            doc(vec![entry(two)], "2.0"),
        )
        .route(
            "/pypi/malver/1.0/json",
            "application/json",
            doc(vec![entry(one)], "1.0"),
        );
    let refs: Vec<&Published> = files.iter().collect();
    public = serve_files(public, &refs);
    let malhash = files
        .iter()
        .find(|f| f.project == "malhash" && f.version == "2.0")
        .map(|f| f.bytes.clone())
        .unwrap_or_default();
    public = public.route(MALHASH_RENAMED_PATH, "application/octet-stream", malhash);
    (public, files)
}

/// A hostile project page: a `<base href>` on evil.test under which a relative link resolves
/// off-host, upper-case tags, an unquoted scheme-relative link, an entity-encoded scheme, a
/// link inside a comment, a `javascript:` URL and a PEP 438 `rel="download"` link. pip's own
/// parser follows 2.0 (base), 3.0 (scheme-relative), 4.0 (entities) and 7.0 (`rel` link);
/// only 1.0 is on-host.
fn tricky_page(on_host: &Published) -> String {
    let evil = format!("https://{EVIL_HOST}/packages/fixture/");
    format!(
        r#"<!DOCTYPE html>
<HTML><HEAD><BASE HREF="{evil}"><TITLE>Links for tricky</TITLE></HEAD>
<BODY>
<A HREF="tricky-2.0-py2.py3-none-any.whl">tricky-2.0-py2.py3-none-any.whl</A><br>
<a href=//{EVIL_HOST}/packages/fixture/tricky-3.0-py2.py3-none-any.whl>tricky-3.0-py2.py3-none-any.whl</a><br>
<a href="&#104;ttps&#58;//{EVIL_HOST}/packages/fixture/tricky-4.0-py2.py3-none-any.whl">tricky-4.0-py2.py3-none-any.whl</a><br>
<!-- <a href="{evil}tricky-5.0-py2.py3-none-any.whl">tricky-5.0-py2.py3-none-any.whl</a> -->
<a href="javascript:alert(1)">tricky-6.0-py2.py3-none-any.whl</a><br>
<a rel="download" href="{evil}tricky-7.0-py2.py3-none-any.whl">download</a><br>
<a href="{url}#sha256={sha}">{name}</a><br>
<script>document.write('<a href="{evil}tricky-8.0-py2.py3-none-any.whl">x</a>')</script>
</BODY></HTML>
"#,
        url = on_host.url,
        sha = on_host.sha256,
        name = on_host.filename,
    )
}

/// The knobs of a pipgate config for this world (see [`World::pipgate_config`]).
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Where `pypi.org:443` and `files.pythonhosted.org:443` are dialled.
    pub public_addr: SocketAddr,
    /// Where `private.test:443` is dialled.
    pub private_addr: SocketAddr,
    /// Where `evil.test:443` is dialled (only reachable if pipgate lets it through).
    pub evil_addr: SocketAddr,
    /// `upstream.extra_roots` (the origins' CA), or none for the "untrusted upstream" case.
    pub extra_roots: Option<PathBuf>,
    /// Whether to set `admin_listen`.
    pub admin: bool,
    /// `policy.private`.
    pub private_patterns: Vec<String>,
    /// `policy.allow_public`.
    pub allow_public: Vec<String>,
    /// `network.unlisted_hosts`.
    pub unlisted_hosts: String,
    /// `upstream.connect_timeout`.
    pub connect_timeout: String,
    /// `policy.on_private_index_error`.
    pub on_private_index_error: String,
    /// More `[[index]]` tables, after pypi and corp.
    pub extra_indexes: Vec<ExtraIndex>,
    /// More `[upstream.resolve]` entries (`"host:port"` -> address).
    pub extra_resolve: Vec<(String, SocketAddr)>,
    /// `threads`, when not pipgate's default.
    pub threads: Option<usize>,
    /// More TOML after `[policy]`: its `mode`, and rule tables (`[policy.cooldown]`, ...).
    pub rules: String,
}

/// An additional `[[index]]` for [`WorldConfig::extra_indexes`].
#[derive(Debug, Clone)]
pub struct ExtraIndex {
    /// `name`.
    pub name: String,
    /// `url` (`https://` or `http://`).
    pub url: String,
    /// `role`: "public" or "private".
    pub role: String,
    /// `file_hosts`.
    pub file_hosts: Vec<String>,
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

impl WorldConfig {
    /// The config file text; pipgate's own CA is expected in `ca/` beside it.
    pub fn to_toml(&self) -> String {
        let mut t = String::from("listen = \"127.0.0.1:0\"\n");
        if self.admin {
            t.push_str("admin_listen = \"127.0.0.1:0\"\n");
        }
        if let Some(n) = self.threads {
            t.push_str(&format!("threads = {n}\n"));
        }
        t.push_str("\n[ca]\ncert = \"ca/ca.pem\"\nkey = \"ca/ca.key\"\n\n[upstream]\n");
        if let Some(roots) = &self.extra_roots {
            t.push_str(&format!(
                "extra_roots = [{:?}]\n",
                roots.display().to_string()
            ));
        }
        t.push_str(&format!(
            "connect_timeout = {:?}\n\n[upstream.resolve]\n\"{PUBLIC_HOST}:443\" = \"{pub_}\"\n\"{FILES_HOST}:443\" = \"{pub_}\"\n\"{PRIVATE_HOST}:443\" = \"{priv_}\"\n\"{EVIL_HOST}:443\" = \"{evil}\"\n",
            self.connect_timeout,
            pub_ = self.public_addr,
            priv_ = self.private_addr,
            evil = self.evil_addr,
        ));
        for (target, addr) in &self.extra_resolve {
            t.push_str(&format!("{target:?} = \"{addr}\"\n"));
        }
        t.push_str(&format!(
            "\n[[index]]\nname = \"pypi\"\nurl = \"https://{PUBLIC_HOST}/simple/\"\nrole = \"public\"\nfile_hosts = [\"{FILES_HOST}\"]\n\n[[index]]\nname = \"corp\"\nurl = \"https://{PRIVATE_HOST}/simple/\"\nrole = \"private\"\nfile_hosts = [\"{PRIVATE_HOST}\"]\n"
        ));
        for ix in &self.extra_indexes {
            t.push_str(&format!(
                "\n[[index]]\nname = {:?}\nurl = {:?}\nrole = {:?}\nfile_hosts = {}\n",
                ix.name,
                ix.url,
                ix.role,
                toml_list(&ix.file_hosts)
            ));
        }
        t.push_str(&format!(
            "\n[policy]\nprivate = {}\nallow_public = {}\nprivate_index_ttl = \"5m\"\nprivate_index_negative_ttl = \"60s\"\non_private_index_error = {:?}\n",
            toml_list(&self.private_patterns),
            toml_list(&self.allow_public),
            self.on_private_index_error,
        ));
        t.push_str(&self.rules);
        t.push_str(&format!(
            "\n[network]\nunlisted_hosts = {:?}\ntunnel_allow = []\n",
            self.unlisted_hosts
        ));
        t
    }
}

/// The scenario. Public index (pypi.org + files.pythonhosted.org) serves:
/// `acme-lib` 99.0 (the attacker's wheel, marker "payload"), `pubpkg` 1.0 requiring `pubdep`,
/// `pubdep` 1.0, and `extlinks` 1.0 on-host plus 2.0 on `evil.test` and 3.0 over plain http.
/// `tricky` is an HTML-only page written to fool parsers (see `tricky_page`): only its 1.0 on
/// files.pythonhosted.org is legitimate; 2.0-7.0 live on evil.test.
/// `/simple/moved/` redirects (301) to pypi.org's `pubdep` page, `/simple/escaped/` (302) to
/// evil.test. The private index (private.test) serves `acme-lib` 1.0. pipgate's policy has
/// `private = ["internal-*"]`, so `acme-lib` is private only because the private index has it.
#[derive(Debug)]
pub struct World {
    dir: TempDir,
    origin_ca: TestCa,
    public: RunningOrigin,
    private: RunningOrigin,
    evil: RunningOrigin,
    tunnel: DumbTunnel,
    pipgate: Option<Pipgate>,
    files: Vec<Published>,
}

impl World {
    /// Starts every origin, pipgate (with its admin port) and the control tunnel.
    pub fn start() -> World {
        let mut world = World::start_control_only();
        let config = world.pipgate_config();
        world.pipgate = Some(Pipgate::start(
            &world.dir.path().join("pipgate"),
            &config.to_toml(),
        ));
        world
    }

    /// Starts every origin and the control tunnel, and pipgate with the config `edit` makes of
    /// the world's own.
    pub fn start_with(edit: impl FnOnce(&World, &mut WorldConfig)) -> World {
        let mut world = World::start_control_only();
        let mut config = world.pipgate_config();
        edit(&world, &mut config);
        world.pipgate = Some(Pipgate::start(
            &world.dir.path().join("pipgate"),
            &config.to_toml(),
        ));
        world
    }

    /// The supply-chain rules the rules scenario runs with (see [`World`]): a 7-day cooldown
    /// with `exemptpkg` exempt, `denyver==2.0` and denyhash 2.0's hash denied.
    pub fn rules_toml(&self, mode: &str) -> String {
        format!(
            "mode = {mode:?}\n\n[policy.cooldown]\nmin_age = \"7d\"\nexempt = [\"exemptpkg\"]\non_unknown_upload_time = \"allow\"\n\n[policy.deny]\npackages = [\"denyver==2.0\", \"evilpkg\"]\nfiles = [\"sha256:{}\"]\n",
            self.file("denyhash", "2.0").sha256
        )
    }

    /// The OSV records of the advisories scenario (see `serve_advisory_projects`), as the
    /// malicious-packages project writes them.
    pub fn osv_records(&self) -> Vec<(String, serde_json::Value)> {
        let record = |id: &str, affected: serde_json::Value| {
            serde_json::json!({
                "schema_version": "1.7.4",
                "id": id,
                "modified": "2026-11-30T10:00:00Z",
                "published": "2026-11-30T09:00:00Z",
                "summary": format!("Malicious code in {} (PyPI)", affected[0]["package"]["name"].as_str().unwrap_or("")),
                "affected": affected,
            })
        };
        let pkg = |name: &str| serde_json::json!({"ecosystem": "PyPI", "name": name});
        let malhash = self.file("malhash", "2.0");
        let mut gone = record(
            "MAL-2026-9004",
            serde_json::json!([{"package": pkg("malgone"), "versions": ["1.0"]}]),
        );
        gone["withdrawn"] = serde_json::json!("2026-11-30T12:00:00Z");
        vec![
            ("MAL-2026-9001", record("MAL-2026-9001", serde_json::json!([{"package": pkg("malver"), "versions": ["2.0"]}]))),
            ("MAL-2026-9002", record("MAL-2026-9002", serde_json::json!([{"package": pkg("malrange"),
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.5"}, {"fixed": "3.0"}]}]}]))),
            ("MAL-2026-9003", record("MAL-2026-9003", serde_json::json!([{"package": pkg("malall"),
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]))),
            ("MAL-2026-9004", gone),
            ("MAL-2026-9005", record("MAL-2026-9005", serde_json::json!([{"package": pkg("malhash"), "versions": ["2.0"],
                "database_specific": {"indicators": {"package_integrity": [
                    {"filename": malhash.filename, "hashes": {"sha256": malhash.sha256}}]}}}]))),
            ("PYSEC-2026-9006", record("PYSEC-2026-9006", serde_json::json!([{"package": pkg("pysecpkg"), "versions": ["2.0"]}]))),
        ]
        .into_iter()
        .map(|(id, r)| (id.to_owned(), r))
        .collect()
    }

    /// `[policy.advisories]` reading [`World::osv_zip`] from a file in the world's directory.
    pub fn advisories_toml(&self) -> String {
        let dir = self.dir.path().join("osv");
        std::fs::create_dir_all(&dir).expect("osv dir");
        let zip = dir.join("all.zip");
        std::fs::write(&zip, self.osv_zip(&[])).expect("write osv zip");
        format!(
            "\n[policy.advisories]\nsource = {:?}\nrefresh = \"1h\"\n",
            zip.display().to_string()
        )
    }

    /// [`World::osv_records`] (and `more`) as an OSV zip, `<id>.json` each, as osv.dev's
    /// `PyPI/all.zip`.
    pub fn osv_zip(&self, more: &[(String, serde_json::Value)]) -> Vec<u8> {
        let mut all = self.osv_records();
        all.extend_from_slice(more);
        fixtures::zip_of(
            &all.iter()
                .map(|(id, r)| (format!("{id}.json"), r.to_string().into_bytes()))
                .collect::<Vec<_>>(),
        )
    }

    /// Starts the origins and the control tunnel, but no pipgate (the control needs none).
    pub fn start_control_only() -> World {
        let dir = tempfile::Builder::new()
            .prefix(&format!("w{}-", std::process::id()))
            .tempdir_in(scratch_root())
            .expect("world temp dir");
        let origin_ca = TestCa::new_in(dir.path());
        let pypi_files = format!("https://{FILES_HOST}");
        let private_base = format!("https://{PRIVATE_HOST}");
        let evil_base = format!("https://{EVIL_HOST}");

        let acme_public = Published::new("acme-lib", "99.0", &pypi_files, &[], "payload");
        let acme_private = Published::new("acme-lib", "1.0", &private_base, &[], "");
        let pubpkg = Published::new("pubpkg", "1.0", &pypi_files, &["pubdep"], "");
        let pubdep = Published::new("pubdep", "1.0", &pypi_files, &[], "");
        let ext1 = Published::new("extlinks", "1.0", &pypi_files, &[], "");
        let ext2 = Published::new("extlinks", "2.0", &evil_base, &[], "external");
        let tricky1 = Published::new("tricky", "1.0", &pypi_files, &[], "");
        let tricky_evil: Vec<Published> = ["2.0", "3.0", "4.0", "5.0", "7.0"]
            .iter()
            .map(|v| Published::new("tricky", v, &evil_base, &[], "external"))
            .collect();
        // The private page links an off-host 1.5 too: private pages are filtered like public ones.
        let acme_evil = Published::new("acme-lib", "1.5", &evil_base, &[], "external");
        let mut ext3 = Published::new("extlinks", "3.0", &pypi_files, &[], "plain-http");
        ext3.url = ext3.url.replacen("https://", "http://", 1);

        let mut public = Origin::builder(&origin_ca)
            .host(PUBLIC_HOST)
            .host(FILES_HOST);
        public = serve_files(public, &[&acme_public, &pubpkg, &pubdep, &ext1, &ext3]);
        public = serve_project(public, "acme-lib", &[acme_public.link()]);
        public = serve_project(public, "pubpkg", &[pubpkg.link()]);
        public = serve_project(public, "pubdep", &[pubdep.link()]);
        public = serve_project(public, "extlinks", &[ext1.link(), ext2.link(), ext3.link()]);
        public = serve_files(public, &[&tricky1]);
        public = public.route("/simple/tricky/", "text/html", tricky_page(&tricky1));
        // An index redirect that stays on intercepted hosts, and one that leaves them.
        public = public
            .redirect("/simple/moved/", 301, "https://pypi.org/simple/pubdep/")
            .redirect("/simple/escaped/", 302, "https://evil.test/simple/escaped/");
        public = public.route(
            "/simple/",
            "text/html",
            fixtures::root_html(&["acme-lib", "pubpkg", "pubdep", "extlinks", "tricky"]),
        );
        for f in [&acme_public, &pubpkg] {
            let json = serde_json::json!({
                "info": { "name": f.project, "version": f.version },
                "urls": [{ "filename": f.filename, "url": f.url,
                           "digests": { "sha256": f.sha256 } }],
            })
            .to_string();
            public = public
                .route(
                    &format!("/pypi/{}/json", f.project),
                    "application/json",
                    json.clone(),
                )
                .route(
                    &format!("/pypi/{}/{}/json", f.project, f.version),
                    "application/json",
                    json,
                );
        }
        let (public, rules_files) = serve_rules_projects(public, &pypi_files);
        let (public, advisory_files) = serve_advisory_projects(public, &pypi_files);
        let public = public.run();

        let mut private = Origin::builder(&origin_ca).host(PRIVATE_HOST);
        private = serve_files(private, &[&acme_private]);
        private = serve_project(
            private,
            "acme-lib",
            &[acme_private.link(), acme_evil.link()],
        );
        private = private.route("/simple/", "text/html", fixtures::root_html(&["acme-lib"]));
        let private = private.run();

        let mut evil_files = vec![&ext2, &acme_evil];
        evil_files.extend(tricky_evil.iter());
        let evil = serve_files(Origin::builder(&origin_ca).host(EVIL_HOST), &evil_files).run();

        let tunnel = DumbTunnel::start([
            (format!("{PUBLIC_HOST}:443"), public.addr()),
            (format!("{FILES_HOST}:443"), public.addr()),
            (format!("{PRIVATE_HOST}:443"), private.addr()),
            (format!("{EVIL_HOST}:443"), evil.addr()),
        ]);

        World {
            dir,
            origin_ca,
            public,
            private,
            evil,
            tunnel,
            pipgate: None,
            files: vec![
                acme_public,
                acme_private,
                acme_evil,
                pubpkg,
                pubdep,
                ext1,
                ext2,
                ext3,
                tricky1,
            ]
            .into_iter()
            .chain(tricky_evil)
            .chain(rules_files)
            .chain(advisory_files)
            .collect(),
        }
    }

    /// The config the world's own pipgate runs with; change fields and pass it to
    /// [`World::start_pipgate`] for a variant against the same origins.
    pub fn pipgate_config(&self) -> WorldConfig {
        base_config(&self.origin_ca, &self.public, &self.private, &self.evil)
    }

    /// Starts another pipgate (own CA, own ports) in a fresh directory of this world.
    pub fn start_pipgate(&self, config: &WorldConfig) -> Pipgate {
        self.start_pipgate_with_args(config, &[])
    }

    /// [`World::start_pipgate`] with more `pipgate run` arguments.
    pub fn start_pipgate_with_args(&self, config: &WorldConfig, args: &[&str]) -> Pipgate {
        let dir = tempfile::Builder::new()
            .prefix("pipgate-")
            .tempdir_in(self.dir.path())
            .expect("pipgate dir")
            .keep();
        Pipgate::start_with_args(&dir, &config.to_toml(), args)
    }

    /// The world's pipgate.
    pub fn pipgate(&self) -> &Pipgate {
        self.pipgate
            .as_ref()
            .expect("this world was started without pipgate")
    }

    /// Going through pipgate, trusting its CA.
    pub fn via_pipgate(&self) -> Route {
        Route {
            proxy_url: self.proxy_url(),
            ca_pem: self.ca_pem().to_path_buf(),
        }
    }

    /// Going through the blind tunnel, trusting the origins' CA (no pipgate involved).
    pub fn via_control(&self) -> Route {
        Route {
            proxy_url: self.control_proxy_url(),
            ca_pem: self.control_ca_pem().to_path_buf(),
        }
    }

    /// A probe client through pipgate, trusting its CA.
    pub fn probe(&self) -> Probe {
        Probe::new(self.pipgate().addr, self.ca_pem())
    }

    /// pipgate's proxy URL.
    pub fn proxy_url(&self) -> String {
        self.pipgate().proxy_url()
    }

    /// pipgate's CA, which clients going through pipgate must trust.
    pub fn ca_pem(&self) -> &Path {
        &self.pipgate().ca_pem
    }

    /// The unfiltered tunnel's proxy URL.
    pub fn control_proxy_url(&self) -> String {
        self.tunnel.proxy_url()
    }

    /// The origins' CA, which clients going through the control tunnel must trust.
    pub fn control_ca_pem(&self) -> &Path {
        self.origin_ca.pem_path()
    }

    /// The origins' CA itself.
    pub fn origin_ca(&self) -> &TestCa {
        &self.origin_ca
    }

    /// The control tunnel.
    pub fn tunnel(&self) -> &DumbTunnel {
        &self.tunnel
    }

    /// `https://private.test/simple/`.
    pub fn private_index_url(&self) -> String {
        format!("https://{PRIVATE_HOST}/simple/")
    }

    /// `https://pypi.org/simple/`.
    pub fn public_index_url(&self) -> String {
        format!("https://{PUBLIC_HOST}/simple/")
    }

    /// The origin impersonating pypi.org and files.pythonhosted.org.
    pub fn public_origin(&self) -> &RunningOrigin {
        &self.public
    }

    /// The private index origin.
    pub fn private_origin(&self) -> &RunningOrigin {
        &self.private
    }

    /// The external host some public links point at.
    pub fn evil_origin(&self) -> &RunningOrigin {
        &self.evil
    }

    /// A scratch directory inside the world's temp dir, kept until the world ends.
    /// `pip download --no-deps -d <fresh dir> ARGS... REQUIREMENT` with the newest pip through
    /// `route`; asserts success and returns the one file pip saved.
    pub fn pip_download(&self, route: &Route, args: &[&str], requirement: &str) -> PathBuf {
        let dest = self.scratch("dl-");
        let home = self.scratch("home-");
        let dest_arg = dest.display().to_string();
        let mut all = vec!["download", "--no-deps", "-d", dest_arg.as_str()];
        all.extend_from_slice(args);
        all.push(requirement);
        crate::installer::pip(crate::venv::latest(), route, &home, &all).assert_ok();
        crate::installer::only_file(&dest)
    }

    pub fn scratch(&self, prefix: &str) -> PathBuf {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.dir.path())
            .expect("scratch dir")
            .keep()
    }

    /// A published file by project and version (panics if there is none).
    pub fn file(&self, project: &str, version: &str) -> &Published {
        self.files
            .iter()
            .find(|f| f.project == project && f.version == version)
            .unwrap_or_else(|| panic!("no published {project} {version}"))
    }
}

/// `<target>/it-tmp`, where worlds keep their files. A world shared through a `static` is never
/// dropped, so its directory outlives the test process; each new process sweeps the
/// directories of processes that are gone (`w<pid>-*` with no `/proc/<pid>`).
fn scratch_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = crate::pipgate::target_dir().join("it-tmp");
        std::fs::create_dir_all(&root).expect("create it-tmp");
        if Path::new("/proc/self").exists() {
            for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let pid = name
                    .strip_prefix('w')
                    .and_then(|r| r.split('-').next())
                    .and_then(|p| p.parse::<u32>().ok());
                if let Some(pid) = pid {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
            }
        }
        root
    })
    .clone()
}

fn base_config(
    origin_ca: &TestCa,
    public: &RunningOrigin,
    private: &RunningOrigin,
    evil: &RunningOrigin,
) -> WorldConfig {
    WorldConfig {
        public_addr: public.addr(),
        private_addr: private.addr(),
        evil_addr: evil.addr(),
        extra_roots: Some(origin_ca.pem_path().to_path_buf()),
        admin: true,
        private_patterns: vec!["internal-*".to_owned()],
        allow_public: Vec::new(),
        unlisted_hosts: "block".to_owned(),
        connect_timeout: "5s".to_owned(),
        on_private_index_error: "block".to_owned(),
        extra_indexes: Vec::new(),
        extra_resolve: Vec::new(),
        threads: None,
        rules: String::new(),
    }
}
