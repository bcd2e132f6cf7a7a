//! Pure: what the helper's answers mean (the HTTP client,
//! `client.rs`, hands them over; the fuzz target `helper_answers` feeds
//! them arbitrary bytes).
//!
//! - `GET /can-take-job`: 200 with the JSON `true` or `false`; any status
//!   from 400 on means `false` (the helper is not up); anything else (a
//!   redirect, another success status, another body) is not understood.
//! - `POST /launch-job`: 201 launched; 503 busy or stopping, to be asked
//!   once more after its `Retry-After` (seconds, decimals accepted) up to
//!   [`BUSY_RETRY_MAX`], or after that when absent or unreadable; anything
//!   else refuses the job.

use super::settings::BUSY_RETRY_MAX;
use std::time::Duration;

/// Longest `can-take-job` body read (`true` or `false` with some spaces).
pub const CAN_TAKE_JOB_BODY_LIMIT: usize = 1024;

/// Longest body of a refused `launch-job` read (for its excerpt).
pub const LAUNCH_BODY_LIMIT: usize = 64 * 1024;

/// A `can-take-job` answer that is neither `true`, `false`, nor a status
/// meaning `false`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadyAnswerError {
    /// A redirect (never followed).
    #[error("answered a redirect (HTTP {0}), not followed")]
    Redirect(u16),
    /// A status the helper does not send.
    #[error("answered HTTP {0}, expected 200")]
    Status(u16),
    /// A 200 whose body is not the JSON `true` or `false`.
    #[error("answered 200 with a body that is not the JSON true or false")]
    Body,
}

/// Whether the helper can take a job, from the status and body of its
/// `can-take-job` answer.
pub fn read_can_take_job(status: u16, body: &[u8]) -> Result<bool, ReadyAnswerError> {
    match status {
        200 => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Bool(b)) => Ok(b),
            _ => Err(ReadyAnswerError::Body),
        },
        300..=399 => Err(ReadyAnswerError::Redirect(status)),
        s if s >= 400 => Ok(false),
        s => Err(ReadyAnswerError::Status(s)),
    }
}

/// What a `launch-job` answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchAnswer {
    /// 201: the job runs.
    Launched,
    /// 503: ask once more after this long.
    Busy(Duration),
    /// Anything else: the job is refused (the status).
    Refused(u16),
}

/// The meaning of a `launch-job` answer with `status` and `Retry-After`
/// header `retry_after`.
pub fn read_launch(status: u16, retry_after: Option<&str>) -> LaunchAnswer {
    match status {
        201 => LaunchAnswer::Launched,
        503 => LaunchAnswer::Busy(busy_wait(retry_after)),
        s => LaunchAnswer::Refused(s),
    }
}

/// How long to wait after a 503: its `Retry-After` in seconds up to
/// [`BUSY_RETRY_MAX`]; that when absent or unreadable (an HTTP date
/// included).
pub fn busy_wait(retry_after: Option<&str>) -> Duration {
    retry_after
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(BUSY_RETRY_MAX.as_secs_f64())))
        .unwrap_or(BUSY_RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_take_job_answers() {
        let table: [(u16, &[u8], Result<bool, ReadyAnswerError>); 12] = [
            (200, b"true", Ok(true)),
            (200, b" false\n", Ok(false)),
            (200, b"\"true\"", Err(ReadyAnswerError::Body)),
            (200, b"1", Err(ReadyAnswerError::Body)),
            (200, b"", Err(ReadyAnswerError::Body)),
            (200, b"true true", Err(ReadyAnswerError::Body)),
            (
                200,
                b"{\"can_take_job\": true}",
                Err(ReadyAnswerError::Body),
            ),
            (204, b"", Err(ReadyAnswerError::Status(204))),
            (302, b"true", Err(ReadyAnswerError::Redirect(302))),
            (401, b"true", Ok(false)),
            (503, b"", Ok(false)),
            (101, b"", Err(ReadyAnswerError::Status(101))),
        ];
        for (status, body, expected) in table {
            assert_eq!(
                read_can_take_job(status, body),
                expected,
                "{status} {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn launch_answers_and_busy_waits() {
        assert_eq!(read_launch(201, None), LaunchAnswer::Launched);
        assert_eq!(read_launch(200, None), LaunchAnswer::Refused(200));
        assert_eq!(read_launch(400, Some("1")), LaunchAnswer::Refused(400));
        assert_eq!(
            read_launch(503, Some("2")),
            LaunchAnswer::Busy(Duration::from_secs(2))
        );
        let s = Duration::from_secs_f64;
        let table = [
            (None, BUSY_RETRY_MAX),
            (Some("0"), Duration::ZERO),
            (Some(" 1.5 "), s(1.5)),
            (Some("3600"), BUSY_RETRY_MAX),
            (Some("-1"), BUSY_RETRY_MAX),
            (Some("NaN"), BUSY_RETRY_MAX),
            (Some("inf"), BUSY_RETRY_MAX),
            (Some("Wed, 21 Oct 2015 07:28:00 GMT"), BUSY_RETRY_MAX),
            (Some("1e308"), BUSY_RETRY_MAX),
        ];
        for (header, wait) in table {
            assert_eq!(busy_wait(header), wait, "{header:?}");
        }
    }
}
