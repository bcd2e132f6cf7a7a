//! Progress checks: whether the launched jobs still run at the
//! coordinator, each on its own timer ([`super::check_schedule`]): every
//! `job_progress_poll_interval` from its observed start (its trace grew, or
//! its service accepted it), never two checks of one job within one
//! interval, none before its launch. A job launched but not yet seen
//! started has its first check two intervals after its launch: before its
//! start it can only end by being cancelled, which that check still sees;
//! a job seen started within two intervals is not checked before, and its
//! end is seen within one interval of its start's cadence, as with a timer
//! from the launch.
//!
//! A refused job token ([`JobStatus::TokenRefused`]) means the job is over
//! once the coordinator is seen accepting another token of the same runner;
//! several refusals with none accepted are taken as a coordinator problem
//! for a while (see [`super::refusal_guard`]), unless GitLab's Jobs API,
//! asked with the trace-watch token, shows the job over.

use super::refusal_guard::{Confirmation, Verdict, BURST_PATIENCE};
use super::*;
use crate::ports::JobApiStatus;
use crate::untrusted::untrusted;
use std::collections::BTreeSet;
use tokio::time::Instant;

/// Waiting checks scanned for a witness job (bounds the work per refusal).
const WITNESS_SCAN: usize = 4096;

impl Supervisor {
    /// Starts a job's check timer (when a started job is loaded or
    /// adopted).
    pub(super) fn start_checks(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        self.checks.start(key, Instant::now());
        self.arm_check_timer(ctx);
    }

    /// Starts the check timer of a job launched but not yet seen started:
    /// first check two intervals later (see the module documentation).
    pub(super) fn start_checks_before_start(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        self.checks.start_in(key, Instant::now(), 2);
        self.arm_check_timer(ctx);
    }

    /// Starts a job's check timer anew, at its observed start.
    pub(super) fn restart_checks(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        self.checks.restart(key, Instant::now());
        self.arm_check_timer(ctx);
    }

    /// Sets the one timer of the progress checks to the next due check.
    pub(super) fn arm_check_timer(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let Some(due) = self.checks.next_batch_at() else {
            return;
        };
        if let Some((at, handle)) = self.progress_timer {
            if at <= due {
                return;
            }
            ctx.cancel_future(handle);
        }
        let wait = due.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(wait, |act, ctx| {
            act.progress_timer = None;
            act.check_progress(ctx);
        });
        self.progress_timer = Some((due, handle));
    }

    /// Sends the checks that are due, one batch per runner.
    pub(super) fn check_progress(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let n = self.runners.len();
        let mut per_runner: Vec<Vec<Job>> = (0..n).map(|_| Vec::new()).collect();
        for key in self.checks.take_due(Instant::now()) {
            let job = self.jobs.get(&key).filter(|e| {
                let cancelled = e.cancel.as_ref().is_some_and(|c| *c.borrow());
                matches!(e.phase, Phase::Launched | Phase::Started) && !cancelled
            });
            match (job, per_runner.get_mut(key.runner)) {
                (Some(e), Some(v)) => v.push(e.job.clone()),
                _ => self.checks.remove(key),
            }
        }
        for (i, jobs) in per_runner.into_iter().enumerate() {
            if !jobs.is_empty() {
                self.send_checks(i, jobs, ctx);
            }
        }
        self.arm_check_timer(ctx);
    }

