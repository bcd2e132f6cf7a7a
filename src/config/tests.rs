//! Table-driven tests of the configuration layer: seed examples, defaults,
//! forwarding to the inner runner.toml, secrets, aliases, every error path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::validate::Env;
use super::*;

const SEED_SINGLE: &str = include_str!("testdata/seed_single_org.toml");
const SEED_MULTI: &str = include_str!("testdata/seed_multi_tenant.toml");

fn path() -> PathBuf {
    PathBuf::from("/etc/heptapod-runner/config.toml")
}

fn no_env() -> Env {
    Env { docker_host: None }
}

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    parse_with_env(text, &path(), &no_env())
}

fn ok(text: &str) -> Loaded {
    match parse(text) {
        Ok(l) => l,
        Err(e) => panic!("expected a valid config, got: {e}\n--- config:\n{text}"),
    }
}

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(l) => panic!("expected an error, got {:?}\n--- config:\n{text}", l.config),
        Err(e) => e,
    }
}

const QUOTA: &str = r#"
[quota_computation]
reference_runner = "r1"
reference_flavor = "M"
reference_jobs_count = 4
"#;

/// A complete single-organisation clever-docker runner section body.
const CLEVER: &str = r#"
name = "r1"
url = "https://gitlab.example"
token = "glrt-abcdefgh"
executor = "clever-docker"
cc_orga_id = "orga_x"
cc_token = "cc-secret-token"
"#;

const EXTRA_ENV: &str = "\n[runners.cc_extra_env]\nCC_ENABLE_HEPTAPOD_RUNNER = \"true\"\n";

/// Global lines + quota + one runner with `runner` as its body.
fn with_runner(global: &str, runner: &str) -> String {
    format!("{global}\n{QUOTA}\n[[runners]]\n{runner}\n")
}

/// Global lines + quota + the standard clever runner with `extra` appended.
fn clever(global: &str, extra: &str) -> String {
    with_runner(global, &format!("{CLEVER}{extra}{EXTRA_ENV}"))
}

fn runner(l: &Loaded) -> &RunnerConfig {
    l.config.runners.first().expect("one runner")
}

fn clever_of(l: &Loaded) -> &CleverSettings {
    runner(l).clever.as_ref().expect("clever settings")
}

// ---------------------------------------------------------------- seeds

#[test]
fn seed_single_org_example_parses() {
    let l = ok(SEED_SINGLE);
    let c = &l.config;
    assert_eq!(
        c.state_file.as_deref(),
        Some(Path::new("/srv/heptapod-runner/paas-runner-state.json"))
    );
    assert_eq!(
        c.quota_computation,
        QuotaComputation {
            reference_runner: "clever-cloud".into(),
            reference_flavor: "3XL".into(),
            reference_jobs_count: 8,
        }
    );
    assert_eq!(c.settings.allowed_fraction_per_runner, 1.0);
    let r = runner(&l);
    assert_eq!(r.name, "clever-cloud");
    assert_eq!(r.url, "https://heptapod.example.com");
    assert_eq!(r.token.expose(), "D3adNQYu8OCjkYDbwDaG");
    assert_eq!(r.unique_name, "D3adNQYu");
    assert_eq!(r.executor, ExecutorKind::CleverDocker);
    let cc = clever_of(&l);
    assert_eq!(
        cc.tenancy,
        Tenancy::Single {
            orga_id: "orga_07cf2ef0-c9ad-4f04-b492-94c164f95c76".into(),
            token: crate::secret::Secret::new("bb52e490-d47e-47a4-b190-73e23eb17111"),
        }
    );
    assert_eq!(
        cc.extra_env
            .get("CC_ENABLE_HEPTAPOD_RUNNER")
            .map(String::as_str),
        Some("true")
    );
    assert!(l.warnings.is_empty(), "warnings: {:?}", l.warnings);
}

#[test]
fn seed_multi_tenant_example_parses() {
    let l = ok(SEED_MULTI);
    let cc = clever_of(&l);
    assert_eq!(
        cc.tenancy,
        Tenancy::Multi {
            attributes_token: crate::secret::Secret::new("D7aY5I5SygxA5oyZ11vB"),
            orga_id_attribute: "cc_orga_id".into(),
            orga_token_attribute: "cc_orga_token".into(),
        }
    );
    assert!(l.warnings.is_empty(), "warnings: {:?}", l.warnings);
}

#[test]
fn defaults_apply() {
    let l = ok(&clever("", ""));
    let c = &l.config;
    assert_eq!(c.settings.concurrent, 50);
    assert_eq!(c.settings.check_interval, Duration::from_secs(3));
    assert_eq!(
        c.settings.job_progress_poll_interval,
        Duration::from_secs(30)
    );
    assert_eq!(c.state_file, None);
    assert_eq!(c.settings.max_concurrent_provisioning, 10);
    assert!(!c.settings.keep_finished_resources);
    assert!(c.settings.decommission_launch_failures);
    assert!(c.settings.repoll_immediately);
    assert_eq!(c.listen_address, None);
    assert_eq!(
        c.settings.reconcile_interval,
        Some(Duration::from_secs(300))
    );
    assert_eq!(c.path, path());
    let r = runner(&l);
    assert_eq!(r.settings.quota_max_fraction, 1.0);
    assert!(
        !r.settings.long_polling,
        "long polling is off unless asked for"
    );
    assert_eq!(r.main_image, None);
    assert!(r.trace_watch_token.is_none());
    assert!(r.settings.trace_watch.is_none());
    assert!(r.local_docker.is_none());
    let cc = clever_of(&l);
    assert_eq!(cc.api_url, "https://api.clever-cloud.com/v2");
    assert_eq!(cc.zone, "par");
    assert_eq!(cc.default_flavor, "M");
    assert_eq!(cc.max_flavor, None);
    assert_eq!(cc.deployment_repo_timeout, Duration::from_secs(20));
    assert_eq!(cc.deployment_repo_wait_step, Duration::from_secs(2));
    assert_eq!(cc.auth_user, "Jenkins");
    assert_eq!(cc.flavor_context, "heptapod-runner");
    assert_eq!(cc.flavor_name_prefix, "heptapod-runner-");
    assert_eq!(
        cc.instance_variant_uuid,
        "70d676a0-a775-4dc9-a43d-3121036e8515"
    );
}

