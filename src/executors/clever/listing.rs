//! The applications of this runner, organisation by organisation, for
//! reconciliation. Listings keep the client's retries: nobody retries them
//! but the next reconciliation pass.

use super::api::{Application, OrgAuth, Retries};
use super::apps::{tenant_error, CleverApps};
use super::orgs::{ListedOrgs, Unresolved};
use super::tenants::Use;
use paas_actors::ports::{weight_of_mem_mib, Job, Listing, PaasError, Resource};
use paas_actors::untrusted::untrusted;
use slog::warn;

/// A reconciliation listing as [`CleverApps::list_by_org`] makes it.
struct ByOrg {
    /// The applications of this runner in the organisations listed.
    found: Vec<Resource>,
    /// The organisations whose listing failed, with why.
    failed: Vec<(String, PaasError)>,
    /// The tenants of loaded resources whose organisation is unknown now.
    unresolved: Vec<Unresolved>,
}

impl CleverApps {
    /// Every organisation's listing; a failing one, or the unknown
    /// organisation of a loaded resource, fails the whole.
    pub(crate) async fn list(&self) -> Result<Vec<Resource>, PaasError> {
        let mut by_org = self.list_by_org().await;
        if let Some(u) = by_org.unresolved.pop() {
            return Err(PaasError::transient(
                "list-apps",
                format!(
                    "the organisation of a tracked resource is unknown now, the \
                     listing would be incomplete: {}",
                    u.error
                ),
            ));
        }
        match by_org.failed.pop() {
            Some((_, e)) => Err(e),
            None => Ok(by_org.found),
        }
    }

    /// Lists organisation by organisation; one whose listing fails (a
    /// revoked token), or whose tenant cannot be resolved now (GitLab down,
    /// the group's attributes removed, the group renamed or transferred),
    /// is skipped (WARN) and named in `skipped`: its resources keep their
    /// weight and are not judged, and the other organisations are listed
    /// as usual. Tenants unresolved for a permanent reason are named in
    /// `unresolved`.
    pub(crate) async fn list_skipping(&self) -> Result<Listing, PaasError> {
        let ByOrg {
            found,
            failed,
            unresolved,
        } = self.list_by_org().await;
        for (orga_id, e) in &failed {
            warn!(self.logger, "cannot list the applications of an organisation; \
                   its resources are left as they are";
                  "orga_id" => orga_id, "error" => %e);
        }
        let mut skipped: Vec<String> = failed.into_iter().map(|(orga_id, _)| orga_id).collect();
        let mut permanent = Vec::new();
        for u in unresolved {
            let class = if u.error.is_transient() {
                "transient"
            } else {
                "permanent"
            };
            warn!(self.logger, "the organisation of a tenant of tracked resources cannot be \
                   found now; its resources are left as they are and it is tried again \
                   at the next reconciliation pass";
                  "group" => %untrusted(&u.namespace), "orga_id" => ?u.orga_id,
                  "class" => class, "error" => %untrusted(&u.error));
            skipped.push(u.scope());
            if !u.error.is_transient() && !permanent.contains(&u.namespace) {
                permanent.push(u.namespace);
            }
        }
        Ok(Listing {
            resources: found,
            skipped,
            unresolved: permanent,
        })
    }

    /// The applications of every organisation that could be listed, the
    /// organisations that could not (with why), and the tenants not
    /// resolved now.
    async fn list_by_org(&self) -> ByOrg {
        let ListedOrgs { listed, unresolved } = self.listed_orgs().await;
        let mut found = Vec::new();
        let mut failed = Vec::new();
        for (namespace, org) in listed {
            match self.api.list_apps(&org, Retries::Policy).await {
                Ok(apps) => {
                    for app in apps {
                        if let Some(r) = self.listed(&app, namespace.as_deref(), &org).await {
                            found.push(r);
                        }
                    }
                }
                Err(e) => failed.push((org.orga_id.clone(), PaasError::from(e))),
            }
        }
        ByOrg {
            found,
            failed,
            unresolved,
        }
    }

    /// The application of `job` named `name`, if it exists: looked for in
    /// the organisation of the job's group only (an expired cache entry
    /// serves while GitLab is unavailable), never held back by another
    /// tenant. A tenant that cannot be resolved is an error of its class.
    pub(crate) async fn find_resource(
        &self,
        job: &Job,
        name: &str,
    ) -> Result<Option<Resource>, PaasError> {
        let namespace = self.job_namespace(job).await.map_err(tenant_error)?;
        let namespace = namespace.as_deref();
        let org = self
            .org(namespace, Use::Existing)
            .await
            .map_err(tenant_error)?;
        let Some(app) = self.find_by_name(&org, name).await? else {
            return Ok(None);
        };
        Ok(self.listed(&app, namespace, &org).await)
    }

    /// The resource of a listed `app`, if it is one of this runner's.
    async fn listed(
        &self,
        app: &Application,
        namespace: Option<&str>,
        org: &OrgAuth,
    ) -> Option<Resource> {
        // Named under the legacy identity: listed under today's name, so
        // that reconciliation reads its job id.
        let legacy_job = self.settings.legacy_app_job_id(&app.name);
        if !app.name.starts_with(&self.settings.app_name_prefix()) && legacy_job.is_none() {
            return None;
        }
        let weight = match app.max_flavor_mem_mib() {
            Some(mem) => weight_of_mem_mib(mem),
            None => self.fallback_weight().await,
        };
        let mut r = self.resource_of(app, namespace, &org.orga_id, weight);
        r.launched = app.commit_id.is_some();
        if let Some(id) = legacy_job {
            r.name = self.settings.app_name(id);
        }
        Some(r)
    }
}
