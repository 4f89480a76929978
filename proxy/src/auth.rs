//! Proxy authentication: `Proxy-Authorization: Basic` against a file of argon2 hashes.
//!
//! The file holds `user:$argon2id$...` lines (`pipgate passwd FILE USER` writes them). argon2 is
//! slow on purpose (~20 ms), so it never runs on a serving thread and never more than a few at
//! a time, and it is run as rarely as the answer allows:
//! - a verified header is remembered (by its SHA-256, never in clear): its next CONNECT costs a
//!   hash-set probe;
//! - a header that failed is remembered too, for [`FAILED_FOR`]: a flood of one wrong header
//!   costs one argon2 run;
//! - a client address that keeps failing is backed off (refused without hashing, for a delay
//!   that doubles up to [`MAX_BACKOFF`]): a flood of different wrong passwords costs a few.
//!
//! An unknown user is verified against a hash of the same cost, so a refusal takes as long
//! whether the user exists or not (no user enumeration by timing).
//!
//! The file is watched ([`watch`]): an edit (`pipgate passwd`, or by hand) applies within
//! [`WATCH_EVERY`] without a reload; a file that no longer loads keeps the users in force.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use dashmap::DashMap;
use password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// How long a header that failed is refused without hashing it again.
const FAILED_FOR: Duration = Duration::from_secs(300);

/// Failures a client address may have before it is backed off.
const FREE_FAILURES: u32 = 3;

/// The longest a client address is refused without hashing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A client address that has not failed for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Remembered headers and addresses, each: past it, the expired are dropped, then all.
const MAX_REMEMBERED: usize = 4096;

/// How often the credentials file is looked at for changes.
pub(crate) const WATCH_EVERY: Duration = Duration::from_secs(2);

/// User name -> PHC hash string.
type Users = HashMap<String, String>;

/// Users and their password hashes, loaded with the config and again when the file changes.
pub(crate) struct Credentials {
    path: PathBuf,
    /// Swapped whole when the file changes; a verification uses the set it started with.
    users: ArcSwap<Users>,
    /// The file as it was when `users` was last read from it (or failed to be).
    seen: Mutex<Option<Stamp>>,
    /// A hash of a random password, made like the users' own: unknown users are checked
    /// against it.
    dummy: String,
    /// Header digest -> the user it verified as.
    verified: DashMap<[u8; 32], Arc<str>>,
    /// Header digest -> when it failed.
    failed: DashMap<[u8; 32], Instant>,
    backoff: DashMap<IpAddr, Backoff>,
    /// argon2 runs at once: a bound, so wrong passwords cannot take every core.
    hashing: Semaphore,
}

/// A client address's recent failures.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    last: Instant,
    /// Refused without hashing until then.
    until: Instant,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are secrets too: only the count is shown.
        f.debug_struct("Credentials")
            .field("path", &self.path)
            .field("users", &self.users.load().len())
            .finish_non_exhaustive()
    }
}

/// Why a `Proxy-Authorization` was refused (every one is a 407 to the client; the log and the
/// metrics tell them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Proxy-Authorization` header, or not `Basic user:password`.
    Missing,
    /// Checked with argon2: no such user, or the wrong password.
    Invalid,
    /// This very header failed a moment ago (not hashed again).
    Repeated,
    /// The client address failed too often lately (not hashed).
    BackedOff,
}

impl Refusal {
    /// The `reason` label of `pipgate_proxy_auth_failures_total`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Invalid => "invalid",
            Refusal::Repeated => "repeated",
            Refusal::BackedOff => "backoff",
        }
    }
}

