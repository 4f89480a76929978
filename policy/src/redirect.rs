//! Which redirects an upstream may hand a client: the client's next request must come back
//! through pipgate to a door that decides it the same way.

use url::Url;

use crate::{Policy, Target};

/// The kinds of index page: a redirect of one must land on another of the same kind, or the
/// client's next request would go through another door (a page redirected to a file URL
/// would stream to the client untouched, as a file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// `/simple/`.
    Root,
    /// `/simple/<name>/`.
    Project,
    /// `/pypi/<name>/json` and `/pypi/<name>/<version>/json`.
    LegacyJson,
}

impl PageKind {
    /// `None` for a file (or anything else that is no page).
    pub fn of(target: &Target<'_>) -> Option<PageKind> {
        match target {
            Target::Root { .. } => Some(PageKind::Root),
            Target::Project { .. } => Some(PageKind::Project),
            Target::LegacyJson { .. } => Some(PageKind::LegacyJson),
            Target::File { .. } | Target::Other { .. } => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            PageKind::Root => "the root listing",
            PageKind::Project => "a project page",
            PageKind::LegacyJson => "the JSON API",
        }
    }
}

/// Whether an upstream status is a redirect a client follows with a `Location`: `300` offers
/// choices and `304`/`305` are no redirects at all.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

impl Policy {
    /// Checks a redirect of a request for `from` (the URL pipgate asked upstream) to
    /// `location`, and gives the URL to send the client: the one checked, as the `url` crate
    /// serializes it, never upstream's spelling (`https://pypi.org\@evil/` is pypi.org to a
    /// WHATWG parser and evil to an RFC 3986 one). `asked` is the kind of page that was asked
    /// for, `None` for a file. `Err` says why the redirect is refused.
    pub fn redirect(
        &self,
        from: &Url,
        asked: Option<PageKind>,
        location: &str,
    ) -> Result<Url, String> {
        let target = from
            .join(location)
            .map_err(|_| format!("unparsable redirect Location {location:?}"))?;
        let host = target.host_str().unwrap_or("").to_ascii_lowercase();
        let port = target.port_or_known_default().unwrap_or(0);
        let tls = target.scheme() == "https";
        // Plain http only where the request was plain http already (an http:// index).
        let scheme_ok = tls || (target.scheme() == "http" && from.scheme() == "http");
        let reachable = scheme_ok
            && self.is_intercepted(&host)
            && target.username().is_empty()
            && target.password().is_none()
            && self.serves(&host, port, tls);
        if !reachable {
            return Err(format!(
                "redirect to {target}, which is no index or file host pipgate serves"
            ));
        }
        if let Some(asked) = asked {
            let mut path_and_query = target.path().to_owned();
            if let Some(q) = target.query() {
                path_and_query.push('?');
                path_and_query.push_str(q);
            }
            let landed = self
                .classify(&host, &path_and_query)
                .ok()
                .as_ref()
                .and_then(PageKind::of);
            if landed != Some(asked) {
                return Err(format!(
                    "redirect of {} to {target}, which is not {}",
                    asked.describe(),
                    asked.describe()
                ));
            }
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Index, Role, Rules};

    fn policy() -> Policy {
        let ix = |name: &str, url: &str, files: &[&str]| {
            let files: Vec<String> = files.iter().map(|s| (*s).to_owned()).collect();
            Index::new(name, url, Role::Public, &files).unwrap()
        };
        Policy::new(
            vec![
                ix(
                    "pypi",
                    "https://pypi.org/simple/",
                    &["files.pythonhosted.org"],
                ),
                ix("plain", "http://plain.test/simple/", &[]),
            ],
            Rules::default(),
        )
        .unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_page_redirect_lands_on_the_same_kind_of_page() {
        let p = policy();
        let page = url("https://pypi.org/simple/Six/");
        let ok = |loc: &str, kind| p.redirect(&page, Some(kind), loc);
        assert_eq!(
            ok("/simple/six/", PageKind::Project).unwrap().as_str(),
            "https://pypi.org/simple/six/"
        );
        assert!(ok(
            "https://files.pythonhosted.org/packages/six-1.0.tar.gz",
            PageKind::Project
        )
        .unwrap_err()
        .contains("which is not a project page"));
        assert!(ok("/simple/", PageKind::Project).is_err());
        assert!(ok("/pypi/six/json", PageKind::Project).is_err());
        assert!(p
            .redirect(
                &url("https://pypi.org/simple"),
                Some(PageKind::Root),
                "/simple/"
            )
            .is_ok());
        assert!(p
            .redirect(&page, Some(PageKind::LegacyJson), "/pypi/six/1.0/json")
            .is_ok());
    }

    #[test]
    fn a_redirect_stays_on_hosts_and_ports_pipgate_serves() {
        let p = policy();
        let file = url("https://files.pythonhosted.org/packages/x-1.0.tar.gz");
        for refused in [
            "https://evil.test/x-1.0.tar.gz",
            "http://files.pythonhosted.org/x-1.0.tar.gz",
            "https://files.pythonhosted.org:8443/x-1.0.tar.gz",
            "https://user:pw@files.pythonhosted.org/x-1.0.tar.gz",
            "javascript:alert(1)",
        ] {
            assert!(p.redirect(&file, None, refused).is_err(), "{refused}");
        }
        assert!(p
            .redirect(&file, None, "https://pypi.org/x-1.0.tar.gz")
            .is_ok());
        // Plain http only from plain http.
        let plain = url("http://plain.test/simple/x/");
        assert!(p
            .redirect(&plain, Some(PageKind::Project), "/simple/y/")
            .is_ok());
    }

    #[test]
    fn the_location_sent_on_is_the_one_checked() {
        let p = policy();
        let file = url("https://files.pythonhosted.org/packages/x-1.0.tar.gz");
        let checked = p
            .redirect(
                &file,
                None,
                "https://files.pythonhosted.org\\@evil.test/x-1.0.tar.gz",
            )
            .unwrap();
        assert_eq!(
            checked.as_str(),
            "https://files.pythonhosted.org/@evil.test/x-1.0.tar.gz"
        );
    }

    #[test]
    fn only_real_redirects_redirect() {
        for s in [301, 302, 303, 307, 308] {
            assert!(is_redirect(s));
        }
        for s in [300, 304, 305, 306, 200, 404] {
            assert!(!is_redirect(s));
        }
    }
}
