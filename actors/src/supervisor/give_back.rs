//! Giving back jobs lost at acquisition: a job the coordinator handed out
//! whose answer died with the process before the state write is shown
//! running for this runner at GitLab, while nothing here knows it. After
//! each complete listing of a runner's resources, the jobs GitLab shows
//! running for it (trace-watch token) that the job table does not hold
//! and no listed resource carries, once older than `give_back_grace`, are
//! cancelled and retried: the pipeline goes on with a new job.

use super::*;
use crate::ports::RunningJob;
use crate::untrusted::untrusted;
use std::collections::HashMap;

/// Most jobs given back per runner and pass; the others wait for the next
/// pass.
const MAX_PER_PASS: usize = 20;

/// Most jobs remembered as seen unknown, per runner (the first sighting
/// ages a job whose start time the coordinator does not give).
const MAX_SIGHTINGS: usize = 1000;

/// What giving back needs beside the supervisor's fields.
#[derive(Debug, Default)]
pub(super) struct GiveBacks {
    /// Runners whose give-back is under way (one at a time per runner).
    running: HashSet<usize>,
    /// When each unknown running job (runner, job id) was first seen.
    seen: HashMap<(usize, i64), tokio::time::Instant>,
    /// Runners already told that giving back is off (no trace-watch token).
    warned_off: HashSet<usize>,
}

impl Supervisor {
    /// Starts giving back runner `i`'s lost jobs after a listing that
    /// skipped nothing; `carried` holds the job ids its resources carry.
    pub(super) fn start_give_back(
        &mut self,
        i: usize,
        carried: HashSet<i64>,
        ctx: &mut Context<Self>,
    ) {
        if self.draining || !self.give_backs.running.insert(i) {
            return;
        }
        let Some(coordinator) = self.runners.get(i).map(|r| r.coordinator.clone()) else {
            self.give_backs.running.remove(&i);
            return;
        };
        ctx.spawn(
            async move { coordinator.running_jobs().await }
                .into_actor(self)
                .map(move |res, act, ctx| act.on_running_jobs(i, carried, res, ctx)),
        );
    }

    fn on_running_jobs(
        &mut self,
        i: usize,
        carried: HashSet<i64>,
        res: Result<Option<Vec<RunningJob>>, CoordinatorError>,
        ctx: &mut Context<Self>,
    ) {
        let log = self.runner_log(i);
        let listed = match res {
            Ok(Some(listed)) => listed,
            Ok(None) => {
                if self.give_backs.warned_off.insert(i) {
                    slog::info!(
                        log,
                        "jobs lost at acquisition are not given back: no \
                         administrator token to list this runner's jobs, or its runner id \
                         is unknown"
                    );
                }
                self.give_backs.running.remove(&i);
                return;
            }
            Err(e) => {
                slog::warn!(log, "cannot list the jobs the coordinator shows running for \
                                  this runner; nothing given back";
                            "error" => %untrusted(&e));
                self.give_backs.running.remove(&i);
                return;
            }
        };
        let due = self.due_give_backs(i, &carried, listed);
        if due.is_empty() || self.draining {
            self.give_backs.running.remove(&i);
            return;
        }
        let Some(coordinator) = self.runners.get(i).map(|r| r.coordinator.clone()) else {
            self.give_backs.running.remove(&i);
            return;
        };
        ctx.spawn(
            async move {
                let mut done = Vec::with_capacity(due.len());
                for job in due {
                    let res = coordinator.give_back(&job).await;
                    done.push((job, res));
                }
                done
            }
            .into_actor(self)
            .map(move |done, act, _| {
                act.give_backs.running.remove(&i);
                act.on_given_back(i, done);
            }),
        );
    }

    /// The jobs of `listed` to give back now: unknown to the job table,
    /// carried by no resource, and older than the grace period (by the
    /// coordinator's start time, else since first seen here).
    fn due_give_backs(
        &mut self,
        i: usize,
        carried: &HashSet<i64>,
        listed: Vec<RunningJob>,
    ) -> Vec<RunningJob> {
        let now = tokio::time::Instant::now();
        let grace = self.settings.give_back_grace;
        let ids: HashSet<i64> = listed.iter().map(|j| j.id).collect();
        self.give_backs
            .seen
            .retain(|(r, id), _| *r != i || ids.contains(id));
        let mut due = Vec::new();
        for job in listed {
            let key = JobKey {
                runner: i,
                job_id: job.id,
            };
            if self.jobs.contains_key(&key) || carried.contains(&job.id) {
                self.give_backs.seen.remove(&(i, job.id));
                continue;
            }
            let seen_here = match self.give_backs.seen.get(&(i, job.id)) {
                Some(at) => now.saturating_duration_since(*at),
                None => {
                    if self.give_backs.seen.len() < MAX_SIGHTINGS {
                        self.give_backs.seen.insert((i, job.id), now);
                    }
                    Duration::ZERO
                }
            };
            let age = job.age.unwrap_or_default().max(seen_here);
            if age >= grace && due.len() < MAX_PER_PASS {
                due.push(job);
            }
        }
        due
    }

    fn on_given_back(
        &mut self,
        i: usize,
        done: Vec<(RunningJob, Result<Option<i64>, CoordinatorError>)>,
    ) {
        let log = self.runner_log(i);
        for (job, res) in done {
            self.give_backs.seen.remove(&(i, job.id));
            match res {
                Ok(new_job) => {
                    slog::warn!(log, "job shown running for this runner but known to nobody \
                                      here (lost at acquisition): cancelled and retried";
                                "job_id" => job.id, "project_id" => job.project_id,
                                "new_job_id" => ?new_job);
                    self.observe(Transition::JobGivenBack { runner: i });
                }
                Err(e) => {
                    slog::warn!(log, "cannot give back a job lost at acquisition; the next \
                                      pass tries again while it is shown running";
                                "job_id" => job.id, "project_id" => job.project_id,
                                "error" => %untrusted(&e));
                }
            }
        }
    }
}
