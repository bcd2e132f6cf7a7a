//! `CleverServiceExecutor`: the clever-service-docker executor,
//! implementing `paas_actors::ports::Paas` over the Clever Cloud API, a Git
//! push of the helper's Dockerfile, and the helper's HTTP API.
//!
//! Create, environment, repository readiness, delete, listings and
//! organisations are the steps of [`CleverApps`], shared with
//! clever-docker. What is its own:
//!
//! - `create` also makes the application's helper token (the resource's
//!   credential, recorded with it before anything else happens);
//! - `prepare` sets the environment with that token, waits for the
//!   deployment repository and pushes the one-line helper Dockerfile;
//! - `wait_ready` waits for the helper to answer `can-take-job` true (at
//!   most `cc_service_ready_timeout`; a timeout fails the job, whose
//!   application is then deleted like any failed launch's). It only asks,
//!   so the launcher ends it at once on a graceful stop (the job stays
//!   prepared, and the next process prepares and waits again);
//! - `launch` sends the job with `POST /launch-job` (a 503 is asked once
//!   more, see `answers.rs`): the job has started when it is accepted;
//! - `prepare_reuse` asks a standby application's helper whether it can
//!   take a job, for at most 10 s;
//! - `recover_job` has nothing to read back: a service application holds
//!   no `job.json` (jobs reach its helper over HTTP), and its helper tells
//!   no job token. An application the state does not know is therefore an
//!   unknown resource nobody needs: reconciliation deletes it (a job it
//!   ran then, possible only when the state file was lost, ends at GitLab
//!   with its timeout).

use super::address::{helper_netloc, Netloc};
use super::answers::LaunchAnswer;
use super::client::{HelperClient, LaunchRequest};
use super::readiness::{wait_ready, Pace};
use super::settings::{
    helper_dockerfile, ServiceSettings, READY_STEP, REUSE_READY_STEP, REUSE_READY_TIMEOUT,
};
use super::token::{new_token, TOKEN_VARIABLE};
use crate::executors::clever::api::Retries;
use crate::executors::clever::apps::{tenant_error, CleverApps, CleverSetupError};
use crate::executors::clever::contexts::DeployContexts;
use crate::executors::clever::provision::no_http_url;
use crate::executors::clever::records::{self, AppDetail};
use crate::executors::clever::settings::CleverSettings;
use crate::executors::clever::GroupAttributes;
use crate::git::{push_files_async, PushOutcome};
use crate::secret::Secret;
use actix_rt::time::sleep;
use paas_actors::metrics::{ApiCounter, ApiStatus};
use paas_actors::ports::{
    Job, Listing, Paas, PaasError, PaasErrorClass, PortFuture, Resource, Weight,
};
use paas_actors::untrusted::untrusted;
use paas_actors::ReadyDelay;
use serde_json::Value;
use slog::{debug, info, warn};
use std::rc::Rc;

/// The clever-service-docker executor of one `[[runners]]` section.
pub struct CleverServiceExecutor {
    apps: CleverApps,
    contexts: DeployContexts,
    helper: HelperClient,
    service: ServiceSettings,
    /// How long new helpers take to answer `can-take-job` true after the
    /// push, learnt from the previous ones.
    helper_ready: ReadyDelay,
}

impl CleverServiceExecutor {
    /// Builds the executor (`settings.service` unset reads as the
    /// defaults). `attributes` is required in multi-tenant mode. Must be
    /// called inside an actix system.
    pub fn new(
        mut settings: CleverSettings,
        attributes: Option<Rc<dyn GroupAttributes>>,
        logger: slog::Logger,
    ) -> Result<Self, CleverSetupError> {
        let service = settings
            .service
            .get_or_insert_with(ServiceSettings::default)
            .clone();
        // Only the context's `job.json` and `runner.toml` are sent: the
        // main image (unused, the helper runs the job) must not refuse jobs.
        let contexts = DeployContexts::new(None, settings.inner_runner_toml.clone());
        let helper = HelperClient::new(settings.http.clone());
        Ok(CleverServiceExecutor {
            apps: CleverApps::new(settings, attributes, logger)?,
            contexts,
            helper,
            service,
            helper_ready: ReadyDelay::new(),
        })
    }

