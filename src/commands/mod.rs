//! The commands: `run` (the service), `register`, `check` (offline
//! validation), `verify` (credentials and flavors, online), `list` (the
//! runner sections), `unregister` (coordinator call and section
//! removal) and `forget` (a tracked resource released by hand). Each returns its own error type; `main` dispatches, and
//! [`CommandError`] reports the error and gives the exit code.

use crate::cli::LogArgs;
use crate::config::{self, ConfigError};
use crate::logging::{self, Logging};
use slog::Level;
use std::path::Path;

pub mod check;
mod error;
pub mod forget;
pub mod known_tenants;
pub mod list;
pub mod register;
pub mod run;
mod table;
pub mod unregister;
pub mod verify;

pub use error::CommandError;

/// Applies the configuration's `log_level` and `log_format`, unless the
/// command line gave them (`-l`/`--debug`, `--log-format`).
pub fn apply_config_logging(
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

/// Loads the configuration for an operator command, printing its warnings
/// on stderr.
fn load(path: &Path) -> Result<config::Config, ConfigError> {
    let loaded = config::load(path)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded.config)
}
