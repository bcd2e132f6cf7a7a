//! Control of the fake coordinator: the in-process API
//! ([`CoordinatorControl`], cloneable, usable from any thread) and the same
//! operations over HTTP under `/__sim/` (JSON) for the CLI, the demo and
//! other processes.
//!
//! HTTP control routes (never subject to faults):
//! - `POST /__sim/jobs` (body: a [`JobSpec`]) → `{"id": …}`
//! - `GET /__sim/jobs` → list of [`JobView`]; `GET /__sim/jobs/{id}` → one
//!   (`404` if unknown); `GET /__sim/jobs/{id}/trace` → raw trace bytes
//! - `POST /__sim/jobs/{id}/cancel`; `POST /__sim/jobs/{id}/status` `{"status": …}`
//! - `POST /__sim/jobs/{id}/trace` (body: bytes appended as the inner runner would)
//! - `GET /__sim/stats` → [`Stats`]; `GET /__sim/requests` → recorded requests
//! - `POST /__sim/faults` → see [`FaultRequest`]
//! - `POST /__sim/runners` `{"token", "paused"}`; `POST /__sim/registration_tokens`
//!   `{"token", "style"}`; `POST /__sim/admin_tokens` `{"token", "admin"}`;
//!   `POST /__sim/groups` `{"path", "attributes": {k: v}}`;
//!   `GET|POST /__sim/settings` (a [`Settings`] object).

// An early answer is the natural error of these helpers; boxing every
// response of a test server buys nothing.
#![allow(clippy::result_large_err)]

use super::faults::{Endpoint, Fault, FaultAction};
use super::jobs::{JobSpec, JobState};
use super::responses::{builder, message};
use super::state::{
    AppendOutcome, JobView, RecordedRequest, RunnerView, Settings, Shared, Stats, TokenStyle,
};
use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// In-process control of a running fake coordinator. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CoordinatorControl {
    pub(crate) shared: Arc<Shared>,
}

impl CoordinatorControl {
    /// Enqueues a job; returns its id.
    pub fn enqueue_job(&self, spec: JobSpec) -> i64 {
        self.shared.with(|st| st.enqueue(spec))
    }

    /// Cancels a job (pending or executing). False if unknown or over.
    pub fn cancel_job(&self, id: i64) -> bool {
        self.shared.with(|st| st.cancel(id))
    }

    /// While `on`, a job request that takes a job never answers: the job is
    /// handed out (running, this runner's) and the runner never hears of
    /// it, as when the runner dies at the moment GitLab answers.
    pub fn hold_job_answers(&self, on: bool) {
        self.shared.with(|st| st.hold_job_answers = on);
    }

    /// Job answers held so far (see [`CoordinatorControl::hold_job_answers`]).
    pub fn job_answers_held(&self) -> u64 {
        self.shared.with(|st| st.job_answers_held)
    }

    /// Forces a job's status (finish, fail, move to `canceling`).
    pub fn set_job_status(&self, id: i64, status: JobState) -> bool {
        self.shared.with(|st| st.force_status(id, status))
    }

    /// Snapshot of one job.
    pub fn job(&self, id: i64) -> Option<JobView> {
        self.shared.lock().jobs.get(&id).map(|j| j.view())
    }

    /// Snapshots of every job, by id.
    pub fn jobs(&self) -> Vec<JobView> {
        self.shared.lock().jobs.values().map(|j| j.view()).collect()
    }

    /// Current status of a job.
    pub fn job_status(&self, id: i64) -> Option<JobState> {
        self.shared.lock().jobs.get(&id).map(|j| j.status)
    }

    /// Statuses a job went through.
    pub fn job_history(&self, id: i64) -> Option<Vec<JobState>> {
        self.shared.lock().jobs.get(&id).map(|j| j.history.clone())
    }

    /// Trace bytes of a job.
    pub fn job_trace(&self, id: i64) -> Option<Vec<u8>> {
        self.shared.lock().jobs.get(&id).map(|j| j.trace.clone())
    }

    /// Failure reason of a job.
    pub fn job_failure_reason(&self, id: i64) -> Option<String> {
        self.shared
            .lock()
            .jobs
            .get(&id)
            .and_then(|j| j.failure_reason.clone())
    }

