//! Settings the actors read: the global [`SupervisorSettings`], one
//! [`RunnerSettings`] per runner, and its [`TraceWatch`].
//!
//! Each field the configuration file sets is declared here once, with its
//! key, default, range, documentation line and reload class
//! (`declare_settings!`, in `settings/key.rs`, builds the structs, their
//! defaults and their `KEYS`): the root crate validates the file through these
//! declarations and fills these structs, README's key tables are checked
//! against them, and a reload's live and "restart needed" keys come from
//! them. The first paragraph of a key's documentation is its README line.

mod key;

pub use key::{changed, Fallback, InvalidSetting, Key, Kind, Plain, Reload, Setting, Shape, Value};
pub(crate) use key::{check, SettingValue};

use crate::backoff::{BackoffPolicy, Jitter};
use crate::ports::Weight;
use key::declare_settings;
use std::time::Duration;

declare_settings! {
    /// Global settings of the actor system.
    #[derive(Clone, Debug, PartialEq)]
    pub struct SupervisorSettings {
        keys {
            /// Maximum number of jobs across all runners.
            concurrent: usize = 50 => "concurrent", Kind::COUNT, Live;
            /// Seconds between coordinator polls (0 means the default). A
            /// runner that got a job is polled again at once while the
            /// limits allow.
            check_interval: Duration = Duration::from_secs(3) =>
                "check_interval", Kind::SECONDS_OR_DEFAULT, Live;
            /// Seconds between checks of whether launched jobs are finished.
            job_progress_poll_interval: Duration = Duration::from_secs(30) =>
                "job_progress_poll_interval" | "job_progress_interval", Kind::SECONDS, Live;
            /// Jobs acquired but not yet seen started at once.
            max_concurrent_provisioning: usize = 10 =>
                "paas_max_concurrent_provisioning", Kind::COUNT, Live;
            /// If true, resources of finished jobs are not deleted.
            keep_finished_resources: bool = false =>
                "paas_finished_jobs_keep_resources", Kind::FLAG, Live;
            /// If false, a resource whose launch failed is kept for inspection.
            decommission_launch_failures: bool = true =>
                "paas_decommission_launch_failures" | "pass_decommision_launched_failures",
                Kind::FLAG, Live;
            /// Poll a runner again at once after it gave a job.
            repoll_immediately: bool = true =>
                "paas_repoll_same_runner_immediately", Kind::FLAG, Live;
            /// The largest share of the quota one runner may hold.
            allowed_fraction_per_runner: f64 = 1.0 =>
                "quota_computation.allowed_fraction_per_runner", Kind::FRACTION, Live;
            /// Deadline of the graceful stop, seconds (keep it below
            /// systemd's `TimeoutStopSec`).
            ///
            /// The default is well inside the sample systemd unit's
            /// `TimeoutStopSec=120`.
            drain_deadline: Duration = Duration::from_secs(90) =>
                "shutdown_timeout",
                Kind::SECONDS.expecting("a positive number of seconds (graceful stop deadline)"),
                Restart;
            /// Seconds between reconciliation passes of the state with the
            /// PAAS (see "Crash safety and reconciliation"); 0 disables the
            /// periodic passes, the one at start-up always runs.
            reconcile_interval: Option<Duration> = Some(Duration::from_secs(300)) =>
                "reconcile_interval",
                Kind::seconds_or_off("a number of seconds (0 disables the periodic reconciliation)"),
                Live;
            /// Seconds a job GitLab shows running for this runner must be
            /// old before it may be given back (cancelled and retried) when
            /// nothing here knows it (see "Jobs lost at acquisition").
            give_back_grace: Duration = Duration::from_secs(60) =>
                "paas_give_back_grace", Kind::SECONDS, Live;
            /// Seconds between two provisioning starts (the create of a new
            /// resource), across all runners; 0: no spacing. Each start is
            /// planned at the last planned one plus this gap, so that launches
            /// queued together start one after the other.
            min_between_launches: Option<Duration> = None =>
                "paas_min_seconds_between_launches",
                Kind::seconds_or_off("a number of seconds (0: provisioning starts are not spaced)"),
                Live;
            /// Log one INFO line `JSON statistics: {…}` per polling cycle:
            /// the quota, the weight held and the job counts and limits, with
            /// the Python runner 1.1's eight keys. The metrics carry the
            /// same figures.
            log_statistics: bool = false => "paas_log_statistics", Kind::FLAG, Live;
        }
        fixed {
            /// Weighted quota (computed by the wiring from `[quota_computation]`).
            quota: Weight = 1.0;
            /// Attempts to report a launch failure.
            report_failure_attempts: u32 = 3;
            /// Delay between those attempts.
            report_failure_interval: Duration = Duration::from_secs(30);
            /// First back-off delay after a coordinator or PAAS failure.
            backoff_min: Duration = Duration::from_secs(3);
            /// Largest back-off delay.
            backoff_max: Duration = Duration::from_secs(300);
            /// Progress checks in flight per runner.
            progress_check_concurrency: usize = 16;
            /// Delay before retrying a failed state write.
            persist_retry: Duration = Duration::from_secs(5);
            /// Stop (gracefully) after this many polling cycles (`--poll-cycles`).
            poll_cycles: Option<u64> = None;
            /// Attempts of each launch step (create, prepare, launch) when
            /// the PAAS answers a transient error, the first included
            /// (delays from `backoff_min`, doubling).
            launch_attempts: u32 = 4;
            /// How long a create answered a transient error (a 5xx) is
            /// retried: a new attempt (after a look-up by name) is made only
            /// if it starts within this time from the first create; then,
            /// after `creating_grace`, one last look-up by name, and the job
            /// fails with the PAAS's message in its trace. Other jobs are
            /// acquired meanwhile as the quota and limits allow.
            create_retry_budget: Duration = Duration::from_secs(10);
            /// Grace period of a resumed job whose `creating` marker finds
            /// no resource of its name: the previous process's create may
            /// still be landing at the PAAS, so the launcher waits this long
            /// and lists once more before creating again. Zero disables the
            /// second look.
            creating_grace: Duration = Duration::from_secs(5);
            /// Seed of the retry back-offs' jitter; `None` (production)
            /// seeds them from the clock, tests fix it to get the same
            /// delays every run.
            backoff_seed: Option<u64> = None;
            /// Period of the supervisor's liveness tick
            /// ([`crate::observer::ServiceObserver::alive`]); `None`: no tick.
            alive_interval: Option<Duration> = None;
        }
    }
}

