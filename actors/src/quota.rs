//! The weighted quota: a pure ledger of reserved, expected and actual weights.
//!
//! The supervisor is its only owner. Before asking a runner's coordinator for
//! a job it *reserves* the largest weight a job of that runner could have
//! ([`Ledger::reserve`]); when a job arrives the reservation is replaced by
//! the job's *expected* weight ([`Ledger::acquire`]), and once the resource
//! exists by its *actual* weight ([`Ledger::set_actual`]). A weight is freed
//! only when the resource is really gone ([`Ledger::release`]).
//!
//! Architecture invariant: as long as expected and actual weights do not
//! exceed the reserved weight, [`Ledger::used`] never exceeds
//! [`QuotaLimits::total_weight`], however many runners poll concurrently,
//! because every poll in flight holds its worst case.
//!
//! Fairness: reservations are granted first come, first served, so runners
//! with small jobs polling in turn could hold, between them, a reservation at
//! every instant and keep the headroom below the reservation of a runner
//! whose largest job is heavy, for ever. A runner refused only because of
//! other runners' polls in flight (it would pass every limit without them)
//! is therefore *owed* its reservation: until it polls, every other runner is
//! checked as if the owed reservation were already held ([`Blocked::Owed`]).
//! One runner is owed at a time, until it polls. The debt does not count
//! while jobs, not polls, stand in its way: a runner still waits for jobs to
//! end, as when runners are polled one after the other. The rule only
//! refuses polls, so it cannot break the invariant above.

use crate::ports::Weight;
use std::collections::HashMap;

/// Tolerance for weight comparisons (weights are sums of `x^1.25` floats).
pub(crate) const EPSILON: f64 = 1e-9;

/// Identifies a tracked job: the runner's index in the registry and the job
/// id at that runner's coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    /// Index of the runner in the supervisor's registry.
    pub runner: usize,
    /// Job id at that runner's coordinator.
    pub job_id: i64,
}

/// The global limits the ledger enforces.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct QuotaLimits {
    /// Weighted quota: weight(reference flavor) × `reference_jobs_count`.
    pub total_weight: Weight,
    /// `concurrent`: maximum number of jobs (tracked + polls in flight).
    pub concurrent: usize,
    /// `paas_max_concurrent_provisioning`: jobs acquired but not started.
    pub max_provisioning: usize,
    /// `allowed_fraction_per_runner`: share of the quota one runner may hold.
    pub allowed_fraction_per_runner: f64,
}

/// Why a runner may not be polled now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Blocked {
    /// The runner already has a poll in flight.
    AlreadyReserved,
    /// Not enough weight left in the quota.
    Weight {
        /// Quota minus the weight in use.
        headroom: Weight,
        /// Weight the poll would reserve.
        needed: Weight,
    },
    /// `concurrent` reached.
    Concurrency {
        /// Jobs tracked plus polls in flight.
        jobs: usize,
        /// The limit.
        max: usize,
    },
    /// `paas_max_concurrent_provisioning` reached.
    Provisioning {
        /// Jobs being provisioned plus polls in flight.
        provisioning: usize,
        /// The limit.
        max: usize,
    },
    /// The runner would hold more than its allowed share of the quota.
    RunnerShare {
        /// Weight the runner holds now.
        held: Weight,
        /// Weight the poll would reserve.
        needed: Weight,
        /// Largest weight the runner may hold.
        allowed: Weight,
    },
    /// The poll would take room another runner is owed (see the module
    /// documentation).
    Owed {
        /// The runner owed its reservation.
        runner: usize,
        /// The weight it is owed.
        needed: Weight,
    },
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::AlreadyReserved => write!(f, "a poll of this runner is already in flight"),
            Blocked::Weight { headroom, needed } => write!(
                f,
                "quota: {headroom:.2} of weight left, a job may need {needed:.2}"
            ),
            Blocked::Concurrency { jobs, max } => {
                write!(f, "concurrent: {jobs} jobs and polls of at most {max}")
            }
            Blocked::Provisioning { provisioning, max } => write!(
                f,
                "paas_max_concurrent_provisioning: {provisioning} provisioning of at most {max}"
            ),
            Blocked::RunnerShare {
                held,
                needed,
                allowed,
            } => write!(
                f,
                "runner share: holds {held:.2}, a job may need {needed:.2}, at most {allowed:.2} allowed"
            ),
            Blocked::Owed { needed, .. } => write!(
                f,
                "another runner, kept waiting by polls in flight, is owed {needed:.2} of weight \
                 and polls first"
            ),
        }
    }
}

