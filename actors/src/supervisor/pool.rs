//! The standby pool: a finished job's resource kept for another job of the
//! same tenant and size (its entry stays in the job table, in phase
//! `standby`, its weight in the ledger as standby), its expiry, its reuse
//! by an acquired job, its eviction to make room, and its release at a
//! finish-and-exit stop. The rules are pure, in [`crate::standby`]; the
//! weights move in the ledger ([`crate::quota`]) within one handler, so the
//! quota holds between any two messages.

use super::*;
use crate::messages::ReuseFailed;
use crate::standby::{choose, keeps, remaining, Candidate};
use crate::untrusted::untrusted;
use std::time::SystemTime;

impl Supervisor {
    /// Whether a finished job's resource goes on standby rather than to
    /// decommissioning.
    pub(super) fn keeps_on_standby(&self, key: JobKey) -> bool {
        if self.standby_released {
            return false;
        }
        let Some(e) = self.jobs.get(&key) else {
            return false;
        };
        let launched = e.resource.as_ref().is_some_and(|r| r.launched);
        let policy = self
            .runners
            .get(key.runner)
            .and_then(|r| r.settings.standby);
        e.phase == Phase::Finished && e.delete_refused.is_none() && keeps(policy, e.uses, launched)
    }

    /// Puts a finished job's resource on standby and arms its expiry.
    pub(super) fn start_standby(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        if !self.apply(key, JobEvent::StandbyStarted) {
            return;
        }
        self.ledger.put_on_standby(key);
        self.checks.remove(key);
        let empty = self.empty_payload.clone();
        let mut uses = 0;
        if let Some(e) = self.jobs.get_mut(&key) {
            e.standby_since = Some(SystemTime::now());
            e.job.payload = empty;
            uses = e.uses;
        }
        let log = self.job_log(key);
        slog::info!(log, "resource kept on standby for another job"; "use_count" => uses);
        self.arm_standby_expiry(key, ctx);
        self.mark_dirty(ctx);
    }

    /// Arms the expiry timer of a standby entry, from the time it went on
    /// standby (a restart resumes the clock).
    pub(super) fn arm_standby_expiry(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        let Some(keep) = self
            .runners
            .get(key.runner)
            .and_then(|r| r.settings.standby)
            .map(|p| p.keep)
        else {
            // A runner that keeps nothing (any more): deleted at once.
            ctx.notify(StandbyExpired { key });
            return;
        };
        let since = self.jobs.get(&key).and_then(|e| e.standby_since);
        let elapsed = since
            .and_then(|s| SystemTime::now().duration_since(s).ok())
            .unwrap_or_default();
        let wait = remaining(keep, elapsed);
        ctx.notify_later(StandbyExpired { key }, wait);
    }

    /// A standby entry's time is over: its resource is deleted, unless it
    /// was reused meanwhile or the service is stopping (it stays on
    /// standby, recorded).
    fn on_standby_expired(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        if self.draining || self.jobs.get(&key).map(|e| e.phase) != Some(Phase::Standby) {
            return;
        }
        let log = self.job_log(key);
        slog::info!(log, "standby time over: deleting the resource");
        self.decommission_standby(key, ctx);
        self.schedule_polls(ctx);
    }

    /// Sends a standby entry's resource to decommissioning (its weight
    /// stays held until it is gone).
    fn decommission_standby(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        self.ledger.evict(key);
        self.send_to_decommission(key, ctx);
    }

    /// A standby entry already evicted in the ledger goes to
    /// decommissioning (write-ahead: on disk before the delete).
    fn send_to_decommission(&mut self, key: JobKey, ctx: &mut Context<Self>) {
        if self.apply(key, JobEvent::DecommissionStarted) {
            self.mark_dirty(ctx);
            self.after_persist(ctx, move |act, _| act.spawn_decommissioner(key));
        }
    }

    /// The standby entry a job of runner `runner`, of tenant `scope` and
    /// `weight`, reuses: same known tenant, close weight, own runner's
    /// first, oldest first.
    fn reusable(&self, runner: usize, scope: Option<&str>, weight: Weight) -> Option<JobKey> {
        scope?;
        let order = self.ledger.standby_order(runner);
        let scopes: Vec<(JobKey, Option<String>, Weight)> = order
            .into_iter()
            .filter_map(|k| {
                let e = self.jobs.get(&k)?;
                let r = e.resource.as_ref()?;
                let paas = &self.runners.get(k.runner)?.paas;
                Some((k, paas.resource_scope(r), r.weight))
            })
            .collect();
        choose(
            scopes.iter().map(|(key, s, w)| Candidate {
                key: *key,
                scope: s.as_deref(),
                weight: *w,
            }),
            scope,
            weight,
        )
    }

