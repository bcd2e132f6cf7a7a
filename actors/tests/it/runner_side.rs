//! Runner-side trouble never fails users' jobs: an unwritable state file
//! stops acquiring jobs until a write succeeds.

use crate::common::*;
use paas_actors::testing::{job, MemoryStore, World};
use std::time::Duration;

#[actix_rt::test]
async fn an_unwritable_state_file_stops_acquiring_until_a_write_succeeds() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let store = MemoryStore::new();
    r.coord.push_jobs([job(5, &[])]);
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&1))
            .await
    );
    let written = store.saves();
    // The disk fills up; the end of job 5 must be written and cannot be.
    store.fail_next_saves(u32::MAX);
    world.finish_job(5);
    let logs = svc.logs.clone();
    assert!(
        until(SEC, 120, || logs
            .text()
            .contains("not acquiring jobs until a write succeeds"))
        .await
    );
    r.coord.push_jobs([job(6, &[]), job(7, &[])]);
    let requests = r.coord.script.borrow().requests;
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    assert_eq!(r.coord.script.borrow().queue.len(), 2, "no job acquired");
    assert!(
        r.coord.script.borrow().requests <= requests + 1,
        "at most the poll already in flight"
    );
    assert_eq!(svc.stats().await.acquired, 1);
    let text = svc.logs.text();
    assert_eq!(
        text.matches("not acquiring jobs until a write succeeds")
            .count(),
        1,
        "logged once: {text}"
    );
    assert_eq!(store.saves(), written, "nothing written");

    // The disk is back: the pending record is written, and polling resumes.
    store.fail_next_saves(0);
    assert!(
        svc.until(SEC, 60, |s| s.acquired == 3).await,
        "acquiring again"
    );
    assert!(r.coord.script.borrow().queue.is_empty());
    assert_eq!(
        svc.logs
            .text()
            .matches("the state file is writable again")
            .count(),
        1
    );
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&2))
            .await
    );
    svc.stop().await;
}

#[actix_rt::test]
async fn a_refused_trace_watch_token_never_fails_jobs() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.script.borrow_mut().trace_refused = true;
    let store = MemoryStore::new();
    r.coord.push_jobs([job(5, &[]), job(6, &[])]);
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&2))
            .await,
        "both jobs started: {:?}",
        svc.stats().await
    );
    let stats = svc.stats().await;
    assert_eq!(stats.launch_failures, 0);
    assert_eq!(stats.trace_watch_refused, vec!["ra".to_owned()]);
    let refused_gauge = "heptapod_paas_runner_trace_watch_token_refused{runner=\"ra\"} 1";
    let exposed = svc.handle.metrics().encode().expect("encode");
    assert!(exposed.contains(refused_gauge), "{exposed}");
    assert!(r.coord.script.borrow().reports.is_empty(), "no job failed");
    assert_eq!(world.live_count(), 2, "no app deleted");
    let text = svc.logs.text();
    assert_eq!(
        text.matches("the trace-watch token is refused").count(),
        1,
        "one ERROR per runner: {text}"
    );

    // The token is renewed: the next job is watched again.
    r.coord.script.borrow_mut().trace_refused = false;
    r.coord.push_jobs([job(7, &[])]);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&3))
            .await
    );
    assert!(svc.stats().await.trace_watch_refused.is_empty());
    let exposed = svc.handle.metrics().encode().expect("encode");
    assert!(
        exposed.contains("heptapod_paas_runner_trace_watch_token_refused{runner=\"ra\"} 0"),
        "{exposed}"
    );
    assert_eq!(
        svc.logs
            .text()
            .matches("the trace-watch token works again")
            .count(),
        1
    );
    svc.stop().await;
}

#[actix_rt::test]
async fn one_refused_job_token_ends_that_job_only() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let store = MemoryStore::new();
    r.coord.push_jobs([job(5, &[]), job(6, &[])]);
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&2))
            .await
    );
    r.coord.script.borrow_mut().token_refused.insert(5);
    assert!(
        svc.until(SEC, 120, |s| s.completed == 1).await,
        "job 5 ended"
    );
    assert_eq!(svc.stats().await.phases.get("started"), Some(&1));
    svc.stop().await;
}

#[actix_rt::test]
async fn every_job_token_refused_at_once_is_a_coordinator_problem() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let store = MemoryStore::new();
    r.coord.push_jobs([job(5, &[]), job(6, &[]), job(7, &[])]);
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&3))
            .await
    );
    r.coord.script.borrow_mut().refuse_every_token = true;
    let logs = svc.logs.clone();
    assert!(
        until(Duration::from_millis(100), 400, || logs
            .text()
            .contains("taken as a coordinator problem"))
        .await
    );
    let stats = svc.stats().await;
    assert_eq!(stats.phases.get("started"), Some(&3), "no job ended");
    assert_eq!(world.live_count(), 3, "no app deleted");

    // The coordinator recovers before the next check: nothing was lost.
    r.coord.script.borrow_mut().refuse_every_token = false;
    let interval = settings(10.0).job_progress_poll_interval;
    tokio::time::sleep(interval * 3).await;
    assert_eq!(svc.stats().await.phases.get("started"), Some(&3));

    // A burst that lasts three check intervals is believed, not before.
    r.coord.script.borrow_mut().refuse_every_token = true;
    tokio::time::sleep(interval * 2).await;
    assert_eq!(svc.stats().await.completed, 0, "held for three intervals");
    assert!(
        svc.until(interval, 4, |s| s.completed == 3).await,
        "believed after three intervals"
    );
    let text = svc.logs.text();
    assert!(text.contains("every job token still refused: the jobs are taken as over"));
    assert_eq!(
        text.matches("taken as a coordinator problem").count(),
        2,
        "{text}"
    );
    svc.stop().await;
}
