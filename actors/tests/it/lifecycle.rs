//! Actor tests of the job lifecycle, quota, failures and coordinator
//! trouble, with in-memory ports and paused tokio time.

use crate::common::*;
use paas_actors::ports::{CoordinatorError, FailureReason, PaasError, LAUNCH_FAILURE_EXIT_CODE};
use paas_actors::testing::{job, MemoryStore, Step, World};
use std::time::Duration;

#[actix_rt::test]
async fn jobs_go_through_the_whole_lifecycle() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 2.0);
    r.coord
        .push_jobs((1..=3).map(|i| job(i, &[("WEIGHT", "1")])));
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;

    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&3))
            .await
    );
    assert_eq!(world.live_count(), 3);
    let snap = store.last().expect("state saved");
    assert_eq!(snap.launched.len(), 3, "started jobs are saved as launched");
    assert!(snap.launched.iter().all(|h| h.paas_resource.is_some()));

    for i in 1..=3 {
        world.finish_job(i);
    }
    assert!(svc.until(SEC, 100, |s| s.completed == 3).await);
    let w = world.state();
    assert_eq!((w.live.len(), w.created, w.deleted), (0, 3, 3));
    assert!(r.coord.script.borrow().reports.is_empty());
    let stats = svc.stats().await;
    assert_eq!(stats.used_weight, 0.0);

    let report = svc.stop().await;
    assert!(!report.forced);
    assert_eq!(report.tracked_jobs, 0);
    assert_eq!(store.last().expect("final state").len(), 0);
}

#[actix_rt::test]
async fn saturation_waits_for_capacity_then_resumes() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord
        .push_jobs((1..=5).map(|i| job(i, &[("WEIGHT", "1")])));
    let store = MemoryStore::new();
    let mut svc = start(settings(2.0), &[&r], &store).await;

    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&2))
            .await
    );
    let requests = r.coord.script.borrow().requests;
    // Saturated: no polling at all while nothing changes (not a sleep loop).
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(r.coord.script.borrow().requests, requests);
    assert_eq!(svc.stats().await.acquired, 2);
    assert_eq!(r.coord.script.borrow().queue.len(), 3);

    world.finish_job(1);
    assert!(svc.until(SEC, 100, |s| s.acquired == 3).await);
    for i in 2..=5 {
        world.finish_job(i);
    }
    assert!(svc.until(SEC, 300, |s| s.completed == 5).await);
    assert!(world.state().peak_live_weight <= 2.0 + 1e-9);
    assert!(svc.stats().await.peak_used_weight <= 2.0 + 1e-9);
    svc.stop().await;
}

#[actix_rt::test]
async fn one_runner_cannot_take_more_than_its_fraction() {
    tokio::time::pause();
    let world = World::new();
    let a = runner(&world, "ra", 1.0);
    let b = runner(&world, "rb", 1.0);
    a.coord.push_jobs((1..=10).map(|i| job(i, &[])));
    let mut settings = settings(4.0);
    settings.allowed_fraction_per_runner = 0.5;
    let store = MemoryStore::new();
    let mut svc = start(settings, &[&a, &b], &store).await;

    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&2))
            .await
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        svc.stats().await.acquired,
        2,
        "runner a is held at half the quota"
    );
    b.coord.push_jobs([job(100, &[])]);
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&3))
            .await
    );
    svc.stop().await;
}

#[actix_rt::test]
async fn runner_quota_max_fraction_limits_it() {
    tokio::time::pause();
    let world = World::new();
    let mut a = runner(&world, "ra", 1.0);
    a.settings.quota_max_fraction = 0.25;
    a.coord.push_jobs((1..=10).map(|i| job(i, &[])));
    let store = MemoryStore::new();
    let mut svc = start(settings(4.0), &[&a], &store).await;
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&1))
            .await
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(svc.stats().await.acquired, 1);
    svc.stop().await;
}

