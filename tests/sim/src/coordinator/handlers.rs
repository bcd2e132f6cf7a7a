//! HTTP handlers of the fake coordinator's `/api/v4` endpoints.
//!
//! One entry point routes on the raw, still percent-encoded path (so a
//! `%2F` inside a group id stays one segment, as GitLab requires), records
//! the request, applies the cross-cutting faults (down switch, latency,
//! queued fault rules, migration back-off) and then serves the endpoint as
//! GitLab does.

// An early answer is the natural error of these helpers; boxing every
// response of a test server buys nothing.
#![allow(clippy::result_large_err)]

use super::admin_jobs;
use super::control;
use super::faults::{html_page, reason_phrase, Endpoint, FaultAction};
use super::jobs::{JobState, FAILURE_REASONS};
use super::responses::{builder, message, std_message};
use super::state::{ms, AppendOutcome, RecordedRequest, Shared};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Application data of every worker.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub(crate) shared: Arc<Shared>,
    /// Relative URL root (`""` or `/something`, no trailing slash).
    pub(crate) prefix: String,
}

/// A routed `/api/v4` request.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    JobsRequest,
    JobStatus,
    JobUpdate(String),
    TracePatch(String),
    TraceRead { project: String, job: String },
    JobRead { project: String, job: String },
    GroupAttributes { group: String, key: Option<String> },
    Project(String),
    Group(String),
    RunnerRegister,
    RunnerVerify,
    RunnerDelete,
    RunnerManagerDelete,
    RunnerResetToken,
    RunnerJobs(String),
    JobCancel { project: String, job: String },
    JobRetry { project: String, job: String },
    TokenSelf,
    NotFound,
}

impl Route {
    /// Routes a path relative to `/api/v4` (raw segments, not decoded).
    fn parse(method: &str, rest: &str) -> Route {
        let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let s = |x: &str| x.to_owned();
        match (method, segs.as_slice()) {
            ("POST", ["jobs", "request"]) => Route::JobsRequest,
            ("GET", ["job"]) => Route::JobStatus,
            ("PUT", ["jobs", id]) => Route::JobUpdate(s(id)),
            ("PATCH", ["jobs", id, "trace"]) => Route::TracePatch(s(id)),
            ("GET", ["projects", p, "jobs", j, "trace"]) => Route::TraceRead {
                project: s(p),
                job: s(j),
            },
            ("GET", ["projects", p, "jobs", j]) => Route::JobRead {
                project: s(p),
                job: s(j),
            },
            ("GET", ["projects", p]) => Route::Project(s(p)),
            ("GET", ["groups", g]) => Route::Group(s(g)),
            ("GET", ["groups", g, "custom_attributes"]) => Route::GroupAttributes {
                group: s(g),
                key: None,
            },
            ("GET", ["groups", g, "custom_attributes", k]) => Route::GroupAttributes {
                group: s(g),
                key: Some(s(k)),
            },
            ("POST", ["runners"]) => Route::RunnerRegister,
            ("POST", ["runners", "verify"]) => Route::RunnerVerify,
            ("DELETE", ["runners"]) => Route::RunnerDelete,
            ("DELETE", ["runners", "managers"]) => Route::RunnerManagerDelete,
            ("POST", ["runners", "reset_authentication_token"]) => Route::RunnerResetToken,
            ("GET", ["personal_access_tokens", "self"]) => Route::TokenSelf,
            ("GET", ["runners", id, "jobs"]) => Route::RunnerJobs(s(id)),
            ("POST", ["projects", p, "jobs", j, "cancel"]) => Route::JobCancel {
                project: s(p),
                job: s(j),
            },
            ("POST", ["projects", p, "jobs", j, "retry"]) => Route::JobRetry {
                project: s(p),
                job: s(j),
            },
            _ => Route::NotFound,
        }
    }

