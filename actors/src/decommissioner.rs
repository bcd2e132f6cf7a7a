//! The decommissioner: one per resource to delete.
//!
//! It deletes the resource, retrying with a jittered exponential back-off
//! ([`crate::backoff`]; bounded delay; attempts go on while the service
//! runs, because giving up would leak a billed resource). A resource already gone counts as success (the
//! port says so). The delete call is uninterruptible; the waits between
//! attempts end on drain, leaving the resource in `to_decommission` for the
//! next process.

use crate::backoff::LazyBackoff;
use crate::job_ctx::JobCtx;
use crate::messages::{DecommissionStopped, ResourceDecommissioned, TaskEnded};
use crate::ports::Resource;
use crate::shutdown::OpSubject;
use crate::untrusted::untrusted;
use actix::prelude::*;

/// Deletes one resource (see the module documentation).
pub struct Decommissioner {
    jc: JobCtx,
    resource: Option<Resource>,
    backoff: Option<LazyBackoff>,
}

impl Decommissioner {
    /// A decommissioner for `resource`, waiting per `backoff` between
    /// attempts.
    pub(crate) fn new(jc: JobCtx, resource: Resource, backoff: LazyBackoff) -> Self {
        Decommissioner {
            jc,
            resource: Some(resource),
            backoff: Some(backoff),
        }
    }
}

impl Actor for Decommissioner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let (Some(resource), Some(backoff)) = (self.resource.take(), self.backoff.take()) {
            let fut = decommission(self.jc.clone(), resource, backoff);
            ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
        } else {
            ctx.stop();
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.jc
            .supervisor
            .task_ended
            .do_send(TaskEnded { key: self.jc.key });
    }
}

async fn decommission(mut jc: JobCtx, resource: Resource, mut backoff: LazyBackoff) {
    let key = jc.key;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let op = jc
            .ops
            .begin(jc.runner_name.clone(), OpSubject::Job(key), "decommission");
        let res = jc.paas.decommission(&resource).await;
        drop(op);
        let delay = match res {
            Ok(()) => {
                slog::info!(jc.logger, "resource decommissioned"; "app" => &resource.id);
                jc.supervisor
                    .decommissioned
                    .do_send(ResourceDecommissioned { key });
                return;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                slog::error!(jc.logger, "could not decommission the resource";
                             "app" => &resource.id, "attempt" => attempt, "error" => %untrusted(&e),
                             "retry_in_s" => delay.as_secs_f64());
                delay
            }
        };
        if jc.interrupts.sleep(delay).await.is_some() {
            jc.supervisor
                .decommission_stopped
                .do_send(DecommissionStopped { key });
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    // The `testing` feature is on in every test build (dev-dependency).
    use super::*;
    use crate::backoff::BackoffPolicy;
    use crate::job_ctx::stub::{Event, Harness};
    use crate::ports::PaasError;
    use crate::testing::{job, FakeCoordinator, FakePaas, Step, World};
    use std::time::Duration;

    const STEP: Duration = Duration::from_secs(1);

    fn policy() -> LazyBackoff {
        LazyBackoff::new(BackoffPolicy::new(STEP, STEP * 4), Some(1))
    }

    fn resource() -> Resource {
        Resource {
            id: "app-1".into(),
            name: "hpd-job-r-1".into(),
            weight: 1.0,
            launched: true,
            detail: serde_json::Value::Null,
        }
    }

    #[actix_rt::test]
    async fn retries_until_the_resource_is_gone() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        paas.fail(Step::Decommission, [PaasError::transient("delete", "503")]);
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        Decommissioner::new(jc, resource(), policy()).start();
        assert!(h.until_ended(STEP, 20).await);
        assert_eq!(paas.calls(Step::Decommission), 2);
        assert_eq!(h.events(), vec![Event::Decommissioned, Event::TaskEnded]);
    }

    #[actix_rt::test]
    async fn the_drain_ends_the_retries() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        paas.fail(Step::Decommission, [PaasError::transient("delete", "503")]);
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        let _ = h.drain.send(true);
        Decommissioner::new(jc, resource(), policy()).start();
        assert!(h.until_ended(STEP, 20).await);
        assert_eq!(paas.calls(Step::Decommission), 1);
        assert_eq!(
            h.events(),
            vec![Event::DecommissionStopped, Event::TaskEnded]
        );
    }
}
