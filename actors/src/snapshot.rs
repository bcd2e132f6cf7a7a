//! The job table and the state file, both ways: [`to_doc`] writes the
//! table as the file records it (the content of every write), each job's
//! records encoded once and kept until the job changes
//! ([`crate::job_table::JobTable`]); [`load`] rebuilds the table from a
//! loaded file, per the phase each job was in. Records no configured
//! runner can take (unknown runner, resource that does not load) are kept
//! aside ([`Unloaded`]) and written back untouched.

use crate::job::{Phase, Section};
use crate::job_table::{JobEntry, JobRecords, JobTable, Unloaded};
use crate::ports::{Job, Paas, Resource};
use crate::quota::JobKey;
use crate::state::{
    CreatingRecord, FailureRecord, HandleRecord, PendingRecord, Snapshot, StandbyRecord,
    UncertainRecord,
};
use crate::state_doc::{Encoded, StateDoc};
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

/// The records of one job, before encoding.
#[derive(Default)]
struct EntryRecords {
    main: Option<Saved>,
    creating: Option<CreatingRecord>,
    failure: Option<FailureRecord>,
}

/// The records the file keeps of one entry of `runner`.
fn entry_records(key: &JobKey, e: &JobEntry, runner: RunnerRef<'_>) -> EntryRecords {
    let mut out = EntryRecords::default();
    let Some(section) = e.phase.section(e.resource.is_some()) else {
        return out;
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
            out.creating = Some(CreatingRecord {
                runner_name: handle.runner_name.clone(),
                job_id: key.job_id,
                resource_name: name.clone(),
            });
        }
    }
    if e.phase == Phase::LaunchFailed {
        out.failure = Some(FailureRecord {
            runner_name: handle.runner_name.clone(),
            job_id: key.job_id,
            message: e.failure.clone().unwrap_or_default(),
            trace_appended: e.trace_appended,
        });
    }
    out.main = Some(match section {
        Section::Pending => Saved::Pending(PendingRecord {
            handle,
            job_data: e.job.payload.clone(),
        }),
        Section::Launched => Saved::Launched(handle),
        Section::ToDecommission => Saved::ToDecommission(handle),
        Section::Standby => Saved::Standby(StandbyRecord {
            handle,
            since: e.standby_since.map(unix_seconds),
            use_count: e.uses,
        }),
    });
    out
}

/// A wall-clock time in seconds since the Unix epoch (0 before it).
fn unix_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The wall-clock time of `secs` since the Unix epoch; `None` if it is no
/// time (negative, not finite, out of range).
fn from_unix_seconds(secs: f64) -> Option<std::time::SystemTime> {
    if !(secs.is_finite() && secs >= 0.0) {
        return None;
    }
    let d = std::time::Duration::try_from_secs_f64(secs).ok()?;
    std::time::UNIX_EPOCH.checked_add(d)
}

/// The encoded records of one entry; none when its runner is unknown.
pub(crate) fn encode_entry(
    key: &JobKey,
    e: &JobEntry,
    runner: Option<RunnerRef<'_>>,
) -> Result<JobRecords, serde_json::Error> {
    let Some(runner) = runner else {
        return Ok(JobRecords::default());
    };
    let records = entry_records(key, e, runner);
    let main = match &records.main {
        None => None,
        Some(Saved::Launched(h)) => Some((Section::Launched, Encoded::new(h)?)),
        Some(Saved::Pending(p)) => Some((Section::Pending, Encoded::new(p)?)),
        Some(Saved::ToDecommission(h)) => Some((Section::ToDecommission, Encoded::new(h)?)),
        Some(Saved::Standby(h)) => Some((Section::Standby, Encoded::new(h)?)),
    };
    Ok(JobRecords {
        main,
        creating: records.creating.as_ref().map(Encoded::new).transpose()?,
        failure: records.failure.as_ref().map(Encoded::new).transpose()?,
    })
}

