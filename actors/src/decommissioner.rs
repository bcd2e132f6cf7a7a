//! The delete of one resource ([`Decommission`], a per-job task).
//!
//! It deletes the resource, retrying with a jittered exponential back-off
//! ([`crate::backoff`]; bounded delay; attempts go on while the service
//! runs, because giving up would leak a billed resource; a wait after a
//! transient error ends early when a reconciliation pass lists again a
//! scope it had to skip, see [`Decommission::retry_now`]). A resource already gone counts as success (the
//! port says so). The delete call is uninterruptible; the waits between
//! attempts end on drain, leaving the resource in `to_decommission` for the
//! next process.
//!
//! A delete refused with a permanent error (a revoked token, a PAAS that
//! forbids it) is retried too, on a long back-off of its own
//! (`SupervisorSettings::permanent_retry_policy`: minutes to hours), with
//! an ERROR and a [`DecommissionRefused`] to the supervisor at each refusal:
//! the resource may still exist, so it keeps its weight.

use crate::backoff::LazyBackoff;
use crate::job_actor::JobTask;
use crate::job_ctx::JobCtx;
use crate::messages::{DecommissionRefused, DecommissionStopped, ResourceDecommissioned};
use crate::ports::{PaasErrorClass, Resource};
use crate::shutdown::OpSubject;
use crate::untrusted::untrusted;
use tokio::sync::watch;

/// Deletes one resource (see the module documentation), waiting per
/// `backoff` between attempts after a transient error and per `refused`
/// after a permanent one.
pub(crate) struct Decommission {
    /// The resource to delete.
    pub resource: Resource,
    /// The waits after a transient error.
    pub backoff: LazyBackoff,
    /// The waits after a refusal (a permanent error).
    pub refused: LazyBackoff,
    /// Ends a wait after a transient error early when it changes: a
    /// reconciliation pass found again a scope it had to skip (the
    /// organisation of a tenant resolves again), so a delete that failed
    /// for want of it is tried at once rather than after its back-off.
    pub retry_now: Option<watch::Receiver<u64>>,
}

impl JobTask for Decommission {
    const PHASE: &'static str = "decommissioning";
    const CANCELLABLE: bool = false;

    async fn run(self, mut jc: JobCtx) {
        let Decommission {
            resource,
            mut backoff,
            mut refused,
            mut retry_now,
        } = self;
        let key = jc.key;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let op = jc
                .ops
                .begin(jc.runner_name.clone(), OpSubject::Job(key), "decommission");
            let res = jc.paas.decommission(&resource).await;
            drop(op);
            let mut nudgeable = false;
            let delay = match res {
                Ok(()) => {
                    slog::info!(jc.logger, "resource decommissioned"; "app" => &resource.id);
                    jc.supervisor.tell(ResourceDecommissioned { key });
                    return;
                }
                Err(e) if e.class == PaasErrorClass::Permanent => {
                    let delay = refused.next_delay();
                    slog::error!(jc.logger,
                                 "the PAAS refuses to delete the resource; it may still exist and \
                                  keeps its weight, the delete is retried later";
                                 "app" => &resource.id, "attempt" => attempt, "error" => %e,
                                 "retry_in_s" => crate::ports::Seconds(delay));
                    jc.supervisor.tell(DecommissionRefused {
                        key,
                        error: e.to_string(),
                    });
                    delay
                }
                Err(e) => {
                    nudgeable = true;
                    let delay = backoff.next_delay();
                    slog::error!(jc.logger, "could not decommission the resource";
                                 "app" => &resource.id, "attempt" => attempt, "error" => %untrusted(&e),
                                 "retry_in_s" => crate::ports::Seconds(delay));
                    delay
                }
            };
            let nudge = async {
                match retry_now.as_mut() {
                    Some(rx) if nudgeable => {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    _ => std::future::pending::<()>().await,
                }
            };
            let interrupted = tokio::select! {
                i = jc.interrupts.sleep(delay) => i.is_some(),
                () = nudge => {
                    slog::info!(jc.logger, "a reconciliation pass found the resource's scope \
                                            again; deleting it now";
                                "app" => &resource.id);
                    false
                }
            };
            if interrupted {
                jc.supervisor.tell(DecommissionStopped { key });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // The `testing` feature is on in every test build (dev-dependency).
    use super::*;
    use crate::backoff::BackoffPolicy;
    use crate::job_actor::JobActor;
    use crate::job_ctx::stub::{Event, Harness};
    use crate::ports::PaasError;
    use crate::testing::{job, FakeCoordinator, FakePaas, Step, World};
    use std::time::Duration;

    const STEP: Duration = Duration::from_secs(1);

    fn policy() -> LazyBackoff {
        LazyBackoff::new(BackoffPolicy::new(STEP, STEP * 4), Some(1))
    }

    fn long() -> LazyBackoff {
        LazyBackoff::new(BackoffPolicy::new(STEP * 600, STEP * 3600), Some(1))
    }

    fn task() -> Decommission {
        Decommission {
            resource: resource(),
            backoff: policy(),
            refused: long(),
            retry_now: None,
        }
    }

    fn resource() -> Resource {
        Resource {
            id: "app-1".into(),
            name: "hpd-job-r-1".into(),
            weight: 1.0,
            launched: true,
            detail: serde_json::Value::Null,
            credential: None,
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
        JobActor::start(jc, task());
        assert!(h.until_ended(STEP, 20).await);
        assert_eq!(paas.calls(Step::Decommission), 2);
        assert_eq!(h.events(), vec![Event::Decommissioned, Event::TaskEnded]);
    }

    #[actix_rt::test]
    async fn a_refused_delete_is_retried_on_the_long_back_off_and_reported() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        paas.fail(
            Step::Decommission,
            (0..3).map(|_| PaasError::permanent("delete", "401 token revoked")),
        );
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        JobActor::start(jc, task());
        // Not a hot loop: ten minutes later, at most two attempts were made.
        tokio::time::sleep(STEP * 600).await;
        assert!(
            paas.calls(Step::Decommission) <= 2,
            "{}",
            paas.calls(Step::Decommission)
        );
        assert!(h
            .events()
            .iter()
            .all(|e| matches!(e, Event::DecommissionRefused(m) if m.contains("token revoked"))));
        assert!(!h.events().is_empty());
        // Retried until it works.
        assert!(h.until_ended(STEP * 600, 60).await);
        assert_eq!(paas.calls(Step::Decommission), 4);
        assert_eq!(h.events().last(), Some(&Event::TaskEnded));
        assert!(h.events().contains(&Event::Decommissioned));
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
        JobActor::start(jc, task());
        assert!(h.until_ended(STEP, 20).await);
        assert_eq!(paas.calls(Step::Decommission), 1);
        assert_eq!(
            h.events(),
            vec![Event::DecommissionStopped, Event::TaskEnded]
        );
    }
}
