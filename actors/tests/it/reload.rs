//! Actor tests of a live reconfiguration (`ServiceHandle::reload`): a
//! runner added is polled, a runner removed is no longer polled while its
//! job runs to the end, a changed `check_interval` applies, and unusable
//! settings are refused with the running configuration kept.

use crate::common::*;
use paas_actors::messages::Reconfigure;
use paas_actors::service::start_service;
use paas_actors::testing::{capture_logger, job, MemoryStore, SharedMemoryStore, World};
use paas_actors::{service_control, RunnerPorts, SupervisorSettings};
use std::cell::RefCell;
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

#[actix_rt::test]
async fn reload_adds_removes_runners_and_applies_intervals() {
    tokio::time::pause();
    let world = World::new();
    let a = Rc::new(runner(&world, "ra", 1.0));
    let b = Rc::new(runner(&world, "rb", 1.0));
    // What the next reload gives.
    let next: Rc<RefCell<Option<Reconfigure>>> = Rc::new(RefCell::new(None));
    let (handle, control) = service_control();
    let given = next.clone();
    let control = control.with_reloader(Box::new(move || given.borrow_mut().take()));
    let (logger, logs) = capture_logger();
    let store = MemoryStore::new();
    let running = start_service(
        settings(10.0),
        vec![ports(&a)],
        Rc::new(SharedMemoryStore(store.clone())),
        logger,
        control,
    )
    .await
    .expect("service starts");
    tokio::time::sleep(10 * SEC).await;
    assert_eq!(b.coord.script.borrow().requests, 0, "rb is not configured");

    // Add rb, and poll every 60 s instead of 3 s.
    *next.borrow_mut() = Some(Reconfigure {
        settings: SupervisorSettings {
            check_interval: Duration::from_secs(60),
            ..settings(10.0)
        },
        runners: vec![ports(&a), ports(&b)],
    });
    handle.reload();
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
    assert!(logs.text().contains("configuration reloaded"));

    // Remove rb: no more polls, its job runs to the end.
    *next.borrow_mut() = Some(Reconfigure {
        settings: settings(10.0),
        runners: vec![ports(&a)],
    });
    handle.reload();
    tokio::time::sleep(SEC).await;
    let b_polls = b.coord.script.borrow().requests;
    b.coord.push_jobs([job(8, &[("WEIGHT", "1")])]);
    world.finish_job(7);
    assert!(
        until(SEC, 200, || world.state().deleted == 1).await,
        "rb's job decommissioned\n{}",
        logs.text()
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        b.coord.script.borrow().requests,
        b_polls,
        "rb no longer polled"
    );
    assert_eq!(world.state().created, 1, "job 8 not taken");

    // Unusable settings: refused, the running configuration stays.
    *next.borrow_mut() = Some(Reconfigure {
        settings: SupervisorSettings {
            concurrent: 0,
            ..settings(10.0)
        },
        runners: vec![ports(&a)],
    });
    handle.reload();
    tokio::time::sleep(SEC).await;
    assert!(
        logs.text().contains("configuration reload refused"),
        "{}",
        logs.text()
    );
    a.coord.push_jobs([job(9, &[("WEIGHT", "1")])]);
    assert!(
        until(SEC, 100, || world.state().created == 2).await,
        "ra still polls"
    );
    handle.drain();
    let report = tokio::time::timeout(Duration::from_secs(3600), running.wait())
        .await
        .expect("stops");
    assert!(!report.forced);
}
