//! `pipgate exec -- CMD [ARGS...]`: a pipgate of the command's own, on a free loopback port,
//! for the command's life. The command runs with the proxy and CA variables every installer
//! reads set for it (the `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE` override trap defused by
//! pointing both at the same bundle); when it exits, each distinct block or withheld file is
//! printed to stderr with its rule and reason, and pipgate exits with the command's status.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use crate::config::Config;
use crate::App;

/// Runs `cmd` through pipgate under `config` (its listeners replaced by a free loopback port).
pub async fn exec(mut config: Config, cmd: Vec<OsString>) -> ExitCode {
    let Some((program, args)) = cmd.split_first() else {
        eprintln!("pipgate: exec: give the command to run after --");
        return ExitCode::from(crate::cli::EXIT_CONFIG);
    };
    // Whatever `listen` says: this pipgate is the command's alone.
    config.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    config.admin_listen = None;
    config.transparent_listen = None;
    let intercepted: Vec<String> = config
        .policy
        .intercepted_hosts()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let plain_http = config.policy.indexes().iter().any(|ix| ix.is_http());
    let ca_pem = config.ca.cert.clone();
    let app = match App::bind(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("pipgate: {e}");
            return if e.is_config() {
                ExitCode::from(crate::cli::EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            };
        }
    };
    let Some(addr) = app.local_addr() else {
        eprintln!("pipgate: exec: the listener has no address");
        return ExitCode::FAILURE;
    };
    let dir = match bundle_dir(&ca_pem) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("pipgate: exec: cannot write the CA bundle: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bundle = dir.path().join("bundle.pem");
    let recent = app.recent();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stop_rx.await;
    }));

    let proxy = format!("http://{addr}");
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    for var in ["HTTPS_PROXY", "https_proxy", "PIP_PROXY"] {
        command.env(var, &proxy);
    }
    if plain_http {
        command.env("HTTP_PROXY", &proxy).env("http_proxy", &proxy);
    }
    // pip (PIP_CERT, and REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, which override it), uv and other
    // rustls or OpenSSL clients (SSL_CERT_FILE), poetry and requests (REQUESTS_CA_BUNDLE): all
    // one bundle, pipgate's CA and the system roots (for the hosts that are tunnelled).
    for var in [
        "PIP_CERT",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ] {
        command.env(var, &bundle);
    }
    // A NO_PROXY entry covering an index host would send the command around pipgate.
    for var in ["NO_PROXY", "no_proxy"] {
        if let Some(v) = std::env::var_os(var) {
            let kept = no_proxy_without(&v.to_string_lossy(), &intercepted);
            command.env(var, kept);
        }
    }
    let status = {
        // The terminal's Ctrl-C reaches the command too: pipgate stays up until it has exited,
        // to answer what it still asks and to report what it blocked.
        let _ignore = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        match command.status().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "pipgate: exec: cannot run {}: {e}",
                    program.to_string_lossy()
                );
                let _ = stop_tx.send(());
                let _ = server.await;
                return ExitCode::from(127);
            }
        }
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    for line in recent.distinct_lines() {
        eprintln!("{line}");
    }
    exit_code(status)
}

/// The command's exit status as pipgate's own (a signal as 128 + its number, as shells do).
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)),
        (None, None) => ExitCode::FAILURE,
    }
}

/// `no_proxy` without the entries that would exempt one of `hosts` from the proxy (`*`, the
/// host, or a domain it is in).
fn no_proxy_without(no_proxy: &str, hosts: &[String]) -> String {
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter(|entry| {
            let domain = entry.trim_start_matches('*').trim_start_matches('.');
            let covers = |h: &String| {
                *entry == "*"
                    || h.eq_ignore_ascii_case(domain)
                    || h.to_ascii_lowercase()
                        .ends_with(&format!(".{}", domain.to_ascii_lowercase()))
            };
            !hosts.iter().any(covers)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A private temporary directory holding `bundle.pem`: pipgate's CA and the system roots.
fn bundle_dir(ca_pem: &std::path::Path) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("pipgate-exec-").tempdir()?;
    let ca = std::fs::read_to_string(ca_pem)?;
    std::fs::write(dir.path().join("bundle.pem"), crate::cli::bundle(&ca))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::no_proxy_without;

    #[test]
    fn no_proxy_keeps_only_what_spares_the_indexes() {
        let hosts = ["pypi.org".to_owned(), "files.pythonhosted.org".to_owned()];
        assert_eq!(
            no_proxy_without("localhost, .pythonhosted.org,pypi.org,10.0.0.0/8", &hosts),
            "localhost,10.0.0.0/8"
        );
        assert_eq!(no_proxy_without("*", &hosts), "");
        assert_eq!(no_proxy_without("*.org,example.com", &hosts), "example.com");
        assert_eq!(no_proxy_without("notpypi.org", &hosts), "notpypi.org");
    }
}
