//! [`CleverApps`]: the Clever Cloud applications of one runner section, as
//! any executor running jobs in them needs them. It holds the API client,
//! the product cache (flavors, Docker version) and the organisation of
//! each job and resource; its steps are cut by concern:
//!
//! - `orgs.rs`: which organisation (and token) a job or a resource is in;
//! - `provision.rs`: create (with the look-up by name), environment,
//!   repository readiness;
//! - `decommission.rs`: the delete;
//! - `listing.rs`: the applications of this runner, organisation by
//!   organisation;
//! - `records.rs`: a resource's detail and its state-file record.
//!
//! What only clever-docker does (build and push a job's deploy context,
//! read `job.json` back) is in `executor.rs` and beside it; what only
//! clever-service-docker does (the helper), in `service/`. The two differ
//! in these shared steps only where `settings.service` says so: a service
//! application is created without `instanceLifetime` and records its
//! helper's address.

use super::api::{CleverApi, Retries};
use super::flavors::{
    max_job_weight, select_flavor, Flavor, FlavorCatalog, FlavorError, ProductCache, ProductError,
    FLAVOR_VARIABLE,
};
use super::settings::{CleverSettings, Tenancy};
use super::tenants::{TenantError, TenantResolver};
use super::GroupAttributes;
use paas_actors::metrics::{Api, ApiCounter, ApiStatus};
use paas_actors::ports::{weight_of_mem_mib, Job, PaasError, PaasErrorClass, Resource, Weight};
use paas_actors::ReadyDelay;
use slog::Logger;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

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

/// The applications of one runner section (see the module header).
pub(crate) struct CleverApps {
    pub(super) settings: CleverSettings,
    pub(super) api: CleverApi,
    pub(super) products: ProductCache,
    pub(super) tenants: Option<TenantResolver>,
    /// `(namespace, organisation)` of loaded resources whose organisation
    /// could not be resolved yet: a listing must cover them (or fail), else
    /// reconciliation would take their resources for vanished.
    pub(super) unresolved: RefCell<BTreeSet<(String, Option<String>)>>,
    /// How long deployment repositories take to be ready after the env is
    /// set, learnt from the previous waits.
    pub(super) repo_ready: ReadyDelay,
    /// The Clever API is on a loopback host (a simulator): only then may a
    /// service application's helper be on one (`service/address.rs`).
    pub(super) loopback_api: bool,
    pub(super) logger: Logger,
    metrics: Option<ApiCounter>,
}

pub(super) fn flavor_error(e: FlavorError) -> PaasError {
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

pub(super) fn tenant_error(e: TenantError) -> PaasError {
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

impl CleverApps {
    /// `attributes` is required in multi-tenant mode (the GitLab client
    /// reading group custom attributes). Must be called inside an actix
    /// system.
    pub(crate) fn new(
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
        let loopback_api =
            url::Url::parse(settings.api_base()).is_ok_and(|u| crate::git::is_loopback(&u));
        let products = ProductCache::new(
            settings.flavor_cache_ttl,
            &settings.flavor_context,
            &settings.flavor_name_prefix,
        );
        Ok(CleverApps {
            settings,
            api,
            products,
            tenants,
            unresolved: RefCell::new(BTreeSet::new()),
            repo_ready: ReadyDelay::new(),
            loopback_api,
            logger,
            metrics: None,
        })
    }

    /// Counts the Clever API requests and the git exchanges in `metrics`.
    pub(crate) fn set_metrics(&mut self, metrics: ApiCounter) {
        self.api.set_metrics(metrics.clone());
        self.metrics = Some(metrics);
    }

    /// Counts one git exchange with a deployment repository.
    pub(crate) fn count_git(&self, endpoint: &'static str, status: ApiStatus) {
        if let Some(m) = &self.metrics {
            m.api_request(Api::Git, endpoint, status);
        }
    }

    /// The flavor of `resource` (the bill's label): the flavor of the
    /// catalog last fetched with its weight.
    pub(crate) fn resource_flavor(&self, resource: &Resource) -> Option<String> {
        let catalog = self.products.last_catalog()?;
        let flavor = catalog.by_weight(resource.weight)?;
        Some(flavor.user_name.clone())
    }

    /// The flavor catalog, fetched (per `retries`) when stale.
    pub(super) async fn catalog(&self, retries: Retries) -> Result<Rc<FlavorCatalog>, PaasError> {
        self.products
            .catalog(&self.api, retries)
            .await
            .map_err(product_error)
    }

    /// The Docker instance version, fetched (per `retries`) when stale.
    pub(super) async fn docker_version(&self, retries: Retries) -> Result<String, PaasError> {
        self.products
            .docker_version(&self.api, retries)
            .await
            .map_err(product_error)
    }

    /// The weight of the largest job this runner may take.
    pub(crate) async fn max_job_weight(&self) -> Result<Weight, PaasError> {
        let catalog = self.catalog(Retries::Policy).await?;
        max_job_weight(
            &catalog,
            self.settings.max_flavor.as_deref(),
            self.products.prefix(),
        )
        .map_err(flavor_error)
    }

    /// The flavor `job` asks for (variable `CI_CLEVER_CLOUD_FLAVOR`), within
    /// the runner's bounds.
    pub(crate) async fn job_flavor(
        &self,
        job: &Job,
        retries: Retries,
    ) -> Result<Flavor, PaasError> {
        let catalog = self.catalog(retries).await?;
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
    pub(crate) async fn flavor_weight(&self, flavor: &str) -> Result<Weight, PaasError> {
        let catalog = self.catalog(Retries::Policy).await?;
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
    pub(super) async fn fallback_weight(&self) -> Weight {
        match self.catalog(Retries::Policy).await {
            Ok(c) => c.largest().map(Flavor::weight),
            Err(_) => None,
        }
        .unwrap_or_else(|| weight_of_mem_mib(LARGEST_DOCUMENTED_MEM_MIB))
    }
}
