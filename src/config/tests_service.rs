//! Configuration of clever-service-docker sections, the per-section
//! `secrets_file`, and a heptapod-paas-runner 1.1.1 configuration file
//! accepted as it is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::validate::Env;
use super::*;
use crate::executors::clever::service::settings::{DEFAULT_HELPER_IMAGE, DEFAULT_READY_TIMEOUT};

fn path_in(dir: &Path) -> PathBuf {
    dir.join("config.toml")
}

fn parse_in(dir: &Path, text: &str) -> Result<Loaded, ConfigError> {
    parse_with_env(text, &path_in(dir), &Env { docker_host: None })
}

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    parse_in(Path::new("/etc/heptapod-runner"), text)
}

fn ok(text: &str) -> Loaded {
    parse(text).unwrap_or_else(|e| panic!("expected a valid config, got: {e}\n{text}"))
}

fn problems(e: &ConfigError) -> Vec<(String, String)> {
    e.problems()
        .iter()
        .map(|p| (p.key.clone(), p.message.clone()))
        .collect()
}

const QUOTA: &str = "state_file = \"s.json\"\n[quota_computation]\nreference_runner = \"r1\"\n\
                     reference_flavor = \"M\"\nreference_jobs_count = 4\n";

/// One runner section `r1` with `executor` and `extra` lines.
fn section(executor: &str, extra: &str) -> String {
    format!(
        "{QUOTA}[[runners]]\nname = \"r1\"\nurl = \"https://gitlab.example\"\n\
         token = \"glrt-abcdefghijklmnop\"\nexecutor = \"{executor}\"\ncc_orga_id = \"orga_x\"\n\
         cc_token = \"cc-secret\"\n{extra}\n[runners.cc_extra_env]\n\
         CC_ENABLE_HEPTAPOD_RUNNER = \"true\"\n"
    )
}

fn warned(l: &Loaded, needle: &str) -> bool {
    l.warnings.iter().any(|w| w.contains(needle))
}

#[test]
fn a_service_section_gets_its_settings_and_the_defaults() {
    let l = ok(&section("clever-service-docker", ""));
    let r = l.config.runners.first().unwrap();
    assert_eq!(r.executor, ExecutorKind::CleverServiceDocker);
    let service = r.clever.as_ref().unwrap().service.clone().unwrap();
    assert_eq!(service.helper_image, DEFAULT_HELPER_IMAGE);
    assert_eq!(service.ready_timeout, DEFAULT_READY_TIMEOUT);
    assert_eq!(
        r.settings.standby,
        Some(paas_actors::StandbyPolicy::default())
    );
    assert_eq!(l.warnings, Vec::<String>::new());

    let l = ok(&section(
        "clever-service-docker",
        "heptapod_paas_runner_helper_image = \"registry.example/helper:2\"\n\
         cc_service_ready_timeout = 42.5\n",
    ));
    let r = l.config.runners.first().unwrap();
    let service = r.clever.as_ref().unwrap().service.clone().unwrap();
    assert_eq!(service.helper_image, "registry.example/helper:2");
    assert_eq!(service.ready_timeout, Duration::from_secs_f64(42.5));
    assert_eq!(l.warnings, Vec::<String>::new());
    // The standby keys (1.1's key, and ours).
    let standby = |extra: &str| {
        let l = ok(&section("clever-service-docker", extra));
        l.config.runners[0].settings.standby
    };
    let policy = |keep: u64, max| paas_actors::StandbyPolicy {
        keep: Duration::from_secs(keep),
        max_jobs_per_resource: max,
    };
    assert_eq!(
        standby("paas_keep_resources_for_reuse_seconds = 60\npaas_max_jobs_per_resource = 3\n"),
        Some(policy(60, 3))
    );
    assert_eq!(
        standby("paas_keep_resources_for_reuse_seconds = 0\n"),
        Some(policy(0, 20))
    );
    // A clever-docker section has no service part.
    let l = ok(&section("clever-docker", ""));
    assert_eq!(l.config.runners[0].settings.standby, None);
    assert!(l.config.runners[0]
        .clever
        .as_ref()
        .unwrap()
        .service
        .is_none());
}

#[test]
fn wrong_service_values_name_their_key() {
    let cases = [
        (
            "heptapod_paas_runner_helper_image = \"registry.example/helper 2\"",
            "runners[0].heptapod_paas_runner_helper_image",
            "without whitespace",
        ),
        (
            "heptapod_paas_runner_helper_image = \"\"",
            "runners[0].heptapod_paas_runner_helper_image",
            "non-empty image name",
        ),
        (
            "cc_service_ready_timeout = 0",
            "runners[0].cc_service_ready_timeout",
            "a positive number of seconds",
        ),
        (
            "cc_service_ready_timeout = \"600\"",
            "runners[0].cc_service_ready_timeout",
            "a positive number of seconds",
        ),
    ];
    for (line, key, needle) in cases {
        let e = parse(&section("clever-service-docker", line)).expect_err(line);
        let found = problems(&e);
        assert!(
            found.iter().any(|(k, m)| k == key && m.contains(needle)),
            "{line}: {found:?}"
        );
        assert_eq!(e.exit_code(), 2);
    }
}

