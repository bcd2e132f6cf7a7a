//! `paas-actors`: the actor system of heptapod-paas-runner.
//!
//! The supervisor, pollers, the per-job actors (launch, trace watch,
//! failure report, decommission) and the shutdown actor live here, with
//! the quota ledger and the state snapshot format. The coordinator
//! (GitLab) and the PAAS (Clever Cloud, local Docker) are known only
//! through the traits of [`ports`]; this crate does no HTTP and touches no
//! file but the state store.
//!
//! Entry point: [`service::run_service`].
//!
//! The public surface is what the root crate, the tests and the bench use:
//! the modules below marked `pub` (the ports, the settings declaration,
//! the service's handle and reload messages, the state file, the metrics,
//! the back-off, the secret and untrusted-text wrappers, the ownership
//! judgement of reconciliation, and `testing` behind its feature) and the
//! re-exports at the end. Everything else is private to the crate, and
//! `unreachable_pub` keeps a `pub` item from hiding in a private module.

#![warn(unreachable_pub)]

pub mod backoff;
mod decommissioner;
mod failure_reporter;
mod job;
mod job_actor;
mod job_ctx;
mod job_story;
mod job_table;
mod launch_spacing;
mod launcher;
mod long_poll;
mod mailbox;
mod messages;
pub mod metrics;
mod observer;
mod poller;
pub mod ports;
mod quota;
mod ready_delay;
pub mod reconcile;
pub mod secret;
pub mod service;
pub mod settings;
mod shutdown;
mod snapshot;
mod standby;
pub mod state;
mod state_doc;
mod supervisor;
#[cfg(feature = "testing")]
pub mod testing;
mod trace_watcher;
pub mod untrusted;

pub use job::Phase;
pub use observer::{ServiceObserver, ServiceStatus};
pub use ready_delay::ReadyDelay;
pub use secret::Secret;
pub use service::{
    run_service, service_control, start_service, RunnerPorts, ServiceError, ServiceHandle,
};
pub use settings::{RunnerSettings, StandbyPolicy, SupervisorSettings};
pub use shutdown::ExitReport;
pub use state::{FileStore, StateStore};
pub use supervisor::Supervisor;
