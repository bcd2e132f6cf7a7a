//! The poller: one per `[[runners]]` section.
//!
//! It talks to its coordinator when the supervisor tells it to: one job
//! request per [`PollOnce`] (the supervisor has reserved the weight first),
//! and progress checks of tracked jobs ([`CheckJobs`]), run concurrently
//! with a bound. It owns no state worth persisting; timing and back-off are
//! the supervisor's decisions, so a coordinator outage costs this runner a
//! delay and nothing else.
//!
//! For reconciliation it also lists the runner's resources on the PAAS
//! ([`ListResources`]) and identifies the jobs of resources the state does
//! not know ([`IdentifyJobs`]); the supervisor decides what to do.

use crate::ports::{
    Coordinator, CoordinatorError, Job, JobApiStatus, JobStatus, Listing, Paas, PaasError,
    PollKind, Resource, Weight,
};
use crate::reconcile::{capped_weight, judge, Identified, IdentifyError};
use actix::prelude::*;
use futures_util::stream::{self, StreamExt};
use std::rc::Rc;

/// A job handed out by the coordinator, with its expected weight.
#[derive(Debug)]
pub(crate) struct Acquired {
    /// The job.
    pub job: Job,
    /// Its expected weight, or why it has none (unknown flavor…).
    pub expected: Result<Weight, PaasError>,
    /// Its tenant, for the reuse of a standby resource (`None`: unknown,
    /// or not asked because the runner keeps no standby resources).
    pub scope: Option<String>,
}

/// Sent by the supervisor to a poller, after reserving the largest weight a
/// job could have: request one job from the coordinator, as a short or a
/// long poll (the supervisor decides, see [`crate::long_poll`]).
#[derive(Message, Debug)]
#[rtype(result = "Result<Option<Acquired>, CoordinatorError>")]
pub(crate) struct PollOnce {
    /// Whether the coordinator may hold the request.
    pub kind: PollKind,
    /// Whether to ask the job's tenant (standby resources exist).
    pub scope: bool,
}

/// Sent by the supervisor to a poller when it does not know yet the largest
/// weight a job of this runner could have (its max job weight).
#[derive(Message, Debug)]
#[rtype(result = "Result<Weight, PaasError>")]
pub(crate) struct GetMaxJobWeight;

/// Sent by the supervisor to a poller for the launched jobs whose check is
/// due (each every `job_progress_poll_interval` from its launch): is each
/// of these jobs still running at the coordinator?
#[derive(Message, Debug)]
#[rtype(result = "Vec<(i64, Result<JobStatus, CoordinatorError>)>")]
pub(crate) struct CheckJobs {
    /// Jobs to check.
    pub jobs: Vec<Job>,
}

/// Sent by the supervisor to a poller for jobs whose refused token is held
/// in a burst: what does the Jobs API say of each?
#[derive(Message, Debug)]
#[rtype(result = "Vec<(i64, Result<Option<JobApiStatus>, CoordinatorError>)>")]
pub(crate) struct ConfirmJobs {
    /// Jobs to ask about.
    pub jobs: Vec<Job>,
}

/// The poller of one runner.
pub(crate) struct Poller {
    coordinator: Rc<dyn Coordinator>,
    paas: Rc<dyn Paas>,
    check_concurrency: usize,
}

impl Poller {
    /// A poller over one runner's ports; at most `check_concurrency`
    /// progress checks run at a time.
    pub(crate) fn new(
        coordinator: Rc<dyn Coordinator>,
        paas: Rc<dyn Paas>,
        check_concurrency: usize,
    ) -> Poller {
        Poller {
            coordinator,
            paas,
            check_concurrency: check_concurrency.max(1),
        }
    }
}

impl Actor for Poller {
    type Context = Context<Self>;
}

impl Handler<PollOnce> for Poller {
    type Result = ResponseFuture<Result<Option<Acquired>, CoordinatorError>>;

    fn handle(&mut self, msg: PollOnce, _: &mut Context<Self>) -> Self::Result {
        let coordinator = self.coordinator.clone();
        let paas = self.paas.clone();
        Box::pin(async move {
            let Some(job) = coordinator.request_job(msg.kind).await? else {
                return Ok(None);
            };
            let expected = paas.expected_weight(&job).await;
            // A tenant that cannot be told is unknown: no reuse.
            let scope = if msg.scope && expected.is_ok() {
                paas.job_scope(&job).await.ok().flatten()
            } else {
                None
            };
            Ok(Some(Acquired {
                job,
                expected,
                scope,
            }))
        })
    }
}

impl Handler<GetMaxJobWeight> for Poller {
    type Result = ResponseFuture<Result<Weight, PaasError>>;

    fn handle(&mut self, _: GetMaxJobWeight, _: &mut Context<Self>) -> Self::Result {
        let paas = self.paas.clone();
        Box::pin(async move { paas.max_job_weight().await })
    }
}

