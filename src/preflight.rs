//! Start-up checks that turn a configuration mistake into an exit before
//! the service reports ready, instead of a service that runs and never
//! takes a job: the state directory is writable, the local-docker engine
//! answers (and the `docker` command line exists), and start-up calls
//! that fail transiently are retried with back-off ([`Patience`]).

use paas_actors::backoff::{Backoff, BackoffPolicy, Jitter};
use slog::{warn, Logger};
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long start-up keeps retrying a call that fails transiently (PAAS
/// or coordinator unreachable) before giving up with exit code 1 (systemd
/// restarts the service; a transient failure is never exit code 2).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Delays between start-up retries: 1 s doubling up to 10 s.
const RETRY: BackoffPolicy =
    BackoffPolicy::new(Duration::from_secs(1), Duration::from_secs(10)).with_jitter(Jitter::Equal);

/// How long `docker version` may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after a sign of progress the next one may come, beyond the
/// wait announced: one start-up call may take its client's whole retry
/// policy (the Clever API client's 4 attempts of up to 60 s each).
pub const PROGRESS_MARGIN: Duration = Duration::from_secs(300);

/// Told when the start-up's network checks begin and each time one waits
/// to retry, with how long until the next sign of life at most (systemd:
/// `EXTEND_TIMEOUT_USEC=`, `crate::notify`).
pub trait StartupProgress {
    /// The next sign comes within `next_sign_within`; `what` is a status line.
    fn waiting(&self, next_sign_within: Duration, what: &str);
}

/// Bounded retries of one start-up call.
pub struct Patience {
    started: Instant,
    limit: Duration,
    backoff: Backoff,
    progress: Option<Rc<dyn StartupProgress>>,
}

impl Patience {
    /// Retries for at most `limit`, telling `progress` of each wait.
    pub fn new(limit: Duration, progress: Option<Rc<dyn StartupProgress>>) -> Patience {
        Patience {
            started: Instant::now(),
            limit,
            backoff: RETRY.start(),
            progress,
        }
    }

    /// After a transient failure of `what`: logs it and waits the next
    /// back-off delay, then returns true; false once the patience is spent
    /// (nothing waited).
    pub async fn retry(
        &mut self,
        logger: &Logger,
        what: &str,
        error: &dyn std::fmt::Display,
    ) -> bool {
        let delay = self.backoff.next_delay();
        if self.started.elapsed() + delay > self.limit {
            return false;
        }
        warn!(logger, "start-up check failed, retrying"; "check" => what,
              "error" => %error, "retry_in_s" => paas_actors::ports::Seconds(delay));
        if let Some(progress) = &self.progress {
            progress.waiting(
                delay + PROGRESS_MARGIN,
                &format!("start-up checks: retrying {what}"),
            );
        }
        tokio::time::sleep(delay).await;
        true
    }

    /// How long it waits in all.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// Creates and removes a probe file in `dir`: the state (and the system
/// id) will be written there atomically. The error says what is wrong.
pub fn check_writable_dir(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(
        ".heptapod-paas-runner-probe.{}",
        std::process::id()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Left by a process with this pid that died: still writable.
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("is not writable by this user ({e})")),
    }
}

/// Why the local-docker engine cannot be used.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum DockerProblem {
    /// The `docker` command line is not installed: the operator must fix it.
    #[error(
        "the `docker` command line is not installed (not found in PATH): local-docker runs it"
    )]
    NoCli,
    /// The engine's socket does not exist: `host` is wrong or the engine is
    /// not installed.
    #[error("no Docker engine socket at {0}: set `host` to the engine's unix:// socket, or start the engine")]
    NoSocket(String),
    /// The engine did not answer (it may be starting): transient.
    #[error("the Docker engine does not answer: {0}")]
    NoAnswer(String),
}

impl DockerProblem {
    /// True when retrying may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, DockerProblem::NoAnswer(_))
    }
}

/// `docker -H HOST version`: the server version, or why not. `socket` is
/// the path of `HOST`.
pub async fn docker_version(host: &str, socket: &Path) -> Result<String, DockerProblem> {
    if !socket.exists() {
        return Err(DockerProblem::NoSocket(socket.display().to_string()));
    }
    let mut cmd = tokio::process::Command::new("docker");
    cmd.arg("-H")
        .arg(host)
        .args(["version", "--format", "{{.Server.Version}}"])
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(DOCKER_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(DockerProblem::NoAnswer(format!(
                "`docker version` took more than {} s",
                DOCKER_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => return Err(DockerProblem::NoCli),
        Ok(Err(e)) => return Err(DockerProblem::NoAnswer(format!("cannot run `docker`: {e}"))),
        Ok(Ok(out)) => out,
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(DockerProblem::NoAnswer(
            stderr
                .trim()
                .lines()
                .last()
                .unwrap_or("no message")
                .to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_directory_passes_and_a_missing_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(check_writable_dir(dir.path()), Ok(()));
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            0,
            "probe left"
        );
        let missing = dir.path().join("missing");
        assert!(check_writable_dir(&missing).is_err());
    }

    #[actix_rt::test]
    async fn a_missing_socket_is_not_transient() {
        let e = docker_version(
            "unix:///nonexistent/docker.sock",
            Path::new("/nonexistent/docker.sock"),
        )
        .await
        .expect_err("no socket");
        assert_eq!(
            e,
            DockerProblem::NoSocket("/nonexistent/docker.sock".into())
        );
        assert!(!e.is_transient());
    }
}