#[test]
fn explicit_values_are_read() {
    let global = r#"
concurrent = 7
check_interval = 5
job_progress_poll_interval = 1.5
paas_max_concurrent_provisioning = 3
paas_finished_jobs_keep_resources = true
paas_decommission_launch_failures = false
paas_repoll_same_runner_immediately = false
listen_address = "127.0.0.1:9252"
reconcile_interval = 42.5
"#;
    let extra = r#"
cc_api_url = "http://127.0.0.1:8000/v2"
cc_zone = "rbx"
cc_default_flavor = "S"
cc_max_flavor = "XL"
cc_deployment_repo_timeout = 40
cc_deployment_repo_wait_step = 0.5
cc_auth_user = "bob"
cc_flavor_context = "jenkins"
cc_instance_variant_uuid = "u-1"
heptapod_runner_main_image = "octobus/heptapod-runner:1"
quota_max_fraction = 0.5
paas_long_polling = true
[runners.paas_job_trace_watch]
token = "admin-token"
timeout_seconds = 60
poll_step = 2
"#;
    let l = ok(&clever(global, extra));
    let c = &l.config;
    assert_eq!(c.settings.concurrent, 7);
    assert_eq!(c.settings.check_interval, Duration::from_secs(5));
    assert_eq!(
        c.settings.job_progress_poll_interval,
        Duration::from_millis(1500)
    );
    assert_eq!(c.settings.max_concurrent_provisioning, 3);
    assert!(c.settings.keep_finished_resources);
    assert!(!c.settings.decommission_launch_failures);
    assert!(!c.settings.repoll_immediately);
    assert_eq!(
        c.listen_address
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("127.0.0.1:9252")
    );
    assert_eq!(
        c.settings.reconcile_interval,
        Some(Duration::from_millis(42_500))
    );
    let r = runner(&l);
    assert_eq!(r.main_image.as_deref(), Some("octobus/heptapod-runner:1"));
    assert_eq!(r.settings.quota_max_fraction, 0.5);
    assert!(r.settings.long_polling);
    let token = r.trace_watch_token.as_ref().expect("trace watch token");
    assert_eq!(token.expose(), "admin-token");
    let tw = r.settings.trace_watch.as_ref().expect("trace watch");
    assert_eq!(tw.timeout, Duration::from_secs(60));
    assert_eq!(tw.poll_step, Duration::from_secs(2));
    let cc = clever_of(&l);
    assert_eq!(cc.api_url, "http://127.0.0.1:8000/v2");
    assert_eq!(cc.zone, "rbx");
    assert_eq!(cc.default_flavor, "S");
    assert_eq!(cc.max_flavor.as_deref(), Some("XL"));
    assert_eq!(cc.deployment_repo_timeout, Duration::from_secs(40));
    assert_eq!(cc.deployment_repo_wait_step, Duration::from_millis(500));
    assert_eq!(cc.auth_user, "bob");
    assert_eq!(cc.flavor_context, "jenkins");
    assert_eq!(cc.flavor_name_prefix, "jenkins-");
    assert_eq!(cc.instance_variant_uuid, "u-1");
}

#[test]
fn check_interval_zero_means_three_seconds() {
    let l = ok(&clever("check_interval = 0", ""));
    assert_eq!(l.config.settings.check_interval, Duration::from_secs(3));
}

#[test]
fn extra_env_scalars_become_strings_in_key_order() {
    let text = with_runner(
        "",
        &format!("{CLEVER}\n[runners.cc_extra_env]\nZ = 1\nCC_ENABLE_HEPTAPOD_RUNNER = true\nA = \"x\"\n"),
    );
    let l = ok(&text);
    let env: Vec<(&str, &str)> = clever_of(&l)
        .extra_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        vec![
            ("A", "x"),
            ("CC_ENABLE_HEPTAPOD_RUNNER", "true"),
            ("Z", "1")
        ]
    );
}

// ---------------------------------------------------------------- forwarding

const FORWARDING_RUNNER: &str = r#"
name = "r1"
url = "https://gitlab.example/prefix"
id = 42
token = "glrt-abcdefgh"
token_obtained_at = 2024-05-06T07:08:09Z
token_expires_at = 0001-01-01T00:00:00Z
executor = "clever-docker"
cc_orga_id = "orga_x"
cc_token = "cc-secret-token"
cc_some_future_key = "hidden"
heptapod_runner_main_image = "img"
host = "unix:///nowhere.sock"
quota_max_fraction = 0.5
local_docker_network_mode = "host"
environment = ["A=1", "B=2"]
output_limit = 8192
unknown_upstream_key = { nested = [1, 2, 3] }
[runners.paas_job_trace_watch]
token = "admin"
[runners.cc_extra_env]
CC_ENABLE_HEPTAPOD_RUNNER = "true"
[runners.custom_build_dir]
[runners.feature_flags]
FF_USE_FASTZIP = true
[runners.cache]
Type = "s3"
Shared = true
[runners.cache.s3]
ServerAddress = "cellar.example"
AccessKey = "ak"
SecretKey = "sk"
[runners.cache.gcs]
[runners.docker]
image = "debian:bullseye"
privileged = false
volumes = ["/cache", "/var/run/docker.sock:/var/run/docker.sock"]
shm_size = 0
memory_swappiness = 60
cpus = "1.5"
dns = ["1.1.1.1", "9.9.9.9"]
pull_policy = ["always", "if-not-present"]
"#;

#[test]
fn inner_config_keeps_forwarded_keys_verbatim_and_drops_excluded_ones() {
    let l = ok(&with_runner(
        "concurrent = 3\nstate_file = \"s.json\"",
        FORWARDING_RUNNER,
    ));
    let r = runner(&l);
    let text = r.inner_runner_toml();
    let inner: toml::Table = text.parse().expect("inner config is valid TOML");

    // Only `runners`, with exactly one table.
    assert_eq!(inner.keys().collect::<Vec<_>>(), vec!["runners"]);
    let runners = inner["runners"].as_array().expect("array");
    assert_eq!(runners.len(), 1);
    let got = runners[0].as_table().expect("table");

    assert_eq!(got["executor"].as_str(), Some("docker"));
    for key in got.keys() {
        assert!(!key.starts_with("cc_"), "{key} forwarded");
        assert!(
            !super::inner::INNER_EXCLUDED_KEYS.contains(&key.as_str()),
            "{key} forwarded"
        );
    }

    // Everything else identical, types and order included.
    let raw: toml::Table = text_of_runner(FORWARDING_RUNNER);
    let expected: Vec<(&String, &toml::Value)> =
        raw.iter().filter(|(k, _)| is_forwarded(k)).collect();
    let got_pairs: Vec<(&String, &toml::Value)> = got.iter().collect();
    let mut expected_fixed = expected.clone();
    let docker_exec = toml::Value::String("docker".into());
    let placeholder = toml::Value::String(inner::token_placeholder(r.token.expose()));
    for pair in expected_fixed.iter_mut() {
        if pair.0 == "executor" {
            pair.1 = &docker_exec;
        }
        if pair.0 == "token" {
            pair.1 = &placeholder;
        }
    }
    assert_eq!(got_pairs, expected_fixed);

    // Spot checks of the documented forwarding examples.
    assert_eq!(got["docker"], raw["docker"]);
    assert_eq!(got["docker"]["shm_size"].as_integer(), Some(0));
    assert!(got["token_obtained_at"].is_datetime());
    assert_eq!(got["custom_build_dir"].as_table().map(|t| t.len()), Some(0));
    assert_eq!(got["cache"]["gcs"].as_table().map(|t| t.len()), Some(0));
    assert!(text.contains("[runners.custom_build_dir]"), "{text}");
    assert!(
        text.contains("token_obtained_at = 2024-05-06T07:08:09Z"),
        "{text}"
    );
    assert!(
        !text.contains("cc-secret-token") && !text.contains("admin"),
        "{text}"
    );
    assert!(
        !text.contains("concurrent") && !text.contains("state_file"),
        "{text}"
    );
}

