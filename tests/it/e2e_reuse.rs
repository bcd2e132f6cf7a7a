//! End to end, the real binary with clever-service-docker against paas-sim:
//! the standby pool. Finished jobs' applications are reused by jobs of the
//! same tenant and size, never across tenants, the quota holds at every
//! change of the simulated Clever Cloud's live applications, and nothing
//! leaks; standby applications survive a restart, including one recorded
//! by heptapod-paas-runner 1.1.1; a helper dying on standby costs the next
//! job nothing but a new application.

use crate::common;

use common::{assert_no_secret, options, start_runner, stop_ok, tail, E2e, STEP};
use paas_sim::clever::{HelperFaultCommand, HelperJobEntry};
use paas_sim::coordinator::{JobSpec, JobState};
use paas_sim::runner_process::RunnerProcess;
use paas_sim::world::{wait_until, RunnerConfigOptions, ServiceOptions, WorldConfig};
use serde_json::Value;
use std::time::Duration;

/// Graceful stops get this long.
const STOP: Duration = Duration::from_secs(20);

/// A world of two tenants (multi-tenant section, each tenant its own
/// organisation).
fn two_tenants() -> E2e {
    E2e::start(WorldConfig {
        tenants: vec!["acme".into(), "globex".into()],
        ..WorldConfig::default()
    })
}

/// A multi-tenant clever-service-docker section, standby kept `keep`.
fn service_options(keep: Duration, quota_jobs: u32) -> RunnerConfigOptions {
    RunnerConfigOptions {
        multi_tenant: true,
        quota_jobs,
        service: Some(ServiceOptions {
            keep_for_reuse: keep,
            ..ServiceOptions::default()
        }),
        ..options()
    }
}

/// A job of `tenant` (index in the world's tenants) and `flavor`.
fn job(e: &E2e, tenant: usize, flavor: &str, ms: u64) -> i64 {
    let group = e
        .world
        .tenants()
        .get(tenant)
        .map(|t| t.group.clone())
        .unwrap_or_default();
    e.world.enqueue(JobSpec {
        root_namespace: group,
        flavor: Some(flavor.to_owned()),
        duration_ms: ms,
        ..JobSpec::default()
    })
}

fn helper_jobs(e: &E2e) -> Vec<HelperJobEntry> {
    e.world.clever().control().helper_jobs()
}

/// Every job over and `standby` applications alive, put on standby by the
/// runner (its log says so).
fn wait_standby(e: &E2e, runner: &RunnerProcess, ids: &[i64], standby: usize) -> bool {
    wait_until(
        || {
            e.all_over(ids)
                && e.world.clever().control().summary().live_count == standby
                && runner.log().matches("kept on standby").count() >= standby
        },
        Duration::from_secs(60),
        STEP,
    )
}

/// The helpers' jobs ran on applications of their own tenant only.
fn assert_no_cross_tenant_reuse(e: &E2e) {
    let apps = e.world.clever().control().apps();
    for entry in helper_jobs(e) {
        let app = apps
            .iter()
            .find(|a| a.id == entry.app_id)
            .unwrap_or_else(|| panic!("no app {}", entry.app_id));
        assert_eq!(
            app.org, entry.tenant,
            "job {} ran on an application of another tenant",
            entry.job_id
        );
    }
}

