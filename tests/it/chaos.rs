//! Chaos: the real binary against paas-sim, killed with SIGKILL at random
//! moments and restarted each time with the same configuration. Nothing may
//! be lost or leaked: every job ends at the coordinator, no application is
//! left, no job gets two applications, and the live weight at the fake
//! Clever Cloud never exceeds the quota.
//!
//! Seeded: the RNG seed is printed; `CHAOS_SEED=<n>` replays a run (the kill
//! moments and job mix; thread timing still varies). Bounded: each wait has
//! a deadline, the whole test takes about a minute on 2 cores.

use paas_sim::coordinator::{JobSpec, JobState};
use paas_sim::runner_process::RunnerProcess;
use paas_sim::world::{wait_until, RunnerConfigOptions, World, WorldConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const JOBS: usize = 50;
const KILLS: usize = 12;
const FLAVORS: [&str; 4] = ["XS", "S", "M", "L"];
/// Deadline of the final, uninterrupted run.
const FINAL_RUN: Duration = Duration::from_secs(120);

fn seed() -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(s) => match s.trim().parse() {
            Ok(n) => n,
            Err(_) => panic!("CHAOS_SEED={s:?} is not an unsigned integer"),
        },
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed),
    }
}

/// Job ids the state file mentions (any section), if it reads.
fn jobs_in_state(path: &Path) -> BTreeSet<i64> {
    let Ok(bytes) = std::fs::read(path) else {
        return BTreeSet::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return BTreeSet::new();
    };
    let mut ids = BTreeSet::new();
    for section in ["launched", "to_decommission"] {
        for h in v[section].as_array().into_iter().flatten() {
            ids.extend(h["job_id"].as_i64());
        }
    }
    for p in v["pending"].as_array().into_iter().flatten() {
        ids.extend(p[0]["job_id"].as_i64());
    }
    ids
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn sigkill_at_random_moments_loses_and_leaks_nothing() {
    let seed = seed();
    eprintln!("chaos seed: {seed} (replay with CHAOS_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let world = World::start(WorldConfig {
        runner_tokens: 1,
        seed,
        ..WorldConfig::default()
    })
    .expect("world");
    let dir = tempfile::tempdir().expect("tempdir");
    let options = RunnerConfigOptions {
        quota_jobs: 6,
        ..RunnerConfigOptions::default()
    };
    let config = world
        .write_runner_config(dir.path(), options)
        .expect("config");
    // Periodic reconciliation every 2 s (top-level keys come first in TOML).
    let text = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(&config, format!("reconcile_interval = 2\n{text}")).expect("write config");
    let state = dir.path().join("state.json");
    let log = dir.path().join("runner.log");
    let binary = Path::new(env!("CARGO_BIN_EXE_heptapod-paas-runner"));

    let ids: Vec<i64> = (0..JOBS)
        .map(|i| {
            world.enqueue(JobSpec {
                name: format!("chaos-{i}"),
                flavor: Some(FLAVORS[rng.random_range(0..FLAVORS.len())].to_string()),
                duration_ms: rng.random_range(200..1500),
                ..JobSpec::default()
            })
        })
        .collect();

    let started = Instant::now();
    for k in 0..KILLS {
        let mut p = RunnerProcess::spawn_runner(binary, &config, &log, &[]).expect("spawn");
        let delay = Duration::from_millis(rng.random_range(150..2500));
        std::thread::sleep(delay);
        if let Ok(Some(status)) = p.try_wait() {
            panic!(
                "the runner exited by itself ({status}) before kill {k}:\n{}",
                tail(&p.log(), 40)
            );
        }
        p.signal(nix::sys::signal::Signal::SIGKILL)
            .expect("SIGKILL");
        let status = p.wait_timeout(Duration::from_secs(5)).expect("wait");
        assert!(status.is_some(), "pid {} survived SIGKILL", p.pid());
        let done = ids
            .iter()
            .filter(|id| {
                world
                    .coordinator()
                    .job_status(**id)
                    .is_some_and(|s| s.is_terminal())
            })
            .count();
        eprintln!("kill {} after {delay:?}: {done}/{JOBS} jobs over", k + 1);
    }

    // Last run, uninterrupted. A job handed out by the coordinator whose
    // answer died with a killed process is known to nobody: it never gets an
    // application and is absent from the state file. GitLab ends such jobs
    // with its job timeout; the test plays that part, once the runner is
    // idle, and counts them.
    let mut p = RunnerProcess::spawn_runner(binary, &config, &log, &[]).expect("spawn");
    let ever_had_app = |id: i64| {
        let suffix = format!("-{id}");
        world
            .clever()
            .control()
            .apps()
            .iter()
            .any(|a| a.name.ends_with(&suffix))
    };
    let lost_in_window = |world: &World| -> Option<Vec<i64>> {
        let jobs = world.coordinator().jobs();
        if jobs.iter().any(|j| j.status == JobState::Pending) {
            return None;
        }
        if world.clever().control().summary().live_count > 0 {
            return None;
        }
        let in_state = jobs_in_state(&state);
        let running: Vec<i64> = jobs
            .iter()
            .filter(|j| !j.status.is_terminal())
            .map(|j| j.id)
            .collect();
        running
            .iter()
            .all(|id| !ever_had_app(*id) && !in_state.contains(id))
            .then_some(running)
    };
    let idle = wait_until(
        || lost_in_window(&world).is_some(),
        FINAL_RUN,
        Duration::from_millis(100),
    );
    // Still the same a few seconds later: the runner really is idle.
    std::thread::sleep(Duration::from_secs(3));
    let lost = lost_in_window(&world);
    let (status, forced) = p.stop(Duration::from_secs(30)).expect("stop");
    let runner_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        idle && lost.is_some(),
        "not done after {FINAL_RUN:?} of the final run:\n{}\n{}",
        world.summary().render(),
        tail(&runner_log, 60)
    );
    let lost = lost.unwrap_or_default();
    for id in &lost {
        world.coordinator().set_job_status(*id, JobState::Failed);
    }
    let summary = world.summary();
    eprintln!(
        "chaos: {KILLS} kills, {:.1} s; jobs lost in the acquisition window (ended by the \
         coordinator's timeout): {lost:?}\n{}",
        started.elapsed().as_secs_f64(),
        summary.render()
    );
    assert!(
        status.success() && !forced,
        "final stop: {status} (forced: {forced})"
    );
    assert!(
        summary.problems().is_empty(),
        "problems: {:#?}\n{}",
        summary.problems(),
        tail(&runner_log, 60)
    );
    assert!(
        lost.len() <= KILLS,
        "{} jobs lost, more than one per kill",
        lost.len()
    );
    assert_eq!(summary.jobs_total, JOBS as u64);
    assert!(summary.quota_held(), "{}", summary.render());
    let leaked = world.leaked_secrets(&runner_log);
    assert!(leaked.is_empty(), "secrets in the runner log: {leaked:?}");
    assert!(
        runner_log.contains("reconciliation: resources listed"),
        "no reconciliation pass logged"
    );
}
