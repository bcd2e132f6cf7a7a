//! The job table: what the supervisor knows of each tracked job, each
//! job's records of the state file kept encoded until the job changes, and
//! the loaded state records no configured runner could take.

use crate::job::{Phase, Section};
use crate::ports::{Job, Resource, Weight};
use crate::quota::JobKey;
use crate::state::{HandleRecord, PendingRecord, StandbyRecord};
use crate::state_doc::Encoded;
use std::collections::BTreeMap;
use std::ops::Deref;
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
    /// Jobs its resource ran, this one included (a reused resource: more
    /// than 1).
    pub uses: u32,
    /// When its resource went on standby (wall clock, saved).
    pub standby_since: Option<std::time::SystemTime>,
    /// The standby entry whose resource this job took, and its job: the
    /// resource goes back to that key to be deleted if it cannot take the
    /// job.
    pub reused_from: Option<Box<(JobKey, Job)>>,
    /// The job's records as last encoded; dropped by every mutable access
    /// through [`JobTable`], so never older than the entry.
    encoded: Option<JobRecords>,
}

/// What one job contributes to the state file, encoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct JobRecords {
    /// Its entry in `launched`, `pending` or `to_decommission`, if any.
    pub main: Option<(Section, Encoded)>,
    /// Its `creating` entry.
    pub creating: Option<Encoded>,
    /// Its `launch_failures` entry.
    pub failure: Option<Encoded>,
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
            uses: 1,
            standby_since: None,
            reused_from: None,
            encoded: None,
        }
    }
}

/// The tracked jobs by key. Reads go through `Deref` to the map; every
/// mutable access (`get_mut`, `insert`, `remove`) drops the entry's
/// encoded records, so that the next write encodes the entry again.
#[derive(Default)]
pub(crate) struct JobTable {
    jobs: BTreeMap<JobKey, JobEntry>,
}

impl From<BTreeMap<JobKey, JobEntry>> for JobTable {
    fn from(jobs: BTreeMap<JobKey, JobEntry>) -> Self {
        JobTable { jobs }
    }
}

impl Deref for JobTable {
    type Target = BTreeMap<JobKey, JobEntry>;

    fn deref(&self) -> &Self::Target {
        &self.jobs
    }
}

impl<'a> IntoIterator for &'a JobTable {
    type Item = (&'a JobKey, &'a JobEntry);
    type IntoIter = std::collections::btree_map::Iter<'a, JobKey, JobEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.jobs.iter()
    }
}

impl JobTable {
    /// The entry of `key`, to change: its encoded records are dropped.
    pub(crate) fn get_mut(&mut self, key: &JobKey) -> Option<&mut JobEntry> {
        let entry = self.jobs.get_mut(key)?;
        entry.encoded = None;
        Some(entry)
    }

    /// Adds (or replaces) an entry, not encoded yet.
    pub(crate) fn insert(&mut self, key: JobKey, mut entry: JobEntry) -> Option<JobEntry> {
        entry.encoded = None;
        self.jobs.insert(key, entry)
    }

    /// Removes an entry, with its records.
    pub(crate) fn remove(&mut self, key: &JobKey) -> Option<JobEntry> {
        self.jobs.remove(key)
    }

    /// One per-job actor of `key` ended. The file does not record the
    /// count of actors: the entry's records are kept.
    pub(crate) fn task_ended(&mut self, key: &JobKey) {
        if let Some(e) = self.jobs.get_mut(key) {
            e.tasks = e.tasks.saturating_sub(1);
        }
    }

    /// Drops every entry's encoded records (what encodes them changed).
    pub(crate) fn forget_encoded(&mut self) {
        for e in self.jobs.values_mut() {
            e.encoded = None;
        }
    }

    /// Visits every entry's records in key order, encoding with `encode`
    /// those of the entries changed since their last encoding (and
    /// keeping them). Returns how many were encoded.
    pub(crate) fn visit_encoded<E>(
        &mut self,
        mut encode: impl FnMut(&JobKey, &JobEntry) -> Result<JobRecords, E>,
        mut visit: impl FnMut(&JobRecords),
    ) -> Result<usize, E> {
        let mut count = 0;
        for (key, e) in self.jobs.iter_mut() {
            if e.encoded.is_none() {
                e.encoded = Some(encode(key, e)?);
                count += 1;
            }
            if let Some(records) = &e.encoded {
                visit(records);
            }
        }
        Ok(count)
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
    pub standby_resources: Vec<StandbyRecord>,
}

impl Unloaded {
    /// Number of records kept aside.
    pub(crate) fn len(&self) -> usize {
        self.launched.len()
            + self.pending.len()
            + self.to_decommission.len()
            + self.standby_resources.len()
    }
}
