//! Configuration of the fake Clever Cloud: organisations and tokens, flavor table, Docker
//! version, Git auth user, expected inner and helper images and timing knobs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::products::{
    default_heptapod_flavors, FlavorSpec, DEFAULT_DOCKER_VERSION, DEFAULT_FLAVOR_CONTEXT,
    DOCKER_VARIANT_UUID, HEPTAPOD_VARIANT_UUID,
};

/// Main image the Python reference 0.6.3 puts in the Dockerfile's `FROM` by default.
pub const DEFAULT_MAIN_IMAGE: &str =
    "registry.heptapod.net:443/heptapod/heptapod-runner/runner:0.6.3";
/// Helper image heptapod-paas-runner 1.1.1 puts in a service application's Dockerfile by
/// default (`heptapod_paas_runner_helper_image`).
pub const DEFAULT_HELPER_IMAGE: &str =
    "registry.heptapod.net/heptapod/heptapod-paas-runner/helper:testing";
/// Default organisation seeded by [`CleverSimConfig::default`].
pub const DEFAULT_ORG: &str = "orga_00000000-0000-4000-8000-000000000001";
/// Default token (allowed on [`DEFAULT_ORG`]) seeded by [`CleverSimConfig::default`].
pub const DEFAULT_TOKEN: &str = "cc-sim-token-0001";

/// One organisation and the tokens allowed on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrgSeed {
    /// Organisation id, e.g. `orga_…`.
    pub id: String,
    /// Tokens accepted (API `Authorization: token …` and Git password) for this organisation.
    pub tokens: Vec<String>,
}

/// When a created application's Git repository becomes ready (`CREATING` → `CREATED`).
/// JSON: `{"after_ms": 3000}` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoDelay {
    /// After this delay (zero: already `CREATED` on the first GET).
    #[serde(rename = "after_ms", with = "millis")]
    After(Duration),
    /// Never: the repository stays `CREATING` forever.
    Never,
}

/// Timing knobs (all default to zero: the unit-test profile). JSON durations are in ms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Timing {
    /// Delay of the `CREATING` → `CREATED` transition.
    pub repo_create_delay: RepoDelay,
    /// Delay between a deployment and the inner runner's first trace write.
    #[serde(rename = "start_delay_ms", with = "millis")]
    pub start_delay: Duration,
    /// Added latency of every create call.
    #[serde(rename = "create_latency_ms", with = "millis")]
    pub create_latency: Duration,
    /// Added latency of every delete call.
    #[serde(rename = "delete_latency_ms", with = "millis")]
    pub delete_latency: Duration,
    /// Delay between the push of a helper Dockerfile and the helper answering `true` to
    /// `can-take-job` (image build and boot of a service application).
    #[serde(rename = "helper_boot_delay_ms", with = "millis")]
    pub helper_boot_delay: Duration,
    /// Delay between a helper's `201` to `launch-job` and the job's first trace line.
    #[serde(rename = "helper_start_delay_ms", with = "millis")]
    pub helper_start_delay: Duration,
}

/// Serde of a `Duration` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            repo_create_delay: RepoDelay::After(Duration::ZERO),
            start_delay: Duration::ZERO,
            create_latency: Duration::ZERO,
            delete_latency: Duration::ZERO,
            helper_boot_delay: Duration::ZERO,
            helper_start_delay: Duration::ZERO,
        }
    }
}

impl Timing {
    /// A realistic profile: repository ready after 3 s, inner runner starting after 5 s,
    /// creations taking 1 s, helpers booting in 5 s and starting a job in 1 s.
    pub fn realistic() -> Self {
        Timing {
            repo_create_delay: RepoDelay::After(Duration::from_secs(3)),
            start_delay: Duration::from_secs(5),
            create_latency: Duration::from_secs(1),
            delete_latency: Duration::from_millis(200),
            helper_boot_delay: Duration::from_secs(5),
            helper_start_delay: Duration::from_secs(1),
        }
    }
}

