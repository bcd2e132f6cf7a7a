//! Graceful and forced shutdown.
//!
//! Steps of a graceful stop (the protocol is described in `actors/README.md`,
//! "Shutdown / restart protocol"):
//! 1. [`BeginShutdown`] reaches the [`Shutdown`] actor (first SIGTERM/SIGINT,
//!    or the poll-cycle budget is spent); it starts the drain deadline and
//!    sends `Drain` to the supervisor.
//! 2. The supervisor stops polling and progress checks and raises the drain
//!    signal: trace watches and retry sleeps end at once ([`Interrupts`]);
//!    uninterruptible operations (create, prepare, launch, delete, a poll in
//!    flight) run to completion and are recorded.
//! 3. When no per-job actor and no poll is left, the supervisor writes the
//!    final snapshot and sends [`DrainCompleted`].
//! 4. A second signal ([`ForceStop`]) or the deadline asks the supervisor for
//!    a forced snapshot at once, listing the operations still in flight
//!    ([`OpRegistry`]) as `uncertain`.
//!
//! Finishing (SIGQUIT, [`BeginFinish`]) is the slow way out: the supervisor
//! stops polling at once ([`FinishJobs`]) but supervises every tracked job
//! as usual, until it is over at its coordinator and its resource deleted;
//! then it writes the final snapshot and sends [`DrainCompleted`]. No
//! deadline applies (jobs may run for hours). A graceful stop
//! ([`BeginShutdown`]) during it proceeds as above.

use crate::mailbox::answer;
use crate::quota::JobKey;
use crate::state::UncertainRecord;
use actix::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// What an operation in flight is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpSubject {
    /// A call for one job (create, prepare, launch, decommission).
    Job(JobKey),
    /// A poll of one runner's coordinator (no job yet).
    Poll {
        /// Index of the runner.
        runner: usize,
    },
}

impl OpSubject {
    /// The `job_id` of its `uncertain` record in the state file: the job's,
    /// or none for a poll (a poll has no job).
    fn state_job_id(self) -> Option<i64> {
        match self {
            OpSubject::Job(key) => Some(key.job_id),
            OpSubject::Poll { .. } => None,
        }
    }
}

/// Why a waiting actor stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// The service is draining.
    Drain,
    /// The job is over at the coordinator (cancelled).
    Cancel,
}

/// The signals a per-job actor listens to between its steps and during its
/// sleeps: the global drain and the job's own cancellation.
#[derive(Clone, Debug)]
pub(crate) struct Interrupts {
    drain: watch::Receiver<bool>,
    cancel: Option<watch::Receiver<bool>>,
}

impl Interrupts {
    /// Listens to `drain` and, if given, to a job's `cancel`.
    pub(crate) fn new(drain: watch::Receiver<bool>, cancel: Option<watch::Receiver<bool>>) -> Self {
        Interrupts { drain, cancel }
    }

    /// The interrupt raised, if any (cancellation first: it decides what
    /// happens to the resource).
    pub(crate) fn check(&self) -> Option<Interrupt> {
        if self.cancel.as_ref().is_some_and(|c| *c.borrow()) {
            return Some(Interrupt::Cancel);
        }
        if *self.drain.borrow() {
            return Some(Interrupt::Drain);
        }
        None
    }

    /// Sleeps for `duration` unless interrupted first.
    pub(crate) async fn sleep(&mut self, duration: Duration) -> Option<Interrupt> {
        self.unless_interrupted(tokio::time::sleep(duration))
            .await
            .err()
    }

    /// Runs `work` unless interrupted first (then `work` is dropped: only
    /// a wait that changes nothing may be run so).
    pub(crate) async fn unless_interrupted<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Interrupt> {
        if let Some(i) = self.check() {
            return Err(i);
        }
        let drain = wait_true(&mut self.drain);
        let cancel = async {
            match self.cancel.as_mut() {
                Some(c) => wait_true(c).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            out = work => Ok(out),
            _ = drain => Err(Interrupt::Drain),
            _ = cancel => Err(Interrupt::Cancel),
        }
    }
}

/// Resolves when the watched flag is true; never if its sender is gone.
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[derive(Debug, Default)]
struct OpsInner {
    next: u64,
    ops: HashMap<u64, (Rc<str>, OpSubject, &'static str)>,
}

/// Uninterruptible operations in flight (create, prepare, launch, delete).
/// Each holds an [`OpGuard`] while its call is outstanding, so that a forced
/// snapshot can list them as uncertain.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpRegistry(Rc<RefCell<OpsInner>>);

impl OpRegistry {
    /// Registers an operation; it ends when the guard is dropped.
    pub(crate) fn begin(
        &self,
        runner_name: Rc<str>,
        subject: OpSubject,
        operation: &'static str,
    ) -> OpGuard {
        let mut inner = self.0.borrow_mut();
        inner.next += 1;
        let id = inner.next;
        inner.ops.insert(id, (runner_name, subject, operation));
        OpGuard {
            registry: self.clone(),
            id,
        }
    }

