//! Pure: whether a runner's refused job tokens mean "these jobs are over"
//! or "the coordinator has a problem".
//!
//! The coordinator refuses a job token once the job is over, so a refusal
//! normally ends the job. A coordinator in trouble (restored from a backup,
//! secrets rotated) refuses every token at once, and believing that would
//! delete the application of every running job. Each job has its own check
//! timer, so such a fault reaches the jobs one check at a time; a refusal
//! is therefore believed only when the coordinator is seen accepting
//! another token of the same runner after it:
//!
//! - a check that also accepted a token (`running` or `finished`) proves
//!   the coordinator healthy: its refusals, and those held waiting for a
//!   witness, are believed;
//! - otherwise the refused jobs are held, and one other checkable job of
//!   the runner is checked at once as a witness (its scheduled check moved
//!   earlier, not an extra one);
//! - with no other job to ask, fewer than [`BURST_MIN_JOBS`] held
//!   refusals are believed (jobs that ended together);
//! - with no other job to ask, [`BURST_MIN_JOBS`] or more held refusals
//!   (every checkable job of the runner refused, none accepted) is a
//!   burst: nothing ends until it has lasted [`BURST_PATIENCE`] check
//!   intervals, then every held refusal is believed. A token accepted during a burst ends it, and the
//!   refusals it held are dropped (answers of a coordinator in trouble):
//!   those jobs are asked again on their own timers.
//!
//! A failed check (no answer) teaches nothing and asks no witness, so the
//! witness checks are at most one per refusal.

use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// Held refusals of one runner, with no token accepted since, that make a
/// burst (a coordinator problem until it lasts).
pub(crate) const BURST_MIN_JOBS: usize = 3;

/// Check intervals a burst must last before its refusals are believed:
/// three (90 s at the default 30 s). A coordinator that refuses job tokens
/// does not stop the jobs: their inner runners keep running them and retry
/// their refused trace updates, so deleting the applications is what would
/// kill them, and a refusal of a minute must not. Waiting longer is paid by
/// jobs that really ended together with no other job of the runner to ask:
/// their resources stay, and their weight can keep the runner from taking
/// any job, for the whole patience. ARCHITECTURE.md, "Runner-side trouble",
/// weighs the two with measured figures.
pub(crate) const BURST_PATIENCE: u32 = 3;

/// What the supervisor does after one answered check of a runner's jobs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// These jobs are over (refusals believed).
    Believe(Vec<i64>),
    /// Refusals held: check one other job of the runner now.
    AskWitness,
    /// Refusals held in a burst; `started` is true for the check that
    /// started it (logged once).
    Burst { started: bool, jobs: usize },
    /// A burst lasted its patience: these jobs are taken as over.
    BurstBelieved(Vec<i64>),
    /// Nothing refused, nothing held.
    Nothing,
}

/// One runner's held refusals (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct RefusalGuard {
    held: BTreeSet<i64>,
    burst_since: Option<Instant>,
}

impl RefusalGuard {
    /// Jobs whose refusal is held.
    pub(crate) fn held(&self) -> &BTreeSet<i64> {
        &self.held
    }

    /// Forgets a job (it ended some other way).
    pub(crate) fn forget(&mut self, job_id: i64) {
        self.held.remove(&job_id);
    }

    /// Judges one answered check: `accepted` is true when the coordinator
    /// accepted at least one token of the runner in it, `refused` lists the
    /// jobs whose token it refused, `witness_available` tells whether the
    /// runner has a checkable job that is not held, and `interval` is the
    /// progress check interval.
    pub(super) fn judge(
        &mut self,
        now: Instant,
        accepted: bool,
        refused: &[i64],
        witness_available: bool,
        interval: Duration,
    ) -> Verdict {
        if accepted {
            // Held refusals of a burst were answers of a coordinator in
            // trouble: dropped, their jobs are asked again on their timers.
            // Held refusals waiting for a witness are believed.
            let mut believed: BTreeSet<i64> = refused.iter().copied().collect();
            let held = std::mem::take(&mut self.held);
            if self.burst_since.take().is_none() {
                believed.extend(held);
            }
            return if believed.is_empty() {
                Verdict::Nothing
            } else {
                Verdict::Believe(believed.into_iter().collect())
            };
        }
        if refused.is_empty() {
            // Nothing learnt (the check failed): the timers ask again.
            return Verdict::Nothing;
        }
        self.held.extend(refused.iter().copied());
        if self.burst_since.is_none() {
            if witness_available {
                return Verdict::AskWitness;
            }
            if self.held.len() < BURST_MIN_JOBS {
                return Verdict::Believe(self.take_held());
            }
        }
        let since = *self.burst_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= interval.saturating_mul(BURST_PATIENCE) {
            self.burst_since = None;
            return Verdict::BurstBelieved(self.take_held());
        }
        Verdict::Burst {
            started: since == now,
            jobs: self.held.len(),
        }
    }

