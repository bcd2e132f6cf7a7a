//! The supervisor's protocol: what per-job actors tell it (two messages:
//! [`WriteAhead`], the requests answered once on disk, and [`TaskEvent`],
//! the events that need no answer), the commands the service and its
//! timers send it, and the typed answer of the write-ahead requests
//! ([`NotRecorded`]).
//!
//! Per-job actors know only these two messages (through
//! [`crate::job_ctx::SupervisorLink`]), never the supervisor itself. Each
//! variant carries a struct of the same name, which converts into its
//! message (`From`).

use crate::metrics::LaunchFailureReason;
use crate::ports::{Resource, Weight};
use crate::quota::JobKey;
use crate::settings::{InvalidSetting, RunnerPorts, RunnerSettings, SupervisorSettings};
use crate::shutdown::Interrupt;
use actix::prelude::*;
use std::time::Duration;

/// Why the supervisor did not record what a per-job actor asked it to
/// record before an external call (write-ahead): the actor must not make
/// that call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotRecorded {
    /// The job is not in a phase that expects this event (cancelled,
    /// forgotten, or already past it).
    #[error("not expected: the job is {phase}")]
    NotExpected {
        /// The job's phase, or "no longer tracked".
        phase: &'static str,
    },
    /// The state could not be written (forced stop, or the final write of
    /// a drain failed).
    #[error("not durable: {0}")]
    NotDurable(String),
    /// The supervisor stopped before answering.
    #[error("the supervisor stopped")]
    SupervisorGone,
}

/// Sent by a launcher to the supervisor before the create call: record the
/// resource name (write-ahead). Answered once the record is on disk.
#[derive(Debug)]
pub(crate) struct RecordCreating {
    /// The job.
    pub key: JobKey,
    /// Deterministic resource name.
    pub name: String,
}

/// Sent by a launcher to the supervisor when the resource exists (after
/// `create`, and again after `prepare`). Answered once recorded on disk.
#[derive(Debug)]
pub(crate) struct ResourceProvisioned {
    /// The job.
    pub key: JobKey,
    /// The resource.
    pub resource: Resource,
}

/// Sent by a launcher to the supervisor when the job is launched on its
/// resource. Answered once recorded on disk.
#[derive(Debug)]
pub(crate) struct ResourceLaunched {
    /// The job.
    pub key: JobKey,
    /// The launched resource.
    pub resource: Resource,
}

/// Sent by a decommissioner to the supervisor when the PAAS refused the
/// delete with a permanent error: the resource may still exist (it keeps
/// its weight); the decommissioner retries the delete after its back-off.
#[derive(Debug)]
pub(crate) struct DecommissionRefused {
    /// The job.
    pub key: JobKey,
    /// The PAAS error (never a secret).
    pub error: String,
}

/// Sent by a trace watcher to the supervisor when the job trace grew, or
/// when the trace-watch token was refused (the job is then taken as started
/// after its push, as without trace watch).
#[derive(Debug)]
pub(crate) struct JobStarted {
    /// The job.
    pub key: JobKey,
    /// How the watcher decided.
    pub seen: TraceSeen,
}

/// What a trace watcher saw of the trace-watch token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TraceSeen {
    /// The trace was read (the token works) and grew.
    Grew,
    /// The coordinator refused the trace-watch token (401/403); `detail`
    /// says how (never a secret).
    TokenRefused {
        /// The coordinator's answer, described.
        detail: String,
    },
}

/// Sent by a launcher or a trace watcher to the supervisor when launching
/// failed; `message` goes to the job trace.
#[derive(Debug)]
pub(crate) struct LaunchFailed {
    /// The job.
    pub key: JobKey,
    /// Explanation for the job author and the operator; never a secret.
    pub message: String,
    /// Which step failed (the metrics' bounded `reason` label).
    pub reason: LaunchFailureReason,
}

/// Sent by a launcher or a trace watcher to the supervisor when it stopped
/// early (drain, or job cancelled at the coordinator).
#[derive(Debug)]
pub(crate) struct LaunchStopped {
    /// The job.
    pub key: JobKey,
    /// Why.
    pub interrupt: Interrupt,
}

/// How reporting a launch failure ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReportOutcome {
    /// Reported (or the job was already over).
    Reported,
    /// Every attempt failed.
    GaveUp,
    /// Interrupted by the drain: report again in the next process.
    Interrupted,
}

