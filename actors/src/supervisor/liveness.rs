//! What the supervisor tells the service's observer
//! ([`crate::observer::ServiceObserver`]): ready once every runner's first
//! reconciliation listing answered, the status line when it changes, the
//! liveness tick from its own timer (a wedged actor thread stops it), and
//! the start of the drain.

use super::*;

impl Supervisor {
    pub(super) fn start_liveness(&mut self, ctx: &mut Context<Self>) {
        self.check_ready();
        if let Some(every) = self.settings.alive_interval.filter(|d| !d.is_zero()) {
            self.observer.alive();
            ctx.run_interval(every, |act, _| act.observer.alive());
        }
    }

    fn status_now(&self) -> ServiceStatus {
        ServiceStatus {
            jobs: self.jobs.len().saturating_sub(self.ledger.standby()),
            used_weight: self.ledger.used(),
            quota: self.ledger.limits().total_weight,
            provisioning: self.ledger.provisioning(),
            standby: self.ledger.standby(),
        }
    }

    /// Sends the status line if it changed (after the service is ready).
    pub(super) fn publish_status(&mut self) {
        if self.awaiting_first_listing.is_some() || self.draining {
            return;
        }
        let status = self.status_now();
        if self.last_status.as_ref() != Some(&status) {
            self.observer.status(&status);
            self.last_status = Some(status);
        }
    }

    pub(super) fn note_first_listing(&mut self, runner: usize) {
        if let Some(waiting) = &mut self.awaiting_first_listing {
            waiting.remove(&runner);
        }
        self.check_ready();
    }

    fn check_ready(&mut self) {
        if self
            .awaiting_first_listing
            .as_ref()
            .is_some_and(|w| w.is_empty())
        {
            self.awaiting_first_listing = None;
            let status = self.status_now();
            slog::info!(self.logger, "service ready"; "status" => %status);
            self.observer.ready(&status);
            self.last_status = Some(status);
        }
    }

    pub(super) fn notify_stopping(&self) {
        self.observer.stopping();
    }
}
