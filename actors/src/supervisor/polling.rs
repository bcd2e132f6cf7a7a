//! Polling: which runner is polled when (round robin, limits, the largest
//! weight reserved first), what a poll's result does to its slot
//! ([`super::poll_slot`]), and the acquired jobs.

use super::poll_slot::{NextPoll, PollOutcome, PollState};
use super::*;
use crate::long_poll::{may_hold, OtherRunner};
use crate::ports::PollKind;
use crate::quota::Blocked;
use crate::untrusted::untrusted;
use tokio::time::Instant;

impl Supervisor {
    pub(super) fn schedule_polls(&mut self, ctx: &mut Context<Self>) {
        self.launch_ready();
        if self.draining || self.finishing {
            return;
        }
        let n = self.runners.len();
        if n == 0 {
            return;
        }
        // A runner owed its reservation holds the others back only while it
        // waits for the limits; out of the rotation (retired, waiting for a
        // delay, fetching its largest weight), it is owed nothing.
        if let Some(owed) = self.ledger.owed() {
            let waits_for_limits = self.runners.get(owed).is_some_and(|r| {
                !r.retired && r.poll.state() == PollState::Saturated && r.max_job_weight.is_some()
            });
            if !waits_for_limits {
                self.ledger.forget_owed();
            }
        }
        self.rr = (self.rr + 1) % n;
        for k in 0..n {
            let i = (self.rr + k) % n;
            if self
                .runners
                .get(i)
                .is_some_and(|r| !r.retired && r.poll.may_poll())
            {
                self.try_poll(i, ctx);
            }
        }
    }

    pub(super) fn try_poll(&mut self, i: usize, ctx: &mut Context<Self>) {
        // An acquired job must be recorded before anything is created for
        // it: no poll while the state file cannot be written (polls resume
        // from `kick_persist` once a write succeeds).
        if self.persist.is_failing() {
            return;
        }
        let Some(runner) = self.runners.get_mut(i) else {
            return;
        };
        if runner.retired {
            return;
        }
        let Some(poller) = runner.poller.clone() else {
            return;
        };
        let Some(weight) = runner.max_job_weight else {
            runner.poll.set(PollState::Fetching);
            let log = runner.logger.clone();
            self.fetch_max_job_weight(i, poller, log, ctx);
            return;
        };
        match self.ledger.reserve(i, weight) {
            Ok(()) => {
                self.observe(Transition::PollSent);
                let kind = self.poll_kind(i);
                // The job's tenant matters only when a standby resource exists.
                let scope = self.ledger.standby() > 0;
                let Some(r) = self.runners.get_mut(i) else {
                    return;
                };
                r.poll.set(PollState::Polling);
                r.poll_sent = Some((Instant::now(), kind));
                let (name, log) = (r.name.clone(), r.logger.clone());
                self.polls_in_flight += 1;
                let op = self.ops.begin(name, OpSubject::Poll { runner: i }, "poll");
                ctx.spawn(
                    async move { answer(poller.send(PollOnce { kind, scope }), "poller", &log).await }
                        .into_actor(self)
                        .map(move |res, act, ctx| {
                            drop(op);
                            let res = res.unwrap_or_else(|| {
                                Err(CoordinatorError::Unexpected {
                                    detail: "poller unreachable".into(),
                                })
                            });
                            act.on_polled(i, res, ctx);
                        }),
                );
            }
            Err(blocked) => {
                let Some(r) = self.runners.get_mut(i) else {
                    return;
                };
                if r.poll.saturate() {
                    let log = r.logger.clone();
                    self.observe(Transition::PollBlocked);
                    match blocked {
                        Blocked::Owed { runner, .. } => {
                            let owed_to = self.runners.get(runner).map(|o| o.name.clone());
                            slog::debug!(log, "not polling: limits reached";
                                         "why" => %blocked,
                                         "owed_to" => owed_to.as_deref().unwrap_or("?"));
                        }
                        _ => slog::debug!(log, "not polling: limits reached"; "why" => %blocked),
                    }
                    self.cycle_done(i, ctx);
                }
            }
        }
    }

