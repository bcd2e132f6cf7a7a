//! The series computed at scrape time from what is alive at that instant
//! (a registry collector): `resource_seconds_total{runner,flavor,
//! organisation}`, the seconds lived by the resources deleted plus those
//! of the resources alive, and `oldest_refused_delete_age_seconds{runner}`,
//! the age of the oldest deletion the PAAS keeps refusing.
//!
//! Bounded: one entry per tracked resource and per refused deletion (both
//! bounded by the tracked jobs), one bill per (runner, flavor,
//! organisation) seen. The clock is the wall clock (Unix seconds), read by the caller
//! at each event and at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The labels of one bill: who ran what, and where.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub(crate) struct BillLabels {
    pub runner: String,
    pub flavor: String,
    pub organisation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunnerOnly {
    runner: String,
}

/// A resource by its runner label and job id.
type ResourceKey = (String, i64);

#[derive(Debug, Default)]
struct Books {
    /// Seconds lived by the resources deleted, per bill.
    done: BTreeMap<BillLabels, f64>,
    /// Resources alive: their bill and since when (Unix seconds).
    alive: HashMap<ResourceKey, (BillLabels, f64)>,
    /// The runners shown by `oldest_refused_delete_age_seconds`, and their
    /// refused deletions: job id → first refusal (Unix seconds).
    refused: BTreeMap<String, HashMap<i64, f64>>,
}

/// The books of the scrape-time series (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct Live {
    books: Mutex<Books>,
}

