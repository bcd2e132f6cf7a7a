//! The job phase state machine, as pure code.
//!
//! ```text
//! Acquired → Provisioning → Provisioned → Launched → Started → Finished → Decommissioning → Gone
//!     └──────────┴──────────────┴────────────┴─→ LaunchFailed → Reported ─┘        (or Gone)
//!     └──────────┴──────────────┴────────────┴─→ Finished (cancelled at the coordinator)
//! Finished → Standby → Decommissioning (expired, evicted)   Standby → Gone (reused)
//! Acquired → Provisioned (a standby resource reused) → Acquired (it could not take the job)
//! ```
//!
//! The supervisor owns one [`Phase`] per job and changes it only through
//! [`transition`]; an event that makes no sense in the current phase is an
//! error the supervisor logs and ignores (a late message from an actor that
//! was interrupted, for instance).

use std::fmt;

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Acquired from the coordinator; nothing created yet.
    Acquired,
    /// The resource name is recorded ("creating …"): the create call may be
    /// in flight or may have happened.
    Provisioning,
    /// The resource exists and is recorded; not launched yet.
    Provisioned,
    /// The build context is pushed / the container started; waiting for the
    /// job trace to grow.
    Launched,
    /// The inner runner took the job (trace grew, or no trace watch).
    Started,
    /// The job is over at the coordinator (finished or cancelled).
    Finished,
    /// Launching failed; the failure is not reported yet.
    LaunchFailed,
    /// The launch failure was reported (or reporting gave up).
    Reported,
    /// The resource is being deleted.
    Decommissioning,
    /// The job is over; its resource is kept for another job.
    Standby,
    /// Nothing left to track.
    Gone,
}

impl Phase {
    /// Every phase, in the order of a job's life.
    pub const ALL: [Phase; 11] = [
        Phase::Acquired,
        Phase::Provisioning,
        Phase::Provisioned,
        Phase::Launched,
        Phase::Started,
        Phase::Finished,
        Phase::LaunchFailed,
        Phase::Reported,
        Phase::Decommissioning,
        Phase::Standby,
        Phase::Gone,
    ];

    /// Lower-case name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Acquired => "acquired",
            Phase::Provisioning => "provisioning",
            Phase::Provisioned => "provisioned",
            Phase::Launched => "launched",
            Phase::Started => "started",
            Phase::Finished => "finished",
            Phase::LaunchFailed => "launch_failed",
            Phase::Reported => "reported",
            Phase::Decommissioning => "decommissioning",
            Phase::Standby => "standby",
            Phase::Gone => "gone",
        }
    }

    /// True while the job is being launched: it counts against
    /// `paas_max_concurrent_provisioning` and a cancellation at the
    /// coordinator stops the launch.
    pub(crate) fn is_launching(self) -> bool {
        matches!(
            self,
            Phase::Acquired | Phase::Provisioning | Phase::Provisioned | Phase::Launched
        )
    }

    /// Where the job goes in the Python-format state file.
    pub(crate) fn section(self, has_resource: bool) -> Option<Section> {
        match self {
            Phase::Acquired
            | Phase::Provisioning
            | Phase::Provisioned
            | Phase::Launched
            | Phase::LaunchFailed => Some(Section::Pending),
            Phase::Started => Some(Section::Launched),
            Phase::Finished | Phase::Reported | Phase::Decommissioning => {
                has_resource.then_some(Section::ToDecommission)
            }
            Phase::Standby => has_resource.then_some(Section::Standby),
            Phase::Gone => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three sections of the Python state file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// `pending`: `[handle, job_data]` pairs, jobs not fully launched.
    Pending,
    /// `launched`: handles of started jobs.
    Launched,
    /// `to_decommission`: handles whose resource must be deleted.
    ToDecommission,
    /// `standby_resources`: handles whose resource waits for another job.
    Standby,
}

/// What happened to a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobEvent {
    /// The resource name was recorded before the create call.
    CreateRecorded,
    /// The resource exists (created, or found by name after a restart).
    ResourceCreated,
    /// The job was launched on the resource.
    ResourceLaunched,
    /// The job trace grew: the inner runner took the job.
    TraceSeen,
    /// The coordinator says the job is over (finished or cancelled).
    FinishedAtCoordinator,
    /// Launching failed (provision, launch, trace timeout…).
    LaunchFailed,
    /// The failure was reported to the coordinator (or reporting gave up).
    FailureReported,
    /// Decommissioning of the resource begins.
    DecommissionStarted,
    /// The resource is gone.
    Decommissioned,
    /// Forget the job without deleting anything (no resource, or the
    /// configuration says to keep it, or another job took its resource).
    Released,
    /// The finished job's resource is kept for another job.
    StandbyStarted,
    /// A new job takes a standby resource.
    ResourceReused,
    /// The reused resource could not take the job: it needs a new one.
    ReuseFailed,
}

/// An event that makes no sense in the current phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {event:?} is invalid in phase {from}")]
pub(crate) struct InvalidTransition {
    /// Phase the job was in.
    pub from: Phase,
    /// The event refused.
    pub event: JobEvent,
}

