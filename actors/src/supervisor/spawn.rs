//! Spawning the per-job actors, and resuming a loaded job where it stopped.

use super::*;
use crate::settings::TraceWatch;

impl Supervisor {
    /// Starts `task` in its per-job actor ([`JobActor`]), unless the job is
    /// no longer tracked. Its context's logger carries `runner`, `job_id`
    /// and `phase` (the task's step); its interrupts are the drain and, for
    /// a cancellable task, the job's cancellation.
    fn start_task<T: JobTask>(&mut self, key: JobKey, task: T) {
        let Some(link) = self.link.clone() else {
            return;
        };
        let Some(runner) = self.runners.get(key.runner) else {
            return;
        };
        let logger = runner
            .logger
            .new(slog::o!("job_id" => key.job_id, "phase" => T::PHASE));
        let (name, coordinator, paas) = (
            runner.name.clone(),
            runner.coordinator.clone(),
            runner.paas.clone(),
        );
        let drain = self.drain_tx.subscribe();
        let Some(entry) = self.jobs.get_mut(&key) else {
            return;
        };
        let cancel = if T::CANCELLABLE {
            let tx = entry.cancel.get_or_insert_with(|| watch::channel(false).0);
            Some(tx.subscribe())
        } else {
            None
        };
        entry.tasks += 1;
        self.tasks += 1;
        let jc = JobCtx {
            key,
            runner_name: name,
            job: entry.job.clone(),
            coordinator,
            paas,
            supervisor: link,
            interrupts: Interrupts::new(drain, cancel),
            ops: self.ops.clone(),
            logger,
        };
        JobActor::start(jc, task);
    }

    pub(super) fn spawn_launcher(&mut self, key: JobKey) {
        // A job waiting for room is launched once it has it.
        if self.ledger.is_waiting(key) {
            return;
        }
        let Some(entry) = self.jobs.get(&key) else {
            return;
        };
        let reuse = entry.reused_from.is_some();
        let resource = entry.resource.clone();
        let resume = (entry.phase == Phase::Provisioning && resource.is_none())
            .then(|| entry.resource_name.clone())
            .flatten();
        let retry = Retry {
            attempts: self.settings.launch_attempts,
            policy: self.settings.retry_policy(),
            seed: self.backoff_seed(key),
            create_budget: self.settings.create_retry_budget,
        };
        let creating_grace = self.settings.creating_grace;
        self.start_task(
            key,
            Launch {
                resource,
                resume_creating: resume,
                retry,
                creating_grace,
                spacing: self.launch_spacing.clone(),
                reuse,
            },
        );
    }

    pub(super) fn spawn_trace_watch(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        let Some(runner) = self.runners.get_mut(key.runner) else {
            return;
        };
        match runner.settings.trace_watch {
            None => {
                if !runner.warned_no_trace_watch {
                    runner.warned_no_trace_watch = true;
                    slog::warn!(
                        runner.logger,
                        "no trace-watch token: launched jobs are assumed to have started"
                    );
                }
                self.on_started(key, ctx);
            }
            Some(TraceWatch { timeout, poll_step }) => {
                let offset = self.jobs.get(&key).map_or(0, |e| e.trace_offset);
                let ready = self.runners.get(key.runner).map(|r| r.trace_ready.clone());
                let task = WatchTrace {
                    timeout,
                    poll_step,
                    trace_offset: offset,
                    ready: ready.unwrap_or_default(),
                };
                self.start_task(key, task);
            }
        }
    }

    /// Records what a trace watcher saw of runner `i`'s trace-watch token:
    /// one ERROR when it starts being refused, one INFO when a trace read
    /// works again. While refused, every watcher still tries one read, and
    /// a refused read counts the job as started.
    pub(super) fn note_trace_token(&mut self, i: usize, seen: &TraceSeen) {
        let Some(runner) = self.runners.get_mut(i) else {
            return;
        };
        let refused = matches!(seen, TraceSeen::TokenRefused { .. });
        if refused == runner.trace_watch_refused {
            return;
        }
        runner.trace_watch_refused = refused;
        match seen {
            TraceSeen::TokenRefused { detail } => slog::error!(
                runner.logger,
                "the trace-watch token is refused: launched jobs are assumed to have started \
                 until it works again (renew the token)";
                "detail" => %detail
            ),
            TraceSeen::Grew => {
                slog::info!(runner.logger, "the trace-watch token works again")
            }
        }
        self.observe(Transition::TraceTokenSeen { runner: i, refused });
    }

    pub(super) fn spawn_reporter(&mut self, key: JobKey) {
        let Some(entry) = self.jobs.get(&key) else {
            return;
        };
        let message = entry.failure.clone().unwrap_or_default();
        let (offset, appended) = (entry.trace_offset, entry.trace_appended);
        let (attempts, interval) = (
            self.settings.report_failure_attempts,
            self.settings.report_failure_interval,
        );
        let task = ReportFailure {
            message,
            trace_offset: offset,
            trace_appended: appended,
            attempts,
            interval,
        };
        self.start_task(key, task);
    }

    pub(super) fn spawn_decommissioner(&mut self, key: JobKey) {
        let Some(resource) = self.jobs.get(&key).and_then(|e| e.resource.clone()) else {
            return;
        };
        let seed = self.backoff_seed(key);
        let backoff = LazyBackoff::new(self.settings.retry_policy(), seed);
        let refused = LazyBackoff::new(self.settings.permanent_retry_policy(), seed);
        let task = Decommission {
            resource,
            backoff,
            refused,
            retry_now: Some(self.retry_deletions.subscribe()),
        };
        self.start_task(key, task);
    }

    /// Starts whatever a loaded job needs to resume where it stopped.
    pub(super) fn resume(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        let Some(phase) = self.jobs.get(&key).map(|e| e.phase) else {
            return;
        };
        match phase {
            Phase::Acquired | Phase::Provisioning | Phase::Provisioned => self.spawn_launcher(key),
            Phase::Launched => {
                let runner = self.runners.get(key.runner);
                if runner.is_some_and(|r| r.paas.started_at_launch()) {
                    // Its service accepted it before the stop: started.
                    self.on_started(key, ctx);
                } else {
                    self.start_checks_before_start(key, ctx);
                    self.spawn_trace_watch(key, ctx);
                }
            }
            Phase::Started => self.start_checks(key, ctx),
            Phase::LaunchFailed => self.spawn_reporter(key),
            Phase::Decommissioning => self.spawn_decommissioner(key),
            Phase::Finished => self.dispose(key, self.settings.keep_finished_resources, ctx),
            Phase::Reported => self.dispose(key, !self.settings.decommission_launch_failures, ctx),
            Phase::Standby => self.arm_standby_expiry(key, ctx),
            Phase::Gone => {}
        }
    }

    /// The seed of a job's retry delays: `backoff_seed` and the job, or
    /// `None` (from the clock) when no seed is set.
    fn backoff_seed(&self, key: JobKey) -> Option<u64> {
        let salt = ((key.runner as u64) << 48) ^ (key.job_id as u64);
        self.settings.backoff_seed.map(|s| s ^ salt)
    }
}
