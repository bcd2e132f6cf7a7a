//! End to end, the monitoring endpoints of the real binary against paas-sim's
//! world, over real HTTP on 127.0.0.1: `/metrics` scraped during a run and
//! checked against the simulator's ledger, `/debug/jobs/list` against the
//! jobs running at the fake coordinator, `/healthz` before and during the
//! drain, `/readyz` while the coordinator fails and during the drain, a
//! refused delete and a refused runner token as the alerts see them, a
//! runner removed by SIGHUP leaving no series, a
//! bind failure refused at start-up, `promtool check metrics` on a live
//! scrape and `promtool test rules` on the shipped rules (skipped with a
//! printed reason when promtool is absent, outside CI only).

use crate::common;

use common::{assert_no_secret, get, options, start_runner, stop_ok, tail, wait_until, E2e, STEP};
use paas_sim::clever::{Endpoint as CleverEndpoint, FaultCommand, FaultKind};
use paas_sim::coordinator::{Endpoint, Fault, JobSpec, JobState};
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STOP: Duration = Duration::from_secs(15);

fn job(flavor: &str, ms: u64) -> JobSpec {
    JobSpec {
        flavor: Some(flavor.to_owned()),
        duration_ms: ms,
        ..JobSpec::default()
    }
}

/// A free port on 127.0.0.1 (bound, then released for the runner).
fn free_address() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local address");
    addr.to_string()
}

/// The value of the sample `name{labels}` (labels as written, in order), or
/// the sum over every sample of `name` when `labels` is `None`.
fn sample(text: &str, name: &str, labels: Option<&str>) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, l) = match series.split_once('{') {
            Some((n, l)) => (n, Some(l.trim_end_matches('}'))),
            None => (series, None),
        };
        if n != name {
            continue;
        }
        let v: f64 = value.parse().ok()?;
        match labels {
            Some(want) if l == Some(want) || (want.is_empty() && l.is_none()) => return Some(v),
            Some(_) => {}
            None => found = Some(found.unwrap_or(0.0) + v),
        }
    }
    found
}

/// The sum of the samples of `name` whose labels contain each of `parts`.
fn sum_where(text: &str, name: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series
                .split_once('{')
                .is_some_and(|(n, labels)| n == name && parts.iter().all(|p| labels.contains(p)))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

fn metric(text: &str, name: &str) -> f64 {
    sample(text, name, None).unwrap_or(0.0)
}

fn config_with_listen(e: &E2e, options: RunnerConfigOptions, address: &str) -> PathBuf {
    e.write_config(options, &[("listen_address", toml::Value::from(address))])
}

/// Waits (bounded) for a 200 from `/healthz`; its body.
fn wait_healthy(address: &str, runner: &paas_sim::runner_process::RunnerProcess) -> String {
    let mut body = None;
    let ok = wait_until(
        || match get(address, "/healthz") {
            Some((200, b)) => {
                body = Some(b);
                true
            }
            _ => false,
        },
        Duration::from_secs(20),
        STEP,
    );
    assert!(ok, "/healthz never answered 200\n{}", tail(&runner.log()));
    body.unwrap_or_default()
}

fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        // CI installs it (.ci/run): there, its absence is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool not found on PATH in CI (Debian package `prometheus`)"
        );
        eprintln!("promtool not found on PATH (Debian package `prometheus`): skipping its checks");
    }
    found
}

/// `promtool check metrics` on a scrape: exit status and output.
fn promtool_check_metrics(promtool: &PathBuf, text: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("promtool stdin");
    }
    let out = child.wait_with_output().expect("promtool output");
    let mut msg = String::from_utf8_lossy(&out.stdout).into_owned();
    msg.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), msg)
}

