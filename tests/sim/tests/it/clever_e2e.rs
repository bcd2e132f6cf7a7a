//! The simulated inner runner against the real fake coordinator (with a relative URL root):
//! a job taken from the coordinator, pushed to the fake Clever Cloud, gets its trace line and
//! its final state; the PAAS runner's earlier trace bytes are kept (416 resync).

use crate::clever_support;

use std::time::Duration;

use clever_support::*;
use paas_sim::clever::checker::dependency_proxy_rewrite;
use paas_sim::clever::config::DEFAULT_MAIN_IMAGE;
use paas_sim::clever::CleverHandle;
use paas_sim::coordinator::{
    CoordinatorConfig, CoordinatorHandle, FakeCoordinator, JobSpec, JobState, Outcome,
};
use serde_json::{json, Value};

const RUNNER_TOKEN: &str = "glrt-e2e-runner-token";
const PROXY: &str = "gitlab.example:443/group/dependency_proxy/containers";

fn coordinator() -> CoordinatorHandle {
    let config = CoordinatorConfig {
        path_prefix: "/gitlab".to_owned(),
        runner_tokens: vec![RUNNER_TOKEN.to_owned()],
        ..CoordinatorConfig::default()
    };
    match FakeCoordinator::start(config) {
        Ok(c) => c,
        Err(e) => panic!("coordinator: {e}"),
    }
}

/// Takes the next job as the PAAS runner would.
async fn take_job(c: &CoordinatorHandle) -> Value {
    clever_support::take_job(&c.api_url(), RUNNER_TOKEN).await
}

