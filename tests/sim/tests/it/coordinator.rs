//! The fake coordinator's endpoints and error paths, exercised over HTTP
//! with awc.

use paas_sim::coordinator::{
    CoordinatorConfig, CoordinatorHandle, Endpoint, FakeCoordinator, Fault, ForbiddenFlavour,
    JobSpec, JobState, Outcome, TokenStyle,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RUNNER: &str = "runner-token-aaaaaaaa";
const ADMIN: &str = "glpat-admin";
const USER: &str = "glpat-user";

fn start() -> CoordinatorHandle {
    start_with(CoordinatorConfig::default())
}

fn start_with(mut config: CoordinatorConfig) -> CoordinatorHandle {
    config.runner_tokens.push(RUNNER.to_owned());
    config.admin_tokens.push(ADMIN.to_owned());
    config.user_tokens.push(USER.to_owned());
    FakeCoordinator::start(config).expect("fake coordinator starts")
}

enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
    Form(&'static str),
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn try_call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Body,
    timeout: Duration,
) -> Result<Resp, awc::error::SendRequestError> {
    let client = awc::Client::builder().timeout(timeout).finish();
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let resp = match body {
        Body::None => req.send().await,
        Body::Json(v) => req.send_json(&v).await,
        Body::Raw(b) => req.send_body(b).await,
        Body::Form(f) => {
            req.content_type("application/x-www-form-urlencoded")
                .send_body(f)
                .await
        }
    };
    let mut resp = resp?;
    let body = resp.body().limit(8 << 20).await.expect("body").to_vec();
    Ok(Resp {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body,
    })
}

async fn call(method: &str, url: &str, headers: &[(&str, &str)], body: Body) -> Resp {
    try_call(method, url, headers, body, Duration::from_secs(10))
        .await
        .expect("request sent")
}

async fn request_job(c: &CoordinatorHandle, body: Value) -> Resp {
    call(
        "POST",
        &format!("{}/jobs/request", c.api_url()),
        &[],
        Body::Json(body),
    )
    .await
}

/// Enqueues a job and takes it as RUNNER; returns (id, token).
async fn running_job(c: &CoordinatorHandle, spec: JobSpec) -> (i64, String) {
    let id = c.enqueue_job(spec);
    let r = request_job(c, json!({"token": RUNNER})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let p = r.json();
    assert_eq!(p["id"], id);
    (id, p["token"].as_str().expect("token").to_owned())
}

async fn patch_trace(c: &CoordinatorHandle, id: i64, token: &str, range: &str, b: &[u8]) -> Resp {
    call(
        "PATCH",
        &format!("{}/jobs/{id}/trace", c.api_url()),
        &[("JOB-TOKEN", token), ("Content-Range", range)],
        Body::Raw(b.to_vec()),
    )
    .await
}

async fn put_job(c: &CoordinatorHandle, id: i64, body: Value) -> Resp {
    call(
        "PUT",
        &format!("{}/jobs/{id}", c.api_url()),
        &[],
        Body::Json(body),
    )
    .await
}

#[actix_rt::test]
async fn jobs_request_auth_queue_and_payload() {
    let c = start();
    let r = request_job(&c, json!({})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"error": "token is missing"}));
    let r = request_job(&c, json!({"token": "nope"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), json!({"message": "403 Forbidden"}));

    let r = request_job(&c, json!({"token": RUNNER})).await;
    assert_eq!(r.status, 204);
    let version = r
        .header("X-GitLab-Last-Update")
        .expect("last update header");

    // last_update equal to the queue version: cheap 204 echo
    let r = request_job(&c, json!({"token": RUNNER, "last_update": version})).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("X-GitLab-Last-Update"), Some(version.clone()));

    let spec = JobSpec::new("build")
        .flavor("XS")
        .duration(Duration::from_millis(40))
        .outcome(Outcome::Failed);
    let id = c.enqueue_job(spec);
    assert_eq!(c.job_status(id), Some(JobState::Pending));
    // the old version no longer matches: the job is handed out
    let r = request_job(
        &c,
        json!({"token": RUNNER, "last_update": version, "system_id": "r_abcdefabcdef",
               "info": {"executor": "docker", "features": {"variables": true}}}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let payload = r.json();
    let view = c.job(id).expect("job");
    assert_eq!(payload, view.payload);
    assert_eq!(view.status, JobState::Running);
    assert_eq!(view.history, vec![JobState::Pending, JobState::Running]);
    assert!(view.token.starts_with("glcbt-"));
    assert_eq!(payload["token"], view.token.as_str());
    let vars = payload["variables"].as_array().expect("variables");
    let var = |k: &str| {
        vars.iter()
            .find(|v| v["key"] == k)
            .map(|v| v["value"].clone())
    };
    assert_eq!(var("CI_CLEVER_CLOUD_FLAVOR"), Some(json!("XS")));
    assert_eq!(var("PAAS_SIM_DURATION_MS"), Some(json!("40")));
    assert_eq!(var("PAAS_SIM_OUTCOME"), Some(json!("failed")));
    assert_eq!(var("CI_JOB_TOKEN"), Some(json!(view.token)));
    let runner = c
        .runners()
        .into_iter()
        .find(|r| r.token == RUNNER)
        .expect("runner");
    assert!(runner.managers.contains("r_abcdefabcdef"));
    assert_eq!(
        runner.last_info,
        Some(json!({"executor": "docker", "features": {"variables": true}}))
    );
    assert_eq!(view.runner_id, Some(runner.id));

    // queue empty again
    let r = request_job(&c, json!({"token": RUNNER})).await;
    assert_eq!(r.status, 204);
    // the request journal keeps bodies and counts
    assert_eq!(c.count(Endpoint::JobsRequest), 6);
    let recorded = c.requests_to(Endpoint::JobsRequest);
    assert_eq!(recorded.len(), 6);
    assert_eq!(
        recorded
            .get(4)
            .and_then(|r| r.json())
            .map(|b| b["system_id"].clone()),
        Some(json!("r_abcdefabcdef"))
    );
    c.shutdown();
}

#[actix_rt::test]
async fn paused_runner_gets_no_job_and_fifo_order_holds() {
    let c = start();
    c.add_runner("paused-runner-tok", true);
    let first = c.enqueue_job(JobSpec::new("one"));
    let second = c.enqueue_job(JobSpec::new("two"));
    let r = request_job(&c, json!({"token": "paused-runner-tok"})).await;
    assert_eq!(r.status, 204);
    assert!(r.header("X-GitLab-Last-Update").is_some());
    assert!(c.set_runner_paused("paused-runner-tok", false));
    let r = request_job(&c, json!({"token": "paused-runner-tok"})).await;
    assert_eq!(r.json()["id"], first);
    // form-encoded bodies are accepted like JSON
    let r = call(
        "POST",
        &format!("{}/jobs/request", c.api_url()),
        &[],
        Body::Form("token=runner-token-aaaaaaaa"),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["id"], second);
}

#[actix_rt::test]
async fn long_polling_holds_until_the_queue_changes() {
    let mut config = CoordinatorConfig::default();
    config.settings.long_poll_ms = Some(5_000);
    let c = start_with(config);
    let r = request_job(&c, json!({"token": RUNNER})).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Gitlab-Ci-Builds-Polling").as_deref(), Some("yes"));
    let version = r.header("X-GitLab-Last-Update").expect("version");
    let ctl = c.control();
    let enqueuer = std::thread::spawn(move || {
        // Only once the long poll below has reached the coordinator (its
        // second jobs/request): on a loaded machine the client may take
        // longer than the pause to send it, and would then find the job.
        let deadline = Instant::now() + Duration::from_secs(4);
        while ctl.count(Endpoint::JobsRequest) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(150));
        ctl.enqueue_job(JobSpec::default())
    });
    let t0 = Instant::now();
    let r = request_job(&c, json!({"token": RUNNER, "last_update": version})).await;
    let waited = t0.elapsed();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("X-GitLab-Last-Update"), None);
    assert!(
        waited >= Duration::from_millis(100),
        "returned after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(4),
        "held the whole window: {waited:?}"
    );
    let id = enqueuer.join().expect("enqueuer");
    let r = request_job(&c, json!({"token": RUNNER, "last_update": version})).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["id"], id);

    // no change at all: 204 after the window
    c.update_settings(|s| s.long_poll_ms = Some(100));
    let version = r.header("X-GitLab-Last-Update").expect("version");
    let t0 = Instant::now();
    let r = request_job(&c, json!({"token": RUNNER, "last_update": version})).await;
    assert_eq!(r.status, 204);
    assert!(t0.elapsed() >= Duration::from_millis(90));
}

