//! Live reconfiguration: the diff of a reload ([`ApplySettings`], computed
//! by the root crate against what it last applied) applied to the running
//! service. A removed runner keeps its slot (its index is part of every job
//! key) and is only no longer polled; its jobs run to the end. Its
//! metrics go: those of its polling at once, the others once its last job
//! is over. A runner added again under the same name is polled again with
//! its new ports, its series at zero again.

use super::*;
use crate::messages::{ApplyOutcome, ApplySettings, ReloadReport, SettingsDiff};
use crate::settings::RunnerPorts;

impl Supervisor {
    /// Applies a reload's diff; refused only while the service stops.
    pub(super) fn apply_reload(
        &mut self,
        msg: ApplySettings,
        ctx: &mut Context<Self>,
    ) -> ApplyOutcome {
        if self.draining {
            return ApplyOutcome::Refused("the service is stopping".into());
        }
        let SettingsDiff {
            settings,
            live,
            restart_needed,
            added,
            changed,
            removed,
        } = msg.0;
        self.apply_settings(&settings, &live, ctx);
        let mut report = ReloadReport {
            settings: live,
            restart_needed,
            ..ReloadReport::default()
        };
        for name in removed {
            if let Some(r) = self.runners.iter_mut().find(|r| *r.name == *name) {
                r.retired = true;
                report.removed.push(name);
            }
        }
        self.observe(Transition::RunnersRemoved);
        for (name, settings) in changed {
            if let Some(idx) = self.runners.iter().position(|r| *r.name == *name) {
                self.set_runner_settings(idx, settings);
                report.changed.push(name);
            }
        }
        for ports in added {
            let name = ports.name.clone();
            self.add_runner(ports);
            if let Some(idx) = self.runners.iter().position(|r| *r.name == *name) {
                self.start_reconcile(idx, ctx);
            }
            report.added.push(name);
        }
        self.schedule_polls(ctx);
        ApplyOutcome::Applied(report)
    }

    /// Takes the keys of `live` from `new`; the others (the quota, what
    /// needs a restart, what the file does not set) stay as they run.
    fn apply_settings(
        &mut self,
        new: &SupervisorSettings,
        live: &[&'static str],
        ctx: &mut Context<Self>,
    ) {
        self.settings.apply_keys(new, live);
        let mut limits = self.ledger.limits().clone();
        limits.concurrent = self.settings.concurrent;
        limits.max_provisioning = self.settings.max_concurrent_provisioning;
        limits.allowed_fraction_per_runner = self.settings.allowed_fraction_per_runner;
        self.ledger.set_limits(limits);
        self.launch_spacing
            .set_gap(self.settings.min_between_launches.unwrap_or_default());
        self.observe(Transition::LimitsChanged);
        if live.contains(&"job_progress_poll_interval") {
            self.checks
                .set_interval(self.settings.job_progress_poll_interval);
            if let Some((_, t)) = self.progress_timer.take() {
                ctx.cancel_future(t);
            }
            self.arm_check_timer(ctx);
        }
        if live.contains(&"reconcile_interval") {
            if let Some(t) = self.reconcile_timer.take() {
                ctx.cancel_future(t);
            }
            if let Some(every) = self.settings.reconcile_interval.filter(|d| !d.is_zero()) {
                self.reconcile_timer =
                    Some(ctx.run_interval(every, |_, ctx| ctx.notify(Reconcile)));
            }
        }
    }

    fn set_runner_settings(&mut self, idx: usize, settings: RunnerSettings) {
        self.ledger
            .set_runner_fraction(idx, settings.quota_max_fraction);
        if let Some(r) = self.runners.get_mut(idx) {
            r.settings = settings;
        }
    }

    fn add_runner(&mut self, ports: RunnerPorts) {
        // A slot's PAAS may be replaced: its jobs' resources are dumped by
        // the new one from the next write on.
        self.jobs.forget_encoded();
        let concurrency = self.settings.progress_check_concurrency;
        let poller =
            Poller::new(ports.coordinator.clone(), ports.paas.clone(), concurrency).start();
        let position = self.runners.iter().position(|r| *r.name == *ports.name);
        let idx = position.unwrap_or(self.runners.len());
        let seed = self
            .settings
            .backoff_seed
            .map(|s| s.wrapping_add(idx as u64));
        if position.is_some() {
            // Polled again after a removal: the new ports and settings.
            self.ledger
                .set_runner_fraction(idx, ports.settings.quota_max_fraction);
            if let Some(r) = self.runners.get_mut(idx) {
                r.coordinator = ports.coordinator;
                r.paas = ports.paas;
                r.settings = ports.settings;
                r.poller = Some(poller);
                r.max_job_weight = None;
                r.poll = PollSlot::new(self.settings.retry_policy(), seed);
                r.retired = false;
            }
            self.observe(Transition::RunnerAdded { runner: idx });
            return;
        }
        let name: Rc<str> = Rc::from(ports.name.as_str());
        let log = self.logger.new(slog::o!("runner" => ports.name));
        self.ledger.add_runner(ports.settings.quota_max_fraction);
        let mut slot = RunnerSlot::new(name, ports.coordinator, ports.paas, ports.settings, log);
        slot.poll = PollSlot::new(self.settings.retry_policy(), seed);
        slot.poller = Some(poller);
        self.runners.push(slot);
        self.observe(Transition::RunnerAdded { runner: idx });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(settings: SupervisorSettings, fraction: f64) -> SettingsDiff {
        SettingsDiff {
            settings,
            live: Vec::new(),
            restart_needed: Vec::new(),
            added: Vec::new(),
            changed: vec![(
                "a".into(),
                RunnerSettings {
                    quota_max_fraction: fraction,
                    ..RunnerSettings::default()
                },
            )],
            removed: Vec::new(),
        }
    }

    #[test]
    fn only_settings_in_range_make_a_message() {
        let ok = SupervisorSettings::default();
        assert!(ApplySettings::new(diff(ok.clone(), 0.5)).is_ok());
        let bad = SupervisorSettings {
            concurrent: 0,
            ..SupervisorSettings::default()
        };
        assert!(ApplySettings::new(diff(bad, 1.0)).is_err_and(|e| e.key == "concurrent"));
        assert!(ApplySettings::new(diff(ok, 0.0)).is_err_and(|e| e.key == "quota_max_fraction"));
    }
}
