//! What the origin serves: a 200 B file, a 10 MiB file, a 1 GiB stream, a PyPI-shaped
//! 4,700-link project page and a PyPI-sized root listing (60 MB, 600,000 names), generated at
//! start (nothing large is committed).

use std::fmt::Write as _;

use bytes::Bytes;

use crate::Res;

/// The index host and the file host, as on PyPI.
pub(crate) const INDEX_HOST: &str = "pypi.org";
pub(crate) const FILE_HOST: &str = "files.pythonhosted.org";

/// Paths (the origin matches on the path only; the host decides what pipgate does with it).
pub(crate) const SMALL: &str = "/packages/00/00/small-1.0.tar.gz";
pub(crate) const TEN_MIB: &str = "/packages/00/01/ten-1.0.tar.gz";
pub(crate) const ONE_GIB: &str = "/packages/00/02/huge-1.0.tar.gz";
/// The project page on the index host: pipgate parses and re-synthesizes it.
pub(crate) const PAGE: &str = "/simple/bigproj/";
/// The same bytes as a "file" on the file host: pipgate streams it untouched.
pub(crate) const PAGE_AS_FILE: &str = "/packages/00/03/bigproj-1.0.tar.gz";
/// The root listing on the index host, re-synthesized (as it streams).
pub(crate) const ROOT: &str = "/simple/";
/// The same bytes as a file on the file host.
pub(crate) const ROOT_AS_FILE: &str = "/packages/00/04/root-1.0.tar.gz";
/// Names in the root listing (PyPI's had ~600,000 in 2026).
pub(crate) const ROOT_NAMES: usize = 600_000;
/// Links on the project page: 4,700 in PyPI's markup make the 2.2 MB the issue measured.
pub(crate) const PAGE_LINKS: usize = 4_700;

pub(crate) const SMALL_LEN: usize = 200;
pub(crate) const TEN_MIB_LEN: usize = 10 * 1024 * 1024;
pub(crate) const ONE_GIB_LEN: u64 = 1024 * 1024 * 1024;
/// The 1 GiB body is sent as this many repeats of one chunk.
pub(crate) const CHUNK: usize = 256 * 1024;

/// Everything the origin holds in memory.
#[derive(Debug, Clone)]
pub(crate) struct Fixtures {
    pub small: Bytes,
    pub ten: Bytes,
    pub chunk: Bytes,
    pub page: Bytes,
    /// The same project as PEP 691 JSON with PEP 700 upload times (for the `cooldown` load):
    /// what the origin answers an `Accept` that asks for JSON.
    pub page_json: Bytes,
    pub root: Bytes,
    /// The project pages of `small` and `ten` (HTML, with each file's sha256, as PyPI's): a
    /// download is checked against the hash its page advertises (`[policy.integrity]`, on by
    /// default), so the download rows include that check.
    pub small_page: Bytes,
    pub ten_page: Bytes,
    /// `ETag`s of the project pages (HTML and JSON): the origin answers a conditional request
    /// whose `If-None-Match` names one with `304 Not Modified` (the `cache` load's revalidated
    /// page).
    pub page_etag: String,
    pub page_json_etag: String,
    /// The `cache` load's pip-installable projects: per project, its page and its wheel.
    pub wheels: Vec<(Bytes, Bytes)>,
}

/// The `cache` load's `pip install`: [`WHEELS`] projects `pgbench-w<i>` of one small real wheel
/// each ([`WHEEL_LEN`] of stored data in a module), no dependencies.
pub(crate) const WHEELS: usize = 12;
pub(crate) const WHEEL_LEN: usize = 512 * 1024;
/// Page paths start with this, followed by the project's number and `/`.
pub(crate) const WHEEL_PAGE_PREFIX: &str = "/simple/pgbench-w";
/// Wheel paths start with this, followed by the project's number, `/` and the file name.
pub(crate) const WHEEL_FILE_PREFIX: &str = "/packages/wh/";
/// The origin answers each wheel after this delay: a far upstream, so that what the cache saves
/// (the fetches upstream) shows in the install's wall time, as it would on a real network.
pub(crate) const WHEEL_DELAY_MS: u64 = 250;

/// The project name of wheel `i`.
pub(crate) fn wheel_project(i: usize) -> String {
    format!("pgbench-w{i}")
}

