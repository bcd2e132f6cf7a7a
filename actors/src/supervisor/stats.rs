//! The supervisor's state dump (SIGUSR1) and, for tests and the bench
//! (feature `testing`), the [`GetStats`] and [`GetBooks`] queries and the
//! bench's [`EndTask`]; the event totals the dump and `GetStats` show are
//! read back from the metrics (`counting`).

use super::*;
use crate::untrusted::escape_control;

impl Supervisor {
    /// Logs the whole state, secrets masked.
    pub(super) fn dump_state(&self) {
        let c = self.totals();
        slog::info!(self.logger, "state dump";
            "jobs" => self.jobs.len(), "used_weight" => TwoDecimals(self.ledger.used()),
            "quota" => TwoDecimals(self.ledger.limits().total_weight),
            "provisioning" => self.ledger.provisioning(),
            "concurrent" => self.ledger.limits().concurrent,
            "draining" => self.draining, "tasks" => self.tasks,
            "unloadable_entries" => self.unloaded.len(),
            "acquired" => c.acquired, "completed" => c.completed,
            "launch_failures" => c.launch_failures, "reconcile_passes" => c.reconcile_passes,
            "adopted" => c.adopted, "unknown_decommissioned" => c.unknown_decommissioned,
            "vanished" => c.vanished, "state_writes" => self.persist.count(),
            "last_write_s" => crate::ports::Seconds(self.persist.last_duration()),
            "last_snapshot_build_s" => crate::ports::Seconds(self.persist.last_build()),
            "last_snapshot_encoded" => self.persist.last_encoded());
        for (key, e) in &self.jobs {
            // The runner's logger and the job id; the phase is a key of the
            // line itself (each key once per line).
            let log = self
                .runner_log(key.runner)
                .new(slog::o!("job_id" => key.job_id));
            let weight = self.ledger.weight_of(*key).map_or(0.0, |(w, _)| w);
            slog::info!(log, "tracked job";
                "phase" => e.phase.as_str(), "weight" => TwoDecimals(weight),
                "app" => e.resource.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                "resource_name" => e.resource.as_ref().map(|r| r.name.clone())
                    .or_else(|| e.resource_name.clone()).unwrap_or_default(),
                "trace_offset" => e.trace_offset,
                "failure" => e.failure.as_deref().map(escape_control).unwrap_or_default(),
                "delete_refused" => e.delete_refused.as_deref().map(escape_control)
                    .unwrap_or_default(),
                "token" => &e.job.token);
        }
        let owed = self.ledger.owed();
        for (i, r) in self.runners.iter().enumerate() {
            slog::info!(r.logger, "runner";
                "poll_state" => r.poll.state().as_str(), "cycles" => r.cycles,
                "owed_next_poll" => owed == Some(i),
                "backoff_retries" => r.poll.retries(), "polled" => !r.retired,
                "trace_watch_token_refused" => r.trace_watch_refused,
                "max_job_weight" => TwoDecimals(r.max_job_weight.unwrap_or(0.0)));
        }
    }
}

#[cfg(feature = "testing")]
pub use query::{Books, EndTask, GetBooks, GetStats, Stats};

#[cfg(feature = "testing")]
mod query {
    use super::*;

    /// Sent by tests and the bench to the supervisor: counters and the quota.
    #[derive(Message, Debug)]
    #[rtype(result = "Stats")]
    pub struct GetStats;