/// What a ledger entry's weight stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightKind {
    /// Expected weight of an acquired job (from its flavor).
    Expected,
    /// Actual weight of an existing resource.
    Actual,
}

/// The polls counted when checking a reservation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Polls {
    /// Those in flight.
    InFlight,
    /// Those in flight and the owed reservation of this weight.
    InFlightAndOwed(Weight),
    /// None: as if no other runner had a poll in flight.
    NoOther,
}

/// A runner owed its reservation, and its weight.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Owed {
    runner: usize,
    weight: Weight,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    weight: Weight,
    kind: WeightKind,
    provisioning: bool,
}

/// The quota ledger. Pure data: no I/O, no clock.
#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    limits: QuotaLimits,
    runner_fractions: Vec<f64>,
    reservations: HashMap<usize, Weight>,
    jobs: HashMap<JobKey, Entry>,
    used: Weight,
    runner_used: Vec<Weight>,
    runner_jobs: Vec<usize>,
    provisioning: usize,
    owed: Option<Owed>,
}

impl Ledger {
    /// A ledger for runners whose own `quota_max_fraction` are given, in
    /// registry order.
    pub(crate) fn new(limits: QuotaLimits, runner_fractions: Vec<f64>) -> Ledger {
        let n = runner_fractions.len();
        Ledger {
            limits,
            runner_fractions,
            reservations: HashMap::new(),
            jobs: HashMap::new(),
            used: 0.0,
            runner_used: vec![0.0; n],
            runner_jobs: vec![0; n],
            provisioning: 0,
            owed: None,
        }
    }

    /// The limits enforced.
    pub(crate) fn limits(&self) -> &QuotaLimits {
        &self.limits
    }

    /// New limits (a live reconfiguration); what is held stays held.
    pub(crate) fn set_limits(&mut self, limits: QuotaLimits) {
        self.limits = limits;
    }

    /// A runner appended to the registry, with its `quota_max_fraction`.
    pub(crate) fn add_runner(&mut self, fraction: f64) {
        self.runner_fractions.push(fraction);
        self.runner_used.push(0.0);
        self.runner_jobs.push(0);
    }

    /// A runner's new `quota_max_fraction`.
    pub(crate) fn set_runner_fraction(&mut self, runner: usize, fraction: f64) {
        if let Some(f) = self.runner_fractions.get_mut(runner) {
            *f = fraction;
        }
    }

    /// Total weight held: reservations, expected and actual weights.
    pub(crate) fn used(&self) -> Weight {
        self.used
    }

    /// Quota minus the weight held (may be negative if a resource turned out
    /// heavier than expected).
    pub(crate) fn headroom(&self) -> Weight {
        self.limits.total_weight - self.used
    }

    /// Jobs tracked (reservations excluded).
    pub(crate) fn jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Polls in flight.
    pub(crate) fn reservations(&self) -> usize {
        self.reservations.len()
    }

    /// Weight reserved by polls in flight (part of [`Ledger::used`]).
    pub(crate) fn reserved(&self) -> Weight {
        self.reservations.values().sum()
    }

    /// Whether `runner` has a poll in flight (holds a reservation).
    pub(crate) fn has_reservation(&self, runner: usize) -> bool {
        self.reservations.contains_key(&runner)
    }

    /// Jobs being provisioned (acquired, not yet started), reservations excluded.
    pub(crate) fn provisioning(&self) -> usize {
        self.provisioning
    }

    /// Weight held by one runner, reservation included.
    pub(crate) fn runner_used(&self, runner: usize) -> Weight {
        self.runner_used.get(runner).copied().unwrap_or(0.0)
    }

    /// Weight recorded for a job, if tracked.
    pub(crate) fn weight_of(&self, key: JobKey) -> Option<(Weight, WeightKind)> {
        self.jobs.get(&key).map(|e| (e.weight, e.kind))
    }

