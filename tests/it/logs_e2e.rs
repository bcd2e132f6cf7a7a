//! End to end, the real binary's logs: under systemd (`JOURNAL_STREAM`
//! set) every line starts with its syslog priority; `log_level` and
//! `log_format` are read from the configuration when the command line does
//! not give them; version, revision and pid are logged once; "service
//! started" comes after the state is loaded; weights are numbers with two
//! decimals at most; the
//! SIGUSR1 dump is at INFO with each key once per line; a start-up error is
//! a JSON line in JSON mode. JSON levels are GitLab Runner's names, numbers
//! are JSON numbers (weights 2 decimals, `_s` durations to the ms, no
//! `_ms` key), one job's acquisition, launch and end lines tell its project,
//! flavor, organisation, outcome and durations; a graceful stop is at INFO;
//! a double SIGTERM logs no error and leaves an intact state file.

use crate::common;

use common::{options, tail, wait_until, E2e, BIN, STEP};
use paas_sim::coordinator::{JobSpec, JobState};
use paas_sim::runner_process::RunnerProcess;
use paas_sim::world::WorldConfig;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Keys of one JSON object line, in order (top level only).
fn keys(line: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut de = serde_json::Deserializer::from_str(line);
    // serde_json keeps the last of duplicate keys: count them in the text.
    if let Ok(serde_json::Value::Object(map)) =
        serde::Deserialize::deserialize(&mut de).map_err(|_: serde_json::Error| ())
    {
        for k in map.keys() {
            let needle = format!("\"{k}\":");
            for _ in 0..line.matches(&needle).count() {
                keys.push(k.clone());
            }
        }
    }
    keys
}

#[test]
fn journal_priorities_config_log_keys_one_version_line_and_a_clean_dump() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(
        options(),
        &[
            ("log_format", toml::Value::String("json".into())),
            ("log_level", toml::Value::String("info".into())),
        ],
    );
    let args = [
        OsStr::new("run"),
        config.as_os_str(),
        OsStr::new("--debug-signal"),
    ];
    let env = [("JOURNAL_STREAM", OsStr::new("8:12345"))];
    let mut runner =
        RunnerProcess::spawn_with_env(Path::new(BIN), &args, &env, &e.log("journal.log"))
            .expect("runner starts");
    let id = e.world.enqueue(JobSpec {
        flavor: Some("XS".into()),
        duration_ms: 20_000,
        ..JobSpec::default()
    });
    assert!(
        wait_until(
            || e.status(id) == Some(JobState::Running) && runner.log().contains("job started"),
            Duration::from_secs(30),
            STEP
        ),
        "{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    runner
        .signal(nix::sys::signal::Signal::SIGUSR1)
        .expect("SIGUSR1");
    assert!(
        wait_until(
            || runner.log().contains("tracked job"),
            Duration::from_secs(10),
            STEP
        ),
        "{}",
        tail(&runner.log())
    );
    runner.terminate().expect("SIGTERM");
    let status = runner
        .wait_timeout(Duration::from_secs(30))
        .expect("wait")
        .expect("stopped within 30 s");
    let log = runner.log();
    assert!(status.success(), "exit {status}\n{}", tail(&log));

    let lines: Vec<&str> = log.lines().collect();
    for line in &lines {
        let rest = line
            .strip_prefix(|c| c == '<')
            .and_then(|r| r.split_once('>'))
            .unwrap_or_else(|| panic!("no syslog priority: {line}"));
        assert!(
            ["2", "3", "4", "6"].contains(&rest.0),
            "priority {} (debug is filtered by log_level = info): {line}",
            rest.0
        );
        assert!(rest.1.starts_with('{'), "JSON (log_format = json): {line}");
        let k = keys(rest.1);
        let mut unique = k.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(k.len(), unique.len(), "a key twice: {line}");
    }
    let with_version: Vec<&&str> = lines.iter().filter(|l| l.contains("\"version\"")).collect();
    assert_eq!(with_version.len(), 1, "version logged once\n{}", tail(&log));
    assert!(
        with_version[0].contains("\"revision\"") && with_version[0].contains("\"pid\""),
        "{}",
        with_version[0]
    );
    let position = |what: &str| lines.iter().position(|l| l.contains(what));
    let loaded = position("no state to load").or(position("loading state"));
    let started = position("\"service started\"");
    assert!(
        loaded.is_some() && started > loaded,
        "service started after the state is loaded\n{}",
        tail(&log)
    );
    let dump: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("state dump") || l.contains("tracked job"))
        .collect();
    assert!(dump.len() >= 2, "{}", tail(&log));
    for line in dump {
        assert!(line.starts_with("<6>"), "dump at INFO: {line}");
    }
    let started: serde_json::Value = lines
        .iter()
        .find(|l| l.contains("\"service started\""))
        .and_then(|l| l.split_once('>'))
        .and_then(|(_, json)| serde_json::from_str(json).ok())
        .unwrap_or_default();
    let quota = started["quota"].as_f64();
    assert!(
        quota.is_some_and(|q| q > 0.0 && (q * 100.0).round() / 100.0 == q),
        "quota a number with two decimals at most: {started}"
    );
}

#[test]
fn start_up_error_is_a_json_line_in_json_mode() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "concurrent = \"many\"\n").expect("write");
    let out = Command::new(BIN)
        .args([
            OsStr::new("run"),
            config.as_os_str(),
            OsStr::new("--log-format"),
            OsStr::new("json"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("cannot start"))
        .unwrap_or_else(|| panic!("no JSON error line in {stderr}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON object");
    assert_eq!(v["level"], "error", "{line}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("concurrent")),
        "{line}"
    );
}

/// The JSON records of a log (lines that are not JSON are kept as `msg`).
fn records(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| serde_json::json!({ "msg": l })))
        .collect()
}

