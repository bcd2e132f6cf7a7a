//! Sustained faults, end to end: the real binary against paas-sim while the
//! coordinator is down for a while, the Clever API answers 500 and 429 in
//! bursts, and git pushes are slow. The service keeps running, says what is
//! wrong, recovers, and loses nothing. Also: a corrupt state file stops the
//! start before any network call, with a precise message and exit code 3,
//! and is left untouched.
//!
//! Durations are scaled down from production (a coordinator outage of a
//! minute becomes 6 s): what the runner does during an outage does not
//! depend on its length as long as it stays below the trace-watch timeout
//! (30 s here, 300 s in production); its back-off starts at 3 s and doubles,
//! so a 6 s outage already exercises repeated back-off and the recovery.

use paas_sim::clever::{Endpoint as CleverEndpoint, FaultCommand, FaultKind};
use paas_sim::coordinator::JobSpec;
use paas_sim::runner_process::RunnerProcess;
use paas_sim::world::{wait_until, RunnerConfigOptions, World, WorldConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

const FLAVORS: [&str; 4] = ["XS", "S", "M", "L"];

struct Setup {
    world: World,
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup() -> Setup {
    let world = World::start(WorldConfig {
        runner_tokens: 1,
        ..WorldConfig::default()
    })
    .expect("world");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = world
        .write_runner_config(dir.path(), RunnerConfigOptions::default())
        .expect("config");
    let text = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(&config, format!("reconcile_interval = 2\n{text}")).expect("write config");
    Setup { world, dir, config }
}

fn enqueue(world: &World, n: usize, tag: &str) -> Vec<i64> {
    (0..n)
        .map(|i| {
            world.enqueue(JobSpec {
                name: format!("{tag}-{i}"),
                flavor: Some(FLAVORS[i % FLAVORS.len()].to_string()),
                duration_ms: 400 + 100 * (i as u64 % 5),
                ..JobSpec::default()
            })
        })
        .collect()
}

fn spawn(s: &Setup) -> RunnerProcess {
    RunnerProcess::spawn_runner(
        Path::new(env!("CARGO_BIN_EXE_heptapod-paas-runner")),
        &s.config,
        &s.dir.path().join("runner.log"),
        &[],
    )
    .expect("spawn")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits for every job to end and every application to go, stops the
/// runner gracefully, and checks that nothing was lost or leaked.
fn finish_and_check(s: &Setup, mut p: RunnerProcess, deadline: Duration) -> String {
    let done = wait_until(
        || {
            s.world
                .coordinator()
                .jobs()
                .iter()
                .all(|j| j.status.is_terminal())
                && s.world.clever().control().summary().live_count == 0
        },
        deadline,
        Duration::from_millis(100),
    );
    assert!(
        p.try_wait().ok().flatten().is_none(),
        "the runner died:\n{}",
        tail(&p.log(), 40)
    );
    let (status, forced) = p.stop(Duration::from_secs(30)).expect("stop");
    let log = p.log();
    let summary = s.world.summary();
    eprintln!("{}", summary.render());
    assert!(done, "not done within {deadline:?}:\n{}", tail(&log, 60));
    assert!(
        status.success() && !forced,
        "stop: {status} forced={forced}"
    );
    assert!(
        summary.problems().is_empty(),
        "{:#?}\n{}",
        summary.problems(),
        tail(&log, 60)
    );
    assert!(s.world.leaked_secrets(&log).is_empty());
    log
}

#[test]
fn coordinator_down_for_a_while_loses_nothing() {
    let s = setup();
    let before = enqueue(&s.world, 2, "before");
    let p = spawn(&s);
    // Jobs handed out, then the coordinator goes away (502 on every call).
    assert!(wait_until(
        || before.iter().all(|id| s
            .world
            .coordinator()
            .job_status(*id)
            .is_some_and(|st| st.is_executing())),
        Duration::from_secs(30),
        Duration::from_millis(50),
    ));
    s.world.coordinator().set_down(true);
    let during = enqueue(&s.world, 6, "during");
    std::thread::sleep(Duration::from_secs(6));
    s.world.coordinator().set_down(false);
    let log = finish_and_check(&s, p, Duration::from_secs(90));
    assert!(
        log.contains("coordinator unavailable"),
        "{}",
        tail(&log, 40)
    );
    assert!(log.contains("backing off"), "{}", tail(&log, 40));
    // Jobs queued during the outage ran as simulated once it was over.
    for id in &during {
        assert_eq!(
            s.world.coordinator().job_status(*id),
            Some(paas_sim::coordinator::JobState::Success),
            "job {id}"
        );
    }
    // A job whose inner runner gave up while the coordinator was away (the
    // sim's inner runner retries for at most 45 s, longer than this outage,
    // so this should not happen) would never write its trace: the runner's
    // trace watch would time out and report it failed, with the reason in its
    // trace. Either way no job is left running.
    for id in &before {
        let status = s.world.coordinator().job_status(*id);
        if status != Some(paas_sim::coordinator::JobState::Success) {
            let trace = s.world.coordinator().job_trace(*id).unwrap_or_default();
            let trace = String::from_utf8_lossy(&trace);
            assert!(
                trace.contains("Job not active"),
                "job {id} {status:?}: {trace}"
            );
        }
    }
}

#[test]
fn clever_api_bursts_and_slow_pushes_lose_nothing() {
    let s = setup();
    let control = s.world.clever().control();
    // 500s on the first two creations and at random on creations and
    // reads, 429 bursts on every API call the runner makes, git pushes
    // taking 1.5 s. A create answered 5xx is retried within
    // `create_retry_budget` (10 s: three attempts with the default
    // back-off) and the job fails after that, as it should; the rates keep
    // that unlikely for every one of the 12 jobs (0.1^3 each).
    control.fault(FaultCommand::FailNext {
        endpoint: CleverEndpoint::CreateApp,
        count: 2,
        fault: FaultKind::status(500),
    });
    control.fault(FaultCommand::ErrorRate {
        endpoint: CleverEndpoint::CreateApp,
        rate: 0.1,
        fault: FaultKind::status(500),
    });
    control.fault(FaultCommand::ErrorRate {
        endpoint: CleverEndpoint::GetApp,
        rate: 0.1,
        fault: FaultKind::status(500),
    });
    let too_many = FaultKind::Status {
        status: 429,
        id: None,
        html: false,
        retry_after_s: Some(1),
    };
    for endpoint in [
        CleverEndpoint::CreateApp,
        CleverEndpoint::GetApp,
        CleverEndpoint::ListApps,
        CleverEndpoint::PutEnv,
        CleverEndpoint::DeleteApp,
    ] {
        for start_in_ms in [1500, 6000] {
            control.fault(FaultCommand::Outage {
                endpoint,
                start_in_ms,
                duration_ms: 1500,
                fault: too_many.clone(),
            });
        }
    }
    control.fault(FaultCommand::Latency {
        endpoint: CleverEndpoint::GitReceivePack,
        latency_ms: 1500,
    });
    enqueue(&s.world, 12, "burst");
    let p = spawn(&s);
    let log = finish_and_check(&s, p, Duration::from_secs(120));
    assert!(
        log.contains("transient PAAS error; retrying") || log.contains("429"),
        "{}",
        tail(&log, 40)
    );
    let summary = s.world.summary();
    assert_eq!(summary.jobs_success, 12, "{:?}", summary.outcome_mismatches);
    assert_eq!(summary.apps_created, 12);
}

#[test]
fn corrupt_state_file_stops_the_start_and_is_left_untouched() {
    let s = setup();
    let state = s.dir.path().join("state.json");
    let cases: [(&[u8], &str); 3] = [
        (
            br#"{"launched": [{"runner_name": "r", "job_id""#,
            "truncated",
        ),
        (
            b"{\"launched\": [}\n",
            "invalid JSON: expected value at line 1 column 15",
        ),
        (
            br#"{"launched": [{"runner_name": "r", "token": "t"}], "pending": []}"#,
            "wrong shape: launched[0]: missing field `job_id`",
        ),
    ];
    for (content, expected) in cases {
        std::fs::write(&state, content).expect("write state");
        let mut p = spawn(&s);
        let status = p
            .wait_timeout(Duration::from_secs(30))
            .expect("wait")
            .expect("the runner should refuse to start");
        let log = p.log();
        // Its own exit code, which the unit does not restart on.
        assert_eq!(status.code(), Some(3), "{log}");
        assert!(log.contains(&state.display().to_string()), "{log}");
        assert!(log.contains(expected), "{expected:?} not in:\n{log}");
        assert!(log.contains("move it aside"), "{log}");
        assert_eq!(std::fs::read(&state).expect("kept"), content);
        std::fs::remove_file(s.dir.path().join("runner.log")).expect("rm log");
    }
    assert_eq!(s.world.clever().control().summary().apps_created, 0);
    // Refused before any network call.
    assert!(
        s.world.clever().control().requests().is_empty(),
        "{:?}",
        s.world.clever().control().requests()
    );
    assert!(
        s.world.coordinator().requests().is_empty(),
        "{:?}",
        s.world.coordinator().requests()
    );
}
