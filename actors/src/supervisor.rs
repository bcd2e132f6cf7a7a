//! The supervisor: single owner of the quota ledger, the job table and the
//! runner registry.
//!
//! It decides when each runner is polled (reserving the largest weight a
//! job could have before sending `PollOnce`), spawns one actor per job and
//! per step (launcher, trace watcher, failure reporter, decommissioner),
//! applies their events to the job phase machine ([`crate::job`]) and
//! persists the state after every transition that matters. Writes are
//! coalesced: at most one is in flight, and the next one covers everything
//! that changed meanwhile. Steps that must be on disk before the next
//! external call (the resource name before `create`, the resource before
//! `prepare`, the decommission before `delete`) wait for a write covering
//! them (write-ahead).
//!
//! It also reconciles the state with the PAAS (see [`crate::reconcile`]):
//! at start-up and every `reconcile_interval`, per runner, it has the
//! poller list the resources, adopts or decommissions the ones the state
//! does not know, and forgets the entries whose resource vanished.

use crate::decommissioner::Decommissioner;
use crate::job::{after_use, transition, JobEvent, Phase, Section};
use crate::launcher::{FailureReporter, Launcher, Retry};
use crate::poller::{
    Acquired, CheckJobs, GetMaxWeight, IdentifyJobs, ListResources, PollOnce, Poller,
};
use crate::ports::{
    Coordinator, CoordinatorError, Job, JobStatus, Paas, PaasError, Resource, Weight,
};
use crate::quota::{JobKey, Ledger, QuotaLimits, WeightKind};
use crate::reconcile::{plan, Decision, Identified, Tracked};
use crate::secret::Secret;
use crate::service::{RunnerSettings, SupervisorSettings};
use crate::shutdown::{
    Drain, DrainCompleted, ExitReport, ForcedSnapshot, Interrupt, Interrupts, OpRegistry, Shutdown,
};
use crate::state::{
    CreatingRecord, FailureRecord, HandleRecord, PendingRecord, Snapshot, StateStore,
};
use crate::trace_watcher::TraceWatcher;
use crate::untrusted::untrusted;
use actix::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

// ---------------------------------------------------------------------------
// Events and commands handled by the supervisor
// ---------------------------------------------------------------------------

/// Sent by a launcher to the supervisor before the create call: record the
/// resource name (write-ahead). Answered once the record is on disk.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct RecordCreating {
    /// The job.
    pub key: JobKey,
    /// Deterministic resource name.
    pub name: String,
}

/// Sent by a launcher to the supervisor when the resource exists (after
/// `create`, and again after `prepare`). Answered once recorded on disk.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct ResourceProvisioned {
    /// The job.
    pub key: JobKey,
    /// The resource.
    pub resource: Resource,
}

/// Sent by a launcher to the supervisor when the job is launched on its
/// resource. Answered once recorded on disk.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct ResourceLaunched {
    /// The job.
    pub key: JobKey,
    /// The launched resource.
    pub resource: Resource,
}

/// Sent by a trace watcher to the supervisor when the job trace grew.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct JobStarted {
    /// The job.
    pub key: JobKey,
}

/// Sent by a launcher or a trace watcher to the supervisor when launching
/// failed; `message` goes to the job trace.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct LaunchFailed {
    /// The job.
    pub key: JobKey,
    /// Explanation for the job author and the operator; never a secret.
    pub message: String,
}

/// Sent by a launcher or a trace watcher to the supervisor when it stopped
/// early (drain, or job cancelled at the coordinator).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct LaunchStopped {
    /// The job.
    pub key: JobKey,
    /// Why.
    pub interrupt: Interrupt,
}

/// How reporting a launch failure ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Reported (or the job was already over).
    Reported,
    /// Every attempt failed.
    GaveUp,
    /// Interrupted by the drain: report again in the next process.
    Interrupted,
}

/// Sent by a failure reporter to the supervisor when done.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FailureReported {
    /// The job.
    pub key: JobKey,
    /// How it ended.
    pub outcome: ReportOutcome,
    /// Trace length after the appended line.
    pub trace_offset: u64,
    /// Whether the red line is in the trace.
    pub trace_appended: bool,
}

/// Sent by a decommissioner to the supervisor: the resource is gone.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ResourceDecommissioned {
    /// The job.
    pub key: JobKey,
}

/// Sent by a decommissioner to the supervisor when the drain stopped its
/// retries: the resource stays in `to_decommission`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct DecommissionStopped {
    /// The job.
    pub key: JobKey,
}

/// Sent by every per-job actor to the supervisor when it stops.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct TaskEnded {
    /// The job.
    pub key: JobKey,
}

/// Sent by the supervisor to itself at start-up and every
/// `reconcile_interval` (and by tests): reconcile each runner's resources on
/// the PAAS with the state. A runner whose previous pass is still running is
/// skipped; nothing happens while draining.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reconcile;

/// Sent by the service (SIGUSR1) to the supervisor: log the whole state,
/// secrets masked.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct DumpState;

/// Sent by tests and the bench to the supervisor: counters and the quota.
#[derive(Message, Debug)]
#[rtype(result = "Stats")]
pub struct GetStats;

/// What [`GetStats`] answers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Jobs tracked, per phase name.
    pub phases: BTreeMap<&'static str, usize>,
    /// Weight held in the ledger.
    pub used_weight: Weight,
    /// Highest weight ever held in the ledger.
    pub peak_used_weight: Weight,
    /// The quota.
    pub quota: Weight,
    /// Jobs acquired since start.
    pub acquired: u64,
    /// Jobs whose life ended (resource gone or released) since start.
    pub completed: u64,
    /// Launch failures since start.
    pub launch_failures: u64,
    /// State writes completed.
    pub persists: u64,
    /// Wall time of the last completed state write, from building the
    /// snapshot to the store's acknowledgement.
    pub last_persist: Duration,
    /// Time spent building the last snapshot on the arbiter (the rest of a
    /// write runs in the store, off the arbiter for the file store).
    pub last_snapshot_build: Duration,
    /// Per-job actors running.
    pub tasks: usize,
    /// Polling cycles done by the slowest runner.
    pub poll_cycles: u64,
    /// Reconciliation passes completed (one per runner and pass), whether
    /// the listing succeeded or not.
    pub reconcile_passes: u64,
    /// Unknown resources adopted because their job still runs.
    pub adopted: u64,
    /// Unknown resources sent to decommissioning (job over, or no job).
    pub orphans_decommissioned: u64,
    /// Tracked entries forgotten because their resource vanished.
    pub vanished: u64,
}

// ---------------------------------------------------------------------------
// Per-job context handed to per-job actors
// ---------------------------------------------------------------------------

