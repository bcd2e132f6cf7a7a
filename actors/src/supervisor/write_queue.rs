//! The write queue of the persistence, as a pure state machine: what is
//! dirty, whether a write is in flight or waits for a retry, who waits for
//! which write, and whether writing stopped.
//!
//! Every change bumps a generation; a write covers the generation current
//! when it starts; a waiter registered at generation `g` is answered by the
//! first successful write covering `g`. At most one write is in flight, and
//! a burst of changes is written once (one kick is scheduled per burst).
//!
//! Group commit: a write starts no sooner than [`GROUP_COMMIT_WINDOW`]
//! after the previous one started, so that changes falling within a few
//! milliseconds of each other (or during a write) share one write and one
//! fsync. A change after a quiet spell is written at once. The window
//! delays writes, never answers: a waiter is answered only by a write that
//! covers it, once that write is on disk.
//!
//! A lazy change (one no external action waits for, and that a restart
//! finds harmless to see undone: a job seen started, a resource seen
//! deleted) starts no write of its own: the next write carries it, and
//! [`LAZY_WRITE_DELAY`] after it at the latest one is started for it.
//!
//! The queue is failing from a failed write until the next successful one
//! (the supervisor acquires no job meanwhile).

use std::time::Duration;
use tokio::time::Instant;

/// Shortest time between the starts of two writes (see the module
/// documentation).
pub(crate) const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(4);

/// Longest time a lazy change waits for a write to carry it.
pub(crate) const LAZY_WRITE_DELAY: Duration = Duration::from_secs(1);

/// What a new waiter gets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wait<W> {
    /// Everything changed so far is on disk: answer the waiter now.
    Done(W),
    /// The waiter is queued; `start_now` when no kick is scheduled (the
    /// caller starts a write at once).
    Queued { start_now: bool },
}

/// What [`WriteQueue::start`] says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Start {
    /// Write now, covering this generation.
    Write(u64),
    /// Kick again after this delay (the group commit window); no other
    /// kick is scheduled.
    Later(Duration),
    /// Nothing to start now (nothing dirty, a write in flight, a retry or
    /// a kick pending, or stopped).
    Idle,
}

/// The write queue (see the module documentation); `W` is a waiter.
#[derive(Debug)]
pub(crate) struct WriteQueue<W> {
    window: Duration,
    last_start: Option<Instant>,
    gen: u64,
    /// The newest change a write must start for (lazy ones excluded).
    urgent: u64,
    saved: u64,
    in_flight: bool,
    lazy_scheduled: bool,
    retry_scheduled: bool,
    kick_scheduled: bool,
    stopped: bool,
    forced: bool,
    failing: bool,
    count: u64,
    last_duration: Duration,
    last_build: Duration,
    last_encoded: usize,
    /// Build time and entries encoded of the write in flight.
    building: (Duration, usize),
    waiters: Vec<(u64, W)>,
}

impl<W> Default for WriteQueue<W> {
    fn default() -> Self {
        WriteQueue {
            window: GROUP_COMMIT_WINDOW,
            last_start: None,
            gen: 0,
            urgent: 0,
            saved: 0,
            in_flight: false,
            lazy_scheduled: false,
            retry_scheduled: false,
            kick_scheduled: false,
            stopped: false,
            forced: false,
            failing: false,
            count: 0,
            last_duration: Duration::ZERO,
            last_build: Duration::ZERO,
            last_encoded: 0,
            building: (Duration::ZERO, 0),
            waiters: Vec::new(),
        }
    }
}

impl<W> WriteQueue<W> {
    /// Something changed. True when the caller must schedule a kick (the
    /// first change of a burst).
    pub(super) fn mark_dirty(&mut self) -> bool {
        self.gen += 1;
        self.urgent = self.gen;
        !std::mem::replace(&mut self.kick_scheduled, true)
    }

    /// A lazy change (see the module documentation). True when the caller
    /// must call [`WriteQueue::lazy_due`] after [`LAZY_WRITE_DELAY`] (the
    /// first lazy change since the last such call).
    pub(super) fn mark_dirty_lazily(&mut self) -> bool {
        self.gen += 1;
        !std::mem::replace(&mut self.lazy_scheduled, true)
    }

