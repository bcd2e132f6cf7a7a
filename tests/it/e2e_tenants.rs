//! End to end, multi-tenant trouble around a restart, with the real binary
//! against paas-sim: a tenant whose group lost its attributes between a
//! stop and a restart holds back no other tenant, its applications keep
//! their weight until the attributes come back, then get deleted; a short
//! coordinator outage during a restart fails no job; `forget` releases a
//! tracked resource by hand, and is refused while the state file is locked.

use crate::common;

use common::{assert_no_secret, options, run_to_end, start_runner, stop_ok, tail, wait_until, E2e};
use heptapod_paas_runner::instance_lock::InstanceLock;
use paas_sim::clever::{RepoDelay, Timing};
use paas_sim::coordinator::{Endpoint, Fault, JobSpec, JobState};
use paas_sim::world::{RunnerConfigOptions, Tenant, WorldConfig};
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const STOP: Duration = Duration::from_secs(15);
const STEP: Duration = common::STEP;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run_to_end(&args, Duration::from_secs(20))
}

fn tenant_job(t: &Tenant, ms: u64) -> JobSpec {
    JobSpec {
        root_namespace: t.group.clone(),
        flavor: Some("XS".to_owned()),
        duration_ms: ms,
        ..JobSpec::default()
    }
}

/// The ids of the live applications of organisation `orga`.
fn live_in(e: &E2e, orga: &str) -> Vec<String> {
    e.world
        .clever()
        .control()
        .apps()
        .into_iter()
        .filter(|a| a.org == orga && a.deleted_ms.is_none())
        .map(|a| a.id)
        .collect()
}