#[test]
fn a_double_sigterm_logs_no_error_and_leaves_an_intact_state_file() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(options(), &[]);
    let id = e.world.enqueue(JobSpec {
        flavor: Some("XS".into()),
        duration_ms: 120_000,
        ..JobSpec::default()
    });
    // The second SIGTERM at several distances from the first: during the
    // drain, as its final write starts, after it.
    for (round, gap_ms) in [0u64, 1, 5, 20].into_iter().enumerate() {
        let args = [
            OsStr::new("run"),
            config.as_os_str(),
            OsStr::new("--log-format"),
            OsStr::new("json"),
        ];
        let mut runner = RunnerProcess::spawn(
            Path::new(BIN),
            &args,
            &e.log(&format!("double-term-{round}.log")),
        )
        .expect("runner starts");
        assert!(
            wait_until(
                || {
                    let log = runner.log();
                    log.contains("service ready") && (round > 0 || log.contains("job started"))
                },
                Duration::from_secs(30),
                STEP
            ),
            "{}\n{}",
            e.describe(),
            tail(&runner.log())
        );
        runner.terminate().expect("SIGTERM");
        std::thread::sleep(Duration::from_millis(gap_ms));
        runner.terminate().expect("second SIGTERM");
        let status = runner
            .wait_timeout(Duration::from_secs(20))
            .expect("wait")
            .expect("stopped within 20 s");
        let log = runner.log();
        assert!(status.success(), "exit {status}\n{}", tail(&log));
        let all = records(&log);
        let errors: Vec<&serde_json::Value> = all
            .iter()
            .filter(|r| r["level"] == "error" || r["level"] == "fatal" || r["level"].is_null())
            .collect();
        assert!(
            errors.is_empty(),
            "gap {gap_ms} ms: {errors:?}\n{}",
            tail(&log)
        );
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(e.state_file()).expect("state file"))
                .expect("state JSON");
        let launched = state["launched"].as_array().map_or(0, Vec::len);
        assert_eq!(launched, 1, "gap {gap_ms} ms: {state}");
    }
    assert_eq!(e.status(id), Some(JobState::Running), "{}", e.describe());
}

/// True for a number with at most `decimals` decimals.
fn rounded(v: &serde_json::Value, decimals: i32) -> bool {
    let scale = 10f64.powi(decimals);
    v.as_f64()
        .is_some_and(|x| ((x * scale).round() / scale - x).abs() < 1e-9)
}

#[test]
fn json_lines_tell_one_job_s_story_with_typed_numbers() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(options(), &[]);
    let id = e.world.enqueue(JobSpec {
        flavor: Some("XS".into()),
        duration_ms: 1_500,
        ..JobSpec::default()
    });
    let path = e
        .world
        .coordinator()
        .job(id)
        .expect("job")
        .spec
        .project_path();
    let args = [
        OsStr::new("run"),
        config.as_os_str(),
        OsStr::new("--log-format"),
        OsStr::new("json"),
        OsStr::new("-l"),
        OsStr::new("debug"),
    ];
    let mut runner =
        RunnerProcess::spawn(Path::new(BIN), &args, &e.log("story.log")).expect("runner starts");
    assert!(
        wait_until(
            || runner.log().contains("\"job over\""),
            Duration::from_secs(60),
            STEP
        ),
        "{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    runner.terminate().expect("SIGTERM");
    let status = runner
        .wait_timeout(Duration::from_secs(20))
        .expect("wait")
        .expect("stopped within 20 s");
    let log = runner.log();
    assert!(status.success(), "exit {status}\n{}", tail(&log));
    let all = records(&log);
    for r in &all {
        let level = r["level"].as_str().unwrap_or_default();
        assert!(
            ["error", "warn", "info", "debug", "trace"].contains(&level),
            "level {level:?}: {r}"
        );
        for (key, value) in r.as_object().into_iter().flatten() {
            assert!(!key.ends_with("_ms"), "one unit suffix (_s): {r}");
            if key.ends_with("_s") {
                assert!(value.is_null() || rounded(value, 3), "{key}: {r}");
            }
            if key.contains("weight") || key == "quota" {
                assert!(rounded(value, 2), "{key} a number, 2 decimals: {r}");
            }
        }
    }
    let line = |msg: &str| {
        all.iter()
            .find(|r| r["msg"] == msg && r["job_id"] == id)
            .unwrap_or_else(|| panic!("no {msg:?} line for job {id}\n{}", tail(&log)))
    };
    for msg in ["job acquired", "job launched", "job over"] {
        let r = line(msg);
        assert_eq!(r["project_id"], 17, "{r}");
        assert_eq!(r["project_path"], path.as_str(), "{r}");
        assert_eq!(r["flavor"], "XS", "{r}");
    }
    for msg in ["job launched", "job over"] {
        assert!(line(msg)["organisation"].is_string(), "{}", line(msg));
    }
    let over = line("job over");
    assert_eq!(over["outcome"], "finished", "{over}");
    assert_eq!(over["end"], "decommissioned", "{over}");
    let secs = |k: &str| over[k].as_f64().unwrap_or_else(|| panic!("{k}: {over}"));
    assert!(secs("run_s") >= 1.0, "the job ran 1.5 s: {over}");
    assert!(
        secs("total_s") >= secs("run_s") + secs("queued_to_started_s") - 0.002,
        "{over}"
    );
    let stop = all
        .iter()
        .find(|r| {
            r["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("graceful shutdown"))
        })
        .unwrap_or_else(|| panic!("no graceful shutdown line\n{}", tail(&log)));
    assert_eq!(stop["level"], "info", "a normal stop at INFO: {stop}");
}
