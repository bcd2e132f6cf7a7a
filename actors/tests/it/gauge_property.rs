//! Property: whatever happens to the jobs, the gauges say what the job
//! table and the ledger hold. Random runners, limits and jobs (some loaded
//! from the state file), failures of every PAAS step, of polls and of state
//! writes, jobs ending at the coordinator, trace watches timing out,
//! resources vanishing or found unknown by reconciliation (adopted or
//! decommissioned); after every step of virtual time, `jobs{runner,phase}`
//! equals the table per runner and phase, and `quota_weight` and the
//! limits equal the ledger's, all read in one supervisor turn.

use crate::common::*;
use paas_actors::ports::{CoordinatorError, PaasError, Resource};
use paas_actors::testing::{job, Books, GetBooks, MemoryStore, Step, World};
use paas_actors::Phase;
use proptest::prelude::*;
use serde_json::json;
use std::time::Duration;

const FLAVORS: [f64; 3] = [1.0, 2.378, 5.657];

const STEPS: [Step; 7] = [
    Step::Expected,
    Step::Create,
    Step::Prepare,
    Step::Launch,
    Step::Decommission,
    Step::List,
    Step::Recover,
];

/// What a resource found on the PAAS holds.
#[derive(Debug, Clone, Copy)]
enum Holds {
    Running,
    Finished,
    NoJob,
}

/// One thing done to the world, then `wait` of virtual time.
#[derive(Debug, Clone)]
enum Op {
    /// Queues a job for a runner, whose resource may weigh more or less
    /// than expected.
    Push {
        runner: usize,
        flavor: usize,
        actual: usize,
    },
    /// The next call of a step fails on a runner.
    Fail {
        runner: usize,
        step: usize,
        permanent: bool,
    },
    /// One of the jobs known so far ends at the coordinator.
    Finish { nth: usize },
    /// One of the live resources is deleted behind the runner's back.
    Vanish { nth: usize },
    /// A resource nobody tracks appears on a runner's PAAS.
    Unknown {
        runner: usize,
        holds: Holds,
        launched: bool,
    },
    /// The next poll of a runner fails.
    PollFails { runner: usize },
    /// The next state writes fail.
    StoreFails { writes: u32 },
    /// A runner's coordinator stops (or starts again) writing traces.
    TraceSilent { runner: usize, silent: bool },
}

#[derive(Debug, Clone)]
struct Case {
    runner_max: Vec<usize>,
    /// Jobs in the state file: (runner, flavor, resource still live).
    loaded: Vec<(usize, usize, bool)>,
    quota_k: usize,
    concurrent: usize,
    provisioning: usize,
    decommission_failures: bool,
    keep_finished: bool,
    trace_timeout_s: u64,
    reconcile_s: u64,
    latency_ms: u64,
    ops: Vec<(Op, u64)>,
}

