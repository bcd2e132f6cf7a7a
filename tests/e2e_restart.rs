//! End to end, stop and restart of the real binary against paas-sim:
//! SIGTERM while applications are being created and pushed (drain within
//! `shutdown_timeout`, private state file, a restart finishes everything
//! without duplicate or leak), and the resumption of a state file written
//! in the Python runner's format.

mod common;

use common::{assert_no_secret, job_of_app, wait_until, Runner, Sim};
use paas_sim::clever::config::{DEFAULT_ORG, DEFAULT_TOKEN};
use paas_sim::clever::products::{DEFAULT_DOCKER_VERSION, HEPTAPOD_VARIANT_UUID};
use paas_sim::clever::{CleverSimConfig, RepoDelay, Timing};
use paas_sim::coordinator::{JobSpec, JobState};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn job(flavor: &str, ms: u64) -> JobSpec {
    JobSpec {
        flavor: Some(flavor.to_owned()),
        duration_ms: ms,
        ..JobSpec::default()
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn sigterm_during_launches_drains_then_a_restart_finishes_everything() {
    let token = "rt-e2e-sigterm-0000006";
    let sim = Sim::start(
        CleverSimConfig {
            timing: Timing {
                repo_create_delay: RepoDelay::After(Duration::from_millis(1000)),
                ..Timing::default()
            },
            ..CleverSimConfig::default()
        },
        &[&[token]],
    );
    let drain = 10;
    let mut spec = sim.config(vec![sim.runner("rs", 0, token)], 3);
    spec.extra_global = format!("shutdown_timeout = {drain}\n");
    let config = sim.write_config("sigterm.toml", &spec);
    let ids: Vec<i64> = (0..6)
        .map(|i| sim.coord().enqueue_job(job(["XS", "S"][i % 2], 300)))
        .collect();

    let mut first = Runner::start(&config, &sim.dir.path().join("first.log"));
    let launching = wait_until(Duration::from_secs(20), || {
        sim.clever.control().summary().apps_created >= 1
    });
    assert!(launching, "no app created\n{}", sim.describe());
    // Repositories take 1 s to be ready: the launches are in progress.
    assert_eq!(sim.clever.control().summary().deployments, 0);
    let stopped_at = Instant::now();
    let status = first.stop(Duration::from_secs(drain + 5));
    let took = stopped_at.elapsed();
    let log = first.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "first run: exit {status:?}\n{}",
        tail(&log)
    );
    assert!(
        took <= Duration::from_secs(drain),
        "drain took {took:?}, deadline {drain} s"
    );
    let state = sim.state_file();
    let mode = std::fs::metadata(&state)
        .expect("state file present")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "state file mode");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("read state")).expect("JSON state");
    // Every job taken before the stop is in the state file, to be resumed.
    let tracked: Vec<i64> = ["launched", "to_decommission"]
        .iter()
        .flat_map(|k| saved[*k].as_array().cloned().unwrap_or_default())
        .chain(
            saved["pending"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|pair| pair.get(0).cloned()),
        )
        .filter_map(|h| h["job_id"].as_i64())
        .collect();
    let taken: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| sim.coord().job_status(*id) != Some(JobState::Pending))
        .collect();
    eprintln!(
        "drain took {took:?}; at stop: {} apps created, {} jobs taken, {} tracked in the state",
        sim.clever.control().summary().apps_created,
        taken.len(),
        tracked.len()
    );
    for id in &taken {
        assert!(
            tracked.contains(id) || sim.all_over(0, &[*id]),
            "job {id} taken but neither finished nor in the state file"
        );
    }

    let second = Runner::start(&config, &sim.dir.path().join("second.log"));
    let done = wait_until(Duration::from_secs(40), || {
        sim.all_over(0, &ids) && sim.clever.control().summary().live_count == 0
    });
    assert!(
        done,
        "restart did not finish\n{}\n{}",
        sim.describe(),
        tail(&second.log_text())
    );
    for id in &ids {
        assert_eq!(
            sim.coord().job_status(*id),
            Some(JobState::Success),
            "{}",
            sim.describe()
        );
    }
    sim.assert_clean(sim.quota("M", 3), ids.len());
    assert_eq!(
        sim.clever.control().summary().apps_created,
        ids.len(),
        "one app per job\n{}",
        sim.describe()
    );
    let mut second = second;
    let status = second.stop(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "second run: {status:?}"
    );
    let secrets = sim.secrets(&[]);
    assert_no_secret(&log, &secrets);
    assert_no_secret(&second.log_text(), &secrets);
}

