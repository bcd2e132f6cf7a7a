//! `heptapod-paas-runner`: thin entry point. Parses the command line, sets
//! up logging, and runs `run`, `register` or an operator command
//! (`commands`).
//!
//! Exit codes: 0 normal stop, 1 runtime failure, 2 configuration or usage
//! error.

use heptapod_paas_runner::cli::{
    self, CheckArgs, CliDocsArgs, Command, ConfigArgs, UnregisterArgs,
};
use heptapod_paas_runner::commands::{self, apply_config_logging};
use heptapod_paas_runner::logging::{self, Logging};
use heptapod_paas_runner::{cli_docs, config, runtime};
use slog::Level;
use std::path::Path;

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
        Command::Run(args) => commands::run::run(args, &mut logging, level),
        Command::Register(args) => commands::register::run(args),
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
            let live = actix_rt::System::new().block_on(commands::list::live(&config));
            print!("{}", commands::list::render(&config, &live));
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
