//! The service entry point: settings, ports per runner, start and stop.
//!
//! The wiring code (root crate) builds one [`RunnerPorts`] per `[[runners]]`
//! section, the [`SupervisorSettings`] from the global configuration and a
//! state store, then calls [`run_service`] inside an actix `System`. Signals
//! are not handled here: the root crate maps them onto the
//! [`ServiceHandle`] (first SIGTERM/SIGINT → [`ServiceHandle::drain`],
//! second → [`ServiceHandle::force_stop`], SIGUSR1 →
//! [`ServiceHandle::dump_state`]).

use crate::job::Phase;
use crate::ports::{Coordinator, Job, Paas, Weight};
use crate::quota::JobKey;
use crate::shutdown::{AttachSupervisor, BeginShutdown, ExitReport, ForceStop, Shutdown};
use crate::state::{HandleRecord, Snapshot, StateError, StateStore};
use crate::supervisor::{DumpState, JobEntry, Orphans, RunnerSlot, Supervisor};
use crate::untrusted::untrusted;
use actix::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Settings of one runner that the actors use.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerSettings {
    /// `(timeout_seconds, poll_step)` of the trace watch; `None` without a
    /// trace-watch token (launched jobs are then assumed started).
    pub trace_watch: Option<(Duration, Duration)>,
    /// `quota_max_fraction`: largest share of the quota this runner may hold.
    pub quota_max_fraction: f64,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            trace_watch: Some((Duration::from_secs(300), Duration::from_secs(10))),
            quota_max_fraction: 1.0,
        }
    }
}

/// One `[[runners]]` section: its unique name and ports.
pub struct RunnerPorts {
    /// Unique name (derived from the runner token), as in the state file.
    pub name: String,
    /// Its coordinator.
    pub coordinator: Rc<dyn Coordinator>,
    /// Its PAAS executor.
    pub paas: Rc<dyn Paas>,
    /// Its settings.
    pub settings: RunnerSettings,
}

/// Global settings of the actor system (defaults are the seed's).
#[derive(Clone, Debug, PartialEq)]
pub struct SupervisorSettings {
    /// `concurrent` (50).
    pub concurrent: usize,
    /// `check_interval` (3 s).
    pub check_interval: Duration,
    /// `job_progress_poll_interval` (30 s).
    pub job_progress_poll_interval: Duration,
    /// `paas_max_concurrent_provisioning` (10).
    pub max_concurrent_provisioning: usize,
    /// `paas_finished_jobs_keep_resources` (false).
    pub keep_finished_resources: bool,
    /// `paas_decommission_launch_failures` (true).
    pub decommission_launch_failures: bool,
    /// `paas_repoll_same_runner_immediately` (true).
    pub repoll_immediately: bool,
    /// Weighted quota (computed by the wiring from `[quota_computation]`).
    pub quota: Weight,
    /// `allowed_fraction_per_runner` (1.0).
    pub allowed_fraction_per_runner: f64,
    /// Deadline of a graceful stop (`shutdown_timeout`), well inside the
    /// sample systemd unit's `TimeoutStopSec=120` (90 s).
    pub drain_deadline: Duration,
    /// Attempts to report a launch failure (3).
    pub report_failure_attempts: u32,
    /// Delay between those attempts (30 s).
    pub report_failure_interval: Duration,
    /// First back-off delay after a coordinator or PAAS failure (3 s).
    pub backoff_min: Duration,
    /// Largest back-off delay (300 s).
    pub backoff_max: Duration,
    /// Progress checks in flight per runner (16).
    pub progress_check_concurrency: usize,
    /// Delay before retrying a failed state write (5 s).
    pub persist_retry: Duration,
    /// Stop (gracefully) after this many polling cycles (`--poll-cycles`).
    pub poll_cycles: Option<u64>,
    /// Attempts of each launch step (create, prepare, launch) when the PAAS
    /// answers a transient error, the first included (4; delays from
    /// `backoff_min`, doubling).
    pub launch_attempts: u32,
    /// `reconcile_interval` (300 s): delay between reconciliation passes
    /// after the one at start-up; `None` (or zero) disables the periodic
    /// passes.
    pub reconcile_interval: Option<Duration>,
    /// Grace period of a resumed job whose `creating` marker finds no
    /// resource of its name (5 s): the previous process's create may still
    /// be landing at the PAAS, so the launcher waits this long and lists
    /// once more before creating again. Zero disables the second look.
    pub creating_grace: Duration,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            concurrent: 50,
            check_interval: Duration::from_secs(3),
            job_progress_poll_interval: Duration::from_secs(30),
            max_concurrent_provisioning: 10,
            keep_finished_resources: false,
            decommission_launch_failures: true,
            repoll_immediately: true,
            quota: 1.0,
            allowed_fraction_per_runner: 1.0,
            drain_deadline: Duration::from_secs(90),
            report_failure_attempts: 3,
            report_failure_interval: Duration::from_secs(30),
            backoff_min: Duration::from_secs(3),
            backoff_max: Duration::from_secs(300),
            progress_check_concurrency: 16,
            persist_retry: Duration::from_secs(5),
            poll_cycles: None,
            launch_attempts: 4,
            reconcile_interval: Some(Duration::from_secs(300)),
            creating_grace: Duration::from_secs(5),
        }
    }
}

