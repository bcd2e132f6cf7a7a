//! `run CONFIG`: the service. Loads the configuration, installs the
//! signal handlers, runs the start-up checks that need no network
//! (`crate::local_checks`, the lock taken there), migrates legacy state
//! entries, starts the monitoring endpoints, wires the runners (the
//! network checks, which a stop signal interrupts) and runs the actors
//! until a signal stops them. Why it could not is a [`RunError`].

use super::apply_config_logging;
use crate::cli::RunArgs;
use crate::config::{Config, ConfigError};
use crate::descriptors::{self, Budget};
use crate::instance_lock;
use crate::listen_address::ListenAddress;
use crate::local_checks::{self, LocalCheckError, Mode};
use crate::logging::Logging;
use crate::monitoring::{BindError, MonitoringServer};
use crate::notify::SystemdNotifier;
use crate::preflight::{StartupProgress, PROGRESS_MARGIN};
use crate::reload::ReloadTrigger;
use crate::signal::StopRequest;
use crate::state_migration::MigrationError;
use crate::state_owner::{self, RootInForeignDirectory};
use crate::wiring::{Overrides, WiringError};
use crate::{
    build_info, config, monitoring, notify, reload, runtime, signal, state_migration, wiring,
};
use paas_actors::service::{
    run_service, service_control, ControlReceiver, ServiceError, ServiceHandle,
};
use paas_actors::state::StateError;
use paas_actors::ExitReport;
use slog::{info, warn, Level, Logger};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

/// Why the service did not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--listen-address` is not an address.
    #[error("--listen-address {given:?}: {why}")]
    ListenAddress {
        /// What the command line gave.
        given: String,
        /// Why it is refused.
        why: String,
    },
    /// A start-up check that needs no network failed (the same as
    /// `check`'s).
    #[error(transparent)]
    Local(#[from] LocalCheckError),
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
    let loaded = config::load(args.config.path());
    if let Ok(loaded) = &loaded {
        apply_config_logging(logging, &args.log, cli_level, &loaded.config);
    }
    let logger = logging.logger.clone();
    // First, whatever follows: a fatal error is told after it.
    info!(logger, "starting";
          "version" => env!("CARGO_PKG_VERSION"), "revision" => build_info::REVISION,
          "pid" => std::process::id());
    let loaded = loaded?;
    for warning in &loaded.warnings {
        warn!(logger, "configuration warning"; "detail" => warning);
    }
    let budget = descriptor_budget(&logger);
    let overrides = overrides(&args, &logger);
    let config = loaded.config;
    let listen_address = match &args.listen_address {
        Some(given) => Some(
            ListenAddress::parse(given).map_err(|e| RunError::ListenAddress {
                given: given.clone(),
                why: e.to_string(),
            })?,
        ),
        None => config.listen_address.clone(),
    };
    info!(logger, "configuration loaded";
          "config" => %config.path.display(), "runners" => config.runners.len());
    if let Some(state_file) = &config.state_file {
        state_owner::refuse_root_in_foreign_directory(&instance_lock::state_directory(state_file))?;
    }
    let system = runtime::system().map_err(RunError::Runtime)?;
    system.block_on(start(
        &config,
        &overrides,
        listen_address.as_ref().map(|a| (a, budget)),
        &args,
        &logger,
    ))
}

/// On the actix system: the signal handlers, then the local checks (the
/// lock is held until this returns), the state migration and the service.
async fn start(
    config: &Config,
    overrides: &Overrides,
    listen: Option<(&ListenAddress, Budget)>,
    args: &RunArgs,
    logger: &Logger,
) -> Result<(), RunError> {
    let (handle, control) = service_control();
    crate::logging::count_records_into(handle.metrics().clone());
    let reloads = ReloadTrigger::default();
    let stop = signal::install(
        handle.clone(),
        reloads.clone(),
        args.debug_signal,
        logger.clone(),
    )
    .map_err(RunError::Signals)?;
    let passed = local_checks::run(config, listen.map(|(a, _)| a), Mode::Run)?;
    if args.local_checks_only {
        info!(logger, "start-up checks without network passed; stopping (--local-checks-only)";
              "state_file" => %passed.state_file.display(), "tracked_jobs" => passed.tracked_jobs);
        return Ok(());
    }
    migrate_state(&passed.state_file, config, logger)?;
    let started = Started {
        handle,
        control,
        reloads,
        stop,
    };
    let served = serve(
        config,
        overrides,
        listen,
        &passed.state_file,
        started,
        logger,
    )
    .await;
    drop(passed.lock);
    served
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

/// Renames the state entries of the runners' legacy identities.
fn migrate_state(state_file: &Path, config: &Config, logger: &Logger) -> Result<(), RunError> {
    match state_migration::migrate(state_file, &state_migration::renames(config))? {
        0 => {}
        n => info!(logger, "state entries renamed to the runners' current identities";
                   "entries" => n, "state_file" => %state_file.display()),
    }
    Ok(())
}

/// What the start-up made before the service: its handle and control, the
/// reload trigger and the stop request of the signal handlers.
struct Started {
    handle: ServiceHandle,
    control: ControlReceiver,
    reloads: ReloadTrigger,
    stop: StopRequest,
}

/// The service, on the actix system: the monitoring endpoints, the runners'
/// wiring (given up at a stop signal: exit 0), systemd notifications and
/// reloads, then the actors until they stop.
async fn serve(
    config: &Config,
    overrides: &Overrides,
    listen: Option<(&ListenAddress, Budget)>,
    state_file: &Path,
    started: Started,
    logger: &Logger,
) -> Result<(), RunError> {
    let Started {
        handle,
        mut control,
        reloads,
        mut stop,
    } = started;
    monitoring::set_version(handle.metrics());
    // Bound before any network call: a bind failure is a start-up error.
    // On the early returns below, the server ends with the runtime.
    let server = listen
        .map(|(address, budget)| start_monitoring(&address.to_string(), budget, &handle, logger))
        .transpose()?;
    let notifier = match notify::SystemdNotifier::from_env() {
        Ok(notifier) => notifier.map(Rc::new),
        Err(e) => {
            warn!(logger, "systemd notifications disabled"; "error" => %e);
            None
        }
    };
    let progress = notifier.clone().map(|n| n as Rc<dyn StartupProgress>);
    if let Some(progress) = &progress {
        progress.waiting(PROGRESS_MARGIN, "start-up checks (coordinators, PAAS)");
    }
    let built = tokio::select! {
        built = wiring::build(config, state_file, overrides, handle.metrics(), progress, logger) => built,
        () = stop.requested() => {
            info!(logger, "stopped during the start-up checks, before the service started");
            if let Some(server) = server {
                server.stop().await;
            }
            return Ok(());
        }
    };
    let service = built?;
    let mut settings = service.settings;
    if let Some(notifier) = &notifier {
        settings.alive_interval = notifier.alive_interval();
        control = control.with_observer(notifier.clone());
    }
    let mut reloader = reload::Reloads::new(
        config.clone(),
        overrides.clone(),
        settings.quota,
        handle.metrics().clone(),
        control.settings_sender(),
        logger.clone(),
    );
    if let Some(notifier) = &notifier {
        reloader = reloader.with_observer(notifier.clone() as Rc<SystemdNotifier>);
    }
    reloader.start(&reloads);
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

/// The monitoring endpoints, listening on `address`.
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
