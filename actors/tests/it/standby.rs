//! Actor tests of the standby pool: a finished job's resource kept for the
//! next job of the same tenant and size, its expiry, its eviction to make
//! room, a failed reuse check, and its resumption after a restart (our
//! state file and the Python runner 1.1's).

use crate::common::*;
use paas_actors::ports::PaasError;
use paas_actors::testing::{job, MemoryStore, Step, World};
use paas_actors::StandbyPolicy;
use std::time::Duration;

const KEEP: Duration = Duration::from_secs(120);

/// A runner whose resources run a helper service and are kept `KEEP` on
/// standby, for at most `max_jobs` jobs.
fn service_runner(world: &std::rc::Rc<World>, name: &str, max_jobs: u32) -> Runner {
    let mut r = runner(world, name, 1.0);
    r.paas.service.set(true);
    r.settings.standby = Some(StandbyPolicy {
        keep: KEEP,
        max_jobs_per_resource: max_jobs,
    });
    r
}

fn tenant_job(id: i64, tenant: &str, weight: &str) -> paas_actors::ports::Job {
    job(id, &[("TENANT", tenant), ("WEIGHT", weight)])
}

#[actix_rt::test]
async fn a_finished_jobs_resource_waits_on_standby_then_expires() {
    tokio::time::pause();
    let world = World::new();
    let r = service_runner(&world, "ra", 20);
    r.coord.push_jobs([tenant_job(1, "orga_a", "1")]);
    let store = MemoryStore::new();
    let mut svc = start(settings(4.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    assert_eq!(r.paas.calls(Step::Launch), 1);
    world.finish_job(1);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("standby") == Some(&1))
            .await
    );
    assert_eq!(world.live_count(), 1, "kept");
    let stats = svc.stats().await;
    assert_eq!(stats.used_weight, 1.0, "standby weight held");
    let snap = store.last().expect("state");
    assert_eq!(snap.standby_resources.len(), 1);
    assert!(snap.standby_resources[0].since.is_some());
    assert_eq!(snap.standby_resources[0].use_count, 1);
    let scrape = svc.handle.metrics().encode().expect("encode");
    let m = samples(&scrape);
    assert_eq!(
        m.get("heptapod_paas_runner_standby_resources{runner=\"ra\"}"),
        Some(&1.0)
    );
    assert_eq!(
        m.get("heptapod_paas_runner_quota_weight{kind=\"standby\"}"),
        Some(&1.0)
    );

    // Not before its time, then deleted.
    tokio::time::sleep(KEEP - Duration::from_secs(10)).await;
    assert_eq!(world.live_count(), 1);
    assert!(svc.until(SEC, 30, |s| s.phases.is_empty()).await);
    assert_eq!(world.live_count(), 0);
    assert_eq!(svc.stats().await.used_weight, 0.0);
    svc.stop().await;
}

#[actix_rt::test]
async fn the_next_job_of_the_same_tenant_and_size_reuses_the_resource() {
    tokio::time::pause();
    let world = World::new();
    let r = service_runner(&world, "ra", 20);
    r.coord.push_jobs([tenant_job(1, "orga_a", "1")]);
    let store = MemoryStore::new();
    let mut svc = start(settings(6.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    world.finish_job(1);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("standby") == Some(&1))
            .await
    );

    // Another tenant, and a job of unknown tenant: new resources.
    r.coord.push_jobs([
        tenant_job(2, "orga_b", "1"),
        job(3, &[("WEIGHT", "1")]),
        // Same tenant, too small for the resource (1 / 0.8 = 1.25).
        tenant_job(4, "orga_a", "0.8"),
    ]);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&3))
            .await
    );
    assert_eq!(world.state().created, 4);
    assert_eq!(svc.phase_count("standby").await, 1);

    // Same tenant and size: reused, no create.
    r.coord.push_jobs([tenant_job(5, "orga_a", "1")]);
    let ok = svc
        .until(SEC, 60, |s| s.phases.get("started") == Some(&4))
        .await;
    assert!(ok, "{:?}\n{}", svc.stats().await.phases, svc.logs.text());
    let w = world.state();
    assert_eq!((w.created, w.reused_launches, w.double_uses), (4, 1, 0));
    assert_eq!(svc.phase_count("standby").await, 0);
    assert_eq!(r.paas.calls(Step::Reuse), 1);
    let logs = svc.logs.text();
    assert!(
        logs.lines()
            .any(|l| l.contains("reusing a standby resource")
                && l.contains("job_id=5")
                && l.contains("app_ra_1")
                && l.contains("use_count=2")),
        "{logs}"
    );
    let m = samples(&svc.handle.metrics().encode().expect("encode"));
    let launched = |kind: &str| {
        m.get(&format!(
            "heptapod_paas_runner_jobs_launched_total{{runner=\"ra\",resource=\"{kind}\"}}"
        ))
        .copied()
    };
    assert_eq!(
        (launched("new"), launched("reused")),
        (Some(4.0), Some(1.0))
    );

    // Its second job ends: on standby again, with its use count.
    world.finish_job(5);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("standby") == Some(&1))
            .await
    );
    let snap = store.last().expect("state");
    assert_eq!(snap.standby_resources.first().map(|s| s.use_count), Some(2));
    svc.stop().await;
}

