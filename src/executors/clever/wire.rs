//! Wire types of the Clever Cloud API v2: only what the runner reads
//! (unknown fields are ignored) and the create call's body.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// An entry of `GET /products/instances`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct InstanceType {
    /// `docker`, `node`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Display name, e.g. `Docker`.
    #[serde(default)]
    pub name: String,
    /// Build id to send back as `instanceVersion`.
    #[serde(default)]
    pub version: String,
    /// Whether the type may be used; absent counts as enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A flavor as the API gives it (listing, or inside an application).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct WireFlavor {
    /// API name, e.g. `heptapod-runner-M`.
    pub name: String,
    /// RAM in MiB (the only size field the reference reads).
    #[serde(default)]
    pub mem: Option<serde_json::Number>,
    /// vCPUs, for logs.
    #[serde(default)]
    pub cpus: Option<serde_json::Number>,
    /// Whether the flavor may be used now.
    #[serde(default)]
    pub available: Option<bool>,
    /// `{unit: "B", value: <bytes as number or string>}`: fallback size.
    #[serde(default)]
    pub memory: Option<serde_json::Value>,
}

impl WireFlavor {
    /// RAM in MiB, from `mem`, else from `memory` when it is in bytes.
    pub fn mem_mib(&self) -> Option<u64> {
        if let Some(mem) = &self.mem {
            return mem
                .as_u64()
                .or_else(|| mem.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64));
        }
        let memory = self.memory.as_ref()?;
        if memory.get("unit").and_then(|u| u.as_str()) != Some("B") {
            return None;
        }
        let value = memory.get("value")?;
        let bytes = value
            .as_u64()
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))?;
        Some(bytes / (1024 * 1024))
    }
}

/// `deployment` of an application.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Deployment {
    /// `CREATING`, `CREATED`, `NOT_NEEDED`, `DELETED`.
    #[serde(rename = "repoState", default)]
    pub repo_state: Option<String>,
    /// Git smart-HTTP URL to push to.
    #[serde(rename = "httpUrl", default)]
    pub http_url: Option<String>,
}

/// `instance` of an application.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct AppInstance {
    /// The flavor the app runs with (min = max for runner apps).
    #[serde(rename = "maxFlavor", default)]
    pub max_flavor: Option<WireFlavor>,
}

/// An application (create answer, GET, listing).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Application {
    /// `app_<uuid>`.
    pub id: String,
    /// Name given at creation.
    #[serde(default)]
    pub name: String,
    /// Deployment details.
    #[serde(default)]
    pub deployment: Option<Deployment>,
    /// Instance details.
    #[serde(default)]
    pub instance: Option<AppInstance>,
    /// Commit deployed last, if any.
    #[serde(rename = "commitId", default)]
    pub commit_id: Option<String>,
    /// Creation time in ms.
    #[serde(rename = "creationDate", default)]
    pub creation_date: Option<i64>,
    /// The application's domain names (`[{"fqdn": "app-<uuid>.cleverapps.io"}]`):
    /// where a service application's helper is reached.
    #[serde(default)]
    pub vhosts: Option<Vec<Vhost>>,
}

/// An entry of an application's `vhosts`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Vhost {
    /// The domain name, as the API gives it (hostile input: parsed strictly
    /// before use, see `executors/clever/service/address.rs`).
    #[serde(default)]
    pub fqdn: Option<String>,
}

impl Application {
    /// `deployment.httpUrl`, if present.
    pub fn http_url(&self) -> Option<&str> {
        self.deployment.as_ref()?.http_url.as_deref()
    }

    /// `deployment.repoState`, if present.
    pub fn repo_state(&self) -> Option<&str> {
        self.deployment.as_ref()?.repo_state.as_deref()
    }

    /// RAM in MiB of `instance.maxFlavor`, if present.
    pub fn max_flavor_mem_mib(&self) -> Option<u64> {
        self.instance.as_ref()?.max_flavor.as_ref()?.mem_mib()
    }

    /// `vhosts[0].fqdn`, as given, if present.
    pub fn first_fqdn(&self) -> Option<&str> {
        self.vhosts.as_ref()?.first()?.fqdn.as_deref()
    }
}

/// Body of the create call: exactly the keys the Python reference sends.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CreateApp {
    /// `hpd-job-<unique name>-<job id>`.
    pub name: String,
    /// `cc_zone`.
    pub zone: String,
    /// Always `git`.
    pub deploy: &'static str,
    /// Always `docker`.
    #[serde(rename = "instanceType")]
    pub instance_type: &'static str,
    /// Current Docker instance version.
    #[serde(rename = "instanceVersion")]
    pub instance_version: String,
    /// `cc_instance_variant_uuid`.
    #[serde(rename = "instanceVariant")]
    pub instance_variant: String,
    /// `TASK` for an application per job (clever-docker); not sent for a
    /// service application (clever-service-docker), which Clever Cloud
    /// then keeps as a regular one, up after its job.
    #[serde(rename = "instanceLifetime", skip_serializing_if = "Option::is_none")]
    pub instance_lifetime: Option<&'static str>,
    /// Always 1.
    #[serde(rename = "minInstances")]
    pub min_instances: u32,
    /// Always 1.
    #[serde(rename = "maxInstances")]
    pub max_instances: u32,
    /// API flavor name.
    #[serde(rename = "minFlavor")]
    pub min_flavor: String,
    /// API flavor name (same as `min_flavor`).
    #[serde(rename = "maxFlavor")]
    pub max_flavor: String,
}

/// Outcome of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// The application existed and is now deleted.
    Now,
    /// The application was already gone (404 / 4004).
    AlreadyGone,
}

/// Credentials of one organisation.
#[derive(Clone, Debug, PartialEq)]
pub struct OrgAuth {
    /// Organisation id (`orga_…`).
    pub orga_id: String,
    /// API token (also the Git password).
    pub token: Secret,
}
