//! Wiring: builds the real environment of the actors from the configuration.
//!
//! One GitLab client and one PAAS executor per `[[runners]]` section, the
//! supervisor settings from the global keys, the weighted quota from
//! `[quota_computation]` (which needs the reference runner's flavors, hence
//! a network call), and the state file store. Must run inside an actix
//! system (awc clients are bound to it).

use crate::config::{runner_key, Config, ExecutorKind, RunnerConfig};
use crate::executors::clever::{
    CleverExecutor, CleverServiceExecutor, CleverSettings, GroupAttributes, Tenancy,
};
use crate::executors::local_docker::{socket_path, LocalDocker, LocalDockerSettings};
use crate::gitlab::{
    learn_runner_id, load_or_create_system_id, runner_ids_path, system_id_path,
    CoordinatorSettings, GitlabCoordinator,
};
use crate::preflight::{docker_version, DockerProblem, Patience, StartupProgress, PATIENCE};
use paas_actors::metrics::{ApiCounter, Metrics};
use paas_actors::ports::{Coordinator, Paas, PaasError, TwoDecimals, Weight};
use paas_actors::service::{RunnerPorts, SupervisorSettings};
use paas_actors::state::{FileStore, StateStore};
use paas_actors::untrusted::untrusted;
use slog::{info, o, warn, Logger};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How long start-up keeps retrying to learn the reference flavor's weight
/// when the PAAS API is unreachable, before giving up (exit 1; systemd
/// restarts the service).
pub const QUOTA_SETUP_PATIENCE: Duration = Duration::from_secs(60);

/// Why the service could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// The configuration is unusable.
    #[error("{message}")]
    Config {
        /// The offending key (dotted path).
        key: String,
        /// `FILE:LINE: `KEY` = VALUE: what is wrong and what is expected`
        /// ([`Config::key_message`]).
        message: String,
    },
    /// Something outside the configuration failed.
    #[error("{0}")]
    Setup(String),
}

/// Command-line overrides of configuration values.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--poll-cycles`.
    pub poll_cycles: Option<u64>,
    /// `--poll-interval` (deprecated): `check_interval`.
    pub check_interval: Option<Duration>,
    /// `--job-progress-poll-interval` (deprecated).
    pub job_progress_poll_interval: Option<Duration>,
}

/// Everything `paas_actors::service::run_service` needs.
pub struct Service {
    /// Global settings.
    pub settings: SupervisorSettings,
    /// One entry per runner section.
    pub runners: Vec<RunnerPorts>,
    /// The state file store.
    pub store: Rc<dyn StateStore>,
    /// Where the state is kept.
    pub state_file: PathBuf,
}

struct Built {
    ports: RunnerPorts,
    /// The concrete clever executor, for the flavor weights of the quota.
    clever: Option<Clever>,
    /// The concrete coordinator client, to give it its runner id.
    gitlab: Rc<GitlabCoordinator>,
}

/// The concrete executor of a section over Clever Cloud applications.
#[derive(Clone)]
enum Clever {
    /// clever-docker.
    Docker(Rc<CleverExecutor>),
    /// clever-service-docker.
    Service(Rc<CleverServiceExecutor>),
}

impl Clever {
    /// Weight of the flavor a user would name `flavor`.
    async fn flavor_weight(&self, flavor: &str) -> Result<Weight, PaasError> {
        match self {
            Clever::Docker(e) => e.flavor_weight(flavor).await,
            Clever::Service(e) => e.flavor_weight(flavor).await,
        }
    }
}

/// A runner section's executor.
struct Executor {
    paas: Rc<dyn Paas>,
    /// The same, for a section over Clever Cloud applications.
    clever: Option<Clever>,
}

/// A configuration error about `key` (dotted path) whose value is `value`
/// (already quoted), located in the file.
fn config_error(config: &Config, key: &str, value: Option<&str>, detail: &str) -> WiringError {
    WiringError::Config {
        key: key.to_string(),
        message: config.key_message(key, value, detail),
    }
}

