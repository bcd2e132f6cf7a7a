//! `paas-actors`: the actor system of heptapod-paas-runner.
//!
//! The supervisor, pollers, launchers, trace watchers, decommissioners and
//! the shutdown actor live here, with the quota ledger and the state
//! snapshot format. The coordinator (GitLab) and the PAAS (Clever Cloud,
//! local Docker) are known only through the traits of [`ports`]; this crate
//! does no HTTP and touches no file but the state store.

pub mod job;
pub mod ports;
pub mod quota;
pub mod secret;
pub mod state;

pub use secret::Secret;
