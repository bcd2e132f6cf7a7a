//! In-memory fakes of the ports, for tests and benchmarks (feature `testing`).
//!
//! A [`World`] is the shared truth the fakes of several runners act on:
//! live resources (with the peak of their total weight, to check the quota
//! from the PAAS side), launched jobs, job statuses. [`FakeCoordinator`] and
//! [`FakePaas`] script failures and latencies per call; latencies use tokio
//! time, so tests pause the clock and nothing really sleeps.
//! [`MemoryStore`] keeps snapshots in memory, round-tripping them through
//! the JSON format. [`capture_logger`] collects log lines for assertions.

use crate::ports::{
    Coordinator, CoordinatorError, FailureReason, Job, JobApiStatus, JobOwner, JobStatus, Listing,
    Paas, PaasError, PollKind, PortFuture, Resource, TraceAppend, Weight,
};
pub use crate::quota::JobKey;
use crate::state::{Snapshot, StateError, StateStore};
use crate::state_doc::StateDoc;
pub use crate::supervisor::{Books, EndTask, GetBooks, GetStats, Stats};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The shared state of the fake coordinators and PAAS of a test.
#[derive(Default)]
pub struct World {
    inner: RefCell<WorldState>,
}

/// What a [`World`] knows.
#[derive(Default, Debug, Clone)]
pub struct WorldState {
    /// Live resources by name.
    pub live: BTreeMap<String, Resource>,
    /// Highest total weight of live resources ever seen.
    pub peak_live_weight: Weight,
    /// Resources created since start.
    pub created: u64,
    /// Successful decommissions since start.
    pub deleted: u64,
    /// Job ids launched on a resource.
    pub launched_jobs: HashSet<i64>,
    /// Job ids whose job is over at the coordinator.
    pub finished_jobs: HashSet<i64>,
    /// Job ids the coordinator shows as run by another runner.
    pub foreign_jobs: HashSet<i64>,
    /// The last job launched on each resource (by name).
    pub running_on: HashMap<String, i64>,
    /// Launches on a resource whose previous job was not over at the
    /// coordinator: a resource given to two jobs (must stay 0).
    pub double_uses: u64,
    /// Launches on a resource that had run a job before.
    pub reused_launches: u64,
}

/// The runner id of every fake coordinator.
pub const FAKE_RUNNER_ID: i64 = 1;

impl World {
    /// A new, empty world.
    pub fn new() -> Rc<World> {
        Rc::new(World::default())
    }

    /// A copy of the state.
    pub fn state(&self) -> WorldState {
        self.inner.borrow().clone()
    }

    /// Total weight of the live resources.
    pub fn live_weight(&self) -> Weight {
        self.inner.borrow().live.values().map(|r| r.weight).sum()
    }

    /// Number of live resources.
    pub fn live_count(&self) -> usize {
        self.inner.borrow().live.len()
    }

    /// Ends a job at the coordinator (finished or cancelled).
    pub fn finish_job(&self, job_id: i64) {
        self.inner.borrow_mut().finished_jobs.insert(job_id);
    }

    /// Makes the coordinator show a job as run by another runner.
    pub fn make_foreign(&self, job_id: i64) {
        self.inner.borrow_mut().foreign_jobs.insert(job_id);
    }

    /// Puts a resource on the PAAS as if created earlier.
    pub fn add_live(&self, resource: Resource) {
        let mut w = self.inner.borrow_mut();
        w.live.insert(resource.name.clone(), resource);
    }

    /// Removes a resource from the PAAS behind the runner's back (deleted
    /// by hand): the next reconciliation finds it vanished.
    pub fn remove_live(&self, name: &str) -> Option<Resource> {
        self.inner.borrow_mut().live.remove(name)
    }
}

/// A job payload with id, token, project id and variables.
pub fn job(id: i64, vars: &[(&str, &str)]) -> Job {
    let variables: Vec<Value> = vars
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v, "public": true}))
        .collect();
    let payload = json!({
        "id": id,
        "token": format!("job-token-{id}"),
        "allow_git_fetch": true,
        "job_info": {"id": id, "name": "test", "stage": "test", "project_id": 1,
                     "project_name": "proj"},
        "git_info": {"repo_url": "https://example.invalid/group/proj.git",
                     "ref": "branch/default", "sha": "0123456789abcdef0123456789abcdef01234567"},
        "variables": variables,
        "steps": [{"name": "script", "script": ["make test"], "timeout": 3600,
                   "when": "on_success", "allow_failure": false}],
        "image": {"name": "debian:bookworm"},
    });
    match Job::from_payload(payload) {
        Ok(j) => j,
        Err(_) => Job {
            id,
            token: crate::Secret::new(""),
            project_id: None,
            payload: Arc::new(Value::Null),
        },
    }
}

