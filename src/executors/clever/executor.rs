//! `CleverExecutor`: the clever-docker executor, implementing
//! `paas_actors::ports::Paas` over the Clever Cloud API and a Git push.
//!
//! One application per job: `create`, `prepare` (environment, repository
//! readiness), `decommission`, the listings and the state-file records are
//! the steps of [`CleverApps`], shared by any executor running jobs in
//! Clever Cloud applications. What is clever-docker's own:
//!
//! - `create` first builds the job's deploy context, so that a job whose
//!   context cannot be built is refused before any application exists; the
//!   context is kept for `launch` ([`DeployContexts`]);
//! - `launch` (`executor/launch.rs`) pushes the context to the app's
//!   deployment repository; a remote `master` already present counts as
//!   launched;
//! - `recover_job` (`executor/recover.rs`) reads `job.json` back from that
//!   repository, for reconciliation.

mod launch;
mod recover;

use super::api::Retries;
use super::apps::{CleverApps, CleverSetupError};
use super::contexts::DeployContexts;
use super::records::{self, AppDetail};
use super::settings::CleverSettings;
use super::GroupAttributes;
use crate::git::RemoteError;
use paas_actors::metrics::ApiCounter;
use paas_actors::ports::{
    Job, Listing, Paas, PaasError, PaasErrorClass, PortFuture, Resource, Weight,
};
use serde_json::Value;
use slog::Logger;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The clever-docker executor of one `[[runners]]` section.
pub struct CleverExecutor {
    apps: CleverApps,
    contexts: DeployContexts,
    /// Apps whose deployment repository exceeded the fetch bounds, with
    /// the reason: `recover_job` answers that again without fetching.
    unreadable: RefCell<BTreeMap<String, String>>,
}

/// A failed exchange with a deployment repository: transient when trying
/// again may work.
pub(super) fn remote_error(action: &str, e: RemoteError) -> PaasError {
    PaasError {
        action: action.into(),
        message: e.to_string(),
        class: if e.is_retryable() {
            PaasErrorClass::Transient
        } else {
            PaasErrorClass::Permanent
        },
    }
}

impl CleverExecutor {
    /// Builds the executor. `attributes` is required in multi-tenant mode
    /// (the GitLab client reading group custom attributes). Must be called
    /// inside an actix system.
    pub fn new(
        settings: CleverSettings,
        attributes: Option<Rc<dyn GroupAttributes>>,
        logger: Logger,
    ) -> Result<Self, CleverSetupError> {
        let contexts = DeployContexts::new(
            settings.main_image.clone(),
            settings.inner_runner_toml.clone(),
        );
        Ok(CleverExecutor {
            apps: CleverApps::new(settings, attributes, logger)?,
            contexts,
            unreadable: RefCell::new(BTreeMap::new()),
        })
    }

    /// Counts the Clever API requests and the git exchanges in `metrics`.
    pub fn with_metrics(mut self, metrics: ApiCounter) -> Self {
        self.apps.set_metrics(metrics);
        self
    }

    /// Weight of the flavor a user would name `flavor` (e.g. `3XL`), for the
    /// `[quota_computation]` reference. An unknown flavor is a permanent
    /// error listing the available ones (the caller names the flavor asked
    /// for and the key that asked).
    pub async fn flavor_weight(&self, flavor: &str) -> Result<Weight, PaasError> {
        self.apps.flavor_weight(flavor).await
    }

    /// For `verify`, in multi-tenant mode: the organisation of top-level
    /// group `namespace`, read afresh from GitLab, and how many of its
    /// applications are this runner's. `recorded` is the organisation the
    /// state file records for the group's resources (see
    /// `CleverApps::check_tenant` in `orgs.rs`). Messages never hold a token.
    pub async fn check_tenant(
        &self,
        namespace: &str,
        recorded: Option<&str>,
    ) -> Result<(String, usize), String> {
        self.apps.check_tenant(namespace, recorded).await
    }

    /// The environment of every app: `CC_MOUNT_DOCKER_SOCKET=true`, then
    /// `cc_extra_env` (a later key replaces an earlier one in place).
    pub fn app_env(&self) -> Vec<(String, String)> {
        self.apps.app_env()
    }

    /// `create`: the job's flavor, its deploy context (kept for the
    /// launch), then its application.
    async fn create_app(&self, job: &Job) -> Result<Resource, PaasError> {
        // Every call of the create step is sent once: the launcher retries
        // the step.
        let flavor = self.apps.job_flavor(job, Retries::Once).await?;
        // A job whose context cannot be built is refused before any app exists.
        self.contexts.admit(job).await?;
        let created = self.apps.create(job, &flavor).await;
        if matches!(&created, Err(e) if e.class == PaasErrorClass::Permanent) {
            self.contexts.forget(job.id);
        }
        created
    }
}

impl Paas for CleverExecutor {
    fn max_job_weight(&self) -> PortFuture<'_, Result<Weight, PaasError>> {
        Box::pin(self.apps.max_job_weight())
    }

    fn expected_weight<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Weight, PaasError>> {
        Box::pin(async move { Ok(self.apps.job_flavor(job, Retries::Policy).await?.weight()) })
    }

    fn resource_name(&self, job_id: i64) -> String {
        self.apps.settings.app_name(job_id)
    }

    fn create<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(self.create_app(job))
    }

    fn prepare<'a>(
        &'a self,
        resource: &'a Resource,
        _job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move { self.apps.prepare(resource, &self.apps.app_env()).await })
    }

    fn launch<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(self.push(resource, job))
    }

    fn decommission<'a>(&'a self, resource: &'a Resource) -> PortFuture<'a, Result<(), PaasError>> {
        Box::pin(self.apps.decommission(resource))
    }

    fn list_resources(&self) -> PortFuture<'_, Result<Vec<Resource>, PaasError>> {
        Box::pin(self.apps.list())
    }

    fn list_resources_by_scope(&self) -> PortFuture<'_, Result<Listing, PaasError>> {
        Box::pin(self.apps.list_skipping())
    }

    fn resource_scope(&self, resource: &Resource) -> Option<String> {
        AppDetail::of(resource).orga_id
    }

    fn resource_flavor(&self, resource: &Resource) -> Option<String> {
        self.apps.resource_flavor(resource)
    }

    fn recover_job<'a>(
        &'a self,
        resource: &'a Resource,
    ) -> PortFuture<'a, Result<Option<Job>, PaasError>> {
        Box::pin(self.recover(resource))
    }

    fn dump_resource(&self, resource: &Resource) -> Value {
        records::dump(resource)
    }

    fn load_resource<'a>(
        &'a self,
        saved: &'a Value,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(self.apps.load(saved))
    }
}
