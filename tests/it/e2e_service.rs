//! End to end, `heptapod-paas-runner run` (the real binary) with the
//! clever-service-docker executor against paas-sim: service applications,
//! their helpers on 127.0.0.1, jobs sent with `launch-job`; no leak, no
//! violation, no token (helper tokens included) in the log.

use crate::common;

use common::{assert_no_secret, options, start_runner, stop_ok, tail, E2e};
use paas_sim::clever::HelperRoute;
use paas_sim::coordinator::{JobSpec, JobState};
use paas_sim::world::{RunnerConfigOptions, ServiceOptions, WorldConfig};
use std::time::Duration;

#[test]
fn a_few_jobs_run_on_service_applications_and_nothing_leaks() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(
        RunnerConfigOptions {
            service: Some(ServiceOptions::default()),
            quota_jobs: 3,
            ..options()
        },
        &[],
    );
    let ids: Vec<i64> = (0..4u64)
        .map(|i| {
            e.world.enqueue(JobSpec {
                flavor: Some(["S", "M"][(i % 2) as usize].to_owned()),
                duration_ms: 200,
                ..JobSpec::default()
            })
        })
        .collect();
    let mut runner = start_runner(&config, &e.log("service.log"), &[]);
    assert!(
        e.wait_done(&ids, Duration::from_secs(60)),
        "not all done in time\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    for id in &ids {
        assert_eq!(e.status(*id), Some(JobState::Success), "{}", e.describe());
    }
    // Finished jobs' applications wait 10 s on standby: a later job of the
    // same size may run on one of them.
    e.assert_clean(1);
    let s = e.world.summary();
    assert!(s.apps_created <= 4, "{}", e.describe());
    assert_eq!(s.service_apps, s.apps_created, "{}", e.describe());
    assert_eq!(s.helper_jobs, 4, "{}", e.describe());
    assert_eq!(s.deployments, s.service_apps, "one helper push per app");
    let control = e.world.clever().control();
    assert_eq!(
        control.helper_call_count(HelperRoute::LaunchJob, Some(201)),
        4
    );
    assert_eq!(
        control.helper_call_count(HelperRoute::CanTakeJob, Some(401)),
        0
    );
    // The helper tokens, read from the applications' environments.
    let tokens: Vec<String> = control
        .apps()
        .iter()
        .filter_map(|a| control.deployment_envs(&a.id).into_iter().next())
        .filter_map(|env| env.get("HEPTAPOD_PAAS_RUNNER_TOKEN").cloned())
        .collect();
    assert_eq!(tokens.len(), s.apps_created, "every app had a helper token");
    stop_ok(&mut runner, Duration::from_secs(15));
    let log = runner.log();
    assert!(log.contains("job sent to the helper"), "{}", tail(&log));
    let extra: Vec<&str> = tokens.iter().map(String::as_str).collect();
    assert_no_secret(&e.world, &log, &extra);
}

/// The real binary's `check` and `list` accept a heptapod-paas-runner
/// 1.1.1 configuration (service section, per-section secrets file) as it is.
#[test]
fn check_and_list_accept_a_1_1_1_configuration() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/testdata");
    std::fs::copy(
        testdata.join("py111_secrets.toml"),
        dir.path().join("py111_secrets.toml"),
    )
    .expect("copy");
    // `check` checks what `run` would: the state file's directory must exist.
    let text = std::fs::read_to_string(testdata.join("py111_service.toml")).expect("read");
    let state = dir.path().join("state.json").display().to_string();
    let text = text.replace("/srv/heptapod-runner/paas-runner-state.json", &state);
    let config = dir.path().join("py111_service.toml");
    std::fs::write(&config, text).expect("write");
    let args = [std::ffi::OsStr::new("check"), config.as_os_str()];
    let (code, stdout, stderr) = common::run_to_end(&args, Duration::from_secs(20));
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("valid (2 runner sections)"), "{stdout}");
    let secrets = std::fs::read_to_string(dir.path().join("py111_secrets.toml")).expect("read");
    for line in secrets.lines() {
        let value = line.split('"').nth(1).expect("a quoted secret");
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "{value}"
        );
    }
    let args = [std::ffi::OsStr::new("list"), config.as_os_str()];
    let (code, stdout, stderr) = common::run_to_end(&args, Duration::from_secs(20));
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("clever-service-docker"), "{stdout}");
}

