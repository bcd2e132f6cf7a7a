//! Exponential back-off with jitter: the one retry delay of the workspace.
//!
//! Every retry loop (coordinator polls, PAAS calls, deletes, start-up
//! checks, the Clever API client) takes its delays from a [`Backoff`]. The
//! delay ceiling grows as `base · 2^(n-1)` up to `max`; with
//! [`Jitter::Full`] the delay actually waited is drawn uniformly in
//! `[0, ceiling]`, with [`Jitter::Equal`] in `[ceiling/2, ceiling]`, so that
//! several runner hosts behind one GitLab do not retry in lock-step after an
//! outage. `Backoff::reset` starts over after a success.
//!
//! Status polls (deployment repository state, job trace) wait on short
//! steps that grow: [`BackoffPolicy::polling`], without jitter.
//!
//! The random source is a small seeded generator (SplitMix64): production
//! seeds it from the clock and a per-process counter, tests pass a fixed
//! seed ([`Backoff::seeded`]) and get the same delays every run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First wait of a status poll ([`BackoffPolicy::polling`]).
pub(crate) const FIRST_POLL_STEP: Duration = Duration::from_millis(100);

/// How much of each delay is random.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// No randomness: exactly the exponential ceiling.
    None,
    /// Uniform in `[0, ceiling]` (AWS "full jitter"): the best spread.
    Full,
    /// Uniform in `[ceiling / 2, ceiling]`: spread, but never much shorter
    /// than the nominal delay (for waits that must let a server recover).
    Equal,
}

/// The shape of a back-off: first ceiling, largest ceiling, jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Ceiling of the first delay.
    pub base: Duration,
    /// Largest ceiling; delays never exceed it.
    pub max: Duration,
    /// Randomness of each delay.
    pub jitter: Jitter,
}

impl BackoffPolicy {
    /// A policy from `base` doubling up to `max`, with full jitter.
    pub const fn new(base: Duration, max: Duration) -> Self {
        BackoffPolicy {
            base,
            max,
            jitter: Jitter::Full,
        }
    }

    /// The steps of a status poll (deployment repository state, job
    /// trace) whose configured step is `step`: from `FIRST_POLL_STEP`
    /// (or `step` when shorter) doubling up to `step`, without jitter. The
    /// configured step stays the longest wait between two polls.
    pub fn polling(step: Duration) -> Self {
        BackoffPolicy::new(FIRST_POLL_STEP.min(step), step).with_jitter(Jitter::None)
    }

    /// The same policy with another jitter.
    pub const fn with_jitter(self, jitter: Jitter) -> Self {
        BackoffPolicy { jitter, ..self }
    }

    /// A fresh back-off following this policy, seeded from the clock.
    pub fn start(&self) -> Backoff {
        Backoff::new(*self)
    }
}

/// The state of one retry loop: how many delays were taken since the last
/// reset, and the random source.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    retries: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// A back-off seeded from the clock and a per-process counter.
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff::seeded(policy, clock_seed())
    }

    /// A back-off with a fixed seed: the same delays every run (tests).
    pub fn seeded(policy: BackoffPolicy, seed: u64) -> Self {
        Backoff {
            policy,
            retries: 0,
            rng: SplitMix64(seed),
        }
    }

    /// How many delays were taken since the start or the last reset.
    pub(crate) fn retries(&self) -> u32 {
        self.retries
    }

    /// The next delay to wait, and one more retry counted.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = ceiling(&self.policy, self.retries);
        self.retries = self.retries.saturating_add(1);
        match self.policy.jitter {
            Jitter::None => ceiling,
            Jitter::Full => self.fraction_of(ceiling, 0.0),
            Jitter::Equal => self.fraction_of(ceiling, 0.5),
        }
    }

    /// The next delay, but at least `at_least` (a server's `Retry-After`),
    /// itself capped at the policy's `max`.
    pub fn next_delay_at_least(&mut self, at_least: Option<Duration>) -> Duration {
        let delay = self.next_delay();
        match at_least {
            Some(floor) => delay.max(floor.min(self.policy.max)),
            None => delay,
        }
    }

    /// Starts over: the next delay is drawn under `base` again.
    pub(crate) fn reset(&mut self) {
        self.retries = 0;
    }

    /// A uniform draw in `[low · ceiling, ceiling]`.
    fn fraction_of(&mut self, ceiling: Duration, low: f64) -> Duration {
        let unit = self.rng.next_unit();
        ceiling.mul_f64(low + (1.0 - low) * unit)
    }
}

/// A back-off started at its first delay: a retry loop whose call succeeds
/// at once reads no clock and draws nothing.
#[derive(Clone, Debug)]
pub(crate) struct LazyBackoff {
    policy: BackoffPolicy,
    seed: Option<u64>,
    started: Option<Backoff>,
}

impl LazyBackoff {
    /// A back-off following `policy`, seeded with `seed` when given, else
    /// from the clock (at the first delay).
    pub(crate) fn new(policy: BackoffPolicy, seed: Option<u64>) -> Self {
        LazyBackoff {
            policy,
            seed,
            started: None,
        }
    }

