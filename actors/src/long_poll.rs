//! Whether a poll may be a long poll: a pure decision over the quota ledger.
//!
//! A poll holds its reservation (the largest weight a job of its runner
//! could have, one `concurrent` slot and one
//! `paas_max_concurrent_provisioning` slot) until the coordinator answers.
//! A short poll is answered in milliseconds; a long poll may be held for the
//! coordinator's whole long-poll window (GitLab Workhorse's
//! `apiCiLongPollingDuration`, tens of seconds). So that this hold does not
//! keep another runner section from polling, a runner with
//! `paas_long_polling = true` long-polls only when, with its own reservation
//! counted, the quota still has room for every other runner that could
//! poll now to reserve its own largest job at the same time:
//!
//! - weight: the headroom covers the sum of their largest job weights;
//! - `concurrent`: one free slot for each of them;
//! - `paas_max_concurrent_provisioning`: one free slot for each of them.
//!
//! "Could poll now" leaves out the runners already polling (their
//! reservation is held) and those their own share
//! (`quota_max_fraction`, `allowed_fraction_per_runner`) stops anyway. A
//! runner whose largest job weight is not known yet makes the poll short.
//! Otherwise the poll is short, exactly as with the key off.
//!
//! The decision is taken when the poll is sent. Jobs other runners acquire
//! while it is held come out of the room it left; once the room is gone
//! the runner's following polls are short, so a hold delays another runner
//! at most once, by at most what is left of that one window.

use crate::ports::Weight;
use crate::quota::{Ledger, EPSILON};

/// Another runner, as the decision sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct OtherRunner {
    /// Its index in the ledger.
    pub index: usize,
    /// The largest weight a job of it could have, once known.
    pub max_job_weight: Option<Weight>,
}

/// Why a poll must be short.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ShortPoll {
    /// The largest job weight of another runner is not known yet.
    UnknownWeight {
        /// That runner's index.
        runner: usize,
    },
    /// The weight left would not cover the other runners' largest jobs.
    Weight {
        /// Headroom left with this poll's reservation.
        spare: Weight,
        /// Sum of the other runners' largest job weights.
        needed: Weight,
    },
    /// Too few `concurrent` slots left for the other runners.
    Concurrency {
        /// Slots left with this poll counted.
        spare: usize,
        /// Runners that could poll.
        needed: usize,
    },
    /// Too few `paas_max_concurrent_provisioning` slots left.
    Provisioning {
        /// Slots left with this poll counted.
        spare: usize,
        /// Runners that could poll.
        needed: usize,
    },
}

impl std::fmt::Display for ShortPoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShortPoll::UnknownWeight { .. } => {
                write!(
                    f,
                    "the largest job weight of another runner is not known yet"
                )
            }
            ShortPoll::Weight { spare, needed } => write!(
                f,
                "quota: {spare:.2} of weight left, other runners' largest jobs need {needed:.2}"
            ),
            ShortPoll::Concurrency { spare, needed } => write!(
                f,
                "concurrent: {spare} slot(s) left, {needed} other runner(s) may poll"
            ),
            ShortPoll::Provisioning { spare, needed } => write!(
                f,
                "paas_max_concurrent_provisioning: {spare} slot(s) left, {needed} other \
                 runner(s) may poll"
            ),
        }
    }
}