    /// The operations in flight, in the state-file form.
    pub(crate) fn uncertain(&self) -> Vec<UncertainRecord> {
        let mut v: Vec<_> = self
            .0
            .borrow()
            .ops
            .values()
            .map(|(name, subject, op)| UncertainRecord {
                runner_name: name.to_string(),
                job_id: subject.state_job_id(),
                operation: (*op).to_string(),
            })
            .collect();
        v.sort_by(|a, b| (a.job_id, &a.operation).cmp(&(b.job_id, &b.operation)));
        v
    }
}

/// Proof that an uninterruptible operation is in flight.
#[derive(Debug)]
pub(crate) struct OpGuard {
    registry: OpRegistry,
    id: u64,
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        self.registry.0.borrow_mut().ops.remove(&self.id);
    }
}

/// How the service ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ExitReport {
    /// True if the stop was forced (second signal or drain deadline).
    pub forced: bool,
    /// Polling cycles completed by the slowest runner.
    pub poll_cycles: u64,
    /// Jobs in the final snapshot (launched + pending + to_decommission).
    pub tracked_jobs: usize,
    /// Set if the final snapshot could not be written.
    pub snapshot_error: Option<String>,
}

impl ExitReport {
    /// The report of a stop whose supervisor could not write a final
    /// snapshot nor count anything: forced, nothing known, and why.
    pub(crate) fn unknown(why: impl Into<String>) -> Self {
        ExitReport {
            forced: true,
            poll_cycles: 0,
            tracked_jobs: 0,
            snapshot_error: Some(why.into()),
        }
    }
}

/// Sent by the control handle (first signal) or by the supervisor (poll
/// cycles spent) to [`Shutdown`]: begin a graceful stop.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct BeginShutdown;

/// Sent by the control handle (SIGQUIT) to [`Shutdown`]: stop polling,
/// finish every tracked job, then stop.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct BeginFinish;

/// Sent by [`Shutdown`] to the supervisor: stop polling, supervise every
/// tracked job to its end (resource deleted), then write the final
/// snapshot and send [`DrainCompleted`].
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct FinishJobs;

/// Sent by the control handle (second signal) or by the deadline timer to
/// [`Shutdown`]: snapshot now and stop.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct ForceStop;

/// Sent by the supervisor to [`Shutdown`] once drained and snapshotted.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub(crate) struct DrainCompleted(pub ExitReport);

/// Sent by [`Shutdown`] to the supervisor: stop polling and drain.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct Drain;

/// Sent by [`Shutdown`] to the supervisor: write a forced snapshot now with
/// what is known, then stop. `None` when the drain's final write is
/// already under way: its [`DrainCompleted`] follows.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Option<ExitReport>")]
pub(crate) struct ForcedSnapshot;

/// Sent by [`Shutdown`] to itself when the supervisor no longer answers:
/// through the mailbox, so that a [`DrainCompleted`] the supervisor sent
/// before it stopped is handled first.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
struct SupervisorGone;

/// The shutdown actor: drain deadline, second signal, final report.
pub(crate) struct Shutdown {
    supervisor: Recipient<Drain>,
    finish_jobs: Recipient<FinishJobs>,
    forced_snapshot: Recipient<ForcedSnapshot>,
    deadline: Duration,
    begun: bool,
    /// Finishing the tracked jobs (SIGQUIT) was asked for.
    finish_begun: bool,
    finishing: bool,
    done: Option<oneshot::Sender<ExitReport>>,
    logger: slog::Logger,
}

/// Where [`Shutdown`] reaches the supervisor. Known before either actor
/// runs (the service creates both mailboxes first), so that a stop asked
/// for before the service started is not lost.
pub(crate) struct SupervisorRecipients {
    /// Recipient of `Drain`.
    pub drain: Recipient<Drain>,
    /// Recipient of `FinishJobs`.
    pub finish: Recipient<FinishJobs>,
    /// Recipient of `ForcedSnapshot`.
    pub forced: Recipient<ForcedSnapshot>,
}

impl Shutdown {
    /// A shutdown actor for `supervisor`, reporting the end of the service
    /// on `done`.
    pub(crate) fn new(
        deadline: Duration,
        supervisor: SupervisorRecipients,
        done: oneshot::Sender<ExitReport>,
        logger: slog::Logger,
    ) -> Self {
        Shutdown {
            supervisor: supervisor.drain,
            finish_jobs: supervisor.finish,
            forced_snapshot: supervisor.forced,
            deadline,
            begun: false,
            finish_begun: false,
            finishing: false,
            done: Some(done),
            logger,
        }
    }

