//! Graceful and forced shutdown in every phase, and what the snapshot holds.

use crate::common::*;
use paas_actors::ports::{CoordinatorError, PaasError};
use paas_actors::testing::{job, MemoryStore, Step, World};
use std::time::Duration;
use tokio::time::Instant;

#[actix_rt::test]
async fn drain_during_trace_watch_keeps_the_launched_job_pending() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.script.borrow_mut().auto_trace = false;
    r.coord.push_jobs([job(7, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("launched") == Some(&1))
            .await
    );
    let t0 = Instant::now();
    let report = svc.stop().await;
    assert!(t0.elapsed() < SEC, "the watch is interrupted at once");
    assert!(!report.forced);
    let snap = store.last().expect("saved");
    assert_eq!(snap.pending.len(), 1);
    let res = snap.pending[0]
        .handle
        .paas_resource
        .as_ref()
        .expect("resource");
    assert_eq!(res["launched"], true);
    assert_eq!(snap.pending[0].job_data["id"], 7);
    assert!(
        r.coord.script.borrow().reports.is_empty(),
        "no failure reported"
    );
    assert_eq!(
        world.live_count(),
        1,
        "the resource is left for the next process"
    );
}

#[actix_rt::test]
async fn drain_waits_for_an_uninterruptible_create_and_records_it() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.paas.set_latency(Step::Create, Duration::from_secs(20));
    r.coord.push_jobs([job(7, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(r.paas.calls(Step::Create), 1);
    let t0 = Instant::now();
    let report = svc.stop().await;
    assert!(
        t0.elapsed() >= Duration::from_secs(17),
        "{:?}",
        t0.elapsed()
    );
    assert!(!report.forced);
    assert_eq!(r.paas.calls(Step::Prepare), 0, "nothing after the create");
    let snap = store.last().expect("saved");
    assert_eq!(snap.pending.len(), 1);
    let res = snap.pending[0]
        .handle
        .paas_resource
        .as_ref()
        .expect("resource");
    assert_eq!(res["launched"], false);
    assert!(
        snap.creating.is_empty(),
        "the marker is superseded by the resource"
    );
}

#[actix_rt::test]
async fn drain_during_failure_report_retries_keeps_the_failure_pending() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.paas
        .fail(Step::Launch, [PaasError::permanent("push", "refused")]);
    r.coord
        .script
        .borrow_mut()
        .report_errors
        .push_back(CoordinatorError::Unavailable {
            detail: "503".into(),
            retry_after: None,
        });
    r.coord.push_jobs([job(7, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(until(SEC, 30, || r.coord.script.borrow().reports.len() == 1).await);
    let report = svc.stop().await;
    assert!(!report.forced);
    let snap = store.last().expect("saved");
    assert_eq!(snap.pending.len(), 1);
    assert_eq!(snap.launch_failures.len(), 1);
    assert!(snap.launch_failures[0].trace_appended);
    assert!(snap.launch_failures[0].message.contains("push: refused"));
    assert!(snap.pending[0].handle.trace_offset > 0);
    assert_eq!(world.live_count(), 1, "decommission comes after the report");
}

#[actix_rt::test]
async fn drain_with_started_and_decommissioning_jobs() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.paas.fail(
        Step::Decommission,
        (0..10).map(|_| PaasError::transient("delete", "503")),
    );
    r.coord.push_jobs([job(1, &[]), job(2, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&2))
            .await
    );
    world.finish_job(2);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("decommissioning") == Some(&1))
            .await
    );
    let t0 = Instant::now();
    let report = svc.stop().await;
    assert!(t0.elapsed() < SEC, "retry sleep interrupted");
    assert_eq!(report.tracked_jobs, 2);
    let snap = store.last().expect("saved");
    assert_eq!(
        snap.launched.iter().map(|h| h.job_id).collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(
        snap.to_decommission
            .iter()
            .map(|h| h.job_id)
            .collect::<Vec<_>>(),
        [2]
    );
    assert!(snap.pending.is_empty());
}

#[actix_rt::test]
async fn drain_during_a_poll_records_the_job_it_brings() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.script.borrow_mut().request_latency = Duration::from_secs(5);
    r.coord.push_jobs([job(9, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    tokio::time::sleep(SEC).await;
    let report = svc.stop().await;
    assert!(!report.forced);
    let snap = store.last().expect("saved");
    assert_eq!(
        snap.pending.len(),
        1,
        "acquired during the drain, kept pending"
    );
    assert_eq!(r.paas.calls(Step::Create), 0, "not launched while draining");
}

#[actix_rt::test]
async fn second_signal_forces_the_snapshot_with_uncertain_operations() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.paas.set_latency(Step::Create, Duration::from_secs(1000));
    r.coord.push_jobs([job(7, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    svc.handle.drain();
    tokio::time::sleep(Duration::from_secs(2)).await;
    svc.handle.force_stop();
    let t0 = Instant::now();
    let report = svc.wait().await;
    assert!(t0.elapsed() < SEC);
    assert!(report.forced);
    let snap = store.last().expect("saved");
    assert_eq!(snap.pending.len(), 1);
    assert_eq!(
        snap.creating.len(),
        1,
        "the create in flight is known by name"
    );
    assert_eq!(snap.uncertain.len(), 1);
    assert_eq!(
        (
            snap.uncertain[0].job_id,
            snap.uncertain[0].operation.as_str()
        ),
        (Some(7), "create")
    );
}

#[actix_rt::test]
async fn drain_deadline_forces_the_snapshot() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.paas.set_latency(Step::Launch, Duration::from_secs(1000));
    r.coord.push_jobs([job(7, &[])]);
    let mut s = settings(10.0);
    s.drain_deadline = Duration::from_secs(10);
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    let report = svc.stop().await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(12),
        "{took:?}"
    );
    assert!(report.forced);
    let snap = store.last().expect("saved");
    assert_eq!(snap.uncertain.len(), 1);
    assert_eq!(snap.uncertain[0].operation, "launch");
    let res = snap.pending[0]
        .handle
        .paas_resource
        .as_ref()
        .expect("resource");
    assert_eq!(res["launched"], false);
}

/// A stop asked for before the service runs (a signal while the state
/// loads) is kept: the service drains as soon as it starts.
#[actix_rt::test]
async fn a_drain_asked_before_the_start_is_kept() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let store = MemoryStore::new();
    let mut svc = match try_start_after(settings(10.0), &[&r], &store, |h| h.drain()).await {
        Ok(svc) => svc,
        Err(e) => panic!("service did not start: {e}"),
    };
    let t0 = Instant::now();
    let report = svc.wait().await;
    assert!(!report.forced, "drained, not forced at the deadline");
    assert!(t0.elapsed() < SEC, "at once");
    assert!(store.last().is_some(), "the final snapshot is written");
    assert!(svc.handle.health().await.is_none(), "stopped");
}

#[actix_rt::test]
async fn finish_takes_no_new_job_and_stops_once_every_job_is_over_and_deleted() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord
        .push_jobs((1..=2).map(|i| job(i, &[("WEIGHT", "1")])));
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&2))
            .await
    );
    svc.handle.finish_jobs();
    // A second finish changes nothing; queued jobs are not taken.
    svc.handle.finish_jobs();
    r.coord.push_jobs([job(3, &[("WEIGHT", "1")])]);
    let polls = r.coord.script.borrow().requests;
    tokio::time::sleep(Duration::from_secs(600)).await;
    let health = svc.handle.health().await.expect("still running");
    assert!(health.finishing && !health.draining, "{health:?}");
    assert_eq!(health.jobs, 2);
    assert_eq!(r.coord.script.borrow().requests, polls, "no poll");
    assert_eq!(world.live_count(), 2, "no deadline: the jobs run on");
    let metrics = svc.handle.metrics().encode().expect("metrics");
    assert!(
        metrics.contains("heptapod_paas_runner_runner_wants_jobs{runner=\"ra\"} 0\n"),
        "a finishing runner wants no job (no-poll alerts stay quiet)\n{metrics}"
    );

    world.finish_job(1);
    assert!(svc.until(SEC, 100, |s| s.completed == 1).await);
    assert!(svc.running.is_some(), "one job left");
    world.finish_job(2);
    let report = svc.wait().await;
    assert!(!report.forced);
    assert_eq!(report.tracked_jobs, 0);
    assert_eq!(report.snapshot_error, None);
    let w = world.state();
    assert_eq!((w.live.len(), w.created, w.deleted), (0, 2, 2));
    assert_eq!(store.last().expect("final state").len(), 0);
    assert_eq!(r.coord.script.borrow().queue.len(), 1, "job 3 left queued");
}

