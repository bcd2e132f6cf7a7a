//! What a per-job actor (launcher, trace watcher, failure reporter,
//! decommissioner) needs: its job, its runner's ports, the interrupts it
//! must honour, and where to send its events ([`SupervisorLink`]: one
//! recipient per message of [`crate::messages`], so that the actor does
//! not know the supervisor and can be tested against a stub).

use crate::messages::{
    DecommissionStopped, FailureReported, JobStarted, LaunchFailed, LaunchStopped, RecordCreating,
    ResourceDecommissioned, ResourceLaunched, ResourceProvisioned, TaskEnded,
};
use crate::ports::{Coordinator, Job, Paas};
use crate::quota::JobKey;
use crate::shutdown::{Interrupts, OpRegistry};
use actix::Recipient;
use std::rc::Rc;

/// Where per-job actors send their events.
#[derive(Clone)]
pub(crate) struct SupervisorLink {
    pub record_creating: Recipient<RecordCreating>,
    pub provisioned: Recipient<ResourceProvisioned>,
    pub launched: Recipient<ResourceLaunched>,
    pub started: Recipient<JobStarted>,
    pub launch_failed: Recipient<LaunchFailed>,
    pub launch_stopped: Recipient<LaunchStopped>,
    pub failure_reported: Recipient<FailureReported>,
    pub decommissioned: Recipient<ResourceDecommissioned>,
    pub decommission_stopped: Recipient<DecommissionStopped>,
    pub task_ended: Recipient<TaskEnded>,
}

/// What a per-job actor needs: the job, its runner's ports, the supervisor
/// link and the interrupts it must honour.
#[derive(Clone)]
pub(crate) struct JobCtx {
    pub key: JobKey,
    pub runner_name: Rc<str>,
    pub job: Job,
    pub coordinator: Rc<dyn Coordinator>,
    pub paas: Rc<dyn Paas>,
    pub supervisor: Rc<SupervisorLink>,
    pub interrupts: Interrupts,
    pub ops: OpRegistry,
    pub logger: slog::Logger,
}

/// A stub supervisor for the per-job actors' unit tests: it records every
/// event and answers write-ahead requests with a fixed answer.
#[cfg(test)]
pub(crate) mod stub {
    use super::*;
    use crate::messages::{NotRecorded, ReportOutcome};
    use crate::shutdown::Interrupt;
    use actix::prelude::*;
    use std::cell::RefCell;
    use tokio::sync::watch;

    /// An event received by the stub.
    #[derive(Clone, Debug, PartialEq)]
    pub(crate) enum Event {
        RecordCreating(String),
        Provisioned(String),
        Launched(String),
        Started,
        LaunchFailed(String),
        LaunchStopped(Interrupt),
        FailureReported(ReportOutcome),
        Decommissioned,
        DecommissionStopped,
        TaskEnded,
    }

    /// Records events in `events`; answers `answer` to write-ahead requests.
    pub(crate) struct StubSupervisor {
        pub events: Rc<RefCell<Vec<Event>>>,
        pub answer: Result<(), NotRecorded>,
    }

    impl Actor for StubSupervisor {
        type Context = Context<Self>;
    }

    macro_rules! record {
        ($msg:ty, $res:ty, |$m:ident, $s:ident| $event:expr, $reply:expr) => {
            impl Handler<$msg> for StubSupervisor {
                type Result = $res;
                fn handle(&mut self, $m: $msg, _: &mut Context<Self>) -> $res {
                    let $s = &*self;
                    $s.events.borrow_mut().push($event);
                    $reply
                }
            }
        };
    }

    record!(RecordCreating, Result<(), NotRecorded>,
            |m, s| Event::RecordCreating(m.name), s.answer.clone());
    record!(ResourceProvisioned, Result<(), NotRecorded>,
            |m, s| Event::Provisioned(m.resource.id), s.answer.clone());
    record!(ResourceLaunched, Result<(), NotRecorded>,
            |m, s| Event::Launched(m.resource.id), s.answer.clone());
    record!(JobStarted, (), |_m, _s| Event::Started, ());
    record!(LaunchFailed, (), |m, _s| Event::LaunchFailed(m.message), ());
    record!(
        LaunchStopped,
        (),
        |m, _s| Event::LaunchStopped(m.interrupt),
        ()
    );
    record!(
        FailureReported,
        (),
        |m, _s| Event::FailureReported(m.outcome),
        ()
    );
    record!(
        ResourceDecommissioned,
        (),
        |_m, _s| Event::Decommissioned,
        ()
    );
    record!(
        DecommissionStopped,
        (),
        |_m, _s| Event::DecommissionStopped,
        ()
    );
    record!(TaskEnded, (), |_m, _s| Event::TaskEnded, ());

    /// A started stub, the events it records, and the drain sender (keep it
    /// alive; send `true` to drain).
    pub(crate) struct Harness {
        pub events: Rc<RefCell<Vec<Event>>>,
        pub link: Rc<SupervisorLink>,
        pub drain: watch::Sender<bool>,
    }

    impl Harness {
        /// A stub answering `answer` to write-ahead requests.
        pub(crate) fn start(answer: Result<(), NotRecorded>) -> Harness {
            let events = Rc::new(RefCell::new(Vec::new()));
            let addr = StubSupervisor {
                events: events.clone(),
                answer,
            }
            .start();
            let link = Rc::new(SupervisorLink {
                record_creating: addr.clone().recipient(),
                provisioned: addr.clone().recipient(),
                launched: addr.clone().recipient(),
                started: addr.clone().recipient(),
                launch_failed: addr.clone().recipient(),
                launch_stopped: addr.clone().recipient(),
                failure_reported: addr.clone().recipient(),
                decommissioned: addr.clone().recipient(),
                decommission_stopped: addr.clone().recipient(),
                task_ended: addr.recipient(),
            });
            Harness {
                events,
                link,
                drain: watch::channel(false).0,
            }
        }

        /// The context of a per-job actor for `job`, over these ports.
        pub(crate) fn job_ctx(
            &self,
            job: Job,
            coordinator: Rc<dyn Coordinator>,
            paas: Rc<dyn Paas>,
        ) -> JobCtx {
            JobCtx {
                key: JobKey {
                    runner: 0,
                    job_id: job.id,
                },
                runner_name: Rc::from("r"),
                job,
                coordinator,
                paas,
                supervisor: self.link.clone(),
                interrupts: Interrupts::new(self.drain.subscribe(), None),
                ops: OpRegistry::default(),
                logger: slog::Logger::root(slog::Discard, slog::o!()),
            }
        }

        /// The events received so far.
        pub(crate) fn events(&self) -> Vec<Event> {
            self.events.borrow().clone()
        }

        /// Waits (virtual time) until `TaskEnded` arrived; at most `max`
        /// steps of `step`.
        pub(crate) async fn until_ended(&self, step: std::time::Duration, max: usize) -> bool {
            for _ in 0..max {
                if self.events.borrow().contains(&Event::TaskEnded) {
                    return true;
                }
                tokio::time::sleep(step).await;
            }
            self.events.borrow().contains(&Event::TaskEnded)
        }
    }
}
