//! The simulated load and the runner settings of a bench.

use std::path::PathBuf;
use std::time::Duration;

/// The simulated load and the runner settings of a bench.
#[derive(Debug, Clone)]
pub struct Params {
    /// The fleet load: the steady-state figures are measured.
    pub fleet: bool,
    /// Jobs enqueued.
    pub jobs: usize,
    /// The jobs are enqueued evenly over this time (zero: all at once).
    pub arrival_spread: Duration,
    /// The simulated GitLab Workhorse holds a long poll this long (it holds
    /// only requests that carry `last_update`, i.e. long polls).
    pub long_poll_window: Duration,
    /// Flavor of every job (short name).
    pub flavor: String,
    /// Simulated run time of every job.
    pub job_duration: Duration,
    /// The deployment repository is ready this long after the app is created.
    pub repo_delay: Duration,
    /// The inner runner starts this long after the push.
    pub start_delay: Duration,
    /// `concurrent`.
    pub concurrent: usize,
    /// `paas_max_concurrent_provisioning`.
    pub max_provisioning: usize,
    /// `check_interval`.
    pub check_interval: Duration,
    /// `job_progress_poll_interval`.
    pub progress_interval: Duration,
    /// `cc_deployment_repo_wait_step`.
    pub repo_wait_step: Duration,
    /// `[runners.paas_job_trace_watch] poll_step`.
    pub trace_poll_step: Duration,
    /// Time limit of each run.
    pub timeout: Duration,
    /// Record a `perf` profile of the first run of the first runner here.
    pub perf_output: Option<PathBuf>,
}

impl Params {
    /// One line describing the load and settings.
    pub fn describe(&self) -> String {
        format!(
            "{} jobs of flavor {} running {} s each, enqueued over {} s, deployment repository \
             ready after {} s, inner runner starting {} s after the push, Workhorse long-poll \
             window {} s; concurrent = {}, \
             paas_max_concurrent_provisioning = {}, check_interval = {}, \
             job_progress_poll_interval = {}, cc_deployment_repo_wait_step = {}, \
             paas_job_trace_watch.poll_step = {}",
            self.jobs,
            self.flavor,
            secs(self.job_duration),
            secs(self.arrival_spread),
            secs(self.repo_delay),
            secs(self.start_delay),
            secs(self.long_poll_window),
            self.concurrent,
            self.max_provisioning,
            secs(self.check_interval),
            secs(self.progress_interval),
            secs(self.repo_wait_step),
            secs(self.trace_poll_step),
        )
    }
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}