/// Unix seconds now.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Live {
    fn with<T>(&self, f: impl FnOnce(&mut Books) -> T) -> Option<T> {
        self.books.lock().ok().map(|mut b| f(&mut b))
    }

    /// `runner` is shown (its age series at zero).
    pub(crate) fn add_runner(&self, runner: &str) {
        self.with(|b| {
            b.refused.entry(runner.to_string()).or_default();
        });
    }

    /// `runner`'s series go (removed from the configuration): its bills,
    /// its alive resources and its refused deletions.
    pub(crate) fn remove_runner(&self, runner: &str) {
        self.with(|b| {
            b.refused.remove(runner);
            b.alive.retain(|(r, _), _| r != runner);
            b.done.retain(|bill, _| bill.runner != runner);
        });
    }

    /// The resource of job `job_id` exists from now (already counted:
    /// nothing changes).
    pub(crate) fn resource_alive(&self, bill: BillLabels, job_id: i64, now: f64) {
        self.with(|b| {
            b.alive
                .entry((bill.runner.clone(), job_id))
                .or_insert((bill, now));
        });
    }

    /// The resource of job `job_id` of `runner` is gone: its seconds go to
    /// its bill for good.
    pub(crate) fn resource_gone(&self, runner: &str, job_id: i64, now: f64) {
        self.with(|b| {
            if let Some((bill, since)) = b.alive.remove(&(runner.to_string(), job_id)) {
                *b.done.entry(bill).or_insert(0.0) += (now - since).max(0.0);
            }
            if let Some(jobs) = b.refused.get_mut(runner) {
                jobs.remove(&job_id);
            }
        });
    }

    /// The PAAS refused to delete the resource of job `job_id` of `runner`
    /// (the first refusal starts the clock).
    pub(crate) fn delete_refused(&self, runner: &str, job_id: i64, now: f64) {
        self.with(|b| {
            b.refused
                .entry(runner.to_string())
                .or_default()
                .entry(job_id)
                .or_insert(now);
        });
    }

    /// The bills now: seconds of the resources deleted plus those alive.
    pub(crate) fn bills(&self, now: f64) -> BTreeMap<BillLabels, f64> {
        self.with(|b| {
            let mut bills = b.done.clone();
            for (bill, since) in b.alive.values() {
                *bills.entry(bill.clone()).or_insert(0.0) += (now - since).max(0.0);
            }
            bills
        })
        .unwrap_or_default()
    }

    /// Per runner shown, the age in seconds of its oldest refused deletion
    /// (0 when none).
    pub(crate) fn refused_ages(&self, now: f64) -> BTreeMap<String, f64> {
        self.with(|b| {
            b.refused
                .iter()
                .map(|(runner, jobs)| {
                    let oldest = jobs.values().copied().fold(f64::INFINITY, f64::min);
                    let age = if oldest.is_finite() {
                        (now - oldest).max(0.0)
                    } else {
                        0.0
                    };
                    (runner.clone(), age)
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The runners that have alive resources (for tests).
    #[cfg(test)]
    pub(crate) fn alive_runners(&self) -> std::collections::BTreeSet<String> {
        self.with(|b| b.alive.keys().map(|(r, _)| r.clone()).collect())
            .unwrap_or_default()
    }
}

/// The registry's view of [`Live`].
#[derive(Debug)]
pub(crate) struct LiveCollector(pub std::sync::Arc<Live>);

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let bills: Family<BillLabels, Counter<f64, AtomicU64>> = Family::default();
        for (labels, seconds) in self.0.bills(unix_now()) {
            bills.get_or_create(&labels).inc_by(seconds);
        }
        let d = encoder.encode_descriptor(
            "resource_seconds",
            "Seconds lived by PAAS resources, per runner, flavor and organisation: those deleted plus those alive at the scrape (application-seconds, the bill)",
            None,
            MetricType::Counter,
        )?;
        bills.encode(d)?;
        let ages: Family<RunnerOnly, Gauge<f64, AtomicU64>> = Family::default();
        for (runner, age) in self.0.refused_ages(unix_now()) {
            ages.get_or_create(&RunnerOnly { runner }).set(age);
        }
        let d = encoder.encode_descriptor(
            "oldest_refused_delete_age_seconds",
            "Age of the runner's oldest resource deletion refused by the PAAS and not done since (0 when none)",
            None,
            MetricType::Gauge,
        )?;
        ages.encode(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bill(runner: &str) -> BillLabels {
        BillLabels {
            runner: runner.into(),
            flavor: "M".into(),
            organisation: "orga_1".into(),
        }
    }

    #[test]
    fn bills_add_the_alive_to_the_deleted_and_removal_forgets_a_runner() {
        let live = Live::default();
        live.resource_alive(bill("r1"), 1, 100.0);
        live.resource_alive(bill("r1"), 2, 110.0);
        live.resource_alive(bill("r2"), 1, 100.0);
        // Counted once, from the first time.
        live.resource_alive(bill("r1"), 1, 120.0);
        live.resource_gone("r1", 1, 130.0);
        live.resource_gone("r1", 1, 200.0);
        // 30 s deleted, 40 s alive.
        assert_eq!(live.bills(150.0).get(&bill("r1")), Some(&70.0));
        assert_eq!(live.bills(150.0).get(&bill("r2")), Some(&50.0));
        assert_eq!(live.alive_runners(), ["r1", "r2"].map(String::from).into());
        live.remove_runner("r1");
        assert_eq!(live.alive_runners(), ["r2"].map(String::from).into());
        assert!(!live.bills(150.0).contains_key(&bill("r1")));
    }

    #[test]
    fn the_oldest_refusal_ages_until_its_resource_is_gone() {
        let live = Live::default();
        live.add_runner("r1");
        assert_eq!(live.refused_ages(10.0).get("r1"), Some(&0.0));
        live.delete_refused("r1", 7, 100.0);
        live.delete_refused("r1", 7, 700.0);
        live.delete_refused("r1", 8, 650.0);
        // The first refusal starts the clock.
        assert_eq!(live.refused_ages(1000.0).get("r1"), Some(&900.0));
        live.resource_gone("r1", 7, 1000.0);
        assert_eq!(live.refused_ages(1000.0).get("r1"), Some(&350.0));
        live.resource_gone("r1", 8, 1000.0);
        assert_eq!(live.refused_ages(1000.0).get("r1"), Some(&0.0));
        live.remove_runner("r1");
        assert!(live.refused_ages(1000.0).is_empty());
    }
}
