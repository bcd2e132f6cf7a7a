//! Logging: slog to stderr through an async drain, human (`term`) or JSON.
//!
//! The root logger carries `version`; components add fixed snake_case keys
//! (`runner`, `job_id`, `app`, `phase`, …). Secrets never reach a log line:
//! they are `Secret` values, which serialise as a mask.

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

    #[test]
    fn formats() {
        assert_eq!(parse_format("term"), Ok(LogFormat::Term));
        assert_eq!(parse_format("json"), Ok(LogFormat::Json));
        assert!(parse_format("xml").is_err());
    }
}
