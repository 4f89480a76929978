use std::time::Duration;

use super::*;

/// The first error of `text` (panics when it parses).
fn parse(text: &str) -> Result<Config, ConfigError> {
    all_errors(text).map_err(|mut e| e.remove(0))
}

fn all_errors(text: &str) -> Result<Config, Vec<ConfigError>> {
    Config::parse(text, Path::new("/etc/pipgate"), None).map_err(|e| e.0)
}

#[test]
fn embedded_default_is_pypi_on_3128() {
    let c = Config::embedded().unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:3128");
    assert!(c.ca.create_if_missing);
    assert!(c.ca.cert.ends_with("pipgate/ca.pem"));
    let ix = &c.policy.indexes()[0];
    assert_eq!(ix.host(), "pypi.org");
    assert!(c.policy.is_intercepted("files.pythonhosted.org"));
    assert_eq!(c.network.unlisted, pipgate_policy::Unlisted::Block);
}

#[test]
fn unknown_key_names_key_and_line() {
    let err =
        parse("listen = \"127.0.0.1:0\"\n\n[upstream]\nconect_timeout = \"5s\"\n").unwrap_err();
    assert_eq!(err.key, "upstream.conect_timeout");
    assert_eq!(err.line, Some(4));
    assert!(err.message.contains("connect_timeout"), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("line 4") && text.contains("conect_timeout"),
        "{text}"
    );
}

#[test]
fn bad_values_name_key_and_line() {
    let err = parse("[upstream]\nconnect_timeout = \"5 parsecs\"\n").unwrap_err();
    assert_eq!(err.key, "upstream.connect_timeout");
    assert_eq!(err.line, Some(2));
    let err = parse("listen = \"localhost\"\n").unwrap_err();
    assert_eq!((err.key.as_str(), err.line), ("listen", Some(1)));
    let err = parse("[access]\nallow_clients = [\"10.0.0.0/8\", \"ten\"]\n").unwrap_err();
    assert_eq!(
        (err.key.as_str(), err.line),
        ("access.allow_clients", Some(2))
    );
    let err = parse("[upstream.resolve]\n\"pypi.org\" = \"127.0.0.1:1\"\n").unwrap_err();
    assert!(err.key.starts_with("upstream.resolve"), "{err}");
    let err = parse("[[index]]\nname = \"x\"\nurl = \"ftp://x/simple/\"\nrole = \"public\"\n")
        .unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    let err = parse("[[index]]\nname = \"x\"\nurl = \"https://x/simple/\"\nrole = \"secret\"\n")
        .unwrap_err();
    assert_eq!(err.line, Some(4), "{err}");
}

#[test]
fn threads_is_one_by_default_a_count_or_auto() {
    let one = std::num::NonZeroUsize::MIN;
    assert_eq!(Config::embedded().unwrap().threads, Threads::Count(one));
    let c = parse("threads = 4\n").unwrap();
    assert_eq!(c.threads.count(), 4);
    let c = parse("threads = \"auto\"\n").unwrap();
    assert_eq!(c.threads, Threads::Auto);
    assert!(c.threads.count() >= 1);
    for bad in [
        "threads = 0",
        "threads = -2",
        "threads = \"many\"",
        "threads = 1.5",
    ] {
        let err = parse(&format!("listen = \"127.0.0.1:0\"\n{bad}\n")).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.line),
            ("threads", Some(2)),
            "{bad}: {err}"
        );
    }
}

