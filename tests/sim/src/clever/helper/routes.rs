//! The helper's HTTP/1 API, as one service application's listener serves it:
//!
//! | call | answer |
//! |---|---|
//! | `GET /can-take-job` | 200 JSON `true` when booted and idle, else `false` |
//! | `POST /launch-job` `{"job_id", "runner_name", "specification", "config"}` | 201 and the job runs; 503 (`Retry-After`) while busy or not ready; 400 malformed; 413 too large |
//! | anything else | 404 |
//!
//! Every call needs `Authorization: Bearer <token>` (401 otherwise) and is recorded in the
//! ledger ([`crate::clever::ledger::HelperCall`]). What the runner should never do is also a
//! violation: launching on a helper not ready, or busy (two jobs at once), a malformed
//! request, a job of another tenant than the application's first job.

use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;

use super::lifecycle;
use super::state::{Availability, RunningJob};
use crate::clever::checker::{self, InnerJob, LaunchRequest, HELPER_TOKEN_VARIABLE};
use crate::clever::inner_runner::{self, JobHost};
use crate::clever::ledger::{HelperCall, HelperJobEntry, HelperRoute, Violation};
use crate::clever::model::{SharedWorld, World};

/// Largest `launch-job` body accepted.
pub const MAX_LAUNCH_BODY: usize = 8 << 20;
/// Longest a `launch-job` body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// `Retry-After` of a 503 while a job runs or the helper boots (seconds).
const BUSY_RETRY_AFTER_S: u64 = 1;

/// What every handler of one listener knows: the world and its application.
#[derive(Debug)]
pub struct HelperContext {
    /// The fake's world.
    pub world: SharedWorld,
    /// The service application this listener serves.
    pub app_id: String,
}

/// The route table of a helper listener.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/can-take-job")
            .route(web::get().to(can_take_job))
            .default_service(web::to(other)),
    )
    .service(
        web::resource("/launch-job")
            .route(web::post().to(launch_job))
            .default_service(web::to(other)),
    )
    .default_service(web::to(other));
}

fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": message.into()}))
}

fn unavailable(message: &str, retry_after_s: Option<u64>) -> HttpResponse {
    let mut b = HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE);
    if let Some(s) = retry_after_s {
        b.insert_header((RETRY_AFTER, s.to_string()));
    }
    b.json(json!({"error": message}))
}

fn record(
    w: &mut World,
    app_id: &str,
    route: HelperRoute,
    status: StatusCode,
    answer: Option<bool>,
) {
    let t_ms = w.now_ms();
    w.ledger.helper_call(HelperCall {
        t_ms,
        app_id: app_id.to_owned(),
        route,
        status: status.as_u16(),
        answer,
    });
}

fn violation(w: &mut World, app_id: &str, job_id: Option<i64>, kind: &str, message: String) {
    let t_ms = w.now_ms();
    w.ledger.violation(Violation {
        t_ms,
        app_id: Some(app_id.to_owned()),
        job_id,
        kind: kind.to_owned(),
        message,
    });
}

