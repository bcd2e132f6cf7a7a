//! What the supervisor publishes for monitoring: the metrics it keeps
//! current ([`crate::metrics::Metrics`]: jobs per phase, quota, limits),
//! and its answers to the health and job list queries ([`GetHealth`],
//! [`ListJobs`]).

use super::*;

impl Supervisor {
    /// At start: every runner's series, the limits, the loaded jobs.
    pub(super) fn publish_start(&mut self) {
        let phases: Vec<&'static str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
        for r in &self.runners {
            self.metrics.add_runner(&r.label, &phases);
        }
        self.metrics.set_limits(
            self.ledger.limits().concurrent,
            self.ledger.limits().max_provisioning,
        );
        let loaded: Vec<(usize, Phase)> =
            self.jobs.iter().map(|(k, e)| (k.runner, e.phase)).collect();
        for (runner, phase) in loaded {
            self.count_phase(runner, None, Some(phase));
        }
        self.publish_quota();
    }

    /// One job of runner `runner` moved from phase `from` to `to` (`None`:
    /// not tracked).
    pub(super) fn count_phase(&self, runner: usize, from: Option<Phase>, to: Option<Phase>) {
        if let Some(r) = self.runners.get(runner) {
            self.metrics
                .job_moved(&r.label, from.map(Phase::as_str), to.map(Phase::as_str));
        }
    }

    /// The quota gauges: the limit, the weight of the tracked jobs, the
    /// weight reserved by polls in flight.
    pub(super) fn publish_quota(&self) {
        let reserved = self.ledger.reserved();
        self.metrics.set_quota(
            self.ledger.limits().total_weight,
            self.ledger.used() - reserved,
            reserved,
        );
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