async fn single_failure_case(
    fail: impl FnOnce(&Runner),
    mut settings: paas_actors::SupervisorSettings,
    vars: &[(&str, &str)],
) -> (std::rc::Rc<World>, Runner, Service) {
    let world = World::new();
    let r = runner(&world, "ra", 2.0);
    fail(&r);
    r.coord.push_jobs([job(7, vars)]);
    settings.report_failure_interval = Duration::from_secs(30);
    let store = MemoryStore::new();
    let svc = start(settings, &[&r], &store).await;
    (world, r, svc)
}

fn assert_reported_once_with(r: &Runner, text: &str) {
    let s = r.coord.script.borrow();
    assert_eq!(s.appended.len(), 1, "one red line");
    let (id, offset, line) = &s.appended[0];
    assert_eq!((*id, *offset), (7, 0));
    assert!(
        line.starts_with("\x1b[31m") && line.ends_with("\x1b[0m\n"),
        "{line:?}"
    );
    assert!(line.contains(text), "{line:?} lacks {text:?}");
    assert_eq!(s.reports.len(), 1);
    assert_eq!(s.reports[0].1, FailureReason::ScriptFailure);
    assert_eq!(s.reports[0].2, LAUNCH_FAILURE_EXIT_CODE);
}

#[actix_rt::test]
async fn provisioning_error_is_reported_and_nothing_is_left() {
    tokio::time::pause();
    let (world, r, mut svc) = single_failure_case(
        |r| {
            r.paas.fail(
                Step::Create,
                [PaasError::permanent("create-app", "no such zone")],
            )
        },
        settings(10.0),
        &[],
    )
    .await;
    assert!(svc.until(SEC, 100, |s| s.completed == 1).await);
    assert_reported_once_with(&r, "create-app: no such zone");
    assert_eq!(world.live_count(), 0);
    assert_eq!(r.paas.calls(Step::Decommission), 0);
    assert_eq!(svc.stats().await.launch_failures, 1);
    svc.stop().await;
}

#[actix_rt::test]
async fn unknown_flavor_is_reported_without_creating_anything() {
    tokio::time::pause();
    let (world, r, mut svc) =
        single_failure_case(|_| {}, settings(10.0), &[("FLAVOR", "bogus")]).await;
    assert!(svc.until(SEC, 100, |s| s.completed == 1).await);
    assert_reported_once_with(&r, "allowed: S, M, L");
    assert_eq!((world.state().created, r.paas.calls(Step::Create)), (0, 0));
    svc.stop().await;
}

#[actix_rt::test]
async fn launch_error_is_reported_and_the_resource_decommissioned() {
    tokio::time::pause();
    let (world, r, mut svc) = single_failure_case(
        |r| {
            r.paas
                .fail(Step::Launch, [PaasError::permanent("push", "rejected")])
        },
        settings(10.0),
        &[],
    )
    .await;
    assert!(svc.until(SEC, 100, |s| s.completed == 1).await);
    assert_reported_once_with(&r, "push: rejected");
    let w = world.state();
    assert_eq!((w.created, w.deleted, w.live.len()), (1, 1, 0));
    svc.stop().await;
}

#[actix_rt::test]
async fn launch_failure_keeps_the_resource_when_configured() {
    tokio::time::pause();
    let mut s = settings(10.0);
    s.decommission_launch_failures = false;
    let (world, r, mut svc) = single_failure_case(
        |r| {
            r.paas
                .fail(Step::Launch, [PaasError::permanent("push", "rejected")])
        },
        s,
        &[],
    )
    .await;
    assert!(svc.until(SEC, 100, |s| s.completed == 1).await);
    assert_eq!(r.coord.script.borrow().reports.len(), 1);
    assert_eq!(world.live_count(), 1, "kept for inspection");
    assert_eq!(r.paas.calls(Step::Decommission), 0);
    assert_eq!(svc.stats().await.used_weight, 0.0);
    svc.stop().await;
}

