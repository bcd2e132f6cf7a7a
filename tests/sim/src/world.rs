//! The whole simulated world in one value: a fake coordinator and a fake
//! Clever Cloud wired together, plus what an end-to-end test of the runner
//! needs around them.
//!
//! [`World::start`] starts both fakes, registers runner tokens and an
//! administrator token at the coordinator, gives every tenant (a top-level
//! group) its own Clever organisation and token — recorded as the group's
//! custom attributes for multi-tenant runners — and applies fast but
//! realistic timing. [`World::write_runner_config`] writes a complete
//! heptapod-paas-runner configuration pointing at the fakes (with
//! [`RunnerConfigOptions::service`], for the `clever-service-docker` executor,
//! whose service applications the fake serves with helpers booting in the
//! timing's `helper_boot_delay`);
//! [`World::summary`] tells what happened ([`WorldSummary::problems`] is what
//! an end-to-end test asserts empty). [`wait_until`] and
//! [`wait_until_async`] are the bounded polling helpers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use toml::{Table, Value};

use crate::clever::config::{DEFAULT_HELPER_IMAGE, DEFAULT_MAIN_IMAGE};
use crate::clever::{
    self, AppEntry, CleverHandle, CleverSimConfig, FakeClever, FlavorSpec, OrgSeed, RepoDelay,
    Timing, Violation,
};
use crate::coordinator::{
    self, CoordinatorConfig, CoordinatorHandle, FakeCoordinator, JobSpec, JobState, Settings,
};

/// Prefix of the flavor names of the default flavor context.
pub const FLAVOR_PREFIX: &str = "heptapod-runner-";
/// Custom attribute holding a tenant's Clever organisation id.
pub const ORGA_ID_ATTRIBUTE: &str = "cc_orga_id";
/// Custom attribute holding a tenant's Clever token.
pub const ORGA_TOKEN_ATTRIBUTE: &str = "cc_orga_token";
/// Name of the first `[[runners]]` section (the quota's reference runner).
pub const FIRST_RUNNER_NAME: &str = "sim-runner-1";
/// Tolerance when comparing the live weight with the quota.
const WEIGHT_EPSILON: f64 = 1e-6;

/// How to start a [`World`].
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Number of runner tokens registered at the coordinator (at least 1).
    pub runner_tokens: usize,
    /// Tenants: top-level group paths. Each gets its own Clever organisation
    /// and token, recorded as the group's custom attributes.
    pub tenants: Vec<String>,
    /// Timing of the fake Clever Cloud (repository creation, inner runner start…).
    pub timing: Timing,
    /// Image the sim's checker expects in the pushed Dockerfile's `FROM`.
    pub main_image: String,
    /// Image a service application's helper Dockerfile must start `FROM` for its helper to
    /// boot (written as `heptapod_paas_runner_helper_image` with
    /// [`RunnerConfigOptions::service`]).
    pub helper_image: String,
    /// Relative URL root of the coordinator (empty for none).
    pub coordinator_path_prefix: String,
    /// Behaviour switches of the coordinator.
    pub coordinator_settings: Settings,
    /// Flavor table of the fake Clever Cloud (`None`: the default one).
    pub flavors: Option<Vec<FlavorSpec>>,
    /// Seed of the fake Clever Cloud's random generator.
    pub seed: u64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            runner_tokens: 2,
            tenants: vec!["group".to_owned()],
            timing: WorldConfig::fast_timing(),
            main_image: DEFAULT_MAIN_IMAGE.to_owned(),
            helper_image: DEFAULT_HELPER_IMAGE.to_owned(),
            coordinator_path_prefix: String::new(),
            coordinator_settings: Settings::default(),
            flavors: None,
            seed: 0x5eed,
        }
    }
}

impl WorldConfig {
    /// Realistic orders of magnitude, scaled down: repository ready after
    /// 300 ms, inner runner starting 500 ms after the push, creations taking
    /// 100 ms, deletions 50 ms; a helper ready 500 ms after its push and
    /// starting a job 50 ms after accepting it.
    pub fn fast_timing() -> Timing {
        Timing {
            repo_create_delay: RepoDelay::After(Duration::from_millis(300)),
            start_delay: Duration::from_millis(500),
            create_latency: Duration::from_millis(100),
            delete_latency: Duration::from_millis(50),
            helper_boot_delay: Duration::from_millis(500),
            helper_start_delay: Duration::from_millis(50),
        }
    }
}

