//! `paas_log_statistics`: one INFO line `JSON statistics: {…}` per polling
//! cycle (every runner polled once), with the Python runner 1.1's eight
//! keys and value types, for the log parsers written for it. The metrics
//! carry the same figures.

use super::*;
use serde::Serialize;

/// The figures of one line, in the Python runner 1.1's key order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(super) struct Statistics {
    /// The weighted quota.
    pub weight_quota: f64,
    /// Weight held by tracked jobs and their resources (polls in flight
    /// excluded).
    pub current_weight: f64,
    /// `weight_quota - current_weight` (negative if a resource turned out
    /// heavier than expected).
    pub weight_headroom: f64,
    /// Whether a runner may be polled now, or has a poll in flight.
    pub can_take_job: bool,
    /// `paas_max_concurrent_provisioning`.
    pub max_jobs_in_provisioning: usize,
    /// Jobs acquired and not yet started.
    pub jobs_in_provisioning: usize,
    /// Jobs tracked.
    pub current_concurrent_jobs: usize,
    /// `concurrent`.
    pub max_concurrent_jobs: usize,
}

impl Statistics {
    /// The figures of `ledger`; `runners` gives each polled runner's index
    /// and the weight a poll of it reserves (its largest job).
    pub(super) fn of(ledger: &Ledger, runners: impl IntoIterator<Item = (usize, Weight)>) -> Self {
        let limits = ledger.limits();
        let current = ledger.used() - ledger.reserved();
        let can_take_job = runners
            .into_iter()
            .any(|(i, w)| ledger.has_reservation(i) || ledger.check(i, w).is_ok());
        Statistics {
            weight_quota: limits.total_weight,
            current_weight: current,
            weight_headroom: limits.total_weight - current,
            can_take_job,
            max_jobs_in_provisioning: limits.max_provisioning,
            jobs_in_provisioning: ledger.provisioning(),
            current_concurrent_jobs: ledger.jobs(),
            max_concurrent_jobs: limits.concurrent,
        }
    }

    /// The line's JSON object.
    pub(super) fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Supervisor {
    /// Logs the statistics line if `paas_log_statistics` is on.
    pub(super) fn log_statistics(&self) {
        if !self.settings.log_statistics {
            return;
        }
        let runners = self
            .runners
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.retired)
            .filter_map(|(i, r)| r.max_job_weight.map(|w| (i, w)));
        let line = Statistics::of(&self.ledger, runners).json();
        slog::info!(self.logger, "JSON statistics: {}", line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::QuotaLimits;

    fn ledger() -> Ledger {
        let limits = QuotaLimits {
            total_weight: 4.0,
            concurrent: 10,
            max_provisioning: 3,
            allowed_fraction_per_runner: 1.0,
        };
        Ledger::new(limits, vec![1.0, 1.0])
    }

    fn key(job_id: i64) -> JobKey {
        JobKey { runner: 0, job_id }
    }

    #[test]
    fn the_line_has_the_python_runner_keys_in_order_and_types() {
        let mut l = ledger();
        l.acquire(key(1), 1.0);
        l.track(key(2), 2.0, WeightKind::Actual, false);
        let s = Statistics::of(&l, [(0, 1.0), (1, 2.0)]);
        assert_eq!(
            s.json(),
            "{\"weight_quota\":4.0,\"current_weight\":3.0,\"weight_headroom\":1.0,\
             \"can_take_job\":true,\"max_jobs_in_provisioning\":3,\"jobs_in_provisioning\":1,\
             \"current_concurrent_jobs\":2,\"max_concurrent_jobs\":10}"
        );
    }

    #[test]
    fn polls_in_flight_are_not_counted_as_held_weight() {
        let mut l = ledger();
        l.track(key(1), 2.0, WeightKind::Actual, false);
        assert_eq!(l.reserve(1, 2.0), Ok(()));
        let s = Statistics::of(&l, [(0, 2.0), (1, 2.0)]);
        assert_eq!((s.current_weight, s.weight_headroom), (2.0, 2.0));
        assert!(s.can_take_job, "runner 1's poll is in flight");
    }

    #[test]
    fn no_job_can_be_taken_when_no_runner_fits() {
        let mut l = ledger();
        l.track(key(1), 3.5, WeightKind::Actual, false);
        let s = Statistics::of(&l, [(0, 1.0), (1, 2.0)]);
        assert!(!s.can_take_job, "{s:?}");
        assert!(
            !Statistics::of(&ledger(), []).can_take_job,
            "no runner known"
        );
    }
}