async fn lag(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// Scripted state of a [`FakeCoordinator`].
#[derive(Default, Debug)]
pub struct CoordinatorScript {
    /// Jobs handed out by `request_job`, in order.
    pub queue: VecDeque<Job>,
    /// Errors returned by the next `request_job` calls, before the queue.
    pub request_errors: VecDeque<CoordinatorError>,
    /// Errors returned by the next `report_failed` calls.
    pub report_errors: VecDeque<CoordinatorError>,
    /// When true, `trace_len` grows as soon as the job is launched.
    pub auto_trace: bool,
    /// Jobs whose token `job_status` refuses (GitLab's 401/403).
    pub token_refused: std::collections::BTreeSet<i64>,
    /// When true, `job_status` refuses every job token.
    pub refuse_every_token: bool,
    /// When true, `trace_len` answers as to a refused trace-watch token.
    pub trace_refused: bool,
    /// What `job_api_status` answers about every job; `None` (the
    /// default): nothing learnt, as without a trace-watch token.
    pub jobs_api: Option<Result<JobApiStatus, CoordinatorError>>,
    /// Calls to `job_api_status`, by job id.
    pub jobs_api_calls: Vec<i64>,
    /// Calls to `trace_len`.
    pub trace_reads: u64,
    /// When true, `job_status` says Finished as soon as the job is launched.
    pub auto_finish: bool,
    /// Latency of `request_job`.
    pub request_latency: Duration,
    /// Long-poll window: a [`PollKind::Long`] request finding no job is
    /// held this long, or until a job is queued (`None`: answered at once,
    /// like a coordinator without GitLab Workhorse).
    pub long_poll_window: Option<Duration>,
    /// Long polls received.
    pub long_requests: u64,
    /// Long polls being held now, and the peak.
    pub holding: (usize, usize),
    /// Latency of `job_status`.
    pub status_latency: Duration,
    /// Trace appends seen: (job id, offset, text).
    pub appended: Vec<(i64, u64, String)>,
    /// Failure reports: (job id, reason, exit code, tokio instant).
    pub reports: Vec<(i64, FailureReason, i32, tokio::time::Instant)>,
    /// Calls to `request_job`.
    pub requests: u64,
    /// Calls to `job_status`.
    pub status_calls: u64,
    /// `job_status` calls in flight now, and the peak.
    pub status_in_flight: (usize, usize),
}

/// An in-memory coordinator.
pub struct FakeCoordinator {
    world: Rc<World>,
    /// The script; tests change it while the service runs.
    pub script: RefCell<CoordinatorScript>,
    /// Called at the start of every job update (trace append, failure
    /// report), with the job id.
    #[allow(clippy::type_complexity)]
    pub on_update: RefCell<Option<Box<dyn Fn(i64)>>>,
}

impl FakeCoordinator {
    /// A coordinator acting on `world`, with trace and auto-start on.
    pub fn new(world: Rc<World>) -> Rc<FakeCoordinator> {
        Rc::new(FakeCoordinator {
            world,
            script: RefCell::new(CoordinatorScript {
                auto_trace: true,
                ..CoordinatorScript::default()
            }),
            on_update: RefCell::new(None),
        })
    }

    /// Queues jobs to hand out.
    pub fn push_jobs(&self, jobs: impl IntoIterator<Item = Job>) {
        self.script.borrow_mut().queue.extend(jobs);
    }
}

impl Coordinator for FakeCoordinator {
    fn request_job(&self, kind: PollKind) -> PortFuture<'_, Result<Option<Job>, CoordinatorError>> {
        Box::pin(async move {
            let latency = self.script.borrow().request_latency;
            lag(latency).await;
            let window = {
                let mut s = self.script.borrow_mut();
                s.requests += 1;
                if let Some(e) = s.request_errors.pop_front() {
                    return Err(e);
                }
                if kind == PollKind::Long {
                    s.long_requests += 1;
                }
                match s.long_poll_window {
                    Some(w) if kind == PollKind::Long && s.queue.is_empty() => {
                        s.holding.0 += 1;
                        s.holding.1 = s.holding.1.max(s.holding.0);
                        Some(w)
                    }
                    _ => None,
                }
            };
            if let Some(window) = window {
                // Held until a job is queued or the window ends (bounded
                // by the window; checked every 10 ms of tokio time).
                let end = tokio::time::Instant::now() + window;
                while self.script.borrow().queue.is_empty() && tokio::time::Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let mut s = self.script.borrow_mut();
                s.holding.0 = s.holding.0.saturating_sub(1);
            }
            Ok(self.script.borrow_mut().queue.pop_front())
        })
    }

    fn job_status<'a>(
        &'a self,
        job: &'a Job,
    ) -> PortFuture<'a, Result<JobStatus, CoordinatorError>> {
        Box::pin(async move {
            let latency = {
                let mut s = self.script.borrow_mut();
                s.status_calls += 1;
                s.status_in_flight.0 += 1;
                s.status_in_flight.1 = s.status_in_flight.1.max(s.status_in_flight.0);
                s.status_latency
            };
            lag(latency).await;
            let (auto_finish, refused) = {
                let mut s = self.script.borrow_mut();
                s.status_in_flight.0 -= 1;
                (
                    s.auto_finish,
                    s.refuse_every_token || s.token_refused.contains(&job.id),
                )
            };
            if refused {
                return Ok(JobStatus::TokenRefused);
            }
            let mut w = self.world.inner.borrow_mut();
            let over = w.finished_jobs.contains(&job.id)
                || (auto_finish && w.launched_jobs.contains(&job.id));
            if over {
                // Seen over: its resource may run another job.
                w.finished_jobs.insert(job.id);
            }
            Ok(if over {
                JobStatus::Finished
            } else {
                JobStatus::Running
            })
        })
    }

    fn job_owner<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<JobOwner, CoordinatorError>> {
        Box::pin(async move {
            let status = self.job_status(job).await?;
            let foreign = self.world.inner.borrow().foreign_jobs.contains(&job.id);
            Ok(JobOwner {
                status,
                job_id: Some(job.id),
                runner_id: Some(if foreign {
                    FAKE_RUNNER_ID + 1
                } else {
                    FAKE_RUNNER_ID
                }),
                same_manager: None,
            })
        })
    }

    fn runner_id(&self) -> Option<i64> {
        Some(FAKE_RUNNER_ID)
    }

    fn append_trace<'a>(
        &'a self,
        job: &'a Job,
        offset: u64,
        text: &'a str,
    ) -> PortFuture<'a, Result<TraceAppend, CoordinatorError>> {
        Box::pin(async move {
            if let Some(hook) = self.on_update.borrow().as_ref() {
                hook(job.id);
            }
            let mut s = self.script.borrow_mut();
            s.appended.push((job.id, offset, text.to_string()));
            Ok(TraceAppend::Appended {
                new_offset: offset + text.len() as u64,
            })
        })
    }

    fn report_failed<'a>(
        &'a self,
        job: &'a Job,
        reason: FailureReason,
        exit_code: i32,
    ) -> PortFuture<'a, Result<(), CoordinatorError>> {
        Box::pin(async move {
            if let Some(hook) = self.on_update.borrow().as_ref() {
                hook(job.id);
            }
            let mut s = self.script.borrow_mut();
            s.reports
                .push((job.id, reason, exit_code, tokio::time::Instant::now()));
            match s.report_errors.pop_front() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
    }

    fn job_api_status<'a>(
        &'a self,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Option<JobApiStatus>, CoordinatorError>> {
        Box::pin(async move {
            let mut s = self.script.borrow_mut();
            s.jobs_api_calls.push(job.id);
            s.jobs_api.clone().transpose()
        })
    }

    fn trace_len<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<u64, CoordinatorError>> {
        Box::pin(async move {
            {
                let mut s = self.script.borrow_mut();
                s.trace_reads += 1;
                if s.trace_refused {
                    return Err(CoordinatorError::Rejected {
                        detail: "trace read: 401 Unauthorized".into(),
                    });
                }
            }
            let auto = self.script.borrow().auto_trace;
            let appended: u64 = self
                .script
                .borrow()
                .appended
                .iter()
                .filter(|(id, _, _)| *id == job.id)
                .map(|(_, _, t)| t.len() as u64)
                .sum();
            let launched = self.world.inner.borrow().launched_jobs.contains(&job.id);
            Ok(appended + u64::from(auto && launched) * 100)
        })
    }
}

