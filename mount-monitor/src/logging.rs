//! Logs as debrid-mount-monitor (Go `log/slog`) writes them, so that log-based alerts written
//! for it keep matching: JSON lines `{"time":…,"level":"INFO","msg":…, fields…}`, debug and info
//! on stdout, warn and error on stderr. `--log-format text` is slog's TextHandler: logfmt
//! (`time=… level=INFO msg="mount state changed" path=/mnt/movies`), which log shippers parse.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, LogLevel, Settings};

pub fn init(settings: &Settings) {
    let level = match settings.log_level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    // Warnings and errors to stderr, the rest to stdout, as slog's level-routing handler there.
    let writer = std::io::stderr
        .with_max_level(Level::WARN)
        .or_else(std::io::stdout);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(writer)
        .event_format(Slog(settings.log_format.unwrap_or(LogFormat::Json)))
        .try_init();
}

/// One line per event in slog's layout: `time` (RFC 3339, milliseconds, UTC), `level`
/// (`DEBUG`, `INFO`, `WARN`, `ERROR`), `msg`, then the event's fields in the order given; as
/// slog's JSONHandler writes it, or its TextHandler (logfmt).
struct Slog(LogFormat);

impl<S, N> FormatEvent<S, N> for Slog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARN",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let mut line = String::with_capacity(128);
        match self.0 {
            LogFormat::Json => {
                let _ = write!(
                    line,
                    r#"{{"time":"{time}","level":"{level}","msg":{}"#,
                    json_string(&fields.message)
                );
                for (key, value) in &fields.rest {
                    let rendered = match value {
                        Value::Text(text) => json_string(text),
                        Value::Literal(literal) => literal.clone(),
                    };
                    let _ = write!(line, ",{}:{rendered}", json_string(key));
                }
                line.push('}');
            }
            LogFormat::Text => {
                let _ = write!(
                    line,
                    "time={time} level={level} msg={}",
                    logfmt_value(&fields.message)
                );
                for (key, value) in &fields.rest {
                    let rendered = match value {
                        Value::Text(text) => logfmt_value(text),
                        Value::Literal(literal) => literal.clone(),
                    };
                    let _ = write!(line, " {}={rendered}", logfmt_value(key));
                }
            }
        }
        writeln!(writer, "{line}")
    }
}

/// A field's value: a string, or a number or bool written as it is in both formats.
enum Value {
    Text(String),
    Literal(String),
}

/// The message, and the other fields in the order given.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.rest
                .push((field.name(), Value::Text(value.to_owned())));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.literal(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.literal(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.literal(field, value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let number =
            serde_json::Number::from_f64(value).map_or("null".to_owned(), |n| n.to_string());
        self.literal(field, number);
    }
}

impl Fields {
    /// A number or bool, written as it is in both formats.
    fn literal(&mut self, field: &Field, value: impl ToString) {
        self.rest
            .push((field.name(), Value::Literal(value.to_string())));
    }
}

fn json_string(text: &str) -> String {
    // Serializing a string cannot fail.
    serde_json::to_string(text).unwrap_or_default()
}

/// A string as slog's TextHandler writes it: as it is, or Go-quoted (`strconv.Quote`) when it
/// is empty or holds a space, `=`, `"`, a control character or a character that does not print
/// (slog's `needsQuoting`), so that logfmt parsers read every value back.
fn logfmt_value(text: &str) -> String {
    let needs_quoting = text.is_empty()
        || text.chars().any(|c| {
            c == ' '
                || c == '='
                || c == '"'
                || c.is_control()
                || c.is_whitespace()
                || (!c.is_ascii() && !is_printable(c))
        });
    if !needs_quoting {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\u{b}' => quoted.push_str("\\v"),
            c if c.is_ascii_control() => {
                let _ = write!(quoted, "\\x{:02x}", c as u32);
            }
            c if !c.is_ascii() && !is_printable(c) => {
                if (c as u32) < 0x10000 {
                    let _ = write!(quoted, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(quoted, "\\U{:08x}", c as u32);
                }
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Go's `unicode.IsPrint` for non-ASCII characters, as far as Rust can tell: not a control
/// character and not a space other than U+0020 (quoted as `\u00a0`, as Go does).
fn is_printable(c: char) -> bool {
    !c.is_control()
        && !c.is_whitespace()
        && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Everything logged while `f` runs, as the JSON format writes it.
    fn logged(f: impl FnOnce()) -> String {
        logged_as(LogFormat::Json, f)
    }

    fn logged_as(format: LogFormat, f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(data);
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(LevelFilter::DEBUG)
            .with_writer(move || sink.clone())
            .event_format(Slog(format))
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn lines_have_slogs_keys_in_slogs_order() {
        let out = logged(|| {
            tracing::warn!(
                path = "/mnt/a \"b\"",
                count = 3,
                ok = false,
                "health check failed"
            );
            tracing::info!(listen = %"[::]:8080", "started {}", 1);
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].starts_with(r#"{"time":""#), "{out}");
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["level"], "WARN");
        assert_eq!(first["msg"], "health check failed");
        assert_eq!(first["path"], "/mnt/a \"b\"");
        assert_eq!(first["count"], 3);
        assert_eq!(first["ok"], false);
        let time = first["time"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
        let keys: Vec<&str> = lines[0]
            .split(",\"")
            .map(|part| part.trim_start_matches("{\"").split('"').next().unwrap())
            .collect();
        assert_eq!(keys, ["time", "level", "msg", "path", "count", "ok"]);
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["level"], "INFO");
        assert_eq!(second["msg"], "started 1");
        assert_eq!(second["listen"], "[::]:8080");
    }

    /// slog's TextHandler: `time=… level=… msg=…` then `key=value`, quoted as Go quotes.
    #[test]
    fn text_lines_are_slogs_logfmt() {
        let out = logged_as(LogFormat::Text, || {
            tracing::warn!(
                path = "/mnt/movies",
                success = false,
                duration = "50.275µs",
                name = "",
                error = "open /mnt/a \"b\": no such file\nor\tdirectory",
                eq = "a=b",
                back = "C:\\x",
                count = 3,
                "health check failed"
            );
            tracing::info!("shutdown complete");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let (time, rest) = lines[0]
            .strip_prefix("time=")
            .and_then(|l| l.split_once(' '))
            .unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
        assert!(
            time.ends_with('Z') && time.len() == 24,
            "milliseconds, UTC: {time}"
        );
        assert_eq!(
            rest,
            r#"level=WARN msg="health check failed" path=/mnt/movies success=false duration=50.275µs name="" error="open /mnt/a \"b\": no such file\nor\tdirectory" eq="a=b" back=C:\x count=3"#
        );
        assert!(
            lines[1].ends_with(r#" level=INFO msg="shutdown complete""#),
            "{out}"
        );
    }

    #[test]
    fn values_are_quoted_as_go_quotes_them() {
        assert_eq!(logfmt_value("plain"), "plain");
        assert_eq!(logfmt_value("[::]:8080"), "[::]:8080");
        assert_eq!(logfmt_value(""), r#""""#);
        assert_eq!(logfmt_value("a b"), r#""a b""#);
        assert_eq!(logfmt_value("\u{1}"), r#""\x01""#);
        assert_eq!(logfmt_value("a\u{a0}b"), r#""a\u00a0b""#);
        assert_eq!(logfmt_value("日本"), "日本");
    }
}
