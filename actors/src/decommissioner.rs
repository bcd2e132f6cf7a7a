//! The decommissioner: one per resource to delete.
//!
//! It deletes the resource, retrying with exponential back-off (bounded
//! delay; attempts go on while the service runs, because giving up would
//! leak a billed resource). A resource already gone counts as success (the
//! port says so). The delete call is uninterruptible; the waits between
//! attempts end on drain, leaving the resource in `to_decommission` for the
//! next process.

use crate::ports::Resource;
use crate::supervisor::{DecommissionStopped, JobCtx, ResourceDecommissioned, TaskEnded};
use crate::untrusted::untrusted;
use actix::prelude::*;
use std::time::Duration;

/// Deletes one resource (see the module documentation).
pub struct Decommissioner {
    jc: JobCtx,
    resource: Option<Resource>,
    backoff: (Duration, Duration),
}

impl Decommissioner {
    /// A decommissioner for `resource`, retrying after `backoff.0`, doubling
    /// up to `backoff.1`.
    pub(crate) fn new(jc: JobCtx, resource: Resource, backoff: (Duration, Duration)) -> Self {
        Decommissioner {
            jc,
            resource: Some(resource),
            backoff,
        }
    }
}

impl Actor for Decommissioner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(resource) = self.resource.take() {
            let fut = decommission(self.jc.clone(), resource, self.backoff);
            ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
        } else {
            ctx.stop();
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.jc.supervisor.do_send(TaskEnded { key: self.jc.key });
    }
}

async fn decommission(mut jc: JobCtx, resource: Resource, backoff: (Duration, Duration)) {
    let key = jc.key;
    let mut delay = backoff.0;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let op = jc.ops.begin(jc.runner_name.clone(), key, "decommission");
        let res = jc.paas.decommission(&resource).await;
        drop(op);
        match res {
            Ok(()) => {
                slog::info!(jc.logger, "resource decommissioned"; "app" => &resource.id);
                jc.supervisor.do_send(ResourceDecommissioned { key });
                return;
            }
            Err(e) => {
                slog::error!(jc.logger, "could not decommission the resource";
                             "app" => &resource.id, "attempt" => attempt, "error" => %untrusted(&e),
                             "retry_in_s" => delay.as_secs_f64());
            }
        }
        if jc.interrupts.sleep(delay).await.is_some() {
            jc.supervisor.do_send(DecommissionStopped { key });
            return;
        }
        delay = (delay * 2).min(backoff.1);
    }
}