/// A local-docker `host` (of runner section `index`) that the executor or
/// the engine refuses.
fn host_error(config: &Config, index: usize, host: &str, e: &dyn std::fmt::Display) -> WiringError {
    config_error(
        config,
        &runner_key(index, "host"),
        Some(&format!("{host:?}")),
        &e.to_string(),
    )
}

/// Assembles the service: clients, executors, quota, state store, for
/// `state_file` (the local start-up checks passed: `crate::local_checks`).
/// `progress` is told of each start-up retry.
pub async fn build(
    config: &Config,
    state_file: &Path,
    overrides: &Overrides,
    metrics: &Arc<Metrics>,
    progress: Option<Rc<dyn StartupProgress>>,
    logger: &Logger,
) -> Result<Service, WiringError> {
    let state_file = state_file.to_path_buf();
    let system_id = load_or_create_system_id(&system_id_path(&state_file)).map_err(|e| {
        WiringError::Setup(format!(
            "cannot read or create the runner system id beside the state file {}: {e}",
            state_file.display()
        ))
    })?;

    // libgit2's server timeouts, before any fetch.
    crate::git::init_transport();
    let mut built = Vec::with_capacity(config.runners.len());
    for (index, runner) in config.runners.iter().enumerate() {
        let b = build_runner(config, index, runner, &system_id, metrics, logger)?;
        let runner_logger = logger.new(o!("runner" => runner.unique_name.clone()));
        learn_runner_id(
            &b.gitlab,
            &runner_ids_path(&state_file),
            &runner.unique_name,
            &runner.token,
            &runner_logger,
        )
        .await;
        built.push(b);
    }

    check_executors(config, &built, &progress, logger).await?;
    let quota = compute_quota(config, &built, &progress, logger).await?;
    check_runners_can_poll(config, &built, quota, logger).await?;
    let settings = supervisor_settings(config, overrides, quota);
    info!(logger, "weighted quota computed";
          "quota" => TwoDecimals(quota),
          "reference_runner" => &config.quota_computation.reference_runner,
          "reference_flavor" => &config.quota_computation.reference_flavor,
          "reference_jobs_count" => config.quota_computation.reference_jobs_count);
    let store: Rc<dyn StateStore> = Rc::new(FileStore::new(state_file.clone()));
    Ok(Service {
        settings,
        runners: built.into_iter().map(|b| b.ports).collect(),
        store,
        state_file,
    })
}

/// The ports of runner section number `index` of `config`, for a runner a
/// reload adds (SIGHUP): built on the service's thread (the system id was
/// read with the file); the runner then learns its runner id as the
/// start-up's runners do (remembered beside `config`'s state file, else
/// `POST /runners/verify`), so that reconciliation can prove its jobs.
pub async fn runner_ports(
    config: &Config,
    index: usize,
    runner: &RunnerConfig,
    system_id: &str,
    metrics: &Arc<Metrics>,
    logger: &Logger,
) -> Result<RunnerPorts, WiringError> {
    let b = build_runner(config, index, runner, system_id, metrics, logger)?;
    if let Some(state_file) = &config.state_file {
        let runner_logger = logger.new(o!("runner" => runner.unique_name.clone()));
        learn_runner_id(
            &b.gitlab,
            &runner_ids_path(state_file),
            &runner.unique_name,
            &runner.token,
            &runner_logger,
        )
        .await;
    }
    Ok(b.ports)
}

fn build_runner(
    config: &Config,
    index: usize,
    runner: &RunnerConfig,
    system_id: &str,
    metrics: &Arc<Metrics>,
    logger: &Logger,
) -> Result<Built, WiringError> {
    let runner_logger = logger.new(o!("runner" => runner.unique_name.clone()));
    let coordinator = build_coordinator(config, index, runner, system_id, metrics, &runner_logger)?;
    let Executor { paas, clever } =
        build_executor(config, index, runner, &coordinator, metrics, &runner_logger)?;
    let gitlab = coordinator.clone();
    let coordinator: Rc<dyn Coordinator> = coordinator;
    Ok(Built {
        gitlab,
        ports: RunnerPorts {
            name: runner.unique_name.clone(),
            coordinator,
            paas,
            settings: runner.settings.clone(),
        },
        clever,
    })
}