    /// The lazy changes waited long enough: the next start writes them.
    pub(super) fn lazy_due(&mut self) {
        self.lazy_scheduled = false;
        self.urgent = self.gen;
    }

    /// The scheduled kick arrived.
    pub(super) fn kick_taken(&mut self) {
        self.kick_scheduled = false;
    }

    /// Starts a write if one is due at `now` (see [`Start`]). A forced
    /// stop's write does not wait for the window.
    pub(super) fn start(&mut self, now: Instant) -> Start {
        if self.in_flight || self.retry_scheduled || self.stopped || self.saved >= self.urgent {
            return Start::Idle;
        }
        let due = self.last_start.map(|t| t + self.window);
        if let Some(due) = due.filter(|d| now < *d && !self.forced) {
            if std::mem::replace(&mut self.kick_scheduled, true) {
                return Start::Idle;
            }
            return Start::Later(due - now);
        }
        self.in_flight = true;
        self.last_start = Some(now);
        Start::Write(self.gen)
    }

    /// Time spent building the content of the write in flight, and the
    /// number of job entries encoded for it (shown once it succeeds).
    pub(super) fn note_build(&mut self, took: Duration, encoded: usize) {
        self.building = (took, encoded);
    }

    /// The write covering `target` is on disk: the waiters it answers.
    pub(super) fn succeeded(&mut self, target: u64, took: Duration) -> Vec<W> {
        self.in_flight = false;
        self.failing = false;
        self.count += 1;
        self.last_duration = took;
        (self.last_build, self.last_encoded) = self.building;
        self.saved = self.saved.max(target);
        self.take_waiters(target)
    }

    /// The write covering `target` failed; a retry is scheduled (the
    /// caller calls [`WriteQueue::retry_due`] later). Waiters keep waiting
    /// (write-ahead: they may proceed only once durable), unless
    /// `release`: then they are returned, to be answered with the error.
    pub(super) fn failed(&mut self, target: u64, release: bool) -> Vec<W> {
        self.in_flight = false;
        self.failing = true;
        self.retry_scheduled = true;
        if release {
            self.take_waiters(target)
        } else {
            Vec::new()
        }
    }

    /// The retry delay after a failed write passed.
    pub(super) fn retry_due(&mut self) {
        self.retry_scheduled = false;
    }

    /// A waiter for everything changed so far.
    pub(super) fn wait(&mut self, waiter: W) -> Wait<W> {
        if self.saved >= self.gen {
            return Wait::Done(waiter);
        }
        self.urgent = self.gen;
        self.waiters.push((self.gen, waiter));
        Wait::Queued {
            start_now: !self.kick_scheduled,
        }
    }

    /// Forced stop: write once more (even after the drain's last write),
    /// and release waiters when that write fails.
    pub(super) fn force(&mut self) {
        self.forced = true;
        self.stopped = false;
        self.urgent = self.gen;
    }

    /// No more writes.
    pub(super) fn stop(&mut self) {
        self.stopped = true;
    }

    /// Whether a forced stop is under way.
    pub(super) fn is_forced(&self) -> bool {
        self.forced
    }

    /// True from a failed write until the next successful one.
    pub(super) fn is_failing(&self) -> bool {
        self.failing
    }

    /// Writes completed.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// Duration of the last completed write.
    pub(super) fn last_duration(&self) -> Duration {
        self.last_duration
    }

    /// Content build time of the last completed write.
    pub(super) fn last_build(&self) -> Duration {
        self.last_build
    }

    /// Job entries encoded for the last completed write (the others were
    /// unchanged).
    pub(super) fn last_encoded(&self) -> usize {
        self.last_encoded
    }

    fn take_waiters(&mut self, upto: u64) -> Vec<W> {
        if self.waiters.is_empty() {
            return Vec::new();
        }
        let (done, left) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(gen, _)| *gen <= upto);
        self.waiters = left;
        done.into_iter().map(|(_, w)| w).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(1);