/// The runner table as the TOML parser reads it on its own.
fn text_of_runner(body: &str) -> toml::Table {
    let doc: toml::Table = format!("[[runners]]\n{body}").parse().unwrap();
    doc["runners"][0].as_table().unwrap().clone()
}

#[test]
fn seed_inner_config_round_trips_docker_table() {
    let l = ok(SEED_SINGLE);
    let inner: toml::Table = runner(&l).inner_runner_toml().parse().unwrap();
    let seed: toml::Table = SEED_SINGLE.parse().unwrap();
    let got = &inner["runners"][0];
    assert_eq!(got["docker"], seed["runners"][0]["docker"]);
    assert_eq!(got["cache"], seed["runners"][0]["cache"]);
    assert!(got.get("cc_extra_env").is_none());
    assert!(got.get("cc_token").is_none());
}

#[test]
fn forwarding_predicate() {
    let cases = [
        ("token", true),
        ("docker", true),
        ("executor", true),
        ("cc_token", false),
        ("cc_", false),
        ("paas_job_trace_watch", false),
        ("job_trace_watch", false),
        ("heptapod_runner_main_image", false),
        ("host", false),
        ("quota_max_fraction", false),
        ("local_docker_network_mode", false),
        ("paas_long_polling", false),
    ];
    for (key, want) in cases {
        assert_eq!(is_forwarded(key), want, "{key}");
    }
}

// ---------------------------------------------------------------- secrets

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn secrets_are_substituted_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "secrets.toml",
        "RUNNER = \"glrt-from-secrets\"\nCC = \"cc-from-secrets\"\nS3 = \"s3-key\"\nVOL = \"/data\"\n",
    );
    let runner = r#"
name = "r1"
url = "https://gitlab.example"
token = "secret:RUNNER"
executor = "clever-docker"
cc_orga_id = "orga_x"
cc_token = "secret:CC"
[runners.cc_extra_env]
CC_ENABLE_HEPTAPOD_RUNNER = "true"
[runners.cache.s3]
SecretKey = "secret:S3"
[runners.docker]
volumes = ["/cache", "secret:VOL"]
"#;
    let text = with_runner("secrets_file = \"secrets.toml\"", runner);
    let cfg = write(dir.path(), "config.toml", &text);
    let l = load(&cfg).expect("valid");
    let r = runner_of(&l);
    assert_eq!(r.token.expose(), "glrt-from-secrets");
    assert_eq!(r.unique_name, "from-secr");
    assert_eq!(r.legacy_unique_name.as_deref(), Some("glrt-fro"));
    let cc = r.clever.as_ref().unwrap();
    assert_eq!(cc.unique_name, "from-secr");
    assert_eq!(cc.legacy_unique_name.as_deref(), Some("glrt-fro"));
    match &r.clever.as_ref().unwrap().tenancy {
        Tenancy::Single { token, .. } => assert_eq!(token.expose(), "cc-from-secrets"),
        other => panic!("{other:?}"),
    }
    let inner: toml::Table = r.inner_runner_toml().parse().unwrap();
    assert_eq!(
        inner["runners"][0]["cache"]["s3"]["SecretKey"].as_str(),
        Some("s3-key")
    );
    assert_eq!(
        inner["runners"][0]["docker"]["volumes"],
        toml::Value::Array(vec!["/cache".into(), "/data".into()])
    );
    // The runner token itself is not forwarded (see `inner`).
    assert_eq!(
        inner["runners"][0]["token"].as_str(),
        Some(inner::token_placeholder("glrt-from-secrets").as_str())
    );
}

fn runner_of(l: &Loaded) -> &RunnerConfig {
    runner(l)
}

#[test]
fn secret_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", "A = \"a\"\n");
    write(dir.path(), "typed.toml", "A = \"a\"\nN = 3\n");
    write(dir.path(), "broken.toml", "A = \"unterminated\n");
    let token_ref = CLEVER.replace("\"glrt-abcdefgh\"", "\"secret:MISSING\"");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "undefined secret",
            with_runner(
                "secrets_file = \"good.toml\"",
                &format!("{token_ref}{EXTRA_ENV}"),
            ),
            "runners[0].token",
            "secret `MISSING`, which is not defined in secrets file",
        ),
        (
            "no secrets_file",
            with_runner("", &format!("{token_ref}{EXTRA_ENV}")),
            "runners[0].token",
            "no `secrets_file` is configured",
        ),
        (
            "secrets file missing",
            clever("secrets_file = \"absent.toml\"", ""),
            "secrets_file",
            "cannot read secrets file",
        ),
        (
            "secrets file not a string",
            clever("secrets_file = 3", ""),
            "secrets_file",
            "expected the path of a TOML file of secrets",
        ),
        (
            "non-string secret",
            clever("secrets_file = \"typed.toml\"", ""),
            "secrets_file",
            "secret `N` in",
        ),
        (
            "secrets file not TOML",
            clever("secrets_file = \"broken.toml\"", ""),
            "secrets_file",
            "is not valid TOML at line 1",
        ),
    ];
    for (name, text, key, needle) in cases {
        let cfg = write(dir.path(), "config.toml", &text);
        let e = load(&cfg).expect_err(name);
        assert_problem(&e, key, needle, name);
    }
}

// ---------------------------------------------------------------- aliases

#[test]
fn aliases_are_accepted_with_a_warning() {
    type Check = fn(&Loaded) -> bool;
    let cases: Vec<(&str, String, Check, &str)> = vec![
        (
            "job_progress_interval",
            clever("job_progress_interval = 12", ""),
            |l| l.config.settings.job_progress_poll_interval == Duration::from_secs(12),
            "alias of `job_progress_poll_interval`",
        ),
        (
            "pass_decommision_launched_failures",
            clever("pass_decommision_launched_failures = false", ""),
            |l| !l.config.settings.decommission_launch_failures,
            "alias of `paas_decommission_launch_failures`",
        ),
        (
            "job_trace_watch + timout_seconds",
            clever(
                "",
                "\n[runners.job_trace_watch]\ntoken = \"t\"\ntimout_seconds = 77\n",
            ),
            |l| {
                runner(l).settings.trace_watch.as_ref().is_some_and(|t| {
                    t.timeout == Duration::from_secs(77) && t.poll_step == Duration::from_secs(10)
                })
            },
            "alias of `timeout_seconds`",
        ),
        (
            "paas_job_trace_watch defaults",
            clever("", "\n[runners.paas_job_trace_watch]\ntoken = \"t\"\n"),
            |l| {
                let r = runner(l);
                r.settings.trace_watch.as_ref().is_some_and(|t| {
                    t.timeout == Duration::from_secs(300)
                        && r.trace_watch_token
                            .as_ref()
                            .is_some_and(|t| t.expose() == "t")
                })
            },
            "",
        ),
    ];
    for (name, text, check, warning) in cases {
        let l = ok(&text);
        assert!(check(&l), "{name}: value not applied");
        if warning.is_empty() {
            assert!(l.warnings.is_empty(), "{name}: {:?}", l.warnings);
        } else {
            assert!(
                l.warnings
                    .iter()
                    .any(|w| w.contains(warning) && w.contains("config.toml")),
                "{name}: {:?}",
                l.warnings
            );
        }
    }
}

