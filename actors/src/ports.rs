//! Ports: the traits through which the actors reach the outside world.
//!
//! [`Coordinator`] is one GitLab / Heptapod coordinator as seen by one
//! `[[runners]]` section; [`Paas`] is the executor (Clever Cloud, local
//! Docker) of that section. Adapters in the root crate implement them over
//! HTTP, git2 and Docker; `testing` implements them in memory.
//!
//! Ports are async without a `Send` bound: every actor lives on one actix
//! arbiter (one thread) and awc futures are `!Send`. Actors hold them as
//! `Rc<dyn Coordinator>` / `Rc<dyn Paas>`.
//!
//! Architecture invariant: nothing in this module does I/O; these are the
//! domain types the ports exchange plus small pure helpers on them.

use crate::secret::Secret;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed, non-`Send` future returned by port methods.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A job or resource weight: flavor RAM in GiB raised to the power 1.25.
pub type Weight = f64;

/// Weight of a flavor with `mem_mib` MiB of RAM: `(mem / 1024) ^ 1.25`.
pub fn weight_of_mem_mib(mem_mib: u64) -> Weight {
    (mem_mib as f64 / 1024.0).powf(1.25)
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

/// A job acquired from a coordinator (the 201 answer of `POST /jobs/request`).
///
/// Only the fields the runner reads are typed; `payload` keeps the whole JSON
/// value, untouched, because it becomes the inner runner's `job.json`.
#[derive(Clone, PartialEq)]
pub struct Job {
    /// The job id (`id`).
    pub id: i64,
    /// The job token (`token`): authenticates job-token calls.
    pub token: Secret,
    /// `job_info.project_id`, needed to read the job trace.
    pub project_id: Option<i64>,
    /// The complete payload as the coordinator sent it (key order kept).
    pub payload: Arc<serde_json::Value>,
}

/// Leaves the payload out: it holds the job token and the CI variables.
impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("token", &self.token)
            .field("project_id", &self.project_id)
            .field("payload", &"[not shown]")
            .finish()
    }
}

/// Why a job payload could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobPayloadError {
    /// The payload is not a JSON object.
    #[error("job payload is not a JSON object")]
    NotAnObject,
    /// A required field is missing or has the wrong type.
    #[error("job payload field `{0}` is missing or has the wrong type")]
    BadField(&'static str),
}

impl Job {
    /// Reads the typed fields out of a job payload, keeping the payload whole.
    pub fn from_payload(payload: serde_json::Value) -> Result<Job, JobPayloadError> {
        let obj = payload.as_object().ok_or(JobPayloadError::NotAnObject)?;
        let id = obj
            .get("id")
            .and_then(|v| v.as_i64())
            .ok_or(JobPayloadError::BadField("id"))?;
        let token = obj
            .get("token")
            .and_then(|v| v.as_str())
            .ok_or(JobPayloadError::BadField("token"))?;
        Ok(Job::from_handle(id, Secret::new(token), Arc::new(payload)))
    }

    /// A job rebuilt from what the state file keeps of it: its id, token
    /// and payload (`Null` when the file keeps none, as for `launched` and
    /// `to_decommission` handles).
    pub(crate) fn from_handle(id: i64, token: Secret, payload: Arc<serde_json::Value>) -> Job {
        let project_id = payload
            .get("job_info")
            .and_then(|i| i.get("project_id"))
            .and_then(|v| v.as_i64());
        Job {
            id,
            token,
            project_id,
            payload,
        }
    }

    /// The value of a job variable, *first* match wins (the reference's
    /// `get_job_variable`, used for the flavor and the root namespace).
    pub fn variable(&self, key: &str) -> Option<&str> {
        self.payload
            .get("variables")?
            .as_array()?
            .iter()
            .find(|v| v.get("key").and_then(|k| k.as_str()) == Some(key))?
            .get("value")?
            .as_str()
    }
}