#[test]
fn service_keys_elsewhere_and_the_main_image_are_warned_about() {
    let l = ok(&section(
        "clever-docker",
        "cc_service_ready_timeout = 5\nheptapod_paas_runner_helper_image = \"h:1\"\n",
    ));
    assert!(
        warned(&l, "`runners[0].cc_service_ready_timeout`")
            && warned(&l, "only clever-service-docker uses it"),
        "{:?}",
        l.warnings
    );
    assert!(!warned(&l, "unknown"), "{:?}", l.warnings);
    let l = ok(&section(
        "clever-service-docker",
        "heptapod_runner_main_image = \"runner:1\"\n",
    ));
    assert!(
        warned(&l, "is not used by clever-service-docker"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn the_standby_keys_set_the_runner_standby_policy() {
    let standby = |extra: &str| {
        let l = ok(&section("clever-service-docker", extra));
        l.config.runners[0].settings.standby
    };
    let default = standby("").expect("a service section keeps applications");
    assert_eq!(default, paas_actors::StandbyPolicy::default());
    assert_eq!(default.keep, std::time::Duration::from_secs(120));
    let set =
        standby("paas_keep_resources_for_reuse_seconds = 7.5\npaas_max_jobs_per_resource = 3\n")
            .expect("kept");
    assert_eq!(set.keep, std::time::Duration::from_millis(7500));
    assert_eq!(set.max_jobs_per_resource, 3);
    let zero = standby("paas_keep_resources_for_reuse_seconds = 0\n").expect("a policy");
    assert_eq!(zero.keep, std::time::Duration::ZERO, "0: never kept");
    let clever = ok(&section("clever-docker", ""));
    assert_eq!(clever.config.runners[0].settings.standby, None);
    for bad in [
        "paas_keep_resources_for_reuse_seconds = -1\n",
        "paas_max_jobs_per_resource = 0\n",
    ] {
        let e = parse(&section("clever-service-docker", bad)).unwrap_err();
        let key = bad.split(' ').next().unwrap_or_default();
        assert!(
            problems(&e).iter().any(|(k, _)| k.ends_with(key)),
            "{bad}: {e}"
        );
    }
}

#[test]
fn none_of_this_programs_keys_reaches_the_inner_runner() {
    let l = ok(&section(
        "clever-service-docker",
        "heptapod_paas_runner_helper_image = \"h:1\"\ncc_service_ready_timeout = 5\n\
         paas_keep_resources_for_reuse_seconds = 60\npaas_max_jobs_per_resource = 3\n\
         paas_some_later_key = true\nenvironment = [\"A=1\"]\n",
    ));
    let inner: toml::Table = l.config.runners[0].inner_runner_toml().parse().unwrap();
    let runner = inner["runners"][0].as_table().unwrap();
    let keys: Vec<&str> = runner.keys().map(String::as_str).collect();
    assert_eq!(keys, ["name", "url", "token", "executor", "environment"]);
    assert_eq!(runner["executor"].as_str(), Some("docker"));
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Two sections: `r1` with its own secrets file, `r2` with the top-level one.
fn two_sections(r1_extra: &str) -> String {
    format!(
        "secrets_file = \"top.toml\"\n{QUOTA}\
         [[runners]]\nname = \"r1\"\nurl = \"https://gitlab.example\"\n\
         token = \"secret:TOKEN\"\nexecutor = \"clever-service-docker\"\n{r1_extra}\n\
         cc_multi_tenant = true\ncc_gitlab_namespace_attributes_token = \"secret:ATTR\"\n\
         [runners.paas_job_trace_watch]\ntoken = \"secret:TRACE\"\n\
         [runners.cc_extra_env]\nCC_ENABLE_HEPTAPOD_RUNNER = \"true\"\n\
         [[runners]]\nname = \"r2\"\nurl = \"https://gitlab.example\"\n\
         token = \"secret:TOKEN\"\nexecutor = \"clever-docker\"\ncc_orga_id = \"orga_y\"\n\
         cc_token = \"secret:CC\"\n\
         [runners.cc_extra_env]\nCC_ENABLE_HEPTAPOD_RUNNER = \"true\"\n"
    )
}

#[test]
fn a_section_reads_its_own_secrets_file_the_others_the_top_level_one() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "top.toml",
        "TOKEN = \"glrt-fromTheTopLevelFile\"\nCC = \"cc-top\"\n",
    );
    write(
        dir.path(),
        "r1.toml",
        "TOKEN = \"glrt-fromTheSectionFile\"\nATTR = \"attr-r1\"\nTRACE = \"trace-r1\"\n",
    );
    let l = parse_in(dir.path(), &two_sections("secrets_file = \"r1.toml\"")).unwrap();
    let (r1, r2) = (&l.config.runners[0], &l.config.runners[1]);
    assert_eq!(r1.token.expose(), "glrt-fromTheSectionFile");
    match &r1.clever.as_ref().unwrap().tenancy {
        Tenancy::Multi {
            attributes_token, ..
        } => assert_eq!(attributes_token.expose(), "attr-r1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r1.trace_watch_token.as_ref().map(|t| t.expose()),
        Some("trace-r1")
    );
    assert_eq!(r2.token.expose(), "glrt-fromTheTopLevelFile");
    match &r2.clever.as_ref().unwrap().tenancy {
        Tenancy::Single { token, .. } => assert_eq!(token.expose(), "cc-top"),
        other => panic!("{other:?}"),
    }
    // The section's secrets_file is not forwarded; no warning about it.
    let inner: toml::Table = r1.inner_runner_toml().parse().unwrap();
    assert!(inner["runners"][0].get("secrets_file").is_none());
    assert_eq!(l.warnings, Vec::<String>::new());

    // Its secrets come from its own file only.
    write(
        dir.path(),
        "r1.toml",
        "TOKEN = \"glrt-fromTheSectionFile\"\n",
    );
    let e = parse_in(dir.path(), &two_sections("secrets_file = \"r1.toml\"")).unwrap_err();
    let found = problems(&e);
    assert!(
        found.iter().any(
            |(k, m)| k == "runners[0].cc_gitlab_namespace_attributes_token"
                && m.contains("secret `ATTR`")
                && m.contains("r1.toml")
        ),
        "{found:?}"
    );
    // A section's unreadable or malformed secrets file names its key.
    for (value, needle) in [
        ("\"absent.toml\"", "cannot read secrets file"),
        ("3", "expected the path of a TOML file of secrets"),
    ] {
        let text = two_sections(&format!("secrets_file = {value}"));
        let e = parse_in(dir.path(), &text).unwrap_err();
        let found = problems(&e);
        assert!(
            found
                .iter()
                .any(|(k, m)| k == "runners[0].secrets_file" && m.contains(needle)),
            "{value}: {found:?}"
        );
    }
}

#[test]
fn a_secret_without_any_secrets_file_says_where_one_goes() {
    let text = section("clever-service-docker", "").replace("\"cc-secret\"", "\"secret:CC\"");
    let e = parse(&text).unwrap_err();
    let found = problems(&e);
    assert!(
        found.iter().any(|(k, m)| k == "runners[0].cc_token"
            && m.contains("at the top level or in this `[[runners]]` section")),
        "{found:?}"
    );
}

#[test]
fn a_python_1_1_1_configuration_is_accepted_as_it_is() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/testdata/py111_service.toml");
    let l = load(&file).unwrap_or_else(|e| panic!("{e}"));
    let c = &l.config;
    assert_eq!(c.settings.concurrent, 40);
    assert_eq!(c.settings.allowed_fraction_per_runner, 0.8);
    assert_eq!(
        c.settings.min_between_launches,
        Some(std::time::Duration::from_secs(2))
    );
    assert!(c.settings.log_statistics);
    let (service, multi) = (&c.runners[0], &c.runners[1]);
    assert_eq!(service.executor, ExecutorKind::CleverServiceDocker);
    assert_eq!(service.token.expose(), "glrt-py111ServiceRunnerTok3n");
    assert_eq!(
        service.trace_watch_token.as_ref().map(|t| t.expose()),
        Some("glpat-py111TraceToken")
    );
    let cc = service.clever.as_ref().unwrap();
    match &cc.tenancy {
        Tenancy::Single { token, .. } => {
            assert_eq!(token.expose(), "bb52e490-d47e-47a4-b190-73e23eb17111")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cc.service.as_ref().map(|s| s.helper_image.as_str()),
        Some("registry.heptapod.net/heptapod/heptapod-paas-runner/helper:1.1")
    );
    assert_eq!(multi.executor, ExecutorKind::CleverDocker);
    assert_eq!(multi.token.expose(), "glrt-py111MultiRunnerTok3n");
    for r in &c.runners {
        let inner = r.inner_runner_toml();
        for key in [
            "secrets_file",
            "heptapod_paas_runner_helper_image",
            "paas_keep_resources_for_reuse_seconds",
            "heptapod_runner_main_image",
            "cc_",
            "glpat-",
        ] {
            assert!(!inner.contains(key), "{key} forwarded by {}", r.name);
        }
    }
}