    /// Largest weight `runner` may hold.
    pub(crate) fn runner_allowed(&self, runner: usize) -> Weight {
        let own = self.runner_fractions.get(runner).copied().unwrap_or(1.0);
        own.min(self.limits.allowed_fraction_per_runner) * self.limits.total_weight
    }

    /// Whether `runner` may be polled with `weight` reserved, and why not.
    pub(crate) fn check(&self, runner: usize, weight: Weight) -> Result<(), Blocked> {
        if self.reservations.contains_key(&runner) {
            return Err(Blocked::AlreadyReserved);
        }
        self.fits(runner, weight, Polls::InFlight)?;
        if let Some(owed) = self.owed_to_other(runner) {
            if self
                .fits(runner, weight, Polls::InFlightAndOwed(owed.weight))
                .is_err()
            {
                return Err(Blocked::Owed {
                    runner: owed.runner,
                    needed: owed.weight,
                });
            }
        }
        Ok(())
    }

    /// The runner owed its reservation, if any (see the module
    /// documentation).
    pub(crate) fn owed(&self) -> Option<usize> {
        self.owed.map(|o| o.runner)
    }

    /// Forgets what is owed (the owed runner is no longer polled, or waits
    /// for something else than the limits).
    pub(crate) fn forget_owed(&mut self) {
        self.owed = None;
    }

    /// What another runner than `runner` is owed, while the debt stands.
    fn owed_to_other(&self, runner: usize) -> Option<Owed> {
        self.owed
            .filter(|o| o.runner != runner && self.only_polls_block(o.runner, o.weight))
    }

    /// Whether `runner` would pass every limit with `weight` reserved if no
    /// other runner had a poll in flight.
    fn only_polls_block(&self, runner: usize, weight: Weight) -> bool {
        !self.reservations.contains_key(&runner)
            && self.fits(runner, weight, Polls::NoOther).is_ok()
    }

    /// The limits `runner` reserving `weight` would meet, `polls` counted.
    fn fits(&self, runner: usize, weight: Weight, polls: Polls) -> Result<(), Blocked> {
        let (headroom, held_polls) = match polls {
            Polls::InFlight => (self.headroom(), self.reservations.len()),
            Polls::InFlightAndOwed(owed) => (self.headroom() - owed, self.reservations.len() + 1),
            Polls::NoOther => (self.headroom() + self.reserved(), 0),
        };
        if headroom + EPSILON < weight {
            return Err(Blocked::Weight {
                headroom,
                needed: weight,
            });
        }
        let jobs = self.jobs.len() + held_polls;
        if jobs >= self.limits.concurrent {
            return Err(Blocked::Concurrency {
                jobs,
                max: self.limits.concurrent,
            });
        }
        let provisioning = self.provisioning + held_polls;
        if provisioning >= self.limits.max_provisioning {
            return Err(Blocked::Provisioning {
                provisioning,
                max: self.limits.max_provisioning,
            });
        }
        let held = self.runner_used(runner);
        let allowed = self.runner_allowed(runner);
        if held + weight > allowed + EPSILON {
            return Err(Blocked::RunnerShare {
                held,
                needed: weight,
                allowed,
            });
        }
        Ok(())
    }

    /// Reserves `weight` for a poll of `runner`, if the limits allow it.
    /// Refused only because of other runners' polls in flight, the runner
    /// is owed its reservation unless another one already is.
    pub(crate) fn reserve(&mut self, runner: usize, weight: Weight) -> Result<(), Blocked> {
        if let Err(blocked) = self.check(runner, weight) {
            if self.owed_to_other(runner).is_none() {
                self.owed = self
                    .only_polls_block(runner, weight)
                    .then_some(Owed { runner, weight });
            }
            return Err(blocked);
        }
        if self.owed.is_some_and(|o| o.runner == runner) {
            self.owed = None;
        }
        self.reservations.insert(runner, weight);
        self.add_weight(runner, weight);
        Ok(())
    }

    /// Drops the reservation of `runner` (its poll brought no job or failed).
    pub(crate) fn cancel_reservation(&mut self, runner: usize) {
        if let Some(w) = self.reservations.remove(&runner) {
            self.add_weight(runner, -w);
        }
    }

