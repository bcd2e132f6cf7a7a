//! `heptapod-paas-runner`: thin entry point. Parses the command line, sets
//! up logging, and runs `run`, `register` or an operator command
//! (`commands`).
//!
//! Exit codes: 0 normal stop, 1 runtime failure, 2 configuration or usage
//! error.

use heptapod_paas_runner::cli::{
    self, CheckArgs, CliDocsArgs, Command, ConfigArgs, LogArgs, RegisterArgs, RunArgs,
    UnregisterArgs,
};
use heptapod_paas_runner::commands;
use heptapod_paas_runner::gitlab::{RunnersApi, Timeouts};
use heptapod_paas_runner::instance_lock::InstanceLock;
use heptapod_paas_runner::logging::{LogFormat, Logging};
use heptapod_paas_runner::register::{self, Given, Prompter};
use heptapod_paas_runner::secret::Secret;
use heptapod_paas_runner::{
    build_info, cli_docs, config, logging, monitoring, notify, reload, runtime, signal,
    state_migration, wiring,
};
use paas_actors::service::{run_service, service_control, ServiceError};
use slog::{error, info, warn, Level};
use std::io::IsTerminal;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

fn main() {
    let command = cli::from_env();
    let log_args = command.log_args();
    let level = match logging::parse_level(log_args.level().unwrap_or("INFO")) {
        Ok(level) => level,
        Err(e) => {
            eprintln!("heptapod-paas-runner: {e}");
            std::process::exit(2);
        }
    };
    let format = match logging::parse_format(log_args.log_format.as_deref().unwrap_or("term")) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("heptapod-paas-runner: {e}");
            std::process::exit(2);
        }
    };
    let mut logging = logging::init(level, format, logging::journal_from_env());
    let code = match command {
        Command::Run(args) => run(args, &mut logging, level),
        Command::Register(args) => register(args),
        Command::Check(args) => check(args, &mut logging, level),
        Command::Verify(args) => verify(&args, &mut logging, level),
        Command::List(args) => list(&args.config),
        Command::Unregister(args) => unregister(args),
        Command::GenerateCliDocs(args) => generate_cli_docs(&args),
    };
    // Flush the asynchronous log drain before exiting.
    drop(logging);
    std::process::exit(code);
}

/// A start-up error: through the logger in JSON mode (one object per
/// line), else on stderr as the program's message.
fn startup_error(logging: &Logging, e: &dyn std::fmt::Display) {
    match logging.format {
        LogFormat::Json => error!(logging.logger, "cannot start"; "error" => %e),
        LogFormat::Term => eprintln!("heptapod-paas-runner: {e}"),
    }
}

/// Applies the configuration's `log_level` and `log_format`, unless the
/// command line gave them (`-l`/`--debug`, `--log-format`).
fn apply_config_logging(
    logging: &mut Logging,
    log: &LogArgs,
    cli_level: Level,
    config: &config::Config,
) {
    let level = match log.level() {
        Some(_) => cli_level,
        None => config.log_level.unwrap_or(cli_level),
    };
    let format = match log.log_format {
        Some(_) => logging.format,
        None => config.log_format.unwrap_or(logging.format),
    };
    if level != cli_level || format != logging.format {
        *logging = logging::init(level, format, logging::journal_from_env());
    }
}

fn run(args: RunArgs, logging: &mut Logging, cli_level: Level) -> i32 {
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
            startup_error(logging, &e);
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

/// Turns the terminal's echo on or off (`stty`), for typing a token.
fn set_echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

fn generate_cli_docs(args: &CliDocsArgs) -> i32 {
    match cli_docs::write_all(&args.dir) {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            0
        }
        Err(e) => {
            eprintln!(
                "heptapod-paas-runner: cannot write into {}: {e}",
                args.dir.display()
            );
            1
        }
    }
}

