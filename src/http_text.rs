//! Text from HTTP answers, made fit for logs and errors: bounded body
//! excerpts with secrets masked, and `Retry-After` values. Shared by the
//! GitLab and Clever Cloud clients.

use std::time::Duration;

/// A single-line excerpt of `body`: every secret masked, whitespace and
/// control characters collapsed to single spaces, cut after `max_chars`
/// characters (then ending with `…`). Never panics (char-boundary safe on
/// any input).
pub fn excerpt(body: &[u8], max_chars: usize, secrets: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(*s, crate::secret::MASK);
    }
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if count >= max_chars {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    out.trim_end().to_owned()
}

/// A `Retry-After` value in seconds (the HTTP-date form is not used by the
/// servers we talk to, and reads as `None`).
pub fn retry_after_seconds(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_collapsed_and_masked() {
        let table: [(&[u8], usize, &[&str], &str); 5] = [
            (b"a\n\n  b\tc\x07d", 10, &[], "a b c d"),
            (b"abcdef", 3, &[], "abc…"),
            (b"token tok-1 here", 50, &["tok-1"], "token [MASKED] here"),
            (b"   ", 10, &[], ""),
            (b"\xff\xfe ok", 10, &[], "\u{fffd}\u{fffd} ok"),
        ];
        for (body, max, secrets, expected) in table {
            assert_eq!(excerpt(body, max, secrets), expected);
        }
        let long = "é".repeat(500);
        assert_eq!(excerpt(long.as_bytes(), 200, &[]).chars().count(), 201);
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        assert_eq!(retry_after_seconds(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_seconds(""), None);
    }
}
