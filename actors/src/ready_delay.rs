//! Pure: how long a polled subject usually takes to become ready (a
//! deployment repository after its application is created, an inner
//! runner after the push), learnt from the polls themselves, so that the
//! first poll of the next subject lands just after it instead of asking
//! again and again on short steps.
//!
//! Each poll reports when it last saw the subject not ready and when it
//! saw it ready. The delay is known to lie between the two: their midpoint
//! is the sample, folded into the estimate with weight 1/4. A subject
//! already ready at the first poll only shows the estimate was late: the
//! estimate shrinks by a tenth, so that it keeps probing down towards the
//! real delay. The estimate never exceeds the configured step (the longest
//! wait between two polls), and a poller without one polls at once, as
//! before anything was learnt.
//!
//! Shared by the polls of one kind on one thread (`Cell`, no lock).

use std::cell::Cell;
use std::time::Duration;

/// The learnt delay (see the module documentation).
#[derive(Debug, Default)]
pub struct ReadyDelay {
    estimate: Cell<Option<Duration>>,
}

impl ReadyDelay {
    /// A delay with nothing learnt yet.
    pub fn new() -> ReadyDelay {
        ReadyDelay::default()
    }

    /// How long to wait before the first poll, at most `step`.
    pub fn first_wait(&self, step: Duration) -> Duration {
        self.estimate.get().unwrap_or(Duration::ZERO).min(step)
    }

    /// A subject seen ready at `ready` (time since the wait began), after a
    /// poll at `not_ready` saw it not ready yet (`None`: the first poll saw
    /// it ready). `step` bounds the estimate.
    pub fn observe(&self, not_ready: Option<Duration>, ready: Duration, step: Duration) {
        let estimate = match (not_ready, self.estimate.get()) {
            (None, Some(old)) => old.min(ready).mul_f64(0.9),
            (None, None) => ready.mul_f64(0.9),
            (Some(before), old) => {
                let sample = before.min(ready).saturating_add(ready) / 2;
                match old {
                    Some(old) => old.saturating_mul(3).saturating_add(sample) / 4,
                    None => sample,
                }
            }
        };
        self.estimate.set(Some(estimate.min(step)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_learnt_polls_at_once() {
        assert_eq!(ReadyDelay::new().first_wait(ms(1000)), Duration::ZERO);
    }

    #[test]
    fn the_first_wait_never_exceeds_the_step() {
        let d = ReadyDelay::new();
        d.observe(Some(ms(9_000)), ms(10_000), ms(60_000));
        assert_eq!(d.first_wait(ms(1_000)), ms(1_000));
        d.observe(Some(ms(9_000)), ms(10_000), ms(2_000));
        assert!(d.first_wait(ms(60_000)) <= ms(2_000));
    }

    /// A subject always ready after 500 ms, polled like the executor polls:
    /// the first poll after the learnt wait, then steps of 100 ms doubling.
    #[test]
    fn the_estimate_settles_near_a_steady_delay_with_few_polls() {
        let d = ReadyDelay::new();
        let step = ms(1000);
        let truth = ms(500);
        let mut polls_late = Vec::new();
        for _ in 0..40 {
            let mut at = d.first_wait(step);
            let mut not_ready = None;
            let mut gap = ms(100);
            let mut polls = 1;
            while at < truth {
                not_ready = Some(at);
                at += gap;
                gap = (gap * 2).min(step);
                polls += 1;
            }
            d.observe(not_ready, at, step);
            polls_late.push((polls, at - truth));
        }
        // After a few subjects: at most two polls, at most 100 ms late.
        for (polls, late) in &polls_late[10..] {
            assert!(*polls <= 2, "{polls_late:?}");
            assert!(*late <= ms(100), "{polls_late:?}");
        }
    }

    #[test]
    fn a_subject_ready_at_the_first_poll_makes_the_next_wait_shorter() {
        let d = ReadyDelay::new();
        d.observe(Some(ms(400)), ms(600), ms(1000));
        let before = d.first_wait(ms(1000));
        d.observe(None, before, ms(1000));
        assert!(d.first_wait(ms(1000)) < before);
    }
}
