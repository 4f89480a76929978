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
    let Begin::Fill(fill) = cache.begin(&key).await else {
        panic!("the first request fills")
    };
    // A second request for it waits for the fill.
    let waiter = tokio::spawn({
        let (cache, key) = (cache.clone(), key.clone());
        async move { matches!(cache.begin(&key).await, Begin::Hit(_)) }
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
    let Begin::Fill(fill) = cache.begin(&other).await else {
        panic!("nothing stored yet")
    };
    let out = fill.wrap(body(&[b"tampered"]), meta(8)).collect().await;
    assert_eq!(out.unwrap().to_bytes(), &b"tampered"[..]);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(cache.peek(&other).is_none());
    // A fill dropped unused (upstream answered 404) releases the next request to fill.
    let Begin::Fill(fill) = cache.begin(&other).await else {
        panic!()
    };
    drop(fill);
    assert!(matches!(cache.begin(&other).await, Begin::Fill(_)));
}