    /// An acquired job takes a standby resource if one fits: its entry is
    /// in the table, provisioned with that resource, and its launcher
    /// started. False when none fits (nothing changed but the pledges of
    /// the poll's reservation, freed).
    pub(super) fn try_reuse(
        &mut self,
        key: JobKey,
        job: &Job,
        scope: Option<&str>,
        expected: Weight,
        ctx: &mut Context<Self>,
    ) -> bool {
        self.ledger.unpledge(key.runner);
        // Only a runner whose own resources run the service reuses.
        if self
            .runners
            .get(key.runner)
            .is_none_or(|r| r.settings.standby.is_none())
        {
            return false;
        }
        let Some(old) = self.reusable(key.runner, scope, expected) else {
            return false;
        };
        if self.ledger.claim(old, key).is_none() {
            return false;
        }
        let Some(old_entry) = self.jobs.remove(&old) else {
            return false;
        };
        self.checks.remove(old);
        self.observe(Transition::JobRemoved {
            key: old,
            phase: old_entry.phase,
            end: JobEnd::Reused,
        });
        let Some(mut resource) = old_entry.resource else {
            return false;
        };
        resource.launched = false;
        let uses = old_entry.uses.saturating_add(1);
        let mut entry = JobEntry::new(job.clone(), Phase::Acquired, expected);
        entry.uses = uses;
        entry.reused_from = Some(Box::new((old, old_entry.job)));
        let app = resource.id.clone();
        entry.resource = Some(resource);
        self.add_job(key, entry, JobOrigin::Acquired);
        self.apply(key, JobEvent::ResourceReused);
        let log = self.job_log(key);
        slog::info!(log, "job acquired; reusing a standby resource";
                    "weight" => TwoDecimals(expected), "app" => app, "use_count" => uses);
        self.mark_dirty(ctx);
        if !self.draining {
            self.spawn_launcher(key);
        }
        true
    }

    /// Evicts standby resources until the jobs waiting for room get it once
    /// they are deleted (`runner`'s first, oldest first).
    pub(super) fn make_room(&mut self, runner: usize, ctx: &mut Context<Self>) {
        for key in self.ledger.evict_for_room(runner) {
            let log = self.job_log(key);
            slog::info!(log, "deleting a standby resource to make room for a job");
            self.send_to_decommission(key, ctx);
        }
    }

    /// Launches the jobs whose room came (standby resources deleted, jobs
    /// ended).
    pub(super) fn launch_ready(&mut self) {
        for key in self.ledger.take_ready() {
            if !self.draining && self.jobs.get(&key).map(|e| e.phase) == Some(Phase::Acquired) {
                self.spawn_launcher(key);
            }
        }
    }

    /// The standby resource given to a job could not take it: the resource
    /// goes back to its former entry, to be deleted, and the job is
    /// launched at once on a new resource (it waits for room if needed).
    pub(super) fn on_reuse_failed(&mut self, msg: ReuseFailed, ctx: &mut Context<Self>) {
        let key = msg.key;
        let Some(e) = self.jobs.get(&key) else {
            return;
        };
        if e.phase != Phase::Provisioned || e.reused_from.is_none() {
            return;
        }
        if !self.apply(key, JobEvent::ReuseFailed) {
            return;
        }
        let Some(e) = self.jobs.get_mut(&key) else {
            return;
        };
        let (resource, from) = (e.resource.take(), e.reused_from.take());
        let (expected, uses) = (e.expected_weight, e.uses.saturating_sub(1).max(1));
        e.uses = 1;
        let log = self.job_log(key);
        slog::warn!(log, "the standby resource cannot take the job: deleting it, \
                          launching the job on a new resource";
                    "app" => resource.as_ref().map(|r| r.id.clone()),
                    "error" => %untrusted(&msg.message));
        if let (Some(resource), Some(from)) = (resource, from) {
            let (old, old_job) = *from;
            if self.ledger.rekey(key, old) {
                let mut old_entry = JobEntry::new(old_job, Phase::Decommissioning, resource.weight);
                old_entry.resource = Some(resource);
                old_entry.uses = uses;
                self.add_job(old, old_entry, JobOrigin::ReuseFailed);
                self.after_persist(ctx, move |act, _| act.spawn_decommissioner(old));
            }
        }
        let waiting = self.ledger.track_waiting(key, expected);
        self.mark_dirty(ctx);
        if waiting {
            self.make_room(key.runner, ctx);
        } else if !self.draining {
            self.spawn_launcher(key);
        }
        self.schedule_polls(ctx);
    }

    /// Deletes every standby resource now and keeps none from now on.
    fn release_standby(&mut self, ctx: &mut Context<Self>) -> usize {
        self.standby_released = true;
        let keys: Vec<JobKey> = self
            .jobs
            .iter()
            .filter(|(_, e)| e.phase == Phase::Standby)
            .map(|(k, _)| *k)
            .collect();
        for key in &keys {
            self.decommission_standby(*key, ctx);
        }
        if !keys.is_empty() {
            slog::info!(self.logger, "standby resources released"; "count" => keys.len());
        }
        self.schedule_polls(ctx);
        keys.len()
    }
}

/// Sent by the supervisor to itself when a standby entry's time is over.
#[derive(Message, Debug)]
#[rtype(result = "()")]
struct StandbyExpired {
    key: JobKey,
}

impl Handler<StandbyExpired> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: StandbyExpired, ctx: &mut Context<Self>) {
        self.on_standby_expired(msg.key, ctx);
    }
}

impl Handler<ReleaseStandby> for Supervisor {
    type Result = usize;
    fn handle(&mut self, _: ReleaseStandby, ctx: &mut Context<Self>) -> usize {
        self.release_standby(ctx)
    }
}