#[test]
fn full_config_parses_and_resolves_paths() {
    let c = parse(
        r#"
listen = "0.0.0.0:3128"
admin_listen = "127.0.0.1:9180"
[ca]
cert = "ca/ca.pem"
key = "/abs/ca.key"
[upstream]
extra_roots = ["up.pem"]
connect_timeout = "2s"
[upstream.resolve]
"pypi.org:443" = "127.0.0.1:8443"
[[index]]
name = "corp"
url = "https://pypi.corp.example/simple"
role = "private"
file_hosts = ["files.corp.example"]
[[index]]
name = "pypi"
url = "https://pypi.org/simple/"
role = "public"
file_hosts = ["files.pythonhosted.org"]
[policy]
private = ["acme-*", "Internal_Tools"]
allow_public = ["acme-sdk"]
private_index_ttl = "5m"
on_private_index_error = "allow"
[network]
unlisted_hosts = "tunnel"
tunnel_allow = ["github.com", "*.githubusercontent.com"]
"#,
    )
    .unwrap();
    assert_eq!(c.ca.cert, Path::new("/etc/pipgate/ca/ca.pem"));
    assert_eq!(c.ca.key, Path::new("/abs/ca.key"));
    assert_eq!(c.upstream.extra_roots[0], Path::new("/etc/pipgate/up.pem"));
    assert_eq!(c.upstream.connect_timeout, Duration::from_secs(2));
    assert_eq!(
        c.upstream.resolve[&("pypi.org".to_owned(), 443)].to_string(),
        "127.0.0.1:8443"
    );
    assert_eq!(c.lookups.ttl, Duration::from_secs(300));
    assert_eq!(c.policy.indexes().len(), 2);
    assert_eq!(c.network.unlisted, pipgate_policy::Unlisted::Tunnel);
    let allow: Vec<String> = c
        .network
        .tunnel_allow
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(allow, ["github.com", "*.githubusercontent.com"]);
    // A resolve override names its host and port.
    assert_eq!(c.network.named, [("pypi.org".to_owned(), 443)]);
}

#[test]
fn a_tunnel_allow_entry_that_is_no_host_pattern_names_key_and_line() {
    for bad in ["10.0.0.1", "https://github.com", "*.", "github.com:22"] {
        let text = format!("[network]\n\ntunnel_allow = [\"github.com\", {bad:?}]\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key, "network.tunnel_allow", "{bad}");
        assert_eq!(e.line, Some(3), "{bad}");
        assert!(e.message.contains("invalid host pattern"), "{bad}: {e}");
    }
}

#[test]
fn every_bad_key_of_a_file_is_reported_in_line_order() {
    let errors = all_errors(
        "listen = \"nowhere\"\nbogus = 1\n[upstream]\nconnect_timeout = 5\nidle_timeout = \"1 fortnight\"\n\
         [limits]\nmax_headers = \"100\"\nmax_connections = -1\n[access]\nallow_clients = [\"ten\", \"10.0.0.0/8\", 7]\n\
         [[index]]\nurl = \"https://x/simple/\"\nrole = \"public\"\n",
    )
    .unwrap_err();
    let got: Vec<(usize, &str)> = errors
        .iter()
        .map(|e| (e.line.unwrap_or(0), e.key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "listen"),
            (2, "bogus"),
            (4, "upstream.connect_timeout"),
            (5, "upstream.idle_timeout"),
            (7, "limits.max_headers"),
            (8, "limits.max_connections"),
            (10, "access.allow_clients"),
            (10, "access.allow_clients"),
            (11, "index[0].name"),
        ],
        "{errors:#?}"
    );
}