/// Queue versions are per runner, as GitLab's `runner:build_queue:<token>`:
/// a job only another runner may take neither ends a hold nor is handed
/// out; a job of this runner ends it at once.
#[actix_rt::test]
async fn a_hold_ends_only_for_the_runners_own_jobs() {
    const OTHER: &str = "other-runner-token-bbbbbbbb";
    let mut config = CoordinatorConfig::default();
    config.settings.long_poll_ms = Some(1_500);
    let c = start_with(config);
    c.add_runner(OTHER, false);
    let r = request_job(&c, json!({"token": RUNNER})).await;
    let version = r.header("X-GitLab-Last-Update").expect("version");
    let ctl = c.control();
    let enqueuer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(4);
        while ctl.stats().long_polls_holding == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        ctl.enqueue_job(JobSpec::new("theirs").for_runner(OTHER))
    });
    let t0 = Instant::now();
    let r = request_job(&c, json!({"token": RUNNER, "last_update": version})).await;
    let theirs = enqueuer.join().expect("enqueuer");
    assert_eq!(r.status, 204);
    assert!(
        t0.elapsed() >= Duration::from_millis(1_400),
        "the other runner's job ended the hold after {:?}",
        t0.elapsed()
    );
    let stats = c.stats();
    assert_eq!((stats.long_polls_holding, stats.long_polls_held), (0, 1));
    // this runner is never handed the other runner's job
    let r = request_job(&c, json!({"token": RUNNER})).await;
    assert_eq!(r.status, 204);
    let version = r.header("X-GitLab-Last-Update").expect("version");
    let r = request_job(&c, json!({"token": OTHER})).await;
    assert_eq!(r.json()["id"], theirs);

    // a job of this runner ends its hold at once
    let ctl = c.control();
    let enqueuer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(4);
        while ctl.stats().long_polls_holding == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        ctl.enqueue_job(JobSpec::new("mine").for_runner(RUNNER))
    });
    let t0 = Instant::now();
    let r = request_job(&c, json!({"token": RUNNER, "last_update": version})).await;
    let mine = enqueuer.join().expect("enqueuer");
    assert_eq!(r.status, 204);
    assert!(
        t0.elapsed() < Duration::from_millis(1_400),
        "{:?}",
        t0.elapsed()
    );
    let r = request_job(&c, json!({"token": RUNNER, "last_update": version})).await;
    assert_eq!(r.json()["id"], mine);
}

