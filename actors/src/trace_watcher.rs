//! The trace watch of one launched job ([`WatchTrace`], a per-job task).
//!
//! A launched job is only known to run once the inner runner writes to the
//! job trace. The watcher reads the trace length first after the delay
//! learnt from the runner's previous jobs ([`ReadyDelay`]; at once before
//! anything is learnt), then on steps growing from 0.1 s doubling up to
//! `poll_step` ([`BackoffPolicy::polling`]) until it exceeds
//! what this runner wrote itself (`trace_offset`), or `timeout` passes (a
//! launch failure). Its sleeps end at once on drain (the job stays
//! pending with its launched resource: the next process only needs to watch
//! again) or on the job's cancellation.
//!
//! A refused trace-watch token (401/403, `CoordinatorError::Rejected`) is
//! runner-side trouble, not the job's: the job is reported started
//! ([`TraceSeen::TokenRefused`]), as a runner without trace watch does
//! after the push.

use crate::backoff::BackoffPolicy;
use crate::job_actor::JobTask;
use crate::job_ctx::JobCtx;
use crate::messages::{JobStarted, LaunchFailed, LaunchStopped, TaskEvent, TraceSeen};
use crate::metrics::LaunchFailureReason;
use crate::ports::CoordinatorError;
use crate::ready_delay::ReadyDelay;
use crate::untrusted::untrusted;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

/// Watches one job's trace (see the module documentation): at most
/// `timeout` for the trace to exceed `trace_offset` bytes, the first read
/// after the delay `ready` learnt from the runner's previous jobs, then on
/// growing steps of at most `poll_step`.
pub(crate) struct WatchTrace {
    /// How long the trace may stay silent.
    pub timeout: Duration,
    /// The longest wait between two reads.
    pub poll_step: Duration,
    /// What this runner wrote to the trace itself.
    pub trace_offset: u64,
    /// The runner's learnt delay before its jobs' traces grow.
    pub ready: Rc<ReadyDelay>,
}

impl JobTask for WatchTrace {
    const PHASE: &'static str = "watching_trace";
    const CANCELLABLE: bool = true;

    async fn run(self, mut jc: JobCtx) {
        let event = watch_until_decided(&mut jc, &self).await;
        jc.supervisor.tell(event);
    }
}

/// Reads the trace until it decides; the event saying how.
async fn watch_until_decided(jc: &mut JobCtx, task: &WatchTrace) -> TaskEvent {
    let key = jc.key;
    let (timeout, poll_step) = (task.timeout, task.poll_step);
    let began = Instant::now();
    let deadline = began + timeout;
    let mut steps = BackoffPolicy::polling(poll_step).start();
    let first = task.ready.first_wait(poll_step).min(timeout);
    if let Some(interrupt) = jc.interrupts.sleep(first).await {
        return LaunchStopped { key, interrupt }.into();
    }
    let mut not_ready = None;
    loop {
        if let Some(interrupt) = jc.interrupts.check() {
            return LaunchStopped { key, interrupt }.into();
        }
        let sent = began.elapsed();
        match read_trace(jc, task.trace_offset).await {
            TraceRead::Grew => {
                task.ready.observe(not_ready, sent, poll_step);
                slog::info!(jc.logger, "job fully launched (job trace update detected)");
                let seen = TraceSeen::Grew;
                return JobStarted { key, seen }.into();
            }
            TraceRead::NotYet => not_ready = Some(sent),
            TraceRead::Unreadable => {}
            TraceRead::Decided(event) => return event,
        }
        let now = Instant::now();
        if now >= deadline {
            return LaunchFailed {
                key,
                message: format!(
                    "Job not active (no log) after {} seconds",
                    timeout.as_secs()
                ),
                reason: LaunchFailureReason::TraceTimeout,
            }
            .into();
        }
        if let Some(interrupt) = jc
            .interrupts
            .sleep(steps.next_delay().min(deadline - now))
            .await
        {
            return LaunchStopped { key, interrupt }.into();
        }
    }
}

/// What one read of the trace length says.
enum TraceRead {
    /// Longer than what the runner wrote: the job runs.
    Grew,
    /// Not longer yet.
    NotYet,
    /// Not readable yet (a transient error, logged): read again.
    Unreadable,
    /// The watch is over: the token is refused (started), or the trace
    /// cannot be read (failed).
    Decided(TaskEvent),
}

