//! Property: no external action starts before the state recording it is
//! durable, whatever the timing. Random jobs, PAAS latencies and failures,
//! state writes that take random time (a write's content is durable only
//! when it completes, the store keeping the last completed one) or fail,
//! and jobs ending at random moments. At the start of every action the
//! durable state must hold its record:
//! - `create`: the job in `pending` and its resource name in `creating`;
//! - `prepare`, `launch` (the push): the job with its `paas_resource`;
//! - `decommission`: the job in `to_decommission`;
//! - a job update (trace append, failure report): the job in
//!   `launch_failures`.
//!
//! Also: the store never has two writes in flight (a later write could
//! otherwise be overtaken by an earlier one).

use crate::common::*;
use paas_actors::ports::PaasError;
use paas_actors::state::Snapshot;
use paas_actors::testing::{job, MemoryStore, Step, World};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// One thing done to the world, then `wait` ms of virtual time.
#[derive(Debug, Clone)]
enum Op {
    /// Queues `n` jobs.
    Push { n: usize },
    /// The next call of a step fails.
    Fail { step: usize, permanent: bool },
    /// One of the jobs known so far ends at the coordinator.
    Finish { nth: usize },
    /// The next state writes fail.
    StoreFails { writes: u32 },
}

const STEPS: [Step; 3] = [Step::Create, Step::Prepare, Step::Launch];

#[derive(Debug, Clone)]
struct Case {
    concurrent: usize,
    decommission_failures: bool,
    save_latencies_ms: Vec<u64>,
    paas_latency_ms: [u64; 4],
    ops: Vec<(Op, u64)>,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..5).prop_map(|n| Op::Push { n }),
        3 => (0..STEPS.len(), any::<bool>())
            .prop_map(|(step, permanent)| Op::Fail { step, permanent }),
        4 => (0usize..64).prop_map(|nth| Op::Finish { nth }),
        1 => (1u32..3).prop_map(|writes| Op::StoreFails { writes }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..8,
        any::<bool>(),
        prop::collection::vec(0u64..40, 1..6),
        [0u64..30, 0u64..30, 0u64..30, 0u64..30],
        prop::collection::vec((op(), 0u64..3000), 1..30),
    )
        .prop_map(
            |(concurrent, decommission_failures, save_latencies_ms, paas_latency_ms, ops)| Case {
                concurrent,
                decommission_failures,
                save_latencies_ms,
                paas_latency_ms,
                ops,
            },
        )
}

/// What the durable state must hold when `step` starts for `job`.
fn recorded(snap: Option<&Snapshot>, step: Step, job: i64) -> bool {
    let Some(s) = snap else {
        return false;
    };
    let with_resource =
        |h: &paas_actors::state::HandleRecord| h.job_id == job && h.paas_resource.is_some();
    match step {
        Step::Create => {
            s.pending.iter().any(|p| p.handle.job_id == job)
                && s.creating.iter().any(|c| c.job_id == job)
        }
        Step::Prepare | Step::Launch => {
            s.pending.iter().any(|p| with_resource(&p.handle))
                || s.launched.iter().any(with_resource)
        }
        Step::Decommission => s.to_decommission.iter().any(|h| h.job_id == job),
        _ => true,
    }
}

fn run_case(c: Case) -> Result<(), TestCaseError> {
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        tokio::time::pause();
        let world = World::new();
        let r = runner(&world, "ra", 1.0);
        let ms = Duration::from_millis;
        for (step, l) in [
            Step::Create,
            Step::Prepare,
            Step::Launch,
            Step::Decommission,
        ]
        .into_iter()
        .zip(c.paas_latency_ms)
        {
            r.paas.set_latency(step, ms(l));
        }
        let store = MemoryStore::new();
        store.set_save_latencies(c.save_latencies_ms.iter().map(|&l| ms(l)).collect());
        let violations: Rc<RefCell<Vec<String>>> = Rc::default();
        let effects = Rc::new(RefCell::new(0u64));
        {
            let (store, violations, effects) = (store.clone(), violations.clone(), effects.clone());
            *r.paas.on_call.borrow_mut() = Some(Box::new(move |step, id| {
                if matches!(step, Step::Expected | Step::List | Step::Recover) {
                    return;
                }
                *effects.borrow_mut() += 1;
                if !recorded(store.last().as_ref(), step, id) {
                    violations.borrow_mut().push(format!(
                        "{step:?} of job {id} before its record was durable"
                    ));
                }
            }));
        }
        {
            let (store, violations, effects) = (store.clone(), violations.clone(), effects.clone());
            *r.coord.on_update.borrow_mut() = Some(Box::new(move |id| {
                *effects.borrow_mut() += 1;
                let failure_recorded = store
                    .last()
                    .is_some_and(|s| s.launch_failures.iter().any(|f| f.job_id == id));
                if !failure_recorded {
                    violations.borrow_mut().push(format!(
                        "job update of job {id} before its failure was durable"
                    ));
                }
            }));
        }
        let mut s = settings(100.0);
        s.concurrent = c.concurrent;
        s.decommission_launch_failures = c.decommission_failures;
        s.job_progress_poll_interval = Duration::from_secs(2);
        let mut svc = start(s, &[&r], &store).await;
        let mut ids: Vec<i64> = Vec::new();
        for (op, wait) in &c.ops {
            match *op {
                Op::Push { n } => {
                    for _ in 0..n {
                        let id = ids.len() as i64 + 1;
                        ids.push(id);
                        r.coord.push_jobs([job(id, &[])]);
                    }
                }
                Op::Fail { step, permanent } => {
                    let e = if permanent {
                        PaasError::permanent("step", "refused")
                    } else {
                        PaasError::transient("step", "unavailable")
                    };
                    r.paas.fail(STEPS[step % STEPS.len()], [e]);
                }
                Op::Finish { nth } => {
                    if let Some(id) = ids.get(nth % ids.len().max(1)) {
                        world.finish_job(*id);
                    }
                }
                Op::StoreFails { writes } => store.fail_next_saves(writes),
            }
            tokio::time::sleep(ms(*wait + 1)).await;
            prop_assert!(violations.borrow().is_empty(), "{:?}", violations.borrow());
        }
        // Every job ends; two minutes for the resources to go.
        for id in &ids {
            world.finish_job(*id);
        }
        tokio::time::sleep(Duration::from_secs(120)).await;
        svc.stop().await;
        prop_assert!(violations.borrow().is_empty(), "{:?}", violations.borrow());
        prop_assert!(
            ids.is_empty() || *effects.borrow() > 0,
            "no effect observed"
        );
        prop_assert!(
            store.max_in_flight() <= 1,
            "{} writes in flight at once",
            store.max_in_flight()
        );
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_effect_starts_after_its_record_is_durable(c in case()) {
        run_case(c)?;
    }
}