/// The API counter of `runner`: its requests with its `runner` label
/// (`label`, else its unique name, as the supervisor labels it).
fn api_counter(metrics: &Arc<Metrics>, runner: &RunnerConfig) -> ApiCounter {
    let label = runner.settings.label.as_deref();
    ApiCounter::new(metrics.clone(), label.unwrap_or(&runner.unique_name))
}

/// The GitLab client of runner section `index`.
fn build_coordinator(
    config: &Config,
    index: usize,
    runner: &RunnerConfig,
    system_id: &str,
    metrics: &Arc<Metrics>,
    runner_logger: &Logger,
) -> Result<Rc<GitlabCoordinator>, WiringError> {
    let mut coordinator_settings =
        CoordinatorSettings::new(runner.url.clone(), runner.token.clone());
    coordinator_settings.trace_watch_token = runner.trace_watch_token.clone();
    coordinator_settings.system_id = Some(system_id.to_string());
    coordinator_settings.logger = Some(runner_logger.clone());
    coordinator_settings.metrics = Some(api_counter(metrics, runner));
    coordinator_settings.tls_ca_file = runner.tls_ca_file.clone();
    if let Some(clever) = &runner.clever {
        if let Tenancy::Multi {
            attributes_token, ..
        } = &clever.tenancy
        {
            coordinator_settings.attributes_token = Some(attributes_token.clone());
        }
    }
    let coordinator = GitlabCoordinator::new(coordinator_settings).map_err(|e| {
        config_error(
            config,
            &runner_key(index, "url"),
            Some(&crate::config::shown_value("url", &runner.url)),
            &e.to_string(),
        )
    })?;
    Ok(Rc::new(coordinator))
}

/// The executor of runner section `index`.
fn build_executor(
    config: &Config,
    index: usize,
    runner: &RunnerConfig,
    coordinator: &Rc<GitlabCoordinator>,
    metrics: &Arc<Metrics>,
    runner_logger: &Logger,
) -> Result<Executor, WiringError> {
    let clever_settings = || {
        runner.clever.clone().ok_or_else(|| {
            config_error(
                config,
                &runner_key(index, "executor"),
                Some(&format!("{:?}", runner.executor.as_str())),
                "a runner over Clever Cloud applications without its cc_* settings",
            )
        })
    };
    let setup = |e: crate::executors::clever::CleverSetupError| {
        WiringError::Setup(format!("runner {}: {e}", runner.name))
    };
    let attributes: Rc<dyn GroupAttributes> = coordinator.clone();
    let (paas, clever): (Rc<dyn Paas>, _) = match runner.executor {
        ExecutorKind::CleverDocker => {
            let executor = Rc::new(
                CleverExecutor::new(clever_settings()?, Some(attributes), runner_logger.clone())
                    .map_err(setup)?
                    .with_metrics(api_counter(metrics, runner)),
            );
            (executor.clone(), Some(Clever::Docker(executor)))
        }
        ExecutorKind::CleverServiceDocker => {
            let executor = Rc::new(
                CleverServiceExecutor::new(
                    clever_settings()?,
                    Some(attributes),
                    runner_logger.clone(),
                )
                .map_err(setup)?
                .with_metrics(api_counter(metrics, runner)),
            );
            (executor.clone(), Some(Clever::Service(executor)))
        }
        ExecutorKind::LocalDocker => {
            let settings = runner.local_docker.clone().ok_or_else(|| {
                config_error(
                    config,
                    &runner_key(index, "executor"),
                    Some("\"local-docker\""),
                    "local-docker runner without its local-docker settings",
                )
            })?;
            let host = settings.host.clone();
            let executor =
                LocalDocker::new(settings).map_err(|e| host_error(config, index, &host, &e))?;
            (Rc::new(executor), None)
        }
    };
    Ok(Executor { paas, clever })
}

