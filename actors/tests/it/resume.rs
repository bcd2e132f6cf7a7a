//! Loading Python-format state files (fixtures written by hand from the
//! format) and resuming every phase where it stopped.

use crate::common::*;
use paas_actors::ports::Resource;
use paas_actors::state::StateError;
use paas_actors::testing::{job, MemoryStore, Step, World};
use paas_actors::ServiceError;
use serde_json::{json, Value};
use std::time::Duration;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn live(world: &World, id: i64, weight: f64, launched: bool) {
    world.add_live(Resource {
        id: format!("app_ra_{id}"),
        name: format!("hpd-job-ra-{id}"),
        weight,
        launched,
        detail: json!({"job_id": id}),
        credential: None,
    });
}

fn calls_for(r: &Runner, step: Step, job_id: i64) -> usize {
    r.paas
        .script
        .borrow()
        .calls
        .iter()
        .filter(|(s, j)| *s == step && *j == job_id)
        .count()
}

#[actix_rt::test]
async fn python_state_resumes_each_phase_where_it_stopped() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 3.0);
    live(&world, 11, 2.378, true);
    live(&world, 12, 1.0, true);
    live(&world, 14, 1.0, false);
    live(&world, 15, 1.0, true);
    r.paas
        .set_latency(Step::Decommission, Duration::from_secs(5));
    r.paas.set_latency(Step::Create, Duration::from_secs(1));
    let store = MemoryStore::with_initial(&fixture("python-0.6.3-mixed.json"));
    let mut svc = start(settings(20.0), &[&r], &store).await;

    // Quota recomputed from the loaded jobs: actual weights where a
    // resource exists, expected weight otherwise.
    let used = svc.stats().await.used_weight;
    assert!((used - 6.378).abs() < 1e-9, "{used}");

    world.finish_job(11);
    // 15 was launched before the stop: only its trace watch resumes.
    r.coord
        .script
        .borrow_mut()
        .appended
        .push((15, 0, "inner runner output".into()));
    assert!(
        svc.until(SEC, 100, |s| s.phases.get("started") == Some(&3)
            && s.completed == 2)
            .await
    );
    // 11 finished -> decommissioned; 12 was to decommission.
    let w = world.state();
    assert!(!w.live.contains_key("hpd-job-ra-11"));
    assert!(!w.live.contains_key("hpd-job-ra-12"));
    // 13 launched from scratch; 14 only prepared and launched; 15 untouched.
    assert_eq!(calls_for(&r, Step::Create, 13), 1);
    assert_eq!(calls_for(&r, Step::Launch, 13), 1);
    assert_eq!(calls_for(&r, Step::Create, 14), 0);
    assert_eq!(calls_for(&r, Step::Prepare, 14), 1);
    assert_eq!(calls_for(&r, Step::Launch, 14), 1);
    for step in [Step::Create, Step::Prepare, Step::Launch] {
        assert_eq!(calls_for(&r, step, 15), 0, "{step:?}");
    }
    let snap = store.last().expect("kept current");
    let mut ids: Vec<_> = snap.launched.iter().map(|h| h.job_id).collect();
    ids.sort();
    assert_eq!(ids, [13, 14, 15]);
    assert_eq!(snap.launched[0].token.expose(), "tok-13");
    svc.stop().await;
}

#[actix_rt::test]
async fn the_state_is_rewritten_at_once_after_loading() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 3.0);
    // The PAAS holds what the state says (else reconciliation at start-up
    // would forget the entries whose resource is missing).
    live(&world, 11, 2.378, true);
    live(&world, 12, 1.0, true);
    live(&world, 14, 1.0, false);
    live(&world, 15, 1.0, true);
    r.paas.set_latency(Step::Create, Duration::from_secs(100));
    r.paas.set_latency(Step::Prepare, Duration::from_secs(100));
    r.paas
        .set_latency(Step::Decommission, Duration::from_secs(100));
    r.coord.script.borrow_mut().auto_trace = false;
    let store = MemoryStore::with_initial(&fixture("python-0.6.3-mixed.json"));
    let mut svc = start(settings(20.0), &[&r], &store).await;
    tokio::time::sleep(SEC).await;
    assert!(store.saves() >= 1);
    let snap = store.last().expect("saved");
    assert_eq!(snap.launched.len(), 1);
    assert_eq!(snap.to_decommission.len(), 1);
    assert_eq!(snap.pending.len(), 3);
    assert_eq!(snap.to_decommission[0].trace_offset, 120);
    svc.handle.force_stop();
    svc.wait().await;
}

