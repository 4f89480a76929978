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
    let stream = BodyDataStream::new(body).map_err(|e| io::Error::other(e.to_string()));
    let raw = BufReader::new(StreamReader::new(stream));
    match encoding.as_str() {
        "" | "identity" => read_capped(raw, limit, idle).await,
        "gzip" | "x-gzip" => read_capped(GzipDecoder::new(raw), limit, idle).await,
        "deflate" => read_capped(ZlibDecoder::new(raw), limit, idle).await,
        "br" => read_capped(BrotliDecoder::new(raw), limit, idle).await,
        "zstd" => read_capped(ZstdDecoder::new(raw), limit, idle).await,
        other => Err(format!("unsupported Content-Encoding {other:?}")),
    }
}

async fn read_capped<R: AsyncRead + Unpin>(
    reader: R,
    limit: usize,
    idle: Duration,
) -> Result<Vec<u8>, String> {
    let mut reader = reader.take(limit as u64 + 1);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(idle, reader.read(&mut chunk)).await {
            Err(_) => return Err(format!("page body stalled for {}s", idle.as_secs())),
            Ok(Err(e)) => return Err(format!("reading page body: {e}")),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
        if out.len() > limit {
            return Err(format!(
                "page larger than limits.max_page_bytes ({limit} bytes decoded)"
            ));
        }
    }
    Ok(out)
}