/// Whether a launched job is still executing at the coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// `running` or `canceling`.
    Running,
    /// Terminal.
    Finished,
    /// GitLab itself (a JSON answer or a `Job-Status` header, not a
    /// proxy's page) refused the job token (401/403): the job no longer
    /// executes. The supervisor reads it as finished, except in a burst
    /// (`actors/src/supervisor/progress.rs`).
    TokenRefused,
}

/// `GET /job` read for ownership: what the coordinator says of the job a
/// job token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobOwner {
    /// Whether the job still executes.
    pub status: JobStatus,
    /// The job entity's `id` (the job the token belongs to), when given.
    pub job_id: Option<i64>,
    /// The entity's `runner.id` (the runner that picked the job), when given.
    pub runner_id: Option<i64>,
    /// Whether the entity's `runner_manager.system_id` (the host that
    /// picked the job, GitLab 16 and later) is this process's system id;
    /// `None` when the answer names no runner manager, or this process
    /// sends no system id.
    pub same_manager: Option<bool>,
}

/// A job the coordinator shows running for this runner, read with the
/// trace-watch (administrator) token (`GET /runners/:id/jobs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningJob {
    /// The job id.
    pub id: i64,
    /// Its project's id (the cancel and retry calls are under it).
    pub project_id: i64,
    /// How long ago the coordinator says it started (`started_at`, else
    /// `created_at`), when it says so.
    pub age: Option<Duration>,
}

/// What GitLab's Jobs API (`GET /projects/:id/jobs/:job_id`, read with the
/// trace-watch token) says of a job whose token the coordinator refused.
/// The status is one of GitLab's job statuses, as a fixed name (never the
/// answer's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobApiStatus {
    /// Not executing any more: `success`, `failed`, `canceled`, `skipped`.
    Over(&'static str),
    /// Executing or yet to: `running`, `canceling`, `pending`, `created`,
    /// `preparing`, `waiting_for_resource`, `manual`, `scheduled`.
    Executing(&'static str),
}

impl JobApiStatus {
    /// Reads a job status of the Jobs API; `None` for a status GitLab does
    /// not document (nothing learnt).
    pub fn parse(status: &str) -> Option<JobApiStatus> {
        const OVER: [&str; 4] = ["success", "failed", "canceled", "skipped"];
        const EXECUTING: [&str; 8] = [
            "running",
            "canceling",
            "pending",
            "created",
            "preparing",
            "waiting_for_resource",
            "manual",
            "scheduled",
        ];
        if let Some(s) = OVER.iter().find(|s| **s == status) {
            return Some(JobApiStatus::Over(s));
        }
        EXECUTING
            .iter()
            .find(|s| **s == status)
            .map(|s| JobApiStatus::Executing(s))
    }

    /// The status name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobApiStatus::Over(s) | JobApiStatus::Executing(s) => s,
        }
    }
}

/// Outcome of appending to a job trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceAppend {
    /// Appended; the trace is now `new_offset` bytes long.
    Appended {
        /// Byte length of the trace after the append.
        new_offset: u64,
    },
    /// The job no longer accepts updates (any 403): it is over.
    JobOver,
}

/// A failure reason for `PUT /jobs/:id` (the subset a runner sensibly sends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// What the reference sends for launch failures (no misleading banner).
    ScriptFailure,
    /// Infrastructure failure on the runner side.
    RunnerSystemFailure,
    /// Job took too long.
    JobExecutionTimeout,
    /// Nothing better known.
    UnknownFailure,
}

impl FailureReason {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ScriptFailure => "script_failure",
            FailureReason::RunnerSystemFailure => "runner_system_failure",
            FailureReason::JobExecutionTimeout => "job_execution_timeout",
            FailureReason::UnknownFailure => "unknown_failure",
        }
    }
}

/// Exit code reported with launch failures, as the reference does.
pub const LAUNCH_FAILURE_EXIT_CODE: i32 = 103;

