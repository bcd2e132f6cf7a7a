//! Stage one: the file as an untyped TOML tree, plus where each key is.
//!
//! Serde-derived structs stop at the first wrong type; to report every
//! problem at once, the raw stage keeps the plain [`toml::Table`] (order
//! preserved, every TOML type intact for forwarding) and a [`LineIndex`]
//! mapping each dotted key path to its line. [`super::validate`] then reads
//! it with typed accessors that accumulate problems.

use std::collections::HashMap;

use toml::de::{DeTable, DeValue};

use super::error::Location;

/// The parsed file: the TOML tree and the line of every key.
#[derive(Debug, Clone)]
pub(crate) struct RawDocument {
    /// The whole file, top-level table.
    pub table: toml::Table,
    /// Dotted key path → 1-based line.
    pub lines: LineIndex,
}

/// A TOML syntax error, with the position the parser gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column, in characters.
    pub column: Option<usize>,
    /// The parser's message, without the source excerpt.
    pub message: String,
}

/// Dotted key path (`runners[0].docker.volumes`) → 1-based line of the key.
/// Kept in the validated [`super::Config`], so that checks made after
/// validation (flavors, the state directory, the engine) name the line too.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    /// Where `path` is: its own line if written, else the line of the nearest
    /// enclosing section that is.
    pub fn locate(&self, path: &str) -> Location {
        if let Some(line) = self.lines.get(path) {
            return Location::Line(*line);
        }
        let mut current = path;
        while let Some(parent) = parent_path(current) {
            if let Some(line) = self.lines.get(parent) {
                return Location::Section(*line);
            }
            current = parent;
        }
        Location::Unknown
    }

    /// The line of `path` itself, if it is written in the file.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → None.
fn parent_path(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    path.get(..cut)
}

/// Parses `text` into the raw document.
pub(crate) fn parse(text: &str) -> Result<RawDocument, SyntaxError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| syntax_error(text, &e))?;
    let mut lines = LineIndex::default();
    // The span-aware parse cannot fail where the plain one succeeded; if it
    // ever does, we only lose line numbers.
    if let Ok(spanned) = DeTable::parse(text) {
        let offsets = LineOffsets::new(text);
        index_table(spanned.get_ref(), "", &offsets, &mut lines.lines);
    }
    Ok(RawDocument { table, lines })
}

fn syntax_error(text: &str, err: &toml::de::Error) -> SyntaxError {
    let offsets = LineOffsets::new(text);
    let (line, column) = match err.span() {
        Some(span) => {
            let (l, c) = offsets.line_col(text, span.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    SyntaxError {
        line,
        column,
        message: err.message().trim().to_string(),
    }
}

/// Byte offsets of line starts, for offset → line conversion.
struct LineOffsets {
    starts: Vec<usize>,
}

impl LineOffsets {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineOffsets { starts }
    }

    /// 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|s| *s <= offset).max(1)
    }

    /// 1-based line and character column of a byte offset.
    fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let line = self.line(offset);
        let start = self
            .starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let column = text
            .get(start..offset)
            .map(|s| s.chars().count() + 1)
            .unwrap_or(1);
        (line, column)
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn index_table(
    table: &DeTable<'_>,
    prefix: &str,
    offsets: &LineOffsets,
    out: &mut HashMap<String, usize>,
) {
    for (key, value) in table {
        let path = join(prefix, key.get_ref());
        out.insert(path.clone(), offsets.line(key.span().start));
        index_value(value.get_ref(), &path, offsets, out);
    }
}

fn index_value(
    value: &DeValue<'_>,
    path: &str,
    offsets: &LineOffsets,
    out: &mut HashMap<String, usize>,
) {
    match value {
        DeValue::Table(t) => index_table(t, path, offsets, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                out.insert(item_path.clone(), offsets.line(item.span().start));
                index_value(item.get_ref(), &item_path, offsets, out);
            }
        }
        _ => {}
    }
}
