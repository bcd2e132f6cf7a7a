//! `CleverExecutor`: the clever-docker executor, implementing
//! `paas_actors::ports::Paas` over the Clever Cloud API and a Git push.
//!
//! Provisioning steps (the supervisor records the resource between them):
//! 1. `create`: choose the flavor, find the organisation, `POST` the app.
//!    The create is sent once. When its answer is lost or is a 5xx, the
//!    organisation's apps are searched for the deterministic name: a found
//!    app is adopted (returned as created), otherwise the error is
//!    *uncertain* (lost answer) or transient (5xx). A 400 invalidates the
//!    product cache; if the Docker version changed meanwhile, the create is
//!    sent once more with the new version (the first one created nothing).
//! 2. `prepare`: `PUT env`, then poll `deployment.repoState` (steps
//!    growing from 0.1 s up to `cc_deployment_repo_wait_step`) until
//!    `CREATED` (fail fast on `NOT_NEEDED` / `DELETED`; the last poll
//!    happens at the deadline).
//! 3. `launch`: build the context and push it in the blocking pool; a
//!    remote `master` already present counts as launched.
//!
//! Reconciliation reads a job back from an application the state does not
//! know (`recover_job`): `job.json` from `master` of the app's deployment
//! repository (`deployment.httpUrl`), fetched in the blocking pool as
//! `cc_auth_user` with the organisation's token (`git::fetch`). No `master`,
//! no repository (its state is not `CREATED`: nothing was ever pushed), or
//! a `job.json` that is not a job payload: `Ok(None)`, the app holds no job
//! this runner can ask about. Network trouble is transient, like a push's.
//!
//! Tenant credentials are never stored in a resource: every operation
//! resolves the organisation again (cached, see `tenants`). A resource
//! records (and the state file saves) the organisation it was created in;
//! in multi-tenant mode it is operated on, and listed, in that organisation
//! even when its group now maps to another one (the old organisation's token
//! is known when a group mapped to it since start; otherwise the operation
//! fails transiently with `OrgMoved` and the listing fails, so that the
//! resource is neither forgotten nor looked for elsewhere). Decision for
//! records whose organisation cannot be resolved (GitLab down, attribute
//! removed, record written in single-organisation mode): `load_resource`
//! still returns the resource, so the record stays in the state; a
//! `decommission` that cannot find the organisation fails with a
//! *transient* `delete` error naming the cause, so that the decommissioner
//! keeps retrying (an administrator may fix the attributes meanwhile), and
//! the record survives restarts until the deletion succeeds.

use super::api::{Application, CleverApi, CleverError, CreateApp, Deleted, OrgAuth, Retries};
use super::flavors::{
    max_job_weight, select_flavor, Flavor, FlavorError, ProductCache, ProductError, FLAVOR_VARIABLE,
};
use super::settings::{CleverSettings, Tenancy};
use super::tenants::{TenantError, TenantResolver, Use};
use super::GroupAttributes;
use crate::deploy::BuildContext;
use crate::git::fetch_job_json_async;
use crate::git::{push_context_async, PushOutcome, RemoteError};
use actix_rt::time::{sleep, Instant};
use paas_actors::backoff::BackoffPolicy;
use paas_actors::metrics::{Api, ApiStatus, Metrics};
use paas_actors::ports::{
    weight_of_mem_mib, Job, Listing, Paas, PaasError, PaasErrorClass, PortFuture, Resource, Weight,
};
use paas_actors::ready_delay::ReadyDelay;
use paas_actors::untrusted::untrusted;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use slog::{debug, info, warn, Logger};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

/// RAM of the largest documented flavor (3XL): the weight of last resort
/// for a saved record without weight when the flavors cannot be fetched.
const LARGEST_DOCUMENTED_MEM_MIB: u64 = 32768;

/// The executor cannot be built from these settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CleverSetupError {
    /// Multi-tenant mode without a GitLab group attributes client.
    #[error("cc_multi_tenant needs a GitLab client able to read group custom attributes (cc_gitlab_namespace_attributes_token)")]
    NoAttributesClient,
}