#[actix_rt::test]
async fn trace_timeout_is_a_launch_failure() {
    tokio::time::pause();
    let (world, r, mut svc) = single_failure_case(
        |r| {
            r.coord.script.borrow_mut().auto_trace = false;
        },
        settings(10.0),
        &[],
    )
    .await;
    let t0 = tokio::time::Instant::now();
    assert!(svc.until(SEC, 400, |s| s.completed == 1).await);
    assert!(
        t0.elapsed() >= Duration::from_secs(300),
        "{:?}",
        t0.elapsed()
    );
    assert_reported_once_with(&r, "Job not active (no log) after 300 seconds");
    assert_eq!(world.state().deleted, 1);
    svc.stop().await;
}

#[actix_rt::test]
async fn failure_report_is_retried_three_times_30s_apart_then_given_up() {
    tokio::time::pause();
    let unavailable = || CoordinatorError::Unavailable {
        detail: "502".into(),
        retry_after: None,
    };
    let (world, r, mut svc) = single_failure_case(
        |r| {
            r.paas
                .fail(Step::Create, [PaasError::permanent("create-app", "boom")]);
            r.coord.script.borrow_mut().report_errors.extend([
                unavailable(),
                unavailable(),
                unavailable(),
            ]);
        },
        settings(10.0),
        &[],
    )
    .await;
    assert!(svc.until(SEC, 200, |s| s.completed == 1).await);
    let instants: Vec<_> = r
        .coord
        .script
        .borrow()
        .reports
        .iter()
        .map(|r| r.3)
        .collect();
    assert_eq!(instants.len(), 3);
    let gaps: Vec<Duration> = instants.windows(2).map(|w| w[1] - w[0]).collect();
    let ok = |g: &Duration| *g >= Duration::from_secs(30) && *g < Duration::from_millis(30_100);
    assert!(gaps.iter().all(ok), "{gaps:?}");
    assert_eq!(world.live_count(), 0);
    svc.stop().await;
}

#[actix_rt::test]
async fn cancel_during_create_is_seen_once_launched_and_decommissions() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 2.0);
    r.paas.set_latency(Step::Create, Duration::from_secs(20));
    r.coord.push_jobs([job(7, &[])]);
    let mut s = settings(10.0);
    s.job_progress_poll_interval = Duration::from_secs(5);
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    world.finish_job(7);
    assert!(svc.until(SEC, 100, |s| s.completed == 1).await);
    assert_eq!(r.paas.calls(Step::Create), 1);
    // The status is checked only once the job is launched.
    assert_eq!(r.paas.calls(Step::Launch), 1);
    assert_eq!(world.state().deleted, 1);
    assert!(r.coord.script.borrow().reports.is_empty());
    svc.stop().await;
}

#[actix_rt::test]
async fn cancel_during_trace_watch_decommissions() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 2.0);
    r.coord.script.borrow_mut().auto_trace = false;
    r.coord.push_jobs([job(7, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("launched") == Some(&1))
            .await
    );
    world.finish_job(7);
    assert!(svc.until(SEC, 100, |s| s.completed == 1).await);
    assert_eq!(world.state().deleted, 1);
    assert!(r.coord.script.borrow().reports.is_empty());
    svc.stop().await;
}

#[actix_rt::test]
async fn finished_jobs_keep_resources_when_configured() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 2.0);
    r.coord.push_jobs([job(7, &[])]);
    let mut s = settings(10.0);
    s.keep_finished_resources = true;
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&1))
            .await
    );
    world.finish_job(7);
    assert!(svc.until(SEC, 100, |s| s.completed == 1).await);
    assert_eq!(world.live_count(), 1);
    assert_eq!(r.paas.calls(Step::Decommission), 0);
    svc.stop().await;
}

