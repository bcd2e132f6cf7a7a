//! The trace watcher: one per launched job.
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
use crate::job_ctx::JobCtx;
use crate::messages::{JobStarted, LaunchFailed, LaunchStopped, TaskEnded, TraceSeen};
use crate::metrics::LaunchFailureReason;
use crate::ports::CoordinatorError;
use crate::ready_delay::ReadyDelay;
use crate::untrusted::untrusted;
use actix::prelude::*;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

/// Watches one job's trace (see the module documentation).
pub struct TraceWatcher {
    jc: JobCtx,
    timeout: Duration,
    poll_step: Duration,
    trace_offset: u64,
    ready: Rc<ReadyDelay>,
}

impl TraceWatcher {
    /// A watcher waiting at most `timeout` for the trace to exceed
    /// `trace_offset` bytes: the first read after the delay `ready` learnt
    /// from the runner's previous jobs, then on growing steps of at most
    /// `poll_step`.
    pub(crate) fn new(
        jc: JobCtx,
        timeout: Duration,
        poll_step: Duration,
        trace_offset: u64,
        ready: Rc<ReadyDelay>,
    ) -> Self {
        TraceWatcher {
            jc,
            timeout,
            poll_step,
            trace_offset,
            ready,
        }
    }
}

impl Actor for TraceWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let fut = watch(
            self.jc.clone(),
            self.timeout,
            self.poll_step,
            self.trace_offset,
            self.ready.clone(),
        );
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.jc
            .supervisor
            .task_ended
            .do_send(TaskEnded { key: self.jc.key });
    }
}

async fn watch(
    mut jc: JobCtx,
    timeout: Duration,
    poll_step: Duration,
    offset: u64,
    ready: Rc<ReadyDelay>,
) {
    let key = jc.key;
    let began = Instant::now();
    let deadline = began + timeout;
    let mut steps = BackoffPolicy::polling(poll_step).start();
    let first = ready.first_wait(poll_step).min(timeout);
    if let Some(interrupt) = jc.interrupts.sleep(first).await {
        jc.supervisor
            .launch_stopped
            .do_send(LaunchStopped { key, interrupt });
        return;
    }
    let mut not_ready = None;
    loop {
        if let Some(interrupt) = jc.interrupts.check() {
            jc.supervisor
                .launch_stopped
                .do_send(LaunchStopped { key, interrupt });
            return;
        }
        let sent = began.elapsed();
        match jc.coordinator.trace_len(&jc.job).await {
            Ok(len) if len > offset => {
                ready.observe(not_ready, sent, poll_step);
                slog::info!(jc.logger, "job fully launched (job trace update detected)");
                jc.supervisor.started.do_send(JobStarted {
                    key,
                    seen: TraceSeen::Grew,
                });
                return;
            }
            Ok(_) => not_ready = Some(sent),
            Err(CoordinatorError::Rejected { detail }) => {
                jc.supervisor.started.do_send(JobStarted {
                    key,
                    seen: TraceSeen::TokenRefused { detail },
                });
                return;
            }
            Err(e) if e.is_transient() => {
                slog::debug!(jc.logger, "job trace not readable yet"; "error" => %untrusted(&e));
            }
            Err(e) => {
                jc.supervisor.launch_failed.do_send(LaunchFailed {
                    key,
                    message: format!("could not read the job trace to check the launch: {e}"),
                    reason: LaunchFailureReason::TraceUnreadable,
                });
                return;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            jc.supervisor.launch_failed.do_send(LaunchFailed {
                key,
                message: format!(
                    "Job not active (no log) after {} seconds",
                    timeout.as_secs()
                ),
                reason: LaunchFailureReason::TraceTimeout,
            });
            return;
        }
        if let Some(interrupt) = jc
            .interrupts
            .sleep(steps.next_delay().min(deadline - now))
            .await
        {
            jc.supervisor
                .launch_stopped
                .do_send(LaunchStopped { key, interrupt });
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    // The `testing` feature is on in every test build (dev-dependency).
    use super::*;
    use crate::job_ctx::stub::{Event, Harness};
    use crate::testing::{job, FakeCoordinator, FakePaas, World};

    const STEP: Duration = Duration::from_secs(1);

    #[actix_rt::test]
    async fn a_growing_trace_means_started() {
        tokio::time::pause();
        let world = World::new();
        let coord = FakeCoordinator::new(world.clone());
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), coord.clone(), FakePaas::new(world, "r", 1.0));
        TraceWatcher::new(jc, STEP * 30, STEP, 0, Rc::default()).start();
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
        TraceWatcher::new(jc, STEP * 30, STEP, 0, ready.clone()).start();
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
        TraceWatcher::new(jc, STEP * 30, STEP, 0, Rc::default()).start();
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
        TraceWatcher::new(jc, STEP * 5, STEP, 0, Rc::default()).start();
        assert!(h.until_ended(STEP, 40).await);
        let events = h.events();
        assert!(
            matches!(events.first(), Some(Event::LaunchFailed(m)) if m.contains("after 5 seconds")),
            "{events:?}"
        );
    }
}