/// The bearer token of a request (`Authorization: Bearer <token>`, scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Why a request is refused.
#[derive(Debug)]
enum Refused {
    /// The application (or its helper) is gone: 404.
    Gone,
    /// Missing or wrong token: 401.
    Unauthorized,
    /// Busy, not ready or stopping: 503, with `Retry-After` seconds when given.
    Unavailable(&'static str, Option<u64>),
    /// Malformed or unusable request: 400.
    BadRequest(String),
}

impl Refused {
    fn response(&self) -> HttpResponse {
        match self {
            Refused::Gone => error(StatusCode::NOT_FOUND, "no such application"),
            Refused::Unauthorized => {
                error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
            }
            Refused::Unavailable(message, retry_after_s) => unavailable(message, *retry_after_s),
            Refused::BadRequest(message) => error(StatusCode::BAD_REQUEST, message.clone()),
        }
    }
}

/// The helper's availability, once the request's token is checked.
fn admit(w: &World, app_id: &str, headers: &HeaderMap) -> Result<Availability, Refused> {
    let app = w
        .apps
        .get(app_id)
        .filter(|a| !a.deleted)
        .ok_or(Refused::Gone)?;
    let helper = app.helper.as_ref().ok_or(Refused::Gone)?;
    let current = app.env.get(HELPER_TOKEN_VARIABLE).map(String::as_str);
    match (helper.expected_token(current), bearer(headers)) {
        (Some(expected), Some(given)) if expected == given => {
            Ok(helper.availability(Instant::now()))
        }
        _ => Err(Refused::Unauthorized),
    }
}

/// `GET /can-take-job`.
async fn can_take_job(ctx: web::Data<HelperContext>, req: HttpRequest) -> HttpResponse {
    let mut w = ctx.world.lock();
    let (response, answer) = match admit(&w, &ctx.app_id, req.headers()) {
        Err(r) => (r.response(), None),
        Ok(Availability::Dead) => (unavailable("the helper is stopping", None), None),
        Ok(a) => {
            let idle = a == Availability::Idle;
            (HttpResponse::Ok().json(idle), Some(idle))
        }
    };
    record(
        &mut w,
        &ctx.app_id,
        HelperRoute::CanTakeJob,
        response.status(),
        answer,
    );
    response
}

/// Anything else: 404.
async fn other(ctx: web::Data<HelperContext>) -> HttpResponse {
    let response = error(StatusCode::NOT_FOUND, "no such route");
    let mut w = ctx.world.lock();
    record(
        &mut w,
        &ctx.app_id,
        HelperRoute::Other,
        response.status(),
        None,
    );
    response
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Broken,
}

async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<web::Bytes, BodyError> {
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_LAUNCH_BODY as u64) {
        return Err(BodyError::TooLarge);
    }
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| BodyError::Broken)?;
            if body.len().saturating_add(chunk.len()) > MAX_LAUNCH_BODY {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or(Err(BodyError::Broken))
}

/// A launch the helper accepted: what to run.
struct Accepted {
    job: InnerJob,
    host: JobHost,
    start_delay: Duration,
}

/// `POST /launch-job`.
async fn launch_job(
    ctx: web::Data<HelperContext>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let body = read_body(&req, payload).await;
    let mut w = ctx.world.lock();
    let response = match body {
        Err(BodyError::TooLarge) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body exceeds {MAX_LAUNCH_BODY} bytes"),
        ),
        Err(BodyError::Broken) => error(StatusCode::BAD_REQUEST, "the body could not be read"),
        Ok(body) => match decide_launch(&mut w, &ctx.app_id, req.headers(), &body) {
            Ok(accepted) => run(&w, &ctx, accepted),
            Err(r) => r.response(),
        },
    };
    record(
        &mut w,
        &ctx.app_id,
        HelperRoute::LaunchJob,
        response.status(),
        None,
    );
    response
}

/// Runs an accepted job on the fake's System (so that it outlives this request), then makes
/// the helper idle again: 201, or 503 when the fake is stopping.
fn run(w: &World, ctx: &HelperContext, accepted: Accepted) -> HttpResponse {
    let world = ctx.world.clone();
    let app_id = ctx.app_id.clone();
    let spawned = w.spawn_on_system(move || async move {
        let Accepted {
            job,
            host,
            start_delay,
        } = accepted;
        inner_runner::run_job(world.clone(), app_id.clone(), host, job, start_delay).await;
        if let JobHost::Helper { generation, .. } = host {
            lifecycle::job_ended(&world, &app_id, generation);
        }
    });
    if spawned {
        HttpResponse::Created().finish()
    } else {
        unavailable("the helper is stopping", None)
    }
}

