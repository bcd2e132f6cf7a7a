//! Job variable expansion, as Go's `os.Expand` does it.
//!
//! The inner GitLab Runner expands `$VAR` / `${VAR}` in image names with
//! `os.Expand`; the dependency-proxy rewrite must see the same name to
//! decide whether an image comes from Docker Hub. The syntax follows Go:
//!
//! - `$NAME` where NAME is the longest run of ASCII letters, digits and `_`;
//! - `${NAME}` where NAME is anything up to the first `}` (no nesting);
//! - `$` followed by one of `*#$@!?-0123456789` (or that char in braces) is
//!   the one-character "special" name;
//! - a `$` followed by nothing usable stays; `${}` and an unterminated `${`
//!   are eaten.
//!
//! Unknown variables expand to the empty string. Like the Python reference,
//! values are expanded recursively (`FOO=foo${BAR}`); unlike it (which
//! recurses until Python's stack overflows), a cycle, an excessive depth or
//! an excessive amount of work or output is an [`ExpandError`].
//!
//! Differences with the reference's regex (`\$([a-zA-Z0-9_]+|{.+?})`),
//! where the reference departs from Go: `$$`, `$1`, `$-` and other special
//! names, `${}` and an unterminated `${`. We follow Go, since the point is
//! to predict what the inner runner does.

use std::collections::HashMap;

/// Maximum nesting of variable values expanded through other values.
pub const MAX_DEPTH: usize = 16;

/// Maximum number of substitutions in one expansion.
pub const MAX_SUBSTITUTIONS: usize = 4096;

/// Maximum length of an expanded string, in bytes.
pub const MAX_OUTPUT_LEN: usize = 64 * 1024;

/// Why a string could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A variable's value refers, directly or not, to the variable itself.
    #[error("variable `{name}` refers to itself (through its value or other variables)")]
    Cycle {
        /// The first variable found in the cycle.
        name: String,
    },
    /// Values nest more than [`MAX_DEPTH`] levels deep.
    #[error("variables nest more than {MAX_DEPTH} levels deep (at `{name}`)")]
    TooDeep {
        /// The variable at which the limit was hit.
        name: String,
    },
    /// The expansion needs more than [`MAX_SUBSTITUTIONS`] substitutions or
    /// produces more than [`MAX_OUTPUT_LEN`] bytes.
    #[error(
        "expansion too large (more than {MAX_SUBSTITUTIONS} substitutions or {MAX_OUTPUT_LEN} bytes)"
    )]
    TooLarge,
}

/// Expands `s` with `vars`, recursively through values. See the module
/// documentation for the syntax and the limits.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> Result<String, ExpandError> {
    let mut state = State {
        vars,
        stack: Vec::new(),
        substitutions: 0,
        out: String::with_capacity(s.len()),
    };
    state.expand_into(s)?;
    Ok(state.out)
}

/// A piece of the input: literal text or a variable reference.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Literal(&'a str),
    Variable(&'a str),
}

/// Go's `isShellSpecialVar`.
fn is_special(c: char) -> bool {
    matches!(c, '*' | '#' | '$' | '@' | '!' | '?' | '-' | '0'..='9')
}

/// Go's `isAlphaNum`.
fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// What follows a `$`: `(name, consumed)` as Go's `getShellName` returns
/// it, in bytes. `name` empty with `consumed > 0` is bad syntax (eaten);
/// both empty/zero means the `$` is literal.
fn shell_name(after: &str) -> (&str, usize) {
    let mut chars = after.chars();
    match chars.next() {
        Some('{') => {
            let mut two = after.chars().skip(1);
            if let (Some(c), Some('}')) = (two.next(), two.next()) {
                if is_special(c) {
                    return (after.get(1..2).unwrap_or_default(), 3);
                }
            }
            match after.find('}') {
                Some(1) => ("", 2),
                Some(end) => (after.get(1..end).unwrap_or_default(), end + 1),
                None => ("", 1),
            }
        }
        Some(c) if is_special(c) => (after.get(..1).unwrap_or_default(), 1),
        _ => {
            let len = after
                .char_indices()
                .find(|(_, c)| !is_name_char(*c))
                .map_or(after.len(), |(i, _)| i);
            (after.get(..len).unwrap_or_default(), len)
        }
    }
}

/// Splits `s` into literals and variable references (one level, no
/// recursion), exactly as Go's `os.Expand` scans it.
fn tokenize(s: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = s;
    while let Some(dollar) = rest.find('$') {
        let (before, from_dollar) = rest.split_at(dollar);
        let after = from_dollar.get(1..).unwrap_or_default();
        if after.is_empty() {
            // A trailing `$` is literal.
            break;
        }
        if !before.is_empty() {
            tokens.push(Token::Literal(before));
        }
        let (name, consumed) = shell_name(after);
        if name.is_empty() && consumed == 0 {
            tokens.push(Token::Literal("$"));
        } else if !name.is_empty() {
            tokens.push(Token::Variable(name));
        }
        rest = after.get(consumed..).unwrap_or_default();
    }
    if !rest.is_empty() {
        tokens.push(Token::Literal(rest));
    }
    tokens
}

/// Expansion in progress: the variables being expanded (cycle detection)
/// and the budgets.
struct State<'v> {
    vars: &'v HashMap<String, String>,
    stack: Vec<String>,
    substitutions: usize,
    out: String,
}

