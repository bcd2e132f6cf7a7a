//! clever-service-docker: Clever Cloud applications that run the Heptapod
//! PAAS Runner helper service, which takes one job after another over
//! HTTP, so that a finished job's application can serve the next job of
//! the same tenant and size.
//!
//! - `settings`: [`ServiceSettings`] (helper image, ready timeout), the
//!   fixed bounds of the waits, the helper Dockerfile;
//! - `address`: where a helper is reached (pure, strict parser);
//! - `token`: the per-application bearer token;
//! - `answers`: what the helper's answers mean (pure);
//! - `client`: the helper's HTTP client;
//! - `readiness`: the `can-take-job` wait;
//! - `executor`: [`CleverServiceExecutor`], the `Paas` port, over the
//!   steps it shares with clever-docker (`super::apps`).

pub mod address;
pub mod answers;
mod client;
mod executor;
mod readiness;
pub mod settings;
pub mod token;

pub use client::{HelperClient, HelperError, LaunchRequest};
pub use executor::CleverServiceExecutor;
pub use settings::ServiceSettings;