// ---------------------------------------------------------------- warnings

#[test]
fn warnings_name_key_and_suggest() {
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "typo global",
            clever("concurent = 3", ""),
            &["`concurent`", "line 1", "did you mean `concurrent`?"],
        ),
        ("unknown global", clever("zzzzzzzzzz = 1", ""), &["`zzzzzzzzzz`", "unknown global key"]),
        (
            "top-level trace watch",
            clever("[job_trace_watch]\ntoken = \"x\"\n", ""),
            &["`job_trace_watch`", "per runner"],
        ),
        (
            "cc typo",
            clever("", "cc_zon = \"par\"\n"),
            &["`runners[0].cc_zon`", "did you mean `cc_zone`?"],
        ),
        (
            "quota typo",
            clever("", "").replace("reference_jobs_count = 4", "reference_jobs_count = 4\nreference_flavour = \"M\""),
            &["`quota_computation.reference_flavour`", "did you mean `reference_flavor`?"],
        ),
        (
            "trace watch without token",
            clever("", "\n[runners.paas_job_trace_watch]\npoll_step = 3\n"),
            &["`runners[0].paas_job_trace_watch`", "no `token`"],
        ),
        (
            "multi-tenant ignores cc_token",
            with_runner(
                "",
                "name = \"r1\"\nurl = \"https://g.example\"\ntoken = \"t\"\nexecutor = \"clever-docker\"\ncc_multi_tenant = true\ncc_gitlab_namespace_attributes_token = \"a\"\ncc_token = \"x\"\n[runners.cc_extra_env]\nCC_ENABLE_HEPTAPOD_RUNNER = \"1\"\n",
            ),
            &["`runners[0].cc_token`", "ignored"],
        ),
        (
            "missing CC_ENABLE_HEPTAPOD_RUNNER",
            with_runner("", CLEVER),
            &["`runners[0].cc_extra_env`", "CC_ENABLE_HEPTAPOD_RUNNER"],
        ),
    ];
    let plain_http: Vec<(&str, String, &[&str])> = vec![
        (
            "plain http coordinator",
            clever("", "").replacen("url = \"https://", "url = \"http://", 1),
            &["`runners[0].url`", "http://", "not loopback"],
        ),
        (
            "plain http Clever API",
            clever("", "cc_api_url = \"http://api.example/v2\"\n"),
            &["`runners[0].cc_api_url`", "http://", "not loopback"],
        ),
    ];
    for (name, text, needles) in cases.into_iter().chain(plain_http) {
        let l = ok(&text);
        assert!(
            l.warnings
                .iter()
                .any(|w| needles.iter().all(|n| w.contains(n))),
            "{name}: no warning with {needles:?} in {:?}",
            l.warnings
        );
    }
}