/// The state as the file records it: the job table (`runners[key.runner]`
/// names each job's runner; only the entries changed since the last call
/// are encoded), the records kept aside, and the operations in flight (a
/// forced stop only). Also returns how many entries were encoded.
pub(crate) fn to_doc(
    jobs: &mut JobTable,
    runners: &[RunnerRef<'_>],
    unloaded: &Unloaded,
    uncertain: &[UncertainRecord],
) -> Result<(StateDoc, usize), serde_json::Error> {
    let mut doc = StateDoc::default();
    let encoded = jobs.visit_encoded(
        |key, e| encode_entry(key, e, runners.get(key.runner).copied()),
        |records| {
            if let Some(c) = &records.creating {
                doc.creating.push(c.clone());
            }
            if let Some(f) = &records.failure {
                doc.launch_failures.push(f.clone());
            }
            if let Some((section, record)) = &records.main {
                let list = match section {
                    Section::Launched => &mut doc.launched,
                    Section::Pending => &mut doc.pending,
                    Section::ToDecommission => &mut doc.to_decommission,
                    Section::Standby => &mut doc.standby_resources,
                };
                list.push(record.clone());
            }
        },
    )?;
    let aside = Snapshot {
        launched: unloaded.launched.clone(),
        pending: unloaded.pending.clone(),
        to_decommission: unloaded.to_decommission.clone(),
        standby_resources: unloaded.standby_resources.clone(),
        uncertain: uncertain.to_vec(),
        ..Snapshot::default()
    }
    .to_doc()?;
    doc.launched.extend(aside.launched);
    doc.pending.extend(aside.pending);
    doc.to_decommission.extend(aside.to_decommission);
    doc.standby_resources.extend(aside.standby_resources);
    doc.uncertain = aside.uncertain;
    Ok((doc, encoded))
}

/// The state as the file records it, as typed records: what [`to_doc`]
/// encodes, entry by entry (its reference in tests).
#[cfg(test)]
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
        let records = entry_records(key, e, *runner);
        snap.creating.extend(records.creating);
        snap.launch_failures.extend(records.failure);
        match records.main {
            Some(Saved::Launched(h)) => snap.launched.push(h),
            Some(Saved::Pending(p)) => snap.pending.push(p),
            Some(Saved::ToDecommission(h)) => snap.to_decommission.push(h),
            Some(Saved::Standby(h)) => snap.standby_resources.push(h),
            None => {}
        }
    }
    snap.launched.extend(unloaded.launched.iter().cloned());
    snap.pending.extend(unloaded.pending.iter().cloned());
    snap.to_decommission
        .extend(unloaded.to_decommission.iter().cloned());
    snap.standby_resources
        .extend(unloaded.standby_resources.iter().cloned());
    snap.uncertain = uncertain;
    snap
}

/// One record of the sections of the file that hold jobs.
enum Saved {
    Launched(HandleRecord),
    Pending(PendingRecord),
    ToDecommission(HandleRecord),
    Standby(StandbyRecord),
}

impl Saved {
    fn handle(&self) -> &HandleRecord {
        match self {
            Saved::Launched(h) | Saved::ToDecommission(h) => h,
            Saved::Pending(p) => &p.handle,
            Saved::Standby(s) => &s.handle,
        }
    }

    fn keep_aside(self, unloaded: &mut Unloaded) {
        match self {
            Saved::Launched(h) => unloaded.launched.push(h),
            Saved::Pending(p) => unloaded.pending.push(p),
            Saved::ToDecommission(h) => unloaded.to_decommission.push(h),
            Saved::Standby(s) => unloaded.standby_resources.push(s),
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
        )
        .chain(snapshot.standby_resources.into_iter().map(Saved::Standby));
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
            Saved::Standby(_) if resource.is_none() => {
                slog::warn!(logger, "nothing on standby for a job without resource";
                            "runner" => &h.runner_name, "job_id" => h.job_id);
                continue;
            }
            Saved::Standby(_) => (Phase::Standby, empty.clone()),
            Saved::Pending(p) => {
                let failed = failures.contains_key(&id);
                let phase = pending_phase(resource.as_ref(), failed, creating.contains_key(&id));
                (phase, p.job_data.clone())
            }
        };
        let job = Job::from_handle(h.job_id, h.token.clone(), payload);
        let mut e = JobEntry::new(job, phase, h.expected_weight);
        e.trace_offset = h.trace_offset;
        e.resource = resource;
        if let Saved::Standby(s) = &record {
            e.uses = s.use_count.max(1);
            // The Python runner 1.1 does not say since when: from now.
            e.standby_since = Some(
                s.since
                    .and_then(from_unix_seconds)
                    .unwrap_or_else(std::time::SystemTime::now),
            );
        }
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

/// The phase of a `pending` record: a launch `failed` (to report), or as
/// far as its launch went: launched, provisioned, a `creating` marker
/// (the create may have happened), or nothing yet.
fn pending_phase(resource: Option<&Resource>, failed: bool, creating: bool) -> Phase {
    if failed {
        return Phase::LaunchFailed;
    }
    match resource {
        Some(r) if r.launched => Phase::Launched,
        Some(_) => Phase::Provisioned,
        None if creating => Phase::Provisioning,
        None => Phase::Acquired,
    }
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
            credential: None,
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

    /// Two runners, `ra` and `rb`, on fake PAASes.
    struct Runners {
        paas: Vec<Rc<FakePaas>>,
    }

    impl Runners {
        fn new() -> Self {
            let world = World::new();
            Runners {
                paas: vec![
                    FakePaas::new(world.clone(), "ra", 1.0),
                    FakePaas::new(world, "rb", 1.0),
                ],
            }
        }

        fn refs(&self) -> [RunnerRef<'_>; 2] {
            [
                RunnerRef {
                    name: "ra",
                    paas: &*self.paas[0],
                },
                RunnerRef {
                    name: "rb",
                    paas: &*self.paas[1],
                },
            ]
        }
    }

    /// What a write of `jobs` puts in the file, checked against the typed
    /// records encoded from scratch; and the number of entries encoded.
    fn write(jobs: &mut JobTable, refs: &[RunnerRef<'_>], unloaded: &Unloaded) -> (Vec<u8>, usize) {
        let (doc, encoded) = to_doc(jobs, refs, unloaded, &[]).expect("encode");
        let bytes = doc.to_json();
        let fresh = to_records(jobs, refs, unloaded, Vec::new());
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&fresh.to_json().expect("serialize")),
            "the kept records differ from the table"
        );
        assert_eq!(doc.len(), fresh.len());
        (bytes, encoded)
    }

