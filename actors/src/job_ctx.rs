//! What a per-job actor (launcher, trace watcher, failure reporter,
//! decommissioner) needs: its job, its runner's ports, the interrupts it
//! must honour, and where to send what it tells the supervisor
//! ([`SupervisorLink`]: the two messages of [`crate::messages`],
//! [`WriteAhead`] and [`TaskEvent`], so that the actor does not know the
//! supervisor and can be tested against a stub).

use crate::messages::{TaskEvent, WriteAhead};
use crate::ports::{Coordinator, Job, Paas};
use crate::quota::JobKey;
use crate::shutdown::{Interrupts, OpRegistry};
use actix::dev::{RecipientRequest, ToEnvelope};
use actix::prelude::*;
use std::rc::Rc;

/// Where per-job actors send what they tell the supervisor.
#[derive(Clone)]
pub(crate) struct SupervisorLink {
    requests: Recipient<WriteAhead>,
    events: Recipient<TaskEvent>,
}

impl SupervisorLink {
    /// The link to an actor that handles both messages (the supervisor, or
    /// the unit tests' stub).
    pub(crate) fn to<A>(addr: &Addr<A>) -> Self
    where
        A: Handler<WriteAhead> + Handler<TaskEvent>,
        A::Context: ToEnvelope<A, WriteAhead> + ToEnvelope<A, TaskEvent>,
    {
        SupervisorLink {
            requests: addr.clone().recipient(),
            events: addr.clone().recipient(),
        }
    }

    /// Sends a write-ahead request; the answer comes once it is on disk.
    pub(crate) fn ask(&self, request: impl Into<WriteAhead>) -> RecipientRequest<WriteAhead> {
        self.requests.send(request.into())
    }

    /// Sends an event (no answer; dropped if the supervisor is gone).
    pub(crate) fn tell(&self, event: impl Into<TaskEvent>) {
        self.events.do_send(event.into());
    }
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
    use crate::messages::{NotRecorded, ReportOutcome, TraceSeen};
    use crate::shutdown::Interrupt;
    use std::cell::RefCell;
    use tokio::sync::watch;

    /// An event received by the stub.
    #[derive(Clone, Debug, PartialEq)]
    pub(crate) enum Event {
        RecordCreating(String),
        Provisioned(String),
        Launched(String),
        Started,
        StartedTokenRefused,
        LaunchFailed(String),
        LaunchStopped(Interrupt),
        FailureReported(ReportOutcome),
        Decommissioned,
        DecommissionStopped,
        DecommissionRefused(String),
        ReuseFailed(String),
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

    impl Handler<WriteAhead> for StubSupervisor {
        type Result = Result<(), NotRecorded>;
        fn handle(&mut self, msg: WriteAhead, _: &mut Context<Self>) -> Self::Result {
            self.events.borrow_mut().push(match msg {
                WriteAhead::RecordCreating(m) => Event::RecordCreating(m.name),
                WriteAhead::ResourceProvisioned(m) => Event::Provisioned(m.resource.id),
                WriteAhead::ResourceLaunched(m) => Event::Launched(m.resource.id),
            });
            self.answer.clone()
        }
    }

    impl Handler<TaskEvent> for StubSupervisor {
        type Result = ();
        fn handle(&mut self, msg: TaskEvent, _: &mut Context<Self>) {
            self.events.borrow_mut().push(match msg {
                TaskEvent::JobStarted(m) => match m.seen {
                    TraceSeen::Grew => Event::Started,
                    TraceSeen::TokenRefused { .. } => Event::StartedTokenRefused,
                },
                TaskEvent::LaunchFailed(m) => Event::LaunchFailed(m.message),
                TaskEvent::LaunchStopped(m) => Event::LaunchStopped(m.interrupt),
                TaskEvent::FailureReported(m) => Event::FailureReported(m.outcome),
                TaskEvent::ResourceDecommissioned(_) => Event::Decommissioned,
                TaskEvent::DecommissionStopped(_) => Event::DecommissionStopped,
                TaskEvent::DecommissionRefused(m) => Event::DecommissionRefused(m.error),
                TaskEvent::ReuseFailed(m) => Event::ReuseFailed(m.message),
                TaskEvent::TaskEnded(_) => Event::TaskEnded,
            });
        }
    }

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
            let link = Rc::new(SupervisorLink::to(&addr));
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
