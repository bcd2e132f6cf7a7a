//! A child process (normally `heptapod-paas-runner run CONFIG`) under test
//! control: stdout and stderr captured to one log file, signals sent by pid
//! (never by name), bounded waits, and kill + reap on drop so that no test
//! leaves a process behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Step of the wait loops.
const WAIT_STEP: Duration = Duration::from_millis(20);
/// How long drop waits for a killed process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a process could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The log file could not be created.
    #[error("cannot create the log file {path}: {source}")]
    Log {
        /// Log file path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// Program path.
        program: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The pid does not fit a `pid_t`.
    #[error("pid {0} out of range")]
    Pid(u32),
    /// A signal could not be sent.
    #[error("cannot send {signal} to pid {pid}: {source}")]
    Signal {
        /// Signal.
        signal: Signal,
        /// Target.
        pid: u32,
        /// Cause.
        #[source]
        source: nix::Error,
    },
    /// Waiting for the process failed.
    #[error("cannot wait for pid {pid}: {source}")]
    Wait {
        /// Target.
        pid: u32,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A running (or finished, not yet dropped) child process.
#[derive(Debug)]
pub struct RunnerProcess {
    child: Child,
    pid: Pid,
    log_path: PathBuf,
    status: Option<ExitStatus>,
}

impl RunnerProcess {
    /// Starts `heptapod-paas-runner run CONFIG [extra args]` with its output in `log_path`.
    pub fn spawn_runner(
        binary: &Path,
        config: &Path,
        log_path: &Path,
        extra_args: &[&str],
    ) -> Result<RunnerProcess, ProcessError> {
        let mut args: Vec<&std::ffi::OsStr> = vec!["run".as_ref(), config.as_os_str()];
        args.extend(extra_args.iter().map(|a| std::ffi::OsStr::new(*a)));
        RunnerProcess::spawn(binary, &args, log_path)
    }

    /// Starts any program with `args`, stdin closed, stdout and stderr appended to `log_path`.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        program: &Path,
        args: &[S],
        log_path: &Path,
    ) -> Result<RunnerProcess, ProcessError> {
        RunnerProcess::spawn_with_env(program, args, &[], log_path)
    }

    /// [`RunnerProcess::spawn`] with extra environment variables.
    pub fn spawn_with_env<S: AsRef<std::ffi::OsStr>>(
        program: &Path,
        args: &[S],
        env: &[(&str, &std::ffi::OsStr)],
        log_path: &Path,
    ) -> Result<RunnerProcess, ProcessError> {
        let log_err = |source| ProcessError::Log {
            path: log_path.to_path_buf(),
            source,
        };
        let out = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                program: program.to_path_buf(),
                source,
            })?;
        let raw = child.id();
        let pid = match i32::try_from(raw) {
            Ok(p) => Pid::from_raw(p),
            Err(_) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProcessError::Pid(raw));
            }
        };
        Ok(RunnerProcess {
            child,
            pid,
            log_path: log_path.to_path_buf(),
            status: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The captured output so far (lossy UTF-8; empty if unreadable).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Sends `signal` to the process by pid, unless it already exited (and
    /// was reaped, so its pid may have been reused).
    pub fn signal(&mut self, signal: Signal) -> Result<(), ProcessError> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        kill(self.pid, signal).map_err(|source| ProcessError::Signal {
            signal,
            pid: self.pid(),
            source,
        })
    }

    /// `SIGTERM`: the runner's graceful stop.
    pub fn terminate(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGTERM)
    }

    /// `SIGINT`: as Ctrl-C.
    pub fn interrupt(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGINT)
    }

    /// The exit status if the process ended (reaps it), without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        if self.status.is_none() {
            self.status = self.child.try_wait().map_err(|source| ProcessError::Wait {
                pid: self.child.id(),
                source,
            })?;
        }
        Ok(self.status)
    }

    /// Waits at most `timeout` for the process to end; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, ProcessError> {
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

    /// `SIGTERM`, then `SIGKILL` if it did not end within `grace`; returns
    /// the exit status and whether it had to be killed.
    pub fn stop(&mut self, grace: Duration) -> Result<(ExitStatus, bool), ProcessError> {
        self.terminate()?;
        if let Some(s) = self.wait_timeout(grace)? {
            return Ok((s, false));
        }
        self.signal(Signal::SIGKILL)?;
        match self.wait_timeout(REAP_TIMEOUT)? {
            Some(s) => Ok((s, true)),
            None => {
                let status = self.child.wait().map_err(|source| ProcessError::Wait {
                    pid: self.child.id(),
                    source,
                })?;
                self.status = Some(status);
                Ok((status, true))
            }
        }
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        if matches!(self.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = self.wait_timeout(REAP_TIMEOUT);
    }
}
