//! Logging: slog to stderr through an async drain, human (`term`) or JSON.
//!
//! Version, revision and pid are logged once, at start (main.rs); components
//! add fixed snake_case keys (`runner`, `job_id`, `app`, `phase`, …).
//! Under systemd (`$JOURNAL_STREAM` set) every line starts with its syslog
//! priority (`<3>` error … `<7>` debug), so that `journalctl -p warning`
//! works. Weights are logged with two decimals ([`weight`]). Secrets never
//! reach a log line: they are `Secret` values, which serialise as a mask.
//! Text a job chooses (variable, image and flavor names, PAAS and
//! coordinator error messages that may echo them) goes through
//! [`paas_actors::untrusted::untrusted`]: its control characters are
//! escaped, so it can neither forge a log line nor drive the operator's
//! terminal, in either format.
//!
//! Every ERROR (CRITICAL included) and WARN record is counted in the
//! service's `errors_total{level}` once [`count_records_into`] gave it the
//! metrics (records before are not counted).

use paas_actors::metrics::{LogLevel, Metrics};
use slog::{o, Drain, Level, Logger};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// The metrics the ERROR and WARN records of every logger are counted in.
static RECORD_COUNTS: OnceLock<Arc<Metrics>> = OnceLock::new();

/// Counts the ERROR and WARN records of every logger, from now on, in
/// `metrics` (the first call decides).
pub fn count_records_into(metrics: Arc<Metrics>) {
    let _ = RECORD_COUNTS.set(metrics);
}

/// A drain that counts the ERROR and WARN records in the metrics of
/// `counts` (if set), then passes every record on.
pub struct Counting<D> {
    inner: D,
    /// Only atomic counters are updated through it: a panic elsewhere
    /// leaves nothing half-done there.
    counts: std::panic::AssertUnwindSafe<&'static OnceLock<Arc<Metrics>>>,
}

impl<D: Drain> Drain for Counting<D> {
    type Ok = D::Ok;
    type Err = D::Err;

    fn log(&self, record: &slog::Record<'_>, values: &slog::OwnedKVList) -> Result<D::Ok, D::Err> {
        let level = match record.level() {
            Level::Critical | Level::Error => Some(LogLevel::Error),
            Level::Warning => Some(LogLevel::Warn),
            _ => None,
        };
        if let (Some(level), Some(m)) = (level, self.counts.get()) {
            m.log_record(level);
        }
        self.inner.log(record, values)
    }
}

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

/// Parses a level name, accepting Python's spellings (`WARNING`,
/// `CRITICAL`) and GitLab Runner's (`warn`, `fatal`, `panic`).
pub fn parse_level(name: &str) -> Result<Level, LoggingError> {
    match name.to_ascii_uppercase().as_str() {
        "CRITICAL" | "FATAL" | "PANIC" => Ok(Level::Critical),
        "ERROR" => Ok(Level::Error),
        "WARNING" | "WARN" => Ok(Level::Warning),
        "INFO" => Ok(Level::Info),
        "DEBUG" => Ok(Level::Debug),
        "TRACE" => Ok(Level::Trace),
        _ => Err(LoggingError::UnknownLevel(name.to_owned())),
    }
}

/// Parses a format name (`term`, or GitLab Runner's `runner` and `text`;
/// `json`).
pub fn parse_format(name: &str) -> Result<LogFormat, LoggingError> {
    match name {
        "term" | "runner" | "text" => Ok(LogFormat::Term),
        "json" => Ok(LogFormat::Json),
        _ => Err(LoggingError::UnknownFormat(name.to_owned())),
    }
}

/// The syslog priority of a level, as journald reads it at the start of a
/// line (sd-daemon(3)).
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Critical => 2,
        Level::Error => 3,
        Level::Warning => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Whether stderr is the journal (systemd sets `$JOURNAL_STREAM`).
pub fn journal_from_env() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some_and(|v| !v.is_empty())
}

/// A weight (or quota) as logged: two decimals.
pub fn weight(w: f64) -> String {
    paas_actors::ports::TwoDecimals(w).to_string()
}

/// A root logger and the guard that flushes the async drain when dropped.
pub struct Logging {
    /// The root logger.
    pub logger: Logger,
    /// The format in use.
    pub format: LogFormat,
    /// Keep alive until exit: dropping it flushes pending records.
    pub guard: slog_async::AsyncGuard,
}

/// Builds the root logger writing to stderr; `journal`: each line starts
/// with its syslog priority.
pub fn init(level: Level, format: LogFormat, journal: bool) -> Logging {
    let (drain, guard) = async_drain(line_drain(format, journal, std::io::stderr()));
    let drain = Counting {
        inner: drain.filter_level(level),
        counts: std::panic::AssertUnwindSafe(&RECORD_COUNTS),
    }
    .fuse();
    let logger = Logger::root(drain, o!());
    Logging {
        logger,
        format,
        guard,
    }
}

/// The synchronous drain of one format writing whole lines to `out`.
pub fn line_drain<W: Write + Send + 'static>(format: LogFormat, journal: bool, out: W) -> Lines<W> {
    let buf = SharedBuf::default();
    let inner: Box<dyn Drain<Ok = (), Err = slog::Never> + Send> = match format {
        LogFormat::Term => {
            let decorator = slog_term::PlainSyncDecorator::new(buf.clone());
            Box::new(slog_term::FullFormat::new(decorator).build().fuse())
        }
        LogFormat::Json => Box::new(
            slog_json::Json::new(buf.clone())
                .add_default_keys()
                .build()
                .fuse(),
        ),
    };
    Lines {
        inner,
        buf,
        journal,
        out: Mutex::new(out),
    }
}

