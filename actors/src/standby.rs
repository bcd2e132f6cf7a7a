//! Standby resources, as pure rules: whether a finished job's resource is
//! kept for another job, which standby resource a new job reuses, and when
//! a standby resource expires.
//!
//! A resource is reused only by a job of the same tenant (both scopes
//! known and equal: a resource or job of unknown tenant is never reused)
//! whose weight is close to the resource's: `1 <= resource / job < 1.15`,
//! so a small job does not hold a large resource. Candidates come in the
//! ledger's order: the acquiring runner's own first, oldest first.

use crate::ports::Weight;
use crate::quota::JobKey;
use crate::settings::StandbyPolicy;
use std::time::Duration;

/// Largest ratio of a reused resource's weight to the job's (excluded).
pub(crate) const MAX_REUSE_RATIO: f64 = 1.15;

/// Whether a finished job's resource goes on standby: its runner keeps
/// resources (`keep > 0`), the resource ran a job (launched) and fewer than
/// `max_jobs_per_resource` jobs.
pub(crate) fn keeps(policy: Option<StandbyPolicy>, uses: u32, launched: bool) -> bool {
    policy.is_some_and(|p| !p.keep.is_zero() && launched && uses < p.max_jobs_per_resource)
}

/// Whether a resource of `resource` weight may run a job of `job` weight.
pub(crate) fn weight_fits(resource: Weight, job: Weight) -> bool {
    if !(job > 0.0 && resource.is_finite()) {
        return false;
    }
    let ratio = resource / job;
    (1.0 - crate::quota::EPSILON..MAX_REUSE_RATIO).contains(&ratio)
}

/// A standby resource a job could reuse.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate<'a> {
    /// Its entry.
    pub key: JobKey,
    /// Its tenant, if known.
    pub scope: Option<&'a str>,
    /// Its weight.
    pub weight: Weight,
}

/// The standby resource a job of `scope` and `weight` reuses: the first
/// of `candidates` (in preference order) of the same known tenant whose
/// weight fits.
pub(crate) fn choose<'a>(
    candidates: impl IntoIterator<Item = Candidate<'a>>,
    scope: Option<&str>,
    weight: Weight,
) -> Option<JobKey> {
    let scope = scope?;
    candidates
        .into_iter()
        .find(|c| c.scope == Some(scope) && weight_fits(c.weight, weight))
        .map(|c| c.key)
}

/// How long a standby resource that went on standby `elapsed` ago still
/// waits (zero: expired).
pub(crate) fn remaining(keep: Duration, elapsed: Duration) -> Duration {
    keep.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(runner: usize, job_id: i64) -> JobKey {
        JobKey { runner, job_id }
    }

    fn c(key: JobKey, scope: Option<&str>, weight: Weight) -> Candidate<'_> {
        Candidate { key, scope, weight }
    }

    #[test]
    fn reuse_needs_the_same_known_tenant_and_a_close_weight() {
        let cands = || {
            vec![
                c(key(0, 1), Some("orga_b"), 1.0),
                c(key(0, 2), None, 1.0),
                c(key(0, 3), Some("orga_a"), 2.0),
                c(key(1, 4), Some("orga_a"), 1.1),
                c(key(1, 5), Some("orga_a"), 1.0),
            ]
        };
        // In order: the first that fits (another runner's, after own ones
        // that do not fit).
        assert_eq!(choose(cands(), Some("orga_a"), 1.0), Some(key(1, 4)));
        assert_eq!(choose(cands(), Some("orga_b"), 1.0), Some(key(0, 1)));
        // Unknown tenant: never.
        assert_eq!(choose(cands(), None, 1.0), None);
        // Too large a resource (2 / 1.5 = 1.33), or too small (1.1 / 1.5).
        assert_eq!(choose(cands(), Some("orga_a"), 1.5), None);
        assert_eq!(choose(cands(), Some("orga_a"), 1.8), Some(key(0, 3)));
        assert_eq!(choose(Vec::new(), Some("orga_a"), 1.0), None);
    }

    #[test]
    fn ratio_bounds() {
        assert!(weight_fits(1.0, 1.0));
        assert!(weight_fits(1.149, 1.0));
        assert!(!weight_fits(1.15, 1.0));
        assert!(!weight_fits(0.99, 1.0));
        assert!(!weight_fits(1.0, 0.0));
        assert!(!weight_fits(f64::NAN, 1.0));
    }

    #[test]
    fn kept_while_configured_launched_and_under_the_use_limit() {
        let p = StandbyPolicy {
            keep: Duration::from_secs(120),
            max_jobs_per_resource: 3,
        };
        assert!(keeps(Some(p), 1, true));
        assert!(keeps(Some(p), 2, true));
        assert!(!keeps(Some(p), 3, true), "the third job was its last");
        assert!(!keeps(Some(p), 1, false), "never launched");
        assert!(!keeps(None, 1, true));
        let zero = StandbyPolicy {
            keep: Duration::ZERO,
            ..p
        };
        assert!(!keeps(Some(zero), 1, true));
    }

    #[test]
    fn expiry_counts_from_the_standby_start() {
        let keep = Duration::from_secs(120);
        assert_eq!(remaining(keep, Duration::ZERO), keep);
        assert_eq!(
            remaining(keep, Duration::from_secs(100)),
            Duration::from_secs(20)
        );
        assert_eq!(remaining(keep, Duration::from_secs(500)), Duration::ZERO);
    }
}