/// A PAAS step that can be scripted to fail or lag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// `expected_weight`.
    Expected,
    /// `create`.
    Create,
    /// `prepare`.
    Prepare,
    /// `wait_ready`.
    WaitReady,
    /// `launch`.
    Launch,
    /// `decommission`.
    Decommission,
    /// `list_resources`.
    List,
    /// `recover_job`.
    Recover,
    /// `prepare_reuse`.
    Reuse,
}

/// Scripted state of a [`FakePaas`].
#[derive(Default, Debug)]
pub struct PaasScript {
    /// Errors returned by the next calls of each step.
    pub errors: HashMap<Step, VecDeque<PaasError>>,
    /// Latency of each step.
    pub latency: HashMap<Step, Duration>,
    /// Calls: (step, job id or 0).
    pub calls: Vec<(Step, i64)>,
    /// Scopes `list_resources_by_scope` cannot list. A resource's scope is
    /// its `detail["scope"]` string, `"default"` without one.
    pub skipped_scopes: std::collections::BTreeSet<String>,
    /// Tenants `list_resources_by_scope` names as unresolved.
    pub unresolved_tenants: Vec<String>,
    /// Errors returned by every call of a step for one job, after the
    /// scripted `errors`.
    pub always: HashMap<(Step, i64), PaasError>,
}

