//! Which Clever organisation, with which token, a job or a resource is in.
//!
//! Tenant credentials are never stored in a resource: every operation
//! resolves the organisation again (cached, see `tenants.rs`). A resource
//! records (and the state file saves) the organisation it was created in;
//! in multi-tenant mode it is operated on, and listed, in that organisation
//! even when its group now maps to another one (the old organisation's
//! token is known when a group mapped to it since start; otherwise the
//! operation fails with `OrgMoved`). While its group cannot be resolved, an
//! operation fails with the resolution's own error and class (a coordinator
//! outage stays transient), so that the resource is neither forgotten nor
//! looked for elsewhere.
//!
//! Records whose organisation cannot be resolved (GitLab down, attribute
//! removed, group renamed or transferred, record written in
//! single-organisation mode): loading still returns the resource, so the
//! record stays in the state, and every reconciliation listing skips its
//! tenant (its resources keep their weight and are not judged) while
//! trying it again, without holding back the other tenants' listings; a
//! decommission that cannot find the organisation fails with a *transient*
//! `delete` error naming the cause ([`kept_for_later`]), so that the
//! decommissioner keeps retrying (an administrator may fix the attributes
//! meanwhile), and the record survives restarts until the deletion
//! succeeds (or `forget` releases it).

use super::api::{OrgAuth, Retries};
use super::apps::{tenant_error, CleverApps};
use super::records::AppDetail;
use super::settings::Tenancy;
use super::tenants::{TenantError, Use};
use paas_actors::ports::{Job, PaasError, Resource};
use slog::warn;

/// The error of an operation on `resource` whose organisation is unknown
/// now: transient, the resource is kept and the operation tried again.
/// A tenant of loaded resources whose organisation cannot be resolved now.
pub(super) struct Unresolved {
    /// The top-level group the resources record.
    pub namespace: String,
    /// The organisation they were created in, when recorded.
    pub orga_id: Option<String>,
    /// Why (transient or permanent: [`TenantError::is_transient`]).
    pub error: TenantError,
}

impl Unresolved {
    /// The scope its resources are skipped under ([`Listing::skipped`],
    /// matched against `resource_scope`, their organisation id); the group
    /// when no organisation is recorded (such resources have no scope, and
    /// a non-empty `skipped` already keeps them from being judged).
    pub fn scope(&self) -> String {
        self.orga_id
            .clone()
            .unwrap_or_else(|| format!("group {}", self.namespace))
    }
}

/// `verify`'s message for a tenant whose organisation cannot be found:
/// the cause, whether it passes by itself, and what the service does.
fn unresolved_message(e: &TenantError) -> String {
    let class = if e.is_transient() {
        "transient: GitLab may answer later"
    } else {
        "permanent until someone acts: restore the group's attributes, or release \
         its applications with `forget`"
    };
    format!(
        "{e} ({class}); the service skips this tenant's applications, keeping their \
         weight, and tries it again at every reconciliation pass"
    )
}

/// What a reconciliation listing covers.
#[derive(Default)]
pub(super) struct ListedOrgs {
    /// The organisations to list (with the group that last mapped to each).
    pub listed: Vec<(Option<String>, OrgAuth)>,
    /// The tenants of loaded resources not resolved now: skipped.
    pub unresolved: Vec<Unresolved>,
}

pub(super) fn kept_for_later(action: &str, resource: &Resource, e: TenantError) -> PaasError {
    PaasError::transient(
        action,
        format!(
            "Clever Cloud application {} is kept for later: its organisation is unknown \
             now ({e})",
            resource.id
        ),
    )
}

