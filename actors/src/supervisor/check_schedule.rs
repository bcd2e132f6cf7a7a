//! Pure: when each launched job's status is checked next.
//!
//! Each job has its own timer, started at its launch and started anew when
//! the job is seen started: checks fall due every `interval` from then on.
//! A check in flight is never doubled, and the next one falls due one
//! interval after the previous one was sent (or at once if its answer came
//! later than that), so two checks of one job never start within one
//! interval; a check sent early as a witness counts from when it was due,
//! keeping the job's cadence. Finding the due jobs costs
//! O(log n + due) in the number of scheduled jobs.
//!
//! Checks are sent in batches at most one [`CheckSchedule::batch_spacing`]
//! apart (a thirtieth of the interval, at most 1 s): a job falling due
//! sooner after the previous batch waits for the next one, late by that
//! spacing at most, never early. Since a job's next check falls due one
//! interval after it was sent, the jobs of one batch stay together: a
//! thousand jobs checked every 30 s make about 30 batches per interval,
//! not a thousand timer wake-ups.

use crate::quota::JobKey;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Waiting; due at this instant.
    Due(Instant),
    /// Sent; the next check counts from this instant (when it was sent
    /// in a batch, when it was due if it was taken early).
    InFlight(Instant),
}

/// The per-job check timers (see the module documentation).
#[derive(Debug)]
pub(super) struct CheckSchedule {
    interval: Duration,
    queue: BTreeSet<(Instant, JobKey)>,
    slots: HashMap<JobKey, Slot>,
    /// When the last batch of due checks was taken.
    last_batch: Option<Instant>,
}

/// The batch spacing is the interval divided by this.
const BATCHES_PER_INTERVAL: u32 = 30;
/// The batch spacing never exceeds this.
const MAX_BATCH_SPACING: Duration = Duration::from_secs(1);

impl CheckSchedule {
    /// An empty schedule checking each job every `interval`.
    pub(super) fn new(interval: Duration) -> Self {
        CheckSchedule {
            interval,
            queue: BTreeSet::new(),
            slots: HashMap::new(),
            last_batch: None,
        }
    }

    /// Starts a job's timer at `now` (its launch): first check one interval
    /// later. Nothing if the job already has one.
    pub(super) fn start(&mut self, key: JobKey, now: Instant) {
        self.start_in(key, now, 1);
    }

    /// Starts a job's timer at `now` with its first check `intervals`
    /// intervals later (at least one), the next ones every interval.
    /// Nothing if the job already has one.
    pub(super) fn start_in(&mut self, key: JobKey, now: Instant, intervals: u32) {
        if self.slots.contains_key(&key) {
            return;
        }
        let due = now + self.interval.saturating_mul(intervals.max(1));
        self.slots.insert(key, Slot::Due(due));
        self.queue.insert((due, key));
    }

    /// Starts a job's timer anew at `now` (its observed start): its next
    /// check falls due one interval later, and a check in flight, once
    /// answered, is followed by one no earlier than that.
    pub(super) fn restart(&mut self, key: JobKey, now: Instant) {
        match self.slots.get(&key).copied() {
            Some(Slot::InFlight(_)) => {
                self.slots.insert(key, Slot::InFlight(now));
            }
            Some(Slot::Due(due)) => {
                self.queue.remove(&(due, key));
                self.slots.remove(&key);
                self.start(key, now);
            }
            None => self.start(key, now),
        }
    }

    /// Removes a job's timer (the job no longer needs checks).
    pub(super) fn remove(&mut self, key: JobKey) {
        if let Some(Slot::Due(due)) = self.slots.remove(&key) {
            self.queue.remove(&(due, key));
        }
    }

