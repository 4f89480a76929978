//! A file entry written by hand, byte for byte what serde_json writes for [`FileOut`], but
//! without serde_json's byte-at-a-time escaping loop for the strings that need no escaping
//! (URLs, hashes, file names: nearly all of them). That loop was the largest single cost of a
//! JSON page.

use super::{FileOut, FlagOut, HashesOut, Yanked};
use crate::page::emit;

/// Appends `f` as a JSON object.
pub(super) fn file(out: &mut Vec<u8>, f: &FileOut<'_>) {
    out.extend_from_slice(b"{\"filename\":");
    string(out, f.filename);
    out.extend_from_slice(b",\"url\":");
    string(out, &f.url);
    out.extend_from_slice(b",\"hashes\":");
    hashes(out, &f.hashes);
    if let Some(r) = f.requires_python {
        out.extend_from_slice(b",\"requires-python\":");
        string(out, r);
    }
    if let Some(y) = f.yanked {
        out.extend_from_slice(b",\"yanked\":");
        match y {
            Yanked::Flag(b) => boolean(out, *b),
            Yanked::Reason(r) => string(out, r),
        }
    }
    if let Some(m) = &f.core_metadata {
        out.extend_from_slice(b",\"core-metadata\":");
        match m {
            FlagOut::Bool(b) => boolean(out, *b),
            FlagOut::Hashes(h) => hashes(out, h),
        }
    }
    if let Some(n) = f.size {
        out.extend_from_slice(b",\"size\":");
        decimal(out, n);
    }
    if let Some(t) = f.upload_time {
        out.extend_from_slice(b",\"upload-time\":");
        string(out, t);
    }
    if let Some(p) = &f.provenance {
        out.extend_from_slice(b",\"provenance\":");
        string(out, p);
    }
    out.push(b'}');
}

/// Appends `f` as a PEP 503 anchor (a JSON page written for an HTML client), with its upload
/// time as `data-upload-time`; `buf` is scratch space.
pub(super) fn anchor(out: &mut Vec<u8>, f: &FileOut<'_>, buf: &mut String) {
    let core_metadata = f.core_metadata.as_ref().and_then(|m| m.attribute(buf));
    let attrs = [
        ("data-requires-python", f.requires_python),
        ("data-yanked", f.yanked.and_then(Yanked::attribute)),
        ("data-core-metadata", core_metadata),
        ("data-provenance", f.provenance.as_deref()),
        ("data-upload-time", f.upload_time),
    ];
    emit::anchor(out, &f.url, f.hashes.fragment(), &attrs, f.filename);
}

fn hashes(out: &mut Vec<u8>, h: &HashesOut<'_>) {
    out.push(b'{');
    for (i, (name, digest)) in h.valid().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        string(out, digest);
    }
    out.push(b'}');
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn decimal(out: &mut Vec<u8>, mut n: u64) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `s` as a JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    // One pass without early exit, which the compiler turns into wide compares: JSON escapes
    // only `"`, `\` and control characters.
    let plain = s.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // serde_json escapes as it always did; writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{file_out, File};
    use super::*;

    #[test]
    fn files_as_serde_json_writes_them() {
        let fixture: serde_json::Value =
            serde_json::from_slice(include_bytes!("../../../testdata/pypi-project.json")).unwrap();
        let mut files: Vec<String> = fixture["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.to_string())
            .collect();
        files.extend(
            [
                r#"{"filename":"\u0061\"b-1.0.tar.gz","url":"/p/a-1.0.tar.gz","hashes":{"sha256":"ab","md5":"q\"","sha512":"x\ny"},"yanked":"q\"uote\u0001","core-metadata":{},"size":0}"#,
                r#"{"filename":"é-1.0.zip","url":"https://files.pythonhosted.org/é-1.0.zip","hashes":{},"yanked":"tab\there","dist-info-metadata":true,"upload-time":"\u2028","provenance":"/integrity/é"}"#,
                r#"{"filename":"x-1.0.zip","url":"https://files.pythonhosted.org/x-1.0.zip","hashes":{"sha256":"00","sha256":"11"},"requires-python":"<4,>=3.8","size":18446744073709551615}"#,
            ]
            .map(str::to_owned),
        );
        let (index, url) = (
            crate::page::pypi(),
            url::Url::parse("https://pypi.org/simple/x/").unwrap(),
        );
        let mut written = 0;
        for text in &files {
            let f: File<'_> = serde_json::from_str(text).unwrap();
            let Some(f) = file_out(&index, &url, &f) else {
                continue;
            };
            let mut out = Vec::new();
            file(&mut out, &f);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&f).unwrap()
            );
            written += 1;
        }
        assert_eq!(written, files.len() - 1);
    }

    #[test]
    fn strings_and_numbers_as_serde_json_writes_them() {
        for s in [
            "",
            "plain-1.0.tar.gz",
            "q\"uote",
            "back\\slash",
            "nl\n tab\t cr\r ff\u{c} bs\u{8} nul\0 us\u{1f} del\u{7f}",
            "é ✓ 😀 \u{2028}",
            "</script>",
        ] {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        for n in [0, 7, 10, 123_456, u64::MAX] {
            let mut out = Vec::new();
            decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
