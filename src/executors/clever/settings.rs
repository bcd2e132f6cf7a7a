//! Settings of one clever-docker or clever-service-docker `[[runners]]`
//! section: the one typed model of the `cc_*` keys (and, for a service
//! section, of its own keys: [`ServiceSettings`]).
//!
//! Configuration validation (`src/config/validate/clever.rs`) builds this
//! value directly from the file; the executor only reads it. Every default
//! is written here once: the `DEFAULT_*` constants (the defaults of the
//! `cc_*` keys' declarations, `src/config/keys_executors.rs`) and
//! [`CleverSettings::new`] (which also holds the defaults of what the file
//! cannot set: HTTP, push and caches).

pub use super::service::settings::ServiceSettings;
use crate::git::RemoteSchemes;
use crate::secret::Secret;
use paas_actors::backoff::{BackoffPolicy, Jitter};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default `cc_api_url`.
pub const DEFAULT_API_URL: &str = "https://api.clever-cloud.com/v2";
/// Default `cc_zone`.
pub const DEFAULT_ZONE: &str = "par";
/// Default `cc_default_flavor` (the reference's ultimate default).
pub const DEFAULT_FLAVOR: &str = "M";
/// Default `cc_flavor_context`.
pub const DEFAULT_FLAVOR_CONTEXT: &str = "heptapod-runner";
/// Default `cc_instance_variant_uuid`: the Heptapod Runner variant.
pub const DEFAULT_INSTANCE_VARIANT_UUID: &str = "70d676a0-a775-4dc9-a43d-3121036e8515";
/// Default `cc_auth_user`: the Git basic-auth user name.
pub const DEFAULT_AUTH_USER: &str = "Jenkins";
/// Default `cc_orga_id_attribute`.
pub const DEFAULT_ORGA_ID_ATTRIBUTE: &str = "cc_orga_id";
/// Default `cc_orga_token_attribute`.
pub const DEFAULT_ORGA_TOKEN_ATTRIBUTE: &str = "cc_orga_token";
/// Default `cc_deployment_repo_timeout`.
pub const DEFAULT_DEPLOYMENT_REPO_TIMEOUT: Duration = Duration::from_secs(20);
/// Default `cc_deployment_repo_wait_step`.
pub const DEFAULT_DEPLOYMENT_REPO_WAIT_STEP: Duration = Duration::from_secs(2);

/// The default `cc_flavor_name_prefix` of a flavor context: `<context>-`.
pub fn default_flavor_name_prefix(context: &str) -> String {
    format!("{context}-")
}

/// What [`CleverSettings::no_job_grace`] adds to the longest provisioning.
pub const NO_JOB_MARGIN: Duration = Duration::from_secs(120);

/// How the Clever Cloud organisation of a job is found.
#[derive(Clone, Debug, PartialEq)]
pub enum Tenancy {
    /// One organisation for every job (`cc_orga_id` + `cc_token`).
    Single {
        /// The organisation id (`orga_…`).
        orga_id: String,
        /// The organisation's API token, also the Git push password.
        token: Secret,
    },
    /// The organisation and its token are custom attributes of the job's
    /// top-level GitLab group (`cc_multi_tenant = true`).
    Multi {
        /// GitLab token able to read those attributes
        /// (`cc_gitlab_namespace_attributes_token`); it configures the
        /// GitLab client that implements `GroupAttributes`.
        attributes_token: Secret,
        /// Attribute holding the organisation id (`cc_orga_id_attribute`).
        orga_id_attribute: String,
        /// Attribute holding the token (`cc_orga_token_attribute`).
        orga_token_attribute: String,
    },
}

