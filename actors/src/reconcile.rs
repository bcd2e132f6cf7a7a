//! Reconciliation: compare what a runner's PAAS holds with what the state
//! tracks, as pure code.
//!
//! The supervisor runs a pass at start-up and every `reconcile_interval`:
//! it asks the runner's poller for the resources on the PAAS
//! (`Paas::list_resources`), then `plan` sorts every listed resource and
//! every tracked entry into a `Decision`. Resources the state does not
//! know go through [`Identified`] (the job read back from the resource and
//! its status at the coordinator) before the supervisor adopts or
//! decommissions them.
//!
//! Safety rules (why each case is what it is):
//! - A listing that failed decides nothing (an empty listing is not "all
//!   gone").
//! - An entry is declared vanished only if its resource was already recorded
//!   when the listing was requested (a resource created meanwhile is
//!   legitimately absent from the listing) and no per-job actor is working
//!   on it (a launcher or decommissioner finds out by itself).
//! - A resource whose name matches a job being created (the `creating`
//!   record, or a job acquired and not yet recorded) is left to that job's
//!   launcher, which looks for it by name.
//! - An unknown resource is adopted only when the coordinator proves its job
//!   is this runner's ([`judge`]): the job token read back from it answers
//!   `GET /job` with the job id of the resource's name *and* this runner's
//!   id. A tenant can create resources named like ours holding any running
//!   job's token: such a resource ([`Identified::NotOurs`]) is never counted
//!   and never deleted. Its adopted weight is capped at the runner's largest
//!   job weight (`capped_weight`).
//! - A second resource with the name of a tracked job's resource (a
//!   duplicate) is left alone while the job is tracked: the job table has one
//!   entry per job; once the job is forgotten, a later pass finds the
//!   duplicate unknown and decommissions it.

use crate::ports::{CoordinatorError, Job, JobOwner, JobStatus, PaasError, Resource, Weight};
use std::collections::{HashMap, HashSet};

/// What the supervisor knows of one tracked job of the runner, when the
/// listing comes back.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tracked {
    /// Job id.
    pub job_id: i64,
    /// `(id, name)` of its resource, if it has one.
    pub resource: Option<(String, String)>,
    /// A per-job actor is working on the job.
    pub busy: bool,
    /// Its resource was recorded before the listing was requested.
    pub recorded_before_listing: bool,
}

/// What to do about one listed resource or one tracked entry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decision {
    /// The resource is the tracked job's: nothing to do.
    Matched {
        /// Job id.
        job_id: i64,
        /// Resource id.
        app: String,
    },
    /// The resource belongs to a job being created: its launcher handles it.
    BeingCreated {
        /// Job id.
        job_id: i64,
        /// Resource id.
        app: String,
    },
    /// Another resource with the name of a tracked job's resource.
    Duplicate {
        /// Job id.
        job_id: i64,
        /// The duplicate resource.
        resource: Resource,
    },
    /// A resource of this runner the state does not know.
    Unknown {
        /// Job id read from the resource name.
        job_id: i64,
        /// The resource.
        resource: Resource,
    },
    /// A resource carrying the runner's prefix whose name is not one this
    /// runner gives: left alone.
    Foreign {
        /// The resource.
        resource: Resource,
    },
    /// A tracked resource that no longer exists on the PAAS.
    Vanished {
        /// Job id.
        job_id: i64,
        /// Resource id.
        app: String,
    },
}

/// What reading the job back from an unknown resource found.
#[derive(Clone, Debug, PartialEq)]
pub enum Identified {
    /// The job is still executing at the coordinator: adopt the resource.
    Running(Job),
    /// The job is over at the coordinator: decommission the resource.
    Finished(Job),
    /// The job runs, but the coordinator does not show it as this runner's
    /// job of that id (a forgery, another runner's resource, or this
    /// runner's id is unknown): never counted, never deleted.
    NotOurs {
        /// The job read back.
        job: Job,
        /// The job id the coordinator answered with.
        answered_job: Option<i64>,
        /// The runner the coordinator answered with.
        answered_runner: Option<i64>,
    },
    /// No job can be read back from the resource (never launched, or the
    /// executor cannot read it): nobody needs it, decommission it.
    NoJob,
    /// Reading the job or asking the coordinator failed: decide at the next
    /// pass.
    Failed(IdentifyError),
}

