//! `launch`: the job's deploy context pushed to `master` of its
//! application's deployment repository (`crate::git::push`, with the API
//! client's HTTP client). A remote
//! `master` already present (a push before a restart) counts as launched.

use super::{remote_error, CleverExecutor};
use crate::executors::clever::api::Retries;
use crate::executors::clever::apps::tenant_error;
use crate::executors::clever::provision::no_http_url;
use crate::executors::clever::records::AppDetail;
use crate::git::{push_context_async, PushOutcome};
use paas_actors::metrics::ApiStatus;
use paas_actors::ports::{Job, PaasError, PaasErrorClass, Resource};
use slog::{info, warn};

impl CleverExecutor {
    /// Pushes `job`'s context to `resource`'s repository; the resource
    /// returned is launched.
    pub(super) async fn push(&self, resource: &Resource, job: &Job) -> Result<Resource, PaasError> {
        let mut detail = AppDetail::of(resource);
        let org = self
            .apps
            .resource_org(&detail)
            .await
            .map_err(tenant_error)?;
        let url = match &detail.deploy_url {
            Some(u) => u.clone(),
            None => {
                // Sent once: the launcher retries the launch step.
                let app = self
                    .apps
                    .api
                    .get_app(&org, &resource.id, Retries::Once)
                    .await?;
                let url = app
                    .http_url()
                    .map(str::to_string)
                    .ok_or_else(|| no_http_url("push", &resource.id))?;
                detail.deploy_url = Some(url.clone());
                url
            }
        };
        let ctx = self.contexts.get(job).await?;
        let settings = &self.apps.settings;
        let outcome = push_context_async(
            self.apps.api.http_client(),
            &ctx,
            &url,
            settings.deployment_url_schemes,
            &settings.auth_user,
            &org.token,
            settings.push_timeout,
        )
        .await;
        self.apps.count_git(
            "push",
            match &outcome {
                Ok(_) => ApiStatus::Ok,
                Err(_) => ApiStatus::Error,
            },
        );
        let outcome = outcome.map_err(|e| remote_error("push", e));
        // Kept only for a launch tried again.
        if !matches!(&outcome, Err(e) if e.class == PaasErrorClass::Transient) {
            self.contexts.forget(job.id);
        }
        match outcome? {
            PushOutcome::Pushed => {
                info!(self.apps.logger, "job pushed"; "app" => &resource.id, "job_id" => job.id)
            }
            PushOutcome::AlreadyLaunched => warn!(
                self.apps.logger,
                "deployment branch already present: job launched before";
                "app" => &resource.id, "job_id" => job.id
            ),
        }
        let mut launched = resource.clone();
        launched.launched = true;
        launched.detail = detail.to_value();
        Ok(launched)
    }
}
