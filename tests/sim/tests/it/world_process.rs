//! RunnerProcess with simple real programs (`sleep`, `sh`), and the
//! `paas-sim` binary itself: `--help`, a bad scenario, and `serve` with a
//! short scenario stopped by SIGTERM.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use paas_sim::runner_process::RunnerProcess;
use paas_sim::world::wait_until;
use std::os::unix::process::ExitStatusExt;

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn spawn(program: &str, args: &[&str], log: &Path) -> RunnerProcess {
    match RunnerProcess::spawn(Path::new(program), args, log) {
        Ok(p) => p,
        Err(e) => panic!("{program}: {e}"),
    }
}

#[test]
fn sigterm_stops_a_process_and_its_output_is_captured() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("out.log");
    let mut p = spawn(
        "/bin/sh",
        &["-c", "echo to-stdout; echo to-stderr >&2; exec sleep 30"],
        &log,
    );
    assert!(pid_alive(p.pid()));
    assert!(wait_until(
        || p.log().contains("to-stderr") && p.log().contains("to-stdout"),
        Duration::from_secs(5),
        Duration::from_millis(10)
    ));
    assert_eq!(p.try_wait().ok().flatten(), None);
    let start = Instant::now();
    let (status, killed) = p
        .stop(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!killed);
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    assert!(start.elapsed() < Duration::from_secs(5));
    // signalling an exited process is a no-op, not a stray kill
    assert!(p.terminate().is_ok());
    assert_eq!(p.log_path(), log);
}

#[test]
fn wait_timeout_is_bounded_and_drop_kills_and_reaps() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("out.log");
    let mut p = spawn("sleep", &["30"], &log);
    let pid = p.pid();
    let start = Instant::now();
    assert_eq!(
        p.wait_timeout(Duration::from_millis(100)).ok().flatten(),
        None
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    drop(p);
    assert!(!pid_alive(pid), "pid {pid} still alive after drop");

    let mut quick = spawn("sh", &["-c", "exit 3"], &log);
    let status = quick.wait_timeout(Duration::from_secs(5)).ok().flatten();
    assert_eq!(status.and_then(|s| s.code()), Some(3));

    // a program ignoring SIGTERM is killed after the grace period
    let mut stubborn = spawn(
        "sh",
        &[
            "-c",
            "trap '' TERM; echo ready; while true; do sleep 0.05; done",
        ],
        &log,
    );
    assert!(wait_until(
        || stubborn.log().contains("ready"),
        Duration::from_secs(5),
        Duration::from_millis(10)
    ));
    let (status, killed) = stubborn
        .stop(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(killed);
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
}

#[test]
fn a_missing_program_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let err = RunnerProcess::spawn(
        Path::new("/nonexistent/heptapod-paas-runner"),
        &["run"],
        &dir.path().join("log"),
    )
    .err();
    assert!(err.is_some_and(|e| e.to_string().contains("/nonexistent/heptapod-paas-runner")));
}

const SIM: &str = env!("CARGO_BIN_EXE_paas-sim");

#[test]
fn help_explains_both_commands_and_a_bad_scenario_exits_2() {
    let out = std::process::Command::new(SIM)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["serve", "demo", "Exit codes"] {
        assert!(text.contains(needle), "{text}");
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[jobs]]\nflavor = \"XXL\"\n").unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(SIM)
        .args(["serve", "--scenario"])
        .arg(&bad)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("jobs[0].flavor"));
    let out = std::process::Command::new(SIM)
        .args(["demo", "--runner", "/nonexistent/runner"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/runner"));
}

#[test]
fn serve_writes_a_config_plays_the_scenario_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let scenario = dir.path().join("s.toml");
    std::fs::write(
        &scenario,
        "[world]\ntenants = [\"t1\"]\n[[jobs]]\ncount = 3\nevery_ms = 50\nname = \"x\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config_dir = dir.path().join("cfg");
    let log = dir.path().join("serve.log");
    let mut p = spawn(
        SIM,
        &[
            "serve",
            "--scenario",
            &scenario.display().to_string(),
            "--config-dir",
            &config_dir.display().to_string(),
        ],
        &log,
    );
    assert!(
        wait_until(
            || p.log().contains("stop with Ctrl-C"),
            Duration::from_secs(20),
            Duration::from_millis(20)
        ),
        "{}",
        p.log()
    );
    let config = std::fs::read_to_string(config_dir.join("runner.toml")).unwrap_or_default();
    assert!(config.contains("executor = \"clever-docker\""), "{config}");
    let out = p.log();
    let coordinator = out
        .lines()
        .find_map(|l| l.strip_prefix("coordinator:"))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    assert!(coordinator.starts_with("http://127.0.0.1:"), "{out}");
    assert!(config.contains(&format!("url = \"{coordinator}\"")));
    // the three jobs get enqueued (seen through the HTTP control API)
    let jobs_url = format!("{coordinator}/__sim/jobs");
    let x_jobs = || {
        let response = http_get(&jobs_url);
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .map_or(0, |jobs| {
                jobs.iter()
                    .filter(|j| j["name"].as_str().is_some_and(|n| n.starts_with("x-")))
                    .count()
            })
    };
    assert!(wait_until(
        || x_jobs() == 3,
        Duration::from_secs(10),
        Duration::from_millis(20)
    ));
    assert!(p.terminate().is_ok());
    let status = p.wait_timeout(Duration::from_secs(20)).ok().flatten();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", p.log());
    let out = p.log();
    assert!(out.contains("jobs: 3 total"), "{out}");
    assert!(out.contains("3 job(s) pending"), "{out}");
}

/// Raw response (status line, headers, body) of a plain GET over HTTP/1.1;
/// empty on any error.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let Some((addr, path)) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
    else {
        return String::new();
    };
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