/// Everything needed to start a [`super::FakeClever`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CleverSimConfig {
    /// Organisations and their tokens.
    pub orgs: Vec<OrgSeed>,
    /// The flavor context whose table is `flavors` (`cc_flavor_context`).
    pub flavor_context: String,
    /// Flavor table served for `flavor_context`.
    pub flavors: Vec<FlavorSpec>,
    /// Current `version` of the Docker instance type (must be sent back as `instanceVersion`).
    pub docker_version: String,
    /// Variant UUIDs accepted as `instanceVariant`.
    pub known_variants: Vec<String>,
    /// Zones accepted on create.
    pub zones: Vec<String>,
    /// Git basic-auth user expected (`cc_auth_user`).
    pub git_auth_user: String,
    /// When true, a Git user other than `git_auth_user` is refused (401).
    pub git_strict_user: bool,
    /// Image the pushed Dockerfile must start `FROM`.
    pub expected_main_image: String,
    /// Image a service application's helper Dockerfile must start `FROM` (only then does
    /// its helper boot).
    pub expected_helper_image: String,
    /// Timing knobs.
    pub timing: Timing,
    /// Seed of the random generator used by error-rate faults and ids.
    pub seed: u64,
    /// Workers of the HTTP server.
    pub workers: usize,
}

impl Default for CleverSimConfig {
    fn default() -> Self {
        CleverSimConfig {
            orgs: vec![OrgSeed {
                id: DEFAULT_ORG.to_owned(),
                tokens: vec![DEFAULT_TOKEN.to_owned()],
            }],
            flavor_context: DEFAULT_FLAVOR_CONTEXT.to_owned(),
            flavors: default_heptapod_flavors(),
            docker_version: DEFAULT_DOCKER_VERSION.to_owned(),
            known_variants: vec![
                HEPTAPOD_VARIANT_UUID.to_owned(),
                DOCKER_VARIANT_UUID.to_owned(),
            ],
            zones: [
                "par", "parhds", "grahds", "rbx", "rbxhds", "scw", "ldn", "mtl", "sgp", "syd",
                "wsw",
            ]
            .iter()
            .map(|z| (*z).to_owned())
            .collect(),
            git_auth_user: "Jenkins".to_owned(),
            git_strict_user: false,
            expected_main_image: DEFAULT_MAIN_IMAGE.to_owned(),
            expected_helper_image: DEFAULT_HELPER_IMAGE.to_owned(),
            timing: Timing::default(),
            seed: 0x5eed,
            workers: 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_json_is_in_milliseconds() {
        let t = Timing {
            repo_create_delay: RepoDelay::After(Duration::from_millis(1500)),
            start_delay: Duration::from_secs(5),
            ..Timing::default()
        };
        let v = serde_json::to_value(&t).ok();
        assert_eq!(
            v,
            Some(
                serde_json::json!({"repo_create_delay": {"after_ms": 1500}, "start_delay_ms": 5000,
                                    "create_latency_ms": 0, "delete_latency_ms": 0,
                                    "helper_boot_delay_ms": 0, "helper_start_delay_ms": 0})
            )
        );
        let never: Result<Timing, _> = serde_json::from_value(serde_json::json!({
            "repo_create_delay": "never", "start_delay_ms": 1, "create_latency_ms": 2,
            "delete_latency_ms": 3}));
        assert_eq!(
            never.map(|t| t.repo_create_delay).ok(),
            Some(RepoDelay::Never)
        );
    }

    #[test]
    fn a_partial_config_takes_defaults() {
        let c: Result<CleverSimConfig, _> =
            serde_json::from_value(serde_json::json!({"docker_version": "1"}));
        let c = c.ok();
        assert_eq!(c.as_ref().map(|c| c.docker_version.as_str()), Some("1"));
        assert_eq!(c.map(|c| c.git_auth_user), Some("Jenkins".to_owned()));
    }
}
