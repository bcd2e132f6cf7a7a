//! Actor tests of the progress checks (`job_status`): per-job timers that
//! start at launch, counted on paused tokio time.

use crate::common::*;
use paas_actors::ports::{CoordinatorError, JobApiStatus};
use paas_actors::testing::{job, MemoryStore, Step, World};
use std::rc::Rc;
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

/// A job seen started 1 s after its launch and ending 2 s later, checked
/// every second: its checks are timed from its observed start, so none
/// comes before it (a timer from the launch asked 4 times here: at 1, 2, 3
/// and 4 s), and its end is seen within one interval.
#[actix_rt::test]
async fn checks_are_timed_from_the_observed_start_not_the_launch() {
    tokio::time::pause();
    let world = World::new();
    let mut r = runner(&world, "ra", 2.0);
    r.settings.trace_watch = Some(paas_actors::settings::TraceWatch {
        timeout: Duration::from_secs(60),
        poll_step: Duration::from_millis(300),
    });
    r.coord.script.borrow_mut().auto_trace = false;
    r.coord.push_jobs([job(7, &[])]);
    let mut s = settings(10.0);
    s.job_progress_poll_interval = Duration::from_secs(1);
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    let step = Duration::from_millis(10);

    assert!(
        svc.until(step, 3000, |s| s.phases.get("launched") == Some(&1))
            .await,
        "job 7 launched"
    );
    let launched = tokio::time::Instant::now();
    // The inner job writes to its trace 1.05 s after the launch.
    tokio::time::sleep_until(launched + Duration::from_millis(1050)).await;
    r.coord.script.borrow_mut().auto_trace = true;
    assert!(
        svc.until(step, 300, |s| s.phases.get("started") == Some(&1))
            .await,
        "job 7 started"
    );
    assert_eq!(status_calls(&r), 0, "no status check before the start");

    // It ends 2 s after its start.
    tokio::time::sleep_until(launched + Duration::from_millis(3050)).await;
    world.finish_job(7);
    let ended = tokio::time::Instant::now();
    assert!(
        svc.until(step, 500, |_| world.state().deleted == 1).await,
        "job 7's application deleted"
    );
    let lag = ended.elapsed();
    assert!(
        lag <= Duration::from_millis(1100),
        "end seen within one interval (and the delete): {lag:?}"
    );
    assert_eq!(
        status_calls(&r),
        2,
        "checked at 1 s and 2 s after its start"
    );
    svc.stop().await;
}

/// A job cancelled at the coordinator after its launch and before its
/// trace grows is seen at its first check, two intervals after the launch.
#[actix_rt::test]
async fn a_job_cancelled_before_its_start_is_seen_two_intervals_after_its_launch() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 2.0);
    r.coord.script.borrow_mut().auto_trace = false;
    r.coord.push_jobs([job(7, &[])]);
    let mut s = settings(10.0);
    s.job_progress_poll_interval = INTERVAL;
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    let step = Duration::from_millis(100);
    assert!(
        svc.until(step, 600, |s| s.phases.get("launched") == Some(&1))
            .await,
        "job 7 launched"
    );
    let launched = tokio::time::Instant::now();
    world.finish_job(7);
    tokio::time::sleep_until(launched + INTERVAL * 2 - step).await;
    assert_eq!(
        (status_calls(&r), world.state().deleted),
        (0, 0),
        "no check before two intervals"
    );
    assert!(
        svc.until(step, 20, |_| world.state().deleted == 1).await,
        "seen cancelled at the first check, application deleted"
    );
    assert_eq!(status_calls(&r), 1);
    svc.stop().await;
}

/// Starts `ids` one after the other, `gap` apart, so that each job has its
/// own check timer; returns as soon as the last one is started.
async fn start_spread(r: &Runner, svc: &mut Service, ids: &[i64], gap: Duration) {
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            tokio::time::sleep(gap).await;
        }
        r.coord.push_jobs([job(*id, &[])]);
        assert!(
            svc.until(Duration::from_millis(100), 600, |s| s
                .phases
                .get("started")
                .copied()
                .unwrap_or(0)
                == n + 1)
                .await,
            "job {id} started"
        );
    }
}

#[actix_rt::test]
async fn jobs_ending_together_with_no_other_job_end_at_their_check() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.push_jobs([job(5, &[]), job(6, &[])]);
    let mut s = settings(10.0);
    s.job_progress_poll_interval = INTERVAL;
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    assert!(
        svc.until(Duration::from_secs(1), 60, |s| s.phases.get("started")
            == Some(&2))
            .await
    );
    // Both tokens refused: the jobs ended together.
    r.coord.script.borrow_mut().token_refused.extend([5, 6]);
    tokio::time::sleep(INTERVAL + Duration::from_secs(1)).await;
    assert_eq!(svc.stats().await.completed, 2, "ended at their next check");
    assert_eq!(world.state().deleted, 2);
    assert!(!svc.logs.text().contains("coordinator problem"));
    svc.stop().await;
}