impl CleverApps {
    /// The organisation of a namespace (`None`: none known), for `purpose`.
    pub(crate) async fn org(
        &self,
        namespace: Option<&str>,
        purpose: Use,
    ) -> Result<OrgAuth, TenantError> {
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
    pub(crate) async fn resource_org(&self, detail: &AppDetail) -> Result<OrgAuth, TenantError> {
        let (Some(t), Some(orga_id)) = (&self.tenants, &detail.orga_id) else {
            return self
                .org(detail.gitlab_namespace.as_deref(), Use::Existing)
                .await;
        };
        let namespace = detail.gitlab_namespace.as_deref();
        let unresolved = match self.org(namespace, Use::Existing).await {
            Ok(org) if org.orga_id == *orga_id => return Ok(org),
            Ok(org) => {
                warn!(self.logger, "a resource's group now maps to another organisation: \
                                    the resource stays in its own";
                      "namespace" => namespace, "orga_id" => orga_id,
                      "group_orga_id" => &org.orga_id);
                None
            }
            Err(e) => Some(e),
        };
        if let Some(org) = t.org_by_id(orga_id) {
            return Ok(org);
        }
        // The group could not be resolved: its error, with its class (a
        // coordinator outage stays transient); it resolved to another
        // organisation: this one's token is unknown.
        Err(unresolved.unwrap_or_else(|| TenantError::OrgMoved {
            namespace: namespace.unwrap_or_default().to_string(),
            orga_id: orga_id.clone(),
        }))
    }

    /// The organisation a new application for `job` would be created in,
    /// resolved as `create` resolves it (never a stale answer): the tenant
    /// a standby application must belong to for the job to reuse it.
    pub(crate) async fn job_scope(&self, job: &Job) -> Result<Option<String>, PaasError> {
        let namespace = self.job_namespace(job).await.map_err(tenant_error)?;
        let org = self
            .org(namespace.as_deref(), Use::Create)
            .await
            .map_err(tenant_error)?;
        Ok(Some(org.orga_id))
    }

    /// The organisation a recorded resource is in: its `orga_id`, else
    /// (a record of the Python runner 1.1, which keeps only the group) the
    /// single organisation, or in multi-tenant mode the one its
    /// `gitlab_namespace` resolved to last (`None` while unknown: such a
    /// resource is not reused).
    pub(crate) fn recorded_scope(&self, detail: &AppDetail) -> Option<String> {
        if let Some(o) = &detail.orga_id {
            return Some(o.clone());
        }
        match (&self.settings.tenancy, &self.tenants) {
            (Tenancy::Single { orga_id, .. }, _) => Some(orga_id.clone()),
            (Tenancy::Multi { .. }, Some(t)) => detail
                .gitlab_namespace
                .as_deref()
                .and_then(|n| t.cached_org_id(n)),
            (Tenancy::Multi { .. }, None) => None,
        }
    }

    /// The job's top-level group, as recorded in resources: `None` in
    /// single-organisation mode, else derived from its project by GitLab.
    pub(crate) async fn job_namespace(&self, job: &Job) -> Result<Option<String>, TenantError> {
        match &self.tenants {
            None => Ok(None),
            Some(t) => t.job_namespace(job.project_id).await.map(Some),
        }
    }

    /// The organisations to list, each with the group that last mapped to
    /// it (`None` in single-organisation mode), and the loaded resources'
    /// tenants whose organisation cannot be resolved now. Each of those is
    /// tried again here, at every pass: once it resolves, its organisation
    /// is listed and the tenant is no longer pending.
    pub(super) async fn listed_orgs(&self) -> ListedOrgs {
        let t = match (&self.settings.tenancy, &self.tenants) {
            (Tenancy::Single { orga_id, token }, _) => {
                let org = OrgAuth {
                    orga_id: orga_id.clone(),
                    token: token.clone(),
                };
                return ListedOrgs {
                    listed: vec![(None, org)],
                    unresolved: Vec::new(),
                };
            }
            (Tenancy::Multi { .. }, None) => return ListedOrgs::default(),
            (Tenancy::Multi { .. }, Some(t)) => t,
        };
        // An organisation dropped from the resolver's bounded cache may
        // hold tracked resources: resolved again like a loaded one.
        for (group, orga_id) in t.take_dropped() {
            self.unresolved.borrow_mut().insert((group, Some(orga_id)));
        }
        let pending: Vec<_> = self.unresolved.borrow().iter().cloned().collect();
        let mut unresolved = Vec::new();
        for (namespace, orga_id) in pending {
            // The organisation's token may be known through another group.
            let known = orga_id.as_deref().is_some_and(|o| t.org_by_id(o).is_some());
            let outcome = if known {
                Ok(())
            } else {
                t.confirm_recorded(&namespace, orga_id.as_deref()).await
            };
            match outcome {
                Ok(()) => {
                    self.unresolved.borrow_mut().remove(&(namespace, orga_id));
                }
                Err(error) => unresolved.push(Unresolved {
                    namespace,
                    orga_id,
                    error,
                }),
            }
        }
        let listed = t.known().into_iter().map(|(ns, o)| (Some(ns), o)).collect();
        ListedOrgs { listed, unresolved }
    }

    /// For `verify`, in multi-tenant mode: the organisation of top-level
    /// group `namespace`, read afresh from GitLab, and how many of its
    /// applications are this runner's (listing them proves the tenant's
    /// token). `recorded` is the organisation the state file records for
    /// the group's resources: when the group now maps to another one, that
    /// organisation's token is unknown, which is an error. Messages never
    /// hold a token.
    pub(crate) async fn check_tenant(
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
            .map_err(|e| unresolved_message(&e))?;
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
}