/// A buffer the formatter writes a record into.
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut b) => {
                b.extend_from_slice(data);
                Ok(data.len())
            }
            Err(_) => Err(std::io::Error::other("log buffer poisoned")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Formats a record, then writes its lines to the output at once, each
/// prefixed with the record's syslog priority when writing to the journal.
pub struct Lines<W: Write> {
    inner: Box<dyn Drain<Ok = (), Err = slog::Never> + Send>,
    buf: SharedBuf,
    journal: bool,
    out: Mutex<W>,
}

impl<W: Write> Drain for Lines<W> {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        let _ = self.inner.log(record, values);
        let text = match self.buf.0.lock() {
            Ok(mut b) => std::mem::take(&mut *b),
            Err(_) => return Ok(()),
        };
        let mut line = Vec::with_capacity(text.len() + 8);
        let prefix = format!("<{}>", syslog_priority(record.level()));
        for part in text.split_inclusive(|&c| c == b'\n') {
            if self.journal {
                line.extend_from_slice(prefix.as_bytes());
            }
            line.extend_from_slice(part);
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(&line);
            let _ = out.flush();
        }
        Ok(())
    }
}

/// Records the asynchronous drain holds before a logging call waits: every
/// slot is allocated and written up front (about 100 bytes each).
const LOG_QUEUE: usize = 1024;

/// Name of the thread that writes the log lines.
pub const LOG_THREAD_NAME: &str = "log";

fn async_drain<D>(inner: D) -> (slog::Fuse<slog_async::Async>, slog_async::AsyncGuard)
where
    D: Drain<Ok = (), Err = slog::Never> + Send + 'static,
{
    let (drain, guard) = slog_async::Async::new(inner)
        .chan_size(LOG_QUEUE)
        .thread_name(LOG_THREAD_NAME.to_owned())
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

    /// A `Write` the test reads back.
    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);
    impl Write for Out {
        fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(d);
            Ok(d.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: LogFormat, journal: bool, log: impl Fn(&Logger)) -> String {
        let out = Out::default();
        let drain = Mutex::new(line_drain(format, journal, out.clone()));
        let logger = Logger::root(drain.fuse(), o!());
        log(&logger);
        let bytes = out.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn journal_lines_start_with_the_syslog_priority() {
        let text = logged(LogFormat::Term, true, |l| {
            slog::error!(l, "bad"; "k" => 1);
            slog::warn!(l, "careful");
            slog::info!(l, "fine");
            slog::debug!(l, "detail");
            slog::info!(l, "two\nlines");
        });
        let prefixes: Vec<&str> = text.lines().map(|l| &l[..3]).collect();
        assert_eq!(
            prefixes,
            ["<3>", "<4>", "<6>", "<7>", "<6>", "<6>"],
            "{text}"
        );
        let json = logged(LogFormat::Json, true, |l| slog::warn!(l, "careful"));
        assert!(json.starts_with("<4>{"), "{json}");
        let plain = logged(LogFormat::Term, false, |l| slog::warn!(l, "careful"));
        assert!(
            !plain.starts_with('<') && plain.contains("careful"),
            "{plain}"
        );
    }

    #[test]
    fn root_logger_has_no_version_on_every_line() {
        let json = logged(LogFormat::Json, false, |l| slog::info!(l, "fine"));
        assert!(!json.contains("version"), "{json}");
    }

    #[test]
    fn weights_have_two_decimals() {
        assert_eq!(weight(33.6), "33.60");
        assert_eq!(weight(53.8199), "53.82");
        assert_eq!(weight(1.0), "1.00");
    }

    #[test]
    fn formats() {
        assert_eq!(parse_format("runner"), Ok(LogFormat::Term));
        assert_eq!(parse_format("text"), Ok(LogFormat::Term));
        assert_eq!(parse_level("panic"), Ok(Level::Critical));
        assert_eq!(parse_format("term"), Ok(LogFormat::Term));
        assert_eq!(parse_format("json"), Ok(LogFormat::Json));
        assert!(parse_format("xml").is_err());
    }

    #[test]
    fn error_and_warn_records_are_counted_once_the_metrics_are_given() {
        let counts: &'static OnceLock<Arc<Metrics>> = Box::leak(Box::new(OnceLock::new()));
        let logger = Logger::root(
            Counting {
                inner: slog::Discard,
                counts: std::panic::AssertUnwindSafe(counts),
            },
            o!(),
        );
        slog::error!(logger, "before the metrics: not counted");
        let metrics = Arc::new(Metrics::new());
        let _ = counts.set(metrics.clone());
        slog::crit!(logger, "c");
        slog::error!(logger, "e");
        slog::warn!(logger, "w");
        slog::info!(logger, "i");
        slog::debug!(logger, "d");
        let text = metrics.encode().unwrap_or_default();
        assert!(
            text.contains("heptapod_paas_runner_errors_total{level=\"error\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("heptapod_paas_runner_errors_total{level=\"warn\"} 1\n"),
            "{text}"
        );
    }
}
