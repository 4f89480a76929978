//! The command line: `run`, `ca init|bundle`, `config check`, `explain`, `passwd`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pipgate_policy::Name;

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
    /// Add or change a user in a credentials file (password read from stdin).
    Passwd { file: PathBuf, user: String },
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
    let ca = if config.ca.create_if_missing {
        crate::ca_scope::for_config(&config, &[]).and_then(|scope| {
            pipgate_certs::Ca::load_or_create(&config.ca.cert, &config.ca.key, &scope)
                .map(|(ca, _)| ca)
        })
    } else {
        pipgate_certs::Ca::load(&config.ca.cert, &config.ca.key)
    };
    let ca = match ca {
        Ok(ca) => ca,
        Err(e) => {
            eprintln!("pipgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = String::new();
    out.push_str("# pipgate CA\n");
    out.push_str(ca.cert_pem());
    if !out.ends_with('\n') {
        out.push('\n');
    }
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        out.push_str(&pem("CERTIFICATE", cert.as_ref()));
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    ExitCode::SUCCESS
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
    // The CA `run` would use must be allowed to vouch for every intercepted host. Its
    // certificate is read alone (the key may be another user's); a CA that does not exist
    // yet is left to `run` (the default location's is then made to fit).
    if let Ok(scope) = pipgate_certs::Ca::read_scope(&config.ca.cert) {
        if let Err(e) = crate::ca_scope::check(&config, &scope) {
            eprintln!("pipgate: config error in {}: {e}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
        if scope == pipgate_certs::Scope::Unconstrained {
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
    let policy = &rt.config.policy;
    let answers = if offline {
        Vec::new()
    } else {
        // The same questions, through the same cache and client, as a request about the name:
        // the private indexes, then (for the rules that need them, and only for a name they
        // leave public) the public indexes' files of it.
        let mut answers = rt
            .answers(policy.questions(std::slice::from_ref(&name)))
            .await;
        let more = policy.explain_questions(&name, &answers);
        answers.extend(rt.answers(more).await);
        answers
    };
    let now = time::OffsetDateTime::now_utc();
    print!("{}", policy.explain(&name, version, &answers, now));
    let asks = policy.private_indexes().next().is_some()
        || !policy.explain_questions(&name, &[]).is_empty();
    if offline && asks {
        println!("(offline: no index was asked)");
    }
    ExitCode::SUCCESS
}

pub fn passwd(file: &Path, user: &str) -> ExitCode {
    eprint!("password for {user}: ");
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        eprintln!("pipgate: cannot read the password from stdin");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!("pipgate: empty password refused");
        return ExitCode::FAILURE;
    }
    match crate::auth::set_password(file, user, password) {
        Ok(()) => {
            eprintln!("pipgate: {user} set in {}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pipgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a user must set so pip, uv and poetry go through pipgate.
pub fn hints(addr: std::net::SocketAddr, ca_pem: &Path) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let proxy = format!("http://{host}:{}", addr.port());
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