#[test]
fn an_unresolvable_tenant_holds_back_no_other_and_is_handled_once_restored() {
    let e = E2e::start(WorldConfig {
        tenants: vec!["acme".into(), "globex".into()],
        ..WorldConfig::default()
    });
    let address = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        l.local_addr().expect("local address").to_string()
    };
    let config = e.write_config(
        RunnerConfigOptions {
            multi_tenant: true,
            quota_jobs: 6,
            ..options()
        },
        &[
            ("listen_address", toml::Value::String(address.clone())),
            ("reconcile_interval", toml::Value::Integer(2)),
        ],
    );
    // The `tenants_unresolved` gauge's value, as /metrics serves it.
    let unresolved_gauge = || {
        let (_, body) = common::get(&address, "/metrics")?;
        body.lines()
            .find(|l| l.starts_with("heptapod_paas_runner_tenants_unresolved{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let tenants = e.world.tenants().to_vec();
    let (acme, globex) = (&tenants[0], &tenants[1]);
    // Jobs long enough to be running across the stop.
    let first: Vec<i64> = (0..4)
        .map(|i| e.world.enqueue(tenant_job(&tenants[i % 2], 6000)))
        .collect();
    let mut runner = start_runner(&config, &e.log("first.log"), &[]);
    // Every job pushed to its application: only deletions need acme's
    // organisation after the restart.
    let running = wait_until(
        || {
            first
                .iter()
                .all(|id| e.status(*id) == Some(JobState::Running))
                && e.world.clever().control().summary().deployments >= first.len()
        },
        Duration::from_secs(30),
        STEP,
    );
    assert!(running, "{}\n{}", e.describe(), tail(&runner.log()));
    stop_ok(&mut runner, STOP);
    let stranded = live_in(&e, &acme.orga_id);
    assert_eq!(stranded.len(), 2, "{}", e.describe());

    // Between the stop and the restart, acme's group loses its attributes.
    e.world.coordinator().set_group_attributes(&acme.group, &[]);
    let more: Vec<i64> = (0..3)
        .map(|_| e.world.enqueue(tenant_job(globex, 300)))
        .collect();
    let mut runner = start_runner(&config, &e.log("second.log"), &[]);
    // globex's jobs, old and new, run and their applications get deleted.
    let globex_ids: Vec<i64> = first
        .iter()
        .copied()
        .skip(1)
        .step_by(2)
        .chain(more.iter().copied())
        .collect();
    let globex_done = wait_until(
        || e.all_over(&globex_ids) && live_in(&e, &globex.orga_id).is_empty(),
        Duration::from_secs(60),
        STEP,
    );
    assert!(globex_done, "{}\n{}", e.describe(), tail(&runner.log()));
    for id in first.iter().chain(&more) {
        let log = runner.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&id.to_string()))
            .collect();
        assert_eq!(
            e.status(*id),
            Some(JobState::Success),
            "{}\n{}",
            e.describe(),
            lines.join("\n")
        );
    }
    // acme's applications are kept (their jobs are over), with their weight.
    assert_eq!(live_in(&e, &acme.orga_id), stranded, "{}", e.describe());
    let log = runner.log();
    assert!(
        log.contains("cannot be found now") && log.contains("class: permanent"),
        "{}",
        tail(&log)
    );
    assert!(!log.contains("cannot list the resources"), "{}", tail(&log));
    assert_eq!(unresolved_gauge(), Some(1.0), "{}", tail(&log));
    // `verify` names the tenant and says the cause is permanent.
    let arg = config.display().to_string();
    let (code, stdout, stderr) = run(&["verify", &arg]);
    assert_eq!(code, Some(1), "stdout {stdout}\nstderr {stderr}");
    let row = stdout
        .lines()
        .find(|l| l.contains("clever tenant \"acme\""))
        .unwrap_or_else(|| panic!("no acme row:\n{stdout}"));
    assert!(
        row.contains("FAILED") && row.contains("permanent"),
        "{stdout}"
    );

    // The owner restores the attributes: the stranded applications go.
    e.world.coordinator().set_group_attributes(
        &acme.group,
        &[
            ("cc_orga_id", acme.orga_id.as_str()),
            ("cc_orga_token", acme.token.as_str()),
        ],
    );
    let cleaned = wait_until(
        || live_in(&e, &acme.orga_id).is_empty(),
        Duration::from_secs(90),
        STEP,
    );
    assert!(cleaned, "{}\n{}", e.describe(), tail(&runner.log()));
    let counted_none = wait_until(
        || unresolved_gauge() == Some(0.0),
        Duration::from_secs(10),
        STEP,
    );
    assert!(counted_none, "{:?}", unresolved_gauge());
    e.assert_clean(first.len() + more.len());
    stop_ok(&mut runner, STOP);
    assert_no_secret(&e.world, &runner.log(), &[]);
}

#[test]
fn a_short_coordinator_outage_during_a_restart_fails_no_job() {
    let e = E2e::start(WorldConfig {
        tenants: vec!["acme".into(), "globex".into()],
        // Repositories take 1 s to be ready: the stop finds launches under
        // way, resumed after the restart.
        timing: Timing {
            repo_create_delay: RepoDelay::After(Duration::from_millis(1000)),
            ..WorldConfig::fast_timing()
        },
        ..WorldConfig::default()
    });
    let config = e.write_config(
        RunnerConfigOptions {
            multi_tenant: true,
            quota_jobs: 4,
            ..options()
        },
        &[("shutdown_timeout", toml::Value::Integer(10))],
    );
    let tenants = e.world.tenants().to_vec();
    let ids: Vec<i64> = (0..6)
        .map(|i| e.world.enqueue(tenant_job(&tenants[i % 2], 1500)))
        .collect();
    let clever = e.world.clever().control();
    let mut runner = start_runner(&config, &e.log("first.log"), &[]);
    let launching = wait_until(
        || clever.summary().apps_created >= 2,
        Duration::from_secs(20),
        STEP,
    );
    assert!(launching, "{}", e.describe());
    stop_ok(&mut runner, STOP);

    // For the first 2 s of the restart, GitLab answers 502 to every
    // project and group read (tenants cannot be resolved) while it hands
    // out new jobs; then everything answers.
    let coordinator = e.world.coordinator();
    for endpoint in [
        Endpoint::Project,
        Endpoint::Group,
        Endpoint::GroupAttributes,
    ] {
        coordinator.inject_fault(endpoint, Fault::status(502, 100_000));
    }
    let ids: Vec<i64> = ids
        .iter()
        .copied()
        .chain((0..4).map(|i| e.world.enqueue(tenant_job(&tenants[i % 2], 500))))
        .collect();
    let mut runner = start_runner(&config, &e.log("second.log"), &[]);
    std::thread::sleep(Duration::from_secs(2));
    coordinator.clear_faults();
    let done = e.wait_done(&ids, Duration::from_secs(90));
    assert!(done, "{}\n{}", e.describe(), tail(&runner.log()));
    for id in &ids {
        assert_eq!(e.status(*id), Some(JobState::Success), "{}", e.describe());
    }
    e.assert_clean(ids.len());
    stop_ok(&mut runner, STOP);
    assert_no_secret(&e.world, &runner.log(), &[]);
}

