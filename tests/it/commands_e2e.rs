//! End to end, the operator commands of the real binary against paas-sim,
//! on what a running (or absent) service leaves: `verify` checking each
//! tenant a multi-tenant runner knows from the state file (read only, even
//! while a service holds its lock), `list` showing the live job counts of
//! the service on `listen_address`, and the line of a key found wrong by
//! the start-up checks.

use crate::common;

use common::{assert_no_secret, run_to_end, start_runner, stop_ok, tail, wait_until, E2e, STEP};
use heptapod_paas_runner::instance_lock::{lock_path, InstanceLock};
use paas_sim::coordinator::{JobSpec, JobState};
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
use serde_json::json;
use std::ffi::OsStr;
use std::net::TcpListener;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run_to_end(&args, LIMIT)
}

/// The identity of the world's first runner (9 characters after `glrt-`).
fn identity(e: &E2e) -> String {
    e.world.runner_tokens()[0].chars().skip(5).take(9).collect()
}

#[test]
fn verify_checks_each_tenant_known_from_the_state_and_fails_for_a_revoked_one() {
    let e = E2e::start(WorldConfig {
        tenants: vec!["acme".into(), "globex".into()],
        ..WorldConfig::default()
    });
    let config = e.write_config(
        RunnerConfigOptions {
            multi_tenant: true,
            ..common::options()
        },
        &[],
    );
    let arg = config.display().to_string();
    let state_file = e.state_file();

    // No state file yet: no tenant known, said, and not a failure.
    let (code, stdout, stderr) = run(&["verify", &arg]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("clever tenants"))
        .unwrap_or_else(|| panic!("no tenants row:\n{stdout}"));
    assert!(
        line.contains("skipped") && line.contains("no tenant known yet"),
        "{stdout}"
    );
    assert!(line.contains(&state_file.display().to_string()), "{line}");

    // A resource of each tenant in the state file, as the service saves them.
    let tenants = e.world.tenants().to_vec();
    let entry = |job_id: i64, t: &paas_sim::world::Tenant| {
        json!({
            "runner_name": identity(&e), "job_id": job_id, "token": format!("job-token-{job_id}"),
            "trace_offset": 0, "expected_weight": 1.0,
            "paas_resource": {"id": format!("app_{job_id}"), "name": format!("hpd-job-x-{job_id}"),
                              "gitlab_namespace": t.group, "orga_id": t.orga_id,
                              "weight": 1.0, "launched": true}
        })
    };
    let state = json!({
        "launched": [entry(1, &tenants[0])],
        "pending": [],
        "to_decommission": [entry(2, &tenants[1]), entry(3, &tenants[0])],
    });
    let written = state.to_string();
    std::fs::write(&state_file, &written).expect("state");
    // A service holds the lock: verify neither takes nor waits for it.
    let lock = InstanceLock::acquire(&state_file).expect("lock");

    let (code, stdout, stderr) = run(&["verify", &arg]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    for t in &tenants {
        let row = stdout
            .lines()
            .find(|l| l.contains(&format!("clever tenant \"{}\"", t.group)))
            .unwrap_or_else(|| panic!("no row for {}:\n{stdout}", t.group));
        assert!(
            row.contains(" ok ") && row.contains(&t.orga_id),
            "{}: {row}",
            t.group
        );
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");

    // The second tenant's token is revoked: its row fails, exit code 1.
    e.world
        .clever()
        .control()
        .revoke_org_tokens(&tenants[1].orga_id);
    let (code, stdout, stderr) = run(&["verify", &arg]);
    assert_eq!(code, Some(1), "stdout {stdout}\nstderr {stderr}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].contains("clever tenant \"globex\""), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("clever tenant \"acme\"") && l.contains(" ok ")),
        "{stdout}"
    );
    for out in [&stdout, &stderr] {
        assert_no_secret(&e.world, &format!("{out} "), &[]);
    }
    // Read only: the state file is as written, the lock still ours.
    assert_eq!(
        std::fs::read_to_string(&state_file).expect("state"),
        written
    );
    assert!(InstanceLock::acquire(&state_file).is_err(), "lock lost");
    drop(lock);
    assert!(lock_path(&state_file).exists());
}

/// A free port on 127.0.0.1 (bound, then released).
fn free_address() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").to_string()
}

#[test]
fn list_shows_the_live_job_counts_of_the_service_on_listen_address() {
    let e = E2e::start(WorldConfig::default());
    // Room for both jobs and the reservation of a third (largest flavor).
    let options = RunnerConfigOptions {
        quota_jobs: 4,
        ..common::options()
    };
    // Without listen_address: how to enable the counts.
    let config = e.write_config(options.clone(), &[]);
    let (code, stdout, stderr) = run(&["list", &config.display().to_string()]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("set listen_address"), "{stdout}");
    assert!(!stdout.contains("live jobs  "), "{stdout}");

    // With it, but no service there: said, quickly, exit code 0.
    let address = free_address();
    let config = e.write_config(options, &[("listen_address", address.clone().into())]);
    let arg = config.display().to_string();
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = run(&["list", &arg]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(
        stdout.contains(&format!("service not reachable at {address}")),
        "{stdout}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    // A running service with two jobs of its one runner.
    let ids: Vec<i64> = (0..2)
        .map(|_| {
            e.world.enqueue(JobSpec {
                flavor: Some("S".to_owned()),
                duration_ms: 8_000,
                ..JobSpec::default()
            })
        })
        .collect();
    let mut runner = start_runner(&config, &e.log("list.log"), &[]);
    let row_of = |stdout: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with("runners[0]"))
            .map(str::to_owned)
    };
    let mut last = String::new();
    let seen = wait_until(
        || {
            let running = ids
                .iter()
                .all(|id| e.status(*id) == Some(JobState::Running));
            let (_, stdout, _) = run(&["list", &arg]);
            last = stdout;
            running && row_of(&last).is_some_and(|r| r.trim_end().ends_with("2 (started 2)"))
        },
        Duration::from_secs(30),
        STEP * 4,
    );
    assert!(
        seen,
        "live counts not shown:\n{last}\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    assert!(last.contains("live jobs"), "{last}");
    assert!(
        last.contains(&format!("from the service at {address}")),
        "{last}"
    );
    assert!(last.contains(&identity(&e)), "{last}");
    assert_no_secret(&e.world, &format!("{last} "), &[]);
    assert!(
        e.wait_done(&ids, Duration::from_secs(40)),
        "{}",
        e.describe()
    );
    stop_ok(&mut runner, LIMIT);
}

#[test]
fn a_flavor_refused_at_start_up_is_named_with_its_line() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(common::options(), &[]);
    // The value changed in place, on the line the world wrote it.
    let text = std::fs::read_to_string(&config).expect("read");
    let line = text
        .lines()
        .position(|l| l.starts_with("cc_max_flavor = "))
        .unwrap_or_else(|| panic!("no cc_max_flavor line:\n{text}"))
        + 1;
    let edited: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("cc_max_flavor = ") {
                "cc_max_flavor = \"XXL\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&config, edited.join("\n") + "\n").expect("write");
    let (code, stdout, stderr) = run(&["run", &config.display().to_string()]);
    assert_eq!(code, Some(2), "stdout {stdout}\nstderr {stderr}");
    let expected = format!(
        "{}:{line}: `runners[0].cc_max_flavor` = \"XXL\": not an available Clever Cloud flavor",
        config.display()
    );
    assert!(stderr.contains(&expected), "{expected}\nnot in:\n{stderr}");
}
