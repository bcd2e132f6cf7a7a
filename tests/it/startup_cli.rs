//! End to end, start-up safety and the operator commands of the real
//! binary against paas-sim: one service per state file (two real
//! processes), runner identities (state entries and applications of the
//! identity older versions gave `glrt-` runners), and the `check` /
//! `verify` / `list` / `unregister` commands.

use crate::common;

use common::{assert_no_secret, run_to_end, start_runner, stop_ok, tail, wait_until, E2e, STEP};
use paas_sim::clever::faults::{Endpoint as CleverEndpoint, FaultCommand, FaultKind};
use paas_sim::clever::products::{DEFAULT_DOCKER_VERSION, HEPTAPOD_VARIANT_UUID};
use paas_sim::coordinator::{CoordinatorConfig, Endpoint, FakeCoordinator};
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
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
    // The orphan was created long ago: past the longest provisioning, an
    // application without a job to read back is nobody's.
    assert!(e
        .world
        .clever()
        .control()
        .age_app(&orphan, Duration::from_secs(24 * 3600)));
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

fn two_runner_config(e: &E2e) -> std::path::PathBuf {
    let path = e
        .world
        .write_runner_config(
            e.dir.path(),
            RunnerConfigOptions {
                runners: 2,
                ..common::options()
            },
        )
        .expect("config");
    // An operator's comment, which edits must keep.
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, format!("# operator comment: keep me\n{text}")).expect("write");
    path
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run_to_end(&args, LIMIT)
}

