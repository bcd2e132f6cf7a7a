//! End to end, jobs whose tokens GitLab refuses all at once, with no other
//! job of the runner to ask: a burst for the refusal guard. With the
//! trace-watch token (the world's runners have one), the Jobs API is
//! asked about each held job: jobs it shows over have their applications
//! deleted before the burst's patience (three check intervals) would allow;
//! jobs it shows running are held, and nothing is deleted.

use crate::common;

use common::{options, start_runner, stop_ok, tail, wait_until, E2e, STEP};
use paas_sim::coordinator::{Endpoint, Fault, JobSpec, JobState};
use paas_sim::world::WorldConfig;
use std::time::{Duration, Instant};

/// `job_progress_poll_interval` of the runner.
const INTERVAL: Duration = Duration::from_secs(2);
/// Check intervals a burst of refusals lasts before it is believed.
const BURST_PATIENCE: u32 = 3;
/// Jobs running together.
const JOBS: usize = 4;
const STOP: Duration = Duration::from_secs(20);

/// A world, a running runner and [`JOBS`] long jobs it has seen started.
fn jobs_running() -> (E2e, paas_sim::runner_process::RunnerProcess, Vec<i64>) {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(
        paas_sim::world::RunnerConfigOptions {
            job_progress_poll_interval: INTERVAL,
            ..options()
        },
        &[],
    );
    let ids: Vec<i64> = (0..JOBS)
        .map(|_| {
            e.world.enqueue(JobSpec {
                duration_ms: 120_000,
                ..JobSpec::default()
            })
        })
        .collect();
    let runner = start_runner(&config, &e.log("runner.log"), &[]);
    let started = wait_until(
        || runner.log().matches("job started").count() >= JOBS,
        Duration::from_secs(60),
        STEP,
    );
    assert!(started, "{}\n{}", e.describe(), tail(&runner.log()));
    (e, runner, ids)
}

/// When each job's application was deleted, if it was.
fn deletions(e: &E2e) -> Vec<(i64, Instant)> {
    let clever = e.world.clever().control();
    let epoch = clever.epoch();
    clever
        .apps()
        .iter()
        .filter_map(|a| {
            Some((
                common::job_id_of_app_name(&a.name)?,
                epoch + Duration::from_millis(a.deleted_ms?),
            ))
        })
        .collect()
}

#[test]
fn jobs_ending_together_are_deleted_once_the_jobs_api_shows_them_over() {
    let (e, mut runner, ids) = jobs_running();
    // Every job ends at once: GitLab refuses all their tokens.
    let ended = Instant::now();
    for id in &ids {
        assert!(e.world.coordinator().set_job_status(*id, JobState::Success));
    }
    let deleted = wait_until(
        || deletions(&e).len() >= JOBS,
        INTERVAL * (BURST_PATIENCE + 4),
        STEP,
    );
    assert!(deleted, "{}\n{}", e.describe(), tail(&runner.log()));
    let log = runner.log();
    let latest = deletions(&e)
        .iter()
        .map(|(_, at)| at.saturating_duration_since(ended))
        .max()
        .unwrap_or_default();
    eprintln!("ended -> last application deleted: {latest:?} (interval {INTERVAL:?})");
    // A burst is believed no sooner than the patience after its start,
    // itself no sooner than the jobs' end.
    assert!(
        latest < INTERVAL * BURST_PATIENCE,
        "deleted {latest:?} after the end\n{}",
        tail(&log)
    );
    assert!(
        !log.contains("taken as a coordinator problem"),
        "jobs the Jobs API shows over raise no warning\n{}",
        tail(&log)
    );
    assert_eq!(
        log.matches("the Jobs API shows the job over").count(),
        JOBS,
        "{}",
        tail(&log)
    );
    assert!(!log.contains("every job token still refused"));
    let reads = e.world.coordinator().count(Endpoint::JobRead);
    assert!(
        (JOBS as u64..=2 * JOBS as u64).contains(&reads),
        "{reads} Jobs API reads"
    );
    stop_ok(&mut runner, STOP);
}

#[test]
fn live_jobs_whose_tokens_are_refused_are_held_not_deleted() {
    let (e, mut runner, ids) = jobs_running();
    // GitLab refuses every job token (as after a restore from a backup)
    // for less than the patience; its Jobs API shows the jobs running.
    let coordinator = e.world.coordinator();
    coordinator.inject_fault(Endpoint::JobStatus, Fault::status(401, 10_000));
    let warned = wait_until(
        || runner.log().contains("the Jobs API shows executing"),
        INTERVAL * 3,
        STEP,
    );
    assert!(warned, "{}\n{}", e.describe(), tail(&runner.log()));
    std::thread::sleep(INTERVAL);
    coordinator.clear_faults();
    // The refusals end before the patience: the jobs run on.
    std::thread::sleep(INTERVAL * 2);
    let log = runner.log();
    assert!(deletions(&e).is_empty(), "{}", tail(&log));
    for id in &ids {
        assert_eq!(e.status(*id), Some(JobState::Running), "job {id}");
    }
    assert_eq!(log.matches("the Jobs API shows executing").count(), 1);
    assert!(!log.contains("the Jobs API shows the job over"));
    assert!(coordinator.count(Endpoint::JobRead) >= JOBS as u64);
    stop_ok(&mut runner, STOP);
}
