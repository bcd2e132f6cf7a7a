//! A Clever Cloud application as a [`Resource`]: its detail ([`AppDetail`],
//! no secret) and its record in the state file (`dump` / `load`). A
//! service application's record also holds its helper's address
//! (`netloc`) and bearer token (`paas_token`, the resource's credential),
//! under the keys the Python runner 1.1 writes.

use super::api::Application;
use super::apps::CleverApps;
use super::service::address::helper_netloc;
use super::settings::Tenancy;
use crate::secret::Secret;
use paas_actors::ports::{PaasError, Resource, TwoDecimals, Weight};
use paas_actors::untrusted::untrusted;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use slog::warn;

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
    /// Where a service application's helper is reached (`host[:port]`, as
    /// checked when it was recorded; checked again at each use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netloc: Option<String>,
}

impl AppDetail {
    pub(crate) fn of(resource: &Resource) -> AppDetail {
        serde_json::from_value(resource.detail.clone()).unwrap_or_default()
    }

    pub(crate) fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The state-file record of `resource` (the Python runner's fields).
pub(crate) fn dump(resource: &Resource) -> Value {
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

/// The state-file record of a service application: [`dump`]'s, plus its
/// helper's `netloc` and bearer token `paas_token` (the Python runner 1.1's
/// keys). The state file is written with mode 0600.
pub(crate) fn dump_service(resource: &Resource) -> Value {
    let mut saved = dump(resource);
    if let Some(obj) = saved.as_object_mut() {
        obj.insert("netloc".into(), json!(AppDetail::of(resource).netloc));
        obj.insert(
            "paas_token".into(),
            json!(resource.credential.as_ref().map(Secret::expose)),
        );
    }
    saved
}

impl CleverApps {
    /// The resource of `app`, created for a job of group `namespace` in
    /// organisation `orga_id`; not launched.
    pub(crate) fn resource_of(
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
            netloc: self
                .settings
                .service
                .is_some()
                .then(|| self.netloc_of(app))
                .flatten(),
        };
        Resource {
            id: app.id.clone(),
            name: app.name.clone(),
            weight,
            launched: false,
            detail: detail.to_value(),
            credential: None,
        }
    }

    /// The resource of a state-file record. A record without weight weighs
    /// the largest flavor; one whose organisation cannot be resolved now is
    /// kept (the listing then fails until it is, see `orgs.rs`).
    pub(crate) async fn load(&self, saved: &Value) -> Result<Resource, PaasError> {
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
                      "app" => id, "weight" => TwoDecimals(w));
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
            if let Err(e) = t.confirm_recorded(ns, orga_id.as_deref()).await {
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
            netloc: text("netloc"),
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
            credential: text("paas_token")
                .filter(|t| !t.is_empty())
                .map(Secret::new),
        })
    }

    /// Where the helper of service application `app` is (see
    /// `service/address.rs`); a first vhost that is not a usable address
    /// is logged and passed over.
    fn netloc_of(&self, app: &Application) -> Option<String> {
        match helper_netloc(app.first_fqdn(), &app.id, self.loopback_api) {
            Ok((netloc, refused)) => {
                if let Some(e) = refused {
                    warn!(self.logger, "the application's first vhost is not a usable helper \
                                        address: using the cleverapps.io rule";
                          "app" => &app.id, "error" => %untrusted(&e));
                }
                Some(netloc.to_string())
            }
            Err(e) => {
                warn!(self.logger, "no helper address for the application";
                      "app" => %untrusted(&app.id), "error" => %untrusted(&e));
                None
            }
        }
    }
}
