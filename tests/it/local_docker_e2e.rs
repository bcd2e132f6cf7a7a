//! End to end: the real `heptapod-paas-runner` binary with a `local-docker`
//! runner, against paas-sim's fake coordinator and a real Docker engine.
//!
//! Needs an engine socket in `HPR_TEST_DOCKER_HOST` (`unix://…`, see
//! `scripts/dockerd-start`); without it the test prints why it is skipped
//! and passes. The runner's `heptapod_runner_main_image` is a `FROM scratch`
//! image made here with the static `sim-inner-runner` at
//! `/usr/bin/gitlab-runner` (`tests/it/support/docker.rs`), so every job image
//! the runner builds runs the stand-in, which reaches the coordinator on
//! 127.0.0.1 through `local_docker_network_mode = "host"`.
//!
//! Checked: five jobs run to success at the coordinator; at most
//! `reference_jobs_count` of them run at once (every local-docker job
//! weighs 1) and that many do; the inner `runner.toml` in the job
//! containers has no key meant for the PAAS runner only and a placeholder
//! instead of the runner token; every image and
//! container of the runner is gone once the jobs are over; the runner stops
//! cleanly on SIGTERM. Then an upgrade: a container and an image named
//! under a `glrt-` runner's identity of earlier versions are resumed from the
//! state file and reconciled. The runner process is stopped by its pid and
//! the engine cleaned up even when the test fails (drop guards).

use crate::support;

use heptapod_paas_runner::config::inner;
use paas_sim::coordinator::{CoordinatorConfig, FakeCoordinator, JobSpec, JobState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};
use support::docker::{
    build_base_image, containers_with_prefix, docker_host, file_in_container, images_with_prefix,
    Cleanup, INNER_RUNNER_TOML,
};

/// Jobs enqueued.
const JOBS: usize = 5;
/// `reference_jobs_count`: with weight 1 per job, the concurrency bound.
const REFERENCE_JOBS_COUNT: usize = 2;
/// Simulated run time of each job: long enough for two to overlap and for
/// the test to read each container's files before decommission.
const JOB_DURATION: Duration = Duration::from_millis(1500);
/// Whole-run deadline (5 jobs in 3 waves of builds and 1.5 s runs).
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// Sampling period of the coordinator and the engine.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Administrator token of the trace watch (configured so that its table is
/// present in the runner section, to check it is not forwarded).
const ADMIN_TOKEN: &str = "e2e-admin-token";

/// The runner process; killed by pid (SIGKILL) at drop if still running,
/// printing the end of its log when the test is failing.
struct Runner {
    child: Child,
    log: PathBuf,
}

impl Runner {
    fn start(config: &Path, log: PathBuf) -> Runner {
        let log_file = std::fs::File::create(&log).expect("runner log file");
        let child = Command::new(env!("CARGO_BIN_EXE_heptapod-paas-runner"))
            .arg("run")
            .arg(config)
            .args(["-l", "DEBUG"])
            .env_remove("DOCKER_HOST")
            .stdout(std::process::Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn heptapod-paas-runner");
        Runner { child, log }
    }

    /// `None` while running, else the exit status.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// SIGTERM (graceful stop), then waits at most `patience`.
    fn terminate(&mut self, patience: Duration) -> Option<ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + patience;
        for _ in 0..(patience.as_millis() / 50 + 1) {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.exited()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill(); // by pid: SIGKILL to this child only
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- end of the runner log ---\n{}", self.log_tail());
        }
    }
}

/// Keys of the runner section that must not reach the inner runner.
const RUNNER_ONLY_KEYS: &[&str] = &[
    "host",
    "local_docker_network_mode",
    "heptapod_runner_main_image",
    "quota_max_fraction",
    "paas_job_trace_watch",
    "job_trace_watch",
];

/// Checks one inner `runner.toml` read from a job container.
fn check_inner_runner_toml(container: &str, text: &str, url: &str, token: &str) {
    let doc: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{container}: runner.toml is not TOML: {e}"));
    assert_eq!(
        doc.keys().collect::<Vec<_>>(),
        ["runners"],
        "{container}: only [[runners]] expected"
    );
    let runners = doc["runners"].as_array().expect("[[runners]] array");
    assert_eq!(runners.len(), 1, "{container}: one [[runners]] expected");
    let runner = runners[0].as_table().expect("runner table");
    for key in runner.keys() {
        assert!(
            !RUNNER_ONLY_KEYS.contains(&key.as_str()) && !key.starts_with("cc_"),
            "{container}: runner-only key `{key}` forwarded to the inner runner"
        );
    }
    // What the inner runner needs is there, as written.
    let get = |k: &str| runner.get(k).and_then(toml::Value::as_str);
    assert_eq!(get("executor"), Some("docker"), "{container}");
    assert_eq!(get("url"), Some(url), "{container}");
    // The runner token stays on the runner host: a placeholder with the
    // same short description (build and cache paths unchanged).
    assert!(
        !text.contains(token),
        "{container}: the runner token was pushed"
    );
    let placeholder = inner::token_placeholder(token);
    assert_eq!(get("token"), Some(placeholder.as_str()), "{container}");
    assert_eq!(
        inner::short_description(&placeholder),
        inner::short_description(token),
        "{container}"
    );
    assert_eq!(get("name"), Some("local"), "{container}");
    assert_eq!(
        runner
            .get("docker")
            .and_then(|d| d.get("image"))
            .and_then(toml::Value::as_str),
        Some("debian:bookworm"),
        "{container}: [runners.docker] not forwarded"
    );
}

