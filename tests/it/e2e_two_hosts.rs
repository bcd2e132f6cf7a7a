//! End to end, two hosts on one runner token: two instances of the real
//! binary, each with its own configuration directory (so its own state file
//! and system id), one runner token, one paas-sim. Each lists the same
//! Clever organisation every second and finds the other's applications
//! there, in mid-launch or running; neither adopts nor deletes them, no
//! job fails, and neither gives back the other's running jobs.

use crate::common;

use common::{options, start_runner, stop_ok, tail, E2e};
use paas_sim::coordinator::{Endpoint, JobSpec, JobState};
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
use std::time::Duration;

const JOBS: usize = 40;

#[test]
fn two_hosts_on_one_token_never_adopt_nor_delete_each_others_applications() {
    let e = E2e::start(WorldConfig::default());
    let opts = || RunnerConfigOptions {
        quota_jobs: 6,
        ..options()
    };
    let extra = [
        ("reconcile_interval", toml::Value::from(1)),
        ("paas_give_back_grace", toml::Value::from(1)),
    ];
    let config_a = e.write_config(opts(), &extra);
    let dir_b = tempfile::tempdir().expect("second host's directory");
    let config_b = e
        .world
        .write_runner_config(dir_b.path(), opts())
        .expect("second config");
    let text = std::fs::read_to_string(&config_b).expect("read");
    let mut table: toml::Table = toml::from_str(&text).expect("TOML");
    for (k, v) in &extra {
        table.insert((*k).to_owned(), v.clone());
    }
    std::fs::write(&config_b, toml::to_string(&table).expect("TOML")).expect("write");

    let ids: Vec<i64> = (0..JOBS)
        .map(|i| {
            e.world.enqueue(JobSpec {
                name: format!("job-{i}"),
                flavor: Some("XS".to_owned()),
                duration_ms: 1_500 + (i as u64 % 5) * 700,
                ..JobSpec::default()
            })
        })
        .collect();
    let mut a = start_runner(&config_a, &e.log("a.log"), &[]);
    let mut b = start_runner(&config_b, &dir_b.path().join("b.log"), &[]);
    let done = e.wait_done(&ids, Duration::from_secs(240));
    assert!(
        done,
        "{}\n--- a\n{}\n--- b\n{}",
        e.describe(),
        tail(&a.log()),
        tail(&b.log())
    );
    // Both hosts took jobs, with their own system ids.
    let system_id = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join(".runner_system_id")).expect("system id")
    };
    assert_ne!(system_id(e.dir.path()), system_id(dir_b.path()));
    let coordinator = e.world.coordinator().control();
    for id in &ids {
        assert_eq!(
            e.status(*id),
            Some(JobState::Success),
            "job {id}: {:?}\n{}",
            coordinator.job_failure_reason(*id),
            e.describe()
        );
    }
    stop_ok(&mut a, Duration::from_secs(30));
    stop_ok(&mut b, Duration::from_secs(30));
    for (name, log) in [("a", a.log()), ("b", b.log())] {
        let acquired = log.matches("job acquired").count();
        assert!(acquired > 0, "host {name} took no job\n{}", tail(&log));
        // An application its own host deletes between the other's listing
        // and its read-back reads as holding no job there (a delete of a
        // deleted application): allowed. A live one deleted would have
        // failed its job, and every job succeeded.
        for never in ["adopting it", "lost at acquisition"] {
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(never)).collect();
            assert!(lines.is_empty(), "host {name} logged {never:?}\n{lines:#?}");
        }
    }
    assert_eq!(coordinator.requests_to(Endpoint::JobCancel).len(), 0);
    // One application per job, none left.
    let clever = e.world.clever().control();
    let summary = clever.summary();
    assert!(summary.duplicates.is_empty(), "{:#?}", summary.duplicates);
    let violations = clever.violations();
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(summary.live_count, 0, "{}", e.describe());
}
