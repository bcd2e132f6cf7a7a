//! The World against its fakes, with jobs driven by hand as the runner would
//! drive them: the wiring (runner tokens, tenants' organisations as group
//! attributes, the inner runner reaching the coordinator), the written runner
//! configuration (checked with the runner's own loader in the root package's
//! tests/it/sim_world_config.rs), and the summary's
//! verdicts (leaks, duplicates, quota, unfinished jobs, violations, reuse of
//! service applications).

use crate::clever_support;

use std::time::Duration;

use clever_support::{call, client, commit_tree, create_body, git, helper, with_credentials};
use paas_sim::clever::checker::dependency_proxy_rewrite;
use paas_sim::coordinator::{JobSpec, JobState, Outcome};
use paas_sim::world::{
    wait_until_async, RunnerConfigOptions, ServiceOptions, World, WorldConfig, ORGA_ID_ATTRIBUTE,
    ORGA_TOKEN_ATTRIBUTE,
};
use serde_json::{json, Value};

fn world(tenants: &[&str]) -> World {
    let config = WorldConfig {
        tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
        ..WorldConfig::default()
    };
    match World::start(config) {
        Ok(w) => w,
        Err(e) => panic!("world: {e}"),
    }
}

/// Takes the next job as the runner would (with the world's first runner token).
async fn take_job(w: &World) -> Value {
    let token = w.runner_tokens().first().cloned().unwrap_or_default();
    clever_support::take_job(&w.coordinator().api_url(), &token).await
}

/// Reads a tenant's organisation and token from its group attributes, as a
/// multi-tenant runner does.
async fn tenant_credentials(w: &World, group: &str) -> (String, String) {
    let url = format!(
        "{}/groups/{group}/custom_attributes",
        w.coordinator().api_url()
    );
    let resp = client()
        .get(&url)
        .insert_header(("Private-Token", w.admin_token()))
        .send()
        .await;
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    assert_eq!(resp.status().as_u16(), 200);
    let attrs: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => panic!("attributes: {e}"),
    };
    let get = |k: &str| {
        attrs
            .as_array()
            .and_then(|a| a.iter().find(|x| x["key"] == k))
            .and_then(|x| x["value"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("attribute {k} missing in {attrs}"))
    };
    (get(ORGA_ID_ATTRIBUTE), get(ORGA_TOKEN_ATTRIBUTE))
}

async fn create_app(w: &World, org: &str, token: &str, name: &str, flavor: &str) -> Value {
    let url = format!("{}/organisations/{org}/applications", w.clever().api_url());
    let (status, app) = call(
        &client(),
        "POST",
        &url,
        Some(token),
        Some(&create_body(name, flavor)),
    )
    .await;
    assert_eq!(status, 200, "{app}");
    app
}