#[test]
fn five_jobs_through_the_real_binary_on_a_real_engine() {
    let Some(host) = docker_host("five_jobs_through_the_real_binary_on_a_real_engine") else {
        return;
    };
    let pid = std::process::id();
    // The unique name is the token's first 8 characters: per process, so
    // that concurrent runs on one engine do not see each other's resources.
    let token = format!("e{:07}-e2e-runner-token", pid % 10_000_000);
    let prefix = format!("hpd-job-{}-", &token[..8]);
    let base = format!("hpr-e2e-inner-runner-{pid}");

    let coordinator = FakeCoordinator::start(CoordinatorConfig {
        runner_tokens: vec![token.clone()],
        admin_tokens: vec![ADMIN_TOKEN.to_string()],
        ..CoordinatorConfig::default()
    })
    .expect("fake coordinator");
    // Declared before the runner: dropped after it, once nothing makes
    // new resources any more.
    let _cleanup = Cleanup {
        host: host.clone(),
        names: vec![base.clone()],
        prefixes: vec![prefix.clone()],
    };
    build_base_image(&host, &base);

    let dir = tempfile::tempdir().expect("tempdir");
    let state_file = dir.path().join("state.json");
    let config = dir.path().join("runner.toml");
    std::fs::write(
        &config,
        format!(
            r#"
state_file = "{state}"
check_interval = 0.2
job_progress_poll_interval = 0.3
shutdown_timeout = 20

[quota_computation]
reference_runner = "local"
reference_flavor = "M"
reference_jobs_count = {REFERENCE_JOBS_COUNT}

[[runners]]
name = "local"
url = "{url}"
token = "{token}"
executor = "local-docker"
host = "{host}"
local_docker_network_mode = "host"
heptapod_runner_main_image = "{base}"
quota_max_fraction = 1.0
# A leftover of a clever-docker section: ignored, never forwarded.
cc_max_flavor = "L"

[runners.paas_job_trace_watch]
token = "{ADMIN_TOKEN}"
timeout_seconds = 10
poll_step = 0.2

[runners.docker]
image = "debian:bookworm"
"#,
            state = state_file.display(),
            url = coordinator.url(),
        ),
    )
    .expect("write config");

    let ids: Vec<i64> = (0..JOBS)
        .map(|i| coordinator.enqueue_job(JobSpec::new(format!("job-{i}")).duration(JOB_DURATION)))
        .collect();
    let mut runner = Runner::start(&config, dir.path().join("runner.log"));

    // Sample until every job is over and the runner removed everything.
    let started = Instant::now();
    let mut max_running = 0;
    let mut inner_tomls: BTreeMap<String, String> = BTreeMap::new();
    let mut seen_images: BTreeSet<String> = BTreeSet::new();
    let mut finished = false;
    for _ in 0..(RUN_DEADLINE.as_millis() / SAMPLE_EVERY.as_millis()) {
        if let Some(status) = runner.exited() {
            panic!("the runner exited early: {status}");
        }
        let statuses: Vec<_> = ids.iter().map(|id| coordinator.job_status(*id)).collect();
        let running = statuses
            .iter()
            .filter(|s| **s == Some(JobState::Running))
            .count();
        max_running = max_running.max(running);
        let images = images_with_prefix(&host, &prefix);
        let containers = containers_with_prefix(&host, &prefix);
        // Every image of this runner is a weighed job's: never more than
        // the quota at once (the weight is released after decommission).
        assert!(
            images.len() <= REFERENCE_JOBS_COUNT,
            "more job images than the quota allows: {images:?}"
        );
        seen_images.extend(images.iter().cloned());
        for name in &containers {
            if !inner_tomls.contains_key(name) {
                if let Some(text) = file_in_container(&host, name, INNER_RUNNER_TOML) {
                    inner_tomls.insert(name.clone(), text);
                }
            }
        }
        let all_over = statuses
            .iter()
            .all(|s| s.is_some_and(JobState::is_terminal));
        if all_over && images.is_empty() && containers.is_empty() {
            finished = true;
            break;
        }
        assert!(
            started.elapsed() < RUN_DEADLINE,
            "not done within {RUN_DEADLINE:?}: statuses {statuses:?}, images {images:?}, \
             containers {containers:?}"
        );
        std::thread::sleep(SAMPLE_EVERY);
    }
    assert!(finished, "sampling ended before the jobs were over");
    eprintln!(
        "{JOBS} jobs done and cleaned up in {:.1} s, at most {max_running} running at once, \
         {} inner runner.toml read",
        started.elapsed().as_secs_f64(),
        inner_tomls.len()
    );

    // Five successes, each with the stand-in's own trace lines.
    for id in &ids {
        assert_eq!(
            coordinator.job_status(*id),
            Some(JobState::Success),
            "job {id}"
        );
        let trace = coordinator.job_trace(*id).expect("known job");
        let trace = String::from_utf8_lossy(&trace);
        assert!(
            trace.contains("Running with sim-inner-runner") && trace.ends_with("Job succeeded\n"),
            "job {id} trace: {trace}"
        );
    }
    // Every job got its own image, named after the runner and the job.
    let expected: BTreeSet<String> = ids.iter().map(|id| format!("{prefix}{id}")).collect();
    assert_eq!(seen_images, expected);
    // Weight 1 per job: the quota bounds concurrency, and is used.
    assert!(
        max_running <= REFERENCE_JOBS_COUNT,
        "{max_running} jobs ran at once"
    );
    assert_eq!(
        max_running, REFERENCE_JOBS_COUNT,
        "the quota allows {REFERENCE_JOBS_COUNT} jobs at once, never reached"
    );
    // The inner configuration in the job images.
    assert!(
        !inner_tomls.is_empty(),
        "no job container could be inspected before its decommission"
    );
    for (container, text) in &inner_tomls {
        check_inner_runner_toml(container, text, &coordinator.url(), &token);
    }

    // A clean stop, with nothing left to decommission.
    let status = runner
        .terminate(Duration::from_secs(30))
        .expect("the runner stops within 30 s of SIGTERM");
    assert!(status.success(), "runner exit status {status}");
    let state = std::fs::read_to_string(&state_file).expect("state file written");
    for id in &ids {
        assert!(
            !state.contains(&format!("{prefix}{id}")),
            "job {id}'s resource still in the state file: {state}"
        );
    }
    assert!(images_with_prefix(&host, &prefix).is_empty());
    assert!(containers_with_prefix(&host, &prefix).is_empty());
}