/// Why the service could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    /// The state could not be loaded (the file is kept as it is).
    #[error(transparent)]
    State(#[from] StateError),
    /// A setting is out of range.
    #[error("invalid setting `{name}`: {detail}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Two runners share a unique name.
    #[error("two runners have the same unique name {0:?}")]
    DuplicateRunner(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Drain,
    Force,
    Dump,
}

/// Handle to control a running service from anywhere (it is `Send`).
#[derive(Clone, Debug)]
pub struct ServiceHandle {
    tx: mpsc::UnboundedSender<Control>,
}

impl ServiceHandle {
    /// Graceful stop (first SIGTERM/SIGINT).
    pub fn drain(&self) {
        let _ = self.tx.send(Control::Drain);
    }

    /// Forced stop: snapshot at once with what is known (second signal).
    pub fn force_stop(&self) {
        let _ = self.tx.send(Control::Force);
    }

    /// Logs the whole state, secrets masked (SIGUSR1 with `--debug-signal`).
    pub fn dump_state(&self) {
        let _ = self.tx.send(Control::Dump);
    }
}

/// The receiving side of a [`ServiceHandle`], consumed by the service.
#[derive(Debug)]
pub struct ControlReceiver {
    rx: mpsc::UnboundedReceiver<Control>,
}

/// A handle and the receiver to give to [`run_service`].
pub fn service_control() -> (ServiceHandle, ControlReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (ServiceHandle { tx }, ControlReceiver { rx })
}

/// A started service.
pub struct RunningService {
    /// The supervisor (for queries such as `GetStats`).
    pub supervisor: Addr<Supervisor>,
    done: oneshot::Receiver<ExitReport>,
}

impl RunningService {
    /// Waits for the end of the service.
    pub async fn wait(self) -> ExitReport {
        self.done.await.unwrap_or(ExitReport {
            forced: true,
            poll_cycles: 0,
            tracked_jobs: 0,
            snapshot_error: Some("shutdown actor vanished".into()),
        })
    }
}

/// Runs the service until it is stopped through the handle or its poll
/// cycles are spent. Must run inside an actix `System`.
pub async fn run_service(
    settings: SupervisorSettings,
    runners: Vec<RunnerPorts>,
    store: Rc<dyn StateStore>,
    logger: slog::Logger,
    control: ControlReceiver,
) -> Result<ExitReport, ServiceError> {
    Ok(start_service(settings, runners, store, logger, control)
        .await?
        .wait()
        .await)
}

fn validate(settings: &SupervisorSettings, runners: &[RunnerPorts]) -> Result<(), ServiceError> {
    let bad = |name, detail: &str| {
        Err(ServiceError::InvalidSetting {
            name,
            detail: detail.to_string(),
        })
    };
    if !(settings.quota.is_finite() && settings.quota > 0.0) {
        return bad("quota", "must be a positive number");
    }
    if settings.concurrent == 0 {
        return bad("concurrent", "must be at least 1");
    }
    if settings.max_concurrent_provisioning == 0 {
        return bad("paas_max_concurrent_provisioning", "must be at least 1");
    }
    let frac_ok = |f: f64| f.is_finite() && f > 0.0;
    if !frac_ok(settings.allowed_fraction_per_runner) {
        return bad("allowed_fraction_per_runner", "must be a positive number");
    }
    if settings.job_progress_poll_interval.is_zero() {
        return bad("job_progress_poll_interval", "must be positive");
    }
    let mut names = HashSet::new();
    for r in runners {
        if !frac_ok(r.settings.quota_max_fraction) {
            return bad("quota_max_fraction", "must be a positive number");
        }
        if !names.insert(r.name.as_str()) {
            return Err(ServiceError::DuplicateRunner(r.name.clone()));
        }
    }
    Ok(())
}

/// Loads the state, starts the actors and returns at once.
pub async fn start_service(
    settings: SupervisorSettings,
    runners: Vec<RunnerPorts>,
    store: Rc<dyn StateStore>,
    logger: slog::Logger,
    mut control: ControlReceiver,
) -> Result<RunningService, ServiceError> {
    validate(&settings, &runners)?;
    let slots: Vec<RunnerSlot> = runners
        .into_iter()
        .map(|r| {
            let name: Rc<str> = Rc::from(r.name.as_str());
            let log = logger.new(slog::o!("runner" => r.name));
            RunnerSlot::new(name, r.coordinator, r.paas, r.settings, log)
        })
        .collect();
    let loaded = store.load().await?;
    let (jobs, orphans) = match loaded {
        Some(snapshot) => {
            slog::info!(logger, "loading state"; "file" => store.location(),
                        "launched" => snapshot.launched.len(), "pending" => snapshot.pending.len(),
                        "to_decommission" => snapshot.to_decommission.len());
            load_jobs(snapshot, &slots, &logger).await
        }
        None => {
            slog::info!(logger, "no state to load"; "file" => store.location());
            (BTreeMap::new(), Orphans::default())
        }
    };

    let (done_tx, done_rx) = oneshot::channel();
    let shutdown = Shutdown::new(settings.drain_deadline, done_tx, logger.clone()).start();
    let supervisor = Supervisor::new(
        settings,
        slots,
        jobs,
        orphans,
        store,
        shutdown.clone(),
        logger.clone(),
    )
    .start();
    shutdown.do_send(AttachSupervisor {
        drain: supervisor.clone().recipient(),
        forced: supervisor.clone().recipient(),
    });
    let sup = supervisor.clone();
    actix_rt::spawn(async move {
        while let Some(c) = control.rx.recv().await {
            match c {
                Control::Drain => shutdown.do_send(BeginShutdown),
                Control::Force => shutdown.do_send(ForceStop),
                Control::Dump => sup.do_send(DumpState),
            }
            if !shutdown.connected() {
                break;
            }
        }
    });
    Ok(RunningService {
        supervisor,
        done: done_rx,
    })
}

/// Turns a loaded snapshot into job entries, per the phase each was in.
/// Records no runner can take are kept aside and written back untouched.
async fn load_jobs(
    snapshot: Snapshot,
    runners: &[RunnerSlot],
    logger: &slog::Logger,
) -> (BTreeMap<JobKey, JobEntry>, Orphans) {
    let by_name: HashMap<&str, usize> = runners
        .iter()
        .enumerate()
        .map(|(i, r)| (&*r.name, i))
        .collect();
    let creating: HashMap<(String, i64), String> = snapshot
        .creating
        .into_iter()
        .map(|c| ((c.runner_name, c.job_id), c.resource_name))
        .collect();
    let failures: HashMap<(String, i64), (String, bool)> = snapshot
        .launch_failures
        .into_iter()
        .map(|f| ((f.runner_name, f.job_id), (f.message, f.trace_appended)))
        .collect();
    let mut jobs = BTreeMap::new();
    let mut orphans = Orphans::default();
    let empty = Arc::new(Value::Null);

    // Returns the runner index and the loaded resource, or None (orphan).
    async fn resolve(
        h: &HandleRecord,
        by_name: &HashMap<&str, usize>,
        runners: &[RunnerSlot],
        logger: &slog::Logger,
    ) -> Option<(usize, Option<crate::ports::Resource>)> {
        let Some(&i) = by_name.get(h.runner_name.as_str()) else {
            slog::error!(logger, "state entry of an unknown runner kept as is";
                         "runner" => &h.runner_name, "job_id" => h.job_id);
            return None;
        };
        let runner = runners.get(i)?;
        match &h.paas_resource {
            None => Some((i, None)),
            Some(v) => match runner.paas.load_resource(v).await {
                Ok(r) => Some((i, Some(r))),
                Err(e) => {
                    slog::error!(logger, "cannot load a saved resource; entry kept as is";
                                 "runner" => &h.runner_name, "job_id" => h.job_id,
                                 "error" => %untrusted(&e));
                    None
                }
            },
        }
    }

    let insert = |jobs: &mut BTreeMap<JobKey, JobEntry>, key: JobKey, entry: JobEntry| {
        if jobs.insert(key, entry).is_some() {
            slog::warn!(logger, "job listed twice in the state; the last entry wins";
                        "job_id" => key.job_id);
        }
    };

    for h in snapshot.launched {
        match resolve(&h, &by_name, runners, logger).await {
            None => orphans.launched.push(h),
            Some((i, resource)) => {
                let key = JobKey {
                    runner: i,
                    job_id: h.job_id,
                };
                let e = entry_without_payload(&h, &empty, Phase::Started, resource, runners.get(i));
                insert(&mut jobs, key, e);
            }
        }
    }
    for p in snapshot.pending {
        let h = &p.handle;
        match resolve(h, &by_name, runners, logger).await {
            None => orphans.pending.push(p),
            Some((i, resource)) => {
                let key = JobKey {
                    runner: i,
                    job_id: h.job_id,
                };
                let id = (h.runner_name.clone(), h.job_id);
                let phase = if failures.contains_key(&id) {
                    Phase::LaunchFailed
                } else {
                    match &resource {
                        Some(r) if r.launched => Phase::Launched,
                        Some(_) => Phase::Provisioned,
                        None if creating.contains_key(&id) => Phase::Provisioning,
                        None => Phase::Acquired,
                    }
                };
                let mut e =
                    JobEntry::new(bare_job(h, p.job_data.clone()), phase, h.expected_weight);
                e.trace_offset = h.trace_offset;
                e.resource_name = creating.get(&id).cloned();
                if let Some((message, appended)) = failures.get(&id) {
                    e.failure = Some(message.clone());
                    e.trace_appended = *appended;
                }
                set_resource(&mut e, resource, runners.get(i));
                insert(&mut jobs, key, e);
            }
        }
    }
    for h in snapshot.to_decommission {
        match resolve(&h, &by_name, runners, logger).await {
            None => orphans.to_decommission.push(h),
            Some((_, None)) => {
                slog::warn!(logger, "nothing to decommission for a job without resource";
                            "runner" => &h.runner_name, "job_id" => h.job_id);
            }
            Some((i, resource)) => {
                let key = JobKey {
                    runner: i,
                    job_id: h.job_id,
                };
                let e = entry_without_payload(
                    &h,
                    &empty,
                    Phase::Decommissioning,
                    resource,
                    runners.get(i),
                );
                insert(&mut jobs, key, e);
            }
        }
    }
    (jobs, orphans)
}

/// A job rebuilt from a saved handle and its payload (`Null` when the state
/// keeps none, as for `launched` and `to_decommission` handles).
fn bare_job(h: &HandleRecord, payload: Arc<Value>) -> Job {
    let project_id = payload
        .get("job_info")
        .and_then(|i| i.get("project_id"))
        .and_then(|v| v.as_i64());
    Job {
        id: h.job_id,
        token: h.token.clone(),
        project_id,
        payload,
    }
}

/// The entry of a `launched` or `to_decommission` handle: the Python format
/// keeps no payload for those, only the handle.
fn entry_without_payload(
    h: &HandleRecord,
    empty: &Arc<Value>,
    phase: Phase,
    resource: Option<crate::ports::Resource>,
    runner: Option<&RunnerSlot>,
) -> JobEntry {
    let mut e = JobEntry::new(bare_job(h, empty.clone()), phase, h.expected_weight);
    e.trace_offset = h.trace_offset;
    set_resource(&mut e, resource, runner);
    e
}

fn set_resource(
    e: &mut JobEntry,
    resource: Option<crate::ports::Resource>,
    runner: Option<&RunnerSlot>,
) {
    // Only a known runner's resource is tracked (its port dumps it later).
    if let (Some(r), Some(_)) = (resource, runner) {
        e.resource = Some(r);
    }
}