    /// Moments one second apart (no window to wait between them).
    struct Clock(Instant, u64);

    impl Clock {
        fn new() -> Clock {
            Clock(Instant::now(), 0)
        }
        fn next(&mut self) -> Instant {
            self.1 += 1;
            self.0 + Duration::from_secs(self.1)
        }
    }

    #[test]
    fn a_burst_schedules_one_kick_and_one_write() {
        let mut c = Clock::new();
        let mut q: WriteQueue<u8> = WriteQueue::default();
        assert!(q.mark_dirty());
        assert!(!q.mark_dirty());
        assert!(!q.mark_dirty());
        q.kick_taken();
        assert_eq!(q.start(c.next()), Start::Write(3));
        assert_eq!(
            q.start(c.next()),
            Start::Idle,
            "at most one write in flight"
        );
        q.note_build(T, 2);
        assert!(q.succeeded(3, T).is_empty());
        assert_eq!(q.start(c.next()), Start::Idle, "nothing dirty");
        assert_eq!(q.count(), 1);
        assert_eq!((q.last_build(), q.last_encoded()), (T, 2));
    }

    #[test]
    fn changes_within_the_window_share_the_next_write() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = WriteQueue::default();
        q.mark_dirty();
        q.kick_taken();
        assert_eq!(
            q.start(t0),
            Start::Write(1),
            "a first change is written at once"
        );
        assert!(q.succeeded(1, T).is_empty());
        // two changes 1 ms and 2 ms after that write started
        assert!(q.mark_dirty());
        q.kick_taken();
        assert_eq!(q.wait(7), Wait::Queued { start_now: true });
        assert_eq!(
            q.start(t0 + ms(1)),
            Start::Later(GROUP_COMMIT_WINDOW - ms(1))
        );
        assert!(!q.mark_dirty(), "the delayed kick is the burst's kick");
        assert_eq!(q.wait(8), Wait::Queued { start_now: false });
        assert_eq!(q.start(t0 + ms(2)), Start::Idle, "a kick is pending");
        q.kick_taken();
        let due = t0 + GROUP_COMMIT_WINDOW;
        assert_eq!(q.start(due), Start::Write(3), "one write for both changes");
        assert_eq!(q.succeeded(3, T), vec![7, 8], "answered once on disk");
        // a change after a quiet spell is written at once
        q.mark_dirty();
        q.kick_taken();
        assert_eq!(q.start(due + ms(100)), Start::Write(4));
    }

    #[test]
    fn a_forced_write_does_not_wait_for_the_window() {
        let t0 = Instant::now();
        let mut q: WriteQueue<u8> = WriteQueue::default();
        q.mark_dirty();
        q.kick_taken();
        assert_eq!(q.start(t0), Start::Write(1));
        q.succeeded(1, T);
        q.stop();
        q.mark_dirty();
        q.kick_taken();
        q.force();
        assert_eq!(q.start(t0), Start::Write(2));
    }

    #[test]
    fn waiters_are_answered_by_the_write_covering_them() {
        let mut c = Clock::new();
        let mut q = WriteQueue::default();
        assert_eq!(q.wait(1), Wait::Done(1), "nothing dirty: answered at once");
        q.mark_dirty();
        assert_eq!(q.wait(2), Wait::Queued { start_now: false });
        q.kick_taken();
        assert_eq!(q.start(c.next()), Start::Write(1));
        q.mark_dirty();
        assert_eq!(q.wait(3), Wait::Queued { start_now: false });
        assert_eq!(
            q.succeeded(1, T),
            vec![2],
            "the later change is not covered"
        );
        q.kick_taken();
        assert_eq!(q.start(c.next()), Start::Write(2));
        assert_eq!(q.succeeded(2, T), vec![3]);
    }

    #[test]
    fn a_queued_waiter_without_kick_starts_a_write() {
        let mut q = WriteQueue::default();
        q.mark_dirty();
        q.kick_taken();
        assert_eq!(q.wait(7), Wait::Queued { start_now: true });
    }

    #[test]
    fn a_failed_write_keeps_waiters_and_waits_for_the_retry() {
        let mut c = Clock::new();
        let mut q = WriteQueue::default();
        q.mark_dirty();
        q.kick_taken();
        let _ = q.wait(1);
        assert_eq!(q.start(c.next()), Start::Write(1));
        assert!(q.failed(1, false).is_empty());
        assert_eq!(
            q.start(c.next()),
            Start::Idle,
            "the retry delay is not over"
        );
        q.retry_due();
        assert_eq!(q.start(c.next()), Start::Write(1));
        assert_eq!(q.succeeded(1, T), vec![1]);
    }

    #[test]
    fn failing_lasts_from_a_failed_write_to_a_successful_one() {
        let mut c = Clock::new();
        let mut q: WriteQueue<u8> = WriteQueue::default();
        assert!(!q.is_failing());
        q.mark_dirty();
        q.kick_taken();
        assert_eq!(q.start(c.next()), Start::Write(1));
        q.failed(1, false);
        assert!(q.is_failing());
        q.retry_due();
        assert_eq!(q.start(c.next()), Start::Write(1));
        q.failed(1, false);
        assert!(q.is_failing(), "still failing after a second failure");
        q.retry_due();
        assert_eq!(q.start(c.next()), Start::Write(1));
        q.succeeded(1, T);
        assert!(!q.is_failing());
    }

    #[test]
    fn a_failed_final_write_releases_waiters() {
        let mut c = Clock::new();
        let mut q = WriteQueue::default();
        q.mark_dirty();
        let _ = q.wait(1);
        assert_eq!(q.start(c.next()), Start::Write(1));
        assert_eq!(q.failed(1, true), vec![1]);
    }

    #[test]
    fn stopped_writes_nothing_until_forced() {
        let mut c = Clock::new();
        let mut q: WriteQueue<u8> = WriteQueue::default();
        q.stop();
        q.mark_dirty();
        assert_eq!(q.start(c.next()), Start::Idle);
        q.force();
        assert!(q.is_forced());
        assert_eq!(q.start(c.next()), Start::Write(1));
    }

    #[test]
    fn a_lazy_change_waits_for_its_delay_or_for_another_write() {
        let mut c = Clock::new();
        let mut q: WriteQueue<u8> = WriteQueue::default();
        assert!(
            q.mark_dirty_lazily(),
            "the first lazy change asks for a timer"
        );
        assert!(
            !q.mark_dirty_lazily(),
            "one timer per batch of lazy changes"
        );
        assert_eq!(q.start(c.next()), Start::Idle, "no write of its own");
        q.lazy_due();
        assert_eq!(q.start(c.next()), Start::Write(2), "written once due");
        q.succeeded(2, T);

        // an urgent change carries the lazy ones made before it
        assert!(q.mark_dirty_lazily());
        q.mark_dirty();
        q.kick_taken();
        assert_eq!(q.start(c.next()), Start::Write(4));
        q.succeeded(4, T);
        q.lazy_due();
        assert_eq!(q.start(c.next()), Start::Idle, "nothing left to write");
    }

    #[test]
    fn a_lazy_change_during_a_write_starts_no_second_write() {
        let mut c = Clock::new();
        let mut q: WriteQueue<u8> = WriteQueue::default();
        q.mark_dirty();
        q.kick_taken();
        assert_eq!(q.start(c.next()), Start::Write(1));
        q.mark_dirty_lazily();
        q.succeeded(1, T);
        assert_eq!(q.start(c.next()), Start::Idle);
        // a waiter needs everything, the lazy change included
        assert_eq!(q.wait(7), Wait::Queued { start_now: true });
        assert_eq!(q.start(c.next()), Start::Write(2));
        assert_eq!(q.succeeded(2, T), vec![7]);
    }

    #[test]
    fn a_forced_stop_writes_the_lazy_changes() {
        let mut c = Clock::new();
        let mut q: WriteQueue<u8> = WriteQueue::default();
        q.mark_dirty_lazily();
        q.force();
        assert_eq!(q.start(c.next()), Start::Write(1));
    }
}
