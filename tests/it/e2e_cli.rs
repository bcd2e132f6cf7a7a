//! End to end, the command line of the real binary: `register` against the
//! fake coordinator (legacy registration token, `glrt-` authentication
//! token, new and existing files, refused registration), `run` refusing
//! bad configurations with exit code 2 and the key named, `--version`
//! naming the git revision, and `generate-cli-docs` writing the man page and
//! completions.

use crate::common;

use common::{assert_no_secret, options, run_to_end, E2e};
use paas_sim::coordinator::{CoordinatorConfig, FakeCoordinator, TokenStyle};
use paas_sim::world::WorldConfig;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use toml::{Table, Value};

const LIMIT: Duration = Duration::from_secs(20);

fn register(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all: Vec<&OsStr> = vec![OsStr::new("register"), config.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    all.push(OsStr::new("--non-interactive"));
    run_to_end(&all, LIMIT)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn register_legacy_token_creates_a_private_file() {
    let reg_token = "GR1348941e2eRegistrationTok";
    let coord = FakeCoordinator::start(CoordinatorConfig {
        registration_tokens: vec![(reg_token.to_owned(), TokenStyle::Glrtr)],
        ..CoordinatorConfig::default()
    })
    .expect("coordinator");
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("new.toml");
    let state = dir.path().join("state.json");
    let url = coord.url();
    let state_arg = state.display().to_string();
    let (code, stdout, stderr) = register(
        &config,
        &[
            "--name",
            "e2e-legacy",
            "-c",
            &url,
            "-t",
            reg_token,
            "-e",
            "clever-docker",
            "--max-concurrency",
            "7",
            "--state-file-path",
            &state_arg,
        ],
    );
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    // The runner now exists at the coordinator, created paused.
    let runners = coord.runners();
    assert_eq!(runners.len(), 1, "{runners:?}");
    let created = runners.first().expect("runner");
    assert!(created.paused, "{created:?}");
    assert!(created.token.starts_with("glrtr-"), "token style");

    assert_eq!(mode(&config), 0o600);
    let text = std::fs::read_to_string(&config).expect("read");
    let parsed: toml::Table = toml::from_str(&text).expect("valid TOML");
    assert_eq!(parsed["state_file"].as_str(), Some(state_arg.as_str()));
    assert_eq!(parsed["concurrent"].as_integer(), Some(7));
    let section = &parsed["runners"][0];
    assert_eq!(section["name"].as_str(), Some("e2e-legacy"));
    assert_eq!(section["url"].as_str(), Some(url.as_str()));
    assert_eq!(section["token"].as_str(), Some(created.token.as_str()));
    assert_eq!(section["executor"].as_str(), Some("clever-docker"));
    // What is left to do is said, and no token is printed.
    assert!(stdout.contains("[quota_computation]"), "{stdout}");
    assert!(stdout.contains("cc_token"), "{stdout}");
    for out in [&stdout, &stderr] {
        assert!(!out.contains(reg_token), "registration token printed");
        assert!(!out.contains(&created.token), "runner token printed");
    }
}

#[test]
fn register_glrt_token_appends_to_an_existing_file_byte_for_byte() {
    let token = "glrt-e2eAuthToken0123456789";
    let coord = FakeCoordinator::start(CoordinatorConfig {
        runner_tokens: vec![token.to_owned()],
        ..CoordinatorConfig::default()
    })
    .expect("coordinator");
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("existing.toml");
    // Comments, odd spacing, no final newline: all must survive.
    let original = "# my runner config\nstate_file = \"/srv/state.json\"   # kept\n\
                    concurrent = 3\n\n[quota_computation]\nreference_runner = \"x\" \
                    # inline\nreference_flavor = \"M\"\nreference_jobs_count = 2";
    std::fs::write(&config, original).expect("write");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let url = coord.url();
    let (code, stdout, stderr) = register(
        &config,
        &[
            "--name",
            "e2e-glrt",
            "-c",
            &url,
            "--token",
            token,
            "-e",
            "clever-docker",
        ],
    );
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    // Verified, not registered: no new runner at the coordinator, one verify call.
    assert_eq!(coord.runners().len(), 1);
    assert!(
        coord
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/runners/verify")),
        "no verify call"
    );
    let after = std::fs::read(&config).expect("read");
    assert!(
        after.starts_with(original.as_bytes()),
        "existing content changed:\n{}",
        String::from_utf8_lossy(&after)
    );
    assert_eq!(mode(&config), 0o640, "existing mode kept");
    let text = String::from_utf8(after).expect("utf8");
    let parsed: toml::Table = toml::from_str(&text).expect("still valid TOML");
    let section = &parsed["runners"][0];
    assert_eq!(section["token"].as_str(), Some(token));
    assert_eq!(section["name"].as_str(), Some("e2e-glrt"));
    assert!(section.get("token_obtained_at").is_some(), "{text}");
    assert!(!stdout.contains(token) && !stderr.contains(token));
}

#[test]
fn refused_registration_exits_1_with_the_coordinators_message() {
    let coord = FakeCoordinator::start(CoordinatorConfig::default()).expect("coordinator");
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "concurrent = 1\n").expect("write");
    let url = coord.url();
    for args in [
        vec!["-t", "GR1348941unknownRegToken"],
        vec!["--token", "glrt-unknownAuthToken0000"],
    ] {
        let mut all = vec!["--name", "nope", "-c", &url, "-e", "clever-docker"];
        all.extend(args.iter().copied());
        let (code, stdout, stderr) = register(&config, &all);
        assert_eq!(
            code,
            Some(1),
            "{args:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        assert!(stderr.contains("403 Forbidden"), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("unknownRegToken") && !stderr.contains("unknownAuthToken"),
            "token in the error: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&config).expect("read"),
        "concurrent = 1\n",
        "file touched by a failed registration"
    );
    assert!(coord.runners().is_empty());
}

/// The world's configuration (valid), as a table each case breaks.
fn base(e: &E2e) -> Table {
    e.world
        .runner_config_table(&e.state_file(), &options())
        .expect("config table")
}

fn first_runner(t: &mut Table) -> &mut Table {
    t.get_mut("runners")
        .and_then(Value::as_array_mut)
        .and_then(|a| a.first_mut())
        .and_then(Value::as_table_mut)
        .expect("a [[runners]] section")
}

fn quota(t: &mut Table) -> &mut Table {
    t.get_mut("quota_computation")
        .and_then(Value::as_table_mut)
        .expect("[quota_computation]")
}

#[test]
fn bad_configurations_exit_2_naming_the_key() {
    let e = E2e::start(WorldConfig::default());
    type Break = fn(&mut Table);
    let cases: [(&str, Break, &str); 6] = [
        (
            "no quota",
            |t| drop(t.remove("quota_computation")),
            "quota_computation",
        ),
        (
            "unknown executor",
            |t| drop(first_runner(t).insert("executor".into(), "shell".into())),
            "executor",
        ),
        (
            "no cc_token",
            |t| drop(first_runner(t).remove("cc_token")),
            "cc_token",
        ),
        (
            "no state file",
            |t| drop(t.remove("state_file")),
            "state_file",
        ),
        (
            // The quota (XS × 1) is below the largest flavor the runner may
            // have to host (L): it could never poll.
            "quota below max flavor",
            |t| {
                quota(t).insert("reference_flavor".into(), "XS".into());
                quota(t).insert("reference_jobs_count".into(), Value::Integer(1));
            },
            "cc_max_flavor",
        ),
        (
            "unknown reference flavor",
            |t| drop(quota(t).insert("reference_flavor".into(), "NOPE".into())),
            "reference_flavor",
        ),
    ];
    for (i, (what, breaks, key)) in cases.iter().enumerate() {
        let mut table = base(&e);
        breaks(&mut table);
        let path = e.dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, toml::to_string(&table).expect("TOML")).expect("write");
        let (code, stdout, stderr) = run_to_end(&[OsStr::new("run"), path.as_os_str()], LIMIT);
        assert_eq!(code, Some(2), "{what}: stdout {stdout}\nstderr {stderr}");
        assert!(
            stderr.lines().any(|l| l.contains(key)),
            "{what}: key {key} not named on stderr:\n{stderr}"
        );
        assert!(
            !stderr.lines().any(|l| l.contains(key) && l.contains("   ")),
            "{what}: message with a run of spaces:\n{stderr}"
        );
        assert_no_secret(&e.world, &stderr, &[]);
    }
    // The base configuration itself is valid: a single polling cycle runs.
    let path = e.dir.path().join("good.toml");
    std::fs::write(&path, toml::to_string(&base(&e)).expect("TOML")).expect("write");
    let (code, _, stderr) = run_to_end(
        &[
            OsStr::new("run"),
            path.as_os_str(),
            OsStr::new("--poll-cycles"),
            OsStr::new("1"),
        ],
        LIMIT,
    );
    assert_eq!(code, Some(0), "valid base config: {stderr}");
}

/// The revision git gives for this checkout, "unknown" outside one (what
/// build.rs embeds).
fn checkout_revision() -> String {
    std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[test]
fn version_names_the_git_revision_and_the_build_date() {
    let (code, out, _) = run_to_end(&[OsStr::new("--version")], LIMIT);
    assert_eq!(code, Some(0));
    let line = out.trim();
    let expected_start = format!(
        "heptapod-paas-runner {} (revision {}, built ",
        env!("CARGO_PKG_VERSION"),
        checkout_revision()
    );
    assert!(line.starts_with(&expected_start), "{line:?}");
    let date = line
        .strip_prefix(&expected_start)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_default();
    let digits: Vec<bool> = date.chars().map(|c| c.is_ascii_digit()).collect();
    assert_eq!(date.len(), 10, "{date:?}");
    assert_eq!(
        digits,
        [true, true, true, true, false, true, true, false, true, true],
        "{date:?}"
    );
}

#[test]
fn generate_cli_docs_writes_the_man_page_and_three_completions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("docs");
    let (code, out, err) = run_to_end(
        &[OsStr::new("generate-cli-docs"), out_dir.as_os_str()],
        LIMIT,
    );
    assert_eq!(code, Some(0), "{err}");
    let mut listed: Vec<&str> = out.lines().collect();
    listed.sort_unstable();
    let mut expected: Vec<String> = [
        "_heptapod-paas-runner",
        "heptapod-paas-runner.1",
        "heptapod-paas-runner.bash",
        "heptapod-paas-runner.fish",
    ]
    .iter()
    .map(|name| out_dir.join(name).display().to_string())
    .collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    let man = std::fs::read_to_string(out_dir.join("heptapod-paas-runner.1")).expect("man page");
    assert!(man.starts_with(".TH HEPTAPOD\\-PAAS\\-RUNNER 1 "), "{man}");
    assert!(
        man.contains(&checkout_revision()),
        "the version line names the revision"
    );
    // Hidden from --help, and from what it writes.
    let (_, help, _) = run_to_end(&[OsStr::new("--help")], LIMIT);
    assert!(help.contains("register") && !help.contains("generate-cli-docs"));
    assert!(!man.contains("generate\\-cli\\-docs"));
}