/// An in-memory PAAS for one runner. A job's expected weight is its
/// `WEIGHT` variable (default 1.0); its actual weight `ACTUAL_WEIGHT`
/// (default: the expected weight).
pub struct FakePaas {
    world: Rc<World>,
    unique: String,
    max_weight: Weight,
    /// The script; tests change it while the service runs.
    pub script: RefCell<PaasScript>,
    /// Called at each `create`, before the resource exists.
    #[allow(clippy::type_complexity)]
    pub on_create: RefCell<Option<Box<dyn Fn(&Job)>>>,
    /// Called at the start of every call, with the step and the job id (0
    /// when there is none), before latency and scripted errors.
    #[allow(clippy::type_complexity)]
    pub on_call: RefCell<Option<Box<dyn Fn(Step, i64)>>>,
    /// Jobs readable back from resources, by resource name: filled by
    /// `launch` (as the build context pushed to a Clever app), read by
    /// `recover_job`. Tests may add or remove entries.
    pub pushed_jobs: RefCell<HashMap<String, Job>>,
    /// What `started_at_launch` answers (a helper-service executor).
    pub service: Cell<bool>,
}

impl FakePaas {
    /// A PAAS for runner `unique`, whose largest job weighs `max_weight`.
    pub fn new(world: Rc<World>, unique: &str, max_weight: Weight) -> Rc<FakePaas> {
        Rc::new(FakePaas {
            world,
            unique: unique.to_string(),
            max_weight,
            script: RefCell::new(PaasScript::default()),
            on_create: RefCell::new(None),
            on_call: RefCell::new(None),
            pushed_jobs: RefCell::new(HashMap::new()),
            service: Cell::new(false),
        })
    }

    /// Scripts the next calls of `step` to fail with `errors`.
    pub fn fail(&self, step: Step, errors: impl IntoIterator<Item = PaasError>) {
        self.script
            .borrow_mut()
            .errors
            .entry(step)
            .or_default()
            .extend(errors);
    }

    /// Sets the latency of `step`.
    pub fn set_latency(&self, step: Step, d: Duration) {
        self.script.borrow_mut().latency.insert(step, d);
    }

    /// Number of calls of `step`.
    pub fn calls(&self, step: Step) -> usize {
        self.script
            .borrow()
            .calls
            .iter()
            .filter(|(s, _)| *s == step)
            .count()
    }

    async fn enter(&self, step: Step, job_id: i64) -> Result<(), PaasError> {
        if let Some(hook) = self.on_call.borrow().as_ref() {
            hook(step, job_id);
        }
        let latency = {
            let mut s = self.script.borrow_mut();
            s.calls.push((step, job_id));
            s.latency.get(&step).copied().unwrap_or_default()
        };
        lag(latency).await;
        let mut s = self.script.borrow_mut();
        match s.errors.get_mut(&step).and_then(|q| q.pop_front()) {
            Some(e) => Err(e),
            None => match s.always.get(&(step, job_id)) {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            },
        }
    }