/// Why the job of an unknown resource could not be identified.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum IdentifyError {
    /// The resource holds another job than its name says.
    #[error("the resource holds job {found} although its name says job {named}")]
    OtherJob {
        /// The job read back.
        found: i64,
        /// The job of the name.
        named: i64,
    },
    /// The job could not be read back from the resource.
    #[error("cannot read the job back: {0}")]
    ReadBack(PaasError),
    /// The runner's largest job weight (the cap of an adoption) is unknown.
    #[error("cannot read the runner's largest job weight: {0}")]
    MaxWeight(PaasError),
    /// The coordinator could not say whether the job runs.
    #[error("cannot ask the coordinator about the job: {0}")]
    Coordinator(CoordinatorError),
}

/// The job id in a resource name, if the name is one this runner gives
/// (`name_of(id) == name`, `name_of` being `Paas::resource_name`). Public
/// for the fuzz targets of `fuzz/`.
pub fn job_id_of(name: &str, name_of: impl Fn(i64) -> String) -> Option<i64> {
    let (_, tail) = name.rsplit_once('-')?;
    if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: i64 = tail.parse().ok()?;
    (name_of(id) == name).then_some(id)
}

/// What the coordinator's answer about the job read back from an unknown
/// resource means: `own_runner` is this runner's id, when known.
pub fn judge(job: Job, answer: JobOwner, own_runner: Option<i64>) -> Identified {
    match answer.status {
        JobStatus::Finished | JobStatus::TokenRefused => Identified::Finished(job),
        JobStatus::Running => {
            // Another host sharing the runner token (same runner id) is
            // told apart by its runner manager, when the coordinator names
            // one; when it names none, the runner id decides alone.
            let ours = answer.job_id == Some(job.id)
                && own_runner.is_some()
                && answer.runner_id == own_runner
                && answer.same_manager != Some(false);
            if ours {
                Identified::Running(job)
            } else {
                Identified::NotOurs {
                    job,
                    answered_job: answer.job_id,
                    answered_runner: answer.runner_id,
                }
            }
        }
    }
}

/// The weight an adopted resource counts for: its own, at most the largest
/// a job of the runner can weigh (a resource's size is the PAAS's word,
/// not a proof).
pub(crate) fn capped_weight(resource: Weight, max_job: Weight) -> Weight {
    if resource.is_finite() && resource > 0.0 {
        resource.min(max_job)
    } else {
        max_job
    }
}

