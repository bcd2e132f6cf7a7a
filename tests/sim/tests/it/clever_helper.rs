//! Service applications and their helpers, end to end over HTTP on 127.0.0.1: an application
//! created without `instanceLifetime` gets its own listener as its vhost; the helper Dockerfile
//! boots it; its API checks the bearer token, answers `can-take-job` after the boot delay,
//! accepts one `launch-job` at a time and runs the job to its end at the fake coordinator;
//! the faults (never ready, launch refused, death on standby) and the violations.

use crate::clever_support;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use clever_support::helper::{
    self, can_take_job, helper_dockerfile, helper_token, launch, launch_raw, push_dockerfile,
    ready, wait_ready, ServiceApp,
};
use clever_support::*;
use paas_sim::clever::config::DEFAULT_HELPER_IMAGE;
use paas_sim::clever::{CleverHandle, HelperFaultCommand, HelperRoute, Timing};
use paas_sim::coordinator::{
    CoordinatorConfig, CoordinatorHandle, FakeCoordinator, JobSpec, JobState,
};
use serde_json::{json, Value};

const RUNNER_TOKEN: &str = "glrt-helper-runner-token";
/// Longest any wait of these tests lasts.
const WAIT: Duration = Duration::from_secs(30);

fn coordinator() -> CoordinatorHandle {
    let config = CoordinatorConfig {
        runner_tokens: vec![RUNNER_TOKEN.to_owned()],
        ..CoordinatorConfig::default()
    };
    match FakeCoordinator::start(config) {
        Ok(c) => c,
        Err(e) => panic!("coordinator: {e}"),
    }
}

fn fake(boot: Duration) -> CleverHandle {
    let mut cfg = config();
    cfg.timing = Timing {
        helper_boot_delay: boot,
        ..Timing::default()
    };
    start(cfg)
}

/// A service application of the test organisation.
async fn create_service_app(h: &CleverHandle, name: &str, token: &str) -> ServiceApp {
    helper::create_service_app(h, ORG, TOKEN, name, token).await
}

/// A service application with its helper deployed.
async fn deployed_app(h: &CleverHandle, name: &str) -> ServiceApp {
    let app = create_service_app(h, name, &helper_token('a')).await;
    push_dockerfile(&app, helper_dockerfile(DEFAULT_HELPER_IMAGE)).await;
    app
}

fn launch_body(c: &CoordinatorHandle, payload: &Value) -> Value {
    helper::launch_body(&c.url(), RUNNER_TOKEN, payload)
}

/// Takes the next job as the PAAS runner would.
async fn take_job(c: &CoordinatorHandle) -> Value {
    clever_support::take_job(&c.api_url(), RUNNER_TOKEN).await
}

fn refused(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
}

fn kinds(h: &CleverHandle) -> Vec<String> {
    h.control()
        .violations()
        .into_iter()
        .map(|v| v.kind)
        .collect()
}

#[actix_rt::test]
async fn a_service_application_gets_its_own_listener_as_vhost_until_deleted() {
    let h = fake(Duration::ZERO);
    let app = create_service_app(&h, "hpd-job-svc-1", &helper_token('a')).await;
    let other = create_service_app(&h, "hpd-job-svc-2", &helper_token('b')).await;
    assert!(app.fqdn.starts_with("127.0.0.1:"), "{}", app.fqdn);
    assert_ne!(app.fqdn, other.fqdn);
    assert!(!refused(app.addr()));
    // every answer of the API gives the same vhost
    let app_url = format!(
        "{}/organisations/{ORG}/applications/{}",
        h.api_url(),
        app.id
    );
    let (_, got) = call(&client(), "GET", &app_url, Some(TOKEN), None).await;
    assert_eq!(got["vhosts"], json!([{"fqdn": app.fqdn}]));
    assert_eq!(got["instance"]["lifetime"], "REGULAR");
    // a push-per-job application keeps Clever's name
    let task = create_app(&h, "hpd-job-task-3", "heptapod-runner-XS").await;
    let uuid = task["id"].as_str().unwrap_or("").trim_start_matches("app_");
    assert_eq!(
        task["vhosts"],
        json!([{"fqdn": format!("app-{uuid}.cleverapps.io")}])
    );
    let entries = h.control().apps();
    let service: Vec<bool> = entries.iter().map(|a| a.service).collect();
    assert_eq!(service, [true, true, false]);
    assert_eq!(h.control().helper_addr(&app.id), Some(app.addr()));

    let (status, _) = call(&client(), "DELETE", &app_url, Some(TOKEN), None).await;
    assert_eq!(status, 200);
    assert!(wait_until(WAIT, || refused(app.addr())).await);
    assert_eq!(h.control().helper_addr(&app.id), None);
    assert!(!refused(other.addr()));
    h.shutdown();
    assert!(
        refused(other.addr()),
        "the fake's shutdown closes every helper"
    );
}

