//! `paas_min_seconds_between_launches` through the whole service: the
//! creates of jobs acquired together are spaced by the gap, one after the
//! other.

use crate::common::*;
use paas_actors::testing::{job, MemoryStore, World};
use paas_actors::SupervisorSettings;
use std::time::Duration;

/// Creates seen at 2.5 s, 7.5 s and 12.5 s after three jobs were queued.
async fn creates_over_time(gap: Option<Duration>) -> Vec<u64> {
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord
        .push_jobs((1..=3).map(|i| job(i, &[("WEIGHT", "1")])));
    let store = MemoryStore::new();
    let s = SupervisorSettings {
        min_between_launches: gap,
        ..settings(10.0)
    };
    let mut svc = start(s, &[&r], &store).await;
    let mut seen = Vec::new();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for _ in 0..3 {
        seen.push(world.state().created);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert_eq!(svc.stats().await.acquired, 3);
    svc.stop().await;
    seen
}

#[actix_rt::test]
async fn creates_of_jobs_acquired_together_are_spaced_by_the_gap() {
    tokio::time::pause();
    assert_eq!(
        creates_over_time(Some(Duration::from_secs(5))).await,
        [1, 2, 3],
        "one create at 0 s, 5 s and 10 s"
    );
}

#[actix_rt::test]
async fn without_a_gap_every_create_starts_at_once() {
    tokio::time::pause();
    assert_eq!(creates_over_time(None).await, [3, 3, 3]);
}