    /// Counts the Clever API requests, the git exchanges and the helper
    /// calls in `metrics`.
    pub fn with_metrics(mut self, metrics: ApiCounter) -> Self {
        self.apps.set_metrics(metrics.clone());
        self.helper.set_metrics(metrics);
        self
    }

    /// Weight of the flavor a user would name `flavor`, for the
    /// `[quota_computation]` reference (see `CleverExecutor::flavor_weight`).
    pub async fn flavor_weight(&self, flavor: &str) -> Result<Weight, PaasError> {
        self.apps.flavor_weight(flavor).await
    }

    /// The environment of an application whose helper token is `token`:
    /// clever-docker's (`CC_MOUNT_DOCKER_SOCKET=true`, `cc_extra_env`),
    /// then `HEPTAPOD_PAAS_RUNNER_TOKEN`.
    pub fn app_env(&self, token: &Secret) -> Vec<(String, String)> {
        let mut env = self.apps.app_env();
        env.retain(|(k, _)| k != TOKEN_VARIABLE);
        env.push((TOKEN_VARIABLE.to_string(), token.expose().to_string()));
        env
    }

    /// The base URL of `resource`'s helper: its recorded address, checked
    /// again, else the cleverapps.io rule.
    fn helper_base(&self, resource: &Resource) -> Result<String, PaasError> {
        let recorded = AppDetail::of(resource).netloc;
        helper_netloc(recorded.as_deref(), &resource.id, self.apps.loopback_api)
            .map(|(netloc, _): (Netloc, _)| netloc.base_url())
            .map_err(|e| {
                PaasError::permanent(
                    "helper-address",
                    format!(
                        "Clever Cloud application {}: no usable helper address: {e}",
                        untrusted(&resource.id)
                    ),
                )
            })
    }

    /// `create`: the job's flavor, its deploy context (kept for the
    /// launch), a helper token, then its application.
    async fn create_app(&self, job: &Job) -> Result<Resource, PaasError> {
        let flavor = self.apps.job_flavor(job, Retries::Once).await?;
        // A job whose context cannot be built is refused before any app exists.
        self.contexts.admit(job).await?;
        let token = new_token().map_err(|e| PaasError::transient("make-token", e.to_string()))?;
        let created = self.apps.create(job, &flavor).await;
        if matches!(&created, Err(e) if e.class == PaasErrorClass::Permanent) {
            self.contexts.forget(job.id);
        }
        let mut resource = created?;
        resource.credential = Some(token);
        Ok(resource)
    }

    /// `prepare`: environment with the token, repository readiness, the
    /// helper Dockerfile pushed.
    async fn prepare_app(&self, resource: &Resource) -> Result<Resource, PaasError> {
        let token = match &resource.credential {
            Some(t) => t.clone(),
            // Found by its name after a lost create answer: nothing was
            // pushed to it yet, so a new token is safe.
            None => new_token().map_err(|e| PaasError::transient("make-token", e.to_string()))?,
        };
        let mut prepared = self.apps.prepare(resource, &self.app_env(&token)).await?;
        prepared.credential = Some(token);
        self.push_helper(&prepared).await?;
        Ok(prepared)
    }

