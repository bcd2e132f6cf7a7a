//! Error mapping of the coordinator client: awc failures and unexpected
//! statuses become [`CoordinatorError`]s whose details name the call, the
//! method and the URL (never a query string, never a secret) and carry a
//! bounded, secret-scrubbed excerpt of the answer body.

use super::reply::{CallName, Reply};
use awc::error::{ConnectError, SendRequestError};
use paas_actors::ports::CoordinatorError;
use std::time::Duration;

/// Most characters of an answer body quoted in an error.
pub const EXCERPT_CHARS: usize = 200;

/// A transport failure (connection, timeout, protocol) → `Unavailable`.
pub(crate) fn send_error(
    call: CallName<'_>,
    err: &SendRequestError,
    timeout: Duration,
) -> CoordinatorError {
    let reason = match err {
        SendRequestError::Timeout => format!("no answer within {}s", timeout.as_secs_f32()),
        SendRequestError::Connect(ConnectError::Timeout) => "connection timed out".to_owned(),
        SendRequestError::Connect(e) => format!("cannot connect: {e}"),
        SendRequestError::Url(e) => format!("invalid URL: {e}"),
        SendRequestError::Send(e) => format!("sending failed: {e}"),
        SendRequestError::Response(e) => format!("malformed answer: {e}"),
        other => format!("request failed: {other}"),
    };
    CoordinatorError::Unavailable {
        detail: format!("{call}: {reason}"),
        retry_after: None,
    }
}

/// Reading the answer body failed or timed out → `Unavailable`.
pub(crate) fn body_error(call: CallName<'_>, reason: &str) -> CoordinatorError {
    CoordinatorError::Unavailable {
        detail: format!("{call}: reading the answer failed: {reason}"),
        retry_after: None,
    }
}

/// `Retry-After` in seconds, if present and numeric.
pub(crate) fn retry_after(reply: &Reply) -> Option<Duration> {
    crate::http_text::retry_after_seconds(reply.header("retry-after")?)
}

/// "answered 500 Internal Server Error: <excerpt>".
pub(crate) fn describe(call: CallName<'_>, reply: &Reply, secrets: &[&str]) -> String {
    let reason = awc::http::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let body = excerpt(&reply.body, secrets);
    if body.is_empty() {
        format!("{call} answered {} {reason}", reply.status)
    } else {
        format!("{call} answered {} {reason}: {body}", reply.status)
    }
}

/// The default mapping of a status nobody handled specially: 429, 5xx →
/// `Unavailable` (with `Retry-After`), anything else → `Unexpected`.
pub(crate) fn status_error(
    call: CallName<'_>,
    reply: &Reply,
    secrets: &[&str],
) -> CoordinatorError {
    let detail = describe(call, reply, secrets);
    if reply.status == 429 || reply.status >= 500 {
        CoordinatorError::Unavailable {
            detail,
            retry_after: retry_after(reply),
        }
    } else {
        CoordinatorError::Unexpected { detail }
    }
}

/// `Rejected` with the answer described.
pub(crate) fn rejected(
    call: CallName<'_>,
    reply: &Reply,
    secrets: &[&str],
    hint: &str,
) -> CoordinatorError {
    let mut detail = describe(call, reply, secrets);
    if !hint.is_empty() {
        detail.push_str(" — ");
        detail.push_str(hint);
    }
    CoordinatorError::Rejected { detail }
}

/// A bounded ([`EXCERPT_CHARS`]), single-line excerpt of a body with every
/// secret masked.
pub fn excerpt(body: &[u8], secrets: &[&str]) -> String {
    crate::http_text::excerpt(body, EXCERPT_CHARS, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_bounded_single_line_and_masks_secrets() {
        let body = format!("line one\n\n  tok-123 {}", "é".repeat(500));
        let e = excerpt(body.as_bytes(), &["tok-123"]);
        assert!(e.starts_with("line one [MASKED] éé"), "{e}");
        assert!(e.chars().count() <= EXCERPT_CHARS + 1);
        assert!(!e.contains('\n'));
        assert_eq!(excerpt(b"\xff\xfe", &[]), "\u{fffd}\u{fffd}");
        assert_eq!(excerpt(b"", &["x"]), "");
        assert_eq!(excerpt(b"abc", &[""]), "abc");
    }

    #[test]
    fn call_names_never_show_a_query() {
        let c = CallName {
            what: "job status",
            method: "GET",
            url: "http://h/api/v4/job?job_token=secret",
        };
        assert_eq!(c.to_string(), "job status (GET http://h/api/v4/job)");
    }
}