/// A helper never ready within `cc_service_ready_timeout`: the job fails
/// with the reason in its log, and its application is deleted.
#[test]
fn a_helper_never_ready_fails_the_job_and_its_application_is_deleted() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(
        RunnerConfigOptions {
            service: Some(ServiceOptions {
                ready_timeout: Some(Duration::from_secs(1)),
                ..ServiceOptions::default()
            }),
            ..options()
        },
        &[],
    );
    e.world
        .clever()
        .control()
        .helper_fault(paas_sim::clever::HelperFaultCommand::NeverReady { count: 1 });
    let id = e.world.enqueue(JobSpec::default());
    let mut runner = start_runner(&config, &e.log("never-ready.log"), &[]);
    assert!(
        e.wait_done(&[id], Duration::from_secs(30)),
        "{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    assert_eq!(e.status(id), Some(JobState::Failed), "{}", e.describe());
    let trace = e
        .world
        .coordinator()
        .control()
        .job_trace(id)
        .unwrap_or_default();
    let trace = String::from_utf8_lossy(&trace);
    assert!(
        trace.contains("did not answer that it can take a job within 1 s"),
        "{trace}"
    );
    let s = e.world.summary();
    assert_eq!((s.apps_created, s.apps_deleted), (1, 1), "{}", e.describe());
    assert_eq!(s.helper_jobs, 0);
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    stop_ok(&mut runner, Duration::from_secs(15));
    assert_no_secret(&e.world, &runner.log(), &[]);
}

/// A graceful stop while the first `can-take-job` wait runs (a helper that
/// never becomes ready, `cc_service_ready_timeout` at its 600 s default):
/// the wait ends at once, the service exits 0 well before its 90 s
/// `shutdown_timeout`, and the job is kept in the state file with its
/// application, which is not deleted (the next process resumes it).
#[test]
fn a_sigterm_during_the_first_readiness_wait_stops_at_once_and_keeps_the_job() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(
        RunnerConfigOptions {
            service: Some(ServiceOptions::default()),
            ..options()
        },
        &[],
    );
    let control = e.world.clever().control();
    control.helper_fault(paas_sim::clever::HelperFaultCommand::NeverReady { count: 1 });
    let id = e.world.enqueue(JobSpec::default());
    let mut runner = start_runner(&config, &e.log("sigterm-ready.log"), &[]);
    assert!(
        paas_sim::world::wait_until(
            || control.helper_call_count(HelperRoute::CanTakeJob, None) >= 1,
            Duration::from_secs(30),
            common::STEP,
        ),
        "the helper was never asked\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    // Well below the 90 s shutdown_timeout (and the 600 s wait).
    stop_ok(&mut runner, Duration::from_secs(15));
    let log = runner.log();
    assert!(
        log.contains("wait for the resource to be ready interrupted"),
        "{}",
        tail(&log)
    );
    let apps = control.apps();
    assert_eq!(apps.len(), 1, "{}", e.describe());
    let s = e.world.summary();
    assert_eq!((s.apps_created, s.apps_deleted), (1, 0), "{}", e.describe());
    assert_eq!(s.helper_jobs, 0);
    assert_eq!(e.status(id), Some(JobState::Running), "{}", e.describe());
    let text = std::fs::read_to_string(e.state_file()).expect("state file");
    let state: serde_json::Value = serde_json::from_str(&text).expect("state is JSON");
    let compact = state.to_string();
    let app = apps.first().map(|a| a.id.clone()).unwrap_or_default();
    assert!(
        compact.contains(&format!("\"{app}\"")) && compact.contains(&format!("\"job_id\":{id}")),
        "the job and its application are kept: {compact}"
    );
    let uncertain = state.get("uncertain").and_then(|u| u.as_array());
    assert!(
        uncertain.is_none_or(|u| u.is_empty()),
        "nothing was in flight: {compact}"
    );
    assert_no_secret(&e.world, &log, &[]);
}
