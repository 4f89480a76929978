//! The files on disk: `v1/files/ab/<sha256>` (the bytes) beside `<sha256>.json` (what was
//! downloaded: URL, project, headers, length), new files written under `v1/tmp/` and renamed
//! into place once verified. The in-memory index (digest -> entry, URL -> digest, the size, the
//! order of last use) is rebuilt from the `.json` files at start; the order of last use is each
//! `.json` file's modification time, which a hit sets (at most once a minute per file; the data
//! file itself is never touched once stored, so its change time says when its bytes changed).
//!
//! A file is hashed when it is stored and at its first serve after a start; after that it is
//! served unhashed while its [`Stamp`] (inode, length, change time) is the one it had when it
//! was hashed. Any write to it, a truncation or a replacement changes the stamp, and the next
//! serve hashes it again before sending a byte.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What is known of a stored file besides its bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The URL it was downloaded from (`https://host/path`, no query).
    pub url: String,
    /// The project it belongs to (normalized), for `pipgate cache purge NAME`.
    pub name: Option<String>,
    pub content_type: Option<String>,
    /// Upstream's validators, answered again on a hit (a client's `If-Range` names them).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub len: u64,
}

#[derive(Debug)]
struct Entry {
    meta: Meta,
    /// The file as this process last found it whole (when it was stored, or at its first
    /// serve since start): while it is unchanged it is served without hashing it again.
    stamp: Option<Stamp>,
    /// Nanoseconds since the epoch of its last use.
    used: u64,
    /// When its `.json` file's modification time was last set to `used` (nanoseconds).
    touched: u64,
}

/// What changes when a file's bytes do: its inode (a replacement), its length and its change
/// time (any write or truncation; the kernel sets it, and no call sets it to a chosen value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    ino: u64,
    len: u64,
    ctime: (i64, i64),
}

impl Stamp {
    fn of(md: &fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt as _;
        Stamp {
            ino: md.ino(),
            len: md.len(),
            ctime: (md.ctime(), md.ctime_nsec()),
        }
    }

    /// The stamp of `md` taken at `now`, if it can be trusted: a change time within
    /// [`RACY_SECS`] of `now` may be shared by a write that lands in the same clock tick (file
    /// times are coarse on many kernels), so such a file is hashed again at its next serve (the
    /// "racy clean" entries of git's index, handled the same way).
    fn trusted(md: &fs::Metadata, now: SystemTime) -> Option<Stamp> {
        let stamp = Stamp::of(md);
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let settled = i64::try_from(now).ok()? - RACY_SECS;
        (stamp.ctime.0 < settled).then_some(stamp)
    }
}

/// How long after a change a file's stamp is trusted (see [`Stamp::trusted`]).
const RACY_SECS: i64 = 2;

/// How often a hit sets its `.json` file's modification time (the order of last use across a
/// restart needs no finer grain, and it saves a syscall per hit).
const TOUCH_EVERY: u64 = 60_000_000_000;

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    by_url: HashMap<String, String>,
    size: u64,
}

/// A cache directory.
#[derive(Debug)]
pub(crate) struct Store {
    root: PathBuf,
    max_size: u64,
    index: Mutex<Index>,
    temp: AtomicU64,
}

