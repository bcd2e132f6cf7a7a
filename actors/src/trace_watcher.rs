//! The trace watcher: one per launched job.
//!
//! A launched job is only known to run once the inner runner writes to the
//! job trace. The watcher reads the trace length every `poll_step` until it
//! exceeds what this runner wrote itself (`trace_offset`), or `timeout`
//! passes (a launch failure). Its sleeps end at once on drain (the job stays
//! pending with its launched resource: the next process only needs to watch
//! again) or on the job's cancellation.

use crate::supervisor::{JobCtx, JobStarted, LaunchFailed, LaunchStopped, TaskEnded};
use crate::untrusted::untrusted;
use actix::prelude::*;
use std::time::Duration;
use tokio::time::Instant;

/// Watches one job's trace (see the module documentation).
pub struct TraceWatcher {
    jc: JobCtx,
    timeout: Duration,
    poll_step: Duration,
    trace_offset: u64,
}

impl TraceWatcher {
    /// A watcher waiting at most `timeout` for the trace to exceed
    /// `trace_offset` bytes, reading it every `poll_step`.
    pub(crate) fn new(
        jc: JobCtx,
        timeout: Duration,
        poll_step: Duration,
        trace_offset: u64,
    ) -> Self {
        TraceWatcher {
            jc,
            timeout,
            poll_step,
            trace_offset,
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
        );
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.jc.supervisor.do_send(TaskEnded { key: self.jc.key });
    }
}

async fn watch(mut jc: JobCtx, timeout: Duration, poll_step: Duration, offset: u64) {
    let key = jc.key;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(interrupt) = jc.interrupts.check() {
            jc.supervisor.do_send(LaunchStopped { key, interrupt });
            return;
        }
        match jc.coordinator.trace_len(&jc.job).await {
            Ok(len) if len > offset => {
                slog::info!(jc.logger, "job fully launched (job trace update detected)");
                jc.supervisor.do_send(JobStarted { key });
                return;
            }
            Ok(_) => {}
            Err(e) if e.is_transient() => {
                slog::debug!(jc.logger, "job trace not readable yet"; "error" => %untrusted(&e));
            }
            Err(e) => {
                jc.supervisor.do_send(LaunchFailed {
                    key,
                    message: format!("could not read the job trace to check the launch: {e}"),
                });
                return;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            jc.supervisor.do_send(LaunchFailed {
                key,
                message: format!(
                    "Job not active (no log) after {} seconds",
                    timeout.as_secs()
                ),
            });
            return;
        }
        if let Some(interrupt) = jc.interrupts.sleep(poll_step.min(deadline - now)).await {
            jc.supervisor.do_send(LaunchStopped { key, interrupt });
            return;
        }
    }
}
