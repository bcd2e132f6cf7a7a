//! The job phases: events of the per-job actors applied to the phase
//! machine ([`crate::job`]), and the end of a job's life.

use super::*;
use crate::job_story::Outcome;
use crate::ports::Seconds;
use crate::untrusted::untrusted;

impl Supervisor {
    /// Applies `event` to a job's phase; false (and a log line) if invalid.
    pub(super) fn apply(&mut self, key: JobKey, event: JobEvent) -> bool {
        let Some(entry) = self.jobs.get_mut(&key) else {
            return false;
        };
        match transition(entry.phase, event) {
            Ok(to) => {
                let from = entry.phase;
                entry.phase = to;
                let now = tokio::time::Instant::now();
                entry.phase_since = now;
                match event {
                    JobEvent::FinishedAtCoordinator => {
                        entry.finished_at = Some(now);
                        entry.story.ended(if from == Phase::Started {
                            Outcome::Finished
                        } else {
                            Outcome::CancelledBeforeStart
                        });
                    }
                    JobEvent::LaunchFailed => entry.story.ended(Outcome::LaunchFailed),
                    JobEvent::TraceSeen => entry.story.started(now),
                    _ => {}
                }
                let changed = Transition::PhaseChanged {
                    runner: key.runner,
                    event,
                    from,
                    to,
                    tracked_for: now.saturating_duration_since(entry.tracked_at),
                    finished_for: entry
                        .finished_at
                        .map(|at| now.saturating_duration_since(at)),
                };
                if !to.is_launching() {
                    self.ledger.set_provisioning(key, false);
                    entry.cancel = None;
                }
                self.observe(changed);
                true
            }
            Err(e) => {
                let log = self.job_log(key);
                slog::debug!(log, "ignored event"; "error" => %e);
                false
            }
        }
    }

    /// Puts a job in the table; its weight is in the ledger already.
    pub(super) fn add_job(&mut self, key: JobKey, entry: JobEntry, origin: JobOrigin) {
        let phase = entry.phase;
        self.jobs.insert(key, entry);
        self.observe(Transition::JobAdded { key, phase, origin });
    }

    /// The organisation (PAAS scope) of a job's resource, when known.
    fn organisation(&self, key: JobKey) -> Option<String> {
        let resource = self.jobs.get(&key)?.resource.as_ref()?;
        self.runners.get(key.runner)?.paas.resource_scope(resource)
    }

    /// The end line of a job's story: who, where, how it ended and how
    /// long each part took.
    pub(super) fn log_job_over(&self, key: JobKey, end: JobEnd) {
        let Some(e) = self.jobs.get(&key) else {
            return;
        };
        let now = tokio::time::Instant::now();
        let durations = e.story.durations(e.tracked_at, e.finished_at, now);
        let log = self.job_log(key).new(e.story.identity());
        slog::info!(log, "job over"; durations, "end" => end.as_str(),
                    "organisation" => self.organisation(key));
    }

    /// Forgets a job: its resource is gone or no longer ours to manage.
    pub(super) fn forget(&mut self, key: JobKey, end: JobEnd) {
        self.checks.remove(key);
        self.log_job_over(key, end);
        if let Some(e) = self.jobs.remove(&key) {
            let name = e.resource.map(|r| r.name).or(e.resource_name);
            if let (Some(name), Some(pass)) = (
                name,
                self.runners
                    .get_mut(key.runner)
                    .and_then(|r| r.reconcile.as_mut()),
            ) {
                pass.forgotten.insert(name);
            }
            self.ledger.release(key);
            self.observe(Transition::JobRemoved {
                key,
                phase: e.phase,
                end,
            });
            self.launch_ready();
        }
    }