#[test]
fn verify_checks_every_credential_and_fails_for_a_revoked_token() {
    let e = E2e::start(WorldConfig::default());
    let config = two_runner_config(&e);
    let config_arg = config.display().to_string();
    // The runner manager id a service created earlier.
    std::fs::write(e.dir.path().join(".runner_system_id"), "r_abcdefABCDEF\n").expect("id");
    let (code, stdout, stderr) = run(&["verify", &config_arg]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    for needle in [
        "runners[0] (sim-runner-1)",
        "runners[1] (sim-runner-2)",
        "coordinator token",
        "trace-watch token",
        "clever token",
        "cc_default_flavor",
        "cc_max_flavor",
        "quota_computation.reference_flavor",
    ] {
        assert!(stdout.contains(needle), "{needle} missing:\n{stdout}");
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
    // The system id is sent, as the service sends it.
    let verifies = e.world.coordinator().requests_to(Endpoint::RunnerVerify);
    assert_eq!(verifies.len(), 2, "{verifies:?}");
    assert!(verifies
        .iter()
        .all(|r| r.body.contains("\"system_id\":\"r_abcdefABCDEF\"")));

    let token = e.world.runner_tokens()[1].clone();
    assert!(e.world.coordinator().control().revoke_runner(&token));
    let (code, stdout, stderr) = run(&["verify", &config_arg]);
    assert_eq!(code, Some(1), "stdout {stdout}\nstderr {stderr}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].contains("runners[1]") && failed[0].contains("coordinator token"));
    assert!(failed[0].contains("403"), "{stdout}");
    for out in [&stdout, &stderr] {
        assert_no_secret(&e.world, &format!("{out} "), &[]);
    }
}

#[test]
fn check_prints_every_error_with_the_warnings_and_list_shows_identities() {
    let e = E2e::start(WorldConfig::default());
    let config = two_runner_config(&e);
    let config_arg = config.display().to_string();
    let (code, stdout, stderr) = run(&["check", &config_arg]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("valid (2 runner sections)"), "{stdout}");

    // A typo: the error (cc_token missing) and the hint in one pass.
    let text = std::fs::read_to_string(&config).expect("read");
    let bad = e.dir.path().join("bad.toml");
    std::fs::write(&bad, text.replacen("cc_token =", "cc_tokn =", 1)).expect("write");
    let (code, stdout, stderr) = run(&["check", &bad.display().to_string()]);
    assert_eq!(code, Some(2), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("`runners[0].cc_token`"), "{stdout}");
    assert!(stdout.contains("did you mean `cc_token`?"), "{stdout}");

    let (code, stdout, stderr) = run(&["check", "--online", &config_arg]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("coordinator token"), "{stdout}");

    let (code, stdout, stderr) = run(&["list", &config_arg]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    for token in e.world.runner_tokens().iter().take(2) {
        let identity: String = token.chars().skip(5).take(9).collect();
        assert!(
            stdout.contains(&identity),
            "{identity} not listed:\n{stdout}"
        );
        assert!(!stdout.contains(token.as_str()), "token listed");
    }
    assert!(
        stdout.contains("clever-docker") && stdout.contains("max_flavor=L"),
        "{stdout}"
    );
}

#[test]
fn unregister_calls_the_coordinator_for_legacy_tokens_and_edits_the_file() {
    let e = E2e::start(WorldConfig::default());
    let config = two_runner_config(&e);
    let config_arg = config.display().to_string();
    // The second section gets a legacy token (registered the old way).
    let legacy = "LegacyRunnerTok0123456789";
    e.world.coordinator().add_runner_token(legacy);
    let glrt = e.world.runner_tokens()[1].clone();
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, text.replace(&glrt, legacy)).expect("write");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).expect("chmod");

    // Refused while a service holds the state file.
    let mut service = start_runner(&config, &e.log("service.log"), &[]);
    assert!(
        wait_until(|| service.log().contains("service started"), LIMIT, STEP),
        "{}",
        tail(&service.log())
    );
    let (code, stdout, stderr) = run(&["unregister", &config_arg, "--name", "sim-runner-2"]);
    assert_eq!(code, Some(1), "stdout {stdout}\nstderr {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", service.pid())),
        "{stderr}"
    );
    stop_ok(&mut service, LIMIT);
    assert!(e
        .world
        .coordinator()
        .runners()
        .iter()
        .any(|r| r.token == legacy));

    let (code, stdout, stderr) = run(&["unregister", &config_arg, "--name", "sim-runner-2"]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("unregistered"), "{stdout}");
    let deletes = e.world.coordinator().requests_to(Endpoint::RunnerDelete);
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert!(!e
        .world
        .coordinator()
        .runners()
        .iter()
        .any(|r| r.token == legacy));
    let after = std::fs::read_to_string(&config).expect("read");
    assert!(
        after.starts_with("# operator comment: keep me\n"),
        "{after}"
    );
    assert!(
        !after.contains("sim-runner-2") && !after.contains(legacy),
        "{after}"
    );
    assert!(after.contains("sim-runner-1"), "{after}");
    assert_eq!(
        std::fs::metadata(&config)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o640,
        "mode kept"
    );
    // What is left is still a valid configuration.
    let (code, stdout, _) = run(&["check", &config_arg]);
    assert_eq!(code, Some(0), "{stdout}");

    // A glrt- runner: deleted in GitLab's UI, only the section goes; the
    // reference runner's removal is warned about.
    let (code, stdout, stderr) = run(&["unregister", &config_arg, "--all"]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("GitLab's UI"), "{stdout}");
    assert!(stderr.contains("reference_runner"), "{stderr}");
    assert_eq!(
        e.world
            .coordinator()
            .requests_to(Endpoint::RunnerDelete)
            .len(),
        1,
        "no DELETE for a glrt- token"
    );
    let after = std::fs::read_to_string(&config).expect("read");
    assert!(!after.contains("[[runners]]"), "{after}");
    assert!(after.contains("[quota_computation]"), "{after}");

    let (code, _, stderr) = run(&["unregister", &config_arg, "--name", "nope"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn commands_have_help_and_unknown_words_get_the_closest_command() {
    for command in ["run", "register", "check", "verify", "list", "unregister"] {
        let (code, stdout, stderr) = run(&[command, "--help"]);
        assert_eq!(code, Some(0), "{command}: {stderr}");
        assert!(stdout.contains("USAGE"), "{command}: {stdout}");
    }
    let (code, _, stderr) = run(&["verfy", "c.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no such command or file: `verfy`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `verify`?"), "{stderr}");
    // A path keeps the seed form: read as `run`, the file is named.
    let (code, _, stderr) = run(&["/nonexistent/runner.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/runner.toml"), "{stderr}");
}

/// Writes the world's configuration with `edit` applied to its first
/// runner section.
fn config_with(e: &E2e, name: &str, edit: impl FnOnce(&mut toml::Table)) -> std::path::PathBuf {
    let mut table = e
        .world
        .runner_config_table(&e.state_file(), &common::options())
        .expect("table");
    let runner = table
        .get_mut("runners")
        .and_then(toml::Value::as_array_mut)
        .and_then(|a| a.first_mut())
        .and_then(toml::Value::as_table_mut)
        .expect("a runner");
    edit(runner);
    let path = e.dir.path().join(name);
    std::fs::write(&path, toml::to_string(&table).expect("TOML")).expect("write");
    path
}

#[test]
fn preflight_refuses_unknown_flavors_naming_the_key_and_the_value() {
    let e = E2e::start(WorldConfig::default());
    for (key, value) in [("cc_max_flavor", "XXL"), ("cc_default_flavor", "NOPE")] {
        let config = config_with(&e, &format!("{key}.toml"), |r| {
            r.insert(key.into(), value.into());
        });
        let (code, stdout, stderr) = run(&["run", &config.display().to_string()]);
        assert_eq!(code, Some(2), "{key}: stdout {stdout}\nstderr {stderr}");
        assert!(
            stderr.contains(&format!("`runners[0].{key}`")),
            "{key}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("\"{value}\"")),
            "{key}: value not named: {stderr}"
        );
        assert!(
            stderr.contains("available"),
            "{key}: expected values not named: {stderr}"
        );
    }
}

#[test]
fn preflight_retries_a_transient_flavor_listing_failure() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(common::options(), &[]);
    e.world.clever().control().fault(FaultCommand::FailNext {
        endpoint: CleverEndpoint::ProductsFlavors,
        count: 8,
        fault: FaultKind::status(503),
    });
    let (code, stdout, stderr) = run(&["run", &config.display().to_string(), "--poll-cycles", "1"]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(stderr.contains("503"), "the outage is not logged: {stderr}");
}

#[test]
fn preflight_refuses_a_local_docker_runner_without_engine_or_cli() {
    let e = E2e::start(WorldConfig::default());
    let local = |host: &str| {
        let host = host.to_owned();
        move |r: &mut toml::Table| {
            r.retain(|k, _| !k.starts_with("cc_"));
            r.insert("executor".into(), "local-docker".into());
            r.insert("host".into(), host.into());
        }
    };
    let socket = e.dir.path().join("no-engine.sock");
    let host = format!("unix://{}", socket.display());
    let config = config_with(&e, "local.toml", local(&host));
    let (code, stdout, stderr) = run(&["run", &config.display().to_string()]);
    assert_eq!(code, Some(2), "stdout {stdout}\nstderr {stderr}");
    assert!(stderr.contains("`runners[0].host`"), "{stderr}");
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");

    // The socket exists, but no `docker` command line is in PATH.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let out = std::process::Command::new(common::BIN)
        .args(["run", &config.display().to_string()])
        .env("PATH", e.dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`runners[0].executor`"), "{stderr}");
    assert!(
        stderr.contains("`docker` command line is not installed"),
        "{stderr}"
    );
}

#[test]
fn an_unwritable_state_directory_exits_2_naming_state_file() {
    let e = E2e::start(WorldConfig::default());
    // A file where the directory should be: no state can be written there.
    let not_a_dir = e.dir.path().join("not-a-dir");
    std::fs::write(&not_a_dir, "").expect("write");
    let config = e.write_config(
        common::options(),
        &[(
            "state_file",
            not_a_dir.join("state.json").display().to_string().into(),
        )],
    );
    let (code, stdout, stderr) = run(&["run", &config.display().to_string()]);
    assert_eq!(code, Some(2), "stdout {stdout}\nstderr {stderr}");
    assert!(stderr.contains("`state_file`"), "{stderr}");
    assert!(stderr.contains("is not a directory"), "{stderr}");
}

/// Runs `register CONFIG --non-interactive` with `args` and `env`.
fn register_with_env(
    config: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.arg("register")
        .arg(config)
        .args(args)
        .arg("--non-interactive")
        .stdin(std::process::Stdio::null());
    for var in [
        "CI_SERVER_URL",
        "REGISTRATION_TOKEN",
        "CI_SERVER_TOKEN",
        "RUNNER_NAME",
        "RUNNER_EXECUTOR",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn register_reads_gitlab_runner_variables_and_a_token_file_and_refuses_a_duplicate() {
    let token = "glrt-t1_registerEnvToken0123";
    let coord = FakeCoordinator::start(CoordinatorConfig {
        runner_tokens: vec![token.to_owned()],
        ..CoordinatorConfig::default()
    })
    .expect("coordinator");
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "concurrent = 2\n").expect("write");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).expect("write");
    let url = coord.url();
    let token_file_arg = token_file.display().to_string();
    let env = [
        ("CI_SERVER_URL", url.as_str()),
        ("RUNNER_NAME", "from-env"),
        ("RUNNER_EXECUTOR", "clever-docker"),
    ];
    let (code, stdout, stderr) =
        register_with_env(&config, &["--token-file", &token_file_arg], &env);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    let text = std::fs::read_to_string(&config).expect("read");
    let parsed: toml::Table = toml::from_str(&text).expect("TOML");
    let section = &parsed["runners"][0];
    assert_eq!(section["name"].as_str(), Some("from-env"));
    assert_eq!(section["url"].as_str(), Some(url.as_str()));
    assert_eq!(section["token"].as_str(), Some(token));
    // World-readable file: said so; a glrt- runner is not paused.
    assert!(stderr.contains("mode 0644"), "{stderr}");
    assert!(!stdout.contains("unpause"), "{stdout}");
    assert!(!stdout.contains(token) && !stderr.contains(token));

    // The same token again: refused, nothing written.
    let (code, stdout, stderr) =
        register_with_env(&config, &["--token-file", &token_file_arg], &env);
    assert_eq!(code, Some(2), "stdout {stdout}\nstderr {stderr}");
    assert!(stderr.contains("already uses this token"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&config).expect("read"), text);

    // A bad URL: one message.
    let (code, stdout, stderr) = register_with_env(
        &config,
        &["--token-file", &token_file_arg],
        &[
            ("CI_SERVER_URL", "not a url"),
            ("RUNNER_NAME", "x"),
            ("RUNNER_EXECUTOR", "clever-docker"),
        ],
    );
    assert_eq!(code, Some(2), "stdout {stdout}\nstderr {stderr}");
    let mentions = format!("{stdout}{stderr}").matches("not a URL").count();
    assert_eq!(mentions, 1, "stdout {stdout}\nstderr {stderr}");
}

/// `check` refuses a multi-tenant runner forwarding a value of the secrets
/// file to every tenant, naming the key and never the value; the opt-in
/// makes the same file valid.
#[test]
fn check_refuses_a_forwarded_secret_in_multi_tenant_mode_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("secrets.toml"),
        "ENV = \"DEPLOY_KEY=hunter2-value\"\nRUNNER = \"glrt-abcdefghijklmnop\"\n",
    )
    .expect("secrets");
    let config = |opt_in: &str| {
        format!(
            "secrets_file = \"secrets.toml\"\nstate_file = \"{}\"\n\n[quota_computation]\n\
             reference_runner = \"r1\"\nreference_flavor = \"M\"\nreference_jobs_count = 4\n\n\
             [[runners]]\n\
             name = \"r1\"\nurl = \"https://gitlab.example\"\ntoken = \"secret:RUNNER\"\n\
             executor = \"clever-docker\"\ncc_multi_tenant = true\n\
             cc_gitlab_namespace_attributes_token = \"attrs\"\n{opt_in}\
             environment = [\"A=plain\", \"secret:ENV\"]\n\
             [runners.cc_extra_env]\nCC_ENABLE_HEPTAPOD_RUNNER = \"true\"\n",
            dir.path().join("state.json").display()
        )
    };
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config("")).expect("config");
    let (code, stdout, stderr) = run(&["check", &path.display().to_string()]);
    assert_eq!(code, Some(2), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("(1 problem)"), "{stdout}");
    assert!(stdout.contains("`runners[0].environment[1]`"), "{stdout}");
    assert!(
        stdout.contains("cc_multi_tenant_forward_secrets = true"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"));

    std::fs::write(&path, config("cc_multi_tenant_forward_secrets = true\n")).expect("config");
    let (code, stdout, stderr) = run(&["check", &path.display().to_string()]);
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
}
