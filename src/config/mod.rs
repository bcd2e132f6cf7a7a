//! Configuration: the GitLab-Runner-style TOML file, parsed and validated.
//!
//! Two stages, before any side effect:
//! 1. [`raw`]: the text becomes an untyped, order-preserving TOML tree plus
//!    the line of every key; `secret:KEY` strings are then replaced from the
//!    `secrets_file` ([`secrets`]).
//! 2. [`validate`]: the tree becomes the typed [`Config`] ([`settings`]),
//!    every problem reported at once in one [`ConfigError`], warnings
//!    (unknown keys, alias spellings) returned beside it. Each key is read
//!    through its declaration: `paas_actors::settings` declares the keys
//!    the actors use (their values fill the actors' own settings types),
//!    [`keys`] and [`keys_executors`] the others.
//!
//! Each runner section is also kept verbatim ([`RunnerConfig::raw`]) to build
//! the inner `runner.toml` ([`inner`]).
//!
//! Where this differs from the Python reference: the documented spellings
//! `job_progress_interval`, `pass_decommision_launched_failures`,
//! `[runners.job_trace_watch]` and `timout_seconds` are accepted (with a warning); `host`, both trace-watch
//! tables, `quota_max_fraction`, `local_docker_network_mode`, every `paas_*`
//! key and a section's `secrets_file` are never forwarded, whatever the
//! executor; a section's own `secrets_file` (the Python runner 1.1's form)
//! serves every `secret:` value of that section; duplicate unique names are
//! refused ([`identity`] says how a runner's unique name is chosen).

pub mod error;
mod fields;
pub mod identity;
pub mod inner;
pub(crate) mod keys;
mod keys_executors;
mod raw;
mod secrets;
pub mod settings;
mod suggest;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_messages;
#[cfg(test)]
mod tests_readme;
#[cfg(test)]
mod tests_service;

use std::path::Path;

pub use error::{key_message, ConfigError, Location, Problem, EXIT_CODE};
pub use fields::shown_value;
pub use identity::{legacy_unique_name, unique_name};
pub use inner::{inner_runner_table, is_forwarded};
pub use raw::LineIndex;
pub use settings::{runner_key, Config, ExecutorKind, QuotaComputation, RunnerConfig};

/// The executors' settings types, which validation builds.
pub use crate::executors::clever::{CleverSettings, Tenancy};
pub use crate::executors::local_docker::LocalDockerSettings;

/// The candidate closest to `word` by edit distance, if close enough to be
/// a plausible typo (for command words as for keys).
pub fn closest_word<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    suggest::closest(word, candidates)
}

/// This crate's keys whose change needs a restart, as a reload names them
/// (the actors' own are declared in `paas_actors::settings`).
pub fn restart_keys() -> impl Iterator<Item = &'static str> {
    keys::restart_keys().map(|k| k.name)
}

/// A validated configuration and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Human-readable warnings (unknown keys with suggestions, alias
    /// spellings), each naming the file, line and key; log them at start-up.
    pub warnings: Vec<String>,
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, path)
}

/// Validates configuration `text` as if read from `path` (the secrets file
/// is resolved relative to `path`'s directory). `DOCKER_HOST` is read from
/// the process environment.
pub fn parse_str(text: &str, path: &Path) -> Result<Loaded, ConfigError> {
    parse_with_env(text, path, &validate::Env::from_process())
}

fn parse_with_env(text: &str, path: &Path, env: &validate::Env) -> Result<Loaded, ConfigError> {
    let doc = raw::parse(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    validate::validate(doc, path, env)
}
