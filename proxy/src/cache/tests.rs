use super::*;
use http_body_util::BodyExt;
use sha2::Digest;

fn meta(len: u64) -> Meta {
    Meta {
        url: "https://files.test/a.whl".into(),
        name: Some("a".into()),
        content_type: None,
        etag: None,
        last_modified: None,
        len,
    }
}

fn body(parts: &[&'static [u8]]) -> crate::body::Body {
    let frames: Vec<Result<_, crate::body::BoxError>> = parts
        .iter()
        .map(|p| Ok(http_body::Frame::data(bytes::Bytes::from_static(p))))
        .collect();
    http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

#[tokio::test]
async fn a_fill_is_stored_only_with_its_key_and_waiters_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open_dir(dir.path(), 1 << 20).unwrap());
    let key = crate::digest::hex(&sha2::Sha256::digest(b"abcdef"));
    let Begin::Fill(fill) = cache.begin(&key, false).await else {
        panic!("the first request fills")
    };
    // A second request for it waits for the fill.
    let waiter = tokio::spawn({
        let (cache, key) = (cache.clone(), key.clone());
        async move { matches!(cache.begin(&key, false).await, Begin::Hit(_)) }
    });
    let out = fill.wrap(body(&[b"abc", b"def"]), meta(6)).collect().await;
    assert_eq!(out.unwrap().to_bytes(), &b"abcdef"[..]);
    assert!(
        waiter.await.unwrap(),
        "the waiter was answered from the stored file"
    );
    assert_eq!(cache.size().0, 1);

    // Other bytes than the key's: served, never stored.
    let other = crate::digest::hex(&sha2::Sha256::digest(b"expected"));
    let Begin::Fill(fill) = cache.begin(&other, false).await else {
        panic!("nothing stored yet")
    };
    let out = fill.wrap(body(&[b"tampered"]), meta(8)).collect().await;
    assert_eq!(out.unwrap().to_bytes(), &b"tampered"[..]);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(cache.peek(&other).is_none());
    // A fill dropped unused (upstream answered 404) releases the next request to fill.
    let Begin::Fill(fill) = cache.begin(&other, false).await else {
        panic!()
    };
    drop(fill);
    assert!(matches!(cache.begin(&other, false).await, Begin::Fill(_)));
}

/// A body fed by the test, frame by frame.
fn fed() -> (
    tokio::sync::mpsc::Sender<Result<http_body::Frame<bytes::Bytes>, crate::body::BoxError>>,
    crate::body::Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let stream = tokio_stream_from(rx);
    (tx, http_body_util::StreamBody::new(stream).boxed())
}

fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

async fn follow(cache: &Arc<Cache>, key: &str) -> Follower {
    match cache.begin(key, true).await {
        Begin::Follow(f) => f,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_follower_reads_the_fill_as_it_arrives_and_its_end_waits_for_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open_dir(dir.path(), 1 << 20).unwrap());
    let data = |s: &'static [u8]| Ok(http_body::Frame::data(bytes::Bytes::from_static(s)));
    for (bytes, stored) in [(b"abcdef", true), (b"abcdeX", false)] {
        let key = crate::digest::hex(&sha2::Sha256::digest(b"abcdef"));
        let Begin::Fill(fill) = cache.begin(&key, true).await else {
            panic!("the first request fills")
        };
        let (tx, upstream) = fed();
        let mut leader = fill.wrap(upstream, meta(6));
        let joining = tokio::spawn({
            let (cache, key) = (cache.clone(), key.clone());
            async move { follow(&cache, &key).await }
        });
        tx.send(data(&bytes[..3])).await.unwrap();
        let first = leader.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), &bytes[..3]);
        let mut follower = joining.await.unwrap().body(0, 6);
        // The follower reads while the leader's download is under way; it holds its latest
        // bytes back until the whole file's digest is its key.
        let follower = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(frame) = follower.frame().await {
                match frame {
                    Ok(f) => got.extend_from_slice(&f.into_data().unwrap()),
                    Err(_) => return (got, false),
                }
            }
            (got, true)
        });
        tx.send(data(&bytes[3..])).await.unwrap();
        drop(tx);
        while leader.frame().await.is_some() {}
        let (rest, ended) = follower.await.unwrap();
        if stored {
            assert_eq!((rest.as_slice(), ended), (&b"abcdef"[..], true));
            assert!(cache.peek(&key).is_some());
        } else {
            // Cut: never the whole of it.
            assert!(rest.len() < 6 && !ended, "{rest:?}");
            assert!(cache.peek(&key).is_none());
            let _ = cache.purge(None);
        }
        let _ = cache.purge(None);
    }
}