/// One tenant: a top-level group and the Clever organisation paying for it.
#[derive(Clone)]
pub struct Tenant {
    /// Top-level group path (`CI_PROJECT_ROOT_NAMESPACE` of its jobs).
    pub group: String,
    /// Clever organisation id.
    pub orga_id: String,
    /// Clever token allowed on that organisation (kept in clear: test fake).
    pub token: String,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("group", &self.group)
            .field("orga_id", &self.orga_id)
            .finish_non_exhaustive()
    }
}

/// Why a world could not start or a config could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The fake coordinator did not start.
    #[error("world: {0}")]
    Coordinator(#[from] coordinator::CoordinatorStartError),
    /// The fake Clever Cloud did not start.
    #[error("world: fake Clever Cloud: {0}")]
    Clever(#[from] clever::StartError),
    /// The world configuration is unusable.
    #[error("world: invalid configuration: {0}")]
    Config(String),
    /// The runner configuration asks for something the world lacks.
    #[error("runner configuration: {0}")]
    Options(String),
    /// Writing the runner configuration failed.
    #[error("cannot write the runner configuration {path}: {source}")]
    Write {
        /// File being written.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// What the written runner configuration says, beyond the world's URLs and
/// tokens. Durations are written as (possibly fractional) seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfigOptions {
    /// `[[runners]]` sections (each with its own runner token; at most the
    /// world's `runner_tokens`).
    pub runners: usize,
    /// `cc_multi_tenant = true` (organisation read from group attributes)
    /// instead of the first tenant's organisation for every job.
    pub multi_tenant: bool,
    /// `concurrent`.
    pub concurrent: usize,
    /// `check_interval`.
    pub check_interval: Duration,
    /// `job_progress_poll_interval`.
    pub job_progress_poll_interval: Duration,
    /// `paas_max_concurrent_provisioning`.
    pub max_concurrent_provisioning: usize,
    /// `[quota_computation] reference_flavor` (short name, e.g. `M`).
    pub quota_flavor: String,
    /// `[quota_computation] reference_jobs_count`.
    pub quota_jobs: u32,
    /// `cc_default_flavor`.
    pub default_flavor: String,
    /// `cc_max_flavor`.
    pub max_flavor: Option<String>,
    /// `paas_finished_jobs_keep_resources`.
    pub keep_resources: bool,
    /// `paas_decommission_launch_failures`.
    pub decommission_launch_failures: bool,
    /// `[runners.paas_job_trace_watch] timeout_seconds`.
    pub trace_watch_timeout: Duration,
    /// `[runners.paas_job_trace_watch] poll_step`.
    pub trace_watch_poll_step: Duration,
    /// `cc_deployment_repo_timeout`.
    pub deployment_repo_timeout: Duration,
    /// `cc_deployment_repo_wait_step`.
    pub deployment_repo_wait_step: Duration,
    /// `paas_long_polling` of every runner section.
    pub long_polling: bool,
    /// Sections use the `clever-service-docker` executor with these options
    /// (`None`: `clever-docker`).
    pub service: Option<ServiceOptions>,
}

/// Options of `clever-service-docker` runner sections. Durations are written
/// as (possibly fractional) seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOptions {
    /// `paas_keep_resources_for_reuse_seconds`.
    pub keep_for_reuse: Duration,
    /// `paas_max_jobs_per_resource` (`None`: not written, the runner's default).
    pub max_jobs_per_resource: Option<u32>,
    /// `cc_service_ready_timeout` (`None`: not written, the runner's default).
    pub ready_timeout: Option<Duration>,
}

impl Default for ServiceOptions {
    /// Applications kept 10 s for reuse, the runner's defaults otherwise.
    fn default() -> Self {
        ServiceOptions {
            keep_for_reuse: Duration::from_secs(10),
            max_jobs_per_resource: None,
            ready_timeout: None,
        }
    }
}

impl Default for RunnerConfigOptions {
    fn default() -> Self {
        RunnerConfigOptions {
            runners: 1,
            multi_tenant: false,
            concurrent: 50,
            check_interval: Duration::from_millis(200),
            job_progress_poll_interval: Duration::from_secs(1),
            max_concurrent_provisioning: 10,
            quota_flavor: "M".to_owned(),
            quota_jobs: 4,
            default_flavor: "S".to_owned(),
            max_flavor: Some("L".to_owned()),
            keep_resources: false,
            decommission_launch_failures: true,
            trace_watch_timeout: Duration::from_secs(30),
            trace_watch_poll_step: Duration::from_millis(300),
            deployment_repo_timeout: Duration::from_secs(20),
            deployment_repo_wait_step: Duration::from_millis(100),
            long_polling: false,
            service: None,
        }
    }
}

/// A running simulated world. Dropping it stops both fakes.
pub struct World {
    coordinator: CoordinatorHandle,
    clever: CleverHandle,
    runner_tokens: Vec<String>,
    admin_token: String,
    tenants: Vec<Tenant>,
    flavors: Vec<FlavorSpec>,
    main_image: String,
    helper_image: String,
    written: Mutex<Option<RunnerConfigOptions>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("coordinator", &self.coordinator.url())
            .field("clever", &self.clever.base_url())
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

fn random(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

impl World {
    /// Starts both fakes on 127.0.0.1 and wires them together.
    pub fn start(config: WorldConfig) -> Result<World, WorldError> {
        if config.runner_tokens == 0 || config.runner_tokens > 999 {
            return Err(WorldError::Config(format!(
                "runner_tokens must be between 1 and 999, not {}",
                config.runner_tokens
            )));
        }
        if config.tenants.is_empty() {
            return Err(WorldError::Config("at least one tenant is needed".into()));
        }
        for (i, t) in config.tenants.iter().enumerate() {
            if t.is_empty() || t.contains('/') || config.tenants.iter().take(i).any(|o| o == t) {
                return Err(WorldError::Config(format!(
                    "tenant {t:?} must be a non-empty top-level group path, given once"
                )));
            }
        }
        // `glrt-NNN…`: the first 8 characters (the runner's unique name)
        // differ between runners.
        let runner_tokens: Vec<String> = (1..=config.runner_tokens)
            .map(|i| format!("glrt-{i:03}{}", random(17)))
            .collect();
        let admin_token = format!("glpat-simadmin{}", random(12));
        let tenants: Vec<Tenant> = config
            .tenants
            .iter()
            .enumerate()
            .map(|(i, group)| Tenant {
                group: group.clone(),
                orga_id: format!("orga_00000000-0000-4000-8000-{:012}", i + 1),
                token: format!("cc-sim-{}", random(24)),
            })
            .collect();
        let coordinator = FakeCoordinator::start(CoordinatorConfig {
            path_prefix: config.coordinator_path_prefix.clone(),
            runner_tokens: runner_tokens.clone(),
            admin_tokens: vec![admin_token.clone()],
            settings: config.coordinator_settings.clone(),
            ..CoordinatorConfig::default()
        })?;
        for t in &tenants {
            coordinator.set_group_attributes(
                &t.group,
                &[
                    (ORGA_ID_ATTRIBUTE, t.orga_id.as_str()),
                    (ORGA_TOKEN_ATTRIBUTE, t.token.as_str()),
                ],
            );
        }
        let defaults = CleverSimConfig::default();
        let flavors = config.flavors.clone().unwrap_or(defaults.flavors.clone());
        let clever = FakeClever::start(CleverSimConfig {
            orgs: tenants
                .iter()
                .map(|t| OrgSeed {
                    id: t.orga_id.clone(),
                    tokens: vec![t.token.clone()],
                })
                .collect(),
            flavors: flavors.clone(),
            expected_main_image: config.main_image.clone(),
            expected_helper_image: config.helper_image.clone(),
            timing: config.timing.clone(),
            seed: config.seed,
            ..defaults
        })?;
        clever
            .control()
            .set_tenant_orgs(tenant_orgs(&tenants, true));
        Ok(World {
            coordinator,
            clever,
            runner_tokens,
            admin_token,
            tenants,
            flavors,
            main_image: config.main_image,
            helper_image: config.helper_image,
            written: Mutex::new(None),
        })
    }

    /// Image helper Dockerfiles must start `FROM`.
    pub fn helper_image(&self) -> &str {
        &self.helper_image
    }

    /// The fake coordinator (dereferences to its control).
    pub fn coordinator(&self) -> &CoordinatorHandle {
        &self.coordinator
    }

    /// The fake Clever Cloud.
    pub fn clever(&self) -> &CleverHandle {
        &self.clever
    }

    /// Runner authentication tokens registered at the coordinator.
    pub fn runner_tokens(&self) -> &[String] {
        &self.runner_tokens
    }

    /// Administrator token (trace watch, group attributes).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Tenants, in configuration order.
    pub fn tenants(&self) -> &[Tenant] {
        &self.tenants
    }

    /// Enqueues a job at the coordinator; returns its id.
    pub fn enqueue(&self, spec: JobSpec) -> i64 {
        self.coordinator.enqueue_job(spec)
    }

    /// Weight of a flavor given by its short name (`M`) or full name.
    pub fn flavor_weight(&self, name: &str) -> Option<f64> {
        let full = if name.starts_with(FLAVOR_PREFIX) {
            name.to_owned()
        } else {
            format!("{FLAVOR_PREFIX}{name}")
        };
        self.flavors
            .iter()
            .find(|f| f.name == full)
            .map(FlavorSpec::weight)
    }

    /// The weighted quota of a configuration: `quota_jobs` × the weight of
    /// `quota_flavor`.
    pub fn quota_weight(&self, options: &RunnerConfigOptions) -> Option<f64> {
        self.flavor_weight(&options.quota_flavor)
            .map(|w| w * f64::from(options.quota_jobs))
    }

    /// Builds the runner configuration for `state_file` as a TOML table.
    pub fn runner_config_table(
        &self,
        state_file: &Path,
        options: &RunnerConfigOptions,
    ) -> Result<Table, WorldError> {
        if options.runners == 0 || options.runners > self.runner_tokens.len() {
            return Err(WorldError::Options(format!(
                "runners = {} but the world has {} runner token(s)",
                options.runners,
                self.runner_tokens.len()
            )));
        }
        for flavor in [&options.quota_flavor, &options.default_flavor]
            .into_iter()
            .chain(options.max_flavor.as_ref())
        {
            if self.flavor_weight(flavor).is_none() {
                return Err(WorldError::Options(format!(
                    "flavor {flavor:?} is not in the fake's flavor table"
                )));
            }
        }
        if options.quota_jobs == 0 {
            return Err(WorldError::Options("quota_jobs must be positive".into()));
        }
        let mut top = Table::new();
        top.insert("concurrent".into(), int(options.concurrent));
        top.insert("check_interval".into(), secs(options.check_interval));
        top.insert(
            "job_progress_poll_interval".into(),
            secs(options.job_progress_poll_interval),
        );
        top.insert(
            "state_file".into(),
            Value::String(state_file.display().to_string()),
        );
        top.insert(
            "paas_max_concurrent_provisioning".into(),
            int(options.max_concurrent_provisioning),
        );
        top.insert(
            "paas_finished_jobs_keep_resources".into(),
            Value::Boolean(options.keep_resources),
        );
        top.insert(
            "paas_decommission_launch_failures".into(),
            Value::Boolean(options.decommission_launch_failures),
        );
        let mut quota = Table::new();
        quota.insert(
            "reference_runner".into(),
            Value::String(FIRST_RUNNER_NAME.into()),
        );
        quota.insert(
            "reference_flavor".into(),
            Value::String(options.quota_flavor.clone()),
        );
        quota.insert(
            "reference_jobs_count".into(),
            Value::Integer(i64::from(options.quota_jobs)),
        );
        top.insert("quota_computation".into(), Value::Table(quota));
        let runners = self
            .runner_tokens
            .iter()
            .take(options.runners)
            .enumerate()
            .map(|(i, token)| Value::Table(self.runner_section(i + 1, token, options)))
            .collect();
        top.insert("runners".into(), Value::Array(runners));
        Ok(top)
    }

    fn runner_section(&self, index: usize, token: &str, options: &RunnerConfigOptions) -> Table {
        let mut r = Table::new();
        let s = |v: &str| Value::String(v.to_owned());
        r.insert("name".into(), s(&format!("sim-runner-{index}")));
        r.insert("url".into(), s(&self.coordinator.url()));
        r.insert("token".into(), s(token));
        match &options.service {
            None => {
                r.insert("executor".into(), s("clever-docker"));
            }
            Some(service) => {
                r.insert("executor".into(), s("clever-service-docker"));
                r.insert(
                    "heptapod_paas_runner_helper_image".into(),
                    s(&self.helper_image),
                );
                r.insert(
                    "paas_keep_resources_for_reuse_seconds".into(),
                    secs(service.keep_for_reuse),
                );
                if let Some(n) = service.max_jobs_per_resource {
                    r.insert(
                        "paas_max_jobs_per_resource".into(),
                        Value::Integer(i64::from(n)),
                    );
                }
                if let Some(t) = service.ready_timeout {
                    r.insert("cc_service_ready_timeout".into(), secs(t));
                }
            }
        }
        r.insert("heptapod_runner_main_image".into(), s(&self.main_image));
        r.insert("cc_api_url".into(), s(&self.clever.api_url()));
        if options.multi_tenant {
            r.insert("cc_multi_tenant".into(), Value::Boolean(true));
            r.insert(
                "cc_gitlab_namespace_attributes_token".into(),
                s(&self.admin_token),
            );
        } else if let Some(t) = self.tenants.first() {
            r.insert("cc_orga_id".into(), s(&t.orga_id));
            r.insert("cc_token".into(), s(&t.token));
        }
        r.insert("cc_default_flavor".into(), s(&options.default_flavor));
        if let Some(max) = &options.max_flavor {
            r.insert("cc_max_flavor".into(), s(max));
        }
        r.insert(
            "cc_deployment_repo_timeout".into(),
            secs(options.deployment_repo_timeout),
        );
        r.insert(
            "cc_deployment_repo_wait_step".into(),
            secs(options.deployment_repo_wait_step),
        );
        if options.long_polling {
            r.insert("paas_long_polling".into(), Value::Boolean(true));
        }
        let mut watch = Table::new();
        watch.insert("token".into(), s(&self.admin_token));
        watch.insert("timeout_seconds".into(), secs(options.trace_watch_timeout));
        watch.insert("poll_step".into(), secs(options.trace_watch_poll_step));
        r.insert("paas_job_trace_watch".into(), Value::Table(watch));
        let mut env = Table::new();
        env.insert("CC_ENABLE_HEPTAPOD_RUNNER".into(), s("true"));
        r.insert("cc_extra_env".into(), Value::Table(env));
        let mut docker = Table::new();
        docker.insert("image".into(), s("debian:bookworm"));
        docker.insert("privileged".into(), Value::Boolean(false));
        docker.insert("volumes".into(), Value::Array(vec![s("/cache")]));
        r.insert("docker".into(), Value::Table(docker));
        r
    }

    /// Writes a complete runner configuration as `dir/runner.toml` (state
    /// file `dir/state.json`) and returns its path. The options are
    /// remembered for [`World::summary`] (quota, keep flag), and tell the fake
    /// Clever Cloud which organisation each tenant's jobs belong to (each its
    /// own with `multi_tenant`, else the first tenant's).
    pub fn write_runner_config(
        &self,
        dir: &Path,
        options: RunnerConfigOptions,
    ) -> Result<PathBuf, WorldError> {
        let table = self.runner_config_table(&dir.join("state.json"), &options)?;
        let text = toml::to_string(&table).map_err(|e| WorldError::Options(e.to_string()))?;
        let path = dir.join("runner.toml");
        let header = "# heptapod-paas-runner configuration written by paas-sim for a simulated \
                      world.\n# Tokens below are test tokens of the fakes, not real secrets.\n";
        write_private(&path, &format!("{header}{text}")).map_err(|source| WorldError::Write {
            path: path.clone(),
            source,
        })?;
        self.clever
            .control()
            .set_tenant_orgs(tenant_orgs(&self.tenants, options.multi_tenant));
        *self.written.lock().unwrap_or_else(PoisonError::into_inner) = Some(options);
        Ok(path)
    }

    /// The options of the last written configuration, if any.
    pub fn written_options(&self) -> Option<RunnerConfigOptions> {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What happened so far (a snapshot; take it once the runner stopped for
    /// the final verdict).
    pub fn summary(&self) -> WorldSummary {
        let options = self.written_options();
        let quota_weight = options.as_ref().and_then(|o| self.quota_weight(o));
        let keep_resources = options.as_ref().is_some_and(|o| o.keep_resources);
        let jobs = self.coordinator.jobs();
        let stats = self.coordinator.stats();
        let ledger = self.clever.control().summary();
        let apps = self.clever.control().apps();
        let mut apps_per_job: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for app in &apps {
            if let Some(id) = job_id_of_app_name(&app.name) {
                apps_per_job.entry(id).or_default().push(app.id.clone());
            }
        }
        apps_per_job.retain(|_, ids| ids.len() > 1);
        let mut by_status: BTreeMap<JobState, u64> = BTreeMap::new();
        let mut outcome_mismatches = Vec::new();
        for j in &jobs {
            *by_status.entry(j.status).or_default() += 1;
            let expected = match j.spec.outcome {
                coordinator::Outcome::Success => JobState::Success,
                coordinator::Outcome::Failed => JobState::Failed,
            };
            if j.status.is_terminal() && j.status != expected {
                outcome_mismatches.push(OutcomeMismatch {
                    job_id: j.id,
                    expected,
                    actual: j.status,
                    failure_reason: j.failure_reason.clone(),
                });
            }
        }
        let count = |s: JobState| by_status.get(&s).copied().unwrap_or(0);
        WorldSummary {
            jobs_total: jobs.len() as u64,
            jobs_pending: count(JobState::Pending),
            jobs_running: count(JobState::Running) + count(JobState::Canceling),
            jobs_success: count(JobState::Success),
            jobs_failed: count(JobState::Failed),
            jobs_canceled: count(JobState::Canceled),
            outcome_mismatches,
            apps_created: ledger.apps_created,
            apps_deleted: ledger.apps_deleted,
            leaks: ledger.leaks,
            duplicate_names: ledger.duplicates,
            duplicate_apps_per_job: apps_per_job,
            live_weight: ledger.live_weight,
            max_live_weight: ledger.max_live_weight,
            max_live_count: ledger.max_live_count,
            quota_weight,
            keep_resources,
            deployments: ledger.deployments,
            service_apps: ledger.service_apps,
            helper_jobs: ledger.helper_jobs,
            helper_jobs_reused: ledger.helper_jobs_reused,
            helper_calls: ledger
                .helper_calls
                .iter()
                .map(|(route, n)| (helper_route_name(*route), *n))
                .collect(),
            violations: self.clever.control().violations(),
            coordinator_requests: stats
                .requests
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(e, n)| (e.as_str().to_owned(), n))
                .collect(),
            clever_requests: ledger
                .requests
                .into_iter()
                .map(|(e, n)| (endpoint_name(&e), n))
                .collect(),
        }
    }

    /// Every secret of the world, each with a description that does not
    /// reveal it: runner tokens, the administrator token, the tenants'
    /// Clever tokens and the tokens of every job enqueued so far.
    pub fn secrets(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .runner_tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("runner token #{}", i + 1), t.clone()))
            .collect();
        out.push(("administrator token".to_owned(), self.admin_token.clone()));
        for t in &self.tenants {
            out.push((
                format!("Clever token of tenant {}", t.group),
                t.token.clone(),
            ));
        }
        for j in self.coordinator.jobs() {
            out.push((format!("job token of job {}", j.id), j.token));
        }
        out
    }

    /// Descriptions of the world's secrets found in `text` (e.g. a runner
    /// log); empty when none leaked.
    pub fn leaked_secrets(&self, text: &str) -> Vec<String> {
        self.secrets()
            .into_iter()
            .filter(|(_, secret)| !secret.is_empty() && text.contains(secret.as_str()))
            .map(|(what, _)| what)
            .collect()
    }

    /// True once every enqueued job reached a terminal status (bounded wait).
    pub fn wait_jobs_finished(&self, timeout: Duration) -> bool {
        wait_until(
            || {
                self.coordinator
                    .jobs()
                    .iter()
                    .all(|j| j.status.is_terminal())
            },
            timeout,
            Duration::from_millis(50),
        )
    }

    /// True once no application is alive at the fake Clever Cloud (bounded wait).
    pub fn wait_no_live_apps(&self, timeout: Duration) -> bool {
        wait_until(
            || self.clever.control().summary().live_count == 0,
            timeout,
            Duration::from_millis(50),
        )
    }

    /// Stops both fakes and waits for their threads.
    pub fn shutdown(self) {
        self.clever.shutdown();
        self.coordinator.shutdown();
    }
}

/// Which organisation each tenant's jobs belong to: their own when
/// `multi_tenant`, else the first tenant's (the configured `cc_orga_id`).
fn tenant_orgs(tenants: &[Tenant], multi_tenant: bool) -> BTreeMap<String, String> {
    let first = tenants
        .first()
        .map(|t| t.orga_id.clone())
        .unwrap_or_default();
    tenants
        .iter()
        .map(|t| {
            let org = if multi_tenant {
                t.orga_id.clone()
            } else {
                first.clone()
            };
            (t.group.clone(), org)
        })
        .collect()
}

/// Writes a file readable by its owner only (it holds tokens).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn int(v: usize) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Seconds as a TOML integer when whole, else a float.
fn secs(d: Duration) -> Value {
    if d.subsec_nanos() == 0 {
        Value::Integer(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    } else {
        Value::Float(d.as_secs_f64())
    }
}

fn helper_route_name(r: clever::HelperRoute) -> String {
    match serde_json::to_value(r) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{r:?}"),
    }
}

fn endpoint_name(e: &clever::Endpoint) -> String {
    match serde_json::to_value(e) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{e:?}"),
    }
}

/// The job id at the end of a runner app name (`hpd-job-<unique>-<job id>`).
pub fn job_id_of_app_name(name: &str) -> Option<i64> {
    name.strip_prefix("hpd-job-")?
        .rsplit_once('-')?
        .1
        .parse()
        .ok()
}

/// A job whose final status is not the outcome it was enqueued with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeMismatch {
    /// Job id.
    pub job_id: i64,
    /// Status its simulated outcome should give.
    pub expected: JobState,
    /// Status it ended with.
    pub actual: JobState,
    /// Failure reason stored at the coordinator, if any.
    pub failure_reason: Option<String>,
}

