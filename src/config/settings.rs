//! Stage two: the typed, validated settings the program uses.
//!
//! Nothing here is read from the file directly; [`super::validate`] builds
//! these values, so every field already holds a checked value or its default.
//! The executor sections are the executors' own settings types
//! ([`CleverSettings`], [`LocalDockerSettings`]): validation builds them
//! directly, with the defaults their modules define.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::error::Location;
use super::raw::LineIndex;
use crate::executors::clever::CleverSettings;
use crate::executors::local_docker::LocalDockerSettings;
use crate::secret::Secret;

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Maximum number of jobs across all runners (`concurrent`, default 50).
    pub concurrent: usize,
    /// Time between full coordinator polls (`check_interval`, default 3 s; 0 means 3 s).
    pub check_interval: Duration,
    /// Period of the "is the launched job finished?" checks
    /// (`job_progress_poll_interval`, default 30 s).
    pub job_progress_poll_interval: Duration,
    /// Where running jobs are recorded across restarts (`state_file`), as written.
    pub state_file: Option<PathBuf>,
    /// Maximum jobs provisioned but not yet seen running (default 10).
    pub paas_max_concurrent_provisioning: usize,
    /// If true, never decommission (default false).
    pub paas_finished_jobs_keep_resources: bool,
    /// If false, keep resources of failed launches for inspection (default true).
    pub paas_decommission_launch_failures: bool,
    /// Poll the same runner again at once after it granted a job (default true).
    pub paas_repoll_same_runner_immediately: bool,
    /// How the weighted quota is computed (`[quota_computation]`, required).
    pub quota_computation: QuotaComputation,
    /// Address for a metrics/health endpoint, if any (`listen_address`).
    pub listen_address: Option<String>,
    /// `shutdown_timeout`: deadline of a graceful stop (the service's
    /// default applies when absent).
    pub shutdown_timeout: Option<Duration>,
    /// `reconcile_interval`: delay between reconciliation passes of the
    /// state with the PAAS after the start-up one (default 300 s); `None`
    /// when set to 0 (periodic passes disabled, the start-up pass stays).
    pub reconcile_interval: Option<Duration>,
    /// `log_level` (GitLab Runner's key); the command line's
    /// `--logging-level` wins.
    pub log_level: Option<slog::Level>,
    /// `log_format` (GitLab Runner's key: `runner` or `text` are the human
    /// format, `json`); the command line's `--log-format` wins.
    pub log_format: Option<crate::logging::LogFormat>,
    /// The `[[runners]]` sections, in file order.
    pub runners: Vec<RunnerConfig>,
    /// The configuration file this was read from.
    pub path: PathBuf,
    /// Where each key is in the file.
    pub lines: LineIndex,
}

/// The dotted path of `key` in the runner section number `index`
/// (`runners[0].cc_max_flavor`), as messages and [`Config::locate`] use it.
pub fn runner_key(index: usize, key: &str) -> String {
    format!("runners[{index}].{key}")
}

impl Config {
    /// Where the key at dotted path `key` is in the file (its line, else its
    /// section's): the one place checks made after validation find a line.
    pub fn locate(&self, key: &str) -> Location {
        self.lines.locate(key)
    }

    /// A message about `key`, found wrong after validation:
    /// `FILE:LINE: `KEY` = VALUE: DETAIL` ([`super::key_message`]).
    pub fn key_message(&self, key: &str, value: Option<&str>, detail: &str) -> String {
        super::key_message(&self.path, key, self.locate(key), value, detail)
    }

    /// The first runner whose human `name` is `name` (names need not be unique).
    pub fn runner_by_name(&self, name: &str) -> Option<&RunnerConfig> {
        self.runners.iter().find(|r| r.name == name)
    }

    /// The runner whose unique name is `unique_name`.
    pub fn runner_by_unique_name(&self, unique_name: &str) -> Option<&RunnerConfig> {
        self.runners.iter().find(|r| r.unique_name == unique_name)
    }
}

/// `[quota_computation]`: the weighted quota is the weight of
/// `reference_jobs_count` jobs of `reference_flavor` on `reference_runner`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaComputation {
    /// Human `name` of a configured runner (checked to exist).
    pub reference_runner: String,
    /// Flavor name (checked later, when the runner's flavors are known).
    pub reference_flavor: String,
    /// Number of reference jobs (positive).
    pub reference_jobs_count: u32,
    /// Fraction of the quota one runner may use (default 1.0, in (0, 1]).
    pub allowed_fraction_per_runner: f64,
}

/// The PAAS executor of a runner section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// `clever-docker`: one Clever Cloud application per job.
    CleverDocker,
    /// `local-docker`: local Docker containers, for tests and development.
    LocalDocker,
}

impl ExecutorKind {
    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::CleverDocker => "clever-docker",
            ExecutorKind::LocalDocker => "local-docker",
        }
    }
}

impl fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[runners]]` section, validated.
#[derive(Clone)]
pub struct RunnerConfig {
    /// Human name (`name`); not necessarily unique.
    pub name: String,
    /// Coordinator base URL (`url`), as written.
    pub url: String,
    /// Runner authentication token (`token`).
    pub token: Secret,
    /// The runner's short identity (see [`super::identity`]): the key in
    /// state files and PAAS app names.
    pub unique_name: String,
    /// The identity the Python runner (and versions before the
    /// `glrt-` rule) gave this runner, when it differs from `unique_name`
    /// and no other section shares it: state entries and resources written
    /// under it are still this runner's.
    pub legacy_unique_name: Option<String>,
    /// Which PAAS executor runs this section.
    pub executor: ExecutorKind,
    /// Clever Cloud settings (`Some` iff `executor` is `CleverDocker`).
    pub clever: Option<CleverSettings>,
    /// Local Docker settings (`Some` iff `executor` is `LocalDocker`).
    pub local_docker: Option<LocalDockerSettings>,
    /// Job trace watching, if configured with a token.
    pub trace_watch: Option<TraceWatchConfig>,
    /// Base image of the launched runner (`heptapod_runner_main_image`).
    pub main_image: Option<String>,
    /// Maximum fraction of the quota this runner may use (default 1.0).
    pub quota_max_fraction: f64,
    /// `paas_long_polling`: long-poll the coordinator when the hold keeps
    /// no other runner waiting (default false).
    pub long_polling: bool,
    /// The section as written, after secret substitution (holds secrets:
    /// never log it).
    pub raw: toml::Table,
}

impl fmt::Debug for RunnerConfig {
    // `raw` holds the token and cache credentials: show its keys only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token", &self.token)
            .field("unique_name", &self.unique_name)
            .field("legacy_unique_name", &self.legacy_unique_name)
            .field("executor", &self.executor)
            .field("clever", &self.clever)
            .field("local_docker", &self.local_docker)
            .field("trace_watch", &self.trace_watch)
            .field("main_image", &self.main_image)
            .field("quota_max_fraction", &self.quota_max_fraction)
            .field("long_polling", &self.long_polling)
            .field("raw_keys", &self.raw.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Job trace watching (`[runners.paas_job_trace_watch]` or
/// `[runners.job_trace_watch]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceWatchConfig {
    /// Administrator token with `read_api` scope.
    pub token: Secret,
    /// Launch considered failed after this (`timeout_seconds`, default 300 s).
    pub timeout: Duration,
    /// Longest time between trace checks (`poll_step`, default 10 s); the
    /// first one comes after 0.1 s, the waits doubling up to it.
    pub poll_step: Duration,
}