/// A real, installable wheel of project `pgbench-w<i>` 1.0 (pure Python, `py3-none-any`): a
/// module, its data, and the dist-info pip reads (METADATA, WHEEL, RECORD with sha256s).
fn wheel(i: usize) -> Res<(String, Vec<u8>)> {
    use sha2::Digest;
    use std::io::Write as _;
    let module = format!("pgbench_w{i}");
    let dist_info = format!("{module}-1.0.dist-info");
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            format!("{module}/__init__.py"),
            format!("VALUE = {i}\n").into_bytes(),
        ),
        (format!("{module}/data.txt"), filler(WHEEL_LEN, 100 + i as u32)),
        (
            format!("{dist_info}/METADATA"),
            format!("Metadata-Version: 2.1\nName: pgbench-w{i}\nVersion: 1.0\n").into_bytes(),
        ),
        (
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: pipgate-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_vec(),
        ),
    ];
    let mut record = String::new();
    for (name, data) in &files {
        let digest = sha2::Sha256::digest(data);
        let _ = writeln!(
            record,
            "{name},sha256={},{}",
            base64_url(&digest),
            data.len()
        );
    }
    let _ = writeln!(record, "{dist_info}/RECORD,,");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in files.iter().chain(std::iter::once(&(
        format!("{dist_info}/RECORD"),
        record.into_bytes(),
    ))) {
        zip.start_file(name.as_str(), opts)?;
        zip.write_all(data)?;
    }
    let bytes = zip.finish()?.into_inner();
    Ok((format!("{module}-1.0-py3-none-any.whl"), bytes))
}

/// URL-safe base64 without padding (a wheel RECORD's digests).
fn base64_url(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..=c.len() {
            out.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
        }
    }
    out
}

/// A strong `ETag` of `data` (its sha256's first 16 bytes).
fn etag(data: &[u8]) -> String {
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(data)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}

/// The project page at `/simple/<project>/` of the one file `path`, whose bytes are `data`.
fn file_page(path: &str, data: &[u8]) -> Bytes {
    use sha2::Digest;
    let name = path.rsplit('/').next().unwrap_or(path);
    let sha: String = sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Bytes::from(format!(
        "<!DOCTYPE html>\n<html>\n  <body>\n    <a href=\"https://{FILE_HOST}{path}#sha256={sha}\">{name}</a><br />\n  </body>\n</html>\n"
    ))
}

/// Where the origins serve [`Fixtures::small_page`] and [`Fixtures::ten_page`] (the `cache`
/// load too: pipgate caches a file by the hash its page advertises).
pub(crate) const SMALL_PAGE: &str = "/simple/small/";
pub(crate) const TEN_PAGE: &str = "/simple/ten/";

/// Deterministic filler (not all zeroes, so nothing can cheat by compressing it).
fn filler(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b'a' + (x % 26) as u8
        })
        .collect()
}

fn hex(seed: usize, salt: usize) -> String {
    let mut s = String::with_capacity(64);
    for i in 0..8usize {
        let v = seed.wrapping_mul(2_654_435_761) ^ (i + salt).wrapping_mul(40_503);
        let _ = write!(s, "{:08x}", v as u32);
    }
    s
}

/// A PyPI-shaped PEP 503 page of `n` files in PyPI's own markup, about 420 bytes a link
/// ([`PAGE_LINKS`] make 2.2 MB): hashed URLs on the file host, `data-requires-python` and
/// the PEP 714 metadata hash twice (`data-dist-info-metadata` and `data-core-metadata`), as
/// PyPI writes every wheel's link.
pub(crate) fn project_page(n: usize) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n    <title>Links for bigproj</title>\n  </head>\n  <body>\n    <h1>Links for bigproj</h1>\n",
    );
    for i in 0..n {
        let h = hex(i, 0);
        let m = hex(i, 7);
        let file = format!("bigproj-{}.{}.{}.tar.gz", i / 100, i / 10 % 10, i % 10);
        let _ = writeln!(
            s,
            "    <a href=\"https://{FILE_HOST}/packages/{}/{}/{}/{file}#sha256={h}\" data-requires-python=\"&gt;=3.9\" data-dist-info-metadata=\"sha256={meta}\" data-core-metadata=\"sha256={meta}\">{file}</a><br />",
            &h[..2],
            &h[2..4],
            &m[..60],
            meta = hex(i, 11),
        );
    }
    s.push_str("  </body>\n</html>\n<!--SERIAL 123456789-->\n");
    s
}