#[test]
fn plain_http_to_loopback_is_silent() {
    let text = clever("", "cc_api_url = \"http://127.0.0.1:8000/v2\"\n").replacen(
        "url = \"https://gitlab.example",
        "url = \"http://localhost:8080",
        1,
    );
    let l = ok(&text);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn upstream_global_keys_are_said_to_be_ignored() {
    let l = ok(&clever(
        "sentry_dsn = \"\"\nlog_level = \"info\"\nlisten_address = \"127.0.0.1:9252\"\n\
         shutdown_timeout = 30\n[session_server]\nsession_timeout = 1800\n",
        "",
    ));
    for key in ["sentry_dsn", "session_server"] {
        assert!(
            l.warnings.iter().any(|w| w.contains(&format!("`{key}`"))
                && w.contains("ignored: not used by heptapod-paas-runner")),
            "{key}: {:?}",
            l.warnings
        );
    }
    // Served by the monitoring endpoints, or read by this program (`log_level`):
    // no warning.
    for key in ["shutdown_timeout", "listen_address", "log_level"] {
        assert!(!l.warnings.iter().any(|w| w.contains(key)), "{key}");
    }
}

#[test]
fn warnings_are_reported_with_the_errors() {
    // `cc_tokn` is a typo: the error (no cc_token) and the hint together.
    let e = err(&clever("", "").replace("cc_token =", "cc_tokn ="));
    let text = e.to_string();
    assert!(text.contains("cc_token"), "{text}");
    assert!(
        text.contains("did you mean `cc_token`"),
        "hint hidden: {text}"
    );
}

#[test]
fn unknown_reference_runner_repeats_the_name() {
    let e = err(&clever("", "").replace("reference_runner = \"r1\"", "reference_runner = \"r9\""));
    assert_problem(
        &e,
        "quota_computation.reference_runner",
        "\"r9\"",
        "name repeated",
    );
}

// ---------------------------------------------------------------- errors

fn assert_problem(e: &ConfigError, key: &str, needle: &str, case: &str) {
    let text = e.to_string();
    assert!(
        e.problems()
            .iter()
            .any(|p| p.key == key && p.message.contains(needle)),
        "{case}: expected a problem on `{key}` containing {needle:?}; got:\n{text}"
    );
    assert!(text.contains(&format!("`{key}`")), "{case}: {text}");
    assert!(
        text.contains("config.toml"),
        "{case}: file not named: {text}"
    );
    assert_eq!(e.exit_code(), 2);
    assert!(e.is_config_error() && !e.is_transient());
}

const LOCAL: &str =
    "name = \"l\"\nurl = \"https://g.example\"\ntoken = \"tok\"\nexecutor = \"local-docker\"\n";

#[test]
fn invalid_configs_name_the_key() {
    let quota_for_l =
        |s: String| s.replace("reference_runner = \"r1\"", "reference_runner = \"l\"");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("no quota", format!("[[runners]]\n{CLEVER}{EXTRA_ENV}"), "quota_computation", "missing"),
        (
            "quota not a table",
            format!("quota_computation = 3\n[[runners]]\n{CLEVER}{EXTRA_ENV}"),
            "quota_computation",
            "expected a table",
        ),
        (
            "unknown reference runner",
            clever("", "").replace("reference_runner = \"r1\"", "reference_runner = \"nope\""),
            "quota_computation.reference_runner",
            "found the string \"nope\", but no [[runners]] section has that name",
        ),
        (
            "missing reference flavor",
            clever("", "").replace("reference_flavor = \"M\"", ""),
            "quota_computation.reference_flavor",
            "missing",
        ),
        (
            "zero jobs count",
            clever("", "").replace("reference_jobs_count = 4", "reference_jobs_count = 0"),
            "quota_computation.reference_jobs_count",
            "expected a positive integer, found the integer 0",
        ),
        (
            "bad allowed fraction",
            clever("", "").replace("reference_jobs_count = 4", "reference_jobs_count = 4\nallowed_fraction_per_runner = 1.5"),
            "quota_computation.allowed_fraction_per_runner",
            "at most 1",
        ),
        ("no runners", QUOTA.to_string(), "runners", "at least one"),
        ("runners not array", format!("runners = 1\n{QUOTA}"), "runners", "expected one or more"),
        ("concurrent string", clever("concurrent = \"50\"", ""), "concurrent", "expected a positive integer, found the string \"50\""),
        ("concurrent negative", clever("concurrent = -1", ""), "concurrent", "found the integer -1"),
        ("check_interval bool", clever("check_interval = true", ""), "check_interval", "found the boolean true"),
        (
            "reconcile interval negative",
            clever("reconcile_interval = -5", ""),
            "reconcile_interval",
            "0 disables the periodic reconciliation",
        ),
        (
            "poll interval zero",
            clever("job_progress_poll_interval = 0", ""),
            "job_progress_poll_interval",
            "positive number of seconds",
        ),
        (
            "both alias spellings",
            clever("job_progress_interval = 1\njob_progress_poll_interval = 2", ""),
            "job_progress_interval",
            "keep only `job_progress_poll_interval`",
        ),
        (
            "both decommission spellings",
            clever("pass_decommision_launched_failures = true\npaas_decommission_launch_failures = true", ""),
            "pass_decommision_launched_failures",
            "keep only",
        ),
        ("state_file int", clever("state_file = 1", ""), "state_file", "non-empty path"),
        ("keep resources string", clever("paas_finished_jobs_keep_resources = \"yes\"", ""), "paas_finished_jobs_keep_resources", "boolean"),
        ("listen_address int", clever("listen_address = 9252", ""), "listen_address", "address"),
        ("listen_address bare IPv6", clever("listen_address = \"::1\"", ""), "listen_address", "needs brackets: `[::1]:9252`"),
        ("listen_address port", clever("listen_address = \"localhost:http\"", ""), "listen_address", "`http` is not a port"),
        (
            "missing name",
            clever("", "").replace("name = \"r1\"\n", ""),
            "runners[0].name",
            "missing",
        ),
        ("missing url", clever("", "").replace("url = \"https://gitlab.example\"\n", ""), "runners[0].url", "missing"),
        ("bad url", clever("", "").replace("https://gitlab.example", "gitlab.example"), "runners[0].url", "http:// or https:// URL"),
        ("missing token", clever("", "").replace("token = \"glrt-abcdefgh\"\n", ""), "runners[0].token", "missing"),
        ("empty token", clever("", "").replace("\"glrt-abcdefgh\"", "\"\""), "runners[0].token", "non-empty string"),
        ("token int", clever("", "").replace("\"glrt-abcdefgh\"", "12"), "runners[0].token", "found the integer 12"),
        ("missing executor", clever("", "").replace("executor = \"clever-docker\"\n", ""), "runners[0].executor", "missing"),
        (
            "unknown executor",
            clever("", "").replace("\"clever-docker\"", "\"kubernetes\""),
            "runners[0].executor",
            "unknown executor: expected \"clever-docker\", \"clever-service-docker\" or \"local-docker\"",
        ),
        ("docker executor", clever("", "").replace("\"clever-docker\"", "\"docker\""), "runners[0].executor", "PAAS executor"),
        ("missing cc_orga_id", clever("", "").replace("cc_orga_id = \"orga_x\"\n", ""), "runners[0].cc_orga_id", "single-organisation"),
        ("missing cc_token", clever("", "").replace("cc_token = \"cc-secret-token\"\n", ""), "runners[0].cc_token", "single-organisation"),
        (
            "multi-tenant without attributes token",
            clever("", "cc_multi_tenant = true\n"),
            "runners[0].cc_gitlab_namespace_attributes_token",
            "cc_multi_tenant = true",
        ),
        ("cc_multi_tenant string", clever("", "cc_multi_tenant = \"yes\"\n"), "runners[0].cc_multi_tenant", "boolean"),
        ("cc_api_url not URL", clever("", "cc_api_url = \"nope\"\n"), "runners[0].cc_api_url", "URL"),
        ("cc_zone empty", clever("", "cc_zone = \"\"\n"), "runners[0].cc_zone", "non-empty string, found an empty string"),
        ("repo timeout string", clever("", "cc_deployment_repo_timeout = \"20\"\n"), "runners[0].cc_deployment_repo_timeout", "seconds"),
        ("repo wait negative", clever("", "cc_deployment_repo_wait_step = -2\n"), "runners[0].cc_deployment_repo_wait_step", "seconds"),
        ("extra env not table", with_runner("", &format!("{CLEVER}cc_extra_env = \"A=1\"\n")), "runners[0].cc_extra_env", "expected a table"),
        (
            "extra env array value",
            with_runner("", &format!("{CLEVER}[runners.cc_extra_env]\nA = [1]\n")),
            "runners[0].cc_extra_env.A",
            "found an array",
        ),
        ("quota_max_fraction zero", clever("", "quota_max_fraction = 0\n"), "runners[0].quota_max_fraction", "greater than 0"),
        ("long polling integer", clever("", "paas_long_polling = 1\n"), "runners[0].paas_long_polling", "expected a boolean (true or false), found the integer 1"),
        ("long polling string", clever("", "paas_long_polling = \"yes\"\n"), "runners[0].paas_long_polling", "expected a boolean (true or false), found the string \"yes\""),
        ("main image int", clever("", "heptapod_runner_main_image = 1\n"), "runners[0].heptapod_runner_main_image", "image name"),
        ("trace watch not table", clever("", "paas_job_trace_watch = \"x\"\n"), "runners[0].paas_job_trace_watch", "expected a table"),
        (
            "both trace watch tables",
            clever("", "[runners.paas_job_trace_watch]\ntoken = \"a\"\n[runners.job_trace_watch]\ntoken = \"b\"\n"),
            "runners[0].job_trace_watch",
            "keep only one",
        ),
        (
            "trace watch timeout string",
            clever("", "[runners.paas_job_trace_watch]\ntoken = \"a\"\ntimeout_seconds = \"300\"\n"),
            "runners[0].paas_job_trace_watch.timeout_seconds",
            "seconds",
        ),
        (
            "both timeout spellings",
            clever("", "[runners.job_trace_watch]\ntoken = \"a\"\ntimeout_seconds = 1\ntimout_seconds = 2\n"),
            "runners[0].job_trace_watch.timout_seconds",
            "keep only `timeout_seconds`",
        ),
        (
            "local docker tcp host",
            quota_for_l(with_runner("", &format!("{LOCAL}host = \"tcp://127.0.0.1:2375\"\n"))),
            "runners[0].host",
            "only unix:// Docker endpoints",
        ),
        (
            "local docker host int",
            quota_for_l(with_runner("", &format!("{LOCAL}host = 2375\n"))),
            "runners[0].host",
            "unix:// URL",
        ),
        (
            "local docker network mode int",
            quota_for_l(with_runner("", &format!("{LOCAL}local_docker_network_mode = 1\n"))),
            "runners[0].local_docker_network_mode",
            "network mode",
        ),
        (
            "runner not a table",
            format!("runners = [1]\n{QUOTA}"),
            "runners[0]",
            "expected a `[[runners]]` table",
        ),
    ];
    for (name, text, key, needle) in cases {
        let e = err(&text);
        assert_problem(&e, key, needle, name);
    }
}

