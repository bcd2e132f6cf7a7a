//! Flavors and the Docker instance version: selection, weights, cache.
//!
//! The pure part ([`FlavorCatalog`], [`select_flavor`],
//! [`max_job_weight`], [`pick_docker_version`]) is plain functions
//! tested without I/O. [`ProductCache`] keeps the catalog and the Docker
//! version for a TTL (one hour, like the reference) and is invalidated by
//! the executor when a create fails in a way that suggests they changed.

use super::api::{CleverApi, CleverError, InstanceType, Retries, WireFlavor};
use actix_rt::time::Instant;
use paas_actors::ports::{weight_of_mem_mib, Weight};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The job variable choosing the flavor.
pub const FLAVOR_VARIABLE: &str = "CI_CLEVER_CLOUD_FLAVOR";

/// A flavor usable by jobs.
#[derive(Clone, Debug, PartialEq)]
pub struct Flavor {
    /// User name (API name without the prefix), e.g. `M`.
    pub user_name: String,
    /// API name, e.g. `heptapod-runner-M`.
    pub api_name: String,
    /// RAM in MiB.
    pub mem_mib: u64,
}

impl Flavor {
    /// The flavor's weight: `(mem GiB) ^ 1.25`.
    pub fn weight(&self) -> Weight {
        weight_of_mem_mib(self.mem_mib)
    }
}

/// The available flavors of the runner's context, smallest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlavorCatalog {
    flavors: Vec<Flavor>,
}

impl FlavorCatalog {
    /// Keeps the flavors whose API name starts with `prefix` (and is longer),
    /// that are `available` and have a known size; sorted by size, then name.
    pub fn from_wire(list: &[WireFlavor], prefix: &str) -> Self {
        let mut flavors: Vec<Flavor> = list
            .iter()
            .filter(|f| f.available == Some(true))
            .filter_map(|f| {
                let user = f.name.strip_prefix(prefix).filter(|u| !u.is_empty())?;
                Some(Flavor {
                    user_name: user.to_string(),
                    api_name: f.name.clone(),
                    mem_mib: f.mem_mib()?,
                })
            })
            .collect();
        flavors.sort_by(|a, b| {
            a.mem_mib
                .cmp(&b.mem_mib)
                .then_with(|| a.user_name.cmp(&b.user_name))
        });
        flavors.dedup_by(|a, b| a.user_name == b.user_name);
        FlavorCatalog { flavors }
    }

    /// The flavor of that user name: exact match, else the only
    /// case-insensitive match.
    pub fn get(&self, user_name: &str) -> Option<&Flavor> {
        if let Some(f) = self.flavors.iter().find(|f| f.user_name == user_name) {
            return Some(f);
        }
        let mut matches = self
            .flavors
            .iter()
            .filter(|f| f.user_name.eq_ignore_ascii_case(user_name));
        match (matches.next(), matches.next()) {
            (Some(f), None) => Some(f),
            _ => None,
        }
    }

    /// All flavors, smallest first.
    pub fn flavors(&self) -> &[Flavor] {
        &self.flavors
    }

    /// The flavor whose weight is `weight` (a resource's), if one is.
    pub fn by_weight(&self, weight: Weight) -> Option<&Flavor> {
        self.flavors
            .iter()
            .find(|f| (f.weight() - weight).abs() < 1e-9)
    }

    /// The heaviest flavor.
    pub fn largest(&self) -> Option<&Flavor> {
        self.flavors.last()
    }

    /// User names of the flavors no heavier than `max_weight`, for messages.
    fn names_up_to(&self, max_weight: Weight) -> String {
        let names: Vec<&str> = self
            .flavors
            .iter()
            .filter(|f| f.weight() <= max_weight)
            .map(|f| f.user_name.as_str())
            .collect();
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    }

    fn all_names(&self) -> String {
        self.names_up_to(f64::INFINITY)
    }
}

