//! Smoke: the real binary against paas-sim, a few jobs end to end.
use paas_sim::clever::config::{DEFAULT_ORG, DEFAULT_TOKEN};
use paas_sim::clever::{CleverSimConfig, FakeClever};
use paas_sim::coordinator::{CoordinatorConfig, FakeCoordinator, JobSpec, JobState};
use std::time::{Duration, Instant};

#[test]
fn smoke() {
    let clever = FakeClever::start(CleverSimConfig::default()).expect("clever");
    let coord = FakeCoordinator::start(CoordinatorConfig {
        runner_tokens: vec!["D3adNQYu8OCjkYDbwDaG".into()],
        admin_tokens: vec!["admintok".into()],
        ..CoordinatorConfig::default()
    })
    .expect("coord");
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
state_file = "{state}"
check_interval = 0.2
job_progress_poll_interval = 0.5
[quota_computation]
reference_runner = "cc"
reference_flavor = "M"
reference_jobs_count = 4
[[runners]]
name = "cc"
url = "{url}"
token = "D3adNQYu8OCjkYDbwDaG"
executor = "clever-docker"
cc_api_url = "{api}"
cc_orga_id = "{DEFAULT_ORG}"
cc_token = "{DEFAULT_TOKEN}"
cc_deployment_repo_wait_step = 0.05
cc_max_flavor = "L"
[runners.paas_job_trace_watch]
token = "admintok"
timeout_seconds = 10
poll_step = 0.2
[runners.cc_extra_env]
CC_ENABLE_HEPTAPOD_RUNNER = "true"
[runners.docker]
image = "debian:bookworm"
"#,
            state = dir.path().join("state.json").display(),
            url = coord.url(),
            api = clever.api_url()
        ),
    )
    .expect("write");
    let ids: Vec<i64> = (0..4)
        .map(|i| {
            coord.control().enqueue_job(JobSpec {
                duration_ms: 300,
                flavor: Some(["XS", "S", "M", "L"][i].into()),
                ..JobSpec::default()
            })
        })
        .collect();
    let log = std::fs::File::create("/tmp/smoke/runner.log").expect("log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_heptapod-paas-runner"))
        .arg(&cfg)
        .arg("-l")
        .arg("DEBUG")
        .stderr(log)
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        let done = ids.iter().all(|id| {
            matches!(
                coord.control().job_status(*id),
                Some(JobState::Success) | Some(JobState::Failed)
            )
        });
        let s = clever.control().summary();
        if done && s.live_count == 0 && s.apps_created >= 4 {
            break;
        }
        if start.elapsed() > Duration::from_secs(40) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = child.wait().expect("wait");
    let s = clever.control().summary();
    eprintln!(
        "summary: {s:?}\nstatuses: {:?}\nviolations: {:?}",
        ids.iter()
            .map(|id| coord.control().job_status(*id))
            .collect::<Vec<_>>(),
        clever.control().violations()
    );
    assert!(status.success(), "{status:?}");
    assert_eq!(s.apps_created, 4);
    assert!(s.leaks.is_empty());
}
