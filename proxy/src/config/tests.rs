use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/pipgate"), None)
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
    assert_eq!(err.key, "conect_timeout");
    assert_eq!(err.line, Some(4));
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
