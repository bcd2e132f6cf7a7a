//! Typed accessors over the raw TOML tree that record problems instead of
//! stopping at the first one.
//!
//! Wrong-value messages name the value found ([`Ctx::found`]): numbers and
//! booleans always, strings quoted unless they may be a credential
//! ([`may_show`]), which are described by their length only.

use std::collections::HashSet;
use std::time::Duration;

use toml::Value;

use super::error::Problem;
use super::raw::LineIndex;
use crate::secret::Secret;

/// The problems and warnings gathered while validating one file.
pub(crate) struct Ctx<'a> {
    /// Where each key is.
    pub lines: &'a LineIndex,
    /// The file name, for warnings.
    pub file: String,
    /// Errors found so far.
    pub problems: Vec<Problem>,
    /// Warnings found so far.
    pub warnings: Vec<String>,
    /// Dotted paths whose value came from the secrets file: never shown.
    pub secret_paths: HashSet<String>,
}

impl<'a> Ctx<'a> {
    /// A fresh context for one file.
    pub fn new(lines: &'a LineIndex, file: String) -> Self {
        Ctx {
            lines,
            file,
            problems: Vec::new(),
            warnings: Vec::new(),
            secret_paths: HashSet::new(),
        }
    }

    /// The value at `path` as a message names it: `the string "XXL"`,
    /// `the integer 0`…; a string that may be a credential is described
    /// by its length only (see [`may_show`]).
    pub fn found(&self, path: &str, value: &Value) -> String {
        match value {
            Value::String(s) if !s.is_empty() => {
                if may_show(path, s) && !self.secret_paths.contains(path) {
                    format!("the string {}", quoted(s))
                } else {
                    format!(
                        "a string of {} characters (not shown: it may be a secret)",
                        s.chars().count()
                    )
                }
            }
            _ => describe(value),
        }
    }

    /// The string `text` found at `path`, as [`Ctx::found`] names it.
    pub fn shown(&self, path: &str, text: &str) -> String {
        self.found(path, &Value::String(text.to_string()))
    }

    /// Records a problem about the key at `path`.
    pub fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: path.to_string(),
            location: self.lines.locate(path),
            message: message.into(),
        });
    }

    /// Records a warning about the key at `path`.
    pub fn warn(&mut self, path: &str, message: impl AsRef<str>) {
        let at = match self.lines.line_of(path) {
            Some(line) => format!("{}, line {line}", self.file),
            None => self.file.clone(),
        };
        self.warnings
            .push(format!("{at}: `{path}`: {}", message.as_ref()));
    }
}

/// One table of the file and its dotted path, read key by key.
pub(crate) struct Section<'t> {
    /// The table.
    pub table: &'t toml::Table,
    /// Its dotted path (empty for the top level).
    pub path: String,
}

impl<'t> Section<'t> {
    /// A section at `path`.
    pub fn new(table: &'t toml::Table, path: impl Into<String>) -> Self {
        Section {
            table,
            path: path.into(),
        }
    }

