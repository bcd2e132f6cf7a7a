//! End to end, `heptapod-paas-runner run` (the real binary) against paas-sim:
//! many jobs through two runner sections under the weighted quota, two
//! tenants, launch failures, and a coordinator outage. Every run ends with a
//! SIGTERM (exit 0) and a check that no token used appears in the log.

mod common;

use common::{assert_no_secret, job_of_app, wait_until, Runner, Sim};
use paas_sim::clever::{
    CleverSimConfig, Endpoint as CleverEndpoint, FaultCommand, FaultKind, OrgSeed,
};
use paas_sim::coordinator::{JobSpec, JobState};
use std::time::Duration;

const STOP: Duration = Duration::from_secs(15);

fn job(flavor: &str, ms: u64) -> JobSpec {
    JobSpec {
        flavor: Some(flavor.to_owned()),
        duration_ms: ms,
        ..JobSpec::default()
    }
}

/// Stops the runner (exit 0 expected) and checks its log for secrets.
fn stop_and_check_log(sim: &Sim, mut runner: Runner, extra_secrets: &[&str]) -> String {
    let status = runner.stop(STOP);
    let log = runner.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{}\nlog tail:\n{}",
        sim.describe(),
        tail(&log)
    );
    assert_no_secret(&log, &sim.secrets(extra_secrets));
    log
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn twenty_mixed_jobs_through_two_runner_sections_stay_within_the_quota() {
    let (ta, tb) = ("rtA-e2e-mixed-0000001", "rtB-e2e-mixed-0000002");
    let sim = Sim::start(CleverSimConfig::default(), &[&[ta], &[tb]]);
    let ref_count = 3;
    let spec = sim.config(
        vec![sim.runner("ra", 0, ta), sim.runner("rb", 1, tb)],
        ref_count,
    );
    let quota = sim.quota("M", ref_count);
    assert!(quota >= sim.weight("L"), "test set-up: L must fit");
    let config = sim.write_config("mixed.toml", &spec);
    let flavors = ["XS", "S", "M", "L"];
    let mut ids: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
    for i in 0..20usize {
        let coord = i % 2;
        let flavor = flavors[i % flavors.len()];
        let ms = 150 + 50 * (i as u64 % 5);
        ids[coord].push(sim.coords[coord].enqueue_job(job(flavor, ms)));
    }
    let runner = Runner::start(&config, &sim.dir.path().join("mixed.log"));
    let done = wait_until(Duration::from_secs(60), || {
        sim.all_over(0, &ids[0])
            && sim.all_over(1, &ids[1])
            && sim.clever.control().summary().live_count == 0
    });
    assert!(done, "not all done in time\n{}", sim.describe());
    for (c, list) in ids.iter().enumerate() {
        for id in list {
            assert_eq!(
                sim.coords[c].job_status(*id),
                Some(JobState::Success),
                "job {id} of coordinator {c}\n{}",
                sim.describe()
            );
        }
    }
    sim.assert_clean(quota, 20);
    let s = sim.clever.control().summary();
    eprintln!(
        "20 jobs: max live weight {:.3} (quota {quota:.3}), max live apps {}, \
         creates {:?}",
        s.max_live_weight,
        s.max_live_count,
        s.requests.get(&CleverEndpoint::CreateApp)
    );
    assert_eq!(s.apps_created, 20, "one app per job\n{}", sim.describe());
    // The quota was actually used: more than one app alive at some point.
    assert!(s.max_live_count > 1, "{s:?}");
    // Each app carries the flavor its job asked for.
    let apps = sim.clever.control().apps();
    for (c, list) in ids.iter().enumerate() {
        for (k, id) in list.iter().enumerate() {
            let want = format!("heptapod-runner-{}", flavors[(2 * k + c) % flavors.len()]);
            let token = if c == 0 { ta } else { tb };
            let app = apps
                .iter()
                .find(|a| job_of_app(&a.name) == Some(*id) && a.name.contains(&token[..8]))
                .unwrap_or_else(|| panic!("no app for job {id} of coordinator {c}: {apps:?}"));
            assert_eq!(app.flavor, want, "{app:?}");
        }
    }
    stop_and_check_log(&sim, runner, &[]);
}

