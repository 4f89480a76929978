//! HTML that arrives in chunks, handed to a scanner a construct at a time: only a construct a
//! chunk cut (or the bytes of a cut UTF-8 sequence) is held between chunks. Project pages and
//! root listings are both rewritten through it, so a whole page is the one-chunk case of each.

use super::scan::Part;
use crate::RewriteError;

/// What reads the scanned text: it tokenizes `text` (the tokenizer is in the data state at its
/// start), appends what it completes to `out`, and says how far it got.
pub(crate) trait Scan {
    fn scan(&mut self, text: &str, out: &mut Vec<u8>) -> Result<Part, RewriteError>;
}

const BOM: &[u8] = b"\xef\xbb\xbf";

/// How much of a chunk is first tried for completing a construct the last chunk cut.
const COMPLETE: usize = 4 * 1024;

/// The input side of a chunked HTML rewrite; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    /// Input not consumed yet: a construct the chunk cut, or the bytes of a cut UTF-8 sequence.
    pending: Vec<u8>,
    /// `pending` is scanned again only once it has grown to this length, so a construct cut
    /// many times over (a huge comment) costs O(n) in all, not O(n²).
    rescan_at: usize,
    /// Bytes fed so far.
    fed: usize,
    /// Whether the start of the body (and a byte-order mark there) has been dealt with.
    started: bool,
    /// The fast scanner met markup it does not model: everything from `pending` on goes to
    /// the full tokenizer at the end (the tokenizer was in the data state there).
    reference: bool,
    /// How many times input was scanned (tests check the rescan rule with it).
    #[cfg(test)]
    pub(crate) scans: usize,
}

/// What is left when the page ends.
#[derive(Debug)]
pub(crate) struct Rest {
    /// The unscanned end of the page.
    pub text: String,
    /// Whether the fast scanner gave up before it (it goes to html5gum).
    pub reference: bool,
}

impl Chunks {
    /// Takes the next bytes of the page and scans what they complete with `s`.
    pub(crate) fn feed<S: Scan>(
        &mut self,
        chunk: &[u8],
        s: &mut S,
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        self.fed = self.fed.saturating_add(chunk.len());
        if self.fed > super::html::MAX_PAGE {
            return Err(RewriteError::TooLarge);
        }
        let mut chunk = chunk;
        if !self.pending.is_empty() && self.started && !self.reference {
            chunk = self.complete(chunk, s, out)?;
        }
        let mut buf = std::mem::take(&mut self.pending);
        let owned = !buf.is_empty() || !self.started;
        if owned {
            buf.extend_from_slice(chunk);
        }
        let input: &[u8] = if owned { &buf } else { chunk };
        let mut skip = 0;
        if !self.started {
            if input.len() < BOM.len() && BOM.starts_with(input) {
                // Maybe the start of a byte-order mark: wait for more.
                self.pending = buf;
                return Ok(());
            }
            self.started = true;
            if input.starts_with(BOM) {
                skip = BOM.len();
            }
        }
        let consumed = skip + self.scan(&input[skip..], s, out)?;
        if owned {
            buf.drain(..consumed);
        } else {
            buf.extend_from_slice(&chunk[consumed..]);
        }
        self.pending = buf;
        Ok(())
    }

    /// Completes the held construct from the front of `chunk`, copying only that much (not the
    /// whole chunk) behind it, and returns the part of `chunk` still to be scanned. When the
    /// front does not complete it, what it scanned stays held and the rest of `chunk` follows.
    fn complete<'c, S: Scan>(
        &mut self,
        chunk: &'c [u8],
        s: &mut S,
        out: &mut Vec<u8>,
    ) -> Result<&'c [u8], RewriteError> {
        let held = self.pending.len();
        let take = chunk.len().min(held.max(COMPLETE));
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(&chunk[..take]);
        let consumed = self.scan(&buf, s, out)?;
        if consumed >= held && !self.reference {
            // The tokenizer is in the data state at `consumed`, which lies in `chunk`: the
            // bytes after it are scanned where they are.
            buf.clear();
            self.pending = buf;
            self.rescan_at = 0;
            return Ok(&chunk[consumed - held..]);
        }
        buf.drain(..consumed);
        self.pending = buf;
        Ok(&chunk[take..])
    }

    /// Scans what has arrived (unless waiting for more), returning how much it consumed.
    fn scan<S: Scan>(
        &mut self,
        input: &[u8],
        s: &mut S,
        out: &mut Vec<u8>,
    ) -> Result<usize, RewriteError> {
        if self.reference || input.len() < self.rescan_at {
            return Ok(0);
        }
        #[cfg(test)]
        {
            self.scans += 1;
        }
        let text = utf8_prefix(input)?;
        Ok(match s.scan(text, out)? {
            Part::Consumed(n) => {
                self.rescan_at = 2 * (input.len() - n);
                n
            }
            Part::Bailed(n) => {
                self.reference = true;
                n
            }
        })
    }

    /// The page has ended: what is left of it.
    pub(crate) fn finish(self) -> Result<Rest, RewriteError> {
        // Unstarted, `pending` holds at most the first bytes of a byte-order mark, which are
        // not UTF-8 on their own.
        let text = String::from_utf8(self.pending).map_err(|_| RewriteError::NotUtf8)?;
        Ok(Rest {
            text,
            reference: self.reference,
        })
    }
}

/// The longest valid UTF-8 prefix of `b`, allowing only a cut sequence at its end.
fn utf8_prefix(b: &[u8]) -> Result<&str, RewriteError> {
    match std::str::from_utf8(b) {
        Ok(s) => Ok(s),
        Err(e) if e.error_len().is_none() => {
            // A sequence cut by the chunk boundary: its bytes stay pending.
            std::str::from_utf8(&b[..e.valid_up_to()]).map_err(|_| RewriteError::NotUtf8)
        }
        Err(_) => Err(RewriteError::NotUtf8),
    }
}
