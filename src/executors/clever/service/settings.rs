//! Settings of a clever-service-docker section beyond the `cc_*` keys it
//! shares with clever-docker ([`super::super::CleverSettings`] holds them as
//! its `service` field), and the fixed bounds of the helper's waits. Every
//! default is written here once; `src/config/keys_executors.rs` declares
//! the keys with these defaults.

use std::time::Duration;

/// Default `heptapod_paas_runner_helper_image`: the helper image the Python
/// runner 1.1 starts.
pub const DEFAULT_HELPER_IMAGE: &str =
    "registry.heptapod.net/heptapod/heptapod-paas-runner/helper:testing";

/// Default `cc_service_ready_timeout`: how long a new application's helper
/// may take to answer `can-take-job` true (image build and boot included).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest wait between two `can-take-job` of a new application (the
/// first after the delay the previous helpers took, then 0.1 s doubling).
pub const READY_STEP: Duration = Duration::from_secs(20);

/// How long a standby application's helper may take to answer
/// `can-take-job` true before the job goes to a new application.
pub const REUSE_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait between two `can-take-job` of a standby application.
pub const REUSE_READY_STEP: Duration = Duration::from_secs(1);

/// Longest wait before sending `launch-job` again after a 503 (its
/// `Retry-After` is honoured up to this; without one, this).
pub const BUSY_RETRY_MAX: Duration = Duration::from_secs(5);

/// What a clever-service-docker section adds to the `cc_*` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSettings {
    /// The image of the helper Dockerfile (`heptapod_paas_runner_helper_image`).
    pub helper_image: String,
    /// Longest wait for a new application's helper (`cc_service_ready_timeout`).
    pub ready_timeout: Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            helper_image: DEFAULT_HELPER_IMAGE.to_string(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// The Dockerfile pushed to a service application: the helper image,
/// serving its HTTP/1 API on the port Clever Cloud routes to.
pub fn helper_dockerfile(image: &str) -> String {
    format!("FROM {image}\nCMD [\"--http1\", \"--listen-address\", \"0.0.0.0:8080\"]\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_dockerfile_is_two_lines() {
        assert_eq!(
            helper_dockerfile("registry.example/helper:1"),
            "FROM registry.example/helper:1\n\
             CMD [\"--http1\", \"--listen-address\", \"0.0.0.0:8080\"]\n"
        );
    }
}
