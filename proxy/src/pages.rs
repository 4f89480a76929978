//! Reading a page body from upstream for rewriting: bounded, and decoded from gzip, deflate,
//! br or zstd with a cap on the decoded size (a decompression bomb ends in 502, not in OOM).

use std::io;
use std::time::Duration;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder};
use futures_util::TryStreamExt;
use http::header::CONTENT_ENCODING;
use http::HeaderMap;
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio_util::io::StreamReader;

/// Reads and decodes a whole body, refusing more than `limit` decoded bytes.
pub async fn read_decoded(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    idle: Duration,
) -> Result<Vec<u8>, String> {
    let encoding = match headers.get(CONTENT_ENCODING) {
        None => "identity".to_owned(),
        Some(v) => v
            .to_str()
            .map_err(|_| "unreadable Content-Encoding".to_owned())?
            .trim()
            .to_ascii_lowercase(),
    };
    if encoding.is_empty() || encoding == "identity" {
        return collect_capped(headers, body, limit, idle).await;
    }
    let stream = BodyDataStream::new(body).map_err(|e| io::Error::other(e.to_string()));
    let raw = BufReader::new(StreamReader::new(stream));
    match encoding.as_str() {
        "gzip" | "x-gzip" => read_capped(GzipDecoder::new(raw), limit, idle).await,
        "deflate" => read_capped(ZlibDecoder::new(raw), limit, idle).await,
        "br" => read_capped(BrotliDecoder::new(raw), limit, idle).await,
        "zstd" => read_capped(ZstdDecoder::new(raw), limit, idle).await,
        other => Err(format!("unsupported Content-Encoding {other:?}")),
    }
}

/// An unencoded body: frames appended straight into one buffer sized from Content-Length.
async fn collect_capped(
    headers: &HeaderMap,
    mut body: Incoming,
    limit: usize,
    idle: Duration,
) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt;
    let hint = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(64 * 1024);
    let mut out = Vec::with_capacity(hint.min(limit));
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(format!("page body stalled for {}s", idle.as_secs())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(format!("reading page body: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(format!(
                    "page larger than limits.max_page_bytes ({limit} bytes decoded)"
                ));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

async fn read_capped<R: AsyncRead + Unpin>(
    reader: R,
    limit: usize,
    idle: Duration,
) -> Result<Vec<u8>, String> {
    let mut reader = reader.take((limit as u64).saturating_add(1));
    let mut out = Vec::with_capacity(256 * 1024);
    loop {
        out.reserve(64 * 1024);
        let n = match tokio::time::timeout(idle, reader.read_buf(&mut out)).await {
            Err(_) => return Err(format!("page body stalled for {}s", idle.as_secs())),
            Ok(Err(e)) => return Err(format!("reading page body: {e}")),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            break;
        }
        if out.len() > limit {
            return Err(format!(
                "page larger than limits.max_page_bytes ({limit} bytes decoded)"
            ));
        }
    }
    Ok(out)
}
