//! End to end, stop and restart of the real binary against paas-sim:
//! SIGTERM while applications are being created and pushed (drain within
//! `shutdown_timeout`, private state file, a restart finishes everything
//! without duplicate or leak), and the resumption of a state file written
//! in the Python runner's format.

use crate::common;

use common::{assert_no_secret, job_id_of_app_name, options, start_runner, stop_ok, tail, E2e};
use paas_sim::clever::products::{DEFAULT_DOCKER_VERSION, HEPTAPOD_VARIANT_UUID};
use paas_sim::clever::{RepoDelay, Timing};
use paas_sim::coordinator::{JobSpec, JobState};
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
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

#[test]
fn sigterm_during_launches_drains_then_a_restart_finishes_everything() {
    let e = E2e::start(WorldConfig {
        timing: Timing {
            repo_create_delay: RepoDelay::After(Duration::from_millis(1000)),
            ..WorldConfig::fast_timing()
        },
        ..WorldConfig::default()
    });
    let drain = 10;
    let config = e.write_config(
        RunnerConfigOptions {
            quota_jobs: 3,
            ..options()
        },
        &[("shutdown_timeout", toml::Value::Integer(drain))],
    );
    let ids: Vec<i64> = (0..6)
        .map(|i| e.world.enqueue(job(["XS", "S"][i % 2], 300)))
        .collect();
    let clever = e.world.clever().control();

    let mut first = start_runner(&config, &e.log("first.log"), &[]);
    let launching = common::wait_until(
        || clever.summary().apps_created >= 1,
        Duration::from_secs(20),
        common::STEP,
    );
    assert!(launching, "no app created\n{}", e.describe());
    // Repositories take 1 s to be ready: the launches are in progress.
    assert_eq!(clever.summary().deployments, 0);
    let stopped_at = Instant::now();
    let drain_secs = u64::try_from(drain).expect("positive");
    stop_ok(&mut first, Duration::from_secs(drain_secs + 5));
    let took = stopped_at.elapsed();
    assert!(
        took <= Duration::from_secs(drain_secs),
        "drain took {took:?}, deadline {drain} s"
    );
    let state = e.state_file();
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
        .filter(|id| e.status(*id) != Some(JobState::Pending))
        .collect();
    eprintln!(
        "drain took {took:?}; at stop: {} apps created, {} jobs taken, {} tracked in the state",
        clever.summary().apps_created,
        taken.len(),
        tracked.len()
    );
    assert!(!taken.is_empty());
    for id in &taken {
        assert!(
            tracked.contains(id) || e.all_over(&[*id]),
            "job {id} taken but neither finished nor in the state file"
        );
    }

    let mut second = start_runner(&config, &e.log("second.log"), &[]);
    assert!(
        e.wait_done(&ids, Duration::from_secs(60)),
        "restart did not finish\n{}\n{}",
        e.describe(),
        tail(&second.log())
    );
    for id in &ids {
        assert_eq!(e.status(*id), Some(JobState::Success), "{}", e.describe());
    }
    e.assert_clean(ids.len());
    assert_eq!(
        clever.summary().apps_created,
        ids.len(),
        "one app per job\n{}",
        e.describe()
    );
    stop_ok(&mut second, Duration::from_secs(15));
    assert_no_secret(&e.world, &first.log(), &[]);
    assert_no_secret(&e.world, &second.log(), &[]);
}

/// What the test does itself over HTTP: takes a job as a runner would, and
/// creates its application as the Python runner did.
async fn take_job_and_create_app(
    coord_url: &str,
    runner_token: &str,
    api_url: &str,
    orga: (&str, &str),
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
    let (orga_id, orga_token) = orga;
    let mut resp = client
        .post(format!("{api_url}/organisations/{orga_id}/applications"))
        .insert_header(("Authorization", format!("token {orga_token}")))
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
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(
        RunnerConfigOptions {
            quota_jobs: 3,
            ..options()
        },
        &[],
    );
    let token = e.world.runner_tokens()[0].clone();
    let tenant = e.world.tenants()[0].clone();
    let id = e.world.enqueue(job("S", 100));
    let unique: String = token.chars().take(8).collect();
    let name = format!("hpd-job-{unique}-{id}");
    let (coord_url, api_url) = (e.world.coordinator().url(), e.world.clever().api_url());
    let (payload, app) = actix_rt::System::new().block_on(take_job_and_create_app(
        &coord_url,
        &token,
        &api_url,
        (&tenant.orga_id, &tenant.token),
        &name,
    ));
    assert_eq!(payload["id"].as_i64(), Some(id));
    assert_eq!(e.status(id), Some(JobState::Running));
    let job_token = payload["token"].as_str().expect("job token").to_owned();
    let app_id = app["id"].as_str().expect("app id").to_owned();
    let deploy_url = app["deployment"]["httpUrl"]
        .as_str()
        .expect("url")
        .to_owned();
    let weight = e.weight("S");
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
    let state = e.state_file();
    std::fs::write(&state, python_state.to_string()).expect("write state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let clever = e.world.clever().control();
    let mut runner = start_runner(&config, &e.log("python.log"), &[]);
    // The job is running: the app is kept while it runs.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        runner.try_wait().expect("wait").is_none(),
        "{}",
        tail(&runner.log())
    );
    assert_eq!(
        clever.summary().live_count,
        1,
        "app deleted while its job runs\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    assert_eq!(e.status(id), Some(JobState::Running));
    // The job ends (as the inner runner would report it).
    assert!(e.world.coordinator().set_job_status(id, JobState::Success));
    let deleted = common::wait_until(
        || clever.summary().live_count == 0,
        Duration::from_secs(20),
        common::STEP,
    );
    assert!(
        deleted,
        "app not deleted after the job ended\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    let apps = clever.apps();
    assert_eq!(apps.len(), 1, "no other app: {apps:?}");
    assert!(apps.iter().all(|a| job_id_of_app_name(&a.name) == Some(id)));
    assert_eq!(e.status(id), Some(JobState::Success));
    e.assert_clean(1);

    stop_ok(&mut runner, Duration::from_secs(15));
    let after: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("JSON state");
    assert_eq!(
        after["launched"].as_array().map(Vec::len),
        Some(0),
        "job still tracked after the end"
    );
    assert_no_secret(&e.world, &runner.log(), &[&job_token]);
}