/// What happened in the world: jobs, applications, quota, violations, requests.
#[derive(Debug, Clone, Serialize)]
pub struct WorldSummary {
    /// Jobs ever enqueued.
    pub jobs_total: u64,
    /// Jobs still waiting at the coordinator.
    pub jobs_pending: u64,
    /// Jobs handed out and not finished (running or canceling).
    pub jobs_running: u64,
    /// Jobs finished successfully.
    pub jobs_success: u64,
    /// Jobs failed.
    pub jobs_failed: u64,
    /// Jobs cancelled.
    pub jobs_canceled: u64,
    /// Finished jobs whose status differs from their simulated outcome
    /// (expected under faults; not counted in [`WorldSummary::problems`]).
    pub outcome_mismatches: Vec<OutcomeMismatch>,
    /// Applications created.
    pub apps_created: usize,
    /// Applications deleted.
    pub apps_deleted: usize,
    /// Applications still alive.
    pub leaks: Vec<AppEntry>,
    /// Application names used more than once, with the app ids.
    pub duplicate_names: BTreeMap<String, Vec<String>>,
    /// Jobs that got more than one application, with the app ids.
    pub duplicate_apps_per_job: BTreeMap<i64, Vec<String>>,
    /// Current live weight.
    pub live_weight: f64,
    /// Highest live weight reached.
    pub max_live_weight: f64,
    /// Highest number of live applications reached.
    pub max_live_count: usize,
    /// Weighted quota of the written configuration, if one was written.
    pub quota_weight: Option<f64>,
    /// The written configuration keeps resources of finished jobs (live
    /// applications are then no leak).
    pub keep_resources: bool,
    /// Deployments (pushes to `master`).
    pub deployments: usize,
    /// Service applications created (with a helper).
    pub service_apps: usize,
    /// Jobs accepted by helpers (`launch-job` answered 201).
    pub helper_jobs: usize,
    /// Of those, jobs accepted by an application that had run a job before.
    pub helper_jobs_reused: usize,
    /// Calls to helpers per route (`can_take_job`, `launch_job`, `other`).
    pub helper_calls: BTreeMap<String, u64>,
    /// Violations recorded by the fake Clever Cloud and its inner runner.
    pub violations: Vec<Violation>,
    /// Requests per coordinator endpoint (non-zero ones).
    pub coordinator_requests: BTreeMap<String, u64>,
    /// Requests per Clever Cloud endpoint.
    pub clever_requests: BTreeMap<String, u64>,
}

