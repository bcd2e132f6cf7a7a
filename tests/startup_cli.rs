//! End to end, start-up safety and the operator commands of the real
//! binary against paas-sim: one service per state file (two real
//! processes), runner identities (state entries and applications of the
//! identity older versions gave `glrt-` runners), and the `check` /
//! `verify` / `list` / `unregister` commands.

mod common;

use common::{run_to_end, start_runner, stop_ok, tail, wait_until, E2e, STEP};
use paas_sim::clever::products::{DEFAULT_DOCKER_VERSION, HEPTAPOD_VARIANT_UUID};
use paas_sim::world::WorldConfig;
use serde_json::{json, Value};
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

/// Creates an application in an organisation of the fake Clever Cloud, as
/// an earlier runner version would have named it.
fn create_app(e: &E2e, name: &str) -> String {
    let tenant = e.world.tenants()[0].clone();
    let api_url = e.world.clever().api_url();
    let name = name.to_owned();
    actix_rt::System::new().block_on(async move {
        let mut resp = awc::Client::default()
            .post(format!(
                "{api_url}/organisations/{}/applications",
                tenant.orga_id
            ))
            .insert_header(("Authorization", format!("token {}", tenant.token)))
            .send_json(&json!({
                "name": name,
                "zone": "par",
                "deploy": "git",
                "instanceType": "docker",
                "instanceVersion": DEFAULT_DOCKER_VERSION,
                "instanceVariant": HEPTAPOD_VARIANT_UUID,
                "minInstances": 1,
                "maxInstances": 1,
                "minFlavor": "heptapod-runner-S",
                "maxFlavor": "heptapod-runner-S",
            }))
            .await
            .expect("create app");
        assert!(resp.status().is_success(), "app created: {}", resp.status());
        let app: Value = resp.json().limit(1 << 20).await.expect("app");
        app["id"].as_str().expect("app id").to_owned()
    })
}

#[test]
fn state_and_apps_of_the_old_glrt_identity_are_still_this_runners() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(common::options(), &[]);
    let token = e.world.runner_tokens()[0].clone();
    assert!(
        token.starts_with("glrt-"),
        "the world's tokens are glrt- tokens"
    );
    // Before: the first 8 characters (`glrt-` + 3). Now: 9 after `glrt-`.
    let old: String = token.chars().take(8).collect();
    let new: String = token.chars().skip(5).take(9).collect();
    // An application the state knows (to decommission), one it does not
    // (an orphan, never launched), and one of another runner.
    let tracked = create_app(&e, &format!("hpd-job-{old}-999998"));
    let orphan = create_app(&e, &format!("hpd-job-{old}-999999"));
    let foreign = create_app(&e, "hpd-job-someone-999997");
    let state = json!({
        "launched": [],
        "pending": [],
        "to_decommission": [{
            "runner_name": old, "job_id": 999998, "token": "old-job-token",
            "trace_offset": 0, "expected_weight": 1.0,
            "paas_resource": {"id": tracked, "gitlab_namespace": null, "weight": 1.0,
                              "launched": true, "name": format!("hpd-job-{old}-999998")}
        }]
    });
    std::fs::write(e.state_file(), state.to_string()).expect("state");
    let mut runner = start_runner(&config, &e.log("identity.log"), &[]);
    let clever = e.world.clever().control();
    let deleted = |id: &str| {
        clever
            .apps()
            .iter()
            .any(|a| a.id == id && a.deleted_ms.is_some())
    };
    assert!(
        wait_until(|| deleted(&tracked) && deleted(&orphan), LIMIT, STEP),
        "old-identity apps not handled\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    assert!(!deleted(&foreign), "another runner's app was deleted");
    stop_ok(&mut runner, LIMIT);
    let log = runner.log();
    assert!(!log.contains("unknown runner"), "{}", tail(&log));
    assert!(
        log.contains(&format!("runner\": \"{new}")) || log.contains(&new),
        "{}",
        tail(&log)
    );
    let after: Value =
        serde_json::from_slice(&std::fs::read(e.state_file()).expect("state")).expect("JSON");
    assert_eq!(
        after["to_decommission"].as_array().map(Vec::len),
        Some(0),
        "{after}"
    );
}
