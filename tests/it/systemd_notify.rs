//! End to end, the real binary under a fake systemd: `NOTIFY_SOCKET` is a
//! datagram socket bound in a temporary directory, `WATCHDOG_USEC` is set.
//! The runner sends `READY=1` with a status line once started, `STATUS=`
//! when jobs run, `WATCHDOG=1` while alive, and `STOPPING=1` at the drain.

use crate::common;

use common::{options, tail, wait_until, E2e, BIN, STEP};
use paas_sim::coordinator::JobSpec;
use paas_sim::runner_process::RunnerProcess;
use paas_sim::world::WorldConfig;
use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every datagram received within `timeout`, until `until` matches one.
pub(crate) fn receive_until(
    socket: &UnixDatagram,
    got: &mut Vec<String>,
    until: &str,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = message.contains(until);
                got.push(message);
                if done {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// A fake systemd notify socket in `dir`, read with a short timeout: its
/// path (for `NOTIFY_SOCKET`) and the socket.
pub(crate) fn fake_notify_socket(dir: &Path) -> (PathBuf, UnixDatagram) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the fake NOTIFY_SOCKET");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    (path, socket)
}

#[test]
fn notify_socket_receives_ready_status_watchdog_and_stopping() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(options(), &[]);
    let (socket_path, socket) = fake_notify_socket(e.dir.path());
    let args = [
        OsStr::new("run"),
        config.as_os_str(),
        OsStr::new("-l"),
        OsStr::new("DEBUG"),
    ];
    let env = [
        ("NOTIFY_SOCKET", socket_path.as_os_str()),
        ("WATCHDOG_USEC", OsStr::new("400000")),
    ];
    let mut runner =
        RunnerProcess::spawn_with_env(Path::new(BIN), &args, &env, &e.log("notify.log"))
            .expect("runner starts");
    let mut got = Vec::new();
    receive_until(&socket, &mut got, "READY=1", Duration::from_secs(30));
    let ready = got
        .iter()
        .find(|m| m.contains("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {got:?}\n{}", tail(&runner.log())));
    // The weight counts the reservation of a poll in flight.
    let quota = format!("/{:.2}, 0 provisioning", e.quota());
    assert!(
        ready.starts_with("READY=1\nSTATUS=0 jobs, weight ") && ready.ends_with(&quota),
        "{ready:?} {quota:?}"
    );
    // A job: the status line changes.
    let id = e.world.enqueue(JobSpec {
        flavor: Some("XS".into()),
        duration_ms: 300,
        ..JobSpec::default()
    });
    receive_until(&socket, &mut got, "STATUS=1 jobs", Duration::from_secs(30));
    assert!(
        got.iter().any(|m| m.contains("STATUS=1 jobs")),
        "{got:?}\n{}",
        tail(&runner.log())
    );
    assert!(
        wait_until(|| e.all_over(&[id]), Duration::from_secs(60), STEP),
        "{}",
        e.describe()
    );
    got.clear();
    receive_until(&socket, &mut got, "WATCHDOG=1", Duration::from_secs(5));
    assert!(got.iter().any(|m| m == "WATCHDOG=1"), "{got:?}");
    runner.terminate().expect("SIGTERM");
    receive_until(&socket, &mut got, "STOPPING=1", Duration::from_secs(20));
    assert!(
        got.iter().any(|m| m.starts_with("STOPPING=1")),
        "{got:?}\n{}",
        tail(&runner.log())
    );
    let status = runner
        .wait_timeout(Duration::from_secs(20))
        .expect("wait")
        .expect("stopped within 20 s");
    assert!(status.success(), "exit {status}\n{}", tail(&runner.log()));
}

#[test]
fn a_reload_is_announced_and_a_refused_file_stays_in_the_status_line() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(options(), &[]);
    let good = std::fs::read_to_string(&config).expect("read config");
    let (socket_path, socket) = fake_notify_socket(e.dir.path());
    let args = [OsStr::new("run"), config.as_os_str()];
    let env = [("NOTIFY_SOCKET", socket_path.as_os_str())];
    let mut runner =
        RunnerProcess::spawn_with_env(Path::new(BIN), &args, &env, &e.log("reload.log"))
            .expect("runner starts");
    let mut got = Vec::new();
    receive_until(&socket, &mut got, "READY=1", Duration::from_secs(30));
    assert!(
        got.iter().any(|m| m.starts_with("READY=1")),
        "{got:?}\n{}",
        tail(&runner.log())
    );

    // A refused file: RELOADING=1 with the monotonic clock, then READY=1
    // with the reason in the status line; what ExecReload= runs fails.
    let invalid = good.replacen("concurrent = ", "concurrent = \"many\" # ", 1);
    assert_ne!(
        invalid, good,
        "test set-up: concurrent in the configuration"
    );
    std::fs::write(&config, invalid).expect("invalid file");
    got.clear();
    runner
        .signal(nix::sys::signal::Signal::SIGHUP)
        .expect("SIGHUP");
    receive_until(&socket, &mut got, "READY=1", Duration::from_secs(10));
    let reloading = got
        .iter()
        .position(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no RELOADING=1 with MONOTONIC_USEC: {got:?}"));
    let ready = got
        .iter()
        .position(|m| m.starts_with("READY=1\nSTATUS="))
        .unwrap_or_else(|| panic!("no READY=1 after the reload: {got:?}"));
    assert!(reloading < ready, "{got:?}");
    let refused = &got[ready];
    assert!(
        refused.contains("last reload refused:") && refused.contains("`concurrent`"),
        "{refused:?}"
    );
    let (code, stdout, _) = common::run_to_end(
        &[OsStr::new("check"), config.as_os_str()],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "{stdout}");
    assert!(stdout.contains("`concurrent`"), "{stdout}");

    // The status line keeps the refusal until a reload is applied.
    std::fs::write(&config, &good).expect("valid file");
    got.clear();
    runner
        .signal(nix::sys::signal::Signal::SIGHUP)
        .expect("SIGHUP");
    receive_until(&socket, &mut got, "READY=1", Duration::from_secs(10));
    let ready = got
        .iter()
        .find(|m| m.starts_with("READY=1\nSTATUS="))
        .unwrap_or_else(|| panic!("no READY=1 after the reload: {got:?}"));
    assert!(!ready.contains("refused"), "{ready:?}");
    assert!(
        got.iter()
            .any(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC=")),
        "{got:?}"
    );
    let (code, stdout, _) = common::run_to_end(
        &[OsStr::new("check"), config.as_os_str()],
        Duration::from_secs(20),
    );
    // Beside the running service: valid, its lock a warning.
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("a running service"), "{stdout}");

    runner.terminate().expect("SIGTERM");
    let status = runner
        .wait_timeout(Duration::from_secs(20))
        .expect("wait")
        .expect("stopped within 20 s");
    assert!(status.success(), "exit {status}\n{}", tail(&runner.log()));
}
