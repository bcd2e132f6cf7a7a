//! End to end, `paas_long_polling` with the real binary against paas-sim's
//! coordinator emulating GitLab Workhorse (`long_poll_ms`): a job that
//! arrives while a poll is held is acquired at once rather than at the next
//! `check_interval`; another runner section sharing the quota acquires its
//! jobs while the first holds a long poll; a graceful stop waits for a held
//! poll at most until the hold ends, or until `shutdown_timeout`; with the
//! key off no request carries `last_update`.

use crate::common;

use common::{options, start_runner, stop_ok, tail, wait_until, E2e, STEP};
use paas_sim::coordinator::{Endpoint, JobSpec, Settings};
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const STOP: Duration = Duration::from_secs(20);

/// A world whose coordinator holds long polls for `window`.
fn world(window: Duration, runner_tokens: usize) -> E2e {
    E2e::start(WorldConfig {
        runner_tokens,
        coordinator_settings: Settings {
            long_poll_ms: Some(u64::try_from(window.as_millis()).unwrap_or(u64::MAX)),
            ..Settings::default()
        },
        ..WorldConfig::default()
    })
}

/// Every flavor `S`, so that each runner's largest job weighs one `S`, and
/// a quota of `jobs` such jobs.
fn s_options(runners: usize, jobs: u32, check_interval: Duration) -> RunnerConfigOptions {
    RunnerConfigOptions {
        runners,
        quota_flavor: "S".to_owned(),
        quota_jobs: jobs,
        default_flavor: "S".to_owned(),
        max_flavor: Some("S".to_owned()),
        check_interval,
        ..options()
    }
}

/// Writes the configuration with `paas_long_polling = true` in the runner
/// sections listed in `long` (indexes), plus `extra` global keys.
fn write(
    e: &E2e,
    opts: RunnerConfigOptions,
    long: &[usize],
    extra: &[(&str, toml::Value)],
) -> PathBuf {
    let path = e.write_config(opts, extra);
    let text = std::fs::read_to_string(&path).expect("read config");
    let mut table: toml::Table = toml::from_str(&text).expect("config is TOML");
    if let Some(toml::Value::Array(runners)) = table.get_mut("runners") {
        for i in long {
            if let Some(toml::Value::Table(r)) = runners.get_mut(*i) {
                r.insert("paas_long_polling".into(), toml::Value::Boolean(true));
            }
        }
    }
    std::fs::write(&path, toml::to_string(&table).expect("TOML")).expect("rewrite config");
    path
}

fn holding(e: &E2e) -> u64 {
    e.world.coordinator().stats().long_polls_holding
}

fn held(e: &E2e) -> u64 {
    e.world.coordinator().stats().long_polls_held
}

/// Job requests carrying `last_update`.
fn long_requests(e: &E2e) -> usize {
    e.world
        .coordinator()
        .requests_to(Endpoint::JobsRequest)
        .iter()
        .filter_map(|r| r.json())
        .filter(|b| b.get("last_update").is_some())
        .count()
}

fn handed_out_after(e: &E2e, id: i64, since: Instant) -> Option<Duration> {
    let job = e.world.coordinator().job(id)?;
    job.times
        .handed_out
        .map(|t| t.saturating_duration_since(since))
}

#[test]
fn a_job_arriving_during_a_hold_is_acquired_at_once() {
    // check_interval 20 s: a runner polling every check_interval would take
    // the job up to 20 s after its previous poll; the hold answers at once.
    // (The final stop waits for the next hold, at most its 12 s window.)
    let e = world(Duration::from_secs(12), 1);
    let config = write(&e, s_options(1, 4, Duration::from_secs(20)), &[0], &[]);
    let mut runner = start_runner(&config, &e.log("pickup.log"), &[]);
    assert!(
        wait_until(|| holding(&e) == 1, Duration::from_secs(30), STEP),
        "no long poll held\n{}",
        tail(&runner.log())
    );
    let t0 = Instant::now();
    let id = e.world.enqueue(JobSpec::new("during-the-hold"));
    assert!(
        wait_until(
            || handed_out_after(&e, id, t0).is_some(),
            Duration::from_secs(10),
            STEP
        ),
        "the job was not acquired within 10 s (check_interval is 20 s)\n{}",
        tail(&runner.log())
    );
    let took = handed_out_after(&e, id, t0).unwrap_or_default();
    eprintln!("job created -> acquired: {took:?}");
    assert!(
        e.wait_done(&[id], Duration::from_secs(30)),
        "{}",
        e.describe()
    );
    stop_ok(&mut runner, Duration::from_secs(40));
    e.assert_clean(1);
}

