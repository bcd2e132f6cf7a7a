//! End to end, adoption after a lost state file: the real binary against
//! paas-sim is SIGKILLed while its jobs run; the state file is then moved
//! aside (README, "Corrupt state file"), and a restart rebuilds what it
//! needs from the PAAS and the coordinator. The applications whose job
//! still runs are adopted (read back from their deployment repository with
//! `recover_job`, not deleted while the job runs, deleted once it is over);
//! the applications of jobs that ended meanwhile are deleted at once.
//! Nothing leaks, no job gets a second application.

use crate::common;

use common::{
    assert_no_secret, job_id_of_app_name, options, start_runner, stop_ok, tail, wait_until, E2e,
    STEP,
};
use paas_sim::coordinator::{JobSpec, JobState};
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
use std::time::Duration;

fn job(name: &str, ms: u64) -> JobSpec {
    JobSpec {
        name: name.to_owned(),
        flavor: Some("XS".to_owned()),
        duration_ms: ms,
        ..JobSpec::default()
    }
}

#[test]
fn a_lost_state_is_rebuilt_running_jobs_adopted_finished_ones_cleaned() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(
        RunnerConfigOptions {
            quota_jobs: 8,
            ..options()
        },
        &[],
    );
    // Long jobs outlive the kill and the restart; short ones end while no
    // runner is alive.
    let long: Vec<i64> = (0..3)
        .map(|i| e.world.enqueue(job(&format!("long-{i}"), 12_000)))
        .collect();
    let short: Vec<i64> = (0..2)
        .map(|i| e.world.enqueue(job(&format!("short-{i}"), 1_500)))
        .collect();
    let all: Vec<i64> = long.iter().chain(&short).copied().collect();
    let clever = e.world.clever().control();

    let mut first = start_runner(&config, &e.log("first.log"), &[]);
    let pushed = wait_until(
        || clever.summary().deployments >= all.len(),
        Duration::from_secs(30),
        STEP,
    );
    assert!(
        pushed,
        "jobs not all pushed\n{}\n{}",
        e.describe(),
        tail(&first.log())
    );
    first
        .signal(nix::sys::signal::Signal::SIGKILL)
        .expect("SIGKILL");
    let status = first.wait_timeout(Duration::from_secs(5)).expect("wait");
    assert!(status.is_some(), "pid {} survived SIGKILL", first.pid());
    assert_eq!(clever.summary().live_count, all.len(), "{}", e.describe());

    // The short jobs end while no runner runs; their apps stay behind.
    assert!(
        wait_until(|| e.all_over(&short), Duration::from_secs(20), STEP),
        "short jobs did not end\n{}",
        e.describe()
    );
    assert!(long
        .iter()
        .all(|id| e.status(*id) == Some(JobState::Running)));
    assert_eq!(clever.summary().live_count, all.len());

    // The recovery procedure of the README: the state is moved aside.
    let state = e.state_file();
    let aside = state.with_extension("json.corrupt");
    std::fs::rename(&state, &aside).expect("move the state file aside");

    let mut second = start_runner(&config, &e.log("second.log"), &[]);
    let app_of = |id: i64| {
        clever
            .apps()
            .into_iter()
            .find(|a| job_id_of_app_name(&a.name) == Some(id))
            .expect("the job has an app")
    };
    // The finished jobs' apps are deleted by the start-up reconciliation.
    let cleaned = wait_until(
        || short.iter().all(|id| app_of(*id).deleted_ms.is_some()),
        Duration::from_secs(20),
        STEP,
    );
    assert!(
        cleaned,
        "apps of finished jobs not deleted\n{}\n{}",
        e.describe(),
        tail(&second.log())
    );
    // The running jobs' apps are adopted: still alive while their jobs run.
    for id in &long {
        let running = e.status(*id) == Some(JobState::Running);
        assert!(
            !running || app_of(*id).deleted_ms.is_none(),
            "app of running job {id} deleted\n{}\n{}",
            e.describe(),
            tail(&second.log())
        );
    }
    assert!(
        e.wait_done(&all, Duration::from_secs(60)),
        "restart did not finish\n{}\n{}",
        e.describe(),
        tail(&second.log())
    );
    for id in &all {
        assert_eq!(e.status(*id), Some(JobState::Success), "{}", e.describe());
    }
    // No inner runner saw its app deleted under it.
    let aborted: Vec<_> = clever
        .deployments()
        .into_iter()
        .filter(|d| d.inner_status.starts_with("aborted"))
        .collect();
    assert!(aborted.is_empty(), "{aborted:#?}");
    e.assert_clean(all.len());
    assert_eq!(
        clever.summary().apps_created,
        all.len(),
        "one app per job\n{}",
        e.describe()
    );

    let log = second.log();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(
        count("whose job still runs at the coordinator; adopting it"),
        long.len(),
        "{}",
        tail(&log)
    );
    assert_eq!(
        count("whose job is over; decommissioning it"),
        short.len(),
        "{}",
        tail(&log)
    );
    assert_eq!(count("holding no job the runner can read back"), 0);
    stop_ok(&mut second, Duration::from_secs(15));
    // The moved file is left as it was; the new one tracks nothing.
    assert!(aside.exists());
    assert_no_secret(&e.world, &first.log(), &[]);
    assert_no_secret(&e.world, &log, &[]);
}