    /// The jobs due at `now`, marked in flight as sent at `now` (a batch).
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<JobKey> {
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.pop_first();
            self.slots.insert(key, Slot::InFlight(now));
            due.push(key);
        }
        if !due.is_empty() {
            self.last_batch = Some(now);
        }
        due
    }

    /// The least time between two batches of checks.
    pub(super) fn batch_spacing(&self) -> Duration {
        (self.interval / BATCHES_PER_INTERVAL).min(MAX_BATCH_SPACING)
    }

    /// When the next batch is to be taken: the next due check, or one
    /// [`Self::batch_spacing`] after the last batch if that is later.
    pub(super) fn next_batch_at(&self) -> Option<Instant> {
        let due = self.next_due()?;
        Some(match self.last_batch {
            Some(last) => due.max(last + self.batch_spacing()),
            None => due,
        })
    }

    /// A job's check is answered at `now` and the job still runs: its next
    /// check falls due one interval after the previous one was sent, or at
    /// `now` if that is already past.
    pub(super) fn checked(&mut self, key: JobKey, now: Instant) {
        if let Some(Slot::InFlight(was)) = self.slots.get(&key).copied() {
            let due = (was + self.interval).max(now);
            self.slots.insert(key, Slot::Due(due));
            self.queue.insert((due, key));
        }
    }

    /// Checks every `interval` from now on (a live reconfiguration): each
    /// waiting job falls due one new interval after its previous due time
    /// (or its start); checks in flight keep theirs until answered.
    pub(super) fn set_interval(&mut self, interval: Duration) {
        let old = std::mem::replace(&mut self.interval, interval);
        if old == interval {
            return;
        }
        for (due, key) in std::mem::take(&mut self.queue) {
            let due = due.checked_sub(old).unwrap_or(due) + interval;
            self.slots.insert(key, Slot::Due(due));
            self.queue.insert((due, key));
        }
    }

    /// The waiting jobs of `runner`, soonest due first, among the first
    /// `scan` waiting jobs of every runner.
    pub(super) fn waiting_of(&self, runner: usize, scan: usize) -> Vec<JobKey> {
        self.queue
            .iter()
            .take(scan)
            .map(|(_, key)| *key)
            .filter(|key| key.runner == runner)
            .collect()
    }

    /// Sends a waiting job's next check now instead of at its due time
    /// (marked in flight; its cadence is kept). False when it is not
    /// waiting.
    pub(super) fn take_early(&mut self, key: JobKey) -> bool {
        match self.slots.get(&key).copied() {
            Some(Slot::Due(due)) => {
                self.queue.remove(&(due, key));
                self.slots.insert(key, Slot::InFlight(due));
                true
            }
            _ => false,
        }
    }

    /// When the next check falls due, if any job is waiting.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// Jobs with a timer (waiting or in flight).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(10);

    fn key(job_id: i64) -> JobKey {
        JobKey { runner: 0, job_id }
    }

    #[test]
    fn each_job_falls_due_one_interval_after_its_own_start() {
        let t0 = Instant::now();
        let mut s = CheckSchedule::new(I);
        s.start(key(1), t0);
        s.start(key(2), t0 + Duration::from_secs(4));
        s.start(key(1), t0 + Duration::from_secs(5)); // already started
        assert_eq!(s.next_due(), Some(t0 + I));
        assert!(s.take_due(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(s.take_due(t0 + I), vec![key(1)]);
        assert_eq!(s.take_due(t0 + Duration::from_secs(14)), vec![key(2)]);
        assert_eq!(s.next_due(), None, "both in flight");
    }

    #[test]
    fn a_check_in_flight_is_not_sent_twice_and_keeps_its_cadence() {
        let t0 = Instant::now();
        let mut s = CheckSchedule::new(I);
        s.start(key(1), t0);
        assert_eq!(s.take_due(t0 + I), vec![key(1)]);
        // Still in flight long after: never due again meanwhile.
        assert!(s.take_due(t0 + I * 5).is_empty());
        // Answered quickly: next due one interval after the previous due.
        let mut s = CheckSchedule::new(I);
        s.start(key(1), t0);
        s.take_due(t0 + I);
        s.checked(key(1), t0 + I + Duration::from_secs(1));
        assert_eq!(s.next_due(), Some(t0 + I * 2));
        // Answered late: due at once, not earlier than the answer.
        s.take_due(t0 + I * 2);
        let late = t0 + I * 3 + Duration::from_secs(5);
        s.checked(key(1), late);
        assert_eq!(s.next_due(), Some(late));
    }

    #[test]
    fn a_restarted_timer_falls_due_one_interval_after_the_restart() {
        let t0 = Instant::now();
        let s4 = Duration::from_secs(4);
        let mut s = CheckSchedule::new(I);
        // Waiting: moved to one interval after the restart.
        s.start(key(1), t0);
        s.restart(key(1), t0 + s4);
        assert!(s.take_due(t0 + I).is_empty());
        assert_eq!(s.take_due(t0 + I + s4), vec![key(1)]);
        // In flight: not sent twice; its answer schedules from the restart.
        s.restart(key(1), t0 + I * 2);
        assert_eq!(s.next_due(), None);
        s.checked(key(1), t0 + I * 2);
        assert_eq!(s.next_due(), Some(t0 + I * 3));
        // No timer yet: started.
        s.restart(key(2), t0);
        assert_eq!((s.len(), s.take_due(t0 + I)), (2, vec![key(2)]));
    }

    #[test]
    fn a_timer_can_start_with_a_longer_first_wait() {
        let t0 = Instant::now();
        let mut s = CheckSchedule::new(I);
        s.start_in(key(1), t0, 2);
        s.start_in(key(2), t0, 0);
        assert_eq!(s.take_due(t0 + I), vec![key(2)]);
        assert_eq!(s.take_due(t0 + I * 2), vec![key(1)]);
        s.checked(key(1), t0 + I * 2);
        assert_eq!(s.next_due(), Some(t0 + I * 3), "then every interval");
    }

    #[test]
    fn removed_jobs_are_never_due_and_leave_nothing_behind() {
        let t0 = Instant::now();
        let mut s = CheckSchedule::new(I);
        s.start(key(1), t0);
        s.start(key(2), t0);
        s.remove(key(1));
        assert_eq!(s.take_due(t0 + I), vec![key(2)]);
        s.remove(key(2));
        s.checked(key(2), t0 + I); // a late answer of a removed job
        assert_eq!((s.len(), s.next_due()), (0, None));
    }

    #[test]
    fn a_job_taken_early_keeps_its_cadence_and_is_not_sent_twice() {
        let mut s = CheckSchedule::new(I);
        let t0 = Instant::now();
        s.start(key(1), t0);
        s.start(
            JobKey {
                runner: 1,
                job_id: 2,
            },
            t0,
        );
        assert_eq!(s.waiting_of(0, 10), vec![key(1)]);
        assert!(s.take_early(key(1)));
        assert!(!s.take_early(key(1)), "in flight");
        assert!(s.waiting_of(0, 10).is_empty());
        assert_eq!(
            s.take_due(t0 + I),
            vec![JobKey {
                runner: 1,
                job_id: 2
            }]
        );
        s.checked(key(1), t0 + Duration::from_secs(1));
        assert_eq!(s.next_due(), Some(t0 + I * 2));
    }

    #[test]
    fn checks_due_close_together_go_in_one_batch_and_stay_together() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = CheckSchedule::new(I);
        let spacing = s.batch_spacing();
        assert_eq!(spacing, I / 30);
        s.start(key(1), t0);
        s.start(key(2), t0 + ms(100));
        s.start(key(3), t0 + ms(200));
        s.start(key(4), t0 + ms(900));
        assert_eq!(s.next_batch_at(), Some(t0 + I));
        assert_eq!(s.take_due(t0 + I), vec![key(1)]);
        // Jobs 2 and 3 wait for the spacing: late, never early.
        let second = t0 + I + spacing;
        assert_eq!(s.next_batch_at(), Some(second));
        assert_eq!(s.take_due(second), vec![key(2), key(3)]);
        for k in [1, 2, 3] {
            s.checked(key(k), second + ms(50));
        }
        // Job 4 is due after the spacing: on time.
        let fourth = t0 + I + ms(900);
        assert_eq!(s.next_batch_at(), Some(fourth));
        assert_eq!(s.take_due(fourth), vec![key(4)]);
        s.checked(key(4), fourth + ms(50));
        // Each next due one interval after it was sent: 2 and 3 together.
        assert_eq!(s.take_due(t0 + I * 2), vec![key(1)]);
        assert_eq!(s.next_batch_at(), Some(second + I));
        assert_eq!(s.take_due(second + I), vec![key(2), key(3)]);
        // A check is never sent within one interval of the previous one.
        assert!(s.take_due(fourth + I - ms(1)).is_empty());
        assert_eq!(s.take_due(fourth + I), vec![key(4)]);
    }

    #[test]
    fn the_batch_spacing_is_a_thirtieth_of_the_interval_at_most_one_second() {
        assert_eq!(
            CheckSchedule::new(Duration::from_secs(3)).batch_spacing(),
            Duration::from_millis(100)
        );
        assert_eq!(
            CheckSchedule::new(Duration::from_secs(300)).batch_spacing(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_new_interval_moves_the_waiting_jobs() {
        let t0 = Instant::now();
        let mut s = CheckSchedule::new(I);
        s.start(key(1), t0);
        s.start(key(2), t0);
        assert_eq!(s.take_due(t0 + I), vec![key(1), key(2)]);
        s.checked(key(1), t0 + I);
        s.set_interval(Duration::from_secs(2));
        // Waiting: one new interval after its previous due time.
        assert_eq!(s.next_due(), Some(t0 + I + Duration::from_secs(2)));
        // In flight: its next check uses the new interval.
        s.checked(key(2), t0 + I);
        assert_eq!(
            s.take_due(t0 + I + Duration::from_secs(2)),
            vec![key(1), key(2)]
        );
    }
}
