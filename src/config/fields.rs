//! Typed accessors over the raw TOML tree that record problems instead of
//! stopping at the first one.
//!
//! Wrong-type messages describe the value found by its type only (numbers
//! and booleans are shown, strings never: any string may be a secret).

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
}

impl<'a> Ctx<'a> {
    /// A fresh context for one file.
    pub fn new(lines: &'a LineIndex, file: String) -> Self {
        Ctx {
            lines,
            file,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
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
                ctx.problem(
                    &self.key_path(key),
                    format!("expected {expected}, found {}", describe(value)),
                );
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

/// Describes a value for an error message without quoting strings.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "an empty string".to_string(),
        Value::String(_) => "a string".to_string(),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Float(x) => format!("the float {x}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        Value::Datetime(_) => "a datetime".to_string(),
        Value::Array(_) => "an array".to_string(),
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