/// Creates an app, sets its env, pushes the build context of `payload`; returns the app id.
async fn deploy(h: &CleverHandle, coordinator_url: &str, payload: &Value) -> String {
    let name = format!("hpd-job-glrt-e2e-{}", payload["id"]);
    let app = create_app(h, &name, "heptapod-runner-XS").await;
    let id = app["id"].as_str().unwrap_or_default().to_owned();
    let env_url = format!("{}/organisations/{ORG}/applications/{id}/env", h.api_url());
    let env = json!({"CC_MOUNT_DOCKER_SOCKET": "true", "CC_ENABLE_HEPTAPOD_RUNNER": "true"});
    assert_eq!(
        call(&client(), "PUT", &env_url, Some(TOKEN), Some(&env))
            .await
            .0,
        200
    );

    let mut job = payload.clone();
    dependency_proxy_rewrite(&mut job);
    let dockerfile = format!(
        "FROM {DEFAULT_MAIN_IMAGE}\nCOPY runner.toml /etc/gitlab-runner/runner.toml\n\
         COPY job.json /etc/gitlab-runner/job.json\nENV DEBUG=\"true\"\n\
         ENTRYPOINT [\"/usr/bin/gitlab-runner\", \"exec-fetched-job\", \"--config\", \
         \"/etc/gitlab-runner/runner.toml\",\"/etc/gitlab-runner/job.json\"]\n"
    );
    let runner_toml = format!(
        "[[runners]]\nname = \"e2e\"\nurl = \"{coordinator_url}\"\ntoken = \"{RUNNER_TOKEN}\"\n\
         executor = \"docker\"\n"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    commit_tree(
        dir.path(),
        &[
            ("Dockerfile", dockerfile),
            ("runner.toml", runner_toml),
            ("job.json", job.to_string()),
        ],
    )
    .await;
    let url = with_credentials(
        app["deployment"]["httpUrl"].as_str().unwrap_or(""),
        "Jenkins",
        TOKEN,
    );
    let (ok, _, err) = git(dir.path(), &["push", "-q", &url, "HEAD:refs/heads/master"]).await;
    assert!(ok, "push: {err}");
    id
}

#[actix_rt::test]
async fn jobs_run_to_their_outcome_through_the_inner_runner() {
    let c = coordinator();
    let h = start(config());

    let ok_id = c.enqueue_job(JobSpec {
        dependency_proxy_prefix: Some(PROXY.to_owned()),
        image: Some("alpine:3.19".to_owned()),
        services: vec!["postgres:13".to_owned(), "tutum/wordpress".to_owned()],
        duration_ms: 200,
        outcome: Outcome::Success,
        ..JobSpec::default()
    });
    let payload = take_job(&c).await;
    assert_eq!(payload["id"], ok_id);
    let app_ok = deploy(&h, &c.url(), &payload).await;

    let done = wait_until(Duration::from_secs(30), || {
        c.job_status(ok_id) == Some(JobState::Success)
    })
    .await;
    assert!(
        done,
        "job {ok_id}: {:?} {:?}",
        c.job_status(ok_id),
        h.control().deployments()
    );
    let trace = String::from_utf8_lossy(&c.job_trace(ok_id).unwrap_or_default()).into_owned();
    assert!(
        trace.contains(&app_ok) && trace.contains("Job succeeded"),
        "{trace}"
    );
    assert_eq!(
        h.control().violations().len(),
        0,
        "{:?}",
        h.control().violations()
    );

    // the PAAS runner wrote first: the inner runner appends after it; the job fails
    let failed_id = c.enqueue_job(JobSpec {
        duration_ms: 0,
        outcome: Outcome::Failed,
        ..JobSpec::default()
    });
    let payload = take_job(&c).await;
    assert_eq!(payload["id"], failed_id);
    let written = c.write_trace(failed_id, b"\x1b[31;1mslow launch\x1b[0m\n");
    assert!(written.is_some());
    let _app = deploy(&h, &c.url(), &payload).await;
    let done = wait_until(Duration::from_secs(30), || {
        c.job_status(failed_id) == Some(JobState::Failed)
    })
    .await;
    assert!(done, "job {failed_id}: {:?}", h.control().deployments());
    let trace = c.job_trace(failed_id).unwrap_or_default();
    assert!(trace.starts_with(b"\x1b[31;1mslow launch\x1b[0m\n"));
    assert!(String::from_utf8_lossy(&trace).contains("Job failed"));
    assert_eq!(
        h.control().violations().len(),
        0,
        "{:?}",
        h.control().violations()
    );
    // The inner runner records its final status once the coordinator has
    // answered the update, a moment after the job's state changed there.
    let recorded = wait_until(Duration::from_secs(20), || {
        h.control().deployments().iter().all(|d| {
            d.inner_status.starts_with("finished") || d.inner_status.starts_with("aborted")
        })
    })
    .await;
    assert!(recorded, "{:?}", h.control().deployments());
    let statuses: Vec<String> = h
        .control()
        .deployments()
        .into_iter()
        .map(|d| d.inner_status)
        .collect();
    assert_eq!(statuses, ["finished:success:200", "finished:failed:200"]);
    h.shutdown();
    c.shutdown();
}

#[actix_rt::test]
async fn a_job_the_coordinator_never_handed_out_is_a_violation() {
    let c = coordinator();
    let h = start(config());
    let id = c.enqueue_job(JobSpec::default());
    let mut payload = take_job(&c).await;
    // tampered: the pushed job has another script than the handed-out one
    payload["steps"] = json!([]);
    let app = deploy(&h, &c.url(), &payload).await;
    let checked = wait_until(Duration::from_secs(20), || {
        h.control().deployments().iter().all(|d| d.checked) && !h.control().deployments().is_empty()
    })
    .await;
    assert!(checked);
    let kinds: Vec<String> = h
        .control()
        .violations()
        .into_iter()
        .map(|v| v.kind)
        .collect();
    assert_eq!(kinds, ["job_json_mismatch"]);
    assert!(h
        .control()
        .violations()
        .iter()
        .all(|v| v.app_id.as_deref() == Some(app.as_str()) && v.job_id == Some(id)));
    h.shutdown();
    c.shutdown();
}