/// Retry policy of the idempotent Clever API calls the client retries
/// itself (those made with `Retries::Policy`).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (at least 1).
    pub max_attempts: u32,
    /// Ceiling of the first delay; doubled at each further retry.
    pub initial_backoff: Duration,
    /// Upper bound of any delay between attempts, `Retry-After` included.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The back-off of the delays between attempts: equal jitter, so that
    /// runners do not retry in lock-step yet each wait lasts at least half
    /// its nominal delay (the API gets time to recover).
    pub fn backoff(&self) -> BackoffPolicy {
        BackoffPolicy::new(self.initial_backoff, self.max_backoff).with_jitter(Jitter::Equal)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// HTTP client settings of the Clever API client.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    /// TCP (+TLS) connection establishment timeout.
    pub connect_timeout: Duration,
    /// Whole-call timeout: sending, waiting and reading the body.
    pub request_timeout: Duration,
    /// Retries of idempotent calls.
    pub retry: RetryPolicy,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

/// Everything the clever-docker executor of one runner needs.
#[derive(Clone, PartialEq)]
pub struct CleverSettings {
    /// Base URL of the API v2 (`cc_api_url`); trailing slashes are ignored.
    pub api_url: String,
    /// Deployment zone (`cc_zone`).
    pub zone: String,
    /// Flavor of jobs that do not set `CI_CLEVER_CLOUD_FLAVOR`
    /// (`cc_default_flavor`), a user flavor name such as `M`.
    pub default_flavor: String,
    /// Largest flavor a job may ask for (`cc_max_flavor`).
    pub max_flavor: Option<String>,
    /// Single organisation or multi-tenant.
    pub tenancy: Tenancy,
    /// `cc_extra_env`, by name; added to `CC_MOUNT_DOCKER_SOCKET`. The
    /// values may hold credentials: `Debug` shows the names only.
    pub extra_env: BTreeMap<String, String>,
    /// How long to wait for the deployment repository
    /// (`cc_deployment_repo_timeout`).
    pub deployment_repo_timeout: Duration,
    /// Longest delay between two deployment repository polls
    /// (`cc_deployment_repo_wait_step`); the first is 0.1 s, doubling.
    pub deployment_repo_wait_step: Duration,
    /// Git basic-auth user name (`cc_auth_user`).
    pub auth_user: String,
    /// `context` query of the flavor listing (`cc_flavor_context`).
    pub flavor_context: String,
    /// Prefix of the flavors meant for runners (`cc_flavor_name_prefix`,
    /// default `<context>-`); user flavor names are API names without it.
    pub flavor_name_prefix: String,
    /// `instanceVariant` of created applications
    /// (`cc_instance_variant_uuid`).
    pub instance_variant_uuid: String,
    /// The runner's unique name (`config::identity`).
    pub unique_name: String,
    /// The runner's identity before the `glrt-` rule, if different:
    /// applications named with it are still listed as this runner's.
    pub legacy_unique_name: Option<String>,
    /// `heptapod_runner_main_image`, the base image of the Dockerfile.
    pub main_image: Option<String>,
    /// The inner `runner.toml` pushed with each job (no `cc_*` key in it).
    pub inner_runner_toml: String,
    /// HTTP timeouts and retries of the API client.
    pub http: HttpSettings,
    /// Timeout of one Git push.
    pub push_timeout: Duration,
    /// How long the flavor list and the Docker instance version are kept.
    pub flavor_cache_ttl: Duration,
    /// How long a tenant's organisation and token are kept.
    pub tenant_cache_ttl: Duration,
    /// `Some` for a clever-service-docker section: its applications run
    /// the helper service and take one job after another.
    pub service: Option<ServiceSettings>,
    /// Deployment URLs the executor pushes to and fetches from: network
    /// URLs only, unless a test sets local paths (no configuration key).
    pub deployment_url_schemes: RemoteSchemes,
}

/// Leaves out the inner `runner.toml` (it holds the runner token) and the
/// values of `cc_extra_env` (they may hold credentials); the tokens of
/// [`Tenancy`] are [`Secret`]s, which print masked.
impl std::fmt::Debug for CleverSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env_names: Vec<&str> = self.extra_env.keys().map(String::as_str).collect();
        f.debug_struct("CleverSettings")
            .field("api_url", &self.api_url)
            .field("zone", &self.zone)
            .field("default_flavor", &self.default_flavor)
            .field("max_flavor", &self.max_flavor)
            .field("tenancy", &self.tenancy)
            .field("extra_env (names)", &env_names)
            .field("deployment_repo_timeout", &self.deployment_repo_timeout)
            .field("deployment_repo_wait_step", &self.deployment_repo_wait_step)
            .field("auth_user", &self.auth_user)
            .field("flavor_context", &self.flavor_context)
            .field("flavor_name_prefix", &self.flavor_name_prefix)
            .field("instance_variant_uuid", &self.instance_variant_uuid)
            .field("unique_name", &self.unique_name)
            .field("legacy_unique_name", &self.legacy_unique_name)
            .field("main_image", &self.main_image)
            .field("inner_runner_toml", &"[not shown]")
            .field("http", &self.http)
            .field("push_timeout", &self.push_timeout)
            .field("flavor_cache_ttl", &self.flavor_cache_ttl)
            .field("tenant_cache_ttl", &self.tenant_cache_ttl)
            .field("service", &self.service)
            .field("deployment_url_schemes", &self.deployment_url_schemes)
            .finish()
    }
}