#[test]
fn metrics_scraped_during_a_run_match_the_simulator_ledger() {
    let e = E2e::start(WorldConfig::default());
    let address = free_address();
    let config = config_with_listen(
        &e,
        RunnerConfigOptions {
            quota_jobs: 2,
            ..options()
        },
        &address,
    );
    let quota = e.quota();
    let flavors = ["XS", "S", "M"];
    let ids: Vec<i64> = (0..10u64)
        .map(|i| {
            e.world
                .enqueue(job(flavors[(i % 3) as usize], 200 + 50 * (i % 4)))
        })
        .collect();
    let mut runner = start_runner(&config, &e.log("metrics.log"), &[]);
    wait_healthy(&address, &runner);

    // Scrape while the jobs run: the used weight never exceeds the limit,
    // and every tracked job is in exactly one phase.
    let mut scrapes = 0u32;
    let mut max_used = 0.0f64;
    let start = Instant::now();
    while !e.wait_done(&ids, Duration::ZERO) && start.elapsed() < Duration::from_secs(90) {
        if let Some((200, text)) = get(&address, "/metrics") {
            scrapes += 1;
            let limit = sample(
                &text,
                "heptapod_paas_runner_quota_weight",
                Some("kind=\"limit\""),
            )
            .expect("quota limit");
            let used = sample(
                &text,
                "heptapod_paas_runner_quota_weight",
                Some("kind=\"used\""),
            )
            .expect("quota used");
            assert!(
                (limit - quota).abs() < 1e-6,
                "limit {limit} vs quota {quota}"
            );
            assert!(
                used <= limit + 1e-6,
                "used {used} above limit {limit}\n{text}"
            );
            max_used = max_used.max(used);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        e.wait_done(&ids, Duration::from_secs(5)),
        "not all done\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );
    assert!(scrapes >= 3, "only {scrapes} scrapes during the run");
    assert!(max_used > 0.0, "no weight ever seen in use");

    // The counters catch up with the ledger once the last delete answered.
    let summary = e.world.summary();
    let acquired = e
        .world
        .coordinator()
        .jobs()
        .iter()
        .filter(|j| j.runner_id.is_some())
        .count() as f64;
    let mut last = String::new();
    let matched = wait_until(
        || {
            let Some((200, text)) = get(&address, "/metrics") else {
                return false;
            };
            last = text;
            metric(&last, "heptapod_paas_runner_jobs_acquired_total") == acquired
                && metric(&last, "heptapod_paas_runner_resources_created_total")
                    == summary.apps_created as f64
                && metric(&last, "heptapod_paas_runner_resources_deleted_total")
                    == summary.apps_deleted as f64
                && metric(&last, "heptapod_paas_runner_jobs") == 0.0
        },
        Duration::from_secs(10),
        STEP,
    );
    assert!(
        matched,
        "metrics vs ledger: acquired {acquired}, created {}, deleted {}\n{last}",
        summary.apps_created, summary.apps_deleted
    );
    assert_eq!(acquired, 10.0);
    assert_eq!(
        metric(&last, "heptapod_paas_runner_start_duration_seconds_count"),
        10.0,
        "{last}"
    );
    assert_eq!(
        metric(
            &last,
            "heptapod_paas_runner_provision_duration_seconds_count"
        ),
        10.0,
        "{last}"
    );
    assert_eq!(
        metric(&last, "heptapod_paas_runner_decommission_lag_seconds_count"),
        10.0,
        "{last}"
    );
    assert_eq!(
        metric(&last, "heptapod_paas_runner_launch_failures_total"),
        0.0
    );
    assert!(metric(&last, "heptapod_paas_runner_state_writes_total") > 0.0);
    assert_eq!(
        metric(&last, "heptapod_paas_runner_state_write_errors_total"),
        0.0
    );
    let runner_name = "sim-runner-1";
    for (name, labels) in [
        (
            "heptapod_paas_runner_coordinator_up",
            format!("runner=\"{runner_name}\""),
        ),
        (
            "heptapod_paas_runner_version_info",
            format!(
                "version=\"{}\",revision=\"{}\"",
                env!("CARGO_PKG_VERSION"),
                heptapod_paas_runner::build_info::REVISION
            ),
        ),
    ] {
        assert_eq!(
            sample(&last, name, Some(&labels)),
            Some(1.0),
            "{name}{{{labels}}}\n{last}"
        );
    }
    let polled = sample(
        &last,
        "heptapod_paas_runner_last_successful_poll_timestamp_seconds",
        Some(&format!("runner=\"{runner_name}\"")),
    )
    .unwrap_or(0.0);
    assert!(polled > 1.7e9, "last successful poll {polled}\n{last}");
    // Requests per API and route, from the clients themselves.
    let api = "heptapod_paas_runner_api_requests_total";
    let creates = summary
        .clever_requests
        .get("create_app")
        .copied()
        .unwrap_or(0) as f64;
    assert_eq!(
        sum_where(&last, api, &["api=\"clever\"", "endpoint=\"create-app\""]),
        creates,
        "{last}"
    );
    assert_eq!(
        sum_where(
            &last,
            api,
            &["api=\"git\"", "endpoint=\"push\"", "status=\"ok\""]
        ),
        10.0,
        "{last}"
    );
    assert!(
        sum_where(
            &last,
            api,
            &[
                "api=\"gitlab\"",
                "endpoint=\"job request\"",
                "status=\"201\""
            ]
        ) >= 10.0,
        "{last}"
    );
    // Every API request carries its runner section.
    let runner_label = format!("runner=\"{runner_name}\"");
    assert_eq!(
        sum_where(&last, api, &[&runner_label]),
        metric(&last, api),
        "{last}"
    );
    // Job outcomes and durations, the runner's state at rest.
    for (name, labels, want) in [
        (
            "heptapod_paas_runner_jobs_finished_total",
            format!("{runner_label},outcome=\"finished\""),
            10.0,
        ),
        (
            "heptapod_paas_runner_jobs_finished_total",
            format!("{runner_label},outcome=\"launch_failed\""),
            0.0,
        ),
        (
            "heptapod_paas_runner_runner_wants_jobs",
            runner_label.clone(),
            1.0,
        ),
        (
            "heptapod_paas_runner_runner_token_valid",
            runner_label.clone(),
            1.0,
        ),
        (
            "heptapod_paas_runner_oldest_refused_delete_age_seconds",
            runner_label.clone(),
            0.0,
        ),
        (
            "heptapod_paas_runner_decommission_failures_total",
            format!("{runner_label},class=\"permanent\""),
            0.0,
        ),
    ] {
        assert_eq!(
            sample(&last, name, Some(&labels)),
            Some(want),
            "{name}{{{labels}}}\n{last}"
        );
    }
    assert_eq!(
        metric(&last, "heptapod_paas_runner_job_duration_seconds_count"),
        10.0,
        "{last}"
    );
    // The bill: each flavor run, in the simulator's organisation.
    let bill = "heptapod_paas_runner_resource_seconds_total";
    for flavor in flavors {
        let seconds = sum_where(
            &last,
            bill,
            &[&runner_label, &format!("flavor=\"{flavor}\"")],
        );
        assert!(seconds > 0.0, "{flavor}: {seconds}\n{last}");
    }
    assert_eq!(
        sum_where(&last, bill, &["organisation=\"\""]),
        0.0,
        "{last}"
    );
    assert_eq!(sum_where(&last, bill, &["flavor=\"\""]), 0.0, "{last}");
    assert!(
        sample(
            &last,
            "heptapod_paas_runner_errors_total",
            Some("level=\"warn\"")
        )
        .is_some(),
        "{last}"
    );
    // The process, from /proc.
    let process = |name: &str| sample(&last, name, Some("")).unwrap_or(f64::NAN);
    assert!(process("process_resident_memory_bytes") > 1e6, "{last}");
    assert!(process("process_cpu_seconds_total") > 0.0, "{last}");
    assert!(process("process_open_fds") > 0.0, "{last}");
    assert!(
        process("process_max_fds") >= process("process_open_fds"),
        "{last}"
    );
    let started = process("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    assert!(
        started <= now && started > now - 600.0,
        "started {started}, now {now}"
    );
    assert_no_secret(&e.world, &last, &[]);
    if let Some(promtool) = promtool() {
        let (ok, msg) = promtool_check_metrics(&promtool, &last);
        assert!(ok, "promtool check metrics: {msg}\n{last}");
    }
    e.assert_clean(10);
    stop_ok(&mut runner, STOP);
}

#[test]
fn job_list_shows_the_jobs_running_at_the_coordinator() {
    let e = E2e::start(WorldConfig::default());
    let address = free_address();
    let config = config_with_listen(
        &e,
        RunnerConfigOptions {
            quota_jobs: 3,
            ..options()
        },
        &address,
    );
    let ids: Vec<i64> = (0..3).map(|_| e.world.enqueue(job("S", 6_000))).collect();
    let mut runner = start_runner(&config, &e.log("jobs.log"), &[]);
    wait_healthy(&address, &runner);
    let want: BTreeSet<i64> = ids.iter().copied().collect();
    let mut last = serde_json::Value::Null;
    let seen = wait_until(
        || {
            let running: BTreeSet<i64> = ids
                .iter()
                .copied()
                .filter(|id| e.status(*id) == Some(JobState::Running))
                .collect();
            let Some((200, body)) = get(&address, "/debug/jobs/list") else {
                return false;
            };
            let Ok(list) = serde_json::from_str::<serde_json::Value>(&body) else {
                return false;
            };
            let started: BTreeSet<i64> = list
                .as_array()
                .into_iter()
                .flatten()
                .filter(|j| j["phase"] == "started")
                .filter_map(|j| j["job_id"].as_i64())
                .collect();
            last = list;
            running == want && started == want
        },
        Duration::from_secs(30),
        STEP,
    );
    assert!(seen, "job list vs coordinator\n{last:#}\n{}", e.describe());
    let apps = e.world.clever().control().apps();
    for j in last.as_array().into_iter().flatten() {
        assert_eq!(j["runner"], "sim-runner-1", "{j}");
        let identity: String = e.world.runner_tokens()[0].chars().skip(5).take(9).collect();
        assert_eq!(j["unique_name"], identity.as_str(), "{j}");
        assert!(j["weight"].as_f64().is_some_and(|w| w > 0.0), "{j}");
        assert!(j["since"].as_f64().is_some_and(|s| s >= 0.0), "{j}");
        let id = j["resource"]["id"].as_str().expect("resource id");
        let name = j["resource"]["name"].as_str().expect("resource name");
        assert!(
            apps.iter().any(|a| a.id == id && a.name == name),
            "{j} not among the apps"
        );
        let keys: BTreeSet<&str> = j
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            BTreeSet::from([
                "job_id",
                "runner",
                "unique_name",
                "phase",
                "weight",
                "resource",
                "since"
            ])
        );
    }
    assert_no_secret(&e.world, &last.to_string(), &[]);
    assert!(
        e.wait_done(&ids, Duration::from_secs(40)),
        "{}",
        e.describe()
    );
    stop_ok(&mut runner, STOP);
}

#[test]
fn healthz_answers_503_during_the_drain() {
    let e = E2e::start(WorldConfig::default());
    let address = free_address();
    let config = config_with_listen(&e, options(), &address);
    let mut runner = start_runner(&config, &e.log("healthz.log"), &[]);
    let body = wait_healthy(&address, &runner);
    assert_eq!(body.lines().count(), 1, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(h["status"], "ok", "{body}");
    // A create that takes 4 s keeps the drain waiting for it.
    e.world.clever().control().fault(FaultCommand::Latency {
        endpoint: CleverEndpoint::CreateApp,
        latency_ms: 4_000,
    });
    let id = e.world.enqueue(job("S", 100));
    assert!(
        wait_until(
            || e.world
                .clever()
                .control()
                .summary()
                .requests
                .contains_key(&CleverEndpoint::CreateApp),
            Duration::from_secs(20),
            Duration::from_millis(20)
        ),
        "no create started for job {id}\n{}",
        tail(&runner.log())
    );
    runner
        .signal(nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    let drained = wait_until(
        || {
            get(&address, "/healthz").is_some_and(|(s, b)| {
                s == 503 && b.contains("\"status\":\"draining\"") && b.lines().count() == 1
            })
        },
        Duration::from_secs(3),
        Duration::from_millis(20),
    );
    assert!(drained, "no 503 during the drain\n{}", tail(&runner.log()));
    let (status, body) = get(&address, "/readyz").unwrap_or_default();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"reason\":\"draining\""), "{body}");
    let status = runner.wait_timeout(STOP).expect("exit");
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{}",
        tail(&runner.log())
    );
    assert!(
        get(&address, "/healthz").is_none(),
        "the endpoints stop with the service"
    );
}

