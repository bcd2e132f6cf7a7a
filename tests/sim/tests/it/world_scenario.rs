//! Scenario files: the example parses into the expected jobs and faults,
//! every kind of mistake is refused with the culprit key named, and a
//! schedule plays jobs and faults on time against a world.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use paas_sim::clever::{FaultCommand, HelperFaultCommand};
use paas_sim::coordinator::Outcome;
use paas_sim::scenario::{FaultAction, Scenario, Schedule};
use paas_sim::world::{wait_until, World};

fn example() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/example.toml");
    match Scenario::load(&path) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn parse_err(text: &str) -> String {
    match Scenario::parse(text, "t.toml") {
        Ok(s) => panic!("accepted: {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_example_scenario_parses() {
    let s = example();
    assert_eq!(s.world.tenants, ["acme", "beta"]);
    assert_eq!(s.world.runner_tokens, 2);
    assert!(s.runner.multi_tenant);
    assert_eq!(s.runner.runners, 2);
    assert_eq!(s.runner.check_interval, Duration::from_millis(200));
    assert_eq!(s.jobs.len(), 11);
    let builds: Vec<_> = s
        .jobs
        .iter()
        .filter(|j| j.spec.name.starts_with("build-"))
        .collect();
    assert_eq!(builds.len(), 6);
    assert!(builds
        .iter()
        .all(|j| j.spec.root_namespace == "acme" && j.spec.flavor.as_deref() == Some("S")));
    assert_eq!(
        builds.iter().map(|j| j.at.as_millis()).max(),
        Some(1500),
        "six builds 300 ms apart"
    );
    let lint_failed = s
        .jobs
        .iter()
        .filter(|j| j.spec.name.starts_with("lint-") && j.spec.outcome == Outcome::Failed)
        .count();
    assert_eq!(lint_failed, 4);
    let integ = s.jobs.iter().find(|j| j.spec.name == "integration");
    assert!(
        integ.is_some_and(|j| j.spec.dependency_proxy_prefix.is_some()
            && j.spec.services == ["postgres:16", "redis:7"])
    );
    assert!(
        s.jobs.windows(2).all(|w| w[0].at <= w[1].at),
        "sorted by time"
    );
    assert_eq!(s.last_job_at(), Duration::from_millis(3500));
    let actions: Vec<(u128, &FaultAction)> = s
        .faults
        .iter()
        .map(|f| (f.at.as_millis(), &f.action))
        .collect();
    assert_eq!(actions.len(), 3);
    assert!(matches!(
        actions.first(),
        Some((
            1000,
            FaultAction::Clever(FaultCommand::FailNext { count: 2, .. })
        ))
    ));
    assert_eq!(
        actions.get(1),
        Some(&(4000, &FaultAction::CoordinatorDown(true)))
    );
    assert_eq!(
        actions.get(2),
        Some(&(6000, &FaultAction::CoordinatorDown(false)))
    );
}

#[test]
fn a_service_scenario_sets_helper_timing_options_and_faults() {
    let text = "[timing]\nhelper_boot_delay_ms = 700\nhelper_start_delay_ms = 30\n\
                [runner]\nservice = true\nkeep_for_reuse_ms = 2500\nmax_jobs_per_resource = 3\n\
                [[faults]]\nkind = \"helper_die_on_standby\"\nat_ms = 10\n\
                [[faults]]\nkind = \"helper_refuse_launch\"\nat_ms = 20\ncount = 2\n\
                [[faults]]\nkind = \"helper_never_ready\"\nat_ms = 30\n";
    let s = match Scenario::parse(text, "service.toml") {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(s.world.timing.helper_boot_delay, Duration::from_millis(700));
    assert_eq!(s.world.timing.helper_start_delay, Duration::from_millis(30));
    let service = s.runner.service.clone();
    assert_eq!(
        service
            .as_ref()
            .map(|o| (o.keep_for_reuse, o.max_jobs_per_resource, o.ready_timeout)),
        Some((Duration::from_millis(2500), Some(3), None))
    );
    let actions: Vec<&FaultAction> = s.faults.iter().map(|f| &f.action).collect();
    assert_eq!(
        actions,
        [
            &FaultAction::Helper(HelperFaultCommand::DieOnStandby { count: 1 }),
            &FaultAction::Helper(HelperFaultCommand::RefuseLaunch {
                count: 2,
                retry_after_s: None
            }),
            &FaultAction::Helper(HelperFaultCommand::NeverReady { count: 1 }),
        ]
    );
    assert!(example().runner.service.is_none());
}

#[test]
fn an_empty_scenario_takes_the_defaults() {
    let s = match Scenario::parse("", "empty.toml") {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert!(s.jobs.is_empty() && s.faults.is_empty());
    assert_eq!(s.world.tenants, ["group"]);
    assert!(!s.runner.multi_tenant);
}

#[test]
fn mistakes_are_refused_naming_the_key() {
    let cases: &[(&str, &[&str])] = &[
        ("[[jobs]]\ndurration_ms = 5\n", &["durration_ms", "line 2"]),
        ("[runner]\ncheck_interval = 1\n", &["check_interval", "line 2"]),
        ("[[jobs]]\nduration_ms = \"long\"\n", &["duration_ms"]),
        ("this is not toml", &["t.toml"]),
        (
            "[world]\ntenants = [\"a\"]\n[[jobs]]\n[[jobs]]\ntenant = \"b\"\n",
            &["jobs[1].tenant", "unknown tenant \"b\"", "a"],
        ),
        ("[[jobs]]\nflavor = \"XXL\"\n", &["jobs[0].flavor", "XXL", "3XL"]),
        ("[[jobs]]\noutcome = \"ok\"\n", &["jobs[0].outcome", "\"ok\""]),
        ("[[jobs]]\ncount = 0\n", &["jobs[0].count"]),
        ("[[jobs]]\ncount = 20000\n", &["jobs[0].count", "10000"]),
        ("[world]\ntenants = []\n", &["world.tenants"]),
        ("[world]\ntenants = [\"a/b\"]\n", &["world.tenants[0]"]),
        ("[world]\ntenants = [\"a\", \"a\"]\n", &["world.tenants[1]", "twice"]),
        ("[world]\nrunner_tokens = 1\n[runner]\nrunners = 2\n", &["runner.runners"]),
        ("[runner]\nquota_jobs = 0\n", &["runner.quota_jobs"]),
        ("[runner]\ncheck_interval_ms = 0\n", &["runner.check_interval_ms"]),
        ("[runner]\nmax_flavor = \"huge\"\n", &["runner.max_flavor", "huge"]),
        ("[[faults]]\nkind = \"meteor\"\n", &["faults[0].kind", "meteor", "clever_outage"]),
        ("[[faults]]\nkind = \"coordinator_down\"\nfrom_ms = 5\n", &["faults[0].until_ms", "required"]),
        (
            "[[faults]]\nkind = \"coordinator_down\"\nfrom_ms = 5\nuntil_ms = 5\n",
            &["faults[0].until_ms", "after from_ms"],
        ),
        ("[[faults]]\nkind = \"clever_errors\"\nendpoint = \"create_app\"\n", &["faults[0].at_ms"]),
        (
            "[[faults]]\nkind = \"clever_errors\"\nat_ms = 1\nendpoint = \"nowhere\"\n",
            &["faults[0].endpoint", "nowhere", "create_app"],
        ),
        (
            "[[faults]]\nkind = \"coordinator_errors\"\nat_ms = 1\nendpoint = \"nowhere\"\n",
            &["faults[0].endpoint", "jobs_request"],
        ),
        (
            "[[faults]]\nkind = \"coordinator_errors\"\nat_ms = 1\nendpoint = \"jobs_request\"\nstatus = 9000\n",
            &["faults[0].status", "9000"],
        ),
        ("[[faults]]\nkind = \"clever_errors\"\nat_ms = 1\nendpoint = \"create_app\"\ncount = 0\n", &["faults[0].count"]),
        ("[[faults]]\nkind = \"clever_latency\"\nfrom_ms = 1\nuntil_ms = 2\nendpoint = \"get_app\"\n", &["faults[0].latency_ms"]),
        ("[[faults]]\nat_ms = 1\n", &["kind"]),
        ("[runner]\nkeep_for_reuse_ms = 5\n", &["runner.keep_for_reuse_ms", "runner.service"]),
        ("[runner]\nservice = true\nmax_jobs_per_resource = 0\n", &["runner.max_jobs_per_resource"]),
        ("[[faults]]\nkind = \"helper_never_ready\"\n", &["faults[0].at_ms"]),
    ];
    for (text, needles) in cases {
        let err = parse_err(text);
        for n in *needles {
            assert!(err.contains(n), "error for {text:?} lacks {n:?}: {err}");
        }
        assert!(err.contains("t.toml"), "{err}");
    }
    let missing = Scenario::load(Path::new("/nonexistent/scenario.toml")).err();
    assert!(missing.is_some_and(|e| e.to_string().contains("/nonexistent/scenario.toml")));
}

/// Status code of `POST /api/v4/jobs/request` (raw HTTP/1.1, no keep-alive).
fn jobs_request_status(base: &str, token: &str) -> Option<u16> {
    let addr = base.strip_prefix("http://")?;
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = format!("{{\"token\":\"{token}\"}}");
    let req = format!(
        "POST /api/v4/jobs/request HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(buf.get(..n)?).into_owned();
    head.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_schedule_plays_jobs_and_faults_on_time() {
    let text = r#"
        [[jobs]]
        count = 3
        every_ms = 200
        name = "j"
        [[jobs]]
        start_ms = 800
        name = "late"
        [[faults]]
        kind = "coordinator_down"
        from_ms = 300
        until_ms = 700
        [[faults]]
        kind = "clever_errors"
        endpoint = "create_app"
        at_ms = 100
        count = 2
        status = 503
    "#;
    let scenario = match Scenario::parse(text, "inline") {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let world = match World::start(scenario.world.clone()) {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    };
    let url = world.coordinator().url();
    let token = world.runner_tokens().first().cloned().unwrap_or_default();
    // nothing happens before the schedule starts
    assert_eq!(world.coordinator().jobs().len(), 0);
    let schedule = Schedule::start(&world, &scenario);
    assert!(wait_until(
        || world.coordinator().jobs().len() >= 2,
        Duration::from_secs(5),
        Duration::from_millis(10)
    ));
    let down = wait_until(
        || jobs_request_status(&url, "unknown-token") == Some(502),
        Duration::from_secs(5),
        Duration::from_millis(20),
    );
    assert!(down, "the coordinator never went down");
    assert!(wait_until(
        || schedule.is_done(),
        Duration::from_secs(5),
        Duration::from_millis(10)
    ));
    let names: Vec<String> = world
        .coordinator()
        .jobs()
        .into_iter()
        .map(|j| j.name)
        .collect();
    assert_eq!(names, ["j-1", "j-2", "j-3", "late"]);
    // back up: a known runner gets a job
    assert_eq!(jobs_request_status(&url, &token), Some(201));
    schedule.stop();
    let snapshot = http_get(&format!("{}/faults", world.clever().sim_url()));
    assert!(
        snapshot.contains("create_app") && snapshot.contains("503"),
        "{snapshot}"
    );
    world.shutdown();
}

/// Body of a plain GET (raw HTTP/1.1).
fn http_get(url: &str) -> String {
    let Some(rest) = url.strip_prefix("http://") else {
        return String::new();
    };
    let Some((addr, path)) = rest.split_once('/') else {
        return String::new();
    };
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
