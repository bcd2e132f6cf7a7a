//! Every configuration error and warning names the value found as well as
//! the one expected: a table of bad inputs, each with the text of the found
//! value its message must hold; values that may be credentials are never
//! quoted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use super::validate::Env;
use super::*;

const QUOTA: &str = "[quota_computation]\nreference_runner = \"r1\"\nreference_flavor = \"M\"\nreference_jobs_count = 4\n";

const RUNNER: &str =
    "name = \"r1\"\nurl = \"https://gitlab.example\"\ntoken = \"glrt-abcdefghijk\"\n\
executor = \"clever-docker\"\ncc_orga_id = \"orga_x\"\ncc_token = \"cc-secret-token\"\n";

const EXTRA_ENV: &str = "[runners.cc_extra_env]\nCC_ENABLE_HEPTAPOD_RUNNER = \"true\"\n";

/// The whole file: `global` lines, the quota, one runner section whose
/// body is `RUNNER` edited by `edit`, then `tail` (sub-tables).
fn file(global: &str, edit: impl Fn(&str) -> String, tail: &str) -> String {
    format!(
        "{global}\n{QUOTA}\n[[runners]]\n{}{EXTRA_ENV}{tail}",
        edit(RUNNER)
    )
}

fn parse_in(dir: &std::path::Path, text: &str) -> Result<Loaded, ConfigError> {
    let path = dir.join("config.toml");
    parse_with_env(text, &path, &Env { docker_host: None })
}

/// Every message of the configuration: errors, then warnings.
fn messages(dir: &std::path::Path, text: &str) -> Vec<String> {
    match parse_in(dir, text) {
        Ok(l) => l.warnings,
        Err(e) => {
            let mut out: Vec<String> = e
                .problems()
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect();
            if let ConfigError::Invalid { warnings, .. } = &e {
                out.extend(warnings.iter().cloned());
            }
            out
        }
    }
}

fn replace(from: &'static str, to: &'static str) -> impl Fn(&str) -> String {
    move |s: &str| {
        assert!(s.contains(from), "{from} not in the runner section");
        s.replacen(from, to, 1)
    }
}

fn same(s: &str) -> String {
    s.to_string()
}

fn add(line: &'static str) -> impl Fn(&str) -> String {
    move |s: &str| format!("{s}{line}\n")
}