    /// Exit code of a job.
    pub fn job_exit_code(&self, id: i64) -> Option<i64> {
        self.shared.lock().jobs.get(&id).and_then(|j| j.exit_code)
    }

    /// Appends to a job trace exactly as a PATCH at the current end would
    /// (the "inner runner writes N bytes" hook). Returns the new length, or
    /// `None` if the job is unknown or hit the size limit.
    pub fn write_trace(&self, id: i64, bytes: &[u8]) -> Option<u64> {
        self.shared.with(|st| {
            let len = st.jobs.get(&id)?.trace.len();
            let start = i64::try_from(len).ok()?;
            match st.append_trace(id, start, bytes) {
                AppendOutcome::Appended(n) => Some(n),
                AppendOutcome::Mismatch(_) | AppendOutcome::TooLarge => None,
            }
        })
    }

    /// Every recorded request (oldest first, bounded by `JOURNAL_LIMIT`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().journal.iter().cloned().collect()
    }

    /// Recorded requests to one endpoint.
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .journal
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .cloned()
            .collect()
    }

    /// Number of requests an endpoint received.
    pub fn count(&self, endpoint: Endpoint) -> u64 {
        self.shared
            .lock()
            .counts
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Requests per endpoint, jobs per status.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats()
    }

    /// Adds (or updates) a runner with this authentication token; returns its id.
    pub fn add_runner_token(&self, token: &str) -> i64 {
        self.shared.with(|st| st.add_runner(token, false))
    }

    /// Adds (or updates) a runner, paused or not; returns its id.
    pub fn add_runner(&self, token: &str, paused: bool) -> i64 {
        self.shared.with(|st| st.add_runner(token, paused))
    }

    /// Pauses or resumes a runner. False if unknown.
    pub fn set_runner_paused(&self, token: &str, paused: bool) -> bool {
        self.shared.with(|st| match st.runner_mut(token) {
            Some(r) => {
                r.paused = paused;
                true
            }
            None => false,
        })
    }

    /// Deletes the runner of this token, as an administrator would in the
    /// UI: the token is refused from then on. False if unknown.
    pub fn revoke_runner(&self, token: &str) -> bool {
        self.shared.with(|st| {
            let before = st.runners.len();
            st.runners.retain(|r| r.token != token);
            st.runners.len() != before
        })
    }

    /// Known runners.
    pub fn runners(&self) -> Vec<RunnerView> {
        self.shared.lock().runners.clone()
    }

    /// Adds a registration token; runners it registers get `style` tokens.
    pub fn add_registration_token(&self, token: &str, style: TokenStyle) {
        self.shared.with(|st| {
            st.registration_tokens.insert(token.to_owned(), style);
        });
    }

    /// Adds an administrator personal access token.
    pub fn add_admin_token(&self, token: &str) {
        self.shared.with(|st| {
            st.admin_tokens.insert(token.to_owned());
        });
    }

    /// Revokes a personal access token (administrator's or not): every
    /// call made with it answers 401 from now on, trace reads included.
    pub fn revoke_token(&self, token: &str) {
        self.shared.with(|st| {
            st.admin_tokens.remove(token);
            st.user_tokens.remove(token);
        });
    }

    /// Adds a valid personal access token of a non-administrator (→ 403).
    pub fn add_user_token(&self, token: &str) {
        self.shared.with(|st| {
            st.user_tokens.insert(token.to_owned());
        });
    }

    /// Creates or replaces a group and its custom attributes; returns its id.
    pub fn set_group_attributes(&self, path: &str, attributes: &[(&str, &str)]) -> i64 {
        let attrs = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.shared.with(|st| st.set_group(path, attrs))
    }

    /// Sets the `path_with_namespace` of project `id` (a transfer: the jobs
    /// already queued keep their payloads).
    pub fn set_project(&self, id: i64, path_with_namespace: &str) {
        self.shared.with(|st| {
            st.projects.insert(id, path_with_namespace.to_owned());
        });
    }

    /// Queues a fault rule for an endpoint.
    pub fn inject_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.shared.with(|st| st.faults.push(endpoint, fault));
    }

    /// Sets (or clears) the latency added to an endpoint.
    pub fn set_latency(&self, endpoint: Endpoint, latency: Option<Duration>) {
        self.shared
            .with(|st| st.faults.set_latency(endpoint, latency));
    }

    /// Down switch: every `/api/v4` call answers 502 with an HTML page.
    pub fn set_down(&self, down: bool) {
        self.shared.with(|st| st.faults.down = down);
    }

    /// Migration back-off: runner-API calls answer 429 + `Retry-After: 60`.
    pub fn set_migration_backoff(&self, on: bool) {
        self.shared.with(|st| st.faults.migration_backoff = on);
    }

    /// Removes every fault rule, latency and switch.
    pub fn clear_faults(&self) {
        self.shared.with(|st| st.faults.clear());
    }

    /// Current behaviour settings.
    pub fn settings(&self) -> Settings {
        self.shared.lock().settings.clone()
    }

    /// Changes behaviour settings.
    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        self.shared.with(|st| f(&mut st.settings));
    }
}

