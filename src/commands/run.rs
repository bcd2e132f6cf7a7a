//! `run CONFIG`: the service. Loads the configuration, takes the state
//! file's lock, migrates legacy state entries, starts the monitoring
//! endpoints, wires the runners and runs the actors until a signal stops
//! them; returns the process exit code.

use super::apply_config_logging;
use crate::cli::RunArgs;
use crate::instance_lock::{self, InstanceLock, LockError};
use crate::logging::{LogFormat, Logging};
use crate::{
    build_info, config, monitoring, notify, reload, runtime, signal, state_migration, wiring,
};
use paas_actors::service::{run_service, service_control, ServiceError};
use slog::{error, info, warn, Level};
use std::rc::Rc;
use std::time::Duration;

/// A start-up error: through the logger in JSON mode (one object per
/// line), else on stderr as the program's message.
fn startup_error(logging: &Logging, e: &dyn std::fmt::Display) {
    match logging.format {
        LogFormat::Json => error!(logging.logger, "cannot start"; "error" => %e),
        LogFormat::Term => eprintln!("heptapod-paas-runner: {e}"),
    }
}

/// The `run` command.
pub fn run(args: RunArgs, logging: &mut Logging, cli_level: Level) -> i32 {
    let loaded = match config::load(&args.config) {
        Ok(loaded) => loaded,
        Err(e) => {
            startup_error(logging, &e);
            return e.exit_code();
        }
    };
    apply_config_logging(logging, &args.log, cli_level, &loaded.config);
    let logging: &Logging = logging;
    let logger = &logging.logger;
    info!(logger, "starting";
          "version" => env!("CARGO_PKG_VERSION"), "revision" => build_info::REVISION,
          "pid" => std::process::id());
    for warning in &loaded.warnings {
        warn!(logger, "configuration warning"; "detail" => warning);
    }
    let overrides = wiring::Overrides {
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
    let config = loaded.config;
    let listen_address = args
        .listen_address
        .or_else(|| config.listen_address.clone());
    info!(logger, "configuration loaded";
          "config" => %config.path.display(), "runners" => config.runners.len());
    // Held until the process ends: taken before the state is read.
    let _lock = match config.state_file.as_deref().map(InstanceLock::acquire) {
        None => None,
        Some(Ok(lock)) => Some(lock),
        Some(Err(e)) => {
            match &e {
                // A configuration mistake: located in the file.
                LockError::Directory {
                    state_file,
                    directory,
                    problem,
                } => startup_error(
                    logging,
                    &config.key_message(
                        "state_file",
                        Some(&format!("{:?}", state_file.display().to_string())),
                        &instance_lock::directory_problem(directory, problem),
                    ),
                ),
                _ => startup_error(logging, &e),
            }
            return e.exit_code();
        }
    };
    if let Some(state_file) = &config.state_file {
        match state_migration::migrate(state_file, &state_migration::renames(&config)) {
            Ok(0) => {}
            Ok(n) => info!(logger, "state entries renamed to the runners' current identities";
                           "entries" => n, "state_file" => %state_file.display()),
            Err(e) => {
                startup_error(logging, &e);
                return 1;
            }
        }
    }

    let system = match runtime::system() {
        Ok(system) => system,
        Err(e) => {
            startup_error(logging, &format!("cannot start the async runtime: {e}"));
            return 1;
        }
    };
    system.block_on(async move {
        let (handle, control) = service_control();
        monitoring::set_version(handle.metrics());
        // Bound before any network call: a bind failure is a start-up error.
        // On the early returns below, the process exit ends the server.
        let server = match listen_address.as_deref() {
            None => None,
            Some(address) => match monitoring::start(address, handle.clone()) {
                Ok(server) => {
                    let addrs: Vec<String> = server.addrs.iter().map(|a| a.to_string()).collect();
                    info!(logger, "monitoring endpoints listening"; "address" => addrs.join(" "));
                    Some(server)
                }
                Err(e) => {
                    startup_error(logging, &e);
                    return 2;
                }
            },
        };
        let service = match wiring::build(&config, &overrides, handle.metrics(), logger).await {
            Ok(service) => service,
            Err(e) => {
                startup_error(logging, &e);
                return e.exit_code();
            }
        };
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
        let control = control.with_reloader(reload::reloader(
            config.clone(),
            overrides.clone(),
            settings.quota,
            handle.metrics().clone(),
            logger.clone(),
        ));
        if let Err(e) = signal::install(handle, args.debug_signal, logger.clone()) {
            error!(logger, "cannot install signal handlers"; "error" => %e);
            return 1;
        }
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
        match ended {
            Ok(report) => match report.snapshot_error {
                None => {
                    info!(logger, "stopped";
                          "tracked_jobs" => report.tracked_jobs,
                          "forced" => report.forced,
                          "poll_cycles" => report.poll_cycles);
                    0
                }
                Some(why) => {
                    error!(logger, "stopped, but the final state could not be written";
                           "error" => why, "tracked_jobs" => report.tracked_jobs);
                    1
                }
            },
            Err(ServiceError::State(e)) => {
                startup_error(logging, &e);
                1
            }
            Err(e) => {
                startup_error(logging, &format!("cannot start the service: {e}"));
                2
            }
        }
    })
}
