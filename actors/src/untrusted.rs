//! Text that a job (or a remote service echoing it) chose, made safe for a
//! log line.
//!
//! Variable names, image names, flavor names and PAAS or coordinator error
//! messages may hold control characters: a newline forges a log line, an
//! escape sequence rewrites the operator's terminal. Every log value that
//! may carry such text goes through [`untrusted`], in both log formats:
//! control characters (and the Unicode bidirectional overrides, which
//! reorder what a terminal shows) are written as Rust escapes (`\n`, `\t`,
//! `\u{1b}`, `\u{202e}`), everything else as is.

use std::fmt::{self, Display, Write};

/// Displays its content with control characters escaped.
#[derive(Clone, Copy, Debug)]
pub struct Untrusted<T>(pub T);

/// Wraps `value` for a log line: `"error" => %untrusted(&e)`.
pub fn untrusted<T: Display>(value: T) -> Untrusted<T> {
    Untrusted(value)
}

/// True for the characters [`Untrusted`] escapes.
pub fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control characters escaped (see the module documentation).
pub fn escape_control(text: &str) -> String {
    untrusted(text).to_string()
}

/// Forwards writes to a formatter, escaping as it goes.
struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some((i, c)) = rest.char_indices().find(|(_, c)| needs_escape(*c)) {
            self.0.write_str(rest.get(..i).unwrap_or_default())?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = rest.get(i + c.len_utf8()..).unwrap_or_default();
        }
        self.0.write_str(rest)
    }
}

impl<T: Display> Display for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let table = [
            ("plain text, é ü 🦀", "plain text, é ü 🦀"),
            ("a\nb", "a\\nb"),
            ("x\r\n\ty", "x\\r\\n\\ty"),
            ("\x1b[31mred\x1b[0m", "\\u{1b}[31mred\\u{1b}[0m"),
            ("nul\0del\x7f", "nul\\u{0}del\\u{7f}"),
            ("c1\u{85}\u{9b}", "c1\\u{85}\\u{9b}"),
            ("bidi\u{202e}txt\u{2066}", "bidi\\u{202e}txt\\u{2066}"),
            ("back\\slash", "back\\slash"),
            ("", ""),
        ];
        for (input, expected) in table {
            assert_eq!(escape_control(input), expected, "{input:?}");
            assert_eq!(format!("{}", untrusted(input)), expected);
        }
        // Any Display, not only strings.
        let err = std::io::Error::other("line\nforged");
        assert_eq!(untrusted(&err).to_string(), "line\\nforged");
        assert!(!escape_control("\u{1b}\n\u{7}").chars().any(needs_escape));
    }
}