async fn read_trace(jc: &JobCtx, offset: u64) -> TraceRead {
    let key = jc.key;
    match jc.coordinator.trace_len(&jc.job).await {
        Ok(len) if len > offset => TraceRead::Grew,
        Ok(_) => TraceRead::NotYet,
        Err(CoordinatorError::Rejected { detail }) => TraceRead::Decided(
            JobStarted {
                key,
                seen: TraceSeen::TokenRefused { detail },
            }
            .into(),
        ),
        Err(e) if e.is_transient() => {
            slog::debug!(jc.logger, "job trace not readable yet"; "error" => %untrusted(&e));
            TraceRead::Unreadable
        }
        Err(e) => TraceRead::Decided(
            LaunchFailed {
                key,
                message: format!("could not read the job trace to check the launch: {e}"),
                reason: LaunchFailureReason::TraceUnreadable,
            }
            .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    // The `testing` feature is on in every test build (dev-dependency).
    use super::*;
    use crate::job_actor::JobActor;
    use crate::job_ctx::stub::{Event, Harness};
    use crate::testing::{job, FakeCoordinator, FakePaas, World};

    const STEP: Duration = Duration::from_secs(1);

    /// A watch of at most `timeout`, on steps of at most `STEP`, of a
    /// trace the runner did not write to.
    fn watch_task(timeout: Duration, ready: Rc<ReadyDelay>) -> WatchTrace {
        WatchTrace {
            timeout,
            poll_step: STEP,
            trace_offset: 0,
            ready,
        }
    }

    #[actix_rt::test]
    async fn a_growing_trace_means_started() {
        tokio::time::pause();
        let world = World::new();
        let coord = FakeCoordinator::new(world.clone());
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), coord.clone(), FakePaas::new(world, "r", 1.0));
        JobActor::start(jc, watch_task(STEP * 30, Rc::default()));
        tokio::time::sleep(STEP * 3).await;
        assert!(h.events().is_empty(), "no trace yet");
        // The inner runner writes to the trace.
        coord
            .script
            .borrow_mut()
            .appended
            .push((1, 0, "Running with gitlab-runner".into()));
        assert!(h.until_ended(STEP, 40).await);
        assert_eq!(h.events(), vec![Event::Started, Event::TaskEnded]);
    }

    #[actix_rt::test]
    async fn the_first_read_waits_for_the_delay_learnt_from_earlier_jobs() {
        tokio::time::pause();
        let world = World::new();
        let coord = FakeCoordinator::new(world.clone());
        coord
            .script
            .borrow_mut()
            .appended
            .push((1, 0, "Running with gitlab-runner".into()));
        let ready = Rc::new(ReadyDelay::new());
        // Earlier jobs' traces grew between 0.7 s and 0.9 s after the push.
        ready.observe(
            Some(Duration::from_millis(700)),
            Duration::from_millis(900),
            STEP,
        );
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), coord.clone(), FakePaas::new(world, "r", 1.0));
        JobActor::start(jc, watch_task(STEP * 30, ready.clone()));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(coord.script.borrow().trace_reads, 0, "no read before 0.8 s");
        assert!(h.until_ended(Duration::from_millis(100), 10).await);
        assert_eq!(coord.script.borrow().trace_reads, 1, "one read");
        assert_eq!(h.events(), vec![Event::Started, Event::TaskEnded]);
        // Ready at the first read: the next job's first read comes earlier.
        assert!(ready.first_wait(STEP) < Duration::from_millis(800));
    }

    #[actix_rt::test]
    async fn a_refused_token_means_started_not_failed() {
        tokio::time::pause();
        let world = World::new();
        let coord = FakeCoordinator::new(world.clone());
        coord.script.borrow_mut().trace_refused = true;
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), coord, FakePaas::new(world, "r", 1.0));
        JobActor::start(jc, watch_task(STEP * 30, Rc::default()));
        assert!(h.until_ended(STEP, 40).await);
        assert_eq!(
            h.events(),
            vec![Event::StartedTokenRefused, Event::TaskEnded]
        );
    }

    #[actix_rt::test]
    async fn a_silent_trace_fails_the_launch_after_the_timeout() {
        tokio::time::pause();
        let world = World::new();
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(
            job(1, &[]),
            FakeCoordinator::new(world.clone()),
            FakePaas::new(world, "r", 1.0),
        );
        JobActor::start(jc, watch_task(STEP * 5, Rc::default()));
        assert!(h.until_ended(STEP, 40).await);
        let events = h.events();
        assert!(
            matches!(events.first(), Some(Event::LaunchFailed(m)) if m.contains("after 5 seconds")),
            "{events:?}"
        );
    }
}