#[actix_rt::test]
async fn decommission_retries_with_backoff_and_frees_quota_only_when_gone() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.paas.fail(
        Step::Decommission,
        (0..3).map(|_| PaasError::transient("delete", "503")),
    );
    r.coord.push_jobs([job(1, &[]), job(2, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(1.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&1))
            .await
    );
    world.finish_job(1);
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("decommissioning") == Some(&1))
            .await
    );
    // While the delete fails, the weight stays held: job 2 waits.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(svc.stats().await.acquired, 1);
    assert!(svc.until(SEC, 200, |s| s.acquired == 2).await);
    assert_eq!(r.paas.calls(Step::Decommission), 4);
    assert_eq!(world.state().deleted, 1);
    svc.stop().await;
}

#[actix_rt::test]
async fn coordinator_outage_of_one_runner_does_not_stall_the_others() {
    tokio::time::pause();
    let world = World::new();
    let a = runner(&world, "ra", 1.0);
    let b = runner(&world, "rb", 1.0);
    {
        let mut s = a.coord.script.borrow_mut();
        s.request_errors
            .extend((0..4).map(|_| CoordinatorError::Unavailable {
                detail: "502 Bad Gateway".into(),
                retry_after: None,
            }));
        s.request_errors.push_back(CoordinatorError::Unexpected {
            detail: "garbage".into(),
        });
    }
    a.coord.push_jobs([job(1, &[])]);
    b.coord.push_jobs([job(2, &[]), job(3, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&a, &b], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&2))
            .await
    );
    assert_eq!(a.coord.script.borrow().queue.len(), 1, "a still failing");
    // Back-off doubles: 3 + 6 + 12 + 24 + 48 s before a's 6th request.
    assert!(
        svc.until(SEC, 200, |s| s.phases.get("started") == Some(&3))
            .await
    );
    let requests_a = a.coord.script.borrow().requests;
    assert!((6..=8).contains(&requests_a), "requests: {requests_a}");
    assert!(svc.logs.text().contains("coordinator unavailable"));
    svc.stop().await;
}

#[actix_rt::test]
async fn progress_checks_run_concurrently_with_a_bound() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.script.borrow_mut().status_latency = Duration::from_secs(1);
    r.coord.push_jobs((1..=20).map(|i| job(i, &[])));
    let mut s = settings(100.0);
    s.progress_check_concurrency = 4;
    s.max_concurrent_provisioning = 50;
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&20))
            .await
    );
    tokio::time::sleep(Duration::from_secs(61)).await;
    let peak = r.coord.script.borrow().status_in_flight.1;
    assert_eq!(peak, 4);
    svc.stop().await;
}

#[actix_rt::test]
async fn no_trace_watch_means_started_at_launch_with_one_warning() {
    tokio::time::pause();
    let world = World::new();
    let mut r = runner(&world, "ra", 1.0);
    r.settings.trace_watch = None;
    r.coord.script.borrow_mut().auto_trace = false;
    r.coord.push_jobs([job(1, &[]), job(2, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&2))
            .await
    );
    assert_eq!(svc.logs.text().matches("no trace-watch token").count(), 1);
    svc.stop().await;
}

#[actix_rt::test]
async fn repoll_waits_check_interval_when_not_immediate() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.push_jobs((1..=3).map(|i| job(i, &[])));
    let mut s = settings(10.0);
    s.repoll_immediately = false;
    s.check_interval = Duration::from_secs(10);
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(svc.stats().await.acquired, 1);
    assert!(svc.until(SEC, 30, |s| s.acquired == 3).await);
    svc.stop().await;
}

#[actix_rt::test]
async fn acquired_job_and_resource_name_are_on_disk_before_create() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let store = MemoryStore::new();
    let seen = std::rc::Rc::new(std::cell::Cell::new(false));
    {
        let (store, seen) = (store.clone(), seen.clone());
        *r.paas.on_create.borrow_mut() = Some(Box::new(move |job| {
            let snap = store.last().expect("saved before create");
            let pending = snap.pending.iter().any(|p| p.handle.job_id == job.id);
            let creating = snap
                .creating
                .iter()
                .any(|c| c.job_id == job.id && c.resource_name == format!("hpd-job-ra-{}", job.id));
            seen.set(pending && creating);
        }));
    }
    r.coord.push_jobs([job(5, &[])]);
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&1))
            .await
    );
    assert!(seen.get(), "write-ahead record missing at create time");
    svc.stop().await;
}