#[actix_rt::test]
async fn the_helper_checks_its_token_and_is_ready_once_booted() {
    let h = fake(Duration::from_secs(2));
    let app = create_service_app(&h, "hpd-job-svc-1", &helper_token('a')).await;
    let bearer = format!("Bearer {}", app.token);
    // before any deployment: the token of the env is checked, not ready
    assert_eq!(can_take_job(&app, Some(&bearer)).await, (200, json!(false)));
    for auth in [
        None,
        Some(format!("Bearer {}", helper_token('b'))),
        Some(format!("token {}", app.token)),
        Some("Bearer".to_owned()),
        Some(format!("Bearer {}x", app.token)),
    ] {
        let (status, _) = can_take_job(&app, auth.as_deref()).await;
        assert_eq!(status, 401, "{auth:?}");
    }
    push_dockerfile(&app, helper_dockerfile(DEFAULT_HELPER_IMAGE)).await;
    assert_eq!(can_take_job(&app, Some(&bearer)).await, (200, json!(false)));
    assert!(wait_ready(&app).await);
    assert_eq!(
        can_take_job(&app, Some(&format!("bearer {}", app.token))).await,
        (200, json!(true))
    );
    let calls = h.control();
    assert_eq!(
        calls.helper_call_count(HelperRoute::CanTakeJob, Some(401)),
        5
    );
    assert!(calls.helper_call_count(HelperRoute::CanTakeJob, Some(200)) >= 3);
    let journal = calls.helper_calls();
    assert!(journal.iter().all(|c| c.app_id == app.id));
    assert_eq!(
        journal.last().map(|c| (c.route, c.status, c.answer)),
        Some((HelperRoute::CanTakeJob, 200, Some(true)))
    );
    // the helper's deployment is up, and clean
    let (_, got) = call(
        &client(),
        "GET",
        &format!(
            "{}/organisations/{ORG}/applications/{}",
            h.api_url(),
            app.id
        ),
        Some(TOKEN),
        None,
    )
    .await;
    let up = wait_until(WAIT, || {
        h.control()
            .deployments()
            .iter()
            .all(|d| d.inner_status == "helper:up")
    })
    .await;
    assert!(up, "{:?}", h.control().deployments());
    assert_eq!(got["deployment"]["repoState"], "CREATED");
    assert_eq!(kinds(&h), Vec::<String>::new());
    h.shutdown();
}

#[actix_rt::test]
async fn a_launched_job_runs_to_its_end_then_the_idle_helper_takes_the_next() {
    let c = coordinator();
    let h = fake(Duration::ZERO);
    let app = deployed_app(&h, "hpd-job-glrt-hel-1").await;
    assert!(wait_ready(&app).await);

    let first = c.enqueue_job(JobSpec {
        duration_ms: 600,
        ..JobSpec::default()
    });
    let payload = take_job(&c).await;
    let (status, _, body) = launch(&app, &launch_body(&c, &payload)).await;
    assert_eq!(status, 201, "{body}");
    assert!(!ready(&app).await, "busy while the job runs");
    let done = wait_until(WAIT, || c.job_status(first) == Some(JobState::Success)).await;
    assert!(done, "{:?}", h.control().helper_jobs());
    let trace = String::from_utf8_lossy(&c.job_trace(first).unwrap_or_default()).into_owned();
    assert!(
        trace.contains(&app.id) && trace.contains("Job succeeded"),
        "{trace}"
    );
    assert!(wait_ready(&app).await, "idle again after the job");

    let second = c.enqueue_job(JobSpec {
        outcome: paas_sim::coordinator::Outcome::Failed,
        ..JobSpec::default()
    });
    let payload = take_job(&c).await;
    let (status, _, body) = launch(&app, &launch_body(&c, &payload)).await;
    assert_eq!(status, 201, "{body}");
    let done = wait_until(WAIT, || c.job_status(second) == Some(JobState::Failed)).await;
    assert!(done, "{:?}", h.control().helper_jobs());
    let recorded = wait_until(WAIT, || {
        h.control()
            .helper_jobs()
            .iter()
            .all(|j| j.inner_status.starts_with("finished"))
    })
    .await;
    assert!(recorded, "{:?}", h.control().helper_jobs());
    let jobs: Vec<(i64, bool, bool, String)> = h
        .control()
        .helper_jobs()
        .into_iter()
        .map(|j| (j.job_id, j.reused, j.checked, j.inner_status))
        .collect();
    assert_eq!(
        jobs,
        [
            (first, false, true, "finished:success:200".to_owned()),
            (second, true, true, "finished:failed:200".to_owned()),
        ]
    );
    let summary = h.control().summary();
    assert_eq!(
        (
            summary.helper_jobs,
            summary.helper_jobs_reused,
            summary.service_apps
        ),
        (2, 1, 1)
    );
    assert_eq!(h.control().apps().first().map(|a| a.helper_jobs), Some(2));
    assert_eq!(
        h.control()
            .helper_call_count(HelperRoute::LaunchJob, Some(201)),
        2
    );
    assert_eq!(kinds(&h), Vec::<String>::new());
    h.shutdown();
    c.shutdown();
}

