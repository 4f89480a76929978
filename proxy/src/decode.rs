//! Reading a page body from upstream for rewriting (decoded, bounded): chunk by chunk, decoded from gzip, deflate,
//! br or zstd, each read bounded by the idle timeout. Callers cap the decoded total, so a
//! decompression bomb ends in 502, not in OOM; a page read whole also takes what it holds from
//! the shared [`PageBudget`](crate::budget::PageBudget).

use std::io;
use std::pin::Pin;
use std::time::Duration;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder};
use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use http::header::CONTENT_ENCODING;
use http::HeaderMap;
use http_body_util::{BodyDataStream, BodyExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::io::StreamReader;

use crate::body::Body;
use crate::budget::{Exhausted, Share};

/// Why a page body could not be read (or rewritten).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PageError {
    /// No byte arrived for the idle timeout.
    #[error("page body stalled for {0}s")]
    Stalled(u64),
    /// The upstream broke the body off, or its encoding is corrupt.
    #[error("reading page body: {0}")]
    Read(String),
    /// A `Content-Encoding` pipgate did not ask for and cannot decode.
    #[error("unsupported Content-Encoding {0:?}")]
    Encoding(String),
    /// More decoded bytes than `limits.max_page_bytes`.
    #[error("page larger than limits.max_page_bytes ({0} bytes decoded)")]
    TooLarge(usize),
    /// The page is not what its format says (the policy's reason).
    #[error("{0}")]
    Rewrite(String),
    /// The memory budget for pages read whole is spent (503, not 502: pipgate is at a limit).
    #[error("{0}")]
    Busy(Exhausted),
}

/// What pipgate asks upstream for, by what each costs to decode: zstd inflates fastest, then
/// gzip (zlib-rs), and brotli slowest (about half gzip's speed); identity is not asked for, as
/// across a real network it is 3-4× the bytes of a page. PyPI's CDN offers gzip.
pub(crate) const ACCEPT_ENCODINGS: &str = "zstd, gzip;q=0.9, br;q=0.5";

/// The most a decoder hands over at once.
const DECODED_CHUNK: usize = 64 * 1024;

/// A page body as decoded chunks.
pub(crate) struct Source {
    inner: Inner,
    idle: Duration,
}

enum Inner {
    /// Unencoded: upstream's frames, passed on without a copy.
    Plain(Body),
    Decoded(Pin<Box<dyn AsyncRead + Send + Sync>>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").finish_non_exhaustive()
    }
}

impl Source {
    /// Reads `body` as its `Content-Encoding` says; an encoding pipgate cannot decode is an
    /// error (it asked only for those it can).
    pub(crate) fn new(
        headers: &HeaderMap,
        body: Body,
        idle: Duration,
    ) -> Result<Source, PageError> {
        let encoding = match headers.get(CONTENT_ENCODING) {
            None => "identity".to_owned(),
            Some(v) => String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase(),
        };
        let inner = if encoding.is_empty() || encoding == "identity" {
            Inner::Plain(body)
        } else {
            let stream = BodyDataStream::new(body).map_err(|e| io::Error::other(e.to_string()));
            // StreamReader is itself buffered (it lends out each frame it holds): the decoder
            // inflates straight from upstream's frames, with no copy into a buffer of its own.
            let raw = StreamReader::new(stream);
            Inner::Decoded(match encoding.as_str() {
                "gzip" | "x-gzip" => Box::pin(GzipDecoder::new(raw)),
                "deflate" => Box::pin(ZlibDecoder::new(raw)),
                "br" => Box::pin(BrotliDecoder::new(raw)),
                "zstd" => Box::pin(ZstdDecoder::new(raw)),
                other => return Err(PageError::Encoding(other.to_owned())),
            })
        };
        Ok(Source { inner, idle })
    }

    /// The next decoded chunk; `None` at the end of the body.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, PageError> {
        let idle = self.idle;
        let stalled = || PageError::Stalled(idle.as_secs());
        match &mut self.inner {
            Inner::Plain(body) => loop {
                let frame = match tokio::time::timeout(idle, body.frame()).await {
                    Err(_) => return Err(stalled()),
                    Ok(None) => return Ok(None),
                    Ok(Some(Err(e))) => return Err(PageError::Read(e.to_string())),
                    Ok(Some(Ok(frame))) => frame,
                };
                // Trailers carry nothing a page needs.
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() {
                        return Ok(Some(data));
                    }
                }
            },
            Inner::Decoded(reader) => {
                let mut buf = BytesMut::with_capacity(DECODED_CHUNK);
                match tokio::time::timeout(idle, reader.read_buf(&mut buf)).await {
                    Err(_) => Err(stalled()),
                    Ok(Err(e)) => Err(PageError::Read(e.to_string())),
                    Ok(Ok(0)) => Ok(None),
                    Ok(Ok(_)) => Ok(Some(buf.freeze())),
                }
            }
        }
    }
}

/// Reads and decodes a whole body, refusing more than `limit` decoded bytes, and holding what
/// it has read in `share` of the page budget.
pub(crate) async fn read_decoded(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    idle: Duration,
    share: &mut Share,
) -> Result<Vec<u8>, PageError> {
    let hint = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(64 * 1024)
        .min(limit);
    share.cover(hint).map_err(PageError::Busy)?;
    let mut source = Source::new(headers, body, idle)?;
    let mut out = Vec::with_capacity(hint);
    while let Some(chunk) = source.next().await? {
        if out.len() + chunk.len() > limit {
            return Err(PageError::TooLarge(limit));
        }
        share
            .cover(out.len() + chunk.len())
            .map_err(PageError::Busy)?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