#[actix_rt::test]
async fn past_the_use_limit_the_resource_is_deleted() {
    tokio::time::pause();
    let world = World::new();
    let r = service_runner(&world, "ra", 2);
    r.coord.push_jobs([tenant_job(1, "orga_a", "1")]);
    let store = MemoryStore::new();
    let mut svc = start(settings(4.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    world.finish_job(1);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("standby") == Some(&1))
            .await
    );
    r.coord.push_jobs([tenant_job(2, "orga_a", "1")]);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    world.finish_job(2);
    assert!(svc.until(SEC, 60, |s| s.phases.is_empty()).await);
    let w = world.state();
    assert_eq!((w.created, w.deleted, w.reused_launches), (1, 1, 1));
    svc.stop().await;
}

#[actix_rt::test]
async fn a_job_that_fits_no_standby_resource_waits_for_their_deletion() {
    tokio::time::pause();
    let world = World::new();
    let r = service_runner(&world, "ra", 20);
    r.coord
        .push_jobs([tenant_job(1, "orga_a", "1"), tenant_job(2, "orga_a", "1")]);
    let store = MemoryStore::new();
    let mut svc = start(settings(2.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&2))
            .await
    );
    world.finish_job(1);
    world.finish_job(2);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("standby") == Some(&2))
            .await
    );
    // The quota is full of standby weight; a job of another tenant comes.
    r.paas
        .set_latency(Step::Decommission, Duration::from_secs(5));
    r.coord.push_jobs([tenant_job(3, "orga_b", "1")]);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    let w = world.state();
    assert_eq!(
        (w.created, w.deleted),
        (3, 1),
        "one standby resource evicted"
    );
    assert!(w.peak_live_weight <= 2.0 + 1e-9, "{}", w.peak_live_weight);
    let stats = svc.stats().await;
    assert!(stats.peak_used_weight <= 2.0 + 1e-9);
    assert_eq!(svc.phase_count("standby").await, 1);
    // The oldest went.
    assert!(!w.live.contains_key("hpd-job-ra-1"));
    svc.stop().await;
}

#[actix_rt::test]
async fn a_helper_failing_its_check_is_deleted_and_the_job_gets_a_new_resource() {
    tokio::time::pause();
    let world = World::new();
    let r = service_runner(&world, "ra", 20);
    r.coord.push_jobs([tenant_job(1, "orga_a", "1")]);
    let store = MemoryStore::new();
    let mut svc = start(settings(4.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    world.finish_job(1);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("standby") == Some(&1))
            .await
    );
    r.paas.fail(
        Step::Reuse,
        [PaasError::transient("can-take-job", "not idle within 10 s")],
    );
    r.coord.push_jobs([tenant_job(2, "orga_a", "1")]);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1)
            && s.phases.len() == 1)
            .await
    );
    let w = world.state();
    assert_eq!((w.created, w.deleted, w.double_uses), (2, 1, 0));
    assert!(w.live.contains_key("hpd-job-ra-2"));
    let stats = svc.stats().await;
    assert_eq!(stats.launch_failures, 0, "never failed for that");
    assert!(r.coord.script.borrow().reports.is_empty());
    assert!(svc.logs.text().contains("cannot take the job"));
    svc.stop().await;
}

#[actix_rt::test]
async fn a_restart_keeps_standby_resources_and_resumes_their_clock() {
    tokio::time::pause();
    let world = World::new();
    let r = service_runner(&world, "ra", 20);
    r.coord.push_jobs([tenant_job(1, "orga_a", "1")]);
    let store = MemoryStore::new();
    let mut svc = start(settings(4.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    world.finish_job(1);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("standby") == Some(&1))
            .await
    );
    let report = svc.stop().await;
    assert!(!report.forced);
    assert_eq!(
        world.live_count(),
        1,
        "a graceful stop keeps standby resources"
    );
    let json = store.last_json().expect("state");
    let saved = json["standby_resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(saved.len(), 1, "{json}");

    let store2 = MemoryStore::with_initial(&serde_json::to_vec(&json).expect("json"));
    let mut svc2 = start(settings(4.0), &[&r], &store2).await;
    assert_eq!(svc2.phase_count("standby").await, 1);
    assert_eq!(svc2.stats().await.used_weight, 1.0);
    // Reused after the restart.
    r.coord.push_jobs([tenant_job(2, "orga_a", "1")]);
    assert!(
        svc2.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    assert_eq!(world.state().created, 1);
    world.finish_job(2);
    assert!(
        svc2.until(SEC, 60, |s| s.phases.get("standby") == Some(&1))
            .await
    );
    assert!(svc2.until(SEC, 200, |s| s.phases.is_empty()).await);
    assert_eq!(world.live_count(), 0);
    svc2.stop().await;
}

#[actix_rt::test]
async fn release_standby_deletes_them_and_keeps_none_after() {
    tokio::time::pause();
    let world = World::new();
    let r = service_runner(&world, "ra", 20);
    r.coord
        .push_jobs([tenant_job(1, "orga_a", "1"), tenant_job(2, "orga_a", "1")]);
    let store = MemoryStore::new();
    let mut svc = start(settings(4.0), &[&r], &store).await;
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&2))
            .await
    );
    world.finish_job(1);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("standby") == Some(&1))
            .await
    );
    assert_eq!(svc.handle.release_standby().await, Some(1));
    world.finish_job(2);
    assert!(svc.until(SEC, 60, |s| s.phases.is_empty()).await);
    assert_eq!(world.live_count(), 0);
    svc.stop().await;
}

