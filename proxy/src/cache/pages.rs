//! Stored pages: `v1/pages/ab/<key>`, each one file: a line of JSON (what was asked, upstream's
//! headers that describe the body, its sha256 and length) and then upstream's raw body, as it
//! came (still gzip-encoded, when it was). Written under `v1/tmp/` and renamed into place. The
//! key is a digest of the index, URL and `Accept` pipgate asked upstream with, so a page is only
//! ever answered to the request that would have fetched it. When a page was last validated (a
//! `200` or `304` from upstream) is the file's modification time, so it survives a restart.
//!
//! Pages are kept within an eighth of `max_size`, least recently used first out; a stored body
//! is hashed at its first read since start and its length checked after that (a damaged one is
//! removed, and the page asked for again).

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::is_digest;

/// What is known of a stored page besides its body.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PageMeta {
    /// The URL pipgate asked upstream for.
    pub url: String,
    /// The project (normalized) of a project page or JSON document, for `cache purge NAME`.
    pub name: Option<String>,
    /// Upstream's headers that describe the body (content type and encoding, validators,
    /// `Cache-Control`), answered again with it.
    pub headers: Vec<(String, String)>,
    /// The body's sha256, checked before it is served.
    pub sha256: String,
    pub len: u64,
}

impl PageMeta {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Entry {
    meta: Arc<PageMeta>,
    /// When upstream last confirmed it.
    validated: SystemTime,
    /// Order of last use.
    used: u64,
    /// Its body was hashed by this process (stored, or read and checked): later reads check
    /// its length only.
    checked: bool,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    size: u64,
    clock: u64,
}

/// The stored pages of a cache directory.
#[derive(Debug)]
pub(crate) struct Pages {
    dir: PathBuf,
    tmp: PathBuf,
    max_size: u64,
    index: Mutex<Index>,
    temp: AtomicU64,
    pub(crate) evictions: AtomicU64,
}

/// A stored page, as a request finds it.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub meta: Arc<PageMeta>,
    /// How long ago upstream last confirmed it.
    pub age: Duration,
}

/// The key of a page asked for as `url` from `index` with `accept`.
pub(crate) fn key(index: &str, url: &str, accept: &str) -> String {
    let mut h = Sha256::new();
    for part in [index, url, accept] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    crate::digest::hex(&h.finalize())
}

