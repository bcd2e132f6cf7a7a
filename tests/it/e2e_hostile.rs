//! End to end, hostile jobs: `heptapod-paas-runner run` (the real binary)
//! against paas-sim's world.
//!
//! Checked, in both log formats: the contexts pushed to the Clever apps hold
//! a placeholder instead of the runner token (with the token's short
//! description); a job whose image name is too long, and one whose variable
//! name forges log lines and terminal escapes, fail with an explanation in
//! their trace and create nothing; the runner's log shows that name escaped.

use crate::common;

use common::{
    assert_no_secret, job_id_of_app_name, options, start_runner, stop_ok, tail, wait_until, E2e,
    STEP,
};
use heptapod_paas_runner::config::inner;
use paas_sim::coordinator::{JobSpec, JobState, Variable};
use paas_sim::scenario::dependency_proxy_prefix;
use paas_sim::world::WorldConfig;
use std::time::Duration;

const STOP: Duration = Duration::from_secs(15);

/// A variable name that, printed raw, would start a forged log line and
/// clear the operator's terminal.
const FORGING_NAME: &str = "X\nJan 01 00:00:00.000 INFO forged line\u{1b}[2J";

fn hostile_jobs_fail_cleanly_and_tokens_stay_home(log_format: &str) {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(options(), &[]);
    let good = e.world.enqueue(JobSpec {
        duration_ms: 100,
        ..JobSpec::default()
    });
    let long = e.world.enqueue(JobSpec {
        image: Some(format!("alpine:{}", "9".repeat(2000))),
        ..JobSpec::default()
    });
    let forging = e.world.enqueue(JobSpec {
        dependency_proxy_prefix: Some(dependency_proxy_prefix("group")),
        image: Some(format!("${{{FORGING_NAME}}}")),
        variables: vec![Variable {
            key: FORGING_NAME.to_owned(),
            value: format!("${{{FORGING_NAME}}}"),
        }],
        ..JobSpec::default()
    });
    let ids = [good, long, forging];
    let mut runner = start_runner(
        &config,
        &e.log(&format!("hostile-{log_format}.log")),
        &["--log-format", log_format],
    );
    assert!(
        wait_until(|| e.all_over(&ids), Duration::from_secs(60), STEP),
        "jobs not over\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    assert_eq!(e.status(good), Some(JobState::Success), "{}", e.describe());
    for (id, needles) in [
        (long, ["image.name", "at most 1024 bytes"]),
        (forging, ["image.name", "refers to itself"]),
    ] {
        assert_eq!(e.status(id), Some(JobState::Failed), "{}", e.describe());
        let trace = e.world.coordinator().job_trace(id).unwrap_or_default();
        let trace = String::from_utf8_lossy(&trace);
        for needle in needles {
            assert!(
                trace.contains(needle),
                "job {id}: no explanation mentioning {needle:?} in its trace:\n{trace}"
            );
        }
    }

    // Nothing created for the refused jobs; the good job's context holds
    // no runner token but a placeholder with its short description.
    let apps = e.world.clever().control().apps();
    let runner_tokens = e.world.runner_tokens().to_vec();
    let mut checked = 0;
    for app in &apps {
        let id = job_id_of_app_name(&app.name);
        assert_eq!(id, Some(good), "only the good job has an app: {apps:?}");
        let tree = e
            .world
            .clever()
            .control()
            .pushed_tree(&app.id)
            .expect("a pushed context");
        let runner_toml = tree.runner_toml.expect("runner.toml");
        for t in &runner_tokens {
            assert!(!runner_toml.contains(t.as_str()), "runner token pushed");
            assert!(
                !tree
                    .job_json
                    .as_deref()
                    .unwrap_or_default()
                    .contains(t.as_str()),
                "runner token pushed in job.json"
            );
        }
        let doc: toml::Table = runner_toml.parse().expect("runner.toml is TOML");
        let pushed = doc["runners"][0]["token"].as_str().expect("token string");
        assert!(
            runner_tokens
                .iter()
                .any(|t| pushed == inner::token_placeholder(t)
                    && inner::short_description(pushed) == inner::short_description(t)),
            "{pushed:?} is not the placeholder of a runner token"
        );
        checked += 1;
    }
    assert_eq!(checked, 1, "{apps:?}");

    stop_ok(&mut runner, STOP);
    let log = runner.log();
    // Escaped once by the runner; JSON escapes the backslashes once more.
    let escaped = "X\\nJan 01 00:00:00.000 INFO forged line\\u{1b}[2J";
    let needle = if log_format == "json" {
        escaped.replace('\\', "\\\\")
    } else {
        escaped.to_owned()
    };
    assert!(
        log.contains(&needle),
        "the variable name is not in the log, escaped:\n{}",
        tail(&log)
    );
    assert!(
        !log.lines()
            .any(|l| l.starts_with("Jan 01 00:00:00.000 INFO forged")),
        "forged log line"
    );
    assert!(!log.contains('\u{1b}'), "terminal escape in the log");
    assert_no_secret(&e.world, &log, &[]);
}

#[test]
fn hostile_jobs_in_the_term_log_format() {
    hostile_jobs_fail_cleanly_and_tokens_stay_home("term");
}

#[test]
fn hostile_jobs_in_the_json_log_format() {
    hostile_jobs_fail_cleanly_and_tokens_stay_home("json");
}
