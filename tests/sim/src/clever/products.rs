//! Product catalogue of the fake Clever Cloud: the flavor table (configurable, with per-flavor
//! `available` switches), the instance types listing, and the weight formula.
//!
//! The default `heptapod-runner` table holds XS … 3XL (2 to 32 GiB), plus one
//! unavailable flavor and one flavor outside the `heptapod-runner-` prefix, so that clients must
//! filter on both.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Variant UUID the Python reference sends by default (`cc_instance_variant_uuid`).
pub const HEPTAPOD_VARIANT_UUID: &str = "70d676a0-a775-4dc9-a43d-3121036e8515";
/// Variant UUID of the plain Docker instance type as listed by `/products/instances`.
pub const DOCKER_VARIANT_UUID: &str = "e5f3b6b0-8a1b-4d6f-9c2e-0d4c1f6a7b21";
/// Variant UUID of the (unused) Node instance type listed first, to catch "take the first".
pub const NODE_VARIANT_UUID: &str = "a9c8d7e6-1b2c-4d3e-8f90-123456789abc";
/// Default `instanceVersion` of the Docker instance type.
pub const DEFAULT_DOCKER_VERSION: &str = "20231106";
/// Default flavor context (`cc_flavor_context`).
pub const DEFAULT_FLAVOR_CONTEXT: &str = "heptapod-runner";

/// One row of a flavor table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorSpec {
    /// API name, e.g. `heptapod-runner-M`.
    pub name: String,
    /// Memory in MiB.
    pub mem: u64,
    /// Number of vCPUs.
    pub cpus: u32,
    /// Whether the flavor can be used right now.
    pub available: bool,
}

impl FlavorSpec {
    /// Convenience constructor.
    pub fn new(name: &str, mem: u64, cpus: u32, available: bool) -> Self {
        FlavorSpec {
            name: name.to_owned(),
            mem,
            cpus,
            available,
        }
    }

    /// Weight of an application of this flavor: `(mem / 1024) ^ 1.25` (mem in MiB).
    pub fn weight(&self) -> f64 {
        weight_of_mem_mib(self.mem)
    }

    /// The Flavor JSON object as the API returns it.
    pub fn to_json(&self) -> Value {
        let microservice = self.mem < 1024;
        json!({
            "name": self.name,
            "mem": self.mem,
            "cpus": self.cpus,
            "gpus": 0,
            "disk": 0,
            "price": (self.mem as f64) / 4096.0 * 1.2,
            "available": self.available,
            "microservice": microservice,
            "machine_learning": false,
            "nice": if microservice { 5 } else { 0 },
            "price_id": format!("apps.{}", self.name),
            "memory": {
                "unit": "B",
                "value": self.mem * 1024 * 1024,
                "formatted": format!("{} MiB", self.mem),
            },
        })
    }
}

/// Weight of an application whose max flavor has `mem_mib` MiB: `(mem / 1024) ^ 1.25`.
///
/// Reimplemented here on purpose: paas-sim must not depend on paas-actors.
pub fn weight_of_mem_mib(mem_mib: u64) -> f64 {
    (mem_mib as f64 / 1024.0).powf(1.25)
}

/// The default `heptapod-runner` context table: XS … 3XL, an unavailable 4XL and a
/// plain `M` outside the prefix.
pub fn default_heptapod_flavors() -> Vec<FlavorSpec> {
    vec![
        FlavorSpec::new("heptapod-runner-XS", 2048, 1, true),
        FlavorSpec::new("heptapod-runner-S", 4096, 2, true),
        FlavorSpec::new("heptapod-runner-M", 8192, 4, true),
        FlavorSpec::new("heptapod-runner-L", 12288, 6, true),
        FlavorSpec::new("heptapod-runner-XL", 16384, 8, true),
        FlavorSpec::new("heptapod-runner-2XL", 24576, 12, true),
        FlavorSpec::new("heptapod-runner-3XL", 32768, 16, true),
        FlavorSpec::new("heptapod-runner-4XL", 65536, 32, false),
        FlavorSpec::new("M", 4096, 4, true),
    ]
}

/// Standard Clever Cloud application flavors (served when no `context` is given).
pub fn standard_flavors() -> Vec<FlavorSpec> {
    vec![
        FlavorSpec::new("pico", 256, 1, true),
        FlavorSpec::new("nano", 512, 1, true),
        FlavorSpec::new("XS", 1024, 1, true),
        FlavorSpec::new("S", 2048, 2, true),
        FlavorSpec::new("M", 4096, 4, true),
        FlavorSpec::new("L", 8192, 6, true),
        FlavorSpec::new("XL", 16384, 8, true),
        FlavorSpec::new("2XL", 24576, 12, true),
        FlavorSpec::new("3XL", 32768, 16, true),
    ]
}

fn instance_type_json(
    type_: &str,
    name: &str,
    version: &str,
    variant: &str,
    flavors: &[FlavorSpec],
) -> Value {
    let flavor_json: Vec<Value> = flavors.iter().map(FlavorSpec::to_json).collect();
    let default = flavors
        .iter()
        .find(|f| f.name == "S")
        .or(flavors.first())
        .map(FlavorSpec::to_json)
        .unwrap_or(Value::Null);
    json!({
        "type": type_,
        "version": version,
        "name": name,
        "variant": {
            "id": variant,
            "slug": type_,
            "name": name,
            "deployType": type_,
            "logo": format!("https://assets.clever-cloud.com/logos/{type_}.svg"),
        },
        "description": format!("{name} applications"),
        "enabled": true,
        "comingSoon": false,
        "maxInstances": 40,
        "tags": [],
        "deployments": ["git"],
        "flavors": flavor_json,
        "defaultFlavor": default,
        "buildFlavor": default,
    })
}

/// The `/products/instances` listing: a Node type first (so that "take the first" is wrong),
/// then Docker with the given version.
pub fn instances_json(docker_version: &str) -> Value {
    let std = standard_flavors();
    Value::Array(vec![
        instance_type_json("node", "Node", "20240301", NODE_VARIANT_UUID, &std),
        instance_type_json(
            "docker",
            "Docker",
            docker_version,
            DOCKER_VARIANT_UUID,
            &std,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_formula() {
        assert!((weight_of_mem_mib(1024) - 1.0).abs() < 1e-9);
        assert!((weight_of_mem_mib(32768) - 76.109).abs() < 1e-3);
        assert!((weight_of_mem_mib(4096) - 5.657).abs() < 1e-3);
    }

    #[test]
    fn default_table_has_an_unavailable_and_an_unprefixed_flavor() {
        let t = default_heptapod_flavors();
        assert!(t.iter().any(|f| !f.available));
        assert!(t.iter().any(|f| !f.name.starts_with("heptapod-runner-")));
    }

    #[test]
    fn flavor_json_carries_mem_and_bytes() {
        let v = FlavorSpec::new("heptapod-runner-S", 4096, 2, true).to_json();
        assert_eq!(v["mem"], 4096);
        assert_eq!(v["memory"]["value"], 4096u64 * 1024 * 1024);
        assert_eq!(v["available"], true);
    }
}
