//! `paas-actors`: the actor system of heptapod-paas-runner.
//!
//! The supervisor, pollers, launchers, trace watchers, decommissioners and
//! the shutdown actor live here, with the quota ledger and the state
//! snapshot format. The coordinator (GitLab) and the PAAS (Clever Cloud,
//! local Docker) are known only through the traits of [`ports`]; this crate
//! does no HTTP and touches no file but the state store.
//!
//! Entry point: [`service::run_service`].

pub mod backoff;
pub mod decommissioner;
pub mod job;
pub mod launcher;
pub mod poller;
pub mod ports;
pub mod quota;
pub mod reconcile;
pub mod secret;
pub mod service;
pub mod shutdown;
pub mod state;
pub mod supervisor;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace_watcher;
pub mod untrusted;

pub use secret::Secret;
pub use service::{
    run_service, service_control, start_service, RunnerPorts, RunnerSettings, ServiceError,
    ServiceHandle, SupervisorSettings,
};
pub use shutdown::ExitReport;
pub use state::{FileStore, StateStore};