declare_settings! {
    /// Settings of one runner that the actors use.
    #[derive(Clone, Debug, PartialEq)]
    pub struct RunnerSettings {
        keys {
            /// Largest share of the quota this runner may hold.
            quota_max_fraction: f64 = 1.0 => "quota_max_fraction", Kind::FRACTION, Live;
            /// Long polling: job requests carry the queue version GitLab last
            /// announced (`last_update`), so that GitLab Workhorse holds each
            /// one until this runner's queue changes or its long-poll window
            /// (`apiCiLongPollingDuration`) ends, and a new job is picked up
            /// at once instead of at the next `check_interval`. A held
            /// request keeps its share of the quota (the runner's largest
            /// job), so a poll is long only while the quota still has room
            /// for every other runner section to take its largest job at the
            /// same time; otherwise it is short, as with `false`. A graceful
            /// stop waits for a held request until its hold ends (within
            /// `shutdown_timeout`). Neither GitLab Runner nor the Python
            /// runner has such a key (GitLab Runner always sends
            /// `last_update`). Never forwarded.
            ///
            /// See `actors/src/long_poll.rs`.
            long_polling: bool = false => "paas_long_polling", Kind::FLAG, Live;
        }
        fixed {
            /// The trace watch; `None` without a trace-watch token (launched
            /// jobs are then assumed started).
            trace_watch: Option<TraceWatch> = Some(TraceWatch::default());
            /// The runner section's `name`: the `runner` label of its metrics
            /// (`None`: the runner's unique name).
            label: Option<String> = None;
            /// What becomes of a finished job's resource: `Some` for a
            /// section whose executor can reuse it (clever-service-docker,
            /// set by the configuration), `None`: deleted.
            standby: Option<StandbyPolicy> = None;
        }
    }
}

/// How long a finished job's resource is kept for another job, and for how
/// many jobs at most.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StandbyPolicy {
    /// How long a resource waits on standby (`keep = 0`: never kept).
    pub keep: Duration,
    /// Past this many jobs, a resource is deleted instead of kept.
    pub max_jobs_per_resource: u32,
}

impl StandbyPolicy {
    /// The Python runner 1.1's 120 s.
    pub const DEFAULT_KEEP: Duration = Duration::from_secs(120);
    /// At most 20 jobs per resource (the Python runner 1.1 has no limit).
    pub const DEFAULT_MAX_JOBS: u32 = 20;
}

impl Default for StandbyPolicy {
    fn default() -> Self {
        StandbyPolicy {
            keep: StandbyPolicy::DEFAULT_KEEP,
            max_jobs_per_resource: StandbyPolicy::DEFAULT_MAX_JOBS,
        }
    }
}

declare_settings! {
    /// How a runner watches the trace of a launched job
    /// (`[runners.paas_job_trace_watch]`).
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct TraceWatch {
        keys {
            /// A launched job whose log does not grow within this time is failed.
            timeout: Duration = Duration::from_secs(300) =>
                "paas_job_trace_watch.timeout_seconds" | "timout_seconds", Kind::SECONDS, Live;
            /// The longest wait between two reads of the log (the first read
            /// comes after the delay the runner's previous jobs took to write
            /// to their log, at once before any is known; then waits of 0.1 s
            /// doubling up to it).
            poll_step: Duration = Duration::from_secs(10) =>
                "paas_job_trace_watch.poll_step", Kind::SECONDS, Live;
        }
        fixed {}
    }
}