#[test]
fn forget_releases_a_tracked_resource_and_is_refused_while_a_service_runs() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(options(), &[]);
    let arg = config.display().to_string();
    let state_file = e.state_file();
    let identity: String = e.world.runner_tokens()[0].chars().skip(5).take(9).collect();
    let entry = |job_id: i64, weight: f64| {
        json!({
            "runner_name": identity, "job_id": job_id, "token": format!("job-token-{job_id}"),
            "trace_offset": 0, "expected_weight": 1.0,
            "paas_resource": {"id": format!("app_{job_id}"), "name": format!("hpd-job-{identity}-{job_id}"),
                              "weight": weight, "launched": true}
        })
    };
    let state = json!({
        "launched": [entry(1, 2.5), entry(2, 1.0)],
        "pending": [],
        "to_decommission": [entry(3, 1.0)],
    });
    std::fs::write(&state_file, state.to_string()).expect("state");
    std::fs::set_permissions(&state_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // A service holds the lock: refused, nothing written.
    let lock = InstanceLock::acquire(&state_file).expect("lock");
    let (code, stdout, stderr) = run(&["forget", &arg, "--resource", "app_1"]);
    assert_eq!(code, Some(1), "stdout {stdout}\nstderr {stderr}");
    assert!(stderr.contains("stop the service"), "{stderr}");
    drop(lock);
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&state_file).expect("read")).expect("JSON");
    assert_eq!(saved, state);

    // An unknown id: exit 2, the tracked ids listed, no token.
    let (code, stdout, stderr) = run(&["forget", "-c", &arg, "--resource", "app_9"]);
    assert_eq!(code, Some(2), "stdout {stdout}\nstderr {stderr}");
    assert!(
        stderr.contains("app_9") && stderr.contains("app_1 (job 1)"),
        "{stderr}"
    );
    assert!(!stderr.contains("job-token"), "{stderr}");

    // Released: told, logged, gone from the file; the rest kept.
    let (code, stdout, stderr) = run(&["forget", &arg, "--resource", "app_1"]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(
        stdout.contains("resource app_1")
            && stdout.contains("job 1")
            && stdout.contains("weight 2.50"),
        "{stdout}"
    );
    assert!(stderr.contains("released a tracked resource"), "{stderr}");
    assert!(!stderr.contains("job-token") && !stdout.contains("job-token"));
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&state_file).expect("read")).expect("JSON");
    let jobs = |key: &str| -> Vec<i64> {
        saved[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["job_id"].as_i64())
            .collect()
    };
    assert_eq!(jobs("launched"), vec![2]);
    assert_eq!(jobs("to_decommission"), vec![3]);
    let mode = std::fs::metadata(&state_file)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // The runner starts on the file forget wrote.
    let (code, stdout, stderr) = run(&["check", &arg]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
}
