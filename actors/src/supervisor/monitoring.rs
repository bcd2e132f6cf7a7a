//! The supervisor's answers to the health and job list queries
//! ([`GetHealth`], with why it cannot take jobs when it cannot,
//! [`ListJobs`]); its metrics are kept in `counting`.

use super::*;

impl Supervisor {
    /// Why no job can be taken now, the most pressing reason first; `None`
    /// when jobs can be taken (limits permitting).
    pub(super) fn not_ready(&self) -> Option<NotReady> {
        if self.draining || self.finishing {
            return Some(NotReady::Draining);
        }
        if self.persist.is_failing() {
            return Some(NotReady::StateWritesFailing);
        }
        let mut polled = self.runners.iter().filter(|r| !r.retired).peekable();
        if polled.peek().is_none() {
            return Some(NotReady::NoRunner);
        }
        if polled.all(|r| r.coordinator_down) {
            return Some(NotReady::CoordinatorsDown);
        }
        if self.awaiting_first_listing.is_some() {
            return Some(NotReady::Starting);
        }
        None
    }

    fn job_views(&self) -> Vec<JobView> {
        let now = tokio::time::Instant::now();
        self.jobs
            .iter()
            .map(|(key, e)| JobView {
                job_id: key.job_id,
                runner: self
                    .runners
                    .get(key.runner)
                    .map(|r| r.label.to_string())
                    .unwrap_or_default(),
                unique_name: self
                    .runners
                    .get(key.runner)
                    .map(|r| r.name.to_string())
                    .unwrap_or_default(),
                phase: e.phase.as_str(),
                weight: self.ledger.weight_of(*key).map_or(0.0, |(w, _)| w),
                resource_id: e.resource.as_ref().map(|r| r.id.clone()),
                resource_name: e
                    .resource
                    .as_ref()
                    .map(|r| r.name.clone())
                    .or_else(|| e.resource_name.clone()),
                since: now.saturating_duration_since(e.phase_since),
            })
            .collect()
    }
}

impl Handler<GetHealth> for Supervisor {
    type Result = MessageResult<GetHealth>;
    fn handle(&mut self, _: GetHealth, _: &mut Context<Self>) -> Self::Result {
        let reserved = self.ledger.reserved();
        MessageResult(Health {
            draining: self.draining,
            finishing: self.finishing && !self.draining,
            not_ready: self.not_ready(),
            jobs: self.jobs.len(),
            used_weight: self.ledger.used() - reserved,
            quota: self.ledger.limits().total_weight,
        })
    }
}

impl Handler<ListJobs> for Supervisor {
    type Result = MessageResult<ListJobs>;
    fn handle(&mut self, _: ListJobs, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.job_views())
    }
}
