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
//!
//! Cost: an [`Expander`] tokenises its input and each variable value it
//! meets once (one forward pass, the `}` of every `${` found by a search
//! that never goes back), so the work is linear in the bytes read plus the
//! bytes produced. An expander serves all the names of one job and charges
//! both against one budget, [`JOB_WORK_BUDGET`].

use std::collections::HashMap;
use std::rc::Rc;

/// Maximum nesting of variable values expanded through other values.
pub const MAX_DEPTH: usize = 16;

/// Maximum number of substitutions in one expansion.
pub const MAX_SUBSTITUTIONS: usize = 4096;

/// Maximum length of an expanded string, in bytes (unless the caller asks
/// for less, see [`Expander::expand_at_most`]).
pub const MAX_OUTPUT_LEN: usize = 64 * 1024;

/// Bytes one [`Expander`] may scan (input and variable values tokenised)
/// plus produce, over all its expansions: the bound on the work one job
/// can cause.
pub const JOB_WORK_BUDGET: usize = 8 * 1024 * 1024;

/// Why a string could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A variable's value refers, directly or not, to the variable itself.
    #[error("variable `{name}` refers to itself (through its value or other variables)")]
    Cycle {
        /// The first variable found in the cycle (job-controlled text).
        name: String,
    },
    /// Values nest more than [`MAX_DEPTH`] levels deep.
    #[error("variables nest more than {MAX_DEPTH} levels deep (at `{name}`)")]
    TooDeep {
        /// The variable at which the limit was hit (job-controlled text).
        name: String,
    },
    /// The expansion needs more than [`MAX_SUBSTITUTIONS`] substitutions.
    #[error("expansion too large (more than {MAX_SUBSTITUTIONS} substitutions)")]
    TooManySubstitutions,
    /// The expansion produces more than `max` bytes.
    #[error("expansion too long (more than {max} bytes)")]
    TooLong {
        /// The limit that was hit.
        max: usize,
    },
    /// The job's names and variables need more than [`JOB_WORK_BUDGET`]
    /// bytes scanned and produced.
    #[error("expansion needs too much work (more than {JOB_WORK_BUDGET} bytes scanned and produced for the job)")]
    BudgetExhausted,
}

/// Expands `s` with `vars`, recursively through values. See the module
/// documentation for the syntax and the limits.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> Result<String, ExpandError> {
    Expander::new(vars).expand(s)
}

/// A piece of the input: literal text or a variable reference.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Token<'a> {
    Literal(&'a str),
    Variable(&'a str),
}

/// Go's `isShellSpecialVar`.
fn is_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

/// Go's `isAlphaNum`.
fn is_name_char(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// The position of the first `}` at or after a given position of one
/// string, remembering the last answer: asked at non-decreasing positions,
/// it reads each byte at most once.
struct CloseBrace<'a> {
    s: &'a str,
    /// `(searched from, answer)` of the last search.
    last: Option<(usize, Option<usize>)>,
}

impl CloseBrace<'_> {
    fn at_or_after(&mut self, from: usize) -> Option<usize> {
        match self.last {
            Some((_, Some(found))) if found >= from => return Some(found),
            Some((start, None)) if from >= start => return None,
            _ => {}
        }
        let found = self
            .s
            .get(from..)
            .and_then(|rest| rest.find('}'))
            .map(|offset| from + offset);
        self.last = Some((from, found));
        found
    }
}

