//! The harness as the runner's end-to-end tests use it: a scenario's world,
//! its runner configuration, the real heptapod-paas-runner binary started
//! with RunnerProcess, the schedule played (coordinator outage, Clever Cloud
//! error burst, two tenants, two runner sections), SIGTERM, then the
//! summary's verdict and the runner log checked for secrets. The runner
//! binary is looked for next to paas-sim; without it the test says why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use paas_sim::runner_process::RunnerProcess;
use paas_sim::scenario::{Scenario, Schedule};
use paas_sim::world::{wait_until, World};

const SIM: &str = env!("CARGO_BIN_EXE_paas-sim");

fn runner_binary() -> Option<PathBuf> {
    let p = Path::new(SIM).parent()?.join("heptapod-paas-runner");
    p.is_file().then_some(p)
}

#[test]
fn the_example_scenario_runs_clean_with_the_real_runner() {
    let Some(binary) = runner_binary() else {
        eprintln!(
            "SKIPPED the_example_scenario_runs_clean_with_the_real_runner: no \
             heptapod-paas-runner next to {SIM} (build the workspace to run it)"
        );
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/example.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let world = World::start(scenario.world.clone()).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = world
        .write_runner_config(dir.path(), scenario.runner.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut runner = RunnerProcess::spawn_runner(&binary, &config, &dir.path().join("log"), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let schedule = Schedule::start(&world, &scenario);
    let played = wait_until(
        || schedule.is_done(),
        Duration::from_secs(30),
        Duration::from_millis(50),
    );
    assert!(played);
    let finished = world.wait_jobs_finished(Duration::from_secs(120));
    let drained = world.wait_no_live_apps(Duration::from_secs(60));
    let (status, killed) = runner
        .stop(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let summary = world.summary();
    let log = runner.log();
    let tail: String = log.lines().rev().take(40).collect::<Vec<_>>().join("\n");
    assert!(finished && drained, "{}\n{tail}", summary.render());
    assert!(!killed && status.success(), "{status}\n{tail}");
    assert_eq!(
        summary.problems(),
        Vec::<String>::new(),
        "{}",
        summary.render()
    );
    assert_eq!(summary.jobs_total, 11);
    // only the two create calls hit by the Clever Cloud burst may fail jobs
    // meant to succeed; the coordinator outage must cost none
    assert!(
        summary.outcome_mismatches.len() <= 2,
        "{}",
        summary.render()
    );
    assert!(summary
        .outcome_mismatches
        .iter()
        .all(|m| m.actual == paas_sim::coordinator::JobState::Failed));
    assert!(summary
        .coordinator_requests
        .get("group_attributes")
        .is_some_and(|n| *n > 0));
    assert_eq!(world.leaked_secrets(&log), Vec::<String>::new());
    // both tenants' organisations paid for their own jobs
    let orgs: std::collections::BTreeSet<String> = world
        .clever()
        .control()
        .apps()
        .into_iter()
        .map(|a| a.org)
        .collect();
    assert_eq!(orgs.len(), 2, "{orgs:?}");
    world.shutdown();
}
