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
//!
//! One actor, its code split by concern: this file holds the struct, `new`,
//! `started` and the handlers of the protocol, each dispatching to the file
//! of its concern (`lifecycle`, `spawn`, `polling`, `progress`,
//! `persistence`, `reconciliation`, `reload`, `drain`); the queries are
//! answered in `monitoring` and `stats`, the observer is told in
//! `liveness`. Every metric follows from a
//! transition observed in `counting`. The hidden state machines are pure
//! types with their own tests: [`write_queue`], [`poll_slot`],
//! [`check_schedule`] and [`refusal_guard`].

mod check_schedule;
mod counting;
mod drain;
mod give_back;
mod lifecycle;
mod liveness;
mod monitoring;
mod not_ours;
mod persistence;
mod poll_slot;
mod polling;
mod pool;
mod progress;
mod reconciliation;
mod refusal_guard;
mod reload;
mod spawn;
mod statistics;
mod stats;
mod write_queue;

#[cfg(feature = "testing")]
pub use stats::{Books, EndTask, GetBooks, GetStats, Stats};

use self::check_schedule::CheckSchedule;
use self::counting::{JobEnd, JobOrigin, Transition};
use self::persistence::Waiter;
use self::poll_slot::PollSlot;
use self::refusal_guard::RefusalGuard;
use self::write_queue::WriteQueue;
use crate::backoff::{BackoffPolicy, LazyBackoff};
use crate::decommissioner::Decommission;
use crate::failure_reporter::ReportFailure;
use crate::job::{after_use, transition, JobEvent, Phase};
use crate::job_actor::{JobActor, JobTask};
use crate::job_ctx::{JobCtx, SupervisorLink};
use crate::job_table::{JobEntry, JobTable, Unloaded};
use crate::launch_spacing::LaunchSpacing;
use crate::launcher::{Launch, Retry};
use crate::mailbox::answer;
use crate::messages::{
    DumpState, FailureReported, GetHealth, Health, JobView, ListJobs, NotReady, NotRecorded,
    Reconcile, ReleaseStandby, ReportOutcome, SettingsRequest, TaskEvent, TraceSeen, WriteAhead,
};
use crate::metrics::{
    BillLabels, JobOutcome, LaunchFailureReason, Metrics, PollAnswer, ReconcileAction, Totals,
};
use crate::observer::{Hooks, ServiceObserver, ServiceStatus};
use crate::poller::{
    Acquired, CheckJobs, ConfirmJobs, GetMaxJobWeight, IdentifyJobs, ListResources, PollOnce,
    Poller,
};
use crate::ports::{
    Coordinator, CoordinatorError, Job, JobStatus, Listing, Paas, PaasError, Resource, TwoDecimals,
    Weight,
};
use crate::quota::{JobKey, Ledger, QuotaLimits, WeightKind};
use crate::ready_delay::ReadyDelay;
use crate::reconcile::{plan, Decision, Identified, Tracked};
use crate::settings::{RunnerSettings, SupervisorSettings};
use crate::shutdown::{
    Drain, DrainCompleted, ExitReport, FinishJobs, ForcedSnapshot, Interrupt, Interrupts,
    OpRegistry, OpSubject, Shutdown,
};
use crate::snapshot;
use crate::state::StateStore;
use crate::trace_watcher::WatchTrace;
use actix::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// A runner as the supervisor knows it.
pub(crate) struct RunnerSlot {
    pub name: Rc<str>,
    /// The `runner` label of its metrics (section `name`).
    pub label: Rc<str>,
    pub coordinator: Rc<dyn Coordinator>,
    pub paas: Rc<dyn Paas>,
    pub settings: RunnerSettings,
    pub logger: slog::Logger,
    poller: Option<Addr<Poller>>,
    max_job_weight: Option<Weight>,
    poll: PollSlot,
    /// When the poll in flight (or the last one) was sent, and its kind.
    poll_sent: Option<(tokio::time::Instant, crate::ports::PollKind)>,
    cycles: u64,
    /// The last poll failed (coordinator down or refusing); cleared by an
    /// answered poll.
    coordinator_down: bool,
    warned_no_trace_watch: bool,
    /// The coordinator refused this runner's trace-watch token at the last
    /// trace read that decided (set by a refusal, cleared by a trace read
    /// that saw a job start).
    pub(crate) trace_watch_refused: bool,
    /// Refused job tokens not believed yet.
    refusals: RefusalGuard,
    /// How long this runner's inner runners take to write to the trace
    /// after the push, learnt by the trace watchers.
    trace_ready: Rc<ReadyDelay>,
    reconcile: Option<ReconcilePass>,
    /// Removed by a reconfiguration: no longer polled; its jobs run to the end.
    retired: bool,
    /// What `runner_wants_jobs` shows for it (`None`: not shown).
    wants_jobs_shown: Option<bool>,
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
        let label: Rc<str> = match &settings.label {
            Some(l) => Rc::from(l.as_str()),
            None => name.clone(),
        };
        RunnerSlot {
            label,
            name,
            coordinator,
            paas,
            settings,
            logger,
            poller: None,
            max_job_weight: None,
            poll: PollSlot::new(BackoffPolicy::new(Duration::ZERO, Duration::ZERO), None),
            poll_sent: None,
            cycles: 0,
            coordinator_down: false,
            warned_no_trace_watch: false,
            trace_watch_refused: false,
            refusals: RefusalGuard::default(),
            trace_ready: Rc::default(),
            reconcile: None,
            retired: false,
            wants_jobs_shown: None,
        }
    }
}