/// What went wrong talking to a coordinator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoordinatorError {
    /// Transient: 429, 5xx, connection errors, timeouts. Retry with back-off.
    #[error("coordinator unavailable: {detail}")]
    Unavailable {
        /// Human-readable cause (status, URL without query); never a secret.
        detail: String,
        /// Server-suggested delay (`Retry-After`), if any.
        retry_after: Option<Duration>,
    },
    /// The coordinator refuses this runner (403/422 on a runner-token call):
    /// permanent until an administrator acts. Back off for long.
    #[error("coordinator rejected the runner: {detail}")]
    Rejected {
        /// Human-readable cause; never a secret.
        detail: String,
    },
    /// Any other unexpected answer (bad status, malformed body).
    #[error("unexpected coordinator answer: {detail}")]
    Unexpected {
        /// Human-readable cause with a bounded body excerpt; never a secret.
        detail: String,
    },
}

impl CoordinatorError {
    /// True for errors worth retrying soon.
    pub fn is_transient(&self) -> bool {
        matches!(self, CoordinatorError::Unavailable { .. })
    }
}

/// How a job request may wait at the coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollKind {
    /// Answered at once: the request carries no queue version.
    Short,
    /// Long polling: the request carries the queue version the coordinator
    /// last announced, and a coordinator behind GitLab Workhorse holds it
    /// until that runner's queue changes or its window ends.
    Long,
}

impl PollKind {
    /// The kind's name, for logs and the state dump.
    pub fn as_str(self) -> &'static str {
        match self {
            PollKind::Short => "short",
            PollKind::Long => "long",
        }
    }
}

/// One coordinator, as seen by one `[[runners]]` section.
pub trait Coordinator {
    /// `POST /jobs/request`: `Ok(None)` when there is no job to run now
    /// (204, 409). The returned job is assigned server-side: it must be
    /// persisted before any other side effect. A [`PollKind::Long`] request
    /// may be held by the coordinator (up to its long-poll window) and
    /// answers as soon as a job may be there.
    fn request_job(&self, kind: PollKind) -> PortFuture<'_, Result<Option<Job>, CoordinatorError>>;

    /// `GET /job` with the job token: is the job still executing?
    fn job_status<'a>(
        &'a self,
        job: &'a Job,
    ) -> PortFuture<'a, Result<JobStatus, CoordinatorError>>;

    /// `GET /job` with the job token, read for ownership (job id and
    /// `runner.id` of the answer); 401/403 read as finished, like
    /// [`Coordinator::job_status`].
    fn job_owner<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<JobOwner, CoordinatorError>>;

    /// This runner's id at the coordinator (from registration or
    /// `POST /runners/verify`), when known.
    fn runner_id(&self) -> Option<i64>;

    /// `PATCH /jobs/:id/trace` at byte `offset`, resynchronising once on 416.
    fn append_trace<'a>(
        &'a self,
        job: &'a Job,
        offset: u64,
        text: &'a str,
    ) -> PortFuture<'a, Result<TraceAppend, CoordinatorError>>;

    /// `PUT /jobs/:id` with state `failed`. A 403 (job already over) is `Ok`.
    fn report_failed<'a>(
        &'a self,
        job: &'a Job,
        reason: FailureReason,
        exit_code: i32,
    ) -> PortFuture<'a, Result<(), CoordinatorError>>;

    /// Byte length of the job trace, read with the trace-watch (admin) token.
    /// "Nothing yet" answers (404, 429, 5xx) read as `Ok(0)`.
    fn trace_len<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<u64, CoordinatorError>>;

    /// The jobs the coordinator shows running for this runner (and this
    /// runner manager, when the coordinator tells them apart), read with
    /// the trace-watch (admin) token; `Ok(None)` when there is no such
    /// token or this runner's id is unknown: nothing can be listed.
    fn running_jobs(&self) -> PortFuture<'_, Result<Option<Vec<RunningJob>>, CoordinatorError>> {
        Box::pin(async { Ok(None) })
    }

    /// What the Jobs API says of a job whose token was refused, read with
    /// the trace-watch (administrator) token: `Ok(None)` when nothing can
    /// be learnt (no such token, no project id, the answer is about
    /// another job or names no documented status), the default.
    fn job_api_status<'a>(
        &'a self,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Option<JobApiStatus>, CoordinatorError>> {
        let _ = job;
        Box::pin(async { Ok(None) })
    }

    /// Gives a job back to the coordinator: cancels it, then retries it
    /// (admin token); `Ok` holds the new job's id when the coordinator
    /// gave one.
    fn give_back<'a>(
        &'a self,
        job: &'a RunningJob,
    ) -> PortFuture<'a, Result<Option<i64>, CoordinatorError>> {
        Box::pin(async move {
            Err(CoordinatorError::Unexpected {
                detail: format!("job {}: giving back is not supported here", job.id),
            })
        })
    }
}