/// Why no flavor could be chosen. The messages go to the job trace.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlavorError {
    /// The requested flavor is not offered (reference code 1).
    #[error("the Clever Cloud flavor {requested:?} ({source_name}) is not available; allowed flavors: {allowed}")]
    Unknown {
        /// What was asked for.
        requested: String,
        /// Where it came from (`CI_CLEVER_CLOUD_FLAVOR` or `cc_default_flavor`).
        source_name: &'static str,
        /// The allowed user flavor names, comma-separated.
        allowed: String,
    },
    /// The requested flavor is heavier than `cc_max_flavor` (reference code 2).
    #[error("the Clever Cloud flavor {requested:?} ({source_name}) is bigger than this runner's maximum {max:?}; allowed flavors: {allowed}. Change {FLAVOR_VARIABLE} or use another runner")]
    AboveMax {
        /// What was asked for.
        requested: String,
        /// Where it came from.
        source_name: &'static str,
        /// `cc_max_flavor`.
        max: String,
        /// The allowed user flavor names, comma-separated.
        allowed: String,
    },
    /// `cc_max_flavor` names no available flavor (configuration error).
    #[error("cc_max_flavor {max:?} is not an available Clever Cloud flavor; available flavors: {available}")]
    MaxUnknown {
        /// `cc_max_flavor`.
        max: String,
        /// The available user flavor names.
        available: String,
    },
    /// No flavor at all is available with the configured prefix.
    #[error("no Clever Cloud flavor is available with the name prefix {prefix:?}")]
    NoFlavor {
        /// `cc_flavor_name_prefix`.
        prefix: String,
    },
}

/// The flavor of a job: `requested` (the job's `CI_CLEVER_CLOUD_FLAVOR`),
/// else `default`; checked against `max` when given.
pub fn select_flavor<'c>(
    catalog: &'c FlavorCatalog,
    requested: Option<&str>,
    default: &str,
    max: Option<&str>,
) -> Result<&'c Flavor, FlavorError> {
    let (name, source_name) = match requested {
        Some(r) => (r, FLAVOR_VARIABLE),
        None => (default, "cc_default_flavor"),
    };
    let max_flavor = match max {
        Some(m) => Some(catalog.get(m).ok_or_else(|| FlavorError::MaxUnknown {
            max: m.to_string(),
            available: catalog.all_names(),
        })?),
        None => None,
    };
    let max_weight = max_flavor.map_or(f64::INFINITY, |m| m.weight());
    let flavor = catalog.get(name).ok_or_else(|| FlavorError::Unknown {
        requested: name.to_string(),
        source_name,
        allowed: catalog.names_up_to(max_weight),
    })?;
    if let Some(m) = max_flavor {
        if flavor.weight() > m.weight() {
            return Err(FlavorError::AboveMax {
                requested: name.to_string(),
                source_name,
                max: m.user_name.clone(),
                allowed: catalog.names_up_to(max_weight),
            });
        }
    }
    Ok(flavor)
}

/// Weight of the largest job the runner may take: the weight of `max`
/// when set, else of the largest available flavor.
pub fn max_job_weight(
    catalog: &FlavorCatalog,
    max: Option<&str>,
    prefix: &str,
) -> Result<Weight, FlavorError> {
    match max {
        Some(m) => catalog
            .get(m)
            .map(Flavor::weight)
            .ok_or_else(|| FlavorError::MaxUnknown {
                max: m.to_string(),
                available: catalog.all_names(),
            }),
        None => catalog
            .largest()
            .map(Flavor::weight)
            .ok_or_else(|| FlavorError::NoFlavor {
                prefix: prefix.to_string(),
            }),
    }
}

/// Compares two instance versions: numerically when both are integers
/// (date-like build ids), else as strings.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// The version to send as `instanceVersion`: the highest one among enabled
/// Docker instance types (`type == "docker"` or `name == "Docker"`).
pub fn pick_docker_version(types: &[InstanceType]) -> Option<String> {
    types
        .iter()
        .filter(|t| t.kind == "docker" || t.name == "Docker")
        .filter(|t| t.enabled != Some(false) && !t.version.is_empty())
        .map(|t| t.version.as_str())
        .max_by(|a, b| version_cmp(a, b))
        .map(str::to_string)
}

/// Failure to obtain the products.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProductError {
    /// The API call failed.
    #[error(transparent)]
    Api(#[from] CleverError),
    /// The instance listing has no enabled Docker type.
    #[error(
        "get-instance-type: the Clever Cloud instance listing has no enabled Docker instance type"
    )]
    NoDocker,
}

