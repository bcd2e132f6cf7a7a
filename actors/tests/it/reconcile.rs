//! Reconciliation of the state with the PAAS (start-up and periodic
//! passes), and the write-ahead guarantees it relies on.

use crate::common::*;
use paas_actors::ports::{PaasError, Resource};
use paas_actors::service::Reconcile;
use paas_actors::testing::{job, MemoryStore, Step, World};
use serde_json::json;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

fn resource(id: i64, weight: f64, launched: bool) -> Resource {
    Resource {
        id: format!("app_ra_{id}"),
        name: format!("hpd-job-ra-{id}"),
        weight,
        launched,
        detail: json!({"job_id": id}),
        credential: None,
    }
}

fn no_periodic(quota: f64) -> paas_actors::SupervisorSettings {
    paas_actors::SupervisorSettings {
        reconcile_interval: None,
        ..settings(quota)
    }
}

fn launched_state(ids: &[i64]) -> Vec<u8> {
    let launched: Vec<_> = ids
        .iter()
        .map(|id| {
            json!({"runner_name": "ra", "job_id": id, "token": format!("tok-{id}"),
                   "trace_offset": 0, "expected_weight": 1.5,
                   "paas_resource": {"app_id": format!("app_ra_{id}"),
                                     "name": format!("hpd-job-ra-{id}"), "weight": 1.5,
                                     "launched": true, "job_id": id}})
        })
        .collect();
    serde_json::to_vec(&json!({"launched": launched, "pending": [], "to_decommission": []}))
        .unwrap_or_default()
}

#[actix_rt::test]
async fn unknown_resource_whose_job_runs_is_adopted_and_tracked_to_the_end() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    world.add_live(resource(7, 2.0, true));
    r.paas
        .pushed_jobs
        .borrow_mut()
        .insert("hpd-job-ra-7".into(), job(7, &[]));
    let store = MemoryStore::new();
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    assert!(svc.until(SEC, 30, |s| s.adopted == 1).await);
    let s = svc.stats().await;
    assert_eq!(s.phases.get("started"), Some(&1));
    // Its weight (2.0) is capped at the runner's largest job weight (1.0).
    assert!((s.used_weight - 1.0).abs() < 1e-9, "{}", s.used_weight);
    // Recorded in `launched` with its token, so a restart tracks it too.
    assert!(
        svc.until(SEC, 10, |_| store
            .last()
            .is_some_and(|s| s.launched.len() == 1))
            .await
    );
    let saved = store.last().expect("saved");
    assert_eq!(saved.launched[0].token.expose(), "job-token-7");
    assert_eq!(world.state().deleted, 0);

    world.finish_job(7);
    assert!(svc.until(SEC, 120, |s| s.completed == 1).await);
    assert_eq!(world.live_count(), 0, "decommissioned once the job is over");
    assert_eq!(svc.stats().await.used_weight, 0.0);
    let logs = svc.logs.text();
    assert!(
        logs.lines().any(|l| l.contains("adopting it")
            && l.contains("runner=ra")
            && l.contains("job_id=7")
            && l.contains("app=app_ra_7")),
        "{logs}"
    );
    svc.stop().await;
}

#[actix_rt::test]
async fn a_resource_holding_another_runners_running_job_is_neither_counted_nor_deleted() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    world.add_live(resource(11, 1.0, true));
    r.paas
        .pushed_jobs
        .borrow_mut()
        .insert("hpd-job-ra-11".into(), job(11, &[]));
    world.make_foreign(11);
    let store = MemoryStore::new();
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    let warned = |svc: &Service| {
        svc.logs
            .text()
            .lines()
            .filter(|l| {
                l.contains("does not show as this runner's job") && l.contains("app=app_ra_11")
            })
            .count()
    };
    assert!(
        svc.until(SEC, 30, |_| warned(&svc) == 1).await,
        "{}",
        svc.logs.text()
    );
    // Later passes identify it again: still left alone, warned once.
    for pass in 2..4 {
        svc.supervisor.do_send(Reconcile);
        assert!(svc.until(SEC, 30, |s| s.reconcile_passes >= pass).await);
    }
    let s = svc.stats().await;
    assert_eq!((s.adopted, s.unknown_decommissioned), (0, 0));
    assert_eq!(s.used_weight, 0.0);
    assert_eq!(world.live_count(), 1);
    assert_eq!(world.state().deleted, 0);
    assert_eq!(warned(&svc), 1, "{}", svc.logs.text());
    svc.stop().await;
}