/// The supervisor actor (see the module documentation).
pub struct Supervisor {
    settings: SupervisorSettings,
    runners: Vec<RunnerSlot>,
    jobs: JobTable,
    unloaded: Unloaded,
    ledger: Ledger,
    peak_used: Weight,
    store: Rc<dyn StateStore>,
    persist: WriteQueue<Waiter>,
    ops: OpRegistry,
    drain_tx: watch::Sender<bool>,
    /// Bumped when a reconciliation pass lists a scope its runner's
    /// previous pass skipped: waiting deletions are tried at once.
    retry_deletions: watch::Sender<u64>,
    /// The scopes each runner's last listing skipped.
    skipped_scopes: HashMap<usize, Vec<String>>,
    draining: bool,
    /// Finishing (SIGQUIT): no more polls; the tracked jobs run to their
    /// end, then the service stops.
    finishing: bool,
    /// Resources (runner, id) found named like this runner's whose running
    /// job is not this runner's: warned about once, then left alone
    /// without being identified again (bounded).
    not_ours: not_ours::NotOurs,
    /// Jobs lost at acquisition being given back, and their sightings.
    give_backs: give_back::GiveBacks,
    drained_sent: bool,
    polls_in_flight: usize,
    tasks: usize,
    rr: usize,
    link: Option<Rc<SupervisorLink>>,
    checks: CheckSchedule,
    /// The one timer of the progress checks, and when it fires.
    progress_timer: Option<(tokio::time::Instant, SpawnHandle)>,
    reconcile_timer: Option<SpawnHandle>,
    shutdown: Addr<Shutdown>,
    logger: slog::Logger,
    empty_payload: Arc<Value>,
    metrics: Arc<Metrics>,
    observer: Rc<dyn ServiceObserver>,
    /// Runners whose first reconciliation listing has not answered yet;
    /// `None` once the service was declared ready.
    awaiting_first_listing: Option<HashSet<usize>>,
    last_status: Option<ServiceStatus>,
    /// What reloads send ([`crate::messages::ApplySettings`]), until
    /// `started` reads it.
    settings_rx: Option<mpsc::UnboundedReceiver<SettingsRequest>>,
    /// The planned starts of the launchers' creates.
    launch_spacing: Rc<LaunchSpacing>,
    /// Standby resources were released (finish-and-exit): none is kept
    /// any more.
    standby_released: bool,
}