/// `standby_resources` as the Python runner 1.1.1 writes it: job handles
/// without `since` and `use_count`, each with the application's dump.
const PY111_STATE: &str = include_str!("../fixtures/state-1.1.1-standby.json");

#[actix_rt::test]
async fn a_python_runner_standby_section_is_resumed() {
    tokio::time::pause();
    let world = World::new();
    let r = service_runner(&world, "ra", 20);
    let app = |id: &str, tenant: &str| paas_actors::ports::Resource {
        id: id.to_string(),
        name: id.to_string(),
        weight: 1.0,
        launched: true,
        detail: serde_json::json!({"job_id": 0, "scope": tenant}),
        credential: None,
    };
    world.add_live(app("hpd-job-ra-7", "group_a"));
    world.add_live(app("hpd-job-ra-8", "group_a"));
    let store = MemoryStore::with_initial(PY111_STATE.as_bytes());
    let mut svc = start(settings(4.0), &[&r], &store).await;
    assert_eq!(svc.phase_count("standby").await, 2);
    // Reconciliation counts them as ours.
    assert!(svc.until(SEC, 10, |s| s.reconcile_passes >= 1).await);
    let stats = svc.stats().await;
    assert_eq!((stats.adopted, stats.unknown_decommissioned), (0, 0));
    assert_eq!(world.live_count(), 2);
    r.coord.push_jobs([tenant_job(9, "group_a", "1")]);
    assert!(
        svc.until(SEC, 60, |s| s.phases.get("started") == Some(&1))
            .await
    );
    let w = world.state();
    assert_eq!((w.created, w.reused_launches), (0, 0));
    assert!(
        w.running_on.get("hpd-job-ra-7") == Some(&9),
        "{:?}",
        w.running_on
    );
    // The other one expires (from the load: 1.1.1 does not say since when).
    assert!(
        svc.until(SEC, 200, |s| !s.phases.contains_key("standby"))
            .await
    );
    assert_eq!(world.live_count(), 1);
    let json = store.last_json().expect("state");
    assert!(json.get("standby_resources").is_none(), "{json}");
    svc.stop().await;
}

#[actix_rt::test]
async fn a_restart_resumes_the_expiry_clock_from_since() {
    tokio::time::pause();
    let world = World::new();
    let r = service_runner(&world, "ra", 20);
    let app = paas_actors::ports::Resource {
        id: "app_ra_4".to_string(),
        name: "hpd-job-ra-4".to_string(),
        weight: 1.0,
        launched: true,
        detail: serde_json::json!({"job_id": 4, "scope": "orga_a"}),
        credential: None,
    };
    world.add_live(app);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    // On standby for 100 s of its 120 s when the service stopped.
    let state = serde_json::json!({
        "launched": [], "pending": [], "to_decommission": [],
        "standby_resources": [{
            "runner_name": "ra", "job_id": 4, "token": "job-token-4",
            "trace_offset": 0, "expected_weight": 1.0,
            "paas_resource": {"app_id": "app_ra_4", "name": "hpd-job-ra-4",
                              "weight": 1.0, "launched": true, "job_id": 4,
                              "scope": "orga_a"},
            "since": now - 100.0, "use_count": 3
        }]
    });
    let store = MemoryStore::with_initial(&serde_json::to_vec(&state).expect("json"));
    let mut svc = start(settings(4.0), &[&r], &store).await;
    assert_eq!(svc.phase_count("standby").await, 1);
    let saved = store.last().expect("state");
    assert_eq!(
        saved.standby_resources.first().map(|s| s.use_count),
        Some(3)
    );
    // Deleted about 20 s later, not 120 s.
    assert!(svc.until(SEC, 40, |s| s.phases.is_empty()).await);
    assert_eq!(world.live_count(), 0);
    svc.stop().await;
}
