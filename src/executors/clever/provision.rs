//! Provisioning an application, the steps before anything runs in it (the
//! supervisor records the resource between them):
//!
//! 1. create: find the organisation, `POST` the app with the job's flavor.
//!    The create is sent once. When its answer is lost or is a 5xx, the
//!    organisation's apps are searched for the deterministic name: a found
//!    app is adopted (returned as created), otherwise the error is
//!    *uncertain* (lost answer) or transient (5xx). A 400 invalidates the
//!    product cache; if the Docker version changed meanwhile, the create is
//!    sent once more with the new version (the first one created nothing).
//! 2. prepare: `PUT env`, then poll `deployment.repoState` (steps growing
//!    from 0.1 s up to `cc_deployment_repo_wait_step`) until `CREATED`
//!    (fail fast on `NOT_NEEDED` / `DELETED`; the last poll happens at the
//!    deadline).
//!
//! Every call is sent once: the launcher retries the whole step.

use super::api::{Application, CleverError, CreateApp, OrgAuth, Retries};
use super::apps::{tenant_error, CleverApps};
use super::flavors::Flavor;
use super::records::AppDetail;
use super::tenants::Use;
use actix_rt::time::{sleep, Instant};
use paas_actors::backoff::BackoffPolicy;
use paas_actors::ports::{
    weight_of_mem_mib, Job, PaasError, PaasErrorClass, Resource, TwoDecimals,
};
use paas_actors::untrusted::untrusted;
use slog::{debug, warn};

impl CleverApps {
    /// Creates `job`'s application with `flavor` (step 1 of the module
    /// header), in the organisation of the job's group.
    pub(crate) async fn create(&self, job: &Job, flavor: &Flavor) -> Result<Resource, PaasError> {
        let namespace = self.job_namespace(job).await.map_err(tenant_error)?;
        let namespace = namespace.as_deref();
        let org = self
            .org(namespace, Use::Create)
            .await
            .map_err(tenant_error)?;
        let version = self.docker_version(Retries::Once).await?;
        let name = self.settings.app_name(job.id);
        let body = self.create_body(&name, version.clone(), flavor);
        let app = match self.api.create_app(&org, &body).await {
            Ok(app) => app,
            Err(e) => {
                self.recover_create(e, &org, &name, flavor, &version, false)
                    .await?
            }
        };
        let weight = app
            .max_flavor_mem_mib()
            .map(weight_of_mem_mib)
            .unwrap_or_else(|| flavor.weight());
        debug!(self.logger, "Clever Cloud application created";
              "app" => &app.id, "job_id" => job.id, "flavor" => &flavor.user_name,
              "weight" => TwoDecimals(weight));
        Ok(self.resource_of(&app, namespace, &org.orga_id, weight))
    }

    /// Sets the environment of `resource`'s application to `env`, then
    /// waits for its deployment repository (step 2 of the module header);
    /// the resource returned knows the repository's URL.
    pub(crate) async fn prepare(
        &self,
        resource: &Resource,
        env: &[(String, String)],
    ) -> Result<Resource, PaasError> {
        let mut detail = AppDetail::of(resource);
        let org = self.resource_org(&detail).await.map_err(tenant_error)?;
        self.api
            .put_env(&org, &resource.id, env, Retries::Once)
            .await
            .map_err(PaasError::from)?;
        let app = self.wait_deployable(&org, &resource.id).await?;
        let url = app
            .http_url()
            .ok_or_else(|| no_http_url("wait-deployability", &resource.id))?;
        detail.deploy_url = Some(url.to_string());
        let mut ready = resource.clone();
        ready.detail = detail.to_value();
        Ok(ready)
    }

