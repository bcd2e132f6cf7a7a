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
//!
//! Standby: a finished job's resource kept for another job holds its
//! weight as [`WeightKind::Standby`] until it is claimed by a job
//! ([`Ledger::claim`]: the weight moves to the job) or deleted. Standby
//! weight is room a poll may count on: a reservation that does not fit the
//! headroom *pledges* idle standby entries (own runner's first, oldest
//! first) for the missing part, and holds only what the headroom covers
//! ([`Ledger::reserve`]). A job acquired that reuses nothing holds what the
//! headroom gives and waits for the rest ([`Ledger::acquire`]); standby
//! entries are then evicted for it ([`Ledger::evict_for_room`]) and each
//! weight freed goes to the waiting jobs first, in order. So the weight
//! held (jobs, standby, resources being deleted, reservations) never
//! exceeds the quota, standby included.

use crate::ports::Weight;
use std::collections::{BTreeMap, HashMap};

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
    /// Actual weight of a resource on standby (no job; reusable).
    Standby,
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
    /// Weight still to come before the job may be launched (waiting for
    /// room); the entry holds `weight` only.
    missing: Weight,
    /// The runner whose reservation counts on this standby entry.
    pledged: Option<usize>,
    /// Evicted (deleted) to make room for waiting jobs.
    for_room: bool,
    /// Order of arrival on standby (smaller: older).
    seq: u64,
}

impl Entry {
    fn new(weight: Weight, kind: WeightKind, provisioning: bool) -> Self {
        Entry {
            weight,
            kind,
            provisioning,
            missing: 0.0,
            pledged: None,
            for_room: false,
            seq: 0,
        }
    }

    fn is_idle_standby(&self) -> bool {
        self.kind == WeightKind::Standby && self.pledged.is_none()
    }
}

/// A poll's reservation: the largest weight of a job, of which `counted`
/// is held and the rest covered by the pledged standby entries.
#[derive(Clone, Debug, PartialEq)]
struct Reservation {
    full: Weight,
    counted: Weight,
    backing: Vec<JobKey>,
}

