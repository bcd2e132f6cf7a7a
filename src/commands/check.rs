//! `check CONFIG [--online]`: the configuration's every error and every
//! warning at once, without starting anything; `--online` adds the checks
//! of `verify`.

use super::apply_config_logging;
use super::verify::{self, VerifyError};
use crate::cli::CheckArgs;
use crate::config::{self, ConfigError, Loaded};
use crate::logging::Logging;
use slog::Level;
use std::path::Path;

/// Why `check` fails.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The configuration is invalid: every problem, printed as `check`'s
    /// output.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// `--online`: a check of `verify` failed, or could not run.
    #[error(transparent)]
    Online(#[from] VerifyError),
}

/// The `check` command.
pub fn run(args: CheckArgs, logging: &mut Logging, cli_level: Level) -> Result<(), CheckError> {
    let (text, loaded) = offline(args.config.path())?;
    print!("{text}");
    if args.online {
        apply_config_logging(logging, &args.log, cli_level, &loaded.config);
        verify::online(&loaded.config, logging)?;
    }
    Ok(())
}

/// What `check` prints for a valid configuration, and the configuration.
pub fn offline(path: &Path) -> Result<(String, Loaded), ConfigError> {
    let loaded = config::load(path)?;
    let mut out = format!(
        "{}: valid ({} runner section{})\n",
        path.display(),
        loaded.config.runners.len(),
        if loaded.config.runners.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    if !loaded.warnings.is_empty() {
        out.push_str("warnings:\n");
        for w in &loaded.warnings {
            out.push_str(&format!("  - {w}\n"));
        }
    }
    Ok((out, loaded))
}
