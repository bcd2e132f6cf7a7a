//! The metrics the supervisor keeps and its monitoring queries, on fake
//! ports and paused time: the `jobs` gauge equals the job table per phase
//! at every step, the counters follow the world's, and the health and job
//! list queries answer through the `ServiceHandle`.

use crate::common::*;
use paas_actors::ports::PaasError;
use paas_actors::testing::{job, MemoryStore, Step, World};
use std::collections::BTreeMap;

fn value(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    s.get(series).copied().unwrap_or(f64::NAN)
}

#[actix_rt::test]
async fn metrics_follow_every_transition_and_queries_answer() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord
        .push_jobs((1..=4).map(|i| job(i, &[("WEIGHT", "1")])));
    r.paas
        .fail(Step::Launch, [PaasError::permanent("push", "rejected")]);
    // Calls that take time: the jobs cross their phases at different steps.
    for (step, latency) in [(Step::Create, SEC), (Step::Launch, 2 * SEC)] {
        r.paas.script.borrow_mut().latency.insert(step, latency);
    }
    let store = MemoryStore::new();
    let mut svc = start(settings(3.0), &[&r], &store).await;
    let metrics = svc.handle.metrics().clone();
    let gauge = |s: &BTreeMap<String, f64>, phase: &str| {
        value(
            s,
            &format!("heptapod_paas_runner_jobs{{runner=\"ra\",phase=\"{phase}\"}}"),
        )
    };

    // At every step where the table did not move around the scrape, the
    // gauge per phase is the job table per phase.
    let mut compared = 0;
    let mut done = false;
    for _ in 0..2000 {
        let before = svc.stats().await;
        let s = samples(&metrics.encode().expect("encode"));
        let after = svc.stats().await;
        if before.phases == after.phases {
            compared += 1;
            for phase in paas_actors::Phase::ALL {
                let want = after.phases.get(phase.as_str()).copied().unwrap_or(0) as f64;
                assert_eq!(gauge(&s, phase.as_str()), want, "{phase}: {after:?}");
            }
        }
        let used = value(&s, "heptapod_paas_runner_quota_weight{kind=\"used\"}");
        assert!(used <= 3.0 + 1e-9, "used {used}");
        if after.phases.get("started") == Some(&3) && after.completed == 1 {
            done = true;
            break;
        }
        tokio::time::sleep(SEC / 20).await;
    }
    assert!(done, "three jobs started, the failed one over");
    assert!(compared >= 10, "compared {compared} times");

    let health = svc.handle.health().await.expect("health answered");
    assert!(!health.draining);
    assert_eq!(health.jobs, 3);
    assert!((health.used_weight - 3.0).abs() < 1e-9, "{health:?}");
    let jobs = svc.handle.jobs().await.expect("job list");
    assert_eq!(jobs.len(), 3);
    assert!(jobs
        .iter()
        .all(|j| j.phase == "started" && j.runner == "ra"));
    assert!(jobs
        .iter()
        .all(|j| j.resource_id.is_some() && j.weight == 1.0));

    for i in 1..=4 {
        world.finish_job(i);
    }
    assert!(svc.until(SEC, 200, |s| s.completed == 4).await);
    let s = samples(&metrics.encode().expect("encode"));
    let w = world.state();
    for (series, want) in [
        (
            "heptapod_paas_runner_jobs_acquired_total{runner=\"ra\"}",
            4.0,
        ),
        (
            "heptapod_paas_runner_resources_created_total{runner=\"ra\"}",
            w.created as f64,
        ),
        (
            "heptapod_paas_runner_resources_deleted_total{runner=\"ra\"}",
            w.deleted as f64,
        ),
        (
            "heptapod_paas_runner_launch_failures_total{runner=\"ra\",reason=\"launch\"}",
            1.0,
        ),
        ("heptapod_paas_runner_start_duration_seconds_count", 3.0),
        ("heptapod_paas_runner_decommission_lag_seconds_count", 3.0),
        ("heptapod_paas_runner_quota_weight{kind=\"used\"}", 0.0),
        ("heptapod_paas_runner_quota_weight{kind=\"limit\"}", 3.0),
        ("heptapod_paas_runner_coordinator_up{runner=\"ra\"}", 1.0),
        ("heptapod_paas_runner_state_write_errors_total", 0.0),
        (
            "heptapod_paas_runner_jobs_finished_total{runner=\"ra\",outcome=\"finished\"}",
            3.0,
        ),
        (
            "heptapod_paas_runner_jobs_finished_total{runner=\"ra\",outcome=\"launch_failed\"}",
            1.0,
        ),
        (
            "heptapod_paas_runner_jobs_finished_total{runner=\"ra\",outcome=\"cancelled_before_start\"}",
            0.0,
        ),
        ("heptapod_paas_runner_job_duration_seconds_count", 3.0),
        ("heptapod_paas_runner_runner_token_valid{runner=\"ra\"}", 1.0),
    ] {
        assert_eq!(value(&s, series), want, "{series}");
    }
    assert_eq!((w.created, w.deleted), (4, 4));
    for phase in paas_actors::Phase::ALL {
        assert_eq!(gauge(&s, phase.as_str()), 0.0, "{phase}");
    }

    svc.handle.drain();
    svc.wait().await;
    assert!(
        svc.handle.health().await.is_none(),
        "no answer once stopped"
    );
}