/// Whether `s` is a sha256 in lower-case hex (the only names the store gives files: a digest
/// from an index page never becomes a path unless it is one).
pub(crate) fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn now_nanos() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Store {
    /// Opens (creating) the directory, drops what an earlier run left half-written, and reads
    /// the index; a file whose length is not its entry's is dropped.
    /// (`fresh`: this process owns the directory, and what is in `tmp/` is from an earlier run.)
    pub(crate) fn open(dir: &Path, max_size: u64, fresh: bool) -> io::Result<Store> {
        let root = dir.join("v1");
        fs::create_dir_all(root.join("files"))?;
        let tmp = root.join("tmp");
        if fresh {
            let _ = fs::remove_dir_all(&tmp);
        }
        fs::create_dir_all(&tmp)?;
        // Fail now, not on the first download, when the directory cannot be written.
        let probe = tmp.join(format!("probe.{}", std::process::id()));
        fs::write(&probe, b"")?;
        fs::remove_file(&probe)?;
        let store = Store {
            root,
            max_size,
            index: Mutex::new(Index::default()),
            temp: AtomicU64::new(0),
        };
        let mut index = Index::default();
        for shard in fs::read_dir(store.root.join("files"))?.flatten() {
            for file in fs::read_dir(shard.path())?.flatten() {
                let path = file.path();
                let Some(hex) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                    .filter(|h| is_digest(h))
                    .map(str::to_owned)
                else {
                    continue;
                };
                let data = store.data(&hex);
                let meta = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Meta>(&b).ok());
                let stat = fs::metadata(&data).ok();
                let last_use = fs::metadata(&path).ok();
                match (meta, stat, last_use) {
                    (Some(meta), Some(stat), Some(last_use)) if stat.len() == meta.len => {
                        let used = last_use
                            .modified()
                            .ok()
                            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                        index.size += meta.len;
                        index.by_url.insert(meta.url.clone(), hex.clone());
                        index.entries.insert(
                            hex,
                            Entry {
                                meta,
                                used,
                                touched: used,
                                stamp: None,
                            },
                        );
                    }
                    _ => {
                        let _ = fs::remove_file(&data);
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        *store.lock() = index;
        if fresh {
            store.evict();
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the index leaves it consistent (every change is one insert or
        // remove), so a poisoned lock is taken over.
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn data(&self, hex: &str) -> PathBuf {
        self.root.join("files").join(&hex[..2]).join(hex)
    }

    fn meta_path(&self, hex: &str) -> PathBuf {
        self.root
            .join("files")
            .join(&hex[..2])
            .join(format!("{hex}.json"))
    }

    /// The key of a download: the digest its index advertised, else the one this URL had when
    /// it was stored (an index that cannot be asked now).
    pub(crate) fn key(&self, advertised: Option<&str>, url: &str) -> Option<String> {
        match advertised {
            Some(hex) => Some(hex.to_ascii_lowercase()).filter(|h| is_digest(h)),
            None => self.lock().by_url.get(url).cloned(),
        }
    }

    /// The stored file `hex` and what is known of it, if there is one.
    pub(crate) fn get(&self, hex: &str) -> Option<(PathBuf, Meta)> {
        self.lookup(hex).map(|(path, meta, _)| (path, meta))
    }

    /// [`Store::get`], and the stamp the file had when this process last hashed it.
    pub(crate) fn lookup(&self, hex: &str) -> Option<(PathBuf, Meta, Option<Stamp>)> {
        let (meta, stamp) = {
            let index = self.lock();
            let e = index.entries.get(hex)?;
            (e.meta.clone(), e.stamp)
        };
        Some((self.data(hex), meta, stamp))
    }

    /// Notes that the file `hex` was found whole, with `stamp` (None: hash it at its next
    /// serve too).
    pub(crate) fn checked(&self, hex: &str, stamp: Option<Stamp>) {
        if let Some(e) = self.lock().entries.get_mut(hex) {
            e.stamp = stamp;
        }
    }

    /// Marks `hex` as just used in memory; when it is due (once a minute at most), the `.json`
    /// file whose modification time to set too, so that the order survives a restart.
    pub(crate) fn touch(&self, hex: &str) -> Option<PathBuf> {
        let now = now_nanos();
        {
            let mut index = self.lock();
            let e = index.entries.get_mut(hex)?;
            e.used = now;
            if now.saturating_sub(e.touched) < TOUCH_EVERY {
                return None;
            }
            e.touched = now;
        }
        Some(self.meta_path(hex))
    }

    /// A fresh path to write a download of `hex` to.
    pub(crate) fn temp_path(&self, hex: &str) -> PathBuf {
        let n = self.temp.fetch_add(1, Relaxed);
        self.root
            .join("tmp")
            .join(format!("{hex}.{}.{n}", std::process::id()))
    }

    /// Moves a verified download into place and evicts beyond `max_size`; the number of files
    /// evicted.
    pub(crate) fn commit(&self, hex: &str, temp: &Path, meta: Meta) -> io::Result<u64> {
        if meta.len > self.max_size {
            let _ = fs::remove_file(temp);
            return Ok(0);
        }
        let data = self.data(hex);
        if let Some(dir) = data.parent() {
            fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec(&meta).map_err(io::Error::other)?;
        let meta_temp = temp.with_extension("json");
        fs::write(&meta_temp, json)?;
        // The bytes first: an entry is a `.json` beside a file of its length.
        fs::rename(temp, &data)?;
        fs::rename(&meta_temp, self.meta_path(hex))?;
        // Hashed as it was written (its digest is its name): stamped after the renames, which
        // set its change time.
        let stamp = fs::metadata(&data)
            .ok()
            .and_then(|md| Stamp::trusted(&md, SystemTime::now()));
        {
            let mut index = self.lock();
            index.by_url.insert(meta.url.clone(), hex.to_owned());
            let len = meta.len;
            let old = index.entries.insert(
                hex.to_owned(),
                Entry {
                    meta,
                    used: now_nanos(),
                    touched: now_nanos(),
                    stamp,
                },
            );
            index.size = index.size + len - old.map_or(0, |e| e.meta.len);
        }
        Ok(self.evict())
    }

    /// Removes least-recently-used files until the store fits `max_size`.
    fn evict(&self) -> u64 {
        let mut evicted = 0;
        loop {
            let victim = {
                let index = self.lock();
                if index.size <= self.max_size {
                    return evicted;
                }
                index
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(hex, _)| hex.clone())
            };
            let Some(hex) = victim else {
                return evicted;
            };
            self.remove(&hex);
            evicted += 1;
        }
    }

    /// Forgets `hex` and deletes its files (evicted, purged, or found corrupted).
    pub(crate) fn remove(&self, hex: &str) {
        {
            let mut index = self.lock();
            if let Some(e) = index.entries.remove(hex) {
                index.size -= e.meta.len;
                if index.by_url.get(&e.meta.url).map(String::as_str) == Some(hex) {
                    index.by_url.remove(&e.meta.url);
                }
            }
        }
        let _ = fs::remove_file(self.data(hex));
        let _ = fs::remove_file(self.meta_path(hex));
    }

    /// Removes every file (of project `name` only, when given); how many, and their bytes.
    pub(crate) fn purge(&self, name: Option<&str>) -> (u64, u64) {
        let victims: Vec<(String, u64)> = self
            .lock()
            .entries
            .iter()
            .filter(|(_, e)| name.is_none() || e.meta.name.as_deref() == name)
            .map(|(hex, e)| (hex.clone(), e.meta.len))
            .collect();
        let bytes = victims.iter().map(|(_, len)| len).sum();
        for (hex, _) in &victims {
            self.remove(hex);
        }
        (victims.len() as u64, bytes)
    }

    /// Files stored, and their bytes.
    pub(crate) fn stats(&self) -> (u64, u64) {
        let index = self.lock();
        (index.entries.len() as u64, index.size)
    }

    /// Files stored per project, largest first (`pipgate cache stats`).
    pub(crate) fn projects(&self) -> Vec<(String, u64, u64)> {
        let mut by: HashMap<String, (u64, u64)> = HashMap::new();
        for e in self.lock().entries.values() {
            let slot = by
                .entry(e.meta.name.clone().unwrap_or_else(|| "-".into()))
                .or_default();
            slot.0 += 1;
            slot.1 += e.meta.len;
        }
        let mut rows: Vec<_> = by.into_iter().map(|(n, (c, b))| (n, c, b)).collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        rows
    }

    pub(crate) fn max_size(&self) -> u64 {
        self.max_size
    }

    /// The `v1/` directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// The stored file at `path`, opened to be served: hashed first unless it still has `stamp`
/// (the stamp it had when last hashed whole). None: it does not have the sha256 `hex` (a flipped
/// byte on disk, or a file cut short, is found before anything of it is served). With the file,
/// the stamp it has at `now`, if that can be trusted.
pub(crate) fn open(
    path: &Path,
    hex: &str,
    stamp: Option<Stamp>,
    now: SystemTime,
) -> io::Result<Option<(fs::File, Option<Stamp>)>> {
    use std::io::Seek as _;
    let mut file = fs::File::open(path)?;
    let md = file.metadata()?;
    if stamp != Some(Stamp::of(&md)) {
        if !has_digest(&mut file, md.len(), hex)? {
            return Ok(None);
        }
        file.rewind()?;
    }
    Ok(Some((file, Stamp::trusted(&md, now))))
}

/// Sets the modification time of a `.json` file ([`Store::touch`]): the order of last use.
pub(crate) fn touch_file(path: &Path) {
    if let Ok(f) = fs::File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Whether the file at `path` has the sha256 `hex`.
#[cfg(test)]
pub(crate) fn verify(path: &Path, hex: &str) -> io::Result<bool> {
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    has_digest(&mut file, len, hex)
}

/// Whether what is left to read of `file` (of `len` bytes) has the sha256 `hex`.
fn has_digest(file: &mut fs::File, len: u64, hex: &str) -> io::Result<bool> {
    let mut hasher = Sha256::new();
    // No larger than the file, and small enough that many concurrent first serves do not add
    // up (64 at once: 16 MiB at most).
    let len = len.clamp(1, 256 * 1024);
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(256 * 1024)];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(crate::digest::hex(&hasher.finalize()) == hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(url: &str, len: u64) -> Meta {
        Meta {
            url: url.into(),
            name: Some("demo".into()),
            content_type: None,
            etag: None,
            last_modified: None,
            len,
        }
    }

    fn put(store: &Store, bytes: &[u8], url: &str) -> String {
        let hex = crate::digest::hex(&Sha256::digest(bytes));
        let temp = store.temp_path(&hex);
        fs::write(&temp, bytes).unwrap();
        store
            .commit(&hex, &temp, meta(url, bytes.len() as u64))
            .unwrap();
        hex
    }

    #[test]
    fn entries_survive_a_reopen_and_the_least_recently_used_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 10, true).unwrap();
        let a = put(&store, b"aaaa", "https://h/a");
        let b = put(&store, b"bbbb", "https://h/b");
        store.touch(&a);
        assert!(verify(&store.get(&a).unwrap().0, &a).unwrap());
        // 12 bytes > 10: b, used longest ago, goes.
        let c = put(&store, b"cccc", "https://h/c");
        assert!(store.get(&b).is_none() && store.get(&a).is_some());
        drop(store);
        let store = Store::open(dir.path(), 10, true).unwrap();
        assert_eq!(store.stats(), (2, 8));
        assert_eq!(store.key(None, "https://h/c"), Some(c.clone()));
        assert_eq!(store.key(None, "https://h/b"), None);
        // An advertised digest is the key; one that is no digest names nothing.
        assert_eq!(store.key(Some(&c.to_uppercase()), "x"), Some(c.clone()));
        assert_eq!(store.key(Some("../../etc/passwd"), "x"), None);
        // A flipped byte is found.
        let path = store.get(&c).unwrap().0;
        fs::write(&path, b"cccd").unwrap();
        assert!(!verify(&path, &c).unwrap());
        assert_eq!(store.purge(Some("demo")), (2, 8));
        assert_eq!(store.stats(), (0, 0));
    }

    #[test]
    fn a_file_cut_short_is_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 100, true).unwrap();
        let a = put(&store, b"aaaa", "https://h/a");
        let path = store.get(&a).unwrap().0;
        drop(store);
        fs::write(&path, b"aa").unwrap();
        let store = Store::open(dir.path(), 100, true).unwrap();
        assert_eq!(store.stats(), (0, 0));
        assert!(!path.exists());
    }

    #[test]
    fn a_file_is_hashed_again_only_when_its_stamp_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 100, true).unwrap();
        let a = put(&store, b"aaaa", "https://h/a");
        let (path, _, stamp) = store.lookup(&a).unwrap();
        // Changed just now: not trusted yet (a write in the same clock tick would keep it).
        assert_eq!(stamp, None);
        let wrong = "0".repeat(64);
        assert!(open(&path, &wrong, None, SystemTime::now())
            .unwrap()
            .is_none());
        // Seen whole once it has settled (`later`: a clock past the racy window).
        let later = || SystemTime::now() + std::time::Duration::from_secs(10);
        let (_, stamp) = open(&path, &a, None, later()).unwrap().unwrap();
        let stamp = stamp.expect("a settled file is stamped");
        // Unchanged since it was hashed: not hashed (a wrong digest is not even noticed).
        assert!(open(&path, &wrong, Some(stamp), later()).unwrap().is_some());
        // A hit's touch sets the `.json` file's time, not the data file's: still unchanged.
        touch_file(&store.meta_path(&a));
        assert!(open(&path, &wrong, Some(stamp), later()).unwrap().is_some());
        // Any write changes the stamp: the next open hashes, and finds the flipped byte.
        fs::write(&path, b"aaab").unwrap();
        assert!(open(&path, &a, Some(stamp), later()).unwrap().is_none());
        // The same bytes written back hash whole, with a new stamp, from the file's start.
        fs::write(&path, b"aaaa").unwrap();
        let (mut file, again) = open(&path, &a, Some(stamp), later()).unwrap().unwrap();
        assert_ne!(again, Some(stamp));
        let mut read = Vec::new();
        file.read_to_end(&mut read).unwrap();
        assert_eq!(read, b"aaaa");
        // A change time within the racy window is never trusted.
        let (_, fresh) = open(&path, &a, None, SystemTime::now()).unwrap().unwrap();
        assert_eq!(fresh, None);
    }
}