/// An upgrade from a version that named a `glrt-` runner's resources with
/// the token's first 8 characters (`hpd-job-glrt-xxx-<job id>`): the real
/// binary resumes the job the state file records under that identity
/// (its container keeps running until the coordinator says the job is
/// over, then is deleted under its old name), and reconciliation finds the
/// image of a finished job the state does not know and deletes it.
#[test]
fn the_legacy_identity_s_container_is_resumed_and_its_orphan_reconciled() {
    use heptapod_paas_runner::executors::local_docker::{
        LocalDocker, LocalDockerSettings, LocalDockerTimeouts,
    };
    use paas_actors::ports::{Job, Paas};

    let test = "the_legacy_identity_s_container_is_resumed_and_its_orphan_reconciled";
    let Some(host) = docker_host(test) else {
        return;
    };
    let pid = std::process::id();
    let token = format!("glrt-{:03}legacy-e2e-token", pid % 1000);
    let legacy_prefix = format!("hpd-job-{}-", &token[..8]);
    let today_prefix = format!("hpd-job-{}-", &token[5..14]);
    let base = format!("hpr-e2e-legacy-inner-runner-{pid}");
    let coordinator = FakeCoordinator::start(CoordinatorConfig {
        runner_tokens: vec![token.clone()],
        ..CoordinatorConfig::default()
    })
    .expect("fake coordinator");
    let _cleanup = Cleanup {
        host: host.clone(),
        names: vec![base.clone()],
        prefixes: vec![legacy_prefix.clone(), today_prefix.clone()],
    };
    build_base_image(&host, &base);

    // The earlier version, as the executor named things then.
    let old = LocalDocker::new(LocalDockerSettings {
        host: host.clone(),
        network_mode: Some("host".to_string()),
        unique_name: token[..8].to_string(),
        legacy_unique_name: None,
        main_image: Some(base.clone()),
        inner_runner_toml: format!(
            "[[runners]]\nname = \"inner\"\nurl = \"{}\"\ntoken = \"glrt-inner\"\nexecutor = \"docker\"\n",
            coordinator.url()
        ),
        timeouts: LocalDockerTimeouts {
            build: Duration::from_secs(120),
            command: Duration::from_secs(60),
        },
    })
    .expect("valid settings");
    let job_of = |id: i64| {
        let payload = coordinator.job(id).expect("enqueued").payload;
        Job::from_payload(payload).expect("valid job")
    };
    // A: launched and running, recorded in the state file.
    let a = coordinator.enqueue_job(JobSpec::new("resumed").duration(Duration::from_secs(20)));
    assert!(coordinator.set_job_status(a, JobState::Running));
    // B: built, its job over, unknown to the state file.
    let b = coordinator.enqueue_job(JobSpec::new("orphan").duration(Duration::ZERO));
    assert!(coordinator.set_job_status(b, JobState::Success));
    let (job_a, job_b) = (job_of(a), job_of(b));
    actix_rt::System::new().block_on(async {
        let r = old.create(&job_a).await.expect("create");
        let r = old.prepare(&r, &job_a).await.expect("build");
        old.launch(&r, &job_a).await.expect("run");
        let r = old.create(&job_b).await.expect("create");
        old.prepare(&r, &job_b).await.expect("build");
    });
    let name_a = format!("{legacy_prefix}{a}");
    let name_b = format!("{legacy_prefix}{b}");
    assert_eq!(
        containers_with_prefix(&host, &legacy_prefix),
        vec![name_a.clone()]
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let state_file = dir.path().join("state.json");
    let state = serde_json::json!({
        "launched": [{
            "runner_name": &token[..8], "job_id": a, "token": job_a.token.expose(),
            "trace_offset": 0, "expected_weight": 1.0, "paas_resource": name_a,
        }],
        "pending": [],
        "to_decommission": [],
    });
    std::fs::write(&state_file, state.to_string()).expect("state");
    let config = dir.path().join("runner.toml");
    std::fs::write(
        &config,
        format!(
            r#"
state_file = "{state}"
check_interval = 0.2
job_progress_poll_interval = 0.3
shutdown_timeout = 20

[quota_computation]
reference_runner = "local"
reference_flavor = "M"
reference_jobs_count = 2

[[runners]]
name = "local"
url = "{url}"
token = "{token}"
executor = "local-docker"
host = "{host}"
local_docker_network_mode = "host"
heptapod_runner_main_image = "{base}"
"#,
            state = state_file.display(),
            url = coordinator.url(),
        ),
    )
    .expect("write config");
    let mut runner = Runner::start(&config, dir.path().join("runner.log"));

    // The orphan goes first (start-up reconciliation); the resumed job's
    // container stays until its job is over, then goes too.
    let started = Instant::now();
    let mut a_seen_running_after_b_gone = false;
    let mut done = false;
    for _ in 0..(RUN_DEADLINE.as_millis() / SAMPLE_EVERY.as_millis()) {
        if let Some(status) = runner.exited() {
            panic!("the runner exited early: {status}");
        }
        let images = images_with_prefix(&host, &legacy_prefix);
        let containers = containers_with_prefix(&host, &legacy_prefix);
        let a_over = coordinator.job_status(a).is_some_and(JobState::is_terminal);
        if !images.contains(&name_b) && containers.contains(&name_a) && !a_over {
            a_seen_running_after_b_gone = true;
        }
        if a_over && images.is_empty() && containers.is_empty() {
            done = true;
            break;
        }
        assert!(
            started.elapsed() < RUN_DEADLINE,
            "not done within {RUN_DEADLINE:?}: A {:?}, images {images:?}, containers \
             {containers:?}",
            coordinator.job_status(a)
        );
        std::thread::sleep(SAMPLE_EVERY);
    }
    assert!(done, "sampling ended before the resources were gone");
    assert!(
        a_seen_running_after_b_gone,
        "the orphan was not deleted while the resumed job ran"
    );
    assert_eq!(coordinator.job_status(a), Some(JobState::Success));
    // Nothing made under today's name, nothing left in the state.
    assert!(images_with_prefix(&host, &today_prefix).is_empty());
    let status = runner
        .terminate(Duration::from_secs(30))
        .expect("the runner stops within 30 s of SIGTERM");
    assert!(status.success(), "runner exit status {status}");
    let log = std::fs::read_to_string(dir.path().join("runner.log")).expect("log");
    assert!(!log.contains("unknown runner"), "{}", runner.log_tail());
    let state = std::fs::read_to_string(&state_file).expect("state file");
    assert!(
        !state.contains(&legacy_prefix) && !state.contains(&token[..8]),
        "{state}"
    );
}