#[test]
fn every_message_names_the_value_found() {
    type Case = (&'static str, String, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        // (case, file, key the message is about, text of the found value)
        (
            "concurrent string",
            file("concurrent = \"50\"", same, ""),
            "concurrent",
            "\"50\"",
        ),
        (
            "concurrent negative",
            file("concurrent = -1", same, ""),
            "concurrent",
            "-1",
        ),
        (
            "check_interval bool",
            file("check_interval = true", same, ""),
            "check_interval",
            "true",
        ),
        (
            "state_file int",
            file("state_file = 1", same, ""),
            "state_file",
            "the integer 1",
        ),
        (
            "state_file empty",
            file("state_file = \"\"", same, ""),
            "state_file",
            "an empty string",
        ),
        (
            "listen_address int",
            file("listen_address = 9252", same, ""),
            "listen_address",
            "9252",
        ),
        (
            "log_level",
            file("log_level = \"verbose\"", same, ""),
            "log_level",
            "\"verbose\"",
        ),
        (
            "log_format",
            file("log_format = \"xml\"", same, ""),
            "log_format",
            "\"xml\"",
        ),
        (
            "shutdown_timeout",
            file("shutdown_timeout = 0", same, ""),
            "shutdown_timeout",
            "the integer 0",
        ),
        (
            "secrets_file int",
            file("secrets_file = 3", same, ""),
            "secrets_file",
            "the integer 3",
        ),
        (
            "runners not array",
            format!("runners = 1\n{QUOTA}"),
            "runners",
            "the integer 1",
        ),
        (
            "unknown global key",
            file("concurrrent = 2", same, ""),
            "concurrrent",
            "concurrrent",
        ),
        (
            "quota not a table",
            format!("quota_computation = \"big\"\n[[runners]]\n{RUNNER}{EXTRA_ENV}"),
            "quota_computation",
            "\"big\"",
        ),
        (
            "unknown reference runner",
            file("", same, "").replace("reference_runner = \"r1\"", "reference_runner = \"r9\""),
            "quota_computation.reference_runner",
            "\"r9\"",
        ),
        (
            "zero jobs",
            file("", same, "").replace("reference_jobs_count = 4", "reference_jobs_count = 0"),
            "quota_computation.reference_jobs_count",
            "the integer 0",
        ),
        (
            "fraction above one",
            file("", same, "").replace(
                "reference_jobs_count = 4",
                "reference_jobs_count = 4\nallowed_fraction_per_runner = 1.5",
            ),
            "quota_computation.allowed_fraction_per_runner",
            "1.5",
        ),
        (
            "runner not a table",
            format!("runners = [\"r1\"]\n{QUOTA}"),
            "runners[0]",
            "\"r1\"",
        ),
        (
            "url not a URL",
            file("", replace("https://gitlab.example", "gitlab.example"), ""),
            "runners[0].url",
            "\"gitlab.example\"",
        ),
        (
            "plain http url",
            file(
                "",
                replace("https://gitlab.example", "http://gitlab.example"),
                "",
            ),
            "runners[0].url",
            "\"http://gitlab.example\"",
        ),
        (
            "unknown executor",
            file("", replace("\"clever-docker\"", "\"kubernetes\""), ""),
            "runners[0].executor",
            "\"kubernetes\"",
        ),
        (
            "docker executor",
            file("", replace("\"clever-docker\"", "\"docker\""), ""),
            "runners[0].executor",
            "`docker`",
        ),
        (
            "executor int",
            file("", replace("\"clever-docker\"", "7"), ""),
            "runners[0].executor",
            "the integer 7",
        ),
        (
            "unique_name",
            file("", add("unique_name = \"a b\""), ""),
            "runners[0].unique_name",
            "\"a b\"",
        ),
        (
            "main image int",
            file("", add("heptapod_runner_main_image = 1"), ""),
            "runners[0].heptapod_runner_main_image",
            "the integer 1",
        ),
        (
            "quota_max_fraction",
            file("", add("quota_max_fraction = 0"), ""),
            "runners[0].quota_max_fraction",
            "the integer 0",
        ),
        (
            "cc_api_url",
            file("", add("cc_api_url = \"ftp://api.example\""), ""),
            "runners[0].cc_api_url",
            "\"ftp://api.example\"",
        ),
        (
            "cc_zone empty",
            file("", add("cc_zone = \"\""), ""),
            "runners[0].cc_zone",
            "an empty string",
        ),
        (
            "cc_max_flavor int",
            file("", add("cc_max_flavor = 3"), ""),
            "runners[0].cc_max_flavor",
            "the integer 3",
        ),
        (
            "cc_multi_tenant string",
            file("", add("cc_multi_tenant = \"yes\""), ""),
            "runners[0].cc_multi_tenant",
            "\"yes\"",
        ),
        (
            "repo timeout",
            file("", add("cc_deployment_repo_timeout = \"20\""), ""),
            "runners[0].cc_deployment_repo_timeout",
            "\"20\"",
        ),
        (
            "unknown cc key",
            file("", add("cc_tokn = \"x\""), ""),
            "runners[0].cc_tokn",
            "cc_tokn",
        ),
        (
            "forwarded token in multi-tenant mode",
            file(
                "",
                |s: &str| {
                    format!("{s}cc_multi_tenant = true\ncc_gitlab_namespace_attributes_token = \"a\"\npaas_forward_runner_token = true\n")
                },
                "",
            ),
            "runners[0].paas_forward_runner_token",
            "found `true`",
        ),
        (
            "cc_token int",
            file("", replace("\"cc-secret-token\"", "12"), ""),
            "runners[0].cc_token",
            "the integer 12",
        ),
        (
            "token empty",
            file("", replace("\"glrt-abcdefghijk\"", "\"\""), ""),
            "runners[0].token",
            "an empty string",
        ),
        (
            "trace watch not a table",
            file("", add("paas_job_trace_watch = \"x\""), ""),
            "runners[0].paas_job_trace_watch",
            "\"x\"",
        ),
        (
            "trace watch timeout",
            file(
                "",
                same,
                "[runners.paas_job_trace_watch]\ntoken = \"a\"\ntimeout_seconds = \"300\"\n",
            ),
            "runners[0].paas_job_trace_watch.timeout_seconds",
            "\"300\"",
        ),
        (
            "extra env array",
            file("", same, "A = [1, 2]\n"),
            "runners[0].cc_extra_env.A",
            "an array of 2 item(s)",
        ),
        (
            "local docker host",
            file(
                "",
                |_: &str| {
                    "name = \"r1\"\nurl = \"https://g.example\"\ntoken = \"tok\"\nexecutor = \"local-docker\"\nhost = \"tcp://127.0.0.1:2375\"\n".to_string()
                },
                "",
            ),
            "runners[0].host",
            "\"tcp://127.0.0.1:2375\"",
        ),
        (
            "local docker network mode",
            file(
                "",
                |_: &str| {
                    "name = \"r1\"\nurl = \"https://g.example\"\ntoken = \"tok\"\nexecutor = \"local-docker\"\nlocal_docker_network_mode = 1\n".to_string()
                },
                "",
            ),
            "runners[0].local_docker_network_mode",
            "the integer 1",
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (case, text, key, found) in cases {
        let all = messages(dir.path(), &text);
        let about: Vec<&String> = all.iter().filter(|m| m.contains(key)).collect();
        assert!(
            !about.is_empty(),
            "{case}: no message about {key}: {all:#?}"
        );
        assert!(
            about.iter().any(|m| m.contains(found)),
            "{case}: the value found ({found}) is not named: {about:#?}"
        );
    }
}

#[test]
fn values_that_may_be_credentials_are_described_not_quoted() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("secrets.toml"),
        "EXEC = \"kubernetes-s3cr3t\"\n",
    )
    .expect("secrets");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "URL with a password",
            file(
                "",
                add("cc_api_url = \"ftp://user:pa55w0rd@api.example\""),
                "",
            ),
            "runners[0].cc_api_url",
            "pa55w0rd",
        ),
        (
            "value from the secrets file",
            file(
                "secrets_file = \"secrets.toml\"",
                replace("\"clever-docker\"", "\"secret:EXEC\""),
                "",
            ),
            "runners[0].executor",
            "kubernetes-s3cr3t",
        ),
        (
            "token-named key",
            file(
                "",
                same,
                "[runners.paas_job_trace_watch]\ntoken = \"\"\ntimeout_seconds = 1\n",
            ),
            "runners[0].paas_job_trace_watch.token",
            "glrt-abcdefghijk",
        ),
    ];
    for (case, text, key, secret) in cases {
        let all = messages(dir.path(), &text);
        assert!(
            all.iter().any(|m| m.contains(key)),
            "{case}: no message about {key}: {all:#?}"
        );
        for m in &all {
            assert!(!m.contains(secret), "{case}: {secret} shown: {m}");
        }
    }
    assert!(fields::may_show(
        "runners[0].url",
        "https://gitlab.example/x@y"
    ));
    assert!(!fields::may_show(
        "runners[0].url",
        "https://u:p@gitlab.example"
    ));
    let shown = fields::shown_value("url", "https://u:hunter2@gitlab.example");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(
        fields::shown_value("url", "https://gitlab.example"),
        "\"https://gitlab.example\""
    );
    assert!(!fields::may_show("runners[0].cc_token", "x"));
    assert!(!fields::may_show("runners[0].cc_extra_env.A", "x"));
    assert!(!fields::may_show("runners[0].cache.s3.SecretKey", "x"));
    assert_eq!(
        fields::quoted(&"a".repeat(100)),
        format!("{:?}… (100 characters)", "a".repeat(80))
    );
    assert_eq!(fields::quoted("a\nb"), "\"a\\nb\"");
}

