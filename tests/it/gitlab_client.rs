//! The GitLab coordinator client against paas-sim's fake coordinator:
//! every call, every status class, 416 resync, timeouts, an unreachable
//! coordinator, and the raw job payload round trip.

use heptapod_paas_runner::executors::clever::GroupAttributes;
use heptapod_paas_runner::gitlab::{
    CoordinatorSettings, GitlabCoordinator, JobRequestOptions, RunnersApi, Timeouts, USER_AGENT,
};
use heptapod_paas_runner::secret::Secret;
use paas_actors::ports::{
    Coordinator, CoordinatorError, FailureReason, Job, JobApiStatus, JobOwner, JobStatus, PollKind,
    TraceAppend,
};
use paas_actors::reconcile::{judge, Identified};
use paas_sim::coordinator::{
    CoordinatorConfig, CoordinatorHandle, Endpoint, FakeCoordinator, Fault, JobSpec, JobState,
    TokenStyle,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RUNNER: &str = "glrt-runnertokenAAAAAAAAAAAA";
const ADMIN: &str = "glpat-admin-token-xyz";
const USER: &str = "glpat-user-token-xyz";
const ATTRS: &str = "glpat-attributes-token";

fn start() -> CoordinatorHandle {
    start_with(CoordinatorConfig::default())
}

fn start_with(mut config: CoordinatorConfig) -> CoordinatorHandle {
    config.runner_tokens.push(RUNNER.to_owned());
    config.admin_tokens.push(ADMIN.to_owned());
    config.admin_tokens.push(ATTRS.to_owned());
    config.user_tokens.push(USER.to_owned());
    FakeCoordinator::start(config).expect("fake coordinator")
}

fn settings(c: &CoordinatorHandle) -> CoordinatorSettings {
    let mut s = CoordinatorSettings::new(c.url(), Secret::new(RUNNER));
    s.trace_watch_token = Some(Secret::new(ADMIN));
    s.attributes_token = Some(Secret::new(ATTRS));
    s.system_id = Some("r_0123456789ab".to_owned());
    s.timeouts = Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(5),
        long_poll: Duration::from_secs(8),
    };
    s
}

fn client(c: &CoordinatorHandle) -> GitlabCoordinator {
    GitlabCoordinator::new(settings(c)).expect("client")
}

/// Asserts that an error names no secret and no query string.
fn assert_clean(err: &CoordinatorError, secrets: &[&str]) {
    let text = err.to_string();
    for s in secrets {
        assert!(!text.contains(s), "secret leaked in {text:?}");
    }
    assert!(!text.contains('?'), "query string in {text:?}");
}

async fn take_job(c: &CoordinatorHandle, gl: &GitlabCoordinator, spec: JobSpec) -> Job {
    let id = c.enqueue_job(spec);
    let job = gl
        .request_job(PollKind::Short)
        .await
        .expect("request ok")
        .expect("a job");
    assert_eq!(job.id, id);
    job
}

#[actix_rt::test]
async fn request_job_keeps_the_raw_payload_and_sends_a_sane_body() {
    let c = start();
    let gl = client(&c);
    assert_eq!(gl.request_job(PollKind::Short).await, Ok(None));
    let spec = JobSpec::new("build")
        .flavor("M")
        .variable("CI_PROJECT_ROOT_NAMESPACE", "second")
        .variable("UNICODE", "héhé ✓");
    let id = c.enqueue_job(spec);
    let job = gl
        .request_job(PollKind::Short)
        .await
        .expect("ok")
        .expect("job");
    let view = c.job(id).expect("job view");
    assert_eq!(*job.payload, view.payload, "payload must round-trip");
    assert_eq!(job.token.expose(), view.token);
    assert_eq!(job.project_id, Some(17));
    assert_eq!(job.variable("CI_PROJECT_ROOT_NAMESPACE"), Some("group"));
    assert_eq!(job.variable("UNICODE"), Some("héhé ✓"));
    // key order survives too
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&job.payload), keys(&view.payload));

    let recorded = c.requests_to(Endpoint::JobsRequest);
    let last = recorded.last().expect("recorded");
    assert_eq!(last.json(), Some(gl.request_body(None)));
    assert_eq!(last.header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("heptapod-paas-runner/"));
    let body = last.json().expect("json");
    assert_eq!(body["system_id"], "r_0123456789ab");
    assert_eq!(body["info"]["executor"], "docker");
    // The revision `--version` shows (embedded by build.rs).
    assert_eq!(
        body["info"]["revision"],
        heptapod_paas_runner::build_info::REVISION
    );
    let features = &body["info"]["features"];
    assert_eq!(features["fallback_cache_keys"], true);
    assert_eq!(features["vault_secrets"], true);
    assert_eq!(features["shared"], false);
    assert!(features.get("two_phase_job_commit").is_none());
    assert!(features.get("cancel_gracefully").is_none());
    assert!(
        body.get("last_update").is_none(),
        "long polling is off by default"
    );
    assert!(last.query.is_empty());
}