/// The files of [`project_page`] as a PEP 691 JSON page, PyPI's keys per file (`hashes`,
/// `requires-python`, `size`, `upload-time`, `yanked`), one every 2 hours up to an hour ago:
/// a 7-day cooldown withholds the newest 84.
pub(crate) fn project_page_json(n: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut s = String::from("{\"files\":[");
    for i in 0..n {
        let h = hex(i, 0);
        let m = hex(i, 7);
        let file = format!("bigproj-{}.{}.{}.tar.gz", i / 100, i / 10 % 10, i % 10);
        let age = (n - i) as i64 * 7_200 - 3_600;
        let t = now - age;
        let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        let (y, mo, d) = civil(days);
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"filename\":\"{file}\",\"hashes\":{{\"sha256\":\"{h}\"}},\"requires-python\":\">=3.9\",\"core-metadata\":{{\"sha256\":\"{meta}\"}},\"data-dist-info-metadata\":{{\"sha256\":\"{meta}\"}},\"size\":{},\"upload-time\":\"{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.123456Z\",\"url\":\"https://{FILE_HOST}/packages/{}/{}/{}/{file}\",\"yanked\":false}}",
            10_000 + i,
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            &h[..2],
            &h[2..4],
            &m[..60],
            meta = hex(i, 11),
        );
    }
    s.push_str("],\"meta\":{\"_last-serial\":123456789,\"api-version\":\"1.1\"},\"name\":\"bigproj\",\"versions\":[]}");
    s
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A PyPI-shaped root listing of `n` names, about 100 bytes a line as PyPI's is at 60 MB:
/// names in the spellings projects use (case, `_`, `.`), one in 500 private by the bench's
/// `policy.private` (so pipgate has names to drop).
pub(crate) fn root_listing(n: usize) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n    <title>Simple index</title>\n  </head>\n  <body>\n",
    );
    s.reserve(n * 100);
    const WORDS: [&str; 8] = [
        "django",
        "Flask_Ext",
        "py.test",
        "requests",
        "azure-mgmt",
        "Sphinx",
        "aws_cdk",
        "types",
    ];
    for i in 0..n {
        let name = if i % 500 == 0 {
            format!("acme-internal-{i}")
        } else {
            let h = hex(i, 3);
            format!("{}-{}-{}", WORDS[i % WORDS.len()], &h[..(10 + i % 17)], i)
        };
        let norm = name.to_ascii_lowercase().replace(['_', '.'], "-");
        let _ = writeln!(s, "    <a href=\"/simple/{norm}/\">{name}</a>");
    }
    s.push_str("  </body>\n</html>\n");
    s
}

impl Fixtures {
    pub(crate) fn generate() -> Fixtures {
        let (small, ten) = (filler(SMALL_LEN, 1), filler(TEN_MIB_LEN, 2));
        let page = Bytes::from(project_page(PAGE_LINKS));
        let page_json = Bytes::from(project_page_json(PAGE_LINKS));
        // A wheel zips in memory; one that did not is left out (pip then says which is missing).
        let wheels = (0..WHEELS)
            .filter_map(|i| wheel(i).ok().map(|w| (i, w)))
            .map(|(i, (name, data))| {
                let path = format!("{WHEEL_FILE_PREFIX}{i}/{name}");
                (file_page(&path, &data), Bytes::from(data))
            })
            .collect();
        Fixtures {
            page_etag: etag(&page),
            page_json_etag: etag(&page_json),
            wheels,
            small_page: file_page(SMALL, &small),
            ten_page: file_page(TEN_MIB, &ten),
            small: Bytes::from(small),
            ten: Bytes::from(ten),
            chunk: Bytes::from(filler(CHUNK, 3)),
            page,
            page_json,
            root: Bytes::from(root_listing(ROOT_NAMES)),
        }
    }
}

/// How many OSV records the `advisories` load's feed holds (the issue's 100k; PyPI's dump has
/// about 14k `MAL-` records and more with `PYSEC-`/`GHSA-`).
pub(crate) const OSV_RECORDS: usize = 100_000;

/// An OSV zip of `n` generated `MAL-` records shaped like the malicious-packages project's
/// (summary, a details paragraph, one PyPI package with a few versions, package-integrity
/// hashes of two files, origins): about 1.3 kB of JSON each. None names the page's project.
pub(crate) fn osv_zip(n: usize) -> Res<Vec<u8>> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut record = String::with_capacity(2048);
    for i in 0..n {
        record.clear();
        let name = format!("gen-pkg-{i}");
        let _ = write!(
            record,
            r#"{{"schema_version":"1.7.4","id":"MAL-2026-{i}","published":"2026-09-03T17:00:47Z","modified":"2026-09-04T00:47:46.156672516Z","summary":"Malicious code in {name} (PyPI)","details":"\n---\n_-= Per source details. Do not edit below this line.=-_\n\n## Source: generated ({h0})\nOn import the package enumerates os.environ, collects every variable whose name begins with SECRET, API, TOKEN or KEY and sends them to a remote host. Category: credential theft.\n","affected":[{{"package":{{"name":"{name}","ecosystem":"PyPI"}},"versions":["0.0.{a}","0.0.{b}","1.{a}.0"],"database_specific":{{"indicators":{{"package_integrity":[{{"filename":"{name}-0.0.{a}-py3-none-any.whl","hashes":{{"sha256":"{h1}"}}}},{{"filename":"{name}-0.0.{a}.tar.gz","hashes":{{"sha256":"{h2}"}}}}]}}}}}}],"references":[{{"type":"PACKAGE","url":"https://pypi.org/project/{name}/"}}],"database_specific":{{"malicious-packages-origins":[{{"source":"generated","sha256":"{h0}","versions":["0.0.{a}"]}}]}}}}"#,
            a = i % 7,
            b = i % 7 + 1,
            h0 = hex(i, 11),
            h1 = hex(i, 13),
            h2 = hex(i, 17),
        );
        zip.start_file(format!("MAL-2026-{i}.json"), opts)?;
        zip.write_all(record.as_bytes())?;
    }
    Ok(zip.finish()?.into_inner())
}