    /// The environment of every app: `CC_MOUNT_DOCKER_SOCKET=true`, then
    /// `cc_extra_env` (a later key replaces an earlier one in place).
    pub(crate) fn app_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("CC_MOUNT_DOCKER_SOCKET".to_string(), "true".to_string())];
        for (k, v) in &self.settings.extra_env {
            match env.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1 = v.clone(),
                None => env.push((k.clone(), v.clone())),
            }
        }
        env
    }

    fn create_body(&self, name: &str, version: String, flavor: &Flavor) -> CreateApp {
        CreateApp {
            name: name.to_string(),
            zone: self.settings.zone.clone(),
            deploy: "git",
            instance_type: "docker",
            instance_version: version,
            instance_variant: self.settings.instance_variant_uuid.clone(),
            // A service application stays up between jobs: a regular one.
            instance_lifetime: self.settings.service.is_none().then_some("TASK"),
            min_instances: 1,
            max_instances: 1,
            min_flavor: flavor.api_name.clone(),
            max_flavor: flavor.api_name.clone(),
        }
    }

    /// Looks for an app of that name (the newest one if several).
    pub(crate) async fn find_by_name(
        &self,
        org: &OrgAuth,
        name: &str,
    ) -> Result<Option<Application>, CleverError> {
        // The look-up after a failed create keeps the client's retries: a
        // failed look-up leaves the create uncertain.
        let apps = self.api.list_apps(org, Retries::Policy).await?;
        Ok(apps
            .into_iter()
            .filter(|a| a.name == name)
            .max_by_key(|a| a.creation_date.unwrap_or(0)))
    }

    /// What to do after a failed create (see the module header).
    async fn recover_create(
        &self,
        err: CleverError,
        org: &OrgAuth,
        name: &str,
        flavor: &Flavor,
        sent_version: &str,
        retried: bool,
    ) -> Result<Application, PaasError> {
        let status = err.status();
        if status == Some(400) && !retried {
            self.products.invalidate();
            let version = self.docker_version(Retries::Once).await?;
            let catalog = self.catalog(Retries::Once).await?;
            if catalog.get(&flavor.user_name).map(|f| &f.api_name) != Some(&flavor.api_name) {
                return Err(PaasError::permanent(
                    "check-flavor",
                    format!(
                        "the Clever Cloud flavor {:?} is no longer available; allowed flavors: {}",
                        flavor.user_name,
                        catalog
                            .flavors()
                            .iter()
                            .map(|f| f.user_name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if version != sent_version {
                warn!(self.logger, "Docker instance version changed, creating again";
                      "app" => name, "old" => sent_version, "new" => &version);
                let body = self.create_body(name, version.clone(), flavor);
                return match self.api.create_app(org, &body).await {
                    Ok(app) => Ok(app),
                    Err(e) => {
                        Box::pin(self.recover_create(e, org, name, flavor, &version, true)).await
                    }
                };
            }
            return Err(err.into());
        }
        let may_exist =
            err.class() == PaasErrorClass::Uncertain || matches!(status, Some(500 | 502 | 504));
        if !may_exist {
            return Err(err.into());
        }
        match self.find_by_name(org, name).await {
            Ok(Some(app)) => {
                warn!(self.logger, "create failed but the app exists: adopting it";
                      "app" => &app.id, "name" => name, "error" => %untrusted(&err));
                Ok(app)
            }
            Ok(None) => Err(err.into()),
            Err(lookup) => Err(PaasError {
                action: "create-app".into(),
                message: format!("{err}; looking for an app named {name} failed too: {lookup}"),
                class: PaasErrorClass::Uncertain,
            }),
        }
    }

    /// Polls `repoState` until `CREATED`: the first poll after the delay
    /// learnt from the previous applications ([`ReadyDelay`]), then on steps
    /// growing from 0.1 s up to `cc_deployment_repo_wait_step`
    /// (`BackoffPolicy::polling`); returns the app as last seen.
    ///
    /// [`ReadyDelay`]: paas_actors::ReadyDelay
    async fn wait_deployable(&self, org: &OrgAuth, app_id: &str) -> Result<Application, PaasError> {
        let step = self.settings.deployment_repo_wait_step;
        let timeout = self.settings.deployment_repo_timeout;
        // A huge configured timeout must not overflow the clock.
        let deadline = Instant::now() + timeout.min(crate::git::MAX_TIMEOUT);
        let mut steps = BackoffPolicy::polling(step).start();
        let mut last: String;
        let began = Instant::now();
        sleep(self.repo_ready.first_wait(step)).await;
        let mut not_ready = None;
        loop {
            let sent = began.elapsed();
            // One GET per poll (transient failures are polled again until
            // the deadline; the launcher retries the whole step): bound it
            // by what is left of the deadline (at least one step, so that
            // the last poll can land).
            let left = deadline.saturating_duration_since(Instant::now()).max(step);
            let poll = self.api.get_app(org, app_id, Retries::Once);
            match actix_rt::time::timeout(left, poll).await {
                Err(_elapsed) => last = "no answer from the API in time".to_string(),
                Ok(Ok(app)) => match app.repo_state() {
                    Some("CREATED") => {
                        self.repo_ready.observe(not_ready, sent, step);
                        return Ok(app);
                    }
                    Some(state) => {
                        never_deployable(app_id, state)?;
                        not_ready = Some(sent);
                        last = format!("repository state {state}");
                    }
                    None => {
                        return Err(PaasError::permanent(
                            "wait-deployability",
                            format!(
                                "Clever Cloud application {app_id}: deployment details not \
                                 understood (no deployment.repoState)"
                            ),
                        ))
                    }
                },
                Ok(Err(e)) if e.class() == PaasErrorClass::Transient && !e.is_not_found() => {
                    last = e.detail();
                }
                Ok(Err(e)) => return Err(e.into()),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PaasError::permanent(
                    "wait-git",
                    format!(
                        "Clever Cloud application {app_id}: not deployable after {} s ({last})",
                        timeout.as_secs_f64()
                    ),
                ));
            }
            sleep(steps.next_delay().min(deadline - now)).await;
        }
    }
}

/// The permanent error of `action` on application `app_id`, which has no
/// deployment repository URL.
pub(super) fn no_http_url(action: &str, app_id: &str) -> PaasError {
    PaasError::permanent(
        action,
        format!("Clever Cloud application {app_id}: no deployment.httpUrl to push to"),
    )
}

/// A repository state from which `CREATED` never comes is a permanent error.
fn never_deployable(app_id: &str, state: &str) -> Result<(), PaasError> {
    match state {
        "NOT_NEEDED" | "DELETED" => Err(PaasError::permanent(
            "wait-deployability",
            format!(
                "Clever Cloud application {app_id}: deployment repository is {state}, it will \
                 never accept the job"
            ),
        )),
        _ => Ok(()),
    }
}
