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

use crate::job_table::Unloaded;
use crate::messages::{DumpState, GetHealth, Health, JobView, ListJobs, Reload};
use crate::metrics::Metrics;
pub use crate::observer::Reloader;
use crate::observer::{Hooks, NoObserver, ServiceObserver};
pub use crate::settings::RunnerPorts;
use crate::shutdown::{AttachSupervisor, BeginShutdown, ExitReport, ForceStop, Shutdown};
use crate::snapshot::{self, RunnerRef};
use crate::state::{StateError, StateStore};
use crate::supervisor::{RunnerSlot, Supervisor};
use actix::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

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
    /// Two runners share a unique name.
    #[error("two runners have the same unique name {0:?}")]
    DuplicateRunner(String),
}

#[derive(Debug)]
enum Control {
    Drain,
    Force,
    Dump,
    Health(oneshot::Sender<Health>),
    Jobs(oneshot::Sender<Vec<JobView>>),
    Reload,
}

/// Handle to control and observe a running service from anywhere (it is
/// `Send`).
#[derive(Clone, Debug)]
pub struct ServiceHandle {
    tx: mpsc::UnboundedSender<Control>,
    metrics: Arc<Metrics>,
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

    /// The service's metrics (updated by the supervisor, encoded by
    /// [`Metrics::encode`]).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The supervisor's health; `None` when it does not answer (not
    /// started yet, stopped, or gone). Callers bound the wait.
    pub async fn health(&self) -> Option<Health> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Control::Health(tx)).ok()?;
        rx.await.ok()
    }

    /// The tracked jobs; `None` when the supervisor does not answer.
    /// Callers bound the wait.
    pub async fn jobs(&self) -> Option<Vec<JobView>> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Control::Jobs(tx)).ok()?;
        rx.await.ok()
    }

    /// Re-reads the configuration through the receiver's [`Reloader`]
    /// (SIGHUP); ignored without one.
    pub fn reload(&self) {
        let _ = self.tx.send(Control::Reload);
    }
}

/// The receiving side of a [`ServiceHandle`], consumed by the service,
/// with the service's observer and reloader.
pub struct ControlReceiver {
    rx: mpsc::UnboundedReceiver<Control>,
    metrics: Arc<Metrics>,
    observer: Rc<dyn ServiceObserver>,
    reloader: Option<Reloader>,
}

impl ControlReceiver {
    /// The observer told of readiness, status, liveness and stop.
    pub fn with_observer(mut self, observer: Rc<dyn ServiceObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// What [`ServiceHandle::reload`] calls.
    pub fn with_reloader(mut self, reloader: Reloader) -> Self {
        self.reloader = Some(reloader);
        self
    }
}

/// A handle and the receiver to give to [`run_service`], with a new
/// [`Metrics`] registry.
pub fn service_control() -> (ServiceHandle, ControlReceiver) {
    service_control_with(Arc::new(Metrics::new()))
}

/// A handle and the receiver to give to [`run_service`]; the service
/// updates `metrics`.
pub fn service_control_with(metrics: Arc<Metrics>) -> (ServiceHandle, ControlReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        ServiceHandle {
            tx,
            metrics: metrics.clone(),
        },
        ControlReceiver {
            rx,
            metrics,
            observer: Rc::new(NoObserver),
            reloader: None,
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
    let (jobs, unloaded) = match loaded {
        Some(snapshot) => {
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
            snapshot::load(snapshot, &refs, &logger).await
        }
        None => {
            slog::info!(logger, "no state to load"; "file" => store.location());
            (BTreeMap::new(), Unloaded::default())
        }
    };

    slog::info!(logger, "service started"; "state_file" => store.location(),
                "tracked_jobs" => jobs.len(),
                "quota" => crate::ports::TwoDecimals(settings.quota));
    let (done_tx, done_rx) = oneshot::channel();
    let shutdown = Shutdown::new(settings.drain_deadline, done_tx, logger.clone()).start();
    let supervisor = Supervisor::new(
        settings,
        slots,
        (jobs, unloaded),
        store,
        shutdown.clone(),
        logger.clone(),
        Hooks {
            observer: control.observer.clone(),
            reloader: control.reloader.take(),
        },
    )
    .with_metrics(control.metrics.clone())
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
                // Queries are answered apart: a slow answer never delays
                // a stop.
                Control::Health(tx) => {
                    let request = sup.send(GetHealth);
                    actix_rt::spawn(async move {
                        if let Ok(h) = request.await {
                            let _ = tx.send(h);
                        }
                    });
                }
                Control::Jobs(tx) => {
                    let request = sup.send(ListJobs);
                    actix_rt::spawn(async move {
                        if let Ok(jobs) = request.await {
                            let _ = tx.send(jobs);
                        }
                    });
                }
                Control::Reload => sup.do_send(Reload),
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