#[actix_rt::test]
async fn entries_of_unknown_runners_are_kept_untouched() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 3.0);
    let original: Value =
        serde_json::from_slice(&fixture("python-0.6.3-unknown-runner.json")).expect("json");
    let store = MemoryStore::with_initial(&fixture("python-0.6.3-unknown-runner.json"));
    let mut svc = start(settings(20.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&1))
            .await
    );
    svc.stop().await;
    let saved = store.last_json().expect("saved");
    // Untouched except that an integer weight is written back as a float.
    let mut original = original;
    for ptr in [
        "/launched/0/expected_weight",
        "/to_decommission/0/expected_weight",
        "/pending/0/0/expected_weight",
    ] {
        let w = original.pointer_mut(ptr).expect("weight");
        assert_eq!(*w, 1);
        *w = json!(1.0);
    }
    assert_eq!(saved["launched"][1], original["launched"][0]);
    assert_eq!(saved["to_decommission"][0], original["to_decommission"][0]);
    assert_eq!(saved["pending"][0], original["pending"][0]);
    assert!(svc.logs.text().contains("unknown runner"));
}

#[actix_rt::test]
async fn creating_markers_adopt_a_resource_created_before_the_stop() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 3.0);
    live(&world, 21, 1.0, false);
    let store = MemoryStore::with_initial(&fixture("rs-creating.json"));
    let mut svc = start(settings(20.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&2))
            .await
    );
    assert_eq!(
        calls_for(&r, Step::Create, 21),
        0,
        "adopted, not created twice"
    );
    assert_eq!(calls_for(&r, Step::Launch, 21), 1);
    assert_eq!(calls_for(&r, Step::Create, 22), 1);
    assert_eq!(world.state().created, 1);
    svc.stop().await;
}

#[actix_rt::test]
async fn a_creating_marker_finds_its_resource_by_the_id_a_legacy_name_became() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 3.0);
    // Recorded under an older identity of the runner; the executor lists
    // that resource under today's name, its id keeping the old one (as
    // local-docker does with its image names).
    world.add_live(Resource {
        id: "hpd-job-old-21".into(),
        name: "hpd-job-ra-21".into(),
        weight: 1.0,
        launched: false,
        detail: json!({"job_id": 21}),
        credential: None,
    });
    let state = String::from_utf8(fixture("rs-creating.json"))
        .expect("utf-8")
        .replace("\"hpd-job-ra-21\"", "\"hpd-job-old-21\"");
    let store = MemoryStore::with_initial(state.as_bytes());
    let mut svc = start(settings(20.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&2))
            .await
    );
    assert_eq!(calls_for(&r, Step::Create, 21), 0, "adopted, not created");
    assert_eq!(calls_for(&r, Step::Launch, 21), 1);
    assert_eq!(world.state().created, 1, "only job 22's");
    svc.stop().await;
}

/// Records the virtual time of every `create` call, by job id.
fn record_creates(r: &Runner) -> std::rc::Rc<std::cell::RefCell<Vec<(i64, Duration)>>> {
    let start = tokio::time::Instant::now();
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = seen.clone();
    *r.paas.on_create.borrow_mut() = Some(Box::new(move |job| {
        sink.borrow_mut().push((job.id, start.elapsed()));
    }));
    seen
}

