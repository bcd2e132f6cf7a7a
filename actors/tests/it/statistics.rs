//! `paas_log_statistics`: one `JSON statistics: {…}` line per polling
//! cycle with the Python runner 1.1's eight keys, none when off.

use crate::common::*;
use paas_actors::testing::{job, MemoryStore, World};
use paas_actors::SupervisorSettings;
use serde_json::Value;
use std::time::Duration;

const PREFIX: &str = "JSON statistics: ";

/// The statistics lines logged over 10 s with one job running, parsed.
async fn statistics_lines(on: bool) -> Vec<Value> {
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.push_jobs([job(1, &[("WEIGHT", "1")])]);
    let store = MemoryStore::new();
    let s = SupervisorSettings {
        log_statistics: on,
        ..settings(4.0)
    };
    let mut svc = start(s, &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&1))
            .await
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let text = svc.logs.text();
    svc.stop().await;
    text.lines()
        .filter_map(|l| l.split_once(PREFIX))
        .map(|(_, rest)| {
            let end = rest.find('}').map_or(rest.len(), |i| i + 1);
            serde_json::from_str(rest.get(..end).unwrap_or(rest))
                .unwrap_or_else(|e| panic!("not JSON ({e}): {rest}"))
        })
        .collect()
}

#[actix_rt::test]
async fn one_line_per_polling_cycle_with_the_eight_keys() {
    tokio::time::pause();
    let lines = statistics_lines(true).await;
    // check_interval 3 s: a cycle every 3 s over the 10 s of the test and
    // the time the job took to start.
    assert!((3..=8).contains(&lines.len()), "{lines:?}");
    let last = lines.last().expect("a line");
    let keys: Vec<&str> = last
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let expected = [
        "weight_quota",
        "current_weight",
        "weight_headroom",
        "can_take_job",
        "max_jobs_in_provisioning",
        "jobs_in_provisioning",
        "current_concurrent_jobs",
        "max_concurrent_jobs",
    ];
    assert_eq!(keys, expected, "1.1's keys, in its order: {last}");
    assert_eq!(last["weight_quota"], 4.0);
    assert_eq!(last["current_weight"], 1.0);
    assert_eq!(last["weight_headroom"], 3.0);
    assert_eq!(last["can_take_job"], true);
    assert_eq!(last["max_jobs_in_provisioning"], 10);
    assert_eq!(last["jobs_in_provisioning"], 0, "the job started");
    assert_eq!(last["current_concurrent_jobs"], 1);
    assert_eq!(last["max_concurrent_jobs"], 50);
}

#[actix_rt::test]
async fn no_line_when_off() {
    tokio::time::pause();
    assert_eq!(statistics_lines(false).await, Vec::<Value>::new());
}