/// The executor-specific part of a [`Resource`] (its `detail`): no secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppDetail {
    /// Top-level GitLab group of the job (multi-tenant mode only).
    #[serde(default)]
    pub gitlab_namespace: Option<String>,
    /// Git smart-HTTP URL of the app (`deployment.httpUrl`).
    #[serde(default)]
    pub deploy_url: Option<String>,
    /// Organisation the app belongs to, when known.
    #[serde(default)]
    pub orga_id: Option<String>,
}

impl AppDetail {
    fn of(resource: &Resource) -> AppDetail {
        serde_json::from_value(resource.detail.clone()).unwrap_or_default()
    }

    fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The clever-docker executor of one `[[runners]]` section.
pub struct CleverExecutor {
    settings: CleverSettings,
    api: CleverApi,
    products: ProductCache,
    tenants: Option<TenantResolver>,
    /// `(namespace, organisation)` of loaded resources whose organisation
    /// could not be resolved yet: a listing must cover them (or fail), else
    /// reconciliation would take their resources for vanished.
    unresolved: RefCell<BTreeSet<(String, Option<String>)>>,
    /// Apps whose deployment repository exceeded the fetch bounds, with
    /// the reason: `recover_job` answers that again without fetching.
    unreadable: RefCell<BTreeMap<String, String>>,
    /// How long deployment repositories take to be ready after the env is
    /// set, learnt from the previous waits.
    repo_ready: ReadyDelay,
    logger: Logger,
    metrics: Option<Arc<Metrics>>,
}

fn flavor_error(e: FlavorError) -> PaasError {
    let class = match e {
        FlavorError::NoFlavor { .. } => PaasErrorClass::Transient,
        _ => PaasErrorClass::Permanent,
    };
    PaasError {
        action: "check-flavor".into(),
        message: e.to_string(),
        class,
    }
}

fn product_error(e: ProductError) -> PaasError {
    match e {
        ProductError::Api(e) => e.into(),
        ProductError::NoDocker => PaasError::transient("get-instance-type", e.to_string()),
    }
}

fn tenant_error(e: TenantError) -> PaasError {
    PaasError {
        action: "find-orga".into(),
        class: if e.is_transient() {
            PaasErrorClass::Transient
        } else {
            PaasErrorClass::Permanent
        },
        message: e.to_string(),
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
        let tenants = match &settings.tenancy {
            Tenancy::Single { .. } => None,
            Tenancy::Multi {
                orga_id_attribute,
                orga_token_attribute,
                ..
            } => Some(TenantResolver::new(
                attributes.ok_or(CleverSetupError::NoAttributesClient)?,
                orga_id_attribute,
                orga_token_attribute,
                settings.tenant_cache_ttl,
            )),
        };
        let api = CleverApi::new(settings.api_base(), settings.http.clone());
        let products = ProductCache::new(
            settings.flavor_cache_ttl,
            &settings.flavor_context,
            &settings.flavor_name_prefix,
        );
        Ok(CleverExecutor {
            settings,
            api,
            products,
            tenants,
            unresolved: RefCell::new(BTreeSet::new()),
            unreadable: RefCell::new(BTreeMap::new()),
            repo_ready: ReadyDelay::new(),
            logger,
            metrics: None,
        })
    }

    /// Counts the Clever API requests and the git exchanges in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.api.set_metrics(metrics.clone());
        self.metrics = Some(metrics);
        self
    }

    fn count_git(&self, endpoint: &'static str, status: ApiStatus) {
        if let Some(m) = &self.metrics {
            m.api_request(Api::Git, endpoint, status);
        }
    }

