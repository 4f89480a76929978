//! Proxy authentication: `Proxy-Authorization: Basic` against a file of argon2 hashes.
//!
//! The file holds `user:$argon2id$...` lines (`pipgate passwd FILE USER` writes them). A
//! verified header is remembered (by its SHA-256, never in clear) so that argon2's deliberate
//! cost is paid once per credential, not per CONNECT.

use std::collections::HashMap;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use dashmap::DashSet;
use password_hash::rand_core::OsRng;
use sha2::{Digest, Sha256};

use crate::head::Head;
use crate::state::Shared;

/// Users and their password hashes, loaded with the config.
pub struct Credentials {
    users: HashMap<String, String>,
    verified: DashSet<[u8; 32]>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are secrets too: only the count is shown.
        f.debug_struct("Credentials")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn load(path: &Path) -> Result<Credentials, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("access.credentials: cannot read {}: {e}", path.display()))?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line.split_once(':').ok_or_else(|| {
                format!(
                    "access.credentials: {} line {}: want user:hash",
                    path.display(),
                    i + 1
                )
            })?;
            PasswordHash::new(hash).map_err(|e| {
                format!(
                    "access.credentials: {} line {}: not a password hash ({e}); plaintext is refused",
                    path.display(),
                    i + 1
                )
            })?;
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Credentials {
            users,
            verified: DashSet::new(),
        })
    }

    /// Checks a `Proxy-Authorization` header value.
    pub fn verify(&self, header: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(header).into();
        if self.verified.contains(&digest) {
            return true;
        }
        let Some(b64) = header
            .strip_prefix(b"Basic ")
            .or_else(|| header.strip_prefix(b"basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim_ascii()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let ok = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        if ok {
            self.verified.insert(digest);
        }
        ok
    }
}

/// Whether the connection's first request carries valid proxy credentials.
pub fn check(shared: &Shared, head: &Head) -> bool {
    let rt = shared.runtime.load();
    match &rt.credentials {
        None => true,
        Some(creds) => head
            .header("proxy-authorization")
            .is_some_and(|v| creds.verify(v)),
    }
}

/// Adds or replaces USER in FILE with an argon2id hash of `password` (file kept 0600).
pub fn set_password(path: &Path, user: &str, password: &str) -> Result<(), String> {
    if user.is_empty() || user.contains(':') || user.contains(char::is_whitespace) {
        return Err("user names may not be empty or contain ':' or spaces".into());
    }
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| format!("hashing failed: {e}"))?
        .to_string();
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut out: Vec<String> = old
        .lines()
        .filter(|l| l.split_once(':').map(|(u, _)| u) != Some(user))
        .map(str::to_owned)
        .collect();
    out.push(format!("{user}:{hash}"));
    let mut text = out.join("\n");
    text.push('\n');
    write_private(path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_then_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        set_password(&path, "ci", "s3cret").unwrap();
        set_password(&path, "ops", "other").unwrap();
        set_password(&path, "ci", "n3w").unwrap();
        let creds = Credentials::load(&path).unwrap();
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(creds.verify(header("ci", "n3w").as_bytes()));
        assert!(creds.verify(header("ci", "n3w").as_bytes()), "cached path");
        assert!(
            !creds.verify(header("ci", "s3cret").as_bytes()),
            "old password replaced"
        );
        assert!(creds.verify(header("ops", "other").as_bytes()));
        assert!(!creds.verify(header("nobody", "x").as_bytes()));
        assert!(!creds.verify(b"Bearer abc"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("n3w"), "no plaintext on disk");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!format!("{creds:?}").contains("argon2"));
    }

    #[test]
    fn plaintext_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "ci:hunter2\n").unwrap();
        let err = Credentials::load(&path).unwrap_err();
        assert!(err.contains("plaintext is refused"), "{err}");
    }
}
