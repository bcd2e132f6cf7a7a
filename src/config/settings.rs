//! Stage two: the typed, validated settings the program uses.
//!
//! Nothing here is read from the file directly; [`super::validate`] builds
//! these values, so every field already holds a checked value or its default.
//! The settings the actors use are the actors' own types
//! ([`SupervisorSettings`], [`RunnerSettings`], declared key by key in
//! `paas_actors::settings`), and the executor sections the executors' own
//! ([`CleverSettings`], [`LocalDockerSettings`]): validation builds them
//! directly, with the defaults their modules declare.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::error::Location;
use super::raw::LineIndex;
use crate::executors::clever::CleverSettings;
use crate::executors::local_docker::LocalDockerSettings;
use crate::listen_address::ListenAddress;
use crate::secret::Secret;
use paas_actors::settings::{RunnerSettings, SupervisorSettings};

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The actors' global settings as the file sets them (the keys
    /// `paas_actors::settings` declares, defaults included); the quota and
    /// what the file cannot set keep their defaults until the wiring fills
    /// them.
    pub settings: SupervisorSettings,
    /// Where running jobs are recorded across restarts (`state_file`), as written.
    pub state_file: Option<PathBuf>,
    /// The reference of the weighted quota (`[quota_computation]`, required).
    pub quota_computation: QuotaComputation,
    /// Address for a metrics/health endpoint, if any (`listen_address`).
    pub listen_address: Option<ListenAddress>,
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
    /// This crate's keys whose change needs a restart ([`super::keys`],
    /// class `Restart`; none has a default or holds a secret), as written:
    /// what a reload compares.
    pub(crate) restart_values: BTreeMap<&'static str, toml::Value>,
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
/// `reference_jobs_count` jobs of `reference_flavor` on `reference_runner`
/// (its `allowed_fraction_per_runner` is one of the actors' settings).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaComputation {
    /// Human `name` of a configured runner (checked to exist).
    pub reference_runner: String,
    /// Flavor name (checked later, when the runner's flavors are known).
    pub reference_flavor: String,
    /// Number of reference jobs (positive).
    pub reference_jobs_count: u32,
}

/// The PAAS executor of a runner section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// `clever-docker`: one Clever Cloud application per job.
    CleverDocker,
    /// `clever-service-docker`: Clever Cloud applications running the
    /// helper service, which take one job after another.
    CleverServiceDocker,
    /// `local-docker`: local Docker containers, for tests and development.
    LocalDocker,
}

impl ExecutorKind {
    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::CleverDocker => "clever-docker",
            ExecutorKind::CleverServiceDocker => "clever-service-docker",
            ExecutorKind::LocalDocker => "local-docker",
        }
    }

    /// Every executor, as the configuration spells them.
    pub const ALL: [ExecutorKind; 3] = [
        ExecutorKind::CleverDocker,
        ExecutorKind::CleverServiceDocker,
        ExecutorKind::LocalDocker,
    ];

    /// True for the executors over Clever Cloud applications (the `cc_*`
    /// keys).
    pub fn is_clever(self) -> bool {
        matches!(
            self,
            ExecutorKind::CleverDocker | ExecutorKind::CleverServiceDocker
        )
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
    /// Clever Cloud settings (`Some` iff `executor` is `CleverDocker` or
    /// `CleverServiceDocker`; for the latter with its `service` part).
    pub clever: Option<CleverSettings>,
    /// Local Docker settings (`Some` iff `executor` is `LocalDocker`).
    pub local_docker: Option<LocalDockerSettings>,
    /// The trace-watch token (`[runners.paas_job_trace_watch]`), if any:
    /// `settings.trace_watch` is set exactly when it is.
    pub trace_watch_token: Option<Secret>,
    /// Base image of the launched runner (`heptapod_runner_main_image`).
    pub main_image: Option<String>,
    /// `tls-ca-file`: CA certificates the coordinator client trusts besides
    /// the system's (relative paths resolved against the configuration
    /// file's directory).
    pub tls_ca_file: Option<PathBuf>,
    /// The settings the actors use (the keys `paas_actors::settings`
    /// declares, the section's `name` as label).
    pub settings: RunnerSettings,
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
            .field("trace_watch_token", &self.trace_watch_token)
            .field("main_image", &self.main_image)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("settings", &self.settings)
            .field("raw_keys", &self.raw.keys().collect::<Vec<_>>())
            .finish()
    }
}
