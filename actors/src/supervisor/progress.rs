//! Progress checks: whether the launched jobs still run at the
//! coordinator, each on its own timer started at its launch
//! ([`super::check_schedule`]): every `job_progress_poll_interval`, never
//! two checks of one job within one interval, none while it is launching.
//!
//! A refused job token ([`JobStatus::TokenRefused`]) means the job is over,
//! except in a burst: when every job of a runner checked in one progress
//! check, and more than one, is refused at once, that is taken as a
//! coordinator problem and ends nothing. A burst repeated at
//! [`BURST_PATIENCE`] consecutive checks of that runner is then believed
//! (every job really ended), so that resources are not held forever.

use super::*;
use crate::untrusted::untrusted;
use tokio::time::Instant;

/// Consecutive refusal bursts of one runner after which they are believed.
pub(crate) const BURST_PATIENCE: u32 = 10;

impl Supervisor {
    /// Starts a job's check timer (at its launch, or when a launched job is
    /// loaded or adopted).
    pub(super) fn start_checks(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        self.checks.start(key, Instant::now());
        self.arm_check_timer(ctx);
    }

    /// Sets the one timer of the progress checks to the next due check.
    pub(super) fn arm_check_timer(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let Some(due) = self.checks.next_due() else {
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
            if jobs.is_empty() {
                continue;
            }
            let Some(poller) = self.runners.get(i).and_then(|r| r.poller.clone()) else {
                for job in &jobs {
                    self.checks.remove(JobKey {
                        runner: i,
                        job_id: job.id,
                    });
                }
                continue;
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
        self.arm_check_timer(ctx);
    }

    pub(super) fn on_checked(
        &mut self,
        i: usize,
        results: Vec<(i64, Result<JobStatus, CoordinatorError>)>,
        ctx: &mut Context<Self>,
    ) {
        let refused = results
            .iter()
            .filter(|(_, r)| matches!(r, Ok(JobStatus::TokenRefused)))
            .count();
        let burst = results.len() > 1 && refused == results.len();
        let believe_refusals = self.note_refusal_burst(i, burst, refused);
        let mut errors = 0usize;
        let mut last_error = None;
        for (job_id, res) in results {
            match res {
                Ok(JobStatus::Finished) => {
                    self.on_job_finished(JobKey { runner: i, job_id }, ctx);
                }
                Ok(JobStatus::TokenRefused) => {
                    if believe_refusals {
                        self.on_job_finished(JobKey { runner: i, job_id }, ctx);
                    }
                }
                Ok(JobStatus::Running) => {}
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
        self.schedule_polls(ctx);
        self.check_drained(ctx);
    }

    /// Counts runner `i`'s consecutive refusal bursts; true when this
    /// check's refusals are to be believed (no burst, or a burst repeated
    /// [`BURST_PATIENCE`] times). Logs a WARN when a streak starts and
    /// when it is believed.
    fn note_refusal_burst(&mut self, i: usize, burst: bool, refused: usize) -> bool {
        let Some(r) = self.runners.get_mut(i) else {
            return true;
        };
        if !burst {
            r.refusal_bursts = 0;
            return true;
        }
        r.refusal_bursts += 1;
        if r.refusal_bursts == 1 {
            slog::warn!(r.logger,
                "the coordinator refused every job token at once: taken as a coordinator \
                 problem, no job ended";
                "jobs" => refused, "believed_after_checks" => BURST_PATIENCE);
        }
        if r.refusal_bursts >= BURST_PATIENCE {
            slog::warn!(r.logger, "every job token still refused: the jobs are taken as over";
                        "jobs" => refused, "checks" => r.refusal_bursts);
            r.refusal_bursts = 0;
            return true;
        }
        false
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