    /// The organisation of a namespace (`None`: none known), for `purpose`.
    async fn org(&self, namespace: Option<&str>, purpose: Use) -> Result<OrgAuth, TenantError> {
        match (&self.settings.tenancy, &self.tenants) {
            (Tenancy::Single { orga_id, token }, _) => Ok(OrgAuth {
                orga_id: orga_id.clone(),
                token: token.clone(),
            }),
            (Tenancy::Multi { .. }, Some(t)) => {
                t.resolve(namespace.ok_or(TenantError::NoNamespace)?, purpose)
                    .await
            }
            (Tenancy::Multi { .. }, None) => Err(TenantError::NoNamespace),
        }
    }

    /// The organisation a resource was created in: the one its detail
    /// records even when its group now maps elsewhere (records without one,
    /// from older versions, follow their group).
    async fn resource_org(&self, detail: &AppDetail) -> Result<OrgAuth, TenantError> {
        let (Some(t), Some(orga_id)) = (&self.tenants, &detail.orga_id) else {
            return self
                .org(detail.gitlab_namespace.as_deref(), Use::Existing)
                .await;
        };
        let namespace = detail.gitlab_namespace.as_deref();
        match self.org(namespace, Use::Existing).await {
            Ok(org) if org.orga_id == *orga_id => return Ok(org),
            Ok(org) => warn!(self.logger, "a resource's group now maps to another organisation: \
                                           the resource stays in its own";
                             "namespace" => namespace, "orga_id" => orga_id,
                             "group_orga_id" => &org.orga_id),
            Err(_) => {}
        }
        t.org_by_id(orga_id).ok_or_else(|| TenantError::OrgMoved {
            namespace: namespace.unwrap_or_default().to_string(),
            orga_id: orga_id.clone(),
        })
    }

    /// The job's top-level group, as recorded in resources: `None` in
    /// single-organisation mode, else derived from its project by GitLab.
    async fn job_namespace(&self, job: &Job) -> Result<Option<String>, TenantError> {
        match &self.tenants {
            None => Ok(None),
            Some(t) => t.job_namespace(job.project_id).await.map(Some),
        }
    }

    async fn job_flavor(&self, job: &Job, retries: Retries) -> Result<Flavor, PaasError> {
        let catalog = self
            .products
            .catalog(&self.api, retries)
            .await
            .map_err(product_error)?;
        select_flavor(
            &catalog,
            job.variable(FLAVOR_VARIABLE),
            &self.settings.default_flavor,
            self.settings.max_flavor.as_deref(),
        )
        .cloned()
        .map_err(flavor_error)
    }

    /// Weight of the flavor a user would name `flavor` (e.g. `3XL`), for the
    /// `[quota_computation]` reference. An unknown flavor is a permanent
    /// error listing the available ones (the caller names the flavor asked
    /// for and the key that asked).
    pub async fn flavor_weight(&self, flavor: &str) -> Result<Weight, PaasError> {
        let catalog = self
            .products
            .catalog(&self.api, Retries::Policy)
            .await
            .map_err(product_error)?;
        match select_flavor(&catalog, Some(flavor), flavor, None) {
            Ok(f) => Ok(f.weight()),
            Err(FlavorError::Unknown { allowed, .. }) => Err(PaasError::permanent(
                "check-flavor",
                format!("not an available Clever Cloud flavor; available: {allowed}"),
            )),
            Err(e) => Err(flavor_error(e)),
        }
    }

    /// Weight for an app whose flavor is unknown: the largest available
    /// flavor's, else the largest documented one's.
    async fn fallback_weight(&self) -> Weight {
        match self.products.catalog(&self.api, Retries::Policy).await {
            Ok(c) => c.largest().map(Flavor::weight),
            Err(_) => None,
        }
        .unwrap_or_else(|| weight_of_mem_mib(LARGEST_DOCUMENTED_MEM_MIB))
    }

    fn create_body(&self, name: &str, version: String, flavor: &Flavor) -> CreateApp {
        CreateApp {
            name: name.to_string(),
            zone: self.settings.zone.clone(),
            deploy: "git",
            instance_type: "docker",
            instance_version: version,
            instance_variant: self.settings.instance_variant_uuid.clone(),
            instance_lifetime: "TASK",
            min_instances: 1,
            max_instances: 1,
            min_flavor: flavor.api_name.clone(),
            max_flavor: flavor.api_name.clone(),
        }
    }