#[actix_rt::test]
async fn a_refused_token_is_believed_once_another_job_is_seen_accepted() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let mut s = settings(10.0);
    s.job_progress_poll_interval = INTERVAL;
    let store = MemoryStore::new();
    let mut svc = start(s, &[&r], &store).await;
    // Job 5's timer runs 5 s ahead of job 6's.
    start_spread(&r, &mut svc, &[5, 6], Duration::from_secs(5)).await;
    let before = status_calls(&r);
    r.coord.script.borrow_mut().token_refused.insert(5);
    // Job 5's next check (before job 6's) refuses it; job 6 is asked at
    // once as a witness, accepted: job 5 ends then, after two checks.
    assert!(
        svc.until(Duration::from_millis(100), 200, |s| s.completed == 1)
            .await
    );
    assert_eq!(
        status_calls(&r),
        before + 2,
        "job 5's check and one witness"
    );
    assert_eq!(svc.stats().await.phases.get("started"), Some(&1));
    // The witness's check was moved earlier, not added: in the next three
    // intervals job 6 is checked twice (its own next check was taken).
    let after = status_calls(&r);
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(status_calls(&r), after + 2);
    svc.stop().await;
}

#[actix_rt::test]
async fn a_coordinator_problem_reaching_each_timer_in_turn_ends_no_job() {
    // Three jobs on three timers, 3 s apart, every token refused: the first
    // refused check asks the other jobs as witnesses, all refused: a burst,
    // nothing ends.
    let (world, r, mut svc) = burst().await;
    let stats = svc.stats().await;
    assert_eq!(stats.phases.get("started"), Some(&3), "no job ended");
    assert_eq!(world.live_count(), 3, "no app deleted");
    // The coordinator recovers before the jobs' next checks: the refusals
    // it gave are dropped.
    r.coord.script.borrow_mut().refuse_every_token = false;
    tokio::time::sleep(INTERVAL * 2).await;
    assert_eq!(svc.stats().await.phases.get("started"), Some(&3));
    assert_eq!(world.live_count(), 3);
    svc.stop().await;
}

/// Check intervals a burst of refused tokens must last before the jobs
/// are taken as over (README, "Runner-side trouble and transport").
const BURST_PATIENCE: u32 = 3;

/// A service whose runner has three started jobs on three timers, then
/// every token refused: returned once the burst is declared (its start,
/// within 100 ms).
async fn burst() -> (Rc<World>, Runner, Service) {
    burst_with(None).await
}

/// [`burst`], with the Jobs API answering `jobs_api` about every job
/// (`None`: nothing learnt, as without a trace-watch token). The burst is
/// declared by its warning, or by the Jobs API asked about its jobs (the
/// warning then waits for the answers).
async fn burst_with(
    jobs_api: Option<Result<JobApiStatus, CoordinatorError>>,
) -> (Rc<World>, Runner, Service) {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    let mut s = settings(10.0);
    s.job_progress_poll_interval = INTERVAL;
    let mut svc = start(s, &[&r], &MemoryStore::new()).await;
    start_spread(&r, &mut svc, &[5, 6, 7], Duration::from_secs(3)).await;
    r.coord.script.borrow_mut().jobs_api = jobs_api;
    r.coord.script.borrow_mut().refuse_every_token = true;
    let logs = svc.logs.clone();
    assert!(
        until(Duration::from_millis(100), 200, || logs
            .text()
            .contains("taken as a coordinator problem")
            || jobs_api_calls(&r) > 0)
        .await,
        "burst declared"
    );
    (world, r, svc)
}

#[actix_rt::test]
async fn a_refusal_burst_shorter_than_the_patience_ends_no_job() {
    let (world, r, mut svc) = burst().await;
    // Refused at every check for one interval less than the patience.
    tokio::time::sleep(INTERVAL * (BURST_PATIENCE - 1)).await;
    let stats = svc.stats().await;
    assert_eq!(stats.phases.get("started"), Some(&3), "no job ended");
    assert_eq!(stats.completed, 0);
    assert_eq!(world.live_count(), 3, "no app deleted");
    // The coordinator recovers: the jobs run on, nothing is deleted.
    r.coord.script.borrow_mut().refuse_every_token = false;
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(svc.stats().await.phases.get("started"), Some(&3));
    assert_eq!(world.live_count(), 3);
    assert_eq!(world.state().deleted, 0);
    svc.stop().await;
}

