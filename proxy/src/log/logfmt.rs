//! The text form of the log: logfmt (`key=value` pairs, one event a line), so the lines an
//! operator greps are also the lines a log shipper parses. One quoting rule for every value:
//! bare when it is a plain token, else in double quotes with `\"`, `\\` and control characters
//! escaped. Every line starts `ts=… level=… target=… msg=…`.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The logfmt event format (`tracing_subscriber::fmt().event_format(Logfmt)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Logfmt;

thread_local! {
    /// Where a `Debug` value is formatted before it is quoted (reused: no allocation per field).
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("ts=")?;
        timestamp(&mut w, time::OffsetDateTime::now_utc())?;
        let level = match *meta.level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(w, " level={level} target=")?;
        value(&mut w, meta.target())?;
        // The message first, then the fields in the order the event names them.
        let mut fields = Fields {
            w: &mut w,
            message: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.message = false;
        event.record(&mut fields);
        fields.result?;
        w.write_char('\n')
    }
}

/// Writes the event's message (`message` pass) or its other fields.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    message: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn wanted(&self, field: &Field) -> bool {
        self.result.is_ok() && (field.name() == "message") == self.message
    }

    fn key(&mut self, field: &Field) -> fmt::Result {
        match field.name() {
            "message" => self.w.write_str(" msg="),
            // `r#type` and the like: the raw-identifier prefix is not part of the key.
            name => write!(self.w, " {}=", name.trim_start_matches("r#")),
        }
    }

    fn bare(&mut self, field: &Field, v: impl fmt::Display) {
        if self.wanted(field) {
            self.result = self.key(field).and_then(|()| write!(self.w, "{v}"));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, v: &str) {
        if self.wanted(field) {
            self.result = self.key(field).and_then(|()| value(self.w, v));
        }
    }

    fn record_debug(&mut self, field: &Field, v: &dyn fmt::Debug) {
        if !self.wanted(field) {
            return;
        }
        self.result = self.key(field).and_then(|()| {
            SCRATCH.with(|s| {
                // A value that logs while it is formatted would find the buffer taken.
                let Ok(mut s) = s.try_borrow_mut() else {
                    return value(self.w, &format!("{v:?}"));
                };
                s.clear();
                write!(s, "{v:?}")?;
                value(self.w, &s)
            })
        });
    }

    fn record_i64(&mut self, field: &Field, v: i64) {
        self.bare(field, v);
    }

    fn record_u64(&mut self, field: &Field, v: u64) {
        self.bare(field, v);
    }

    fn record_bool(&mut self, field: &Field, v: bool) {
        self.bare(field, v);
    }

    fn record_f64(&mut self, field: &Field, v: f64) {
        self.bare(field, v);
    }

    fn record_error(&mut self, field: &Field, v: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{v}"));
    }
}

/// `v` as one logfmt value: bare when it is a plain token, else quoted and escaped.
fn value(w: &mut impl fmt::Write, v: &str) -> fmt::Result {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if plain {
        return w.write_str(v);
    }
    w.write_char('"')?;
    for c in v.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            c if c.is_control() => write!(w, "\\u{{{:x}}}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

/// RFC 3339 in UTC with microseconds (`2026-12-02T11:40:22.123456Z`).
fn timestamp(w: &mut impl fmt::Write, t: time::OffsetDateTime) -> fmt::Result {
    write!(
        w,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(v: &str) -> String {
        let mut s = String::new();
        value(&mut s, v).unwrap();
        s
    }

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quoted("/simple/six/"), "/simple/six/");
        assert_eq!(quoted("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("a b"), "\"a b\"");
        assert_eq!(quoted("k=v"), "\"k=v\"");
        assert_eq!(quoted("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(quoted("C:\\x"), "\"C:\\\\x\"");
        assert_eq!(quoted("é"), "\"é\"");
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let mut s = String::new();
        let t = time::macros::datetime!(2026-12-02 01:02:03.000004567 UTC);
        timestamp(&mut s, t).unwrap();
        assert_eq!(s, "2026-12-02T01:02:03.000004Z");
    }

    /// Every line the format writes reads back as logfmt pairs, with the message first.
    #[test]
    fn events_are_logfmt_lines() {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(Logfmt)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "pipgate::access", path = "/simple/a b/", status = 200u64, duration_ms = 0.125, ok = true, client = %"127.0.0.1:1", "GET {}", "x");
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let line = text.lines().next().unwrap();
        let rest = line.split_once(' ').unwrap().1;
        assert!(line.starts_with("ts=20"), "{line}");
        assert_eq!(
            rest,
            "level=info target=pipgate::access msg=\"GET x\" path=\"/simple/a b/\" status=200 duration_ms=0.125 ok=true client=127.0.0.1:1"
        );
    }

    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
