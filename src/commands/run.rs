//! `run CONFIG`: the service. Loads the configuration, takes the state
//! file's lock, migrates legacy state entries, starts the monitoring
//! endpoints, wires the runners and runs the actors until a signal stops
//! them. Why it could not is a [`RunError`].

use super::apply_config_logging;
use crate::cli::RunArgs;
use crate::config::{Config, ConfigError};
use crate::descriptors::{self, Budget};
use crate::instance_lock::{self, InstanceLock, LockError};
use crate::logging::Logging;
use crate::monitoring::{BindError, MonitoringServer};
use crate::state_migration::MigrationError;
use crate::state_owner::{self, RootInForeignDirectory};
use crate::wiring::{Overrides, WiringError};
use crate::{
    build_info, config, monitoring, notify, reload, runtime, signal, state_migration, wiring,
};
use paas_actors::service::{run_service, service_control, ServiceError, ServiceHandle};
use paas_actors::state::StateError;
use paas_actors::ExitReport;
use slog::{info, warn, Level, Logger};
use std::rc::Rc;
use std::time::Duration;

/// Why the service did not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state file's directory is missing or not writable: the message
    /// locates `state_file` in the configuration.
    #[error("{0}")]
    StateDirectory(String),
    /// Another service holds the state file's lock, or the lock file fails.
    #[error(transparent)]
    Lock(LockError),
    /// Run as root in a state directory that belongs to another user.
    #[error(transparent)]
    Root(#[from] RootInForeignDirectory),
    /// The legacy state entries could not be renamed.
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// No async runtime.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The monitoring endpoints cannot listen on `listen_address`.
    #[error(transparent)]
    Monitoring(#[from] BindError),
    /// The runners' clients, executors or quota cannot be set up.
    #[error(transparent)]
    Wiring(#[from] WiringError),
    /// The signal handlers cannot be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The state file cannot be read.
    #[error(transparent)]
    State(StateError),
    /// The service refused its settings or runners.
    #[error("cannot start the service: {0}")]
    Service(ServiceError),
    /// The service stopped, but its final state was not written.
    #[error("stopped, but the final state could not be written: {why}")]
    FinalState {
        /// Why the write failed.
        why: String,
        /// Jobs the unwritten state held.
        tracked_jobs: usize,
    },
}

/// The `run` command.
pub fn run(args: RunArgs, logging: &mut Logging, cli_level: Level) -> Result<(), RunError> {
    let loaded = config::load(&args.config)?;
    apply_config_logging(logging, &args.log, cli_level, &loaded.config);
    let logger = &logging.logger;
    info!(logger, "starting";
          "version" => env!("CARGO_PKG_VERSION"), "revision" => build_info::REVISION,
          "pid" => std::process::id());
    for warning in &loaded.warnings {
        warn!(logger, "configuration warning"; "detail" => warning);
    }
    let budget = descriptor_budget(logger);
    let overrides = overrides(&args, logger);
    let config = loaded.config;
    let listen_address = args
        .listen_address
        .or_else(|| config.listen_address.clone());
    info!(logger, "configuration loaded";
          "config" => %config.path.display(), "runners" => config.runners.len());
    if let Some(state_file) = &config.state_file {
        state_owner::refuse_root_in_foreign_directory(&instance_lock::state_directory(state_file))?;
    }
    // Held until the process ends: taken before the state is read.
    let _lock = lock_state_file(&config)?;
    migrate_state(&config, logger)?;
    let system = runtime::system().map_err(RunError::Runtime)?;
    system.block_on(serve(
        &config,
        &overrides,
        listen_address.as_deref().map(|a| (a, budget)),
        args.debug_signal,
        logger,
    ))
}

/// Raises the descriptor limit to its hard limit and draws the monitoring
/// server's share and the runner's reserve from it (`crate::descriptors`).
fn descriptor_budget(logger: &Logger) -> Budget {
    let limit = match descriptors::raise_limit() {
        Ok(raised) => {
            if raised.now != raised.before {
                info!(logger, "file descriptor limit raised to the hard limit";
                      "from" => raised.before, "to" => raised.now);
            }
            raised.now
        }
        Err(e) => {
            let limit = descriptors::current_limit().unwrap_or(LOW_DESCRIPTOR_LIMIT);
            warn!(logger, "cannot raise the file descriptor limit";
                  "limit" => limit, "error" => %e);
            limit
        }
    };
    let budget = Budget::for_limit(limit);
    if limit < LOW_DESCRIPTOR_LIMIT {
        warn!(logger, "the file descriptor limit is low: raise it (LimitNOFILE= in the unit, \
                       ulimit -n)";
              "limit" => limit, "monitoring_connections" => budget.monitoring_connections,
              "reserve" => budget.reserve);
    } else {
        info!(logger, "file descriptors";
              "limit" => limit, "monitoring_connections" => budget.monitoring_connections,
              "reserve" => budget.reserve);
    }
    budget
}

/// Below this descriptor limit, start-up warns (systemd's default soft
/// limit, which a service taking many jobs at once can reach).
const LOW_DESCRIPTOR_LIMIT: u64 = 1024;

/// The command line's overrides of configuration values; the deprecated
/// options are warned about.
fn overrides(args: &RunArgs, logger: &Logger) -> Overrides {
    let overrides = Overrides {
        poll_cycles: args.poll_cycles,
        // 0 keeps the configuration's value (as `check_interval = 0` does).
        check_interval: args
            .poll_interval
            .filter(|&s| s > 0)
            .map(Duration::from_secs),
        job_progress_poll_interval: args
            .job_progress_poll_interval
            .filter(|&s| s > 0)
            .map(Duration::from_secs),
    };
    if args.poll_interval.is_some() {
        warn!(
            logger,
            "--poll-interval is deprecated: set check_interval in the configuration"
        );
    }
    if args.job_progress_poll_interval.is_some() {
        warn!(logger, "--job-progress-poll-interval is deprecated: set job_progress_poll_interval in the configuration");
    }
    overrides
}

/// The state file's lock (none without a state file).
fn lock_state_file(config: &Config) -> Result<Option<InstanceLock>, RunError> {
    match config.state_file.as_deref().map(InstanceLock::acquire) {
        None => Ok(None),
        Some(Ok(lock)) => Ok(Some(lock)),
        Some(Err(e)) => Err(match &e {
            // A configuration mistake: located in the file.
            LockError::Directory {
                state_file,
                directory,
                problem,
            } => RunError::StateDirectory(config.key_message(
                "state_file",
                Some(&format!("{:?}", state_file.display().to_string())),
                &instance_lock::directory_problem(directory, problem),
            )),
            _ => RunError::Lock(e),
        }),
    }
}

/// Renames the state entries of the runners' legacy identities.
fn migrate_state(config: &Config, logger: &Logger) -> Result<(), RunError> {
    if let Some(state_file) = &config.state_file {
        match state_migration::migrate(state_file, &state_migration::renames(config))? {
            0 => {}
            n => info!(logger, "state entries renamed to the runners' current identities";
                       "entries" => n, "state_file" => %state_file.display()),
        }
    }
    Ok(())
}

/// The service, on the actix system: the monitoring endpoints, the runners'
/// wiring, systemd notifications, reload and signals, then the actors until
/// they stop.
async fn serve(
    config: &Config,
    overrides: &Overrides,
    listen: Option<(&str, Budget)>,
    debug_signal: bool,
    logger: &Logger,
) -> Result<(), RunError> {
    let (handle, control) = service_control();
    monitoring::set_version(handle.metrics());
    // Bound before any network call: a bind failure is a start-up error.
    // On the early returns below, the server ends with the runtime.
    let server = listen
        .map(|(address, budget)| start_monitoring(address, budget, &handle, logger))
        .transpose()?;
    let service = wiring::build(config, overrides, handle.metrics(), logger).await?;
    let mut settings = service.settings;
    let mut control = control;
    match notify::SystemdNotifier::from_env() {
        Ok(Some(notifier)) => {
            settings.alive_interval = notifier.alive_interval();
            control = control.with_observer(Rc::new(notifier));
        }
        Ok(None) => {}
        Err(e) => warn!(logger, "systemd notifications disabled"; "error" => %e),
    }
    let reloads = reload::Reloads::new(
        config.clone(),
        overrides.clone(),
        settings.quota,
        handle.metrics().clone(),
        control.settings_sender(),
        logger.clone(),
    );
    signal::install(handle, reloads.start(), debug_signal, logger.clone())
        .map_err(RunError::Signals)?;
    let ended = run_service(
        settings,
        service.runners,
        service.store,
        logger.clone(),
        control,
    )
    .await;
    if let Some(server) = server {
        server.stop().await;
    }
    stopped(ended, logger)
}

/// The monitoring endpoints, listening on `address`; a WARN when other
/// hosts can reach them (they have no authentication).
fn start_monitoring(
    address: &str,
    budget: Budget,
    handle: &ServiceHandle,
    logger: &Logger,
) -> Result<MonitoringServer, RunError> {
    let server = monitoring::start(address, handle.clone(), budget)?;
    let addrs: Vec<String> = server.addrs.iter().map(|a| a.to_string()).collect();
    info!(logger, "monitoring endpoints listening"; "address" => addrs.join(" "));
    let reachable = server.reachable_addrs();
    if !reachable.is_empty() {
        let reachable: Vec<String> = reachable.iter().map(|a| a.to_string()).collect();
        warn!(logger, "the monitoring endpoints have no authentication and listen on an address \
                       other hosts may reach: anyone who reaches it reads the metrics and the \
                       job list. Bind listen_address to 127.0.0.1, or restrict the port to \
                       the monitoring network";
              "address" => reachable.join(" "));
    }
    Ok(server)
}

/// How the service ended: stopped with its final state written, or why not.
fn stopped(ended: Result<ExitReport, ServiceError>, logger: &Logger) -> Result<(), RunError> {
    match ended {
        Ok(report) => match report.snapshot_error {
            None => {
                info!(logger, "stopped";
                      "tracked_jobs" => report.tracked_jobs,
                      "forced" => report.forced,
                      "poll_cycles" => report.poll_cycles);
                Ok(())
            }
            Some(why) => Err(RunError::FinalState {
                why,
                tracked_jobs: report.tracked_jobs,
            }),
        },
        Err(ServiceError::State(e)) => Err(RunError::State(e)),
        Err(e) => Err(RunError::Service(e)),
    }
}