    /// The next delay to wait.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let (policy, seed) = (self.policy, self.seed);
        self.started
            .get_or_insert_with(|| match seed {
                Some(seed) => Backoff::seeded(policy, seed),
                None => Backoff::new(policy),
            })
            .next_delay()
    }
}

/// `base · 2^retries`, capped at `max` (and at `base` when `max < base`).
fn ceiling(policy: &BackoffPolicy, retries: u32) -> Duration {
    let factor = 1u32 << retries.min(20);
    policy
        .base
        .saturating_mul(factor)
        .min(policy.max.max(policy.base))
}

/// A seed that differs between processes and between back-offs of one
/// process.
fn clock_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// SplitMix64: a tiny, fast, well-mixed generator; not for cryptography.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1]`.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / ((1u64 << 53) - 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn without_jitter_doubles_and_caps() {
        let mut b = Backoff::seeded(BackoffPolicy::new(S(3), S(20)).with_jitter(Jitter::None), 1);
        let got: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(got, vec![S(3), S(6), S(12), S(20), S(20), S(20)]);
        assert_eq!(b.retries(), 6);
    }

    #[test]
    fn polling_steps_start_short_and_grow_up_to_the_configured_step() {
        let ms = Duration::from_millis;
        let mut b = BackoffPolicy::polling(S(1)).start();
        let got: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(got, vec![ms(100), ms(200), ms(400), ms(800), S(1), S(1)]);
        // A configured step shorter than the first one is used as is.
        let mut b = BackoffPolicy::polling(ms(50)).start();
        assert_eq!((b.next_delay(), b.next_delay()), (ms(50), ms(50)));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::seeded(BackoffPolicy::new(S(1), S(60)).with_jitter(Jitter::None), 1);
        b.next_delay();
        b.next_delay();
        assert_eq!(ceiling(&b.policy, b.retries), S(4));
        b.reset();
        assert_eq!(b.next_delay(), S(1));
    }

    #[test]
    fn full_jitter_stays_under_the_ceiling_and_spreads() {
        let policy = BackoffPolicy::new(S(10), S(10));
        let mut b = Backoff::seeded(policy, 42);
        let draws: Vec<_> = (0..200).map(|_| b.next_delay()).collect();
        assert!(draws.iter().all(|d| *d <= S(10)));
        assert!(draws.iter().any(|d| *d < S(3)), "no short draw in 200");
        assert!(draws.iter().any(|d| *d > S(7)), "no long draw in 200");
    }

    #[test]
    fn equal_jitter_keeps_at_least_half() {
        let policy = BackoffPolicy::new(S(8), S(8)).with_jitter(Jitter::Equal);
        let mut b = Backoff::seeded(policy, 7);
        for _ in 0..200 {
            let d = b.next_delay();
            assert!(d >= S(4) && d <= S(8), "{d:?}");
        }
    }

    #[test]
    fn same_seed_same_delays_other_seed_other_delays() {
        let policy = BackoffPolicy::new(Duration::from_millis(100), S(30));
        let run = |seed| {
            let mut b = Backoff::seeded(policy, seed);
            (0..8).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn two_clock_seeded_backoffs_differ() {
        let policy = BackoffPolicy::new(S(100), S(100));
        let (mut a, mut b) = (policy.start(), policy.start());
        let da: Vec<_> = (0..4).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..4).map(|_| b.next_delay()).collect();
        assert_ne!(da, db);
    }

    #[test]
    fn retry_after_is_a_floor_capped_at_max() {
        let policy = BackoffPolicy::new(S(1), S(30)).with_jitter(Jitter::None);
        let mut b = Backoff::seeded(policy, 1);
        assert_eq!(b.next_delay_at_least(Some(S(12))), S(12));
        assert_eq!(b.next_delay_at_least(Some(S(3600))), S(30));
        assert_eq!(b.next_delay_at_least(None), S(4));
    }

    #[test]
    fn huge_retry_counts_do_not_overflow() {
        let policy = BackoffPolicy::new(S(1), S(300)).with_jitter(Jitter::None);
        let mut b = Backoff::seeded(policy, 1);
        for _ in 0..10_000 {
            assert!(b.next_delay() <= S(300));
        }
    }

    #[test]
    fn a_lazy_backoff_draws_as_the_seeded_one() {
        let policy = BackoffPolicy::new(S(1), S(60));
        let mut lazy = LazyBackoff::new(policy, Some(9));
        let mut eager = Backoff::seeded(policy, 9);
        for _ in 0..5 {
            assert_eq!(lazy.next_delay(), eager.next_delay());
        }
    }

    #[test]
    fn max_below_base_caps_at_base() {
        let policy = BackoffPolicy::new(S(5), S(1)).with_jitter(Jitter::None);
        assert_eq!(Backoff::seeded(policy, 1).next_delay(), S(5));
    }
}
