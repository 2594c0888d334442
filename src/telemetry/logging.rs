//! Structured logging setup: a tracing subscriber in text or JSON, filtered by level.
//! Text lines escape every control character in messages and fields, so a request
//! field (a model name, a header, an upstream's error text) can neither start a forged
//! line nor drive the reader's terminal; JSON lines are escaped by JSON itself.

use crate::config::LogFormat;
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tracing::field::Field;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;

/// Installs the global subscriber. `AIRLOCK_LOG` overrides the configured filter.
/// Logs go to stderr so stdout stays free for what a command prints for people.
pub fn init(level: &str, format: LogFormat) {
    let filter = std::env::var("AIRLOCK_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in a journal or a file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // `try_init` fails only when a subscriber is already installed (tests, demo reuse).
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(escaped_field).delimited(" "))
            .try_init(),
    };
}

/// One field of a text line, `name=value` (the message bare), control characters
/// escaped.
fn escaped_field(writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let mut out = EscapeControls(writer);
    match field.name() {
        "message" => write!(out, "{value:?}"),
        name => write!(out, "{name}={value:?}"),
    }
}

/// A writer that spells out control characters (`\n`, `\r`, `\t`, `\u{1b}`, …).
struct EscapeControls<'w, W>(&'w mut W);

impl<W: fmt::Write> fmt::Write for EscapeControls<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let mut chars = rest[at..].chars();
            let control = chars.next().unwrap_or_default();
            match control {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

/// At most one log line per interval, counting the lines it held back: for events that
/// an attacker can repeat at will (failed accepts, refused connections).
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written at `now`.
    pub fn allow(&mut self, now: impl Into<Instant>) -> Option<u64> {
        let now = now.into();
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_lines_escape_control_characters_everywhere() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_target(false)
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(escaped_field).delimited(" "))
            .finish();
        let forged = "gpt\nINFO admin login succeeded user=root\r\u{1b}[2J\u{9b}";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", path = %forged);
            let _entered = span.enter();
            tracing::warn!(model = forged, detail = %forged, "no model `{forged}`");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        assert!(
            !text[..text.len() - 1].contains(char::is_control),
            "{text:?}"
        );
        assert!(text.contains("no model `gpt\\nINFO admin login"), "{text}");
        assert!(text.contains("detail=gpt\\nINFO"), "{text}");
        assert!(text.contains("\\u{1b}[2J\\u{9b}"), "{text}");
    }

    #[test]
    fn a_throttle_writes_one_line_per_interval_and_counts_the_rest() {
        let mut throttle = LogThrottle::new(Duration::from_secs(5));
        let start = Instant::now();
        assert_eq!(throttle.allow(start), Some(0));
        for ms in [1, 100, 4_999] {
            assert_eq!(throttle.allow(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(throttle.allow(start + Duration::from_secs(5)), Some(3));
        assert_eq!(throttle.allow(start + Duration::from_secs(6)), None);
        assert_eq!(throttle.allow(start + Duration::from_secs(11)), Some(1));
    }
}
