//! `ConfigError`: every problem found in a configuration file, at once.
//!
//! Messages name the file, the key as a dotted path (`runners[1].cc_token`),
//! the line when the TOML parser gives it, the value found and what is
//! expected. A string that may be a credential (token keys, `cc_extra_env`,
//! `cache`, values from the secrets file, URLs with a password) is never
//! quoted: its length is given instead (`fields::may_show`).

use std::fmt;
use std::path::PathBuf;

/// Exit code the command uses for any configuration error.
pub const EXIT_CODE: i32 = crate::exit::Exit::Usage.code();

/// Where in the file a problem lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The key itself is written at this line (1-based).
    Line(usize),
    /// The key is absent; its section starts at this line (1-based).
    Section(usize),
    /// No line known (e.g. the whole file).
    Unknown,
}

/// One problem in the configuration: which key, where, and what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the key, e.g. `runners[0].cc_token` or `quota_computation`.
    pub key: String,
    /// Where the key (or its section) is in the file.
    pub location: Location,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.key)?;
        match self.location {
            Location::Line(n) => write!(f, " (line {n})")?,
            Location::Section(n) => write!(f, " (in the section starting at line {n})")?,
            Location::Unknown => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a configuration could not be loaded. All variants are permanent: the
/// file must be fixed; the command exits with [`EXIT_CODE`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("configuration file {} is not valid TOML{}: {message}", path.display(), line_col(*line, *column))]
    Syntax {
        /// The configuration file.
        path: PathBuf,
        /// 1-based line of the error, when the parser gives it.
        line: Option<usize>,
        /// 1-based column (in characters) of the error, when known.
        column: Option<usize>,
        /// The parser's message (without the source excerpt, which may hold secrets).
        message: String,
    },
    /// The file is valid TOML but its content is not a valid configuration.
    #[error("{}", invalid_message(path, problems, warnings))]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// Every problem found, in file order as far as possible.
        problems: Vec<Problem>,
        /// The warnings found on the way (a "did you mean" often explains
        /// a problem), as [`super::Loaded::warnings`].
        warnings: Vec<String>,
    },
}

impl ConfigError {
    /// Always true: lets the CLI tell configuration errors (exit code 2) apart
    /// from others when errors are boxed together.
    pub fn is_config_error(&self) -> bool {
        true
    }

    /// The process exit code for this error ([`EXIT_CODE`]).
    pub fn exit_code(&self) -> i32 {
        EXIT_CODE
    }

    /// Configuration errors are never transient: retrying without editing the
    /// file gives the same result.
    pub fn is_transient(&self) -> bool {
        false
    }

    /// The individual problems (empty unless [`ConfigError::Invalid`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// The one form of a message about a key of the file found wrong after
/// validation: `FILE:LINE: `KEY` = VALUE: DETAIL`. A key not written in
/// the file (a default) is located at its section's line, its value said to
/// be the default; without a line, `FILE: `KEY`…`. `value` is shown as
/// given (the caller quotes it, or describes a secret).
pub fn key_message(
    path: &std::path::Path,
    key: &str,
    location: Location,
    value: Option<&str>,
    detail: &str,
) -> String {
    let (at, written) = match location {
        Location::Line(n) => (format!("{}:{n}", path.display()), true),
        Location::Section(n) => (format!("{}:{n}", path.display()), false),
        Location::Unknown => (path.display().to_string(), true),
    };
    match (value, written) {
        (Some(v), true) => format!("{at}: `{key}` = {v}: {detail}"),
        (Some(v), false) => format!("{at}: `{key}` (not written, default {v}): {detail}"),
        (None, true) => format!("{at}: `{key}`: {detail}"),
        (None, false) => format!("{at}: `{key}` (not written in this section): {detail}"),
    }
}

fn line_col(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

fn invalid_message(path: &std::path::Path, problems: &[Problem], warnings: &[String]) -> String {
    let mut out = format!(
        "invalid configuration file {} ({} problem{}):",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  - ");
        out.push_str(&p.to_string());
    }
    if !warnings.is_empty() {
        out.push_str("\nwarnings:");
        for w in warnings {
            out.push_str("\n  - ");
            out.push_str(w);
        }
    }
    out
}
