//! Package fixtures: real installable wheels and PEP 503 / PEP 691 pages describing them.
use std::io::{Cursor, Write};

use base64::Engine;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

/// PEP 503 normalization: runs of `-_.` become `-`, lower case.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_sep = false;
        }
    }
    out
}

/// The importable module / wheel distribution name (`acme-lib` -> `acme_lib`).
pub fn module_name(name: &str) -> String {
    normalize(name).replace('-', "_")
}

/// `acme_lib-1.0-py2.py3-none-any.whl`.
pub fn wheel_filename(name: &str, version: &str) -> String {
    format!("{}-{version}-py2.py3-none-any.whl", module_name(name))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The wheel's `METADATA` (also served as PEP 658 `<file>.metadata`).
pub fn wheel_metadata(name: &str, version: &str, deps: &[&str]) -> String {
    let mut m = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: pipgate integration-test fixture\n");
    for dep in deps {
        m.push_str(&format!("Requires-Dist: {dep}\n"));
    }
    m
}

/// A real pure-python `py2.py3-none-any` wheel whose module reports `__version__`.
pub fn wheel(name: &str, version: &str, deps: &[&str]) -> Vec<u8> {
    wheel_with_marker(name, version, deps, "")
}

/// [`wheel`] whose module also carries `MARKER = "<marker>"` (e.g. "payload" for the attacker's
/// copy), so a test can tell from installed files which wheel it got.
pub fn wheel_with_marker(name: &str, version: &str, deps: &[&str], marker: &str) -> Vec<u8> {
    let module = module_name(name);
    let dist_info = format!("{module}-{version}.dist-info");
    let init = format!(
        "\"\"\"{name} {version}: a pipgate integration-test fixture.\"\"\"\n__version__ = \"{version}\"\nMARKER = \"{marker}\"\n"
    );
    let wheel_file = "Wheel-Version: 1.0\nGenerator: pipgate-integration-tests\nRoot-Is-Purelib: true\nTag: py2-none-any\nTag: py3-none-any\n";
    let files: Vec<(String, Vec<u8>)> = vec![
        (format!("{module}/__init__.py"), init.into_bytes()),
        (
            format!("{dist_info}/METADATA"),
            wheel_metadata(name, version, deps).into_bytes(),
        ),
        (format!("{dist_info}/WHEEL"), wheel_file.as_bytes().to_vec()),
    ];
    let mut record = String::new();
    for (path, data) in &files {
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data));
        record.push_str(&format!("{path},sha256={digest},{}\n", data.len()));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));

    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    // A fixed timestamp keeps the bytes (and so the sha256) the same from run to run.
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(
            zip::DateTime::from_date_and_time(2024, 1, 1, 0, 0, 0).expect("zip date"),
        );
    for (path, data) in files.iter().chain(std::iter::once(&(
        format!("{dist_info}/RECORD"),
        record.into_bytes(),
    ))) {
        zip.start_file(path.as_str(), opts).expect("zip entry");
        zip.write_all(data).expect("zip write");
    }
    zip.finish().expect("zip finish").into_inner()
}

/// A zip of `(name, bytes)` entries, deflated (as osv.dev's dumps are).
pub fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        zip.start_file(name.as_str(), opts).expect("zip entry");
        zip.write_all(data).expect("zip write");
    }
    zip.finish().expect("zip finish").into_inner()
}

/// One file offered on a project page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLink {
    /// Absolute (or relative, for adversarial pages) URL, without fragment.
    pub url: String,
    /// The file name shown as anchor text / JSON `filename`.
    pub filename: String,
    /// Hex sha256 of the file, added as `#sha256=` / JSON `hashes`.
    pub sha256: Option<String>,
    /// Hex sha256 of the PEP 658 metadata file, when one is advertised.
    pub metadata_sha256: Option<String>,
    /// `data-requires-python` / `requires-python`.
    pub requires_python: Option<String>,
    /// PEP 700 `upload-time` (JSON only: PyPI's HTML pages carry none).
    pub upload_time: Option<String>,
}

impl FileLink {
    /// A link to `url` named by its last path segment, with no hash.
    pub fn new(url: &str) -> FileLink {
        let filename = url.rsplit('/').next().unwrap_or(url).to_owned();
        FileLink {
            url: url.to_owned(),
            filename,
            sha256: None,
            metadata_sha256: None,
            requires_python: None,
            upload_time: None,
        }
    }

    /// A link to `url` carrying the sha256 of `data`.
    pub fn to_file(url: &str, data: &[u8]) -> FileLink {
        FileLink {
            sha256: Some(sha256_hex(data)),
            ..FileLink::new(url)
        }
    }

    /// Uploaded `ago` before now (RFC 3339, as PyPI writes it).
    pub fn uploaded(mut self, ago: std::time::Duration) -> FileLink {
        self.upload_time = Some(upload_time(ago));
        self
    }

    /// Advertises PEP 658 metadata (`<url>.metadata`) with the sha256 of `metadata`.
    pub fn with_metadata(mut self, metadata: &[u8]) -> FileLink {
        self.metadata_sha256 = Some(sha256_hex(metadata));
        self
    }
}

