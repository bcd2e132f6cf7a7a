//! End to end, the real binary and real signals against paas-sim: SIGHUP
//! reloads the configuration (a runner section added is polled, a file that
//! does not validate is refused and the service goes on, keys that need a
//! restart are named), and SIGQUIT finishes the jobs before it stops (exit 0):
//! no new job taken, the running ones supervised to their end and their
//! applications deleted, `/healthz` and systemd's status line saying
//! `draining, N jobs left`; a SIGTERM during it stops at once, the state kept.

use crate::common;

use crate::systemd_notify::{fake_notify_socket, receive_until};
use common::{get, options, start_runner, tail, wait_until, E2e, BIN, STEP};
use nix::sys::signal::Signal;
use paas_sim::coordinator::{Endpoint, JobSpec, JobState};
use paas_sim::runner_process::RunnerProcess;
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn polls_with(e: &E2e, token: &str) -> usize {
    e.world
        .coordinator()
        .requests_to(Endpoint::JobsRequest)
        .iter()
        .filter(|r| r.body.contains(token))
        .count()
}

#[test]
fn sighup_reloads_runners_refuses_an_invalid_file_and_sigquit_drains() {
    let e = E2e::start(WorldConfig {
        runner_tokens: 2,
        ..WorldConfig::default()
    });
    let two = e.write_config(
        RunnerConfigOptions {
            runners: 2,
            ..options()
        },
        &[],
    );
    let two_text = std::fs::read_to_string(&two).expect("read config");
    let config = e.write_config(
        RunnerConfigOptions {
            runners: 1,
            ..options()
        },
        &[],
    );
    assert_eq!(config, two, "test set-up: one configuration path");
    let second = e.world.runner_tokens()[1].clone();
    let mut runner = start_runner(&config, &e.log("signals.log"), &[]);
    assert!(
        wait_until(
            || runner.log().contains("service ready"),
            Duration::from_secs(30),
            STEP
        ),
        "not ready\n{}",
        tail(&runner.log())
    );
    assert_eq!(
        polls_with(&e, &second),
        0,
        "second runner not configured yet"
    );

    // An invalid file: refused with the start-up message; the service goes on.
    std::fs::write(&config, "concurrent = \"many\"\n").expect("write invalid config");
    let start_err = Command::new(BIN)
        .arg("run")
        .arg(&config)
        .output()
        .expect("run the binary on the invalid file");
    let start_msg = String::from_utf8_lossy(&start_err.stderr).to_string();
    let first_line = start_msg
        .lines()
        .find(|l| l.contains("concurrent"))
        .expect("start-up names the key")
        .trim()
        .trim_start_matches("heptapod-paas-runner: ")
        .to_owned();
    runner
        .signal(nix::sys::signal::Signal::SIGHUP)
        .expect("SIGHUP");
    assert!(
        wait_until(
            || runner.log().contains("configuration reload refused"),
            Duration::from_secs(10),
            STEP
        ),
        "{}",
        tail(&runner.log())
    );
    let log = runner.log();
    assert!(
        log.contains(&first_line),
        "start-up message {first_line:?} not in the refusal\n{}",
        tail(&log)
    );
    assert!(runner.try_wait().expect("wait").is_none(), "still running");

    // A valid file with a second runner and another state file.
    let moved = two_text.replace("state.json", "elsewhere.json");
    assert_ne!(moved, two_text, "test set-up: state_file in the config");
    std::fs::write(&config, moved).expect("write two-runner config");
    runner
        .signal(nix::sys::signal::Signal::SIGHUP)
        .expect("SIGHUP");
    assert!(
        wait_until(
            || polls_with(&e, &second) > 0,
            Duration::from_secs(15),
            STEP
        ),
        "the added runner is not polled\n{}",
        tail(&runner.log())
    );
    let log = runner.log();
    assert!(log.contains("configuration reloaded"), "{}", tail(&log));
    assert!(
        log.lines()
            .any(|l| l.contains("restart needed") && l.contains("state_file")),
        "{}",
        tail(&log)
    );
    assert!(
        !e.dir.path().join("elsewhere.json").exists(),
        "state file kept"
    );
    // The added runner learnt its runner id, as a start-up runner does,
    // remembered beside the running state file.
    assert_eq!(
        log.matches("runner id learnt from the coordinator").count(),
        2,
        "{}",
        tail(&log)
    );
    let ids: serde_json::Value = serde_json::from_slice(
        &std::fs::read(heptapod_paas_runner::gitlab::runner_ids_path(
            &e.state_file(),
        ))
        .expect("runner ids"),
    )
    .expect("JSON");
    let learnt: std::collections::BTreeSet<i64> = ids
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .filter_map(|v| v["id"].as_i64())
        .collect();
    assert_eq!(learnt.len(), 2, "{ids}");

    // SIGQUIT with no job tracked: finished at once, exit 0.
    runner
        .signal(nix::sys::signal::Signal::SIGQUIT)
        .expect("SIGQUIT");
    let status = runner
        .wait_timeout(Duration::from_secs(20))
        .expect("wait")
        .expect("stopped within 20 s");
    let log = runner.log();
    assert!(status.success(), "exit {status}\n{}", tail(&log));
    assert!(
        log.lines()
            .any(|l| l.contains("finishing every tracked job") && l.contains("SIGQUIT")),
        "{}",
        tail(&log)
    );
}

