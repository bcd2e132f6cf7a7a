//! Logging: slog to stderr through an async drain, human (`term`) or JSON.
//!
//! The root logger carries `version`; components add fixed snake_case keys
//! (`runner`, `job_id`, `app`, `phase`, …). Secrets never reach a log line:
//! they are `Secret` values, which serialise as a mask. Text a job chooses
//! (variable, image and flavor names, PAAS and coordinator error messages
//! that may echo them) goes through [`paas_actors::untrusted::untrusted`]:
//! its control characters are escaped, so it can neither forge a log line
//! nor drive the operator's terminal, in either format.

use slog::{o, Drain, Level, Logger};

/// Output format of the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (uncoloured when stderr is not a terminal).
    Term,
    /// One JSON object per line.
    Json,
}

/// Why the logging options were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoggingError {
    /// Unknown `--logging-level` value.
    #[error(
        "unknown logging level `{0}` (expected CRITICAL, ERROR, WARNING, INFO, DEBUG or TRACE)"
    )]
    UnknownLevel(String),
    /// Unknown `--log-format` value.
    #[error("unknown log format `{0}` (expected term or json)")]
    UnknownFormat(String),
}

/// Parses a level name, accepting Python's spellings (`WARNING`, `CRITICAL`).
pub fn parse_level(name: &str) -> Result<Level, LoggingError> {
    match name.to_ascii_uppercase().as_str() {
        "CRITICAL" | "FATAL" => Ok(Level::Critical),
        "ERROR" => Ok(Level::Error),
        "WARNING" | "WARN" => Ok(Level::Warning),
        "INFO" => Ok(Level::Info),
        "DEBUG" => Ok(Level::Debug),
        "TRACE" => Ok(Level::Trace),
        _ => Err(LoggingError::UnknownLevel(name.to_owned())),
    }
}

/// Parses a format name.
pub fn parse_format(name: &str) -> Result<LogFormat, LoggingError> {
    match name {
        "term" => Ok(LogFormat::Term),
        "json" => Ok(LogFormat::Json),
        _ => Err(LoggingError::UnknownFormat(name.to_owned())),
    }
}

/// A root logger and the guard that flushes the async drain when dropped.
pub struct Logging {
    /// The root logger (carries `version`).
    pub logger: Logger,
    /// Keep alive until exit: dropping it flushes pending records.
    pub guard: slog_async::AsyncGuard,
}

/// Builds the root logger writing to stderr.
pub fn init(level: Level, format: LogFormat) -> Logging {
    let (drain, guard) = match format {
        LogFormat::Term => {
            let decorator = slog_term::TermDecorator::new().stderr().build();
            let inner = slog_term::FullFormat::new(decorator).build().fuse();
            async_drain(inner)
        }
        LogFormat::Json => {
            let inner = slog_json::Json::new(std::io::stderr())
                .add_default_keys()
                .build()
                .fuse();
            async_drain(inner)
        }
    };
    let drain = drain.filter_level(level).fuse();
    let logger = Logger::root(drain, o!("version" => env!("CARGO_PKG_VERSION")));
    Logging { logger, guard }
}

fn async_drain<D>(inner: D) -> (slog::Fuse<slog_async::Async>, slog_async::AsyncGuard)
where
    D: Drain<Ok = (), Err = slog::Never> + Send + 'static,
{
    let (drain, guard) = slog_async::Async::new(inner)
        .chan_size(4096)
        .overflow_strategy(slog_async::OverflowStrategy::Block)
        .build_with_guard();
    (drain.fuse(), guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_level_names_are_accepted() {
        let table = [
            ("INFO", Level::Info),
            ("info", Level::Info),
            ("WARNING", Level::Warning),
            ("warn", Level::Warning),
            ("CRITICAL", Level::Critical),
            ("DEBUG", Level::Debug),
            ("TRACE", Level::Trace),
            ("Error", Level::Error),
        ];
        for (name, level) in table {
            assert_eq!(parse_level(name), Ok(level), "{name}");
        }
        assert_eq!(
            parse_level("LOUD"),
            Err(LoggingError::UnknownLevel("LOUD".into()))
        );
    }

    use paas_actors::untrusted::untrusted;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A `Write` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            let mut inner = self
                .0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            inner.extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            let inner = self.0.lock().expect("buffer lock");
            String::from_utf8_lossy(&inner).into_owned()
        }
    }

    /// What a job may put in a variable name that ends up in an error.
    const HOSTILE: &str = "X\nJan 01 00:00:00.000 ERRO forged line\x1b[2J\x1b]0;title\x07\u{202e}";

    fn log_hostile(logger: &Logger) {
        let err = format!("variable `{HOSTILE}` refers to itself");
        slog::error!(logger, "launch failed"; "error" => %untrusted(&err),
                     "name" => %untrusted(HOSTILE));
    }

    #[test]
    fn job_text_is_escaped_in_the_term_format() {
        let buffer = Buffer::default();
        let decorator = slog_term::PlainSyncDecorator::new(buffer.clone());
        let drain = slog_term::FullFormat::new(decorator).build().fuse();
        log_hostile(&Logger::root(drain, o!("version" => "test")));
        let text = buffer.text();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(text.ends_with('\n'), "{text:?}");
        assert!(
            !text
                .trim_end_matches('\n')
                .chars()
                .any(paas_actors::untrusted::needs_escape),
            "{text:?}"
        );
        assert!(text.contains("X\\nJan 01"), "{text:?}");
        assert!(text.contains("\\u{1b}[2J"), "{text:?}");
    }

    #[test]
    fn job_text_is_escaped_in_the_json_format() {
        let buffer = Buffer::default();
        let drain = slog_json::Json::new(buffer.clone())
            .add_default_keys()
            .build()
            .fuse();
        let drain = Mutex::new(drain).fuse();
        log_hostile(&Logger::root(drain, o!("version" => "test")));
        let text = buffer.text();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        let record: serde_json::Value = serde_json::from_str(&text).expect("one JSON object");
        let name = record["name"].as_str().expect("name");
        assert_eq!(name, paas_actors::untrusted::escape_control(HOSTILE));
        assert!(
            !name.chars().any(paas_actors::untrusted::needs_escape),
            "{name:?}"
        );
        let error = record["error"].as_str().expect("error");
        assert!(
            error.contains("X\\nJan 01") && !error.contains('\n'),
            "{error:?}"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(parse_format("term"), Ok(LogFormat::Term));
        assert_eq!(parse_format("json"), Ok(LogFormat::Json));
        assert!(parse_format("xml").is_err());
    }
}
