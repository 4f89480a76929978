//! The command line: `run`, `exec`, `ca init|bundle`, `config check`, `explain`, `passwd`,
//! `cache stats|purge`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pipgate_policy::Name;

pub mod provenance;

use crate::config::{Config, ConfigErrors};
use crate::state::Runtime;

/// Exit code for a configuration error (distinct from runtime failures).
pub const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "pipgate",
    version,
    about = "A package-index firewall: a TLS-inspecting proxy for pip, uv and poetry"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the proxy in the foreground (logs to stderr).
    Run {
        /// Config file; without it, the embedded default (pypi.org on 127.0.0.1:3128).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Manage the CA.
    Ca {
        #[command(subcommand)]
        cmd: CaCmd,
    },
    /// Validate a config file.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Explain what pipgate does with a project name, and why.
    Explain {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Do not ask any index (decide from the config only).
        #[arg(long)]
        offline: bool,
        /// The project name, in any spelling.
        name: String,
        /// Only this version's files, for the rules that withhold files.
        version: Option<String>,
    },
    /// PEP 740 provenance: what is pinned for a project, and what its indexes offer.
    Provenance {
        #[command(subcommand)]
        cmd: ProvenanceCmd,
    },
    /// Inspect or empty the file cache (`[cache] dir`).
    Cache {
        #[command(subcommand)]
        cmd: CacheCmd,
    },
    /// Add or change a user in a credentials file (`[access] credentials`).
    ///
    /// From a terminal the password is asked twice, without echo, and a mismatch changes
    /// nothing; from a pipe the first line of stdin is the password. The hash is argon2id;
    /// other users' lines are kept. A running pipgate whose config names FILE applies the
    /// change by itself within 2 seconds: no reload, no restart.
    Passwd {
        /// The credentials file (what `[access] credentials` names); created 0600 if missing.
        file: PathBuf,
        /// The user to add or change (no ':' or spaces): clients send it as
        /// HTTPS_PROXY=http://USER:PASSWORD@HOST:PORT.
        user: String,
    },
    /// Run an installer (pip, uv, poetry, pip-compile...) through a pipgate of its own, then
    /// print what it blocked and why; exits with the command's status.
    ///
    /// pipgate listens on a free loopback port for the command's life (whatever `listen`
    /// says) and sets HTTPS_PROXY, PIP_CERT, SSL_CERT_FILE, REQUESTS_CA_BUNDLE and
    /// CURL_CA_BUNDLE for it (a CA bundle of pipgate's CA and the system roots).
    #[command(arg_required_else_help = true)]
    Exec {
        /// Config file; without it, the embedded default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The command and its arguments, after `--`.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        cmd: Vec<std::ffi::OsString>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCmd {
    /// Create DIR/ca.pem and DIR/ca.key (key 0600), a CA that may vouch only for the hosts
    /// pipgate intercepts (a critical nameConstraints extension).
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Replace an existing CA.
        #[arg(long)]
        force: bool,
        /// Permit this DNS name and its subdomains (or this IP address) too; repeatable.
        #[arg(long, value_name = "DNS", conflicts_with = "unconstrained")]
        permit: Vec<String>,
        /// Permit the hosts this config intercepts (default: the embedded default's).
        #[arg(long, conflicts_with = "unconstrained")]
        config: Option<PathBuf>,
        /// No name constraints: the CA may vouch for any host.
        #[arg(long)]
        unconstrained: bool,
    },
    /// Print pipgate's CA plus the system roots, as one PEM bundle.
    Bundle {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProvenanceCmd {
    /// Print the publisher pinned for NAME and what each public index offers now (every
    /// attestation verified, as a request would); records nothing.
    Show {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The project name, in any spelling.
        name: String,
    },
    /// Pin NAME to the publisher of its newest verified file, as the index offers it now
    /// (after an operator has checked it: `show` first). A running pipgate applies it on
    /// reload.
    Accept {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The project name, in any spelling.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCmd {
    /// Print the cache's files and bytes, against max_size, and per project.
    Stats {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove every cached file, or those of one project.
    Purge {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The project, in any spelling; without it, everything.
        name: Option<String>,
    },
}

/// `cache stats`.
pub fn cache_stats(config: Option<&Path>) -> ExitCode {
    crate::cache::cli::stats(config)
}

/// `cache purge [NAME]`.
pub fn cache_purge(config: Option<&Path>, name: Option<&str>) -> ExitCode {
    crate::cache::cli::purge(config, name)
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate and print the effective config.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Loads the named config or the embedded default, printing a config error on failure.
pub fn load(config: Option<&Path>) -> Result<Config, ExitCode> {
    let result = match config {
        Some(p) => Config::load(p),
        None => Config::embedded(),
    };
    result.map_err(|errors: ConfigErrors| {
        for e in errors.iter() {
            eprintln!("pipgate: {e}");
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

/// `ca init`: a CA for the hosts of `config` (or of the embedded default) and `permit`, or
/// for any host when `unconstrained`.
pub fn ca_init(
    dir: &Path,
    force: bool,
    permit: &[String],
    config: Option<&Path>,
    unconstrained: bool,
) -> ExitCode {
    let scope = if unconstrained {
        pipgate_certs::Scope::Unconstrained
    } else {
        let config = match load(config) {
            Ok(c) => c,
            Err(code) => return code,
        };
        match crate::ca_scope::for_config(&config, permit) {
            Ok(scope) => scope,
            Err(e) => {
                eprintln!("pipgate: --permit: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };
    match pipgate_certs::Ca::init(dir, force, &scope) {
        Ok(_) => {
            println!(
                "pipgate: wrote {} and {} (key 0600)",
                dir.join("ca.pem").display(),
                dir.join("ca.key").display()
            );
            println!("pipgate: the CA may vouch for {scope}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pipgate: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn ca_bundle(config: Option<&Path>) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let ca = match crate::ca_scope::load(&config) {
        Ok((ca, _)) => ca,
        Err(e) => {
            eprintln!("pipgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = std::io::stdout().write_all(bundle(ca.cert_pem()).as_bytes());
    ExitCode::SUCCESS
}

/// One PEM bundle: pipgate's CA (`ca_pem`), then the system's roots.
pub(crate) fn bundle(ca_pem: &str) -> String {
    let mut out = String::new();
    out.push_str("# pipgate CA\n");
    out.push_str(ca_pem);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        out.push_str(&pem("CERTIFICATE", cert.as_ref()));
    }
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub fn config_check(path: &Path) -> ExitCode {
    let config = match load(Some(path)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let text = config.to_string();
    // The CA `run` would use must load and be allowed to vouch for every intercepted host;
    // one `run` will make (fitted to the config) is not there yet.
    let ca = match check_ca(&config) {
        Ok(ca) => ca,
        Err(e) => {
            eprintln!("pipgate: config error in {}: {e}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(scope) = ca.as_ref().map(pipgate_certs::Ca::scope) {
        if let Err(e) = crate::ca_scope::check(&config, scope) {
            eprintln!("pipgate: config error in {}: {e}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
        if *scope == pipgate_certs::Scope::Unconstrained {
            eprintln!(
                "pipgate: warning: {}",
                crate::ca_scope::unconstrained_warning(&config)
            );
        }
    }
    // Upstream roots and credentials files are read here, so their errors surface too.
    if let Err(e) = Runtime::new(config) {
        eprintln!("pipgate: config error in {}: {e}", path.display());
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("# {}: OK", path.display());
    print!("{text}");
    ExitCode::SUCCESS
}

/// The CA as `run` will load it: a configured pair must exist and match (when neither file
/// exists, the error is the `ca init` command that makes them, fitted to the config); a pair
/// `run` creates (the embedded default's, `[ca] create = true`) may be missing (`None`).
fn check_ca(config: &Config) -> Result<Option<pipgate_certs::Ca>, String> {
    let ca = &config.ca;
    let missing = |p: &Path| matches!(std::fs::metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    if missing(&ca.cert) && missing(&ca.key) {
        if ca.create_if_missing {
            return Ok(None);
        }
        let dir = ca.cert.parent().unwrap_or(Path::new("."));
        let standard = ca.cert == dir.join("ca.pem") && ca.key == dir.join("ca.key");
        return Err(format!(
            "key 'ca.cert': the CA {} does not exist; create {} with: {}",
            ca.cert.display(),
            if standard { "it" } else { "one" },
            crate::ca_scope::init_command(config, false)
        ));
    }
    pipgate_certs::Ca::load(&ca.cert, &ca.key)
        .map(Some)
        .map_err(|e| format!("key 'ca.cert': {e}"))
}

pub async fn explain(
    config: Option<&Path>,
    offline: bool,
    raw: &str,
    version: Option<&str>,
) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let name = Name::new(raw);
    let rt = match Runtime::new(config) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pipgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    crate::advisories::load_once(&rt, offline).await;
    print!("{}", rt.explain(&name, version, offline).await);
    ExitCode::SUCCESS
}

pub fn passwd(file: &Path, user: &str) -> ExitCode {
    use std::io::IsTerminal as _;
    let password = if std::io::stdin().is_terminal() {
        let first = read_hidden(&format!("password for {user}: "));
        let again = first
            .as_ref()
            .ok()
            .map(|_| read_hidden(&format!("again, password for {user}: ")));
        match (first, again) {
            (Ok(a), Some(Ok(b))) if a == b => a,
            (Ok(_), Some(Ok(_))) => {
                eprintln!(
                    "pipgate: the two passwords differ; {} not changed",
                    file.display()
                );
                return ExitCode::FAILURE;
            }
            (Err(e), _) | (_, Some(Err(e))) => {
                eprintln!("pipgate: cannot read the password from the terminal: {e}");
                return ExitCode::FAILURE;
            }
            (Ok(_), None) => return ExitCode::FAILURE,
        }
    } else {
        // A pipe: one line, no prompt to answer.
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            eprintln!("pipgate: cannot read the password from stdin");
            return ExitCode::FAILURE;
        }
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        eprintln!("pipgate: empty password refused");
        return ExitCode::FAILURE;
    }
    match crate::auth::set_password(file, user, &password) {
        Ok(()) => {
            eprintln!(
                "pipgate: {user} set in {}; a running pipgate that uses this file applies it \
                 within {}s (it watches the file)",
                file.display(),
                crate::auth::WATCH_EVERY.as_secs()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pipgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prompts on stderr and reads one line from the terminal on stdin with echo off (restored
/// after, also when reading fails).
fn read_hidden(prompt: &str) -> std::io::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    use std::os::fd::AsFd as _;

    /// Puts the terminal's settings back when dropped.
    struct Restore(nix::sys::termios::Termios);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
        }
    }

    let stdin = std::io::stdin();
    let saved = tcgetattr(stdin.as_fd())?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    // The newline is echoed, so the next prompt starts on a line of its own.
    quiet.local_flags.insert(LocalFlags::ECHONL);
    // Echo goes off before the prompt shows: what is typed after it is never echoed (and
    // TCSAFLUSH drops what was typed before it).
    tcsetattr(stdin.as_fd(), SetArg::TCSAFLUSH, &quiet)?;
    let restore = Restore(saved);
    eprint!("{prompt}");
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    drop(restore);
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// What a user must set so pip, uv and poetry go through pipgate; with `credentials` (an
/// `[access] credentials` file), the proxy URL carries a user and password.
pub fn hints(addr: std::net::SocketAddr, ca_pem: &Path, credentials: bool) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let proxy = if credentials {
        format!(
            "http://USER:PASSWORD@{host}:{}   # a user of access.credentials",
            addr.port()
        )
    } else {
        format!("http://{host}:{}", addr.port())
    };
    let ca = ca_pem.display();
    format!(
        "Set these so installers go through pipgate:\n\
         \x20 export HTTPS_PROXY={proxy}\n\
         \x20 export PIP_CERT={ca}            # pip (or: pip config set global.cert {ca})\n\
         \x20 export SSL_CERT_FILE={ca}       # uv\n\
         \x20 export REQUESTS_CA_BUNDLE={ca}  # poetry, and pip if PIP_CERT is overridden\n\
         For clients that also reach tunnelled hosts: pipgate ca bundle > bundle.pem\n"
    )
}

/// Warnings about pipgate's own environment: `REQUESTS_CA_BUNDLE` and `CURL_CA_BUNDLE`
/// override pip's `PIP_CERT`/`--cert` in every pip version, so a shell that has them set (as
/// some CI images do) and runs pip next to pipgate gets certificate errors.
pub fn environment_warnings(ca_pem: &Path) -> Vec<String> {
    ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]
        .into_iter()
        .filter_map(|var| {
            let value = std::env::var_os(var)?;
            (Path::new(&value) != ca_pem).then(|| {
                format!(
                    "{var} is set ({}): it overrides pip's PIP_CERT and --cert, so pip trusts \
                     that file instead; unless it holds pipgate's CA (`pipgate ca bundle` makes \
                     one that does), in the shells that run pip set {var}={} or unset it",
                    Path::new(&value).display(),
                    ca_pem.display()
                )
            })
        })
        .collect()
}
