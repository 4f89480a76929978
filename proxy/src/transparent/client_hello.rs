//! Just enough of a TLS ClientHello to read its SNI before deciding what to do with the bytes.
//!
//! Transparent mode must decide between interception (rustls takes over) and a blind splice to
//! the original destination, and the splice needs the exact bytes replayed. So the hello is read
//! into our own buffer and parsed here, without consuming anything the next stage needs.

/// Largest handshake message accepted: real hellos are under 2 KiB (with post-quantum key
/// shares), so anything near this is an attempt to make us buffer.
pub(crate) const MAX_HELLO: usize = 16 * 1024;

/// Largest TLS record payload allowed by RFC 8446 (2^14) for plaintext records.
const MAX_RECORD: usize = 16 * 1024;

const CONTENT_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const EXT_SERVER_NAME: u16 = 0x0000;
const NAME_TYPE_HOST: u8 = 0x00;

/// What the hello says, and how many bytes of the stream it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientHello {
    /// The SNI host name, lower-cased and without a trailing dot; None when absent.
    pub sni: Option<String>,
    /// Bytes of the records that carried the hello.
    pub len: usize,
}

/// Why the first bytes are not a ClientHello we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum HelloError {
    /// The stream does not start with a TLS handshake record (plain HTTP, say).
    #[error("not a TLS handshake")]
    NotTls,
    /// A record or the hello is cut short or inconsistent inside its own length.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    /// The hello is larger than [`MAX_HELLO`].
    #[error("ClientHello larger than {MAX_HELLO} bytes")]
    TooLarge,
}

/// Parses the hello at the start of `buf`: `Ok(None)` while more bytes are needed.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<ClientHello>, HelloError> {
    // Reject early on the first byte so plain HTTP is told apart without waiting for 5 bytes.
    match buf.first() {
        None => return Ok(None),
        Some(&CONTENT_HANDSHAKE) => {}
        Some(_) => return Err(HelloError::NotTls),
    }
    // A hello may span records; the handshake layer is their concatenated payloads.
    let mut handshake: Vec<u8> = Vec::new();
    let mut pos = 0;
    loop {
        let Some(header) = buf.get(pos..pos + 5) else {
            return check_prefix(&buf[pos..]).map(|()| None);
        };
        if header[0] != CONTENT_HANDSHAKE {
            return Err(HelloError::Malformed(
                "hello interrupted by a non-handshake record",
            ));
        }
        if header[1] != 3 {
            return Err(HelloError::Malformed("record version is not 3.x"));
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 {
            // RFC 8446 5.1: zero-length handshake fragments are forbidden (and would let a peer
            // make us loop over empty records).
            return Err(HelloError::Malformed("empty handshake record"));
        }
        if len > MAX_RECORD {
            return Err(HelloError::Malformed("record longer than 2^14"));
        }
        let Some(fragment) = buf.get(pos + 5..pos + 5 + len) else {
            return Ok(None);
        };
        handshake.extend_from_slice(fragment);
        pos += 5 + len;
        if handshake.len() < 4 {
            continue;
        }
        if handshake[0] != HANDSHAKE_CLIENT_HELLO {
            return Err(HelloError::Malformed(
                "first handshake message is not a ClientHello",
            ));
        }
        let body_len = usize::from(handshake[1]) << 16
            | usize::from(handshake[2]) << 8
            | usize::from(handshake[3]);
        if body_len > MAX_HELLO {
            return Err(HelloError::TooLarge);
        }
        if let Some(body) = handshake.get(4..4 + body_len) {
            let sni = server_name(body)?;
            return Ok(Some(ClientHello { sni, len: pos }));
        }
    }
}

/// The bytes of a record header seen so far must already look like one.
fn check_prefix(partial: &[u8]) -> Result<(), HelloError> {
    if partial.first().is_some_and(|&b| b != CONTENT_HANDSHAKE) {
        return Err(HelloError::Malformed(
            "hello interrupted by a non-handshake record",
        ));
    }
    if partial.get(1).is_some_and(|&b| b != 3) {
        return Err(HelloError::Malformed("record version is not 3.x"));
    }
    Ok(())
}

/// Walks a complete ClientHello body to the server_name extension.
fn server_name(body: &[u8]) -> Result<Option<String>, HelloError> {
    let mut r = Reader(body);
    r.take(2, "legacy_version")?;
    r.take(32, "random")?;
    let n = r.u8("session_id")?;
    r.take(usize::from(n), "session_id")?;
    let n = r.u16("cipher_suites")?;
    r.take(usize::from(n), "cipher_suites")?;
    let n = r.u8("compression_methods")?;
    r.take(usize::from(n), "compression_methods")?;
    if r.0.is_empty() {
        // TLS 1.0-era hellos may end here: no extensions, so no SNI.
        return Ok(None);
    }
    let n = r.u16("extensions")?;
    let mut exts = Reader(r.take(usize::from(n), "extensions")?);
    let mut sni = None;
    while !exts.0.is_empty() {
        let kind = exts.u16("extension type")?;
        let n = exts.u16("extension length")?;
        let data = exts.take(usize::from(n), "extension data")?;
        if kind != EXT_SERVER_NAME {
            continue;
        }
        if sni.is_some() {
            // rustls refuses duplicated extensions; so do we, so both read the same name.
            return Err(HelloError::Malformed("server_name extension repeated"));
        }
        sni = Some(host_name(data)?);
    }
    Ok(sni.flatten())
}

/// The host_name entry of a server_name extension (RFC 6066 3).
fn host_name(data: &[u8]) -> Result<Option<String>, HelloError> {
    let mut r = Reader(data);
    let n = r.u16("server_name_list")?;
    let mut list = Reader(r.take(usize::from(n), "server_name_list")?);
    let mut found = None;
    while !list.0.is_empty() {
        let kind = list.u8("name_type")?;
        let n = list.u16("host_name")?;
        let name = list.take(usize::from(n), "host_name")?;
        if kind != NAME_TYPE_HOST {
            continue;
        }
        if found.is_some() {
            return Err(HelloError::Malformed("more than one host_name"));
        }
        found = Some(normalize(name)?);
    }
    Ok(found)
}

/// Lower-cases and checks a DNS name: letters, digits, `-`, `_` and dots only, so nothing
/// unexpected reaches log lines or policy lookups.
fn normalize(name: &[u8]) -> Result<String, HelloError> {
    let ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if name.is_empty() || !name.iter().all(ok) {
        return Err(HelloError::Malformed("host_name is not a DNS name"));
    }
    let s: String = name
        .iter()
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect();
    let s = s.trim_end_matches('.').to_owned();
    if s.is_empty() {
        return Err(HelloError::Malformed("host_name is not a DNS name"));
    }
    Ok(s)
}

/// A cursor over a complete structure: running out of bytes is malformed, not "need more".
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if self.0.len() < n {
            return Err(HelloError::Malformed(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests;