    /// `wait_ready`: the first `can-take-job` true of a prepared
    /// application's helper, within `cc_service_ready_timeout`. Only asks:
    /// the launcher drops this wait on a drain or the job's cancellation.
    async fn wait_app_ready(&self, resource: &Resource) -> Result<(), PaasError> {
        let token = credential(resource)?;
        let base = self.helper_base(resource)?;
        let pace = Pace {
            first: self.helper_ready.first_wait(READY_STEP),
            step: READY_STEP,
            timeout: self.service.ready_timeout,
        };
        match wait_ready(&self.helper, &base, token, pace).await {
            Ok(ready) => {
                self.helper_ready
                    .observe(ready.not_ready, ready.ready, READY_STEP);
                info!(self.apps.logger, "helper ready"; "app" => &resource.id,
                      "after_s" => paas_actors::ports::Seconds(ready.ready));
                Ok(())
            }
            Err(not) => Err(PaasError::permanent(
                "wait-helper",
                format!(
                    "the helper of Clever Cloud application {} did not answer that it can \
                     take a job within {} s (asked {} times; last answer: {})",
                    resource.id,
                    self.service.ready_timeout.as_secs_f64(),
                    not.asked,
                    not.last
                ),
            )),
        }
    }

    /// Pushes the helper Dockerfile to `resource`'s deployment repository;
    /// a `master` already there (a push before a restart) is the same
    /// Dockerfile.
    async fn push_helper(&self, resource: &Resource) -> Result<(), PaasError> {
        let detail = AppDetail::of(resource);
        let org = self
            .apps
            .resource_org(&detail)
            .await
            .map_err(tenant_error)?;
        let url = detail
            .deploy_url
            .ok_or_else(|| no_http_url("push", &resource.id))?;
        let settings = &self.apps.settings;
        let files = vec![(
            "Dockerfile",
            helper_dockerfile(&self.service.helper_image).into_bytes(),
        )];
        let outcome = push_files_async(
            self.apps.api.http_client(),
            files,
            &url,
            settings.deployment_url_schemes,
            &settings.auth_user,
            &org.token,
            settings.push_timeout,
        )
        .await;
        self.apps.count_git(
            "push",
            if outcome.is_ok() {
                ApiStatus::Ok
            } else {
                ApiStatus::Error
            },
        );
        match outcome.map_err(|e| super::super::executor::remote_error("push", e))? {
            PushOutcome::Pushed => {
                debug!(self.apps.logger, "helper pushed"; "app" => &resource.id)
            }
            PushOutcome::AlreadyLaunched => {
                info!(self.apps.logger, "helper pushed before"; "app" => &resource.id)
            }
        }
        Ok(())
    }

    /// `launch`: `POST /launch-job` with the job and the inner
    /// `runner.toml`; a 503 is sent once more after its `Retry-After`.
    async fn launch_on(&self, resource: &Resource, job: &Job) -> Result<Resource, PaasError> {
        let token = credential(resource)?;
        let base = self.helper_base(resource)?;
        let ctx = self.contexts.get(job).await?;
        let body = LaunchRequest {
            job_id: job.id,
            runner_name: self.apps.settings.unique_name.clone(),
            specification: ctx.job_json.clone(),
            config: ctx.runner_toml.clone(),
        };
        let mut outcome = Err(PaasError::permanent("launch-job", "not sent"));
        for attempt in 1..=2 {
            outcome = match self.helper.launch_job(&base, token, &body).await {
                Ok(LaunchAnswer::Launched) => Ok(()),
                Ok(LaunchAnswer::Busy(wait)) if attempt == 1 => {
                    info!(self.apps.logger, "helper busy (503): sending the job once more";
                          "app" => &resource.id, "job_id" => job.id,
                          "in_s" => paas_actors::ports::Seconds(wait));
                    sleep(wait).await;
                    continue;
                }
                Ok(LaunchAnswer::Busy(_) | LaunchAnswer::Refused(_)) => Err(PaasError::permanent(
                    "launch-job",
                    format!(
                        "the helper of Clever Cloud application {} answered 503 (busy or \
                             stopping) twice",
                        resource.id
                    ),
                )),
                Err(e) => Err(e.to_paas_error("launch-job")),
            };
            break;
        }
        // Kept only for a launch tried again.
        if !matches!(&outcome, Err(e) if e.is_transient()) {
            self.contexts.forget(job.id);
        }
        outcome?;
        info!(self.apps.logger, "job sent to the helper"; "app" => &resource.id, "job_id" => job.id);
        let mut launched = resource.clone();
        launched.launched = true;
        Ok(launched)
    }