/// What a per-job actor needs: the job, its runner's ports, the supervisor
/// and the interrupts it must honour.
#[derive(Clone)]
pub(crate) struct JobCtx {
    pub key: JobKey,
    pub runner_name: Rc<str>,
    pub job: Job,
    pub coordinator: Rc<dyn Coordinator>,
    pub paas: Rc<dyn Paas>,
    pub supervisor: Addr<Supervisor>,
    pub interrupts: Interrupts,
    pub ops: OpRegistry,
    pub logger: slog::Logger,
}

// ---------------------------------------------------------------------------
// Supervisor state
// ---------------------------------------------------------------------------

/// A runner as the supervisor knows it.
pub(crate) struct RunnerSlot {
    pub name: Rc<str>,
    pub coordinator: Rc<dyn Coordinator>,
    pub paas: Rc<dyn Paas>,
    pub settings: RunnerSettings,
    pub logger: slog::Logger,
    poller: Option<Addr<Poller>>,
    max_weight: Option<Weight>,
    poll: PollState,
    backoff: Duration,
    cycles: u64,
    checking: bool,
    warned_no_trace_watch: bool,
    reconcile: Option<ReconcilePass>,
}

/// A reconciliation pass in flight for one runner.
#[derive(Default)]
struct ReconcilePass {
    /// Ids of the resources recorded when the listing was requested.
    recorded: HashSet<String>,
    /// Names of resources forgotten since (decommissioned meanwhile: a
    /// stale listing may still show them).
    forgotten: HashSet<String>,
}

