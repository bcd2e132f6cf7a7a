//! GitLab / Heptapod coordinator client: implements
//! `paas_actors::ports::Coordinator` for one `[[runners]]` section, and
//! `executors::clever::GroupAttributes` with the attributes token.
//!
//! The coordinator API rules it follows: job tokens travel in the `JOB-TOKEN`
//! header (never in a URL), any 403 on a job-token call means the job is
//! over, trace offsets are bytes and resynchronise once on 416, every call
//! has connect and total timeouts.
//!
//! Code map: `client` (awc setup, timeouts, URL validation), `errors`
//! (status/transport → `CoordinatorError`), `jobs` (`/jobs/request`,
//! `GET /job`, `PUT /jobs/:id`), `trace` (trace PATCH and read),
//! `attributes` (group custom attributes), `give_back` (the runner's
//! running jobs, cancel and retry, with the trace-watch token), `jobs_api`
//! (one job's status through the Jobs API, with the trace-watch token, for
//! a job whose token is refused), `runners`
//! (register, verify,
//! unregister, `system_id`), `runner_ids` (this runner's id, remembered
//! beside the state file).

mod attributes;
mod client;
mod errors;
mod give_back;
mod jobs;
mod jobs_api;
mod reply;
mod runner_ids;
mod runners;
mod trace;

pub use client::{api_base, ClientConfigError, Timeouts, BODY_LIMIT, USER_AGENT};
pub use errors::{excerpt, EXCERPT_CHARS};
pub use give_back::parse_rfc3339;
pub use jobs::{scan_job_id, JobRequestOptions, EXTRA_FEATURES, REFERENCE_FEATURES};
pub use runner_ids::{learn_runner_id, runner_ids_path};
pub use runners::{
    load_or_create_system_id, system_id_path, RegisteredRunner, RunnersApi, VerifiedRunner,
    SYSTEM_ID_FILE,
};
pub use trace::range_end;

use crate::secret::Secret;
use client::Http;
use paas_actors::ports::{
    Coordinator, CoordinatorError, FailureReason, Job, JobApiStatus, JobOwner, JobStatus, PollKind,
    PortFuture, RunningJob, TraceAppend,
};
use std::cell::{Cell, RefCell};

/// Everything one coordinator client needs.
#[derive(Clone, Debug)]
pub struct CoordinatorSettings {
    /// Coordinator URL as configured (may carry a path prefix).
    pub url: String,
    /// Runner authentication token.
    pub token: Secret,
    /// Administrator token for reading job traces (`paas_job_trace_watch.token`).
    pub trace_watch_token: Option<Secret>,
    /// Token for group custom attributes (`cc_gitlab_namespace_attributes_token`).
    pub attributes_token: Option<Secret>,
    /// Runner manager id sent with job requests (see [`load_or_create_system_id`]).
    pub system_id: Option<String>,
    /// What `/jobs/request` sends.
    pub request: JobRequestOptions,
    /// Call timeouts.
    pub timeouts: Timeouts,
    /// Where to log (409s, late reports, unknown failure reasons).
    pub logger: Option<slog::Logger>,
    /// Where to count the requests (`api_requests_total{api="gitlab"}`).
    pub metrics: Option<paas_actors::metrics::ApiCounter>,
    /// `tls-ca-file`: CA certificates trusted besides the system's, for
    /// every call of this client (the trace watch's too).
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl CoordinatorSettings {
    /// Settings with defaults for everything but the URL and runner token.
    pub fn new(url: impl Into<String>, token: Secret) -> CoordinatorSettings {
        CoordinatorSettings {
            url: url.into(),
            token,
            trace_watch_token: None,
            attributes_token: None,
            system_id: None,
            request: JobRequestOptions::default(),
            timeouts: Timeouts::default(),
            logger: None,
            metrics: None,
            tls_ca_file: None,
        }
    }
}

/// The coordinator of one runner, over HTTP.
///
/// Not `Send` (awc): create it anywhere, use it on one actix arbiter.
#[derive(Debug)]
pub struct GitlabCoordinator {
    api: String,
    http: Http,
    token: Secret,
    trace_watch_token: Option<Secret>,
    attributes_token: Option<Secret>,
    system_id: Option<String>,
    request: JobRequestOptions,
    /// Last non-empty `X-GitLab-Last-Update`, sent by long polls.
    last_update: RefCell<Option<String>>,
    /// This runner's id at the coordinator, once known.
    runner_id: Cell<Option<i64>>,
    log: slog::Logger,
}

impl GitlabCoordinator {
    /// A client for these settings (the URL is validated here).
    pub fn new(settings: CoordinatorSettings) -> Result<GitlabCoordinator, ClientConfigError> {
        let api = api_base(&settings.url)?;
        Ok(GitlabCoordinator {
            api,
            http: Http::new(settings.timeouts)
                .with_metrics(settings.metrics)
                .with_ca_file(settings.tls_ca_file),
            token: settings.token,
            trace_watch_token: settings.trace_watch_token,
            attributes_token: settings.attributes_token,
            system_id: settings.system_id,
            request: settings.request,
            last_update: RefCell::new(None),
            runner_id: Cell::new(None),
            log: settings
                .logger
                .unwrap_or_else(|| slog::Logger::root(slog::Discard, slog::o!())),
        })
    }