/// Now less `ago`, as RFC 3339 with microseconds (PyPI's form).
pub fn upload_time(ago: std::time::Duration) -> String {
    let t = time::OffsetDateTime::now_utc() - ago;
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A PEP 503 project page.
pub fn simple_html(name: &str, links: &[FileLink]) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n    <title>Links for {n}</title>\n  </head>\n  <body>\n    <h1>Links for {n}</h1>\n",
        n = escape(name)
    );
    for link in links {
        let mut href = link.url.clone();
        if let Some(sha) = &link.sha256 {
            href.push_str(&format!("#sha256={sha}"));
        }
        let mut attrs = String::new();
        if let Some(rp) = &link.requires_python {
            attrs.push_str(&format!(" data-requires-python=\"{}\"", escape(rp)));
        }
        if let Some(m) = &link.metadata_sha256 {
            attrs.push_str(&format!(
                " data-dist-info-metadata=\"sha256={m}\" data-core-metadata=\"sha256={m}\""
            ));
        }
        page.push_str(&format!(
            "    <a href=\"{}\"{attrs}>{}</a><br />\n",
            escape(&href),
            escape(&link.filename)
        ));
    }
    page.push_str("  </body>\n</html>\n");
    page
}

/// A PEP 691 JSON project page (`application/vnd.pypi.simple.v1+json`).
pub fn simple_json(name: &str, links: &[FileLink]) -> String {
    let files: Vec<serde_json::Value> = links
        .iter()
        .map(|l| {
            let mut f = serde_json::json!({
                "filename": l.filename,
                "url": l.url,
                "hashes": l.sha256.as_ref().map_or_else(
                    || serde_json::json!({}),
                    |s| serde_json::json!({ "sha256": s })
                ),
            });
            if let Some(rp) = &l.requires_python {
                f["requires-python"] = serde_json::json!(rp);
            }
            if let Some(m) = &l.metadata_sha256 {
                f["core-metadata"] = serde_json::json!({ "sha256": m });
            }
            if let Some(t) = &l.upload_time {
                f["upload-time"] = serde_json::json!(t);
            }
            f
        })
        .collect();
    serde_json::json!({
        "meta": { "api-version": "1.1" },
        "name": normalize(name),
        "files": files,
    })
    .to_string()
}

/// A PEP 503 root listing (`/simple/`).
pub fn root_html(names: &[&str]) -> String {
    let mut page = String::from("<!DOCTYPE html>\n<html>\n  <body>\n");
    for n in names {
        let n = normalize(n);
        page.push_str(&format!("    <a href=\"/simple/{n}/\">{n}</a>\n"));
    }
    page.push_str("  </body>\n</html>\n");
    page
}

/// Decompresses gzip `data` with the system `gzip -dc` (panics when it is not gzip).
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip -dc");
    let mut stdin = child.stdin.take().expect("gzip stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("gzip output");
    writer.join().expect("gzip writer").expect("write to gzip");
    assert!(out.status.success(), "not gzip");
    out.stdout
}

/// Gzip-compresses `data` with the system `gzip` (for `Content-Encoding: gzip` origins).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .args(["-c", "-n", "-6"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip");
    let mut stdin = child.stdin.take().expect("gzip stdin");
    let input = data.to_vec();
    // Feed from a thread: gzip's output pipe would otherwise fill while we are still writing.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip output");
    writer.join().expect("gzip writer").expect("write to gzip");
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

/// The PEP 691 JSON content type.
pub const JSON_CT: &str = "application/vnd.pypi.simple.v1+json";
/// The PEP 691 HTML content type.
pub const HTML_CT: &str = "application/vnd.pypi.simple.v1+html";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_pep503() {
        assert_eq!(normalize("Acme_Lib"), "acme-lib");
        assert_eq!(normalize("acme.-_lib"), "acme-lib");
        assert_eq!(module_name("Acme.Lib"), "acme_lib");
    }

    #[test]
    fn wheel_is_a_zip_with_a_consistent_record() {
        let whl = wheel("acme-lib", "1.0", &["pubdep"]);
        assert_eq!(whl, wheel("acme-lib", "1.0", &["pubdep"]), "deterministic");
        let mut zip = zip::ZipArchive::new(Cursor::new(whl)).unwrap();
        let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "acme_lib-1.0.dist-info/METADATA",
                "acme_lib-1.0.dist-info/RECORD",
                "acme_lib-1.0.dist-info/WHEEL",
                "acme_lib/__init__.py",
            ]
        );
        let mut record = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("acme_lib-1.0.dist-info/RECORD").unwrap(),
            &mut record,
        )
        .unwrap();
        assert!(record.contains("acme_lib/__init__.py,sha256="));
        let mut meta = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("acme_lib-1.0.dist-info/METADATA").unwrap(),
            &mut meta,
        )
        .unwrap();
        assert!(meta.contains("Requires-Dist: pubdep\n"));
    }

    #[test]
    fn pages_carry_hashes() {
        let link = FileLink::to_file("https://h/x-1.0.whl", b"abc");
        let html = simple_html("x", std::slice::from_ref(&link));
        assert!(html.contains(
            "https://h/x-1.0.whl#sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        ));
        let json: serde_json::Value = serde_json::from_str(&simple_json("x", &[link])).unwrap();
        assert_eq!(json["files"][0]["filename"], "x-1.0.whl");
    }
}
