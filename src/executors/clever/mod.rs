//! clever-docker executor: Clever Cloud API client and the `Paas` port over
//! it.
//!
//! - `settings`: the validated `cc_*` settings of one runner;
//! - `api`: the awc client of the Clever API v2 and its error type;
//! - `wire`: the API's JSON types, as the client reads and sends them;
//! - `flavors`: flavor catalog, selection, weights, product cache;
//! - `tenants`: multi-tenant organisation lookup through [`GroupAttributes`];
//! - `apps`: the steps every executor over Clever Cloud applications takes
//!   (`orgs`, `provision`, `decommission`, `listing`, `records`);
//! - `contexts`: the jobs' deploy contexts, built once each;
//! - `executor`: [`CleverExecutor`], the `Paas` port implementation of
//!   clever-docker (push, `executor/launch.rs`; read-back,
//!   `executor/recover.rs`);
//! - `service`: [`CleverServiceExecutor`], the `Paas` port implementation of
//!   clever-service-docker (the helper service of each application).

pub mod api;
mod apps;
mod contexts;
mod decommission;
mod executor;
pub mod flavors;
mod listing;
mod orgs;
mod provision;
mod records;
pub mod service;
pub mod settings;
pub mod tenants;
mod wire;

pub use api::{CleverError, Retries};
pub use apps::CleverSetupError;
pub use executor::CleverExecutor;
pub use records::AppDetail;
pub use service::{CleverServiceExecutor, ServiceSettings};
pub use settings::{CleverSettings, HttpSettings, RetryPolicy, Tenancy};

use paas_actors::ports::{CoordinatorError, PortFuture};

/// A GitLab group as `GET /groups/:id` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Numeric id.
    pub id: i64,
    /// Full path (`parent/child`).
    pub full_path: String,
    /// Parent group id; `None` for a top-level group.
    pub parent_id: Option<i64>,
}

/// What multi-tenant mode reads from GitLab with the attributes token.
///
/// Multi-tenant mode finds a job's Clever organisation and token in the
/// custom attributes of its project's top-level group, the project being
/// GitLab's `job_info.project_id` (never a job variable). The GitLab client
/// implements this (`GET /projects/:id`, `GET /groups/:id/custom_attributes`);
/// the clever executor consumes it.
pub trait GroupAttributes {
    /// The group whose full path is `path` (`GET /groups/:url-encoded path`;
    /// GitLab reads an all-digit `path` as a group id: the caller checks
    /// `full_path`).
    fn group_by_path<'a>(
        &'a self,
        path: &'a str,
    ) -> PortFuture<'a, Result<GroupInfo, CoordinatorError>>;

    /// `namespace.full_path` of the project `project_id` (`GET /projects/:id`).
    fn project_namespace(
        &self,
        project_id: i64,
    ) -> PortFuture<'_, Result<String, CoordinatorError>>;

    /// All custom attributes of the group `group_path`: a numeric id or a
    /// full path (URL-encoding is the implementation's job).
    fn group_custom_attributes<'a>(
        &'a self,
        group_path: &'a str,
    ) -> PortFuture<'a, Result<Vec<(String, String)>, CoordinatorError>>;
}