/// The next phase after `event`, or an error if the event is invalid there.
pub(crate) fn transition(from: Phase, event: JobEvent) -> Result<Phase, InvalidTransition> {
    use JobEvent as E;
    use Phase as P;
    let to = match (from, event) {
        (P::Acquired, E::CreateRecorded) => P::Provisioning,
        (P::Provisioning, E::ResourceCreated) => P::Provisioned,
        (P::Provisioned, E::ResourceLaunched) => P::Launched,
        (P::Launched, E::TraceSeen) => P::Started,
        (p, E::LaunchFailed) if p.is_launching() => P::LaunchFailed,
        (p, E::FinishedAtCoordinator) if p.is_launching() || p == P::Started => P::Finished,
        (P::LaunchFailed, E::FailureReported) => P::Reported,
        (P::Finished | P::Reported, E::DecommissionStarted) => P::Decommissioning,
        (P::Finished | P::Reported, E::Released) => P::Gone,
        (P::Decommissioning, E::Decommissioned) => P::Gone,
        (P::Finished, E::StandbyStarted) => P::Standby,
        (P::Standby, E::DecommissionStarted) => P::Decommissioning,
        (P::Standby, E::Released) => P::Gone,
        (P::Acquired, E::ResourceReused) => P::Provisioned,
        (P::Provisioned, E::ReuseFailed) => P::Acquired,
        _ => return Err(InvalidTransition { from, event }),
    };
    Ok(to)
}

/// What to do with a job whose resource is no longer needed: the job
/// finished (`keep` = `paas_finished_jobs_keep_resources`) or its launch
/// failure was reported (`keep` = not `paas_decommission_launch_failures`).
pub(crate) fn after_use(has_resource: bool, keep: bool) -> JobEvent {
    if has_resource && !keep {
        JobEvent::DecommissionStarted
    } else {
        JobEvent::Released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobEvent as E;
    use Phase as P;

    const ALL_PHASES: [Phase; 11] = [
        P::Acquired,
        P::Provisioning,
        P::Provisioned,
        P::Launched,
        P::Started,
        P::Finished,
        P::LaunchFailed,
        P::Reported,
        P::Decommissioning,
        P::Standby,
        P::Gone,
    ];
    const ALL_EVENTS: [JobEvent; 13] = [
        E::CreateRecorded,
        E::ResourceCreated,
        E::ResourceLaunched,
        E::TraceSeen,
        E::FinishedAtCoordinator,
        E::LaunchFailed,
        E::FailureReported,
        E::DecommissionStarted,
        E::Decommissioned,
        E::Released,
        E::StandbyStarted,
        E::ResourceReused,
        E::ReuseFailed,
    ];

    #[test]
    fn the_whole_transition_table() {
        let valid: &[(Phase, JobEvent, Phase)] = &[
            (P::Acquired, E::CreateRecorded, P::Provisioning),
            (P::Provisioning, E::ResourceCreated, P::Provisioned),
            (P::Provisioned, E::ResourceLaunched, P::Launched),
            (P::Launched, E::TraceSeen, P::Started),
            (P::Acquired, E::LaunchFailed, P::LaunchFailed),
            (P::Provisioning, E::LaunchFailed, P::LaunchFailed),
            (P::Provisioned, E::LaunchFailed, P::LaunchFailed),
            (P::Launched, E::LaunchFailed, P::LaunchFailed),
            (P::Acquired, E::FinishedAtCoordinator, P::Finished),
            (P::Provisioning, E::FinishedAtCoordinator, P::Finished),
            (P::Provisioned, E::FinishedAtCoordinator, P::Finished),
            (P::Launched, E::FinishedAtCoordinator, P::Finished),
            (P::Started, E::FinishedAtCoordinator, P::Finished),
            (P::LaunchFailed, E::FailureReported, P::Reported),
            (P::Finished, E::DecommissionStarted, P::Decommissioning),
            (P::Reported, E::DecommissionStarted, P::Decommissioning),
            (P::Finished, E::Released, P::Gone),
            (P::Reported, E::Released, P::Gone),
            (P::Decommissioning, E::Decommissioned, P::Gone),
            (P::Finished, E::StandbyStarted, P::Standby),
            (P::Standby, E::DecommissionStarted, P::Decommissioning),
            (P::Standby, E::Released, P::Gone),
            (P::Acquired, E::ResourceReused, P::Provisioned),
            (P::Provisioned, E::ReuseFailed, P::Acquired),
        ];
        for from in ALL_PHASES {
            for event in ALL_EVENTS {
                let expected = valid
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                match expected {
                    Some(to) => assert_eq!(transition(from, event), Ok(to), "{from} {event:?}"),
                    None => assert_eq!(
                        transition(from, event),
                        Err(InvalidTransition { from, event }),
                        "{from} {event:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn sections_follow_the_python_format() {
        let table = [
            (P::Acquired, false, Some(Section::Pending)),
            (P::Provisioning, false, Some(Section::Pending)),
            (P::Provisioned, true, Some(Section::Pending)),
            (P::Launched, true, Some(Section::Pending)),
            (P::LaunchFailed, true, Some(Section::Pending)),
            (P::LaunchFailed, false, Some(Section::Pending)),
            (P::Started, true, Some(Section::Launched)),
            (P::Finished, true, Some(Section::ToDecommission)),
            (P::Finished, false, None),
            (P::Reported, true, Some(Section::ToDecommission)),
            (P::Decommissioning, true, Some(Section::ToDecommission)),
            (P::Standby, true, Some(Section::Standby)),
            (P::Standby, false, None),
            (P::Gone, true, None),
        ];
        for (phase, res, expected) in table {
            assert_eq!(phase.section(res), expected, "{phase} resource={res}");
        }
    }

    #[test]
    fn after_use_decides_decommission_or_release() {
        assert_eq!(after_use(true, false), E::DecommissionStarted);
        assert_eq!(after_use(true, true), E::Released);
        assert_eq!(after_use(false, false), E::Released);
        assert_eq!(after_use(false, true), E::Released);
    }

    #[test]
    fn launching_phases_are_exactly_the_pending_ones_before_failure() {
        for p in ALL_PHASES {
            let pending_not_failed =
                p.section(true) == Some(Section::Pending) && p != P::LaunchFailed;
            assert_eq!(p.is_launching(), pending_not_failed, "{p}");
        }
    }
}
