//! The deploy contexts of the jobs being provisioned, built once per job.
//!
//! A job whose context cannot be built (an image name too long, a variable
//! that cannot be expanded) must be refused before any application exists,
//! so `create` builds the context; `launch`, a later call of the `Paas`
//! port, sends it. The context built at `create` is kept here for `launch`
//! instead of being built a second time. A job launched without one (its
//! `create` ran before a restart, or the resource was found by its name)
//! has its context built at `launch`.
//!
//! Every context is built on the blocking pool
//! ([`BuildContext::build_off_thread`]): the expansion of job-controlled
//! names is bounded but not free, and must not hold the actor thread.

use crate::deploy::BuildContext;
use paas_actors::ports::{Job, PaasError};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Most contexts kept. The supervisor launches at most
/// `paas_max_concurrent_provisioning` jobs at once (10 by default); past
/// this bound the oldest context is dropped, and built again if its job is
/// launched after all.
pub(crate) const KEPT_CONTEXTS: usize = 16;

/// The contexts built at `create`, by job id, oldest first.
pub(crate) struct DeployContexts {
    main_image: Option<String>,
    inner_runner_toml: String,
    kept: RefCell<VecDeque<(i64, Rc<BuildContext>)>>,
}

impl DeployContexts {
    /// Contexts `FROM main_image` (the default image when `None`), with
    /// `inner_runner_toml` as the inner runner's configuration.
    pub(crate) fn new(main_image: Option<String>, inner_runner_toml: String) -> Self {
        DeployContexts {
            main_image,
            inner_runner_toml,
            kept: RefCell::new(VecDeque::new()),
        }
    }

    /// Builds `job`'s context and keeps it for its launch (at `create`).
    /// An error is a permanent refusal of the job.
    pub(crate) async fn admit(&self, job: &Job) -> Result<(), PaasError> {
        if self.kept_for(job.id).is_none() {
            let ctx = self.build(job).await?;
            let mut kept = self.kept.borrow_mut();
            kept.retain(|(id, _)| *id != job.id);
            if kept.len() >= KEPT_CONTEXTS {
                kept.pop_front();
            }
            kept.push_back((job.id, ctx));
        }
        Ok(())
    }

    /// `job`'s context: the one kept since its `create`, else built now.
    pub(crate) async fn get(&self, job: &Job) -> Result<Rc<BuildContext>, PaasError> {
        match self.kept_for(job.id) {
            Some(ctx) => Ok(ctx),
            None => self.build(job).await,
        }
    }

    /// Drops `job_id`'s context: it is launched, or will never be.
    pub(crate) fn forget(&self, job_id: i64) {
        self.kept.borrow_mut().retain(|(id, _)| *id != job_id);
    }

    fn kept_for(&self, job_id: i64) -> Option<Rc<BuildContext>> {
        let kept = self.kept.borrow();
        kept.iter()
            .find(|(id, _)| *id == job_id)
            .map(|(_, ctx)| ctx.clone())
    }

    async fn build(&self, job: &Job) -> Result<Rc<BuildContext>, PaasError> {
        BuildContext::build_off_thread(
            self.main_image.clone(),
            self.inner_runner_toml.clone(),
            job.clone(),
        )
        .await
        .map(|(ctx, _)| Rc::new(ctx))
        .map_err(|e| PaasError::permanent("build-context", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paas_actors::ports::PaasErrorClass;
    use serde_json::json;

    fn job(id: i64) -> Job {
        Job::from_payload(json!({"id": id, "token": "jt", "image": {"name": "alpine"}}))
            .expect("valid job")
    }

    fn contexts() -> DeployContexts {
        DeployContexts::new(Some("img:1".into()), "concurrent = 1\n".into())
    }

    #[actix_rt::test]
    async fn the_context_built_at_create_is_the_one_launched() {
        let c = contexts();
        c.admit(&job(1)).await.expect("admitted");
        let first = c.get(&job(1)).await.expect("context");
        // The same allocation: not built again.
        assert!(Rc::ptr_eq(&first, &c.get(&job(1)).await.expect("context")));
        c.admit(&job(1)).await.expect("admitted again");
        assert!(Rc::ptr_eq(&first, &c.get(&job(1)).await.expect("context")));
        let expected =
            BuildContext::new(Some("img:1"), "concurrent = 1\n".into(), &job(1)).expect("context");
        assert_eq!(*first, expected);
        c.forget(1);
        let rebuilt = c.get(&job(1)).await.expect("context");
        assert!(!Rc::ptr_eq(&first, &rebuilt));
        assert_eq!(*rebuilt, expected);
    }

    #[actix_rt::test]
    async fn a_job_never_admitted_gets_its_context_at_launch() {
        let c = contexts();
        let ctx = c.get(&job(7)).await.expect("context");
        assert!(ctx.job_json.contains("\"id\":7"), "{}", ctx.job_json);
        // Not kept: only `create` keeps a context.
        assert!(c.kept_for(7).is_none());
    }

    #[actix_rt::test]
    async fn a_refused_job_is_a_permanent_error_and_keeps_nothing() {
        let c = contexts();
        let long = "a".repeat(crate::deploy::image_name::MAX_IMAGE_NAME_LEN + 1);
        let bad = Job::from_payload(json!({"id": 3, "token": "jt", "image": {"name": long}}))
            .expect("valid job");
        let err = c.admit(&bad).await.expect_err("refused");
        assert_eq!(err.class, PaasErrorClass::Permanent);
        assert_eq!(err.action, "build-context");
        assert!(err.message.contains("image.name"), "{}", err.message);
        assert!(c.kept.borrow().is_empty());
    }

    #[actix_rt::test]
    async fn at_most_kept_contexts_the_oldest_dropped_first() {
        let c = contexts();
        let count = i64::try_from(KEPT_CONTEXTS).expect("small") + 1;
        for id in 1..=count {
            c.admit(&job(id)).await.expect("admitted");
        }
        assert_eq!(c.kept.borrow().len(), KEPT_CONTEXTS);
        assert!(c.kept_for(1).is_none());
        assert!((2..=count).all(|id| c.kept_for(id).is_some()));
    }
}
