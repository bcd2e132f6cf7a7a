//! The service's observer: a port through which the root crate learns the
//! service's readiness, status, liveness and stop (systemd notifications).
//! This crate only calls it; the root crate does the I/O.

use crate::ports::Weight;
use std::fmt;

/// A one-line summary of the service, for an operator.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceStatus {
    /// Jobs tracked.
    pub jobs: usize,
    /// Weight held in the quota ledger.
    pub used_weight: Weight,
    /// The quota.
    pub quota: Weight,
    /// Jobs being provisioned.
    pub provisioning: usize,
    /// Resources on standby (not counted in `jobs`; their weight is in
    /// `used_weight`).
    pub standby: usize,
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} jobs, weight {:.2}/{:.2}, {} provisioning",
            self.jobs, self.used_weight, self.quota, self.provisioning
        )?;
        if self.standby > 0 {
            write!(f, ", {} on standby", self.standby)?;
        }
        Ok(())
    }
}

/// Called by the supervisor, on its own thread. Every method has a no-op
/// default.
pub trait ServiceObserver {
    /// The state is loaded and every runner's first reconciliation listing
    /// has answered: the service is ready.
    fn ready(&self, _status: &ServiceStatus) {}
    /// The status changed.
    fn status(&self, _status: &ServiceStatus) {}
    /// The supervisor's periodic tick: it is alive and handles messages.
    fn alive(&self) {}
    /// The graceful stop began.
    fn stopping(&self) {}
}

/// What the root crate hooks into the supervisor: its observer, and the
/// channel its reloads send their settings by.
pub(crate) struct Hooks {
    pub observer: std::rc::Rc<dyn ServiceObserver>,
    pub settings: tokio::sync::mpsc::UnboundedReceiver<crate::messages::SettingsRequest>,
}

/// The observer that does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NoObserver;

impl ServiceObserver for NoObserver {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_has_two_decimals() {
        let s = ServiceStatus {
            jobs: 12,
            used_weight: 33.6,
            quota: 53.8,
            provisioning: 2,
            standby: 0,
        };
        assert_eq!(s.to_string(), "12 jobs, weight 33.60/53.80, 2 provisioning");
        let s = ServiceStatus { standby: 3, ..s };
        assert_eq!(
            s.to_string(),
            "12 jobs, weight 33.60/53.80, 2 provisioning, 3 on standby"
        );
    }
}