impl RunnerSlot {
    pub(crate) fn new(
        name: Rc<str>,
        coordinator: Rc<dyn Coordinator>,
        paas: Rc<dyn Paas>,
        settings: RunnerSettings,
        logger: slog::Logger,
    ) -> Self {
        RunnerSlot {
            name,
            coordinator,
            paas,
            settings,
            logger,
            poller: None,
            max_weight: None,
            poll: PollState::Ready,
            backoff: Duration::ZERO,
            cycles: 0,
            checking: false,
            warned_no_trace_watch: false,
            reconcile: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PollState {
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

/// A tracked job.
pub(crate) struct JobEntry {
    pub job: Job,
    pub phase: Phase,
    pub expected_weight: Weight,
    pub trace_offset: u64,
    pub resource: Option<Resource>,
    pub resource_name: Option<String>,
    pub failure: Option<String>,
    pub trace_appended: bool,
    cancel: Option<watch::Sender<bool>>,
    tasks: u32,
}

impl JobEntry {
    /// A job entry in `phase`.
    pub(crate) fn new(job: Job, phase: Phase, expected_weight: Weight) -> Self {
        JobEntry {
            job,
            phase,
            expected_weight,
            trace_offset: 0,
            resource: None,
            resource_name: None,
            failure: None,
            trace_appended: false,
            cancel: None,
            tasks: 0,
        }
    }
}

/// Records of the loaded state that no configured runner could take (the
/// runner was removed, or its resource dump did not load): written back
/// untouched so that nothing is lost.
#[derive(Default, Debug, Clone)]
pub(crate) struct Orphans {
    pub launched: Vec<HandleRecord>,
    pub pending: Vec<PendingRecord>,
    pub to_decommission: Vec<HandleRecord>,
}

#[derive(Default)]
struct Persistence {
    gen: u64,
    saved: u64,
    in_flight: bool,
    retry_scheduled: bool,
    stopped: bool,
    forced: bool,
    count: u64,
    kick_scheduled: bool,
    last_duration: Duration,
    last_build: Duration,
    waiters: Vec<(u64, oneshot::Sender<Result<(), String>>)>,
}

/// The supervisor actor (see the module documentation).
pub struct Supervisor {
    settings: SupervisorSettings,
    runners: Vec<RunnerSlot>,
    jobs: BTreeMap<JobKey, JobEntry>,
    orphans: Orphans,
    ledger: Ledger,
    peak_used: Weight,
    store: Rc<dyn StateStore>,
    persist: Persistence,
    ops: OpRegistry,
    drain_tx: watch::Sender<bool>,
    draining: bool,
    drained_sent: bool,
    polls_in_flight: usize,
    tasks: usize,
    rr: usize,
    acquired: u64,
    completed: u64,
    launch_failures: u64,
    reconcile_passes: u64,
    adopted: u64,
    orphans_decommissioned: u64,
    vanished: u64,
    progress_timer: Option<SpawnHandle>,
    reconcile_timer: Option<SpawnHandle>,
    shutdown: Addr<Shutdown>,
    logger: slog::Logger,
    empty_payload: Arc<Value>,
}

impl Supervisor {
    /// A supervisor over `runners`, with jobs loaded from the state.
    pub(crate) fn new(
        settings: SupervisorSettings,
        runners: Vec<RunnerSlot>,
        jobs: BTreeMap<JobKey, JobEntry>,
        orphans: Orphans,
        store: Rc<dyn StateStore>,
        shutdown: Addr<Shutdown>,
        logger: slog::Logger,
    ) -> Self {
        let limits = QuotaLimits {
            total_weight: settings.quota,
            concurrent: settings.concurrent,
            max_provisioning: settings.max_concurrent_provisioning,
            allowed_fraction_per_runner: settings.allowed_fraction_per_runner,
        };
        let fractions = runners
            .iter()
            .map(|r| r.settings.quota_max_fraction)
            .collect();
        let mut ledger = Ledger::new(limits, fractions);
        for (key, e) in &jobs {
            let (w, kind) = match &e.resource {
                Some(r) => (r.weight, WeightKind::Actual),
                None => (e.expected_weight, WeightKind::Expected),
            };
            ledger.track(*key, w, kind, e.phase.is_launching());
        }
        let (drain_tx, _) = watch::channel(false);
        Supervisor {
            settings,
            runners,
            jobs,
            orphans,
            peak_used: ledger.used(),
            ledger,
            store,
            persist: Persistence::default(),
            ops: OpRegistry::default(),
            drain_tx,
            draining: false,
            drained_sent: false,
            polls_in_flight: 0,
            tasks: 0,
            rr: 0,
            acquired: 0,
            completed: 0,
            launch_failures: 0,
            reconcile_passes: 0,
            adopted: 0,
            orphans_decommissioned: 0,
            vanished: 0,
            progress_timer: None,
            reconcile_timer: None,
            shutdown,
            logger,
            empty_payload: Arc::new(Value::Null),
        }
    }

    fn runner_log(&self, runner: usize) -> slog::Logger {
        self.runners
            .get(runner)
            .map(|r| r.logger.clone())
            .unwrap_or_else(|| self.logger.clone())
    }

    /// Logger of one job: `runner`, `job_id`, and the job's `phase` at the
    /// time of the call (log after applying a transition to show the new one).
    fn job_log(&self, key: JobKey) -> slog::Logger {
        let log = self
            .runner_log(key.runner)
            .new(slog::o!("job_id" => key.job_id));
        match self.jobs.get(&key) {
            Some(entry) => log.new(slog::o!("phase" => entry.phase.as_str())),
            None => log,
        }
    }

    fn note_peak(&mut self) {
        if self.ledger.used() > self.peak_used {
            self.peak_used = self.ledger.used();
        }
    }

    // -- phases ------------------------------------------------------------

    /// Applies `event` to a job's phase; false (and a log line) if invalid.
    fn apply(&mut self, key: JobKey, event: JobEvent) -> bool {
        let Some(entry) = self.jobs.get_mut(&key) else {
            return false;
        };
        match transition(entry.phase, event) {
            Ok(to) => {
                entry.phase = to;
                if !to.is_launching() {
                    self.ledger.set_provisioning(key, false);
                    entry.cancel = None;
                }
                true
            }
            Err(e) => {
                let log = self.job_log(key);
                slog::debug!(log, "ignored event"; "error" => %e);
                false
            }
        }
    }

    /// Forgets a job: its resource is gone or no longer ours to manage.
    fn forget(&mut self, key: JobKey) {
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
            self.completed += 1;
        }
    }

    /// The job no longer needs its resource: decommission or forget it.
    fn dispose(&mut self, key: JobKey, keep: bool, ctx: &mut Context<Self>) {
        let has_resource = self.jobs.get(&key).is_some_and(|e| e.resource.is_some());
        match after_use(has_resource, keep) {
            JobEvent::DecommissionStarted => {
                self.apply(key, JobEvent::DecommissionStarted);
                self.mark_dirty(ctx);
                // Write-ahead: the resource is in `to_decommission` on disk
                // before the delete call.
                self.after_persist(ctx, move |act, ctx| act.spawn_decommissioner(key, ctx));
            }
            _ => {
                if has_resource {
                    let log = self.job_log(key);
                    slog::warn!(log, "keeping the resource as configured");
                }
                self.apply(key, JobEvent::Released);
                self.forget(key);
                self.mark_dirty(ctx);
            }
        }
    }

    // -- spawning per-job actors ---------------------------------------------

    /// The context of a per-job actor; its logger carries `runner`,
    /// `job_id` and `phase` (the actor's step: `launching`,
    /// `watching_trace`, `reporting_failure`, `decommissioning`).
    fn job_ctx(
        &mut self,
        key: JobKey,
        ctx: &mut Context<Self>,
        cancellable: bool,
        phase: &'static str,
    ) -> Option<JobCtx> {
        let runner = self.runners.get(key.runner)?;
        let logger = runner
            .logger
            .new(slog::o!("job_id" => key.job_id, "phase" => phase));
        let (name, coordinator, paas) = (
            runner.name.clone(),
            runner.coordinator.clone(),
            runner.paas.clone(),
        );
        let drain = self.drain_tx.subscribe();
        let entry = self.jobs.get_mut(&key)?;
        let cancel = if cancellable {
            let tx = entry.cancel.get_or_insert_with(|| watch::channel(false).0);
            Some(tx.subscribe())
        } else {
            None
        };
        entry.tasks += 1;
        self.tasks += 1;
        Some(JobCtx {
            key,
            runner_name: name,
            job: entry.job.clone(),
            coordinator,
            paas,
            supervisor: ctx.address(),
            interrupts: Interrupts::new(drain, cancel),
            ops: self.ops.clone(),
            logger,
        })
    }

    fn spawn_launcher(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        let Some(entry) = self.jobs.get(&key) else {
            return;
        };
        let resource = entry.resource.clone();
        let resume = (entry.phase == Phase::Provisioning && resource.is_none())
            .then(|| entry.resource_name.clone())
            .flatten();
        let retry = Retry {
            attempts: self.settings.launch_attempts,
            first: self.settings.backoff_min,
            max: self.settings.backoff_max,
        };
        if let Some(jc) = self.job_ctx(key, ctx, true, "launching") {
            Launcher::new(jc, resource, resume, retry, self.settings.creating_grace).start();
        }
    }

    fn spawn_trace_watch(&mut self, key: JobKey, ctx: &mut Context<Self>) {
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
            Some((timeout, step)) => {
                let offset = self.jobs.get(&key).map_or(0, |e| e.trace_offset);
                if let Some(jc) = self.job_ctx(key, ctx, true, "watching_trace") {
                    TraceWatcher::new(jc, timeout, step, offset).start();
                }
            }
        }
    }

    fn spawn_reporter(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        let Some(entry) = self.jobs.get(&key) else {
            return;
        };
        let message = entry.failure.clone().unwrap_or_default();
        let (offset, appended) = (entry.trace_offset, entry.trace_appended);
        let (attempts, interval) = (
            self.settings.report_failure_attempts,
            self.settings.report_failure_interval,
        );
        if let Some(jc) = self.job_ctx(key, ctx, false, "reporting_failure") {
            FailureReporter::new(jc, message, offset, appended, attempts, interval).start();
        }
    }

    fn spawn_decommissioner(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        let Some(resource) = self.jobs.get(&key).and_then(|e| e.resource.clone()) else {
            return;
        };
        let backoff = (self.settings.backoff_min, self.settings.backoff_max);
        if let Some(jc) = self.job_ctx(key, ctx, false, "decommissioning") {
            Decommissioner::new(jc, resource, backoff).start();
        }
    }

    /// Starts whatever a loaded job needs to resume where it stopped.
    fn resume(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        let Some(phase) = self.jobs.get(&key).map(|e| e.phase) else {
            return;
        };
        match phase {
            Phase::Acquired | Phase::Provisioning | Phase::Provisioned => {
                self.spawn_launcher(key, ctx)
            }
            Phase::Launched => self.spawn_trace_watch(key, ctx),
            Phase::LaunchFailed => self.spawn_reporter(key, ctx),
            Phase::Decommissioning => self.spawn_decommissioner(key, ctx),
            Phase::Finished => self.dispose(key, self.settings.keep_finished_resources, ctx),
            Phase::Reported => self.dispose(key, !self.settings.decommission_launch_failures, ctx),
            Phase::Started | Phase::Gone => {}
        }
    }

    // -- polling ---------------------------------------------------------------

    fn schedule_polls(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let n = self.runners.len();
        if n == 0 {
            return;
        }
        self.rr = (self.rr + 1) % n;
        for k in 0..n {
            let i = (self.rr + k) % n;
            let state = self.runners.get(i).map(|r| r.poll);
            if matches!(state, Some(PollState::Ready | PollState::Saturated)) {
                self.try_poll(i, ctx);
            }
        }
    }

    fn try_poll(&mut self, i: usize, ctx: &mut Context<Self>) {
        let Some(runner) = self.runners.get_mut(i) else {
            return;
        };
        let Some(poller) = runner.poller.clone() else {
            return;
        };
        let Some(weight) = runner.max_weight else {
            runner.poll = PollState::Fetching;
            ctx.spawn(
                async move { poller.send(GetMaxWeight).await }
                    .into_actor(self)
                    .map(move |res, act, ctx| {
                        let res: Result<Weight, PaasError> = res.unwrap_or_else(|e| {
                            Err(PaasError::transient("max-weight", e.to_string()))
                        });
                        match res {
                            Ok(w) => {
                                if let Some(r) = act.runners.get_mut(i) {
                                    r.max_weight = Some(w);
                                    r.poll = PollState::Ready;
                                }
                            }
                            Err(e) => {
                                let log = act.runner_log(i);
                                slog::error!(log, "cannot know the weight of the largest job";
                                         "error" => %untrusted(&e));
                                act.back_off(i, None, ctx);
                            }
                        }
                        act.schedule_polls(ctx);
                    }),
            );
            return;
        };
        match self.ledger.reserve(i, weight) {
            Ok(()) => {
                self.note_peak();
                if let Some(r) = self.runners.get_mut(i) {
                    r.poll = PollState::Polling;
                }
                self.polls_in_flight += 1;
                let op = self.ops.begin(
                    self.runners
                        .get(i)
                        .map(|r| r.name.clone())
                        .unwrap_or_else(|| Rc::from("")),
                    JobKey {
                        runner: i,
                        job_id: 0,
                    },
                    "poll",
                );
                ctx.spawn(
                    async move { poller.send(PollOnce).await }
                        .into_actor(self)
                        .map(move |res, act, ctx| {
                            drop(op);
                            let res = res.unwrap_or_else(|e| {
                                Err(CoordinatorError::Unexpected {
                                    detail: format!("poller unreachable: {e}"),
                                })
                            });
                            act.on_polled(i, res, ctx);
                        }),
                );
            }
            Err(blocked) => {
                let Some(r) = self.runners.get_mut(i) else {
                    return;
                };
                if r.poll != PollState::Saturated {
                    r.poll = PollState::Saturated;
                    slog::debug!(r.logger, "not polling: limits reached";
                                 "why" => format!("{blocked:?}"));
                    self.cycle_done(i, ctx);
                }
            }
        }
    }

    fn on_polled(
        &mut self,
        i: usize,
        res: Result<Option<Acquired>, CoordinatorError>,
        ctx: &mut Context<Self>,
    ) {
        self.polls_in_flight = self.polls_in_flight.saturating_sub(1);
        match res {
            Err(e) => {
                self.ledger.cancel_reservation(i);
                let log = self.runner_log(i);
                if e.is_transient() {
                    slog::warn!(log, "coordinator unavailable"; "error" => %untrusted(&e));
                } else {
                    slog::error!(log, "coordinator trouble"; "error" => %untrusted(&e));
                }
                let retry_after = match &e {
                    CoordinatorError::Unavailable { retry_after, .. } => *retry_after,
                    CoordinatorError::Rejected { .. } => Some(self.settings.backoff_max),
                    CoordinatorError::Unexpected { .. } => None,
                };
                self.back_off(i, retry_after, ctx);
            }
            Ok(None) => {
                self.ledger.cancel_reservation(i);
                if let Some(r) = self.runners.get_mut(i) {
                    r.backoff = Duration::ZERO;
                }
                self.wait_then_poll(i, self.settings.check_interval, ctx);
            }
            Ok(Some(acq)) => {
                if let Some(r) = self.runners.get_mut(i) {
                    r.backoff = Duration::ZERO;
                }
                self.on_acquired(i, acq, ctx);
                if self.settings.repoll_immediately && !self.draining {
                    if let Some(r) = self.runners.get_mut(i) {
                        r.poll = PollState::Ready;
                    }
                } else {
                    self.wait_then_poll(i, self.settings.check_interval, ctx);
                }
            }
        }
        self.check_drained(ctx);
        self.schedule_polls(ctx);
    }

    fn on_acquired(&mut self, i: usize, acq: Acquired, ctx: &mut Context<Self>) {
        let key = JobKey {
            runner: i,
            job_id: acq.job.id,
        };
        let log = self.job_log(key);
        if self.jobs.contains_key(&key) {
            slog::error!(log, "coordinator handed out a job already tracked; ignored");
            self.ledger.cancel_reservation(i);
            return;
        }
        let reserved = self
            .runners
            .get(i)
            .and_then(|r| r.max_weight)
            .unwrap_or(0.0);
        let (expected, failure) = match acq.expected {
            Ok(w) => (w, None),
            Err(e) => (reserved, Some(e.to_string())),
        };
        slog::info!(log, "job acquired"; "weight" => expected);
        self.acquired += 1;
        self.ledger.acquire(key, expected);
        self.note_peak();
        self.jobs
            .insert(key, JobEntry::new(acq.job, Phase::Acquired, expected));
        self.mark_dirty(ctx);
        if let Some(message) = failure {
            self.on_launch_failed(key, message, ctx);
        } else if !self.draining {
            self.spawn_launcher(key, ctx);
        }
    }

    fn back_off(&mut self, i: usize, at_least: Option<Duration>, ctx: &mut Context<Self>) {
        let (min, max) = (self.settings.backoff_min, self.settings.backoff_max);
        let Some(r) = self.runners.get_mut(i) else {
            return;
        };
        r.backoff = if r.backoff.is_zero() {
            min
        } else {
            (r.backoff * 2).min(max)
        };
        let delay = at_least
            .map_or(r.backoff, |d| d.max(r.backoff))
            .min(max.max(min));
        slog::info!(r.logger, "backing off"; "retry_in_s" => delay.as_secs_f64());
        self.wait_then_poll(i, delay, ctx);
    }

    fn wait_then_poll(&mut self, i: usize, delay: Duration, ctx: &mut Context<Self>) {
        if let Some(r) = self.runners.get_mut(i) {
            r.poll = PollState::Waiting;
        }
        ctx.run_later(delay, move |act, ctx| {
            if let Some(r) = act.runners.get_mut(i) {
                if r.poll == PollState::Waiting {
                    r.poll = PollState::Ready;
                }
            }
            act.cycle_done(i, ctx);
            act.schedule_polls(ctx);
        });
    }

    fn cycle_done(&mut self, i: usize, ctx: &mut Context<Self>) {
        if let Some(r) = self.runners.get_mut(i) {
            r.cycles += 1;
        }
        if let Some(max) = self.settings.poll_cycles {
            if !self.draining && self.min_cycles() >= max {
                slog::info!(self.logger, "polling cycles done"; "cycles" => max);
                self.shutdown.do_send(crate::shutdown::BeginShutdown);
                // Stop polling right away; the drain itself comes from the
                // shutdown actor.
                self.draining = true;
                ctx.notify(Drain);
            }
        }
    }

    fn min_cycles(&self) -> u64 {
        self.runners.iter().map(|r| r.cycles).min().unwrap_or(0)
    }

    // -- progress checks -------------------------------------------------------

    fn check_progress(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let n = self.runners.len();
        let mut per_runner: Vec<Vec<Job>> = (0..n).map(|_| Vec::new()).collect();
        for (key, e) in &self.jobs {
            let cancelled = e.cancel.as_ref().is_some_and(|c| *c.borrow());
            if (e.phase == Phase::Started || e.phase.is_launching()) && !cancelled {
                if let Some(v) = per_runner.get_mut(key.runner) {
                    v.push(e.job.clone());
                }
            }
        }
        for (i, jobs) in per_runner.into_iter().enumerate() {
            let Some(r) = self.runners.get_mut(i) else {
                continue;
            };
            if jobs.is_empty() || r.checking {
                continue;
            }
            let Some(poller) = r.poller.clone() else {
                continue;
            };
            r.checking = true;
            ctx.spawn(
                async move { poller.send(CheckJobs { jobs }).await }
                    .into_actor(self)
                    .map(move |res, act, ctx| {
                        if let Some(r) = act.runners.get_mut(i) {
                            r.checking = false;
                        }
                        act.on_checked(i, res.unwrap_or_default(), ctx);
                    }),
            );
        }
    }

    fn on_checked(
        &mut self,
        i: usize,
        results: Vec<(i64, Result<JobStatus, CoordinatorError>)>,
        ctx: &mut Context<Self>,
    ) {
        let mut errors = 0usize;
        let mut last_error = None;
        for (job_id, res) in results {
            match res {
                Ok(JobStatus::Finished) => {
                    self.on_job_finished(JobKey { runner: i, job_id }, ctx);
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

    fn on_job_finished(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        let Some(entry) = self.jobs.get(&key) else {
            return;
        };
        let log = self.job_log(key);
        match entry.phase {
            Phase::Started => {
                slog::info!(log, "job finished, according to the coordinator");
                self.apply(key, JobEvent::FinishedAtCoordinator);
                self.dispose(key, self.settings.keep_finished_resources, ctx);
            }
            p if p.is_launching() => {
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

    fn on_cancelled(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        if self.apply(key, JobEvent::FinishedAtCoordinator) {
            self.dispose(key, false, ctx);
        }
    }

    fn on_started(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        if self.apply(key, JobEvent::TraceSeen) {
            let log = self.job_log(key);
            slog::info!(log, "job started");
            let empty = self.empty_payload.clone();
            if let Some(e) = self.jobs.get_mut(&key) {
                // Started jobs are saved without payload (`launched`): free it.
                e.job.payload = empty;
            }
            self.mark_dirty(ctx);
            self.schedule_polls(ctx);
        }
    }

    fn on_launch_failed(&mut self, key: JobKey, message: String, ctx: &mut Context<Self>) {
        let log = self.job_log(key);
        if !self.apply(key, JobEvent::LaunchFailed) {
            return;
        }
        slog::error!(log, "launch failed"; "error" => %untrusted(&message));
        self.launch_failures += 1;
        if let Some(e) = self.jobs.get_mut(&key) {
            e.failure = Some(message);
        }
        self.mark_dirty(ctx);
        self.spawn_reporter(key, ctx);
        self.schedule_polls(ctx);
    }

    // -- persistence -----------------------------------------------------------

    /// Something worth persisting changed. The write starts once the
    /// messages already queued are handled (a self-notification queues
    /// behind them), so that one write covers a whole burst of events.
    fn mark_dirty(&mut self, ctx: &mut Context<Self>) {
        self.persist.gen += 1;
        if !self.persist.kick_scheduled {
            self.persist.kick_scheduled = true;
            ctx.notify(PersistNow);
        }
    }

    fn kick_persist(&mut self, ctx: &mut Context<Self>) {
        let p = &self.persist;
        if p.in_flight || p.retry_scheduled || p.stopped || p.saved >= p.gen {
            return;
        }
        self.persist.in_flight = true;
        let target = self.persist.gen;
        let started = std::time::Instant::now();
        let snapshot = self.snapshot();
        self.persist.last_build = started.elapsed();
        let fut = self.store.save(snapshot);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.persist.in_flight = false;
            match res {
                Ok(()) => {
                    act.persist.count += 1;
                    act.persist.last_duration = started.elapsed();
                    act.persist.saved = act.persist.saved.max(target);
                    act.resolve_waiters(target, Ok(()));
                }
                Err(e) => {
                    // Write-ahead waiters keep waiting: they may proceed only
                    // once their record is durable. Retry after a delay.
                    slog::error!(act.logger, "cannot save the state";
                                 "error" => %e,
                                 "retry_in_s" => act.settings.persist_retry.as_secs_f64());
                    if act.persist.forced || act.drained_sent {
                        act.resolve_waiters(target, Err(e.to_string()));
                    }
                    act.persist.retry_scheduled = true;
                    ctx.run_later(act.settings.persist_retry, |act, ctx| {
                        act.persist.retry_scheduled = false;
                        act.kick_persist(ctx);
                    });
                }
            }
            act.kick_persist(ctx);
            act.check_drained(ctx);
        }));
    }

    fn resolve_waiters(&mut self, upto: u64, res: Result<(), String>) {
        let waiters = std::mem::take(&mut self.persist.waiters);
        for (gen, tx) in waiters {
            if gen <= upto {
                let _ = tx.send(res.clone());
            } else {
                self.persist.waiters.push((gen, tx));
            }
        }
    }

    /// A receiver resolved once everything changed so far is on disk.
    fn persisted(&mut self, ctx: &mut Context<Self>) -> oneshot::Receiver<Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        if self.persist.saved >= self.persist.gen {
            let _ = tx.send(Ok(()));
        } else {
            self.persist.waiters.push((self.persist.gen, tx));
            if !self.persist.kick_scheduled {
                self.kick_persist(ctx);
            }
        }
        rx
    }

    fn after_persist<F>(&mut self, ctx: &mut Context<Self>, f: F)
    where
        F: FnOnce(&mut Self, &mut Context<Self>) + 'static,
    {
        let rx = self.persisted(ctx);
        ctx.spawn(rx.into_actor(self).map(move |_, act, ctx| f(act, ctx)));
    }

    fn persisted_response(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(), String>> {
        let rx = self.persisted(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("supervisor stopped".to_string()))
        })
    }

    /// The state as the file records it.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        for (key, e) in &self.jobs {
            let Some(runner) = self.runners.get(key.runner) else {
                continue;
            };
            let Some(section) = e.phase.section(e.resource.is_some()) else {
                continue;
            };
            let handle = HandleRecord {
                runner_name: runner.name.to_string(),
                job_id: key.job_id,
                token: e.job.token.clone(),
                trace_offset: e.trace_offset,
                expected_weight: e.expected_weight,
                paas_resource: e.resource.as_ref().map(|r| runner.paas.dump_resource(r)),
            };
            if e.phase == Phase::Provisioning && e.resource.is_none() {
                if let Some(name) = &e.resource_name {
                    snap.creating.push(CreatingRecord {
                        runner_name: handle.runner_name.clone(),
                        job_id: key.job_id,
                        resource_name: name.clone(),
                    });
                }
            }
            if e.phase == Phase::LaunchFailed {
                snap.launch_failures.push(FailureRecord {
                    runner_name: handle.runner_name.clone(),
                    job_id: key.job_id,
                    message: e.failure.clone().unwrap_or_default(),
                    trace_appended: e.trace_appended,
                });
            }
            match section {
                Section::Pending => snap.pending.push(PendingRecord {
                    handle,
                    job_data: e.job.payload.clone(),
                }),
                Section::Launched => snap.launched.push(handle),
                Section::ToDecommission => snap.to_decommission.push(handle),
            }
        }
        snap.launched.extend(self.orphans.launched.iter().cloned());
        snap.pending.extend(self.orphans.pending.iter().cloned());
        snap.to_decommission
            .extend(self.orphans.to_decommission.iter().cloned());
        if self.persist.forced {
            snap.uncertain = self.ops.uncertain();
        }
        snap
    }

    // -- drain ---------------------------------------------------------------

    fn check_drained(&mut self, ctx: &mut Context<Self>) {
        if !self.draining || self.drained_sent || self.persist.forced {
            return;
        }
        if self.tasks > 0 || self.polls_in_flight > 0 {
            return;
        }
        self.drained_sent = true;
        self.mark_dirty(ctx);
        let rx = self.persisted(ctx);
        ctx.spawn(rx.into_actor(self).map(|res, act, ctx| {
            let snapshot_error = match res {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("supervisor stopped".into()),
            };
            act.persist.stopped = true;
            let report = ExitReport {
                forced: false,
                poll_cycles: act.min_cycles(),
                tracked_jobs: act.snapshot().len(),
                snapshot_error,
            };
            act.shutdown.do_send(DrainCompleted(report));
            ctx.stop();
        }));
    }

    fn stats(&self) -> Stats {
        let mut phases = BTreeMap::new();
        for e in self.jobs.values() {
            *phases.entry(e.phase.as_str()).or_insert(0) += 1;
        }
        Stats {
            phases,
            used_weight: self.ledger.used(),
            peak_used_weight: self.peak_used,
            quota: self.ledger.limits().total_weight,
            acquired: self.acquired,
            completed: self.completed,
            launch_failures: self.launch_failures,
            persists: self.persist.count,
            last_persist: self.persist.last_duration,
            last_snapshot_build: self.persist.last_build,
            tasks: self.tasks,
            poll_cycles: self.min_cycles(),
            reconcile_passes: self.reconcile_passes,
            adopted: self.adopted,
            orphans_decommissioned: self.orphans_decommissioned,
            vanished: self.vanished,
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Many events may arrive at once (10,000 jobs): no back-pressure on
        // the supervisor's own mailbox from request/response messages.
        ctx.set_mailbox_capacity(usize::MAX >> 4);
        let check_concurrency = self.settings.progress_check_concurrency;
        for r in &mut self.runners {
            r.poller =
                Some(Poller::new(r.coordinator.clone(), r.paas.clone(), check_concurrency).start());
        }
        slog::info!(self.logger, "supervisor started";
                    "runners" => self.runners.len(), "tracked_jobs" => self.jobs.len(),
                    "quota" => self.ledger.limits().total_weight,
                    "used_weight" => self.ledger.used());
        let keys: Vec<JobKey> = self.jobs.keys().copied().collect();
        for key in keys {
            self.resume(key, ctx);
        }
        // Record the loaded state at once (the reference deleted its file
        // after loading; we keep it current instead).
        self.mark_dirty(ctx);
        let interval = self.settings.job_progress_poll_interval;
        self.progress_timer = Some(ctx.run_interval(interval, |act, ctx| act.check_progress(ctx)));
        // Reconcile at once (the state may be stale or lost), then
        // periodically unless disabled.
        ctx.notify(Reconcile);
        if let Some(every) = self.settings.reconcile_interval.filter(|d| !d.is_zero()) {
            self.reconcile_timer = Some(ctx.run_interval(every, |_, ctx| ctx.notify(Reconcile)));
        }
        self.schedule_polls(ctx);
    }
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

impl Handler<RecordCreating> for Supervisor {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: RecordCreating, ctx: &mut Context<Self>) -> Self::Result {
        if !self.apply(msg.key, JobEvent::CreateRecorded) {
            // Not recorded: the launcher must not create.
            return Box::pin(async { Err("the job no longer expects a create".to_string()) });
        }
        if let Some(e) = self.jobs.get_mut(&msg.key) {
            e.resource_name = Some(msg.name);
        }
        self.mark_dirty(ctx);
        self.persisted_response(ctx)
    }
}

impl Handler<ResourceProvisioned> for Supervisor {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: ResourceProvisioned, ctx: &mut Context<Self>) -> Self::Result {
        let key = msg.key;
        let phase = self.jobs.get(&key).map(|e| e.phase);
        let accepted = match phase {
            Some(Phase::Provisioning) => self.apply(key, JobEvent::ResourceCreated),
            // Again after `prepare`, or an uncertain create found by name
            // while the failure is being handled.
            Some(Phase::Provisioned | Phase::LaunchFailed) => true,
            _ => false,
        };
        if !accepted {
            // Not recorded: the launcher must not go on with this resource.
            let why = format!(
                "resource {} not recorded: the job is {}",
                msg.resource.id,
                phase.map_or("no longer tracked", |p| p.as_str())
            );
            return Box::pin(async move { Err(why) });
        }
        self.record_resource(key, msg.resource);
        self.mark_dirty(ctx);
        self.schedule_polls(ctx);
        self.persisted_response(ctx)
    }
}

impl Supervisor {
    fn record_resource(&mut self, key: JobKey, resource: Resource) {
        let weight = resource.weight;
        if let Some(e) = self.jobs.get_mut(&key) {
            e.resource = Some(resource);
        }
        self.ledger.set_actual(key, weight);
        self.note_peak();
    }
}

impl Handler<ResourceLaunched> for Supervisor {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: ResourceLaunched, ctx: &mut Context<Self>) -> Self::Result {
        let key = msg.key;
        if self.apply(key, JobEvent::ResourceLaunched) {
            self.record_resource(key, msg.resource);
            self.mark_dirty(ctx);
            let cancelled = self
                .jobs
                .get(&key)
                .and_then(|e| e.cancel.as_ref())
                .is_some_and(|c| *c.borrow());
            if cancelled {
                self.on_cancelled(key, ctx);
            } else if !self.draining {
                self.spawn_trace_watch(key, ctx);
            }
        }
        self.persisted_response(ctx)
    }
}

impl Handler<JobStarted> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: JobStarted, ctx: &mut Context<Self>) {
        self.on_started(msg.key, ctx);
    }
}

