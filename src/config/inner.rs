//! The inner `runner.toml`: what the launched Heptapod Runner receives.
//!
//! One `[[runners]]` table: the PAAS runner's section as written (after
//! secret substitution) minus the keys meant for this program only — so a
//! job escaping onto the PAAS resource cannot find the means to provision
//! more — and with `executor = "docker"`. Every other key is kept verbatim,
//! TOML types included (datetimes, ints, arrays, empty tables).

use toml::Value;

use super::settings::RunnerConfig;

/// Top-level runner keys never forwarded (besides every `cc_*` key).
pub const INNER_EXCLUDED_KEYS: &[&str] = &[
    "paas_job_trace_watch",
    "job_trace_watch",
    "heptapod_runner_main_image",
    "host",
    "quota_max_fraction",
    "local_docker_network_mode",
    "unique_name",
];

/// Prefix of the Clever Cloud keys, none of which is forwarded.
pub const CLEVER_KEY_PREFIX: &str = "cc_";

/// The executor the inner runner uses.
pub const INNER_EXECUTOR: &str = "docker";

/// True when the runner-section key `key` is kept in the inner config.
pub fn is_forwarded(key: &str) -> bool {
    !key.starts_with(CLEVER_KEY_PREFIX) && !INNER_EXCLUDED_KEYS.contains(&key)
}

/// The inner runner table: forwarded keys, `executor` forced to `docker`
/// (in place if it was written, as the reference does).
pub fn inner_runner_table(raw: &toml::Table) -> toml::Table {
    let mut table: toml::Table = raw
        .iter()
        .filter(|(k, _)| is_forwarded(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    table.insert(
        "executor".to_string(),
        Value::String(INNER_EXECUTOR.to_string()),
    );
    table
}

/// The inner `runner.toml` text of runner section `raw`. It holds the
/// runner token and any forwarded credentials: write it only where the job
/// needs it.
pub fn inner_runner_toml(raw: &toml::Table) -> String {
    let mut doc = toml::Table::new();
    doc.insert(
        "runners".to_string(),
        Value::Array(vec![Value::Table(inner_runner_table(raw))]),
    );
    // A `toml::Table` always serialises (keys are strings, values TOML).
    toml::to_string(&doc).unwrap_or_default()
}

impl RunnerConfig {
    /// The inner `runner.toml` text. It holds the runner token and any
    /// forwarded credentials: write it only where the job needs it.
    pub fn inner_runner_toml(&self) -> String {
        inner_runner_toml(&self.raw)
    }
}