impl Credentials {
    pub(crate) fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        // Stamped before reading: an edit while it is read shows as a change at the next look.
        let seen = Stamp::of(path);
        let users = read_users(path)?;
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let dummy = hash_password(&base64::engine::general_purpose::STANDARD.encode(secret))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Credentials {
            path: path.to_owned(),
            users: ArcSwap::from_pointee(users),
            seen: Mutex::new(seen),
            dummy,
            verified: DashMap::new(),
            failed: DashMap::new(),
            backoff: DashMap::new(),
            hashing: Semaphore::new((cores / 2).max(1)),
        })
    }

    /// Reads the file again if it changed since it was last read: `None` when it did not,
    /// else how many users it now holds, or why it cannot be used (the users in force stay).
    /// Remembered verdicts are dropped with the old users: a removed user or a changed
    /// password must not pass on a cached header, and a header that failed may now be right.
    pub(crate) fn refresh(&self) -> Option<Result<usize, CredentialsError>> {
        let now = Stamp::of(&self.path);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == now {
                return None;
            }
            *seen = now;
        }
        Some(read_users(&self.path).map(|users| {
            let n = users.len();
            self.users.store(Arc::new(users));
            self.verified.clear();
            self.failed.clear();
            n
        }))
    }

    /// Checks a `Proxy-Authorization` header value from `client`, and names its user; an
    /// argon2 run is counted in `hashes`.
    pub(crate) async fn verify(
        &self,
        header: Option<&[u8]>,
        client: IpAddr,
        hashes: &AtomicU64,
    ) -> Result<Arc<str>, Refusal> {
        let Some(header) = header else {
            return Err(Refusal::Missing);
        };
        let digest: [u8; 32] = Sha256::digest(header).into();
        if let Some(user) = self.verified.get(&digest) {
            return Ok(user.clone());
        }
        let now = Instant::now();
        if self.backoff.get(&client).is_some_and(|b| now < b.until) {
            return Err(Refusal::BackedOff);
        }
        if self
            .failed
            .get(&digest)
            .is_some_and(|at| now.duration_since(*at) < FAILED_FOR)
        {
            self.failure(client, now);
            return Err(Refusal::Repeated);
        }
        let Some((user, password)) = basic(header) else {
            return Err(Refusal::Missing);
        };
        let users = self.users.load_full();
        let (known, hash) = match users.get(&user) {
            Some(hash) => (true, hash.clone()),
            None => (false, self.dummy.clone()),
        };
        let matches = {
            // The semaphore is never closed, so acquiring fails only if it were.
            let Ok(_slot) = self.hashing.acquire().await else {
                return Err(Refusal::Invalid);
            };
            hashes.fetch_add(1, Relaxed);
            tokio::task::spawn_blocking(move || check_password(&password, &hash))
                .await
                .unwrap_or(false)
        };
        if known && matches {
            let user: Arc<str> = user.into();
            // Not remembered when the file changed meanwhile: the user may be gone.
            if Arc::ptr_eq(&users, &self.users.load()) {
                remember(&self.verified, digest, user.clone());
            }
            self.backoff.remove(&client);
            return Ok(user);
        }
        if self.failed.len() >= MAX_REMEMBERED {
            self.failed
                .retain(|_, at| now.duration_since(*at) < FAILED_FOR);
            if self.failed.len() >= MAX_REMEMBERED {
                self.failed.clear();
            }
        }
        self.failed.insert(digest, now);
        self.failure(client, now);
        Err(Refusal::Invalid)
    }

    /// Counts a failure from `client`; past [`FREE_FAILURES`] each one doubles its back-off.
    fn failure(&self, client: IpAddr, now: Instant) {
        if self.backoff.len() >= MAX_REMEMBERED && !self.backoff.contains_key(&client) {
            self.backoff
                .retain(|_, b| now.duration_since(b.last) < FORGET_AFTER);
            if self.backoff.len() >= MAX_REMEMBERED {
                self.backoff.clear();
            }
        }
        let mut entry = self.backoff.entry(client).or_insert(Backoff {
            failures: 0,
            last: now,
            until: now,
        });
        let b = entry.value_mut();
        if now.duration_since(b.last) >= FORGET_AFTER {
            b.failures = 0;
        }
        b.failures = b.failures.saturating_add(1);
        b.last = now;
        if let Some(over) = b.failures.checked_sub(FREE_FAILURES + 1) {
            let delay = Duration::from_secs(1u64 << over.min(6)).min(MAX_BACKOFF);
            b.until = now + delay;
        }
    }
}

/// The file's users: `user:hash` lines, blank lines and `#` comments skipped; a line that is
/// not a PHC hash (a plaintext password, say) refuses the whole file.
fn read_users(path: &Path) -> Result<Users, CredentialsError> {
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |path: &Path| (path.to_owned(), i + 1);
        let (user, hash) = line.split_once(':').ok_or_else(|| {
            let (path, line) = at(path);
            CredentialsError::Line { path, line }
        })?;
        PasswordHash::new(hash).map_err(|reason| {
            let (path, line) = at(path);
            CredentialsError::NotAHash { path, line, reason }
        })?;
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

/// What tells one version of a file from the next: an edit in place changes its modification
/// time or length, a replacement (`pipgate passwd` writes a new file and renames it) its inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: (u64, u64),
}

