//! Summaries of measured values: a latency distribution, and the median of
//! repeated runs.

use std::time::Duration;

/// Mean, median, 95th percentile and maximum of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distribution {
    /// Number of values.
    pub count: usize,
    /// Arithmetic mean, seconds.
    pub mean: f64,
    /// Median (nearest rank), seconds.
    pub p50: f64,
    /// 95th percentile (nearest rank), seconds.
    pub p95: f64,
    /// Largest value, seconds.
    pub max: f64,
}

impl Distribution {
    /// The distribution of `values`; `None` when there is none.
    pub fn of(values: &[Duration]) -> Option<Distribution> {
        if values.is_empty() {
            return None;
        }
        let mut secs: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
        secs.sort_by(f64::total_cmp);
        let mean = secs.iter().sum::<f64>() / secs.len() as f64;
        Some(Distribution {
            count: secs.len(),
            mean,
            p50: nearest_rank(&secs, 50),
            p95: nearest_rank(&secs, 95),
            max: secs.last().copied().unwrap_or(0.0),
        })
    }
}

/// Nearest-rank percentile `p` (0–100) of sorted, non-empty `sorted`.
fn nearest_rank(sorted: &[f64], p: usize) -> f64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted
        .get(rank - 1)
        .or(sorted.last())
        .copied()
        .unwrap_or(0.0)
}

/// Median of `values` (mean of the two middle ones for an even count);
/// `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => v.get(n / 2).copied(),
        _ => Some((v.get(n / 2 - 1)? + v.get(n / 2)?) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_of_a_hundred() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let d = Distribution::of(&values).expect("non-empty");
        assert_eq!(d.count, 100);
        assert!((d.mean - 0.0505).abs() < 1e-9);
        assert!((d.p50 - 0.050).abs() < 1e-9);
        assert!((d.p95 - 0.095).abs() < 1e-9);
        assert!((d.max - 0.100).abs() < 1e-9);
        assert_eq!(Distribution::of(&[]), None);
        let one = Distribution::of(&[Duration::from_secs(2)]).expect("one value");
        assert_eq!((one.p50, one.p95, one.max), (2.0, 2.0, 2.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