impl WorldSummary {
    /// Share of the helpers' jobs that ran on a reused application; `None`
    /// before any.
    pub fn reuse_ratio(&self) -> Option<f64> {
        (self.helper_jobs > 0).then(|| self.helper_jobs_reused as f64 / self.helper_jobs as f64)
    }

    /// True when the maximum live weight stayed within the quota (or no quota is known).
    pub fn quota_held(&self) -> bool {
        self.quota_weight
            .is_none_or(|q| self.max_live_weight <= q + WEIGHT_EPSILON)
    }

    /// Everything wrong, one sentence each; empty when the run was clean:
    /// unfinished jobs, leaked applications (unless resources are kept),
    /// duplicate applications, quota overshoot, violations.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.jobs_pending > 0 || self.jobs_running > 0 {
            out.push(format!(
                "{} job(s) pending and {} running at the coordinator",
                self.jobs_pending, self.jobs_running
            ));
        }
        if !self.keep_resources && !self.leaks.is_empty() {
            let names: Vec<&str> = self.leaks.iter().map(|a| a.name.as_str()).collect();
            out.push(format!(
                "{} leaked application(s): {}",
                names.len(),
                names.join(", ")
            ));
        }
        for (job, ids) in &self.duplicate_apps_per_job {
            out.push(format!(
                "job {job} got {} applications: {}",
                ids.len(),
                ids.join(", ")
            ));
        }
        for (name, ids) in &self.duplicate_names {
            if job_id_of_app_name(name).is_none() {
                out.push(format!("application name {name} used {} times", ids.len()));
            }
        }
        if let (false, Some(q)) = (self.quota_held(), self.quota_weight) {
            out.push(format!(
                "max live weight {:.2} exceeded the quota {q:.2}",
                self.max_live_weight
            ));
        }
        for v in &self.violations {
            out.push(format!(
                "violation {} (app {}, job {}): {}",
                v.kind,
                v.app_id.as_deref().unwrap_or("-"),
                v.job_id.map_or("-".to_owned(), |j| j.to_string()),
                v.message
            ));
        }
        out
    }

    /// A human-readable multi-line report (no token in it).
    pub fn render(&self) -> String {
        let quota = match self.quota_weight {
            Some(q) => format!(
                "{:.1} / quota {q:.1} ({})",
                self.max_live_weight,
                if self.quota_held() {
                    "held"
                } else {
                    "EXCEEDED"
                }
            ),
            None => format!("{:.1} (no quota known)", self.max_live_weight),
        };
        let dups = self.duplicate_apps_per_job.len();
        let mut s = format!(
            "jobs: {} total, {} succeeded, {} failed, {} canceled, {} pending, {} running\n\
             apps: {} created, {} deleted, {} leaked{}, {} job(s) with duplicates, \
             {} deployments\n\
             max live weight: {quota}; max live apps: {}\n\
             violations: {}\n",
            self.jobs_total,
            self.jobs_success,
            self.jobs_failed,
            self.jobs_canceled,
            self.jobs_pending,
            self.jobs_running,
            self.apps_created,
            self.apps_deleted,
            self.leaks.len(),
            if self.keep_resources { " (kept)" } else { "" },
            dups,
            self.deployments,
            self.max_live_count,
            self.violations.len(),
        );
        if !self.outcome_mismatches.is_empty() {
            s.push_str(&format!(
                "jobs ending otherwise than simulated: {}\n",
                self.outcome_mismatches.len()
            ));
        }
        if let Some(ratio) = self.reuse_ratio() {
            s.push_str(&format!(
                "service apps: {}, helper jobs: {} ({} on a reused app, {:.0} %)\n",
                self.service_apps,
                self.helper_jobs,
                self.helper_jobs_reused,
                ratio * 100.0
            ));
        }
        let reqs = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        s.push_str(&format!(
            "coordinator requests: {}\nclever requests: {}\n",
            reqs(&self.coordinator_requests),
            reqs(&self.clever_requests)
        ));
        s
    }
}