/// Decides a launch under the lock: the job to run, or the answer refusing it.
fn decide_launch(
    w: &mut World,
    app_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, Refused> {
    let availability = admit(w, app_id, headers)?;
    if let Some(retry_after_s) = w.helper_faults.take_refusal() {
        return Err(Refused::Unavailable(
            "launch refused (injected fault)",
            retry_after_s,
        ));
    }
    match availability {
        Availability::Idle => {}
        Availability::Dead => return Err(Refused::Unavailable("the helper is stopping", None)),
        Availability::Busy => {
            let running = w
                .apps
                .get(app_id)
                .and_then(|a| a.helper.as_ref())
                .and_then(|h| h.running())
                .map_or(0, |j| j.job_id);
            violation(
                w,
                app_id,
                None,
                "helper_busy_launch",
                format!("launch-job while job {running} runs (two jobs at once)"),
            );
            return Err(Refused::Unavailable(
                "a job is running",
                Some(BUSY_RETRY_AFTER_S),
            ));
        }
        not_ready => {
            violation(
                w,
                app_id,
                None,
                "helper_launch_not_ready",
                format!("launch-job before can-take-job was true ({not_ready:?})"),
            );
            return Err(Refused::Unavailable(
                "the helper is not ready",
                Some(BUSY_RETRY_AFTER_S),
            ));
        }
    }
    let request: LaunchRequest = serde_json::from_slice(body).map_err(|e| {
        // The error's own text may quote the body (tokens): only its place is told.
        let message = format!(
            "malformed launch-job body ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        );
        violation(w, app_id, None, "helper_launch_malformed", message.clone());
        Refused::BadRequest(message)
    })?;
    let (findings, job) = checker::check_launch(&request);
    let kinds: Vec<&str> = findings.iter().map(|f| f.kind).collect();
    let unusable = format!("unusable launch-job request: {}", kinds.join(", "));
    w.record_findings(app_id, Some(request.job_id), findings);
    let job = job.ok_or(Refused::BadRequest(unusable))?;
    let tenant = checker::job_tenant(&job.job, &w.tenant_orgs);
    start(w, app_id, &request, job, tenant)
}

/// Starts an accepted job on the helper (its tenant checked), recorded in the ledger.
fn start(
    w: &mut World,
    app_id: &str,
    request: &LaunchRequest,
    job: InnerJob,
    tenant: String,
) -> Result<Accepted, Refused> {
    let now = Instant::now();
    let t_ms = w.now_ms();
    let start_delay = w.timing.helper_start_delay;
    let mapped_org = w.tenant_orgs.values().any(|o| *o == tenant);
    let Some(app) = w.apps.get_mut(app_id).filter(|a| !a.deleted) else {
        return Err(Refused::Gone);
    };
    let org = app.org.clone();
    let Some(helper) = app.helper.as_mut() else {
        return Err(Refused::Gone);
    };
    let started = helper
        .start_job(
            now,
            RunningJob {
                job_id: request.job_id,
                runner_name: request.runner_name.clone(),
            },
        )
        .map_err(|_| Refused::Unavailable("a job is running", Some(BUSY_RETRY_AFTER_S)))?;
    let first_tenant = helper.note_tenant(&tenant).err();
    if let Some(first) = first_tenant {
        violation(
            w,
            app_id,
            Some(request.job_id),
            "helper_cross_tenant",
            format!("a job of tenant {tenant} on an application that ran a job of {first}"),
        );
    }
    if mapped_org && tenant != org {
        violation(
            w,
            app_id,
            Some(request.job_id),
            "helper_wrong_org",
            format!("a job of organisation {tenant} on an application of {org}"),
        );
    }
    let index = w.ledger.helper_job(HelperJobEntry {
        t_ms,
        app_id: app_id.to_owned(),
        job_id: request.job_id,
        runner_name: request.runner_name.clone(),
        tenant,
        reused: started.reused,
        checked: false,
        inner_status: "accepted".to_owned(),
    });
    Ok(Accepted {
        job,
        host: JobHost::Helper {
            index,
            generation: started.generation,
        },
        start_delay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("token abc")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&headers("Bearer")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
