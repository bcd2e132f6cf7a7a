//! Deleting an application. Sent once: the decommissioner retries the
//! delete; an application already gone is deleted.

use super::api::{Deleted, Retries};
use super::apps::CleverApps;
use super::orgs::kept_for_later;
use super::records::AppDetail;
use paas_actors::ports::{PaasError, Resource};
use slog::{debug, warn};

impl CleverApps {
    /// Deletes `resource`'s application, in the organisation it was
    /// created in (unknown now: a transient error, see `orgs.rs`).
    pub(crate) async fn decommission(&self, resource: &Resource) -> Result<(), PaasError> {
        let detail = AppDetail::of(resource);
        let org = self
            .resource_org(&detail)
            .await
            .map_err(|e| kept_for_later("delete", resource, e))?;
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
}