/// Polls `predicate` every `step` until it holds or `timeout` passes (bounded
/// by time and by count: at most `timeout / step + 2` checks). Returns
/// whether it held.
pub fn wait_until(mut predicate: impl FnMut() -> bool, timeout: Duration, step: Duration) -> bool {
    let step = step.max(Duration::from_millis(1));
    let deadline = Instant::now() + timeout;
    let max_checks = timeout.as_millis() / step.as_millis().max(1) + 2;
    for _ in 0..max_checks {
        if predicate() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(step.min(deadline - now));
    }
    predicate()
}

/// Async [`wait_until`] (tokio sleep), for actix and tokio tests.
pub async fn wait_until_async(
    mut predicate: impl FnMut() -> bool,
    timeout: Duration,
    step: Duration,
) -> bool {
    let step = step.max(Duration::from_millis(1));
    let deadline = Instant::now() + timeout;
    let max_checks = timeout.as_millis() / step.as_millis().max(1) + 2;
    for _ in 0..max_checks {
        if predicate() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(step.min(deadline - now)).await;
    }
    predicate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_give_job_ids() {
        assert_eq!(job_id_of_app_name("hpd-job-glrt-001-1234"), Some(1234));
        assert_eq!(job_id_of_app_name("hpd-job-abcdefgh-7"), Some(7));
        assert_eq!(job_id_of_app_name("other-7"), None);
        assert_eq!(job_id_of_app_name("hpd-job-x-y"), None);
    }

    #[test]
    fn seconds_are_integers_when_whole() {
        assert_eq!(secs(Duration::from_secs(3)), Value::Integer(3));
        assert_eq!(secs(Duration::from_millis(250)), Value::Float(0.25));
    }

    #[test]
    fn wait_until_is_bounded() {
        let start = Instant::now();
        let mut calls = 0;
        let held = wait_until(
            || {
                calls += 1;
                false
            },
            Duration::from_millis(50),
            Duration::from_millis(10),
        );
        assert!(!held);
        assert!(calls <= 8, "{calls} checks");
        assert!(start.elapsed() < Duration::from_secs(2));
        let mut n = 0;
        assert!(wait_until(
            || {
                n += 1;
                n == 3
            },
            Duration::from_secs(5),
            Duration::from_millis(1)
        ));
    }
}
