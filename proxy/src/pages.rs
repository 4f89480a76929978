//! Reading a page body from upstream for rewriting: chunk by chunk, decoded from gzip, deflate,
//! br or zstd, each read bounded by the idle timeout. Callers cap the decoded total, so a
//! decompression bomb ends in 502, not in OOM.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder};
use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use http::header::CONTENT_ENCODING;
use http::HeaderMap;
use http_body_util::{BodyDataStream, BodyExt};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio_util::io::StreamReader;

/// The most a decoder hands over at once.
const DECODED_CHUNK: usize = 64 * 1024;

/// A page body as decoded chunks.
pub struct Source {
    inner: Inner,
    idle: Duration,
}

enum Inner {
    /// Unencoded: upstream's frames, passed on without a copy.
    Plain(Incoming),
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
    pub fn new(headers: &HeaderMap, body: Incoming, idle: Duration) -> Result<Source, String> {
        let encoding = match headers.get(CONTENT_ENCODING) {
            None => "identity".to_owned(),
            Some(v) => v
                .to_str()
                .map_err(|_| "unreadable Content-Encoding".to_owned())?
                .trim()
                .to_ascii_lowercase(),
        };
        let inner = if encoding.is_empty() || encoding == "identity" {
            Inner::Plain(body)
        } else {
            let stream = BodyDataStream::new(body).map_err(|e| io::Error::other(e.to_string()));
            let raw = BufReader::new(StreamReader::new(stream));
            Inner::Decoded(match encoding.as_str() {
                "gzip" | "x-gzip" => Box::pin(GzipDecoder::new(raw)),
                "deflate" => Box::pin(ZlibDecoder::new(raw)),
                "br" => Box::pin(BrotliDecoder::new(raw)),
                "zstd" => Box::pin(ZstdDecoder::new(raw)),
                other => return Err(format!("unsupported Content-Encoding {other:?}")),
            })
        };
        Ok(Source { inner, idle })
    }

    /// The next decoded chunk; `None` at the end of the body.
    pub async fn next(&mut self) -> Result<Option<Bytes>, String> {
        let idle = self.idle;
        let stalled = || format!("page body stalled for {}s", idle.as_secs());
        match &mut self.inner {
            Inner::Plain(body) => loop {
                let frame = match tokio::time::timeout(idle, body.frame()).await {
                    Err(_) => return Err(stalled()),
                    Ok(None) => return Ok(None),
                    Ok(Some(Err(e))) => return Err(format!("reading page body: {e}")),
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
                    Ok(Err(e)) => Err(format!("reading page body: {e}")),
                    Ok(Ok(0)) => Ok(None),
                    Ok(Ok(_)) => Ok(Some(buf.freeze())),
                }
            }
        }
    }
}

/// The error for a page whose decoded size passed `limit`.
pub fn too_large(limit: usize) -> String {
    format!("page larger than limits.max_page_bytes ({limit} bytes decoded)")
}

/// Reads and decodes a whole body, refusing more than `limit` decoded bytes.
pub async fn read_decoded(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    idle: Duration,
) -> Result<Vec<u8>, String> {
    let hint = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(64 * 1024);
    let mut source = Source::new(headers, body, idle)?;
    let mut out = Vec::with_capacity(hint.min(limit));
    while let Some(chunk) = source.next().await? {
        if out.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
