//! The service entry point: settings, ports per runner, start and stop.
//!
//! The wiring code (root crate) builds one [`RunnerPorts`] per `[[runners]]`
//! section, the [`SupervisorSettings`] from the global configuration and a
//! state store, then calls [`run_service`] inside an actix `System`. Signals
//! are not handled here: the root crate maps them onto the
//! [`ServiceHandle`] (first SIGTERM/SIGINT → [`ServiceHandle::drain`],
//! second → [`ServiceHandle::force_stop`], SIGUSR1 →
//! [`ServiceHandle::dump_state`]). The handle also reaches the service's
//! [`Metrics`] and asks the supervisor for its health and its job list
//! (the root crate serves them over HTTP).

use crate::job_table::{JobEntry, Unloaded};
use crate::messages::{DumpState, GetHealth, ListJobs, ReleaseStandby, SettingsRequest};
use crate::metrics::Metrics;
use crate::observer::{Hooks, NoObserver, ServiceObserver};
use crate::quota::JobKey;
pub use crate::settings::RunnerPorts;
use crate::shutdown::{BeginShutdown, ExitReport, ForceStop, Shutdown, SupervisorRecipients};
use crate::snapshot::{self, RunnerRef};
use crate::state::{StateError, StateStore};
use crate::supervisor::{RunnerSlot, Supervisor};
use actix::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub use crate::messages::{
    ApplyOutcome, ApplySettings, Health, JobView, NotReady, Reconcile, ReloadReport, SettingsDiff,
};
pub use crate::settings::{RunnerSettings, SupervisorSettings};

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
    /// Two runners share a unique name (the supervisor's registry is keyed
    /// by it).
    #[error("two runners have the same unique name {0:?}")]
    DuplicateRunner(String),
}

/// Handle to control and observe a running service from anywhere (it is
/// `Send`: the signal handlers and the monitoring server's worker thread
/// hold clones).
///
/// Each method sends one message straight to the actor concerned: a stop
/// to the shutdown actor, the state dump and the queries to the
/// supervisor (a reload's settings go by [`SettingsSender`]). A query is awaited by its caller alone, so a slow
/// answer never delays a stop. The actors' mailboxes exist from
/// [`service_control`] on: what is sent before the service starts waits
/// there; once the service stopped, messages are dropped and queries
/// answer `None`.
#[derive(Clone, Debug)]
pub struct ServiceHandle {
    shutdown: Addr<Shutdown>,
    supervisor: Addr<Supervisor>,
    metrics: Arc<Metrics>,
}

impl ServiceHandle {
    /// Graceful stop (first SIGTERM/SIGINT).
    pub fn drain(&self) {
        self.shutdown.do_send(BeginShutdown);
    }

    /// Forced stop: snapshot at once with what is known (second signal).
    pub fn force_stop(&self) {
        self.shutdown.do_send(ForceStop);
    }

    /// Logs the whole state, secrets masked (SIGUSR1 with `--debug-signal`).
    pub fn dump_state(&self) {
        self.supervisor.do_send(DumpState);
    }

    /// Deletes every standby resource now and keeps none from now on (for
    /// a finish-and-exit stop: call it, then [`ServiceHandle::drain`]).
    /// Answers how many went to decommissioning; `None` when the
    /// supervisor does not answer.
    pub async fn release_standby(&self) -> Option<usize> {
        self.supervisor.send(ReleaseStandby).await.ok()
    }

    /// The service's metrics (updated by the supervisor, encoded by
    /// [`Metrics::encode`]).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The supervisor's health; `None` when it does not answer (stopped,
    /// or never started). Callers bound the wait (before the start, the
    /// query waits for it).
    pub async fn health(&self) -> Option<Health> {
        self.supervisor.send(GetHealth).await.ok()
    }

    /// The tracked jobs; `None` when the supervisor does not answer.
    /// Callers bound the wait.
    pub async fn jobs(&self) -> Option<Vec<JobView>> {
        self.supervisor.send(ListJobs).await.ok()
    }
}

/// Sends the settings of a reload to the supervisor and gives its answer.
/// Not `Send`: the settings carry the new runners' ports, built on the
/// service's thread, where the reload that uses this lives too.
#[derive(Clone)]
pub struct SettingsSender {
    tx: mpsc::UnboundedSender<SettingsRequest>,
}

impl SettingsSender {
    /// The supervisor's answer; `None` when the service has stopped.
    pub async fn apply(&self, settings: ApplySettings) -> Option<ApplyOutcome> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((settings, tx)).ok()?;
        rx.await.ok()
    }
}

/// The receiving side of a [`ServiceHandle`], consumed by the service:
/// the mailboxes of the shutdown actor and of the supervisor, which start
/// on them, with the service's observer and the receiving side of its
/// [`SettingsSender`].
pub struct ControlReceiver {
    shutdown: Context<Shutdown>,
    supervisor: Context<Supervisor>,
    metrics: Arc<Metrics>,
    observer: Rc<dyn ServiceObserver>,
    settings_tx: mpsc::UnboundedSender<SettingsRequest>,
    settings_rx: mpsc::UnboundedReceiver<SettingsRequest>,
}