/// Sent by a failure reporter to the supervisor when done.
#[derive(Debug)]
pub(crate) struct FailureReported {
    /// The job.
    pub key: JobKey,
    /// How it ended.
    pub outcome: ReportOutcome,
    /// Trace length after the appended line.
    pub trace_offset: u64,
    /// Whether the red line is in the trace.
    pub trace_appended: bool,
}

/// Sent by a decommissioner to the supervisor: the resource is gone.
#[derive(Debug)]
pub(crate) struct ResourceDecommissioned {
    /// The job.
    pub key: JobKey,
}

/// Sent by a decommissioner to the supervisor when the drain stopped its
/// retries: the resource stays in `to_decommission`.
#[derive(Debug)]
pub(crate) struct DecommissionStopped {
    /// The job.
    pub key: JobKey,
}

/// Sent by a launcher to the supervisor when the standby resource the job
/// was to reuse could not take it: the resource goes to decommissioning,
/// the job to a new resource.
#[derive(Debug)]
pub(crate) struct ReuseFailed {
    /// The job.
    pub key: JobKey,
    /// Why; never a secret.
    pub message: String,
}

/// Sent by the service to the supervisor: delete every standby resource
/// now, and keep none from now on (a finish-and-exit stop). Answers how
/// many resources went to decommissioning.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub(crate) struct ReleaseStandby;

/// Sent by every per-job actor to the supervisor when it stops.
#[derive(Debug)]
pub(crate) struct TaskEnded {
    /// The job.
    pub key: JobKey,
}

/// A write-ahead request of a launcher: answered `Ok` once what it asks
/// to record is on disk, `Err` when the supervisor does not record it (the
/// launcher must then not make the call that follows).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), NotRecorded>")]
pub(crate) enum WriteAhead {
    /// Before `create`.
    RecordCreating(RecordCreating),
    /// After `create`, and again after `prepare`.
    ResourceProvisioned(ResourceProvisioned),
    /// After `launch`.
    ResourceLaunched(ResourceLaunched),
}

/// What a per-job actor tells the supervisor without waiting for an answer.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) enum TaskEvent {
    /// From a trace watcher.
    JobStarted(JobStarted),
    /// From a launcher or a trace watcher.
    LaunchFailed(LaunchFailed),
    /// From a launcher or a trace watcher.
    LaunchStopped(LaunchStopped),
    /// From a failure reporter.
    FailureReported(FailureReported),
    /// From a decommissioner.
    ResourceDecommissioned(ResourceDecommissioned),
    /// From a decommissioner.
    DecommissionStopped(DecommissionStopped),
    /// From a decommissioner.
    DecommissionRefused(DecommissionRefused),
    /// From a launcher reusing a standby resource.
    ReuseFailed(ReuseFailed),
    /// From every per-job actor, when it stops.
    TaskEnded(TaskEnded),
}

/// `From<Variant> for Enum` for each variant carrying the struct of its name.
macro_rules! variants_from {
    ($message:ident: $($variant:ident),+) => {
        $(impl From<$variant> for $message {
            fn from(m: $variant) -> Self {
                $message::$variant(m)
            }
        })+
    };
}

variants_from!(WriteAhead: RecordCreating, ResourceProvisioned, ResourceLaunched);
variants_from!(
    TaskEvent: JobStarted,
    LaunchFailed,
    LaunchStopped,
    FailureReported,
    ResourceDecommissioned,
    DecommissionStopped,
    DecommissionRefused,
    ReuseFailed,
    TaskEnded
);

/// Sent by the supervisor to itself at start-up and every
/// `reconcile_interval` (and by tests): reconcile each runner's resources on
/// the PAAS with the state. A runner whose previous pass is still running is
/// skipped; nothing happens while draining.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reconcile;

/// Sent by the service (SIGUSR1) to the supervisor: log the whole state,
/// secrets masked.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct DumpState;

/// Sent by the service (health and readiness endpoints) to the
/// supervisor: is it alive, is it draining, can it take jobs?
#[derive(Message, Debug)]
#[rtype(result = "Health")]
pub(crate) struct GetHealth;

/// Why the service cannot take jobs now ([`Health::not_ready`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// The service is stopping: no more polls.
    Draining,
    /// The last state write failed: no job is acquired until one succeeds.
    StateWritesFailing,
    /// Every runner's last poll failed: its coordinator is down or refuses.
    CoordinatorsDown,
    /// No runner is polled (every section removed by a reload).
    NoRunner,
    /// Some runner's first reconciliation listing has not answered yet.
    Starting,
}

