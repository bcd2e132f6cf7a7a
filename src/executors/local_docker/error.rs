//! Errors of the local-docker executor and their port-level class.

use paas_actors::ports::{PaasError, PaasErrorClass};
use std::path::PathBuf;
use std::time::Duration;

/// Longest engine message kept in an error (the end is kept: that is where
/// `docker build` says what failed).
const MAX_MESSAGE_CHARS: usize = 2000;

/// A failure of the local-docker executor, with the engine's own message.
#[derive(Debug, thiserror::Error)]
pub enum LocalDockerError {
    /// The configured `host` is not a Unix socket URL.
    #[error(
        "Docker host {url:?} is not supported: only Unix socket URLs \
         (unix:///path/to/docker.sock) are"
    )]
    UnsupportedHost {
        /// The configured value.
        url: String,
    },
    /// A resource name Docker would not accept, or would read as an option.
    #[error("invalid Docker image/container name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The deploy context could not be made from the job.
    #[error("cannot make the build context of job {job_id}: {message}")]
    Deploy {
        /// The job.
        job_id: i64,
        /// The deploy module's explanation.
        message: String,
    },
    /// The build context could not be written to a temporary directory.
    #[error("cannot write the build context of job {job_id}: {source}")]
    Context {
        /// The job.
        job_id: i64,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `docker` CLI could not be started.
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        /// The CLI path.
        program: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A CLI call did not finish in time (it was killed; what it asked the
    /// engine may still happen).
    #[error("`docker {command}` did not finish within {timeout:?}")]
    Timeout {
        /// The subcommand (`build`, `run`, …).
        command: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// The engine (or the CLI) reported a failure.
    #[error("`docker {command}` failed ({status}): {message}")]
    Engine {
        /// The subcommand (`build`, `run`, …).
        command: &'static str,
        /// Exit status of the CLI, as text.
        status: String,
        /// The CLI's standard error (the engine's message), bounded.
        message: String,
    },
    /// The job payload copied out of a container could not be read.
    #[error("cannot read the job payload copied from container {container}: {source}")]
    Recover {
        /// The container (job container or a temporary one).
        container: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file holds something that is not a local-docker resource.
    #[error("saved local-docker resource is not an image name string: {found}")]
    BadSavedResource {
        /// An excerpt of what was found.
        found: String,
    },
}

impl LocalDockerError {
    /// True when the engine could not be reached at all: worth retrying.
    pub(super) fn is_unreachable(&self) -> bool {
        match self {
            LocalDockerError::Engine { message, .. } => {
                message.contains("Cannot connect to the Docker daemon")
                    || message.contains("Is the docker daemon running")
            }
            _ => false,
        }
    }

    /// True for the engine's "No such image/container" answers.
    pub(super) fn is_not_found(&self) -> bool {
        match self {
            LocalDockerError::Engine { message, .. } => {
                message.to_ascii_lowercase().contains("no such ")
            }
            _ => false,
        }
    }

    /// True for `docker cp`'s "Could not find the file … in container".
    pub(super) fn is_missing_file(&self) -> bool {
        match self {
            LocalDockerError::Engine { message, .. } => message
                .to_ascii_lowercase()
                .contains("could not find the file"),
            _ => false,
        }
    }

    /// The port-level error for `action`.
    pub fn into_paas(self, action: &str) -> PaasError {
        let class = match &self {
            LocalDockerError::Timeout { .. } => PaasErrorClass::Uncertain,
            _ if self.is_unreachable() => PaasErrorClass::Transient,
            _ => PaasErrorClass::Permanent,
        };
        PaasError {
            action: action.to_string(),
            message: self.to_string(),
            class,
        }
    }
}

/// The last [`MAX_MESSAGE_CHARS`] characters of a CLI message, trimmed.
pub(super) fn bounded_tail(text: &str) -> String {
    let text = text.trim();
    let count = text.chars().count();
    if count <= MAX_MESSAGE_CHARS {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - MAX_MESSAGE_CHARS).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_messages_are_classified() {
        let engine = |message: &str| LocalDockerError::Engine {
            command: "rmi",
            status: "exit code 1".to_string(),
            message: message.to_string(),
        };
        assert!(engine("Error response from daemon: No such image: x:latest").is_not_found());
        assert!(engine("Error: No such container: x").is_not_found());
        assert!(!engine("conflict: unable to remove").is_not_found());
        let unreachable = engine(
            "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?",
        );
        assert_eq!(
            unreachable.into_paas("run").class,
            PaasErrorClass::Transient
        );
        let e = engine("conflict").into_paas("delete");
        assert_eq!(e.class, PaasErrorClass::Permanent);
        assert_eq!(e.action, "delete");
        assert!(e.message.contains("conflict"), "{}", e.message);
        let timeout = LocalDockerError::Timeout {
            command: "run",
            timeout: Duration::from_secs(1),
        };
        assert_eq!(timeout.into_paas("run").class, PaasErrorClass::Uncertain);
    }

    #[test]
    fn long_messages_keep_their_end() {
        let long = format!("{}THE END", "é".repeat(5000));
        let kept = bounded_tail(&long);
        assert!(kept.ends_with("THE END"));
        assert_eq!(kept.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