#[test]
fn all_problems_are_reported_at_once_with_lines() {
    let text = "concurrent = \"x\"\n[quota_computation]\nreference_runner = \"r1\"\nreference_flavor = \"M\"\n\n[[runners]]\nname = \"r1\"\nurl = \"https://g.example\"\ntoken = \"tok-secret-value\"\nexecutor = \"clever-docker\"\ncc_zone = 3\n";
    let e = err(text);
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    for key in [
        "concurrent",
        "quota_computation.reference_jobs_count",
        "runners[0].cc_zone",
        "runners[0].cc_orga_id",
        "runners[0].cc_token",
    ] {
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    let find = |k: &str| e.problems().iter().find(|p| p.key == k).unwrap().location;
    assert_eq!(find("concurrent"), Location::Line(1));
    assert_eq!(find("runners[0].cc_zone"), Location::Line(11));
    assert_eq!(
        find("quota_computation.reference_jobs_count"),
        Location::Section(2)
    );
    let msg = e.to_string();
    assert!(msg.contains("(line 11)"), "{msg}");
    assert!(msg.contains("(in the section starting at line 2)"), "{msg}");
    assert!(!msg.contains("tok-secret-value"), "{msg}");
}

#[test]
fn duplicate_unique_names_are_refused() {
    // Same 9 characters after `glrt-`: the same identity.
    let second = CLEVER
        .replace("name = \"r1\"", "name = \"r2\"")
        .replace("glrt-abcdefgh", "glrt-t1_abcdefgh");
    let text = format!("{}\n[[runners]]\n{second}{EXTRA_ENV}", clever("", ""));
    let e = err(&text);
    assert_problem(
        &e,
        "runners[1].token",
        "same unique name `abcdefgh`",
        "duplicate",
    );
    let msg = e.to_string();
    assert!(msg.contains("unique_name = "), "the fix is not said: {msg}");
    assert!(
        !msg.contains("glrt-abcdefgh") && !msg.contains("t1_abcdefgh"),
        "{msg}"
    );

    // Two `glrt-` tokens with the same first 8 characters do not collide.
    let third = second.replace("glrt-t1_abcdefgh", "glrt-abcXYZ");
    let l = ok(&format!(
        "{}\n[[runners]]\n{third}{EXTRA_ENV}",
        clever("", "")
    ));
    assert_eq!(l.config.runners.len(), 2);
    assert_eq!(
        l.config
            .runner_by_unique_name("abcXYZ")
            .map(|r| r.name.as_str()),
        Some("r2")
    );
    // Their shared old identity `glrt-abc` designates neither.
    assert!(l
        .config
        .runners
        .iter()
        .all(|r| r.legacy_unique_name.is_none()));
    // Nor does the Clever executor follow it.
    assert!(l.config.runners.iter().all(|r| r
        .clever
        .as_ref()
        .is_some_and(|c| c.legacy_unique_name.is_none())));

    // An explicit `unique_name` settles a collision, and is checked.
    let named = format!("{second}unique_name = \"second-runner\"\n");
    let l = ok(&format!(
        "{}\n[[runners]]\n{named}{EXTRA_ENV}",
        clever("", "")
    ));
    let r2 = l.config.runner_by_unique_name("second-runner").expect("r2");
    assert_eq!(r2.legacy_unique_name.as_deref(), Some("glrt-t1_"));
    let cc2 = r2.clever.as_ref().expect("clever settings");
    assert_eq!(cc2.unique_name, "second-runner");
    assert_eq!(cc2.legacy_unique_name.as_deref(), Some("glrt-t1_"));
    assert!(!r2.inner_runner_toml().contains("unique_name"));
    let bad = format!("{second}unique_name = \"a b\"\n");
    let e = err(&format!(
        "{}\n[[runners]]\n{bad}{EXTRA_ENV}",
        clever("", "")
    ));
    assert_problem(
        &e,
        "runners[1].unique_name",
        "ASCII letters",
        "bad unique_name",
    );
    let dup = format!("{second}unique_name = \"abcdefgh\"\n");
    let e = err(&format!(
        "{}\n[[runners]]\n{dup}{EXTRA_ENV}",
        clever("", "")
    ));
    assert_problem(
        &e,
        "runners[1].unique_name",
        "same unique name",
        "dup unique_name",
    );
}

#[test]
fn syntax_errors_give_line_and_hide_the_source() {
    let text = "concurrent = 3\ntoken = \"very-secret-unterminated\n";
    let e = err(text);
    match &e {
        ConfigError::Syntax { line, .. } => assert_eq!(*line, Some(2)),
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("config.toml") && msg.contains("line 2"),
        "{msg}"
    );
    assert!(!msg.contains("very-secret"), "{msg}");
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn missing_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("absent.toml");
    let e = load(&p).expect_err("missing");
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("absent.toml"), "{e}");
    assert_eq!(e.exit_code(), 2);
}

// ---------------------------------------------------------------- local docker

