//! The file cache (`[cache]`): a download from a file host is stored while it streams to its
//! first client, keyed by its sha256 and committed only when that equals the digest its index
//! advertised; later requests for it are answered from disk. The cache is consulted after the
//! policy has decided (a hit passes the same decision, and the same digest verdict, as a miss),
//! and a stored file is hashed again before it is served whenever this process has not seen it
//! whole since its last change (`store::Stamp`), so a damaged entry is dropped and fetched
//! again instead of served. Any trouble with the disk turns the cache off for that
//! download (a warning): never a failed install.

pub(crate) mod cli;
mod fill;
mod follow;
pub(crate) mod pages;
mod store;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::watch;

use crate::config::CacheSettings;
pub(crate) use fill::Filling;
pub(crate) use follow::Follower;
pub(crate) use store::Meta;
use store::Store;

/// The cache of one process.
#[derive(Debug)]
pub(crate) struct Cache {
    store: Store,
    /// Stored index pages (`[cache] pages`).
    pub(crate) pages: pages::Pages,
    /// Downloads being stored: a request for one reads what the fill has written instead of
    /// asking upstream.
    inflight: DashMap<String, watch::Receiver<Progress>>,
    pub(crate) stats: Stats,
    /// One warning about the disk, not one per download.
    warned: AtomicBool,
}

/// The counters `/metrics` shows.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub served_bytes: AtomicU64,
    pub fetched_bytes: AtomicU64,
    pub evictions: AtomicU64,
    pub page_hits: AtomicU64,
    pub page_misses: AtomicU64,
    pub stale: AtomicU64,
}

/// How far a fill has got.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// Upstream's file and the temporary file it is written to, once upstream has answered.
    pub file: Option<(Arc<Meta>, std::path::PathBuf)>,
    /// Bytes written so far.
    pub written: u64,
    /// Whether it ended stored (its digest was its key); None while under way.
    pub done: Option<bool>,
}

/// A stored file, ready to serve.
#[derive(Debug)]
pub(crate) struct Hit {
    /// Opened, and found whole by this process since its last change.
    pub file: std::fs::File,
    pub meta: Meta,
}

/// What a request for a file that may be stored does next.
#[derive(Debug)]
pub(crate) enum Begin {
    /// Answer from this stored file.
    Hit(Hit),
    /// Answer from another request's fill, as it arrives.
    Follow(follow::Follower),
    /// Ask upstream, and store what comes while it streams.
    Fill(Filling),
    /// Ask upstream, store nothing (another request's fill failed, or the disk is unusable).
    Pass,
}

