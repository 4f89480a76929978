//! The CA's name constraints against the configuration: what a CA made for a config permits,
//! and whether a loaded CA may vouch for every host the config intercepts.

use std::fmt;
use std::path::{Path, PathBuf};

use pipgate_certs::{Ca, Scope};

use crate::config::Config;

/// The scope a new CA for `config` gets: every host it intercepts (index and file hosts of
/// every index, public and private, and pypi.python.org beside pypi.org), plus `extra`
/// subtrees (`ca init --permit`).
pub(crate) fn for_config(config: &Config, extra: &[String]) -> Result<Scope, pipgate_certs::Error> {
    let policy = &config.policy;
    let hosts = policy.intercepted_hosts();
    Scope::hosts(hosts.into_iter().chain(extra.iter().map(String::as_str)))
}

/// The CA `config` names, as `run` loads it: where the config lets it (the embedded default,
/// `[ca] create = true`) a missing pair is made, constrained to the config's hosts. True when
/// it was made now.
pub(crate) fn load(config: &Config) -> Result<(Ca, bool), pipgate_certs::Error> {
    let ca = &config.ca;
    if ca.create_if_missing {
        let scope = for_config(config, &[])?;
        Ca::load_or_create(&ca.cert, &ca.key, &scope)
    } else {
        Ok((Ca::load(&ca.cert, &ca.key)?, false))
    }
}

/// A CA whose name constraints leave out hosts the configuration intercepts: every leaf for
/// them would be refused by every client, so pipgate does not start (or reload) with it.
#[derive(Debug)]
pub struct OutOfScope {
    cert: PathBuf,
    hosts: Vec<String>,
    scope: Scope,
    fix: String,
}

impl fmt::Display for OutOfScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the CA at {} may not vouch for {} (its name constraints permit {}); make a fitting CA with: {}",
            self.cert.display(),
            self.hosts.join(", "),
            self.scope,
            self.fix
        )
    }
}

impl std::error::Error for OutOfScope {}

/// Whether the CA with `scope` (at `config.ca.cert`) may vouch for every host `config`
/// intercepts, with the semantics clients apply.
pub(crate) fn check(config: &Config, scope: &Scope) -> Result<(), Box<OutOfScope>> {
    let outside: Vec<String> = config
        .policy
        .intercepted_hosts()
        .into_iter()
        .filter(|h| !scope.permits(h))
        .map(str::to_owned)
        .collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(Box::new(OutOfScope {
        cert: display_path(&config.ca.cert),
        hosts: outside,
        scope: scope.clone(),
        fix: init_command(config, true),
    }))
}

/// The one warning for a CA without name constraints (at start, and by `config check`).
pub(crate) fn warn_unconstrained(config: &Config, scope: &Scope) {
    if *scope == Scope::Unconstrained {
        tracing::warn!(
            cert = %config.ca.cert.display(),
            "{}",
            unconstrained_warning(config)
        );
    }
}

pub(crate) fn unconstrained_warning(config: &Config) -> String {
    format!(
        "the CA at {} has no name constraints: whoever holds its key can vouch for any host to \
         every machine that trusts it; make one that can vouch only for the hosts pipgate \
         intercepts with: {}",
        display_path(&config.ca.cert).display(),
        init_command(config, true)
    )
}

/// The command that writes a CA fitting `config` where it expects its CA (`--force`: over the
/// one there).
pub(crate) fn init_command(config: &Config, force: bool) -> String {
    let cert = display_path(&config.ca.cert);
    let key = display_path(&config.ca.key);
    let dir = cert.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cmd = format!("pipgate ca init --dir {}", shell_word(&dir));
    if force {
        cmd.push_str(" --force");
    }
    if let Some(source) = &config.source {
        cmd.push_str(&format!(" --config {}", shell_word(&display_path(source))));
    }
    // `ca init` writes DIR/ca.pem and DIR/ca.key; a config naming other files must follow.
    if cert != dir.join("ca.pem") || key != dir.join("ca.key") {
        cmd.push_str(&format!(
            " (then point [ca] cert and key at {} and {})",
            dir.join("ca.pem").display(),
            dir.join("ca.key").display()
        ));
    }
    cmd
}

