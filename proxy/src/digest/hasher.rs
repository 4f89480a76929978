//! Where a download's sha256 is computed. A small file is hashed inline; a large one on a
//! blocking-pool thread fed in batches of frames (the frames are reference-counted, not
//! copied), so hashing (~6 ms per 10 MiB even with the CPU's SHA instructions) runs beside the
//! serving thread's TLS work instead of after it, and a single download's throughput does not
//! pay for it where a core is free. At most [`MAX_QUEUED`] bytes wait for the thread (and one
//! batch being gathered): past that the body waits (the client is served no faster than its
//! file is hashed), so memory stays bounded.

use std::future::Future as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use sha2::{Digest, Sha256};

use crate::body::BoxError;

/// A file of at least this many bytes (its declared length) is hashed off the serving thread.
const OFF_THREAD: u64 = 1 << 20;
/// Bytes handed to the hashing thread and not yet hashed, at most.
const MAX_QUEUED: usize = 4 << 20;
/// Frames are handed over in batches of at least this many bytes: one wake of the hashing
/// thread per batch, not per 16 KiB frame (a wake and its context switches cost about as much
/// as hashing the frame).
const BATCH: usize = 256 << 10;

pub(super) enum Hasher {
    Inline(Sha256),
    Off(OffThread),
}

pub(super) struct OffThread {
    /// `None` once the data has ended (the thread then finishes).
    tx: Option<mpsc::Sender<Vec<Bytes>>>,
    /// Frames not handed over yet, and their length.
    batch: Vec<Bytes>,
    batched: usize,
    shared: Arc<Shared>,
    done: tokio::sync::oneshot::Receiver<[u8; 32]>,
}

struct Shared {
    queued: AtomicUsize,
    /// The body, when it waits for the queue to drain.
    waker: AtomicWaker,
}

impl Hasher {
    /// The hasher for a body of `len` bytes (when declared).
    pub(super) fn for_len(len: Option<u64>) -> Hasher {
        match len {
            Some(n) if n >= OFF_THREAD && tokio::runtime::Handle::try_current().is_ok() => {
                Hasher::Off(OffThread::start())
            }
            _ => Hasher::Inline(Sha256::new()),
        }
    }

    /// Whether more data may be handed over now (`Pending`: wait; the waker is woken when the
    /// hashing thread has caught up).
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Hasher::Off(off) = self else {
            return Poll::Ready(());
        };
        if off.shared.queued.load(Ordering::Acquire) < MAX_QUEUED {
            return Poll::Ready(());
        }
        off.shared.waker.register(cx.waker());
        // Checked again: the thread may have drained the queue before the waker was there.
        if off.shared.queued.load(Ordering::Acquire) < MAX_QUEUED {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    pub(super) fn update(&mut self, data: &Bytes) {
        match self {
            Hasher::Inline(h) => h.update(data),
            Hasher::Off(off) => {
                off.batch.push(data.clone());
                off.batched += data.len();
                if off.batched >= BATCH {
                    off.hand_over();
                }
            }
        }
    }

    /// The digest of everything handed over (the data has ended).
    pub(super) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<[u8; 32], BoxError>> {
        match self {
            Hasher::Inline(h) => Poll::Ready(Ok(std::mem::take(h).finalize().into())),
            Hasher::Off(off) => {
                off.hand_over();
                off.tx = None;
                std::pin::Pin::new(&mut off.done)
                    .poll(cx)
                    .map_err(|_| BoxError::from("the hashing thread ended before the file did"))
            }
        }
    }
}

impl OffThread {
    fn start() -> OffThread {
        let (tx, rx) = mpsc::channel::<Vec<Bytes>>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            waker: AtomicWaker::new(),
        });
        let theirs = Arc::clone(&shared);
        // Not awaited: the digest comes back through `done`.
        drop(tokio::task::spawn_blocking(move || {
            let mut h = Sha256::new();
            // Ends when the body drops its sender: the data has ended, or the download was
            // abandoned (then nobody waits for the digest).
            while let Ok(batch) = rx.recv() {
                let mut n = 0;
                for data in &batch {
                    h.update(data);
                    n += data.len();
                }
                let before = theirs.queued.fetch_sub(n, Ordering::AcqRel);
                if before >= MAX_QUEUED && before - n < MAX_QUEUED {
                    theirs.waker.wake();
                }
            }
            let _ = done_tx.send(h.finalize().into());
        }));
        OffThread {
            tx: Some(tx),
            batch: Vec::new(),
            batched: 0,
            shared,
            done,
        }
    }

    /// Hands the frames batched so far to the thread.
    fn hand_over(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.shared.queued.fetch_add(self.batched, Ordering::AcqRel);
        self.batched = 0;
        let batch = std::mem::take(&mut self.batch);
        if let Some(tx) = &self.tx {
            // A send fails only when the thread is gone; `poll_finish` then fails.
            let _ = tx.send(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_ways_give_the_same_digest() {
        let parts: Vec<Bytes> = (0..40u8).map(|i| Bytes::from(vec![i; 100_000])).collect();
        let total = parts.iter().map(|p| p.len() as u64).sum();
        let mut inline = Hasher::for_len(Some(10));
        let mut off = Hasher::for_len(Some(total));
        assert!(matches!(off, Hasher::Off(_)) && matches!(inline, Hasher::Inline(_)));
        for p in &parts {
            std::future::poll_fn(|cx| off.poll_ready(cx)).await;
            off.update(p);
            inline.update(p);
        }
        let a = std::future::poll_fn(|cx| inline.poll_finish(cx))
            .await
            .unwrap();
        let b = std::future::poll_fn(|cx| off.poll_finish(cx))
            .await
            .unwrap();
        assert_eq!(a, b);
        let mut whole = Sha256::new();
        parts.iter().for_each(|p| whole.update(p));
        assert_eq!(a, <[u8; 32]>::from(whole.finalize()));
    }
}
