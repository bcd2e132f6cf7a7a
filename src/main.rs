//! `heptapod-paas-runner`: thin entry point. Parses the command line, sets
//! up logging, dispatches to the command (`commands`), and exits with the
//! code of how it ended (`exit`; which error ends with which code is
//! decided by `commands::CommandError::exit`).

use heptapod_paas_runner::cli::{self, Command, LogArgs};
use heptapod_paas_runner::cli_docs;
use heptapod_paas_runner::commands::{self, CommandError};
use heptapod_paas_runner::exit::Exit;
use heptapod_paas_runner::logging::{self, LogFormat, Logging, LoggingError};
use slog::Level;

fn main() {
    let command = cli::from_env();
    let (level, format) = match log_options(command.log_args()) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("heptapod-paas-runner: {e}");
            std::process::exit(Exit::Usage.code());
        }
    };
    let mut logging = logging::init(level, format, logging::journal_from_env());
    let exit = match dispatch(command, &mut logging, level) {
        Ok(()) => {
            // Flush the asynchronous log drain before exiting.
            drop(logging);
            Exit::Success
        }
        Err(e) => {
            // Flushes the log drain, then tells why.
            e.report(logging);
            e.exit()
        }
    };
    std::process::exit(exit.code());
}

/// The level and format of the command line (`-l`/`--debug`,
/// `--log-format`), before the configuration is read.
fn log_options(args: &LogArgs) -> Result<(Level, LogFormat), LoggingError> {
    let level = logging::parse_level(args.level().unwrap_or("INFO"))?;
    let format = logging::parse_format(args.log_format.as_deref().unwrap_or("term"))?;
    Ok((level, format))
}

/// Runs the command; `logging` follows the configuration's `log_level` and
/// `log_format` once read (unless the command line gave them).
fn dispatch(command: Command, logging: &mut Logging, level: Level) -> Result<(), CommandError> {
    match command {
        Command::Run(args) => commands::run::run(args, logging, level)?,
        Command::Register(args) => commands::register::run(args)?,
        Command::Check(args) => commands::check::run(args, logging, level)?,
        Command::Verify(args) => commands::verify::run(&args, logging, level)?,
        Command::List(args) => commands::list::run(&args)?,
        Command::Unregister(args) => commands::unregister::run(&args)?,
        Command::Forget(args) => commands::forget::run(&args, &logging.logger)?,
        Command::GenerateCliDocs(args) => cli_docs::run(&args)?,
    }
    Ok(())
}
