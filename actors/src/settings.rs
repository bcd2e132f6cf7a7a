//! Settings the actors read: one [`RunnerSettings`] per runner and the
//! global [`SupervisorSettings`]. The defaults are written here, once; the
//! wiring (root crate) fills them from the configuration.

use crate::backoff::{BackoffPolicy, Jitter};
use crate::ports::Weight;
use std::time::Duration;

/// Settings of one runner that the actors use.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerSettings {
    /// `(timeout_seconds, poll_step)` of the trace watch; `None` without a
    /// trace-watch token (launched jobs are then assumed started).
    pub trace_watch: Option<(Duration, Duration)>,
    /// `quota_max_fraction`: largest share of the quota this runner may hold.
    pub quota_max_fraction: f64,
    /// The runner section's `name`: the `runner` label of its metrics
    /// (`None`: the runner's unique name).
    pub label: Option<String>,
    /// `paas_long_polling` (false): long-poll the coordinator when a held
    /// poll keeps no other runner waiting (see [`crate::long_poll`]).
    pub long_polling: bool,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            trace_watch: Some((Duration::from_secs(300), Duration::from_secs(10))),
            quota_max_fraction: 1.0,
            label: None,
            long_polling: false,
        }
    }
}

/// First delay before retrying a delete refused with a permanent error.
pub const PERMANENT_RETRY_MIN: Duration = Duration::from_secs(600);

/// Longest delay between attempts at a delete refused with a permanent
/// error.
pub const PERMANENT_RETRY_MAX: Duration = Duration::from_secs(6 * 3600);

/// Global settings of the actor system (the defaults are those of the configuration file's settings).
#[derive(Clone, Debug, PartialEq)]
pub struct SupervisorSettings {
    /// `concurrent` (50).
    pub concurrent: usize,
    /// `check_interval` (3 s).
    pub check_interval: Duration,
    /// `job_progress_poll_interval` (30 s).
    pub job_progress_poll_interval: Duration,
    /// `paas_max_concurrent_provisioning` (10).
    pub max_concurrent_provisioning: usize,
    /// `paas_finished_jobs_keep_resources` (false).
    pub keep_finished_resources: bool,
    /// `paas_decommission_launch_failures` (true).
    pub decommission_launch_failures: bool,
    /// `paas_repoll_same_runner_immediately` (true).
    pub repoll_immediately: bool,
    /// Weighted quota (computed by the wiring from `[quota_computation]`).
    pub quota: Weight,
    /// `allowed_fraction_per_runner` (1.0).
    pub allowed_fraction_per_runner: f64,
    /// Deadline of a graceful stop (`shutdown_timeout`), well inside the
    /// sample systemd unit's `TimeoutStopSec=120` (90 s).
    pub drain_deadline: Duration,
    /// Attempts to report a launch failure (3).
    pub report_failure_attempts: u32,
    /// Delay between those attempts (30 s).
    pub report_failure_interval: Duration,
    /// First back-off delay after a coordinator or PAAS failure (3 s).
    pub backoff_min: Duration,
    /// Largest back-off delay (300 s).
    pub backoff_max: Duration,
    /// Progress checks in flight per runner (16).
    pub progress_check_concurrency: usize,
    /// Delay before retrying a failed state write (5 s).
    pub persist_retry: Duration,
    /// Stop (gracefully) after this many polling cycles (`--poll-cycles`).
    pub poll_cycles: Option<u64>,
    /// Attempts of each launch step (create, prepare, launch) when the PAAS
    /// answers a transient error, the first included (4; delays from
    /// `backoff_min`, doubling).
    pub launch_attempts: u32,
    /// How long a create answered a transient error (a 5xx) is retried
    /// (10 s): a new attempt (after a look-up by name) is made only if it
    /// starts within this time from the first create; then, after
    /// `creating_grace`, one last look-up by name, and the job fails with
    /// the PAAS's message in its trace. Other jobs are acquired meanwhile
    /// as the quota and limits allow.
    pub create_retry_budget: Duration,
    /// `reconcile_interval` (300 s): delay between reconciliation passes
    /// after the one at start-up; `None` (or zero) disables the periodic
    /// passes.
    pub reconcile_interval: Option<Duration>,
    /// Grace period of a resumed job whose `creating` marker finds no
    /// resource of its name (5 s): the previous process's create may still
    /// be landing at the PAAS, so the launcher waits this long and lists
    /// once more before creating again. Zero disables the second look.
    pub creating_grace: Duration,
    /// Seed of the retry back-offs' jitter; `None` (production) seeds them
    /// from the clock, tests fix it to get the same delays every run.
    pub backoff_seed: Option<u64>,
    /// Period of the supervisor's liveness tick
    /// ([`crate::observer::ServiceObserver::alive`]); `None`: no tick.
    pub alive_interval: Option<Duration>,
}

impl SupervisorSettings {
    /// The retry delays of the coordinator polls, PAAS calls and deletes:
    /// from `backoff_min` doubling up to `backoff_max`, with equal jitter
    /// (each delay in `[ceiling / 2, ceiling]`) so that several runner
    /// hosts do not retry in lock-step.
    pub fn retry_policy(&self) -> BackoffPolicy {
        BackoffPolicy::new(self.backoff_min, self.backoff_max).with_jitter(Jitter::Equal)
    }

    /// The delays between attempts at a delete the PAAS refused with a
    /// permanent error (a revoked token…): [`PERMANENT_RETRY_MIN`]
    /// doubling up to [`PERMANENT_RETRY_MAX`], equal jitter.
    pub fn permanent_retry_policy(&self) -> BackoffPolicy {
        BackoffPolicy::new(PERMANENT_RETRY_MIN, PERMANENT_RETRY_MAX).with_jitter(Jitter::Equal)
    }
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            concurrent: 50,
            check_interval: Duration::from_secs(3),
            job_progress_poll_interval: Duration::from_secs(30),
            max_concurrent_provisioning: 10,
            keep_finished_resources: false,
            decommission_launch_failures: true,
            repoll_immediately: true,
            quota: 1.0,
            allowed_fraction_per_runner: 1.0,
            drain_deadline: Duration::from_secs(90),
            report_failure_attempts: 3,
            report_failure_interval: Duration::from_secs(30),
            backoff_min: Duration::from_secs(3),
            backoff_max: Duration::from_secs(300),
            progress_check_concurrency: 16,
            persist_retry: Duration::from_secs(5),
            poll_cycles: None,
            launch_attempts: 4,
            create_retry_budget: Duration::from_secs(10),
            reconcile_interval: Some(Duration::from_secs(300)),
            creating_grace: Duration::from_secs(5),
            backoff_seed: None,
            alive_interval: None,
        }
    }
}

/// One `[[runners]]` section: its unique name and ports.
pub struct RunnerPorts {
    /// Unique name (derived from the runner token), as in the state file.
    pub name: String,
    /// Its coordinator.
    pub coordinator: std::rc::Rc<dyn crate::ports::Coordinator>,
    /// Its PAAS executor.
    pub paas: std::rc::Rc<dyn crate::ports::Paas>,
    /// Its settings.
    pub settings: RunnerSettings,
}
