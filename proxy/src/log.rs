//! Where the log goes: stderr, with access lines written in batches.
//!
//! One `write` per access line was about half of the access log's cost per keep-alive request
//! (the other half is formatting). Access lines therefore go into a buffer that a flusher
//! thread writes out: the first line after a quiet spell at once, then whatever gathered while
//! it napped, one write per [`NAP`]. A line waits at most about that long; under load the
//! flusher makes ~1,000 writes a second however many requests there are. Every other line
//! (start-up, warnings, errors) is written at once, after anything still buffered, so the log
//! keeps its order. A full buffer ([`CAP`]) is written by the line that filled it, so a stalled
//! stderr stalls the writers as it did before, and memory stays bounded. [`Flusher`] writes what
//! is left when it is dropped; a SIGKILL loses at most the last nap's lines.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

mod logfmt;
pub use logfmt::Logfmt;

/// The longest an access line waits in the buffer while pipgate is busy.
pub const NAP: Duration = Duration::from_millis(1);

/// The buffer's size at which the writer that fills it writes it itself.
pub const CAP: usize = 256 * 1024;

/// The target of the per-request lines that are worth batching.
const ACCESS_TARGET: &str = "pipgate::access";

/// A [`MakeWriter`] for `tracing_subscriber::fmt` over an output `W` (stderr in the binary).
pub struct Sink<W> {
    shared: Arc<Shared<W>>,
}

/// Writes what is buffered and stops the flusher thread when dropped.
pub struct Flusher<W> {
    shared: Arc<Shared<W>>,
    thread: Option<JoinHandle<()>>,
}

struct Shared<W> {
    state: Mutex<State<W>>,
    wake: Condvar,
}

struct State<W> {
    out: W,
    buf: Vec<u8>,
    /// The flusher waits for `wake`: the next line must notify it.
    idle: bool,
    closed: bool,
}

impl<W> State<W>
where
    W: Write,
{
    /// Writes the buffer. A failed write drops the lines, as `tracing`'s own writers do: the
    /// log has nowhere to report its own failure.
    fn drain(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.out.write_all(&self.buf);
            self.buf.clear();
        }
    }
}

impl<W> Sink<W>
where
    W: Write + Send + 'static,
{
    /// A sink over `out` and the flusher thread that writes its buffer.
    pub fn new(out: W) -> io::Result<(Self, Flusher<W>)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                out,
                buf: Vec::with_capacity(64 * 1024),
                idle: false,
                closed: false,
            }),
            wake: Condvar::new(),
        });
        let flusher = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("pipgate-log".into())
            .spawn(move || flusher.run())?;
        Ok((
            Sink {
                shared: Arc::clone(&shared),
            },
            Flusher {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

impl<W> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // A writer that panicked mid-line leaves at worst a torn line; keep logging.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<W> Shared<W>
where
    W: Write,
{
    fn run(&self) {
        let mut state = self.lock();
        loop {
            while state.buf.is_empty() && !state.closed {
                state.idle = true;
                state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            state.drain();
            if state.closed {
                return;
            }
            drop(state);
            std::thread::sleep(NAP);
            state = self.lock();
        }
    }
}

impl<W> Drop for Flusher<W> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One event's writer: `batch` for access lines.
pub struct Line<'a, W> {
    shared: &'a Shared<W>,
    batch: bool,
}

impl<W> Write for Line<'_, W>
where
    W: Write,
{
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if self.batch && !state.closed {
            state.buf.extend_from_slice(line);
            if state.buf.len() >= CAP {
                state.drain();
            } else if state.idle {
                state.idle = false;
                self.shared.wake.notify_one();
            }
        } else {
            state.drain();
            let _ = state.out.write_all(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W> MakeWriter<'a> for Sink<W>
where
    W: Write + 'a,
{
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            shared: &self.shared,
            batch: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        Line {
            shared: &self.shared,
            batch: meta.target() == ACCESS_TARGET,
        }
    }
}

impl<W> std::fmt::Debug for Sink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").finish_non_exhaustive()
    }
}

impl<W> std::fmt::Debug for Flusher<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher").finish_non_exhaustive()
    }
}

impl<W> std::fmt::Debug for Line<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line")
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