impl Supervisor {
    /// A supervisor over `runners`, with the jobs loaded from the state
    /// and the entries no runner could take.
    pub(crate) fn new(
        settings: SupervisorSettings,
        mut runners: Vec<RunnerSlot>,
        (jobs, unloaded): (BTreeMap<JobKey, JobEntry>, Unloaded),
        store: Rc<dyn StateStore>,
        shutdown: Addr<Shutdown>,
        logger: slog::Logger,
        hooks: Hooks,
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
        // What exists first, standby resources oldest first, then the jobs
        // without resource: they hold what the quota leaves and wait for
        // the rest (standby resources are evicted for them at start).
        let mut standby: Vec<(Option<std::time::SystemTime>, JobKey, Weight)> = Vec::new();
        for (key, e) in &jobs {
            match &e.resource {
                Some(r) if e.phase == Phase::Standby => {
                    standby.push((e.standby_since, *key, r.weight));
                }
                Some(r) => ledger.track(*key, r.weight, WeightKind::Actual, e.phase.is_launching()),
                None => {}
            }
        }
        standby.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, key, w) in standby {
            ledger.track(key, w, WeightKind::Standby, false);
        }
        for (key, e) in &jobs {
            if e.resource.is_none() {
                if e.phase.is_launching() {
                    ledger.track_waiting(*key, e.expected_weight);
                } else {
                    ledger.track(*key, e.expected_weight, WeightKind::Expected, false);
                }
            }
        }
        ledger.take_ready();
        // One back-off per runner's poll slot: jitter (equal: never much
        // shorter than nominal) spreads the retries of several runner hosts
        // after a coordinator outage.
        let policy = settings.retry_policy();
        for (i, r) in runners.iter_mut().enumerate() {
            let seed = settings.backoff_seed.map(|s| s.wrapping_add(i as u64));
            r.poll = PollSlot::new(policy, seed);
        }
        let (drain_tx, _) = watch::channel(false);
        let (retry_deletions, _) = watch::channel(0);
        let checks = CheckSchedule::new(settings.job_progress_poll_interval);
        let runners_count = runners.len();
        let spacing = LaunchSpacing::new(settings.min_between_launches.unwrap_or_default());
        Supervisor {
            settings,
            runners,
            jobs: JobTable::from(jobs),
            unloaded,
            peak_used: ledger.used(),
            ledger,
            store,
            persist: WriteQueue::default(),
            ops: OpRegistry::default(),
            drain_tx,
            retry_deletions,
            skipped_scopes: HashMap::new(),
            draining: false,
            finishing: false,
            not_ours: not_ours::NotOurs::default(),
            give_backs: give_back::GiveBacks::default(),
            drained_sent: false,
            polls_in_flight: 0,
            tasks: 0,
            rr: 0,
            link: None,
            checks,
            progress_timer: None,
            reconcile_timer: None,
            shutdown,
            logger,
            empty_payload: Arc::new(Value::Null),
            metrics: Arc::new(Metrics::new()),
            awaiting_first_listing: Some((0..runners_count).collect()),
            observer: hooks.observer,
            settings_rx: Some(hooks.settings),
            last_status: None,
            launch_spacing: Rc::new(spacing),
            standby_released: false,
        }
    }

    /// The supervisor, publishing to `metrics` (instead of a registry of
    /// its own).
    pub(crate) fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
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
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Many events may arrive at once (10,000 jobs): no back-pressure on
        // the supervisor's own mailbox from request/response messages.
        ctx.set_mailbox_capacity(usize::MAX >> 4);
        self.link = Some(Rc::new(SupervisorLink::to(&ctx.address())));
        let check_concurrency = self.settings.progress_check_concurrency;
        for r in &mut self.runners {
            r.poller =
                Some(Poller::new(r.coordinator.clone(), r.paas.clone(), check_concurrency).start());
        }
        slog::info!(self.logger, "supervisor started";
                    "runners" => self.runners.len(), "tracked_jobs" => self.jobs.len(),
                    "quota" => TwoDecimals(self.ledger.limits().total_weight),
                    "used_weight" => TwoDecimals(self.ledger.used()));
        self.observe(Transition::Started);
        let keys: Vec<JobKey> = self.jobs.keys().copied().collect();
        for key in keys {
            self.resume(key, ctx);
        }
        // Loaded jobs the quota had no room for: standby resources go.
        if self.ledger.missing() > 0.0 {
            self.make_room(0, ctx);
        }
        // Record the loaded state at once (the reference deleted its file
        // after loading; we keep it current instead).
        self.mark_dirty(ctx);
        // Reconcile at once (the state may be stale or lost), then
        // periodically unless disabled.
        ctx.notify(Reconcile);
        self.start_liveness(ctx);
        if let Some(rx) = self.settings_rx.take() {
            ctx.add_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|request| (request, rx))
            }));
        }
        if let Some(every) = self.settings.reconcile_interval.filter(|d| !d.is_zero()) {
            self.reconcile_timer = Some(ctx.run_interval(every, |_, ctx| ctx.notify(Reconcile)));
        }
        self.schedule_polls(ctx);
    }
}