/// Waits (bounded) until `path` answers `status` with a body containing
/// `part`; the last answer.
fn wait_answer(address: &str, path: &str, status: u16, part: &str) -> (bool, String) {
    let mut last = String::new();
    let ok = wait_until(
        || match get(address, path) {
            Some((s, b)) => {
                let hit = s == status && b.contains(part);
                last = format!("{s} {b}");
                hit
            }
            None => false,
        },
        Duration::from_secs(20),
        STEP,
    );
    (ok, last)
}

#[test]
fn readyz_says_why_no_job_can_be_taken_while_healthz_stays_ok() {
    let e = E2e::start(WorldConfig::default());
    let address = free_address();
    let config = config_with_listen(&e, options(), &address);
    let mut runner = start_runner(&config, &e.log("readyz.log"), &[]);
    wait_healthy(&address, &runner);
    let (ready, last) = wait_answer(&address, "/readyz", 200, "\"status\":\"ready\"");
    assert!(ready, "{last}\n{}", tail(&runner.log()));
    // The coordinator answers every job request with a 502.
    e.world
        .coordinator()
        .inject_fault(Endpoint::JobsRequest, Fault::status(502, 100_000));
    let (down, last) = wait_answer(&address, "/readyz", 503, "\"reason\":\"coordinators_down\"");
    assert!(down, "{last}\n{}", tail(&runner.log()));
    assert_eq!(last.lines().count(), 1, "one line: {last}");
    assert!(last.contains("\"detail\":"), "{last}");
    // Liveness is another matter: the service answers.
    assert_eq!(get(&address, "/healthz").map(|(s, _)| s), Some(200));
    e.world.coordinator().clear_faults();
    let (ready, last) = wait_answer(&address, "/readyz", 200, "\"status\":\"ready\"");
    assert!(ready, "ready again after an answered poll: {last}");
    // A job is taken again.
    let id = e.world.enqueue(job("XS", 100));
    assert!(
        e.wait_done(&[id], Duration::from_secs(40)),
        "{}",
        e.describe()
    );
    stop_ok(&mut runner, STOP);
}