/// First delay before retrying a delete refused with a permanent error.
pub(crate) const PERMANENT_RETRY_MIN: Duration = Duration::from_secs(600);

/// Longest delay between attempts at a delete refused with a permanent
/// error.
pub(crate) const PERMANENT_RETRY_MAX: Duration = Duration::from_secs(6 * 3600);

impl SupervisorSettings {
    /// The retry delays of the coordinator polls, PAAS calls and deletes:
    /// from `backoff_min` doubling up to `backoff_max`, with equal jitter
    /// (each delay in `[ceiling / 2, ceiling]`) so that several runner
    /// hosts do not retry in lock-step.
    pub(crate) fn retry_policy(&self) -> BackoffPolicy {
        BackoffPolicy::new(self.backoff_min, self.backoff_max).with_jitter(Jitter::Equal)
    }

    /// The delays between attempts at a delete the PAAS refused with a
    /// permanent error (a revoked token…): [`PERMANENT_RETRY_MIN`]
    /// doubling up to [`PERMANENT_RETRY_MAX`], equal jitter.
    pub(crate) fn permanent_retry_policy(&self) -> BackoffPolicy {
        BackoffPolicy::new(PERMANENT_RETRY_MIN, PERMANENT_RETRY_MAX).with_jitter(Jitter::Equal)
    }

    /// Copies the values of the keys named `names` from `new`: what a
    /// reload applies.
    pub fn apply_keys(&mut self, new: &SupervisorSettings, names: &[&str]) {
        for setting in Self::KEYS.iter().filter(|s| names.contains(&s.key.name)) {
            setting.copy(self, new);
        }
    }
}

impl RunnerSettings {
    /// Checks the declared fields, the trace watch's included.
    pub(crate) fn check_all(&self) -> Result<(), InvalidSetting> {
        self.check()?;
        match &self.trace_watch {
            Some(watch) => watch.check(),
            None => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_declared_once_and_defaults_are_in_range() {
        let mut names: Vec<&str> = SupervisorSettings::KEYS
            .iter()
            .map(|s| s.key.name)
            .chain(RunnerSettings::KEYS.iter().map(|s| s.key.name))
            .chain(TraceWatch::KEYS.iter().map(|s| s.key.name))
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a key declared twice");
        assert_eq!(SupervisorSettings::default().check(), Ok(()));
        assert_eq!(RunnerSettings::default().check_all(), Ok(()));
        for s in SupervisorSettings::KEYS {
            assert!(
                !s.key.doc_line().is_empty(),
                "{} has no doc line",
                s.key.name
            );
        }
    }

    #[test]
    fn values_read_through_the_declaration() {
        let mut s = SupervisorSettings::default();
        let key = |name: &str| {
            SupervisorSettings::KEYS
                .iter()
                .find(|s| s.key.name == name)
                .unwrap_or_else(|| panic!("{name} not declared"))
        };
        assert!(key("concurrent").read(&mut s, &Plain::Integer(7)));
        assert!(!key("concurrent").read(&mut s, &Plain::Integer(0)));
        assert_eq!(s.concurrent, 7);
        s.check_interval = Duration::from_secs(9);
        assert!(key("check_interval").read(&mut s, &Plain::Integer(0)));
        assert_eq!(
            s.check_interval,
            Duration::from_secs(3),
            "0 means the default"
        );
        assert!(key("reconcile_interval").read(&mut s, &Plain::Integer(0)));
        assert_eq!(s.reconcile_interval, None, "0 disables");
        assert!(key("shutdown_timeout").read(&mut s, &Plain::Float(2.5)));
        assert_eq!(s.drain_deadline, Duration::from_millis(2500));
        s.concurrent = 0;
        assert_eq!(
            s.check().map_err(|e| e.key),
            Err("concurrent"),
            "settings built in code are checked against the same declaration"
        );
    }

    #[test]
    fn a_reload_applies_the_named_keys_only() {
        let mut running = SupervisorSettings {
            quota: 12.0,
            poll_cycles: Some(3),
            ..SupervisorSettings::default()
        };
        let new = SupervisorSettings {
            concurrent: 3,
            check_interval: Duration::from_secs(7),
            drain_deadline: Duration::from_secs(1),
            ..SupervisorSettings::default()
        };
        let live = changed(SupervisorSettings::KEYS, &running, &new, Reload::Live);
        let restart = changed(SupervisorSettings::KEYS, &running, &new, Reload::Restart);
        assert_eq!(live, ["concurrent", "check_interval"]);
        assert_eq!(restart, ["shutdown_timeout"]);
        running.apply_keys(&new, &live);
        assert_eq!(
            (running.concurrent, running.check_interval),
            (3, new.check_interval)
        );
        assert_eq!(running.drain_deadline, Duration::from_secs(90));
        assert_eq!((running.quota, running.poll_cycles), (12.0, Some(3)));
    }
}