/// Whether the poll whose reservation `ledger` already holds may be held by
/// the coordinator, given the `others` runners (every runner still polled
/// but the one polling). See the module documentation for the rule.
pub(crate) fn may_hold(
    ledger: &Ledger,
    others: impl IntoIterator<Item = OtherRunner>,
) -> Result<(), ShortPoll> {
    let mut needed_weight = 0.0;
    let mut needed_slots = 0usize;
    for other in others {
        if ledger.has_reservation(other.index) {
            continue;
        }
        let Some(w) = other.max_job_weight else {
            return Err(ShortPoll::UnknownWeight {
                runner: other.index,
            });
        };
        let within_share =
            ledger.runner_used(other.index) + w <= ledger.runner_allowed(other.index) + EPSILON;
        if within_share {
            needed_weight += w;
            needed_slots += 1;
        }
    }
    let spare = ledger.headroom();
    if spare + EPSILON < needed_weight {
        return Err(ShortPoll::Weight {
            spare,
            needed: needed_weight,
        });
    }
    let limits = ledger.limits();
    let held = ledger.reservations();
    let spare = limits.concurrent.saturating_sub(ledger.jobs() + held);
    if spare < needed_slots {
        return Err(ShortPoll::Concurrency {
            spare,
            needed: needed_slots,
        });
    }
    let spare = limits
        .max_provisioning
        .saturating_sub(ledger.provisioning() + held);
    if spare < needed_slots {
        return Err(ShortPoll::Provisioning {
            spare,
            needed: needed_slots,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{JobKey, QuotaLimits, WeightKind};

    fn ledger(total: f64, concurrent: usize, prov: usize, fractions: Vec<f64>) -> Ledger {
        Ledger::new(
            QuotaLimits {
                total_weight: total,
                concurrent,
                max_provisioning: prov,
                allowed_fraction_per_runner: 1.0,
            },
            fractions,
        )
    }

    fn other(index: usize, w: Option<f64>) -> OtherRunner {
        OtherRunner {
            index,
            max_job_weight: w,
        }
    }

    fn job(l: &mut Ledger, runner: usize, id: i64, w: f64, provisioning: bool) {
        l.track(
            JobKey { runner, job_id: id },
            w,
            WeightKind::Actual,
            provisioning,
        );
    }

    #[test]
    fn the_rule_table() {
        // (name, total weight, concurrent, provisioning, fractions,
        //  jobs (runner, weight, provisioning), polls in flight of others
        //  (runner, weight), others' largest job weights, expected)
        type Case = (
            &'static str,
            f64,
            usize,
            usize,
            Vec<f64>,
            Vec<(usize, f64, bool)>,
            Vec<(usize, f64)>,
            Vec<OtherRunner>,
            Result<(), ShortPoll>,
        );
        let cases: Vec<Case> = vec![
            (
                "a lone runner always may",
                2.0,
                5,
                5,
                vec![1.0],
                vec![],
                vec![],
                vec![],
                Ok(()),
            ),
            (
                "room for the other's largest job",
                10.0,
                5,
                5,
                vec![1.0, 1.0],
                vec![],
                vec![],
                vec![other(1, Some(4.0))],
                Ok(()),
            ),
            (
                "room for one other runner but not for two",
                10.0,
                5,
                5,
                vec![1.0, 1.0, 1.0],
                vec![(1, 3.0, false)],
                vec![],
                vec![other(1, Some(2.0)), other(2, Some(4.5))],
                Err(ShortPoll::Weight {
                    spare: 6.0,
                    needed: 6.5,
                }),
            ),
            (
                "an other runner polling already holds its reservation",
                10.0,
                5,
                5,
                vec![1.0, 1.0, 1.0],
                vec![(1, 3.0, false)],
                vec![(1, 2.0)],
                vec![other(1, Some(2.0)), other(2, Some(3.0))],
                Ok(()),
            ),
            (
                "an other runner stopped by its own share does not count",
                10.0,
                5,
                5,
                vec![1.0, 0.3],
                vec![(1, 3.0, false)],
                vec![],
                vec![other(1, Some(7.0))],
                Ok(()),
            ),
            (
                "unknown largest weight of an other runner",
                10.0,
                5,
                5,
                vec![1.0, 1.0],
                vec![],
                vec![],
                vec![other(1, None)],
                Err(ShortPoll::UnknownWeight { runner: 1 }),
            ),
            (
                "no concurrent slot left for the other runner",
                10.0,
                3,
                5,
                vec![1.0, 1.0],
                vec![(1, 1.0, false), (1, 1.0, false)],
                vec![],
                vec![other(1, Some(1.0))],
                Err(ShortPoll::Concurrency {
                    spare: 0,
                    needed: 1,
                }),
            ),
            (
                "no provisioning slot left for the other runner",
                10.0,
                10,
                2,
                vec![1.0, 1.0],
                vec![(1, 1.0, true)],
                vec![],
                vec![other(1, Some(1.0))],
                Err(ShortPoll::Provisioning {
                    spare: 0,
                    needed: 1,
                }),
            ),
        ];
        for (name, total, conc, prov, fractions, jobs, polls, others, expected) in cases {
            let mut l = ledger(total, conc, prov, fractions);
            for (n, (runner, w, p)) in jobs.into_iter().enumerate() {
                job(&mut l, runner, n as i64 + 1, w, p);
            }
            for (runner, w) in polls {
                assert_eq!(l.reserve(runner, w), Ok(()), "{name}: setup");
            }
            // runner 0 polls with a largest job of weight 1
            assert_eq!(l.reserve(0, 1.0), Ok(()), "{name}: own reservation");
            assert_eq!(may_hold(&l, others), expected, "{name}");
        }
    }

    /// Property: whenever the rule allows a hold, every other runner that
    /// could reserve its largest job without the hold still can with it.
    #[test]
    fn a_hold_allowed_blocks_nobody_at_the_time() {
        let weights = [0.5, 1.0, 1.5, 2.0];
        let mut checked = 0;
        for total in [2.0, 3.0, 4.5, 6.0] {
            for prov in 1..4 {
                for conc in 1..5 {
                    for used in [0.0, 1.0, 2.5] {
                        for (wa, wb) in weights.iter().flat_map(|a| weights.map(|b| (*a, b))) {
                            let mut l = ledger(total, conc, prov, vec![1.0, 1.0]);
                            if used > 0.0 {
                                job(&mut l, 1, 1, used, false);
                            }
                            let b_alone = l.check(1, wb).is_ok();
                            if l.reserve(0, wa).is_err() {
                                continue;
                            }
                            if may_hold(&l, [other(1, Some(wb))]).is_ok() {
                                checked += 1;
                                assert!(
                                    !b_alone || l.check(1, wb).is_ok(),
                                    "total {total} conc {conc} prov {prov} used {used} \
                                     wa {wa} wb {wb}"
                                );
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 50, "the property was exercised ({checked} cases)");
    }
}