impl Handler<LaunchFailed> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: LaunchFailed, ctx: &mut Context<Self>) {
        self.on_launch_failed(msg.key, msg.message, ctx);
    }
}

impl Handler<LaunchStopped> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: LaunchStopped, ctx: &mut Context<Self>) {
        match msg.interrupt {
            Interrupt::Cancel => self.on_cancelled(msg.key, ctx),
            Interrupt::Drain => {
                let log = self.job_log(msg.key);
                slog::info!(log, "launch interrupted by shutdown; stays pending");
            }
        }
        self.schedule_polls(ctx);
    }
}

impl Handler<FailureReported> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: FailureReported, ctx: &mut Context<Self>) {
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
}

impl Handler<ResourceDecommissioned> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ResourceDecommissioned, ctx: &mut Context<Self>) {
        if self.apply(msg.key, JobEvent::Decommissioned) {
            self.forget(msg.key);
            self.mark_dirty(ctx);
            self.schedule_polls(ctx);
        }
    }
}

impl Handler<DecommissionStopped> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: DecommissionStopped, _: &mut Context<Self>) {
        let log = self.job_log(msg.key);
        slog::info!(
            log,
            "decommission interrupted by shutdown; stays to_decommission"
        );
    }
}

impl Handler<TaskEnded> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: TaskEnded, ctx: &mut Context<Self>) {
        self.tasks = self.tasks.saturating_sub(1);
        if let Some(e) = self.jobs.get_mut(&msg.key) {
            e.tasks = e.tasks.saturating_sub(1);
        }
        self.check_drained(ctx);
    }
}