impl Stamp {
    /// `None` when the file cannot be looked at (then a later look that can is a change).
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            modified: m.modified().ok(),
            len: m.len(),
            inode: (m.dev(), m.ino()),
        })
    }
}

/// Looks at the running configuration's credentials file every [`WATCH_EVERY`] and applies
/// a change (logged; a file that cannot be used is logged as an error and changes nothing).
/// Runs for the life of the process; after a reload it watches the new runtime's file.
pub(crate) async fn watch(shared: Arc<crate::state::Shared>) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let runtime = shared.runtime.load_full();
        if runtime.credentials.is_none() {
            continue;
        }
        // A stat every tick, and on a change a read and parse: file I/O, kept off the serving
        // thread.
        let outcome = tokio::task::spawn_blocking(move || {
            let creds = runtime.credentials.as_ref()?;
            Some((creds.path.clone(), creds.refresh()?))
        })
        .await;
        match outcome {
            Ok(Some((path, Ok(users)))) => tracing::info!(
                path = %path.display(),
                users,
                "credentials file changed; its users apply to new connections"
            ),
            Ok(Some((path, Err(e)))) => tracing::error!(
                path = %path.display(),
                error = %e,
                "credentials file changed but cannot be used; the previous users stay in force"
            ),
            Ok(None) | Err(_) => {}
        }
    }
}

fn remember(map: &DashMap<[u8; 32], Arc<str>>, digest: [u8; 32], user: Arc<str>) {
    if map.len() >= MAX_REMEMBERED {
        map.clear();
    }
    map.insert(digest, user);
}