#[actix_rt::test]
async fn a_busy_helper_answers_503_and_reports_two_jobs_at_once() {
    let c = coordinator();
    let h = fake(Duration::ZERO);
    let app = deployed_app(&h, "hpd-job-glrt-hel-1").await;
    assert!(wait_ready(&app).await);
    let running = c.enqueue_job(JobSpec {
        duration_ms: 3_000,
        ..JobSpec::default()
    });
    let payload = take_job(&c).await;
    assert_eq!(launch(&app, &launch_body(&c, &payload)).await.0, 201);
    c.enqueue_job(JobSpec::default());
    let payload = take_job(&c).await;
    let (status, retry, _) = launch(&app, &launch_body(&c, &payload)).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    assert_eq!(kinds(&h), ["helper_busy_launch"]);
    assert!(h
        .control()
        .violations()
        .iter()
        .all(|v| v.message.contains(&running.to_string())));
    assert_eq!(h.control().helper_jobs().len(), 1);
    h.shutdown();
    c.shutdown();
}

#[actix_rt::test]
async fn malformed_and_hostile_launch_requests_are_refused_without_harm() {
    let c = coordinator();
    let h = fake(Duration::ZERO);
    let app = deployed_app(&h, "hpd-job-glrt-hel-1").await;
    assert!(wait_ready(&app).await);
    c.enqueue_job(JobSpec::default());
    let payload = take_job(&c).await;
    let good = launch_body(&c, &payload);
    let secret = "SECRET-NEVER-ECHOED";
    let with = |key: &str, value: Value| {
        let mut b = good.clone();
        b[key] = value;
        b.to_string().into_bytes()
    };
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"not json".to_vec(), 400),
        (Vec::new(), 400),
        (b"[1, 2]".to_vec(), 400),
        (vec![0xff, 0xfe, 0x00], 400),
        (with("job_id", json!(secret)), 400),
        (with("specification", json!({"id": 1})), 400),
        (
            with("specification", json!(format!("{{\"id\": \"{secret}\""))),
            400,
        ),
        (with("config", json!("[[runners]\n")), 400),
        (with("job_id", json!(i64::MAX)), 400),
        (with("extra", json!(true)), 400),
        (b"{\"job_id\": 1}".to_vec(), 400),
    ];
    for (body, expected) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (status, _, text) = launch_raw(&app, body).await;
        assert_eq!(status, expected, "{shown}: {text}");
        assert!(!text.contains(secret), "{text}");
    }
    // a body past the bound is refused before it is read
    let (status, _, _) = launch_raw(&app, vec![b' '; (8 << 20) + 1]).await;
    assert_eq!(status, 413);
    // wrong methods and unknown routes: 404, recorded as such
    let (status, _) = call(&client(), "GET", &app.url("/launch-job"), None, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&client(), "DELETE", &app.url("/glrt-hel/1"), None, None).await;
    assert_eq!(status, 404);
    assert_eq!(h.control().helper_call_count(HelperRoute::Other, None), 2);
    // unauthenticated garbage is no violation; authenticated garbage is the runner's
    let (status, _) = call(
        &client(),
        "POST",
        &app.url("/launch-job"),
        None,
        Some(&json!(1)),
    )
    .await;
    assert_eq!(status, 401);
    let violations = h.control().violations();
    assert!(violations.iter().all(|v| !v.message.contains(secret)));
    let mut found: Vec<String> = violations.into_iter().map(|v| v.kind).collect();
    found.sort();
    found.dedup();
    assert_eq!(
        found,
        [
            "helper_launch_job_id",
            "helper_launch_malformed",
            "job_json_syntax",
            "runner_toml_syntax"
        ]
    );
    // still serving, nothing launched: the good request goes through
    assert!(ready(&app).await);
    assert_eq!(launch(&app, &good).await.0, 201);
    assert_eq!(h.control().helper_jobs().len(), 1);
    h.shutdown();
    c.shutdown();
}

