//! Live reconfiguration ([`Reconfigure`], on SIGHUP): the pure diff of the
//! running runners and settings against the new ones, and its application.
//! A removed runner keeps its slot (its index is part of every job key) and
//! is only no longer polled; its jobs run to the end. A runner added again
//! under the same name is polled again with its new ports.

use super::*;
use crate::messages::{Reconfigure, ReconfigureReport};

impl Supervisor {
    /// SIGHUP: the new configuration from the reloader, applied and logged.
    pub(super) fn reload(&mut self, ctx: &mut Context<Self>) {
        let Some(msg) = self.reloader.as_mut().and_then(|reload| reload()) else {
            return;
        };
        let report = self.reconfigure(msg, ctx);
        let log = &self.logger;
        if let Some(why) = &report.refused {
            slog::error!(log, "configuration reload refused; the running configuration stays";
                         "reason" => why);
            return;
        }
        for name in &report.restart_needed {
            slog::warn!(log, "configuration reload: restart needed for this setting; left as it was";
                        "setting" => *name);
        }
        slog::info!(log, "configuration reloaded";
                    "runners_added" => report.added.join(", "),
                    "runners_removed" => report.removed.join(", "),
                    "runners_changed" => report.changed.join(", "),
                    "settings_changed" => report.settings.join(", "));
    }
}
use crate::settings::RunnerPorts;

/// How the runner sections changed, by unique name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct RunnerDiff {
    /// Indexes (in the new list) of runners not running now.
    pub added: Vec<usize>,
    /// Names of running runners absent from the new list.
    pub removed: Vec<Rc<str>>,
    /// Indexes (in the new list) of running runners whose settings changed.
    pub changed: Vec<usize>,
}

/// Pure: `running` are the runners polled now, `new` the new sections.
pub(super) fn diff_runners(
    running: &[(&str, &RunnerSettings)],
    new: &[(&str, &RunnerSettings)],
) -> RunnerDiff {
    let mut diff = RunnerDiff::default();
    for (i, (name, settings)) in new.iter().enumerate() {
        match running.iter().find(|(n, _)| n == name) {
            None => diff.added.push(i),
            Some((_, old)) if old != settings => diff.changed.push(i),
            Some(_) => {}
        }
    }
    for (name, _) in running {
        if !new.iter().any(|(n, _)| n == name) {
            diff.removed.push(Rc::from(*name));
        }
    }
    diff
}

/// Pure: the global settings that differ, split in those applied live and
/// those that need a restart (the quota, the drain deadline and the
/// `--poll-cycles` of the command line, which a reload does not change).
pub(super) fn diff_settings(
    old: &SupervisorSettings,
    new: &SupervisorSettings,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut live = Vec::new();
    let mut restart = Vec::new();
    let mut check = |changed: bool, name: &'static str, is_live: bool| {
        if changed {
            if is_live {
                live.push(name);
            } else {
                restart.push(name);
            }
        }
    };
    check(old.concurrent != new.concurrent, "concurrent", true);
    check(
        old.check_interval != new.check_interval,
        "check_interval",
        true,
    );
    check(
        old.job_progress_poll_interval != new.job_progress_poll_interval,
        "job_progress_poll_interval",
        true,
    );
    check(
        old.max_concurrent_provisioning != new.max_concurrent_provisioning,
        "paas_max_concurrent_provisioning",
        true,
    );
    check(
        old.keep_finished_resources != new.keep_finished_resources,
        "paas_finished_jobs_keep_resources",
        true,
    );
    check(
        old.decommission_launch_failures != new.decommission_launch_failures,
        "paas_decommission_launch_failures",
        true,
    );
    check(
        old.repoll_immediately != new.repoll_immediately,
        "paas_repoll_same_runner_immediately",
        true,
    );
    check(
        old.allowed_fraction_per_runner != new.allowed_fraction_per_runner,
        "allowed_fraction_per_runner",
        true,
    );
    check(
        old.reconcile_interval != new.reconcile_interval,
        "reconcile_interval",
        true,
    );
    check(old.quota != new.quota, "quota", false);
    check(
        old.drain_deadline != new.drain_deadline,
        "shutdown_timeout",
        false,
    );
    (live, restart)
}

/// Pure: whether the new settings are usable (the checks of start-up).
fn refusal(settings: &SupervisorSettings, runners: &[RunnerPorts]) -> Option<String> {
    if settings.concurrent == 0 {
        return Some("`concurrent` must be at least 1".into());
    }
    if settings.max_concurrent_provisioning == 0 {
        return Some("`paas_max_concurrent_provisioning` must be at least 1".into());
    }
    let frac_ok = |f: f64| f.is_finite() && f > 0.0;
    if !frac_ok(settings.allowed_fraction_per_runner) {
        return Some("`allowed_fraction_per_runner` must be a positive number".into());
    }
    if settings.job_progress_poll_interval.is_zero() {
        return Some("`job_progress_poll_interval` must be positive".into());
    }
    let mut names = HashSet::new();
    for r in runners {
        if !frac_ok(r.settings.quota_max_fraction) {
            return Some("`quota_max_fraction` must be a positive number".into());
        }
        if !names.insert(r.name.as_str()) {
            return Some(format!("two runners have the same unique name {}", r.name));
        }
    }
    None
}