/// The failures the alerts are for, on the real binary: a deletion the
/// Clever API refuses (401: a revoked token) is counted at once and ages;
/// a runner token the coordinator refuses (403) is a coordinator that is
/// up with an invalid token, not an outage.
#[test]
fn a_refused_delete_and_a_refused_token_show_in_the_metrics() {
    let e = E2e::start(WorldConfig::default());
    let address = free_address();
    let config = config_with_listen(&e, options(), &address);
    let mut runner = start_runner(&config, &e.log("refusals.log"), &[]);
    wait_healthy(&address, &runner);
    let runner_label = "runner=\"sim-runner-1\"";
    let failures = format!("{runner_label},class=\"permanent\"");
    let scrape = || {
        get(&address, "/metrics")
            .map(|(_, t)| t)
            .unwrap_or_default()
    };
    let value = |text: &str, name: &str, labels: &str| sample(text, name, Some(labels));
    let mut last = String::new();
    let born = wait_until(
        || {
            last = scrape();
            value(
                &last,
                "heptapod_paas_runner_decommission_failures_total",
                &failures,
            ) == Some(0.0)
                && value(&last, "heptapod_paas_runner_coordinator_up", runner_label) == Some(1.0)
                && value(
                    &last,
                    "heptapod_paas_runner_runner_token_valid",
                    runner_label,
                ) == Some(1.0)
        },
        Duration::from_secs(20),
        STEP,
    );
    assert!(born, "series at 0, coordinator up, token valid\n{last}");

    e.world.clever().control().fault(FaultCommand::FailNext {
        endpoint: CleverEndpoint::DeleteApp,
        count: 1000,
        fault: FaultKind::status(401),
    });
    let id = e.world.enqueue(job("XS", 100));
    let refused = wait_until(
        || {
            last = scrape();
            value(
                &last,
                "heptapod_paas_runner_decommission_failures_total",
                &failures,
            ) == Some(1.0)
        },
        Duration::from_secs(60),
        STEP,
    );
    assert!(
        refused,
        "one refused delete counted\n{last}\n{}",
        tail(&runner.log())
    );
    assert!(
        e.world.clever().control().summary().live_count == 1,
        "job {id}'s application stays: {}",
        e.describe()
    );
    std::thread::sleep(Duration::from_millis(1100));
    let text = scrape();
    let age = value(
        &text,
        "heptapod_paas_runner_oldest_refused_delete_age_seconds",
        runner_label,
    )
    .unwrap_or(0.0);
    assert!(age >= 1.0, "the refusal ages: {age}\n{text}");
    assert_eq!(
        value(
            &text,
            "heptapod_paas_runner_jobs",
            &format!("{runner_label},phase=\"decommissioning\"")
        ),
        Some(1.0),
        "{text}"
    );

    e.world
        .coordinator()
        .inject_fault(Endpoint::JobsRequest, Fault::status(403, 100_000));
    let told_apart = wait_until(
        || {
            last = scrape();
            value(
                &last,
                "heptapod_paas_runner_runner_token_valid",
                runner_label,
            ) == Some(0.0)
        },
        Duration::from_secs(60),
        STEP,
    );
    assert!(told_apart, "token refused\n{last}\n{}", tail(&runner.log()));
    assert_eq!(
        value(&last, "heptapod_paas_runner_coordinator_up", runner_label),
        Some(1.0),
        "the coordinator answered: not an outage\n{last}"
    );
    stop_ok(&mut runner, STOP);
}

