//! Settings of one local-docker `[[runners]]` section: the one typed model,
//! built by configuration validation (`src/config/validate/local_docker.rs`),
//! and the check of the Docker host URL both use.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::error::LocalDockerError;

/// Docker endpoint when neither `host` nor `DOCKER_HOST` is set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Time limits of the `docker` CLI calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalDockerTimeouts {
    /// `docker build` of a job image.
    pub build: Duration,
    /// Every other call (run, rm, rmi, inspect, ls).
    pub command: Duration,
}

impl Default for LocalDockerTimeouts {
    fn default() -> Self {
        LocalDockerTimeouts {
            build: Duration::from_secs(600),
            command: Duration::from_secs(60),
        }
    }
}

/// Settings of one local-docker `[[runners]]` section, as configuration
/// validation builds them.
#[derive(Clone, PartialEq)]
pub struct LocalDockerSettings {
    /// Docker engine URL (`host`, else `DOCKER_HOST`, else
    /// [`DEFAULT_DOCKER_HOST`]); validation accepts only what
    /// [`socket_path`] accepts.
    pub host: String,
    /// `--network` of the job container (e.g. `host` to reach a coordinator
    /// on the host's loopback); `None` leaves Docker's default.
    pub network_mode: Option<String>,
    /// The runner's unique name; lowercased in resource names.
    pub unique_name: String,
    /// The runner's identity before the `glrt-` rule (`config::identity`),
    /// when it differs: images and containers named with it are still this
    /// runner's (listed, resumed, deleted).
    pub legacy_unique_name: Option<String>,
    /// Base image of the job image (`heptapod_runner_main_image`); `None`
    /// for the deploy context's default.
    pub main_image: Option<String>,
    /// The inner runner's `runner.toml`, already stripped of runner-only
    /// keys. It holds the runner token: never logged.
    pub inner_runner_toml: String,
    /// Time limits of engine calls.
    pub timeouts: LocalDockerTimeouts,
}

impl fmt::Debug for LocalDockerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDockerSettings")
            .field("host", &self.host)
            .field("network_mode", &self.network_mode)
            .field("unique_name", &self.unique_name)
            .field("legacy_unique_name", &self.legacy_unique_name)
            .field("main_image", &self.main_image)
            .field(
                "inner_runner_toml",
                &format_args!("<{} bytes>", self.inner_runner_toml.len()),
            )
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// Checks that `host` is `unix://<absolute path>` and returns the path:
/// the one check of the Docker host URL (configuration validation and
/// [`super::LocalDocker::new`] both call it).
pub fn socket_path(host: &str) -> Result<PathBuf, LocalDockerError> {
    let bad = || LocalDockerError::UnsupportedHost {
        url: host.to_string(),
    };
    let path = host.strip_prefix("unix://").ok_or_else(bad)?;
    if !path.starts_with('/') || path.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    Ok(PathBuf::from(path))
}

/// Settings for the unit tests: engine at `host`, a runner token in the
/// inner `runner.toml` (`glrt-secret`, which no output may show).
#[cfg(test)]
pub(super) fn test_settings(host: &str) -> LocalDockerSettings {
    LocalDockerSettings {
        host: host.to_string(),
        network_mode: None,
        unique_name: "Runner-ABC".to_string(),
        legacy_unique_name: None,
        main_image: None,
        inner_runner_toml: "[[runners]]\ntoken = \"glrt-secret\"\n".to_string(),
        timeouts: LocalDockerTimeouts::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_a_local_docker_section() {
        let text = "concurrent = 2\n[quota_computation]\nreference_runner = \"l\"\n\
                    reference_flavor = \"M\"\nreference_jobs_count = 4\n[[runners]]\nname = \"l\"\nurl = \"https://g.example\"\n\
                    token = \"GLRT-ABCDEF\"\nexecutor = \"local-docker\"\n\
                    host = \"unix:///run/d.sock\"\nlocal_docker_network_mode = \"host\"\n\
                    heptapod_runner_main_image = \"base:1\"\n";
        let loaded = crate::config::parse_str(text, std::path::Path::new("/etc/x.toml"))
            .expect("valid config");
        let runner = loaded.config.runners.first().expect("one runner");
        let s = runner.local_docker.clone().expect("local-docker section");
        assert_eq!(s.timeouts, LocalDockerTimeouts::default());
        assert_eq!(s.host, "unix:///run/d.sock");
        assert_eq!(s.network_mode.as_deref(), Some("host"));
        assert_eq!(s.main_image.as_deref(), Some("base:1"));
        assert_eq!(s.unique_name, "GLRT-ABC");
        for key in [
            "host",
            "local_docker_network_mode",
            "heptapod_runner_main_image",
        ] {
            assert!(!s.inner_runner_toml.contains(key), "{key} leaked");
        }
        assert!(s.inner_runner_toml.contains("executor = \"docker\""));
    }

    #[test]
    fn debug_hides_the_inner_runner_toml() {
        let settings = test_settings("unix:///x.sock");
        let shown = format!("{settings:?} {settings:#?}");
        assert!(!shown.contains("glrt-secret"), "{shown}");
    }
}
