//! End to end, `heptapod-paas-runner run` (the real binary) against
//! paas-sim's world: many jobs through two runner sections under the
//! weighted quota, two tenants, launch failures, and a coordinator outage.
//! Every run ends with a SIGTERM (exit 0) and a check that no token of the
//! world appears in the log.

use crate::common;

use common::{
    assert_no_secret, job_id_of_app_name, options, start_runner, start_runner_seed_form, stop_ok,
    tail, wait_until, E2e, STEP,
};
use paas_sim::clever::{Endpoint as CleverEndpoint, FaultCommand, FaultKind};
use paas_sim::coordinator::{JobSpec, JobState};
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
use std::collections::BTreeSet;
use std::time::Duration;

const STOP: Duration = Duration::from_secs(15);

fn job(flavor: &str, ms: u64) -> JobSpec {
    JobSpec {
        flavor: Some(flavor.to_owned()),
        duration_ms: ms,
        ..JobSpec::default()
    }
}

#[test]
fn twenty_mixed_jobs_through_two_runner_sections_stay_within_the_quota() {
    let e = E2e::start(WorldConfig {
        runner_tokens: 2,
        ..WorldConfig::default()
    });
    let config = e.write_config(
        RunnerConfigOptions {
            runners: 2,
            quota_jobs: 3,
            ..options()
        },
        &[],
    );
    let quota = e.quota();
    assert!(
        (quota - 3.0 * e.weight("M")).abs() < 1e-9,
        "quota = M × 3 from the sim's table"
    );
    assert!(quota >= e.weight("L"), "test set-up: L must fit");
    let flavors = ["XS", "S", "M", "L"];
    let ids: Vec<i64> = (0..20u64)
        .map(|i| {
            e.world
                .enqueue(job(flavors[(i % 4) as usize], 150 + 50 * (i % 5)))
        })
        .collect();
    let mut runner = start_runner(&config, &e.log("mixed.log"), &[]);
    assert!(
        e.wait_done(&ids, Duration::from_secs(90)),
        "not all done in time\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    for id in &ids {
        assert_eq!(
            e.status(*id),
            Some(JobState::Success),
            "job {id}\n{}",
            e.describe()
        );
    }
    e.assert_clean(20);
    let s = e.world.summary();
    eprintln!(
        "20 jobs: max live weight {:.3} (quota {quota:.3}), max live apps {}, creates {:?}",
        s.max_live_weight,
        s.max_live_count,
        s.clever_requests.get("create_app")
    );
    assert_eq!(s.apps_created, 20, "one app per job\n{}", e.describe());
    assert!(
        s.max_live_count > 1,
        "the quota allows parallel jobs: {s:?}"
    );
    // Both sections took jobs (each runner token is one runner id).
    let runners: BTreeSet<Option<i64>> = ids
        .iter()
        .filter_map(|id| e.world.coordinator().job(*id))
        .map(|j| j.runner_id)
        .collect();
    assert_eq!(
        runners.len(),
        2,
        "jobs per runner: {runners:?}\n{}",
        e.describe()
    );
    // Each app has the flavor its job asked for.
    for app in e.world.clever().control().apps() {
        let id = job_id_of_app_name(&app.name).expect("runner app name");
        let spec = e.world.coordinator().job(id).expect("job").spec;
        let want = format!("heptapod-runner-{}", spec.flavor.expect("flavor"));
        assert_eq!(app.flavor, want, "{app:?}");
    }
    stop_ok(&mut runner, STOP);
    assert_no_secret(&e.world, &runner.log(), &[]);
}

#[test]
fn two_tenants_land_in_their_own_organisations() {
    let e = E2e::start(WorldConfig {
        tenants: vec!["acme".into(), "globex".into()],
        ..WorldConfig::default()
    });
    let config = e.write_config(
        RunnerConfigOptions {
            multi_tenant: true,
            quota_jobs: 3,
            ..options()
        },
        &[],
    );
    let tenants = e.world.tenants().to_vec();
    let mut expected = Vec::new();
    for i in 0..6usize {
        let tenant = &tenants[i % 2];
        let id = e.world.enqueue(JobSpec {
            root_namespace: tenant.group.clone(),
            ..job(["XS", "S"][i % 2], 200)
        });
        expected.push((id, tenant.orga_id.clone()));
    }
    let ids: Vec<i64> = expected.iter().map(|(id, _)| *id).collect();
    // This run logs in JSON (for log shippers): the secret check covers that format too.
    let mut runner = start_runner(&config, &e.log("tenants.log"), &["--log-format", "json"]);
    assert!(
        e.wait_done(&ids, Duration::from_secs(60)),
        "not done in time\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    for id in &ids {
        assert_eq!(e.status(*id), Some(JobState::Success), "{}", e.describe());
    }
    let apps = e.world.clever().control().apps();
    assert_eq!(apps.len(), 6, "{apps:?}");
    for (id, orga) in &expected {
        let app = apps
            .iter()
            .find(|a| job_id_of_app_name(&a.name) == Some(*id))
            .unwrap_or_else(|| panic!("no app for job {id}"));
        assert_eq!(&app.org, orga, "job {id}: {app:?}");
    }
    e.assert_clean(6);
    stop_ok(&mut runner, STOP);
    let log = runner.log();
    assert_no_secret(&e.world, &log, &[]);
    let mut keys = BTreeSet::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(record.get("msg").is_some(), "{line}");
        keys.extend(
            record
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys().cloned()),
        );
    }
    // Records carry the context fields operators filter on.
    for key in ["runner", "job_id", "app"] {
        assert!(
            keys.contains(key),
            "no `{key}` field in the JSON log: {keys:?}"
        );
    }
}