impl State<'_> {
    fn push_str(&mut self, s: &str) -> Result<(), ExpandError> {
        if self.out.len() + s.len() > MAX_OUTPUT_LEN {
            return Err(ExpandError::TooLarge);
        }
        self.out.push_str(s);
        Ok(())
    }

    fn expand_into(&mut self, s: &str) -> Result<(), ExpandError> {
        for token in tokenize(s) {
            match token {
                Token::Literal(text) => self.push_str(text)?,
                Token::Variable(name) => {
                    self.substitutions += 1;
                    if self.substitutions > MAX_SUBSTITUTIONS {
                        return Err(ExpandError::TooLarge);
                    }
                    if self.stack.iter().any(|n| n == name) {
                        return Err(ExpandError::Cycle { name: name.into() });
                    }
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(ExpandError::TooDeep { name: name.into() });
                    }
                    let vars = self.vars;
                    let value = vars.get(name).map(String::as_str).unwrap_or_default();
                    self.stack.push(name.to_owned());
                    self.expand_into(value)?;
                    self.stack.pop();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, variables, expected output or cycle name)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reference_doctests() {
        // Every example of the reference's `expand_variables` docstring.
        let table: &[Case] = &[
            (
                "somethin-${FOO-BAR}-hop",
                &[("FOO-BAR", "foo")],
                "somethin-foo-hop",
            ),
            (
                "somethin-${F#*$&}-hop",
                &[("F#*$&", "foo")],
                "somethin-foo-hop",
            ),
            (
                "somethin-$FOO_BAR-hop",
                &[("FOO_BAR", "foo")],
                "somethin-foo-hop",
            ),
            ("$FOO_BAR-hop", &[("FOO_BAR", "foo")], "foo-hop"),
            (
                "somethin-$FOO-BAR-hop",
                &[("FOO-BAR", "foo")],
                "somethin--BAR-hop",
            ),
            (
                "somethin-${FOO-${BAR}}-hop",
                &[("FOO-BAR", "foo")],
                "somethin-}-hop",
            ),
            (
                "somethin-${FOO-${BAR}}-hop",
                &[("FOO-${BAR", "foo")],
                "somethin-foo}-hop",
            ),
            (
                "somethin-${FOO}-hop",
                &[("FOO", "foo${BAR}"), ("BAR", "bar")],
                "somethin-foobar-hop",
            ),
        ];
        for (input, pairs, expected) in table {
            assert_eq!(
                expand(input, &vars(pairs)).as_deref(),
                Ok(*expected),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn go_os_expand_edge_cases() {
        // Checked against Go's os.Expand semantics (getShellName).
        let v = vars(&[
            ("A", "a"),
            ("1", "one"),
            ("$", "dollar"),
            ("-", "dash"),
            ("*", "star"),
            ("HOME", "/home/x"),
        ]);
        let table = [
            ("", ""),
            ("plain", "plain"),
            ("$", "$"),
            ("a$", "a$"),
            ("$A", "a"),
            ("${A}", "a"),
            ("$A$A", "aa"),
            ("x$Ay", "x"),
            ("x${A}y", "xay"),
            ("$UNKNOWN", ""),
            ("pre-${UNKNOWN}-post", "pre--post"),
            ("$12", "one2"),
            ("${1}", "one"),
            ("$$", "dollar"),
            ("${$}", "dollar"),
            ("$-x", "dashx"),
            ("$*", "star"),
            ("${*}", "star"),
            ("${}", ""),
            ("a${}b", "ab"),
            ("a${Ab", "aAb"),
            ("a${", "a"),
            ("$ x", "$ x"),
            ("$/x", "$/x"),
            ("$.A", "$.A"),
            ("$HOME/.cache", "/home/x/.cache"),
            ("${HOME}s", "/home/xs"),
            ("é$Aü", "éaü"),
            ("$é", "$é"),
            ("${é}", ""),
        ];
        for (input, expected) in table {
            assert_eq!(
                expand(input, &v).as_deref(),
                Ok(expected),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn recursion_through_values_is_bounded() {
        let chained = vars(&[("A", "<$B>"), ("B", "<$C>"), ("C", "c")]);
        assert_eq!(expand("$A", &chained).as_deref(), Ok("<<c>>"));

        // The same variable used twice (not a cycle).
        let twice = vars(&[("A", "$B-$B"), ("B", "b")]);
        assert_eq!(expand("$A", &twice).as_deref(), Ok("b-b"));

        let cycles: &[Case] = &[
            ("$A", &[("A", "$A")], "A"),
            ("x${A}", &[("A", "a$B"), ("B", "b${A}")], "A"),
            ("$B", &[("A", "a$B"), ("B", "b${A}")], "B"),
        ];
        for (input, pairs, name) in cycles {
            assert_eq!(
                expand(input, &vars(pairs)),
                Err(ExpandError::Cycle {
                    name: (*name).into()
                }),
                "input {input:?}"
            );
        }

        // A chain longer than MAX_DEPTH.
        let deep: HashMap<String, String> = (0..=MAX_DEPTH + 1)
            .map(|i| (format!("V{i}"), format!("$V{}", i + 1)))
            .collect();
        assert!(matches!(
            expand("$V0", &deep),
            Err(ExpandError::TooDeep { .. })
        ));

        // Exponential fan-out within the depth limit: 2^14 substitutions.
        let wide: HashMap<String, String> = (0..13)
            .map(|i| (format!("W{i}"), format!("$W{0}$W{0}", i + 1)))
            .collect();
        assert_eq!(expand("$W0", &wide), Err(ExpandError::TooLarge));

        // Large output.
        let big = vars(&[
            ("A", "x".repeat(1024).as_str()),
            ("B", "$A".repeat(100).as_str()),
        ]);
        assert_eq!(expand("$B", &big), Err(ExpandError::TooLarge));
    }
}
