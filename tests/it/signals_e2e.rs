//! End to end, the real binary and real signals against paas-sim: SIGHUP
//! reloads the configuration (a runner section added is polled, a file that
//! does not validate is refused and the service goes on, keys that need a
//! restart are named), and SIGQUIT stops gracefully (exit 0).

use crate::common;

use common::{options, start_runner, tail, wait_until, E2e, BIN, STEP};
use paas_sim::coordinator::Endpoint;
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
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

    // SIGQUIT: graceful stop, exit 0.
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
            .any(|l| l.contains("graceful shutdown") && l.contains("SIGQUIT")),
        "{}",
        tail(&log)
    );
}
