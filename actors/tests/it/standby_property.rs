//! Property: over random interleavings of acquisitions (two tenants, a job
//! of unknown tenant, three sizes), finishes, standby expiries, failed
//! launches, failed reuse checks, helpers dying on standby and restarts
//! (graceful stop, then a new service from the saved state), the weight
//! held never exceeds the quota (standby included), neither in the ledger
//! nor on the PAAS, no resource ever runs a job while its previous job is
//! not over, and in the end nothing is left.

use crate::common::*;
use paas_actors::ports::PaasError;
use paas_actors::testing::{job, MemoryStore, Step, World};
use paas_actors::StandbyPolicy;
use proptest::prelude::*;
use std::rc::Rc;
use std::time::Duration;

const QUOTA: f64 = 4.0;
const KEEP: Duration = Duration::from_secs(30);
const WEIGHTS: [&str; 3] = ["1", "1.1", "2"];
const TENANTS: [Option<&str>; 3] = [Some("orga_a"), Some("orga_b"), None];

#[derive(Debug, Clone)]
enum Op {
    /// A job for runner `.0`, of tenant `.1` and weight `.2` (indexes).
    Push(usize, usize, usize),
    /// The `.0`-th job pushed so far (modulo) ends at the coordinator.
    Finish(usize),
    /// Time passes (seconds).
    Wait(u64),
    /// The next launch of runner `.0` fails.
    FailLaunch(usize),
    /// The next reuse check of runner `.0` fails.
    FailReuse(usize),
    /// The `.0`-th live resource (modulo) disappears (its helper died).
    KillResource(usize),
    /// Graceful stop, then a new service from the saved state.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..2, 0usize..3, 0usize..3).prop_map(|(r, t, w)| Op::Push(r, t, w)),
        3 => (0usize..64).prop_map(Op::Finish),
        2 => (1u64..40).prop_map(Op::Wait),
        1 => (0usize..2).prop_map(Op::FailLaunch),
        1 => (0usize..2).prop_map(Op::FailReuse),
        1 => (0usize..8).prop_map(Op::KillResource),
        1 => Just(Op::Restart),
    ]
}

fn service_runner(world: &Rc<World>, name: &str) -> Runner {
    let mut r = runner(world, name, 2.0);
    r.paas.service.set(true);
    r.settings.standby = Some(StandbyPolicy {
        keep: KEEP,
        max_jobs_per_resource: 3,
    });
    r
}

/// The checks that hold at every step.
async fn check(svc: &Service, world: &World) -> Result<(), TestCaseError> {
    let stats = svc.stats().await;
    prop_assert!(
        stats.peak_used_weight <= QUOTA + 1e-9,
        "ledger peak {} > quota {QUOTA}",
        stats.peak_used_weight
    );
    let w = world.state();
    prop_assert!(
        w.peak_live_weight <= QUOTA + 1e-9,
        "live peak {} > quota {QUOTA}",
        w.peak_live_weight
    );
    prop_assert!(
        world.live_weight() <= QUOTA + 1e-9,
        "live weight {} > quota",
        world.live_weight()
    );
    prop_assert_eq!(w.double_uses, 0, "a resource ran two jobs at once");
    Ok(())
}

fn run_case(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        tokio::time::pause();
        let world = World::new();
        let runners = [service_runner(&world, "ra"), service_runner(&world, "rb")];
        let refs: Vec<&Runner> = runners.iter().collect();
        let mut store = MemoryStore::new();
        let mut svc = start(settings(QUOTA), &refs, &store).await;
        let mut pushed: Vec<i64> = Vec::new();
        for op in ops {
            match op {
                Op::Push(r, t, w) => {
                    let id = pushed.len() as i64 + 1;
                    let mut vars = vec![("WEIGHT", WEIGHTS[w])];
                    if let Some(tenant) = TENANTS[t] {
                        vars.push(("TENANT", tenant));
                    }
                    runners[r].coord.push_jobs([job(id, &vars)]);
                    pushed.push(id);
                }
                Op::Finish(n) => {
                    if !pushed.is_empty() {
                        world.finish_job(pushed[n % pushed.len()]);
                    }
                }
                Op::Wait(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                Op::FailLaunch(r) => runners[r]
                    .paas
                    .fail(Step::Launch, [PaasError::permanent("launch", "refused")]),
                Op::FailReuse(r) => runners[r].paas.fail(
                    Step::Reuse,
                    [PaasError::transient("can-take-job", "not idle")],
                ),
                Op::KillResource(n) => {
                    let names: Vec<String> = world.state().live.keys().cloned().collect();
                    if !names.is_empty() {
                        world.remove_live(&names[n % names.len()]);
                    }
                }
                Op::Restart => {
                    check(&svc, &world).await?;
                    let report = svc.stop().await;
                    prop_assert!(!report.forced);
                    let json = store.last_json().expect("state saved");
                    store = MemoryStore::with_initial(&serde_json::to_vec(&json).expect("json"));
                    svc = start(settings(QUOTA), &refs, &store).await;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            check(&svc, &world).await?;
        }
        // Everything ends: every job finishes, standby resources expire.
        for id in &pushed {
            world.finish_job(*id);
        }
        let drained = svc
            .until(SEC, 600, |s| {
                s.phases.is_empty()
                    && runners
                        .iter()
                        .all(|r| r.coord.script.borrow().queue.is_empty())
            })
            .await;
        check(&svc, &world).await?;
        let stats = svc.stats().await;
        svc.stop().await;
        prop_assert!(drained, "left: {:?}", stats.phases);
        prop_assert_eq!(world.live_count(), 0, "resources left on the PAAS");
        Ok(())
    })
}

/// 16 cases, or `PROPTEST_CASES` when set (for longer searches).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_quota_holds_with_standby_and_reuse(ops in prop::collection::vec(op(), 1..40)) {
        run_case(ops)?;
    }
}