#[actix_rt::test]
async fn coordinator_up_drops_during_the_back_off() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.script.borrow_mut().request_errors.extend([
        paas_actors::ports::CoordinatorError::Unavailable {
            detail: "502".into(),
            retry_after: None,
        },
    ]);
    let store = MemoryStore::new();
    let svc = start(settings(2.0), &[&r], &store).await;
    let metrics = svc.handle.metrics().clone();
    let up = || {
        value(
            &samples(&metrics.encode().expect("encode")),
            "heptapod_paas_runner_coordinator_up{runner=\"ra\"}",
        )
    };
    assert!(
        until(SEC / 10, 50, || up() == 0.0).await,
        "down after the error"
    );
    assert!(
        until(SEC, 600, || up() == 1.0).await,
        "up after a successful poll"
    );
}

/// `runner_wants_jobs`: 1 while the runner polls, 0 while the limits
/// block it (full: `NoSuccessfulPoll` must not fire), 1 again once room
/// comes back; `jobs_finished_total`, `job_duration_seconds` and the bill
/// (`resource_seconds_total`) count the job.
#[actix_rt::test]
async fn a_full_runner_does_not_want_jobs_and_a_finished_job_is_billed() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.push_jobs([job(1, &[("WEIGHT", "1")])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(1.0), &[&r], &store).await;
    let metrics = svc.handle.metrics().clone();
    let scrape = || samples(&metrics.encode().expect("encode"));
    let wants = "heptapod_paas_runner_runner_wants_jobs{runner=\"ra\"}";
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&1))
            .await
    );
    assert!(
        until(SEC, 100, || value(&scrape(), wants) == 0.0).await,
        "full: does not want jobs"
    );
    let bill = "heptapod_paas_runner_resource_seconds_total{runner=\"ra\",flavor=\"weight-1\",organisation=\"default\"}";
    assert!(value(&scrape(), bill) >= 0.0, "billed while alive");
    world.finish_job(1);
    assert!(svc.until(SEC, 200, |s| s.completed == 1).await);
    assert!(
        until(SEC, 100, || value(&scrape(), wants) == 1.0).await,
        "room again: wants jobs"
    );
    let s = scrape();
    for (series, want) in [
        (
            "heptapod_paas_runner_jobs_finished_total{runner=\"ra\",outcome=\"finished\"}",
            1.0,
        ),
        (
            "heptapod_paas_runner_jobs_finished_total{runner=\"ra\",outcome=\"launch_failed\"}",
            0.0,
        ),
        ("heptapod_paas_runner_job_duration_seconds_count", 1.0),
    ] {
        assert_eq!(value(&s, series), want, "{series}");
    }
    let billed = value(&s, bill);
    assert!(billed > 0.0, "the deleted resource's seconds: {billed}");
    tokio::time::sleep(10 * SEC).await;
    assert_eq!(value(&scrape(), bill), billed, "deleted: billed no more");
    svc.handle.drain();
    svc.wait().await;
}

