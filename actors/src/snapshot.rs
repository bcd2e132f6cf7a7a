//! The job table and the state file, both ways: [`to_records`] writes the
//! table as the file records it (the snapshot of every write), [`load`]
//! rebuilds the table from a loaded file, per the phase each job was in.
//! Records no configured runner can take (unknown runner, resource that
//! does not load) are kept aside ([`Unloaded`]) and written back untouched.

use crate::job::{Phase, Section};
use crate::job_table::{JobEntry, Unloaded};
use crate::ports::{Job, Paas, Resource};
use crate::quota::JobKey;
use crate::state::{
    CreatingRecord, FailureRecord, HandleRecord, PendingRecord, Snapshot, UncertainRecord,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the snapshot needs of one runner: its unique name and its PAAS
/// (which dumps and loads its resources).
#[derive(Clone, Copy)]
pub(crate) struct RunnerRef<'a> {
    pub name: &'a str,
    pub paas: &'a dyn Paas,
}

/// The state as the file records it: the job table (`runners[key.runner]`
/// names each job's runner), the records kept aside, and the operations
/// in flight (a forced stop only).
pub(crate) fn to_records(
    jobs: &BTreeMap<JobKey, JobEntry>,
    runners: &[RunnerRef<'_>],
    unloaded: &Unloaded,
    uncertain: Vec<UncertainRecord>,
) -> Snapshot {
    let mut snap = Snapshot::default();
    for (key, e) in jobs {
        let Some(runner) = runners.get(key.runner) else {
            continue;
        };
        let Some(section) = e.phase.section(e.resource.is_some()) else {
            continue;
        };
        let handle = HandleRecord {
            runner_name: runner.name.to_string(),
            job_id: key.job_id,
            token: e.job.token.clone(),
            trace_offset: e.trace_offset,
            expected_weight: e.expected_weight,
            paas_resource: e.resource.as_ref().map(|r| runner.paas.dump_resource(r)),
        };
        if e.phase == Phase::Provisioning && e.resource.is_none() {
            if let Some(name) = &e.resource_name {
                snap.creating.push(CreatingRecord {
                    runner_name: handle.runner_name.clone(),
                    job_id: key.job_id,
                    resource_name: name.clone(),
                });
            }
        }
        if e.phase == Phase::LaunchFailed {
            snap.launch_failures.push(FailureRecord {
                runner_name: handle.runner_name.clone(),
                job_id: key.job_id,
                message: e.failure.clone().unwrap_or_default(),
                trace_appended: e.trace_appended,
            });
        }
        match section {
            Section::Pending => snap.pending.push(PendingRecord {
                handle,
                job_data: e.job.payload.clone(),
            }),
            Section::Launched => snap.launched.push(handle),
            Section::ToDecommission => snap.to_decommission.push(handle),
        }
    }
    snap.launched.extend(unloaded.launched.iter().cloned());
    snap.pending.extend(unloaded.pending.iter().cloned());
    snap.to_decommission
        .extend(unloaded.to_decommission.iter().cloned());
    snap.uncertain = uncertain;
    snap
}

/// One record of the three sections of the file.
enum Saved {
    Launched(HandleRecord),
    Pending(PendingRecord),
    ToDecommission(HandleRecord),
}

impl Saved {
    fn handle(&self) -> &HandleRecord {
        match self {
            Saved::Launched(h) | Saved::ToDecommission(h) => h,
            Saved::Pending(p) => &p.handle,
        }
    }

    fn keep_aside(self, unloaded: &mut Unloaded) {
        match self {
            Saved::Launched(h) => unloaded.launched.push(h),
            Saved::Pending(p) => unloaded.pending.push(p),
            Saved::ToDecommission(h) => unloaded.to_decommission.push(h),
        }
    }
}

/// The job table of a loaded state, and the records no runner could take.
pub(crate) async fn load(
    snapshot: Snapshot,
    runners: &[RunnerRef<'_>],
    logger: &slog::Logger,
) -> (BTreeMap<JobKey, JobEntry>, Unloaded) {
    let by_name: HashMap<&str, usize> = runners
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name, i))
        .collect();
    let creating: HashMap<(String, i64), String> = snapshot
        .creating
        .into_iter()
        .map(|c| ((c.runner_name, c.job_id), c.resource_name))
        .collect();
    let failures: HashMap<(String, i64), (String, bool)> = snapshot
        .launch_failures
        .into_iter()
        .map(|f| ((f.runner_name, f.job_id), (f.message, f.trace_appended)))
        .collect();
    let saved = (snapshot.launched.into_iter().map(Saved::Launched))
        .chain(snapshot.pending.into_iter().map(Saved::Pending))
        .chain(
            snapshot
                .to_decommission
                .into_iter()
                .map(Saved::ToDecommission),
        );
    let empty = Arc::new(Value::Null);
    let mut jobs = BTreeMap::new();
    let mut unloaded = Unloaded::default();
    for record in saved {
        let h = record.handle();
        let Some((i, resource)) = resolve(h, &by_name, runners, logger).await else {
            record.keep_aside(&mut unloaded);
            continue;
        };
        let id = (h.runner_name.clone(), h.job_id);
        // The Python format keeps a payload for pending jobs only.
        let (phase, payload) = match &record {
            Saved::Launched(_) => (Phase::Started, empty.clone()),
            Saved::ToDecommission(_) if resource.is_none() => {
                slog::warn!(logger, "nothing to decommission for a job without resource";
                            "runner" => &h.runner_name, "job_id" => h.job_id);
                continue;
            }
            Saved::ToDecommission(_) => (Phase::Decommissioning, empty.clone()),
            Saved::Pending(p) => {
                let phase = if failures.contains_key(&id) {
                    Phase::LaunchFailed
                } else {
                    match &resource {
                        Some(r) if r.launched => Phase::Launched,
                        Some(_) => Phase::Provisioned,
                        None if creating.contains_key(&id) => Phase::Provisioning,
                        None => Phase::Acquired,
                    }
                };
                (phase, p.job_data.clone())
            }
        };
        let job = Job::from_handle(h.job_id, h.token.clone(), payload);
        let mut e = JobEntry::new(job, phase, h.expected_weight);
        e.trace_offset = h.trace_offset;
        e.resource = resource;
        if let Saved::Pending(_) = record {
            e.resource_name = creating.get(&id).cloned();
            if let Some((message, appended)) = failures.get(&id) {
                e.failure = Some(message.clone());
                e.trace_appended = *appended;
            }
        }
        let key = JobKey {
            runner: i,
            job_id: id.1,
        };
        if jobs.insert(key, e).is_some() {
            slog::warn!(logger, "job listed twice in the state; the last entry wins";
                        "job_id" => key.job_id);
        }
    }
    (jobs, unloaded)
}

/// The runner index of a record and its loaded resource, or `None` when no
/// runner can take it (kept aside).
async fn resolve(
    h: &HandleRecord,
    by_name: &HashMap<&str, usize>,
    runners: &[RunnerRef<'_>],
    logger: &slog::Logger,
) -> Option<(usize, Option<Resource>)> {
    let Some(&i) = by_name.get(h.runner_name.as_str()) else {
        slog::error!(logger, "state entry of an unknown runner kept as is";
                     "runner" => &h.runner_name, "job_id" => h.job_id);
        return None;
    };
    let runner = runners.get(i)?;
    match &h.paas_resource {
        None => Some((i, None)),
        Some(v) => match runner.paas.load_resource(v).await {
            Ok(r) => Some((i, Some(r))),
            Err(e) => {
                slog::error!(logger, "cannot load a saved resource; entry kept as is";
                             "runner" => &h.runner_name, "job_id" => h.job_id,
                             "error" => %e);
                None
            }
        },
    }
}
