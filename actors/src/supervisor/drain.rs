//! The end of the service: finishing the tracked jobs (SIGQUIT), the
//! drain (graceful stop) and the forced snapshot. The `Shutdown` actor
//! owns the deadline and the second signal; the supervisor, which owns the
//! job table and the counts of per-job actors and polls in flight, decides
//! when it is drained.

use super::*;

impl Supervisor {
    /// Graceful stop: no new poll, progress check or reconciliation;
    /// waiting per-job actors stop at once.
    pub(super) fn begin_drain(&mut self, ctx: &mut Context<Self>) {
        if !self.draining {
            self.notify_stopping();
        }
        self.draining = true;
        let _ = self.drain_tx.send(true);
        if let Some((_, h)) = self.progress_timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(h) = self.reconcile_timer.take() {
            ctx.cancel_future(h);
        }
        self.check_drained(ctx);
    }

    /// Finish and exit: no new poll (those in flight are answered, and a
    /// job they bring is supervised like the others); progress checks,
    /// trace watches, launches, failure reports and decommissions go on
    /// until no job is tracked. No deadline: a graceful stop (`Drain`)
    /// ends it sooner.
    pub(super) fn begin_finish(&mut self, ctx: &mut Context<Self>) {
        if self.finishing || self.draining {
            return;
        }
        self.finishing = true;
        // No runner wants jobs any more (`runner_wants_jobs`), at once: the
        // jobs may run for hours without another transition.
        self.observe(Transition::LimitsChanged);
        self.decommission_kept_resources(ctx);
        self.publish_status();
        self.check_drained(ctx);
    }

    /// Resources the runner keeps without a job (the standby pool) are
    /// decommissioned when the service finishes, and none is kept from
    /// then on; their decommissions are tracked jobs that `check_drained`
    /// waits for.
    fn decommission_kept_resources(&mut self, ctx: &mut Context<Self>) {
        self.release_standby(ctx);
    }

    /// The jobs a finish still waits for (every tracked job).
    pub(super) fn jobs_left(&self) -> usize {
        self.jobs.len()
    }

    /// Once draining (or finishing with no job left) and nothing is left
    /// in flight: the final write, then `DrainCompleted` and the end of
    /// the actor.
    pub(super) fn check_drained(&mut self, ctx: &mut Context<Self>) {
        if self.drained_sent || self.persist.is_forced() {
            return;
        }
        let finished = self.finishing && self.jobs_left() == 0;
        if !(self.draining || finished) {
            return;
        }
        if self.tasks > 0 || self.polls_in_flight > 0 {
            return;
        }
        if !self.draining {
            slog::info!(
                self.logger,
                "finished: every job is over and its resource deleted"
            );
        }
        self.drained_sent = true;
        self.mark_dirty(ctx);
        let rx = self.persisted(ctx);
        ctx.spawn(rx.into_actor(self).map(|res, act, ctx| {
            let report = act.exit_report(false, res);
            act.shutdown.do_send(DrainCompleted(report));
            ctx.stop();
        }));
    }

    /// Forced stop: write what is known at once, with the operations still
    /// in flight as `uncertain`, then stop.
    pub(super) fn forced_snapshot(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Option<ExitReport>> {
        if self.drained_sent {
            // The final write of the drain is under way, with everything
            // known: its `DrainCompleted` is the report.
            return Box::pin(fut::ready(None));
        }
        self.draining = true;
        let _ = self.drain_tx.send(true);
        self.persist.force();
        self.mark_dirty(ctx);
        let rx = self.persisted(ctx);
        Box::pin(rx.into_actor(self).map(|res, act, ctx| {
            let report = act.exit_report(true, res);
            ctx.stop();
            Some(report)
        }))
    }

    /// The report of the last write: stops persisting and says whether the
    /// final snapshot is on disk.
    fn exit_report(
        &mut self,
        forced: bool,
        written: Result<Result<(), NotRecorded>, oneshot::error::RecvError>,
    ) -> ExitReport {
        self.persist.stop();
        let snapshot_error = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(NotRecorded::SupervisorGone.to_string()),
        };
        ExitReport {
            forced,
            poll_cycles: self.min_cycles(),
            tracked_jobs: self.recorded_len(),
            snapshot_error,
        }
    }
}
