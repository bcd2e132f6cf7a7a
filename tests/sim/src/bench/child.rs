//! A measured runner process: started in a process group of its own (so a
//! Ctrl-C at the terminal reaches the bench, which then stops it in order,
//! and so that subprocesses it leaves behind can be stopped with it),
//! output to a log file, stopped by pid then by process group, and killed on
//! drop.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// Step of the wait loops.
const WAIT_STEP: Duration = Duration::from_millis(20);
/// How long to wait for a killed process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the process could not be started or waited for.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The log file could not be created.
    #[error("cannot create the log file {path}: {source}")]
    Log {
        /// Log file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// Program.
        program: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The pid does not fit a `pid_t`.
    #[error("pid {0} out of range")]
    Pid(u32),
    /// Waiting failed.
    #[error("cannot wait for pid {pid}: {source}")]
    Wait {
        /// Process.
        pid: u32,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// How a stop went.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// Exit status.
    pub status: ExitStatus,
    /// It did not end within the grace period and was killed.
    pub killed: bool,
    /// Time from SIGTERM to exit.
    pub took: Duration,
}

/// A running measured process, leader of its own process group.
#[derive(Debug)]
pub struct GroupChild {
    child: Child,
    pid: Pid,
    status: Option<ExitStatus>,
}

impl GroupChild {
    /// Starts `program args…`, stdin closed, stdout and stderr to `log`.
    pub fn spawn(program: &Path, args: &[OsString], log: &Path) -> Result<GroupChild, ChildError> {
        let log_err = |source| ChildError::Log {
            path: log.to_path_buf(),
            source,
        };
        let out = File::create(log).map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| ChildError::Spawn {
                program: program.to_path_buf(),
                source,
            })?;
        let raw = child.id();
        match i32::try_from(raw) {
            Ok(p) => Ok(GroupChild {
                child,
                pid: Pid::from_raw(p),
                status: None,
            }),
            Err(_) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                Err(ChildError::Pid(raw))
            }
        }
    }

    /// Process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it ended (reaps it), without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ChildError> {
        if self.status.is_none() {
            self.status = self.child.try_wait().map_err(|source| ChildError::Wait {
                pid: self.child.id(),
                source,
            })?;
        }
        Ok(self.status)
    }

    /// Sends `signal` to the process, unless it already ended and was reaped.
    pub fn signal(&mut self, signal: Signal) -> Result<(), ChildError> {
        if self.try_wait()?.is_none() {
            let _ = kill(self.pid, signal);
        }
        Ok(())
    }

    /// Waits at most `timeout` for the process to end; `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, ChildError> {
        let deadline = Instant::now() + timeout;
        let max_checks = timeout.as_millis() / WAIT_STEP.as_millis() + 2;
        for _ in 0..max_checks {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep(WAIT_STEP.min(deadline - now));
        }
        self.try_wait()
    }

    /// SIGTERM to the process; after `grace`, SIGKILL to it. Whatever is
    /// left in its process group (subprocesses) gets SIGKILL at the end.
    pub fn stop(&mut self, grace: Duration) -> Result<Stopped, ChildError> {
        let start = Instant::now();
        let mut killed = false;
        let status = match self.try_wait()? {
            Some(s) => s,
            None => {
                let _ = kill(self.pid, Signal::SIGTERM);
                match self.wait_timeout(grace)? {
                    Some(s) => s,
                    None => {
                        killed = true;
                        let _ = kill(self.pid, Signal::SIGKILL);
                        match self.wait_timeout(REAP_TIMEOUT)? {
                            Some(s) => s,
                            None => self.child.wait().map_err(|source| ChildError::Wait {
                                pid: self.child.id(),
                                source,
                            })?,
                        }
                    }
                }
            }
        };
        self.status = Some(status);
        let took = start.elapsed();
        // the leader is reaped but its group id stays reserved while members live
        let _ = killpg(self.pid, Signal::SIGKILL);
        Ok(Stopped {
            status,
            killed,
            took,
        })
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !matches!(self.try_wait(), Ok(Some(_))) {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = self.wait_timeout(REAP_TIMEOUT);
        }
        let _ = killpg(self.pid, Signal::SIGKILL);
    }
}