async fn delete_app(w: &World, org: &str, token: &str, id: &str) {
    let url = format!(
        "{}/organisations/{org}/applications/{id}",
        w.clever().api_url()
    );
    let (status, body) = call(&client(), "DELETE", &url, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
}

/// Deploys a job as the runner would: app, env, build context pushed once
/// the repository is ready. Returns the app id.
async fn deploy(w: &World, org: &str, token: &str, payload: &Value) -> String {
    let name = format!("hpd-job-glrt-001-{}", payload["id"]);
    let app = create_app(w, org, token, &name, "heptapod-runner-XS").await;
    let id = app["id"].as_str().unwrap_or_default().to_owned();
    let api = w.clever().api_url();
    let env = json!({"CC_MOUNT_DOCKER_SOCKET": "true", "CC_ENABLE_HEPTAPOD_RUNNER": "true"});
    let env_url = format!("{api}/organisations/{org}/applications/{id}/env");
    assert_eq!(
        call(&client(), "PUT", &env_url, Some(token), Some(&env))
            .await
            .0,
        200
    );
    // the repository becomes ready after the world's (fast) delay
    let app_url = format!("{api}/organisations/{org}/applications/{id}");
    let mut ready = false;
    for _ in 0..100 {
        let (_, a) = call(&client(), "GET", &app_url, Some(token), None).await;
        if a["deployment"]["repoState"] == "CREATED" {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "repository of {id} never ready");
    let mut job = payload.clone();
    dependency_proxy_rewrite(&mut job);
    let dockerfile = format!(
        "FROM {}\nCOPY runner.toml /etc/gitlab-runner/runner.toml\n\
         COPY job.json /etc/gitlab-runner/job.json\nENV DEBUG=\"true\"\n\
         ENTRYPOINT [\"/usr/bin/gitlab-runner\", \"exec-fetched-job\", \"--config\", \
         \"/etc/gitlab-runner/runner.toml\",\"/etc/gitlab-runner/job.json\"]\n",
        paas_sim::clever::config::DEFAULT_MAIN_IMAGE
    );
    let runner_toml = format!(
        "[[runners]]\nname = \"w\"\nurl = \"{}\"\ntoken = \"{}\"\nexecutor = \"docker\"\n",
        w.coordinator().url(),
        w.runner_tokens().first().map_or("", String::as_str)
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
        token,
    );
    let (ok, _, err) = git(dir.path(), &["push", "-q", &url, "HEAD:refs/heads/master"]).await;
    assert!(ok, "push: {err}");
    id
}

#[actix_rt::test]
async fn a_job_driven_by_hand_runs_clean_in_a_multi_tenant_world() {
    let w = world(&["acme", "beta"]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = RunnerConfigOptions {
        multi_tenant: true,
        ..RunnerConfigOptions::default()
    };
    if let Err(e) = w.write_runner_config(dir.path(), options) {
        panic!("{e}");
    }
    let id = w.enqueue(JobSpec {
        root_namespace: "beta".to_owned(),
        flavor: Some("XS".to_owned()),
        duration_ms: 300,
        dependency_proxy_prefix: Some(paas_sim::scenario::dependency_proxy_prefix("beta")),
        services: vec!["postgres:16".to_owned()],
        ..JobSpec::default()
    });
    let pending = w.summary();
    assert_eq!((pending.jobs_total, pending.jobs_pending), (1, 1));
    assert_eq!(pending.problems().len(), 1, "{:?}", pending.problems());

    let payload = take_job(&w).await;
    assert_eq!(payload["id"], id);
    let (org, token) = tenant_credentials(&w, "beta").await;
    let beta = w.tenants().get(1).map(|t| t.orga_id.clone());
    assert_eq!(Some(org.clone()), beta);
    // the other tenant's token is refused on this organisation
    let acme_token = w
        .tenants()
        .first()
        .map(|t| t.token.clone())
        .unwrap_or_default();
    let (status, _) = call(
        &client(),
        "POST",
        &format!("{}/organisations/{org}/applications", w.clever().api_url()),
        Some(&acme_token),
        Some(&create_body("intruder", "heptapod-runner-XS")),
    )
    .await;
    assert!(status == 401 || status == 403, "status {status}");

    let app = deploy(&w, &org, &token, &payload).await;
    let done = wait_until_async(
        || w.coordinator().job_status(id) == Some(JobState::Success),
        Duration::from_secs(30),
        Duration::from_millis(50),
    )
    .await;
    assert!(done, "{:?}", w.clever().control().deployments());
    let running = w.summary();
    assert_eq!(running.leaks.len(), 1);
    assert!(running.problems().iter().any(|p| p.contains("leaked")));
    delete_app(&w, &org, &token, &app).await;

    let s = w.summary();
    assert_eq!(s.problems(), Vec::<String>::new(), "{}", s.render());
    assert_eq!((s.jobs_success, s.apps_created, s.apps_deleted), (1, 1, 1));
    assert_eq!(s.deployments, 1);
    assert!(s.quota_held());
    assert!(s
        .quota_weight
        .is_some_and(|q| (q - 4.0 * 8f64.powf(1.25)).abs() < 1e-9));
    assert!(s.coordinator_requests.get("jobs_request") == Some(&1));
    assert!(s.clever_requests.get("create_app").is_some_and(|n| *n >= 2));
    assert!(s.render().contains("1 succeeded"));
    w.shutdown();
}

#[actix_rt::test]
async fn the_summary_names_leaks_duplicates_quota_overshoot_and_violations() {
    let w = world(&["group"]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = RunnerConfigOptions {
        quota_flavor: "S".to_owned(),
        quota_jobs: 1,
        default_flavor: "XS".to_owned(),
        max_flavor: Some("S".to_owned()),
        ..RunnerConfigOptions::default()
    };
    if let Err(e) = w.write_runner_config(dir.path(), options) {
        panic!("{e}");
    }
    let (org, token) = w
        .tenants()
        .first()
        .map(|t| (t.orga_id.clone(), t.token.clone()))
        .unwrap_or_default();
    let id = w.enqueue(JobSpec::default().outcome(Outcome::Failed));
    let _payload = take_job(&w).await;
    // two apps for one job, each heavier than the whole quota (S)
    let name = format!("hpd-job-glrt-001-{id}");
    let a = create_app(&w, &org, &token, &name, "heptapod-runner-M").await;
    let _b = create_app(&w, &org, &token, &name, "heptapod-runner-M").await;
    delete_app(&w, &org, &token, a["id"].as_str().unwrap_or_default()).await;
    assert!(w.coordinator().set_job_status(id, JobState::Success));

    let s = w.summary();
    let problems = s.problems();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems
        .iter()
        .any(|p| p.contains("leaked") && p.contains(&name)));
    assert!(problems
        .iter()
        .any(|p| p.contains(&format!("job {id} got 2"))));
    assert!(problems.iter().any(|p| p.contains("exceeded the quota")));
    assert!(!s.quota_held());
    // the job was meant to fail: a mismatch, reported but not a problem
    assert_eq!(s.outcome_mismatches.len(), 1);
    assert_eq!(
        s.outcome_mismatches.first().map(|m| (m.expected, m.actual)),
        Some((JobState::Failed, JobState::Success))
    );

    // keeping resources turns the leak into kept resources
    let keep = RunnerConfigOptions {
        keep_resources: true,
        quota_jobs: 10,
        ..RunnerConfigOptions::default()
    };
    if let Err(e) = w.write_runner_config(dir.path(), keep) {
        panic!("{e}");
    }
    let s = w.summary();
    assert!(s.keep_resources);
    assert_eq!(s.problems().len(), 1, "{:?}", s.problems());
    w.shutdown();
}

#[actix_rt::test]
async fn a_wrong_build_context_is_a_violation_in_the_summary() {
    let w = world(&["group"]);
    let (org, token) = w
        .tenants()
        .first()
        .map(|t| (t.orga_id.clone(), t.token.clone()))
        .unwrap_or_default();
    let id = w.enqueue(JobSpec::default());
    let mut payload = take_job(&w).await;
    payload["steps"] = json!([]);
    let app = deploy(&w, &org, &token, &payload).await;
    let checked = wait_until_async(
        || {
            let d = w.clever().control().deployments();
            !d.is_empty() && d.iter().all(|d| d.checked)
        },
        Duration::from_secs(20),
        Duration::from_millis(50),
    )
    .await;
    assert!(checked);
    delete_app(&w, &org, &token, &app).await;
    w.coordinator().set_job_status(id, JobState::Success);
    let problems = w.summary().problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems
            .iter()
            .all(|p| p.contains("job_json_mismatch") && p.contains(&id.to_string())),
        "{problems:?}"
    );
    w.shutdown();
}

/// The first runner section of a written configuration.
fn first_section(w: &World, options: &RunnerConfigOptions) -> toml::Table {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let table = match w.runner_config_table(&dir.path().join("state.json"), options) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    match table
        .get("runners")
        .and_then(|r| r.as_array())
        .and_then(|r| r.first())
    {
        Some(toml::Value::Table(t)) => t.clone(),
        other => panic!("no runner section: {other:?}"),
    }
}

/// Launches the next job of `group` on `app` and waits for its end and the helper's idleness.
async fn run_on_helper(w: &World, app: &helper::ServiceApp, group: &str) {
    let id = w.enqueue(JobSpec::default().root_namespace(group));
    let payload = take_job(w).await;
    let runner_token = w.runner_tokens().first().cloned().unwrap_or_default();
    let body = helper::launch_body(&w.coordinator().url(), &runner_token, &payload);
    let (status, _, text) = helper::launch(app, &body).await;
    assert_eq!(status, 201, "{text}");
    let ended = wait_until_async(
        || {
            w.coordinator()
                .job_status(id)
                .is_some_and(|s| s.is_terminal())
        },
        Duration::from_secs(30),
        Duration::from_millis(50),
    )
    .await;
    assert!(ended, "job {id}");
    assert!(helper::wait_ready(app).await);
}

#[actix_rt::test]
async fn a_service_world_writes_its_executor_and_counts_reuse_and_tenants() {
    let w = world(&["acme", "beta"]);
    let plain = first_section(&w, &RunnerConfigOptions::default());
    assert_eq!(
        plain.get("executor").and_then(|v| v.as_str()),
        Some("clever-docker")
    );
    assert!(plain.get("heptapod_paas_runner_helper_image").is_none());
    let options = RunnerConfigOptions {
        multi_tenant: true,
        service: Some(ServiceOptions {
            keep_for_reuse: Duration::from_secs(30),
            max_jobs_per_resource: Some(5),
            ready_timeout: Some(Duration::from_millis(1500)),
        }),
        ..RunnerConfigOptions::default()
    };
    let section = first_section(&w, &options);
    let get = |k: &str| section.get(k).cloned();
    assert_eq!(get("executor"), Some("clever-service-docker".into()));
    assert_eq!(
        get("heptapod_paas_runner_helper_image"),
        Some(w.helper_image().into())
    );
    assert_eq!(
        get("paas_keep_resources_for_reuse_seconds"),
        Some(toml::Value::Integer(30))
    );
    assert_eq!(
        get("paas_max_jobs_per_resource"),
        Some(toml::Value::Integer(5))
    );
    assert_eq!(
        get("cc_service_ready_timeout"),
        Some(toml::Value::Float(1.5))
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = w.write_runner_config(dir.path(), options.clone()) {
        panic!("{e}");
    }
    let Some(acme) = w.tenants().first().cloned() else {
        panic!("no tenant");
    };
    let app = helper::create_service_app(
        w.clever(),
        &acme.orga_id,
        &acme.token,
        "hpd-job-glrt-001-1",
        &helper::helper_token('z'),
    )
    .await;
    helper::push_dockerfile(&app, helper::helper_dockerfile(w.helper_image())).await;
    assert!(helper::wait_ready(&app).await);
    run_on_helper(&w, &app, "acme").await;
    run_on_helper(&w, &app, "acme").await;
    // each tenant is billed to its own organisation: beta's job has no business here
    run_on_helper(&w, &app, "beta").await;
    let kinds = |s: &paas_sim::world::WorldSummary| -> Vec<String> {
        s.violations.iter().map(|v| v.kind.clone()).collect()
    };
    let s = w.summary();
    assert_eq!(
        (s.service_apps, s.helper_jobs, s.helper_jobs_reused),
        (1, 3, 2)
    );
    assert_eq!(s.reuse_ratio().map(|r| (r * 3.0).round()), Some(2.0));
    assert_eq!(kinds(&s), ["helper_cross_tenant", "helper_wrong_org"]);
    assert!(
        s.render().contains("helper jobs: 3 (2 on a reused app"),
        "{}",
        s.render()
    );
    assert!(
        s.helper_calls.get("launch_job") == Some(&3),
        "{:?}",
        s.helper_calls
    );

    // billed to one organisation, every tenant's job may run on any of its applications
    let single = RunnerConfigOptions {
        multi_tenant: false,
        ..options
    };
    if let Err(e) = w.write_runner_config(dir.path(), single) {
        panic!("{e}");
    }
    run_on_helper(&w, &app, "beta").await;
    assert_eq!(kinds(&w.summary()).len(), 2);
    w.shutdown();
}

#[test]
fn bad_world_configurations_are_refused() {
    for (config, needle) in [
        (
            WorldConfig {
                runner_tokens: 0,
                ..WorldConfig::default()
            },
            "runner_tokens",
        ),
        (
            WorldConfig {
                tenants: Vec::new(),
                ..WorldConfig::default()
            },
            "tenant",
        ),
        (
            WorldConfig {
                tenants: vec!["a".to_owned(), "a".to_owned()],
                ..WorldConfig::default()
            },
            "\"a\"",
        ),
    ] {
        match World::start(config) {
            Ok(_) => panic!("accepted, expected an error about {needle}"),
            Err(e) => assert!(e.to_string().contains(needle), "{e}"),
        }
    }
}

#[test]
fn secrets_found_in_a_log_are_named_without_being_shown() {
    let w = world(&["acme"]);
    let id = w.enqueue(JobSpec::default());
    let job_token = w.coordinator().job(id).map(|j| j.token).unwrap_or_default();
    let runner_token = w.runner_tokens().first().cloned().unwrap_or_default();
    // the unique name (first 8 characters) is fine in logs
    let clean = format!(
        "INFO launched, runner: {}",
        runner_token.get(..8).unwrap_or("")
    );
    assert_eq!(w.leaked_secrets(&clean), Vec::<String>::new());
    let dirty = format!("DEBUG body {{\"token\":\"{job_token}\"}} auth {runner_token}");
    let leaked = w.leaked_secrets(&dirty);
    assert_eq!(
        leaked,
        [
            "runner token #1".to_owned(),
            format!("job token of job {id}")
        ]
    );
    assert!(leaked
        .iter()
        .all(|l| !l.contains(&job_token) && !l.contains(&runner_token)));
    let tenant_token = w
        .tenants()
        .first()
        .map(|t| t.token.clone())
        .unwrap_or_default();
    let admin = w.admin_token().to_owned();
    assert_eq!(
        w.leaked_secrets(&format!("{tenant_token} {admin}")),
        ["administrator token", "Clever token of tenant acme"]
    );
    w.shutdown();
}