impl Handler<Drain> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.draining = true;
        let _ = self.drain_tx.send(true);
        if let Some(h) = self.progress_timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(h) = self.reconcile_timer.take() {
            ctx.cancel_future(h);
        }
        self.check_drained(ctx);
    }
}

impl Handler<ForcedSnapshot> for Supervisor {
    type Result = ResponseActFuture<Self, ExitReport>;

    fn handle(&mut self, _: ForcedSnapshot, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let _ = self.drain_tx.send(true);
        self.persist.forced = true;
        self.persist.stopped = false;
        self.mark_dirty(ctx);
        let rx = self.persisted(ctx);
        Box::pin(rx.into_actor(self).map(|res, act, ctx| {
            act.persist.stopped = true;
            let snapshot_error = match res {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("supervisor stopped".into()),
            };
            ctx.stop();
            ExitReport {
                forced: true,
                poll_cycles: act.min_cycles(),
                tracked_jobs: act.snapshot().len(),
                snapshot_error,
            }
        }))
    }
}

impl Handler<DumpState> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: DumpState, _: &mut Context<Self>) {
        slog::warn!(self.logger, "state dump";
            "jobs" => self.jobs.len(), "used_weight" => self.ledger.used(),
            "quota" => self.ledger.limits().total_weight,
            "provisioning" => self.ledger.provisioning(),
            "concurrent" => self.ledger.limits().concurrent,
            "draining" => self.draining, "tasks" => self.tasks,
            "orphans" => self.orphans.launched.len() + self.orphans.pending.len()
                + self.orphans.to_decommission.len());
        for (key, e) in &self.jobs {
            let log = self.job_log(*key);
            let weight = self.ledger.weight_of(*key).map_or(0.0, |(w, _)| w);
            slog::warn!(log, "tracked job";
                "phase" => e.phase.as_str(), "weight" => weight,
                "app" => e.resource.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                "resource_name" => e.resource.as_ref().map(|r| r.name.clone())
                    .or_else(|| e.resource_name.clone()).unwrap_or_default(),
                "trace_offset" => e.trace_offset,
                "failure" => e.failure.clone().unwrap_or_default(),
                "token" => &e.job.token);
        }
        for r in &self.runners {
            slog::warn!(r.logger, "runner";
                "poll_state" => format!("{:?}", r.poll), "cycles" => r.cycles,
                "backoff_s" => r.backoff.as_secs_f64(),
                "max_weight" => r.max_weight.unwrap_or(0.0));
        }
    }
}