#[test]
fn another_runner_acquires_its_jobs_while_the_first_holds() {
    let e = world(Duration::from_secs(30), 2);
    // quota: four S jobs. Runner 1 long-polls (its reservation: one S);
    // runner 2 polls every 200 ms and is the only one that may take the jobs.
    let config = write(&e, s_options(2, 4, Duration::from_millis(200)), &[0], &[]);
    let second = e.world.runner_tokens()[1].clone();
    let mut runner = start_runner(&config, &e.log("shared.log"), &[]);
    assert!(
        wait_until(|| holding(&e) == 1, Duration::from_secs(30), STEP),
        "no long poll held\n{}",
        tail(&runner.log())
    );
    let held_before = held(&e);
    let spec = |name: &str| {
        JobSpec::new(name)
            .for_runner(second.clone())
            .duration(Duration::from_secs(3))
    };
    let ids = [
        e.world.enqueue(spec("second-1")),
        e.world.enqueue(spec("second-2")),
    ];
    let t0 = Instant::now();
    assert!(
        wait_until(
            || ids.iter().all(|id| handed_out_after(&e, *id, t0).is_some()),
            Duration::from_secs(10),
            STEP
        ),
        "the second runner's jobs were not acquired while the first held\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    assert_eq!(
        (holding(&e), held(&e)),
        (1, held_before),
        "the first runner's hold went on meanwhile"
    );
    let runner_ids: Vec<Option<i64>> = ids
        .iter()
        .map(|id| e.world.coordinator().job(*id).and_then(|j| j.runner_id))
        .collect();
    let second_id = e
        .world
        .coordinator()
        .runners()
        .into_iter()
        .find(|r| r.token == second)
        .map(|r| r.id);
    assert_eq!(runner_ids, vec![second_id, second_id]);
    assert!(
        e.wait_done(&ids, Duration::from_secs(30)),
        "{}",
        e.describe()
    );
    stop_ok(&mut runner, Duration::from_secs(40));
    e.assert_clean(2);
}

#[test]
fn a_graceful_stop_waits_for_a_hold_at_most_until_it_ends_or_the_deadline() {
    // a 4 s window: the stop waits for the hold, no longer
    let e = world(Duration::from_secs(4), 1);
    let config = write(&e, s_options(1, 4, Duration::from_secs(1)), &[0], &[]);
    let mut runner = start_runner(&config, &e.log("stop-window.log"), &[]);
    assert!(
        wait_until(|| holding(&e) == 1, Duration::from_secs(30), STEP),
        "no long poll held\n{}",
        tail(&runner.log())
    );
    let t0 = Instant::now();
    stop_ok(&mut runner, STOP);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(4 + 8),
        "stopped after {took:?}\n{}",
        tail(&runner.log())
    );
    assert!(runner.log().contains("\"forced\":false") || runner.log().contains("forced: false"));

    // a 120 s window and shutdown_timeout = 2: the deadline ends the wait
    let e = world(Duration::from_secs(120), 1);
    let config = write(
        &e,
        s_options(1, 4, Duration::from_secs(1)),
        &[0],
        &[("shutdown_timeout", toml::Value::Integer(2))],
    );
    let mut runner = start_runner(&config, &e.log("stop-deadline.log"), &[]);
    assert!(
        wait_until(|| holding(&e) == 1, Duration::from_secs(30), STEP),
        "no long poll held\n{}",
        tail(&runner.log())
    );
    let t0 = Instant::now();
    stop_ok(&mut runner, STOP);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(2 + 8),
        "stopped after {took:?}\n{}",
        tail(&runner.log())
    );
    let log = runner.log();
    assert!(
        log.contains("\"forced\":true") || log.contains("forced: true"),
        "{}",
        tail(&log)
    );
}

#[test]
fn with_the_key_off_no_poll_is_long() {
    let e = world(Duration::from_secs(30), 1);
    let config = write(&e, s_options(1, 4, Duration::from_millis(200)), &[], &[]);
    let mut runner = start_runner(&config, &e.log("off.log"), &[]);
    assert!(
        wait_until(
            || e.world.coordinator().count(Endpoint::JobsRequest) >= 10,
            Duration::from_secs(30),
            STEP
        ),
        "{}",
        tail(&runner.log())
    );
    let id = e.world.enqueue(JobSpec::new("short-polled"));
    assert!(
        e.wait_done(&[id], Duration::from_secs(30)),
        "{}",
        e.describe()
    );
    stop_ok(&mut runner, STOP);
    assert_eq!(long_requests(&e), 0, "no request carries last_update");
    assert_eq!(held(&e), 0);
    e.assert_clean(1);
}