#[test]
fn thirty_jobs_of_two_tenants_and_two_sizes_reuse_applications_within_the_quota() {
    let e = two_tenants();
    // Room for four M jobs: standby applications must make room for new ones.
    let config = e.write_config(service_options(Duration::from_secs(5), 4), &[]);
    let mut runner = start_runner(&config, &e.log("reuse-30.log"), &[]);
    // Three waves of ten, each wave after the previous one ended, so that
    // the later waves find applications on standby.
    let mut ids = Vec::new();
    for wave in 0..3usize {
        let wave_ids: Vec<i64> = (0..10usize)
            .map(|i| job(&e, (i + wave) % 2, ["S", "M"][i / 5], 300))
            .collect();
        assert!(
            wait_until(|| e.all_over(&wave_ids), Duration::from_secs(90), STEP),
            "wave {wave} not done\n{}\n{}",
            e.describe(),
            tail(&runner.log())
        );
        ids.extend(wave_ids);
        // The runner sees a job over at its next progress check (every
        // 0.5 s): then its application is on standby.
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert!(
        e.wait_done(&ids, Duration::from_secs(60)),
        "standby applications not deleted after their time\n{}",
        e.describe()
    );
    for id in &ids {
        assert_eq!(e.status(*id), Some(JobState::Success), "{}", e.describe());
    }
    let s = e.world.summary();
    let quota = e.quota();
    let curve = e.world.clever().control().curve();
    assert!(!curve.is_empty());
    for point in &curve {
        assert!(
            point.live_weight <= quota + 1e-6,
            "quota {quota} exceeded at {} ms: {} (standby included)",
            point.t_ms,
            point.live_weight
        );
    }
    assert_no_cross_tenant_reuse(&e);
    assert_eq!(s.helper_jobs, 30, "{}", e.describe());
    let ratio = s.reuse_ratio().unwrap_or(0.0);
    println!(
        "reuse: {} of {} jobs on a reused application ({:.0} %), {} applications created",
        s.helper_jobs_reused,
        s.helper_jobs,
        ratio * 100.0,
        s.apps_created
    );
    assert!(
        s.helper_jobs_reused > 0,
        "no reuse at all\n{}",
        e.describe()
    );
    assert_eq!(
        s.apps_created + s.helper_jobs_reused,
        30,
        "every job on a new or a reused application\n{}",
        e.describe()
    );
    e.assert_clean(1);
    stop_ok(&mut runner, STOP);
    let log = runner.log();
    assert!(log.contains("reus"), "{}", tail(&log));
    assert_no_secret(&e.world, &log, &[]);
}

/// The standby records of a state file.
fn standby_records(e: &E2e) -> Vec<Value> {
    let text = std::fs::read_to_string(e.state_file()).expect("state file");
    let state: Value = serde_json::from_str(&text).expect("state is JSON");
    state
        .get("standby_resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Two jobs (one per tenant) run, then their applications wait on standby
/// when the runner stops with SIGTERM: recorded in the state file.
fn two_on_standby(e: &E2e, config: &std::path::Path, log: &str) -> Vec<i64> {
    let ids = vec![job(e, 0, "S", 200), job(e, 1, "S", 200)];
    let mut runner = start_runner(config, &e.log(log), &[]);
    assert!(
        wait_standby(e, &runner, &ids, 2),
        "not on standby\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    stop_ok(&mut runner, STOP);
    assert_eq!(
        e.world.clever().control().summary().live_count,
        2,
        "a graceful stop keeps standby applications\n{}",
        e.describe()
    );
    assert_eq!(standby_records(e).len(), 2, "{}", e.describe());
    ids
}

/// After a restart, one job per tenant runs on the standby applications.
fn reused_after_restart(e: &E2e, config: &std::path::Path, log: &str) {
    let created = e.world.summary().apps_created;
    let ids = vec![job(e, 0, "S", 200), job(e, 1, "S", 200)];
    let mut runner = start_runner(config, &e.log(log), &[]);
    assert!(
        e.wait_done(&ids, Duration::from_secs(90)),
        "not done\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    for id in &ids {
        assert_eq!(e.status(*id), Some(JobState::Success), "{}", e.describe());
    }
    let s = e.world.summary();
    assert_eq!(
        s.apps_created,
        created,
        "no new application: both jobs reused one\n{}",
        e.describe()
    );
    assert_eq!(s.helper_jobs_reused, 2, "{}", e.describe());
    assert_no_cross_tenant_reuse(e);
    e.assert_clean(2);
    stop_ok(&mut runner, STOP);
    assert_no_secret(&e.world, &runner.log(), &[]);
}

#[test]
fn applications_on_standby_at_a_restart_are_reused_after_it() {
    let e = two_tenants();
    let config = e.write_config(service_options(Duration::from_secs(30), 4), &[]);
    two_on_standby(&e, &config, "before.log");
    reused_after_restart(&e, &config, "after.log");
}

/// The 1.1.1 keys of a service application's `paas_resource`.
const PY111_RESOURCE_KEYS: [&str; 7] = [
    "id",
    "gitlab_namespace",
    "weight",
    "launched",
    "netloc",
    "paas_token",
    "deploy_url",
];

#[test]
fn a_1_1_1_state_file_with_standby_resources_is_resumed() {
    let e = two_tenants();
    let config = e.write_config(service_options(Duration::from_secs(30), 4), &[]);
    two_on_standby(&e, &config, "before.log");
    // The state file as heptapod-paas-runner 1.1.1 writes it: its four
    // sections only, its handle keys, its resource keys.
    let text = std::fs::read_to_string(e.state_file()).expect("state file");
    let state: Value = serde_json::from_str(&text).expect("state is JSON");
    let mut standby = Vec::new();
    for mut record in standby_records(&e) {
        let Some(handle) = record.as_object_mut() else {
            panic!("not an object: {record}");
        };
        handle.remove("since");
        handle.remove("use_count");
        let resource = handle
            .get_mut("paas_resource")
            .and_then(Value::as_object_mut)
            .expect("a paas_resource");
        for key in PY111_RESOURCE_KEYS {
            assert!(resource.contains_key(key), "no `{key}` in {resource:?}");
        }
        resource.retain(|k, _| PY111_RESOURCE_KEYS.contains(&k.as_str()));
        standby.push(record);
    }
    let py111 = serde_json::json!({
        "launched": state.get("launched").cloned().unwrap_or(Value::Array(Vec::new())),
        "to_decommission": [],
        "standby_resources": standby,
        "pending": [],
    });
    std::fs::write(e.state_file(), py111.to_string()).expect("write the 1.1.1 state");
    reused_after_restart(&e, &config, "after.log");
}

#[test]
fn a_helper_dying_on_standby_the_next_job_runs_on_a_new_application() {
    let e = two_tenants();
    let config = e.write_config(service_options(Duration::from_secs(30), 4), &[]);
    e.world
        .clever()
        .control()
        .helper_fault(HelperFaultCommand::DieOnStandby { count: 1 });
    let mut runner = start_runner(&config, &e.log("dying.log"), &[]);
    let first = job(&e, 0, "S", 200);
    assert!(
        wait_standby(&e, &runner, &[first], 1),
        "not on standby\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    let second = job(&e, 0, "S", 200);
    assert!(
        wait_until(|| e.all_over(&[second]), Duration::from_secs(60), STEP),
        "second job not done\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    assert_eq!(
        e.status(second),
        Some(JobState::Success),
        "{}",
        e.describe()
    );
    let s = e.world.summary();
    assert_eq!(s.apps_created, 2, "a new application\n{}", e.describe());
    assert_eq!(s.helper_jobs_reused, 0, "{}", e.describe());
    let dead = helper_jobs(&e)
        .iter()
        .find(|j| j.job_id == first)
        .map(|j| j.app_id.clone())
        .expect("the first job's application");
    assert!(
        wait_until(
            || e.world
                .clever()
                .control()
                .apps()
                .iter()
                .any(|a| a.id == dead && a.deleted_ms.is_some()),
            Duration::from_secs(30),
            STEP
        ),
        "the dead helper's application is deleted\n{}",
        e.describe()
    );
    stop_ok(&mut runner, STOP);
    assert_no_secret(&e.world, &runner.log(), &[]);
}
