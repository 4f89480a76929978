//! One JSON value at a time out of a page that may have been cut anywhere: serde_json reads it,
//! and this decides whether what it met was the end of the value or only the end of the bytes
//! that have arrived so far.

use serde::de::{DeserializeSeed, IgnoredAny};

/// JSON's four whitespace bytes (RFC 8259, section 2).
pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The value at the start of `input` (no leading whitespace) and the length it took, or `None`
/// when the input may end before the value does. Unless `last` (the input is all the page has
/// left), an error serde_json met at the very end of the input is taken for the cut it may be:
/// serde_json refuses a skipped number `1.` where the next chunk would have made it `1.5`.
///
/// The value is read by `seed`, so a caller can use it where it was read (`Values::parse_with`)
/// instead of moving it out through every layer: a file entry is ~280 bytes, and those moves
/// were the largest copy of a JSON page's rewrite.
pub(super) fn value<'b, S: DeserializeSeed<'b>>(
    input: &'b str,
    last: bool,
    seed: S,
) -> Result<Option<(S::Value, usize)>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(input);
    match seed.deserialize(&mut de) {
        Ok(v) => {
            // A stream started where the value ended says where that is.
            let len = de.into_iter::<IgnoredAny>().byte_offset();
            // A number or literal that touches the end of the input may go on in the next
            // chunk (`12` of `123`); strings, objects and arrays end with their own last byte.
            let delimited = matches!(input.as_bytes().first(), Some(b'"' | b'{' | b'['));
            Ok((delimited || len < input.len()).then_some((v, len)))
        }
        Err(e) if e.is_eof() => Ok(None),
        // serde_json reads left to right and never looks more than one byte past where it
        // reports an error: one reported before the last byte is the same whatever follows.
        Err(e) if !last && error_at(input, &e).is_none_or(|i| i + 1 >= input.len()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where in `input` serde_json reported `e`, if it placed it.
pub(super) fn error_at(input: &str, e: &serde_json::Error) -> Option<usize> {
    (e.line() != 0).then(|| line_start(input.as_bytes(), e.line()) + e.column())
}

/// The offset of line `line` (counted from 1) in `input`.
fn line_start(input: &[u8], line: usize) -> usize {
    match line.checked_sub(2) {
        None => 0,
        Some(n) => memchr::memchr_iter(b'\n', input)
            .nth(n)
            .map_or(input.len(), |i| i + 1),
    }
}