impl CleverSettings {
    /// Settings with the reference's defaults for everything but the
    /// runner's unique name and its tenancy.
    pub fn new(unique_name: impl Into<String>, tenancy: Tenancy) -> Self {
        CleverSettings {
            api_url: DEFAULT_API_URL.to_string(),
            zone: DEFAULT_ZONE.to_string(),
            default_flavor: DEFAULT_FLAVOR.to_string(),
            max_flavor: None,
            tenancy,
            extra_env: BTreeMap::new(),
            deployment_repo_timeout: DEFAULT_DEPLOYMENT_REPO_TIMEOUT,
            deployment_repo_wait_step: DEFAULT_DEPLOYMENT_REPO_WAIT_STEP,
            auth_user: DEFAULT_AUTH_USER.to_string(),
            flavor_context: DEFAULT_FLAVOR_CONTEXT.to_string(),
            flavor_name_prefix: default_flavor_name_prefix(DEFAULT_FLAVOR_CONTEXT),
            instance_variant_uuid: DEFAULT_INSTANCE_VARIANT_UUID.to_string(),
            unique_name: unique_name.into(),
            legacy_unique_name: None,
            main_image: None,
            inner_runner_toml: String::new(),
            http: HttpSettings::default(),
            push_timeout: Duration::from_secs(120),
            flavor_cache_ttl: Duration::from_secs(3600),
            tenant_cache_ttl: Duration::from_secs(300),
            service: None,
            deployment_url_schemes: RemoteSchemes::Network,
        }
    }

    /// How old an application without a job to read back must be before
    /// reconciliation deletes it: the longest provisioning (the wait for
    /// the deployment repository, then the push) plus
    /// [`NO_JOB_MARGIN`] for the API calls around them and their retries.
    pub fn no_job_grace(&self) -> Duration {
        self.deployment_repo_timeout
            .saturating_add(self.push_timeout)
            .saturating_add(NO_JOB_MARGIN)
    }

    /// Prefix of every application this runner creates:
    /// `hpd-job-<unique name>-`.
    pub fn app_name_prefix(&self) -> String {
        format!("hpd-job-{}-", self.unique_name)
    }

    /// The deterministic application name of a job.
    pub fn app_name(&self, job_id: i64) -> String {
        format!("{}{job_id}", self.app_name_prefix())
    }

    /// The job id of an application named under the legacy identity
    /// (`hpd-job-<legacy unique name>-<job id>`), if `name` is one.
    pub fn legacy_app_job_id(&self, name: &str) -> Option<i64> {
        let legacy = self.legacy_unique_name.as_deref()?;
        let prefix = format!("hpd-job-{legacy}-");
        let id: i64 = name.strip_prefix(&prefix)?.parse().ok()?;
        (format!("{prefix}{id}") == name).then_some(id)
    }

