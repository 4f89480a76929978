//! Compressing a re-synthesized page for the client (`limits.page_compression`): gzip at
//! level 2 for a client whose `Accept-Encoding` takes it, chosen per client, with the page's
//! ETag and headers made to name the gzipped representation.

use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::write::GzEncoder;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;

use crate::body::{Body, BoxError};
use crate::config::PageCompression;

/// The encoding of a page answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Identity,
    Gzip,
}

/// zlib-rs's level 2: on the 2.2 MB bench page 483 kB (the CDN's level 6: 502 kB) for ~13 ms
/// of deflate; level 1 (its `deflate_quick`) takes ~8 ms but writes 747 kB, 20 ms more at
/// 100 Mbit/s; levels 4 and 6 write no fewer bytes for 5 and 11 ms more (bench/README.md).
const LEVEL: u32 = 2;

/// What goes into a gzipped page's ETag, so that it never names the identity bytes.
const GZIP_TAG: &str = "-gzip";

/// Whether an `Accept-Encoding` takes gzip (RFC 9110 12.5.3: `gzip`, `x-gzip` or `*` with a
/// `q` above 0; `gzip;q=0` refuses it even after a `*`).
pub(crate) fn accepts_gzip(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut star = false;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => return q > 0.0,
            "*" => star = q > 0.0,
            _ => {}
        }
    }
    star
}

/// The encoding this client gets: gzip when it takes it and the setting allows; under
/// `auto`, not for a client on a loopback address (the bytes cost less than deflating them).
pub(crate) fn choose(
    setting: PageCompression,
    accept: Option<&HeaderValue>,
    peer: SocketAddr,
) -> Output {
    let wanted = match setting {
        PageCompression::Identity => false,
        PageCompression::Gzip => true,
        PageCompression::Auto => !peer.ip().to_canonical().is_loopback(),
    };
    if wanted && accepts_gzip(accept) {
        Output::Gzip
    } else {
        Output::Identity
    }
}

/// The ETag of the gzipped representation of the page named `etag` (`"x"` -> `"x-gzip"`,
/// weak stays weak).
pub(crate) fn gzip_etag(etag: &str) -> String {
    match etag.strip_suffix('"') {
        Some(open) => format!("{open}{GZIP_TAG}\""),
        None => format!("{etag}{GZIP_TAG}"),
    }
}

/// The client's `If-None-Match` as the identity page's tags: under gzip output only the tags
/// of gzipped representations count (`"x-gzip"` -> `"x"`); a tag the client holds for the
/// identity bytes must not revalidate the gzipped ones.
pub(crate) fn client_etag(held: Option<HeaderValue>, out: Output) -> Option<HeaderValue> {
    if out == Output::Identity {
        return held;
    }
    let held = held?;
    let tags: Vec<String> = held
        .to_str()
        .ok()?
        .split(',')
        .map(str::trim)
        .filter_map(|t| {
            if t == "*" {
                return Some(t.to_owned());
            }
            let inner = t.strip_suffix('"')?.strip_suffix(GZIP_TAG)?;
            Some(format!("{inner}\""))
        })
        .collect();
    HeaderValue::from_str(&tags.join(", ")).ok()
}

/// Makes a page answer (200 whole or streamed, `HEAD`, or 304) the gzipped representation:
/// `Content-Encoding: gzip`, the gzipped ETag, no `Content-Length` (the gzipped length is known
/// only once written), the body compressed as it streams. `Vary: Accept-Encoding` is on every
/// page answer already.
pub(crate) fn apply(mut resp: Response<Body>, out: Output, head: bool) -> Response<Body> {
    if out == Output::Identity {
        return resp;
    }
    let h = resp.headers_mut();
    if let Some(tag) = h.get(header::ETAG).and_then(|v| v.to_str().ok()) {
        if let Ok(v) = HeaderValue::from_str(&gzip_etag(tag)) {
            h.insert(header::ETAG, v);
        }
    }
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let h = resp.headers_mut();
    h.remove(header::CONTENT_LENGTH);
    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    if head {
        return resp;
    }
    resp.map(|body| {
        Gzip {
            inner: body,
            encoder: Some(GzEncoder::new(Vec::new(), flate2::Compression::new(LEVEL))),
        }
        .boxed()
    })
}

