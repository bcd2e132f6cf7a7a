//! The one counting path: what the supervisor's transitions do to its
//! metrics ([`crate::metrics::Metrics`]) and to the totals the state dump
//! and the tests read back from them.
//!
//! The handlers say what happened, as a [`Transition`], where it happened;
//! [`Supervisor::observe`] alone turns it into counter, gauge and histogram
//! updates. The `jobs{runner,phase}` gauge moves with the three transitions
//! that change the job table, each emitted at the one place where the table
//! changes that way (`add_job`, `apply`, `forget`). The gauges that mirror
//! the ledger (quota weights, limits) and the peak weight are derived from
//! the ledger again after every transition, so a ledger change is published
//! by the transition that comes with it. A new metric of an existing event
//! is one more line in a match arm; a new event is one more variant.

use super::*;

/// How a job entered the job table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JobOrigin {
    /// Acquired from the coordinator.
    Acquired,
    /// Found by reconciliation: an unknown resource whose job still runs.
    Adopted,
    /// Found by reconciliation: an unknown resource nobody needs, tracked
    /// to be decommissioned.
    Unneeded,
}

/// Why a job left the job table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JobEnd {
    /// Its resource was deleted.
    Decommissioned,
    /// Nothing to delete: no resource, or the configuration keeps it.
    Released,
    /// Its resource vanished from the PAAS (seen by reconciliation).
    Vanished,
}

/// Something that happened in the supervisor, as monitoring sees it.
#[derive(Debug)]
pub(super) enum Transition {
    /// The supervisor started: its runners, limits and loaded jobs.
    Started,
    /// A reconfiguration added a runner.
    RunnerAdded { runner: usize },
    /// A reconfiguration changed the limits.
    LimitsChanged,
    /// A poll was sent; the ledger holds its reservation.
    PollSent,
    /// A poll ended, answered by the coordinator or not; the ledger no
    /// longer holds its reservation (released, or taken by the job).
    PollEnded { runner: usize, answered: bool },
    /// A job entered the job table (its weight is in the ledger).
    JobAdded {
        runner: usize,
        phase: Phase,
        origin: JobOrigin,
    },
    /// A job moved from `from` to `to` on `event`, `tracked_for` after it
    /// was tracked and `finished_for` after it was seen over (if it was).
    PhaseChanged {
        runner: usize,
        event: JobEvent,
        from: Phase,
        to: Phase,
        tracked_for: Duration,
        finished_for: Option<Duration>,
    },
    /// A job left the job table, from `phase` (its weight left the ledger).
    JobRemoved {
        runner: usize,
        phase: Phase,
        end: JobEnd,
    },
    /// A job's resource was recorded (`first`: it had none before).
    ResourceRecorded { runner: usize, first: bool },
    /// A job's launch failed.
    LaunchFailed {
        runner: usize,
        reason: LaunchFailureReason,
    },
    /// The PAAS refused to delete a resource with a permanent error.
    DeleteRefused { runner: usize },
    /// Reconciliation left an unknown resource alone.
    ResourceLeftAlone,
    /// A reconciliation pass of one runner ended.
    ReconcilePassEnded,
    /// A state write ended, `took` after its content started being built.
    StateWritten { ok: bool, took: Duration },
    /// A trace read told whether a runner's trace-watch token is refused.
    TraceTokenSeen { runner: usize, refused: bool },
}

impl Supervisor {
    /// Applies `t` to the metrics, then derives the ledger's gauges again.
    pub(super) fn observe(&mut self, t: Transition) {
        let m = &*self.metrics;
        // Runs `f` with the `runner` label of runner `i`, if it is known.
        let of = |i: usize, f: &dyn Fn(&str)| {
            if let Some(r) = self.runners.get(i) {
                f(&r.label);
            }
        };
        match t {
            Transition::Started => self.declare_started(),
            Transition::RunnerAdded { runner } => of(runner, &|l| m.add_runner(l, &phase_names())),
            Transition::LimitsChanged | Transition::PollSent => {}
            Transition::PollEnded { runner, answered } => {
                of(runner, &|l| m.poll_ended(l, answered))
            }
            Transition::JobAdded {
                runner,
                phase,
                origin,
            } => {
                of(runner, &|l| m.job_moved(l, None, Some(phase.as_str())));
                match origin {
                    JobOrigin::Acquired => of(runner, &|l| m.job_acquired(l)),
                    JobOrigin::Adopted => m.reconcile_action(ReconcileAction::Adopted),
                    JobOrigin::Unneeded => m.reconcile_action(ReconcileAction::Decommissioned),
                }
            }
            Transition::PhaseChanged {
                runner,
                event,
                from,
                to,
                tracked_for,
                finished_for,
            } => {
                of(runner, &|l| {
                    m.job_moved(l, Some(from.as_str()), Some(to.as_str()))
                });
                match event {
                    JobEvent::ResourceLaunched => m.observe_provision(tracked_for),
                    JobEvent::TraceSeen => m.observe_start(tracked_for),
                    JobEvent::Decommissioned => {
                        of(runner, &|l| m.resource_deleted(l));
                        if let Some(lag) = finished_for {
                            m.observe_decommission_lag(lag);
                        }
                    }
                    _ => {}
                }
            }
            Transition::JobRemoved { runner, phase, end } => {
                of(runner, &|l| m.job_moved(l, Some(phase.as_str()), None));
                m.job_completed();
                if end == JobEnd::Vanished {
                    m.reconcile_action(ReconcileAction::Forgotten);
                }
            }
            Transition::ResourceRecorded { runner, first } => {
                if first {
                    of(runner, &|l| m.resource_created(l));
                }
            }
            Transition::LaunchFailed { runner, reason } => {
                of(runner, &|l| m.launch_failed(l, reason));
            }
            Transition::DeleteRefused { runner } => {
                of(runner, &|l| m.decommission_failed(l, "permanent"));
            }
            Transition::ResourceLeftAlone => m.reconcile_action(ReconcileAction::LeftAlone),
            Transition::ReconcilePassEnded => m.reconcile_pass_ended(),
            Transition::StateWritten { ok, took } => m.state_written(ok, took),
            Transition::TraceTokenSeen { runner, refused } => {
                of(runner, &|l| m.set_trace_watch_token_refused(l, refused));
            }
        }
        self.derive_from_ledger();
    }

    /// Every runner's series, and the jobs loaded from the state.
    fn declare_started(&self) {
        for r in &self.runners {
            self.metrics.add_runner(&r.label, &phase_names());
        }
        for (key, e) in self.jobs.iter() {
            if let Some(r) = self.runners.get(key.runner) {
                self.metrics
                    .job_moved(&r.label, None, Some(e.phase.as_str()));
            }
        }
    }

    /// The quota gauges (the limit, the weight of the tracked jobs, the
    /// weight reserved by polls in flight), the limits and the peak, from
    /// the ledger.
    fn derive_from_ledger(&mut self) {
        let (used, reserved) = (self.ledger.used(), self.ledger.reserved());
        if used > self.peak_used {
            self.peak_used = used;
        }
        let limits = self.ledger.limits();
        self.metrics
            .set_quota(limits.total_weight, used - reserved, reserved);
        self.metrics
            .set_limits(limits.concurrent, limits.max_provisioning);
    }

    /// The totals since start, read back from the metrics.
    pub(super) fn totals(&self) -> Totals {
        self.metrics.totals(self.runners.iter().map(|r| &*r.label))
    }
}

/// Every phase name: the `phase` labels of a runner's `jobs` series.
fn phase_names() -> [&'static str; Phase::ALL.len()] {
    Phase::ALL.map(Phase::as_str)
}