/// The quota ledger. Pure data: no I/O, no clock.
#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    limits: QuotaLimits,
    runner_fractions: Vec<f64>,
    reservations: HashMap<usize, Reservation>,
    jobs: HashMap<JobKey, Entry>,
    used: Weight,
    runner_used: Vec<Weight>,
    runner_jobs: Vec<usize>,
    provisioning: usize,
    owed: Option<Owed>,
    /// The standby entries, by order of arrival.
    standby: BTreeMap<u64, JobKey>,
    next_seq: u64,
    /// Jobs waiting for room, in order of arrival.
    waiting: Vec<JobKey>,
    /// Jobs whose room came since the last [`Ledger::take_ready`].
    ready: Vec<JobKey>,
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
            standby: BTreeMap::new(),
            next_seq: 0,
            waiting: Vec::new(),
            ready: Vec::new(),
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

    /// Jobs tracked (reservations and standby resources excluded).
    pub(crate) fn jobs(&self) -> usize {
        self.jobs.len() - self.standby.len()
    }

    /// Resources on standby.
    pub(crate) fn standby(&self) -> usize {
        self.standby.len()
    }

    /// Weight held by resources on standby.
    pub(crate) fn standby_weight(&self) -> Weight {
        self.standby
            .values()
            .filter_map(|k| self.jobs.get(k))
            .map(|e| e.weight)
            .sum()
    }

    /// Weight of the idle standby entries (pledged to no poll) of
    /// `runner`, or of every runner.
    fn idle_standby(&self, runner: Option<usize>) -> Weight {
        self.standby
            .values()
            .filter(|k| runner.is_none_or(|r| k.runner == r))
            .filter_map(|k| self.jobs.get(k))
            .filter(|e| e.is_idle_standby())
            .map(|e| e.weight)
            .sum()
    }

    /// Whether `key` is a job waiting for room (not to be launched yet).
    pub(crate) fn is_waiting(&self, key: JobKey) -> bool {
        self.jobs.get(&key).is_some_and(|e| e.missing > 0.0)
    }

    /// Weight still missing to the waiting jobs.
    pub(crate) fn missing(&self) -> Weight {
        self.waiting
            .iter()
            .filter_map(|k| self.jobs.get(k))
            .map(|e| e.missing)
            .sum()
    }

    /// The jobs whose room came since the last call, in order.
    pub(crate) fn take_ready(&mut self) -> Vec<JobKey> {
        std::mem::take(&mut self.ready)
    }

    /// Idle standby entries, `runner`'s first, oldest first.
    pub(crate) fn standby_order(&self, runner: usize) -> Vec<JobKey> {
        let idle = |k: &&JobKey| self.jobs.get(k).is_some_and(Entry::is_idle_standby);
        let own = self.standby.values().filter(|k| k.runner == runner);
        let others = self.standby.values().filter(|k| k.runner != runner);
        own.filter(idle)
            .chain(others.filter(idle))
            .copied()
            .collect()
    }

    /// Polls in flight.
    pub(crate) fn reservations(&self) -> usize {
        self.reservations.len()
    }

    /// Weight reserved by polls in flight (part of [`Ledger::used`]).
    pub(crate) fn reserved(&self) -> Weight {
        self.reservations.values().map(|r| r.counted).sum()
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
        // Idle standby weight is room: a poll pledges it (see `reserve`).
        let idle = self.idle_standby(None);
        let (headroom, held_polls) = match polls {
            Polls::InFlight => (self.headroom() + idle, self.reservations.len()),
            Polls::InFlightAndOwed(owed) => {
                (self.headroom() + idle - owed, self.reservations.len() + 1)
            }
            Polls::NoOther => (self.headroom() + self.pledged_or_reserved() + idle, 0),
        };
        if headroom + EPSILON < weight {
            return Err(Blocked::Weight {
                headroom,
                needed: weight,
            });
        }
        let jobs = self.jobs() + held_polls;
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
        let held = self.runner_used(runner) - self.idle_standby(Some(runner));
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

    /// What the polls in flight hold or count on (their full weights).
    fn pledged_or_reserved(&self) -> Weight {
        self.reservations.values().map(|r| r.full).sum()
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
        // Beyond the headroom, idle standby entries stand in for the rest.
        let headroom = self.headroom().max(0.0);
        let mut backing = Vec::new();
        let mut pledged = 0.0;
        if headroom + EPSILON < weight {
            for key in self.standby_order(runner) {
                if headroom + pledged + EPSILON >= weight {
                    break;
                }
                if let Some(e) = self.jobs.get_mut(&key) {
                    e.pledged = Some(runner);
                    pledged += e.weight;
                    backing.push(key);
                }
            }
        }
        let counted = (weight - pledged).clamp(0.0, weight.min(headroom));
        self.reservations.insert(
            runner,
            Reservation {
                full: weight,
                counted,
                backing,
            },
        );
        self.add_weight(runner, counted);
        Ok(())
    }

    /// Drops the reservation of `runner` (its poll brought no job or
    /// failed); the standby entries it counted on are idle again.
    pub(crate) fn cancel_reservation(&mut self, runner: usize) {
        if let Some(r) = self.reservations.remove(&runner) {
            for key in &r.backing {
                if let Some(e) = self.jobs.get_mut(key) {
                    e.pledged = None;
                }
            }
            self.add_weight(runner, -r.counted);
            self.feed();
        }
    }

    /// The standby entries the reservation of `runner` counts on are idle
    /// again (for the job its poll brought to choose from); what it holds
    /// stays held.
    pub(crate) fn unpledge(&mut self, runner: usize) {
        if let Some(r) = self.reservations.get_mut(&runner) {
            for key in std::mem::take(&mut r.backing) {
                if let Some(e) = self.jobs.get_mut(&key) {
                    e.pledged = None;
                }
            }
        }
    }

    /// Moves the weight of `from` (a job whose resource leaves it) to
    /// `to`, a new entry for that resource alone, counted as an actual
    /// weight (not provisioning). False (nothing changed) if `from` is
    /// not tracked or `to` is.
    pub(crate) fn rekey(&mut self, from: JobKey, to: JobKey) -> bool {
        if self.jobs.contains_key(&to) {
            return false;
        }
        let Some(entry) = self.remove_entry(from) else {
            return false;
        };
        self.track(to, entry.weight, WeightKind::Actual, false);
        true
    }

    /// Replaces the reservation of `key.runner` (if any) by a job of
    /// `expected` weight, counted as being provisioned. The job holds what
    /// the headroom gives; true when it must wait for the rest
    /// ([`Ledger::evict_for_room`], [`Ledger::take_ready`]).
    pub(crate) fn acquire(&mut self, key: JobKey, expected: Weight) -> bool {
        if let Some(r) = self.reservations.remove(&key.runner) {
            for k in &r.backing {
                if let Some(e) = self.jobs.get_mut(k) {
                    e.pledged = None;
                }
            }
            self.add_weight(key.runner, -r.counted);
        }
        self.track_waiting(key, expected)
    }

    /// Tracks a job without resource that holds what the headroom gives of
    /// `expected` (waiting jobs first) and waits for the rest; true when it
    /// waits.
    pub(crate) fn track_waiting(&mut self, key: JobKey, expected: Weight) -> bool {
        self.release(key);
        self.track(key, 0.0, WeightKind::Expected, true);
        if expected <= EPSILON {
            return false;
        }
        if let Some(e) = self.jobs.get_mut(&key) {
            e.missing = expected;
        }
        // In line behind the jobs already waiting.
        self.waiting.push(key);
        self.feed();
        let before = self.ready.len();
        self.ready.retain(|k| *k != key);
        self.ready.len() == before
    }

    /// Moves the weight of the idle standby entry `standby` to the job
    /// `job` (reuse), counted as being provisioned; the reservation of
    /// `job.runner`, if any, is dropped. `None` (nothing changed) when
    /// `standby` is no idle standby entry or `job` is tracked.
    pub(crate) fn claim(&mut self, standby: JobKey, job: JobKey) -> Option<Weight> {
        if self.jobs.contains_key(&job) {
            return None;
        }
        // The claimer's own reservation goes first: its pledges are freed.
        if let Some(r) = self.reservations.remove(&job.runner) {
            for k in &r.backing {
                if let Some(e) = self.jobs.get_mut(k) {
                    e.pledged = None;
                }
            }
            self.add_weight(job.runner, -r.counted);
        }
        if !self.jobs.get(&standby).is_some_and(Entry::is_idle_standby) {
            self.feed();
            return None;
        }
        let entry = self.remove_entry(standby)?;
        self.track(job, entry.weight, WeightKind::Actual, true);
        self.feed();
        Some(entry.weight)
    }

    /// Puts a job's resource on standby: its weight stays held, as standby.
    pub(crate) fn put_on_standby(&mut self, key: JobKey) -> bool {
        let seq = self.next_seq;
        let Some(e) = self.jobs.get_mut(&key) else {
            return false;
        };
        if e.kind == WeightKind::Standby || e.missing > 0.0 {
            return false;
        }
        e.kind = WeightKind::Standby;
        e.seq = seq;
        self.next_seq += 1;
        self.standby.insert(seq, key);
        self.set_provisioning(key, false);
        true
    }

    /// A standby entry goes (its resource is deleted): its weight stays
    /// held, as an actual weight, until released.
    pub(crate) fn evict(&mut self, key: JobKey) -> bool {
        let Some(e) = self.jobs.get_mut(&key) else {
            return false;
        };
        if e.kind != WeightKind::Standby {
            return false;
        }
        e.kind = WeightKind::Actual;
        let seq = e.seq;
        self.standby.remove(&seq);
        true
    }

    /// Idle standby entries to evict so that the waiting jobs get their
    /// room once they are deleted (`runner`'s first, oldest first); they
    /// are evicted ([`Ledger::evict`]) and returned.
    pub(crate) fn evict_for_room(&mut self, runner: usize) -> Vec<JobKey> {
        let mut coming: Weight = self
            .jobs
            .values()
            .filter(|e| e.for_room)
            .map(|e| e.weight)
            .sum();
        let missing = self.missing();
        let mut out = Vec::new();
        for key in self.standby_order(runner) {
            if coming + EPSILON >= missing {
                break;
            }
            if self.evict(key) {
                if let Some(e) = self.jobs.get_mut(&key) {
                    e.for_room = true;
                    coming += e.weight;
                }
                out.push(key);
            }
        }
        out
    }

    /// Gives the headroom to the waiting jobs, in order.
    fn feed(&mut self) {
        let mut i = 0;
        while i < self.waiting.len() {
            let avail = self.headroom();
            if avail <= EPSILON {
                break;
            }
            let Some(key) = self.waiting.get(i).copied() else {
                break;
            };
            let Some(e) = self.jobs.get_mut(&key) else {
                self.waiting.remove(i);
                continue;
            };
            let give = e.missing.min(avail);
            e.weight += give;
            e.missing -= give;
            let done = e.missing <= EPSILON;
            if done {
                e.missing = 0.0;
            }
            self.add_weight(key.runner, give);
            if done {
                self.waiting.remove(i);
                self.ready.push(key);
            } else {
                i += 1;
            }
        }
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
        let mut entry = Entry::new(weight, kind, provisioning);
        if kind == WeightKind::Standby {
            entry.seq = self.next_seq;
            self.next_seq += 1;
            self.standby.insert(entry.seq, key);
        }
        self.jobs.insert(key, entry);
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
        if entry.kind == WeightKind::Expected {
            entry.kind = WeightKind::Actual;
        }
        self.add_weight(key.runner, delta);
        if delta < 0.0 {
            self.feed();
        }
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

    /// Frees a job's weight: its resource is gone (or never existed). The
    /// weight freed goes to the poll that counted on it (a pledged standby
    /// entry), then to the waiting jobs.
    pub(crate) fn release(&mut self, key: JobKey) {
        if let Some(entry) = self.remove_entry(key) {
            if let Some(r) = entry.pledged {
                self.reservation_takes(r, key, entry.weight);
            }
            self.feed();
        }
    }

    /// The reservation of `runner` no longer counts on `key`, whose
    /// `weight` was freed: it holds what it counted on, within the freed
    /// weight.
    fn reservation_takes(&mut self, runner: usize, key: JobKey, weight: Weight) {
        let Some(r) = self.reservations.get_mut(&runner) else {
            return;
        };
        r.backing.retain(|k| *k != key);
        let take = weight.min(r.full - r.counted).max(0.0);
        r.counted += take;
        self.add_weight(runner, take);
    }

    /// Removes an entry and its weight (nothing else happens).
    fn remove_entry(&mut self, key: JobKey) -> Option<Entry> {
        let entry = self.jobs.remove(&key)?;
        if let Some(n) = self.runner_jobs.get_mut(key.runner) {
            *n = n.saturating_sub(1);
        }
        self.add_weight(key.runner, -entry.weight);
        if entry.provisioning {
            self.provisioning = self.provisioning.saturating_sub(1);
        }
        if entry.kind == WeightKind::Standby {
            self.standby.remove(&entry.seq);
        }
        if entry.missing > 0.0 {
            self.waiting.retain(|k| *k != key);
        }
        self.ready.retain(|k| *k != key);
        Some(entry)
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

    /// Quota 3: a standby resource of weight 2 and one of weight 1.
    fn with_standby() -> Ledger {
        let mut l = Ledger::new(limits(3.0, 10, 10, 1.0), vec![1.0, 1.0]);
        for (k, w) in [(key(1, 1), 2.0), (key(0, 2), 1.0)] {
            l.track(k, w, WeightKind::Actual, false);
            assert!(l.put_on_standby(k));
        }
        l
    }

    #[test]
    fn standby_weight_is_held_and_is_room_for_a_poll() {
        let mut l = with_standby();
        assert_eq!((l.used(), l.standby(), l.standby_weight()), (3.0, 2, 3.0));
        assert_eq!(l.jobs(), 0, "standby resources are no jobs");
        assert_eq!(l.headroom(), 0.0);
        // A poll counts on idle standby weight: runner 0's own first.
        assert_eq!(l.check(0, 2.0), Ok(()));
        l.reserve(0, 2.0).expect("reserve on standby");
        assert!(l.used() <= 3.0, "nothing more held: {}", l.used());
        assert_eq!(l.reserved(), 0.0);
        // Both are pledged: no other poll may count on them.
        assert!(matches!(l.check(1, 1.0), Err(Blocked::Weight { .. })));
        l.cancel_reservation(0);
        assert_eq!(l.check(1, 1.0), Ok(()));
        assert_eq!(l.standby_order(1), vec![key(1, 1), key(0, 2)]);
        assert_eq!(l.standby_order(0), vec![key(0, 2), key(1, 1)]);
    }

    #[test]
    fn a_claim_moves_the_standby_weight_to_the_job() {
        let mut l = with_standby();
        l.reserve(0, 1.0).expect("reserve");
        l.unpledge(0);
        assert_eq!(l.claim(key(1, 1), key(0, 9)), Some(2.0));
        assert_eq!((l.used(), l.standby(), l.reservations()), (3.0, 1, 0));
        assert_eq!(l.weight_of(key(0, 9)), Some((2.0, WeightKind::Actual)));
        assert_eq!(l.provisioning(), 1);
        // Never twice.
        assert_eq!(l.claim(key(1, 1), key(0, 10)), None);
        assert_eq!(l.weight_of(key(0, 10)), None);
    }

    #[test]
    fn a_job_that_reuses_nothing_waits_for_evicted_standby() {
        let mut l = with_standby();
        l.reserve(1, 2.0).expect("reserve");
        l.unpledge(1);
        assert!(l.acquire(key(1, 5), 2.0), "must wait");
        assert!(l.is_waiting(key(1, 5)));
        assert!(l.used() <= 3.0 + EPSILON);
        // Runner 1's own standby goes first; it covers the need.
        assert_eq!(l.evict_for_room(1), vec![key(1, 1)]);
        assert_eq!(
            l.evict_for_room(1),
            Vec::<JobKey>::new(),
            "enough is coming"
        );
        assert_eq!(l.standby(), 1);
        assert_eq!(
            l.used(),
            3.0,
            "an evicted resource holds its weight until gone"
        );
        l.release(key(1, 1));
        assert_eq!(l.take_ready(), vec![key(1, 5)]);
        assert!(!l.is_waiting(key(1, 5)));
        assert_eq!(l.weight_of(key(1, 5)), Some((2.0, WeightKind::Expected)));
        assert_eq!(l.used(), 3.0);
    }

    #[test]
    fn a_pledged_entry_deleted_gives_its_weight_to_the_poll() {
        let mut l = with_standby();
        l.reserve(0, 1.0).expect("reserve");
        assert!(l.evict(key(0, 2)));
        l.release(key(0, 2));
        assert_eq!(l.reserved(), 1.0);
        assert_eq!(l.used(), 3.0);
        l.cancel_reservation(0);
        assert_eq!(l.used(), 2.0);
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