/// A runner section removed by SIGHUP leaves no series behind (no alert
/// on a runner that no longer exists), the other runner's stay.
#[test]
fn a_runner_removed_by_sighup_leaves_no_series() {
    let e = E2e::start(WorldConfig {
        runner_tokens: 2,
        ..WorldConfig::default()
    });
    let address = free_address();
    let two = RunnerConfigOptions {
        runners: 2,
        ..options()
    };
    let config = config_with_listen(&e, two, &address);
    let mut runner = start_runner(&config, &e.log("removed.log"), &[]);
    wait_healthy(&address, &runner);
    let scrape = || {
        get(&address, "/metrics")
            .map(|(_, t)| t)
            .unwrap_or_default()
    };
    let mut last = String::new();
    let polled_both = wait_until(
        || {
            last = scrape();
            ["sim-runner-1", "sim-runner-2"].iter().all(|r| {
                let labels = format!("runner=\"{r}\"");
                sample(&last, "heptapod_paas_runner_coordinator_up", Some(&labels)) == Some(1.0)
            })
        },
        Duration::from_secs(30),
        STEP,
    );
    assert!(polled_both, "both runners polled\n{last}");

    let one = config_with_listen(&e, options(), &address);
    assert_eq!(one, config, "test set-up: one configuration path");
    runner
        .signal(nix::sys::signal::Signal::SIGHUP)
        .expect("SIGHUP");
    let gone = wait_until(
        || {
            last = scrape();
            !last.is_empty() && !last.contains("sim-runner-2")
        },
        Duration::from_secs(15),
        STEP,
    );
    assert!(
        gone,
        "no series of the removed runner\n{last}\n{}",
        tail(&runner.log())
    );
    for name in [
        "heptapod_paas_runner_coordinator_up",
        "heptapod_paas_runner_runner_wants_jobs",
    ] {
        assert_eq!(
            sample(&last, name, Some("runner=\"sim-runner-1\"")),
            Some(1.0),
            "{name}\n{last}"
        );
    }
    stop_ok(&mut runner, STOP);
}