    /// Replaces the reservation of `key.runner` (if any) by a job of
    /// `expected` weight, counted as being provisioned.
    pub(crate) fn acquire(&mut self, key: JobKey, expected: Weight) {
        self.cancel_reservation(key.runner);
        self.track(key, expected, WeightKind::Expected, true);
    }

    /// Starts tracking a job (acquisition, or loading a saved state).
    /// Tracking an already tracked job replaces its entry.
    pub(crate) fn track(
        &mut self,
        key: JobKey,
        weight: Weight,
        kind: WeightKind,
        provisioning: bool,
    ) {
        self.release(key);
        self.jobs.insert(
            key,
            Entry {
                weight,
                kind,
                provisioning,
            },
        );
        self.add_weight(key.runner, weight);
        if let Some(n) = self.runner_jobs.get_mut(key.runner) {
            *n += 1;
        }
        if provisioning {
            self.provisioning += 1;
        }
    }

    /// Replaces a job's weight by the actual weight of its resource.
    pub(crate) fn set_actual(&mut self, key: JobKey, weight: Weight) {
        let Some(entry) = self.jobs.get_mut(&key) else {
            return;
        };
        let delta = weight - entry.weight;
        entry.weight = weight;
        entry.kind = WeightKind::Actual;
        self.add_weight(key.runner, delta);
    }

    /// Marks a job as being provisioned or not (started, failed, cancelled).
    pub(crate) fn set_provisioning(&mut self, key: JobKey, provisioning: bool) {
        let Some(entry) = self.jobs.get_mut(&key) else {
            return;
        };
        if entry.provisioning != provisioning {
            entry.provisioning = provisioning;
            if provisioning {
                self.provisioning += 1;
            } else {
                self.provisioning = self.provisioning.saturating_sub(1);
            }
        }
    }

    /// Frees a job's weight: its resource is gone (or never existed).
    pub(crate) fn release(&mut self, key: JobKey) {
        if let Some(entry) = self.jobs.remove(&key) {
            if let Some(n) = self.runner_jobs.get_mut(key.runner) {
                *n = n.saturating_sub(1);
            }
            self.add_weight(key.runner, -entry.weight);
            if entry.provisioning {
                self.provisioning = self.provisioning.saturating_sub(1);
            }
        }
    }