#[actix_rt::test]
async fn a_drain_during_a_finish_stops_at_once_and_keeps_the_jobs() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.push_jobs([job(1, &[("WEIGHT", "1")])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&1))
            .await
    );
    svc.handle.finish_jobs();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let t0 = Instant::now();
    let report = svc.stop().await;
    assert!(t0.elapsed() < SEC, "{:?}", t0.elapsed());
    assert!(!report.forced);
    assert_eq!(report.tracked_jobs, 1);
    assert_eq!(store.last().expect("final state").launched.len(), 1);
    assert_eq!(world.live_count(), 1, "left for the next process");
}

#[actix_rt::test]
async fn a_second_signal_during_the_final_write_of_a_drain_is_no_error() {
    tokio::time::pause();
    // The second signal at several points of the drain's end: at once, and
    // while its final write (100 ms) is under way.
    for after_ms in [0, 1, 20, 50, 99] {
        let world = World::new();
        let r = runner(&world, "ra", 1.0);
        r.coord.push_jobs([job(7, &[])]);
        let store = MemoryStore::new();
        let mut svc = start(settings(10.0), &[&r], &store).await;
        assert!(
            svc.until(SEC, 100, |s| s.phases.get("started") == Some(&1))
                .await
        );
        store.set_save_latency(Duration::from_millis(100));
        tokio::time::sleep(SEC).await;
        svc.handle.drain();
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        svc.handle.force_stop();
        let report = svc.wait().await;
        assert_eq!(
            report.snapshot_error, None,
            "after {after_ms} ms: {report:?}"
        );
        assert_eq!(report.tracked_jobs, 1, "after {after_ms} ms");
        assert_eq!(store.last().expect("saved").launched.len(), 1);
    }
}