#[test]
fn a_listen_address_in_use_is_a_start_up_error() {
    let e = E2e::start(WorldConfig::default());
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let config = e.write_config(options(), &[]);
    let (code, _out, err) = common::run_to_end(
        &[
            config.as_os_str(),
            std::ffi::OsStr::new("--listen-address"),
            std::ffi::OsStr::new(&address),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("listen_address"), "{err}");
    assert!(err.contains(&address), "{err}");
    drop(taken);
}

/// The metric names a text refers to (`heptapod_paas_runner_…`), with the
/// histogram suffixes removed.
fn referenced_metrics(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(paas_actors::metrics::PREFIX) {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(base.to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn deploy_rules_and_dashboard_use_metrics_the_runner_exports() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let rules = root.join("prometheus/heptapod-paas-runner.rules.yml");
    let rules_test = root.join("prometheus/heptapod-paas-runner.rules.test.yml");
    let dashboard = root.join("grafana/heptapod-paas-runner.json");
    let rules_text = std::fs::read_to_string(&rules).expect("rules file");
    let dashboard_text = std::fs::read_to_string(&dashboard).expect("dashboard file");
    let dash: serde_json::Value = serde_json::from_str(&dashboard_text).expect("dashboard JSON");
    let exprs: Vec<&str> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");

    // Every family the runner exports, from a registry with one runner and
    // a sample in each family.
    use paas_actors::metrics::{Api, ApiStatus};
    let m = paas_actors::metrics::Metrics::new();
    m.set_version("0", "unknown");
    m.add_runner("r", &["started"]);
    m.set_quota(1.0, 0.5, 0.0);
    m.api_request("r", Api::Gitlab, "job request", ApiStatus::Http(201));
    m.decommission_failed("r", "transient");
    m.polled("r");
    let exported: BTreeSet<String> = m
        .encode()
        .expect("encode")
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let mut used = referenced_metrics(&rules_text);
    used.extend(exprs.iter().flat_map(|e| referenced_metrics(e)));
    let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "unknown metrics {unknown:?}; exported {exported:?}"
    );
    for family in [
        "quota_weight",
        "jobs",
        "launch_failures_total",
        "api_requests_total",
        "provision_duration_seconds",
        "decommission_lag_seconds",
        "oldest_refused_delete_age_seconds",
        "resource_seconds_total",
        "jobs_finished_total",
        "runner_token_valid",
    ] {
        let name = format!("{}_{family}", paas_actors::metrics::PREFIX);
        assert!(
            exprs.iter().any(|e| e.contains(&name)),
            "dashboard lacks {name}"
        );
    }
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("process_resident_memory_bytes")),
        "dashboard lacks the process memory"
    );
    // The errors panel leaves out the job status 401/403 that ends a job.
    let errors = exprs
        .iter()
        .find(|e| e.contains("status!~\"2..|ok\""))
        .expect("an API errors query");
    assert!(
        errors.contains("unless") && errors.contains("endpoint=\"job status\",status=~\"401|403\""),
        "{errors}"
    );

    let Some(promtool) = promtool() else { return };
    for args in [vec!["check", "rules"], vec!["test", "rules"]] {
        let file = if args[0] == "check" {
            &rules
        } else {
            &rules_test
        };
        let out = Command::new(&promtool)
            .args(&args)
            .arg(file)
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