    /// The API base URL (`…/api/v4`).
    pub fn api_url(&self) -> &str {
        &self.api
    }

    /// Sets this runner's id (from registration or verify), which proves
    /// a job found on the PAAS is this runner's.
    pub fn set_runner_id(&self, id: Option<i64>) {
        self.runner_id.set(id);
    }

    /// The queue version remembered for long polls, if any.
    pub fn last_update(&self) -> Option<String> {
        self.last_update.borrow().clone()
    }

    /// `POST /runners/verify` with this client's token and system id.
    pub async fn verify(&self) -> Result<VerifiedRunner, CoordinatorError> {
        RunnersApi::from_parts(self.api.clone(), self.http.timeouts)
            .with_ca_file(self.http.ca_file.clone())
            .verify(&self.token, self.system_id.as_deref())
            .await
    }

    /// The secrets this client knows, for scrubbing error excerpts.
    fn secrets<'a>(&'a self, job: Option<&'a Job>) -> Vec<&'a str> {
        let mut s = vec![self.token.expose()];
        if let Some(t) = &self.trace_watch_token {
            s.push(t.expose());
        }
        if let Some(t) = &self.attributes_token {
            s.push(t.expose());
        }
        if let Some(j) = job {
            s.push(j.token.expose());
        }
        s
    }
}

impl Coordinator for GitlabCoordinator {
    fn request_job(&self, kind: PollKind) -> PortFuture<'_, Result<Option<Job>, CoordinatorError>> {
        Box::pin(self.request_job_impl(kind))
    }

    fn job_status<'a>(
        &'a self,
        job: &'a Job,
    ) -> PortFuture<'a, Result<JobStatus, CoordinatorError>> {
        Box::pin(self.job_status_impl(job))
    }

    fn job_owner<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<JobOwner, CoordinatorError>> {
        Box::pin(self.job_owner_impl(job))
    }

    fn runner_id(&self) -> Option<i64> {
        self.runner_id.get()
    }

    fn append_trace<'a>(
        &'a self,
        job: &'a Job,
        offset: u64,
        text: &'a str,
    ) -> PortFuture<'a, Result<TraceAppend, CoordinatorError>> {
        Box::pin(self.append_trace_impl(job, offset, text))
    }

    fn report_failed<'a>(
        &'a self,
        job: &'a Job,
        reason: FailureReason,
        exit_code: i32,
    ) -> PortFuture<'a, Result<(), CoordinatorError>> {
        Box::pin(self.report_failed_impl(job, reason, exit_code))
    }

    fn trace_len<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<u64, CoordinatorError>> {
        Box::pin(self.trace_len_impl(job))
    }

    fn running_jobs(&self) -> PortFuture<'_, Result<Option<Vec<RunningJob>>, CoordinatorError>> {
        Box::pin(self.running_jobs_impl())
    }

    fn give_back<'a>(
        &'a self,
        job: &'a RunningJob,
    ) -> PortFuture<'a, Result<Option<i64>, CoordinatorError>> {
        Box::pin(self.give_back_impl(job))
    }

    fn job_api_status<'a>(
        &'a self,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Option<JobApiStatus>, CoordinatorError>> {
        Box::pin(self.job_api_status_impl(job))
    }
}