#[actix_rt::test]
async fn state_write_failures_are_retried() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let store = MemoryStore::new();
    store.fail_next_saves(2);
    r.coord.push_jobs([job(5, &[])]);
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    assert!(svc.logs.text().contains("cannot save the state"));
    assert_eq!(store.last().map(|s| s.launched.len()), Some(1));
    svc.stop().await;
}

#[actix_rt::test]
async fn dump_state_logs_everything_but_secrets() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.push_jobs([job(5, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&1))
            .await
    );
    svc.handle.dump_state();
    let logs = svc.logs.clone();
    assert!(until(SEC, 10, || logs.text().contains("tracked job")).await);
    let text = logs.text();
    assert!(
        text.contains("job_id=5") && text.contains("phase=started"),
        "{text}"
    );
    assert!(text.contains("app=app_ra_5"), "{text}");
    // The totals, read back from the metrics.
    assert!(
        text.lines().any(|l| l.contains("state dump")
            && l.contains("acquired=1")
            && l.contains("completed=0")
            && l.contains("launch_failures=0")),
        "{text}"
    );
    assert!(!text.contains("job-token-5"), "token leaked: {text}");
    svc.stop().await;
}

#[actix_rt::test]
async fn poll_cycles_stop_the_service_by_itself() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.push_jobs([job(5, &[])]);
    let mut s = settings(10.0);
    s.poll_cycles = Some(2);
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    let report = svc.wait().await;
    assert!(!report.forced);
    assert!(report.poll_cycles >= 2, "{report:?}");
    assert_eq!(store.last().map(|s| s.len()), Some(1));
}

#[actix_rt::test]
async fn invalid_settings_are_refused() {
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let store = MemoryStore::new();
    let mut s = settings(0.0);
    assert!(try_start(s.clone(), &[&r], &store).await.is_err());
    s.quota = 1.0;
    let r2 = runner(&world, "ra", 1.0);
    let err = try_start(s, &[&r, &r2], &store)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("\"ra\"")));
}

#[actix_rt::test]
async fn capacity_freed_by_a_reported_failure_resumes_polling() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.paas
        .fail(Step::Launch, [PaasError::permanent("push", "rejected")]);
    r.coord.push_jobs([job(1, &[]), job(2, &[])]);
    let mut s = settings(1.0);
    s.decommission_launch_failures = false;
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&1))
            .await
    );
    assert_eq!(svc.stats().await.acquired, 2);
    svc.stop().await;
}

#[actix_rt::test]
async fn transient_paas_errors_are_retried_then_fail_the_launch() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let transient = |step: &str| PaasError::transient(step, "503 Service Unavailable");
    r.paas.fail(
        Step::Create,
        [transient("create-app"), transient("create-app")],
    );
    r.paas.fail(Step::Prepare, [transient("put-env")]);
    r.coord.push_jobs([job(5, &[])]);
    let mut svc = start(settings(10.0), &[&r], &store_new()).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    assert_eq!(r.paas.calls(Step::Create), 3);
    assert_eq!(r.paas.calls(Step::Prepare), 2);
    assert!(r.coord.script.borrow().reports.is_empty());
    assert_eq!(world.state().created, 1);
    assert!(svc.logs.text().contains("transient PAAS error; retrying"));
    svc.stop().await;

    // Past the attempts, the launch fails (and is reported).
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.paas.fail(Step::Launch, (0..4).map(|_| transient("push")));
    r.coord.push_jobs([job(6, &[])]);
    let mut svc = start(settings(10.0), &[&r], &store_new()).await;
    assert!(svc.until(SEC, 120, |s| s.completed == 1).await);
    assert_eq!(r.paas.calls(Step::Launch), 4);
    assert_eq!(r.coord.script.borrow().reports.len(), 1);
    assert_eq!(world.live_count(), 0);
    svc.stop().await;
}