    /// `prepare_reuse`: the standby application's helper answers
    /// `can-take-job` true within 10 s.
    async fn prepare_for_reuse(&self, resource: &Resource) -> Result<Resource, PaasError> {
        let token = credential(resource)?;
        let base = self.helper_base(resource)?;
        let pace = Pace {
            first: std::time::Duration::ZERO,
            step: REUSE_READY_STEP,
            timeout: REUSE_READY_TIMEOUT,
        };
        match wait_ready(&self.helper, &base, token, pace).await {
            Ok(_) => Ok(resource.clone()),
            Err(not) => {
                warn!(self.apps.logger, "standby application not ready for another job";
                      "app" => &resource.id, "asked" => not.asked,
                      "last" => %untrusted(&not.last));
                Err(PaasError::permanent(
                    "reuse",
                    format!(
                        "the helper of Clever Cloud application {} did not answer that it can \
                         take a job within {} s (last answer: {})",
                        resource.id,
                        REUSE_READY_TIMEOUT.as_secs(),
                        not.last
                    ),
                ))
            }
        }
    }
}

/// The helper token of `resource`.
fn credential(resource: &Resource) -> Result<&Secret, PaasError> {
    resource.credential.as_ref().ok_or_else(|| {
        PaasError::permanent(
            "helper-token",
            format!(
                "Clever Cloud application {}: its helper token is unknown (not in the state)",
                resource.id
            ),
        )
    })
}

impl Paas for CleverServiceExecutor {
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
        Box::pin(self.prepare_app(resource))
    }

    fn wait_ready<'a>(
        &'a self,
        resource: &'a Resource,
        _job: &'a Job,
    ) -> PortFuture<'a, Result<(), PaasError>> {
        Box::pin(self.wait_app_ready(resource))
    }

    fn launch<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(self.launch_on(resource, job))
    }

    fn decommission<'a>(&'a self, resource: &'a Resource) -> PortFuture<'a, Result<(), PaasError>> {
        Box::pin(self.apps.decommission(resource))
    }

    fn list_resources(&self) -> PortFuture<'_, Result<Vec<Resource>, PaasError>> {
        Box::pin(self.apps.list())
    }

    fn find_resource<'a>(
        &'a self,
        job: &'a Job,
        name: &'a str,
    ) -> PortFuture<'a, Result<Option<Resource>, PaasError>> {
        Box::pin(self.apps.find_resource(job, name))
    }

    fn list_resources_by_scope(&self) -> PortFuture<'_, Result<Listing, PaasError>> {
        Box::pin(self.apps.list_skipping())
    }

    fn resource_scope(&self, resource: &Resource) -> Option<String> {
        self.apps.recorded_scope(&AppDetail::of(resource))
    }

    fn resource_flavor(&self, resource: &Resource) -> Option<String> {
        self.apps.resource_flavor(resource)
    }

    fn job_scope<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Option<String>, PaasError>> {
        Box::pin(self.apps.job_scope(job))
    }

    fn started_at_launch(&self) -> bool {
        true
    }

    fn prepare_reuse<'a>(
        &'a self,
        resource: &'a Resource,
        _job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(self.prepare_for_reuse(resource))
    }

    fn recover_job<'a>(
        &'a self,
        _resource: &'a Resource,
    ) -> PortFuture<'a, Result<Option<Job>, PaasError>> {
        Box::pin(async { Ok(None) })
    }

    fn dump_resource(&self, resource: &Resource) -> Value {
        records::dump_service(resource)
    }

    fn load_resource<'a>(
        &'a self,
        saved: &'a Value,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(self.apps.load(saved))
    }
}
