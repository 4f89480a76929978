//! The log sink: batching, order, and what a drop writes.

use super::*;

/// An output that records each write separately.
#[derive(Clone, Default)]
struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

impl Write for Writes {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().push(b.to_vec());
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Writes {
    fn joined(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().concat()).unwrap()
    }
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn line<W: Write>(sink: &Sink<W>, batch: bool, text: &str) {
    Line {
        shared: &sink.shared,
        batch,
    }
    .write_all(text.as_bytes())
    .unwrap();
}

/// Sends `n` access lines ("line 0" on) and returns what they should add up to.
fn access_lines<W: Write>(sink: &Sink<W>, n: usize) -> String {
    let mut want = String::new();
    for i in 0..n {
        let l = format!("line {i}\n");
        line(sink, true, &l);
        want.push_str(&l);
    }
    want
}

fn wait_for(out: &Writes, want: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while out.joined() != want {
        assert!(std::time::Instant::now() < deadline, "{:?}", out.joined());
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_lone_access_line_is_written_without_waiting_for_more() {
    let out = Writes::default();
    let (sink, _flusher) = Sink::new(out.clone()).unwrap();
    line(&sink, true, "a\n");
    wait_for(&out, "a\n");
}

#[test]
fn a_burst_of_access_lines_takes_few_writes() {
    let out = Writes::default();
    let (sink, _flusher) = Sink::new(out.clone()).unwrap();
    let want = access_lines(&sink, 10_000);
    wait_for(&out, &want);
    // One write per nap while the burst lasts; a write per line would be 10,000.
    assert!(out.count() < 1_000, "{} writes", out.count());
}

#[test]
fn other_lines_are_written_at_once_after_what_is_buffered() {
    let out = Writes::default();
    let (sink, flusher) = Sink::new(out.clone()).unwrap();
    // The flusher writes the first line at once and naps: the rest are still buffered.
    for i in 0..100 {
        line(&sink, true, &format!("access {i}\n"));
    }
    line(&sink, false, "warning\n");
    // Whatever the flusher managed, the warning is written by now and comes last.
    let got = out.joined();
    assert!(got.ends_with("access 99\nwarning\n"), "{got:?}");
    assert_eq!(got.lines().count(), 101);
    drop(flusher);
    assert_eq!(out.joined().lines().count(), 101);
}

#[test]
fn dropping_the_flusher_writes_what_is_left() {
    let out = Writes::default();
    let (sink, flusher) = Sink::new(out.clone()).unwrap();
    let want = access_lines(&sink, 1_000);
    drop(flusher);
    // No waiting: the drop itself wrote the rest.
    assert_eq!(out.joined(), want);
    // After the flusher is gone, lines are written at once.
    line(&sink, true, "late\n");
    assert!(out.joined().ends_with("late\n"));
}

#[test]
fn a_full_buffer_is_written_by_the_line_that_filled_it() {
    let out = Writes::default();
    let (sink, _flusher) = Sink::new(out.clone()).unwrap();
    // One line past CAP: it is written before `write` returns, not a nap later.
    let big = "x".repeat(CAP) + "\n";
    line(&sink, true, &big);
    assert!(out.joined().len() > CAP, "not written at once");
}