    fn resource_of(
        &self,
        app: &Application,
        namespace: Option<&str>,
        orga_id: &str,
        weight: Weight,
    ) -> Resource {
        let detail = AppDetail {
            gitlab_namespace: namespace.map(str::to_string),
            deploy_url: app.http_url().map(str::to_string),
            orga_id: Some(orga_id.to_string()),
        };
        Resource {
            id: app.id.clone(),
            name: app.name.clone(),
            weight,
            launched: false,
            detail: detail.to_value(),
        }
    }

    /// Looks for an app of that name (the newest one if several).
    async fn find_by_name(
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
            let version = self
                .products
                .docker_version(&self.api, Retries::Once)
                .await
                .map_err(product_error)?;
            let catalog = self
                .products
                .catalog(&self.api, Retries::Once)
                .await
                .map_err(product_error)?;
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
                    Some(state @ ("NOT_NEEDED" | "DELETED")) => {
                        return Err(PaasError::permanent(
                            "wait-deployability",
                            format!(
                                "Clever Cloud application {app_id}: deployment repository is \
                                 {state}, it will never accept the job"
                            ),
                        ))
                    }
                    Some(state) => {
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

    /// The environment of every app: `CC_MOUNT_DOCKER_SOCKET=true`, then
    /// `cc_extra_env` (a later key replaces an earlier one in place).
    pub fn app_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("CC_MOUNT_DOCKER_SOCKET".to_string(), "true".to_string())];
        for (k, v) in &self.settings.extra_env {
            match env.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1 = v.clone(),
                None => env.push((k.clone(), v.clone())),
            }
        }
        env
    }

    /// For `verify`, in multi-tenant mode: the organisation of top-level
    /// group `namespace`, read afresh from GitLab, and how many of its
    /// applications are this runner's (listing them proves the tenant's
    /// token). `recorded` is the organisation the state file records for
    /// the group's resources: when the group now maps to another one, that
    /// organisation's token is unknown, which is an error. Messages never
    /// hold a token.
    pub async fn check_tenant(
        &self,
        namespace: &str,
        recorded: Option<&str>,
    ) -> Result<(String, usize), String> {
        let Some(t) = &self.tenants else {
            return Err("not a multi-tenant runner".to_string());
        };
        let org = t
            .resolve(namespace, Use::Create)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(recorded) = recorded.filter(|r| **r != org.orga_id) {
            return Err(format!(
                "the state file records organisation {recorded:?} for this group's \
                 applications, but the group now maps to {:?}: the service cannot operate \
                 on them; delete them in {recorded:?} by hand",
                org.orga_id
            ));
        }
        let apps = self
            .api
            .list_apps(&org, Retries::Policy)
            .await
            .map_err(|e| format!("organisation {:?}: {e}", org.orga_id))?;
        let prefix = self.settings.app_name_prefix();
        let ours = apps
            .iter()
            .filter(|a| {
                a.name.starts_with(&prefix) || self.settings.legacy_app_job_id(&a.name).is_some()
            })
            .count();
        Ok((org.orga_id, ours))
    }

    fn resource_org_error(&self, action: &str, resource: &Resource, e: TenantError) -> PaasError {
        PaasError::transient(
            action,
            format!(
                "Clever Cloud application {} is kept for later: its organisation is unknown \
                 now ({e})",
                resource.id
            ),
        )
    }

    /// The job's deploy context, built on the blocking pool.
    async fn deploy_context(&self, job: &Job) -> Result<BuildContext, PaasError> {
        BuildContext::build_off_thread(
            self.settings.main_image.clone(),
            self.settings.inner_runner_toml.clone(),
            job.clone(),
        )
        .await
        .map(|(ctx, _)| ctx)
        .map_err(|e| PaasError::permanent("build-context", e.to_string()))
    }

    async fn do_create(&self, job: &Job) -> Result<Resource, PaasError> {
        // Every call of the create step is sent once: the launcher retries
        // the step.
        let flavor = self.job_flavor(job, Retries::Once).await?;
        // A job whose context cannot be built is refused before any app exists.
        self.deploy_context(job).await?;
        let namespace = self.job_namespace(job).await.map_err(tenant_error)?;
        let namespace = namespace.as_deref();
        let org = self
            .org(namespace, Use::Create)
            .await
            .map_err(tenant_error)?;
        let version = self
            .products
            .docker_version(&self.api, Retries::Once)
            .await
            .map_err(product_error)?;
        let name = self.settings.app_name(job.id);
        let body = self.create_body(&name, version.clone(), &flavor);
        let app = match self.api.create_app(&org, &body).await {
            Ok(app) => app,
            Err(e) => {
                self.recover_create(e, &org, &name, &flavor, &version, false)
                    .await?
            }
        };
        let weight = app
            .max_flavor_mem_mib()
            .map(weight_of_mem_mib)
            .unwrap_or_else(|| flavor.weight());
        debug!(self.logger, "Clever Cloud application created";
              "app" => &app.id, "job_id" => job.id, "flavor" => &flavor.user_name,
              "weight" => paas_actors::ports::TwoDecimals(weight));
        Ok(self.resource_of(&app, namespace, &org.orga_id, weight))
    }

    async fn do_prepare(&self, resource: &Resource) -> Result<Resource, PaasError> {
        let mut detail = AppDetail::of(resource);
        let org = self.resource_org(&detail).await.map_err(tenant_error)?;
        // Sent once: the launcher retries the prepare step.
        self.api
            .put_env(&org, &resource.id, &self.app_env(), Retries::Once)
            .await
            .map_err(PaasError::from)?;
        let app = self.wait_deployable(&org, &resource.id).await?;
        let url = app.http_url().ok_or_else(|| {
            PaasError::permanent(
                "wait-deployability",
                format!(
                    "Clever Cloud application {}: no deployment.httpUrl to push to",
                    resource.id
                ),
            )
        })?;
        detail.deploy_url = Some(url.to_string());
        let mut ready = resource.clone();
        ready.detail = detail.to_value();
        Ok(ready)
    }

    async fn do_launch(&self, resource: &Resource, job: &Job) -> Result<Resource, PaasError> {
        let mut detail = AppDetail::of(resource);
        let org = self.resource_org(&detail).await.map_err(tenant_error)?;
        let url = match &detail.deploy_url {
            Some(u) => u.clone(),
            None => {
                // Sent once: the launcher retries the launch step.
                let app = self.api.get_app(&org, &resource.id, Retries::Once).await?;
                let url = app.http_url().map(str::to_string).ok_or_else(|| {
                    PaasError::permanent(
                        "push",
                        format!(
                            "Clever Cloud application {}: no deployment.httpUrl to push to",
                            resource.id
                        ),
                    )
                })?;
                detail.deploy_url = Some(url.clone());
                url
            }
        };
        let ctx = self.deploy_context(job).await?;
        let user = self.settings.auth_user.clone();
        let password = org.token.clone();
        let timeout = self.settings.push_timeout;
        let outcome = push_context_async(&ctx, &url, &user, &password, timeout).await;
        self.count_git(
            "push",
            match &outcome {
                Ok(_) => ApiStatus::Ok,
                Err(_) => ApiStatus::Error,
            },
        );
        let outcome = outcome.map_err(|e| PaasError {
            action: "push".into(),
            message: e.to_string(),
            class: if e.is_retryable() {
                PaasErrorClass::Transient
            } else {
                PaasErrorClass::Permanent
            },
        })?;
        match outcome {
            PushOutcome::Pushed => {
                info!(self.logger, "job pushed"; "app" => &resource.id, "job_id" => job.id)
            }
            PushOutcome::AlreadyLaunched => warn!(
                self.logger,
                "deployment branch already present: job launched before";
                "app" => &resource.id, "job_id" => job.id
            ),
        }
        let mut launched = resource.clone();
        launched.launched = true;
        launched.detail = detail.to_value();
        Ok(launched)
    }

    async fn do_decommission(&self, resource: &Resource) -> Result<(), PaasError> {
        let detail = AppDetail::of(resource);
        let org = self
            .resource_org(&detail)
            .await
            .map_err(|e| self.resource_org_error("delete", resource, e))?;
        // Sent once: the decommissioner retries the delete.
        match self
            .api
            .delete_app(&org, &resource.id, Retries::Once)
            .await?
        {
            Deleted::Now => debug!(self.logger, "application deleted"; "app" => &resource.id),
            Deleted::AlreadyGone => {
                warn!(self.logger, "application already gone"; "app" => &resource.id)
            }
        }
        Ok(())
    }

    async fn do_recover(&self, resource: &Resource) -> Result<Option<Job>, PaasError> {
        const ACTION: &str = "recover-job";
        if let Some(why) = self.unreadable.borrow().get(&resource.id) {
            return Err(PaasError::permanent(
                ACTION,
                format!("{why} (remembered: not fetched again)"),
            ));
        }
        let detail = AppDetail::of(resource);
        let org = self
            .resource_org(&detail)
            .await
            .map_err(|e| self.resource_org_error(ACTION, resource, e))?;
        let url = match &detail.deploy_url {
            Some(u) => u.clone(),
            None => match self.api.get_app(&org, &resource.id, Retries::Policy).await {
                Ok(app) => match app.http_url() {
                    Some(u) => u.to_string(),
                    None => return Ok(None),
                },
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        };
        let user = self.settings.auth_user.clone();
        let password = org.token.clone();
        let timeout = self.settings.push_timeout;
        let fetched = fetch_job_json_async(&url, &user, &password, timeout).await;
        self.count_git(
            "fetch",
            match &fetched {
                Ok(_) => ApiStatus::Ok,
                Err(RemoteError::Http { status, .. }) => ApiStatus::Http(*status),
                Err(_) => ApiStatus::Error,
            },
        );
        let bytes = match fetched {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e @ RemoteError::Http { status: 404, .. }) => {
                // No repository behind the URL: never created (nothing was
                // pushed) or gone with the app; otherwise a passing 404.
                return match self.api.get_app(&org, &resource.id, Retries::Policy).await {
                    Ok(app) if app.repo_state() != Some("CREATED") => Ok(None),
                    Err(lookup) if lookup.is_not_found() => Ok(None),
                    _ => Err(PaasError::transient(ACTION, e.to_string())),
                };
            }
            Err(e @ RemoteError::TooLarge { .. }) => {
                warn!(self.logger, "the deployment repository exceeds the fetch bounds: \
                                    not fetched again";
                      "app" => &resource.id, "error" => %e);
                self.unreadable
                    .borrow_mut()
                    .insert(resource.id.clone(), e.to_string());
                return Err(PaasError::permanent(ACTION, e.to_string()));
            }
            Err(e) => {
                return Err(PaasError {
                    action: ACTION.into(),
                    message: e.to_string(),
                    class: if e.is_retryable() {
                        PaasErrorClass::Transient
                    } else {
                        PaasErrorClass::Permanent
                    },
                })
            }
        };
        let job = serde_json::from_slice(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|v| Job::from_payload(v).map_err(|e| e.to_string()));
        match job {
            Ok(job) => {
                info!(self.logger, "job read back from the deployment repository";
                      "app" => &resource.id, "job_id" => job.id);
                Ok(Some(job))
            }
            Err(why) => {
                warn!(self.logger, "the deployment repository holds no job payload";
                      "app" => &resource.id, "error" => %untrusted(&why));
                Ok(None)
            }
        }
    }

    /// Every organisation's listing; a failing one fails the whole.
    async fn do_list(&self) -> Result<Vec<Resource>, PaasError> {
        let (found, mut failed) = self.do_list_by_org().await?;
        match failed.pop() {
            Some((_, e)) => Err(e),
            None => Ok(found),
        }
    }

    /// Lists organisation by organisation; one whose listing fails (a
    /// revoked token) is skipped (WARN) and named in `skipped`.
    async fn do_list_skipping(&self) -> Result<Listing, PaasError> {
        let (resources, failed) = self.do_list_by_org().await?;
        for (orga_id, e) in &failed {
            warn!(self.logger, "cannot list the applications of an organisation; \
                   its resources are left as they are";
                  "orga_id" => orga_id, "error" => %e);
        }
        Ok(Listing {
            resources,
            skipped: failed.into_iter().map(|(orga_id, _)| orga_id).collect(),
        })
    }

    /// The applications of every organisation that could be listed, and
    /// the organisations that could not (with why).
    async fn do_list_by_org(&self) -> Result<(Vec<Resource>, Vec<(String, PaasError)>), PaasError> {
        let orgs: Vec<(Option<String>, OrgAuth)> = match (&self.settings.tenancy, &self.tenants) {
            (Tenancy::Single { orga_id, token }, _) => vec![(
                None,
                OrgAuth {
                    orga_id: orga_id.clone(),
                    token: token.clone(),
                },
            )],
            (Tenancy::Multi { .. }, Some(t)) => {
                // A listing that misses a tenant of a tracked resource is
                // not a listing of "the resources of this runner": fail.
                let pending: Vec<_> = self.unresolved.borrow().iter().cloned().collect();
                for (ns, orga_id) in pending {
                    let found = t
                        .resolve(&ns, Use::Existing)
                        .await
                        .and_then(|_| match &orga_id {
                            Some(o) if t.org_by_id(o).is_none() => Err(TenantError::OrgMoved {
                                namespace: ns.clone(),
                                orga_id: o.clone(),
                            }),
                            _ => Ok(()),
                        });
                    match found {
                        Ok(()) => {
                            self.unresolved.borrow_mut().remove(&(ns, orga_id));
                        }
                        Err(e) => {
                            return Err(PaasError::transient(
                                "list-apps",
                                format!(
                                    "the organisation of a tracked resource is unknown now, the \
                                     listing would be incomplete: {e}"
                                ),
                            ))
                        }
                    }
                }
                t.known().into_iter().map(|(ns, o)| (Some(ns), o)).collect()
            }
            (Tenancy::Multi { .. }, None) => Vec::new(),
        };
        let prefix = self.settings.app_name_prefix();
        let mut found = Vec::new();
        let mut failed = Vec::new();
        for (namespace, org) in orgs {
            let apps = match self.api.list_apps(&org, Retries::Policy).await {
                Ok(apps) => apps,
                Err(e) => {
                    failed.push((org.orga_id.clone(), PaasError::from(e)));
                    continue;
                }
            };
            for app in apps {
                // Named under the legacy identity: listed under today's
                // name, so that reconciliation reads its job id.
                let legacy_job = self.settings.legacy_app_job_id(&app.name);
                if !app.name.starts_with(&prefix) && legacy_job.is_none() {
                    continue;
                }
                let weight = match app.max_flavor_mem_mib() {
                    Some(mem) => weight_of_mem_mib(mem),
                    None => self.fallback_weight().await,
                };
                let mut r = self.resource_of(&app, namespace.as_deref(), &org.orga_id, weight);
                r.launched = app.commit_id.is_some();
                if let Some(id) = legacy_job {
                    r.name = self.settings.app_name(id);
                }
                found.push(r);
            }
        }
        Ok((found, failed))
    }

    async fn do_load(&self, saved: &Value) -> Result<Resource, PaasError> {
        let id = saved
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                PaasError::permanent("load-resource", "saved Clever Cloud resource has no id")
            })?;
        let text = |key: &str| saved.get(key).and_then(Value::as_str).map(str::to_string);
        let namespace = text("gitlab_namespace");
        let weight = match saved.get("weight").and_then(Value::as_f64) {
            Some(w) if w.is_finite() && w > 0.0 => w,
            _ => {
                let w = self.fallback_weight().await;
                warn!(self.logger, "saved resource without weight: using the largest flavor's";
                      "app" => id, "weight" => paas_actors::ports::TwoDecimals(w));
                w
            }
        };
        let orga_id = match &self.settings.tenancy {
            Tenancy::Single { orga_id, .. } => Some(orga_id.clone()),
            Tenancy::Multi { .. } => text("orga_id"),
        };
        if let (Some(t), Some(ns)) = (&self.tenants, &namespace) {
            // Warms the cache (and the tenant list); a failure only delays
            // operations on this resource, the record is kept.
            let found = t
                .resolve(ns, Use::Existing)
                .await
                .and_then(|_| match &orga_id {
                    Some(o) if t.org_by_id(o).is_none() => Err(TenantError::OrgMoved {
                        namespace: ns.clone(),
                        orga_id: o.clone(),
                    }),
                    _ => Ok(()),
                });
            if let Err(e) = found {
                self.unresolved
                    .borrow_mut()
                    .insert((ns.clone(), orga_id.clone()));
                warn!(self.logger, "organisation of a saved resource not found now";
                      "app" => id, "error" => %untrusted(&e));
            }
        }
        let detail = AppDetail {
            gitlab_namespace: namespace,
            deploy_url: text("deploy_url"),
            orga_id,
        };
        Ok(Resource {
            id: id.to_string(),
            name: text("name").unwrap_or_default(),
            weight,
            launched: saved
                .get("launched")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            detail: detail.to_value(),
        })
    }
}