#[actix_rt::test]
async fn unknown_resources_whose_job_is_over_or_unreadable_are_decommissioned() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    world.add_live(resource(8, 1.0, true));
    world.add_live(resource(9, 1.0, false));
    r.paas
        .pushed_jobs
        .borrow_mut()
        .insert("hpd-job-ra-8".into(), job(8, &[]));
    world.finish_job(8);
    // Write-ahead for unknown resources too: on disk in `to_decommission` before the
    // delete call.
    let store = MemoryStore::new();
    let on_disk = Rc::new(Cell::new(0u32));
    {
        let (store, on_disk) = (store.clone(), on_disk.clone());
        *r.paas.on_call.borrow_mut() = Some(Box::new(move |step, job_id| {
            if step == Step::Decommission {
                let listed = store
                    .last()
                    .is_some_and(|s| s.to_decommission.iter().any(|h| h.job_id == job_id));
                if listed {
                    on_disk.set(on_disk.get() + 1);
                }
            }
        }));
    }
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    assert!(svc.until(SEC, 60, |s| s.completed == 2).await);
    assert_eq!(world.live_count(), 0);
    assert_eq!(svc.stats().await.unknown_decommissioned, 2);
    assert_eq!(on_disk.get(), 2, "to_decommission on disk before delete");
    assert_eq!(svc.stats().await.used_weight, 0.0);
    let logs = svc.logs.text();
    assert!(
        logs.contains("whose job is over; decommissioning"),
        "{logs}"
    );
    assert!(logs.contains("holding no job"), "{logs}");
    svc.stop().await;
}

#[actix_rt::test]
async fn unknown_resources_are_left_alone_when_resources_are_kept() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    world.add_live(resource(9, 1.0, false));
    let store = MemoryStore::new();
    let settings = paas_actors::SupervisorSettings {
        keep_finished_resources: true,
        ..no_periodic(10.0)
    };
    let mut svc = start(settings, &[&r], &store).await;
    assert!(svc.until(SEC, 10, |s| s.reconcile_passes == 1).await);
    tokio::time::sleep(10 * SEC).await;
    assert_eq!(world.live_count(), 1);
    assert!(svc.logs.text().contains("left alone"));
    svc.stop().await;
}

#[actix_rt::test]
async fn entries_whose_resource_vanished_are_forgotten_and_free_their_weight() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    world.add_live(resource(2, 1.5, true));
    let store = MemoryStore::with_initial(&launched_state(&[1, 2]));
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    assert!(svc.until(SEC, 10, |s| s.vanished == 1).await);
    let s = svc.stats().await;
    assert_eq!(s.phases.get("started"), Some(&1));
    assert!((s.used_weight - 1.5).abs() < 1e-9, "{}", s.used_weight);
    assert!(
        svc.until(SEC, 10, |_| store.last().is_some_and(|s| s.launched.len()
            == 1
            && s.launched[0].job_id == 2))
            .await
    );
    assert!(svc
        .logs
        .text()
        .lines()
        .any(|l| l.contains("no longer exists") && l.contains("job_id=1")));
    svc.stop().await;
}

#[actix_rt::test]
async fn resources_of_a_skipped_scope_stay_tracked() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    world.add_live(resource(2, 1.5, true));
    r.paas
        .script
        .borrow_mut()
        .skipped_scopes
        .insert("default".into());
    let store = MemoryStore::with_initial(&launched_state(&[1, 2]));
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    assert!(svc.until(SEC, 10, |s| s.reconcile_passes == 1).await);
    let s = svc.stats().await;
    assert_eq!(s.vanished, 0, "an unlisted scope decides nothing");
    assert_eq!(s.phases.values().sum::<usize>(), 2);
    svc.stop().await;
}

