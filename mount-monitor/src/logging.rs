//! Logs as debrid-mount-monitor (Go `log/slog`) writes them, so that log-based alerts written
//! for it keep matching: JSON lines `{"time":…,"level":"INFO","msg":…, fields…}`, debug and info
//! on stdout, warn and error on stderr. `--log-format text` gives readable lines instead.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

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
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(writer)
        .with_target(false);
    let _ = match settings.log_format.unwrap_or(LogFormat::Json) {
        LogFormat::Json => builder.event_format(SlogJson).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal() && std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// One JSON object per line with slog's keys: `time` (RFC 3339, milliseconds, UTC), `level`
/// (`DEBUG`, `INFO`, `WARN`, `ERROR`), `msg`, then the event's fields in the order given.
struct SlogJson;

impl<S, N> FormatEvent<S, N> for SlogJson
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
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARN",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        writeln!(
            writer,
            r#"{{"time":"{}","level":"{level}","msg":{}{}}}"#,
            humantime::format_rfc3339_millis(std::time::SystemTime::now()),
            json_string(&fields.message),
            fields.rest
        )
    }
}

/// The message, and the other fields already rendered as `,"key":value`.
#[derive(Default)]
struct JsonFields {
    message: String,
    rest: String,
}

impl JsonFields {
    fn push(&mut self, field: &Field, value: &str) {
        let _ = write!(self.rest, ",{}:{value}", json_string(field.name()));
    }
}

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.push(field, &json_string(value));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, &value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, &value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, &value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let number =
            serde_json::Number::from_f64(value).map_or("null".to_owned(), |n| n.to_string());
        self.push(field, &number);
    }
}

fn json_string(text: &str) -> String {
    // Serializing a string cannot fail.
    serde_json::to_string(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Everything logged while `f` runs, as the JSON format writes it.
    fn logged(f: impl FnOnce()) -> String {
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
            .event_format(SlogJson)
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
}