impl ControlReceiver {
    /// The observer told of readiness, status, liveness and stop.
    pub fn with_observer(mut self, observer: Rc<dyn ServiceObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// The sender of a reload's settings to this service's supervisor.
    pub fn settings_sender(&self) -> SettingsSender {
        SettingsSender {
            tx: self.settings_tx.clone(),
        }
    }
}

/// A handle and the receiver to give to [`run_service`], with a new
/// [`Metrics`] registry.
pub fn service_control() -> (ServiceHandle, ControlReceiver) {
    service_control_with(Arc::new(Metrics::new()))
}

/// A handle and the receiver to give to [`run_service`]; the service
/// updates `metrics`.
pub(crate) fn service_control_with(metrics: Arc<Metrics>) -> (ServiceHandle, ControlReceiver) {
    let (shutdown, supervisor) = (Context::new(), Context::new());
    let (settings_tx, settings_rx) = mpsc::unbounded_channel();
    (
        ServiceHandle {
            shutdown: shutdown.address(),
            supervisor: supervisor.address(),
            metrics: metrics.clone(),
        },
        ControlReceiver {
            shutdown,
            supervisor,
            metrics,
            observer: Rc::new(NoObserver),
            settings_tx,
            settings_rx,
        },
    )
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
        self.done
            .await
            .unwrap_or_else(|_| ExitReport::unknown("shutdown actor vanished"))
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

/// Checks what the configuration layer does not: the quota (computed from
/// the PAAS's flavors) and that the runner registry's keys are unique. The
/// values the file sets were validated against their declarations there
/// ([`crate::settings`]).
fn validate(settings: &SupervisorSettings, runners: &[RunnerPorts]) -> Result<(), ServiceError> {
    debug_assert_eq!(settings.check(), Ok(()));
    debug_assert!(runners.iter().all(|r| r.settings.check_all().is_ok()));
    if !(settings.quota.is_finite() && settings.quota > 0.0) {
        return Err(ServiceError::InvalidSetting {
            name: "quota",
            detail: "must be a positive number".to_string(),
        });
    }
    let mut names = HashSet::new();
    if let Some(r) = runners.iter().find(|r| !names.insert(r.name.as_str())) {
        return Err(ServiceError::DuplicateRunner(r.name.clone()));
    }
    Ok(())
}

/// Loads the state, starts the actors and returns at once.
pub async fn start_service(
    settings: SupervisorSettings,
    runners: Vec<RunnerPorts>,
    store: Rc<dyn StateStore>,
    logger: slog::Logger,
    control: ControlReceiver,
) -> Result<RunningService, ServiceError> {
    validate(&settings, &runners)?;
    let slots = runner_slots(runners, &logger);
    let (jobs, unloaded) = load_state(&*store, &slots, &logger).await?;
    slog::info!(logger, "service started"; "state_file" => store.location(),
                "tracked_jobs" => jobs.len(),
                "quota" => crate::ports::TwoDecimals(settings.quota));
    let ControlReceiver {
        shutdown,
        supervisor,
        metrics,
        observer,
        settings_rx,
        ..
    } = control;
    let (done_tx, done_rx) = oneshot::channel();
    let to_supervisor = supervisor.address();
    let shutdown = shutdown.run(Shutdown::new(
        settings.drain_deadline,
        SupervisorRecipients {
            drain: to_supervisor.clone().recipient(),
            forced: to_supervisor.recipient(),
        },
        done_tx,
        logger.clone(),
    ));
    let hooks = Hooks {
        observer,
        settings: settings_rx,
    };
    let supervisor = supervisor.run(
        Supervisor::new(
            settings,
            slots,
            (jobs, unloaded),
            store,
            shutdown,
            logger,
            hooks,
        )
        .with_metrics(metrics),
    );
    Ok(RunningService {
        supervisor,
        done: done_rx,
    })
}

/// The supervisor's view of each runner section.
fn runner_slots(runners: Vec<RunnerPorts>, logger: &slog::Logger) -> Vec<RunnerSlot> {
    runners
        .into_iter()
        .map(|r| {
            let name: Rc<str> = Rc::from(r.name.as_str());
            let log = logger.new(slog::o!("runner" => r.name));
            RunnerSlot::new(name, r.coordinator, r.paas, r.settings, log)
        })
        .collect()
}

/// The job table of the saved state (empty without one), and the entries
/// no runner could take.
async fn load_state(
    store: &dyn StateStore,
    slots: &[RunnerSlot],
    logger: &slog::Logger,
) -> Result<(BTreeMap<JobKey, JobEntry>, Unloaded), ServiceError> {
    let Some(snapshot) = store.load().await? else {
        slog::info!(logger, "no state to load"; "file" => store.location());
        return Ok((BTreeMap::new(), Unloaded::default()));
    };
    slog::info!(logger, "loading state"; "file" => store.location(),
                "launched" => snapshot.launched.len(), "pending" => snapshot.pending.len(),
                "to_decommission" => snapshot.to_decommission.len());
    let refs: Vec<RunnerRef<'_>> = slots
        .iter()
        .map(|r| RunnerRef {
            name: &r.name,
            paas: &*r.paas,
        })
        .collect();
    Ok(snapshot::load(snapshot, &refs, logger).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signal handlers and the monitoring server's worker thread hold
    /// clones of the handle.
    #[test]
    fn the_handle_is_send_and_sync() {
        fn shared<T: Send + Sync + Clone>() {}
        shared::<ServiceHandle>();
    }
}
