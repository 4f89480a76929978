//! The link rule (issue rule 5): which resolved URLs an index page may offer.

use url::Url;

use crate::Index;

/// Hash names pip understands in a `#<name>=<hex>` fragment.
const HASH_NAMES: &[&str] = &[
    "sha256", "sha384", "sha512", "sha224", "sha1", "md5", "blake2b",
];

/// Resolves `href` against `base` the way pip and browsers do: surrounding ASCII whitespace is
/// not part of the URL. `None` when it does not resolve.
pub(crate) fn resolve(base: &Url, href: &str) -> Option<Url> {
    let href = href.trim_matches(|c: char| c.is_ascii_whitespace());
    if href.is_empty() {
        return None;
    }
    base.join(href).ok()
}

/// Whether a resolved URL may be served from a page of `index`.
///
/// https only (http only when the index itself is configured as http, and only to the index's
/// own host and port), no credentials, and the host must be the index host (on its port) or one
/// of its file hosts (on 443 or the index's port).
pub(crate) fn allowed(index: &Index, url: &Url) -> bool {
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let port = url.port_or_known_default();
    let on_index = host == index.host() && port == Some(index.port());
    match url.scheme() {
        "https" => {
            on_index
                || (index.is_file_host(host) && (port == Some(443) || port == Some(index.port())))
        }
        "http" => index.is_http() && on_index,
        _ => false,
    }
}

/// The file name a URL offers: its last path segment, percent-decoded. `None` for directory
/// links, undecodable names, or names a file system would not take.
pub(crate) fn filename(url: &Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?;
    if last.is_empty() {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(last)
        .decode_utf8()
        .ok()?;
    valid_filename(&decoded).then(|| decoded.into_owned())
}

/// A file name is one non-empty path component without control characters.
pub(crate) fn valid_filename(name: &str) -> bool {
    let printable_ascii = |b: &u8| (0x21..0x7f).contains(b) && !matches!(b, b'/' | b'\\');
    !name.is_empty()
        && name != "."
        && name != ".."
        && (name.bytes().all(|b| b == b' ' || printable_ascii(&b))
            || (!name.contains(['/', '\\']) && !name.chars().any(char::is_control)))
}

/// The `<name>=<hex>` hash of a URL fragment, when it is one pip would read.
pub(crate) fn hash_fragment(url: &Url) -> Option<(&str, &str)> {
    let (name, value) = url.fragment()?.split_once('=')?;
    valid_hash(name, value).then_some((name, value))
}

/// A hash entry worth passing on: a known algorithm and a hex digest.
pub(crate) fn valid_hash(name: &str, value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit()) && HASH_NAMES.contains(&name)
}

/// The tokens of a `rel` attribute that make pip (before 8.0) treat an anchor as an external
/// page to scrape rather than a file.
pub(crate) fn is_external_rel(rel: &str) -> bool {
    rel.split(|c: char| c.is_ascii_whitespace())
        .any(|t| t.eq_ignore_ascii_case("download") || t.eq_ignore_ascii_case("homepage"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn pypi() -> Index {
        Index::new(
            "pypi",
            "https://pypi.org/simple/",
            Role::Public,
            &["files.pythonhosted.org".to_owned()],
        )
        .unwrap()
    }

    fn ok(index: &Index, page: &str, href: &str) -> bool {
        let base = Url::parse(page).unwrap();
        resolve(&base, href).is_some_and(|u| allowed(index, &u))
    }

    #[test]
    fn link_rule() {
        let i = pypi();
        let page = "https://pypi.org/simple/x/";
        assert!(ok(&i, page, "https://files.pythonhosted.org/a/x-1.tar.gz"));
        assert!(ok(
            &i,
            page,
            "  https://FILES.pythonhosted.org/a/x-1.tar.gz\n"
        ));
        assert!(ok(&i, page, "../../packages/x-1.tar.gz"));
        assert!(ok(&i, page, "//files.pythonhosted.org/x-1.tar.gz"));
        assert!(!ok(&i, page, "//evil.example/x-1.tar.gz"));
        assert!(!ok(&i, page, "http://files.pythonhosted.org/x-1.tar.gz"));
        assert!(!ok(&i, page, "https://evil.example/x-1.tar.gz"));
        assert!(!ok(
            &i,
            page,
            "https://files.pythonhosted.org.evil.example/x-1.tar.gz"
        ));
        assert!(!ok(
            &i,
            page,
            "https://u:p@files.pythonhosted.org/x-1.tar.gz"
        ));
        assert!(!ok(
            &i,
            page,
            "https://files.pythonhosted.org:8443/x-1.tar.gz"
        ));
        assert!(!ok(&i, page, "https://pypi.org:8443/x-1.tar.gz"));
        assert!(!ok(&i, page, "javascript:alert(1)"));
        assert!(!ok(&i, page, "data:text/plain,x"));
        assert!(!ok(&i, page, "ftp://files.pythonhosted.org/x"));
        assert!(!ok(&i, page, ""));
        // WHATWG treats '\' as '/' in special URLs: the host is evil.example, and so refused.
        assert!(!ok(&i, page, "https:\\\\evil.example\\x-1.tar.gz"));
    }

    #[test]
    fn http_only_for_http_index_host() {
        let i = Index::new(
            "corp",
            "http://10.0.0.1:8080/simple/",
            Role::Private,
            &["files.corp".to_owned()],
        )
        .unwrap();
        let page = "http://10.0.0.1:8080/simple/x/";
        assert!(ok(&i, page, "x-1.tar.gz"));
        assert!(ok(&i, page, "/packages/x-1.tar.gz"));
        assert!(!ok(&i, page, "http://10.0.0.1:8081/x-1.tar.gz"));
        assert!(!ok(&i, page, "http://files.corp/x-1.tar.gz"));
        assert!(ok(&i, page, "https://files.corp/x-1.tar.gz"));
    }

    #[test]
    fn filenames_and_hashes() {
        let u = Url::parse("https://h/a/acme%20lib-1.0.tar.gz#sha256=AbC123").unwrap();
        assert_eq!(filename(&u).as_deref(), Some("acme lib-1.0.tar.gz"));
        assert_eq!(hash_fragment(&u), Some(("sha256", "AbC123")));
        assert_eq!(filename(&Url::parse("https://h/a/").unwrap()), None);
        assert_eq!(filename(&Url::parse("https://h/a/%2e%2e").unwrap()), None);
        assert_eq!(filename(&Url::parse("https://h/a/x%00y").unwrap()), None);
        assert_eq!(filename(&Url::parse("https://h/a/%FF").unwrap()), None);
        assert_eq!(
            hash_fragment(&Url::parse("https://h/x#egg=foo").unwrap()),
            None
        );
        assert_eq!(
            hash_fragment(&Url::parse("https://h/x#sha256=zz").unwrap()),
            None
        );
        assert!(is_external_rel("nofollow Download"));
        assert!(is_external_rel("homepage"));
        assert!(!is_external_rel("internal"));
    }
}