impl Handler<CheckJobs> for Poller {
    type Result = ResponseFuture<Vec<(i64, Result<JobStatus, CoordinatorError>)>>;

    fn handle(&mut self, msg: CheckJobs, _: &mut Context<Self>) -> Self::Result {
        self.ask_each(msg.jobs, |coordinator, job| async move {
            coordinator.job_status(&job).await
        })
    }
}

impl Handler<ConfirmJobs> for Poller {
    type Result = ResponseFuture<Vec<(i64, Result<Option<JobApiStatus>, CoordinatorError>)>>;

    fn handle(&mut self, msg: ConfirmJobs, _: &mut Context<Self>) -> Self::Result {
        self.ask_each(msg.jobs, |coordinator, job| async move {
            coordinator.job_api_status(&job).await
        })
    }
}

impl Poller {
    /// Asks the coordinator `ask` about each of `jobs`, at most
    /// `check_concurrency` at a time: each job's id and its answer, in the
    /// order the answers came.
    fn ask_each<T: 'static, F: std::future::Future<Output = T> + 'static>(
        &self,
        jobs: Vec<Job>,
        ask: fn(Rc<dyn Coordinator>, Job) -> F,
    ) -> ResponseFuture<Vec<(i64, T)>> {
        let coordinator = self.coordinator.clone();
        let bound = self.check_concurrency;
        Box::pin(async move {
            stream::iter(jobs)
                .map(|job| {
                    let id = job.id;
                    let answer = ask(coordinator.clone(), job);
                    async move { (id, answer.await) }
                })
                .buffer_unordered(bound)
                .collect()
                .await
        })
    }
}

/// Sent by the supervisor to a poller for a reconciliation pass: the
/// runner's resources on the PAAS now.
#[derive(Message, Debug)]
#[rtype(result = "Result<Listing, PaasError>")]
pub(crate) struct ListResources;

/// Sent by the supervisor to a poller during a reconciliation pass: for
/// each resource the state does not know, read its job back and ask the
/// coordinator whether it still runs.
#[derive(Message, Debug)]
#[rtype(result = "Vec<(i64, Resource, Identified)>")]
pub(crate) struct IdentifyJobs {
    /// `(job id from the resource name, resource)`.
    pub resources: Vec<(i64, Resource)>,
}

impl Handler<ListResources> for Poller {
    type Result = ResponseFuture<Result<Listing, PaasError>>;

    fn handle(&mut self, _: ListResources, _: &mut Context<Self>) -> Self::Result {
        let paas = self.paas.clone();
        Box::pin(async move { paas.list_resources_by_scope().await })
    }
}

impl Handler<IdentifyJobs> for Poller {
    type Result = ResponseFuture<Vec<(i64, Resource, Identified)>>;

    fn handle(&mut self, msg: IdentifyJobs, _: &mut Context<Self>) -> Self::Result {
        let coordinator = self.coordinator.clone();
        let paas = self.paas.clone();
        let bound = self.check_concurrency;
        Box::pin(async move {
            stream::iter(msg.resources)
                .map(|(job_id, resource)| {
                    let (coordinator, paas) = (coordinator.clone(), paas.clone());
                    async move { identify(&*coordinator, &*paas, job_id, resource).await }
                })
                .buffer_unordered(bound)
                .collect()
                .await
        })
    }
}

/// Reads the job of an unknown resource back and asks the coordinator whose
/// it is ([`judge`]); an adopted resource's weight is capped
/// ([`capped_weight`]).
async fn identify(
    coordinator: &dyn Coordinator,
    paas: &dyn Paas,
    job_id: i64,
    mut resource: Resource,
) -> (i64, Resource, Identified) {
    let job = match paas.recover_job(&resource).await {
        Ok(Some(job)) if job.id == job_id => job,
        Ok(Some(job)) => {
            let why = IdentifyError::OtherJob {
                found: job.id,
                named: job_id,
            };
            return (job_id, resource, Identified::Failed(why));
        }
        Ok(None) => return (job_id, resource, Identified::NoJob),
        Err(e) => {
            return (
                job_id,
                resource,
                Identified::Failed(IdentifyError::ReadBack(e)),
            )
        }
    };
    let found = match coordinator.job_owner(&job).await {
        Ok(answer) => judge(job, answer, coordinator.runner_id()),
        Err(e) => Identified::Failed(IdentifyError::Coordinator(e)),
    };
    if matches!(found, Identified::Running(_)) {
        match paas.max_job_weight().await {
            Ok(max) => resource.weight = capped_weight(resource.weight, max),
            Err(e) => {
                return (
                    job_id,
                    resource,
                    Identified::Failed(IdentifyError::MaxWeight(e)),
                )
            }
        }
    }
    (job_id, resource, found)
}
