//! Shared harness of the actor tests: fake runners, a memory store, a
//! started service, and bounded "advance until" loops on paused time.
#![allow(dead_code)]

use paas_actors::ports::Weight;
use paas_actors::service::{start_service, RunningService};
use paas_actors::testing::{
    capture_logger, FakeCoordinator, FakePaas, LogCapture, MemoryStore, SharedMemoryStore, World,
};
use paas_actors::testing::{GetStats, Stats};
use paas_actors::{service_control, ExitReport, RunnerPorts, RunnerSettings, ServiceError};
use paas_actors::{ServiceHandle, SupervisorSettings};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

pub struct Runner {
    pub name: String,
    pub coord: Rc<FakeCoordinator>,
    pub paas: Rc<FakePaas>,
    pub settings: RunnerSettings,
}

pub fn runner(world: &Rc<World>, name: &str, max_weight: Weight) -> Runner {
    Runner {
        name: name.to_string(),
        coord: FakeCoordinator::new(world.clone()),
        paas: FakePaas::new(world.clone(), name, max_weight),
        settings: RunnerSettings::default(),
    }
}

pub fn settings(quota: Weight) -> SupervisorSettings {
    SupervisorSettings {
        quota,
        // The same retry delays every run.
        backoff_seed: Some(1),
        ..SupervisorSettings::default()
    }
}

pub struct Service {
    pub handle: ServiceHandle,
    pub running: Option<RunningService>,
    pub supervisor: actix::Addr<paas_actors::Supervisor>,
    pub logs: LogCapture,
}

pub async fn try_start(
    settings: SupervisorSettings,
    runners: &[&Runner],
    store: &Rc<MemoryStore>,
) -> Result<Service, ServiceError> {
    try_start_after(settings, runners, store, |_| {}).await
}

/// Starts the service once `before` was given its handle.
pub async fn try_start_after(
    settings: SupervisorSettings,
    runners: &[&Runner],
    store: &Rc<MemoryStore>,
    before: impl FnOnce(&ServiceHandle),
) -> Result<Service, ServiceError> {
    let ports = runners
        .iter()
        .map(|r| RunnerPorts {
            name: r.name.clone(),
            coordinator: r.coord.clone(),
            paas: r.paas.clone(),
            settings: r.settings.clone(),
        })
        .collect();
    let (handle, control) = service_control();
    before(&handle);
    let (logger, logs) = capture_logger();
    let running = start_service(
        settings,
        ports,
        Rc::new(SharedMemoryStore(store.clone())),
        logger,
        control,
    )
    .await?;
    Ok(Service {
        handle,
        supervisor: running.supervisor.clone(),
        running: Some(running),
        logs,
    })
}

pub async fn start(
    settings: SupervisorSettings,
    runners: &[&Runner],
    store: &Rc<MemoryStore>,
) -> Service {
    match try_start(settings, runners, store).await {
        Ok(s) => s,
        Err(e) => panic!("service did not start: {e}"),
    }
}

impl Service {
    /// The supervisor's counters; panics (fails the test) if it stopped.
    pub async fn stats(&self) -> Stats {
        match self.supervisor.send(GetStats).await {
            Ok(stats) => stats,
            Err(e) => panic!("supervisor unreachable: {e}"),
        }
    }

    pub async fn phase_count(&self, phase: &str) -> usize {
        self.stats().await.phases.get(phase).copied().unwrap_or(0)
    }

    /// Advances virtual time by `step` until `cond` holds; at most `max`
    /// steps. Returns whether it held.
    pub async fn until<F>(&self, step: Duration, max: usize, mut cond: F) -> bool
    where
        F: FnMut(&Stats) -> bool,
    {
        for _ in 0..max {
            let s = self.stats().await;
            if cond(&s) {
                return true;
            }
            tokio::time::sleep(step).await;
        }
        cond(&self.stats().await)
    }

    /// Drains and waits for the end (bounded by virtual time).
    pub async fn stop(&mut self) -> ExitReport {
        self.handle.drain();
        self.wait().await
    }

    pub async fn wait(&mut self) -> ExitReport {
        let running = self.running.take().expect("service already stopped");
        match tokio::time::timeout(Duration::from_secs(3600), running.wait()).await {
            Ok(r) => r,
            Err(_) => panic!("service did not stop within an hour of virtual time"),
        }
    }
}

/// Advances virtual time by `step` until `cond` holds; at most `max` steps.
pub async fn until<F: FnMut() -> bool>(step: Duration, max: usize, mut cond: F) -> bool {
    for _ in 0..max {
        if cond() {
            return true;
        }
        tokio::time::sleep(step).await;
    }
    cond()
}

pub const SEC: Duration = Duration::from_secs(1);

/// `name{labels} value` samples of an encoded registry.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(series, v)| Some((series.to_owned(), v.parse().ok()?)))
        .collect()
}
