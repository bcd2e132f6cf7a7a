//! Property: with several runners polled concurrently, random flavors,
//! latencies and limits, neither the ledger nor the live PAAS resources ever
//! exceed the quota, and every job a runner may take eventually completes.

use crate::common::*;
use paas_actors::testing::{job, MemoryStore, Step, World};
use proptest::prelude::*;
use std::time::Duration;

const FLAVORS: [f64; 3] = [1.0, 2.378, 5.657];

#[derive(Debug, Clone)]
struct Case {
    runner_max: Vec<usize>,
    jobs: Vec<(usize, usize)>,
    quota_k: usize,
    concurrent: usize,
    provisioning: usize,
    fraction: f64,
    create_ms: u64,
    launch_ms: u64,
    request_ms: u64,
    progress_s: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(0usize..3, 1..=4),
        prop::collection::vec((0usize..4, 0usize..3), 0..30),
        1usize..5,
        1usize..12,
        1usize..6,
        prop_oneof![Just(1.0), 0.3f64..1.0],
        0u64..5000,
        0u64..5000,
        0u64..2000,
        1u64..20,
    )
        .prop_map(
            |(runner_max, jobs, quota_k, concurrent, provisioning, fraction, c, l, r, p)| Case {
                jobs: jobs
                    .into_iter()
                    .map(|(ri, fi)| (ri % runner_max.len(), fi))
                    .collect(),
                runner_max,
                quota_k,
                concurrent,
                provisioning,
                fraction,
                create_ms: c,
                launch_ms: l,
                request_ms: r,
                progress_s: p,
            },
        )
}

fn run_case(c: Case) -> Result<(), TestCaseError> {
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        tokio::time::pause();
        let world = World::new();
        let quota = FLAVORS[1] * c.quota_k as f64;
        let runners: Vec<Runner> = c
            .runner_max
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                let r = runner(&world, &format!("r{i}"), FLAVORS[m]);
                r.paas
                    .set_latency(Step::Create, Duration::from_millis(c.create_ms));
                r.paas
                    .set_latency(Step::Launch, Duration::from_millis(c.launch_ms));
                {
                    let mut s = r.coord.script.borrow_mut();
                    s.request_latency = Duration::from_millis(c.request_ms);
                    s.auto_finish = true;
                }
                r
            })
            .collect();
        let mut expected_done = 0u64;
        let mut blocked_runners = vec![false; runners.len()];
        for (i, (&m, r)) in c.runner_max.iter().zip(&runners).enumerate() {
            blocked_runners[i] = FLAVORS[m] > quota * c.fraction + 1e-9;
            let _ = r;
        }
        for (n, &(ri, fi)) in c.jobs.iter().enumerate() {
            let Some(&m) = c.runner_max.get(ri) else {
                continue;
            };
            let weight = FLAVORS[fi.min(m)];
            let w = weight.to_string();
            runners[ri]
                .coord
                .push_jobs([job(n as i64 + 1, &[("WEIGHT", &w)])]);
            if !blocked_runners[ri] {
                expected_done += 1;
            }
        }
        let mut s = settings(quota);
        s.concurrent = c.concurrent;
        s.max_concurrent_provisioning = c.provisioning;
        s.allowed_fraction_per_runner = c.fraction;
        s.job_progress_poll_interval = Duration::from_secs(c.progress_s);
        let store = MemoryStore::new();
        let refs: Vec<&Runner> = runners.iter().collect();
        let mut svc = start(s, &refs, &store).await;
        let done = svc.until(SEC, 5000, |s| s.completed == expected_done).await;
        // Give blocked runners a chance to misbehave.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let stats = svc.stats().await;
        svc.stop().await;
        prop_assert!(done, "completed {} of {expected_done}", stats.completed);
        prop_assert_eq!(stats.completed, expected_done);
        prop_assert!(
            stats.peak_used_weight <= quota + 1e-9,
            "ledger peak {} > quota {quota}",
            stats.peak_used_weight
        );
        let peak_live = world.state().peak_live_weight;
        prop_assert!(
            peak_live <= quota + 1e-9,
            "live peak {peak_live} > quota {quota}"
        );
        for (i, r) in runners.iter().enumerate() {
            if blocked_runners[i] {
                prop_assert_eq!(r.paas.calls(Step::Create), 0);
            }
        }
        Ok(())
    })
}

/// 24 cases, or `PROPTEST_CASES` when set (for longer searches).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn quota_is_never_exceeded_with_concurrent_runners(c in case()) {
        run_case(c)?;
    }
}

/// A case proptest found: the runner whose largest job takes the whole
/// quota was kept from polling for ever by the polls of three runners with
/// small jobs (a poll takes half of `check_interval`: one of theirs was
/// always in flight). The fields proptest's report left out are set to
/// values that fail the same way without the debt rule of `quota.rs`.
#[test]
fn a_heavy_runner_is_not_starved_by_small_polls() {
    let c = Case {
        runner_max: vec![0, 1, 0, 0],
        jobs: vec![(2, 0), (1, 0)],
        quota_k: 1,
        concurrent: 2,
        provisioning: 2,
        fraction: 1.0,
        create_ms: 0,
        launch_ms: 0,
        request_ms: 1500,
        progress_s: 5,
    };
    if let Err(e) = run_case(c) {
        panic!("{e}");
    }
}