    fn endpoint(&self) -> Endpoint {
        match self {
            Route::JobsRequest => Endpoint::JobsRequest,
            Route::JobStatus => Endpoint::JobStatus,
            Route::JobUpdate(_) => Endpoint::JobUpdate,
            Route::TracePatch(_) => Endpoint::TracePatch,
            Route::TraceRead { .. } => Endpoint::TraceRead,
            Route::JobRead { .. } => Endpoint::JobRead,
            Route::GroupAttributes { .. } => Endpoint::GroupAttributes,
            Route::Project(_) => Endpoint::Project,
            Route::Group(_) => Endpoint::Group,
            Route::RunnerRegister => Endpoint::RunnerRegister,
            Route::RunnerVerify => Endpoint::RunnerVerify,
            Route::RunnerDelete => Endpoint::RunnerDelete,
            Route::RunnerManagerDelete => Endpoint::RunnerManagerDelete,
            Route::RunnerResetToken => Endpoint::RunnerResetToken,
            Route::RunnerJobs(_) => Endpoint::RunnerJobs,
            Route::JobCancel { .. } => Endpoint::JobCancel,
            Route::JobRetry { .. } => Endpoint::JobRetry,
            Route::TokenSelf | Route::NotFound => Endpoint::Other,
        }
    }
}

