//! The poll slot of one runner, as a pure state machine: where its polling
//! stands ([`PollState`]) and, from the result of a poll, the next back-off
//! and when to poll next ([`NextPoll`]).

use crate::backoff::{Backoff, BackoffPolicy};
use std::time::Duration;

/// Where the polling of one runner stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PollState {
    /// May be polled as soon as the limits allow.
    Ready,
    /// Fetching the largest weight a job could have.
    Fetching,
    /// A poll is in flight.
    Polling,
    /// Waiting for `check_interval` or a back-off delay.
    Waiting,
    /// Blocked by the limits; waits for capacity to come back.
    Saturated,
}

impl PollState {
    /// The state's name, for the state dump.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            PollState::Ready => "ready",
            PollState::Fetching => "fetching the largest job weight",
            PollState::Polling => "polling",
            PollState::Waiting => "waiting",
            PollState::Saturated => "blocked by the limits",
        }
    }
}

/// How a poll (or the step before it) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PollOutcome {
    /// It failed; the server may ask to wait at least this long.
    Failed {
        /// Lower bound of the next delay (`Retry-After`).
        at_least: Option<Duration>,
    },
    /// The coordinator has no job.
    NoJob,
    /// A long poll ended without a job after being held `took`.
    LongPollEnded {
        /// How long the poll was in flight.
        took: Duration,
    },
    /// A job was acquired.
    Acquired,
}

/// When to poll next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum NextPoll {
    /// At once (the slot is ready).
    Now,
    /// After `delay`; `backing_off` when the delay is a back-off.
    After {
        /// The delay.
        delay: Duration,
        /// Whether it comes from the back-off (after a failure).
        backing_off: bool,
    },
}

/// The poll slot of one runner (see the module documentation).
#[derive(Debug)]
pub(crate) struct PollSlot {
    state: PollState,
    backoff: Backoff,
}

impl PollSlot {
    /// A ready slot backing off per `policy` (seeded when `seed` is given).
    pub(super) fn new(policy: BackoffPolicy, seed: Option<u64>) -> Self {
        let backoff = match seed {
            Some(seed) => Backoff::seeded(policy, seed),
            None => Backoff::new(policy),
        };
        PollSlot {
            state: PollState::Ready,
            backoff,
        }
    }

    /// Where the slot stands.
    pub(super) fn state(&self) -> PollState {
        self.state
    }

    /// Whether a poll may be tried now (limits permitting).
    pub(super) fn may_poll(&self) -> bool {
        matches!(self.state, PollState::Ready | PollState::Saturated)
    }

    /// Back-off delays taken since the last success.
    pub(super) fn retries(&self) -> u32 {
        self.backoff.retries()
    }

    /// Enters `state` (fetching the largest weight, polling, ready).
    pub(super) fn set(&mut self, state: PollState) {
        self.state = state;
    }

    /// The limits block the poll; true the first time (one log line and one
    /// cycle per saturation).
    pub(super) fn saturate(&mut self) -> bool {
        let was = std::mem::replace(&mut self.state, PollState::Saturated);
        was != PollState::Saturated
    }

    /// A delay passed: a waiting slot is ready again.
    pub(super) fn wait_over(&mut self) {
        if self.state == PollState::Waiting {
            self.state = PollState::Ready;
        }
    }