#[test]
fn local_docker_host_sources() {
    let base = |extra: &str| {
        with_runner("", &format!("{LOCAL}{extra}"))
            .replace("reference_runner = \"r1\"", "reference_runner = \"l\"")
    };
    let env = |h: Option<&str>| Env {
        docker_host: h.map(str::to_string),
    };
    let cases: Vec<(&str, String, Env, Result<&str, &str>)> = vec![
        (
            "default",
            base(""),
            env(None),
            Ok("unix:///var/run/docker.sock"),
        ),
        (
            "env",
            base(""),
            env(Some("unix:///run/user/1000/docker.sock")),
            Ok("unix:///run/user/1000/docker.sock"),
        ),
        (
            "key wins",
            base("host = \"unix:///a.sock\"\n"),
            env(Some("unix:///b.sock")),
            Ok("unix:///a.sock"),
        ),
        (
            "env tcp",
            base(""),
            env(Some("tcp://1.2.3.4:2375")),
            Err("DOCKER_HOST"),
        ),
        (
            "empty path",
            base("host = \"unix://\"\n"),
            env(None),
            Err("the `host` key"),
        ),
    ];
    for (name, text, env, want) in cases {
        let got = parse_with_env(&text, &path(), &env);
        match (got, want) {
            (Ok(l), Ok(host)) => {
                let ld = runner(&l).local_docker.as_ref().expect(name);
                assert_eq!(ld.host, host, "{name}");
                assert!(runner(&l).clever.is_none());
            }
            (Err(e), Err(needle)) => assert_problem(&e, "runners[0].host", needle, name),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
    let l = parse_with_env(
        &base("local_docker_network_mode = \"host\"\n"),
        &path(),
        &env(None),
    )
    .unwrap();
    let ld = runner(&l).local_docker.as_ref().unwrap();
    assert_eq!(ld.network_mode.as_deref(), Some("host"));
    assert_eq!(
        crate::executors::local_docker::socket_path(&ld.host).unwrap(),
        PathBuf::from("/var/run/docker.sock")
    );
    let inner = runner(&l).inner_runner_toml();
    assert!(!inner.contains("network_mode"), "{inner}");
}

// ---------------------------------------------------------------- misc

#[test]
fn unique_name_takes_eight_characters_of_legacy_tokens() {
    let cases = [
        ("D3adNQYu8OCjkYDbwDaG", "D3adNQYu"),
        ("glrt-t1_abcdefghijk", "abcdefghi"),
        ("short", "short"),
        ("", ""),
        ("éééééééééé", "éééééééé"),
        ("🦀🦀🦀🦀🦀🦀🦀🦀🦀", "🦀🦀🦀🦀🦀🦀🦀🦀"),
        ("ab\u{301}cdefghij", "ab\u{301}cdefg"),
    ];
    for (token, want) in cases {
        assert_eq!(unique_name(token), want, "{token}");
    }
}

#[test]
fn debug_output_hides_secrets() {
    let l = ok(SEED_SINGLE);
    let dbg = format!("{:?}", l.config);
    for secret in [
        "D3adNQYu8OCjkYDbwDaG",
        "bb52e490",
        "v0tdpjgpsDRqa",
        "dEA7gjmYM98",
    ] {
        assert!(!dbg.contains(secret), "{secret} in {dbg}");
    }
    assert!(dbg.contains("raw_keys"));
}

#[test]
fn suggestions() {
    use super::suggest::{closest, levenshtein};
    assert_eq!(levenshtein("kitten", "sitting"), 3);
    assert_eq!(levenshtein("", "abc"), 3);
    assert_eq!(
        closest("check_intervall", &["check_interval", "concurrent"]),
        Some("check_interval")
    );
    assert_eq!(closest("xyz", &["check_interval", "concurrent"]), None);
}

#[test]
fn no_prefix_of_a_valid_file_panics() {
    // Every truncation (on character boundaries) and every single-byte-dropped
    // variant of `testdata/seed_single_org.toml` either parses or gives a
    // ConfigError.
    let text = format!("{SEED_SINGLE}\n[[runners]]\nname = \"é🦀\"\ntoken = \"🦀🦀\"\n");
    let mut checked = 0;
    for (i, _) in text.char_indices() {
        let prefix = text.get(..i).unwrap_or_default();
        let _ = parse(prefix);
        let mut dropped = String::from(prefix);
        dropped.push_str(
            text.get(i..)
                .and_then(|s| s.get(s.chars().next().map_or(0, char::len_utf8)..))
                .unwrap_or_default(),
        );
        let _ = parse(&dropped);
        checked += 1;
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn min_seconds_between_launches_is_read_without_a_warning() {
    let l = ok(&clever("", ""));
    assert_eq!(
        l.config.settings.min_between_launches, None,
        "no spacing by default"
    );
    let l = ok(&clever("paas_min_seconds_between_launches = 1.5", ""));
    assert_eq!(
        l.config.settings.min_between_launches,
        Some(Duration::from_millis(1500))
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let l = ok(&clever("paas_min_seconds_between_launches = 0", ""));
    assert_eq!(l.config.settings.min_between_launches, None);
    let e = err(&clever("paas_min_seconds_between_launches = -1", ""));
    assert_problem(
        &e,
        "paas_min_seconds_between_launches",
        "a number of seconds",
        "negative gap",
    );
}

#[test]
fn log_statistics_is_off_by_default_and_read_without_a_warning() {
    assert!(!ok(&clever("", "")).config.settings.log_statistics);
    let l = ok(&clever("paas_log_statistics = true", ""));
    assert!(l.config.settings.log_statistics);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let e = err(&clever("paas_log_statistics = \"yes\"", ""));
    assert_problem(&e, "paas_log_statistics", "a boolean", "not a boolean");
}

#[test]
fn reconcile_interval_zero_disables_the_periodic_pass() {
    let l = ok(&clever("reconcile_interval = 0", ""));
    assert_eq!(l.config.settings.reconcile_interval, None);
    let l = ok(&clever("reconcile_interval = 60", ""));
    assert_eq!(
        l.config.settings.reconcile_interval,
        Some(Duration::from_secs(60))
    );
}

#[test]
fn log_level_and_log_format_are_gitlab_runners_keys() {
    let l = ok(&clever("log_level = \"warn\"\nlog_format = \"json\"", ""));
    assert_eq!(l.config.log_level, Some(slog::Level::Warning));
    assert_eq!(l.config.log_format, Some(crate::logging::LogFormat::Json));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let l = ok(&clever("log_format = \"runner\"", ""));
    assert_eq!(l.config.log_format, Some(crate::logging::LogFormat::Term));
    assert_eq!(l.config.log_level, None);
    let e = err(&clever("log_level = \"loud\"", "")).to_string();
    assert!(e.contains("log_level"), "{e}");
}

/// Multi-tenant mode refuses to forward static cache credentials and
/// non-platform `cc_extra_env` values to every tenant, unless opted in;
/// single-organisation mode keeps forwarding them.
#[test]
fn multi_tenant_refuses_forwarded_secrets_unless_opted_in() {
    const MULTI: &str = r#"
name = "r1"
url = "https://gitlab.example"
token = "glrt-abcdefgh"
executor = "clever-docker"
cc_multi_tenant = true
cc_gitlab_namespace_attributes_token = "attrs-token"
"#;
    let secrets = "[runners.cc_extra_env]\nCC_ENABLE_HEPTAPOD_RUNNER = \"true\"\n\
                   S3_TOKEN = \"s3cr3t\"\n[runners.cache.s3]\nAccessKey = \"AK\"\n\
                   SecretKey = \"SK\"\nBucketName = \"b\"\n";
    let e = err(&with_runner("", &format!("{MULTI}{secrets}")));
    assert_eq!(e.exit_code(), 2);
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "runners[0].cc_extra_env.S3_TOKEN",
            "runners[0].cache.s3.AccessKey",
            "runners[0].cache.s3.SecretKey"
        ]
    );
    assert!(e
        .problems()
        .iter()
        .all(|p| p.message.contains("cc_multi_tenant_forward_secrets = true")));
    assert!(!e.to_string().contains("s3cr3t") && !e.to_string().contains("SK\""));

    // The opt-in: accepted, and the key never reaches the inner runner.toml.
    let opted = format!("{MULTI}cc_multi_tenant_forward_secrets = true\n{secrets}");
    let l = ok(&with_runner("", &opted));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let inner = &runner(&l).inner_runner_toml();
    assert!(
        inner.contains("SecretKey") && !inner.contains("forward_secrets"),
        "{inner}"
    );

    // Platform switches alone and empty cache sections are fine (the example configuration).
    ok(SEED_MULTI);
    // Single-organisation mode forwards them.
    let single = format!("{CLEVER}{secrets}");
    let l = ok(&with_runner("", &single));
    assert!(runner(&l).inner_runner_toml().contains("SecretKey"));
}

/// Multi-tenant mode refuses every forwarded value taken from the secrets
/// file (`environment`, `[runners.docker]`, any key reaching the inner
/// runner.toml), naming the key; the keys this program keeps for itself
/// (`token`, `cc_token`…) may be secrets; the opt-in accepts them all.
#[test]
fn multi_tenant_refuses_any_forwarded_secret_value_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "secrets.toml",
        "RUNNER = \"glrt-from-secrets\"\nATTRS = \"attrs\"\nENV = \"K=e-value\"\n\
         VOL = \"/data\"\nS3 = \"s3-key\"\nCACHE_DIR = \"/c\"\n",
    );
    let section = |extra: &str| {
        format!(
            r#"
name = "r1"
url = "https://gitlab.example"
token = "secret:RUNNER"
executor = "clever-docker"
cc_multi_tenant = true
cc_gitlab_namespace_attributes_token = "secret:ATTRS"
environment = ["A=plain", "secret:ENV"]
cache_dir = "secret:CACHE_DIR"
{extra}
[runners.cc_extra_env]
CC_ENABLE_HEPTAPOD_RUNNER = "true"
[runners.cache.s3]
SecretKey = "secret:S3"
[runners.docker]
volumes = ["/cache", "secret:VOL"]
"#
        )
    };
    let text = with_runner("secrets_file = \"secrets.toml\"", &section(""));
    let cfg = write(dir.path(), "config.toml", &text);
    let e = load(&cfg).expect_err("refused");
    assert_eq!(e.exit_code(), 2);
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "runners[0].environment[1]",
            "runners[0].cache_dir",
            "runners[0].cache.s3.SecretKey",
            "runners[0].docker.volumes[1]",
        ]
    );
    assert!(e
        .problems()
        .iter()
        .all(|p| p.message.contains("cc_multi_tenant_forward_secrets = true")));
    let shown = e.to_string();
    for value in ["e-value", "/data", "s3-key", "glrt-from-secrets", "attrs\""] {
        assert!(!shown.contains(value), "{value} shown: {shown}");
    }

    // The opt-in accepts them, and they reach the inner runner.toml.
    let text = with_runner(
        "secrets_file = \"secrets.toml\"",
        &section("cc_multi_tenant_forward_secrets = true"),
    );
    let cfg = write(dir.path(), "config.toml", &text);
    let l = load(&cfg).expect("opted in");
    let inner = runner_of(&l).inner_runner_toml();
    assert!(
        inner.contains("K=e-value") && inner.contains("/data"),
        "{inner}"
    );

    // Single-organisation mode forwards them without the opt-in.
    let single = section("").replace(
        "cc_multi_tenant = true\ncc_gitlab_namespace_attributes_token = \"secret:ATTRS\"",
        "cc_orga_id = \"orga_x\"\ncc_token = \"secret:ATTRS\"",
    );
    let text = with_runner("secrets_file = \"secrets.toml\"", &single);
    let cfg = write(dir.path(), "config.toml", &text);
    load(&cfg).expect("single-organisation mode forwards secrets");
}