#[test]
fn a_key_found_wrong_after_validation_is_located_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = file("", add("cc_max_flavor = \"XXL\""), "");
    let config = parse_in(dir.path(), &text).expect("valid").config;
    let line = text
        .lines()
        .position(|l| l.starts_with("cc_max_flavor"))
        .expect("written")
        + 1;
    let key = runner_key(0, "cc_max_flavor");
    assert_eq!(key, "runners[0].cc_max_flavor");
    assert_eq!(config.locate(&key), Location::Line(line));
    let msg = config.key_message(&key, Some("\"XXL\""), "not an available flavor");
    let file = dir.path().join("config.toml");
    assert_eq!(
        msg,
        format!(
            "{}:{line}: `runners[0].cc_max_flavor` = \"XXL\": not an available flavor",
            file.display()
        )
    );
    // A default (not written): its section's line, said to be the default.
    let key = runner_key(0, "cc_default_flavor");
    let Location::Section(section) = config.locate(&key) else {
        panic!("{:?}", config.locate(&key));
    };
    let msg = config.key_message(&key, Some("\"M\""), "x");
    assert!(
        msg.starts_with(&format!("{}:{section}: ", file.display())) && msg.contains("default"),
        "{msg}"
    );
    // Unknown location: the file alone.
    let msg = key_message(&PathBuf::from("c.toml"), "k", Location::Unknown, None, "d");
    assert_eq!(msg, "c.toml: `k`: d");
}
