//! End to end, an application named like this runner's whose running job
//! the coordinator shows as another runner's: identified once (its
//! `job.json` fetched, its job looked up), then left alone at every later
//! reconciliation pass without being fetched or looked up again.

use crate::common;

use common::{options, start_runner, stop_ok, tail, wait_until, E2e, STEP};
use paas_sim::clever::Endpoint as CleverEndpoint;
use paas_sim::coordinator::{Endpoint as CoordinatorEndpoint, JobSpec, JobState};
use paas_sim::world::WorldConfig;
use serde_json::Value;
use std::time::Duration;

const STOP: Duration = Duration::from_secs(15);
const NOT_OURS: &str = "does not show as this runner's";

/// Sets every runner id remembered beside `state_file` to `id`.
fn remember_runner_id(state_file: &std::path::Path, id: i64) {
    let path = heptapod_paas_runner::gitlab::runner_ids_path(state_file);
    let mut ids: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("runner ids")).expect("JSON");
    for entry in ids.as_object_mut().expect("object").values_mut() {
        entry["id"] = Value::from(id);
    }
    std::fs::write(&path, ids.to_string()).expect("write runner ids");
}

#[test]
fn an_application_that_is_not_ours_is_identified_once_only() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(
        options(),
        &[("reconcile_interval", toml::Value::Integer(1))],
    );
    let id = e.world.enqueue(JobSpec {
        duration_ms: 120_000,
        ..JobSpec::default()
    });
    let clever = e.world.clever().control();
    let mut runner = start_runner(&config, &e.log("first.log"), &[]);
    let pushed = wait_until(
        || e.status(id) == Some(JobState::Running) && clever.summary().deployments >= 1,
        Duration::from_secs(30),
        STEP,
    );
    assert!(pushed, "{}\n{}", e.describe(), tail(&runner.log()));
    stop_ok(&mut runner, STOP);
    // The state is lost, and this runner now believes it has another id:
    // the running job of the application is another runner's.
    std::fs::remove_file(e.state_file()).expect("remove state");
    remember_runner_id(&e.state_file(), 999_999);

    let coordinator = e.world.coordinator();
    let mut runner = start_runner(&config, &e.log("second.log"), &[]);
    let judged = wait_until(
        || runner.log().contains(NOT_OURS),
        Duration::from_secs(30),
        STEP,
    );
    assert!(judged, "{}\n{}", e.describe(), tail(&runner.log()));
    let passes = || {
        runner
            .log()
            .matches("reconciliation: resources listed")
            .count()
    };
    let first_pass = passes();
    let fetches = clever.request_count(CleverEndpoint::GitUploadPack);
    let lookups = coordinator.count(CoordinatorEndpoint::JobStatus);
    // Three more passes (one a second).
    let more = wait_until(|| passes() >= first_pass + 3, Duration::from_secs(20), STEP);
    assert!(more, "{}", tail(&runner.log()));
    assert_eq!(
        clever.request_count(CleverEndpoint::GitUploadPack),
        fetches,
        "job.json fetched again\n{}",
        tail(&runner.log())
    );
    assert_eq!(
        coordinator.count(CoordinatorEndpoint::JobStatus),
        lookups,
        "the job looked up again\n{}",
        tail(&runner.log())
    );
    let log = runner.log();
    assert_eq!(
        log.matches(NOT_OURS).count(),
        1,
        "warned once\n{}",
        tail(&log)
    );
    // Neither deleted nor adopted.
    assert_eq!(clever.summary().live_count, 1, "{}", e.describe());
    assert_eq!(e.status(id), Some(JobState::Running));
    stop_ok(&mut runner, STOP);
}