fn op(runners: usize) -> impl Strategy<Value = Op> {
    let holds = prop_oneof![
        Just(Holds::Running),
        Just(Holds::Finished),
        Just(Holds::NoJob)
    ];
    prop_oneof![
        4 => (0..runners, 0usize..3, 0usize..3)
            .prop_map(|(runner, flavor, actual)| Op::Push { runner, flavor, actual }),
        3 => (0..runners, 0..STEPS.len(), any::<bool>())
            .prop_map(|(runner, step, permanent)| Op::Fail { runner, step, permanent }),
        3 => (0usize..64).prop_map(|nth| Op::Finish { nth }),
        1 => (0usize..64).prop_map(|nth| Op::Vanish { nth }),
        1 => (0..runners, holds, any::<bool>())
            .prop_map(|(runner, holds, launched)| Op::Unknown { runner, holds, launched }),
        1 => (0..runners).prop_map(|runner| Op::PollFails { runner }),
        1 => (1u32..4).prop_map(|writes| Op::StoreFails { writes }),
        1 => (0..runners, any::<bool>())
            .prop_map(|(runner, silent)| Op::TraceSilent { runner, silent }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    prop::collection::vec(0usize..3, 1..=3).prop_flat_map(|runner_max| {
        let n = runner_max.len();
        (
            Just(runner_max),
            prop::collection::vec((0..n, 0usize..3, any::<bool>()), 0..4),
            (1usize..6, 1usize..8, 1usize..5),
            (any::<bool>(), any::<bool>()),
            (5u64..60, 5u64..60, 0u64..3000),
            prop::collection::vec((op(n), 0u64..8000), 1..40),
        )
            .prop_map(
                |(runner_max, loaded, (quota_k, concurrent, provisioning), flags, times, ops)| {
                    Case {
                        runner_max,
                        loaded,
                        quota_k,
                        concurrent,
                        provisioning,
                        decommission_failures: flags.0,
                        keep_finished: flags.1,
                        trace_timeout_s: times.0,
                        reconcile_s: times.1,
                        latency_ms: times.2,
                        ops,
                    }
                },
            )
    })
}

fn resource(runner: &str, id: i64, weight: f64, launched: bool) -> Resource {
    Resource {
        id: format!("app_{runner}_{id}"),
        name: format!("hpd-job-{runner}-{id}"),
        weight,
        launched,
        detail: json!({"job_id": id}),
        credential: None,
    }
}

/// A state file with `launched` entries for `jobs` (runner, id, weight).
fn state_file(jobs: &[(String, i64, f64)]) -> Vec<u8> {
    let launched: Vec<_> = jobs
        .iter()
        .map(|(runner, id, w)| {
            json!({"runner_name": runner, "job_id": id, "token": format!("tok-{id}"),
                   "trace_offset": 0, "expected_weight": w,
                   "paas_resource": {"app_id": format!("app_{runner}_{id}"),
                                     "name": format!("hpd-job-{runner}-{id}"), "weight": w,
                                     "launched": true, "job_id": id}})
        })
        .collect();
    serde_json::to_vec(&json!({"launched": launched, "pending": [], "to_decommission": []}))
        .unwrap_or_default()
}

/// The gauges against the books they mirror.
fn check(b: &Books, labels: &[String], when: &str) -> Result<(), TestCaseError> {
    let s = samples(&b.scrape);
    let value = |series: String| s.get(&series).copied().unwrap_or(f64::NAN);
    let mut shown = 0.0;
    for l in labels {
        for phase in Phase::ALL {
            let want = b
                .jobs
                .get(&(l.clone(), phase.as_str()))
                .copied()
                .unwrap_or(0);
            let got = value(format!(
                "heptapod_paas_runner_jobs{{runner=\"{l}\",phase=\"{phase}\"}}"
            ));
            prop_assert_eq!(
                got,
                want as f64,
                "{} jobs of {} {}: {:?}",
                when,
                l,
                phase,
                b.jobs
            );
            shown += got;
        }
    }
    prop_assert_eq!(shown, b.jobs.values().sum::<usize>() as f64, "{}", when);
    for (kind, want) in [
        ("limit", b.quota),
        ("used", b.used_weight - b.reserved_weight),
        ("reserved", b.reserved_weight),
    ] {
        let got = value(format!(
            "heptapod_paas_runner_quota_weight{{kind=\"{kind}\"}}"
        ));
        prop_assert!(
            (got - want).abs() < 1e-9,
            "{} quota {}: {} vs {}",
            when,
            kind,
            got,
            want
        );
    }
    let limits = (
        value("heptapod_paas_runner_concurrent_limit".into()),
        value("heptapod_paas_runner_provisioning_limit".into()),
    );
    prop_assert_eq!(limits, (b.limits.0 as f64, b.limits.1 as f64), "{}", when);
    Ok(())
}

async fn books(svc: &Service) -> Books {
    match svc.supervisor.send(GetBooks).await {
        Ok(b) => b,
        Err(e) => panic!("supervisor unreachable: {e}"),
    }
}

/// The world, the runners and the store of a case.
struct Fixture<'a> {
    world: &'a World,
    runners: &'a [Runner],
    runner_max: &'a [usize],
    store: &'a MemoryStore,
}

/// Applies `op` to the world; `ids` are the jobs known so far.
fn apply(op: &Op, f: &Fixture<'_>, ids: &mut Vec<i64>) {
    let (world, runners) = (f.world, f.runners);
    let next_id = ids.last().copied().unwrap_or(0) + 1;
    match *op {
        Op::Push {
            runner,
            flavor,
            actual,
        } => {
            let max = f.runner_max[runner];
            let w = FLAVORS[flavor.min(max)].to_string();
            let a = FLAVORS[actual.min(max)].to_string();
            let vars = [("WEIGHT", w.as_str()), ("ACTUAL_WEIGHT", a.as_str())];
            runners[runner].coord.push_jobs([job(next_id, &vars)]);
            ids.push(next_id);
        }
        Op::Fail {
            runner,
            step,
            permanent,
        } => {
            let e = if permanent {
                PaasError::permanent("step", "refused")
            } else {
                PaasError::transient("step", "unavailable")
            };
            runners[runner].paas.fail(STEPS[step], [e]);
        }
        Op::Finish { nth } => {
            if let Some(id) = ids.get(nth % ids.len().max(1)) {
                world.finish_job(*id);
            }
        }
        Op::Vanish { nth } => {
            let live: Vec<String> = world.state().live.keys().cloned().collect();
            if let Some(name) = live.get(nth % live.len().max(1)) {
                world.remove_live(name);
            }
        }
        Op::Unknown {
            runner,
            holds,
            launched,
        } => {
            let r = &runners[runner];
            let res = resource(&r.name, next_id, FLAVORS[0], launched);
            if !matches!(holds, Holds::NoJob) {
                r.paas
                    .pushed_jobs
                    .borrow_mut()
                    .insert(res.name.clone(), job(next_id, &[]));
            }
            if matches!(holds, Holds::Finished) {
                world.finish_job(next_id);
            }
            world.add_live(res);
            ids.push(next_id);
        }
        Op::PollFails { runner } => {
            let e = CoordinatorError::Unavailable {
                detail: "502".into(),
                retry_after: None,
            };
            runners[runner]
                .coord
                .script
                .borrow_mut()
                .request_errors
                .push_back(e);
        }
        Op::StoreFails { writes } => f.store.fail_next_saves(writes),
        Op::TraceSilent { runner, silent } => {
            runners[runner].coord.script.borrow_mut().auto_trace = !silent;
        }
    }
}

fn run_case(c: Case) -> Result<(), TestCaseError> {
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        tokio::time::pause();
        let world = World::new();
        let runners: Vec<Runner> = c
            .runner_max
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                let mut r = runner(&world, &format!("r{i}"), FLAVORS[m]);
                r.settings.trace_watch = Some(paas_actors::settings::TraceWatch {
                    timeout: Duration::from_secs(c.trace_timeout_s),
                    poll_step: SEC,
                });
                let latency = Duration::from_millis(c.latency_ms);
                r.paas.set_latency(Step::Create, latency);
                r.paas.set_latency(Step::Launch, latency);
                r.coord.script.borrow_mut().request_latency = latency / 2;
                r
            })
            .collect();
        let labels: Vec<String> = runners.iter().map(|r| r.name.clone()).collect();
        let mut ids: Vec<i64> = Vec::new();
        let mut loaded = Vec::new();
        for &(ri, fi, live) in &c.loaded {
            let id = ids.len() as i64 + 1;
            let (name, w) = (labels[ri].clone(), FLAVORS[fi.min(c.runner_max[ri])]);
            if live {
                world.add_live(resource(&name, id, w, true));
            }
            loaded.push((name, id, w));
            ids.push(id);
        }
        let mut s = settings(FLAVORS[1] * c.quota_k as f64);
        s.concurrent = c.concurrent;
        s.max_concurrent_provisioning = c.provisioning;
        s.decommission_launch_failures = c.decommission_failures;
        s.keep_finished_resources = c.keep_finished;
        s.reconcile_interval = Some(Duration::from_secs(c.reconcile_s));
        s.job_progress_poll_interval = Duration::from_secs(5);
        let store = MemoryStore::with_initial(&state_file(&loaded));
        let refs: Vec<&Runner> = runners.iter().collect();
        let mut svc = start(s, &refs, &store).await;
        check(&books(&svc).await, &labels, "at start")?;
        let fixture = Fixture {
            world: &world,
            runners: &runners,
            runner_max: &c.runner_max,
            store: &store,
        };
        for (n, (op, wait)) in c.ops.iter().enumerate() {
            apply(op, &fixture, &mut ids);
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(wait / 3 + 1)).await;
                check(&books(&svc).await, &labels, &format!("after op {n} {op:?}"))?;
            }
        }
        // Every job ends; ten minutes for the resources to go.
        for id in &ids {
            world.finish_job(*id);
        }
        for _ in 0..60 {
            tokio::time::sleep(10 * SEC).await;
            check(&books(&svc).await, &labels, "winding down")?;
        }
        svc.stop().await;
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn gauges_equal_the_job_table_and_the_ledger_after_every_step(c in case()) {
        run_case(c)?;
    }
}