/// Sorts a listing of one runner's resources against its tracked jobs.
pub(crate) fn plan(
    listed: Vec<Resource>,
    tracked: &[Tracked],
    name_of: impl Fn(i64) -> String,
) -> Vec<Decision> {
    let by_app: HashMap<&str, &Tracked> = tracked
        .iter()
        .filter_map(|t| t.resource.as_ref().map(|(id, _)| (id.as_str(), t)))
        .collect();
    let by_job: HashMap<i64, &Tracked> = tracked.iter().map(|t| (t.job_id, t)).collect();
    let listed_ids: HashSet<String> = listed.iter().map(|r| r.id.clone()).collect();
    let mut out = Vec::with_capacity(listed.len());
    for r in listed {
        if let Some(t) = by_app.get(r.id.as_str()) {
            out.push(Decision::Matched {
                job_id: t.job_id,
                app: r.id,
            });
            continue;
        }
        let Some(job_id) = job_id_of(&r.name, &name_of) else {
            out.push(Decision::Foreign { resource: r });
            continue;
        };
        match by_job.get(&job_id) {
            None => out.push(Decision::Unknown {
                job_id,
                resource: r,
            }),
            Some(t) if t.resource.is_some() => out.push(Decision::Duplicate {
                job_id,
                resource: r,
            }),
            // Tracked without a resource: being created (or about to be).
            Some(_) => out.push(Decision::BeingCreated { job_id, app: r.id }),
        }
    }
    for t in tracked {
        let Some((id, _)) = &t.resource else { continue };
        if !listed_ids.contains(id) && t.recorded_before_listing && !t.busy {
            out.push(Decision::Vanished {
                job_id: t.job_id,
                app: id.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn name_of(id: i64) -> String {
        format!("hpd-job-r1-{id}")
    }

    fn running(job_id: Option<i64>, runner_id: Option<i64>) -> JobOwner {
        JobOwner {
            status: JobStatus::Running,
            job_id,
            runner_id,
            same_manager: None,
        }
    }

    #[test]
    fn only_a_running_job_of_that_id_and_of_this_runner_is_adopted() {
        let job = Job::from_handle(
            7,
            crate::secret::Secret::new("t"),
            std::sync::Arc::new(Value::Null),
        );
        assert_eq!(
            judge(job.clone(), running(Some(7), Some(3)), Some(3)),
            Identified::Running(job.clone())
        );
        let manager = |same| JobOwner {
            same_manager: Some(same),
            ..running(Some(7), Some(3))
        };
        assert_eq!(
            judge(job.clone(), manager(true), Some(3)),
            Identified::Running(job.clone())
        );
        for (answer, own) in [
            (manager(false), Some(3)),            // another host on the same token
            (running(Some(7), Some(4)), Some(3)), // another runner's job
            (running(Some(8), Some(3)), Some(3)), // the token of another job
            (running(Some(7), None), Some(3)),    // no runner in the answer
            (running(None, Some(3)), Some(3)),    // no job id in the answer
            (running(Some(7), Some(3)), None),    // this runner's id unknown
        ] {
            let got = judge(job.clone(), answer, own);
            assert_eq!(
                got,
                Identified::NotOurs {
                    job: job.clone(),
                    answered_job: answer.job_id,
                    answered_runner: answer.runner_id
                },
                "{answer:?} own {own:?}"
            );
        }
        // A finished job keeps today's treatment, whoever ran it.
        let over = JobOwner {
            status: JobStatus::Finished,
            job_id: None,
            runner_id: None,
            same_manager: None,
        };
        assert_eq!(judge(job.clone(), over, Some(3)), Identified::Finished(job));
    }

    #[test]
    fn adopted_weight_is_capped_at_the_largest_job_weight() {
        assert_eq!(capped_weight(2.0, 8.0), 2.0);
        assert_eq!(capped_weight(64.0, 8.0), 8.0);
        assert_eq!(capped_weight(f64::NAN, 8.0), 8.0);
        assert_eq!(capped_weight(-1.0, 8.0), 8.0);
    }

    fn res(id: &str, job: i64) -> Resource {
        Resource {
            id: id.to_string(),
            name: name_of(job),
            weight: 1.0,
            launched: true,
            detail: Value::Null,
            credential: None,
        }
    }

    fn tracked(job_id: i64, app: Option<&str>) -> Tracked {
        Tracked {
            job_id,
            resource: app.map(|a| (a.to_string(), name_of(job_id))),
            busy: false,
            recorded_before_listing: true,
        }
    }

    #[test]
    fn job_ids_are_read_only_from_names_this_runner_gives() {
        let table = [
            ("hpd-job-r1-42", Some(42)),
            ("hpd-job-r1-0", Some(0)),
            ("hpd-job-r1-042", None),
            ("hpd-job-r1-", None),
            ("hpd-job-r1-4x", None),
            ("hpd-job-r1-+4", None),
            ("hpd-job-r2-42", None),
            ("hpd-job-r1-x-42", None),
            ("hpd-job-r1-99999999999999999999", None),
            ("nodash", None),
        ];
        for (name, expected) in table {
            assert_eq!(job_id_of(name, name_of), expected, "{name}");
        }
    }

    #[test]
    fn every_case_gets_its_decision() {
        let mut busy = tracked(6, Some("app_6"));
        busy.busy = true;
        let mut fresh = tracked(7, Some("app_7"));
        fresh.recorded_before_listing = false;
        // Job 8 is being created: tracked, no resource recorded yet.
        let creating = tracked(8, None);
        let entries = [
            tracked(1, Some("app_1")),
            tracked(2, Some("app_2")),
            busy,
            fresh,
            creating,
        ];
        let mut foreign = res("app_x", 0);
        foreign.name = "hpd-job-r1-zz".into();
        let listed = vec![
            res("app_1", 1),
            res("app_1b", 1),
            res("app_8", 8),
            res("app_9", 9),
            foreign.clone(),
        ];
        let got = plan(listed, &entries, name_of);
        assert_eq!(
            got,
            vec![
                Decision::Matched {
                    job_id: 1,
                    app: "app_1".into()
                },
                Decision::Duplicate {
                    job_id: 1,
                    resource: res("app_1b", 1)
                },
                Decision::BeingCreated {
                    job_id: 8,
                    app: "app_8".into()
                },
                Decision::Unknown {
                    job_id: 9,
                    resource: res("app_9", 9)
                },
                Decision::Foreign { resource: foreign },
                // app_2 gone; app_6 gone but busy; app_7 recorded after the
                // listing was requested: only app_2 vanished.
                Decision::Vanished {
                    job_id: 2,
                    app: "app_2".into()
                },
            ]
        );
    }

    #[test]
    fn an_empty_state_makes_every_resource_unknown() {
        let got = plan(vec![res("a", 1), res("b", 2)], &[], name_of);
        assert!(got.iter().all(|d| matches!(d, Decision::Unknown { .. })));
        assert_eq!(got.len(), 2);
    }
}
