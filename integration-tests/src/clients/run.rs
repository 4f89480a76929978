//! Runs one installer command under a clean environment, with a deadline and a transcript.
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a client run produced no usable answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The program could not be started at all.
    Spawn(PathBuf, std::io::Error),
    /// It ran past its deadline and was killed.
    Timeout(Duration, String),
    /// It exited unsuccessfully; the transcript says why.
    Failed(String, String),
    /// It succeeded but its output did not say what was resolved.
    Output(String, String),
}

impl ClientError {
    /// Everything the client printed, for the per-check log file.
    pub fn transcript(&self) -> &str {
        match self {
            ClientError::Spawn(..) => "",
            ClientError::Timeout(_, t) | ClientError::Failed(_, t) | ClientError::Output(_, t) => t,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Spawn(p, e) => write!(f, "cannot start {}: {e}", p.display()),
            ClientError::Timeout(d, _) => write!(f, "timed out after {}s", d.as_secs()),
            ClientError::Failed(status, t) => write!(f, "{status}: {}", gist(t)),
            ClientError::Output(what, _) => f.write_str(what),
        }
    }
}

/// The line of a transcript most likely to explain a failure: the last one that mentions an
/// error, else the last non-empty one.
pub(crate) fn gist(transcript: &str) -> String {
    let lines: Vec<&str> = transcript
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let pick = lines
        .iter()
        .rev()
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            lower.contains("error") || lower.contains("could not") || lower.contains("because")
        })
        .or(lines.last())
        .copied()
        .unwrap_or("(no output)");
    let mut short: String = pick.chars().take(160).collect();
    if short.len() < pick.len() {
        short.push_str("...");
    }
    short
}

/// A command, its working directory and the only environment it will see.
#[derive(Debug)]
pub(crate) struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, OsString)>,
    pub cwd: PathBuf,
    pub timeout: Duration,
}

impl Invocation {
    pub(super) fn new(program: PathBuf, cwd: &Path, timeout: Duration) -> Invocation {
        Invocation {
            program,
            args: Vec::new(),
            env: Vec::new(),
            cwd: cwd.to_path_buf(),
            timeout,
        }
    }

    pub(super) fn arg(&mut self, a: impl Into<OsString>) -> &mut Self {
        self.args.push(a.into());
        self
    }

    pub(super) fn env(&mut self, k: &str, v: impl Into<OsString>) -> &mut Self {
        self.env.push((k.to_owned(), v.into()));
        self
    }

    /// Runs to completion; `Ok` carries the transcript (command line, stdout, stderr).
    pub(super) fn run(&self) -> Result<String, ClientError> {
        // Output goes to files, not pipes: a chatty client cannot fill a pipe and stall.
        let out_path = self.cwd.join(".stdout");
        let err_path = self.cwd.join(".stderr");
        let open = |p: &Path| File::create(p).map_err(|e| ClientError::Spawn(p.to_path_buf(), e));
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            // This machine exports REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE/PIP_CERT, which silently
            // override the CA under test: clients see only what the case sets.
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(open(&out_path)?)
            .stderr(open(&err_path)?);
        let mut child = cmd
            .spawn()
            .map_err(|e| ClientError::Spawn(self.program.clone(), e))?;
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < self.timeout => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let transcript = format!(
            "$ {} {}\n(env: {})\n--- stdout\n{}\n--- stderr\n{}\n",
            self.program.display(),
            self.args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            self.env
                .iter()
                .map(|(k, v)| format!("{k}={}", v.to_string_lossy()))
                .collect::<Vec<_>>()
                .join(" "),
            std::fs::read_to_string(&out_path).unwrap_or_default(),
            std::fs::read_to_string(&err_path).unwrap_or_default(),
        );
        match status {
            None => Err(ClientError::Timeout(self.timeout, transcript)),
            Some(s) if s.success() => Ok(transcript),
            Some(s) => Err(ClientError::Failed(s.to_string(), transcript)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gist_prefers_the_error_line() {
        let t = "Collecting acme-lib\nERROR: No matching distribution found for acme-lib\n\n[notice] x\n";
        assert_eq!(
            gist(t),
            "ERROR: No matching distribution found for acme-lib"
        );
        assert_eq!(gist("a\nb\n"), "b");
        assert_eq!(gist(""), "(no output)");
    }

    #[test]
    fn runs_with_only_the_given_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut inv = Invocation::new("/usr/bin/env".into(), dir.path(), Duration::from_secs(10));
        inv.env("ONLY_THIS", "1");
        let t = inv.run().unwrap();
        // /usr/bin/env prints exactly the environment it got: nothing of this machine's.
        assert!(t.contains("--- stdout\nONLY_THIS=1\n\n--- stderr"), "{t}");
    }

    #[test]
    fn failures_and_timeouts_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut inv = Invocation::new("/bin/sh".into(), dir.path(), Duration::from_secs(10));
        inv.arg("-c").arg("echo 'ERROR: boom' >&2; exit 3");
        let err = inv.run().unwrap_err();
        assert!(matches!(err, ClientError::Failed(..)), "{err}");
        assert!(err.to_string().contains("ERROR: boom"), "{err}");

        let mut slow = Invocation::new("/bin/sleep".into(), dir.path(), Duration::from_millis(200));
        slow.arg("5");
        let started = Instant::now();
        assert!(matches!(slow.run(), Err(ClientError::Timeout(..))));
        assert!(started.elapsed() < Duration::from_secs(4));
    }
}