#[actix_rt::test]
async fn unresolved_tenants_are_counted_at_each_pass() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    world.add_live(resource(2, 1.5, true));
    {
        let mut script = r.paas.script.borrow_mut();
        script.skipped_scopes.insert("default".into());
        script.unresolved_tenants = vec!["gone-group".into()];
    }
    let store = MemoryStore::with_initial(&launched_state(&[1, 2]));
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    let metrics = svc.handle.metrics().clone();
    let gauge = |m: &paas_actors::metrics::Metrics| {
        m.encode()
            .expect("encode")
            .lines()
            .find(|l| l.starts_with("heptapod_paas_runner_tenants_unresolved{"))
            .map(str::to_owned)
    };
    assert!(svc.until(SEC, 10, |s| s.reconcile_passes == 1).await);
    assert_eq!(
        gauge(&metrics).as_deref(),
        Some("heptapod_paas_runner_tenants_unresolved{runner=\"ra\"} 1")
    );
    assert_eq!(svc.stats().await.vanished, 0);
    // Resolved again: the next pass counts none, and judges everything.
    {
        let mut script = r.paas.script.borrow_mut();
        script.skipped_scopes.clear();
        script.unresolved_tenants.clear();
    }
    svc.supervisor.do_send(Reconcile);
    assert!(svc.until(SEC, 10, |s| s.reconcile_passes == 2).await);
    assert_eq!(
        gauge(&metrics).as_deref(),
        Some("heptapod_paas_runner_tenants_unresolved{runner=\"ra\"} 0")
    );
    assert!(svc.until(SEC, 10, |s| s.vanished == 1).await);
    svc.stop().await;
}

#[actix_rt::test]
async fn a_scope_listed_again_has_its_waiting_deletions_tried_at_once() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    world.add_live(resource(2, 1.5, true));
    {
        let mut script = r.paas.script.borrow_mut();
        script.skipped_scopes.insert("default".into());
        // The delete needs the scope's organisation: unknown for now.
        script.always.insert(
            (Step::Decommission, 2),
            PaasError::transient("delete", "its organisation is unknown now"),
        );
    }
    let state = serde_json::to_vec(&json!({
        "launched": [], "pending": [],
        "to_decommission": [{"runner_name": "ra", "job_id": 2, "token": "tok-2",
            "trace_offset": 0, "expected_weight": 1.5,
            "paas_resource": {"app_id": "app_ra_2", "name": "hpd-job-ra-2", "weight": 1.5,
                              "launched": true, "job_id": 2}}],
    }))
    .unwrap_or_default();
    let store = MemoryStore::with_initial(&state);
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    assert!(svc.until(SEC, 10, |s| s.reconcile_passes == 1).await);
    // A minute of failed deletes: the back-off has grown to tens of seconds.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let attempts = r.paas.calls(Step::Decommission);
    assert!(attempts >= 4, "{attempts}");
    // The organisation is known again: the next pass lists the scope, and
    // the delete is tried at once instead of at the end of its wait.
    {
        let mut script = r.paas.script.borrow_mut();
        script.skipped_scopes.clear();
        script.always.clear();
    }
    svc.supervisor.do_send(Reconcile);
    assert!(svc.until(SEC, 2, |_| world.state().deleted == 1).await);
    assert_eq!(r.paas.calls(Step::Decommission), attempts + 1);
    svc.stop().await;
}

#[actix_rt::test]
async fn a_failed_listing_decides_nothing() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.paas
        .fail(Step::List, [PaasError::transient("list", "API down")]);
    let store = MemoryStore::with_initial(&launched_state(&[1]));
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    assert!(svc.until(SEC, 10, |s| s.reconcile_passes == 1).await);
    let s = svc.stats().await;
    assert_eq!(s.vanished, 0);
    assert_eq!(s.phases.get("started"), Some(&1));
    assert!(svc.logs.text().contains("cannot list the resources"));
    // The next pass (here asked for explicitly) decides.
    svc.supervisor.do_send(Reconcile);
    assert!(svc.until(SEC, 10, |s| s.vanished == 1).await);
    svc.stop().await;
}