/// The absolute form of `path`, so the printed command works from any directory.
fn display_path(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// `path` quoted for a POSIX shell when it needs it.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@,".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str, dir: &Path) -> Config {
        let path = dir.join("pipgate.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(&path).unwrap()
    }

    const CORP: &str = "[ca]\ncert = \"ca/ca.pem\"\nkey = \"ca/ca.key\"\n\n\
        [[index]]\nname = \"corp\"\nurl = \"https://pypi.corp.example/simple/\"\nrole = \"private\"\n\
        file_hosts = [\"files.corp.example\"]\n\n\
        [[index]]\nname = \"pypi\"\nurl = \"https://pypi.org/simple/\"\nrole = \"public\"\n\
        file_hosts = [\"files.pythonhosted.org\"]\n";

    #[test]
    fn a_config_scope_permits_exactly_its_hosts_and_the_extra_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config(CORP, tmp.path());
        let scope = for_config(&config, &["mirror.example".into()]).unwrap();
        assert_eq!(
            scope.to_string(),
            "pypi.corp.example, files.corp.example, pypi.org, files.pythonhosted.org, \
             pypi.python.org, mirror.example"
        );
        assert!(check(&config, &scope).is_ok());
        let embedded = for_config(&Config::embedded().unwrap(), &[]).unwrap();
        assert_eq!(
            embedded.to_string(),
            "pypi.org, files.pythonhosted.org, pypi.python.org"
        );
    }

    #[test]
    fn a_ca_for_other_hosts_is_refused_naming_them_and_the_command() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config(CORP, tmp.path());
        let embedded = for_config(&Config::embedded().unwrap(), &[]).unwrap();
        let err = check(&config, &embedded).unwrap_err().to_string();
        let dir = std::path::absolute(tmp.path()).unwrap();
        assert_eq!(
            err,
            format!(
                "the CA at {ca}/ca.pem may not vouch for pypi.corp.example, files.corp.example \
                 (its name constraints permit pypi.org, files.pythonhosted.org, pypi.python.org); \
                 make a fitting CA with: pipgate ca init --dir {ca} --force --config {cfg}",
                ca = dir.join("ca").display(),
                cfg = dir.join("pipgate.toml").display()
            )
        );
        // A subtree covers the subdomains, on label boundaries only.
        let wide = Scope::hosts([
            "corp.example",
            "pypi.org",
            "pythonhosted.org",
            "pypi.python.org",
        ])
        .unwrap();
        assert!(check(&config, &wide).is_ok());
        let glued = Scope::hosts(["pycorp.example", "pypi.org", "files.pythonhosted.org"]).unwrap();
        assert!(check(&config, &glued).is_err());
        assert!(check(&config, &Scope::Unconstrained).is_ok());
    }

    #[test]
    fn the_command_fits_the_configured_files() {
        let tmp = tempfile::tempdir().unwrap();
        let odd = config(
            "[ca]\ncert = \"my dir/corp.pem\"\nkey = \"my dir/corp.key\"\n",
            tmp.path(),
        );
        let fix = init_command(&odd, true);
        let dir = std::path::absolute(tmp.path()).unwrap().join("my dir");
        assert!(
            fix.starts_with(&format!(
                "pipgate ca init --dir '{}' --force --config ",
                dir.display()
            )),
            "{fix}"
        );
        assert!(fix.ends_with(&format!(
            "(then point [ca] cert and key at {} and {})",
            dir.join("ca.pem").display(),
            dir.join("ca.key").display()
        )));
        let embedded = Config::embedded().unwrap();
        let fix = init_command(&embedded, true);
        assert!(fix.ends_with(" --force"), "{fix}");
        assert!(unconstrained_warning(&embedded).contains("can vouch for any host"));
    }
}