    fn weight_var(job: &Job, key: &str) -> Option<Weight> {
        job.variable(key).and_then(|v| v.parse().ok())
    }

    /// A resource's detail: its job, and its tenant if the job named one
    /// (variable `TENANT`).
    fn detail(job_id: i64, scope: Option<&str>) -> Value {
        match scope {
            Some(s) => json!({"job_id": job_id, "scope": s}),
            None => json!({"job_id": job_id}),
        }
    }

    fn job_id_of(resource: &Resource) -> i64 {
        resource
            .detail
            .get("job_id")
            .and_then(|v| v.as_i64())
            .unwrap_or(0)
    }
}

impl Paas for FakePaas {
    fn max_job_weight(&self) -> PortFuture<'_, Result<Weight, PaasError>> {
        Box::pin(async move { Ok(self.max_weight) })
    }

    fn expected_weight<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Weight, PaasError>> {
        Box::pin(async move {
            self.enter(Step::Expected, job.id).await?;
            if job.variable("FLAVOR") == Some("bogus") {
                return Err(PaasError::permanent(
                    "check-flavor",
                    "unknown flavor `bogus`; allowed: S, M, L",
                ));
            }
            Ok(Self::weight_var(job, "WEIGHT").unwrap_or(1.0))
        })
    }

    fn resource_name(&self, job_id: i64) -> String {
        format!("hpd-job-{}-{}", self.unique, job_id)
    }

    fn create<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move {
            if let Some(hook) = self.on_create.borrow().as_ref() {
                hook(job);
            }
            self.enter(Step::Create, job.id).await?;
            let expected = Self::weight_var(job, "WEIGHT").unwrap_or(1.0);
            let weight = Self::weight_var(job, "ACTUAL_WEIGHT").unwrap_or(expected);
            let r = Resource {
                id: format!("app_{}_{}", self.unique, job.id),
                name: self.resource_name(job.id),
                weight,
                launched: false,
                detail: Self::detail(job.id, job.variable("TENANT")),
                credential: None,
            };
            let mut w = self.world.inner.borrow_mut();
            w.live.insert(r.name.clone(), r.clone());
            w.created += 1;
            let total: Weight = w.live.values().map(|r| r.weight).sum();
            if total > w.peak_live_weight {
                w.peak_live_weight = total;
            }
            Ok(r)
        })
    }

    fn prepare<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move {
            self.enter(Step::Prepare, job.id).await?;
            Ok(resource.clone())
        })
    }

    fn wait_ready<'a>(
        &'a self,
        _resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<(), PaasError>> {
        Box::pin(self.enter(Step::WaitReady, job.id))
    }

    fn launch<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move {
            self.enter(Step::Launch, job.id).await?;
            let mut r = resource.clone();
            r.launched = true;
            self.pushed_jobs
                .borrow_mut()
                .insert(r.name.clone(), job.clone());
            let mut w = self.world.inner.borrow_mut();
            w.live.insert(r.name.clone(), r.clone());
            w.launched_jobs.insert(job.id);
            if let Some(previous) = w.running_on.insert(r.name.clone(), job.id) {
                if previous != job.id {
                    w.reused_launches += 1;
                    if !w.finished_jobs.contains(&previous) {
                        w.double_uses += 1;
                    }
                }
            }
            Ok(r)
        })
    }

    fn decommission<'a>(&'a self, resource: &'a Resource) -> PortFuture<'a, Result<(), PaasError>> {
        Box::pin(async move {
            self.enter(Step::Decommission, Self::job_id_of(resource))
                .await?;
            let mut w = self.world.inner.borrow_mut();
            if w.live.remove(&resource.name).is_some() {
                w.deleted += 1;
            }
            Ok(())
        })
    }

    fn list_resources(&self) -> PortFuture<'_, Result<Vec<Resource>, PaasError>> {
        Box::pin(async move {
            // The listing is taken when the call arrives; its latency is
            // the answer's trip back (so that it may be stale on arrival).
            let prefix = format!("hpd-job-{}-", self.unique);
            let listed: Vec<Resource> = self
                .world
                .inner
                .borrow()
                .live
                .values()
                .filter(|r| r.name.starts_with(&prefix))
                .cloned()
                .collect();
            self.enter(Step::List, 0).await?;
            Ok(listed)
        })
    }

    fn list_resources_by_scope(&self) -> PortFuture<'_, Result<Listing, PaasError>> {
        Box::pin(async move {
            let listed = self.list_resources().await?;
            let skipped = self.script.borrow().skipped_scopes.clone();
            Ok(Listing {
                resources: listed
                    .into_iter()
                    .filter(|r| {
                        self.resource_scope(r)
                            .is_none_or(|scope| !skipped.contains(&scope))
                    })
                    .collect(),
                skipped: skipped.into_iter().collect(),
                unresolved: self.script.borrow().unresolved_tenants.clone(),
            })
        })
    }

    fn resource_flavor(&self, resource: &Resource) -> Option<String> {
        Some(format!("weight-{}", resource.weight))
    }

    fn resource_scope(&self, resource: &Resource) -> Option<String> {
        Some(
            resource
                .detail
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned(),
        )
    }

    fn recover_job<'a>(
        &'a self,
        resource: &'a Resource,
    ) -> PortFuture<'a, Result<Option<Job>, PaasError>> {
        Box::pin(async move {
            self.enter(Step::Recover, Self::job_id_of(resource)).await?;
            Ok(self.pushed_jobs.borrow().get(&resource.name).cloned())
        })
    }

    fn job_scope<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Option<String>, PaasError>> {
        Box::pin(async move { Ok(job.variable("TENANT").map(str::to_owned)) })
    }

    fn started_at_launch(&self) -> bool {
        self.service.get()
    }

    fn prepare_reuse<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move {
            self.enter(Step::Reuse, job.id).await?;
            if !self.world.inner.borrow().live.contains_key(&resource.name) {
                return Err(PaasError::transient(
                    "can-take-job",
                    "the helper does not answer",
                ));
            }
            Ok(resource.clone())
        })
    }

    fn dump_resource(&self, resource: &Resource) -> Value {
        json!({"app_id": resource.id, "name": resource.name, "weight": resource.weight,
               "launched": resource.launched, "job_id": Self::job_id_of(resource),
               "scope": resource.detail.get("scope")})
    }

    fn load_resource<'a>(
        &'a self,
        saved: &'a Value,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move {
            let field = |k: &str| saved.get(k).cloned().unwrap_or(Value::Null);
            // The Python runner 1.1's form: `id`, `gitlab_namespace` (the
            // tenant); the fake's names are its ids there.
            let id = field("app_id")
                .as_str()
                .or(field("id").as_str())
                .map(String::from);
            let name = field("name").as_str().map(String::from).or(id.clone());
            let (Some(id), Some(name)) = (id, name) else {
                return Err(PaasError::permanent(
                    "load",
                    "saved resource lacks app_id or name",
                ));
            };
            Ok(Resource {
                id,
                name,
                weight: field("weight").as_f64().unwrap_or(1.0),
                launched: field("launched").as_bool().unwrap_or(false),
                detail: Self::detail(
                    field("job_id").as_i64().unwrap_or(0),
                    field("scope")
                        .as_str()
                        .or(field("gitlab_namespace").as_str()),
                ),
                credential: None,
            })
        })
    }
}