#[actix_rt::test]
async fn resources_created_while_a_listing_travels_are_not_forgotten() {
    tokio::time::pause();
    let world = World::new();
    let mut r = runner(&world, "ra", 1.0);
    // A listing taken before a create finished, answered after the job was
    // launched and started (no trace watch: no per-job actor left on it).
    r.settings.trace_watch = None;
    r.paas.set_latency(Step::Create, 2 * SEC);
    r.paas.set_latency(Step::List, 3 * SEC);
    r.coord.push_jobs([job(5, &[])]);
    let store = MemoryStore::new();
    let settings = paas_actors::SupervisorSettings {
        reconcile_interval: Some(Duration::from_secs(1)),
        ..settings(10.0)
    };
    let mut svc = start(settings, &[&r], &store).await;
    assert!(svc.until(SEC, 30, |s| s.reconcile_passes >= 5).await);
    let s = svc.stats().await;
    assert_eq!((s.adopted, s.unknown_decommissioned, s.vanished), (0, 0, 0));
    assert_eq!(world.state().created, 1);
    assert_eq!(world.live_count(), 1);
    svc.stop().await;
}

#[actix_rt::test]
async fn periodic_passes_follow_the_interval_and_can_be_disabled() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let store = MemoryStore::new();
    let settings = paas_actors::SupervisorSettings {
        reconcile_interval: Some(Duration::from_secs(60)),
        ..settings(10.0)
    };
    let mut svc = start(settings, &[&r], &store).await;
    tokio::time::sleep(SEC).await;
    assert_eq!(svc.stats().await.reconcile_passes, 1, "start-up pass");
    tokio::time::sleep(Duration::from_secs(125)).await;
    assert_eq!(svc.stats().await.reconcile_passes, 3);
    svc.stop().await;

    let r = runner(&world, "ra", 1.0);
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    tokio::time::sleep(Duration::from_secs(1000)).await;
    assert_eq!(svc.stats().await.reconcile_passes, 1, "start-up pass only");
    svc.stop().await;
}

#[actix_rt::test]
async fn a_lost_state_is_rebuilt_from_the_paas_and_the_coordinator() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.script.borrow_mut().auto_trace = true;
    r.coord.push_jobs([job(1, &[]), job(2, &[]), job(3, &[])]);
    let store = MemoryStore::new();
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&3))
            .await
    );
    svc.handle.force_stop();
    svc.wait().await;

    // The state file is lost (moved aside after corruption). Job 2 ended
    // meanwhile.
    world.finish_job(2);
    let r2 = runner(&world, "ra", 1.0);
    *r2.paas.pushed_jobs.borrow_mut() = r.paas.pushed_jobs.borrow().clone();
    let fresh = MemoryStore::new();
    let mut svc = start(no_periodic(10.0), &[&r2], &fresh).await;
    assert!(
        svc.until(SEC, 60, |s| s.adopted == 2 && s.completed == 1)
            .await
    );
    assert_eq!(world.live_count(), 2);
    world.finish_job(1);
    world.finish_job(3);
    assert!(svc.until(SEC, 120, |s| s.completed == 3).await);
    assert_eq!(world.live_count(), 0);
    assert_eq!(world.state().created, 3, "nothing created twice");
    svc.stop().await;
}

#[actix_rt::test]
async fn write_ahead_resource_before_prepare_and_to_decommission_before_delete() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.script.borrow_mut().auto_finish = true;
    let store = MemoryStore::new();
    let seen = Rc::new(Cell::new((false, false)));
    {
        let (store, seen) = (store.clone(), seen.clone());
        *r.paas.on_call.borrow_mut() = Some(Box::new(move |step, job_id| {
            let Some(snap) = store.last() else { return };
            let (mut prepare, mut delete) = seen.get();
            if step == Step::Prepare {
                prepare = snap.pending.iter().any(|p| {
                    p.handle.job_id == job_id
                        && p.handle
                            .paas_resource
                            .as_ref()
                            .is_some_and(|v| v["app_id"] == format!("app_ra_{job_id}"))
                });
            }
            if step == Step::Decommission {
                delete = snap.to_decommission.iter().any(|h| h.job_id == job_id);
            }
            seen.set((prepare, delete));
        }));
    }
    r.coord.push_jobs([job(5, &[])]);
    let mut svc = start(no_periodic(10.0), &[&r], &store).await;
    assert!(svc.until(SEC, 120, |s| s.completed == 1).await);
    assert_eq!(
        seen.get(),
        (true, true),
        "(resource on disk before prepare, to_decommission on disk before delete)"
    );
    svc.stop().await;
}