/// Request parameters merged the way Grape does: JSON or form body, then
/// query string.
#[derive(Debug, Default)]
pub(crate) struct Params {
    json: Option<Map<String, Value>>,
    form: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

/// Parses `a=b&c=d` (with `+` as space and percent escapes).
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |x: &str| {
                percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

impl Params {
    /// Reads the query, and the body too when `with_body`.
    pub(crate) fn read(req: &HttpRequest, body: &[u8], with_body: bool) -> Params {
        let mut p = Params {
            query: parse_form(req.query_string()),
            ..Params::default()
        };
        if with_body && !body.is_empty() {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => p.json = Some(map),
                _ => p.form = parse_form(&String::from_utf8_lossy(body)),
            }
        }
        p
    }

    /// A raw JSON value of the body.
    pub(crate) fn value(&self, key: &str) -> Option<&Value> {
        self.json.as_ref()?.get(key)
    }

    /// A parameter as a string (JSON strings, numbers and booleans accepted).
    pub(crate) fn str(&self, key: &str) -> Option<String> {
        if let Some(v) = self.value(key) {
            return match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
        }
        self.form
            .iter()
            .chain(self.query.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// A boolean parameter (`true`/`false`, JSON or text).
    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        match self.str(key)?.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }

    /// The body as a JSON object (form fields as strings), for recording.
    fn body_value(&self) -> Value {
        match &self.json {
            Some(m) => Value::Object(m.clone()),
            None => Value::Object(
                self.form
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        }
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn bearer(req: &HttpRequest) -> Option<String> {
    header(req, "authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned)
}

/// Job token of a runner-API job call: `token` param or `JOB-TOKEN` header.
fn job_token(req: &HttpRequest, params: &Params) -> Option<String> {
    params
        .str("token")
        .or_else(|| header(req, "job-token").map(str::to_owned))
}

/// Personal access token: `PRIVATE-TOKEN` header, `private_token` query, or bearer.
fn private_token(req: &HttpRequest, params: &Params) -> Option<String> {
    header(req, "private-token")
        .map(str::to_owned)
        .or_else(|| params.str("private_token"))
        .or_else(|| bearer(req))
}

fn decode(seg: &str) -> String {
    percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

/// Integer prefix of a string, as Ruby's `to_i` reads it (0 if none).
pub(crate) fn ruby_to_i(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let n: i64 = digits
        .chars()
        .take_while(char::is_ascii_digit)
        .try_fold(0i64, |acc, c| {
            acc.checked_mul(10)?
                .checked_add(i64::from(c.to_digit(10).unwrap_or(0)))
        })
        .unwrap_or(i64::MAX);
    if neg {
        -n
    } else {
        n
    }
}

/// The single entry point of the server.
pub(crate) async fn entry(req: HttpRequest, body: web::Bytes, ctx: web::Data<Ctx>) -> HttpResponse {
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/__sim") {
        return control::serve(&ctx.shared, req.method().as_str(), rest, &body).await;
    }
    let api_root = format!("{}/api/v4", ctx.prefix);
    let Some(rest) = path.strip_prefix(&api_root) else {
        return std_message(404);
    };
    let route = Route::parse(req.method().as_str(), rest);
    let endpoint = route.endpoint();
    let (down, latency, fault, backoff) = ctx.shared.with(|st| {
        st.record(RecordedRequest {
            endpoint,
            method: req.method().to_string(),
            path: path.clone(),
            query: req.query_string().to_owned(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
            peer: req.peer_addr().map(|a| a.to_string()),
            at: Some(std::time::Instant::now()),
        });
        let down = st.faults.down;
        let fault = if down { None } else { st.faults.take(endpoint) };
        (
            down,
            st.faults.latency(endpoint),
            fault,
            st.faults.migration_backoff && endpoint.is_runner_api(),
        )
    });
    if let Some(d) = latency {
        actix_rt::time::sleep(d).await;
    }
    if down {
        return builder(502).content_type("text/html").body(html_page(502));
    }
    match fault {
        Some(FaultAction::Hang) => {
            std::future::pending::<()>().await;
            return std_message(504);
        }
        Some(FaultAction::Respond {
            status,
            body,
            content_type,
            retry_after,
        }) => {
            let mut b = builder(status);
            if let Some(s) = retry_after {
                b.insert_header(("Retry-After", s.to_string()));
            }
            return match body {
                Some(body) => b
                    .content_type(content_type.unwrap_or_else(|| "application/json".to_owned()))
                    .body(body),
                None => b.json(json!({
                    "message": format!("{status} {}", reason_phrase(status))
                })),
            };
        }
        None => {}
    }
    if backoff {
        return builder(429)
            .insert_header(("Retry-After", "60"))
            .json(json!({"message": "429 Too Many Requests"}));
    }
    let shared = &ctx.shared;
    let with_body = !matches!(route, Route::TracePatch(_));
    let params = Params::read(&req, &body, with_body);
    match route {
        Route::JobsRequest => jobs_request(shared, &params).await,
        Route::JobStatus => job_status(shared, &req, &params),
        Route::JobUpdate(id) => job_update(shared, &req, &params, &id),
        Route::TracePatch(id) => trace_patch(shared, &req, &params, &id, &body),
        Route::TraceRead { project, job } => trace_read(shared, &req, &params, &project, &job),
        Route::JobRead { project, job } => job_read(shared, &req, &params, &project, &job),
        Route::GroupAttributes { group, key } => {
            group_attributes(shared, &req, &params, &group, key.as_deref())
        }
        Route::Project(id) => project(shared, &req, &params, &id),
        Route::Group(id) => group(shared, &req, &params, &id),
        Route::RunnerRegister => runner_register(shared, &params),
        Route::RunnerVerify => runner_verify(shared, &params),
        Route::RunnerDelete => runner_delete(shared, &params),
        Route::RunnerManagerDelete => runner_manager_delete(shared, &params),
        Route::RunnerResetToken => runner_reset_token(shared, &params),
        Route::TokenSelf => token_self(shared, &req, &params),
        Route::RunnerJobs(id) => {
            let query = admin_jobs::ListQuery {
                status: params.str("status"),
                system_id: params.str("system_id"),
                per_page: params.str("per_page"),
                page: params.str("page"),
            };
            let st = shared.lock();
            match authorize_admin(&st, &req, &params) {
                Ok(()) => admin_jobs::runner_jobs(&st, &id, &query, job_entity),
                Err(resp) => resp,
            }
        }
        Route::JobCancel { project, job } | Route::JobRetry { project, job } => {
            let retry = endpoint == Endpoint::JobRetry;
            shared.with(|st| match authorize_admin(st, &req, &params) {
                Ok(()) => admin_jobs::job_action(st, &decode(&project), &job, retry, job_entity),
                Err(resp) => resp,
            })
        }
        Route::NotFound => std_message(404),
    }
}

fn token_missing() -> HttpResponse {
    builder(400).json(json!({"error": "token is missing"}))
}

/// `POST /jobs/request`.
async fn jobs_request(shared: &Shared, params: &Params) -> HttpResponse {
    let Some(token) = params.str("token") else {
        return token_missing();
    };
    let last_update = params.str("last_update");
    let mut rx = shared.version.subscribe();
    rx.borrow_and_update();
    enum First {
        Forbidden,
        Paused(u64),
        Unchanged(u64, Option<u64>),
        Go(i64, Option<u64>),
    }
    let first = shared.with(|st| {
        let hold = st.settings.long_poll_ms;
        let Some(runner) = st.runner_mut(&token) else {
            return First::Forbidden;
        };
        let version = runner.queue_version;
        runner.job_requests += 1;
        if let Some(sid) = params.str("system_id") {
            runner.managers.insert(sid);
        }
        if let Some(info) = params.value("info") {
            runner.last_info = Some(info.clone());
        }
        if runner.paused {
            return First::Paused(version);
        }
        if last_update.as_deref() == Some(version.to_string().as_str()) {
            if hold.is_some() {
                st.long_polls_holding += 1;
                st.long_polls_held += 1;
            }
            return First::Unchanged(version, hold);
        }
        First::Go(runner.id, hold)
    });
    let polling = |b: &mut HttpResponseBuilder, hold: Option<u64>| {
        if hold.is_some() {
            b.insert_header(("Gitlab-Ci-Builds-Polling", "yes"));
        }
    };
    let (runner_id, hold) = match first {
        First::Forbidden => return message(403, "403 Forbidden"),
        First::Paused(v) => {
            return builder(204)
                .insert_header(("X-GitLab-Last-Update", v.to_string()))
                .finish()
        }
        First::Unchanged(v, None) => {
            return builder(204)
                .insert_header(("X-GitLab-Last-Update", v.to_string()))
                .finish()
        }
        First::Unchanged(v, Some(hold)) => {
            // Workhorse: wait for this runner's queue version to change or
            // the window to end, then 204 without X-GitLab-Last-Update (the
            // client re-polls at once).
            let _holding = Holding(shared);
            hold_until_changed(shared, &mut rx, &token, v, ms(hold)).await;
            let mut b = builder(204);
            polling(&mut b, Some(hold));
            return b.finish();
        }
        First::Go(id, hold) => (id, hold),
    };
    let features = params
        .value("info")
        .and_then(|i| i.get("features"))
        .cloned();
    let system_id = params.str("system_id");
    let (taken, version, held) = shared.with(|st| {
        let taken = st.dequeue(runner_id, features.as_ref()).and_then(|id| {
            let job = st.jobs.get_mut(&id)?;
            job.manager = system_id;
            Some(job.payload.clone())
        });
        let global = st.queue_version;
        let version = st.runner_mut(&token).map_or(global, |r| r.queue_version);
        let held = taken.is_some() && st.hold_job_answers;
        if held {
            st.job_answers_held += 1;
        }
        (taken, version, held)
    });
    if held {
        // The job is handed out; its answer never leaves.
        std::future::pending::<()>().await;
    }
    let mut b = match taken {
        Some(_) => builder(201),
        None => builder(204),
    };
    polling(&mut b, hold);
    b.insert_header(("X-GitLab-Last-Update", version.to_string()));
    match taken {
        Some(payload) => b.json(payload),
        None => b.finish(),
    }
}

/// A long poll being held: counted in `long_polls_holding` until dropped
/// (answered, or abandoned by a client that went away).
struct Holding<'a>(&'a Shared);

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0
            .with(|st| st.long_polls_holding = st.long_polls_holding.saturating_sub(1));
    }
}

/// Most wake-ups of one hold (each is a change of some runner's queue).
const MAX_HOLD_WAKEUPS: usize = 100_000;

/// Waits until the queue version of the runner of `token` is no longer
/// `version`, or `window` has passed (bounded by both, and by a count of
/// wake-ups).
async fn hold_until_changed(
    shared: &Shared,
    rx: &mut tokio::sync::watch::Receiver<u64>,
    token: &str,
    version: u64,
    window: std::time::Duration,
) {
    let deadline = tokio::time::Instant::now() + window;
    for _ in 0..MAX_HOLD_WAKEUPS {
        let current = shared.with(|st| st.runner_mut(token).map(|r| r.queue_version));
        if current != Some(version) {
            return;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// The Job entity of `GET /job`, with the `runner` object of the runner
/// that acquired the job.
fn job_entity(
    base_url: &str,
    job: &super::state::JobRecord,
    runners: &[super::state::RunnerView],
) -> Value {
    let mut entity = json!({
        "id": job.id,
        "status": job.status.as_str(),
        "stage": job.spec.stage,
        "name": job.spec.name,
        "ref": "main",
        "tag": false,
        "coverage": null,
        "allow_failure": false,
        "web_url": format!("{base_url}/{}/-/jobs/{}", job.spec.project_path(), job.id),
        "pipeline": {
            "id": job.id + 100_000,
            "project_id": job.spec.project_id,
            "ref": "main",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "status": "running",
        },
    });
    if let (Some(reason), Some(obj)) = (&job.failure_reason, entity.as_object_mut()) {
        obj.insert("failure_reason".to_owned(), json!(reason));
    }
    let runner = job.runner_id.map(|id| {
        let description = runners
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.description.clone());
        json!({"id": id, "description": description, "active": true, "paused": false,
               "is_shared": false, "runner_type": "instance_type", "name": null,
               "online": true, "status": "online"})
    });
    if let Some(obj) = entity.as_object_mut() {
        obj.insert("runner".to_owned(), runner.unwrap_or(Value::Null));
        // GitLab 16 and later: the runner manager (host) that picked the job.
        if let Some(system_id) = &job.manager {
            obj.insert(
                "runner_manager".to_owned(),
                json!({"system_id": system_id, "status": "online"}),
            );
        }
    }
    entity
}

/// `GET /job`: 200 while executing, 401 otherwise.
fn job_status(shared: &Shared, req: &HttpRequest, params: &Params) -> HttpResponse {
    let token = params
        .str("job_token")
        .or_else(|| params.str("token"))
        .or_else(|| header(req, "job-token").map(str::to_owned))
        .or_else(|| bearer(req));
    let st = shared.lock();
    let Some(token) = token else {
        if let Some(pat) = header(req, "private-token") {
            if st.admin_tokens.contains(pat) || st.user_tokens.contains(pat) {
                return message(404, "404 Job Not Found");
            }
        }
        return message(401, "401 Unauthorized");
    };
    let job = st
        .jobs
        .values()
        .find(|j| j.token == token && j.token_valid && j.status.is_executing());
    match job {
        Some(job) => HttpResponse::Ok().json(job_entity(&st.base_url, job, &st.runners)),
        None => message(401, "401 Unauthorized"),
    }
}

/// Checks a job-token call on job `id`; `Err` is the 403 to send.
fn authorize_job(
    st: &super::state::State,
    id: i64,
    token: Option<&str>,
) -> Result<(), HttpResponse> {
    let job = st
        .jobs
        .get(&id)
        .filter(|j| j.token_valid && Some(j.token.as_str()) == token);
    match job {
        None => Err(message(403, "403 Forbidden")),
        Some(j) if !j.status.is_executing() => Err(builder(403)
            .insert_header(("Job-Status", j.status.as_str()))
            .json(json!({"message": st.settings.forbidden_flavour.message()}))),
        Some(_) => Ok(()),
    }
}

/// `PUT /jobs/:id`.
fn job_update(shared: &Shared, req: &HttpRequest, params: &Params, id: &str) -> HttpResponse {
    let Ok(id) = id.parse::<i64>() else {
        return builder(400).json(json!({"error": "id is invalid"}));
    };
    let token = job_token(req, params);
    let body = params.body_value();
    shared.with(|st| {
        if let Err(resp) = authorize_job(st, id, token.as_deref()) {
            return resp;
        }
        let invalidate = st.settings.invalidate_job_tokens;
        let Some(job) = st.jobs.get_mut(&id) else {
            return message(403, "403 Forbidden");
        };
        let state = params.str("state");
        let exit_code = params
            .value("exit_code")
            .and_then(Value::as_i64)
            .or_else(|| params.str("exit_code").and_then(|s| s.parse::<i64>().ok()));
        let canceling = job.status == JobState::Canceling;
        match state.as_deref() {
            Some("running") => {}
            Some("success") => {
                job.exit_code = exit_code.or(job.exit_code);
                let next = if canceling {
                    JobState::Canceled
                } else {
                    JobState::Success
                };
                job.set_status(next, invalidate);
            }
            Some("failed") => {
                job.exit_code = exit_code.or(job.exit_code);
                let reason = params
                    .str("failure_reason")
                    .filter(|r| FAILURE_REASONS.contains(&r.as_str()))
                    .unwrap_or_else(|| "unknown_failure".to_owned());
                if canceling {
                    job.set_status(JobState::Canceled, invalidate);
                } else {
                    job.fail(&reason, invalidate);
                }
            }
            _ => return message(400, "400 Bad request - state is invalid"),
        }
        job.updates.push(body);
        let status = job.status;
        HttpResponse::Ok()
            .insert_header(("Job-Status", status.as_str()))
            .body("200")
    })
}

/// `PATCH /jobs/:id/trace`.
fn trace_patch(
    shared: &Shared,
    req: &HttpRequest,
    params: &Params,
    id: &str,
    chunk: &[u8],
) -> HttpResponse {
    let Ok(id) = id.parse::<i64>() else {
        return builder(400).json(json!({"error": "id is invalid"}));
    };
    let token = job_token(req, params);
    let range = header(req, "content-range").map(str::to_owned);
    shared.with(|st| {
        if let Err(resp) = authorize_job(st, id, token.as_deref()) {
            return resp;
        }
        let Some(range) = range else {
            return message(400, "400 Missing header Content-Range");
        };
        let start_text = range.split('-').next().unwrap_or("");
        let start = ruby_to_i(start_text);
        let interval = st.settings.trace_update_interval.to_string();
        match st.append_trace(id, start, chunk) {
            AppendOutcome::Appended(len) => {
                let status = st
                    .jobs
                    .get(&id)
                    .map(|j| j.status.as_str())
                    .unwrap_or("running");
                builder(202)
                    .insert_header(("Range", format!("0-{len}")))
                    .insert_header(("Job-Status", status))
                    .insert_header(("X-GitLab-Trace-Update-Interval", interval.clone()))
                    .body(interval)
            }
            AppendOutcome::Mismatch(len) => builder(416)
                .insert_header(("Range", format!("0-{len}")))
                .json(json!({"message": "416 Range Not Satisfiable"})),
            AppendOutcome::TooLarge => builder(403)
                .insert_header(("Job-Status", "failed"))
                .json(json!({"message": "403 Forbidden - The trace size limit was exceeded"})),
        }
    })
}

/// Checks an administrator token; `Err` is the 401/403 to send.
fn authorize_admin(
    st: &super::state::State,
    req: &HttpRequest,
    params: &Params,
) -> Result<(), HttpResponse> {
    match private_token(req, params) {
        Some(t) if st.admin_tokens.contains(&t) => Ok(()),
        Some(t) if st.user_tokens.contains(&t) => Err(message(403, "403 Forbidden")),
        _ => Err(message(401, "401 Unauthorized")),
    }
}

/// `GET /personal_access_tokens/self`: administrator tokens have
/// `read_api`, user tokens only `read_user`; unknown tokens get 401.
fn token_self(shared: &Shared, req: &HttpRequest, params: &Params) -> HttpResponse {
    let st = shared.lock();
    let scopes = match private_token(req, params) {
        Some(t) if st.admin_tokens.contains(&t) => ["api", "read_api"].as_slice(),
        Some(t) if st.user_tokens.contains(&t) => ["read_user"].as_slice(),
        _ => return message(401, "401 Unauthorized"),
    };
    HttpResponse::Ok().json(json!({"active": true, "revoked": false, "scopes": scopes}))
}

/// `GET /projects/:id/jobs/:job_id` (administrator tokens): the Job
/// entity, with the job's status as it is now.
fn job_read(
    shared: &Shared,
    req: &HttpRequest,
    params: &Params,
    project: &str,
    job: &str,
) -> HttpResponse {
    let st = shared.lock();
    if let Err(resp) = authorize_admin(&st, req, params) {
        return resp;
    }
    let project = decode(project);
    match job_of_project(&st.jobs, &project, job) {
        Some(found) => HttpResponse::Ok().json(job_entity(&st.base_url, found, &st.runners)),
        None => message(404, "404 Job Not Found"),
    }
}

/// Whether `j` belongs to the project named by `project` (its id or path).
fn of_project(j: &super::state::JobRecord, project: &str) -> bool {
    j.spec.project_id.to_string() == project || j.spec.project_path() == project
}

/// The job `job` (its id as text) of the project `project`, if any.
fn job_of_project<'a>(
    jobs: &'a std::collections::BTreeMap<i64, super::state::JobRecord>,
    project: &str,
    job: &str,
) -> Option<&'a super::state::JobRecord> {
    job.parse::<i64>()
        .ok()
        .and_then(|id| jobs.get(&id))
        .filter(|j| of_project(j, project))
}

/// `GET /projects/:id/jobs/:job_id/trace`.
fn trace_read(
    shared: &Shared,
    req: &HttpRequest,
    params: &Params,
    project: &str,
    job: &str,
) -> HttpResponse {
    let st = shared.lock();
    if let Err(resp) = authorize_admin(&st, req, params) {
        return resp;
    }
    let project = decode(project);
    if !st.jobs.values().any(|j| of_project(j, &project)) {
        return message(404, "404 Project Not Found");
    }
    let Some(found) = job_of_project(&st.jobs, &project, job) else {
        return message(404, "404 Job Not Found");
    };
    if found.trace.is_empty() && st.settings.legacy_empty_trace_404 {
        return message(404, "404 Not Found");
    }
    HttpResponse::Ok()
        .content_type("text/plain")
        .insert_header((
            "Content-Disposition",
            format!("infile; filename=\"{}.log\"", found.id),
        ))
        .body(found.trace.clone())
}

/// The group `:id` names, as GitLab reads it: all digits is an id, anything
/// else a URL-encoded full path.
fn find_group<'s>(st: &'s super::state::State, id: &str) -> Option<&'s super::state::Group> {
    let wanted = decode(id);
    if !wanted.is_empty() && wanted.bytes().all(|b| b.is_ascii_digit()) {
        st.groups.iter().find(|g| g.id.to_string() == wanted)
    } else {
        st.groups.iter().find(|g| g.path == wanted)
    }
}

/// `GET /groups/:id`: the group (`id`, `full_path`, `parent_id`).
fn group(shared: &Shared, req: &HttpRequest, params: &Params, id: &str) -> HttpResponse {
    let st = shared.lock();
    if let Err(resp) = authorize_admin(&st, req, params) {
        return resp;
    }
    let Some(found) = find_group(&st, id) else {
        return message(404, "404 Group Not Found");
    };
    let parent_id = found.path.rsplit_once('/').map(|(parent, _)| {
        st.groups
            .iter()
            .find(|g| g.path == parent)
            .map_or(1, |g| g.id)
    });
    let path = found.path.rsplit('/').next().unwrap_or(&found.path);
    HttpResponse::Ok().json(json!({
        "id": found.id,
        "name": path,
        "path": path,
        "full_path": found.path,
        "parent_id": parent_id,
    }))
}

/// `GET /groups/:id/custom_attributes[/:key]`.
fn group_attributes(
    shared: &Shared,
    req: &HttpRequest,
    params: &Params,
    group: &str,
    key: Option<&str>,
) -> HttpResponse {
    let st = shared.lock();
    if let Err(resp) = authorize_admin(&st, req, params) {
        return resp;
    }
    let Some(found) = find_group(&st, group) else {
        return message(404, "404 Group Not Found");
    };
    let attr = |(k, v): &(String, String)| json!({"key": k, "value": v});
    match key {
        None => HttpResponse::Ok().json(found.attributes.iter().map(attr).collect::<Vec<_>>()),
        Some(key) => {
            let key = decode(key);
            match found.attributes.iter().find(|(k, _)| *k == key) {
                Some(kv) => HttpResponse::Ok().json(attr(kv)),
                None => message(404, "404 Not found"),
            }
        }
    }
}

/// `GET /projects/:id` (numeric ids only): the project and its namespace.
fn project(shared: &Shared, req: &HttpRequest, params: &Params, id: &str) -> HttpResponse {
    let st = shared.lock();
    if let Err(resp) = authorize_admin(&st, req, params) {
        return resp;
    }
    let found = id
        .parse::<i64>()
        .ok()
        .and_then(|id| st.projects.get(&id).map(|path| (id, path)));
    let Some((id, path)) = found else {
        return message(404, "404 Project Not Found");
    };
    let (namespace, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
    let ns_path = namespace.rsplit('/').next().unwrap_or(namespace);
    let group = st.groups.iter().find(|g| g.path == namespace);
    HttpResponse::Ok().json(json!({
        "id": id,
        "path": name,
        "path_with_namespace": path,
        "namespace": {
            "id": group.map(|g| g.id),
            "name": ns_path,
            "path": ns_path,
            "kind": "group",
            "full_path": namespace,
            "parent_id": null,
        },
    }))
}

fn runner_answer(id: i64, token: &str) -> Value {
    json!({"id": id, "token": token, "token_expires_at": null})
}

/// `POST /runners`.
fn runner_register(shared: &Shared, params: &Params) -> HttpResponse {
    let Some(token) = params.str("token") else {
        return token_missing();
    };
    let paused = params.bool("paused");
    let active = params.bool("active");
    if paused.is_some() && active.is_some() {
        return builder(400).json(json!({"error": "paused, active are mutually exclusive"}));
    }
    shared.with(|st| {
        let Some(style) = st.registration_tokens.get(&token).copied() else {
            return message(403, "403 Forbidden");
        };
        if st.settings.registration_disabled {
            return message(410, "410 Gone - runner registration disallowed");
        }
        let new_token = style.generate();
        let is_paused = paused == Some(true) || active == Some(false);
        let id = st.add_runner(&new_token, is_paused);
        if let Some(r) = st.runner_mut(&new_token) {
            r.description = params.str("description");
            r.last_info = params.value("info").cloned();
        }
        builder(201).json(runner_answer(id, &new_token))
    })
}

/// `POST /runners/verify`.
fn runner_verify(shared: &Shared, params: &Params) -> HttpResponse {
    let Some(token) = params.str("token") else {
        return token_missing();
    };
    shared.with(|st| {
        let plain = st.settings.legacy_verify_plain;
        let Some(r) = st.runner_mut(&token) else {
            return message(403, "403 Forbidden");
        };
        if let Some(sid) = params.str("system_id") {
            r.managers.insert(sid);
        }
        if plain {
            HttpResponse::Ok().content_type("text/plain").body("200")
        } else {
            HttpResponse::Ok().json(runner_answer(r.id, &r.token))
        }
    })
}

/// `DELETE /runners`.
fn runner_delete(shared: &Shared, params: &Params) -> HttpResponse {
    let Some(token) = params.str("token") else {
        return token_missing();
    };
    shared.with(|st| {
        let before = st.runners.len();
        st.runners.retain(|r| r.token != token);
        if st.runners.len() == before {
            message(403, "403 Forbidden")
        } else {
            HttpResponse::NoContent().finish()
        }
    })
}

/// `DELETE /runners/managers`.
fn runner_manager_delete(shared: &Shared, params: &Params) -> HttpResponse {
    let Some(token) = params.str("token") else {
        return token_missing();
    };
    let Some(system_id) = params.str("system_id") else {
        return builder(400).json(json!({"error": "system_id is missing"}));
    };
    shared.with(|st| {
        let Some(r) = st.runner_mut(&token) else {
            return message(403, "403 Forbidden");
        };
        if r.managers.remove(&system_id) {
            HttpResponse::NoContent().finish()
        } else {
            message(404, "404 Not Found")
        }
    })
}

/// `POST /runners/reset_authentication_token`.
fn runner_reset_token(shared: &Shared, params: &Params) -> HttpResponse {
    let Some(token) = params.str("token") else {
        return token_missing();
    };
    shared.with(|st| {
        let Some(r) = st.runner_mut(&token) else {
            return message(403, "403 Forbidden");
        };
        let new_token = super::state::TokenStyle::of(&token).generate();
        r.token = new_token.clone();
        builder(201).json(json!({"token": new_token, "token_expires_at": null}))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_to_i_reads_like_rails() {
        let table = [
            ("12", 12),
            ("  7", 7),
            ("bytes 0", 0),
            ("", 0),
            ("3abc", 3),
            ("-4", -4),
            ("99999999999999999999999", i64::MAX),
        ];
        for (s, n) in table {
            assert_eq!(ruby_to_i(s), n, "{s:?}");
        }
    }

    #[test]
    fn routes_on_raw_segments() {
        assert_eq!(
            Route::parse("GET", "/groups/a%2Fb/custom_attributes"),
            Route::GroupAttributes {
                group: "a%2Fb".into(),
                key: None
            }
        );
        assert_eq!(
            Route::parse("GET", "/groups/a/b/custom_attributes"),
            Route::NotFound
        );
        assert_eq!(Route::parse("GET", "/jobs/request"), Route::NotFound);
        assert_eq!(
            Route::parse("PUT", "/jobs/12"),
            Route::JobUpdate("12".into())
        );
    }

    #[test]
    fn form_parsing_decodes() {
        assert_eq!(
            parse_form("a=1&b=x+y%2Fz&c"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y/z".into()),
                ("c".into(), "".into())
            ]
        );
    }
}