    /// Asks runner `i`'s poller for the largest weight a job of the runner
    /// could have (cached; the first poll waits for it), then schedules
    /// the polls again.
    fn fetch_max_job_weight(
        &mut self,
        i: usize,
        poller: Addr<Poller>,
        log: slog::Logger,
        ctx: &mut Context<Self>,
    ) {
        ctx.spawn(
            async move { answer(poller.send(GetMaxJobWeight), "poller", &log).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let res = res.unwrap_or_else(|| {
                        Err(PaasError::transient("max-job-weight", "poller unreachable"))
                    });
                    match res {
                        Ok(w) => {
                            if let Some(r) = act.runners.get_mut(i) {
                                r.max_job_weight = Some(w);
                                r.poll.set(PollState::Ready);
                            }
                        }
                        Err(e) => {
                            let log = act.runner_log(i);
                            slog::error!(log, "cannot know the weight of the largest job";
                                     "error" => %untrusted(&e));
                            act.back_off(i, None, ctx);
                        }
                    }
                    act.schedule_polls(ctx);
                }),
        );
    }

    /// Short or long poll for runner `i`, whose reservation the ledger
    /// holds: long only with `paas_long_polling` and when
    /// [`crate::long_poll::may_hold`] allows it.
    fn poll_kind(&self, i: usize) -> PollKind {
        let Some(r) = self.runners.get(i) else {
            return PollKind::Short;
        };
        if !r.settings.long_polling {
            return PollKind::Short;
        }
        let others = self
            .runners
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != i && !o.retired)
            .map(|(index, o)| OtherRunner {
                index,
                max_job_weight: o.max_job_weight,
            });
        match may_hold(&self.ledger, others) {
            Ok(()) => PollKind::Long,
            Err(why) => {
                slog::debug!(r.logger, "short poll: a long poll could keep another runner waiting";
                             "why" => %why);
                PollKind::Short
            }
        }
    }

    pub(super) fn on_polled(
        &mut self,
        i: usize,
        res: Result<Option<Acquired>, CoordinatorError>,
        ctx: &mut Context<Self>,
    ) {
        self.polls_in_flight = self.polls_in_flight.saturating_sub(1);
        let answered = res.is_ok();
        let answer = match &res {
            Ok(_) => PollAnswer::Answered,
            Err(CoordinatorError::Rejected { .. }) => PollAnswer::TokenRefused,
            Err(_) => PollAnswer::Unanswered,
        };
        match res {
            Err(e) => {
                self.ledger.cancel_reservation(i);
                let log = self.runner_log(i);
                if e.is_transient() {
                    slog::warn!(log, "coordinator unavailable"; "error" => %untrusted(&e));
                } else {
                    slog::error!(log, "coordinator trouble"; "error" => %untrusted(&e));
                }
                let retry_after = match &e {
                    CoordinatorError::Unavailable { retry_after, .. } => *retry_after,
                    CoordinatorError::Rejected { .. } => Some(self.settings.backoff_max),
                    CoordinatorError::Unexpected { .. } => None,
                };
                self.back_off(i, retry_after, ctx);
            }
            Ok(None) => {
                self.ledger.cancel_reservation(i);
                let mut outcome = PollOutcome::NoJob;
                if let Some((at, PollKind::Long)) = self.runners.get(i).and_then(|r| r.poll_sent) {
                    outcome = PollOutcome::LongPollEnded { took: at.elapsed() };
                }
                self.next_poll(i, outcome, ctx);
            }
            Ok(Some(acq)) => {
                self.on_acquired(i, acq, ctx);
                self.next_poll(i, PollOutcome::Acquired, ctx);
            }
        }
        if let Some(r) = self.runners.get_mut(i) {
            r.coordinator_down = !answered;
        }
        self.observe(Transition::PollEnded { runner: i, answer });
        self.check_drained(ctx);
        self.schedule_polls(ctx);
    }

    /// A job handed out to runner `i`. A job already tracked only drops
    /// the poll's reservation, published by the caller's `PollEnded`.
    pub(super) fn on_acquired(&mut self, i: usize, acq: Acquired, ctx: &mut Context<Self>) {
        let key = JobKey {
            runner: i,
            job_id: acq.job.id,
        };
        let log = self.job_log(key);
        if self.jobs.contains_key(&key) {
            slog::error!(log, "coordinator handed out a job already tracked; ignored");
            self.ledger.cancel_reservation(i);
            return;
        }
        let reserved = self
            .runners
            .get(i)
            .and_then(|r| r.max_job_weight)
            .unwrap_or(0.0);
        let (expected, failure) = match acq.expected {
            Ok(w) => (w, None),
            Err(e) => (reserved, Some(e.to_string())),
        };
        if failure.is_none() && self.try_reuse(key, &acq.job, acq.scope.as_deref(), expected, ctx) {
            return;
        }
        let waiting = self.ledger.acquire(key, expected);
        let entry = JobEntry::new(acq.job, Phase::Acquired, expected);
        let log = log.new(entry.story.identity());
        if waiting {
            slog::info!(log, "job acquired; waiting for standby resources to be deleted";
                        "weight" => TwoDecimals(expected));
        } else {
            slog::info!(log, "job acquired"; "weight" => TwoDecimals(expected));
        }
        self.add_job(key, entry, JobOrigin::Acquired);
        self.mark_dirty(ctx);
        if let Some(message) = failure {
            self.on_launch_failed(key, message, LaunchFailureReason::Weight, ctx);
        } else if waiting {
            self.make_room(i, ctx);
        } else if !self.draining {
            self.spawn_launcher(key);
        }
    }

    /// A failure before or during a poll: back off, at least `at_least`.
    pub(super) fn back_off(
        &mut self,
        i: usize,
        at_least: Option<Duration>,
        ctx: &mut Context<Self>,
    ) {
        self.next_poll(i, PollOutcome::Failed { at_least }, ctx);
    }

    /// Moves the slot of runner `i` on after `outcome`: poll again at once,
    /// or after a delay (`check_interval`, or a back-off).
    fn next_poll(&mut self, i: usize, outcome: PollOutcome, ctx: &mut Context<Self>) {
        let (interval, repoll) = (
            self.settings.check_interval,
            self.settings.repoll_immediately && !self.draining && !self.finishing,
        );
        let Some(r) = self.runners.get_mut(i) else {
            return;
        };
        match r.poll.after(outcome, interval, repoll) {
            NextPoll::Now => {}
            NextPoll::After { delay, backing_off } => {
                if backing_off {
                    slog::info!(r.logger, "backing off"; "retry_in_s" => crate::ports::Seconds(delay));
                }
                ctx.run_later(delay, move |act, ctx| {
                    if let Some(r) = act.runners.get_mut(i) {
                        r.poll.wait_over();
                    }
                    act.cycle_done(i, ctx);
                    act.schedule_polls(ctx);
                });
            }
        }
    }

    pub(super) fn cycle_done(&mut self, i: usize, ctx: &mut Context<Self>) {
        let before = self.min_cycles();
        if let Some(r) = self.runners.get_mut(i) {
            r.cycles += 1;
        }
        if self.min_cycles() > before {
            // Every runner polled once more: one polling cycle.
            self.log_statistics();
        }
        if let Some(max) = self.settings.poll_cycles {
            if !self.draining && self.min_cycles() >= max {
                slog::info!(self.logger, "polling cycles done"; "cycles" => max);
                self.shutdown.do_send(crate::shutdown::BeginShutdown);
                // Stop polling right away; the drain itself comes from the
                // shutdown actor.
                self.draining = true;
                ctx.notify(Drain);
            }
        }
    }

    pub(super) fn min_cycles(&self) -> u64 {
        self.runners
            .iter()
            .filter(|r| !r.retired)
            .map(|r| r.cycles)
            .min()
            .unwrap_or(0)
    }
}
