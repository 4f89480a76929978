//! Reading a download from its fill as it arrives: a request for a file another request is
//! fetching streams what the fill has written to its temporary file, waiting for more as it
//! comes, and holds its last bytes until the fill has ended stored (its digest was its key),
//! so a follower never holds the whole of a file that did not verify. A fill that fails cuts
//! its followers.

use std::io::SeekFrom;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use super::{Meta, Progress};
use crate::body::{Body, BoxError};

/// A request reading another's fill.
#[derive(Debug)]
pub(crate) struct Follower {
    pub meta: Arc<Meta>,
    file: tokio::fs::File,
    progress: watch::Receiver<Progress>,
}

impl Follower {
    /// Waits until upstream has answered the fill with a file, and opens what it writes;
    /// None when the fill ended first (or its file cannot be opened).
    pub(super) async fn join(progress: &mut watch::Receiver<Progress>) -> Option<Follower> {
        let (meta, temp) = {
            let p = progress
                .wait_for(|p| p.file.is_some() || p.done.is_some())
                .await
                .ok()?;
            if p.done.is_some() {
                return None;
            }
            p.file.clone()?
        };
        // Without upstream's length there is no telling where the file ends: wait instead.
        if meta.len == 0 {
            return None;
        }
        let file = tokio::fs::File::open(&temp).await.ok()?;
        Some(Follower {
            meta,
            file,
            progress: progress.clone(),
        })
    }

    /// Its bytes from `first`, `len` of them.
    pub(crate) fn body(self, first: u64, len: u64) -> Body {
        let state = State {
            follower: self,
            at: 0,
            first,
            end: first + len,
            seeked: false,
            held: None,
            over: false,
        };
        let stream = futures_util::stream::unfold(state, |mut s| async move {
            let next = s.next().await;
            next.map(|n| (n.map(http_body::Frame::data), s))
        });
        http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(stream))
    }
}

struct State {
    follower: Follower,
    /// Bytes of the file read so far.
    at: u64,
    first: u64,
    end: u64,
    seeked: bool,
    held: Option<Bytes>,
    over: bool,
}

const BLOCK: u64 = 256 * 1024;

impl State {
    async fn next(&mut self) -> Option<Result<Bytes, BoxError>> {
        if self.over {
            return None;
        }
        if !self.seeked {
            self.seeked = true;
            self.at = self.first;
            if let Err(e) = self.follower.file.seek(SeekFrom::Start(self.first)).await {
                return self.fail(e.to_string());
            }
        }
        loop {
            let (written, done) = {
                let p = self.follower.progress.borrow();
                (p.written, p.done)
            };
            let until = written.min(self.end);
            if self.at < until {
                let want = (until - self.at).min(BLOCK) as usize;
                let mut buf = vec![0u8; want];
                if let Err(e) = self.follower.file.read_exact(&mut buf).await {
                    return self.fail(e.to_string());
                }
                self.at += want as u64;
                if let Some(previous) = self.held.replace(Bytes::from(buf)) {
                    return Some(Ok(previous));
                }
                continue;
            }
            match done {
                Some(true) if self.at == self.end => {
                    self.over = true;
                    return self.held.take().map(Ok);
                }
                Some(true) => {
                    return self.fail("the stored file is shorter than its length".into())
                }
                Some(false) => return self.fail("the download it was read from failed".into()),
                None => {
                    if self.follower.progress.changed().await.is_err() {
                        return self.fail("the download it was read from ended".into());
                    }
                }
            }
        }
    }

    fn fail(&mut self, why: String) -> Option<Result<Bytes, BoxError>> {
        self.over = true;
        self.held = None;
        Some(Err(format!("cache: {why}").into()))
    }
}
