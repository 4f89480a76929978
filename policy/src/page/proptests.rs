//! Property: whatever the page and policy, no emitted link breaks the link rule, and every link
//! the rule allows is emitted with its hash.

use proptest::prelude::*;
use url::Url;

use super::html;
use crate::{Index, PageFormat, Policy, Role, Rules};

#[derive(Debug, Clone)]
struct Link {
    /// 0 absolute, 1 scheme-relative, 2 path-absolute, 3 relative, 4 javascript:, 5 data:
    form: u8,
    scheme: &'static str,
    host: &'static str,
    port: Option<u16>,
    file: &'static str,
    hash: Option<String>,
    rel: Option<&'static str>,
    quote: u8,
    upper: bool,
    pad: bool,
    entity: bool,
}

const HOSTS: &[&str] = &[
    "idx.test",
    "files.test",
    "evil.test",
    "FILES.TEST",
    "files.test.evil.test",
];
const FILES: &[&str] = &[
    "pkg-1.0.tar.gz",
    "pkg-1.0-py3-none-any.whl",
    "",
    "a%20b-1.0.zip",
];

fn link() -> impl Strategy<Value = Link> {
    (
        0u8..6,
        prop::sample::select(vec!["https", "http", "ftp", "HTTPS"]),
        prop::sample::select(HOSTS.to_vec()),
        prop::option::of(prop::sample::select(vec![443u16, 8080, 80])),
        prop::sample::select(FILES.to_vec()),
        prop::option::of("[0-9a-f]{8}"),
        prop::option::of(prop::sample::select(vec![
            "download",
            "homepage",
            "nofollow",
            "DOWNLOAD x",
        ])),
        (0u8..3, any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(form, scheme, host, port, file, hash, rel, (quote, upper, pad, entity))| Link {
                form,
                scheme,
                host,
                port,
                file,
                hash,
                rel,
                quote,
                upper,
                pad,
                entity,
            },
        )
}

impl Link {
    fn href(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let hash = self
            .hash
            .as_ref()
            .map(|h| format!("#sha256={h}"))
            .unwrap_or_default();
        match self.form {
            0 => format!(
                "{}://{}{port}/p/{}{hash}",
                self.scheme, self.host, self.file
            ),
            1 => format!("//{}{port}/p/{}{hash}", self.host, self.file),
            2 => format!("/p/{}{hash}", self.file),
            3 => format!("../q/{}{hash}", self.file),
            4 => "javascript:alert(1)".to_owned(),
            _ => format!("data:text/plain,{}", self.file),
        }
    }

    fn markup(&self) -> String {
        let mut href = self.href();
        if self.entity {
            href = href.replace(':', "&#58;").replace('/', "&sol;");
        }
        if self.pad {
            href = format!(" \n{href}\t");
        }
        let attr = match self.quote {
            // Unquoted values cannot hold whitespace; the padding case is quoted instead.
            0 if !self.pad => href,
            1 => format!("'{href}'"),
            _ => format!("\"{href}\""),
        };
        let rel = self
            .rel
            .map(|r| format!(" rel=\"{r}\""))
            .unwrap_or_default();
        let a = if self.upper { "A HREF" } else { "a href" };
        format!("<{a}={attr}{rel}>x</a>\n")
    }
}

/// The independent oracle: where the link points and whether the rule allows it, computed from
/// the generator's parts rather than by resolving URLs.
fn expected(l: &Link, base: &Base, index_http: bool) -> Option<String> {
    if l.rel.is_some_and(|r| {
        r.to_ascii_lowercase()
            .split(' ')
            .any(|t| t == "download" || t == "homepage")
    }) {
        return None;
    }
    let (scheme, host, port, path) = match l.form {
        0 => (
            l.scheme.to_ascii_lowercase(),
            l.host.to_ascii_lowercase(),
            l.port,
            format!("/p/{}", l.file),
        ),
        1 => (
            base.scheme.to_owned(),
            l.host.to_ascii_lowercase(),
            l.port,
            format!("/p/{}", l.file),
        ),
        2 => (
            base.scheme.to_owned(),
            base.host.to_owned(),
            base.port,
            format!("/p/{}", l.file),
        ),
        3 => (
            base.scheme.to_owned(),
            base.host.to_owned(),
            base.port,
            format!("{}q/{}", base.parent, l.file),
        ),
        _ => return None,
    };
    if l.file.is_empty() {
        return None;
    }
    let default = if scheme == "http" { 80 } else { 443 };
    let port = port.unwrap_or(default);
    let index_port = if index_http { 8080 } else { 443 };
    let ok = match scheme.as_str() {
        "https" => {
            (host == "idx.test" && port == index_port)
                || (host == "files.test" && (port == 443 || port == index_port))
        }
        "http" => index_http && host == "idx.test" && port == 8080,
        _ => false,
    };
    if !ok {
        return None;
    }
    let port_part = if port == default {
        String::new()
    } else {
        format!(":{port}")
    };
    let hash = l
        .hash
        .as_ref()
        .map(|h| format!("#sha256={h}"))
        .unwrap_or_default();
    Some(format!("{scheme}://{host}{port_part}{path}{hash}"))
}

#[derive(Debug, Clone)]
struct Base {
    tag: Option<String>,
    scheme: &'static str,
    host: &'static str,
    port: Option<u16>,
    /// Directory that `../` from the base's directory lands in.
    parent: &'static str,
}

fn base(index_http: bool) -> impl Strategy<Value = Base> {
    let page_scheme = if index_http { "http" } else { "https" };
    let page_port = if index_http { Some(8080) } else { None };
    prop_oneof![
        Just(Base {
            tag: None,
            scheme: page_scheme,
            host: "idx.test",
            port: page_port,
            parent: "/simple/"
        }),
        prop::sample::select(HOSTS.to_vec()).prop_map(|h| Base {
            tag: Some(format!("<base href=\"https://{h}/b/c/\">")),
            scheme: "https",
            host: Box::leak(h.to_ascii_lowercase().into_boxed_str()),
            port: None,
            parent: "/b/",
        }),
    ]
}

/// The index is http or https; the `<base>` (if any) stands before the link at the given
/// position (it applies to the whole page wherever it stands).
fn page_and_policy() -> impl Strategy<Value = (bool, Base, Vec<Link>, prop::sample::Index)> {
    any::<bool>().prop_flat_map(|http| {
        (
            Just(http),
            base(http),
            prop::collection::vec(link(), 0..12),
            any::<prop::sample::Index>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn emitted_links_obey_the_rule((http, base, links, at) in page_and_policy()) {
        let url = if http { "http://idx.test:8080/simple/" } else { "https://idx.test/simple/" };
        let index = Index::new("i", url, Role::Public, &["files.test".to_owned()]).unwrap();
        let policy = Policy::new(vec![index.clone()], Rules::default()).unwrap();
        let page_url = Url::parse(url).unwrap().join("pkg/").unwrap();
        let base_at = at.index(links.len() + 1);
        let mut body = String::new();
        for (i, l) in links.iter().enumerate() {
            if i == base_at {
                body.push_str(base.tag.as_deref().unwrap_or_default());
            }
            body.push_str(&l.markup());
        }
        if base_at == links.len() {
            body.push_str(base.tag.as_deref().unwrap_or_default());
        }
        let out = policy.rewrite_project(&index, &page_url, PageFormat::Html, body.as_bytes()).unwrap();
        let text = String::from_utf8(out.body).unwrap();
        let parsed = html::parse(&text, false);
        let emitted: Vec<String> = parsed.anchors.iter().filter_map(|a| parsed.opt(&a.href)).map(str::to_owned).collect();
        for href in &emitted {
            let u = Url::parse(href).unwrap();
            let host = u.host_str().unwrap();
            let port = u.port_or_known_default().unwrap();
            let ok = match u.scheme() {
                "https" => (host == "idx.test" && port == index.port()) || (host == "files.test" && (port == 443 || port == index.port())),
                "http" => http && host == "idx.test" && port == 8080,
                _ => false,
            };
            prop_assert!(ok, "emitted {} from {}", href, body);
            prop_assert!(!u.path().ends_with('/'));
        }
        let want: Vec<String> = links.iter().filter_map(|l| expected(l, &base, http)).collect();
        prop_assert_eq!(&emitted, &want, "page: {}", body);
        prop_assert_eq!(out.kept + out.dropped, links.len());
    }

    #[test]
    fn json_emitted_links_obey_the_rule((http, _base, links, _) in page_and_policy()) {
        let url = if http { "http://idx.test:8080/simple/" } else { "https://idx.test/simple/" };
        let index = Index::new("i", url, Role::Public, &["files.test".to_owned()]).unwrap();
        let policy = Policy::new(vec![index.clone()], Rules::default()).unwrap();
        let page_url = Url::parse(url).unwrap().join("pkg/").unwrap();
        let files: Vec<serde_json::Value> = links.iter().map(|l| serde_json::json!({
            "filename": "f-1.0.tar.gz", "url": l.href(), "hashes": {"sha256": "ab"}
        })).collect();
        let body = serde_json::to_vec(&serde_json::json!({"files": files})).unwrap();
        let out = policy.rewrite_project(&index, &page_url, PageFormat::JsonV1, &body).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        let page_base = Base { tag: None, scheme: if http { "http" } else { "https" }, host: "idx.test", port: http.then_some(8080), parent: "/simple/" };
        let want: Vec<String> = links
            .iter()
            .map(|l| Link { rel: None, ..l.clone() })
            .filter_map(|l| expected(&l, &page_base, http))
            .map(|u| u.split('#').next().unwrap_or_default().to_owned())
            .collect();
        let got: Vec<String> = v["files"].as_array().unwrap().iter().map(|f| f["url"].as_str().unwrap().to_owned()).collect();
        prop_assert_eq!(got, want);
        for f in v["files"].as_array().unwrap() {
            prop_assert_eq!(&f["hashes"]["sha256"], "ab");
        }
    }
}
