use super::*;

/// Python 3.11's ssl module connecting with server_hostname="pypi.org" (what pip sends).
const HELLO: &[u8] = include_bytes!("../../../testdata/client_hello.bin");
/// The same client connecting to an IP address: no server_name extension.
const HELLO_NO_SNI: &[u8] = include_bytes!("../../../testdata/client_hello_no_sni.bin");

fn record(payload: &[u8]) -> Vec<u8> {
    let mut r = vec![0x16, 0x03, 0x01];
    r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    r.extend_from_slice(payload);
    r
}

#[test]
fn every_prefix_needs_more_then_the_whole_hello_parses() {
    for i in 0..HELLO.len() {
        assert_eq!(parse(&HELLO[..i]), Ok(None), "prefix of {i} bytes");
    }
    let hello = parse(HELLO).unwrap().unwrap();
    assert_eq!(hello.sni.as_deref(), Some("pypi.org"));
    assert_eq!(hello.len, HELLO.len());
}

#[test]
fn no_sni_every_prefix_then_none() {
    for i in 0..HELLO_NO_SNI.len() {
        assert_eq!(parse(&HELLO_NO_SNI[..i]), Ok(None), "prefix of {i} bytes");
    }
    let hello = parse(HELLO_NO_SNI).unwrap().unwrap();
    assert_eq!(hello.sni, None);
    assert_eq!(hello.len, HELLO_NO_SNI.len());
}

#[test]
fn bytes_after_the_hello_are_not_counted() {
    let mut buf = HELLO.to_vec();
    buf.extend_from_slice(b"\x17\x03\x03\x00\x05early");
    let hello = parse(&buf).unwrap().unwrap();
    assert_eq!(hello.len, HELLO.len());
}

#[test]
fn a_hello_split_over_two_records_at_every_point() {
    let payload = &HELLO[5..];
    for cut in 1..payload.len() {
        let mut buf = record(&payload[..cut]);
        buf.extend_from_slice(&record(&payload[cut..]));
        for i in 0..buf.len() {
            assert_eq!(parse(&buf[..i]), Ok(None), "cut {cut}, prefix {i}");
        }
        let hello = parse(&buf).unwrap().unwrap();
        assert_eq!(hello.sni.as_deref(), Some("pypi.org"), "cut {cut}");
        assert_eq!(hello.len, buf.len());
    }
}

#[test]
fn plain_http_is_not_tls_from_the_first_byte() {
    assert_eq!(parse(b"G"), Err(HelloError::NotTls));
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: pypi.org\r\n\r\n"),
        Err(HelloError::NotTls)
    );
    assert_eq!(parse(b""), Ok(None));
}

#[test]
fn bad_records_are_refused() {
    assert!(matches!(parse(b"\x16\x02"), Err(HelloError::Malformed(_))));
    assert!(matches!(
        parse(b"\x16\x03\x01\x00\x00"),
        Err(HelloError::Malformed(_))
    ));
    assert!(matches!(
        parse(b"\x16\x03\x01\x48\x01"),
        Err(HelloError::Malformed(_))
    ));
    // A ServerHello (type 2) where a ClientHello belongs.
    let mut server_hello = HELLO.to_vec();
    server_hello[5] = 0x02;
    assert!(matches!(
        parse(&server_hello),
        Err(HelloError::Malformed(_))
    ));
    // A second record that is not a handshake.
    let payload = &HELLO[5..];
    let mut buf = record(&payload[..10]);
    buf.extend_from_slice(b"\x17\x03\x03\x00\x01x");
    assert!(matches!(parse(&buf), Err(HelloError::Malformed(_))));
    assert!(matches!(
        parse(&buf[..record(&payload[..10]).len() + 1]),
        Err(HelloError::Malformed(_))
    ));
}

#[test]
fn a_huge_declared_hello_is_refused_before_buffering_it() {
    let buf = [0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00];
    assert_eq!(parse(&buf), Err(HelloError::TooLarge));
}

/// Finds the host_name bytes inside the fixture so tests can rewrite them.
fn sni_offset() -> usize {
    HELLO.windows(8).position(|w| w == b"pypi.org").unwrap()
}

#[test]
fn host_names_are_lower_cased_and_checked() {
    let at = sni_offset();
    let mut upper = HELLO.to_vec();
    upper[at..at + 8].copy_from_slice(b"PyPI.ORG");
    assert_eq!(
        parse(&upper).unwrap().unwrap().sni.as_deref(),
        Some("pypi.org")
    );
    let mut dotted = HELLO.to_vec();
    dotted[at..at + 8].copy_from_slice(b"pypi.or.");
    assert_eq!(
        parse(&dotted).unwrap().unwrap().sni.as_deref(),
        Some("pypi.or")
    );
    for bad in [b"pypi\0org", b"pypi org", b"pypi/org", b"pypi.or\xc3"] {
        let mut buf = HELLO.to_vec();
        buf[at..at + 8].copy_from_slice(bad);
        assert!(
            matches!(parse(&buf), Err(HelloError::Malformed(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn a_repeated_server_name_extension_is_refused() {
    // Rebuild the hello with the server_name extension appearing twice.
    let at = sni_offset();
    // The extension starts 9 bytes before the name: type(2) len(2) list_len(2) kind(1) len(2).
    let ext_start = at - 9;
    let ext = &HELLO[ext_start..at + 8];
    assert_eq!(&ext[..2], &[0, 0]);
    let mut body = HELLO[9..].to_vec();
    // Offsets inside the body (after the 5-byte record and 4-byte handshake headers).
    let ext_in_body = ext_start - 9;
    body.splice(ext_in_body..ext_in_body, ext.iter().copied());
    // Patch the extensions length: find it by walking the fixed fields.
    let sid = usize::from(body[34]);
    let cs_at = 35 + sid;
    let cs = usize::from(u16::from_be_bytes([body[cs_at], body[cs_at + 1]]));
    let cm_at = cs_at + 2 + cs;
    let cm = usize::from(body[cm_at]);
    let ext_len_at = cm_at + 1 + cm;
    let old = u16::from_be_bytes([body[ext_len_at], body[ext_len_at + 1]]);
    let new = old + ext.len() as u16;
    body[ext_len_at..ext_len_at + 2].copy_from_slice(&new.to_be_bytes());
    let mut hs = vec![0x01, 0x00];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    assert_eq!(
        parse(&record(&hs)),
        Err(HelloError::Malformed("server_name extension repeated"))
    );
}

#[test]
fn no_single_byte_change_panics() {
    for i in 0..HELLO.len() {
        for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mut buf = HELLO.to_vec();
            buf[i] = v;
            let _ = parse(&buf);
            for cut in [i, i + 1] {
                let _ = parse(&buf[..cut.min(buf.len())]);
            }
        }
    }
}

#[test]
fn the_fuzz_property_holds_on_the_captured_hellos() {
    for hello in [HELLO, HELLO_NO_SNI] {
        crate::fuzzing::client_hello_prefixes(hello).unwrap();
        let mut more = hello.to_vec();
        more.extend_from_slice(b"\x17\x03\x03\x00\x05early");
        crate::fuzzing::client_hello_prefixes(&more).unwrap();
    }
    crate::fuzzing::client_hello_prefixes(b"GET / HTTP/1.1\r\n\r\n").unwrap();
}
