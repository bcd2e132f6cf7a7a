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
//!
//! The coordinator can also speak for one job: when the runner has a
//! trace-watch token, the jobs held in a burst are asked about through
//! GitLab's Jobs API ([`RefusalGuard::due_confirmations`]: each at most once per
//! check interval), and its answer ([`RefusalGuard::confirm`]) is a typed
//! input: a job it shows over (`success`, `failed`, `canceled`,
//! `skipped`) is believed at once, without waiting for the patience; a job
//! it shows executing stays held (a coordinator refusing a live job's
//! token), as does a job it says nothing of.

use std::collections::{BTreeMap, BTreeSet};
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
    /// The Jobs API showed this held job over: it ends now.
    ConfirmedOver(i64),
    /// The Jobs API showed a held job executing: it stays held; `warn` is
    /// true for the first such answer of a burst (logged once).
    ConfirmedExecuting { warn: bool },
    /// Nothing refused, nothing held.
    Nothing,
}

/// What the Jobs API said of one held job (an answer that says nothing is
/// not an input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Confirmation {
    /// The job no longer executes.
    Over,
    /// The job still executes.
    Executing,
}

/// One runner's held refusals (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct RefusalGuard {
    held: BTreeSet<i64>,
    burst_since: Option<Instant>,
    /// When each held job was last asked about through the Jobs API.
    asked: BTreeMap<i64, Instant>,
    /// A held job was shown executing in this burst (warned once).
    live_warned: bool,
}

impl RefusalGuard {
    /// Jobs whose refusal is held.
    pub(crate) fn held(&self) -> &BTreeSet<i64> {
        &self.held
    }

    /// Forgets a job (it ended some other way).
    pub(crate) fn forget(&mut self, job_id: i64) {
        self.held.remove(&job_id);
        self.asked.remove(&job_id);
    }

    /// The jobs held in a burst to ask the Jobs API about now: those not
    /// asked within the last `interval` (at most one request per held job
    /// per check interval), marked asked at `now`. Empty outside a burst.
    pub(super) fn due_confirmations(&mut self, now: Instant, interval: Duration) -> Vec<i64> {
        if self.burst_since.is_none() {
            return Vec::new();
        }
        let mut due = Vec::new();
        for &job_id in &self.held {
            let recent = self
                .asked
                .get(&job_id)
                .is_some_and(|at| now.saturating_duration_since(*at) < interval);
            if !recent {
                due.push(job_id);
            }
        }
        for &job_id in &due {
            self.asked.insert(job_id, now);
        }
        due
    }

    /// Takes the Jobs API's answer about a job: believed at once when it
    /// shows the job over, held on when it shows it executing. A job no
    /// longer held (its burst ended, it ended some other way) learns
    /// nothing.
    pub(super) fn confirm(&mut self, job_id: i64, answer: Confirmation) -> Verdict {
        if !self.held.contains(&job_id) {
            return Verdict::Nothing;
        }
        match answer {
            Confirmation::Over => {
                self.forget(job_id);
                if self.held.is_empty() {
                    self.end_burst();
                }
                Verdict::ConfirmedOver(job_id)
            }
            Confirmation::Executing => Verdict::ConfirmedExecuting {
                warn: !std::mem::replace(&mut self.live_warned, true),
            },
        }
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
            self.asked.clear();
            if self.burst_since.is_none() {
                believed.extend(held);
            }
            self.end_burst();
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
            self.end_burst();
            return Verdict::BurstBelieved(self.take_held());
        }
        Verdict::Burst {
            started: since == now,
            jobs: self.held.len(),
        }
    }

    fn take_held(&mut self) -> Vec<i64> {
        self.asked.clear();
        std::mem::take(&mut self.held).into_iter().collect()
    }

    fn end_burst(&mut self) {
        self.burst_since = None;
        self.live_warned = false;
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

    /// A burst of three held jobs, started at `t0`.
    fn burst_of_three(t0: Instant) -> RefusalGuard {
        let mut g = RefusalGuard::default();
        assert!(matches!(
            g.judge(t0, false, &[1, 2, 3], false, SEC),
            Verdict::Burst { started: true, .. }
        ));
        g
    }

    #[test]
    fn jobs_are_asked_about_only_in_a_burst_and_once_per_interval() {
        let mut g = RefusalGuard::default();
        let t0 = Instant::now();
        assert_eq!(g.judge(t0, false, &[5], true, SEC), Verdict::AskWitness);
        assert!(g.due_confirmations(t0, SEC).is_empty(), "not a burst");
        let mut g = burst_of_three(t0);
        assert_eq!(g.due_confirmations(t0, SEC), vec![1, 2, 3]);
        assert!(g.due_confirmations(t0 + SEC / 2, SEC).is_empty());
        assert_eq!(g.due_confirmations(t0 + SEC, SEC), vec![1, 2, 3]);
    }

    #[test]
    fn a_job_the_jobs_api_shows_over_is_believed_at_once() {
        let t0 = Instant::now();
        let mut g = burst_of_three(t0);
        assert_eq!(g.confirm(2, Confirmation::Over), Verdict::ConfirmedOver(2));
        assert_eq!(g.held().iter().copied().collect::<Vec<_>>(), vec![1, 3]);
        // Still a burst for the others: their patience runs on.
        assert_eq!(
            g.judge(t0 + SEC * BURST_PATIENCE, false, &[1], false, SEC),
            Verdict::BurstBelieved(vec![1, 3])
        );
        // All shown over: the burst is over, a later one starts anew.
        let mut g = burst_of_three(t0);
        for job in [1, 2, 3] {
            assert_eq!(
                g.confirm(job, Confirmation::Over),
                Verdict::ConfirmedOver(job)
            );
        }
        assert!(g.held().is_empty());
        assert_eq!(g.confirm(1, Confirmation::Over), Verdict::Nothing);
        assert!(matches!(
            g.judge(t0 + SEC, false, &[4, 5, 6], false, SEC),
            Verdict::Burst { started: true, .. }
        ));
    }

    #[test]
    fn a_job_the_jobs_api_shows_executing_stays_held_and_warns_once_per_burst() {
        let t0 = Instant::now();
        let mut g = burst_of_three(t0);
        assert_eq!(
            g.confirm(1, Confirmation::Executing),
            Verdict::ConfirmedExecuting { warn: true }
        );
        assert_eq!(
            g.confirm(2, Confirmation::Executing),
            Verdict::ConfirmedExecuting { warn: false }
        );
        assert_eq!(g.held().len(), 3);
        let within = SEC * BURST_PATIENCE - Duration::from_millis(1);
        assert!(matches!(
            g.judge(t0 + within, false, &[1], false, SEC),
            Verdict::Burst { .. }
        ));
        // The coordinator recovers: the next burst warns again.
        assert_eq!(g.judge(t0 + within, true, &[], true, SEC), Verdict::Nothing);
        assert_eq!(g.confirm(1, Confirmation::Executing), Verdict::Nothing);
        let mut g2 = burst_of_three(t0);
        assert_eq!(
            g2.confirm(3, Confirmation::Executing),
            Verdict::ConfirmedExecuting { warn: true }
        );
        assert!(matches!(
            g.judge(t0 + SEC * 5, false, &[1, 2, 3], false, SEC),
            Verdict::Burst { started: true, .. }
        ));
        assert_eq!(
            g.confirm(3, Confirmation::Executing),
            Verdict::ConfirmedExecuting { warn: true }
        );
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