// ---------------------------------------------------------------------------
// PAAS resources
// ---------------------------------------------------------------------------

/// A PAAS resource (Clever application, local Docker image + container)
/// created for one job.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// PAAS identifier (Clever `app_…` id; image name for local-docker).
    pub id: String,
    /// Deterministic name `hpd-job-<runner unique name>-<job id>`.
    pub name: String,
    /// Actual weight of the resource.
    pub weight: Weight,
    /// True once the build context has been pushed / the container started.
    pub launched: bool,
    /// Executor-specific details (tenant namespace, deploy URL, …); opaque
    /// to the actors, never holds a secret.
    pub detail: serde_json::Value,
    /// The credential a service running in the resource accepts (the
    /// helper service's bearer token), made by the executor at create time
    /// and kept in the state file; `None` for resources without a service.
    pub credential: Option<Secret>,
}

/// What a reconciliation listing found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listing {
    /// The resources of this runner in the scopes listed.
    pub resources: Vec<Resource>,
    /// The scopes that could not be listed (their resources are neither
    /// listed nor to be judged missing).
    pub skipped: Vec<String>,
    /// The tenants (top-level groups) whose scope cannot be found for a
    /// reason that needs someone to act (attributes removed, group renamed
    /// or transferred, access refused); tried again at every pass.
    pub unresolved: Vec<String>,
}

/// How a PAAS error should be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaasErrorClass {
    /// Worth retrying (connection errors, 429, 502–504).
    Transient,
    /// Will not get better by retrying (user error, auth, validation).
    Permanent,
    /// The call may have taken effect although it failed (lost create
    /// response): reconcile by resource name before creating again.
    Uncertain,
}

/// A failure of the PAAS executor, fit for the job trace.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{action}: {message}")]
pub struct PaasError {
    /// What was attempted (`check-flavor`, `create-app`, `put-env`,
    /// `wait-deployability`, `push`, `delete`, `find-orga`, …).
    pub action: String,
    /// Explanation for an operator and a job author; never a secret.
    pub message: String,
    /// Retry policy.
    pub class: PaasErrorClass,
}

impl PaasError {
    /// A permanent error.
    pub fn permanent(action: impl Into<String>, message: impl Into<String>) -> Self {
        PaasError {
            action: action.into(),
            message: message.into(),
            class: PaasErrorClass::Permanent,
        }
    }

    /// A transient error.
    pub fn transient(action: impl Into<String>, message: impl Into<String>) -> Self {
        PaasError {
            action: action.into(),
            message: message.into(),
            class: PaasErrorClass::Transient,
        }
    }

    /// True for errors worth retrying.
    pub fn is_transient(&self) -> bool {
        self.class == PaasErrorClass::Transient
    }
}

/// The PAAS executor of one `[[runners]]` section.
///
/// Provisioning is split in steps so that the supervisor can record the
/// resource between them (write-ahead): `create` is the only call that makes
/// something exist; once it returns, the resource is recorded before
/// `prepare` and `launch` run.
pub trait Paas {
    /// The max job weight: weight of the largest job this runner may
    /// acquire. The supervisor reserves it before polling.
    fn max_job_weight(&self) -> PortFuture<'_, Result<Weight, PaasError>>;

    /// Weight the job's resource will have (from its flavor variable). A
    /// user error (unknown flavor, above the maximum) is a permanent error
    /// whose message lists the allowed values.
    fn expected_weight<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Weight, PaasError>>;

    /// Deterministic resource name of a job: `hpd-job-<unique>-<job_id>`.
    fn resource_name(&self, job_id: i64) -> String;