    fn take_held(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.held).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_refusal_with_an_accepted_token_in_the_same_check_is_believed() {
        let mut g = RefusalGuard::default();
        let now = Instant::now();
        assert_eq!(
            g.judge(now, true, &[5], true, SEC),
            Verdict::Believe(vec![5])
        );
        assert!(g.held().is_empty());
    }

    #[test]
    fn a_lone_refusal_asks_a_witness_then_believes_on_its_acceptance() {
        let mut g = RefusalGuard::default();
        let now = Instant::now();
        assert_eq!(g.judge(now, false, &[5, 6], true, SEC), Verdict::AskWitness);
        assert_eq!(g.held().len(), 2);
        assert_eq!(
            g.judge(now, true, &[], true, SEC),
            Verdict::Believe(vec![5, 6])
        );
        assert_eq!(g.judge(now, true, &[], true, SEC), Verdict::Nothing);
    }

    #[test]
    fn jobs_that_end_together_with_no_other_job_are_believed() {
        let mut g = RefusalGuard::default();
        let now = Instant::now();
        assert_eq!(
            g.judge(now, false, &[5, 6], false, SEC),
            Verdict::Believe(vec![5, 6])
        );
    }

    #[test]
    fn a_refused_witness_grows_the_held_set_into_a_burst_that_waits_its_patience() {
        let mut g = RefusalGuard::default();
        let t0 = Instant::now();
        assert_eq!(g.judge(t0, false, &[5, 6], true, SEC), Verdict::AskWitness);
        assert_eq!(
            g.judge(t0, false, &[7], false, SEC),
            Verdict::Burst {
                started: true,
                jobs: 3
            }
        );
        // Refused again before the patience has passed: still held.
        let within = SEC * BURST_PATIENCE - Duration::from_millis(1);
        assert_eq!(
            g.judge(t0 + within, false, &[5, 6, 7], false, SEC),
            Verdict::Burst {
                started: false,
                jobs: 3
            }
        );
        assert_eq!(
            g.judge(t0 + SEC * BURST_PATIENCE, false, &[5], false, SEC),
            Verdict::BurstBelieved(vec![5, 6, 7])
        );
        assert!(g.held().is_empty());
    }

    #[test]
    fn many_jobs_ending_together_ask_a_witness_first() {
        let mut g = RefusalGuard::default();
        let now = Instant::now();
        assert_eq!(
            g.judge(now, false, &[1, 2, 3, 4], true, SEC),
            Verdict::AskWitness
        );
        assert_eq!(
            g.judge(now, true, &[], true, SEC),
            Verdict::Believe(vec![1, 2, 3, 4])
        );
    }

    #[test]
    fn an_accepted_token_ends_a_burst_and_drops_what_it_held() {
        let mut g = RefusalGuard::default();
        let t0 = Instant::now();
        assert!(matches!(
            g.judge(t0, false, &[1, 2, 3], false, SEC),
            Verdict::Burst { started: true, .. }
        ));
        // The coordinator recovers: a token is accepted. The held jobs ran
        // all along; nothing ends.
        assert_eq!(g.judge(t0 + SEC, true, &[], true, SEC), Verdict::Nothing);
        assert!(g.held().is_empty());
        // Refused again later, in a healthy check: believed.
        assert_eq!(
            g.judge(t0 + SEC * 2, true, &[2], true, SEC),
            Verdict::Believe(vec![2])
        );
    }

    #[test]
    fn a_failed_check_asks_no_witness() {
        let mut g = RefusalGuard::default();
        let now = Instant::now();
        assert_eq!(g.judge(now, false, &[5], true, SEC), Verdict::AskWitness);
        assert_eq!(g.judge(now, false, &[], true, SEC), Verdict::Nothing);
        assert_eq!(g.held().len(), 1);
    }

    #[test]
    fn forgotten_jobs_are_not_believed_later() {
        let mut g = RefusalGuard::default();
        let now = Instant::now();
        assert_eq!(g.judge(now, false, &[5], true, SEC), Verdict::AskWitness);
        g.forget(5);
        assert_eq!(g.judge(now, true, &[], true, SEC), Verdict::Nothing);
    }
}