    /// The next step after `outcome`: a failure backs off (at least
    /// `at_least`), a success resets the back-off and polls again after
    /// `check_interval`, or at once after an acquired job when
    /// `repoll_immediately`.
    pub(super) fn after(
        &mut self,
        outcome: PollOutcome,
        check_interval: Duration,
        repoll_immediately: bool,
    ) -> NextPoll {
        let next = match outcome {
            PollOutcome::Failed { at_least } => NextPoll::After {
                delay: self.backoff.next_delay_at_least(at_least),
                backing_off: true,
            },
            PollOutcome::NoJob => {
                self.backoff.reset();
                NextPoll::After {
                    delay: check_interval,
                    backing_off: false,
                }
            }
            PollOutcome::LongPollEnded { took } => {
                // The hold paced this poll: the next one follows at once
                // when the hold lasted `check_interval`, and never sooner
                // than `check_interval` after the previous one was sent
                // (a coordinator that answers a long poll at once is not
                // polled faster than with short polls).
                self.backoff.reset();
                match check_interval.checked_sub(took) {
                    Some(rest) if !rest.is_zero() => NextPoll::After {
                        delay: rest,
                        backing_off: false,
                    },
                    _ => NextPoll::Now,
                }
            }
            PollOutcome::Acquired => {
                self.backoff.reset();
                if repoll_immediately {
                    NextPoll::Now
                } else {
                    NextPoll::After {
                        delay: check_interval,
                        backing_off: false,
                    }
                }
            }
        };
        self.state = match next {
            NextPoll::Now => PollState::Ready,
            NextPoll::After { .. } => PollState::Waiting,
        };
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Jitter;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn slot(jitter: Jitter) -> PollSlot {
        PollSlot::new(
            BackoffPolicy::new(S(3), S(300)).with_jitter(jitter),
            Some(1),
        )
    }

    fn delay(n: NextPoll) -> Duration {
        match n {
            NextPoll::After { delay, .. } => delay,
            NextPoll::Now => Duration::ZERO,
        }
    }

    #[test]
    fn failures_back_off_and_a_success_resets() {
        let mut s = slot(Jitter::None);
        let fail = PollOutcome::Failed { at_least: None };
        let got: Vec<_> = (0..3).map(|_| delay(s.after(fail, S(3), true))).collect();
        assert_eq!(got, vec![S(3), S(6), S(12)]);
        assert_eq!(s.state(), PollState::Waiting);
        assert_eq!(
            s.after(PollOutcome::NoJob, S(3), true),
            NextPoll::After {
                delay: S(3),
                backing_off: false
            }
        );
        assert_eq!(s.retries(), 0);
        assert_eq!(delay(s.after(fail, S(3), true)), S(3));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut s = slot(Jitter::None);
        let at_least = Some(S(60));
        assert_eq!(
            delay(s.after(PollOutcome::Failed { at_least }, S(3), true)),
            S(60)
        );
    }

    #[test]
    fn jittered_delays_stay_under_the_ceiling() {
        let mut s = slot(Jitter::Equal);
        for _ in 0..50 {
            let d = delay(s.after(PollOutcome::Failed { at_least: None }, S(3), true));
            assert!(d <= S(300), "{d:?}");
        }
    }

    #[test]
    fn an_acquired_job_repolls_at_once_if_configured() {
        let mut s = slot(Jitter::None);
        assert_eq!(s.after(PollOutcome::Acquired, S(3), true), NextPoll::Now);
        assert!(s.may_poll());
        assert_eq!(delay(s.after(PollOutcome::Acquired, S(3), false)), S(3));
        assert!(!s.may_poll());
        s.wait_over();
        assert!(s.may_poll());
    }

    #[test]
    fn a_long_poll_paces_itself() {
        let mut s = slot(Jitter::None);
        let ended = |took| PollOutcome::LongPollEnded { took };
        assert_eq!(s.after(ended(S(20)), S(3), true), NextPoll::Now);
        assert!(s.may_poll());
        assert_eq!(s.after(ended(S(3)), S(3), true), NextPoll::Now);
        assert_eq!(
            s.after(ended(Duration::from_millis(500)), S(3), true),
            NextPoll::After {
                delay: Duration::from_millis(2500),
                backing_off: false
            }
        );
        assert!(!s.may_poll());
        let fail = PollOutcome::Failed { at_least: None };
        assert_eq!(delay(s.after(fail, S(3), true)), S(3));
        assert_eq!(s.after(ended(S(30)), S(3), true), NextPoll::Now);
        assert_eq!(s.retries(), 0, "a long poll that ended resets the back-off");
    }

    #[test]
    fn saturation_is_reported_once() {
        let mut s = slot(Jitter::None);
        assert!(s.saturate());
        assert!(!s.saturate());
        assert!(s.may_poll());
    }
}