#[test]
fn a_value_of_the_wrong_type_names_the_key_and_the_form_it_takes() {
    let cases = [
        (
            "[upstream]\nconnect_timeout = 5\n",
            "key 'upstream.connect_timeout': expected a duration like \"5s\"",
        ),
        (
            "listen = 3128\n",
            "key 'listen': expected an address like \"127.0.0.1:3128\"",
        ),
        (
            "[limits]\nmax_headers = \"100\"\n",
            "key 'limits.max_headers': expected a whole number like 100",
        ),
        (
            "[policy]\nprivate = \"acme-*\"\n",
            "key 'policy.private': invalid type: string \"acme-*\", expected a list of name patterns",
        ),
        (
            "[network]\nunlisted_hosts = true\n",
            "key 'network.unlisted_hosts': expected \"block\" or \"tunnel\"",
        ),
        ("upstream = 1\n", "key 'upstream': expected a table"),
        ("index = 1\n", "key 'index': expected tables ([[index]])"),
        (
            "[ca]\ncert = \"c.pem\"\n",
            "key 'ca.key': missing; expected a path",
        ),
    ];
    for (text, want) in cases {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn not_toml_is_reported_at_its_line() {
    let err = parse("listen = \"127.0.0.1:1\"\n[upstream\n").unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
    assert!(err.message.starts_with("not TOML"), "{err}");
}

#[test]
fn config_check_prints_what_reads_back_the_same() {
    let text = r#"
listen = "0.0.0.0:3128"
threads = "auto"
[ca]
cert = "/etc/pipgate/ca.pem"
key = "/etc/pipgate/ca.key"
[upstream]
connect_timeout = "2s"
resolve = { "pypi.org:443" = "127.0.0.1:8443", "[::1]:8443" = "[::1]:9443" }
[[index]]
name = "corp"
url = "https://pypi.corp.example/simple/"
role = "private"
[[index]]
name = "pypi"
url = "https://pypi.org/simple/"
role = "public"
file_hosts = ["files.pythonhosted.org"]
[policy]
private = ["acme-*"]
on_private_index_error = "allow"
[network]
unlisted_hosts = "tunnel"
tunnel_allow = ["*.github.com"]
[limits]
max_headers = 64
[access]
allow_clients = ["10.0.0.0/8", "192.168.1.7"]
credentials = "users"
"#;
    let printed = parse(text).unwrap().to_string();
    let again = parse(&printed).unwrap().to_string();
    assert_eq!(printed, again);
    for line in [
        "threads = \"auto\"",
        "connect_timeout = \"2s\"",
        "\"[::1]:8443\" = \"[::1]:9443\"",
        "role = \"private\"",
        "on_private_index_error = \"allow\"",
        "tunnel_allow = [\"*.github.com\"]",
        "max_headers = 64",
        "allow_clients = [\"10.0.0.0/8\", \"192.168.1.7/32\"]",
        "credentials = \"/etc/pipgate/users\"",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line} missing from\n{printed}"
        );
    }
}

#[test]
fn listen_takes_a_host_name_resolved_when_read() {
    let c = parse("listen = \"localhost:3128\"\nadmin_listen = \"localhost:0\"\n").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:3128");
    assert_eq!(c.admin_listen.map(|a| a.ip().is_loopback()), Some(true));
    assert!(c.to_string().contains("listen = \"127.0.0.1:3128\""));
    for (text, want) in [
        (
            "listen = \"localhost\"\n",
            "invalid address \"localhost\" (want host:port",
        ),
        ("listen = \":3128\"\n", "invalid address \":3128\""),
        (
            "\ntransparent_listen = \"no-such-host.invalid:3129\"\n",
            "\"no-such-host.invalid:3129\" does not resolve",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.message.contains(want), "{text:?}: {err}");
        assert_eq!(
            err.line,
            Some(text.matches('\n').count()),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn page_compression_is_auto_by_default_gzip_or_identity_and_printed() {
    let c = Config::embedded().unwrap();
    assert_eq!(c.limits.page_compression, PageCompression::Auto);
    assert!(c.to_string().contains("page_compression = \"auto\"\n"));
    for (text, want) in [
        ("gzip", PageCompression::Gzip),
        ("identity", PageCompression::Identity),
        ("auto", PageCompression::Auto),
    ] {
        let c = parse(&format!("[limits]\npage_compression = \"{text}\"\n")).unwrap();
        assert_eq!(c.limits.page_compression, want);
        assert!(c
            .to_string()
            .contains(&format!("page_compression = \"{text}\"\n")));
    }
    for bad in ["\"br\"", "true", "1"] {
        let err = parse(&format!("[limits]\npage_compression = {bad}\n")).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.line),
            ("limits.page_compression", Some(2)),
            "{bad}"
        );
        assert!(
            err.message.contains("\"auto\", \"gzip\" or \"identity\""),
            "{}",
            err.message
        );
    }
}