/// Sent by the supervisor to itself: start the coalesced state write.
#[derive(Message, Debug)]
#[rtype(result = "()")]
struct PersistNow;

impl Handler<PersistNow> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: PersistNow, ctx: &mut Context<Self>) {
        self.persist.kick_scheduled = false;
        self.kick_persist(ctx);
    }
}

impl Handler<GetStats> for Supervisor {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats())
    }
}

// ---------------------------------------------------------------------------
// Reconciliation
// ---------------------------------------------------------------------------

impl Handler<Reconcile> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: Reconcile, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        for i in 0..self.runners.len() {
            self.start_reconcile(i, ctx);
        }
    }
}

impl Supervisor {
    fn start_reconcile(&mut self, i: usize, ctx: &mut Context<Self>) {
        let recorded: HashSet<String> = self
            .jobs
            .iter()
            .filter(|(k, _)| k.runner == i)
            .filter_map(|(_, e)| e.resource.as_ref().map(|r| r.id.clone()))
            .collect();
        let Some(runner) = self.runners.get_mut(i) else {
            return;
        };
        let Some(poller) = runner.poller.clone() else {
            return;
        };
        if runner.reconcile.is_some() {
            slog::debug!(runner.logger, "reconciliation: previous pass still running");
            return;
        }
        runner.reconcile = Some(ReconcilePass {
            recorded,
            forgotten: HashSet::new(),
        });
        ctx.spawn(
            async move { poller.send(ListResources).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let res = res.unwrap_or_else(|e| {
                        Err(PaasError::transient(
                            "list",
                            format!("poller unreachable: {e}"),
                        ))
                    });
                    act.on_listed(i, res, ctx);
                }),
        );
    }

    fn end_reconcile(&mut self, i: usize) -> Option<ReconcilePass> {
        self.reconcile_passes += 1;
        self.runners.get_mut(i).and_then(|r| r.reconcile.take())
    }

    fn on_listed(
        &mut self,
        i: usize,
        res: Result<Vec<Resource>, PaasError>,
        ctx: &mut Context<Self>,
    ) {
        let log = self.runner_log(i);
        if self.draining {
            self.end_reconcile(i);
            return;
        }
        let listed = match res {
            Ok(l) => l,
            Err(e) => {
                // An empty or partial view must not make anything forgotten.
                slog::warn!(log, "reconciliation: cannot list the resources; nothing decided";
                            "error" => %untrusted(&e));
                self.end_reconcile(i);
                return;
            }
        };
        let Some(paas) = self.runners.get(i).map(|r| r.paas.clone()) else {
            return;
        };
        let (recorded, forgotten) = match self.runners.get(i).and_then(|r| r.reconcile.as_ref()) {
            Some(p) => (p.recorded.clone(), p.forgotten.clone()),
            None => (HashSet::new(), HashSet::new()),
        };
        let tracked: Vec<Tracked> = self
            .jobs
            .iter()
            .filter(|(k, _)| k.runner == i)
            .map(|(k, e)| Tracked {
                job_id: k.job_id,
                resource: e.resource.as_ref().map(|r| (r.id.clone(), r.name.clone())),
                busy: e.tasks > 0,
                recorded_before_listing: e
                    .resource
                    .as_ref()
                    .is_some_and(|r| recorded.contains(&r.id)),
            })
            .collect();
        let empty = self.empty_payload.clone();
        let name_of = |id: i64| {
            paas.resource_name(&Job {
                id,
                token: Secret::new(""),
                project_id: None,
                payload: empty.clone(),
            })
        };
        let listed_count = listed.len();
        let mut unknown = Vec::new();
        for d in plan(listed, &tracked, name_of) {
            match d {
                Decision::Matched { job_id, app } => {
                    slog::debug!(log, "reconciliation: resource matches the state";
                                 "job_id" => job_id, "app" => app);
                }
                Decision::BeingCreated { job_id, app } => {
                    slog::info!(log, "reconciliation: resource of a job being launched; \
                                      left to its launcher";
                                "job_id" => job_id, "app" => app);
                }
                Decision::Duplicate { job_id, resource } => {
                    slog::warn!(log, "reconciliation: a second resource carries the name of a \
                                      tracked job's; decommissioned once the job is done";
                                "job_id" => job_id, "app" => resource.id,
                                "name" => resource.name);
                }
                Decision::Foreign { resource } => {
                    slog::warn!(log, "reconciliation: resource with this runner's prefix but \
                                      not a name it gives; left alone";
                                "app" => resource.id, "name" => resource.name);
                }
                Decision::Vanished { job_id, app } => {
                    let key = JobKey { runner: i, job_id };
                    let phase = self.jobs.get(&key).map_or("", |e| e.phase.as_str());
                    slog::warn!(log, "reconciliation: the resource no longer exists on the PAAS; \
                                      forgetting the job and freeing its weight \
                                      (a job still running is ended by the coordinator's timeout)";
                                "job_id" => job_id, "app" => app, "phase" => phase);
                    self.forget(key);
                    self.vanished += 1;
                    self.mark_dirty(ctx);
                }
                Decision::Unknown { job_id, resource } => {
                    if forgotten.contains(&resource.name) {
                        slog::debug!(log, "reconciliation: resource decommissioned meanwhile";
                                     "job_id" => job_id, "app" => resource.id);
                    } else {
                        unknown.push((job_id, resource));
                    }
                }
            }
        }
        slog::info!(log, "reconciliation: resources listed";
                    "listed" => listed_count, "unknown" => unknown.len());
        self.schedule_polls(ctx);
        if unknown.is_empty() {
            self.end_reconcile(i);
            return;
        }
        let Some(poller) = self.runners.get(i).and_then(|r| r.poller.clone()) else {
            self.end_reconcile(i);
            return;
        };
        ctx.spawn(
            async move { poller.send(IdentifyJobs { resources: unknown }).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.end_reconcile(i);
                    act.on_identified(i, res.unwrap_or_default(), ctx);
                }),
        );
    }

    fn on_identified(
        &mut self,
        i: usize,
        found: Vec<(i64, Resource, Identified)>,
        ctx: &mut Context<Self>,
    ) {
        if self.draining {
            return;
        }
        let keep =
            self.settings.keep_finished_resources || !self.settings.decommission_launch_failures;
        for (job_id, resource, identified) in found {
            let key = JobKey { runner: i, job_id };
            let log = self
                .job_log(key)
                .new(slog::o!("app" => resource.id.clone()));
            if self.jobs.contains_key(&key) {
                slog::debug!(log, "reconciliation: the job got tracked meanwhile");
                continue;
            }
            match identified {
                Identified::Running(job) => {
                    slog::warn!(log, "reconciliation: unknown resource whose job still runs \
                                      at the coordinator; adopting it";
                                "launched" => resource.launched);
                    self.adopt(key, job, resource, ctx);
                }
                Identified::Finished(_) | Identified::NoJob if keep => {
                    slog::warn!(
                        log,
                        "reconciliation: unknown resource left alone, as the \
                                      configuration keeps resources \
                                      (paas_finished_jobs_keep_resources / \
                                      paas_decommission_launch_failures)"
                    );
                }
                Identified::Finished(job) => {
                    slog::warn!(
                        log,
                        "reconciliation: unknown resource whose job is over; \
                                      decommissioning it"
                    );
                    self.decommission_orphan(key, job, resource, ctx);
                }
                Identified::NoJob => {
                    slog::warn!(
                        log,
                        "reconciliation: unknown resource holding no job the \
                                      runner can read back; decommissioning it"
                    );
                    let job = Job {
                        id: job_id,
                        token: Secret::new(""),
                        project_id: None,
                        payload: self.empty_payload.clone(),
                    };
                    self.decommission_orphan(key, job, resource, ctx);
                }
                Identified::Failed(why) => {
                    slog::warn!(log, "reconciliation: cannot identify the job of an unknown \
                                      resource; the next pass decides";
                                "error" => why);
                }
            }
        }
        self.schedule_polls(ctx);
    }

    /// Tracks a resource found on the PAAS whose job still runs.
    fn adopt(&mut self, key: JobKey, mut job: Job, resource: Resource, ctx: &mut Context<Self>) {
        let phase = if resource.launched {
            // Saved in `launched`, without payload.
            job.payload = self.empty_payload.clone();
            Phase::Started
        } else {
            Phase::Provisioned
        };
        let weight = resource.weight;
        self.ledger
            .track(key, weight, WeightKind::Actual, phase.is_launching());
        self.jobs.insert(key, JobEntry::new(job, phase, weight));
        self.record_resource(key, resource);
        self.adopted += 1;
        self.mark_dirty(ctx);
        if phase == Phase::Provisioned {
            // Write-ahead: the resource is on disk before `prepare`.
            self.after_persist(ctx, move |act, ctx| {
                let idle_and_provisioned = act
                    .jobs
                    .get(&key)
                    .is_some_and(|e| e.tasks == 0 && e.phase == Phase::Provisioned);
                if !act.draining && idle_and_provisioned {
                    act.spawn_launcher(key, ctx);
                }
            });
        }
    }

    /// Tracks a resource found on the PAAS that nobody needs, and deletes it
    /// (through `to_decommission`, like any other).
    fn decommission_orphan(
        &mut self,
        key: JobKey,
        job: Job,
        resource: Resource,
        ctx: &mut Context<Self>,
    ) {
        let weight = resource.weight;
        self.ledger.track(key, weight, WeightKind::Actual, false);
        self.jobs
            .insert(key, JobEntry::new(job, Phase::Finished, weight));
        self.record_resource(key, resource);
        self.orphans_decommissioned += 1;
        self.dispose(key, false, ctx);
    }
}