#[actix_rt::test]
async fn reference_request_body_parity() {
    let c = start();
    let mut s = settings(&c);
    s.request = JobRequestOptions::reference();
    let gl = GitlabCoordinator::new(s).expect("client");
    let expected = json!({"token": RUNNER,
     "info": {"executor": "docker",
              "features": {"upload_multiple_artifacts": true, "upload_raw_artifacts": true,
                "refspecs": true, "artifacts": true, "artifacts_exclude": true,
                "multi_build_steps": true, "return_exit_code": true, "raw_variables": true,
                "cache": true, "masking": true, "variables": true, "image": true,
                "services": true, "session": true, "terminal": true,
                "shared": false, "proxy": false}}});
    assert_eq!(gl.request_body(None), expected);
    assert_eq!(gl.request_job(PollKind::Short).await, Ok(None));
    let sent = c.requests_to(Endpoint::JobsRequest);
    assert_eq!(sent.last().and_then(|r| r.json()), Some(expected));
}

#[actix_rt::test]
async fn request_job_status_classes() {
    let c = start();
    let gl = client(&c);
    let secrets = [RUNNER, ADMIN, ATTRS];

    c.inject_fault(Endpoint::JobsRequest, Fault::status(409, 1));
    assert_eq!(gl.request_job(PollKind::Short).await, Ok(None));

    for status in [401, 403, 422] {
        c.inject_fault(Endpoint::JobsRequest, Fault::status(status, 1));
        let err = gl.request_job(PollKind::Short).await.expect_err("rejected");
        assert!(
            matches!(err, CoordinatorError::Rejected { .. }),
            "{status}: {err}"
        );
        assert!(err.to_string().contains(&status.to_string()));
        assert_clean(&err, &secrets);
    }

    c.inject_fault(
        Endpoint::JobsRequest,
        Fault::status(429, 1).with_retry_after(7),
    );
    match gl.request_job(PollKind::Short).await {
        Err(CoordinatorError::Unavailable { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("429: {other:?}"),
    }
    for fault in [
        Fault::status(500, 1),
        Fault::html(502, 1),
        Fault::html(503, 1),
        Fault::status(504, 1),
    ] {
        c.inject_fault(Endpoint::JobsRequest, fault);
        let err = gl
            .request_job(PollKind::Short)
            .await
            .expect_err("unavailable");
        assert!(err.is_transient(), "{err}");
        assert_clean(&err, &secrets);
    }
    // the HTML body is quoted briefly, on one line
    c.inject_fault(Endpoint::JobsRequest, Fault::html(502, 1));
    let err = gl
        .request_job(PollKind::Short)
        .await
        .expect_err("502")
        .to_string();
    assert!(err.contains("502 Bad Gateway"), "{err}");
    assert!(!err.contains('\n'));
    assert!(err.len() < 600, "{err}");

    for status in [400, 413] {
        c.inject_fault(Endpoint::JobsRequest, Fault::status(status, 1));
        let err = gl
            .request_job(PollKind::Short)
            .await
            .expect_err("unexpected");
        assert!(matches!(err, CoordinatorError::Unexpected { .. }), "{err}");
    }

    // 201 with garbage: transient, and the job id is named when recoverable
    c.inject_fault(
        Endpoint::JobsRequest,
        Fault::status(201, 1).with_body(r#"{"id": 4242, "token": "glcbt-se"#, "application/json"),
    );
    let err = gl.request_job(PollKind::Short).await.expect_err("garbage");
    assert!(err.is_transient());
    assert!(err.to_string().contains("job 4242"), "{err}");
    assert!(!err.to_string().contains("glcbt-se"));
    c.inject_fault(
        Endpoint::JobsRequest,
        Fault::status(201, 1).with_body("<html>oops</html>", "text/html"),
    );
    assert!(gl
        .request_job(PollKind::Short)
        .await
        .expect_err("html")
        .is_transient());
    // decodable but unusable
    c.inject_fault(
        Endpoint::JobsRequest,
        Fault::status(201, 1).with_body(r#"{"id": 5}"#, "application/json"),
    );
    let err = gl.request_job(PollKind::Short).await.expect_err("no token");
    assert!(matches!(err, CoordinatorError::Unexpected { .. }), "{err}");

    // unknown runner token
    let mut s = settings(&c);
    s.token = Secret::new("glrt-unknown-token");
    let stranger = GitlabCoordinator::new(s).expect("client");
    let err = stranger
        .request_job(PollKind::Short)
        .await
        .expect_err("403");
    assert!(matches!(err, CoordinatorError::Rejected { .. }));
    assert_clean(&err, &["glrt-unknown-token"]);

    // the service is back to normal afterwards
    let id = c.enqueue_job(JobSpec::default());
    let job = gl
        .request_job(PollKind::Short)
        .await
        .expect("ok")
        .expect("job");
    assert_eq!(job.id, id);
}

#[actix_rt::test]
async fn long_polling_sends_last_update_and_repolls_after_a_change() {
    let mut config = CoordinatorConfig::default();
    config.settings.long_poll_ms = Some(5_000);
    let c = start_with(config);
    let gl = client(&c);
    // every answer's version is remembered, short polls included
    assert_eq!(gl.request_job(PollKind::Short).await, Ok(None));
    let version = gl.last_update().expect("version remembered");
    let ctl = c.control();
    let enqueuer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        ctl.enqueue_job(JobSpec::new("late"))
    });
    let t0 = Instant::now();
    let job = gl.request_job(PollKind::Long).await.expect("ok");
    let id = enqueuer.join().expect("enqueuer");
    assert_eq!(
        job.map(|j| j.id),
        Some(id),
        "re-polled at once after the change"
    );
    assert!(t0.elapsed() < Duration::from_secs(4));
    let sent = c.requests_to(Endpoint::JobsRequest);
    let bodies: Vec<Value> = sent.iter().filter_map(|r| r.json()).collect();
    let carried: Vec<Option<&str>> = bodies
        .iter()
        .map(|b| b.get("last_update").and_then(Value::as_str))
        .collect();
    // the short poll; the long one, held; the short request that follows
    // Workhorse's 204
    assert_eq!(carried, vec![None, Some(version.as_str()), None]);
    assert_ne!(gl.last_update(), Some(version.clone()));

    // a short poll never sends the version, though it is known
    assert_eq!(gl.request_job(PollKind::Short).await, Ok(None));
    let last = c.requests_to(Endpoint::JobsRequest);
    let body = last.last().and_then(|r| r.json()).expect("a body");
    assert!(body.get("last_update").is_none(), "{body}");

    // a long poll of a client that knows no version yet: a short request
    // for it, the long one (held until the window ends), then the short
    // request that follows Workhorse's 204
    c.update_settings(|s| s.long_poll_ms = Some(300));
    let fresh = client(&c);
    let before = c.requests_to(Endpoint::JobsRequest).len();
    let t0 = Instant::now();
    assert_eq!(fresh.request_job(PollKind::Long).await, Ok(None));
    assert!(t0.elapsed() >= Duration::from_millis(250), "held");
    let sent = c.requests_to(Endpoint::JobsRequest);
    let carried: Vec<bool> = sent
        .iter()
        .skip(before)
        .filter_map(|r| r.json())
        .map(|b| b.get("last_update").is_some())
        .collect();
    assert_eq!(carried, vec![false, true, false]);
}

/// A job found on the PAAS is proved this runner's by `GET /job`'s `id`
/// and `runner.id`, compared with the id `POST /runners/verify` gives.
#[actix_rt::test]
async fn job_owner_names_the_runner_that_acquired_the_job() {
    const OTHER: &str = "glrt-otherrunnerBBBBBBBBBBBB";
    let c = start_with(CoordinatorConfig {
        runner_tokens: vec![OTHER.to_owned()],
        ..CoordinatorConfig::default()
    });
    let gl = client(&c);
    let mut s = settings(&c);
    s.token = Secret::new(OTHER);
    let other = GitlabCoordinator::new(s).expect("client");
    let own = gl.verify().await.expect("verify").id;
    let others = other.verify().await.expect("verify").id;
    assert!(own.is_some() && others.is_some() && own != others);
    gl.set_runner_id(own);
    other.set_runner_id(others);
    assert_eq!(gl.runner_id(), own);

    let job = take_job(&c, &gl, JobSpec::default()).await;
    let answer = gl.job_owner(&job).await.expect("job owner");
    assert_eq!(
        answer,
        JobOwner {
            status: JobStatus::Running,
            job_id: Some(job.id),
            runner_id: own,
            // The simulator names the runner manager, as GitLab 16 does.
            same_manager: Some(true),
        }
    );
    // The same answer seen by the other runner: not its job.
    assert_eq!(
        judge(job.clone(), answer, other.runner_id()),
        Identified::NotOurs {
            job: job.clone(),
            answered_job: Some(job.id),
            answered_runner: own
        }
    );
    assert_eq!(
        judge(job.clone(), answer, gl.runner_id()),
        Identified::Running(job.clone())
    );
    c.set_job_status(job.id, JobState::Success);
    // GitLab's own 403 for a job that is over: the token is refused, which
    // reconciliation reads as finished.
    assert_eq!(
        gl.job_owner(&job).await.map(|a| a.status),
        Ok(JobStatus::TokenRefused)
    );
}

#[actix_rt::test]
async fn job_status_by_job_token_header() {
    let c = start();
    let gl = client(&c);
    let job = take_job(&c, &gl, JobSpec::default()).await;
    assert_eq!(gl.job_status(&job).await, Ok(JobStatus::Running));
    let req = c.requests_to(Endpoint::JobStatus);
    let last = req.last().expect("recorded");
    assert_eq!(last.header("job-token"), Some(job.token.expose()));
    assert!(last.query.is_empty(), "job token must not be in the URL");

    c.set_job_status(job.id, JobState::Canceling);
    assert_eq!(gl.job_status(&job).await, Ok(JobStatus::Running));
    c.set_job_status(job.id, JobState::Success);
    assert_eq!(
        gl.job_status(&job).await,
        Ok(JobStatus::TokenRefused),
        "401"
    );

    let job2 = take_job(&c, &gl, JobSpec::default()).await;
    c.inject_fault(Endpoint::JobStatus, Fault::status(403, 1));
    assert_eq!(gl.job_status(&job2).await, Ok(JobStatus::TokenRefused));
    // A proxy's refusal page is not GitLab's answer: it says nothing.
    for status in [401, 403] {
        c.inject_fault(Endpoint::JobStatus, Fault::html(status, 1));
        let err = gl.job_status(&job2).await.expect_err("proxy page");
        assert!(err.is_transient(), "{err}");
        assert_clean(&err, &[job2.token.expose()]);
    }
    c.inject_fault(
        Endpoint::JobStatus,
        Fault::status(200, 1).with_body(r#"{"id": 1, "status": "failed"}"#, "application/json"),
    );
    assert_eq!(gl.job_status(&job2).await, Ok(JobStatus::Finished));
    c.inject_fault(Endpoint::JobStatus, Fault::html(503, 1));
    let err = gl.job_status(&job2).await.expect_err("503");
    assert!(err.is_transient());
    assert_clean(&err, &[job2.token.expose()]);
    c.inject_fault(Endpoint::JobStatus, Fault::status(404, 1));
    let err = gl.job_status(&job2).await.expect_err("404");
    assert!(matches!(err, CoordinatorError::Unexpected { .. }));
    assert_eq!(gl.job_status(&job2).await, Ok(JobStatus::Running));
}

#[actix_rt::test]
async fn report_failed_and_late_reports() {
    let c = start();
    let gl = client(&c);
    let job = take_job(&c, &gl, JobSpec::default()).await;
    assert_eq!(
        gl.report_failed(&job, FailureReason::ScriptFailure, 103)
            .await,
        Ok(())
    );
    assert_eq!(c.job_status(job.id), Some(JobState::Failed));
    assert_eq!(
        c.job_failure_reason(job.id).as_deref(),
        Some("script_failure")
    );
    assert_eq!(c.job_exit_code(job.id), Some(103));
    let req = c.requests_to(Endpoint::JobUpdate);
    let last = req.last().expect("recorded");
    assert_eq!(last.header("job-token"), Some(job.token.expose()));
    assert!(last.query.is_empty());
    assert_eq!(
        last.json(),
        Some(json!({"token": job.token.expose(), "state": "failed",
                    "failure_reason": "script_failure", "exit_code": 103}))
    );
    // the job is over: 403 "Job is not running" is fine
    assert_eq!(
        gl.report_failed(&job, FailureReason::RunnerSystemFailure, 1)
            .await,
        Ok(())
    );
    // modern plain 403 once the token is invalidated: fine too
    c.update_settings(|s| s.invalidate_job_tokens = true);
    let job2 = take_job(&c, &gl, JobSpec::default()).await;
    c.set_job_status(job2.id, JobState::Canceled);
    assert_eq!(
        gl.report_failed(&job2, FailureReason::JobExecutionTimeout, 1)
            .await,
        Ok(())
    );
    let job3 = take_job(&c, &gl, JobSpec::default()).await;
    c.inject_fault(Endpoint::JobUpdate, Fault::status(500, 1));
    let err = gl
        .report_failed(&job3, FailureReason::UnknownFailure, 1)
        .await
        .expect_err("500");
    assert!(err.is_transient());
    c.inject_fault(Endpoint::JobUpdate, Fault::status(400, 1));
    let err = gl
        .report_failed(&job3, FailureReason::UnknownFailure, 1)
        .await
        .expect_err("400");
    assert!(matches!(err, CoordinatorError::Unexpected { .. }));
    assert_eq!(c.job_status(job3.id), Some(JobState::Running));
}

#[actix_rt::test]
async fn append_trace_tracks_bytes_and_resyncs_on_416() {
    let c = start();
    let gl = client(&c);
    let job = take_job(&c, &gl, JobSpec::default()).await;
    let line = "\u{1b}[31;1mlaunch failed: é\u{1b}[0m\n";
    let n = line.len() as u64;
    assert_eq!(
        gl.append_trace(&job, 0, line).await,
        Ok(TraceAppend::Appended { new_offset: n })
    );
    let req = c.requests_to(Endpoint::TracePatch);
    let last = req.last().expect("recorded");
    assert_eq!(
        last.header("content-range"),
        Some(format!("0-{}", n - 1).as_str())
    );
    assert_eq!(last.header("job-token"), Some(job.token.expose()));
    assert!(last.query.is_empty());
    // empty text: nothing sent
    assert_eq!(
        gl.append_trace(&job, n, "").await,
        Ok(TraceAppend::Appended { new_offset: n })
    );
    assert_eq!(c.count(Endpoint::TracePatch), 1);

    // the inner runner wrote meanwhile: our offset is stale → 416 → resync once
    let inner = c
        .write_trace(job.id, b"inner runner line\n")
        .expect("write");
    assert_eq!(
        gl.append_trace(&job, n, "again\n").await,
        Ok(TraceAppend::Appended {
            new_offset: inner + 6
        })
    );
    assert_eq!(c.count(Endpoint::TracePatch), 3);
    let trace = c.job_trace(job.id).expect("trace");
    assert!(trace.ends_with(b"inner runner line\nagain\n"));

    // a 416 without Range is unexpected; a 5xx transient
    c.inject_fault(Endpoint::TracePatch, Fault::status(416, 1));
    let err = gl.append_trace(&job, 0, "x").await.expect_err("416");
    assert!(matches!(err, CoordinatorError::Unexpected { .. }), "{err}");
    c.inject_fault(Endpoint::TracePatch, Fault::status(503, 1));
    assert!(gl
        .append_trace(&job, inner + 6, "x")
        .await
        .expect_err("503")
        .is_transient());

    // over: JobOver
    c.cancel_job(job.id);
    assert_eq!(
        gl.append_trace(&job, inner + 6, "late\n").await,
        Ok(TraceAppend::JobOver)
    );
}

#[actix_rt::test]
async fn trace_len_reads_bytes_with_the_admin_token() {
    let c = start();
    let gl = client(&c);
    let job = take_job(&c, &gl, JobSpec::default()).await;
    assert_eq!(gl.trace_len(&job).await, Ok(0));
    c.write_trace(job.id, "é\n".as_bytes());
    assert_eq!(gl.trace_len(&job).await, Ok(3));
    let req = c.requests_to(Endpoint::TraceRead);
    assert_eq!(
        req.last().and_then(|r| r.header("private-token")),
        Some(ADMIN)
    );
    for fault in [
        Fault::status(404, 1),
        Fault::status(429, 1),
        Fault::html(502, 1),
        Fault::status(500, 1),
    ] {
        c.inject_fault(Endpoint::TraceRead, fault);
        assert_eq!(gl.trace_len(&job).await, Ok(0), "nothing yet");
    }
    c.update_settings(|s| s.legacy_empty_trace_404 = true);
    let job2 = take_job(&c, &gl, JobSpec::default()).await;
    assert_eq!(gl.trace_len(&job2).await, Ok(0));

    for token in [USER, "glpat-wrong"] {
        let mut s = settings(&c);
        s.trace_watch_token = Some(Secret::new(token));
        let other = GitlabCoordinator::new(s).expect("client");
        let err = other.trace_len(&job).await.expect_err("refused");
        assert!(matches!(err, CoordinatorError::Rejected { .. }), "{err}");
        assert_clean(&err, &[token]);
    }
    // A revoked token is refused (401), and works again once re-issued.
    c.revoke_token(ADMIN);
    let err = gl.trace_len(&job).await.expect_err("revoked");
    assert!(matches!(err, CoordinatorError::Rejected { .. }), "{err}");
    assert_clean(&err, &[ADMIN]);
    c.add_admin_token(ADMIN);
    assert!(gl.trace_len(&job).await.is_ok());

    let mut s = settings(&c);
    s.trace_watch_token = None;
    let blind = GitlabCoordinator::new(s).expect("client");
    assert!(blind.trace_len(&job).await.is_err());
}

#[actix_rt::test]
async fn the_jobs_api_tells_a_job_over_from_a_job_executing() {
    let c = start();
    let metrics = std::sync::Arc::new(paas_actors::metrics::Metrics::new());
    let mut s = settings(&c);
    s.metrics = Some(paas_actors::metrics::ApiCounter::new(metrics.clone(), "r1"));
    let gl = GitlabCoordinator::new(s).expect("client");
    let job = take_job(&c, &gl, JobSpec::default()).await;
    assert_eq!(
        gl.job_api_status(&job).await,
        Ok(Some(JobApiStatus::Executing("running")))
    );
    let req = c.requests_to(Endpoint::JobRead);
    assert_eq!(
        req.last().and_then(|r| r.header("private-token")),
        Some(ADMIN)
    );
    assert!(req.last().and_then(|r| r.header("job-token")).is_none());
    assert!(c.set_job_status(job.id, JobState::Success));
    assert_eq!(
        gl.job_api_status(&job).await,
        Ok(Some(JobApiStatus::Over("success")))
    );
    let exposed = metrics.encode().expect("metrics");
    assert!(
        exposed.contains(
            "api_requests_total{runner=\"r1\",api=\"gitlab\",endpoint=\"job read\",status=\"200\"} 2"
        ),
        "{exposed}"
    );

    // Nothing learnt: errors, refusals, another job's answer, no project.
    for fault in [
        Fault::status(404, 1),
        Fault::status(401, 1),
        Fault::status(403, 1),
        Fault::html(502, 1),
    ] {
        c.inject_fault(Endpoint::JobRead, fault);
        let err = gl
            .job_api_status(&job)
            .await
            .expect_err("refused or failed");
        assert_clean(&err, &[ADMIN, job.token.expose()]);
    }
    let other = format!(r#"{{"id": {}, "status": "success"}}"#, job.id + 1);
    c.inject_fault(
        Endpoint::JobRead,
        Fault::status(200, 1).with_body(other, "application/json"),
    );
    assert_eq!(gl.job_api_status(&job).await, Ok(None));
    let mut unknown = job.clone();
    unknown.project_id = None;
    let before = c.count(Endpoint::JobRead);
    assert_eq!(gl.job_api_status(&unknown).await, Ok(None));
    let mut s = settings(&c);
    s.trace_watch_token = None;
    let blind = GitlabCoordinator::new(s).expect("client");
    assert_eq!(blind.job_api_status(&job).await, Ok(None));
    assert_eq!(c.count(Endpoint::JobRead), before, "nothing asked");
}

#[actix_rt::test]
async fn group_custom_attributes_with_the_attributes_token() {
    let c = start();
    c.set_group_attributes(
        "tenant",
        &[("cc_orga_id", "orga_x"), ("cc_orga_token", "tok")],
    );
    c.set_group_attributes("parent/sub", &[("k", "v")]);
    let gl = client(&c);
    assert_eq!(
        gl.group_custom_attributes("tenant").await,
        Ok(vec![
            ("cc_orga_id".to_owned(), "orga_x".to_owned()),
            ("cc_orga_token".to_owned(), "tok".to_owned())
        ])
    );
    assert_eq!(
        gl.group_custom_attributes("parent/sub").await,
        Ok(vec![("k".to_owned(), "v".to_owned())])
    );
    let req = c.requests_to(Endpoint::GroupAttributes);
    let last = req.last().expect("recorded");
    assert!(
        last.path
            .ends_with("/groups/parent%2Fsub/custom_attributes"),
        "{}",
        last.path
    );
    assert_eq!(last.header("private-token"), Some(ATTRS));

    // Groups by path; an all-digit path is read as an id, as GitLab does.
    let tenant_id = c.set_group_attributes("tenant", &[("cc_orga_id", "orga_x")]);
    let sub = gl.group_by_path("parent/sub").await.expect("subgroup");
    assert_eq!(sub.full_path, "parent/sub");
    assert!(sub.parent_id.is_some());
    let by_digits = gl
        .group_by_path(&tenant_id.to_string())
        .await
        .expect("read as an id");
    assert_eq!(
        (by_digits.id, by_digits.full_path.as_str()),
        (tenant_id, "tenant")
    );
    assert_eq!(by_digits.parent_id, None);
    assert!(gl.group_by_path("someuser").await.is_err());

    let err = gl
        .group_custom_attributes("someuser")
        .await
        .expect_err("404");
    assert!(matches!(err, CoordinatorError::Unexpected { .. }));
    assert!(err.to_string().contains("someuser"));
    c.inject_fault(Endpoint::GroupAttributes, Fault::status(500, 1));
    assert!(gl
        .group_custom_attributes("tenant")
        .await
        .expect_err("500")
        .is_transient());
    c.inject_fault(
        Endpoint::GroupAttributes,
        Fault::status(200, 1).with_body("{\"not\": \"a list\"}", "application/json"),
    );
    assert!(matches!(
        gl.group_custom_attributes("tenant").await,
        Err(CoordinatorError::Unexpected { .. })
    ));
    for token in [Some(USER), Some("glpat-bad"), None] {
        let mut s = settings(&c);
        s.attributes_token = token.map(Secret::new);
        let other = GitlabCoordinator::new(s).expect("client");
        let err = other
            .group_custom_attributes("tenant")
            .await
            .expect_err("refused");
        assert!(matches!(err, CoordinatorError::Rejected { .. }), "{err}");
        if let Some(t) = token {
            assert_clean(&err, &[t]);
        }
    }
}

#[actix_rt::test]
async fn register_verify_unregister() {
    let mut config = CoordinatorConfig::default();
    config
        .registration_tokens
        .push(("GR1348941legacyregtoken00".to_owned(), TokenStyle::Legacy));
    let c = start_with(config);
    c.add_registration_token("glrtr-style-reg", TokenStyle::Glrtr);
    let api = RunnersApi::new(&c.url(), Timeouts::default()).expect("api");
    let reg = Secret::new("GR1348941legacyregtoken00");
    let registered = api
        .register(&reg, "paas runner", true)
        .await
        .expect("registered");
    assert_eq!(registered.token.expose().len(), 20);
    assert!(registered.id.is_some());
    assert_eq!(registered.token_expires_at, None);
    let runner = c
        .runners()
        .into_iter()
        .find(|r| r.token == registered.token.expose())
        .expect("runner exists");
    assert!(runner.paused, "registered paused");
    assert_eq!(runner.description.as_deref(), Some("paas runner"));
    let sent = c.requests_to(Endpoint::RunnerRegister);
    assert_eq!(
        sent.last().and_then(|r| r.json()),
        Some(
            json!({"info": {"name": "paas runner"}, "description": "paas runner",
                    "active": false, "token": "GR1348941legacyregtoken00"})
        )
    );
    let active = api
        .register(&Secret::new("glrtr-style-reg"), "x", false)
        .await
        .expect("registered");
    assert!(active.token.expose().starts_with("glrtr-"));

    let err = api
        .register(&Secret::new("GR1348941wrong"), "x", true)
        .await
        .expect_err("403");
    assert!(matches!(err, CoordinatorError::Rejected { .. }));
    assert_clean(&err, &["GR1348941wrong"]);
    let err = api
        .register(&Secret::new(RUNNER), "x", true)
        .await
        .expect_err("glrt");
    assert!(err.to_string().contains("verify"), "{err}");
    c.update_settings(|s| s.registration_disabled = true);
    let err = api.register(&reg, "x", true).await.expect_err("410");
    assert!(err.to_string().contains("410"), "{err}");

    // verify
    let verified = api
        .verify(&Secret::new(RUNNER), Some("r_0123456789ab"))
        .await
        .expect("verified");
    assert!(verified.id.is_some());
    assert!(c
        .runners()
        .iter()
        .any(|r| r.token == RUNNER && r.managers.contains("r_0123456789ab")));
    let err = api
        .verify(&Secret::new("glrt-nope"), None)
        .await
        .expect_err("403");
    assert!(matches!(err, CoordinatorError::Rejected { .. }));
    c.update_settings(|s| s.legacy_verify_plain = true);
    assert_eq!(
        api.verify(&Secret::new(RUNNER), None).await.map(|v| v.id),
        Ok(None)
    );
    let gl = client(&c);
    assert!(gl.verify().await.is_ok());

    // unregister: glrt- with a system id → the manager only
    api.unregister(&Secret::new(RUNNER), Some("r_0123456789ab"))
        .await
        .expect("manager deleted");
    assert_eq!(c.count(Endpoint::RunnerManagerDelete), 1);
    api.unregister(&Secret::new(RUNNER), Some("r_0123456789ab"))
        .await
        .expect("already gone is fine");
    // legacy token → the whole runner
    api.unregister(&registered.token, None)
        .await
        .expect("deleted");
    assert_eq!(c.count(Endpoint::RunnerDelete), 1);
    let err = api
        .unregister(&registered.token, None)
        .await
        .expect_err("403");
    assert!(matches!(err, CoordinatorError::Rejected { .. }));
    assert_clean(&err, &[registered.token.expose()]);
}

#[actix_rt::test]
async fn stalled_endpoint_hits_the_timeout() {
    let c = start();
    let mut s = settings(&c);
    s.timeouts = Timeouts {
        connect: Duration::from_millis(500),
        request: Duration::from_millis(300),
        long_poll: Duration::from_millis(600),
    };
    let gl = GitlabCoordinator::new(s).expect("client");
    c.inject_fault(Endpoint::JobsRequest, Fault::hang(1));
    let t0 = Instant::now();
    let err = gl.request_job(PollKind::Short).await.expect_err("timeout");
    let took = t0.elapsed();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("no answer within"), "{err}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_clean(&err, &[RUNNER]);
    // latency above the timeout on another endpoint
    let job = take_job(&c, &gl, JobSpec::default()).await;
    c.set_latency(Endpoint::JobStatus, Some(Duration::from_millis(800)));
    assert!(gl.job_status(&job).await.expect_err("slow").is_transient());
    c.set_latency(Endpoint::JobStatus, None);
    assert_eq!(gl.job_status(&job).await, Ok(JobStatus::Running));
}

#[actix_rt::test]
async fn unreachable_coordinator_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut s = CoordinatorSettings::new(
        format!("http://127.0.0.1:{port}/gitlab"),
        Secret::new(RUNNER),
    );
    s.timeouts.connect = Duration::from_secs(2);
    s.timeouts.request = Duration::from_secs(3);
    let gl = GitlabCoordinator::new(s).expect("client");
    let err = gl.request_job(PollKind::Short).await.expect_err("refused");
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().contains("/gitlab/api/v4/jobs/request"),
        "{err}"
    );
    assert_clean(&err, &[RUNNER]);
}

#[actix_rt::test]
async fn coordinator_down_and_path_prefix() {
    let c = start_with(CoordinatorConfig {
        path_prefix: "/gitlab".to_owned(),
        ..CoordinatorConfig::default()
    });
    let gl = client(&c);
    assert!(gl.api_url().ends_with("/gitlab/api/v4"));
    let job = take_job(&c, &gl, JobSpec::default()).await;
    c.set_down(true);
    assert!(gl
        .request_job(PollKind::Short)
        .await
        .expect_err("down")
        .is_transient());
    assert!(gl.job_status(&job).await.expect_err("down").is_transient());
    assert!(gl
        .append_trace(&job, 0, "x")
        .await
        .expect_err("down")
        .is_transient());
    assert_eq!(gl.trace_len(&job).await, Ok(0));
    c.set_down(false);
    c.set_migration_backoff(true);
    match gl.request_job(PollKind::Short).await {
        Err(CoordinatorError::Unavailable { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(60)))
        }
        other => panic!("{other:?}"),
    }
}

#[actix_rt::test]
async fn connections_are_reused() {
    let c = start();
    let gl = client(&c);
    for _ in 0..5 {
        assert_eq!(gl.request_job(PollKind::Short).await, Ok(None));
    }
    let peers: std::collections::BTreeSet<Option<String>> = c
        .requests_to(Endpoint::JobsRequest)
        .into_iter()
        .map(|r| r.peer)
        .collect();
    assert_eq!(
        peers.len(),
        1,
        "one keep-alive connection expected: {peers:?}"
    );
    assert!(peers.iter().all(Option::is_some));
}

#[test]
fn bad_urls_are_refused_at_construction() {
    for url in [
        "gitlab.example",
        "ftp://h",
        "https://u:p@h/",
        "https://h/?token=x",
    ] {
        let s = CoordinatorSettings::new(url, Secret::new(RUNNER));
        assert!(GitlabCoordinator::new(s).is_err(), "{url}");
    }
}