/// A state store in memory. Every save goes through the JSON format. A
/// save may take time (scripted latencies, on tokio time): its content is
/// durable ([`MemoryStore::last`]) only once it completes.
#[derive(Default)]
pub struct MemoryStore {
    initial: RefCell<Option<Vec<u8>>>,
    last: RefCell<Option<Vec<u8>>>,
    saves: Cell<u64>,
    fail_saves: Cell<u32>,
    /// Latencies of the saves, used in turn (none: instant).
    latencies: RefCell<Vec<Duration>>,
    started: Cell<u64>,
    in_flight: Cell<u32>,
    max_in_flight: Cell<u32>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Rc<MemoryStore> {
        Rc::new(MemoryStore::default())
    }

    /// A store whose `load` returns `json`.
    pub fn with_initial(json: &[u8]) -> Rc<MemoryStore> {
        let s = MemoryStore::default();
        *s.initial.borrow_mut() = Some(json.to_vec());
        Rc::new(s)
    }

    /// The last snapshot saved.
    pub fn last(&self) -> Option<Snapshot> {
        self.last
            .borrow()
            .as_ref()
            .and_then(|b| Snapshot::from_json(b).ok())
    }

    /// The last snapshot saved, as JSON.
    pub fn last_json(&self) -> Option<Value> {
        self.last
            .borrow()
            .as_ref()
            .and_then(|b| serde_json::from_slice(b).ok())
    }