#[actix_rt::test]
async fn a_refusal_burst_that_lasts_the_patience_is_believed() {
    let (world, _r, mut svc) = burst().await;
    // Just short of the patience: still held.
    tokio::time::sleep(INTERVAL * BURST_PATIENCE - Duration::from_secs(1)).await;
    assert_eq!(world.live_count(), 3, "held until the patience is spent");
    // The first check past it believes every held refusal.
    assert!(
        svc.until(Duration::from_millis(100), 200, |s| s.completed == 3)
            .await,
        "believed after {BURST_PATIENCE} intervals"
    );
    assert_eq!(world.state().deleted, 3);
    assert!(svc
        .logs
        .text()
        .contains("every job token still refused: the jobs are taken as over"));
    svc.stop().await;
}

/// Jobs API requests made so far.
fn jobs_api_calls(r: &Runner) -> usize {
    r.coord.script.borrow().jobs_api_calls.len()
}

#[actix_rt::test]
async fn jobs_the_jobs_api_shows_over_end_without_waiting_for_the_patience() {
    // Three jobs ending together with no other job to ask: a burst, but
    // the Jobs API shows each of them over.
    let (world, r, mut svc) = burst_with(Some(Ok(JobApiStatus::Over("success")))).await;
    assert!(
        svc.until(Duration::from_millis(100), 10, |s| s.completed == 3)
            .await,
        "ended within a second of the burst, not after {BURST_PATIENCE} intervals"
    );
    assert_eq!(world.state().deleted, 3);
    assert_eq!(jobs_api_calls(&r), 3, "one request per held job");
    let text = svc.logs.text();
    assert_eq!(
        text.matches("the Jobs API shows the job over").count(),
        3,
        "{text}"
    );
    assert!(text.contains("success"));
    assert!(!text.contains("every job token still refused"));
    assert!(
        !text.contains("taken as a coordinator problem"),
        "jobs the Jobs API shows over are no coordinator problem: {text}"
    );
    // Nothing held any more: no further Jobs API request.
    tokio::time::sleep(INTERVAL * 2).await;
    assert_eq!(jobs_api_calls(&r), 3);
    svc.stop().await;
}

#[actix_rt::test]
async fn jobs_the_jobs_api_shows_running_are_held_for_the_whole_patience() {
    let (world, r, mut svc) = burst_with(Some(Ok(JobApiStatus::Executing("running")))).await;
    tokio::time::sleep(INTERVAL * BURST_PATIENCE - Duration::from_secs(1)).await;
    assert_eq!(world.live_count(), 3, "held until the patience is spent");
    assert_eq!(svc.stats().await.completed, 0);
    // Asked about once per check interval at most: the burst's first
    // check, then one per interval, for each of the three jobs.
    let calls = jobs_api_calls(&r);
    assert!(
        (3..=3 * BURST_PATIENCE as usize).contains(&calls),
        "{calls} requests"
    );
    let text = svc.logs.text();
    assert_eq!(
        text.matches("the Jobs API shows executing").count(),
        1,
        "warned once per burst: {text}"
    );
    assert_eq!(
        text.matches("taken as a coordinator problem").count(),
        1,
        "the burst warned about once its jobs are shown executing: {text}"
    );
    // As without the Jobs API: believed once the patience is spent.
    assert!(
        svc.until(Duration::from_millis(100), 200, |s| s.completed == 3)
            .await
    );
    assert!(svc
        .logs
        .text()
        .contains("every job token still refused: the jobs are taken as over"));
    svc.stop().await;
}

#[actix_rt::test]
async fn a_failing_jobs_api_leaves_a_burst_to_its_patience() {
    let failure = CoordinatorError::Unexpected {
        detail: "jobs api: 503".to_owned(),
    };
    let (world, r, mut svc) = burst_with(Some(Err(failure))).await;
    tokio::time::sleep(INTERVAL * BURST_PATIENCE - Duration::from_secs(1)).await;
    assert_eq!(world.live_count(), 3, "held until the patience is spent");
    assert!(jobs_api_calls(&r) >= 3, "the Jobs API was asked");
    assert!(
        svc.until(Duration::from_millis(100), 200, |s| s.completed == 3)
            .await
    );
    let text = svc.logs.text();
    assert!(text.contains("every job token still refused: the jobs are taken as over"));
    assert_eq!(
        text.matches("taken as a coordinator problem").count(),
        1,
        "nothing learnt from the Jobs API: the burst warned about once: {text}"
    );
    assert!(!text.contains("the Jobs API shows"));
    svc.stop().await;
}