    /// The API base URL without trailing slashes.
    pub fn api_base(&self) -> &str {
        self.api_url.trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn debug_shows_no_secret() {
        let mut s = CleverSettings::new(
            "D3adNQYu",
            Tenancy::Single {
                orga_id: "orga_x".into(),
                token: Secret::new("org-token-value"),
            },
        );
        s.inner_runner_toml = "[[runners]]\ntoken = \"runner-token-value\"\n".into();
        s.extra_env = [("S3_KEY".into(), "env-secret-value".into())].into();
        let text = format!("{s:?}");
        for secret in ["org-token-value", "runner-token-value", "env-secret-value"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("S3_KEY"), "{text}");

        s.tenancy = Tenancy::Multi {
            attributes_token: Secret::new("attributes-token-value"),
            orga_id_attribute: DEFAULT_ORGA_ID_ATTRIBUTE.into(),
            orga_token_attribute: DEFAULT_ORGA_TOKEN_ATTRIBUTE.into(),
        };
        let text = format!("{s:?} {s:#?}");
        assert!(!text.contains("attributes-token-value"), "{text}");
        assert!(text.contains(DEFAULT_ORGA_TOKEN_ATTRIBUTE), "{text}");
    }

    /// The settings validation builds from a file print no secret either:
    /// neither the `cc_*` tokens, nor an extra env value, nor the runner
    /// token the inner `runner.toml` holds (through the whole `Debug` of
    /// the loaded configuration).
    #[test]
    fn validated_settings_show_no_secret_in_debug() {
        let text = r#"
[quota_computation]
reference_runner = "cc"
reference_flavor = "M"
reference_jobs_count = 2
[[runners]]
name = "cc"
url = "https://heptapod.example"
token = "D3adNQYu-runner-token-value"
executor = "clever-docker"
cc_multi_tenant = true
cc_gitlab_namespace_attributes_token = "attributes-token-value"
cc_multi_tenant_forward_secrets = true
[runners.cc_extra_env]
CC_ENABLE_HEPTAPOD_RUNNER = "true"
AWS_SECRET_ACCESS_KEY = "env-secret-value"
"#;
        let loaded = config::parse_str(text, std::path::Path::new("t.toml")).expect("valid config");
        let runner = loaded.config.runners.first().expect("one runner");
        let s = runner.clever.as_ref().expect("clever runner");
        assert_eq!(
            s.extra_env.get("AWS_SECRET_ACCESS_KEY").map(String::as_str),
            Some("env-secret-value")
        );
        let shown = format!("{s:?} {s:#?} {:?} {:#?}", loaded.config, loaded.config);
        for secret in [
            "runner-token-value",
            "attributes-token-value",
            "env-secret-value",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("AWS_SECRET_ACCESS_KEY"), "{shown}");
    }

    #[test]
    fn names_follow_the_reference_pattern() {
        let s = CleverSettings::new(
            "D3adNQYu",
            Tenancy::Single {
                orga_id: "orga_x".into(),
                token: Secret::new("t"),
            },
        );
        assert_eq!(s.app_name(275833), "hpd-job-D3adNQYu-275833");
        assert_eq!(s.app_name_prefix(), "hpd-job-D3adNQYu-");
        assert_eq!(s.legacy_app_job_id("hpd-job-glrt-abc-5"), None);
        let mut s = s;
        s.legacy_unique_name = Some("glrt-abc".into());
        assert_eq!(s.legacy_app_job_id("hpd-job-glrt-abc-5"), Some(5));
        for other in [
            "hpd-job-glrt-abc-05",
            "hpd-job-glrt-abc-",
            "hpd-job-glrt-abd-5",
            "hpd-job-D3adNQYu-5",
        ] {
            assert_eq!(s.legacy_app_job_id(other), None, "{other}");
        }
        assert_eq!(s.flavor_name_prefix, "heptapod-runner-");
    }

    #[test]
    fn validation_fills_the_settings_from_the_cc_keys() {
        let text = r#"
[quota_computation]
reference_runner = "cc"
reference_flavor = "M"
reference_jobs_count = 2
[[runners]]
name = "cc"
url = "https://heptapod.example"
token = "D3adNQYu8OCjkYDbwDaG"
executor = "clever-docker"
cc_orga_id = "orga_x"
cc_token = "cc-secret"
cc_max_flavor = "XL"
cc_deployment_repo_wait_step = 0.5
heptapod_runner_main_image = "registry.example/runner:1"
[runners.cc_extra_env]
CC_ENABLE_HEPTAPOD_RUNNER = "true"
"#;
        let loaded = config::parse_str(text, std::path::Path::new("t.toml")).expect("valid config");
        let runner = loaded.config.runners.first().expect("one runner");
        let s = runner.clever.clone().expect("clever runner");
        assert_eq!(s.unique_name, "D3adNQYu");
        assert_eq!(
            s.tenancy,
            Tenancy::Single {
                orga_id: "orga_x".into(),
                token: Secret::new("cc-secret")
            }
        );
        assert_eq!(s.max_flavor.as_deref(), Some("XL"));
        assert_eq!(s.deployment_repo_wait_step, Duration::from_millis(500));
        assert_eq!(
            s.extra_env,
            [("CC_ENABLE_HEPTAPOD_RUNNER".to_string(), "true".to_string())].into()
        );
        assert_eq!(s.deployment_repo_timeout, DEFAULT_DEPLOYMENT_REPO_TIMEOUT);
        assert_eq!(s.http, HttpSettings::default());
        assert_eq!(s.main_image.as_deref(), Some("registry.example/runner:1"));
        assert!(s.inner_runner_toml.contains("executor = \"docker\""));
        assert!(!s.inner_runner_toml.contains("cc_"));
        assert_eq!(s.app_name(5), "hpd-job-D3adNQYu-5");
    }

    #[test]
    fn api_base_drops_trailing_slashes() {
        let mut s = CleverSettings::new(
            "u",
            Tenancy::Multi {
                attributes_token: Secret::new("a"),
                orga_id_attribute: DEFAULT_ORGA_ID_ATTRIBUTE.into(),
                orga_token_attribute: DEFAULT_ORGA_TOKEN_ATTRIBUTE.into(),
            },
        );
        s.api_url = "http://127.0.0.1:1/v2//".into();
        assert_eq!(s.api_base(), "http://127.0.0.1:1/v2");
    }
}