    /// Number of successful saves.
    pub fn saves(&self) -> u64 {
        self.saves.get()
    }

    /// Makes the next `n` saves fail.
    pub fn fail_next_saves(&self, n: u32) {
        self.fail_saves.set(n);
    }

    /// Makes every save take `latency` (as a file write and its fsyncs do).
    pub fn set_save_latency(&self, latency: Duration) {
        self.set_save_latencies(vec![latency]);
    }

    /// Save `i` (from 0) takes `latencies[i % len]` before it completes.
    pub fn set_save_latencies(&self, latencies: Vec<Duration>) {
        *self.latencies.borrow_mut() = latencies;
    }

    /// Largest number of saves that were in flight at once.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight.get()
    }

    fn next_latency(&self) -> Duration {
        let i = self.started.get();
        self.started.set(i + 1);
        let l = self.latencies.borrow();
        let len = l.len() as u64;
        if len == 0 {
            return Duration::ZERO;
        }
        usize::try_from(i % len)
            .ok()
            .and_then(|k| l.get(k).copied())
            .unwrap_or_default()
    }
}

/// A `Rc<MemoryStore>` usable as `Rc<dyn StateStore>` while the test keeps
/// its own handle.
#[derive(Clone)]
pub struct SharedMemoryStore(pub Rc<MemoryStore>);

impl StateStore for SharedMemoryStore {
    fn load(&self) -> PortFuture<'_, Result<Option<Snapshot>, StateError>> {
        let initial = self.0.initial.borrow().clone();
        Box::pin(async move {
            match initial {
                None => Ok(None),
                Some(b) => Snapshot::from_json(&b)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        path: "memory".into(),
                        detail: e.to_string(),
                    }),
            }
        })
    }

    fn save(&self, doc: StateDoc) -> PortFuture<'static, Result<(), StateError>> {
        let store = self.0.clone();
        Box::pin(async move {
            let latency = store.next_latency();
            store.in_flight.set(store.in_flight.get() + 1);
            store
                .max_in_flight
                .set(store.max_in_flight.get().max(store.in_flight.get()));
            lag(latency).await;
            store.in_flight.set(store.in_flight.get().saturating_sub(1));
            if store.fail_saves.get() > 0 {
                store.fail_saves.set(store.fail_saves.get() - 1);
                return Err(StateError::Write {
                    path: "memory".into(),
                    detail: "scripted failure".into(),
                });
            }
            *store.last.borrow_mut() = Some(doc.to_json());
            store.saves.set(store.saves.get() + 1);
            Ok(())
        })
    }

    fn location(&self) -> String {
        "memory".into()
    }
}

/// Log lines captured by [`capture_logger`].
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        match self.0.lock() {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => String::new(),
        }
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock() {
            Ok(mut b) => {
                b.extend_from_slice(buf);
                Ok(buf.len())
            }
            Err(_) => Err(io::Error::other("poisoned")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A logger writing plain lines (with all key-values) into a [`LogCapture`].
pub fn capture_logger() -> (slog::Logger, LogCapture) {
    let cap = LogCapture::default();
    let drain = PlainDrain(cap.clone());
    (slog::Logger::root(slog::Fuse(drain), slog::o!()), cap)
}

struct PlainDrain(LogCapture);

struct KvWriter(String);

impl slog::Serializer for KvWriter {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        self.0.push_str(&format!(" {key}={val}"));
        Ok(())
    }
}

impl slog::Drain for PlainDrain {
    type Ok = ();
    type Err = io::Error;
    fn log(&self, record: &slog::Record<'_>, values: &slog::OwnedKVList) -> io::Result<()> {
        use slog::KV;
        let mut kv = KvWriter(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let line = format!(
            "{} {}{}\n",
            record.level().as_short_str(),
            record.msg(),
            kv.0
        );
        let mut w = self.0.clone();
        io::Write::write_all(&mut w, line.as_bytes())
    }
}

/// A logger that drops everything.
pub fn null_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}