fn register(args: RegisterArgs) -> i32 {
    let exists = args.config.exists();
    let interactive = !args.non_interactive && std::io::stdin().is_terminal();
    // GitLab Runner's environment variables, as defaults of the flags.
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut given = Given {
        name: args.name.or_else(|| env("RUNNER_NAME")),
        url: args.coordinator_url.or_else(|| env("CI_SERVER_URL")),
        registration_token: args
            .registration_token
            .or_else(|| env("REGISTRATION_TOKEN").map(Secret::new)),
        token: args
            .token
            .or_else(|| env("CI_SERVER_TOKEN").map(Secret::new)),
        executor: args.executor.or_else(|| env("RUNNER_EXECUTOR")),
        max_concurrency: args.max_concurrency,
        state_file: args.state_file_path,
    };
    if let Some(path) = &args.token_file {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "heptapod-paas-runner register: cannot read --token-file {}: {e}",
                    path.display()
                );
                return 2;
            }
        };
        match register::TokenKind::classify(text.trim()) {
            register::TokenKind::Authentication(t) => {
                given.token = Some(t);
                given.registration_token = None;
            }
            register::TokenKind::Registration(t) => {
                given.registration_token = Some(t);
                given.token = None;
            }
        }
    }
    let mut prompter = Prompter::new(std::io::stdin().lock(), std::io::stdout(), interactive);
    if interactive {
        prompter = prompter.with_echo_control(set_echo);
    }
    let answers = match register::gather(&mut prompter, exists, &args.config, given) {
        Ok(answers) => answers,
        Err(e) => {
            eprintln!("heptapod-paas-runner register: {e}");
            return 2;
        }
    };
    let api = match RunnersApi::new(&answers.url, Timeouts::default()) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("heptapod-paas-runner register: {e}");
            return 2;
        }
    };
    let system = match runtime::system() {
        Ok(system) => system,
        Err(e) => {
            eprintln!("heptapod-paas-runner register: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let obtained = system.block_on(register::obtain_token(&api, &answers, None));
    let registered = match obtained {
        Ok(r) => r,
        Err(e) => {
            eprintln!("heptapod-paas-runner register: registration failed: {e}");
            return 1;
        }
    };
    let obtained_at = match answers.token {
        register::TokenKind::Authentication(_) => Some(register::rfc3339_utc(SystemTime::now())),
        register::TokenKind::Registration(_) => None,
    };
    if exists {
        let existing = std::fs::read_to_string(&args.config).unwrap_or_default();
        match register::clash(&existing, registered.token.expose()) {
            Err(why) => {
                eprintln!(
                    "heptapod-paas-runner register: {}: {why}; nothing written",
                    args.config.display()
                );
                return 2;
            }
            Ok(Some(warning)) => eprintln!("warning: {}: {warning}", args.config.display()),
            Ok(None) => {}
        }
        if let Ok(meta) = std::fs::metadata(&args.config) {
            use std::os::unix::fs::PermissionsExt;
            if let Some(w) = register::exposure_warning(meta.permissions().mode(), &args.config) {
                eprintln!("warning: {w}");
            }
        }
    }
    let section = register::render_section(&answers, &registered, obtained_at.as_deref());
    let header = answers.new_file.as_ref().map(register::render_new_file);
    if let Err(e) = register::append_section(&args.config, header.as_deref(), &section) {
        eprintln!(
            "heptapod-paas-runner register: cannot write {}: {e}",
            args.config.display()
        );
        return 1;
    }
    print!(
        "{}",
        register::next_steps(
            &answers.executor,
            &args.config,
            answers.new_file.is_some(),
            &answers.token
        )
    );
    0
}

/// Loads the configuration for an operator command, printing its warnings;
/// the exit code when invalid.
fn load_for_command(path: &Path) -> Result<config::Config, i32> {
    match config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            Ok(loaded.config)
        }
        Err(e) => {
            eprintln!("heptapod-paas-runner: {e}");
            Err(e.exit_code())
        }
    }
}

fn check(args: CheckArgs, logging: &mut Logging, cli_level: Level) -> i32 {
    let (text, code, loaded) = commands::check::offline(&args.config);
    print!("{text}");
    match loaded {
        Some(loaded) if args.online => {
            apply_config_logging(logging, &args.log, cli_level, &loaded.config);
            let system = match runtime::system() {
                Ok(system) => system,
                Err(e) => {
                    eprintln!("heptapod-paas-runner: cannot start the async runtime: {e}");
                    return 1;
                }
            };
            let rows = system.block_on(commands::verify::run(&loaded.config, &logging.logger));
            print!("{}", commands::verify::render(&rows));
            if commands::verify::all_ok(&rows) {
                0
            } else {
                1
            }
        }
        _ => code,
    }
}

fn verify(args: &ConfigArgs, logging: &mut Logging, cli_level: Level) -> i32 {
    let config = match load_for_command(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    apply_config_logging(logging, &args.log, cli_level, &config);
    let system = match runtime::system() {
        Ok(system) => system,
        Err(e) => {
            eprintln!("heptapod-paas-runner: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let rows = system.block_on(commands::verify::run(&config, &logging.logger));
    print!("{}", commands::verify::render(&rows));
    if commands::verify::all_ok(&rows) {
        0
    } else {
        1
    }
}

fn list(path: &Path) -> i32 {
    match load_for_command(path) {
        Ok(config) => {
            print!("{}", commands::list::render(&config));
            0
        }
        Err(code) => code,
    }
}

fn unregister(args: UnregisterArgs) -> i32 {
    match load_for_command(&args.config) {
        Ok(config) => commands::unregister::run(&config, &args),
        Err(code) => code,
    }
}