/// Body of `POST /__sim/faults`. Fields combine: `clear` first, then the
/// switches, then `latency_ms`, then a rule if `status` or `hang` is given.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRequest {
    /// Endpoint the rule and latency apply to.
    pub endpoint: Option<Endpoint>,
    /// How many calls the rule applies to (default 1).
    pub times: Option<u32>,
    /// Status to answer.
    pub status: Option<u16>,
    /// Body to answer.
    pub body: Option<String>,
    /// Answer the proxy HTML page (default body for `status`).
    pub html: bool,
    /// Content type of `body`.
    pub content_type: Option<String>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
    /// Never answer.
    pub hang: bool,
    /// Added latency (0 clears).
    pub latency_ms: Option<u64>,
    /// Down switch.
    pub down: Option<bool>,
    /// Migration back-off switch.
    pub migration_backoff: Option<bool>,
    /// Clear everything first.
    pub clear: bool,
}

impl FaultRequest {
    fn apply(self, ctl: &CoordinatorControl) -> Result<(), String> {
        if self.clear {
            ctl.clear_faults();
        }
        if let Some(d) = self.down {
            ctl.set_down(d);
        }
        if let Some(m) = self.migration_backoff {
            ctl.set_migration_backoff(m);
        }
        let needs_endpoint = self.latency_ms.is_some() || self.status.is_some() || self.hang;
        let endpoint = match (self.endpoint, needs_endpoint) {
            (Some(e), _) => e,
            (None, false) => return Ok(()),
            (None, true) => return Err("`endpoint` is required".to_owned()),
        };
        if let Some(l) = self.latency_ms {
            ctl.set_latency(endpoint, Some(Duration::from_millis(l)));
        }
        let times = self.times.unwrap_or(1);
        let fault = if self.hang {
            Some(Fault::hang(times))
        } else {
            self.status.map(|status| {
                let mut f = if self.html {
                    Fault::html(status, times)
                } else {
                    Fault::status(status, times)
                };
                if let Some(body) = self.body {
                    let ct = self
                        .content_type
                        .unwrap_or_else(|| "application/json".to_owned());
                    f = f.with_body(body, ct);
                }
                if let Some(r) = self.retry_after {
                    f = f.with_retry_after(r);
                }
                f
            })
        };
        if let Some(f) = fault {
            if let FaultAction::Respond { status, .. } = f.action {
                if !(100..=999).contains(&status) {
                    return Err(format!("status {status} is not an HTTP status"));
                }
            }
            ctl.inject_fault(endpoint, f);
        }
        Ok(())
    }
}