/// Splits `s` into literals and variable references (one level, no
/// recursion), exactly as Go's `os.Expand` scans it, in one forward pass.
fn tokenize(s: &str) -> Vec<Token<'_>> {
    let bytes = s.as_bytes();
    let mut close = CloseBrace { s, last: None };
    let mut tokens = Vec::new();
    // Start of the literal text not yet emitted.
    let mut literal_start = 0;
    let mut j = 0;
    while let Some(offset) = s.get(j..).and_then(|rest| rest.find('$')) {
        let dollar = j + offset;
        let after = dollar + 1;
        let Some(&first) = bytes.get(after) else {
            // A trailing `$` is literal.
            break;
        };
        // Go's getShellName: `(name start, name end, bytes consumed after
        // the `$`)`; an empty name with nothing consumed leaves the `$`.
        let (name, consumed) = if first == b'{' {
            let special = bytes.get(after + 1).copied().filter(|c| is_special(*c));
            if special.is_some() && bytes.get(after + 2) == Some(&b'}') {
                (after + 1..after + 2, 3)
            } else {
                match close.at_or_after(after + 1) {
                    // `${}`: eaten.
                    Some(end) if end == after + 1 => (after..after, 2),
                    Some(end) => (after + 1..end, end + 1 - after),
                    // Unterminated `${`: the two characters are eaten.
                    None => (after..after, 1),
                }
            }
        } else if is_special(first) {
            (after..after + 1, 1)
        } else {
            let len = bytes
                .get(after..)
                .unwrap_or_default()
                .iter()
                .take_while(|c| is_name_char(**c))
                .count();
            (after..after + len, len)
        };
        if consumed == 0 {
            // Not followed by a name: the `$` stays in the literal.
            j = after;
            continue;
        }
        if literal_start < dollar {
            tokens.extend(s.get(literal_start..dollar).map(Token::Literal));
        }
        if !name.is_empty() {
            tokens.extend(s.get(name).map(Token::Variable));
        }
        j = after + consumed;
        literal_start = j;
    }
    if literal_start < s.len() {
        tokens.extend(s.get(literal_start..).map(Token::Literal));
    }
    tokens
}

/// The tokens of a variable's value, shared between its uses.
type ValueTokens<'v> = Rc<[Token<'v>]>;

/// Expands strings with one set of variables, each value tokenised at
/// most once, all work charged to one budget ([`JOB_WORK_BUDGET`]).
pub struct Expander<'v> {
    vars: &'v HashMap<String, String>,
    /// Tokens of the values met so far, by variable name.
    values: HashMap<&'v str, ValueTokens<'v>>,
    /// Bytes that may still be scanned or produced.
    budget: usize,
}

/// One expansion in progress: the variables being expanded (cycle
/// detection), the substitution count and the output.
struct Run<'v> {
    stack: Vec<&'v str>,
    substitutions: usize,
    max_len: usize,
    out: String,
}

impl<'v> Expander<'v> {
    /// An expander over `vars` with a full budget.
    pub fn new(vars: &'v HashMap<String, String>) -> Self {
        Expander {
            vars,
            values: HashMap::new(),
            budget: JOB_WORK_BUDGET,
        }
    }

    /// Expands `s` (output at most [`MAX_OUTPUT_LEN`] bytes).
    pub fn expand(&mut self, s: &str) -> Result<String, ExpandError> {
        self.expand_at_most(s, MAX_OUTPUT_LEN)
    }

    /// Expands `s`, refusing an output longer than `max_len` bytes (and
    /// than [`MAX_OUTPUT_LEN`]).
    pub fn expand_at_most(&mut self, s: &str, max_len: usize) -> Result<String, ExpandError> {
        self.charge(s.len())?;
        let tokens = tokenize(s);
        let mut run = Run {
            stack: Vec::new(),
            substitutions: 0,
            max_len: max_len.min(MAX_OUTPUT_LEN),
            out: String::new(),
        };
        self.expand_tokens(&tokens, &mut run)?;
        Ok(run.out)
    }

    fn charge(&mut self, bytes: usize) -> Result<(), ExpandError> {
        self.budget = self
            .budget
            .checked_sub(bytes)
            .ok_or(ExpandError::BudgetExhausted)?;
        Ok(())
    }

    /// The tokens of the value of `name` (`None` for an unknown variable),
    /// tokenised on first use.
    fn value_tokens(
        &mut self,
        name: &str,
    ) -> Result<Option<(&'v str, ValueTokens<'v>)>, ExpandError> {
        let vars = self.vars;
        let Some((key, value)) = vars.get_key_value(name) else {
            return Ok(None);
        };
        if let Some(tokens) = self.values.get(key.as_str()) {
            return Ok(Some((key.as_str(), Rc::clone(tokens))));
        }
        self.charge(value.len())?;
        let tokens: ValueTokens<'v> = tokenize(value).into();
        self.values.insert(key.as_str(), Rc::clone(&tokens));
        Ok(Some((key.as_str(), tokens)))
    }