// Handlers: each one dispatches to the file of its concern.

impl Handler<WriteAhead> for Supervisor {
    type Result = ResponseFuture<Result<(), NotRecorded>>;
    fn handle(&mut self, msg: WriteAhead, ctx: &mut Context<Self>) -> Self::Result {
        match msg {
            WriteAhead::RecordCreating(m) => self.on_record_creating(m.key, m.name, ctx),
            WriteAhead::ResourceProvisioned(m) => self.on_provisioned(m.key, m.resource, ctx),
            WriteAhead::ResourceLaunched(m) => self.on_launched(m.key, m.resource, ctx),
        }
    }
}

impl Handler<TaskEvent> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: TaskEvent, ctx: &mut Context<Self>) {
        match msg {
            TaskEvent::JobStarted(msg) => {
                self.note_trace_token(msg.key.runner, &msg.seen);
                self.on_started(msg.key, ctx);
            }
            TaskEvent::DecommissionRefused(msg) => {
                if let Some(e) = self.jobs.get_mut(&msg.key) {
                    e.delete_refused = Some(msg.error);
                }
                self.observe(Transition::DeleteRefused { key: msg.key });
            }
            TaskEvent::LaunchFailed(msg) => {
                self.on_launch_failed(msg.key, msg.message, msg.reason, ctx);
            }
            TaskEvent::LaunchStopped(msg) => {
                self.on_launch_stopped(msg.key, msg.interrupt, ctx);
            }
            TaskEvent::FailureReported(msg) => {
                self.on_failure_reported(msg, ctx);
            }
            TaskEvent::ResourceDecommissioned(msg) => {
                self.on_decommissioned(msg.key, ctx);
            }
            TaskEvent::DecommissionStopped(msg) => {
                let log = self.job_log(msg.key);
                slog::info!(
                    log,
                    "decommission interrupted by shutdown; stays to_decommission"
                );
            }
            TaskEvent::ReuseFailed(msg) => self.on_reuse_failed(msg, ctx),
            TaskEvent::TaskEnded(msg) => {
                self.on_task_ended(msg.key, ctx);
            }
        }
    }
}

impl Handler<Drain> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.begin_drain(ctx);
    }
}

impl Handler<FinishJobs> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: FinishJobs, ctx: &mut Context<Self>) {
        self.begin_finish(ctx);
    }
}

impl Handler<ForcedSnapshot> for Supervisor {
    type Result = ResponseActFuture<Self, Option<ExitReport>>;
    fn handle(&mut self, _: ForcedSnapshot, ctx: &mut Context<Self>) -> Self::Result {
        self.forced_snapshot(ctx)
    }
}

impl Handler<DumpState> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: DumpState, _: &mut Context<Self>) {
        self.dump_state();
    }
}

/// Sent by the supervisor to itself: start the coalesced state write.
#[derive(Message, Debug)]
#[rtype(result = "()")]
struct PersistNow;

impl Handler<PersistNow> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: PersistNow, ctx: &mut Context<Self>) {
        self.persist.kick_taken();
        self.kick_persist(ctx);
        self.publish_status();
    }
}

impl Handler<Reconcile> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: Reconcile, ctx: &mut Context<Self>) {
        self.reconcile_all(ctx);
    }
}

impl StreamHandler<SettingsRequest> for Supervisor {
    fn handle(&mut self, (msg, reply): SettingsRequest, ctx: &mut Context<Self>) {
        let _ = reply.send(self.apply_reload(msg, ctx));
    }

    /// No more reloads (the service's handle is gone): the supervisor
    /// goes on.
    fn finished(&mut self, _: &mut Context<Self>) {}
}