/// TTL cache of the flavor catalog and the Docker instance version.
pub struct ProductCache {
    ttl: Duration,
    context: String,
    prefix: String,
    catalog: RefCell<Option<(Instant, Rc<FlavorCatalog>)>>,
    docker_version: RefCell<Option<(Instant, String)>>,
}

impl ProductCache {
    /// An empty cache for flavors of `context` named with `prefix`.
    pub fn new(ttl: Duration, context: &str, prefix: &str) -> Self {
        ProductCache {
            ttl,
            context: context.to_string(),
            prefix: prefix.to_string(),
            catalog: RefCell::new(None),
            docker_version: RefCell::new(None),
        }
    }

    fn fresh<T: Clone>(&self, slot: &RefCell<Option<(Instant, T)>>) -> Option<T> {
        let guard = slot.borrow();
        let (at, value) = guard.as_ref()?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// The catalog, fetched when absent or older than the TTL (the fetch
    /// retried per `retries`).
    pub async fn catalog(
        &self,
        api: &CleverApi,
        retries: Retries,
    ) -> Result<Rc<FlavorCatalog>, ProductError> {
        if let Some(c) = self.fresh(&self.catalog) {
            return Ok(c);
        }
        let list = api.flavors(&self.context, retries).await?;
        let catalog = Rc::new(FlavorCatalog::from_wire(&list, &self.prefix));
        // An empty catalog is an anomaly worth asking again about soon.
        if !catalog.flavors().is_empty() {
            *self.catalog.borrow_mut() = Some((Instant::now(), catalog.clone()));
        }
        Ok(catalog)
    }

    /// The Docker instance version, fetched when absent or stale (the
    /// fetch retried per `retries`).
    pub async fn docker_version(
        &self,
        api: &CleverApi,
        retries: Retries,
    ) -> Result<String, ProductError> {
        if let Some(v) = self.fresh(&self.docker_version) {
            return Ok(v);
        }
        let types = api.instance_types(retries).await?;
        let version = pick_docker_version(&types).ok_or(ProductError::NoDocker)?;
        *self.docker_version.borrow_mut() = Some((Instant::now(), version.clone()));
        Ok(version)
    }

    /// The catalog last fetched, whatever its age (no fetch).
    pub fn last_catalog(&self) -> Option<Rc<FlavorCatalog>> {
        self.catalog.borrow().as_ref().map(|(_, c)| c.clone())
    }

    /// The flavor prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Forgets everything: the next call fetches again.
    pub fn invalidate(&self) {
        *self.catalog.borrow_mut() = None;
        *self.docker_version.borrow_mut() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The flavor table of paas-sim's Clever fake, plus noise the catalog
    /// must drop.
    fn wire() -> Vec<WireFlavor> {
        let rows = [
            ("heptapod-runner-3XL", 32768, true),
            ("heptapod-runner-XS", 2048, true),
            ("heptapod-runner-S", 4096, true),
            ("heptapod-runner-M", 8192, true),
            ("heptapod-runner-L", 12288, true),
            ("heptapod-runner-XL", 16384, true),
            ("heptapod-runner-2XL", 24576, false),
            ("M", 4096, true),
            ("heptapod-runner-", 1024, true),
        ];
        rows.iter()
            .map(|(n, m, a)| {
                serde_json::from_value(json!({"name": n, "mem": m, "cpus": 2, "available": a}))
                    .expect("flavor json")
            })
            .collect()
    }

    fn catalog() -> FlavorCatalog {
        FlavorCatalog::from_wire(&wire(), "heptapod-runner-")
    }

    #[test]
    fn catalog_keeps_available_prefixed_flavors_smallest_first() {
        let c = catalog();
        let names: Vec<&str> = c.flavors().iter().map(|f| f.user_name.as_str()).collect();
        assert_eq!(names, ["XS", "S", "M", "L", "XL", "3XL"]);
        let m = c.get("M").expect("M");
        assert_eq!(m.api_name, "heptapod-runner-M");
        assert_eq!(m.weight(), weight_of_mem_mib(8192));
    }

    #[test]
    fn lookup_is_exact_then_unique_case_insensitive() {
        let c = catalog();
        assert_eq!(c.get("xl").map(|f| f.user_name.as_str()), Some("XL"));
        assert_eq!(c.get("3xl").map(|f| f.user_name.as_str()), Some("3XL"));
        assert!(c.get("XXL").is_none());
    }

    #[test]
    fn a_resource_weight_names_its_flavor() {
        let c = catalog();
        let by = |mib| {
            c.by_weight(weight_of_mem_mib(mib))
                .map(|f| f.user_name.as_str())
        };
        assert_eq!(by(8192), Some("M"));
        assert_eq!(by(32768), Some("3XL"));
        // 2XL is not available: no flavor of the catalog has its weight.
        assert_eq!(by(24576), None);
    }

    #[test]
    fn selection_table() {
        let c = catalog();
        // (requested, default, max) -> Ok(user name) | Err(substring of the message)
        type Case<'s> = (
            Option<&'s str>,
            &'s str,
            Option<&'s str>,
            Result<&'s str, &'s str>,
        );
        let cases: [Case; 8] = [
            (None, "M", None, Ok("M")),
            (Some("XL"), "M", None, Ok("XL")),
            (Some("L"), "M", Some("L"), Ok("L")),
            (Some("s"), "M", Some("L"), Ok("S")),
            (
                Some("XXL"),
                "M",
                None,
                Err("\"XXL\" (CI_CLEVER_CLOUD_FLAVOR) is not available; allowed flavors: XS, S, M, L, XL, 3XL"),
            ),
            (
                Some("3XL"),
                "M",
                Some("L"),
                Err("\"3XL\" (CI_CLEVER_CLOUD_FLAVOR) is bigger than this runner's maximum \"L\"; allowed flavors: XS, S, M, L."),
            ),
            (
                None,
                "2XL",
                Some("L"),
                Err("\"2XL\" (cc_default_flavor) is not available; allowed flavors: XS, S, M, L"),
            ),
            (
                Some("S"),
                "M",
                Some("HUGE"),
                Err("cc_max_flavor \"HUGE\" is not an available"),
            ),
        ];
        for (requested, default, max, expected) in cases {
            let got = select_flavor(&c, requested, default, max);
            match (got, expected) {
                (Ok(f), Ok(name)) => assert_eq!(f.user_name, name),
                (Err(e), Err(part)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(part), "{msg:?} lacks {part:?}");
                }
                (got, expected) => panic!("{requested:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn max_job_weight_is_max_flavor_else_largest() {
        let c = catalog();
        let p = "heptapod-runner-";
        assert_eq!(
            max_job_weight(&c, Some("L"), p),
            Ok(weight_of_mem_mib(12288))
        );
        assert_eq!(max_job_weight(&c, None, p), Ok(weight_of_mem_mib(32768)));
        assert!(matches!(
            max_job_weight(&c, Some("nope"), p),
            Err(FlavorError::MaxUnknown { .. })
        ));
        assert!(matches!(
            max_job_weight(&FlavorCatalog::default(), None, p),
            Err(FlavorError::NoFlavor { .. })
        ));
    }

    #[test]
    fn docker_version_is_the_highest_enabled_docker_one() {
        let types: Vec<InstanceType> = serde_json::from_value(json!([
            {"type": "node", "name": "Node", "version": "20990101", "enabled": true},
            {"type": "docker", "name": "Docker", "version": "20231106", "enabled": true},
            {"type": "docker", "name": "Docker", "version": "20240101", "enabled": false},
            {"type": "docker", "name": "Docker", "version": "20231201"},
            {"type": "docker", "name": "Docker", "version": "", "enabled": true},
        ]))
        .expect("json");
        assert_eq!(pick_docker_version(&types).as_deref(), Some("20231201"));
        let none: Vec<InstanceType> =
            serde_json::from_value(json!([{"type": "node", "name": "Node", "version": "1"}]))
                .expect("json");
        assert_eq!(pick_docker_version(&none), None);
    }

    #[test]
    fn version_comparison_is_numeric_for_numbers() {
        assert_eq!(version_cmp("9", "10"), std::cmp::Ordering::Less);
        assert_eq!(version_cmp("b", "a"), std::cmp::Ordering::Greater);
    }
}