#[test]
fn two_tenants_land_in_their_own_organisations() {
    let token = "rt-e2e-tenants-0000003";
    let sim = Sim::start(CleverSimConfig::default(), &[&[token]]);
    let tenants = [
        ("acme", "orga_acme-0001", "cc-tok-acme-secret-01"),
        ("globex", "orga_globex-0002", "cc-tok-globex-secret-02"),
    ];
    for (group, orga, tok) in tenants {
        sim.clever.control().seed_org(&OrgSeed {
            id: orga.to_owned(),
            tokens: vec![tok.to_owned()],
        });
        sim.coord()
            .set_group_attributes(group, &[("cc_orga_id", orga), ("cc_orga_token", tok)]);
    }
    let mut runner_spec = sim.runner("mt", 0, token);
    runner_spec.orga = None;
    let spec = sim.config(vec![runner_spec], 3);
    let config = sim.write_config("tenants.toml", &spec);
    let mut expected = Vec::new();
    for i in 0..6usize {
        let (group, orga, _) = tenants[i % 2];
        let id = sim.coord().enqueue_job(JobSpec {
            root_namespace: group.to_owned(),
            ..job(["XS", "S"][i % 2], 200)
        });
        expected.push((id, orga));
    }
    let ids: Vec<i64> = expected.iter().map(|(id, _)| *id).collect();
    // This run logs in JSON (for log shippers): the secret check covers that format too.
    let runner = Runner::start_with(
        &config,
        &sim.dir.path().join("tenants.log"),
        &["--log-format", "json"],
    );
    let done = wait_until(Duration::from_secs(40), || {
        sim.all_over(0, &ids) && sim.clever.control().summary().live_count == 0
    });
    assert!(done, "not done in time\n{}", sim.describe());
    for id in &ids {
        assert_eq!(
            sim.coord().job_status(*id),
            Some(JobState::Success),
            "{}",
            sim.describe()
        );
    }
    let apps = sim.clever.control().apps();
    assert_eq!(apps.len(), 6, "{apps:?}");
    for (id, orga) in &expected {
        let app = apps
            .iter()
            .find(|a| job_of_app(&a.name) == Some(*id))
            .unwrap_or_else(|| panic!("no app for job {id}"));
        assert_eq!(&app.org, orga, "job {id}: {app:?}");
    }
    sim.assert_clean(sim.quota("M", 3), 6);
    let log = stop_and_check_log(&sim, runner, &[tenants[0].2, tenants[1].2]);
    let mut keys = std::collections::BTreeSet::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(record.get("msg").is_some(), "{line}");
        keys.extend(
            record
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys().cloned()),
        );
    }
    // Records carry the context fields operators filter on.
    for key in ["runner", "job_id", "app"] {
        assert!(
            keys.contains(key),
            "no `{key}` field in the JSON log: {keys:?}"
        );
    }
}