    /// The job no longer needs its resource: decommission or forget it.
    pub(super) fn dispose(&mut self, key: JobKey, keep: bool, ctx: &mut Context<Self>) {
        let has_resource = self.jobs.get(&key).is_some_and(|e| e.resource.is_some());
        match after_use(has_resource, keep) {
            JobEvent::DecommissionStarted if self.keeps_on_standby(key) => {
                self.start_standby(key, ctx);
            }
            JobEvent::DecommissionStarted => {
                self.apply(key, JobEvent::DecommissionStarted);
                self.mark_dirty(ctx);
                // Write-ahead: the resource is in `to_decommission` on disk
                // before the delete call.
                self.after_persist(ctx, move |act, _| act.spawn_decommissioner(key));
            }
            _ => {
                if has_resource {
                    let log = self.job_log(key);
                    slog::warn!(log, "keeping the resource as configured");
                }
                self.apply(key, JobEvent::Released);
                self.forget(key, JobEnd::Released);
                self.mark_dirty(ctx);
            }
        }
    }

    pub(super) fn record_resource(&mut self, key: JobKey, resource: Resource) {
        let weight = resource.weight;
        let mut first = false;
        if let Some(e) = self.jobs.get_mut(&key) {
            first = e.resource.is_none();
            e.resource = Some(resource);
        }
        self.ledger.set_actual(key, weight);
        self.observe(Transition::ResourceRecorded { key, first });
    }

    pub(super) fn on_cancelled(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        if self.apply(key, JobEvent::FinishedAtCoordinator) {
            self.dispose(key, false, ctx);
        }
    }

    pub(super) fn on_started(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        if self.apply(key, JobEvent::TraceSeen) {
            let log = self.job_log(key);
            slog::info!(log, "job started");
            self.restart_checks(key, ctx);
            let empty = self.empty_payload.clone();
            if let Some(e) = self.jobs.get_mut(&key) {
                // Started jobs are saved without payload (`launched`): free it.
                e.job.payload = empty;
            }
            // Lazily: a restart that finds the job not started yet watches
            // its trace again.
            self.mark_dirty_lazily(ctx);
            self.schedule_polls(ctx);
        }
    }

    pub(super) fn on_launch_failed(
        &mut self,
        key: JobKey,
        message: String,
        reason: LaunchFailureReason,
        ctx: &mut Context<Self>,
    ) {
        let log = self.job_log(key);
        if !self.apply(key, JobEvent::LaunchFailed) {
            return;
        }
        slog::error!(log, "launch failed"; "error" => %untrusted(&message));
        self.observe(Transition::LaunchFailed {
            runner: key.runner,
            reason,
        });
        if let Some(e) = self.jobs.get_mut(&key) {
            e.failure = Some(message);
        }
        self.mark_dirty(ctx);
        // Write-ahead: the failure is in `launch_failures` on disk before
        // the job trace and the job status are updated.
        self.after_persist(ctx, move |act, _| {
            if act
                .jobs
                .get(&key)
                .is_some_and(|e| e.phase == Phase::LaunchFailed)
            {
                act.spawn_reporter(key);
            }
        });
        self.schedule_polls(ctx);
    }