    /// Sends one batch of checks of runner `i`'s jobs to its poller (their
    /// schedule slots are in flight).
    fn send_checks(&mut self, i: usize, jobs: Vec<Job>, ctx: &mut Context<Self>) {
        let Some(poller) = self.runners.get(i).and_then(|r| r.poller.clone()) else {
            for job in &jobs {
                self.checks.remove(JobKey {
                    runner: i,
                    job_id: job.id,
                });
            }
            return;
        };
        let log = self.runner_log(i);
        let sent: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        ctx.spawn(
            async move { answer(poller.send(CheckJobs { jobs }), "poller", &log).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    // No answer: nothing learnt; the next check asks again.
                    act.on_checked(i, res.unwrap_or_else(Vec::new), ctx);
                    let now = Instant::now();
                    for job_id in sent {
                        act.checks.checked(JobKey { runner: i, job_id }, now);
                    }
                    act.arm_check_timer(ctx);
                }),
        );
    }

    /// Whether runner `i`'s job is launched or started and not cancelled
    /// (its status can be checked).
    fn checkable(&self, key: &JobKey) -> bool {
        self.jobs.get(key).is_some_and(|e| {
            let cancelled = e.cancel.as_ref().is_some_and(|c| *c.borrow());
            matches!(e.phase, Phase::Launched | Phase::Started) && !cancelled
        })
    }

    /// A waiting job of runner `i` that can be checked and whose token is
    /// not held as refused, soonest due first.
    fn find_witness(&self, i: usize, held: &BTreeSet<i64>) -> Option<JobKey> {
        self.checks
            .waiting_of(i, WITNESS_SCAN)
            .into_iter()
            .find(|key| !held.contains(&key.job_id) && self.checkable(key))
    }

    pub(super) fn on_checked(
        &mut self,
        i: usize,
        results: Vec<(i64, Result<JobStatus, CoordinatorError>)>,
        ctx: &mut Context<Self>,
    ) {
        let accepted = results
            .iter()
            .any(|(_, r)| matches!(r, Ok(JobStatus::Running | JobStatus::Finished)));
        let refused: Vec<i64> = results
            .iter()
            .filter(|(_, r)| matches!(r, Ok(JobStatus::TokenRefused)))
            .map(|(id, _)| *id)
            .collect();
        let mut errors = 0usize;
        let mut last_error = None;
        for (job_id, res) in results {
            match res {
                Ok(JobStatus::Finished) => {
                    self.on_job_finished(JobKey { runner: i, job_id }, ctx);
                }
                Ok(JobStatus::TokenRefused | JobStatus::Running) => {}
                Err(e) => {
                    errors += 1;
                    last_error = Some(e);
                }
            }
        }
        if let Some(e) = last_error {
            let log = self.runner_log(i);
            slog::warn!(log, "could not check the progress of some jobs";
                        "failed_checks" => errors, "error" => %untrusted(&e));
        }
        self.judge_refusals(i, accepted, &refused, ctx);
        self.schedule_polls(ctx);
        self.check_drained(ctx);
    }

    /// Applies the refusal guard's verdict on one answered check of runner
    /// `i`: ends the believed jobs, asks a witness, or logs a burst.
    fn judge_refusals(
        &mut self,
        i: usize,
        accepted: bool,
        refused: &[i64],
        ctx: &mut Context<Self>,
    ) {
        let interval = self.settings.job_progress_poll_interval;
        let Some(held) = self.runners.get(i).map(|r| r.refusals.held().clone()) else {
            return;
        };
        let stale: Vec<i64> = held
            .iter()
            .copied()
            .filter(|&job_id| !self.checkable(&JobKey { runner: i, job_id }))
            .collect();
        let witness = if !accepted && !refused.is_empty() {
            let mut asked = held;
            asked.extend(refused.iter().copied());
            self.find_witness(i, &asked)
        } else {
            None
        };
        let Some(r) = self.runners.get_mut(i) else {
            return;
        };
        for job_id in stale {
            r.refusals.forget(job_id);
        }
        let verdict = r.refusals.judge(
            Instant::now(),
            accepted,
            refused,
            witness.is_some(),
            interval,
        );
        let logger = r.logger.clone();
        match verdict {
            Verdict::Nothing => {}
            Verdict::Believe(jobs) => self.finish_refused(i, jobs, ctx),
            Verdict::AskWitness => {
                let job = witness
                    .filter(|key| self.checks.take_early(*key))
                    .and_then(|key| self.jobs.get(&key))
                    .map(|e| e.job.clone());
                if let Some(job) = job {
                    slog::debug!(logger, "job token refused: asking about another job first";
                                 "witness" => job.id, "refused" => refused.len());
                    self.send_checks(i, vec![job], ctx);
                }
            }
            Verdict::Burst { started, jobs } => {
                // With the Jobs API asked, the warning waits for its
                // answers: jobs that ended together are no coordinator
                // problem.
                if !self.confirm_held(i, started, ctx) && started {
                    warn_burst(&logger, jobs);
                }
            }
            Verdict::BurstBelieved(jobs) => {
                slog::warn!(logger, "every job token still refused: the jobs are taken as over";
                            "jobs" => jobs.len(), "intervals" => BURST_PATIENCE);
                self.finish_refused(i, jobs, ctx);
            }
            Verdict::ConfirmedOver(_) | Verdict::ConfirmedExecuting { .. } => {}
        }
    }

    /// Asks the Jobs API about runner `i`'s jobs held in a burst, each at
    /// most once per check interval; false when nothing was asked. A
    /// `burst_started` check warns about the burst once the answers are in,
    /// if jobs are still held then.
    fn confirm_held(&mut self, i: usize, burst_started: bool, ctx: &mut Context<Self>) -> bool {
        let interval = self.settings.job_progress_poll_interval;
        let Some(r) = self.runners.get_mut(i) else {
            return false;
        };
        let Some(poller) = r.poller.clone() else {
            return false;
        };
        let due = r.refusals.due_confirmations(Instant::now(), interval);
        let jobs: Vec<Job> = due
            .into_iter()
            .filter_map(|job_id| self.jobs.get(&JobKey { runner: i, job_id }))
            .map(|e| e.job.clone())
            .collect();
        if jobs.is_empty() {
            return false;
        }
        let log = self.runner_log(i);
        ctx.spawn(
            async move { answer(poller.send(ConfirmJobs { jobs }), "poller", &log).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.on_confirmed(i, res.unwrap_or_else(Vec::new), ctx);
                    if burst_started {
                        act.warn_burst_if_held(i);
                    }
                }),
        );
        true
    }

    /// The burst warning, when the Jobs API's answers left runner `i`'s
    /// refused jobs held.
    fn warn_burst_if_held(&self, i: usize) {
        if let Some(r) = self.runners.get(i) {
            let held = r.refusals.held().len();
            if held > 0 {
                warn_burst(&r.logger, held);
            }
        }
    }

    /// Takes the Jobs API's answers about runner `i`'s held jobs: a job it
    /// shows over ends now; one it shows executing stays held; nothing
    /// learnt from the others.
    fn on_confirmed(
        &mut self,
        i: usize,
        answers: Vec<(i64, Result<Option<JobApiStatus>, CoordinatorError>)>,
        ctx: &mut Context<Self>,
    ) {
        let mut ended = false;
        for (job_id, res) in answers {
            let key = JobKey { runner: i, job_id };
            let status = match res {
                Ok(Some(status)) if self.checkable(&key) => status,
                Ok(_) => continue,
                Err(e) => {
                    let log = self.job_log(key);
                    slog::debug!(log, "the Jobs API said nothing of a job whose token is refused";
                                 "error" => %untrusted(&e));
                    continue;
                }
            };
            let input = match status {
                JobApiStatus::Over(_) => Confirmation::Over,
                JobApiStatus::Executing(_) => Confirmation::Executing,
            };
            let log = self.job_log(key);
            let Some(r) = self.runners.get_mut(i) else {
                return;
            };
            match r.refusals.confirm(job_id, input) {
                Verdict::ConfirmedOver(job_id) => {
                    slog::info!(log, "the Jobs API shows the job over: its refused token is believed";
                                "job_status" => status.as_str());
                    self.finish_refused(i, vec![job_id], ctx);
                    ended = true;
                }
                Verdict::ConfirmedExecuting { warn: true } => {
                    slog::warn!(log,
                        "the coordinator refuses the token of a job the Jobs API shows executing: \
                         the job is held, not ended";
                        "job_status" => status.as_str());
                }
                _ => {}
            }
        }
        if ended {
            self.schedule_polls(ctx);
            self.check_drained(ctx);
        }
    }

    /// Ends runner `i`'s jobs whose refused token is believed.
    fn finish_refused(&mut self, i: usize, jobs: Vec<i64>, ctx: &mut Context<Self>) {
        for job_id in jobs {
            self.on_job_finished(JobKey { runner: i, job_id }, ctx);
        }
    }

    pub(super) fn on_job_finished(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        let Some(entry) = self.jobs.get(&key) else {
            return;
        };
        let log = self.job_log(key);
        match entry.phase {
            Phase::Started => {
                self.checks.remove(key);
                slog::info!(log, "job finished, according to the coordinator");
                self.apply(key, JobEvent::FinishedAtCoordinator);
                self.dispose(key, self.settings.keep_finished_resources, ctx);
            }
            p if p.is_launching() => {
                self.checks.remove(key);
                slog::warn!(log, "job cancelled at the coordinator while launching";
                            "phase" => p.as_str());
                if entry.tasks > 0 {
                    if let Some(c) = &entry.cancel {
                        let _ = c.send(true);
                    }
                } else {
                    self.on_cancelled(key, ctx);
                }
            }
            _ => {}
        }
    }
}

/// The warning of a burst of refused job tokens still held: `jobs` held,
/// believed after [`BURST_PATIENCE`] intervals unless a token is accepted.
fn warn_burst(logger: &slog::Logger, jobs: usize) {
    slog::warn!(logger,
        "the coordinator refused every job token it was asked about: taken as a \
         coordinator problem, no job ended";
        "jobs" => jobs, "believed_after_intervals" => BURST_PATIENCE);
}