/// A body gzipped frame by frame: each frame's deflate output so far goes out as one frame,
/// the gzip trailer after the last. An error of the inner body ends it with that error (a cut
/// page stays cut: no trailer is written).
struct Gzip {
    inner: Body,
    encoder: Option<GzEncoder<Vec<u8>>>,
}

impl http_body::Body for Gzip {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry nothing a page needs.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if let Err(e) = encoder.write_all(&data) {
                        this.encoder = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    let out = std::mem::take(encoder.get_mut());
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(None) => {
                    let Some(encoder) = this.encoder.take() else {
                        return Poll::Ready(None);
                    };
                    return Poll::Ready(Some(match encoder.finish() {
                        Ok(out) => Ok(Frame::data(Bytes::from(out))),
                        Err(e) => Err(e.into()),
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn accept_encoding_as_rfc_9110_reads_it() {
        assert!(accepts_gzip(Some(&v("gzip, deflate, br"))));
        assert!(accepts_gzip(Some(&v("GZIP"))));
        assert!(accepts_gzip(Some(&v("br;q=1.0, gzip;q=0.8, *;q=0.1"))));
        assert!(accepts_gzip(Some(&v("*"))));
        assert!(!accepts_gzip(Some(&v("gzip;q=0"))));
        assert!(!accepts_gzip(Some(&v("*, gzip;q=0"))));
        assert!(!accepts_gzip(Some(&v("identity"))));
        assert!(!accepts_gzip(Some(&v("br, zstd"))));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn auto_spares_loopback_clients_and_the_setting_forces_either() {
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let lo6: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let far: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let gz = v("gzip");
        let id = v("identity");
        use PageCompression::*;
        assert_eq!(choose(Auto, Some(&gz), lo), Output::Identity);
        assert_eq!(choose(Auto, Some(&gz), lo6), Output::Identity);
        assert_eq!(choose(Auto, Some(&gz), far), Output::Gzip);
        assert_eq!(choose(Auto, Some(&id), far), Output::Identity);
        assert_eq!(choose(Gzip, Some(&gz), lo), Output::Gzip);
        assert_eq!(choose(Gzip, Some(&id), lo), Output::Identity);
        assert_eq!(choose(Gzip, None, far), Output::Identity);
        assert_eq!(choose(Identity, Some(&gz), far), Output::Identity);
    }

    #[test]
    fn gzipped_etags_are_their_own() {
        assert_eq!(gzip_etag("\"abc\""), "\"abc-gzip\"");
        assert_eq!(gzip_etag("W/\"abc\""), "W/\"abc-gzip\"");
        let held = Some(v("\"abc-gzip\", \"def\""));
        assert_eq!(
            client_etag(held.clone(), Output::Gzip).unwrap(),
            v("\"abc\"")
        );
        assert_eq!(
            client_etag(held.clone(), Output::Identity),
            held,
            "identity output compares the tags as they are"
        );
        assert_eq!(client_etag(Some(v("*")), Output::Gzip).unwrap(), v("*"));
        assert_eq!(client_etag(None, Output::Gzip), None);
    }

    #[tokio::test]
    async fn a_gzipped_page_inflates_to_the_page_and_a_cut_stays_cut() {
        use futures_util::stream;
        use http_body_util::StreamBody;
        use std::io::Read as _;
        let page: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("<a href=\"/x/{i}\">x-{i}</a><br />\n").into_bytes())
            .collect();
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = page
            .chunks(16 * 1024)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let mut resp = Response::new(StreamBody::new(stream::iter(frames)).boxed());
        resp.headers_mut()
            .insert(header::ETAG, HeaderValue::from_static("\"e\""));
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(page.len()));
        let resp = apply(resp, Output::Gzip, false);
        assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(resp.headers()[header::ETAG], "\"e-gzip\"");
        assert!(resp.headers().get(header::CONTENT_LENGTH).is_none());
        let gz = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(gz.len() < page.len() / 4, "{} bytes", gz.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, page);

        let cut: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"<a>"))),
            Err("upstream cut".into()),
        ];
        let resp = apply(
            Response::new(StreamBody::new(stream::iter(cut)).boxed()),
            Output::Gzip,
            false,
        );
        assert!(resp.into_body().collect().await.is_err());
    }
}
