//! Actor tests of the progress checks (`job_status`): per-job timers that
//! start at launch, counted on paused tokio time.

use crate::common::*;
use paas_actors::testing::{job, MemoryStore, Step, World};
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(10);

fn status_calls(r: &Runner) -> u64 {
    r.coord.script.borrow().status_calls
}

#[actix_rt::test]
async fn a_job_is_checked_once_per_interval_from_its_launch_only() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 2.0);
    // Launching takes 25 s (the create): the job is launched at t = 25 s.
    r.paas.set_latency(Step::Create, Duration::from_secs(25));
    r.coord.push_jobs([job(7, &[])]);
    let mut s = settings(10.0);
    s.job_progress_poll_interval = INTERVAL;
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;

    // t = 29 s: launched and started, never checked while launching.
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(svc.phase_count("started").await, 1);
    assert_eq!(status_calls(&r), 0, "no status check before the launch");

    // t = 129 s: checked at 35, 45, ..., 125 s: once per interval.
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(status_calls(&r), 10);

    // Finished at 129 s: seen at the check of 135 s, deleted at once.
    world.finish_job(7);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(status_calls(&r), 11);
    assert_eq!(world.state().deleted, 1);
    assert_eq!(svc.stats().await.completed, 1);
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(status_calls(&r), 11, "a finished job is not checked again");
    svc.stop().await;
}