    /// What [`GetStats`] answers.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Stats {
        /// Jobs tracked, per phase name.
        pub phases: BTreeMap<&'static str, usize>,
        /// Weight held in the ledger.
        pub used_weight: Weight,
        /// Highest weight ever held in the ledger.
        pub peak_used_weight: Weight,
        /// The quota.
        pub quota: Weight,
        /// Jobs acquired since start.
        pub acquired: u64,
        /// Jobs whose life ended (resource gone or released) since start.
        pub completed: u64,
        /// Launch failures since start.
        pub launch_failures: u64,
        /// State writes completed.
        pub persists: u64,
        /// Wall time of the last completed state write, from building the
        /// snapshot to the store's acknowledgement.
        pub last_persist: Duration,
        /// Time spent building the last snapshot on the arbiter (the rest of
        /// a write runs in the store, off the arbiter for the file store).
        pub last_snapshot_build: Duration,
        /// Job entries encoded for the last write: those changed since the
        /// write before (the others' records are kept encoded).
        pub last_snapshot_encoded: usize,
        /// Per-job actors running.
        pub tasks: usize,
        /// Polling cycles done by the slowest runner.
        pub poll_cycles: u64,
        /// Reconciliation passes completed (one per runner and pass),
        /// whether the listing succeeded or not.
        pub reconcile_passes: u64,
        /// Unknown resources adopted because their job still runs.
        pub adopted: u64,
        /// Unknown resources sent to decommissioning (job over, or no job).
        pub unknown_decommissioned: u64,
        /// Tracked entries forgotten because their resource vanished.
        pub vanished: u64,
        /// Names of the runners whose trace-watch token is refused.
        pub trace_watch_refused: Vec<String>,
    }

    impl Handler<GetStats> for Supervisor {
        type Result = MessageResult<GetStats>;
        fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
            let mut phases = BTreeMap::new();
            for e in self.jobs.values() {
                *phases.entry(e.phase.as_str()).or_insert(0) += 1;
            }
            let c = self.totals();
            MessageResult(Stats {
                phases,
                used_weight: self.ledger.used(),
                peak_used_weight: self.peak_used,
                quota: self.ledger.limits().total_weight,
                acquired: c.acquired,
                completed: c.completed,
                launch_failures: c.launch_failures,
                persists: self.persist.count(),
                last_persist: self.persist.last_duration(),
                last_snapshot_build: self.persist.last_build(),
                last_snapshot_encoded: self.persist.last_encoded(),
                tasks: self.tasks,
                poll_cycles: self.min_cycles(),
                reconcile_passes: c.reconcile_passes,
                adopted: c.adopted,
                unknown_decommissioned: c.unknown_decommissioned,
                vanished: c.vanished,
                trace_watch_refused: self
                    .runners
                    .iter()
                    .filter(|r| r.trace_watch_refused)
                    .map(|r| r.name.to_string())
                    .collect(),
            })
        }
    }

    /// Sent by the bench: the per-job task of a tracked job ended, as its
    /// actor says it (an event that looks the job up).
    #[derive(Message, Debug)]
    #[rtype(result = "()")]
    pub struct EndTask(pub JobKey);

    impl Handler<EndTask> for Supervisor {
        type Result = ();
        fn handle(&mut self, msg: EndTask, ctx: &mut Context<Self>) {
            let event = TaskEvent::from(crate::messages::TaskEnded { key: msg.0 });
            <Self as Handler<TaskEvent>>::handle(self, event, ctx);
        }
    }

    /// Sent by the gauge property test: the job table and the ledger,
    /// with the metrics encoded at the same instant.
    #[derive(Message, Debug)]
    #[rtype(result = "Books")]
    pub struct GetBooks;

    /// What [`GetBooks`] answers.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Books {
        /// Tracked jobs per runner label and phase name.
        pub jobs: BTreeMap<(String, &'static str), usize>,
        /// The quota.
        pub quota: Weight,
        /// Weight held in the ledger, reservations included.
        pub used_weight: Weight,
        /// Weight reserved by polls in flight.
        pub reserved_weight: Weight,
        /// The limits: (concurrent, provisioning).
        pub limits: (usize, usize),
        /// The metrics in the Prometheus text format.
        pub scrape: String,
    }

    impl Handler<GetBooks> for Supervisor {
        type Result = MessageResult<GetBooks>;
        fn handle(&mut self, _: GetBooks, _: &mut Context<Self>) -> Self::Result {
            let mut jobs = BTreeMap::new();
            for (key, e) in self.jobs.iter() {
                let label = self.runners.get(key.runner).map(|r| r.label.to_string());
                *jobs
                    .entry((label.unwrap_or_default(), e.phase.as_str()))
                    .or_insert(0) += 1;
            }
            let limits = self.ledger.limits();
            MessageResult(Books {
                jobs,
                quota: limits.total_weight,
                used_weight: self.ledger.used(),
                reserved_weight: self.ledger.reserved(),
                limits: (limits.concurrent, limits.max_provisioning),
                scrape: self.metrics.encode().unwrap_or_default(),
            })
        }
    }
}