impl Paas for CleverExecutor {
    fn max_job_weight(&self) -> PortFuture<'_, Result<Weight, PaasError>> {
        Box::pin(async move {
            let catalog = self
                .products
                .catalog(&self.api, Retries::Policy)
                .await
                .map_err(product_error)?;
            max_job_weight(
                &catalog,
                self.settings.max_flavor.as_deref(),
                self.products.prefix(),
            )
            .map_err(flavor_error)
        })
    }

    fn expected_weight<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Weight, PaasError>> {
        Box::pin(async move { Ok(self.job_flavor(job, Retries::Policy).await?.weight()) })
    }

    fn resource_name(&self, job_id: i64) -> String {
        self.settings.app_name(job_id)
    }

    fn create<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(self.do_create(job))
    }

    fn prepare<'a>(
        &'a self,
        resource: &'a Resource,
        _job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(self.do_prepare(resource))
    }

    fn launch<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(self.do_launch(resource, job))
    }

    fn decommission<'a>(&'a self, resource: &'a Resource) -> PortFuture<'a, Result<(), PaasError>> {
        Box::pin(self.do_decommission(resource))
    }

    fn list_resources(&self) -> PortFuture<'_, Result<Vec<Resource>, PaasError>> {
        Box::pin(self.do_list())
    }

    fn list_resources_by_scope(&self) -> PortFuture<'_, Result<Listing, PaasError>> {
        Box::pin(self.do_list_skipping())
    }

    fn resource_scope(&self, resource: &Resource) -> Option<String> {
        AppDetail::of(resource).orga_id
    }

    fn recover_job<'a>(
        &'a self,
        resource: &'a Resource,
    ) -> PortFuture<'a, Result<Option<Job>, PaasError>> {
        Box::pin(self.do_recover(resource))
    }

    fn dump_resource(&self, resource: &Resource) -> Value {
        let detail = AppDetail::of(resource);
        let mut saved = json!({
            "id": resource.id,
            "gitlab_namespace": detail.gitlab_namespace,
            "orga_id": detail.orga_id,
            "weight": resource.weight,
            "launched": resource.launched,
            "deploy_url": detail.deploy_url,
        });
        if !resource.name.is_empty() {
            if let Some(obj) = saved.as_object_mut() {
                obj.insert("name".into(), Value::String(resource.name.clone()));
            }
        }
        saved
    }

    fn load_resource<'a>(
        &'a self,
        saved: &'a Value,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(self.do_load(saved))
    }
}