    fn finish(&mut self, report: ExitReport, ctx: &mut Context<Self>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(report);
        }
        ctx.stop();
    }
}

impl Actor for Shutdown {
    type Context = Context<Self>;
}

impl Handler<BeginShutdown> for Shutdown {
    type Result = ();
    fn handle(&mut self, _: BeginShutdown, ctx: &mut Context<Self>) {
        if self.begun {
            return;
        }
        self.begun = true;
        slog::info!(self.logger, "graceful shutdown: no more polling, draining";
                    "deadline_s" => crate::ports::Seconds(self.deadline));
        self.supervisor.do_send(Drain);
        ctx.run_later(self.deadline, |act, ctx| {
            slog::error!(act.logger, "drain deadline reached: forcing the snapshot");
            ctx.notify(ForceStop);
        });
    }
}

impl Handler<BeginFinish> for Shutdown {
    type Result = ();
    fn handle(&mut self, _: BeginFinish, _: &mut Context<Self>) {
        if self.begun || self.finish_begun {
            return;
        }
        self.finish_begun = true;
        slog::info!(
            self.logger,
            "finishing: no more polling; every tracked job is supervised to its end, \
             its resource deleted, then the service stops (SIGTERM stops sooner)"
        );
        self.finish_jobs.do_send(FinishJobs);
    }
}

impl Handler<ForceStop> for Shutdown {
    type Result = ();
    fn handle(&mut self, _: ForceStop, ctx: &mut Context<Self>) {
        if self.finishing {
            return;
        }
        self.finishing = true;
        slog::warn!(
            self.logger,
            "forced stop: writing the state with what is known"
        );
        let sup = self.forced_snapshot.clone();
        let log = self.logger.clone();
        ctx.wait(
            async move { answer(sup.send(ForcedSnapshot), "supervisor", &log).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Some(Some(report)) => act.finish(report, ctx),
                    // The drain's final write is under way: DrainCompleted follows.
                    Some(None) => {}
                    None => ctx.address().do_send(SupervisorGone),
                }),
        );
    }
}

impl Handler<SupervisorGone> for Shutdown {
    type Result = ();
    fn handle(&mut self, _: SupervisorGone, ctx: &mut Context<Self>) {
        if self.done.is_some() {
            self.finish(ExitReport::unknown("supervisor unreachable"), ctx);
        }
    }
}

impl Handler<DrainCompleted> for Shutdown {
    type Result = ();
    fn handle(&mut self, msg: DrainCompleted, ctx: &mut Context<Self>) {
        // Also after a second signal: the drain's final write is complete,
        // and the forced snapshot it asked for was not written (the
        // supervisor answered that this write was under way, or stopped).
        if self.done.is_none() {
            return;
        }
        self.finishing = true;
        slog::info!(self.logger, "drained"; "tracked_jobs" => msg.0.tracked_jobs);
        self.finish(msg.0, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn interrupts_wake_sleepers_and_report_cancel_first() {
        tokio::time::pause();
        let (drain_tx, drain_rx) = watch::channel(false);
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let mut i = Interrupts::new(drain_rx, Some(cancel_rx));
        assert_eq!(i.check(), None);
        assert_eq!(i.sleep(Duration::from_secs(5)).await, None);
        let start = tokio::time::Instant::now();
        let waker = actix_rt::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = drain_tx.send(true);
            drain_tx
        });
        assert_eq!(
            i.sleep(Duration::from_secs(100)).await,
            Some(Interrupt::Drain)
        );
        assert!(start.elapsed() < Duration::from_secs(2));
        let _ = cancel_tx.send(true);
        assert_eq!(i.check(), Some(Interrupt::Cancel));
        drop(waker);
    }

    #[test]
    fn op_registry_tracks_guards() {
        let reg = OpRegistry::default();
        let name: Rc<str> = Rc::from("r");
        let job = |job_id| OpSubject::Job(JobKey { runner: 0, job_id });
        let g1 = reg.begin(name.clone(), job(2), "create");
        let g2 = reg.begin(name.clone(), job(1), "decommission");
        let g3 = reg.begin(name, OpSubject::Poll { runner: 0 }, "poll");
        let u = reg.uncertain();
        assert_eq!(u.len(), 3);
        assert_eq!((u[0].job_id, u[0].operation.as_str()), (None, "poll"));
        assert_eq!(u[1].job_id, Some(1));
        // A poll reservation never reaches the state file as a job.
        let poll = serde_json::to_value(&u[0]).expect("serialisable");
        assert!(poll.get("job_id").is_none(), "{poll}");
        assert_eq!(u[2].operation, "create");
        drop(g1);
        drop(g2);
        drop(g3);
        assert!(reg.uncertain().is_empty());
    }
}
