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
use crate::untrusted::untrusted;
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
                             "error" => %untrusted(&e));
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    // The `testing` feature is on in every test build (dev-dependency).
    use super::*;
    use crate::secret::Secret;
    use crate::testing::{null_logger, FakePaas, World};
    use proptest::prelude::*;
    use serde_json::json;
    use std::rc::Rc;

    /// What the file keeps of an entry (the rest is the supervisor's).
    type Kept = (
        Phase,
        String,
        Value,
        f64,
        u64,
        Option<(String, String, f64, bool, Value)>,
        Option<String>,
        Option<String>,
        bool,
    );

    fn kept(e: &JobEntry) -> Kept {
        (
            e.phase,
            e.job.token.expose().to_string(),
            (*e.job.payload).clone(),
            e.expected_weight,
            e.trace_offset,
            e.resource.as_ref().map(|r| {
                (
                    r.id.clone(),
                    r.name.clone(),
                    r.weight,
                    r.launched,
                    r.detail.clone(),
                )
            }),
            e.resource_name.clone(),
            e.failure.clone(),
            e.trace_appended,
        )
    }

    /// An entry in a phase the file records as such, with what that phase
    /// has (a resource, a `creating` name, a failure).
    fn entry(job_id: i64, phase_pick: u8, weight: u8, offset: u64, appended: bool) -> JobEntry {
        let resource = |launched| Resource {
            id: format!("app-{job_id}"),
            name: format!("hpd-job-r-{job_id}"),
            weight: f64::from(weight) / 4.0,
            launched,
            detail: json!({ "job_id": job_id }),
        };
        let payload = Arc::new(json!({"id": job_id, "job_info": {"project_id": 9}}));
        let (phase, payload) = match phase_pick % 7 {
            0 => (Phase::Acquired, payload),
            1 => (Phase::Provisioning, payload),
            2 => (Phase::Provisioned, payload),
            3 => (Phase::Launched, payload),
            4 => (Phase::LaunchFailed, payload),
            5 => (Phase::Started, Arc::new(Value::Null)),
            _ => (Phase::Decommissioning, Arc::new(Value::Null)),
        };
        let job = Job::from_handle(job_id, Secret::new(format!("tok-{job_id}")), payload);
        let mut e = JobEntry::new(job, phase, f64::from(weight) / 2.0);
        e.trace_offset = offset;
        match phase {
            Phase::Provisioning => e.resource_name = Some(format!("hpd-job-r-{job_id}")),
            Phase::Provisioned => e.resource = Some(resource(false)),
            Phase::Launched | Phase::Started | Phase::Decommissioning => {
                e.resource = Some(resource(true))
            }
            Phase::LaunchFailed => {
                e.failure = Some(format!("failure of {job_id}"));
                e.trace_appended = appended;
                if appended {
                    e.resource = Some(resource(false));
                }
            }
            _ => {}
        }
        e
    }

    fn round_trip(
        jobs: &BTreeMap<JobKey, JobEntry>,
        unloaded: &Unloaded,
    ) -> (Snapshot, BTreeMap<JobKey, JobEntry>, Unloaded) {
        let world = World::new();
        let paas: Vec<Rc<FakePaas>> = vec![
            FakePaas::new(world.clone(), "ra", 1.0),
            FakePaas::new(world, "rb", 1.0),
        ];
        let refs = [
            RunnerRef {
                name: "ra",
                paas: &*paas[0],
            },
            RunnerRef {
                name: "rb",
                paas: &*paas[1],
            },
        ];
        let records = to_records(jobs, &refs, unloaded, Vec::new());
        // Through the file format, as a write and a load would.
        let bytes = serde_json::to_vec(&records).expect("serialize");
        let read: Snapshot = serde_json::from_slice(&bytes).expect("deserialize");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (table, kept_aside) = rt.block_on(load(read, &refs, &null_logger()));
        (records, table, kept_aside)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn the_job_table_survives_the_state_file(
            picks in proptest::collection::btree_map(
                (0usize..2, 1i64..500),
                (any::<u8>(), 1u8..16, 0u64..10_000, any::<bool>()),
                0..24,
            )
        ) {
            let jobs: BTreeMap<JobKey, JobEntry> = picks
                .iter()
                .map(|(&(runner, job_id), &(phase, weight, offset, appended))| {
                    (JobKey { runner, job_id }, entry(job_id, phase, weight, offset, appended))
                })
                .collect();
            let (_, table, kept_aside) = round_trip(&jobs, &Unloaded::default());
            prop_assert_eq!(&kept_aside, &Unloaded::default());
            let before: Vec<_> = jobs.iter().map(|(k, e)| (*k, kept(e))).collect();
            let after: Vec<_> = table.iter().map(|(k, e)| (*k, kept(e))).collect();
            prop_assert_eq!(before, after);
        }
    }

    #[test]
    fn records_of_an_unknown_runner_are_written_back_untouched() {
        let handle = HandleRecord {
            runner_name: "gone".into(),
            job_id: 3,
            token: Secret::new("t"),
            trace_offset: 5,
            expected_weight: 1.0,
            paas_resource: Some(json!({"app_id": "app-3", "name": "hpd-job-gone-3"})),
        };
        let unloaded = Unloaded {
            launched: vec![handle.clone()],
            pending: vec![PendingRecord {
                handle: HandleRecord {
                    job_id: 4,
                    ..handle.clone()
                },
                job_data: Arc::new(json!({"id": 4})),
            }],
            to_decommission: vec![HandleRecord {
                job_id: 5,
                ..handle
            }],
        };
        let (records, table, kept_aside) = round_trip(&BTreeMap::new(), &unloaded);
        assert!(table.is_empty());
        assert_eq!(kept_aside, unloaded);
        assert_eq!(records.len(), 3);
    }
}