// ---------------------------------------------------------------- runner token

#[test]
fn the_runner_token_is_forwarded_only_on_explicit_opt_in() {
    let token = "glrt-t1_AbCdEfGhIjKlMnOpQrSt";
    let section = CLEVER.replace("glrt-abcdefgh", token);
    let inner_token = |extra: &str| -> String {
        let l = ok(&with_runner("", &format!("{section}{extra}{EXTRA_ENV}")));
        let text = runner(&l).inner_runner_toml();
        assert!(!text.contains(inner::FORWARD_TOKEN_KEY), "{text}");
        let inner: toml::Table = text.parse().unwrap();
        inner["runners"][0]["token"].as_str().unwrap().to_owned()
    };
    for extra in ["", "paas_forward_runner_token = false\n"] {
        let got = inner_token(extra);
        assert_eq!(got, inner::token_placeholder(token));
        assert_eq!(inner::short_description(&got), "t1_AbCdEf");
    }
    assert_eq!(inner_token("paas_forward_runner_token = true\n"), token);

    let bad = err(&with_runner(
        "",
        &format!("{section}paas_forward_runner_token = \"yes\"\n{EXTRA_ENV}"),
    ));
    assert!(
        bad.problems()
            .iter()
            .any(|p| p.key == "runners[0].paas_forward_runner_token"
                && p.message.contains("boolean")),
        "{bad}"
    );
}

#[test]
fn forwarding_the_runner_token_is_refused_in_multi_tenant_mode() {
    let multi =
        "name = \"r1\"\nurl = \"https://g.example\"\ntoken = \"glrt-t1_AbCdEfGhIjKlMnOpQrSt\"\n\
                 executor = \"clever-docker\"\ncc_multi_tenant = true\n\
                 cc_gitlab_namespace_attributes_token = \"a\"\n";
    let l = ok(&with_runner("", &format!("{multi}{EXTRA_ENV}")));
    assert!(!runner(&l)
        .inner_runner_toml()
        .contains("glrt-t1_AbCdEfGhIjKlMnOpQrSt"));
    let e = err(&with_runner(
        "",
        &format!("{multi}paas_forward_runner_token = true\n{EXTRA_ENV}"),
    ));
    assert_eq!(EXIT_CODE, 2);
    let problem = e
        .problems()
        .iter()
        .find(|p| p.key == "runners[0].paas_forward_runner_token")
        .unwrap_or_else(|| panic!("key not named: {e}"));
    assert!(
        problem.message.contains("cc_multi_tenant = true"),
        "{problem}"
    );
    assert!(e.to_string().contains("paas_forward_runner_token"), "{e}");
}