impl NotReady {
    /// The reason's fixed name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotReady::Draining => "draining",
            NotReady::StateWritesFailing => "state_writes_failing",
            NotReady::CoordinatorsDown => "coordinators_down",
            NotReady::NoRunner => "no_runner",
            NotReady::Starting => "starting",
        }
    }

    /// What it means, for people.
    pub fn detail(self) -> &'static str {
        match self {
            NotReady::Draining => "the service is stopping",
            NotReady::StateWritesFailing => {
                "the state file cannot be written: no job is taken until a write succeeds"
            }
            NotReady::CoordinatorsDown => "every runner's coordinator failed at its last poll",
            NotReady::NoRunner => "no runner section is polled",
            NotReady::Starting => "the first reconciliation with the PAAS is not done yet",
        }
    }
}

/// What [`crate::ServiceHandle::health`] answers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Health {
    /// The service is stopping (no more polls).
    pub draining: bool,
    /// Why it cannot take jobs now; `None` when it can.
    pub not_ready: Option<NotReady>,
    /// Jobs tracked.
    pub jobs: usize,
    /// Weight held by the tracked jobs.
    pub used_weight: Weight,
    /// The quota.
    pub quota: Weight,
}

/// Sent by the service (job list endpoint) to the supervisor: one line per
/// tracked job.
#[derive(Message, Debug)]
#[rtype(result = "Vec<JobView>")]
pub(crate) struct ListJobs;

/// One tracked job as [`crate::ServiceHandle::jobs`] shows it (no token, no payload).
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    /// The job's id at its coordinator.
    pub job_id: i64,
    /// The runner's `runner` label (section `name`).
    pub runner: String,
    /// The runner's unique name (its identity in the state file).
    pub unique_name: String,
    /// The job's phase.
    pub phase: &'static str,
    /// Weight the ledger holds for it.
    pub weight: Weight,
    /// Id of its resource, if any.
    pub resource_id: Option<String>,
    /// Name of its resource (or the name recorded before creating it).
    pub resource_name: Option<String>,
    /// Time in the current phase.
    pub since: Duration,
}

/// A reload's changes, as the root crate computed them against the
/// configuration it last applied (SIGHUP): what [`ApplySettings`] carries.
pub struct SettingsDiff {
    /// The new global settings; only the keys named in `live` apply.
    pub settings: SupervisorSettings,
    /// Global keys whose new value applies now.
    pub live: Vec<&'static str>,
    /// Keys that changed but need a restart (left as they run).
    pub restart_needed: Vec<&'static str>,
    /// Runners to start: new by name, or polled again after a removal.
    pub added: Vec<RunnerPorts>,
    /// Running runners whose settings changed, by unique name; a running
    /// runner keeps its ports.
    pub changed: Vec<(String, RunnerSettings)>,
    /// Runners no longer polled, by unique name (their jobs run to the end).
    pub removed: Vec<String>,
}

/// Sent by the root crate's reload to the supervisor (through
/// [`crate::service::SettingsSender`]): apply a [`SettingsDiff`], answered
/// by an [`ApplyOutcome`]. Built by [`ApplySettings::new`], which holds
/// every setting to its declaration ([`crate::settings`]), so that the
/// supervisor applies it as it is. Not an actix message: the ports of the
/// runners it adds are not `Send`; it reaches the supervisor by a channel
/// of the service's thread.
pub struct ApplySettings(pub(crate) SettingsDiff);

/// An [`ApplySettings`] and where its answer goes.
pub(crate) type SettingsRequest = (ApplySettings, tokio::sync::oneshot::Sender<ApplyOutcome>);

impl ApplySettings {
    /// The message, if every setting of `diff` is in its key's range.
    pub fn new(diff: SettingsDiff) -> Result<Self, InvalidSetting> {
        diff.settings.check()?;
        for settings in diff.added.iter().map(|r| &r.settings) {
            settings.check_all()?;
        }
        for (_, settings) in &diff.changed {
            settings.check_all()?;
        }
        Ok(ApplySettings(diff))
    }
}

/// The answer to [`ApplySettings`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Applied: what changed.
    Applied(ReloadReport),
    /// Nothing applied (the service is stopping): why.
    Refused(String),
}

/// What an [`ApplySettings`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Runners started (new, or polled again after a removal).
    pub added: Vec<String>,
    /// Runners no longer polled.
    pub removed: Vec<String>,
    /// Runners whose settings changed.
    pub changed: Vec<String>,
    /// Global settings applied.
    pub settings: Vec<&'static str>,
    /// Settings that changed but need a restart (left as they were).
    pub restart_needed: Vec<&'static str>,
}