#[actix_rt::test]
async fn feature_gating_fails_unsupported_jobs() {
    let c = start();
    let mut spec = JobSpec::new("needs-fallback");
    spec.required_features = vec!["fallback_cache_keys".to_owned()];
    let gated = c.enqueue_job(spec.clone());
    let r = request_job(
        &c,
        json!({"token": RUNNER, "info": {"features": {"cache": true}}}),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(c.job_status(gated), Some(JobState::Failed));
    assert_eq!(
        c.job_failure_reason(gated).as_deref(),
        Some("runner_unsupported")
    );
    let ok = c.enqueue_job(spec);
    let r = request_job(
        &c,
        json!({"token": RUNNER, "info": {"features": {"fallback_cache_keys": true}}}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["id"], ok);
}

#[actix_rt::test]
async fn job_status_by_job_token() {
    let c = start();
    let (id, token) = running_job(&c, JobSpec::default()).await;
    let url = format!("{}/job", c.api_url());
    let r = call("GET", &format!("{url}?job_token={token}"), &[], Body::None).await;
    assert_eq!(r.status, 200);
    let entity = r.json();
    assert_eq!(entity["id"], id);
    assert_eq!(entity["status"], "running");
    let r = call("GET", &url, &[("JOB-TOKEN", &token)], Body::None).await;
    assert_eq!(r.json()["status"], "running");
    let auth = format!("Bearer {token}");
    let r = call("GET", &url, &[("Authorization", &auth)], Body::None).await;
    assert_eq!(r.status, 200);

    assert!(c.set_job_status(id, JobState::Canceling));
    let r = call("GET", &url, &[("JOB-TOKEN", &token)], Body::None).await;
    assert_eq!(r.json()["status"], "canceling");

    let r = call("GET", &format!("{url}?token=wrong"), &[], Body::None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), json!({"message": "401 Unauthorized"}));
    let r = call("GET", &url, &[("PRIVATE-TOKEN", ADMIN)], Body::None).await;
    assert_eq!(r.status, 404);

    assert!(c.cancel_job(id));
    let r = call("GET", &url, &[("JOB-TOKEN", &token)], Body::None).await;
    assert_eq!(r.status, 401, "401 once the job is no longer executing");
    assert_eq!(
        c.job_history(id),
        Some(vec![
            JobState::Pending,
            JobState::Running,
            JobState::Canceling,
            JobState::Canceled
        ])
    );
}

#[actix_rt::test]
async fn job_update_states_reasons_and_403_after_finish() {
    let c = start();
    let (id, token) = running_job(&c, JobSpec::default()).await;
    let r = put_job(&c, id, json!({"token": token, "state": "running"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Job-Status").as_deref(), Some("running"));
    let r = put_job(&c, id, json!({"token": token, "state": "pending"})).await;
    assert_eq!(r.status, 400);
    let r = put_job(&c, id, json!({"token": "wrong", "state": "failed"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), json!({"message": "403 Forbidden"}));
    let r = put_job(&c, 999_999, json!({"token": token, "state": "failed"})).await;
    assert_eq!(r.status, 403);
    let r = call(
        "PUT",
        &format!("{}/jobs/abc", c.api_url()),
        &[],
        Body::Json(json!({"token": token})),
    )
    .await;
    assert_eq!(r.status, 400);

    let body = json!({"token": token, "state": "failed", "failure_reason": "script_failure",
                      "exit_code": 103});
    let r = put_job(&c, id, body.clone()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Job-Status").as_deref(), Some("failed"));
    let view = c.job(id).expect("job");
    assert_eq!(view.status, JobState::Failed);
    assert_eq!(view.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(view.exit_code, Some(103));
    assert_eq!(view.updates.last(), Some(&body));

    // over: 403 with the legacy wording and Job-Status
    let r = put_job(&c, id, json!({"token": token, "state": "success"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("Job-Status").as_deref(), Some("failed"));
    assert_eq!(
        r.json(),
        json!({"message": "403 Forbidden - Job is not running"})
    );

    // unknown reasons are stored as unknown_failure; token via header works
    let (id2, token2) = running_job(&c, JobSpec::default()).await;
    let r = call(
        "PUT",
        &format!("{}/jobs/{id2}", c.api_url()),
        &[("JOB-TOKEN", &token2)],
        Body::Json(json!({"state": "failed", "failure_reason": "made_up"})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        c.job_failure_reason(id2).as_deref(),
        Some("unknown_failure")
    );

    // modern flavours
    c.update_settings(|s| s.forbidden_flavour = ForbiddenFlavour::NotProcessing);
    let r = put_job(&c, id2, json!({"token": token2, "state": "success"})).await;
    assert_eq!(
        r.json(),
        json!({"message": "403 Forbidden - Job is not processing on runner"})
    );
    c.update_settings(|s| s.invalidate_job_tokens = true);
    let (id3, token3) = running_job(&c, JobSpec::default()).await;
    let r = put_job(&c, id3, json!({"token": token3, "state": "success"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(c.job_status(id3), Some(JobState::Success));
    let r = put_job(&c, id3, json!({"token": token3, "state": "success"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), json!({"message": "403 Forbidden"}));
    assert_eq!(r.header("Job-Status"), None);

    // a canceling job that finishes ends canceled
    let (id4, token4) = running_job(&c, JobSpec::default()).await;
    c.set_job_status(id4, JobState::Canceling);
    let r = put_job(&c, id4, json!({"token": token4, "state": "success"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(c.job_status(id4), Some(JobState::Canceled));
}

#[actix_rt::test]
async fn trace_patch_offsets_416_resync_and_403() {
    let c = start();
    let (id, token) = running_job(&c, JobSpec::default()).await;
    let url = format!("{}/jobs/{id}/trace", c.api_url());
    let r = call(
        "PATCH",
        &url,
        &[("JOB-TOKEN", &token)],
        Body::Raw(b"x".to_vec()),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"message": "400 Missing header Content-Range"})
    );
    let r = patch_trace(&c, id, "wrong", "0-1", b"x").await;
    assert_eq!(r.status, 403);

    // exclusive end (reference) and inclusive end (upstream) both work
    let r = patch_trace(&c, id, &token, "0-6", b"hello\n").await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Range").as_deref(), Some("0-6"));
    assert_eq!(r.header("Job-Status").as_deref(), Some("running"));
    assert_eq!(
        r.header("X-GitLab-Trace-Update-Interval").as_deref(),
        Some("30")
    );
    // lengths in bytes: "é" is 2 bytes
    let r = patch_trace(&c, id, &token, "6-7", "é\n".as_bytes()).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Range").as_deref(), Some("0-9"));
    // mismatch: 416 with the current length, nothing appended
    let r = patch_trace(&c, id, &token, "0-3", b"abc").await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Range").as_deref(), Some("0-9"));
    let r = patch_trace(&c, id, &token, "bytes 9-12", b"abc").await;
    assert_eq!(r.status, 416, "a `bytes ` unit reads as start 0");
    // resync from the Range header
    let r = patch_trace(&c, id, &token, "9-11", b"abc").await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Range").as_deref(), Some("0-12"));
    // token via query works too; the job token is masked with same length
    let masked_line = format!("token={token}\n");
    let r = call(
        "PATCH",
        &format!("{url}?token={token}"),
        &[("Content-Range", "12-99")],
        Body::Raw(masked_line.clone().into_bytes()),
    )
    .await;
    assert_eq!(r.status, 202);
    let trace = c.job_trace(id).expect("trace");
    assert_eq!(trace.len(), 12 + masked_line.len());
    let text = String::from_utf8(trace).expect("utf8");
    assert!(text.starts_with("hello\né\nabc"));
    assert!(!text.contains(&token));
    // over: 403 with Job-Status
    c.cancel_job(id);
    let len = c.job(id).expect("job").trace_len.to_string();
    let r = patch_trace(&c, id, &token, &format!("{len}-{len}"), b"late").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("Job-Status").as_deref(), Some("canceled"));

    // size limit: 403 and the job fails trace_size_exceeded
    c.update_settings(|s| s.trace_size_limit = Some(4));
    let (id2, token2) = running_job(&c, JobSpec::default()).await;
    let r = patch_trace(&c, id2, &token2, "0-5", b"12345").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        c.job_failure_reason(id2).as_deref(),
        Some("trace_size_exceeded")
    );
}

#[actix_rt::test]
async fn trace_read_needs_an_admin_token() {
    let c = start();
    let (id, token) = running_job(&c, JobSpec::default()).await;
    let url = format!("{}/projects/17/jobs/{id}/trace", c.api_url());
    let r = call("GET", &url, &[], Body::None).await;
    assert_eq!(r.status, 401);
    let r = call("GET", &url, &[("PRIVATE-TOKEN", "bad")], Body::None).await;
    assert_eq!(r.status, 401);
    let r = call("GET", &url, &[("PRIVATE-TOKEN", USER)], Body::None).await;
    assert_eq!(r.status, 403);
    let r = call("GET", &url, &[("PRIVATE-TOKEN", ADMIN)], Body::None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    c.update_settings(|s| s.legacy_empty_trace_404 = true);
    let r = call("GET", &url, &[("PRIVATE-TOKEN", ADMIN)], Body::None).await;
    assert_eq!(r.status, 404);

    let r = patch_trace(&c, id, &token, "0-4", b"abcd").await;
    assert_eq!(r.status, 202);
    assert_eq!(c.write_trace(id, b"ef"), Some(6));
    let r = call("GET", &url, &[("PRIVATE-TOKEN", ADMIN)], Body::None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"abcdef");
    assert_eq!(
        r.header("Content-Disposition"),
        Some(format!("infile; filename=\"{id}.log\""))
    );
    let by_path = format!("{}/projects/group%2Fdemo/jobs/{id}/trace", c.api_url());
    let r = call("GET", &by_path, &[("PRIVATE-TOKEN", ADMIN)], Body::None).await;
    assert_eq!(r.body, b"abcdef");
    let r = call(
        "GET",
        &format!("{}/projects/18/jobs/{id}/trace", c.api_url()),
        &[("PRIVATE-TOKEN", ADMIN)],
        Body::None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        "GET",
        &format!("{}/projects/17/jobs/1/trace", c.api_url()),
        &[("PRIVATE-TOKEN", ADMIN)],
        Body::None,
    )
    .await;
    assert_eq!(r.status, 404);
}

#[actix_rt::test]
async fn job_read_shows_the_status_to_admin_tokens_only() {
    let c = start();
    let (id, _token) = running_job(&c, JobSpec::default()).await;
    let url = format!("{}/projects/17/jobs/{id}", c.api_url());
    let r = call("GET", &url, &[], Body::None).await;
    assert_eq!(r.status, 401);
    let r = call("GET", &url, &[("PRIVATE-TOKEN", "bad")], Body::None).await;
    assert_eq!(r.status, 401);
    let r = call("GET", &url, &[("PRIVATE-TOKEN", USER)], Body::None).await;
    assert_eq!(r.status, 403);
    let status = |body: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(body).expect("json");
        (v["id"].as_i64(), v["status"].as_str().map(str::to_owned))
    };
    let r = call("GET", &url, &[("PRIVATE-TOKEN", ADMIN)], Body::None).await;
    assert_eq!(r.status, 200);
    assert_eq!(status(&r.body), (Some(id), Some("running".to_owned())));
    c.cancel_job(id);
    let r = call("GET", &url, &[("PRIVATE-TOKEN", ADMIN)], Body::None).await;
    assert_eq!(status(&r.body), (Some(id), Some("canceled".to_owned())));
    for other in [
        format!("{}/projects/18/jobs/{id}", c.api_url()),
        format!("{}/projects/17/jobs/{}", c.api_url(), id + 1000),
    ] {
        let r = call("GET", &other, &[("PRIVATE-TOKEN", ADMIN)], Body::None).await;
        assert_eq!(r.status, 404, "{other}");
    }
    assert_eq!(c.count(Endpoint::JobRead), 7);
}

#[actix_rt::test]
async fn group_custom_attributes_route_on_raw_paths() {
    let c = start();
    let gid = c.set_group_attributes(
        "tenant",
        &[("cc_orga_id", "orga_1"), ("cc_orga_token", "t")],
    );
    c.set_group_attributes("parent/sub", &[("k", "v")]);
    let api = c.api_url();
    let url = format!("{api}/groups/tenant/custom_attributes");
    let r = call("GET", &url, &[], Body::None).await;
    assert_eq!(r.status, 401);
    let r = call("GET", &url, &[("PRIVATE-TOKEN", USER)], Body::None).await;
    assert_eq!(r.status, 403);
    let r = call("GET", &url, &[("PRIVATE-TOKEN", ADMIN)], Body::None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!([{"key": "cc_orga_id", "value": "orga_1"}, {"key": "cc_orga_token", "value": "t"}])
    );
    let r = call(
        "GET",
        &format!("{api}/groups/{gid}/custom_attributes"),
        &[("PRIVATE-TOKEN", ADMIN)],
        Body::None,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(
        "GET",
        &format!("{api}/groups/parent%2Fsub/custom_attributes"),
        &[("PRIVATE-TOKEN", ADMIN)],
        Body::None,
    )
    .await;
    assert_eq!(r.json(), json!([{"key": "k", "value": "v"}]));
    let r = call(
        "GET",
        &format!("{api}/groups/parent/sub/custom_attributes"),
        &[("PRIVATE-TOKEN", ADMIN)],
        Body::None,
    )
    .await;
    assert_eq!(r.status, 404, "an unencoded slash is not a group id");
    let r = call(
        "GET",
        &format!("{api}/groups/someuser/custom_attributes"),
        &[("PRIVATE-TOKEN", ADMIN)],
        Body::None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"message": "404 Group Not Found"}));
    let r = call(
        "GET",
        &format!("{api}/groups/tenant/custom_attributes/cc_orga_id"),
        &[("PRIVATE-TOKEN", ADMIN)],
        Body::None,
    )
    .await;
    assert_eq!(r.json(), json!({"key": "cc_orga_id", "value": "orga_1"}));
    let r = call(
        "GET",
        &format!("{api}/groups/tenant/custom_attributes/missing"),
        &[("PRIVATE-TOKEN", ADMIN)],
        Body::None,
    )
    .await;
    assert_eq!(r.status, 404);
}

#[actix_rt::test]
async fn registration_verify_delete_and_reset() {
    let mut config = CoordinatorConfig::default();
    config
        .registration_tokens
        .push(("GR1348941regtokenaaaaaaaaaa".to_owned(), TokenStyle::Legacy));
    let c = start_with(config);
    c.add_registration_token("regglrt", TokenStyle::Glrt);
    let api = c.api_url();
    let register = |body: Value| {
        let url = format!("{api}/runners");
        async move { call("POST", &url, &[], Body::Json(body)).await }
    };
    let r = register(json!({"description": "x"})).await;
    assert_eq!(r.status, 400);
    let r = register(json!({"token": "unknown"})).await;
    assert_eq!(r.status, 403);
    let r = register(json!({"token": "regglrt", "paused": true, "active": false})).await;
    assert_eq!(r.status, 400);

    let r = register(
        json!({"token": "GR1348941regtokenaaaaaaaaaa", "description": "paas",
                            "info": {"name": "paas"}, "active": false}),
    )
    .await;
    assert_eq!(r.status, 201);
    let answer = r.json();
    let legacy = answer["token"].as_str().expect("token").to_owned();
    assert_eq!(legacy.len(), 20);
    assert!(answer["id"].as_i64().is_some());
    assert_eq!(answer["token_expires_at"], Value::Null);
    // created paused: no job
    c.enqueue_job(JobSpec::default());
    let r = request_job(&c, json!({"token": legacy})).await;
    assert_eq!(r.status, 204);
    let runner = c
        .runners()
        .into_iter()
        .find(|r| r.token == legacy)
        .expect("runner");
    assert!(runner.paused);
    assert_eq!(runner.description.as_deref(), Some("paas"));

    let r = register(json!({"token": "regglrt"})).await;
    let glrt = r.json()["token"].as_str().expect("token").to_owned();
    assert!(glrt.starts_with("glrt-"));
    let r = request_job(&c, json!({"token": glrt})).await;
    assert_eq!(r.status, 201);
    // a glrt- runner token is not a registration token
    let r = register(json!({"token": glrt})).await;
    assert_eq!(r.status, 403);

    // verify
    let verify = format!("{api}/runners/verify");
    let r = call(
        "POST",
        &verify,
        &[],
        Body::Json(json!({"token": glrt, "system_id": "r_000000000001"})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["token"], glrt.as_str());
    let r = call("POST", &verify, &[], Body::Json(json!({"token": "nope"}))).await;
    assert_eq!(r.status, 403);
    c.update_settings(|s| s.legacy_verify_plain = true);
    let r = call("POST", &verify, &[], Body::Json(json!({"token": glrt}))).await;
    assert_eq!((r.status, r.text()), (200, "200".to_owned()));

    // managers
    let managers = format!("{api}/runners/managers");
    let r = call("DELETE", &managers, &[], Body::Json(json!({"token": glrt}))).await;
    assert_eq!(r.status, 400);
    let r = call(
        "DELETE",
        &managers,
        &[],
        Body::Json(json!({"token": "nope", "system_id": "r_000000000001"})),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        "DELETE",
        &managers,
        &[],
        Body::Json(json!({"token": glrt, "system_id": "r_999999999999"})),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        "DELETE",
        &managers,
        &[],
        Body::Json(json!({"token": glrt, "system_id": "r_000000000001"})),
    )
    .await;
    assert_eq!(r.status, 204);

    // reset
    let reset = format!("{api}/runners/reset_authentication_token");
    let r = call("POST", &reset, &[], Body::Json(json!({"token": glrt}))).await;
    assert_eq!(r.status, 201);
    let rotated = r.json()["token"].as_str().expect("token").to_owned();
    assert!(rotated.starts_with("glrt-") && rotated != glrt);
    let r = request_job(&c, json!({"token": glrt})).await;
    assert_eq!(r.status, 403);
    let r = call("POST", &reset, &[], Body::Json(json!({"token": "nope"}))).await;
    assert_eq!(r.status, 403);

    // delete
    let runners = format!("{api}/runners");
    let r = call(
        "DELETE",
        &runners,
        &[],
        Body::Json(json!({"token": rotated})),
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        "DELETE",
        &runners,
        &[],
        Body::Json(json!({"token": rotated})),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = request_job(&c, json!({"token": rotated})).await;
    assert_eq!(r.status, 403);

    // registration disabled
    c.update_settings(|s| s.registration_disabled = true);
    let r = register(json!({"token": "regglrt"})).await;
    assert_eq!(r.status, 410);
}

#[actix_rt::test]
async fn injected_faults_then_normal_service() {
    let c = start();
    c.inject_fault(Endpoint::JobsRequest, Fault::status(500, 2));
    c.inject_fault(
        Endpoint::JobsRequest,
        Fault::status(429, 1).with_retry_after(7),
    );
    c.inject_fault(Endpoint::JobsRequest, Fault::html(503, 1));
    c.inject_fault(
        Endpoint::JobsRequest,
        Fault::status(201, 1).with_body("<html>not json", "text/html"),
    );
    c.inject_fault(Endpoint::JobsRequest, Fault::status(409, 1));
    let id = c.enqueue_job(JobSpec::default());
    let mut seen = Vec::new();
    for _ in 0..7 {
        let r = request_job(&c, json!({"token": RUNNER})).await;
        seen.push((r.status, r.header("Retry-After"), r.header("content-type")));
        if r.status == 503 {
            assert!(r.text().contains("<html>"));
        }
    }
    let statuses: Vec<u16> = seen.iter().map(|s| s.0).collect();
    assert_eq!(statuses, vec![500, 500, 429, 503, 201, 409, 201]);
    assert_eq!(seen.get(2).and_then(|s| s.1.clone()).as_deref(), Some("7"));
    assert_eq!(
        seen.get(4).and_then(|s| s.2.clone()).as_deref(),
        Some("text/html")
    );
    // faults never touched the queue: the job went out on the last call only
    assert_eq!(c.job_status(id), Some(JobState::Running));
    assert_eq!(c.count(Endpoint::JobsRequest), 7);
}

#[actix_rt::test]
async fn hang_latency_down_and_migration_backoff() {
    let c = start();
    c.inject_fault(Endpoint::JobStatus, Fault::hang(1));
    let url = format!("{}/job", c.api_url());
    let res = try_call(
        "GET",
        &url,
        &[("JOB-TOKEN", "x")],
        Body::None,
        Duration::from_millis(300),
    )
    .await;
    assert!(
        matches!(res, Err(awc::error::SendRequestError::Timeout)),
        "{res:?}"
    );
    // the hang consumed its one use
    let r = call("GET", &url, &[("JOB-TOKEN", "x")], Body::None).await;
    assert_eq!(r.status, 401);

    c.set_latency(Endpoint::JobStatus, Some(Duration::from_millis(200)));
    let t0 = Instant::now();
    let r = call("GET", &url, &[("JOB-TOKEN", "x")], Body::None).await;
    assert_eq!(r.status, 401);
    assert!(t0.elapsed() >= Duration::from_millis(190));
    c.set_latency(Endpoint::JobStatus, None);

    c.set_migration_backoff(true);
    let r = request_job(&c, json!({"token": RUNNER})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After").as_deref(), Some("60"));
    let r = call("GET", &url, &[("JOB-TOKEN", "x")], Body::None).await;
    assert_eq!(r.status, 401, "GET /job is not a runner-API endpoint");
    c.set_migration_backoff(false);

    c.set_down(true);
    for (method, path) in [
        ("POST", "/jobs/request"),
        ("GET", "/job"),
        ("GET", "/groups/g/custom_attributes"),
        ("GET", "/nothing/here"),
    ] {
        let r = call(method, &format!("{}{path}", c.api_url()), &[], Body::None).await;
        assert_eq!(r.status, 502, "{method} {path}");
        assert_eq!(r.header("content-type").as_deref(), Some("text/html"));
    }
    // control stays reachable while down
    let r = call("GET", &format!("{}/stats", c.sim_url()), &[], Body::None).await;
    assert_eq!(r.status, 200);
    c.set_down(false);
    let r = request_job(&c, json!({"token": RUNNER})).await;
    assert_eq!(r.status, 204);
    c.shutdown();
}

#[actix_rt::test]
async fn path_prefix_is_preserved() {
    let c = start_with(CoordinatorConfig {
        path_prefix: "/gitlab/".to_owned(),
        ..CoordinatorConfig::default()
    });
    assert!(c.url().ends_with("/gitlab"));
    let r = request_job(&c, json!({"token": RUNNER})).await;
    assert_eq!(r.status, 204);
    let bare = format!("http://{}/api/v4/jobs/request", c.addr());
    let r = call("POST", &bare, &[], Body::Json(json!({"token": RUNNER}))).await;
    assert_eq!(r.status, 404);
    let id = c.enqueue_job(JobSpec::default());
    let repo = c.job(id).expect("job").payload["git_info"]["repo_url"].clone();
    assert!(
        repo.as_str()
            .is_some_and(|u| u.contains("/gitlab/group/demo.git")),
        "{repo}"
    );
    assert!(FakeCoordinator::start(CoordinatorConfig {
        path_prefix: "nope".to_owned(),
        ..CoordinatorConfig::default()
    })
    .is_err());
}

#[actix_rt::test]
async fn http_control_api() {
    let c = start();
    let sim = c.sim_url();
    let r = call(
        "POST",
        &format!("{sim}/jobs"),
        &[],
        Body::Json(json!({"name": "remote", "flavor": "M", "duration_ms": 5, "outcome": "failed"})),
    )
    .await;
    assert_eq!(r.status, 201);
    let id = r.json()["id"].as_i64().expect("id");
    let r = call("GET", &format!("{sim}/jobs/{id}"), &[], Body::None).await;
    let view = r.json();
    assert_eq!(view["id"], id);
    assert_eq!(view["status"], "pending");
    assert_eq!(view["trace_len"], 0);
    assert_eq!(view["failure_reason"], Value::Null);
    assert_eq!(view["spec"]["flavor"], "M");
    assert_eq!(view["payload"]["id"], id);
    let r = call("GET", &format!("{sim}/jobs"), &[], Body::None).await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    let r = call(
        "POST",
        &format!("{sim}/jobs"),
        &[],
        Body::Json(json!({"nmae": 1})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call("GET", &format!("{sim}/jobs/424242"), &[], Body::None).await;
    assert_eq!(r.status, 404);

    let r = call(
        "POST",
        &format!("{sim}/faults"),
        &[],
        Body::Json(json!({"endpoint": "jobs_request", "times": 1, "status": 502, "html": true})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request_job(&c, json!({"token": RUNNER})).await;
    assert_eq!(r.status, 502);
    let r = call(
        "POST",
        &format!("{sim}/faults"),
        &[],
        Body::Json(json!({"status": 502})),
    )
    .await;
    assert_eq!(r.status, 400, "a rule needs an endpoint");

    let r = request_job(&c, json!({"token": RUNNER})).await;
    assert_eq!(r.status, 201);
    let token = r.json()["token"].as_str().expect("token").to_owned();
    let r = call(
        "POST",
        &format!("{sim}/jobs/{id}/trace"),
        &[],
        Body::Raw(b"inner runner line\n".to_vec()),
    )
    .await;
    assert_eq!(r.json()["trace_len"], 18);
    let r = call("GET", &format!("{sim}/jobs/{id}/trace"), &[], Body::None).await;
    assert_eq!(r.body, b"inner runner line\n");
    let r = call("POST", &format!("{sim}/jobs/{id}/cancel"), &[], Body::None).await;
    assert_eq!(r.status, 200);
    let r = call("POST", &format!("{sim}/jobs/{id}/cancel"), &[], Body::None).await;
    assert_eq!(r.status, 409);
    let r = put_job(&c, id, json!({"token": token, "state": "failed"})).await;
    assert_eq!(r.status, 403);

    let r = call("GET", &format!("{sim}/stats"), &[], Body::None).await;
    let stats = r.json();
    assert_eq!(stats["jobs"]["canceled"], 1);
    assert_eq!(stats["requests"]["jobs_request"], 2);
    assert_eq!(stats["requests"]["job_update"], 1);
    assert_eq!(stats["jobs_total"], 1);

    // tokens, runners and groups over HTTP
    for (path, body) in [
        ("runners", json!({"token": "remote-runner"})),
        (
            "registration_tokens",
            json!({"token": "remote-reg", "style": "glrtr"}),
        ),
        ("admin_tokens", json!({"token": "remote-admin"})),
        (
            "groups",
            json!({"path": "remote-group", "attributes": {"a": "b"}}),
        ),
    ] {
        let r = call("POST", &format!("{sim}/{path}"), &[], Body::Json(body)).await;
        assert!(r.status == 200 || r.status == 201, "{path}: {}", r.status);
    }
    let r = request_job(&c, json!({"token": "remote-runner"})).await;
    assert_eq!(r.status, 204);
    let r = call(
        "POST",
        &format!("{}/runners", c.api_url()),
        &[],
        Body::Json(json!({"token": "remote-reg"})),
    )
    .await;
    assert!(r.json()["token"]
        .as_str()
        .is_some_and(|t| t.starts_with("glrtr-")));
    let r = call(
        "GET",
        &format!("{}/groups/remote-group/custom_attributes", c.api_url()),
        &[("PRIVATE-TOKEN", "remote-admin")],
        Body::None,
    )
    .await;
    assert_eq!(r.json(), json!([{"key": "a", "value": "b"}]));
}

#[actix_rt::test]
async fn shutdown_closes_the_port() {
    let c = start();
    let url = c.api_url();
    let ctl = c.control();
    c.shutdown();
    let res = try_call(
        "POST",
        &format!("{url}/jobs/request"),
        &[],
        Body::Json(json!({"token": RUNNER})),
        Duration::from_secs(2),
    )
    .await;
    assert!(res.is_err(), "server still answers: {res:?}");
    // the control handle keeps the frozen state readable
    assert_eq!(ctl.count(Endpoint::JobsRequest), 0);
}
