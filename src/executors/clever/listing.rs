//! The applications of this runner, organisation by organisation, for
//! reconciliation. Listings keep the client's retries: nobody retries them
//! but the next reconciliation pass.

use super::api::{Application, OrgAuth, Retries};
use super::apps::CleverApps;
use paas_actors::ports::{weight_of_mem_mib, Listing, PaasError, Resource};
use slog::warn;

/// Resources found, and organisations that could not be listed (with why).
type ByOrg = (Vec<Resource>, Vec<(String, PaasError)>);

impl CleverApps {
    /// Every organisation's listing; a failing one fails the whole.
    pub(crate) async fn list(&self) -> Result<Vec<Resource>, PaasError> {
        let (found, mut failed) = self.list_by_org().await?;
        match failed.pop() {
            Some((_, e)) => Err(e),
            None => Ok(found),
        }
    }

    /// Lists organisation by organisation; one whose listing fails (a
    /// revoked token) is skipped (WARN) and named in `skipped`.
    pub(crate) async fn list_skipping(&self) -> Result<Listing, PaasError> {
        let (resources, failed) = self.list_by_org().await?;
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
    async fn list_by_org(&self) -> Result<ByOrg, PaasError> {
        let mut found = Vec::new();
        let mut failed = Vec::new();
        for (namespace, org) in self.listed_orgs().await? {
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
        Ok((found, failed))
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