    fn load_bytes(bytes: &[u8], refs: &[RunnerRef<'_>]) -> (BTreeMap<JobKey, JobEntry>, Unloaded) {
        let read = Snapshot::from_json(bytes).expect("deserialize");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(load(read, refs, &null_logger()))
    }

    /// Written (through the encoded records) and read back.
    fn round_trip(
        jobs: BTreeMap<JobKey, JobEntry>,
        unloaded: &Unloaded,
    ) -> (usize, BTreeMap<JobKey, JobEntry>, Unloaded) {
        let runners = Runners::new();
        let refs = runners.refs();
        let mut table = JobTable::from(jobs);
        let (bytes, _) = write(&mut table, &refs, unloaded);
        let written = Snapshot::from_json(&bytes).expect("deserialize").len();
        let (read, kept_aside) = load_bytes(&bytes, &refs);
        (written, read, kept_aside)
    }

    /// A change to the job table between two writes.
    #[derive(Clone, Debug)]
    enum Change {
        /// A field the file records, changed in place.
        Offset(usize, u64),
        /// The entry replaced by one in another phase.
        Replace(usize, u8),
        /// A field the file does not record, changed in place.
        Tasks(usize),
        /// A per-job actor ended: nothing recorded changed.
        TaskEnded(usize),
        Remove(usize),
        Insert(i64, u8),
        /// The records of every entry dropped (a runner's ports changed).
        ForgetAll,
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (any::<usize>(), 0u64..10_000).prop_map(|(i, o)| Change::Offset(i, o)),
            (any::<usize>(), any::<u8>()).prop_map(|(i, p)| Change::Replace(i, p)),
            any::<usize>().prop_map(Change::Tasks),
            any::<usize>().prop_map(Change::TaskEnded),
            any::<usize>().prop_map(Change::Remove),
            (500i64..600, any::<u8>()).prop_map(|(id, p)| Change::Insert(id, p)),
            Just(Change::ForgetAll),
        ]
    }

    /// Applies `c`; returns the key it changed, if any.
    fn apply(table: &mut JobTable, c: &Change) -> Option<JobKey> {
        let nth = |table: &JobTable, i: usize| {
            (!table.is_empty()).then(|| *table.keys().nth(i % table.len()).expect("in range"))
        };
        match *c {
            Change::Offset(i, offset) => {
                let key = nth(table, i)?;
                table.get_mut(&key)?.trace_offset = offset;
                Some(key)
            }
            Change::Replace(i, phase) => {
                let key = nth(table, i)?;
                *table.get_mut(&key)? = entry(key.job_id, phase, 3, 7, phase % 2 == 0);
                Some(key)
            }
            Change::Tasks(i) => {
                let key = nth(table, i)?;
                table.get_mut(&key)?.tasks += 1;
                Some(key)
            }
            Change::TaskEnded(i) => {
                let key = nth(table, i)?;
                table.task_ended(&key);
                None
            }
            Change::Remove(i) => {
                let key = nth(table, i)?;
                table.remove(&key);
                None
            }
            Change::Insert(job_id, phase) => {
                let key = JobKey {
                    runner: (phase % 2) as usize,
                    job_id,
                };
                table.insert(key, entry(job_id, phase, 5, 0, false));
                Some(key)
            }
            Change::ForgetAll => {
                table.forget_encoded();
                None
            }
        }
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
            let build = || -> BTreeMap<JobKey, JobEntry> {
                picks
                    .iter()
                    .map(|(&(runner, job_id), &(phase, weight, offset, appended))| {
                        (JobKey { runner, job_id }, entry(job_id, phase, weight, offset, appended))
                    })
                    .collect()
            };
            let jobs = build();
            let before: Vec<_> = jobs.iter().map(|(k, e)| (*k, kept(e))).collect();
            let (_, table, kept_aside) = round_trip(jobs, &Unloaded::default());
            prop_assert_eq!(&kept_aside, &Unloaded::default());
            let after: Vec<_> = table.iter().map(|(k, e)| (*k, kept(e))).collect();
            prop_assert_eq!(before, after);
        }