impl Cache {
    /// The cache `settings` name, or None (with a warning when the directory is unusable:
    /// downloads then pass through uncached).
    pub(crate) fn open(settings: &CacheSettings) -> Option<Arc<Cache>> {
        let dir = settings.dir.as_deref()?;
        match Cache::open_dir(dir, settings.max_size.0) {
            Ok(cache) => {
                let (files, bytes) = cache.store.stats();
                tracing::info!(dir = %dir.display(), files, bytes, "file cache opened");
                Some(Arc::new(cache))
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "the cache directory is unusable ({e}): downloads pass through uncached");
                None
            }
        }
    }

    pub(crate) fn open_dir(dir: &Path, max_size: u64) -> std::io::Result<Cache> {
        Cache::with(Store::open(dir, max_size, true)?)
    }

    /// The cache in `dir` as another process may be using it (its downloads under way are
    /// left alone), for the `cache` commands.
    pub(crate) fn open_existing(dir: &Path, max_size: u64) -> std::io::Result<Cache> {
        Cache::with(Store::open(dir, max_size, false)?)
    }

    fn with(store: Store) -> std::io::Result<Cache> {
        let pages = pages::Pages::open(store.root(), store.max_size())?;
        Ok(Cache {
            store,
            pages,
            inflight: DashMap::new(),
            stats: Stats::default(),
            warned: AtomicBool::new(false),
        })
    }

    /// The key of a download of `url`: the sha256 its index advertised, else (its index cannot
    /// say now) the one `url` had when it was stored. None: it is not cached.
    pub(crate) fn key(&self, advertised: Option<&str>, url: &str) -> Option<String> {
        self.store.key(advertised, url)
    }

    /// What is known of the stored file `key` (for a HEAD: nothing of it is read).
    pub(crate) fn peek(&self, key: &str) -> Option<Meta> {
        self.store.get(key).map(|(_, meta)| meta)
    }

    /// The stored file `key`, opened. One this process has not found whole since its last
    /// change (the first serve since start, or one written to since) is hashed first, and a
    /// damaged one is removed (None: it is fetched again).
    async fn verified(&self, key: &str) -> Option<Hit> {
        let (path, meta, stamp) = self.store.lookup(key)?;
        let touch = self.store.touch(key);
        let (p, k) = (path.clone(), key.to_owned());
        let opened = tokio::task::spawn_blocking(move || {
            if let Some(json) = touch {
                store::touch_file(&json);
            }
            store::open(&p, &k, stamp, std::time::SystemTime::now())
        })
        .await
        .ok()?;
        match opened {
            Ok(Some((file, stamp))) => {
                self.store.checked(key, stamp);
                Some(Hit { file, meta })
            }
            Ok(None) => {
                tracing::warn!(key, path = %path.display(), "a cached file does not have its sha256: removed, fetched again");
                self.store.remove(key);
                None
            }
            Err(e) => {
                tracing::warn!(key, path = %path.display(), "a cached file cannot be read ({e}): removed, fetched again");
                self.store.remove(key);
                None
            }
        }
    }

    /// A request for the file `key`: the stored file, or the fill that stores it. When
    /// another request is filling it, this one reads from that fill (`follow`) or, when it
    /// cannot (a range was asked), waits for that fill's end.
    pub(crate) async fn begin(self: &Arc<Self>, key: &str, follow: bool) -> Begin {
        if let Some(hit) = self.verified(key).await {
            return Begin::Hit(hit);
        }
        loop {
            let waiting = match self.inflight.entry(key.to_owned()) {
                dashmap::mapref::entry::Entry::Occupied(e) => e.get().clone(),
                dashmap::mapref::entry::Entry::Vacant(v) => {
                    let (tx, rx) = watch::channel(Progress::default());
                    v.insert(rx);
                    return Begin::Fill(Filling::new(self.clone(), key.to_owned(), tx));
                }
            };
            let mut waiting = waiting;
            if follow {
                if let Some(follower) = follow::Follower::join(&mut waiting).await {
                    return Begin::Follow(follower);
                }
            }
            let stored = waiting
                .wait_for(|p| p.done.is_some())
                .await
                .map(|p| p.done == Some(true))
                .unwrap_or(false);
            if !stored {
                return Begin::Pass;
            }
            if let Some(hit) = self.verified(key).await {
                return Begin::Hit(hit);
            }
        }
    }

    /// Notes a problem with the disk: a warning the first time, a debug line after.
    fn disk_trouble(&self, what: &str, e: &std::io::Error) {
        if self.warned.swap(true, Relaxed) {
            tracing::debug!("cache: {what}: {e}");
        } else {
            tracing::warn!(
                "cache: {what} ({e}): this download passes through uncached (further disk errors are logged at debug level)"
            );
        }
    }

    pub(crate) fn hit(&self, bytes: u64) {
        self.stats.hits.fetch_add(1, Relaxed);
        self.stats.served_bytes.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.stats.misses.fetch_add(1, Relaxed);
    }

    /// Removes every stored file (of project `name` only); how many, and their bytes.
    pub(crate) fn purge(&self, name: Option<&str>) -> (u64, u64) {
        self.store.purge(name)
    }

    /// Removes every stored page (of project `name` only); how many, and their bytes.
    pub(crate) fn purge_pages(&self, name: Option<&str>) -> (u64, u64) {
        self.pages.purge(name)
    }

    /// Files stored and their bytes, and the limit.
    pub(crate) fn size(&self) -> (u64, u64, u64) {
        let (files, bytes) = self.store.stats();
        (files, bytes, self.store.max_size())
    }

    pub(crate) fn projects(&self) -> Vec<(String, u64, u64)> {
        self.store.projects()
    }

    /// The cache's series, in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = &self.stats;
        let (files, bytes, max) = self.size();
        let (pages, page_bytes) = self.pages.stats();
        let evictions = s.evictions.load(Relaxed) + self.pages.evictions.load(Relaxed);
        let rows: [(&str, &str, &str, u64); 13] = [
            (
                "pipgate_cache_hits_total",
                "counter",
                "Downloads answered from the cache.",
                s.hits.load(Relaxed),
            ),
            (
                "pipgate_cache_misses_total",
                "counter",
                "Cacheable downloads fetched upstream.",
                s.misses.load(Relaxed),
            ),
            (
                "pipgate_cache_served_bytes_total",
                "counter",
                "Body bytes answered from the cache.",
                s.served_bytes.load(Relaxed),
            ),
            (
                "pipgate_cache_fetched_bytes_total",
                "counter",
                "Bytes of cacheable downloads fetched upstream.",
                s.fetched_bytes.load(Relaxed),
            ),
            (
                "pipgate_cache_evictions_total",
                "counter",
                "Files and pages evicted to stay within max_size.",
                evictions,
            ),
            (
                "pipgate_cache_page_hits_total",
                "counter",
                "Page requests answered from a stored page (a 304 from upstream, or within page_ttl).",
                s.page_hits.load(Relaxed),
            ),
            (
                "pipgate_cache_page_misses_total",
                "counter",
                "Page requests upstream answered with a page (stored for the next).",
                s.page_misses.load(Relaxed),
            ),
            (
                "pipgate_cache_stale_total",
                "counter",
                "Page requests answered from a stored page because upstream failed (stale_if_error).",
                s.stale.load(Relaxed),
            ),
            ("pipgate_cache_pages", "gauge", "Pages in the cache.", pages),
            (
                "pipgate_cache_page_size_bytes",
                "gauge",
                "Bytes of pages in the cache.",
                page_bytes,
            ),
            ("pipgate_cache_files", "gauge", "Files in the cache.", files),
            (
                "pipgate_cache_size_bytes",
                "gauge",
                "Bytes of files in the cache.",
                bytes,
            ),
            (
                "pipgate_cache_max_size_bytes",
                "gauge",
                "The cache's max_size.",
                max,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

#[cfg(test)]
mod tests;
