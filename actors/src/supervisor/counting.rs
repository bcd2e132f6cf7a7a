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

use super::poll_slot::PollState;
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
    /// A standby resource that could not take the job it was given, back
    /// under its former job to be decommissioned.
    ReuseFailed,
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
    /// It was on standby and another job took its resource.
    Reused,
}

impl JobEnd {
    /// The end's fixed name, in log lines.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            JobEnd::Decommissioned => "decommissioned",
            JobEnd::Released => "released",
            JobEnd::Vanished => "vanished",
            JobEnd::Reused => "reused",
        }
    }
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
    PollEnded { runner: usize, answer: PollAnswer },
    /// A poll was not sent: the limits block it.
    PollBlocked,
    /// A reconfiguration removed runners (no longer polled).
    RunnersRemoved,
    /// A job entered the job table (its weight is in the ledger).
    JobAdded {
        key: JobKey,
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
        key: JobKey,
        phase: Phase,
        end: JobEnd,
    },
    /// A job's resource was recorded (`first`: it had none before).
    ResourceRecorded { key: JobKey, first: bool },
    /// A job's launch failed.
    LaunchFailed {
        runner: usize,
        reason: LaunchFailureReason,
    },
    /// The PAAS refused to delete a resource with a permanent error.
    DeleteRefused { key: JobKey },
    /// A job was launched, on a reused standby resource or a new one.
    JobLaunched { runner: usize, reused: bool },
    /// Reconciliation left an unknown resource alone.
    ResourceLeftAlone,
    /// A reconciliation pass of one runner ended.
    ReconcilePassEnded,
    /// A job lost at acquisition was given back (cancelled, retried).
    JobGivenBack { runner: usize },
    /// A state write ended, `took` after its content started being built.
    StateWritten { ok: bool, took: Duration },
    /// A trace read told whether a runner's trace-watch token is refused.
    TraceTokenSeen { runner: usize, refused: bool },
    /// A reconciliation listing named the tenants of a runner that cannot
    /// be resolved for a reason that needs someone to act.
    TenantsUnresolved { runner: usize, count: usize },
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
            Transition::LimitsChanged | Transition::PollSent | Transition::PollBlocked => {}
            Transition::RunnersRemoved => self.forget_removed_runners(),
            Transition::PollEnded { runner, answer } => of(runner, &|l| m.poll_ended(l, answer)),
            Transition::JobAdded { key, phase, origin } => {
                let runner = key.runner;
                of(runner, &|l| m.job_moved(l, None, Some(phase.as_str())));
                self.bill_resource(key);
                match origin {
                    JobOrigin::Acquired => of(runner, &|l| m.job_acquired(l)),
                    JobOrigin::Adopted => m.reconcile_action(ReconcileAction::Adopted),
                    JobOrigin::Unneeded => m.reconcile_action(ReconcileAction::Decommissioned),
                    JobOrigin::ReuseFailed => {}
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
                    JobEvent::FinishedAtCoordinator => {
                        let (outcome, took) = if from == Phase::Started {
                            (JobOutcome::Finished, Some(tracked_for))
                        } else {
                            (JobOutcome::CancelledBeforeStart, None)
                        };
                        of(runner, &|l| m.job_finished(l, outcome, took));
                    }
                    JobEvent::LaunchFailed => {
                        of(runner, &|l| {
                            m.job_finished(l, JobOutcome::LaunchFailed, None)
                        });
                    }
                    JobEvent::Decommissioned => {
                        of(runner, &|l| m.resource_deleted(l));
                        if let Some(lag) = finished_for {
                            m.observe_decommission_lag(lag);
                        }
                    }
                    _ => {}
                }
            }
            Transition::JobRemoved { key, phase, end } => {
                let runner = key.runner;
                of(runner, &|l| {
                    m.job_moved(l, Some(phase.as_str()), None);
                    m.resource_gone(l, key.job_id);
                });
                m.job_completed();
                if end == JobEnd::Vanished {
                    m.reconcile_action(ReconcileAction::Forgotten);
                }
                if self.runners.get(runner).is_some_and(|r| r.retired) {
                    self.forget_removed_runners();
                }
            }
            Transition::ResourceRecorded { key, first } => {
                if first {
                    of(key.runner, &|l| m.resource_created(l));
                }
                self.bill_resource(key);
            }
            Transition::LaunchFailed { runner, reason } => {
                of(runner, &|l| m.launch_failed(l, reason));
            }
            Transition::DeleteRefused { key } => {
                of(key.runner, &|l| m.delete_refused(l, key.job_id));
            }
            Transition::JobLaunched { runner, reused } => {
                of(runner, &|l| m.job_launched(l, reused));
            }
            Transition::ResourceLeftAlone => m.reconcile_action(ReconcileAction::LeftAlone),
            Transition::ReconcilePassEnded => m.reconcile_pass_ended(),
            Transition::JobGivenBack { runner } => of(runner, &|l| m.job_given_back(l)),
            Transition::StateWritten { ok, took } => m.state_written(ok, took),
            Transition::TraceTokenSeen { runner, refused } => {
                of(runner, &|l| m.set_trace_watch_token_refused(l, refused));
            }
            Transition::TenantsUnresolved { runner, count } => {
                of(runner, &|l| m.set_tenants_unresolved(l, count));
            }
        }
        self.derive_from_ledger();
        self.show_wants_jobs();
    }

    /// Bills the resource of job `key` from now on, if it has one (once:
    /// the books ignore a resource already billed). Its labels: the
    /// runner, the flavor and the organisation the PAAS port tells.
    fn bill_resource(&self, key: JobKey) {
        let (Some(r), Some(resource)) = (
            self.runners.get(key.runner),
            self.jobs.get(&key).and_then(|e| e.resource.as_ref()),
        ) else {
            return;
        };
        let bill = BillLabels {
            runner: r.label.to_string(),
            flavor: r.paas.resource_flavor(resource).unwrap_or_default(),
            organisation: r.paas.resource_scope(resource).unwrap_or_default(),
        };
        self.metrics.resource_alive(bill, key.job_id);
    }

    /// `runner_wants_jobs` of each runner, set when it changes: a runner
    /// wants jobs unless removed, stopping, finishing its jobs (SIGQUIT) or
    /// blocked by the limits (full).
    fn show_wants_jobs(&mut self) {
        let draining = self.draining || self.finishing;
        for r in self.runners.iter_mut().filter(|r| !r.retired) {
            let wants = !draining && r.poll.state() != PollState::Saturated;
            if r.wants_jobs_shown != Some(wants) {
                r.wants_jobs_shown = Some(wants);
                self.metrics.set_wants_jobs(&r.label, wants);
            }
        }
    }

    /// The series of the removed runners go: those of their polling at
    /// once, all of them once none of their jobs is tracked. A label that
    /// a polled runner shares stays.
    fn forget_removed_runners(&mut self) {
        let mut busy = HashSet::new();
        for key in self.jobs.keys() {
            busy.insert(key.runner);
        }
        let in_use: HashSet<Rc<str>> = self
            .runners
            .iter()
            .enumerate()
            .filter(|(i, r)| !r.retired || busy.contains(i))
            .map(|(_, r)| r.label.clone())
            .collect();
        let polled: HashSet<Rc<str>> = self
            .runners
            .iter()
            .filter(|r| !r.retired)
            .map(|r| r.label.clone())
            .collect();
        for r in self.runners.iter_mut().filter(|r| r.retired) {
            if polled.contains(&r.label) {
                continue;
            }
            r.wants_jobs_shown = None;
            self.metrics.remove_runner_polling(&r.label);
            if !in_use.contains(&r.label) {
                self.metrics.remove_runner(&r.label, &phase_names());
            }
        }
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
            self.bill_resource(*key);
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
            .set_standby_weight(self.ledger.standby_weight());
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