/// `user` and `password` of a `Basic` credential.
fn basic(header: &[u8]) -> Option<(String, String)> {
    let b64 = header
        .strip_prefix(b"Basic ")
        .or_else(|| header.strip_prefix(b"basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim_ascii())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// argon2 verification: slow on purpose, so it runs on the blocking pool.
fn check_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn hash_password(password: &str) -> Result<String, CredentialsError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(CredentialsError::Hash)
}

/// Adds or replaces USER in FILE with an argon2id hash of `password` (file kept 0600).
pub(crate) fn set_password(
    path: &Path,
    user: &str,
    password: &str,
) -> Result<(), CredentialsError> {
    if user.is_empty() || user.contains(':') || user.contains(char::is_whitespace) {
        return Err(CredentialsError::UserName);
    }
    let hash = hash_password(password)?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            let path = path.to_owned();
            return Err(CredentialsError::Read { path, source });
        }
    };
    let mut out: Vec<String> = old
        .lines()
        .filter(|l| l.split_once(':').map(|(u, _)| u) != Some(user))
        .map(str::to_owned)
        .collect();
    out.push(format!("{user}:{hash}"));
    let mut text = out.join("\n");
    text.push('\n');
    write_private(path, text.as_bytes()).map_err(|source| CredentialsError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Why a credentials file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("access.credentials: cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line is not `user:hash`.
    #[error("access.credentials: {} line {line}: want user:hash", path.display())]
    Line { path: PathBuf, line: usize },
    /// A line's hash is no PHC string: plaintext passwords are refused.
    #[error(
        "access.credentials: {} line {line}: not a password hash ({reason}); plaintext is refused",
        path.display()
    )]
    NotAHash {
        path: PathBuf,
        line: usize,
        reason: argon2::password_hash::Error,
    },
    /// Argon2 could not hash (a new password, or the dummy that unknown users are checked
    /// against).
    #[error("hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    /// A user name that would not read back from the file.
    #[error("user names may not be empty or contain ':' or spaces")]
    UserName,
    /// The file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
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

    fn header(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[tokio::test]
    async fn passwd_then_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        set_password(&path, "ci", "s3cret").unwrap();
        set_password(&path, "ops", "other").unwrap();
        set_password(&path, "ci", "n3w").unwrap();
        let creds = Credentials::load(&path).unwrap();
        let m = AtomicU64::new(0);
        let verify = |h: String| {
            let (creds, m) = (&creds, &m);
            async move { creds.verify(Some(h.as_bytes()), CLIENT, m).await }
        };
        assert_eq!(verify(header("ci", "n3w")).await, Ok("ci".into()));
        assert_eq!(
            verify(header("ci", "n3w")).await,
            Ok("ci".into()),
            "cached path"
        );
        assert_eq!(
            verify(header("ci", "s3cret")).await,
            Err(Refusal::Invalid),
            "old password replaced"
        );
        assert_eq!(verify(header("ops", "other")).await, Ok("ops".into()));
        assert_eq!(verify(header("nobody", "x")).await, Err(Refusal::Invalid));
        assert_eq!(verify("Bearer abc".into()).await, Err(Refusal::Missing));
        assert_eq!(creds.verify(None, CLIENT, &m).await, Err(Refusal::Missing));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("n3w"), "no plaintext on disk");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!format!("{creds:?}").contains("argon2"));
    }

    #[tokio::test]
    async fn unknown_users_cost_a_hash_and_repeats_and_backed_off_clients_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        set_password(&path, "ci", "right").unwrap();
        let creds = Credentials::load(&path).unwrap();
        let m = AtomicU64::new(0);
        let hashes = || m.load(Relaxed);
        // An unknown user is checked against the dummy hash: one argon2 run, like a known one.
        let unknown = header("nobody", "x");
        assert_eq!(
            creds.verify(Some(unknown.as_bytes()), CLIENT, &m).await,
            Err(Refusal::Invalid)
        );
        assert_eq!(hashes(), 1);
        let wrong = header("ci", "wrong");
        assert_eq!(
            creds.verify(Some(wrong.as_bytes()), CLIENT, &m).await,
            Err(Refusal::Invalid)
        );
        assert_eq!(hashes(), 2);
        // The same wrong header again: refused without a hash (and counted against the client).
        assert_eq!(
            creds.verify(Some(wrong.as_bytes()), CLIENT, &m).await,
            Err(Refusal::Repeated)
        );
        assert_eq!(hashes(), 2);
        // The client has failed FREE_FAILURES times; the next failure backs it off.
        let another = header("ci", "wrong-again");
        assert_eq!(
            creds.verify(Some(another.as_bytes()), CLIENT, &m).await,
            Err(Refusal::Invalid)
        );
        assert_eq!(hashes(), 3);
        let more = header("ci", "guess");
        assert_eq!(
            creds.verify(Some(more.as_bytes()), CLIENT, &m).await,
            Err(Refusal::BackedOff)
        );
        assert_eq!(hashes(), 3, "a backed-off client costs no hash");
        // Even the right password waits out the back-off from that address; others are free.
        let right = header("ci", "right");
        assert_eq!(
            creds.verify(Some(right.as_bytes()), CLIENT, &m).await,
            Err(Refusal::BackedOff)
        );
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(
            creds.verify(Some(right.as_bytes()), other, &m).await,
            Ok("ci".into())
        );
        // Once verified, the header passes from anywhere without a hash.
        assert_eq!(
            creds.verify(Some(right.as_bytes()), CLIENT, &m).await,
            Ok("ci".into())
        );
        assert_eq!(hashes(), 4);
    }

    #[tokio::test]
    async fn a_changed_file_replaces_the_users_and_one_that_does_not_load_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        set_password(&path, "ci", "one").unwrap();
        let creds = Credentials::load(&path).unwrap();
        let m = AtomicU64::new(0);
        let ok = |h: String| {
            let (creds, m) = (&creds, &m);
            async move { creds.verify(Some(h.as_bytes()), CLIENT, m).await }
        };
        assert!(creds.refresh().is_none(), "unchanged");
        assert_eq!(ok(header("ops", "two")).await, Err(Refusal::Invalid));
        set_password(&path, "ops", "two").unwrap();
        assert!(matches!(creds.refresh(), Some(Ok(2))));
        // The failure remembered for that header went with the old users.
        assert_eq!(ok(header("ops", "two")).await, Ok("ops".into()));
        std::fs::write(&path, "ci:plaintext\n").unwrap();
        assert!(matches!(
            creds.refresh(),
            Some(Err(CredentialsError::NotAHash { line: 1, .. }))
        ));
        assert!(creds.refresh().is_none(), "a bad file is reported once");
        assert_eq!(
            ok(header("ops", "two")).await,
            Ok("ops".into()),
            "the old users stay"
        );
        std::fs::remove_file(&path).unwrap();
        set_password(&path, "ci", "one").unwrap();
        assert!(matches!(creds.refresh(), Some(Ok(1))));
        // A removed user's header was verified before: it is not any more.
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9));
        assert_eq!(
            creds
                .verify(Some(header("ops", "two").as_bytes()), other, &m)
                .await,
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn plaintext_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "ci:hunter2\n").unwrap();
        let err = Credentials::load(&path).unwrap_err();
        assert!(
            matches!(err, CredentialsError::NotAHash { line: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("plaintext is refused"), "{err}");
    }
}
