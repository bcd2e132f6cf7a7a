//! Pure: the spacing of provisioning starts (`paas_min_seconds_between_launches`).
//!
//! Each create of a new resource is given a start time when its launch
//! reaches it: the later of now and the last planned start plus the gap.
//! The planned time is recorded at once, before the launch waits for it, so
//! that launches queued together get successive slots instead of all
//! waiting the same delay and starting together. A gap of zero plans every
//! start at once.
//!
//! Shared by the launchers of every runner on one thread (`Cell`, no lock).

use std::cell::Cell;
use std::time::Duration;
use tokio::time::Instant;

/// The planned starts (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct LaunchSpacing {
    gap: Cell<Duration>,
    last_planned: Cell<Option<Instant>>,
}

impl LaunchSpacing {
    /// Spacing of `gap` between two planned starts.
    pub(crate) fn new(gap: Duration) -> LaunchSpacing {
        LaunchSpacing {
            gap: Cell::new(gap),
            last_planned: Cell::new(None),
        }
    }

    /// Changes the gap (a reload); starts already planned keep their time.
    pub(crate) fn set_gap(&self, gap: Duration) {
        self.gap.set(gap);
    }

    /// Plans a start no earlier than `now`, at least the gap after the
    /// last planned one, and records it.
    pub(crate) fn plan(&self, now: Instant) -> Instant {
        let slot = match self.last_planned.get() {
            Some(last) => now.max(last + self.gap.get()),
            None => now,
        };
        self.last_planned.set(Some(slot));
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_secs(2);

    #[test]
    fn queued_starts_get_successive_slots() {
        let spacing = LaunchSpacing::new(GAP);
        let t0 = Instant::now();
        let slots: Vec<Duration> = (0..4).map(|_| spacing.plan(t0) - t0).collect();
        assert_eq!(
            slots,
            [0, 2, 4, 6].map(Duration::from_secs),
            "each start is planned after the previous planned one"
        );
    }

    #[test]
    fn a_start_long_after_the_last_one_is_not_delayed() {
        let spacing = LaunchSpacing::new(GAP);
        let t0 = Instant::now();
        spacing.plan(t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(spacing.plan(later), later);
        let soon = later + Duration::from_millis(500);
        assert_eq!(
            spacing.plan(soon) - soon,
            Duration::from_millis(1500),
            "only what is left of the gap"
        );
    }

    #[test]
    fn no_gap_plans_every_start_at_once_and_a_reload_changes_the_gap() {
        let spacing = LaunchSpacing::default();
        let t0 = Instant::now();
        assert_eq!((spacing.plan(t0), spacing.plan(t0)), (t0, t0));
        spacing.set_gap(GAP);
        assert_eq!(spacing.plan(t0) - t0, GAP);
    }
}