    pub(super) fn on_record_creating(
        &mut self,
        key: JobKey,
        name: String,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(), NotRecorded>> {
        if !self.apply(key, JobEvent::CreateRecorded) {
            // Not recorded: the launcher must not create.
            let phase = self.phase_name(key);
            return Box::pin(async move { Err(NotRecorded::NotExpected { phase }) });
        }
        if let Some(e) = self.jobs.get_mut(&key) {
            e.resource_name = Some(name);
        }
        self.mark_dirty(ctx);
        self.persisted_response(ctx)
    }

    pub(super) fn on_provisioned(
        &mut self,
        key: JobKey,
        resource: Resource,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(), NotRecorded>> {
        let accepted = match self.jobs.get(&key).map(|e| e.phase) {
            Some(Phase::Provisioning) => self.apply(key, JobEvent::ResourceCreated),
            // Again after `prepare`, or an uncertain create found by name
            // while the failure is being handled.
            Some(Phase::Provisioned | Phase::LaunchFailed) => true,
            _ => false,
        };
        if !accepted {
            // Not recorded: the launcher must not go on with this resource.
            let phase = self.phase_name(key);
            return Box::pin(async move { Err(NotRecorded::NotExpected { phase }) });
        }
        self.record_resource(key, resource);
        self.mark_dirty(ctx);
        self.schedule_polls(ctx);
        self.persisted_response(ctx)
    }

    pub(super) fn on_launched(
        &mut self,
        key: JobKey,
        resource: Resource,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(), NotRecorded>> {
        if self.apply(key, JobEvent::ResourceLaunched) {
            let reused = self.jobs.get(&key).is_some_and(|e| e.uses > 1);
            self.observe(Transition::JobLaunched {
                runner: key.runner,
                reused,
            });
            self.record_resource(key, resource);
            if let Some(e) = self.jobs.get(&key) {
                let log = self.job_log(key).new(e.story.identity());
                let weight = e.resource.as_ref().map(|r| TwoDecimals(r.weight));
                slog::info!(log, "job launched"; "weight" => weight,
                            "organisation" => self.organisation(key),
                            "since_acquired_s" => Seconds(e.tracked_at.elapsed()));
            }
            self.mark_dirty(ctx);
            let cancelled = self
                .jobs
                .get(&key)
                .and_then(|e| e.cancel.as_ref())
                .is_some_and(|c| *c.borrow());
            if cancelled {
                self.on_cancelled(key, ctx);
            } else if !self.draining {
                let runner = self.runners.get(key.runner);
                if runner.is_some_and(|r| r.paas.started_at_launch()) {
                    // The job's service accepted it: started.
                    self.on_started(key, ctx);
                } else {
                    self.start_checks_before_start(key, ctx);
                    self.spawn_trace_watch(key, ctx);
                }
            }
        }
        self.persisted_response(ctx)
    }

    /// The phase of a job, for an answer: "no longer tracked" when gone.
    fn phase_name(&self, key: JobKey) -> &'static str {
        self.jobs
            .get(&key)
            .map_or("no longer tracked", |e| e.phase.as_str())
    }

    pub(super) fn on_launch_stopped(
        &mut self,
        key: JobKey,
        interrupt: Interrupt,
        ctx: &mut Context<Self>,
    ) {
        match interrupt {
            Interrupt::Cancel => self.on_cancelled(key, ctx),
            Interrupt::Drain => {
                let log = self.job_log(key);
                slog::info!(log, "launch interrupted by shutdown; stays pending");
            }
        }
        self.schedule_polls(ctx);
    }

    pub(super) fn on_failure_reported(&mut self, msg: FailureReported, ctx: &mut Context<Self>) {
        let key = msg.key;
        if let Some(e) = self.jobs.get_mut(&key) {
            e.trace_offset = msg.trace_offset;
            e.trace_appended = msg.trace_appended;
        }
        match msg.outcome {
            ReportOutcome::Interrupted => self.mark_dirty(ctx),
            ReportOutcome::Reported | ReportOutcome::GaveUp => {
                if msg.outcome == ReportOutcome::GaveUp {
                    let log = self.job_log(key);
                    slog::error!(log, "failed to launch the job and even to report it");
                }
                if self.apply(key, JobEvent::FailureReported) {
                    self.dispose(key, !self.settings.decommission_launch_failures, ctx);
                }
            }
        }
        self.schedule_polls(ctx);
    }

    pub(super) fn on_decommissioned(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        if self.apply(key, JobEvent::Decommissioned) {
            self.forget(key, JobEnd::Decommissioned);
            // Lazily: a restart that finds the resource still listed
            // deletes it again (answered "already gone").
            self.mark_dirty_lazily(ctx);
            self.schedule_polls(ctx);
        }
    }

    pub(super) fn on_task_ended(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        self.tasks = self.tasks.saturating_sub(1);
        self.jobs.task_ended(&key);
        self.check_drained(ctx);
    }
}