#[test]
fn launch_failures_fail_the_job_with_an_explanation_and_leak_nothing() {
    let token = "rt-e2e-failures-0000004";
    let sim = Sim::start(CleverSimConfig::default(), &[&[token]]);
    let spec = sim.config(vec![sim.runner("rf", 0, token)], 2);
    let config = sim.write_config("failures.toml", &spec);
    // The first create answers 500.
    sim.clever.control().fault(FaultCommand::FailNext {
        endpoint: CleverEndpoint::CreateApp,
        count: 1,
        fault: FaultKind::status(500),
    });
    let create_500 = sim.coord().enqueue_job(job("S", 100));
    // Started in the seed's form (`heptapod-paas-runner CONFIG`), as
    // existing systemd units do.
    let runner = Runner::start_seed_form(&config, &sim.dir.path().join("failures.log"));
    assert!(
        wait_until(Duration::from_secs(20), || sim.all_over(0, &[create_500])),
        "create-500 job not over\n{}",
        sim.describe()
    );
    let unknown = sim.coord().enqueue_job(job("XXL", 100));
    assert!(
        wait_until(Duration::from_secs(20), || sim.all_over(0, &[unknown])),
        "unknown-flavor job not over\n{}",
        sim.describe()
    );
    let later: Vec<i64> = (0..3)
        .map(|_| sim.coord().enqueue_job(job("XS", 100)))
        .collect();
    let done = wait_until(Duration::from_secs(30), || {
        sim.all_over(0, &later) && sim.clever.control().summary().live_count == 0
    });
    assert!(done, "later jobs not done\n{}", sim.describe());

    for (id, needle) in [(create_500, "500"), (unknown, "XXL")] {
        assert_eq!(
            sim.coord().job_status(id),
            Some(JobState::Failed),
            "{}",
            sim.describe()
        );
        assert_eq!(
            sim.coord().job_failure_reason(id).as_deref(),
            Some("script_failure"),
            "job {id}"
        );
        let trace =
            String::from_utf8_lossy(&sim.coord().job_trace(id).unwrap_or_default()).into_owned();
        eprintln!("job {id} trace: {trace:?}");
        assert!(
            trace.lines().any(|l| l.contains(needle)),
            "job {id}: no explanatory trace line mentioning {needle:?}:\n{trace}"
        );
    }
    for id in &later {
        assert_eq!(
            sim.coord().job_status(*id),
            Some(JobState::Success),
            "{}",
            sim.describe()
        );
    }
    // The unknown flavor never reached Clever; the 500 created nothing.
    let apps = sim.clever.control().apps();
    assert!(
        apps.iter().all(|a| job_of_app(&a.name) != Some(unknown)),
        "{apps:?}"
    );
    sim.assert_clean(sim.quota("M", 2), 3);
    stop_and_check_log(&sim, runner, &[]);
}

#[test]
fn coordinator_outage_in_the_middle_is_survived() {
    let token = "rt-e2e-outage-00000005";
    let sim = Sim::start(CleverSimConfig::default(), &[&[token]]);
    let spec = sim.config(vec![sim.runner("ro", 0, token)], 3);
    let config = sim.write_config("outage.toml", &spec);
    // Long jobs, running across the outage: the inner runner writes its
    // first trace line at start and reports after 5 s, so only the
    // runner's own calls meet the outage.
    let long: Vec<i64> = (0..2)
        .map(|_| sim.coord().enqueue_job(job("XS", 5000)))
        .collect();
    let mut runner = Runner::start(&config, &sim.dir.path().join("outage.log"));
    let started = wait_until(Duration::from_secs(20), || {
        long.iter()
            .all(|id| sim.coord().job(*id).is_some_and(|j| j.trace_len > 0))
    });
    assert!(started, "long jobs not started\n{}", sim.describe());
    sim.coord().set_down(true);
    let queued: Vec<i64> = (0..4)
        .map(|_| sim.coord().enqueue_job(job("S", 200)))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    assert!(runner.is_running(), "runner exited during the outage");
    let requests_before = sim.coord().requests().len();
    sim.coord().set_down(false);
    let all: Vec<i64> = long.iter().chain(&queued).copied().collect();
    let done = wait_until(Duration::from_secs(40), || {
        sim.all_over(0, &all) && sim.clever.control().summary().live_count == 0
    });
    assert!(done, "not all done after the outage\n{}", sim.describe());
    for id in &all {
        assert_eq!(
            sim.coord().job_status(*id),
            Some(JobState::Success),
            "{}",
            sim.describe()
        );
    }
    assert!(sim.coord().requests().len() > requests_before);
    assert!(runner.is_running(), "runner exited after the outage");
    sim.assert_clean(sim.quota("M", 3), 6);
    let log = stop_and_check_log(&sim, runner, &[]);
    // The outage was seen (and logged), not silently skipped.
    assert!(log.contains("502"), "no trace of the outage in the log");
}
