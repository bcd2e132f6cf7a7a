//! SIGHUP: the configuration file is read and validated again, and what may
//! change live is handed to the running service
//! (`paas_actors::messages::Reconfigure`). What cannot change live (the
//! state file, the listen address, the quota reference) is logged as
//! "restart needed" and left as it was; a file that does not validate is
//! refused with the messages of start-up and the running configuration
//! stays.

use crate::config::{self, Config};
use crate::wiring::{self, Overrides};
use paas_actors::messages::Reconfigure;
use paas_actors::metrics::Metrics;
use paas_actors::ports::Weight;
use paas_actors::service::Reloader;
use slog::{error, info, warn, Logger};
use std::sync::Arc;

/// Pure: the keys that differ between the running configuration and the
/// new one but cannot change without a restart.
pub fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if running.state_file != new.state_file {
        keys.push("state_file");
    }
    if running.listen_address != new.listen_address {
        keys.push("listen_address");
    }
    let (a, b) = (&running.quota_computation, &new.quota_computation);
    if a.reference_runner != b.reference_runner {
        keys.push("quota_computation.reference_runner");
    }
    if a.reference_flavor != b.reference_flavor {
        keys.push("quota_computation.reference_flavor");
    }
    if a.reference_jobs_count != b.reference_jobs_count {
        keys.push("quota_computation.reference_jobs_count");
    }
    keys
}

/// The reloader of the service started from `running` with `quota`.
pub fn reloader(
    running: Config,
    overrides: Overrides,
    quota: Weight,
    metrics: Arc<Metrics>,
    logger: Logger,
) -> Reloader {
    Box::new(move || reload(&running, &overrides, quota, &metrics, &logger))
}

fn reload(
    running: &Config,
    overrides: &Overrides,
    quota: Weight,
    metrics: &Arc<Metrics>,
    logger: &Logger,
) -> Option<Reconfigure> {
    info!(logger, "SIGHUP received: reloading the configuration";
          "config" => %running.path.display());
    let loaded = match config::load(&running.path) {
        Ok(loaded) => loaded,
        Err(e) => {
            error!(logger, "configuration reload refused; the running configuration stays";
                   "error" => %e);
            return None;
        }
    };
    for warning in &loaded.warnings {
        warn!(logger, "configuration warning"; "detail" => warning);
    }
    let mut new = loaded.config;
    for key in restart_needed(running, &new) {
        warn!(logger, "configuration reload: restart needed for this setting; left as it was";
              "setting" => key);
    }
    // What cannot change live stays as it runs.
    new.state_file.clone_from(&running.state_file);
    new.listen_address.clone_from(&running.listen_address);
    let allowed = new.quota_computation.allowed_fraction_per_runner;
    new.quota_computation = running.quota_computation.clone();
    new.quota_computation.allowed_fraction_per_runner = allowed;
    match wiring::reconfigure(&new, overrides, quota, metrics, logger) {
        Ok(reconfigure) => Some(reconfigure),
        Err(e) => {
            error!(logger, "configuration reload refused; the running configuration stays";
                   "error" => %e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
state_file = "/var/lib/x/state.json"
[quota_computation]
reference_runner = "r"
reference_flavor = "M"
reference_jobs_count = 4
[[runners]]
name = "r"
url = "https://gitlab.example"
token = "glrt-abcdefgh"
executor = "local-docker"
"#;

    fn parse(text: &str) -> Config {
        match config::parse_str(text, Path::new("/tmp/config.toml")) {
            Ok(l) => l.config,
            Err(e) => panic!("test configuration refused: {e}"),
        }
    }

    #[test]
    fn keys_that_need_a_restart_are_named() {
        let running = parse(BASE);
        assert!(restart_needed(&running, &running).is_empty());
        let changed = BASE
            .replace("state.json", "other.json")
            .replace("reference_jobs_count = 4", "reference_jobs_count = 5");
        let new = parse(&format!("listen_address = \"127.0.0.1:9252\"\n{changed}"));
        assert_eq!(
            restart_needed(&running, &new),
            vec![
                "state_file",
                "listen_address",
                "quota_computation.reference_jobs_count"
            ]
        );
    }
}