/// Weight of the reference flavor times the reference jobs count. Transient
/// PAAS errors are retried with back-off for [`QUOTA_SETUP_PATIENCE`].
async fn compute_quota(
    config: &Config,
    built: &[Built],
    progress: &Option<Rc<dyn StartupProgress>>,
    logger: &Logger,
) -> Result<Weight, WiringError> {
    let qc = &config.quota_computation;
    let (index, runner) = config
        .runners
        .iter()
        .enumerate()
        .find(|(_, r)| r.name == qc.reference_runner)
        .ok_or_else(|| {
            config_error(
                config,
                "quota_computation.reference_runner",
                Some(&format!("{:?}", qc.reference_runner)),
                "no [[runners]] section has this name",
            )
        })?;
    let weight = match built.get(index).and_then(|b| b.clever.clone()) {
        None => 1.0, // local-docker: every job weighs 1, whatever the flavor.
        Some(executor) => {
            let mut patience = Patience::new(QUOTA_SETUP_PATIENCE, progress.clone());
            loop {
                match executor.flavor_weight(&qc.reference_flavor).await {
                    Ok(w) => break w,
                    Err(e) if is_retryable(&e) => {
                        if !patience.retry(logger, "reference flavor weight", &e).await {
                            return Err(WiringError::Setup(format!(
                                "cannot compute the weighted quota: the flavors of runner {:?} \
                                 stayed unavailable for {} s: {e}",
                                runner.name,
                                QUOTA_SETUP_PATIENCE.as_secs()
                            )));
                        }
                    }
                    Err(e) => {
                        return Err(config_error(
                            config,
                            "quota_computation.reference_flavor",
                            Some(&format!("{:?}", qc.reference_flavor)),
                            &e.message,
                        ))
                    }
                }
            }
        }
    };
    Ok(weight * f64::from(qc.reference_jobs_count))
}

/// Checks what each runner's executor needs before the service is ready:
/// every flavor a clever-docker section names exists in the catalog
/// (`cc_default_flavor`, `cc_max_flavor`); the local-docker engine answers
/// and the `docker` command line exists. A mistake is a configuration
/// error naming the key; a transient failure is retried with back-off,
/// then exit code 1.
async fn check_executors(
    config: &Config,
    built: &[Built],
    progress: &Option<Rc<dyn StartupProgress>>,
    logger: &Logger,
) -> Result<(), WiringError> {
    for (index, (runner, b)) in config.runners.iter().zip(built).enumerate() {
        if let (Some(executor), Some(cc)) = (&b.clever, &runner.clever) {
            check_flavors(config, index, runner, executor, cc, progress, logger).await?;
        }
        if let Some(ld) = &runner.local_docker {
            check_engine(config, index, runner, ld, progress, logger).await?;
        }
    }
    Ok(())
}

/// Every flavor a clever-docker section names is in the catalog.
async fn check_flavors(
    config: &Config,
    index: usize,
    runner: &RunnerConfig,
    executor: &Clever,
    cc: &CleverSettings,
    progress: &Option<Rc<dyn StartupProgress>>,
    logger: &Logger,
) -> Result<(), WiringError> {
    let mut flavors = vec![("cc_default_flavor", cc.default_flavor.as_str())];
    if let Some(max) = &cc.max_flavor {
        flavors.push(("cc_max_flavor", max.as_str()));
    }
    for (key, flavor) in flavors {
        let mut patience = Patience::new(PATIENCE, progress.clone());
        loop {
            match executor.flavor_weight(flavor).await {
                Ok(_) => break,
                Err(e) if is_retryable(&e) => {
                    if !patience.retry(logger, key, &e).await {
                        return Err(WiringError::Setup(format!(
                            "runner {:?}: cannot check {key} = {flavor:?}: the flavor \
                             catalog stayed unavailable for {} s: {e}",
                            runner.name,
                            patience.limit().as_secs()
                        )));
                    }
                }
                Err(e) => {
                    return Err(config_error(
                        config,
                        &runner_key(index, key),
                        Some(&format!("{flavor:?}")),
                        &e.message,
                    ))
                }
            }
        }
    }
    Ok(())
}