    /// Creates the resource (never retried blindly). On success the
    /// resource exists and must be recorded before anything else.
    fn create<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Resource, PaasError>>;

    /// Makes a created resource ready to launch (environment, deployment
    /// repository readiness, image build…).
    fn prepare<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>>;

    /// Waits until a prepared resource can take its job (a helper service
    /// answering that it can), within the executor's own bound; an error
    /// fails the launch. It only reads: the launcher drops the wait on a
    /// drain or the job's cancellation, and a resumed job prepares and
    /// waits again. The default: ready at once.
    fn wait_ready<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<(), PaasError>> {
        let _ = (resource, job);
        Box::pin(async { Ok(()) })
    }

    /// Launches the job on the resource (git push, container start). A
    /// resource found already launched (after a restart) is success.
    fn launch<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>>;

    /// Deletes the resource. A resource already gone is success.
    fn decommission<'a>(&'a self, resource: &'a Resource) -> PortFuture<'a, Result<(), PaasError>>;

    /// Resources of this runner that exist on the PAAS now (names carrying
    /// this runner's prefix), for reconciliation.
    fn list_resources(&self) -> PortFuture<'_, Result<Vec<Resource>, PaasError>>;

    /// The resource of `job` named `name`, if it exists now: the look-up
    /// after a create that may have taken effect (a lost answer, a create
    /// sent by a previous process). Only the resources `job`'s could be
    /// among need to be looked at (for clever-docker in multi-tenant mode,
    /// the organisation of the job's group), so that another tenant's
    /// trouble never fails this job. The default looks through
    /// [`Paas::list_resources`], by name or by id (an executor whose ids
    /// are names lists a resource created under an older identity of the
    /// runner with today's name and the old one as id).
    fn find_resource<'a>(
        &'a self,
        job: &'a Job,
        name: &'a str,
    ) -> PortFuture<'a, Result<Option<Resource>, PaasError>> {
        let _ = job;
        Box::pin(async move {
            let list = self.list_resources().await?;
            Ok(list.into_iter().find(|r| r.name == name || r.id == name))
        })
    }

    /// The listing of reconciliation: like [`Paas::list_resources`], but a
    /// scope (a Clever organisation) that cannot be listed is skipped and
    /// named in [`Listing::skipped`] instead of failing the whole listing.
    /// The default lists everything or fails.
    fn list_resources_by_scope(&self) -> PortFuture<'_, Result<Listing, PaasError>> {
        Box::pin(async move {
            Ok(Listing {
                resources: self.list_resources().await?,
                ..Listing::default()
            })
        })
    }

    /// The scope a resource belongs to (its Clever organisation), matched
    /// against [`Listing::skipped`]. The default: none.
    fn resource_scope(&self, resource: &Resource) -> Option<String> {
        let _ = resource;
        None
    }

    /// The flavor of a resource (a name from the executor's fixed list), the
    /// `flavor` label of its bill (`resource_seconds_total`). The default:
    /// none (an empty label).
    fn resource_flavor(&self, resource: &Resource) -> Option<String> {
        let _ = resource;
        None
    }

    /// The tenant (Clever organisation id) a new resource for `job` would be
    /// created in, resolved as `create` resolves it; compared with
    /// [`Paas::resource_scope`] to reuse a standby resource. `None` (the
    /// default) never matches anything: the job gets a new resource.
    fn job_scope<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Option<String>, PaasError>> {
        let _ = job;
        Box::pin(async { Ok(None) })
    }

    /// True when a successful [`Paas::launch`] means that the job has
    /// started (a helper service accepted it): no trace watch follows.
    fn started_at_launch(&self) -> bool {
        false
    }

    /// Makes a standby resource, which ran an earlier job, ready for `job`
    /// (its service answers that it can take a job), within a short bound.
    /// Any error sends the resource to decommissioning and the job to a new
    /// resource. The default: not reusable.
    fn prepare_reuse<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        let _ = (resource, job);
        Box::pin(async {
            Err(PaasError::permanent(
                "reuse",
                "this executor does not reuse resources",
            ))
        })
    }

    /// Reads back the job a resource was launched for (the payload the
    /// runner pushed to it), for reconciliation of a resource the state
    /// does not know: with its token, the job can be asked about at the
    /// coordinator. `Ok(None)` when the resource holds no readable job
    /// (not launched) or the executor cannot read it back; the default.
    fn recover_job<'a>(
        &'a self,
        resource: &'a Resource,
    ) -> PortFuture<'a, Result<Option<Job>, PaasError>> {
        let _ = resource;
        Box::pin(async { Ok(None) })
    }

    /// The state-file form of a resource (the reference's `paas_resource`).
    fn dump_resource(&self, resource: &Resource) -> serde_json::Value;

    /// Reads a resource back from its state-file form, re-resolving
    /// credentials from the configuration.
    fn load_resource<'a>(
        &'a self,
        saved: &'a serde_json::Value,
    ) -> PortFuture<'a, Result<Resource, PaasError>>;
}