    /// Dotted path of `key` in this section.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The raw value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'t Value> {
        self.table.get(key)
    }

    /// Reads `key` with `convert`; a present value that does not convert is a
    /// problem saying `expected`. Absent → `None`, silently.
    pub fn read<T>(
        &self,
        ctx: &mut Ctx<'_>,
        key: &str,
        expected: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Option<T> {
        let value = self.get(key)?;
        match convert(value) {
            Some(v) => Some(v),
            None => {
                let path = self.key_path(key);
                let found = ctx.found(&path, value);
                ctx.problem(&path, format!("expected {expected}, found {found}"));
                None
            }
        }
    }

    /// Like [`Section::read`], but absence is a problem too, explained by `why`.
    pub fn require<T>(
        &self,
        ctx: &mut Ctx<'_>,
        key: &str,
        expected: &str,
        why: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Option<T> {
        if self.get(key).is_none() {
            ctx.problem(&self.key_path(key), format!("missing: {why}"));
            return None;
        }
        self.read(ctx, key, expected, convert)
    }

    /// An optional string.
    pub fn string(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<String> {
        self.read(ctx, key, "a string", as_string)
    }

    /// A required non-empty string.
    pub fn required_string(&self, ctx: &mut Ctx<'_>, key: &str, why: &str) -> Option<String> {
        self.require(ctx, key, "a non-empty string", why, as_nonempty_string)
    }

    /// A required non-empty secret string.
    pub fn required_secret(&self, ctx: &mut Ctx<'_>, key: &str, why: &str) -> Option<Secret> {
        self.required_string(ctx, key, why).map(Secret::new)
    }

    /// An optional boolean, defaulting to `default`.
    pub fn bool_or(&self, ctx: &mut Ctx<'_>, key: &str, default: bool) -> bool {
        self.read(ctx, key, "a boolean (true or false)", Value::as_bool)
            .unwrap_or(default)
    }

    /// An optional positive integer, defaulting to `default`.
    pub fn positive_or(&self, ctx: &mut Ctx<'_>, key: &str, default: usize) -> usize {
        self.read(ctx, key, "a positive integer", as_positive)
            .unwrap_or(default)
    }

    /// An optional positive number of seconds (integer or float), defaulting to `default`.
    pub fn seconds_or(&self, ctx: &mut Ctx<'_>, key: &str, default: Duration) -> Duration {
        self.read(
            ctx,
            key,
            "a positive number of seconds (integer or float)",
            as_positive_seconds,
        )
        .unwrap_or(default)
    }

    /// An optional fraction in (0, 1], defaulting to `default`.
    pub fn fraction_or(&self, ctx: &mut Ctx<'_>, key: &str, default: f64) -> f64 {
        self.read(
            ctx,
            key,
            "a number greater than 0 and at most 1",
            as_fraction,
        )
        .unwrap_or(default)
    }
}

/// Longest part of a string value quoted in a message, in characters.
const MAX_SHOWN_CHARS: usize = 80;

/// Whether a string value found at dotted `path` may be quoted in a
/// message: not when the key names a token (`token`, `cc_token`,
/// `…_token`), not for `cc_extra_env` values and `cache` settings (they
/// hold credentials), not for a URL with user information
/// (`https://user:password@…`).
pub(crate) fn may_show(path: &str, value: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let leaf = lower.rsplit(['.', '[']).next().unwrap_or(&lower);
    let credential_key = leaf.contains("token")
        || leaf.contains("secret")
        || leaf.contains("password")
        || lower.contains("cc_extra_env")
        || lower.contains(".cache")
        || lower.starts_with("cache");
    let url_with_user = value.split_once("://").is_some_and(|(_, rest)| {
        rest.split(['/', '?', '#'])
            .next()
            .unwrap_or("")
            .contains('@')
    });
    !credential_key && !url_with_user
}

/// The string `value` of the key at dotted `path`, as a message after
/// validation names it: quoted, or described by its length when it may be
/// a credential (see [`may_show`]).
pub fn shown_value(path: &str, value: &str) -> String {
    if may_show(path, value) {
        quoted(value)
    } else {
        format!(
            "a value of {} characters (not shown: it may be a secret)",
            value.chars().count()
        )
    }
}

/// `s` in double quotes, control characters escaped, cut after
/// [`MAX_SHOWN_CHARS`] characters.
pub(crate) fn quoted(s: &str) -> String {
    let count = s.chars().count();
    if count <= MAX_SHOWN_CHARS {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{head:?}… ({count} characters)")
    }
}

/// Describes a value by its type (and number or boolean value), never
/// quoting a string: for values that may be secrets.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "an empty string".to_string(),
        Value::String(s) => format!("a string of {} characters", s.chars().count()),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Float(x) => format!("the float {x}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        Value::Datetime(_) => "a datetime".to_string(),
        Value::Array(items) => format!("an array of {} item(s)", items.len()),
        Value::Table(_) => "a table".to_string(),
    }
}

/// A string value.
pub(crate) fn as_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// A non-empty string value.
pub(crate) fn as_nonempty_string(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// A positive integer fitting a `usize`.
pub(crate) fn as_positive(v: &Value) -> Option<usize> {
    v.as_integer()
        .filter(|i| *i > 0)
        .and_then(|i| usize::try_from(i).ok())
}

/// A non-negative number of seconds (integer or finite float).
pub(crate) fn as_seconds(v: &Value) -> Option<Duration> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok().map(Duration::from_secs),
        Value::Float(x) if x.is_finite() && *x >= 0.0 => Duration::try_from_secs_f64(*x).ok(),
        _ => None,
    }
}

/// A positive number of seconds.
pub(crate) fn as_positive_seconds(v: &Value) -> Option<Duration> {
    as_seconds(v).filter(|d| !d.is_zero())
}

/// A number in (0, 1].
pub(crate) fn as_fraction(v: &Value) -> Option<f64> {
    let x = match v {
        Value::Integer(i) => *i as f64,
        Value::Float(x) => *x,
        _ => return None,
    };
    (x > 0.0 && x <= 1.0).then_some(x)
}