#[actix_rt::test]
async fn a_create_landing_during_the_creating_grace_is_adopted_not_repeated() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 3.0);
    let creates = record_creates(&r);
    let store = MemoryStore::with_initial(&fixture("rs-creating.json"));
    let settings = paas_actors::SupervisorSettings {
        creating_grace: Duration::from_secs(5),
        ..settings(20.0)
    };
    let mut svc = start(settings, &[&r], &store).await;
    // Neither resource exists when the launchers first look. The previous
    // process's create of job 21 lands 2 s later, inside the grace period.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        creates.borrow().len(),
        0,
        "nothing created during the grace"
    );
    live(&world, 21, 1.0, false);
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&2))
            .await
    );
    assert_eq!(
        calls_for(&r, Step::Create, 21),
        0,
        "adopted, not created twice"
    );
    assert_eq!(calls_for(&r, Step::Launch, 21), 1);
    // Job 22's resource never appeared: created once, after the grace.
    let created: Vec<(i64, Duration)> = creates.borrow().clone();
    assert_eq!(created.len(), 1, "{created:?}");
    let (job_id, at) = created.first().copied().expect("one create");
    assert_eq!(job_id, 22);
    assert!(
        at >= Duration::from_secs(5),
        "created at {at:?}, before the grace ended"
    );
    assert_eq!(world.state().created, 1);
    assert!(svc.logs.text().contains("looking again before creating it"));
    svc.stop().await;
}

#[actix_rt::test]
async fn a_zero_creating_grace_creates_at_once() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 3.0);
    let creates = record_creates(&r);
    let store = MemoryStore::with_initial(&fixture("rs-creating.json"));
    let settings = paas_actors::SupervisorSettings {
        creating_grace: Duration::ZERO,
        ..settings(20.0)
    };
    let mut svc = start(settings, &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&2))
            .await
    );
    let created: Vec<(i64, Duration)> = creates.borrow().clone();
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(
        created.iter().all(|(_, at)| *at < Duration::from_secs(1)),
        "{created:?}"
    );
    svc.stop().await;
}

#[actix_rt::test]
async fn pending_launch_failure_is_reported_without_a_second_trace_line() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 3.0);
    live(&world, 31, 1.0, false);
    let store = MemoryStore::with_initial(&fixture("rs-launch-failure.json"));
    let mut svc = start(settings(20.0), &[&r], &store).await;
    assert!(svc.until(SEC, 30, |s| s.completed == 1).await);
    assert!(r.coord.script.borrow().appended.is_empty());
    assert_eq!(r.coord.script.borrow().reports.len(), 1);
    assert_eq!(calls_for(&r, Step::Launch, 31), 0, "no relaunch");
    assert_eq!(world.live_count(), 0);
    svc.stop().await;
}

#[actix_rt::test]
async fn corrupt_state_refuses_to_start() {
    let world = World::new();
    let r = runner(&world, "ra", 3.0);
    let store =
        MemoryStore::with_initial(br#"{"launched": [{"runner_name": "ra"}], "pending": []}"#);
    match try_start(settings(20.0), &[&r], &store).await {
        Err(ServiceError::State(StateError::Corrupt { detail, .. })) => {
            assert!(detail.contains("job_id"), "{detail}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("started with a corrupt state"),
    }
}

#[actix_rt::test]
async fn saved_handles_have_the_python_keys_in_order() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 3.0);
    r.coord.push_jobs([job(3, &[("WEIGHT", "2.5")])]);
    let store = MemoryStore::new();
    let mut svc = start(settings(20.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 30, |s| s.phases.get("started") == Some(&1))
            .await
    );
    let saved = store.last_json().expect("saved");
    let keys: Vec<&str> = saved
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, ["launched", "pending", "to_decommission"]);
    let handle = saved["launched"][0].as_object().expect("handle");
    let keys: Vec<&str> = handle.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "runner_name",
            "job_id",
            "token",
            "trace_offset",
            "expected_weight",
            "paas_resource"
        ]
    );
    assert_eq!(handle["token"], "job-token-3");
    assert_eq!(handle["expected_weight"], 2.5);
    svc.stop().await;
}
