//! End to end, a job lost at acquisition: the real binary is SIGKILLed at
//! the moment the coordinator answers its job request (paas-sim hands the
//! job out and holds the answer), so GitLab shows the job running for this
//! runner while the state never heard of it. The restarted runner lists
//! the jobs GitLab shows running for its id (trace-watch token), cancels
//! and retries the lost one (a new job id, which it then runs), counts it,
//! and leaves alone the job its state knows.

use crate::common;

use common::{get, options, start_runner, stop_ok, tail, wait_until, E2e, STEP};
use paas_sim::coordinator::{Endpoint, JobSpec, JobState};
use paas_sim::world::WorldConfig;
use std::net::TcpListener;
use std::time::Duration;

fn job(name: &str, ms: u64) -> JobSpec {
    JobSpec {
        name: name.to_owned(),
        flavor: Some("XS".to_owned()),
        duration_ms: ms,
        ..JobSpec::default()
    }
}

/// The sum of every sample of `name` in a Prometheus text scrape.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let samples: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

const GIVEN_BACK: &str = "heptapod_paas_runner_jobs_given_back_total";

#[test]
fn a_job_lost_at_acquisition_is_cancelled_and_retried_after_a_restart() {
    let e = E2e::start(WorldConfig::default());
    let address = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address").to_string()
    };
    let config = e.write_config(
        options(),
        &[
            ("listen_address", toml::Value::from(address.as_str())),
            ("paas_give_back_grace", toml::Value::from(1)),
            ("reconcile_interval", toml::Value::from(2)),
        ],
    );
    let coordinator = e.world.coordinator().control();

    // A job the state knows, running across the kill.
    let known = e.world.enqueue(job("known", 10_000));
    let mut first = start_runner(&config, &e.log("first.log"), &[]);
    let started = wait_until(
        || e.status(known) == Some(JobState::Running) && first.log().contains("pushed"),
        Duration::from_secs(30),
        STEP,
    );
    assert!(started, "{}\n{}", e.describe(), tail(&first.log()));
    // Born at 0.
    let zero = wait_until(
        || {
            get(&address, "/metrics")
                .and_then(|(_, body)| metric_sum(&body, GIVEN_BACK))
                .is_some_and(|v| v == 0.0)
        },
        Duration::from_secs(10),
        STEP,
    );
    assert!(zero, "{GIVEN_BACK} not at 0 at start");

    // The lost job: handed out, its answer held, the runner killed then.
    coordinator.hold_job_answers(true);
    let lost = e.world.enqueue(job("lost", 500));
    let held = wait_until(
        || coordinator.job_answers_held() >= 1,
        Duration::from_secs(20),
        Duration::from_millis(5),
    );
    assert!(held, "the job request never took the job\n{}", e.describe());
    first
        .signal(nix::sys::signal::Signal::SIGKILL)
        .expect("SIGKILL");
    assert!(first
        .wait_timeout(Duration::from_secs(5))
        .expect("wait")
        .is_some());
    coordinator.hold_job_answers(false);
    assert_eq!(e.status(lost), Some(JobState::Running));
    let state = std::fs::read_to_string(e.state_file()).expect("state file");
    assert!(
        !state.contains(&format!("\"{lost}\"")) && !state.contains(&format!(":{lost},")),
        "the lost job reached the state file: {state}"
    );

    let mut second = start_runner(&config, &e.log("second.log"), &[]);
    let given_back = wait_until(
        || e.status(lost) == Some(JobState::Canceled),
        Duration::from_secs(30),
        STEP,
    );
    assert!(given_back, "{}\n{}", e.describe(), tail(&second.log()));
    // The retry is a new job of the same name, which the runner runs. It is
    // asked for after the cancel, by another request: wait for it.
    let retry_seen = wait_until(
        || {
            coordinator
                .jobs()
                .iter()
                .any(|j| j.name == "lost" && j.id != lost)
        },
        Duration::from_secs(10),
        STEP,
    );
    assert!(retry_seen, "{}\n{}", e.describe(), tail(&second.log()));
    let retried = coordinator
        .jobs()
        .into_iter()
        .find(|j| j.name == "lost" && j.id != lost)
        .map(|j| j.id)
        .expect("a new job for the retry");
    assert!(retried > lost);
    assert!(
        e.wait_done(&[known, retried], Duration::from_secs(60)),
        "{}\n{}",
        e.describe(),
        tail(&second.log())
    );
    assert_eq!(e.status(retried), Some(JobState::Success));
    // The known job was never given back.
    assert_eq!(e.status(known), Some(JobState::Success));
    let history = coordinator.job_history(known).expect("history");
    assert!(!history.contains(&JobState::Canceled), "{history:?}");

    let log = second.log();
    assert!(
        log.contains("lost at acquisition") && log.contains("WARN"),
        "{}",
        tail(&log)
    );
    let scraped = get(&address, "/metrics")
        .and_then(|(_, body)| metric_sum(&body, GIVEN_BACK))
        .expect("metric");
    assert_eq!(scraped, 1.0);
    // Asked with the runner's id and this host's runner manager.
    let lists = coordinator.requests_to(Endpoint::RunnerJobs);
    assert!(!lists.is_empty());
    assert!(
        lists
            .iter()
            .all(|r| r.query.contains("status=running") && r.query.contains("system_id=")),
        "{lists:?}"
    );
    assert_eq!(coordinator.requests_to(Endpoint::JobCancel).len(), 1);
    assert_eq!(coordinator.requests_to(Endpoint::JobRetry).len(), 1);
    stop_ok(&mut second, Duration::from_secs(20));
}
