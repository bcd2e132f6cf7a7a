//! Typed accessors over the raw TOML tree that record problems instead of
//! stopping at the first one.
//!
//! Wrong-value messages name the value found ([`Ctx::found`]): numbers and
//! booleans always, strings quoted unless they may be a credential
//! ([`may_show`]), which are described by their length only.

use std::collections::HashSet;
use std::time::Duration;

use paas_actors::settings::{Fallback, Key, Kind, Plain, Setting, Value as Parsed};
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

    /// A required non-empty string.
    pub fn required_string(&self, ctx: &mut Ctx<'_>, key: &str, why: &str) -> Option<String> {
        self.require(ctx, key, "a non-empty string", why, as_nonempty_string)
    }

    /// A required non-empty secret string.
    pub fn required_secret(&self, ctx: &mut Ctx<'_>, key: &str, why: &str) -> Option<Secret> {
        self.required_string(ctx, key, why).map(Secret::new)
    }

    /// Which spelling of the declared `key` this section holds: its name,
    /// or an alias (with a warning); both is a problem, the name is read.
    pub fn spelling(&self, ctx: &mut Ctx<'_>, key: &Key) -> &'static str {
        let canonical = key.leaf();
        let Some(alias) = key.aliases.iter().find(|a| self.get(a).is_some()) else {
            return canonical;
        };
        if self.get(canonical).is_some() {
            ctx.problem(
                &self.key_path(alias),
                format!(
                    "both `{canonical}` and its alias `{alias}` are set; keep only `{canonical}`"
                ),
            );
            canonical
        } else {
            ctx.warn(
                &self.key_path(alias),
                format!("`{alias}` is accepted as an alias of `{canonical}`; prefer `{canonical}`"),
            );
            alias
        }
    }

    /// Reads the declared `key` (its last part, in this section) with
    /// `convert`; a value that does not convert is a problem saying what
    /// the declaration expects.
    pub fn read_key<T>(
        &self,
        ctx: &mut Ctx<'_>,
        key: &Key,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Option<T> {
        self.read(ctx, key.leaf(), key.kind.expected, convert)
    }

    /// Like [`Section::read_key`], but absence is a problem too, explained
    /// by `why`.
    pub fn require_key<T>(
        &self,
        ctx: &mut Ctx<'_>,
        key: &Key,
        why: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Option<T> {
        self.require(ctx, key.leaf(), key.kind.expected, why, convert)
    }

    /// The value of the declared `key` as its kind reads it, its default
    /// when absent or refused (`None` without one); a refused value is a
    /// problem.
    pub fn value(&self, ctx: &mut Ctx<'_>, key: &Key) -> Option<Parsed> {
        let leaf = self.spelling(ctx, key);
        let parsed = self.get(leaf).and_then(|written| {
            let parsed = key.kind.parse(&plain(written));
            if parsed.is_none() {
                let path = self.key_path(leaf);
                let found = ctx.found(&path, written);
                ctx.problem(
                    &path,
                    format!("expected {}, found {found}", key.kind.expected),
                );
            }
            parsed
        });
        parsed.or_else(|| match &key.default {
            Fallback::Value(v) => Some(v.clone()),
            Fallback::Text(t) => Some(Parsed::Text((*t).to_string())),
            _ => None,
        })
    }

    /// The declared boolean `key`, its default when absent or wrong.
    pub fn flag(&self, ctx: &mut Ctx<'_>, key: &Key) -> bool {
        matches!(self.value(ctx, key), Some(Parsed::Flag(true)))
    }

    /// The declared string `key`, its default when absent or wrong.
    pub fn text(&self, ctx: &mut Ctx<'_>, key: &Key) -> Option<String> {
        match self.value(ctx, key) {
            Some(Parsed::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// The declared number of seconds `key`, its default when absent or
    /// wrong.
    pub fn seconds(&self, ctx: &mut Ctx<'_>, key: &Key) -> Option<Duration> {
        match self.value(ctx, key) {
            Some(Parsed::Seconds(d)) => Some(d),
            _ => None,
        }
    }

    /// Sets the field `setting` declares in `settings` from this section,
    /// when written; a refused value is a problem, the field keeps its
    /// default.
    pub fn read_setting<S: Default>(
        &self,
        ctx: &mut Ctx<'_>,
        setting: &Setting<S>,
        settings: &mut S,
    ) {
        let leaf = self.spelling(ctx, &setting.key);
        let Some(written) = self.get(leaf) else {
            return;
        };
        if !setting.read(settings, &plain(written)) {
            let path = self.key_path(leaf);
            let expected = setting.key.expected(Some(&setting.default_value()));
            let found = ctx.found(&path, written);
            ctx.problem(&path, format!("expected {expected}, found {found}"));
        }
    }

    /// The sub-table `name` of this section, if it is a table.
    pub fn table(&self, name: &str) -> Option<Section<'t>> {
        match self.get(name) {
            Some(Value::Table(t)) => Some(Section::new(t, self.key_path(name))),
            _ => None,
        }
    }
}

/// A TOML value as the settings' declarations read it.
pub(crate) fn plain(value: &Value) -> Plain<'_> {
    match value {
        Value::Integer(i) => Plain::Integer(*i),
        Value::Float(x) => Plain::Float(*x),
        Value::Boolean(b) => Plain::Bool(*b),
        Value::String(s) => Plain::Text(s),
        _ => Plain::Other,
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

/// A positive integer, as the declarations' [`Kind::COUNT`] reads it.
pub(crate) fn as_positive(v: &Value) -> Option<u64> {
    match Kind::COUNT.parse(&plain(v)) {
        Some(Parsed::Count(n)) => Some(n),
        _ => None,
    }
}