    fn add_weight(&mut self, runner: usize, delta: Weight) {
        self.used += delta;
        if self.jobs.is_empty() && self.reservations.is_empty() {
            // Float sums drift; an empty ledger holds exactly nothing.
            self.used = 0.0;
        }
        if let Some(r) = self.runner_used.get_mut(runner) {
            *r += delta;
            let runner_empty = self.runner_jobs.get(runner).copied().unwrap_or(0) == 0
                && !self.reservations.contains_key(&runner);
            if runner_empty && r.abs() < 1e-6 {
                *r = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: f64, concurrent: usize, prov: usize, frac: f64) -> QuotaLimits {
        QuotaLimits {
            total_weight: total,
            concurrent,
            max_provisioning: prov,
            allowed_fraction_per_runner: frac,
        }
    }

    fn key(runner: usize, job_id: i64) -> JobKey {
        JobKey { runner, job_id }
    }

    #[test]
    fn reservation_checks_table() {
        // (limits, runner fractions, setup jobs (runner, weight, provisioning),
        //  reservations, runner to check, weight, expected)
        type Case = (
            QuotaLimits,
            Vec<f64>,
            Vec<(usize, f64, bool)>,
            Vec<(usize, f64)>,
            usize,
            f64,
            Result<(), Blocked>,
        );
        let cases: Vec<Case> = vec![
            (
                limits(10.0, 5, 5, 1.0),
                vec![1.0],
                vec![],
                vec![],
                0,
                10.0,
                Ok(()),
            ),
            (
                limits(10.0, 5, 5, 1.0),
                vec![1.0, 1.0],
                vec![(1, 6.0, false)],
                vec![],
                0,
                5.0,
                Err(Blocked::Weight {
                    headroom: 4.0,
                    needed: 5.0,
                }),
            ),
            (
                limits(100.0, 2, 5, 1.0),
                vec![1.0, 1.0],
                vec![(1, 1.0, false)],
                vec![(1, 1.0)],
                0,
                1.0,
                Err(Blocked::Concurrency { jobs: 2, max: 2 }),
            ),
            (
                limits(100.0, 10, 2, 1.0),
                vec![1.0, 1.0],
                vec![(1, 1.0, true), (1, 1.0, false)],
                vec![(1, 1.0)],
                0,
                1.0,
                Err(Blocked::Provisioning {
                    provisioning: 2,
                    max: 2,
                }),
            ),
            (
                limits(10.0, 10, 10, 0.5),
                vec![1.0, 1.0],
                vec![(0, 3.0, false)],
                vec![],
                0,
                2.5,
                Err(Blocked::RunnerShare {
                    held: 3.0,
                    needed: 2.5,
                    allowed: 5.0,
                }),
            ),
            // the runner's own quota_max_fraction wins when smaller
            (
                limits(10.0, 10, 10, 0.9),
                vec![0.2, 1.0],
                vec![],
                vec![],
                0,
                2.5,
                Err(Blocked::RunnerShare {
                    held: 0.0,
                    needed: 2.5,
                    allowed: 2.0,
                }),
            ),
            // another runner's share does not count against this one
            (
                limits(10.0, 10, 10, 0.5),
                vec![1.0, 1.0],
                vec![(1, 5.0, false)],
                vec![],
                0,
                5.0,
                Ok(()),
            ),
            (
                limits(10.0, 10, 10, 1.0),
                vec![1.0],
                vec![],
                vec![(0, 1.0)],
                0,
                1.0,
                Err(Blocked::AlreadyReserved),
            ),
        ];
        for (i, (lim, fr, jobs, res, runner, w, expected)) in cases.into_iter().enumerate() {
            let mut l = Ledger::new(lim, fr);
            for (n, (r, jw, prov)) in jobs.into_iter().enumerate() {
                l.track(key(r, n as i64), jw, WeightKind::Actual, prov);
            }
            for (r, rw) in res {
                l.reserve(r, rw).expect("setup reservation");
            }
            assert_eq!(l.check(runner, w), expected, "case {i}");
        }
    }

    #[test]
    fn reservation_is_replaced_by_expected_then_actual_weight() {
        let mut l = Ledger::new(limits(10.0, 10, 10, 1.0), vec![1.0]);
        l.reserve(0, 5.0).expect("reserve");
        assert_eq!(l.used(), 5.0);
        assert_eq!(l.reservations(), 1);
        l.acquire(key(0, 1), 2.0);
        assert_eq!((l.used(), l.reservations(), l.jobs()), (2.0, 0, 1));
        assert_eq!(l.provisioning(), 1);
        assert_eq!(l.weight_of(key(0, 1)), Some((2.0, WeightKind::Expected)));
        l.set_actual(key(0, 1), 3.0);
        assert_eq!(l.used(), 3.0);
        assert_eq!(l.weight_of(key(0, 1)), Some((3.0, WeightKind::Actual)));
        l.set_provisioning(key(0, 1), false);
        l.set_provisioning(key(0, 1), false);
        assert_eq!(l.provisioning(), 0);
        l.release(key(0, 1));
        assert_eq!((l.used(), l.jobs(), l.runner_used(0)), (0.0, 0, 0.0));
        l.release(key(0, 1));
        assert_eq!(l.used(), 0.0);
    }

    #[test]
    fn cancelled_reservation_frees_everything() {
        let mut l = Ledger::new(limits(10.0, 1, 1, 1.0), vec![1.0]);
        l.reserve(0, 10.0).expect("reserve");
        assert!(l.check(0, 0.1).is_err());
        l.cancel_reservation(0);
        assert_eq!(l.used(), 0.0);
        assert_eq!(l.check(0, 10.0), Ok(()));
    }

    /// Three runners with jobs of weight 1 poll in turn so that two of their
    /// polls are in flight whenever the runner of weight 3 (the whole quota)
    /// tries: each step the next small runner starts a poll, then the oldest
    /// poll ends, then the heavy runner tries. Without a debt the heavy
    /// runner never polls; with it, within a few steps. The quota is never
    /// exceeded.
    #[test]
    fn polls_in_flight_cannot_starve_a_heavy_runner() {
        let mut l = Ledger::new(limits(3.0, 10, 10, 1.0), vec![1.0; 4]);
        let (heavy, small) = (1, [0, 2, 3]);
        let mut in_flight = std::collections::VecDeque::from([0, 2]);
        for r in &in_flight {
            l.reserve(*r, 1.0).expect("setup");
        }
        let mut polled_at = None;
        for step in 0..30 {
            if let Some(next) = small.into_iter().find(|r| !in_flight.contains(r)) {
                if l.reserve(next, 1.0).is_ok() {
                    in_flight.push_back(next);
                }
            }
            assert!(l.used() <= 3.0 + EPSILON, "step {step}: {}", l.used());
            if let Some(done) = in_flight.pop_front() {
                l.cancel_reservation(done);
            }
            if l.reserve(heavy, 3.0).is_ok() {
                polled_at = Some(step);
                break;
            }
        }
        assert!(
            polled_at.is_some_and(|s| s < small.len()),
            "the heavy runner polled at step {polled_at:?}"
        );
        assert_eq!(l.owed(), None, "polling pays the debt");
    }

    #[test]
    fn a_debt_counts_only_while_polls_alone_stand_in_the_way() {
        // Runner 1 needs the whole quota; runner 0 polls.
        let owed_then = |l: &mut Ledger| {
            l.reserve(0, 1.0).expect("runner 0 polls");
            assert!(matches!(l.reserve(1, 3.0), Err(Blocked::Weight { .. })));
            assert_eq!(l.owed(), Some(1));
        };
        let mut l = Ledger::new(limits(3.0, 5, 5, 1.0), vec![1.0; 3]);
        owed_then(&mut l);
        assert_eq!(
            l.check(2, 1.0),
            Err(Blocked::Owed {
                runner: 1,
                needed: 3.0
            })
        );
        // Runner 0's poll brings a job: a job, not a poll, is in the way,
        // so the others poll again.
        l.acquire(key(0, 1), 1.0);
        assert_eq!(l.check(2, 1.0), Ok(()));
        // The job ends: the debt counts again until runner 1 polls.
        l.release(key(0, 1));
        assert!(l
            .reserve(2, 1.0)
            .is_err_and(|b| matches!(b, Blocked::Owed { runner: 1, .. })));
        assert_eq!(l.reserve(1, 3.0), Ok(()));
        assert_eq!(l.owed(), None);

        // Forgotten (the supervisor stopped polling the runner).
        let mut l = Ledger::new(limits(3.0, 5, 5, 1.0), vec![1.0; 3]);
        owed_then(&mut l);
        l.forget_owed();
        assert_eq!(l.check(2, 1.0), Ok(()));

        // A runner that could not poll even alone is owed nothing: too
        // heavy for the quota, or for its own share.
        let mut l = Ledger::new(limits(3.0, 5, 5, 1.0), vec![1.0, 1.0, 0.5]);
        l.reserve(0, 1.0).expect("runner 0 polls");
        assert!(l.reserve(1, 3.5).is_err());
        assert_eq!(l.owed(), None);
        l.track(key(2, 1), 1.0, WeightKind::Actual, false);
        assert!(l.reserve(2, 1.0).is_err());
        assert_eq!(l.owed(), None);

        // One runner is owed at a time: the first one refused.
        let mut l = Ledger::new(limits(3.0, 5, 5, 1.0), vec![1.0; 3]);
        owed_then(&mut l);
        assert!(l.reserve(2, 2.5).is_err());
        assert_eq!(l.owed(), Some(1));
    }

    #[test]
    fn float_drift_does_not_accumulate() {
        let mut l = Ledger::new(limits(100.0, 1000, 1000, 1.0), vec![1.0, 1.0]);
        let w = crate::ports::weight_of_mem_mib(2048);
        for round in 0..100 {
            for j in 0..7 {
                l.reserve(j % 2, w).expect("reserve");
                l.acquire(key(j % 2, round * 10 + j as i64), w * 0.9);
                l.set_actual(key(j % 2, round * 10 + j as i64), w);
            }
            for j in 0..7 {
                l.release(key(j % 2, round * 10 + j as i64));
            }
        }
        assert_eq!(l.used(), 0.0);
        assert_eq!(l.runner_used(0), 0.0);
        assert_eq!(l.runner_used(1), 0.0);
    }
}
