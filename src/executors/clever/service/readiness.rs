//! Waiting for a helper to answer `can-take-job` true: the first ask after
//! `first` (what the previous helpers took, learnt by the caller), then on
//! steps growing from 0.1 s up to `step` (`BackoffPolicy::polling`), each
//! ask bounded by what is left of `timeout` (at least one second, so that
//! the last one can land), the last one at the deadline. Any answer but
//! `true` (`false`, an error status, no answer, a body not understood) is
//! "not yet"; the last one is kept for the message of a timeout.

use super::client::HelperClient;
use crate::secret::Secret;
use actix_rt::time::{sleep, Instant};
use paas_actors::backoff::BackoffPolicy;
use std::time::Duration;

/// The shortest time given to one ask.
const MIN_ASK: Duration = Duration::from_secs(1);

/// How one wait is paced.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pace {
    /// Before the first ask.
    pub first: Duration,
    /// Longest wait between two asks.
    pub step: Duration,
    /// Longest wait in all.
    pub timeout: Duration,
}

/// The helper answered `true`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ready {
    /// When the last ask that was not `true` was sent, since the wait began
    /// (`None`: the first ask got `true`).
    pub not_ready: Option<Duration>,
    /// When the ask that got `true` was sent, since the wait began.
    pub ready: Duration,
}

/// The helper never answered `true` in time.
#[derive(Clone, Debug)]
pub(super) struct NotReady {
    /// How many times it was asked.
    pub asked: u32,
    /// Its last answer (`false`, or why there was none).
    pub last: String,
}

/// Asks the helper at `base` until it answers `true`, paced by `pace`.
pub(super) async fn wait_ready(
    client: &HelperClient,
    base: &str,
    token: &Secret,
    pace: Pace,
) -> Result<Ready, NotReady> {
    let began = Instant::now();
    let deadline = began + pace.timeout.min(crate::git::MAX_TIMEOUT);
    let mut steps = BackoffPolicy::polling(pace.step).start();
    let mut not_ready = None;
    let mut asked = 0;
    sleep(pace.first.min(pace.timeout)).await;
    loop {
        let sent = began.elapsed();
        let left = deadline.saturating_duration_since(Instant::now());
        asked += 1;
        let last = match client.can_take_job(base, token, left.max(MIN_ASK)).await {
            Ok(true) => {
                return Ok(Ready {
                    not_ready,
                    ready: sent,
                })
            }
            Ok(false) => "false".to_string(),
            Err(e) => e.to_string(),
        };
        not_ready = Some(sent);
        let now = Instant::now();
        if now >= deadline {
            return Err(NotReady { asked, last });
        }
        sleep(steps.next_delay().min(deadline - now)).await;
    }
}