#[test]
fn launch_failures_fail_the_job_with_an_explanation_and_leak_nothing() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(
        RunnerConfigOptions {
            quota_jobs: 2,
            ..options()
        },
        &[],
    );
    // Creates keep answering 500: a transient error, retried by the
    // launcher (`launch_attempts`, 4 attempts, 3 s then 6 s then 12 s apart)
    // before the job is failed. (A single 500 is recovered by the retry.)
    e.world.clever().control().fault(FaultCommand::FailNext {
        endpoint: CleverEndpoint::CreateApp,
        count: 4,
        fault: FaultKind::status(500),
    });
    let create_500 = e.world.enqueue(job("S", 100));
    // Started in the Python runner's form (`heptapod-paas-runner CONFIG`), as
    // existing systemd units do.
    let mut runner = start_runner_seed_form(&config, &e.log("failures.log"));
    let over = |id| wait_until(|| e.all_over(&[id]), Duration::from_secs(45), STEP);
    assert!(
        over(create_500),
        "create-500 job not over\n{}",
        e.describe()
    );
    let unknown = e.world.enqueue(job("XXL", 100));
    assert!(
        over(unknown),
        "unknown-flavor job not over\n{}",
        e.describe()
    );
    let later: Vec<i64> = (0..3).map(|_| e.world.enqueue(job("XS", 100))).collect();
    assert!(
        e.wait_done(&later, Duration::from_secs(40)),
        "later jobs not done\n{}",
        e.describe()
    );
    for (id, needle) in [(create_500, "500"), (unknown, "XXL")] {
        assert_eq!(e.status(id), Some(JobState::Failed), "{}", e.describe());
        assert_eq!(
            e.world.coordinator().job_failure_reason(id).as_deref(),
            Some("script_failure"),
            "job {id}"
        );
        let trace = e.world.coordinator().job_trace(id).unwrap_or_default();
        let trace = String::from_utf8_lossy(&trace);
        assert!(
            trace.lines().any(|l| l.contains(needle)),
            "job {id}: no explanatory trace line mentioning {needle:?}:\n{trace}"
        );
    }
    for id in &later {
        assert_eq!(e.status(*id), Some(JobState::Success), "{}", e.describe());
    }
    // The unknown flavor never reached Clever; the 500 created nothing.
    let apps = e.world.clever().control().apps();
    assert!(
        apps.iter()
            .all(|a| job_id_of_app_name(&a.name) != Some(unknown)),
        "{apps:?}"
    );
    e.assert_clean(3);
    stop_ok(&mut runner, STOP);
    assert_no_secret(&e.world, &runner.log(), &[]);
}

#[test]
fn coordinator_outage_in_the_middle_is_survived() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(
        RunnerConfigOptions {
            quota_jobs: 3,
            ..options()
        },
        &[],
    );
    // Long jobs, running across the outage: the inner runner writes its
    // first trace line at start and reports after 6 s, so only the
    // runner's own calls meet the outage.
    let long: Vec<i64> = (0..2).map(|_| e.world.enqueue(job("XS", 6000))).collect();
    let mut runner = start_runner(&config, &e.log("outage.log"), &[]);
    let coord = e.world.coordinator();
    let started = wait_until(
        || {
            long.iter()
                .all(|id| coord.job(*id).is_some_and(|j| j.trace_len > 0))
        },
        Duration::from_secs(20),
        STEP,
    );
    assert!(started, "long jobs not started\n{}", e.describe());
    coord.set_down(true);
    let queued: Vec<i64> = (0..4).map(|_| e.world.enqueue(job("S", 200))).collect();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        runner.try_wait().expect("wait").is_none(),
        "runner exited during the outage\n{}",
        tail(&runner.log())
    );
    let requests_before = coord.requests().len();
    coord.set_down(false);
    let all: Vec<i64> = long.iter().chain(&queued).copied().collect();
    assert!(
        e.wait_done(&all, Duration::from_secs(60)),
        "not all done after the outage\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    for id in &all {
        assert_eq!(e.status(*id), Some(JobState::Success), "{}", e.describe());
    }
    assert!(coord.requests().len() > requests_before);
    assert!(runner.try_wait().expect("wait").is_none(), "runner exited");
    e.assert_clean(6);
    stop_ok(&mut runner, STOP);
    let log = runner.log();
    assert_no_secret(&e.world, &log, &[]);
    // The outage was seen (and logged), not silently skipped.
    assert!(log.contains("502"), "no trace of the outage in the log");
}
