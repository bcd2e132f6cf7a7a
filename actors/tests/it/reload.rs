//! Actor tests of a live reconfiguration (`ApplySettings`, sent through
//! the service's `SettingsSender`): a runner added is polled, a runner
//! removed is no longer polled while its job runs to the end (and, owed the
//! next poll, holds no other runner back), a changed `check_interval`
//! applies, and settings out of range never make a message, the running
//! configuration staying.

use crate::common::*;
use paas_actors::service::{start_service, RunningService, SettingsSender};
use paas_actors::service::{ApplyOutcome, ApplySettings, ReloadReport, SettingsDiff};
use paas_actors::testing::{
    capture_logger, job, LogCapture, MemoryStore, SharedMemoryStore, World,
};
use paas_actors::{service_control, RunnerPorts, ServiceHandle, SupervisorSettings};
use std::rc::Rc;
use std::time::Duration;

fn ports(r: &Runner) -> RunnerPorts {
    RunnerPorts {
        name: r.name.clone(),
        coordinator: r.coord.clone(),
        paas: r.paas.clone(),
        settings: r.settings.clone(),
    }
}

/// A diff that changes the global settings to `settings` only.
fn diff(settings: SupervisorSettings, live: &[&'static str]) -> SettingsDiff {
    SettingsDiff {
        settings,
        live: live.to_vec(),
        restart_needed: Vec::new(),
        added: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
    }
}

fn message(diff: SettingsDiff) -> ApplySettings {
    ApplySettings::new(diff).unwrap_or_else(|e| panic!("settings in range: {e}"))
}

/// A service polling `r` only, with a quota of `quota`, to be reloaded.
struct Reloadable {
    handle: ServiceHandle,
    sender: SettingsSender,
    logs: LogCapture,
    running: RunningService,
}

async fn start_polling(r: &Runner, quota: f64) -> Reloadable {
    let (handle, control) = service_control();
    let sender = control.settings_sender();
    let (logger, logs) = capture_logger();
    let running = start_service(
        settings(quota),
        vec![ports(r)],
        Rc::new(SharedMemoryStore(MemoryStore::new())),
        logger,
        control,
    )
    .await
    .expect("service starts");
    Reloadable {
        handle,
        sender,
        logs,
        running,
    }
}

/// Drains the service; it stops without being forced.
async fn stop(service: Reloadable) {
    service.handle.drain();
    let report = tokio::time::timeout(Duration::from_secs(3600), service.running.wait())
        .await
        .expect("stops");
    assert!(!report.forced);
}

#[actix_rt::test]
async fn reload_adds_removes_runners_and_applies_intervals() {
    tokio::time::pause();
    let world = World::new();
    let a = Rc::new(runner(&world, "ra", 1.0));
    let b = Rc::new(runner(&world, "rb", 1.0));
    let service = start_polling(&a, 10.0).await;
    let (sender, logs) = (&service.sender, &service.logs);
    tokio::time::sleep(10 * SEC).await;
    assert_eq!(b.coord.script.borrow().requests, 0, "rb is not configured");

    // Add rb, and poll every 60 s instead of 3 s.
    let mut add = diff(
        SupervisorSettings {
            check_interval: Duration::from_secs(60),
            ..settings(10.0)
        },
        &["check_interval"],
    );
    add.added.push(ports(&b));
    add.restart_needed.push("state_file");
    let outcome = sender.apply(message(add)).await;
    assert_eq!(
        outcome,
        Some(ApplyOutcome::Applied(ReloadReport {
            added: vec!["rb".into()],
            settings: vec!["check_interval"],
            restart_needed: vec!["state_file"],
            ..ReloadReport::default()
        }))
    );
    b.coord.push_jobs([job(7, &[("WEIGHT", "1")])]);
    assert!(
        until(SEC, 100, || world.live_count() == 1).await,
        "rb's job runs\n{}",
        logs.text()
    );
    let before = a.coord.script.borrow().requests;
    tokio::time::sleep(Duration::from_secs(300)).await;
    let polls = a.coord.script.borrow().requests - before;
    assert!(
        (4..=6).contains(&polls),
        "ra polled {polls} times in 300 s at check_interval 60 s"
    );

    // Remove rb: no more polls, its job runs to the end.
    let mut remove = diff(settings(10.0), &["check_interval"]);
    remove.removed.push("rb".into());
    let outcome = sender.apply(message(remove)).await;
    assert!(
        matches!(&outcome, Some(ApplyOutcome::Applied(r)) if r.removed == ["rb"]),
        "{outcome:?}"
    );
    tokio::time::sleep(SEC).await;
    // Its polling series go at once (no alert on a runner nobody polls),
    // its job's stay while the job runs.
    let scrape = || service.handle.metrics().encode().expect("encode");
    let text = scrape();
    for gone in [
        "coordinator_up",
        "runner_wants_jobs",
        "last_successful_poll",
    ] {
        assert!(
            !text.contains(&format!("{gone}{{runner=\"rb\"}}")),
            "{gone}\n{text}"
        );
    }
    assert!(
        text.contains("heptapod_paas_runner_jobs{runner=\"rb\",phase=\"started\"} 1"),
        "{text}"
    );
    assert!(text.contains("coordinator_up{runner=\"ra\"} 1"), "{text}");
    let b_polls = b.coord.script.borrow().requests;
    b.coord.push_jobs([job(8, &[("WEIGHT", "1")])]);
    world.finish_job(7);
    assert!(
        until(SEC, 200, || world.state().deleted == 1).await,
        "rb's job decommissioned\n{}",
        logs.text()
    );
    assert!(
        until(SEC, 10, || !scrape().contains("\"rb\"")).await,
        "no series of rb once its job is over\n{}",
        scrape()
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        b.coord.script.borrow().requests,
        b_polls,
        "rb no longer polled"
    );
    assert_eq!(world.state().created, 1, "job 8 not taken");

    // Unusable settings: refused before they reach the supervisor, the
    // running configuration stays.
    let refused = ApplySettings::new(diff(
        SupervisorSettings {
            concurrent: 0,
            ..settings(10.0)
        },
        &["concurrent"],
    ));
    assert!(
        refused.as_ref().is_err_and(|e| e.key == "concurrent"),
        "{:?}",
        refused.err()
    );
    a.coord.push_jobs([job(9, &[("WEIGHT", "1")])]);
    assert!(
        until(SEC, 100, || world.state().created == 2).await,
        "ra still polls"
    );
    stop(service).await;
}

/// A runner owed the next poll (it needs the whole quota and another
/// runner's poll is in flight) is removed before it polls: the debt goes
/// with it, and the other runner keeps polling.
#[actix_rt::test]
async fn a_removed_runner_is_owed_nothing() {
    tokio::time::pause();
    let world = World::new();
    let small = runner(&world, "rs", 1.0);
    let heavy = runner(&world, "rh", 3.0);
    small.coord.script.borrow_mut().request_latency = 10 * SEC;
    let service = start_polling(&small, 3.0).await;
    let (sender, logs) = (&service.sender, &service.logs);
    tokio::time::sleep(SEC).await;

    // rs's poll holds 1 of the 3 until t = 10 s: rh is refused and owed.
    let mut add = diff(settings(3.0), &[]);
    add.added.push(ports(&heavy));
    let outcome = sender.apply(message(add)).await;
    assert!(
        matches!(&outcome, Some(ApplyOutcome::Applied(r)) if r.added == ["rh"]),
        "{outcome:?}"
    );
    tokio::time::sleep(SEC).await;
    service.handle.dump_state();
    tokio::time::sleep(SEC).await;
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains("runner=rh") && l.contains("owed_next_poll=true")),
        "rh is owed the next poll\n{text}"
    );

    let mut remove = diff(settings(3.0), &[]);
    remove.removed.push("rh".into());
    let outcome = sender.apply(message(remove)).await;
    assert!(
        matches!(&outcome, Some(ApplyOutcome::Applied(r)) if r.removed == ["rh"]),
        "{outcome:?}"
    );
    let before = small.coord.script.borrow().requests;
    tokio::time::sleep(60 * SEC).await;
    let polls = small.coord.script.borrow().requests - before;
    assert!(
        polls >= 3,
        "rs polled {polls} times in 60 s (10 s a poll, every 3 s)\n{}",
        logs.text()
    );
    assert_eq!(heavy.coord.script.borrow().requests, 0, "rh never polled");
    stop(service).await;
}