        /// Each write re-encodes only the entries changed since the last
        /// one, and writes what encoding the whole table afresh writes.
        #[test]
        fn kept_records_follow_every_change(
            picks in proptest::collection::btree_map(
                (0usize..2, 1i64..500),
                (any::<u8>(), 1u8..16, 0u64..10_000, any::<bool>()),
                0..16,
            ),
            rounds in proptest::collection::vec(proptest::collection::vec(change(), 0..4), 1..6),
        ) {
            let runners = Runners::new();
            let refs = runners.refs();
            let mut table = JobTable::from(
                picks
                    .iter()
                    .map(|(&(runner, job_id), &(phase, weight, offset, appended))| {
                        (JobKey { runner, job_id }, entry(job_id, phase, weight, offset, appended))
                    })
                    .collect::<BTreeMap<_, _>>(),
            );
            let (_, first) = write(&mut table, &refs, &Unloaded::default());
            prop_assert_eq!(first, table.len(), "the first write encodes every entry");
            for changes in rounds {
                let mut touched = std::collections::BTreeSet::new();
                let mut all = false;
                for c in &changes {
                    touched.extend(apply(&mut table, c));
                    all |= matches!(c, Change::ForgetAll);
                }
                touched.retain(|k| table.contains_key(k));
                let (bytes, encoded) = write(&mut table, &refs, &Unloaded::default());
                let expected = if all { table.len() } else { touched.len() };
                prop_assert_eq!(encoded, expected);
                let (read, _) = load_bytes(&bytes, &refs);
                let now: Vec<_> = table.iter().map(|(k, e)| (*k, kept(e))).collect();
                let back: Vec<_> = read.iter().map(|(k, e)| (*k, kept(e))).collect();
                prop_assert_eq!(now, back);
                let (_, again) = write(&mut table, &refs, &Unloaded::default());
                prop_assert_eq!(again, 0, "nothing changed: nothing encoded");
            }
        }
    }

    #[test]
    fn a_change_shows_in_the_next_write_and_a_removal_removes() {
        let runners = Runners::new();
        let refs = runners.refs();
        let ids = [(0, 1), (0, 2), (1, 3)];
        let mut table = JobTable::from(
            ids.iter()
                .map(|&(runner, job_id)| (JobKey { runner, job_id }, entry(job_id, 5, 4, 0, false)))
                .collect::<BTreeMap<_, _>>(),
        );
        let (first, encoded) = write(&mut table, &refs, &Unloaded::default());
        assert_eq!(encoded, 3);
        let (again, encoded) = write(&mut table, &refs, &Unloaded::default());
        assert_eq!((again == first, encoded), (true, 0));

        let key = JobKey {
            runner: 0,
            job_id: 2,
        };
        if let Some(e) = table.get_mut(&key) {
            e.trace_offset = 4242;
        }
        let (changed, encoded) = write(&mut table, &refs, &Unloaded::default());
        assert_eq!(encoded, 1);
        let snap = Snapshot::from_json(&changed).expect("parse");
        let offsets: Vec<_> = snap
            .launched
            .iter()
            .map(|h| (h.job_id, h.trace_offset))
            .collect();
        assert_eq!(offsets, [(1, 0), (2, 4242), (3, 0)]);

        let other = JobKey {
            runner: 1,
            job_id: 3,
        };
        table.task_ended(&other);
        let (same, encoded) = write(&mut table, &refs, &Unloaded::default());
        assert_eq!((same == changed, encoded), (true, 0), "not recorded: kept");

        table.remove(&key);
        let (removed, encoded) = write(&mut table, &refs, &Unloaded::default());
        assert_eq!(encoded, 0);
        let snap = Snapshot::from_json(&removed).expect("parse");
        let ids: Vec<_> = snap
            .launched
            .iter()
            .map(|h| (h.runner_name.as_str(), h.job_id))
            .collect();
        assert_eq!(ids, [("ra", 1), ("rb", 3)]);
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
                ..handle.clone()
            }],
            standby_resources: vec![StandbyRecord {
                handle: HandleRecord {
                    job_id: 6,
                    ..handle
                },
                since: Some(1.5e9),
                use_count: 2,
            }],
        };
        let (written, table, kept_aside) = round_trip(BTreeMap::new(), &unloaded);
        assert!(table.is_empty());
        assert_eq!(kept_aside, unloaded);
        assert_eq!(written, 4);
    }
}
