//! Readiness: the supervisor's health answer says why it cannot take jobs
//! (`Health::not_ready`), what the root crate's `/readyz` serves: starting
//! (first reconciliation listing not answered), state writes failing,
//! every coordinator down, draining; `None` once it can take jobs again.

use crate::common::*;
use paas_actors::ports::CoordinatorError;
use paas_actors::service::{Health, NotReady};
use paas_actors::testing::{job, MemoryStore, Step, World};
use std::time::Duration;

async fn not_ready(svc: &Service) -> Option<NotReady> {
    let Some(health) = svc.handle.health().await else {
        panic!("health not answered; logs:\n{}", svc.logs.text());
    };
    let health: Health = health;
    health.not_ready
}

/// Asks every 100 ms, at most `max` times, until the reason is `want`.
async fn until_reason(svc: &Service, want: Option<NotReady>, max: usize) -> bool {
    for _ in 0..max {
        if not_ready(svc).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[actix_rt::test]
async fn readiness_tells_why_no_job_can_be_taken_and_recovers() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    // The first listing takes 5 s: not ready meanwhile.
    r.paas.set_latency(Step::List, Duration::from_secs(5));
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert_eq!(not_ready(&svc).await, Some(NotReady::Starting));
    assert!(
        until_reason(&svc, None, 100).await,
        "ready after the listing"
    );
    r.paas.set_latency(Step::List, Duration::ZERO);

    // The state file cannot be written: no job can be taken.
    r.coord.push_jobs([job(5, &[])]);
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&1))
            .await
    );
    store.fail_next_saves(u32::MAX);
    world.finish_job(5);
    assert!(
        until_reason(&svc, Some(NotReady::StateWritesFailing), 1200).await,
        "state writes failing"
    );
    store.fail_next_saves(0);
    assert!(until_reason(&svc, None, 1200).await, "writable again");

    // Every coordinator fails its polls.
    let unavailable = || CoordinatorError::Unavailable {
        detail: "502".into(),
        retry_after: None,
    };
    r.coord
        .script
        .borrow_mut()
        .request_errors
        .extend((0..3).map(|_| unavailable()));
    assert!(
        until_reason(&svc, Some(NotReady::CoordinatorsDown), 600).await,
        "coordinators down"
    );
    assert!(
        until_reason(&svc, None, 1200).await,
        "an answered poll makes it ready again"
    );
    assert_eq!(NotReady::CoordinatorsDown.as_str(), "coordinators_down");

    // Draining, while a create in flight (10 s) keeps the service up.
    r.paas.set_latency(Step::Create, Duration::from_secs(10));
    r.coord.push_jobs([job(9, &[])]);
    assert!(svc.until(SEC / 10, 600, |s| s.acquired == 2).await);
    svc.handle.drain();
    assert!(until_reason(&svc, Some(NotReady::Draining), 50).await);
    svc.wait().await;
}

#[actix_rt::test]
async fn one_coordinator_up_is_enough() {
    tokio::time::pause();
    let world = World::new();
    let a = runner(&world, "ra", 1.0);
    let b = runner(&world, "rb", 1.0);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&a, &b], &store).await;
    assert!(until_reason(&svc, None, 100).await);
    a.coord
        .script
        .borrow_mut()
        .request_errors
        .extend((0..50).map(|_| CoordinatorError::Unavailable {
            detail: "502".into(),
            retry_after: None,
        }));
    // Runner a backs off for a while; b still polls: ready all along.
    for _ in 0..100 {
        assert_eq!(not_ready(&svc).await, None);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        a.coord.script.borrow().request_errors.len() < 50,
        "a polled"
    );
    svc.stop().await;
}
