//! Every case of the connection decision, for each way a connection arrives, with plain values.

use super::*;
use crate::{Index, Role, Rules};

fn policy() -> Policy {
    let ix = |name: &str, url: &str, role, files: &[&str]| {
        let files: Vec<String> = files.iter().map(|s| (*s).to_owned()).collect();
        Index::new(name, url, role, &files).unwrap()
    };
    Policy::new(
        vec![
            ix(
                "pypi",
                "https://pypi.org/simple/",
                Role::Public,
                &["files.pythonhosted.org"],
            ),
            ix(
                "corp",
                "https://private.test:8443/simple/",
                Role::Private,
                &["files.private.test"],
            ),
            ix("plain", "http://plain.test/simple/", Role::Private, &[]),
        ],
        Rules::default(),
    )
    .unwrap()
}

fn network(unlisted: Unlisted, allow: &[&str], named: &[(&str, u16)]) -> Network {
    Network {
        unlisted,
        tunnel_allow: allow
            .iter()
            .map(|p| HostPattern::parse(p).unwrap())
            .collect(),
        named: named.iter().map(|(h, p)| ((*h).to_owned(), *p)).collect(),
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn route(
    n: &Network,
    arrival: Arrival,
    host: Option<&str>,
    port: u16,
    orig: Option<&str>,
) -> Route {
    policy().route(
        n,
        &Destination {
            arrival,
            host,
            port,
            original: orig.map(sa),
        },
    )
}

fn intercept(host: &str) -> Route {
    Route::Intercept {
        host: host.to_owned(),
        probe: true,
    }
}

fn refused(r: &Route, needle: &str) -> bool {
    matches!(r, Route::Refuse(_, why) if why.contains(needle))
}

const PUBLIC_443: &str = "151.101.0.223:443";

#[test]
fn index_and_file_hosts_are_intercepted_on_their_ports_whatever_the_arrival() {
    let n = Network::default();
    for (arrival, orig) in [
        (Arrival::Connect, None),
        (Arrival::RedirectedTls, Some(PUBLIC_443)),
    ] {
        assert_eq!(
            route(&n, arrival, Some("pypi.org"), 443, orig),
            intercept("pypi.org")
        );
        assert_eq!(
            route(&n, arrival, Some("files.pythonhosted.org"), 443, orig),
            intercept("files.pythonhosted.org")
        );
        assert_eq!(
            route(&n, arrival, Some("private.test"), 8443, orig),
            intercept("private.test")
        );
        // The index URL's port covers its file hosts too.
        assert_eq!(
            route(&n, arrival, Some("files.private.test"), 8443, orig),
            intercept("files.private.test")
        );
        // pypi.python.org is answered by pipgate itself: nothing to probe.
        assert_eq!(
            route(&n, arrival, Some("pypi.python.org"), 443, orig),
            Route::Intercept {
                host: "pypi.python.org".into(),
                probe: false
            }
        );
        let other_port = route(&n, arrival, Some("pypi.org"), 8443, orig);
        assert!(
            refused(&other_port, "only port 443 (or the port of the index URL)"),
            "{other_port:?}"
        );
    }
    assert!(refused(
        &route(&n, Arrival::Connect, Some("pypi.org"), 8443, None),
        "CONNECT to pypi.org:8443 refused"
    ));
    assert!(refused(
        &route(
            &n,
            Arrival::RedirectedTls,
            Some("pypi.org"),
            8443,
            Some("1.2.3.4:8443")
        ),
        "TLS to pypi.org:8443 refused"
    ));
}

#[test]
fn plain_http_is_served_for_http_indexes_only() {
    let n = Network::default();
    for (arrival, orig) in [
        (Arrival::AbsoluteForm, None),
        (Arrival::RedirectedHttp, Some("10.0.0.1:80")),
    ] {
        assert_eq!(
            route(&n, arrival, Some("plain.test"), 80, orig),
            intercept("plain.test")
        );
        for (host, port) in [("pypi.org", 80), ("plain.test", 8080)] {
            let r = route(&n, arrival, Some(host), port, orig);
            assert!(
                refused(&r, "only indexes configured with an http:// URL"),
                "{r:?}"
            );
        }
    }
    assert!(refused(
        &route(&n, Arrival::AbsoluteForm, Some("evil.test"), 80, None),
        "plain-HTTP request for evil.test:80 refused"
    ));
    // A request without Host, redirected, names nothing.
    assert!(refused(
        &route(
            &n,
            Arrival::RedirectedHttp,
            None,
            80,
            Some("151.101.0.223:80")
        ),
        "a request without Host names no index"
    ));
}

#[test]
fn unlisted_hosts_are_refused_by_default() {
    let n = Network::default();
    assert!(refused(
        &route(&n, Arrival::Connect, Some("evil.test"), 443, None),
        "network.tunnel_allow = [\"evil.test\"]"
    ));
    for sni in [Some("evil.test"), None] {
        let r = route(&n, Arrival::RedirectedTls, sni, 443, Some(PUBLIC_443));
        assert!(refused(&r, "network.unlisted_hosts"), "{sni:?}: {r:?}");
    }
}

#[test]
fn tunnel_allow_tunnels_by_name_and_only_exact_names_vouch_for_other_ports() {
    let n = network(Unlisted::Block, &["github.com", "*.example.org"], &[]);
    for (arrival, orig) in [
        (Arrival::Connect, None),
        (Arrival::RedirectedTls, Some("10.9.9.9:443")),
    ] {
        assert_eq!(
            route(&n, arrival, Some("github.com"), 443, orig),
            Route::TunnelByName {
                host: "github.com".into(),
                explicit: true
            }
        );
        assert_eq!(
            route(&n, arrival, Some("a.example.org"), 443, orig),
            Route::TunnelByName {
                host: "a.example.org".into(),
                explicit: false
            }
        );
        let r = route(&n, arrival, Some("a.example.org"), 22, orig);
        assert!(refused(&r, "only port 443 is tunnelled unless"), "{r:?}");
        // An exact entry vouches for another port.
        assert_eq!(
            route(&n, arrival, Some("github.com"), 22, orig),
            Route::TunnelByName {
                host: "github.com".into(),
                explicit: true
            }
        );
    }
    assert!(matches!(
        route(
            &n,
            Arrival::RedirectedTls,
            Some("example.org"),
            443,
            Some(PUBLIC_443)
        ),
        Route::Refuse(..)
    ));
    // Plain HTTP redirected: the same rules on port 80.
    assert_eq!(
        route(
            &n,
            Arrival::RedirectedHttp,
            Some("a.example.org"),
            80,
            Some(PUBLIC_443)
        ),
        Route::TunnelByName {
            host: "a.example.org".into(),
            explicit: false
        }
    );
}

#[test]
fn a_resolve_override_names_its_host_and_port() {
    let n = network(Unlisted::Tunnel, &[], &[("git.corp", 22)]);
    assert_eq!(
        route(&n, Arrival::Connect, Some("git.corp"), 22, None),
        Route::TunnelByName {
            host: "git.corp".into(),
            explicit: true
        }
    );
    assert!(refused(
        &route(&n, Arrival::Connect, Some("git.corp"), 2222, None),
        "only port 443 is tunnelled"
    ));
}

#[test]
fn unlisted_hosts_tunnelled_go_by_name_over_connect_and_to_the_original_when_redirected() {
    let n = network(Unlisted::Tunnel, &[], &[]);
    assert_eq!(
        route(&n, Arrival::Connect, Some("example.com"), 443, None),
        Route::TunnelByName {
            host: "example.com".into(),
            explicit: false
        }
    );
    for sni in [None, Some("example.com")] {
        assert_eq!(
            route(&n, Arrival::RedirectedTls, sni, 443, Some(PUBLIC_443)),
            Route::TunnelToOriginal(sa(PUBLIC_443))
        );
    }
    // Configured hosts are still intercepted, never tunnelled.
    assert_eq!(
        route(
            &n,
            Arrival::RedirectedTls,
            Some("pypi.org"),
            443,
            Some(PUBLIC_443)
        ),
        intercept("pypi.org")
    );
    for internal in [
        "127.0.0.1:443",
        "10.1.2.3:443",
        "169.254.169.254:443",
        "[::ffff:192.168.0.1]:443",
    ] {
        let r = route(&n, Arrival::RedirectedTls, None, 443, Some(internal));
        assert!(refused(&r, "internal"), "{internal}: {r:?}");
    }
    assert!(refused(
        &route(
            &n,
            Arrival::RedirectedTls,
            None,
            22,
            Some("151.101.0.223:22")
        ),
        "only port 443 is tunnelled to unlisted hosts"
    ));
}

#[test]
fn the_legacy_alias_exists_only_beside_pypi_org() {
    let p = policy();
    assert!(p.intercepts("pypi.python.org") && p.is_legacy_alias("pypi.python.org"));
    let without = Policy::new(
        vec![Index::new("corp", "https://corp.test/simple/", Role::Private, &[]).unwrap()],
        Rules::default(),
    )
    .unwrap();
    assert!(!without.intercepts("pypi.python.org"));
}

#[test]
fn intercepted_hosts_are_every_index_and_file_host_and_the_legacy_alias() {
    let p = policy();
    let hosts = p.intercepted_hosts();
    assert_eq!(
        hosts,
        [
            "pypi.org",
            "files.pythonhosted.org",
            "private.test",
            "files.private.test",
            "plain.test",
            LEGACY_PYPI
        ]
    );
    assert!(hosts.iter().all(|h| p.intercepts(h)));
    // Without pypi.org, no alias; a host shared by two indexes is listed once.
    let ix = |name: &str, url: &str, files: &[&str]| {
        let files: Vec<String> = files.iter().map(|s| (*s).to_owned()).collect();
        Index::new(name, url, Role::Public, &files).unwrap()
    };
    let p = Policy::new(
        vec![
            ix("a", "https://a.test/simple/", &["files.test"]),
            ix("b", "https://[::1]:8443/simple/", &["files.test", "a.test"]),
        ],
        Rules::default(),
    )
    .unwrap();
    assert_eq!(p.intercepted_hosts(), ["a.test", "files.test", "[::1]"]);
}