/// What the test does itself over HTTP: takes a job as a runner would, and
/// creates its application as the Python runner did.
async fn take_job_and_create_app(
    coord_url: &str,
    runner_token: &str,
    api_url: &str,
    app_name: &str,
) -> (Value, Value) {
    let client = awc::Client::default();
    let mut resp = client
        .post(format!("{coord_url}/api/v4/jobs/request"))
        .send_json(&json!({"token": runner_token, "info": {"features": {}}}))
        .await
        .expect("jobs/request");
    assert_eq!(resp.status().as_u16(), 201, "job handed out");
    let payload: Value = resp.json().limit(1 << 20).await.expect("payload");
    let mut resp = client
        .post(format!(
            "{api_url}/organisations/{DEFAULT_ORG}/applications"
        ))
        .insert_header(("Authorization", format!("token {DEFAULT_TOKEN}")))
        .send_json(&json!({
            "name": app_name,
            "zone": "par",
            "deploy": "git",
            "instanceType": "docker",
            "instanceVersion": DEFAULT_DOCKER_VERSION,
            "instanceVariant": HEPTAPOD_VARIANT_UUID,
            "minInstances": 1,
            "maxInstances": 1,
            "minFlavor": "heptapod-runner-S",
            "maxFlavor": "heptapod-runner-S",
        }))
        .await
        .expect("create app");
    assert!(resp.status().is_success(), "app created: {}", resp.status());
    let app: Value = resp.json().limit(1 << 20).await.expect("app");
    (payload, app)
}

#[test]
fn python_state_file_is_resumed_and_its_app_deleted_at_the_end() {
    let token = "rt-e2e-python-0000007";
    let sim = Sim::start(CleverSimConfig::default(), &[&[token]]);
    let spec = sim.config(vec![sim.runner("py", 0, token)], 3);
    let config = sim.write_config("python.toml", &spec);
    let id = sim.coord().enqueue_job(job("S", 100));
    let unique: String = token.chars().take(8).collect();
    let name = format!("hpd-job-{unique}-{id}");
    let (coord_url, api_url) = (sim.coord().url(), sim.clever.api_url());
    let (payload, app) = actix_rt::System::new()
        .block_on(take_job_and_create_app(&coord_url, token, &api_url, &name));
    assert_eq!(payload["id"].as_i64(), Some(id));
    assert_eq!(sim.coord().job_status(id), Some(JobState::Running));
    let job_token = payload["token"].as_str().expect("job token").to_owned();
    let app_id = app["id"].as_str().expect("app id").to_owned();
    let deploy_url = app["deployment"]["httpUrl"]
        .as_str()
        .expect("url")
        .to_owned();
    let weight = sim.weight("S");
    // As `PaasDispatcher.save_state` writes it: JobHandle.dump() with the
    // CleverCloudApplication.dump() of a single-organisation runner.
    let handle = json!({
        "runner_name": unique,
        "job_id": id,
        "token": job_token,
        "trace_offset": 0,
        "expected_weight": weight,
        "paas_resource": {
            "id": app_id,
            "gitlab_namespace": null,
            "weight": weight,
            "launched": true,
            "deploy_url": deploy_url,
        },
    });
    let python_state = json!({"launched": [handle], "to_decommission": [], "pending": []});
    let state = sim.state_file();
    std::fs::write(&state, python_state.to_string()).expect("write state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let mut runner = Runner::start(&config, &sim.dir.path().join("python.log"));
    // The job is running: the app is kept while it runs.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(runner.is_running(), "{}", tail(&runner.log_text()));
    assert_eq!(
        sim.clever.control().summary().live_count,
        1,
        "app deleted while its job runs\n{}\n{}",
        sim.describe(),
        tail(&runner.log_text())
    );
    assert_eq!(sim.coord().job_status(id), Some(JobState::Running));
    // The job ends (as the inner runner would report it).
    assert!(sim.coord().set_job_status(id, JobState::Success));
    let deleted = wait_until(Duration::from_secs(20), || {
        sim.clever.control().summary().live_count == 0
    });
    assert!(
        deleted,
        "app not deleted after the job ended\n{}\n{}",
        sim.describe(),
        tail(&runner.log_text())
    );
    let apps = sim.clever.control().apps();
    assert_eq!(apps.len(), 1, "no other app: {apps:?}");
    assert!(apps.iter().all(|a| job_of_app(&a.name) == Some(id)));
    assert_eq!(sim.coord().job_status(id), Some(JobState::Success));
    sim.assert_clean(sim.quota("M", 3), 1);

    let status = runner.stop(Duration::from_secs(15));
    let log = runner.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{}",
        tail(&log)
    );
    let after: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("JSON state");
    assert_eq!(
        after["launched"].as_array().map(Vec::len),
        Some(0),
        "job still tracked: {after}"
    );
    assert_no_secret(&log, &sim.secrets(&[&job_token]));
}