#[actix_rt::test]
async fn a_helper_never_ready_refuses_launches_and_the_next_one_boots() {
    let h = fake(Duration::from_millis(100));
    h.control()
        .helper_fault(HelperFaultCommand::NeverReady { count: 1 });
    let stuck = deployed_app(&h, "hpd-job-svc-1").await;
    let fine = deployed_app(&h, "hpd-job-svc-2").await;
    assert!(wait_ready(&fine).await);
    // polled ten times over a second, well past its boot delay
    for _ in 0..10 {
        assert!(!ready(&stuck).await);
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let body = json!({"job_id": 1, "runner_name": "r", "specification": "{}", "config": ""});
    let (status, retry, _) = launch(&stuck, &body).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    assert_eq!(kinds(&h), ["helper_launch_not_ready"]);
    assert_eq!(h.control().helper_faults().never_ready, 0);
    h.shutdown();
}

#[actix_rt::test]
async fn a_refused_launch_answers_503_with_retry_after_and_launches_nothing() {
    let c = coordinator();
    let h = fake(Duration::ZERO);
    let app = deployed_app(&h, "hpd-job-glrt-hel-1").await;
    assert!(wait_ready(&app).await);
    h.control().helper_fault(HelperFaultCommand::RefuseLaunch {
        count: 1,
        retry_after_s: Some(2),
    });
    let id = c.enqueue_job(JobSpec::default());
    let body = launch_body(&c, &take_job(&c).await);
    let (status, retry, _) = launch(&app, &body).await;
    assert_eq!((status, retry.as_deref()), (503, Some("2")));
    assert!(h.control().helper_jobs().is_empty());
    assert!(ready(&app).await, "a refusal leaves the helper idle");
    assert_eq!(launch(&app, &body).await.0, 201);
    assert!(wait_until(WAIT, || c.job_status(id) == Some(JobState::Success)).await);
    assert_eq!(kinds(&h), Vec::<String>::new());
    h.shutdown();
    c.shutdown();
}

#[actix_rt::test]
async fn a_helper_dying_on_standby_closes_its_listener_and_its_app_stays() {
    let c = coordinator();
    let h = fake(Duration::ZERO);
    let app = deployed_app(&h, "hpd-job-glrt-hel-1").await;
    let other = deployed_app(&h, "hpd-job-glrt-hel-2").await;
    assert!(wait_ready(&app).await && wait_ready(&other).await);
    h.control()
        .helper_fault(HelperFaultCommand::DieOnStandby { count: 1 });
    let id = c.enqueue_job(JobSpec::default());
    assert_eq!(
        launch(&app, &launch_body(&c, &take_job(&c).await)).await.0,
        201
    );
    assert!(wait_until(WAIT, || c.job_status(id) == Some(JobState::Success)).await);
    assert!(wait_until(WAIT, || refused(app.addr())).await);
    // the application itself is still there, with the same vhost
    let app_url = format!(
        "{}/organisations/{ORG}/applications/{}",
        h.api_url(),
        app.id
    );
    let (status, got) = call(&client(), "GET", &app_url, Some(TOKEN), None).await;
    assert_eq!(
        (status, got["vhosts"][0]["fqdn"].as_str()),
        (200, Some(app.fqdn.as_str()))
    );
    assert_eq!(h.control().summary().live_count, 2);
    // the fault was one helper's: the other is untouched, and dies only when killed
    assert!(ready(&other).await);
    assert!(h.control().kill_helper(&other.id));
    assert!(!h.control().kill_helper(&other.id));
    assert!(wait_until(WAIT, || refused(other.addr())).await);
    assert_eq!(kinds(&h), Vec::<String>::new());
    h.shutdown();
    c.shutdown();
}

#[actix_rt::test]
async fn a_killed_helper_aborts_its_job() {
    let c = coordinator();
    let h = fake(Duration::ZERO);
    let app = deployed_app(&h, "hpd-job-glrt-hel-1").await;
    assert!(wait_ready(&app).await);
    c.enqueue_job(JobSpec {
        duration_ms: 5_000,
        ..JobSpec::default()
    });
    assert_eq!(
        launch(&app, &launch_body(&c, &take_job(&c).await)).await.0,
        201
    );
    let running = wait_until(WAIT, || {
        h.control()
            .helper_jobs()
            .iter()
            .any(|j| j.inner_status == "trace_written")
    })
    .await;
    assert!(running, "{:?}", h.control().helper_jobs());
    assert!(h.control().kill_helper(&app.id));
    let aborted = wait_until(WAIT, || {
        h.control()
            .helper_jobs()
            .iter()
            .all(|j| j.inner_status == "aborted:helper died while running")
    })
    .await;
    assert!(aborted, "{:?}", h.control().helper_jobs());
    h.shutdown();
    c.shutdown();
}

#[actix_rt::test]
async fn a_job_of_another_tenant_on_a_service_app_is_a_violation() {
    let c = coordinator();
    let h = fake(Duration::ZERO);
    h.control().set_tenant_orgs(
        [("acme", ORG), ("beta", OTHER_ORG)]
            .iter()
            .map(|(g, o)| ((*g).to_owned(), (*o).to_owned()))
            .collect(),
    );
    let app = deployed_app(&h, "hpd-job-glrt-hel-1").await;
    assert!(wait_ready(&app).await);
    for group in ["acme", "beta"] {
        let id = c.enqueue_job(JobSpec::default().root_namespace(group));
        let (status, _, body) = launch(&app, &launch_body(&c, &take_job(&c).await)).await;
        assert_eq!(status, 201, "{body}");
        assert!(wait_until(WAIT, || c.job_status(id) == Some(JobState::Success)).await);
        assert!(wait_ready(&app).await);
    }
    assert_eq!(kinds(&h), ["helper_cross_tenant", "helper_wrong_org"]);
    let tenants: Vec<String> = h
        .control()
        .helper_jobs()
        .into_iter()
        .map(|j| j.tenant)
        .collect();
    assert_eq!(tenants, [ORG, OTHER_ORG]);
    h.shutdown();
    c.shutdown();
}

#[actix_rt::test]
async fn a_wrong_image_or_env_is_a_violation_and_boots_no_helper() {
    let h = fake(Duration::ZERO);
    let app = create_service_app(&h, "hpd-job-svc-1", "short").await;
    push_dockerfile(&app, helper_dockerfile("alpine:3")).await;
    for _ in 0..5 {
        assert_eq!(
            can_take_job(&app, Some("Bearer short")).await,
            (200, json!(false))
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kinds(&h), ["helper_dockerfile_from", "helper_token"]);
    assert!(h
        .control()
        .violations()
        .iter()
        .all(|v| !v.message.contains("short")));
    let statuses: Vec<String> = h
        .control()
        .deployments()
        .into_iter()
        .map(|d| d.inner_status)
        .collect();
    assert_eq!(statuses, ["aborted:not the helper image"]);
    h.shutdown();
}

#[actix_rt::test]
async fn helper_faults_and_records_are_reachable_over_http() {
    let h = fake(Duration::ZERO);
    let app = deployed_app(&h, "hpd-job-svc-1").await;
    assert!(wait_ready(&app).await);
    let sim = h.sim_url();
    let (status, _) = call(
        &client(),
        "POST",
        &format!("{sim}/helper-faults"),
        None,
        Some(&json!({"op": "refuse_launch", "count": 2, "retry_after_s": 3})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, pending) = call(
        &client(),
        "GET",
        &format!("{sim}/helper-faults"),
        None,
        None,
    )
    .await;
    assert_eq!(pending["refuse_launch"], json!([3, 3]));
    let (_, calls) = call(&client(), "GET", &format!("{sim}/helper-calls"), None, None).await;
    assert_eq!(calls[0]["route"], "can_take_job");
    assert_eq!(calls[0]["app_id"], app.id.as_str());
    let (_, jobs) = call(&client(), "GET", &format!("{sim}/helper-jobs"), None, None).await;
    assert_eq!(jobs, json!([]));
    let kill = format!("{sim}/apps/{}/kill-helper", app.id);
    assert_eq!(call(&client(), "POST", &kill, None, None).await.0, 200);
    assert_eq!(call(&client(), "POST", &kill, None, None).await.0, 404);
    assert!(wait_until(WAIT, || refused(app.addr())).await);
    let (status, _) = call(
        &client(),
        "PUT",
        &format!("{sim}/tenant-orgs"),
        None,
        Some(&json!({"acme": ORG})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, ledger) = call(&client(), "GET", &format!("{sim}/ledger"), None, None).await;
    assert_eq!(ledger["service_apps"], 1);
    assert!(ledger["helper_calls"]["can_take_job"].as_u64() >= Some(1));
    h.shutdown();
}