/// A weight as logged: a number rounded to two decimals (`33.6` for
/// 33.6012), in every log format (JSON: a number, not a string). Its
/// `Display` (status lines, tables) keeps both decimals: `33.60`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TwoDecimals(pub Weight);

impl TwoDecimals {
    /// The weight rounded to two decimals.
    pub fn rounded(self) -> f64 {
        (self.0 * 100.0).round() / 100.0
    }
}

/// A duration as logged: seconds, a number rounded to the millisecond
/// (keys end in `_s`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seconds(pub std::time::Duration);

impl slog::Value for Seconds {
    fn serialize(
        &self,
        _record: &slog::Record<'_>,
        key: slog::Key,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        serializer.emit_f64(key, (self.0.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

impl std::fmt::Display for TwoDecimals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl slog::Value for TwoDecimals {
    fn serialize(
        &self,
        _record: &slog::Record<'_>,
        key: slog::Key,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        serializer.emit_f64(key, self.rounded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn weights_follow_the_reference_formula() {
        let table = [(1024, 1.0), (2048, 2.378), (4096, 5.657), (32768, 76.109)];
        for (mem, expected) in table {
            let w = weight_of_mem_mib(mem);
            assert!((w - expected).abs() < 1e-3, "mem {mem}: {w} != {expected}");
        }
    }

    #[test]
    fn job_from_payload_reads_typed_fields_and_keeps_the_rest() {
        let payload = json!({"id": 42, "token": "jt", "job_info": {"project_id": 7},
                             "zz_unknown": [1, 2], "variables": [
                                {"key": "A", "value": "first"}, {"key": "A", "value": "second"}]});
        let job = Job::from_payload(payload.clone()).expect("valid payload");
        assert_eq!(job.id, 42);
        assert_eq!(job.token.expose(), "jt");
        assert_eq!(job.project_id, Some(7));
        assert_eq!(*job.payload, payload);
        assert_eq!(job.variable("A"), Some("first"));
        assert_eq!(job.variable("B"), None);
    }

    #[test]
    fn job_api_statuses_are_over_executing_or_unknown() {
        for s in ["success", "failed", "canceled", "skipped"] {
            assert_eq!(JobApiStatus::parse(s), Some(JobApiStatus::Over(s)));
        }
        for s in ["running", "canceling", "pending", "created", "manual"] {
            assert_eq!(JobApiStatus::parse(s), Some(JobApiStatus::Executing(s)));
        }
        for s in ["", "Success", "finished", "success "] {
            assert_eq!(JobApiStatus::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn job_from_payload_names_the_bad_field() {
        let cases = [
            (json!([]), JobPayloadError::NotAnObject),
            (json!({"token": "t"}), JobPayloadError::BadField("id")),
            (
                json!({"id": "x", "token": "t"}),
                JobPayloadError::BadField("id"),
            ),
            (json!({"id": 1}), JobPayloadError::BadField("token")),
        ];
        for (payload, expected) in cases {
            assert_eq!(Job::from_payload(payload), Err(expected));
        }
    }
}
