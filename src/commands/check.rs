//! `check CONFIG [--online]`: the configuration's every error and every
//! warning at once, then the start-up checks that need no network, the
//! very ones `run` makes before its first network call
//! (`crate::local_checks`), without starting anything; `--online` adds the
//! checks of `verify`.

use super::apply_config_logging;
use super::verify::{self, VerifyError};
use crate::cli::CheckArgs;
use crate::config::{self, ConfigError, Loaded};
use crate::local_checks::{self, LocalCheckError, Mode};
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
    /// A start-up check that needs no network failed, as it would for `run`.
    #[error(transparent)]
    Local(#[from] LocalCheckError),
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

/// What `check` prints for a configuration whose local checks pass, and
/// the configuration.
pub fn offline(path: &Path) -> Result<(String, Loaded), CheckError> {
    let loaded = config::load(path)?;
    let config = &loaded.config;
    let passed = local_checks::run(config, config.listen_address.as_ref(), Mode::Check)?;
    let mut out = format!(
        "{}: valid ({} runner section{}); state file {}: {} job{} tracked\n",
        path.display(),
        config.runners.len(),
        if config.runners.len() == 1 { "" } else { "s" },
        passed.state_file.display(),
        passed.tracked_jobs,
        if passed.tracked_jobs == 1 { "" } else { "s" },
    );
    let warnings: Vec<&String> = loaded.warnings.iter().chain(&passed.warnings).collect();
    if !warnings.is_empty() {
        out.push_str("warnings:\n");
        for w in warnings {
            out.push_str(&format!("  - {w}\n"));
        }
    }
    Ok((out, loaded))
}
