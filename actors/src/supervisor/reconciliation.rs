//! Reconciliation passes: the PAAS listing against the job table (planned
//! by [`crate::reconcile`]); vanished entries are forgotten, unknown
//! resources adopted or decommissioned.

use super::*;
use crate::secret::Secret;
use crate::untrusted::untrusted;

impl Supervisor {
    /// A pass per runner; a runner whose previous pass still runs is
    /// skipped, and nothing happens while draining.
    pub(super) fn reconcile_all(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        for i in 0..self.runners.len() {
            self.start_reconcile(i, ctx);
        }
    }

    pub(super) fn start_reconcile(&mut self, i: usize, ctx: &mut Context<Self>) {
        let recorded: HashSet<String> = self
            .jobs
            .iter()
            .filter(|(k, _)| k.runner == i)
            .filter_map(|(_, e)| e.resource.as_ref().map(|r| r.id.clone()))
            .collect();
        let Some(runner) = self.runners.get_mut(i) else {
            return;
        };
        let Some(poller) = runner.poller.clone() else {
            return;
        };
        if runner.reconcile.is_some() {
            slog::debug!(runner.logger, "reconciliation: previous pass still running");
            return;
        }
        runner.reconcile = Some(ReconcilePass {
            recorded,
            forgotten: HashSet::new(),
        });
        let log = runner.logger.clone();
        ctx.spawn(
            async move { answer(poller.send(ListResources), "poller", &log).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let res = res
                        .unwrap_or_else(|| Err(PaasError::transient("list", "poller unreachable")));
                    act.on_listed(i, res, ctx);
                }),
        );
    }

    pub(super) fn end_reconcile(&mut self, i: usize) -> Option<ReconcilePass> {
        self.observe(Transition::ReconcilePassEnded);
        self.runners.get_mut(i).and_then(|r| r.reconcile.take())
    }

    pub(super) fn on_listed(
        &mut self,
        i: usize,
        res: Result<Listing, PaasError>,
        ctx: &mut Context<Self>,
    ) {
        let log = self.runner_log(i);
        self.note_first_listing(i);
        if self.draining {
            self.end_reconcile(i);
            return;
        }
        let Listing {
            resources: listed,
            skipped,
        } = match res {
            Ok(l) => l,
            Err(e) => {
                // An empty or partial view must not make anything forgotten.
                slog::warn!(log, "reconciliation: cannot list the resources; nothing decided";
                            "error" => %untrusted(&e));
                self.end_reconcile(i);
                return;
            }
        };
        let Some(paas) = self.runners.get(i).map(|r| r.paas.clone()) else {
            return;
        };
        let (recorded, forgotten) = match self.runners.get(i).and_then(|r| r.reconcile.as_ref()) {
            Some(p) => (p.recorded.clone(), p.forgotten.clone()),
            None => (HashSet::new(), HashSet::new()),
        };
        let tracked = self.tracked_for_listing(i, &recorded, &skipped, &*paas);
        let name_of = |id: i64| paas.resource_name(id);
        // A standby resource reused by another runner's job is tracked
        // there: ours, not unknown.
        let elsewhere: HashSet<&str> = self
            .jobs
            .iter()
            .filter(|(k, _)| k.runner != i)
            .filter_map(|(_, e)| e.resource.as_ref().map(|r| r.id.as_str()))
            .collect();
        let listed: Vec<Resource> = listed
            .into_iter()
            .filter(|r| !elsewhere.contains(r.id.as_str()))
            .collect();
        let listed_count = listed.len();
        let mut unknown = Vec::new();
        for d in plan(listed, &tracked, name_of) {
            match d {
                Decision::Foreign { resource } => {
                    slog::warn!(log, "reconciliation: resource with this runner's prefix but \
                                      not a name it gives; left alone";
                                "app" => resource.id, "name" => resource.name);
                    self.observe(Transition::ResourceLeftAlone);
                }
                Decision::Vanished { job_id, app } => {
                    let key = JobKey { runner: i, job_id };
                    let phase = self.jobs.get(&key).map_or("", |e| e.phase.as_str());
                    slog::warn!(log, "reconciliation: the resource no longer exists on the PAAS; \
                                      forgetting the job and freeing its weight \
                                      (a job still running is ended by the coordinator's timeout)";
                                "job_id" => job_id, "app" => app, "phase" => phase);
                    self.forget(key, JobEnd::Vanished);
                    self.mark_dirty(ctx);
                }
                Decision::Unknown { job_id, resource } => {
                    if forgotten.contains(&resource.name) {
                        slog::debug!(log, "reconciliation: resource decommissioned meanwhile";
                                     "job_id" => job_id, "app" => resource.id);
                    } else {
                        unknown.push((job_id, resource));
                    }
                }
                nothing_to_do => log_left_as_is(&log, nothing_to_do),
            }
        }
        slog::info!(log, "reconciliation: resources listed";
                    "listed" => listed_count, "unknown" => unknown.len());
        self.schedule_polls(ctx);
        self.identify_unknown(i, unknown, log, ctx);
    }

    /// Runner `i`'s jobs as [`plan`] sees them. A resource is judged only
    /// when it was `recorded` before the listing was requested.
    fn tracked_for_listing(
        &self,
        i: usize,
        recorded: &HashSet<String>,
        skipped: &[String],
        paas: &dyn Paas,
    ) -> Vec<Tracked> {
        self.jobs
            .iter()
            .filter(|(k, _)| k.runner == i)
            .map(|(k, e)| Tracked {
                job_id: k.job_id,
                resource: e.resource.as_ref().map(|r| (r.id.clone(), r.name.clone())),
                busy: e.tasks > 0,
                // A resource of a scope the listing skipped (or of an
                // unknown scope, when some were skipped) is not judged.
                // A resource named by another runner (a standby resource
                // it reused) is not in this runner's listing.
                recorded_before_listing: e.resource.as_ref().is_some_and(|r| {
                    recorded.contains(&r.id)
                        && crate::reconcile::job_id_of(&r.name, |id| paas.resource_name(id))
                            .is_some()
                        && (skipped.is_empty()
                            || paas
                                .resource_scope(r)
                                .is_some_and(|scope| !skipped.contains(&scope)))
                }),
            })
            .collect()
    }

    /// Has the poller read back the jobs of runner `i`'s `unknown`
    /// resources, then decides on each ([`Self::on_identified`]); the pass
    /// ends then (at once when there is nothing to identify).
    fn identify_unknown(
        &mut self,
        i: usize,
        unknown: Vec<(i64, Resource)>,
        log: slog::Logger,
        ctx: &mut Context<Self>,
    ) {
        if unknown.is_empty() {
            self.end_reconcile(i);
            return;
        }
        let Some(poller) = self.runners.get(i).and_then(|r| r.poller.clone()) else {
            self.end_reconcile(i);
            return;
        };
        let request = poller.send(IdentifyJobs { resources: unknown });
        ctx.spawn(
            async move { answer(request, "poller", &log).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.end_reconcile(i);
                    // No answer: nothing identified; the next pass decides.
                    if let Some(found) = res {
                        act.on_identified(i, found, ctx);
                    }
                }),
        );
    }

    pub(super) fn on_identified(
        &mut self,
        i: usize,
        found: Vec<(i64, Resource, Identified)>,
        ctx: &mut Context<Self>,
    ) {
        if self.draining {
            return;
        }
        let keep =
            self.settings.keep_finished_resources || !self.settings.decommission_launch_failures;
        for (job_id, resource, identified) in found {
            let key = JobKey { runner: i, job_id };
            let log = self
                .job_log(key)
                .new(slog::o!("app" => resource.id.clone()));
            if self.jobs.contains_key(&key) {
                slog::debug!(log, "reconciliation: the job got tracked meanwhile");
                continue;
            }
            match identified {
                Identified::Running(job) => {
                    // The resource's detail says where it lives (the Clever
                    // organisation, for clever-docker).
                    slog::warn!(log, "reconciliation: unknown resource whose job still runs \
                                      at the coordinator; adopting it";
                                "launched" => resource.launched,
                                "weight" => resource.weight,
                                "where" => %resource.detail);
                    self.adopt(key, job, resource, ctx);
                }
                Identified::NotOurs {
                    answered_job,
                    answered_runner,
                    ..
                } => self.leave_not_ours(i, &resource, (answered_job, answered_runner), &log),
                Identified::Finished(_) | Identified::NoJob if keep => {
                    slog::warn!(
                        log,
                        "reconciliation: unknown resource left alone, as the \
                                      configuration keeps resources \
                                      (paas_finished_jobs_keep_resources / \
                                      paas_decommission_launch_failures)"
                    );
                    self.observe(Transition::ResourceLeftAlone);
                }
                Identified::Finished(job) => {
                    slog::warn!(
                        log,
                        "reconciliation: unknown resource whose job is over; \
                                      decommissioning it"
                    );
                    self.decommission_unknown(key, job, resource, ctx);
                }
                Identified::NoJob => {
                    slog::warn!(
                        log,
                        "reconciliation: unknown resource holding no job the \
                                      runner can read back; decommissioning it"
                    );
                    // No job to read back: the handle keeps no token.
                    let job = Job::from_handle(job_id, Secret::new(""), self.empty_payload.clone());
                    self.decommission_unknown(key, job, resource, ctx);
                }
                Identified::Failed(why) => {
                    slog::warn!(log, "reconciliation: cannot identify the job of an unknown \
                                      resource; the next pass decides";
                                "error" => %untrusted(&why));
                }
            }
        }
        self.schedule_polls(ctx);
    }

    /// Leaves alone a resource named like runner `i`'s whose running job
    /// the coordinator does not show as this runner's (it `answered` the
    /// job and runner ids it did); warns once per resource.
    fn leave_not_ours(
        &mut self,
        i: usize,
        resource: &Resource,
        answered: (Option<i64>, Option<i64>),
        log: &slog::Logger,
    ) {
        let (answered_job, answered_runner) = answered;
        if self.not_ours.insert((i, resource.id.clone())) {
            slog::warn!(log, "reconciliation: resource named like this runner's \
                              holds a running job that the coordinator does not \
                              show as this runner's job of that id; neither \
                              counted nor deleted";
                        "answered_job" => ?answered_job,
                        "answered_runner" => ?answered_runner,
                        "own_runner" => ?self.runners.get(i)
                            .and_then(|r| r.coordinator.runner_id()),
                        "where" => %resource.detail);
        }
    }

    /// Tracks a resource found on the PAAS whose job still runs.
    pub(super) fn adopt(
        &mut self,
        key: JobKey,
        mut job: Job,
        resource: Resource,
        ctx: &mut Context<Self>,
    ) {
        let phase = if resource.launched {
            // Saved in `launched`, without payload.
            job.payload = self.empty_payload.clone();
            Phase::Started
        } else {
            Phase::Provisioned
        };
        let weight = resource.weight;
        self.ledger
            .track(key, weight, WeightKind::Actual, phase.is_launching());
        let entry = JobEntry::new(job, phase, weight);
        self.track_found(key, entry, resource, JobOrigin::Adopted);
        self.mark_dirty(ctx);
        if phase == Phase::Started {
            self.start_checks(key, ctx);
        }
        if phase == Phase::Provisioned {
            // Write-ahead: the resource is on disk before `prepare`.
            self.after_persist(ctx, move |act, _| {
                let idle_and_provisioned = act
                    .jobs
                    .get(&key)
                    .is_some_and(|e| e.tasks == 0 && e.phase == Phase::Provisioned);
                if !act.draining && idle_and_provisioned {
                    act.spawn_launcher(key);
                }
            });
        }
    }

    /// Tracks a resource found on the PAAS that nobody needs, and deletes it
    /// (through `to_decommission`, like any other).
    pub(super) fn decommission_unknown(
        &mut self,
        key: JobKey,
        job: Job,
        resource: Resource,
        ctx: &mut Context<Self>,
    ) {
        let weight = resource.weight;
        self.ledger.track(key, weight, WeightKind::Actual, false);
        let entry = JobEntry::new(job, Phase::Finished, weight);
        self.track_found(key, entry, resource, JobOrigin::Unneeded);
        self.dispose(key, false, ctx);
    }

    /// Puts a job found through its resource on the PAAS (not created by
    /// this process) in the job table.
    fn track_found(
        &mut self,
        key: JobKey,
        mut entry: JobEntry,
        resource: Resource,
        origin: JobOrigin,
    ) {
        entry.resource = Some(resource.clone());
        self.add_job(key, entry, origin);
        self.record_resource(key, resource);
    }
}

/// Logs a decision that leaves the job table as it is (a resource that
/// matches, one being created, a duplicate left for later).
fn log_left_as_is(log: &slog::Logger, decision: Decision) {
    match decision {
        Decision::Matched { job_id, app } => {
            slog::debug!(log, "reconciliation: resource matches the state";
                         "job_id" => job_id, "app" => app);
        }
        Decision::BeingCreated { job_id, app } => {
            slog::info!(log, "reconciliation: resource of a job being launched; \
                              left to its launcher";
                        "job_id" => job_id, "app" => app);
        }
        Decision::Duplicate { job_id, resource } => {
            slog::warn!(log, "reconciliation: a second resource carries the name of a \
                              tracked job's; decommissioned once the job is done";
                        "job_id" => job_id, "app" => resource.id,
                        "name" => resource.name);
        }
        Decision::Foreign { .. } | Decision::Vanished { .. } | Decision::Unknown { .. } => {}
    }
}