fn bad_request(detail: impl std::fmt::Display) -> HttpResponse {
    builder(400).json(json!({"error": detail.to_string()}))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, HttpResponse> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
struct RunnerReq {
    token: String,
    #[serde(default)]
    paused: bool,
}

#[derive(Deserialize)]
struct RegTokenReq {
    token: String,
    #[serde(default)]
    style: TokenStyle,
}

#[derive(Deserialize)]
struct AdminReq {
    token: String,
    #[serde(default = "yes")]
    admin: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct GroupReq {
    path: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct StatusReq {
    status: JobState,
}

/// Serves a `/__sim` request (`rest` is the path after `/__sim`).
pub(crate) async fn serve(
    shared: &Arc<Shared>,
    method: &str,
    rest: &str,
    body: &[u8],
) -> HttpResponse {
    let ctl = CoordinatorControl {
        shared: Arc::clone(shared),
    };
    match handle(&ctl, method, rest, body) {
        Ok(r) | Err(r) => r,
    }
}

fn job_id(raw: &str) -> Result<i64, HttpResponse> {
    raw.parse::<i64>()
        .map_err(|_| bad_request(format!("job id {raw:?} is not an integer")))
}

fn handle(
    ctl: &CoordinatorControl,
    method: &str,
    rest: &str,
    body: &[u8],
) -> Result<HttpResponse, HttpResponse> {
    let segs: Vec<&str> = rest
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    let ok = || Ok(HttpResponse::Ok().json(json!({"ok": true})));
    match (method, segs.as_slice()) {
        ("POST", ["jobs"]) => {
            let spec: JobSpec = if body.is_empty() {
                JobSpec::default()
            } else {
                parse(body)?
            };
            let id = ctl.enqueue_job(spec);
            Ok(builder(201).json(json!({ "id": id })))
        }
        ("GET", ["jobs"]) => Ok(HttpResponse::Ok().json(ctl.jobs())),
        ("GET", ["jobs", id]) => match ctl.job(job_id(id)?) {
            Some(view) => Ok(HttpResponse::Ok().json(view)),
            None => Err(message(404, "unknown job")),
        },
        ("GET", ["jobs", id, "trace"]) => match ctl.job_trace(job_id(id)?) {
            Some(t) => Ok(HttpResponse::Ok().content_type("text/plain").body(t)),
            None => Err(message(404, "unknown job")),
        },
        ("POST", ["jobs", id, "trace"]) => match ctl.write_trace(job_id(id)?, body) {
            Some(len) => Ok(HttpResponse::Ok().json(json!({ "trace_len": len }))),
            None => Err(message(404, "unknown job or trace limit reached")),
        },
        ("POST", ["jobs", id, "cancel"]) => {
            let id = job_id(id)?;
            if ctl.cancel_job(id) {
                ok()
            } else {
                Err(message(409, "unknown job or already over"))
            }
        }
        ("POST", ["jobs", id, "status"]) => {
            let id = job_id(id)?;
            let req: StatusReq = parse(body)?;
            if ctl.set_job_status(id, req.status) {
                ok()
            } else {
                Err(message(404, "unknown job"))
            }
        }
        ("GET", ["stats"]) => Ok(HttpResponse::Ok().json(ctl.stats())),
        ("GET", ["requests"]) => Ok(HttpResponse::Ok().json(ctl.requests())),
        ("GET", ["runners"]) => Ok(HttpResponse::Ok().json(ctl.runners())),
        ("POST", ["faults"]) => {
            let req: FaultRequest = parse(body)?;
            req.apply(ctl).map_err(bad_request)?;
            ok()
        }
        ("POST", ["runners"]) => {
            let req: RunnerReq = parse(body)?;
            let id = ctl.add_runner(&req.token, req.paused);
            Ok(builder(201).json(json!({ "id": id })))
        }
        ("POST", ["registration_tokens"]) => {
            let req: RegTokenReq = parse(body)?;
            ctl.add_registration_token(&req.token, req.style);
            ok()
        }
        ("POST", ["admin_tokens"]) => {
            let req: AdminReq = parse(body)?;
            if req.admin {
                ctl.add_admin_token(&req.token);
            } else {
                ctl.add_user_token(&req.token);
            }
            ok()
        }
        ("POST", ["groups"]) => {
            let req: GroupReq = parse(body)?;
            let attrs: Vec<(&str, &str)> = req
                .attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let id = ctl.set_group_attributes(&req.path, &attrs);
            Ok(builder(201).json(json!({ "id": id })))
        }
        ("GET", ["settings"]) => Ok(HttpResponse::Ok().json(ctl.settings())),
        ("POST", ["settings"]) => {
            let s: Settings = parse(body)?;
            ctl.update_settings(|cur| *cur = s);
            ok()
        }
        _ => Err(message(404, "unknown /__sim route")),
    }
}
