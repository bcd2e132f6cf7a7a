//! `paas-actors`: the actor system of heptapod-paas-runner.
//!
//! The supervisor, pollers, the per-job actors (launch, trace watch,
//! failure report, decommission) and the shutdown actor live here, with
//! the quota ledger and the state snapshot format. The coordinator (GitLab) and the PAAS (Clever Cloud,
//! local Docker) are known only through the traits of [`ports`]; this crate
//! does no HTTP and touches no file but the state store.
//!
//! Entry point: [`service::run_service`].

pub mod backoff;
pub mod decommissioner;
mod failure_reporter;
pub mod job;
mod job_actor;
mod job_ctx;
mod job_table;
pub mod launcher;
pub mod long_poll;
mod mailbox;
pub mod messages;
pub mod metrics;
pub mod observer;
pub mod poller;
pub mod ports;
pub mod quota;
pub mod ready_delay;
pub mod reconcile;
pub mod secret;
pub mod service;
pub mod settings;
pub mod shutdown;
mod snapshot;
pub mod state;
pub mod state_doc;
mod supervisor;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace_watcher;
pub mod untrusted;

pub use secret::Secret;
pub use service::{
    run_service, service_control, service_control_with, start_service, RunnerPorts, ServiceError,
    ServiceHandle,
};
pub use settings::{RunnerSettings, StandbyPolicy, SupervisorSettings};
pub use shutdown::ExitReport;
pub use state::{FileStore, StateStore};
pub use supervisor::Supervisor;
