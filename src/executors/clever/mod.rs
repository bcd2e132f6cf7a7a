//! clever-docker executor: Clever Cloud API client and the `Paas` port over
//! it.
//!
//! - `settings`: the validated `cc_*` settings of one runner;
//! - `api`: the awc client of the Clever API v2 and its error type;
//! - `wire`: the API's JSON types, as the client reads and sends them;
//! - `flavors`: flavor catalog, selection, weights, product cache;
//! - `tenants`: multi-tenant organisation lookup through [`GroupAttributes`];
//! - `executor`: [`CleverExecutor`], the `Paas` port implementation.

pub mod api;
mod executor;
pub mod flavors;
pub mod settings;
pub mod tenants;
mod wire;

pub use api::{CleverError, Retries};
pub use executor::{AppDetail, CleverExecutor, CleverSetupError};
pub use settings::{CleverSettings, HttpSettings, RetryPolicy, Tenancy};

use paas_actors::ports::{CoordinatorError, PortFuture};

/// Custom attributes of a GitLab group, as `(key, value)` pairs.
///
/// Multi-tenant mode finds a job's Clever organisation and token in the
/// custom attributes of its top-level group. The GitLab client implements
/// this (`GET /groups/:path/custom_attributes` with the attributes token);
/// the clever executor consumes it.
pub trait GroupAttributes {
    /// All custom attributes of the group whose full path is `group_path`
    /// (URL-encoding is the implementation's job).
    fn group_custom_attributes<'a>(
        &'a self,
        group_path: &'a str,
    ) -> PortFuture<'a, Result<Vec<(String, String)>, CoordinatorError>>;
}