impl Pages {
    /// The pages under `root` (`v1/`), whose `tmp/` the file store has made (and emptied).
    pub(crate) fn open(root: &Path, max_size: u64) -> io::Result<Pages> {
        let dir = root.join("pages");
        fs::create_dir_all(&dir)?;
        let pages = Pages {
            tmp: root.join("tmp"),
            dir,
            max_size,
            index: Mutex::new(Index::default()),
            temp: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        };
        let mut index = Index::default();
        for shard in fs::read_dir(&pages.dir)?.flatten() {
            for file in fs::read_dir(shard.path())?.flatten() {
                let path = file.path();
                let Some(key) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| is_digest(n))
                    .map(str::to_owned)
                else {
                    continue;
                };
                match read_head(&path) {
                    Ok(Some((meta, validated))) => {
                        index.size += meta.len;
                        index.entries.insert(
                            key,
                            Entry {
                                meta: Arc::new(meta),
                                validated,
                                used: 0,
                                checked: false,
                            },
                        );
                    }
                    _ => {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        *pages.lock() = index;
        Ok(pages)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // Every change is one insert or remove: a poisoned lock is consistent.
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(key)
    }

    /// The stored page `key`, if there is one.
    pub(crate) fn get(&self, key: &str) -> Option<Stored> {
        let mut index = self.lock();
        index.clock += 1;
        let clock = index.clock;
        let e = index.entries.get_mut(key)?;
        e.used = clock;
        Some(Stored {
            meta: e.meta.clone(),
            age: SystemTime::now()
                .duration_since(e.validated)
                .unwrap_or_default(),
        })
    }

    /// The body of the stored page `key` (blocking), if it is whole: a body that is not what
    /// was stored is removed (None). Its first read since start hashes it; later ones (it was
    /// whole then, and a rewrite of a damaged page can only drop links, as every link is
    /// checked again) compare its length.
    pub(crate) fn body(&self, key: &str, meta: &PageMeta) -> Option<Bytes> {
        let checked = self
            .lock()
            .entries
            .get(key)
            .is_some_and(|e| e.checked && *e.meta == *meta);
        let read = || -> io::Result<Option<Vec<u8>>> {
            let mut file = io::BufReader::new(fs::File::open(self.path(key))?);
            let mut head = Vec::new();
            file.read_until(b'\n', &mut head)?;
            let mut body = Vec::with_capacity(usize::try_from(meta.len).unwrap_or(0));
            file.read_to_end(&mut body)?;
            let whole = body.len() as u64 == meta.len
                && (checked || crate::digest::hex(&Sha256::digest(&body)) == meta.sha256);
            Ok(whole.then_some(body))
        };
        match read() {
            Ok(Some(body)) => {
                if !checked {
                    if let Some(e) = self.lock().entries.get_mut(key) {
                        e.checked = true;
                    }
                }
                Some(Bytes::from(body))
            }
            Ok(None) => {
                tracing::warn!(
                    key,
                    "a cached page does not have its sha256: removed, asked for again"
                );
                self.remove(key);
                None
            }
            Err(e) => {
                tracing::warn!(
                    key,
                    "a cached page cannot be read ({e}): removed, asked for again"
                );
                self.remove(key);
                None
            }
        }
    }

    /// Stores upstream's page (blocking); the entries evicted to stay within an eighth of
    /// `max_size`.
    pub(crate) fn put(&self, key: &str, mut meta: PageMeta, body: &[Bytes]) -> io::Result<u64> {
        let len: u64 = body.iter().map(|b| b.len() as u64).sum();
        if len > self.budget() {
            return Ok(0);
        }
        let mut h = Sha256::new();
        for b in body {
            h.update(b);
        }
        meta.sha256 = crate::digest::hex(&h.finalize());
        meta.len = len;
        let n = self.temp.fetch_add(1, Relaxed);
        let temp = self
            .tmp
            .join(format!("page.{key}.{}.{n}", std::process::id()));
        {
            let mut file = io::BufWriter::new(fs::File::create(&temp)?);
            serde_json::to_writer(&mut file, &meta).map_err(io::Error::other)?;
            file.write_all(b"\n")?;
            for b in body {
                file.write_all(b)?;
            }
            file.flush()?;
        }
        let path = self.path(key);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::rename(&temp, &path)?;
        {
            let mut index = self.lock();
            index.clock += 1;
            let used = index.clock;
            let old = index.entries.insert(
                key.to_owned(),
                Entry {
                    meta: Arc::new(meta),
                    validated: SystemTime::now(),
                    used,
                    checked: true,
                },
            );
            index.size = index.size + len - old.map_or(0, |e| e.meta.len);
        }
        Ok(self.evict())
    }

    /// Notes that upstream confirmed the stored page `key` (a `304`) just now.
    pub(crate) fn validated(&self, key: &str) {
        let now = SystemTime::now();
        if let Some(e) = self.lock().entries.get_mut(key) {
            e.validated = now;
        }
        if let Ok(f) = fs::File::options().write(true).open(self.path(key)) {
            let _ = f.set_modified(now);
        }
    }

    fn budget(&self) -> u64 {
        self.max_size / 8
    }

    fn evict(&self) -> u64 {
        let mut evicted = 0;
        loop {
            let victim = {
                let index = self.lock();
                if index.size <= self.budget() {
                    break;
                }
                index
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| (e.used, e.validated))
                    .map(|(k, _)| k.clone())
            };
            let Some(key) = victim else { break };
            self.remove(&key);
            evicted += 1;
        }
        self.evictions.fetch_add(evicted, Relaxed);
        evicted
    }

    /// Forgets the page `key` and deletes its file.
    pub(crate) fn remove(&self, key: &str) {
        {
            let mut index = self.lock();
            if let Some(e) = index.entries.remove(key) {
                index.size -= e.meta.len;
            }
        }
        let _ = fs::remove_file(self.path(key));
    }

    /// Removes every page (of project `name` only, when given); how many, and their bytes.
    pub(crate) fn purge(&self, name: Option<&str>) -> (u64, u64) {
        let victims: Vec<(String, u64)> = self
            .lock()
            .entries
            .iter()
            .filter(|(_, e)| name.is_none() || e.meta.name.as_deref() == name)
            .map(|(k, e)| (k.clone(), e.meta.len))
            .collect();
        let bytes = victims.iter().map(|(_, len)| len).sum();
        for (key, _) in &victims {
            self.remove(key);
        }
        (victims.len() as u64, bytes)
    }

    /// Pages stored, and their bytes.
    pub(crate) fn stats(&self) -> (u64, u64) {
        let index = self.lock();
        (index.entries.len() as u64, index.size)
    }
}

/// The JSON line of the page file at `path` (whose length it must match), and when it was
/// validated.
fn read_head(path: &Path) -> io::Result<Option<(PageMeta, SystemTime)>> {
    let file = fs::File::open(path)?;
    let stat = file.metadata()?;
    let mut file = io::BufReader::new(file);
    let mut head = Vec::new();
    file.read_until(b'\n', &mut head)?;
    let Ok(meta) = serde_json::from_slice::<PageMeta>(&head) else {
        return Ok(None);
    };
    if stat.len() != head.len() as u64 + meta.len || !is_digest(&meta.sha256) {
        return Ok(None);
    }
    Ok(Some((meta, stat.modified()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str) -> PageMeta {
        PageMeta {
            url: format!("https://h/simple/{name}/"),
            name: Some(name.into()),
            headers: vec![("etag".into(), "\"v1\"".into())],
            sha256: String::new(),
            len: 0,
        }
    }

    #[test]
    fn pages_survive_a_reopen_a_damaged_body_is_removed_and_purge_names_a_project() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("v1");
        fs::create_dir_all(root.join("tmp")).unwrap();
        let pages = Pages::open(&root, 8 * 1000).unwrap();
        let (a, b) = (key("pypi", "u/a", "x"), key("pypi", "u/b", "x"));
        assert_ne!(a, key("private", "u/a", "x"));
        pages
            .put(
                &a,
                meta("a"),
                &[Bytes::from_static(b"<html>"), Bytes::from_static(b"a")],
            )
            .unwrap();
        pages
            .put(&b, meta("b"), &[Bytes::from_static(b"bb")])
            .unwrap();
        drop(pages);
        let pages = Pages::open(&root, 8 * 1000).unwrap();
        assert_eq!(pages.stats(), (2, 9));
        let stored = pages.get(&a).unwrap();
        assert_eq!(stored.meta.header("ETag"), Some("\"v1\""));
        let b_meta = pages.get(&b).unwrap().meta;
        assert_eq!(pages.body(&b, &b_meta).unwrap(), &b"bb"[..]);
        // A flipped byte of the body is found at its first read since start, and the page
        // forgotten.
        let path = pages.path(&a);
        let mut raw = fs::read(&path).unwrap();
        *raw.last_mut().unwrap() ^= 1;
        fs::write(&path, raw).unwrap();
        assert!(pages.body(&a, &stored.meta).is_none());
        assert!(pages.get(&a).is_none());
        assert_eq!(pages.purge(Some("b")), (1, 2));
        assert_eq!(pages.stats(), (0, 0));
    }

    #[test]
    fn pages_beyond_an_eighth_of_max_size_evict_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("v1");
        fs::create_dir_all(root.join("tmp")).unwrap();
        let pages = Pages::open(&root, 8 * 10).unwrap();
        let body = [Bytes::from_static(b"0123")];
        let (a, b, c) = (key("i", "a", ""), key("i", "b", ""), key("i", "c", ""));
        pages.put(&a, meta("a"), &body).unwrap();
        pages.put(&b, meta("b"), &body).unwrap();
        assert!(pages.get(&a).is_some());
        assert_eq!(pages.put(&c, meta("c"), &body).unwrap(), 1);
        assert!(pages.get(&b).is_none() && pages.get(&a).is_some());
    }
}