/// The local-docker engine answers and the `docker` command line exists.
async fn check_engine(
    config: &Config,
    index: usize,
    runner: &RunnerConfig,
    ld: &LocalDockerSettings,
    progress: &Option<Rc<dyn StartupProgress>>,
    logger: &Logger,
) -> Result<(), WiringError> {
    let socket = socket_path(&ld.host).map_err(|e| host_error(config, index, &ld.host, &e))?;
    let mut patience = Patience::new(PATIENCE, progress.clone());
    loop {
        match docker_version(&ld.host, &socket).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_transient() => {
                if !patience.retry(logger, "docker version", &e).await {
                    return Err(WiringError::Setup(format!(
                        "runner {:?}: the Docker engine at {} did not answer for {} s: {e}",
                        runner.name,
                        ld.host,
                        patience.limit().as_secs()
                    )));
                }
            }
            Err(e @ DockerProblem::NoCli) => {
                return Err(config_error(
                    config,
                    &runner_key(index, "executor"),
                    Some("\"local-docker\""),
                    &e.to_string(),
                ))
            }
            Err(e) => return Err(host_error(config, index, &ld.host, &e)),
        }
    }
}

/// Refuses a configuration where a runner could never poll: the weight it
/// must reserve before asking for a job (its largest flavor) exceeds its
/// share of the quota. The Python runner silently never polls then.
async fn check_runners_can_poll(
    config: &Config,
    built: &[Built],
    quota: Weight,
    logger: &Logger,
) -> Result<(), WiringError> {
    for (index, (runner, b)) in config.runners.iter().zip(built).enumerate() {
        let share = quota
            * runner
                .settings
                .quota_max_fraction
                .min(config.settings.allowed_fraction_per_runner);
        let needed = match b.ports.paas.max_job_weight().await {
            Ok(w) => w,
            Err(e) => {
                // Not fatal: the supervisor retries; only a sure mismatch is refused.
                warn!(logger, "cannot check the largest job weight of a runner yet";
                      "runner" => &runner.unique_name, "error" => %untrusted(&e));
                continue;
            }
        };
        if needed > share + 1e-9 {
            let (key, value, advice) = match &runner.clever {
                Some(cc) => (
                    runner_key(index, "cc_max_flavor"),
                    cc.max_flavor.as_ref().map(|m| format!("{m:?}")),
                    "Set cc_max_flavor to a smaller flavor, or raise [quota_computation]",
                ),
                None => (
                    "quota_computation".to_string(),
                    None,
                    "Raise [quota_computation]",
                ),
            };
            return Err(config_error(
                config,
                &key,
                value.as_deref(),
                &format!(
                    "runner {:?} must reserve {needed:.3} (its largest job) before asking for a job, but its share of the weighted quota is only {share:.3}: it would never take a job. {advice} (reference_flavor / reference_jobs_count)",
                    runner.name
                ),
            ));
        }
    }
    Ok(())
}

fn is_retryable(e: &PaasError) -> bool {
    e.class != paas_actors::ports::PaasErrorClass::Permanent
}

/// The actors' global settings: the file's, the command line's overrides,
/// the quota.
pub fn supervisor_settings(
    config: &Config,
    overrides: &Overrides,
    quota: Weight,
) -> SupervisorSettings {
    let mut settings = config.settings.clone();
    if let Some(every) = overrides.check_interval {
        settings.check_interval = every;
    }
    if let Some(every) = overrides.job_progress_poll_interval {
        settings.job_progress_poll_interval = every;
    }
    settings.poll_cycles = overrides.poll_cycles;
    settings.quota = quota;
    settings
}
