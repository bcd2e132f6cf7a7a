//! The job table's entries: what the supervisor knows of each tracked job,
//! and the loaded state records no configured runner could take.

use crate::job::Phase;
use crate::ports::{Job, Resource, Weight};
use crate::state::{HandleRecord, PendingRecord};
use tokio::sync::watch;
use tokio::time::Instant;

/// A tracked job.
pub(crate) struct JobEntry {
    pub job: Job,
    pub phase: Phase,
    pub expected_weight: Weight,
    pub trace_offset: u64,
    pub resource: Option<Resource>,
    pub resource_name: Option<String>,
    pub failure: Option<String>,
    pub trace_appended: bool,
    /// Raised when the job is over at the coordinator while launching.
    pub cancel: Option<watch::Sender<bool>>,
    /// Per-job actors working on the job.
    pub tasks: u32,
    /// The PAAS refused the last delete with a permanent error (the
    /// resource may still exist and keeps its weight): the error.
    pub delete_refused: Option<String>,
    /// When the job was acquired (or loaded, or adopted) by this process.
    pub tracked_at: Instant,
    /// When the job entered its current phase.
    pub phase_since: Instant,
    /// When the job was seen over at the coordinator.
    pub finished_at: Option<Instant>,
}

impl JobEntry {
    /// A job entry in `phase`.
    pub(crate) fn new(job: Job, phase: Phase, expected_weight: Weight) -> Self {
        JobEntry {
            job,
            phase,
            expected_weight,
            trace_offset: 0,
            resource: None,
            resource_name: None,
            failure: None,
            trace_appended: false,
            cancel: None,
            tasks: 0,
            delete_refused: None,
            tracked_at: Instant::now(),
            phase_since: Instant::now(),
            finished_at: None,
        }
    }
}

/// Records of the loaded state that no configured runner could take (the
/// runner was removed, or its resource dump did not load): written back
/// untouched so that nothing is lost.
#[derive(Default, Debug, Clone, PartialEq)]
pub(crate) struct Unloaded {
    pub launched: Vec<HandleRecord>,
    pub pending: Vec<PendingRecord>,
    pub to_decommission: Vec<HandleRecord>,
}

impl Unloaded {
    /// Number of records kept aside.
    pub(crate) fn len(&self) -> usize {
        self.launched.len() + self.pending.len() + self.to_decommission.len()
    }
}
