//! End to end, start-up failures are loud and finite: the real binary, its
//! stderr read as journald would (`JOURNAL_STREAM` set: every line starts
//! with its syslog priority), real signals, a fake systemd notify socket,
//! and paas-sim's Clever API answering 503 to the flavor catalog.
//!
//! - a fatal error comes after the `starting` line (version, revision,
//!   pid), each of its lines at the error priority (`<3>`), in both log
//!   formats;
//! - SIGTERM while the start-up checks retry ends the process at once with
//!   exit 0 (the handlers are installed before the first check); a SIGHUP
//!   meanwhile does not kill it; `EXTEND_TIMEOUT_USEC=` reaches systemd
//!   while the checks retry.

use crate::common::{self, run_to_end_with_env, tail, wait_until, E2e, BIN, STEP};
use crate::systemd_notify::{fake_notify_socket, receive_until};

use nix::sys::signal::Signal;
use paas_sim::clever::faults::{Endpoint as CleverEndpoint, FaultCommand, FaultKind};
use paas_sim::runner_process::RunnerProcess;
use paas_sim::world::WorldConfig;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// `run CONFIG [extra]` with stderr as journald reads it.
fn run_under_journald(config: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec![OsStr::new("run"), config.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    let env = [
        ("JOURNAL_STREAM", OsStr::new("8:123456")),
        ("NOTIFY_SOCKET", OsStr::new("")),
    ];
    let (code, _, stderr) = run_to_end_with_env(&args, &env, LIMIT);
    (code, stderr)
}

/// The index of the `starting` line (with the version) and of the first
/// line of the fatal error (the first line containing `error_text`);
/// every line from there on has the error priority.
fn assert_error_follows_version(stderr: &str, error_text: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    let starting = lines
        .iter()
        .position(|l| l.contains("starting") && l.contains(env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("no starting line with the version:\n{stderr}"));
    assert!(lines[starting].starts_with("<6>"), "{stderr}");
    let error = lines
        .iter()
        .position(|l| l.contains(error_text))
        .unwrap_or_else(|| panic!("{error_text:?} not told:\n{stderr}"));
    assert!(
        starting < error,
        "the error comes before the version line:\n{stderr}"
    );
    for line in &lines[error..] {
        assert!(
            line.starts_with("<3>"),
            "{line:?} is not at the error priority:\n{stderr}"
        );
    }
}

#[test]
fn a_fatal_error_follows_the_version_line_at_the_error_priority() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(common::options(), &[]);
    std::fs::write(e.state_file(), "{\"launched\": [").expect("corrupt state");
    let (code, stderr) = run_under_journald(&config, &[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert_error_follows_version(&stderr, "is corrupt");

    let (code, stderr) = run_under_journald(&config, &["--log-format", "json"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert_error_follows_version(&stderr, "cannot start");
    let fatal = stderr
        .lines()
        .find(|l| l.contains("cannot start"))
        .unwrap_or_default();
    assert!(fatal.starts_with("<3>{"), "{fatal}");
    std::fs::remove_file(e.state_file()).expect("remove state");

    // A configuration with two problems: one line each, all of them at the
    // error priority, after the version line.
    std::fs::write(
        &config,
        "concurrent = \"many\"\ncheck_interval = \"often\"\n",
    )
    .expect("invalid configuration");
    let (code, stderr) = run_under_journald(&config, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_error_follows_version(&stderr, "invalid configuration file");
    assert!(
        stderr.lines().filter(|l| l.starts_with("<3>")).count() >= 3,
        "{stderr}"
    );
}

#[test]
fn sigterm_while_the_start_up_checks_retry_exits_0_at_once() {
    let e = E2e::start(WorldConfig::default());
    e.world.clever().control().fault(FaultCommand::FailNext {
        endpoint: CleverEndpoint::ProductsFlavors,
        count: 100_000,
        fault: FaultKind::status(503),
    });
    let config = e.write_config(common::options(), &[]);
    let (socket_path, socket) = fake_notify_socket(e.dir.path());
    let args = [
        OsStr::new("run"),
        config.as_os_str(),
        OsStr::new("-l"),
        OsStr::new("DEBUG"),
    ];
    let env = [("NOTIFY_SOCKET", socket_path.as_os_str())];
    let mut runner =
        RunnerProcess::spawn_with_env(Path::new(BIN), &args, &env, &e.log("retries.log"))
            .expect("runner starts");
    assert!(
        wait_until(
            || runner.log().contains("start-up check failed, retrying"),
            LIMIT,
            STEP
        ),
        "no start-up retry:\n{}",
        tail(&runner.log())
    );
    let mut got = Vec::new();
    receive_until(
        &socket,
        &mut got,
        "start-up checks: retrying",
        Duration::from_secs(20),
    );
    let extend = got
        .iter()
        .filter_map(|m| m.strip_prefix("EXTEND_TIMEOUT_USEC="))
        .filter_map(|rest| rest.split('\n').next()?.parse::<u64>().ok())
        .collect::<Vec<_>>();
    assert!(
        extend.len() >= 2 && extend.iter().all(|&usec| usec >= 60_000_000),
        "EXTEND_TIMEOUT_USEC at the start of the checks and at each retry: {got:?}"
    );
    assert!(!got.iter().any(|m| m.contains("READY=1")), "{got:?}");

    // A SIGHUP meanwhile is kept for later, and kills nothing.
    runner.signal(Signal::SIGHUP).expect("SIGHUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        runner.try_wait().expect("wait").is_none(),
        "SIGHUP during the start-up checks ended the process:\n{}",
        tail(&runner.log())
    );

    let sent = Instant::now();
    runner.terminate().expect("SIGTERM");
    let status = runner
        .wait_timeout(LIMIT)
        .expect("wait")
        .unwrap_or_else(|| panic!("still running after SIGTERM:\n{}", tail(&runner.log())));
    let took = sent.elapsed();
    println!(
        "SIGTERM during the start-up retries: exit after {} ms",
        took.as_millis()
    );
    let log = runner.log();
    assert_eq!(status.code(), Some(0), "{status}\n{}", tail(&log));
    assert!(
        log.contains("stopped during the start-up checks"),
        "{}",
        tail(&log)
    );
    // The failing checks never got further: no poll, no application.
    assert_eq!(e.world.clever().control().summary().apps_created, 0);
}
