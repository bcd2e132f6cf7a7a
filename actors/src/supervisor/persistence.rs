//! Persistence: the coalesced, group-committed state writes
//! ([`super::write_queue`]) and the write-ahead answers (a reply once a
//! change is on disk).

use super::write_queue::{Start, Wait, LAZY_WRITE_DELAY};
use super::*;
use crate::snapshot::RunnerRef;
use crate::state::StateError;
use crate::state_doc::StateDoc;

/// Answered once a change is on disk, or with why it is not.
pub(super) type Waiter = oneshot::Sender<Result<(), NotRecorded>>;

impl Supervisor {
    /// Something worth persisting changed. The write starts once the
    /// messages already queued are handled (a self-notification queues
    /// behind them), so that one write covers a whole burst of events.
    pub(super) fn mark_dirty(&mut self, ctx: &mut Context<Self>) {
        if self.persist.mark_dirty() {
            ctx.notify(PersistNow);
        }
    }

    /// A change no external action waits for and that a restart may find
    /// undone (a job seen started, a resource seen deleted): carried by
    /// the next write, or written [`LAZY_WRITE_DELAY`] later.
    pub(super) fn mark_dirty_lazily(&mut self, ctx: &mut Context<Self>) {
        if self.persist.mark_dirty_lazily() {
            ctx.run_later(LAZY_WRITE_DELAY, |act, ctx| {
                act.persist.lazy_due();
                act.kick_persist(ctx);
            });
        }
    }

    pub(super) fn kick_persist(&mut self, ctx: &mut Context<Self>) {
        let target = match self.persist.start(tokio::time::Instant::now()) {
            Start::Write(target) => target,
            Start::Later(delay) => {
                // The group commit window: the changes until then share
                // this write.
                ctx.notify_later(PersistNow, delay);
                return;
            }
            Start::Idle => return,
        };
        let started = std::time::Instant::now();
        let fut = match self.state_doc() {
            Ok((doc, encoded)) => {
                self.persist.note_build(started.elapsed(), encoded);
                self.store.save(doc)
            }
            Err(e) => {
                let failed = StateError::Write {
                    path: self.store.location(),
                    detail: e.to_string(),
                };
                Box::pin(std::future::ready(Err(failed)))
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            match res {
                Ok(()) => {
                    let was_failing = act.persist.is_failing();
                    act.observe(Transition::StateWritten {
                        ok: true,
                        took: started.elapsed(),
                    });
                    let done = act.persist.succeeded(target, started.elapsed());
                    answer_waiters(done, &Ok(()));
                    if was_failing {
                        slog::info!(act.logger, "the state file is writable again; acquiring jobs");
                        act.schedule_polls(ctx);
                    }
                }
                Err(e) => {
                    // Write-ahead waiters keep waiting: they may proceed only
                    // once their record is durable. Retry after a delay.
                    if act.persist.is_failing() {
                        slog::debug!(act.logger, "cannot save the state";
                                     "error" => %e,
                                     "retry_in_s" => crate::ports::Seconds(act.settings.persist_retry));
                    } else {
                        slog::error!(act.logger,
                                     "cannot save the state; not acquiring jobs until a write succeeds";
                                     "error" => %e,
                                     "retry_in_s" => crate::ports::Seconds(act.settings.persist_retry));
                    }
                    act.observe(Transition::StateWritten {
                        ok: false,
                        took: started.elapsed(),
                    });
                    let release = act.persist.is_forced() || act.drained_sent;
                    let done = act.persist.failed(target, release);
                    answer_waiters(done, &Err(NotRecorded::NotDurable(e.to_string())));
                    ctx.run_later(act.settings.persist_retry, |act, ctx| {
                        act.persist.retry_due();
                        act.kick_persist(ctx);
                    });
                }
            }
            act.kick_persist(ctx);
            act.check_drained(ctx);
        }));
    }

    /// A receiver resolved once everything changed so far is on disk.
    pub(super) fn persisted(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Result<(), NotRecorded>> {
        let (tx, rx) = oneshot::channel();
        match self.persist.wait(tx) {
            Wait::Done(tx) => {
                let _ = tx.send(Ok(()));
            }
            Wait::Queued { start_now } => {
                if start_now {
                    self.kick_persist(ctx);
                }
            }
        }
        rx
    }

    /// Runs `f` once everything changed so far is on disk (or never
    /// durable: a forced stop).
    pub(super) fn after_persist<F>(&mut self, ctx: &mut Context<Self>, f: F)
    where
        F: FnOnce(&mut Self, &mut Context<Self>) + 'static,
    {
        let rx = self.persisted(ctx);
        ctx.spawn(rx.into_actor(self).map(move |_, act, ctx| f(act, ctx)));
    }

    /// The answer to a write-ahead request.
    pub(super) fn persisted_response(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(), NotRecorded>> {
        let rx = self.persisted(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(NotRecorded::SupervisorGone)) })
    }

    /// The state as the file records it, encoded (only the entries
    /// changed since the last write are encoded again), and how many
    /// entries were encoded.
    fn state_doc(&mut self) -> Result<(StateDoc, usize), serde_json::Error> {
        let uncertain = if self.persist.is_forced() {
            self.ops.uncertain()
        } else {
            Vec::new()
        };
        let refs: Vec<RunnerRef<'_>> = self
            .runners
            .iter()
            .map(|r| RunnerRef {
                name: &r.name,
                paas: &*r.paas,
            })
            .collect();
        snapshot::to_doc(&mut self.jobs, &refs, &self.unloaded, &uncertain)
    }

    /// Entries the file records in its reference sections (the records
    /// kept aside included).
    pub(super) fn recorded_len(&self) -> usize {
        let recorded = self
            .jobs
            .values()
            .filter(|e| e.phase.section(e.resource.is_some()).is_some())
            .count();
        recorded + self.unloaded.len()
    }
}

fn answer_waiters(waiters: Vec<Waiter>, res: &Result<(), NotRecorded>) {
    for tx in waiters {
        let _ = tx.send(res.clone());
    }
}
