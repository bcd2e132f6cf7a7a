//! End to end, start-up safety and the operator commands of the real
//! binary against paas-sim: one service per state file (two real
//! processes), runner identities, and the `check` / `verify` / `list` /
//! `unregister` commands.

mod common;

use common::{run_to_end, start_runner, stop_ok, tail, wait_until, E2e, STEP};
use paas_sim::world::WorldConfig;
use std::ffi::OsStr;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_second_service_on_the_same_state_file_is_refused_with_the_holders_pid() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(common::options(), &[]);
    let mut first = start_runner(&config, &e.log("first.log"), &[]);
    assert!(
        wait_until(|| first.log().contains("service started"), LIMIT, STEP),
        "first service did not start:\n{}",
        tail(&first.log())
    );
    let (code, stdout, stderr) = run_to_end(
        &[
            OsStr::new("run"),
            config.as_os_str(),
            OsStr::new("-l"),
            OsStr::new("DEBUG"),
        ],
        LIMIT,
    );
    assert_eq!(code, Some(1), "stdout {stdout}\nstderr {stderr}");
    let state = e.state_file().display().to_string();
    assert!(stderr.contains(&state), "state file not named: {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "holder's pid not named: {stderr}"
    );
    // The refused process neither read nor wrote anything: the first keeps going.
    assert!(first.try_wait().expect("wait").is_none(), "first died");
    stop_ok(&mut first, LIMIT);
    // Once the holder is gone, the lock is free again (no stale lock).
    let (code, _, stderr) = run_to_end(
        &[
            OsStr::new("run"),
            config.as_os_str(),
            OsStr::new("--poll-cycles"),
            OsStr::new("1"),
        ],
        LIMIT,
    );
    assert_eq!(code, Some(0), "after the holder stopped: {stderr}");
}

#[test]
fn a_state_file_in_a_missing_directory_names_state_file_and_exits_2() {
    let e = E2e::start(WorldConfig::default());
    let missing = e.dir.path().join("missing").join("state.json");
    let config = e.write_config(
        common::options(),
        &[("state_file", missing.display().to_string().into())],
    );
    let (code, stdout, stderr) = run_to_end(&[OsStr::new("run"), config.as_os_str()], LIMIT);
    assert_eq!(code, Some(2), "stdout {stdout}\nstderr {stderr}");
    assert!(stderr.contains("`state_file`"), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        !stderr.contains(".lock") && !stderr.contains("system id"),
        "internal file named: {stderr}"
    );
}