/// An address on 127.0.0.1 nobody listens on (bound, then released).
fn free_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").to_string()
}

fn long_job(duration_ms: u64) -> JobSpec {
    JobSpec {
        flavor: Some("XS".into()),
        duration_ms,
        ..JobSpec::default()
    }
}

/// Starts the runner with `listen_address` and a fake notify socket, with
/// two jobs of `duration_ms` enqueued, and waits until both started.
fn two_started_jobs(
    e: &E2e,
    duration_ms: u64,
    log: &str,
) -> (RunnerProcess, UnixDatagram, String, [i64; 2]) {
    let address = free_address();
    let config = e.write_config(
        options(),
        &[("listen_address", toml::Value::from(address.as_str()))],
    );
    let (socket_path, socket) = fake_notify_socket(e.dir.path());
    let ids = [
        e.world.enqueue(long_job(duration_ms)),
        e.world.enqueue(long_job(duration_ms)),
    ];
    let args = [
        OsStr::new("run"),
        config.as_os_str(),
        OsStr::new("-l"),
        OsStr::new("DEBUG"),
    ];
    let env = [("NOTIFY_SOCKET", socket_path.as_os_str())];
    let runner = RunnerProcess::spawn_with_env(Path::new(BIN), &args, &env, &e.log(log))
        .expect("runner starts");
    assert!(
        wait_until(
            || runner.log().matches("job started").count() >= 2,
            Duration::from_secs(60),
            STEP
        ),
        "{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    (runner, socket, address, ids)
}

#[test]
fn sigquit_finishes_the_running_jobs_takes_no_new_one_and_exits_0() {
    let e = E2e::start(WorldConfig::default());
    let (mut runner, socket, address, ids) = two_started_jobs(&e, 5_000, "finish.log");
    runner.signal(Signal::SIGQUIT).expect("SIGQUIT");
    assert!(
        wait_until(
            || runner.log().contains("finishing every tracked job"),
            Duration::from_secs(10),
            STEP
        ),
        "{}",
        tail(&runner.log())
    );
    // Jobs enqueued now are left to other runners.
    let late = [
        e.world.enqueue(long_job(100)),
        e.world.enqueue(long_job(100)),
    ];
    // Alive, draining, not ready; systemd's status line says the same.
    let mut healthz = None;
    assert!(
        wait_until(
            || {
                healthz = get(&address, "/healthz");
                healthz
                    .as_ref()
                    .is_some_and(|(s, b)| *s == 200 && b.contains("draining, 2 jobs left"))
            },
            Duration::from_secs(5),
            STEP
        ),
        "/healthz: {healthz:?}"
    );
    let readyz = get(&address, "/readyz");
    assert!(
        readyz
            .as_ref()
            .is_some_and(|(s, b)| *s == 503 && b.contains("\"reason\":\"draining\"")),
        "/readyz: {readyz:?}"
    );
    // No runner wants jobs: the no-poll alert stays quiet during the finish.
    let metrics = get(&address, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let wants: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("heptapod_paas_runner_runner_wants_jobs{"))
        .collect();
    assert!(
        !wants.is_empty() && wants.iter().all(|l| l.ends_with(" 0")),
        "{wants:?}"
    );
    let mut got = Vec::new();
    receive_until(
        &socket,
        &mut got,
        "STATUS=draining, 2 jobs left",
        Duration::from_secs(5),
    );
    assert!(
        got.iter().any(|m| m == "STATUS=draining, 2 jobs left"),
        "{got:?}"
    );
    // A second SIGQUIT changes nothing.
    runner.signal(Signal::SIGQUIT).expect("SIGQUIT");

    let status = runner
        .wait_timeout(Duration::from_secs(60))
        .expect("wait")
        .expect("stopped within 60 s");
    let log = runner.log();
    assert!(status.success(), "exit {status}\n{}", tail(&log));
    for id in ids {
        assert_eq!(e.status(id), Some(JobState::Success), "{}", e.describe());
    }
    for id in late {
        assert_eq!(e.status(id), Some(JobState::Pending), "{}", e.describe());
    }
    let s = e.world.summary();
    assert_eq!((s.apps_created, s.apps_deleted), (2, 2), "{}", e.describe());
    assert_eq!(
        e.world.clever().control().summary().live_count,
        0,
        "{}",
        e.describe()
    );
    assert!(
        log.contains("SIGQUIT ignored: the service is already stopping"),
        "{}",
        tail(&log)
    );
    assert!(
        log.contains("finished: every job is over"),
        "{}",
        tail(&log)
    );
    receive_until(&socket, &mut got, "STATUS=draining, 0 jobs left", STEP);
    // Finishing is not a stop systemd would time out: no STOPPING=1.
    assert!(!got.iter().any(|m| m.contains("STOPPING=1")), "{got:?}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(e.state_file()).expect("state file"))
            .expect("state JSON");
    assert_eq!(state["launched"], serde_json::json!([]), "{state}");
}

#[test]
fn sigterm_during_a_sigquit_finish_stops_at_once_and_keeps_the_state() {
    let e = E2e::start(WorldConfig::default());
    let (mut runner, _socket, address, ids) = two_started_jobs(&e, 120_000, "finish-term.log");
    runner.signal(Signal::SIGQUIT).expect("SIGQUIT");
    assert!(
        wait_until(
            || runner.log().contains("finishing every tracked job"),
            Duration::from_secs(10),
            STEP
        ),
        "{}",
        tail(&runner.log())
    );
    assert!(
        wait_until(
            || get(&address, "/healthz").is_some_and(|(_, b)| b.contains("2 jobs left")),
            Duration::from_secs(5),
            STEP
        ),
        "{}",
        tail(&runner.log())
    );
    runner.terminate().expect("SIGTERM");
    let status = runner
        .wait_timeout(Duration::from_secs(20))
        .expect("wait")
        .expect("stopped within 20 s");
    let log = runner.log();
    assert!(status.success(), "exit {status}\n{}", tail(&log));
    assert!(log.contains("graceful shutdown"), "{}", tail(&log));
    for id in ids {
        assert_eq!(e.status(id), Some(JobState::Running), "{}", e.describe());
    }
    assert_eq!(
        e.world.clever().control().summary().live_count,
        2,
        "{}",
        e.describe()
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(e.state_file()).expect("state file"))
            .expect("state JSON");
    let launched = state["launched"].as_array().map_or(0, Vec::len);
    assert_eq!(launched, 2, "{state}");
}