/// A refused runner token (403 on the job request) is told apart from an
/// outage: the coordinator is up, the token is not valid.
#[actix_rt::test]
async fn a_refused_token_is_not_a_coordinator_outage() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.script.borrow_mut().request_errors.extend([
        paas_actors::ports::CoordinatorError::Rejected {
            detail: "403 Forbidden".into(),
        },
    ]);
    let store = MemoryStore::new();
    let svc = start(settings(2.0), &[&r], &store).await;
    let metrics = svc.handle.metrics().clone();
    let scrape = || samples(&metrics.encode().expect("encode"));
    let valid = "heptapod_paas_runner_runner_token_valid{runner=\"ra\"}";
    let up = "heptapod_paas_runner_coordinator_up{runner=\"ra\"}";
    assert!(
        until(SEC / 10, 50, || value(&scrape(), valid) == 0.0).await,
        "token refused"
    );
    assert_eq!(value(&scrape(), up), 1.0, "the coordinator answered");
}

/// A deletion refused by the PAAS (permanent error) is counted from the
/// first refusal (series born at 0) and ages in
/// `oldest_refused_delete_age_seconds` until the resource is gone.
#[actix_rt::test]
async fn a_single_refused_delete_is_counted_and_ages() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.push_jobs([job(1, &[("WEIGHT", "1")])]);
    r.paas.fail(
        Step::Decommission,
        [PaasError::permanent("delete", "token revoked")],
    );
    let store = MemoryStore::new();
    let mut svc = start(settings(2.0), &[&r], &store).await;
    let metrics = svc.handle.metrics().clone();
    let scrape = || samples(&metrics.encode().expect("encode"));
    let failures =
        "heptapod_paas_runner_decommission_failures_total{runner=\"ra\",class=\"permanent\"}";
    let age = "heptapod_paas_runner_oldest_refused_delete_age_seconds{runner=\"ra\"}";
    assert!(
        until(SEC / 10, 50, || value(&scrape(), failures) == 0.0).await,
        "born at 0\n{}",
        metrics.encode().unwrap_or_default()
    );
    assert_eq!(value(&scrape(), age), 0.0, "none refused");
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&1))
            .await
    );
    world.finish_job(1);
    assert!(
        until(SEC, 200, || value(&scrape(), failures) == 1.0).await,
        "one refusal counted"
    );
    assert!(value(&scrape(), age) > 0.0, "the refusal ages");
    // Retried later (the refusal back-off), deleted: the age falls to 0.
    assert!(
        svc.until(10 * SEC, 2000, |s| s.completed == 1).await,
        "deleted at a retry"
    );
    assert_eq!(value(&scrape(), age), 0.0);
    svc.handle.drain();
    svc.wait().await;
}

/// A job over at the coordinator while it is being launched ends as
/// `cancelled_before_start`, without a duration.
#[actix_rt::test]
async fn a_job_cancelled_while_launching_is_counted_apart() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    // Launched, its trace never grows: it does not start.
    r.coord.script.borrow_mut().auto_trace = false;
    r.coord.push_jobs([job(1, &[("WEIGHT", "1")])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(2.0), &[&r], &store).await;
    let metrics = svc.handle.metrics().clone();
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("launched") == Some(&1))
            .await
    );
    world.finish_job(1);
    assert!(svc.until(SEC, 2000, |s| s.completed == 1).await);
    let text = metrics.encode().expect("encode");
    let s = samples(&text);
    for (series, want) in [
        (
            "heptapod_paas_runner_jobs_finished_total{runner=\"ra\",outcome=\"cancelled_before_start\"}",
            1.0,
        ),
        (
            "heptapod_paas_runner_jobs_finished_total{runner=\"ra\",outcome=\"finished\"}",
            0.0,
        ),
        ("heptapod_paas_runner_job_duration_seconds_count", 0.0),
    ] {
        assert_eq!(value(&s, series), want, "{series}\n{text}");
    }
    svc.handle.drain();
    svc.wait().await;
}