fn store_new() -> std::rc::Rc<MemoryStore> {
    MemoryStore::new()
}

#[actix_rt::test]
async fn a_failed_create_that_took_effect_is_found_by_name_not_repeated() {
    use paas_actors::ports::{PaasErrorClass, Resource};
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    // The create's answer is lost, but the application was created.
    r.paas.fail(
        Step::Create,
        [PaasError {
            action: "create-app".into(),
            message: "answer lost".into(),
            class: PaasErrorClass::Uncertain,
        }],
    );
    let landed = world.clone();
    *r.paas.on_create.borrow_mut() = Some(Box::new(move |job| {
        if landed.live_count() == 0 {
            landed.add_live(Resource {
                id: "app_landed".into(),
                name: format!("hpd-job-ra-{}", job.id),
                weight: 1.0,
                launched: false,
                detail: serde_json::json!({}),
                credential: None,
            });
        }
    }));
    r.coord.push_jobs([job(7, &[])]);
    let mut svc = start(settings(10.0), &[&r], &store_new()).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    // Found by its name before any new create: no second application.
    assert_eq!(r.paas.calls(Step::Create), 1);
    assert_eq!(world.live_count(), 1);
    assert_eq!(r.paas.calls(Step::Launch), 1);
    assert!(r.coord.script.borrow().reports.is_empty());
    assert!(svc
        .logs
        .text()
        .contains("looking for the resource by name first"));
    svc.stop().await;
}

#[actix_rt::test]
async fn a_create_answered_5xx_is_retried_within_its_budget_while_others_are_acquired() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let boom = PaasError::transient(
        "create-app",
        "500 Internal Server Error: Clever Cloud says the zone is overloaded",
    );
    for id in [1, 2] {
        r.paas
            .script
            .borrow_mut()
            .always
            .insert((Step::Create, id), boom.clone());
    }
    r.coord
        .push_jobs((1..=6).map(|i| job(i, &[("WEIGHT", "1")])));
    // Room for three jobs: two hold their weight while their create fails.
    let mut s = settings(3.0);
    s.job_progress_poll_interval = SEC;
    let budget = s.create_retry_budget;
    let grace = s.creating_grace;
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;

    // The third slot is used at once, and again each time a job ends,
    // while jobs 1 and 2 still retry.
    for (done, id) in (3..=5).enumerate() {
        assert!(
            svc.until(SEC, 3, |s| s.acquired == id as u64).await,
            "job {id} acquired while jobs 1 and 2 retry"
        );
        assert!(
            svc.until(SEC, 3, |s| s.phases.get("started") == Some(&1))
                .await
        );
        world.finish_job(id);
        assert!(svc.until(SEC, 3, |s| s.completed == done as u64 + 1).await);
    }
    assert!(
        r.coord.script.borrow().reports.is_empty(),
        "1 and 2 still retry"
    );

    // Past the budget (and the last look-up by name), jobs 1 and 2 fail
    // with the PAAS's message in their trace.
    let limit = (budget + grace).as_secs() as usize + 2;
    assert!(
        until(SEC, limit, || r.coord.script.borrow().reports.len() == 2).await,
        "reported within the budget and the grace"
    );
    let creates = |id| {
        r.paas
            .script
            .borrow()
            .calls
            .iter()
            .filter(|c| **c == (Step::Create, id))
            .count()
    };
    assert!((2..=3).contains(&creates(1)), "{} creates", creates(1));
    for id in [1, 2] {
        let traced = r.coord.script.borrow().appended.iter().any(|(j, _, text)| {
            *j == id && text.contains("Clever Cloud says the zone is overloaded")
        });
        assert!(traced, "job {id}'s trace has the message");
    }
    // Their weight is freed: the last job is acquired.
    assert!(svc.until(SEC, 5, |s| s.acquired == 6).await);
    svc.stop().await;
}
