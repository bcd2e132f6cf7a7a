//! The one actor shell of every per-job task (launch, trace watch, failure
//! report, decommission).
//!
//! A task is a plain async function behind a small [`JobTask`] impl: its
//! parameters, the `phase` of its log lines, and whether the job's
//! cancellation at the coordinator interrupts it. [`JobActor`] runs it on
//! the supervisor's thread and stops when it returns; on stopping, however
//! the task ended, it tells the supervisor [`TaskEnded`], which is how the
//! supervisor counts the per-job actors still at work (the drain waits for
//! none to be left). Events and write-ahead requests go through the task's
//! [`JobCtx`]; the drain and the cancellation reach it through
//! `JobCtx::interrupts`, built by the supervisor for `JobTask::CANCELLABLE`.

use crate::job_ctx::{JobCtx, SupervisorLink};
use crate::messages::TaskEnded;
use crate::quota::JobKey;
use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use std::future::Future;
use std::rc::Rc;

/// One per-job task (see the module documentation).
pub(crate) trait JobTask: 'static {
    /// The task's step in its log lines' `phase` (`launching`, ...).
    const PHASE: &'static str;
    /// Whether the job's cancellation at the coordinator interrupts it
    /// (the drain always does).
    const CANCELLABLE: bool;
    /// Runs the task to its end; what it has to say goes through
    /// `jc.supervisor`.
    fn run(self, jc: JobCtx) -> impl Future<Output = ()> + 'static;
}

/// The actor running one [`JobTask`].
pub(crate) struct JobActor {
    key: JobKey,
    supervisor: Rc<SupervisorLink>,
    task: Option<LocalBoxFuture<'static, ()>>,
}

impl JobActor {
    /// Starts `task` for the job of `jc`.
    pub(crate) fn start<T: JobTask>(jc: JobCtx, task: T) {
        let (key, supervisor) = (jc.key, jc.supervisor.clone());
        let task = Some(Box::pin(task.run(jc)) as LocalBoxFuture<'static, ()>);
        Actor::start(JobActor {
            key,
            supervisor,
            task,
        });
    }
}

impl Actor for JobActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.task.take() {
            Some(task) => {
                ctx.spawn(task.into_actor(self).map(|(), _, ctx| ctx.stop()));
            }
            None => ctx.stop(),
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.supervisor.tell(TaskEnded { key: self.key });
    }
}