impl Supervisor {
    pub(super) fn reconfigure(
        &mut self,
        msg: Reconfigure,
        ctx: &mut Context<Self>,
    ) -> ReconfigureReport {
        let mut report = ReconfigureReport::default();
        if self.draining {
            report.refused = Some("the service is stopping".into());
            return report;
        }
        if let Some(why) = refusal(&msg.settings, &msg.runners) {
            report.refused = Some(why);
            return report;
        }
        let diff = {
            let running: Vec<(&str, &RunnerSettings)> = self
                .runners
                .iter()
                .filter(|r| !r.retired)
                .map(|r| (&*r.name, &r.settings))
                .collect();
            let new: Vec<(&str, &RunnerSettings)> = msg
                .runners
                .iter()
                .map(|r| (r.name.as_str(), &r.settings))
                .collect();
            diff_runners(&running, &new)
        };
        let (live, restart) = diff_settings(&self.settings, &msg.settings);
        self.apply_settings(msg.settings, &live, ctx);
        report.settings = live;
        report.restart_needed = restart;

        for name in &diff.removed {
            if let Some(r) = self.runners.iter_mut().find(|r| &r.name == name) {
                r.retired = true;
                report.removed.push(name.to_string());
            }
        }
        let mut new_runners: Vec<Option<RunnerPorts>> = msg.runners.into_iter().map(Some).collect();
        for &i in &diff.changed {
            let Some(ports) = new_runners.get_mut(i).and_then(Option::take) else {
                continue;
            };
            if let Some(idx) = self.runners.iter().position(|r| *r.name == *ports.name) {
                self.set_runner_settings(idx, ports.settings);
                report.changed.push(ports.name);
            }
        }
        for &i in &diff.added {
            let Some(ports) = new_runners.get_mut(i).and_then(Option::take) else {
                continue;
            };
            report.added.push(ports.name.clone());
            let name = ports.name.clone();
            self.add_runner(ports);
            if let Some(idx) = self.runners.iter().position(|r| *r.name == *name) {
                self.start_reconcile(idx, ctx);
            }
        }
        self.schedule_polls(ctx);
        report
    }

    fn apply_settings(
        &mut self,
        new: SupervisorSettings,
        live: &[&'static str],
        ctx: &mut Context<Self>,
    ) {
        let kept = SupervisorSettings {
            // Not changed live.
            quota: self.settings.quota,
            drain_deadline: self.settings.drain_deadline,
            poll_cycles: self.settings.poll_cycles,
            ..new
        };
        let old = std::mem::replace(&mut self.settings, kept);
        let mut limits = self.ledger.limits().clone();
        limits.concurrent = self.settings.concurrent;
        limits.max_provisioning = self.settings.max_concurrent_provisioning;
        limits.allowed_fraction_per_runner = self.settings.allowed_fraction_per_runner;
        self.ledger.set_limits(limits);
        self.observe(Transition::LimitsChanged);
        if live.contains(&"job_progress_poll_interval") {
            self.checks
                .set_interval(self.settings.job_progress_poll_interval);
            if let Some((_, t)) = self.progress_timer.take() {
                ctx.cancel_future(t);
            }
            self.arm_check_timer(ctx);
        }
        if old.reconcile_interval != self.settings.reconcile_interval {
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

    fn settings(fraction: f64) -> RunnerSettings {
        RunnerSettings {
            quota_max_fraction: fraction,
            ..RunnerSettings::default()
        }
    }

    #[test]
    fn runners_added_removed_changed_by_name() {
        let (one, half) = (settings(1.0), settings(0.5));
        let running = [("a", &one), ("b", &one), ("c", &one)];
        let new = [("b", &one), ("c", &half), ("d", &one)];
        let diff = diff_runners(&running, &new);
        assert_eq!(diff.added, vec![2]);
        assert_eq!(diff.removed, vec![Rc::<str>::from("a")]);
        assert_eq!(diff.changed, vec![1]);
    }

    #[test]
    fn same_runners_no_diff() {
        let one = settings(1.0);
        let running = [("a", &one)];
        assert_eq!(diff_runners(&running, &running), RunnerDiff::default());
    }

    #[test]
    fn settings_split_live_and_restart() {
        let old = SupervisorSettings::default();
        let new = SupervisorSettings {
            check_interval: Duration::from_secs(7),
            concurrent: 3,
            quota: 99.0,
            drain_deadline: Duration::from_secs(1),
            ..SupervisorSettings::default()
        };
        let (live, restart) = diff_settings(&old, &new);
        assert_eq!(live, vec!["concurrent", "check_interval"]);
        assert_eq!(restart, vec!["quota", "shutdown_timeout"]);
        assert_eq!(diff_settings(&old, &old), (vec![], vec![]));
    }

    #[test]
    fn unusable_settings_are_refused() {
        let bad = SupervisorSettings {
            concurrent: 0,
            ..SupervisorSettings::default()
        };
        assert!(refusal(&bad, &[]).is_some_and(|w| w.contains("concurrent")));
        assert_eq!(refusal(&SupervisorSettings::default(), &[]), None);
    }
}