    fn expand_tokens(
        &mut self,
        tokens: &[Token<'_>],
        run: &mut Run<'v>,
    ) -> Result<(), ExpandError> {
        for token in tokens {
            match *token {
                Token::Literal(text) => {
                    if run.out.len() + text.len() > run.max_len {
                        return Err(ExpandError::TooLong { max: run.max_len });
                    }
                    self.charge(text.len())?;
                    run.out.push_str(text);
                }
                Token::Variable(name) => {
                    run.substitutions += 1;
                    if run.substitutions > MAX_SUBSTITUTIONS {
                        return Err(ExpandError::TooManySubstitutions);
                    }
                    // The name is hashed and compared with the stack.
                    self.charge(name.len() + 1)?;
                    if run.stack.contains(&name) {
                        return Err(ExpandError::Cycle { name: name.into() });
                    }
                    if run.stack.len() >= MAX_DEPTH {
                        return Err(ExpandError::TooDeep { name: name.into() });
                    }
                    let Some((key, value)) = self.value_tokens(name)? else {
                        continue;
                    };
                    run.stack.push(key);
                    self.expand_tokens(&value, run)?;
                    run.stack.pop();
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
        assert_eq!(expand("$W0", &wide), Err(ExpandError::TooManySubstitutions));

        // Large output.
        let big = vars(&[
            ("A", "x".repeat(1024).as_str()),
            ("B", "$A".repeat(100).as_str()),
        ]);
        assert_eq!(
            expand("$B", &big),
            Err(ExpandError::TooLong {
                max: MAX_OUTPUT_LEN
            })
        );
        let mut expander = Expander::new(&big);
        assert_eq!(
            expander.expand_at_most("$A$A", 1500),
            Err(ExpandError::TooLong { max: 1500 })
        );
        assert_eq!(
            expander.expand_at_most("$A", 1500).map(|s| s.len()),
            Ok(1024)
        );
    }

    #[test]
    fn hostile_inputs_are_expanded_in_one_pass() {
        // Unterminated `${` everywhere: each is eaten, nothing is left. Go
        // scans for the `}` from every `$`; this finds there is none once.
        let opens = "${".repeat(100_000);
        assert_eq!(expand(&opens, &HashMap::new()).as_deref(), Ok(""));
        // The same text with a `}` at the very end: the first `${` takes
        // everything up to it as a name.
        let closed = format!("{opens}}}x");
        assert_eq!(expand(&closed, &HashMap::new()).as_deref(), Ok("x"));

        // 4,096 references to a 200 KB value: tokenised once, not 4,096 times.
        let v = vars(&[("V", opens.as_str()), ("W", "w")]);
        let refs = "$V".repeat(MAX_SUBSTITUTIONS);
        assert_eq!(expand(&refs, &v).as_deref(), Ok(""));
        // One more reference is over the substitution limit.
        let over = format!("{refs}$W");
        assert_eq!(expand(&over, &v), Err(ExpandError::TooManySubstitutions));

        // A chain of 4,096 variables, each referring to the next: refused
        // at the depth limit, after MAX_DEPTH substitutions.
        let chain: HashMap<String, String> = (0..MAX_SUBSTITUTIONS)
            .map(|i| (format!("V{i}"), format!("$V{}", i + 1)))
            .collect();
        assert_eq!(
            expand("$V0", &chain),
            Err(ExpandError::TooDeep {
                name: format!("V{MAX_DEPTH}")
            })
        );
    }

    #[test]
    fn one_expander_has_one_budget() {
        let long = "x".repeat(60_000);
        let v = vars(&[("V", long.as_str())]);
        let mut expander = Expander::new(&v);
        let mut ok = 0;
        let mut last = Ok(String::new());
        for _ in 0..JOB_WORK_BUDGET / long.len() + 2 {
            last = expander.expand("$V");
            if last.is_err() {
                break;
            }
            ok += 1;
        }
        assert_eq!(last, Err(ExpandError::BudgetExhausted));
        // The value is tokenised once (60,000 bytes), then every expansion
        // scans its 2-byte input, substitutes a 1-byte name (2) and
        // produces 60,000 bytes.
        assert_eq!(ok, (JOB_WORK_BUDGET - long.len()) / (long.len() + 4));
        // A fresh expander has a fresh budget.
        assert_eq!(Expander::new(&v).expand("$V").map(|s| s.len()), Ok(60_000));
    }
}
