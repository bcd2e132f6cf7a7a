//! Job variable expansion (`deploy::expand`), checked against a direct
//! model of Go's `os.Expand` with the same limits: any difference in output
//! or error is a crash.
//!
//! Input: UTF-8 (lossy) split on NUL: the template, then `KEY=VALUE`
//! variables (the last value of a key wins).
#![no_main]

use heptapod_paas_runner::deploy::expand::{
    ExpandError, Expander, MAX_DEPTH, MAX_OUTPUT_LEN, MAX_SUBSTITUTIONS,
};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

/// Go's `isShellSpecialVar`.
fn special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

/// Go's `getShellName`, byte for byte.
fn shell_name(s: &str) -> (&str, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        if b.len() > 2 && special(b[1]) && b[2] == b'}' {
            return (&s[1..2], 3);
        }
        for i in 1..b.len() {
            if b[i] == b'}' {
                if i == 1 {
                    return ("", 2);
                }
                return (&s[1..i], i + 1);
            }
        }
        return ("", 1);
    }
    if special(b[0]) {
        return (&s[0..1], 1);
    }
    let mut i = 0;
    while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
        i += 1;
    }
    (&s[..i], i)
}

struct Model<'a> {
    vars: &'a HashMap<String, String>,
    stack: Vec<String>,
    substitutions: usize,
    max: usize,
    out: String,
}

impl Model<'_> {
    fn push(&mut self, s: &str) -> Result<(), ExpandError> {
        if self.out.len() + s.len() > self.max {
            return Err(ExpandError::TooLong { max: self.max });
        }
        self.out.push_str(s);
        Ok(())
    }

    /// Go's `os.Expand` loop, recursing into values.
    fn expand(&mut self, s: &str) -> Result<(), ExpandError> {
        let b = s.as_bytes();
        let (mut i, mut j) = (0, 0);
        while j < b.len() {
            if b[j] == b'$' && j + 1 < b.len() {
                self.push(&s[i..j])?;
                let (name, w) = shell_name(&s[j + 1..]);
                if name.is_empty() && w > 0 {
                    // Bad syntax: eaten.
                } else if name.is_empty() {
                    self.push("$")?;
                } else {
                    self.substitutions += 1;
                    if self.substitutions > MAX_SUBSTITUTIONS {
                        return Err(ExpandError::TooManySubstitutions);
                    }
                    if self.stack.iter().any(|n| n == name) {
                        return Err(ExpandError::Cycle { name: name.into() });
                    }
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(ExpandError::TooDeep { name: name.into() });
                    }
                    if let Some(value) = self.vars.get(name) {
                        self.stack.push(name.to_owned());
                        self.expand(value)?;
                        self.stack.pop();
                    }
                }
                j += w;
                i = j + 1;
            }
            j += 1;
        }
        self.push(&s[i.min(b.len())..])
    }
}

fn model(s: &str, vars: &HashMap<String, String>, max: usize) -> Result<String, ExpandError> {
    let mut m = Model {
        vars,
        stack: Vec::new(),
        substitutions: 0,
        max,
        out: String::new(),
    };
    m.expand(s)?;
    Ok(m.out)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let template = parts.next().unwrap_or_default();
    let vars: HashMap<String, String> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut expander = Expander::new(&vars);
    for max in [MAX_OUTPUT_LEN, 64] {
        let got = expander.expand_at_most(template, max);
        if got == Err(ExpandError::BudgetExhausted) {
            return;
        }
        assert_eq!(got, model(template, &vars, max), "template {template:?}");
    }
    if !template.contains('$') && template.len() <= 64 {
        assert_eq!(expander.expand(template).as_deref(), Ok(template));
    }
});
