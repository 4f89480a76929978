//! Storing a download while it streams to its client: each frame is written to a temporary
//! file and hashed as it passes (the client is not held up: the writes go to the page cache),
//! and at its end the file is committed only when its sha256 is the key it was asked under
//! (the digest its index advertised). A write error stops the storing, not the download.

use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{Cache, Meta, Progress};
use crate::body::{Body, BoxError};

/// The right to store the file `key`, held by the one request that fetches it; its end (a
/// commit, a failure, or being dropped unused) releases the requests waiting for it.
pub(crate) struct Filling {
    cache: Arc<Cache>,
    key: String,
    done: Option<watch::Sender<Progress>>,
}

impl std::fmt::Debug for Filling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filling").field("key", &self.key).finish()
    }
}

impl Filling {
    pub(super) fn new(cache: Arc<Cache>, key: String, done: watch::Sender<Progress>) -> Self {
        Filling {
            cache,
            key,
            done: Some(done),
        }
    }

    /// `body` (a whole file, as upstream sent it), stored as it passes.
    pub(crate) fn wrap(self, body: Body, meta: Meta) -> Body {
        if meta.len > self.cache.store.max_size() {
            return body;
        }
        let temp = self.cache.store.temp_path(&self.key);
        let file = match std::fs::File::create(&temp) {
            Ok(f) => {
                if let Some(done) = &self.done {
                    let file = Some((Arc::new(meta.clone()), temp.clone()));
                    done.send_modify(|p| p.file = file);
                }
                Some(f)
            }
            Err(e) => {
                self.cache.disk_trouble("cannot create a file", &e);
                None
            }
        };
        http_body_util::BodyExt::boxed(Fill {
            inner: body,
            file,
            temp,
            hasher: Sha256::new(),
            written: 0,
            meta: Some(meta),
            filling: self,
        })
    }

    /// Releases the waiters: `stored` tells them whether the file is now on disk.
    fn finish(&mut self, stored: bool) {
        if let Some(done) = self.done.take() {
            self.cache.inflight.remove(&self.key);
            done.send_modify(|p| p.done = Some(stored));
        }
    }
}

impl Drop for Filling {
    fn drop(&mut self) {
        self.finish(false);
    }
}

struct Fill {
    inner: Body,
    /// None once storing has stopped (a write failed) or ended.
    file: Option<std::fs::File>,
    temp: std::path::PathBuf,
    hasher: Sha256,
    written: u64,
    /// Taken at the commit.
    meta: Option<Meta>,
    filling: Filling,
}

impl Fill {
    fn write(&mut self, data: &Bytes) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        self.hasher.update(data);
        if let Err(e) = file.write_all(data) {
            self.filling.cache.disk_trouble("cannot write a file", &e);
            self.abandon();
            return;
        }
        self.written += data.len() as u64;
        if let Some(done) = &self.filling.done {
            let written = self.written;
            done.send_modify(|p| p.written = written);
        }
        self.filling
            .cache
            .stats
            .fetched_bytes
            .fetch_add(data.len() as u64, Relaxed);
    }

    fn abandon(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
        self.filling.finish(false);
    }

    /// The download has ended: commit it when its digest is its key, off the async threads
    /// (a commit can evict many files).
    fn end(&mut self) {
        let (Some(file), Some(mut meta)) = (self.file.take(), self.meta.take()) else {
            return;
        };
        drop(file);
        let digest = crate::digest::hex(&std::mem::take(&mut self.hasher).finalize());
        if digest != self.filling.key {
            tracing::debug!(key = %self.filling.key, %digest, "a download did not have its advertised sha256: not stored");
            let _ = std::fs::remove_file(&self.temp);
            self.filling.finish(false);
            return;
        }
        meta.len = self.written;
        let temp = self.temp.clone();
        let mut filling = Filling {
            cache: self.filling.cache.clone(),
            key: self.filling.key.clone(),
            done: self.filling.done.take(),
        };
        let commit = move || {
            let cache = filling.cache.clone();
            match cache.store.commit(&filling.key, &temp, meta) {
                Ok(evicted) => {
                    cache.stats.evictions.fetch_add(evicted, Relaxed);
                    filling.finish(true);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    cache.disk_trouble("cannot store a file", &e);
                    filling.finish(false);
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(commit)),
            Err(_) => commit(),
        }
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        // Dropped before its end (the client went away, upstream failed): nothing is stored.
        if self.meta.is_some() {
            self.abandon();
        }
    }
}

impl http_body::Body for Fill {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.write(data);
                }
                if this.inner.is_end_stream() {
                    this.end();
                }
            }
            Some(Err(_)) => this.abandon(),
            None => this.end(),
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
