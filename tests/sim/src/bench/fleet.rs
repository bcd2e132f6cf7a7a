//! Figures of long-running loads (`paas-sim bench --fleet`): the steady
//! state while every job runs (CPU per minute, RSS, requests per minute per
//! endpoint), the ramp (first acquisition until every job started), and the
//! runner's state writes read from its `/metrics` (writes per job, write
//! time quantiles).
//!
//! The steady-state window opens [`SETTLE`] after the last job started
//! (jobs whose launch failed aside) and closes at the last mark taken
//! before the first started job finished; marks are taken every
//! [`MARK_STEP`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::procfs;
use super::report::{Figures, Unit};
use crate::world::World;

/// How often the started and finished jobs are counted.
const CHECK_STEP: Duration = Duration::from_secs(1);
/// How often a mark (CPU, RSS, request counts) is taken in the window.
const MARK_STEP: Duration = Duration::from_secs(10);
/// Time left after the last start before the window opens (the start-up
/// traffic of the last jobs ends).
const SETTLE: Duration = Duration::from_secs(5);
/// Time limit of a `/metrics` request.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `/metrics` answer read.
const SCRAPE_MAX_BYTES: u64 = 4 << 20;

/// Name of the state write time histogram.
const WRITE_HISTOGRAM: &str = "heptapod_paas_runner_state_write_duration_seconds";
/// Name of the state write counter.
const WRITES_TOTAL: &str = "heptapod_paas_runner_state_writes_total";

/// What the runner and the world had done at one moment.
#[derive(Debug, Clone)]
struct Mark {
    at: Instant,
    cpu_ms: u64,
    rss_kib: u64,
    coordinator: BTreeMap<String, u64>,
    clever: BTreeMap<String, u64>,
    state_writes: Option<f64>,
}

impl Mark {
    fn take(world: &World, pid: u32, metrics: Option<SocketAddr>) -> Option<Mark> {
        let s = procfs::sample(pid).ok()?;
        let summary = world.summary();
        Some(Mark {
            at: Instant::now(),
            cpu_ms: s.total_cpu_ms(),
            rss_kib: s.rss_kib,
            coordinator: summary.coordinator_requests,
            clever: summary.clever_requests,
            state_writes: metrics
                .and_then(scrape)
                .and_then(|text| metric_value(&text, WRITES_TOTAL)),
        })
    }
}

/// Watches a long-running load for its steady state.
#[derive(Debug)]
pub struct FleetWatch {
    jobs: usize,
    metrics: Option<SocketAddr>,
    next_check: Instant,
    all_started: Option<Instant>,
    first: Option<Mark>,
    last: Option<Mark>,
    closed: bool,
}

impl FleetWatch {
    /// A watch of `jobs` jobs; `metrics` is the runner's monitoring address.
    pub fn new(jobs: usize, metrics: Option<SocketAddr>) -> FleetWatch {
        FleetWatch {
            jobs,
            metrics,
            next_check: Instant::now(),
            all_started: None,
            first: None,
            last: None,
            closed: false,
        }
    }

    /// Counts the started and finished jobs (once per [`CHECK_STEP`]) and
    /// takes the window's marks.
    pub fn observe(&mut self, world: &World, pid: u32, now: Instant) {
        if self.closed || now < self.next_check {
            return;
        }
        self.next_check = now + CHECK_STEP;
        let jobs = world.coordinator().jobs();
        // a job that ended without starting (its launch failed) does not
        // hold the window shut; the first started job to end closes it
        let settled = jobs
            .iter()
            .filter(|j| j.times.first_trace.is_some() || j.times.finished.is_some())
            .count();
        let finished = jobs
            .iter()
            .any(|j| j.times.first_trace.is_some() && j.times.finished.is_some());
        if finished {
            // the last mark, taken before any started job finished, closes
            // the window
            self.closed = true;
            return;
        }
        if self.all_started.is_none() && settled >= self.jobs {
            self.all_started = Some(now);
        }
        let Some(all) = self.all_started else {
            return;
        };
        if now < all + SETTLE {
            return;
        }
        let due = self.last.as_ref().is_none_or(|m| now >= m.at + MARK_STEP);
        if due {
            if let Some(m) = Mark::take(world, pid, self.metrics) {
                if self.first.is_none() {
                    self.first = Some(m.clone());
                }
                self.last = Some(m);
            }
        }
    }

    /// Pushes the ramp, steady-state and state write figures.
    pub fn push_figures(&self, figures: &mut Figures, world: &World, final_metrics: Option<&str>) {
        let jobs = world.coordinator().jobs();
        let first_acquired = jobs.iter().filter_map(|j| j.times.handed_out).min();
        let last_started = jobs.iter().filter_map(|j| j.times.first_trace).max();
        let all_started = jobs.iter().all(|j| j.times.first_trace.is_some());
        if let (Some(a), Some(s), true) = (first_acquired, last_started, all_started) {
            figures.push(
                "first acquisition -> every job started",
                s.saturating_duration_since(a).as_secs_f64(),
                Unit::Seconds,
            );
        }
        if let (Some(a), Some(b)) = (&self.first, &self.last) {
            push_window(figures, a, b);
        }
        if let Some(text) = final_metrics {
            push_state_writes(figures, text, self.jobs);
        }
    }
}

fn push_window(figures: &mut Figures, a: &Mark, b: &Mark) {
    let span = b.at.saturating_duration_since(a.at);
    let minutes = span.as_secs_f64() / 60.0;
    if minutes <= 0.0 {
        return;
    }
    figures.push(
        "steady state (every job running) measured over",
        span.as_secs_f64(),
        Unit::Seconds,
    );
    let cpu = b.cpu_ms.saturating_sub(a.cpu_ms) as f64;
    figures.push("  CPU per minute", cpu / minutes, Unit::Millis);
    figures.push(
        "  CPU, share of one core",
        cpu / span.as_secs_f64() / 1000.0 * 100.0,
        Unit::Percent,
    );
    figures.push(
        "  RSS (VmRSS at the window's end)",
        b.rss_kib as f64 / 1024.0,
        Unit::MiB,
    );
    for (side, before, after) in [
        ("coordinator", &a.coordinator, &b.coordinator),
        ("clever", &a.clever, &b.clever),
    ] {
        let mut total = 0u64;
        let mut rows = Vec::new();
        for (endpoint, n) in after {
            let during = n.saturating_sub(before.get(endpoint).copied().unwrap_or(0));
            if during > 0 {
                total += during;
                rows.push((endpoint, during));
            }
        }
        figures.push(
            format!("  {side} requests per minute (all)"),
            total as f64 / minutes,
            Unit::PerMinute,
        );
        for (endpoint, during) in rows {
            figures.push(
                format!("    {side} {endpoint} per minute"),
                during as f64 / minutes,
                Unit::PerMinute,
            );
        }
    }
    if let (Some(x), Some(y)) = (a.state_writes, b.state_writes) {
        figures.push(
            "  state writes per minute",
            (y - x).max(0.0) / minutes,
            Unit::PerMinute,
        );
    }
}

/// State writes per job and the write time quantiles (bucket upper bounds
/// of the runner's histogram).
pub fn push_state_writes(figures: &mut Figures, text: &str, jobs: usize) {
    let n = jobs.max(1) as f64;
    if let Some(writes) = metric_value(text, WRITES_TOTAL) {
        figures.push("state writes per job (whole run)", writes / n, Unit::PerJob);
        // each write: fsync of the file, fsync of its directory
        figures.push("  fsyncs per job", 2.0 * writes / n, Unit::PerJob);
    }
    let buckets = histogram_buckets(text, WRITE_HISTOGRAM);
    for (label, q) in [
        ("state write time p50 (bucket bound)", 0.5),
        ("state write time p99 (bucket bound)", 0.99),
        ("state write time max (bucket bound)", 1.0),
    ] {
        if let Some(bound) = quantile_bound(&buckets, q) {
            figures.push(label, bound * 1000.0, Unit::Millis);
        }
    }
    if let (Some(sum), Some(count)) = (
        metric_value(text, &format!("{WRITE_HISTOGRAM}_sum")),
        metric_value(text, &format!("{WRITE_HISTOGRAM}_count")),
    ) {
        if count > 0.0 {
            figures.push("state write time mean", sum / count * 1000.0, Unit::Millis);
        }
    }
}

/// A free port on 127.0.0.1 for the runner's monitoring endpoints.
pub fn free_local_address() -> Option<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()
}

/// The body of `GET /metrics` at `addr`, if it answers in time.
pub fn scrape(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT)).ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.take(SCRAPE_MAX_BYTES).read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The value of the unlabelled sample `name` in a Prometheus text exposition.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}

/// The cumulative buckets of histogram `name`: (upper bound, count), in
/// order, `+Inf` included.
fn histogram_buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut out: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The smallest bucket bound under which a share `q` of the observations
/// fall (`q = 1`: every observation, the bound of the maximum).
fn quantile_bound(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let want = (q * total).ceil().max(1.0);
    buckets
        .iter()
        .find(|(_, count)| *count >= want)
        .map(|(bound, _)| *bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE heptapod_paas_runner_state_writes_total counter
heptapod_paas_runner_state_writes_total 40
heptapod_paas_runner_state_write_duration_seconds_sum 0.2
heptapod_paas_runner_state_write_duration_seconds_count 40
heptapod_paas_runner_state_write_duration_seconds_bucket{le=\"0.001\"} 10
heptapod_paas_runner_state_write_duration_seconds_bucket{le=\"0.005\"} 30
heptapod_paas_runner_state_write_duration_seconds_bucket{le=\"0.01\"} 39
heptapod_paas_runner_state_write_duration_seconds_bucket{le=\"0.025\"} 40
heptapod_paas_runner_state_write_duration_seconds_bucket{le=\"+Inf\"} 40
";

    #[test]
    fn quantiles_are_the_bounds_of_the_buckets_holding_them() {
        let b = histogram_buckets(TEXT, WRITE_HISTOGRAM);
        assert_eq!(b.len(), 5);
        assert_eq!(quantile_bound(&b, 0.25), Some(0.001));
        assert_eq!(quantile_bound(&b, 0.5), Some(0.005));
        assert_eq!(quantile_bound(&b, 0.99), Some(0.025));
        assert_eq!(quantile_bound(&b, 1.0), Some(0.025));
        assert_eq!(quantile_bound(&[], 0.5), None);
        assert_eq!(quantile_bound(&[(f64::INFINITY, 0.0)], 0.5), None);
    }

    #[test]
    fn writes_per_job_and_quantiles_become_figures() {
        assert_eq!(metric_value(TEXT, WRITES_TOTAL), Some(40.0));
        assert_eq!(
            metric_value(TEXT, "heptapod_paas_runner_state_writes"),
            None
        );
        let mut f = Figures::default();
        push_state_writes(&mut f, TEXT, 20);
        assert_eq!(f.get("state writes per job (whole run)"), Some(2.0));
        assert_eq!(f.get("  fsyncs per job"), Some(4.0));
        assert_eq!(f.get("state write time p99 (bucket bound)"), Some(25.0));
        assert_eq!(f.get("state write time mean"), Some(5.0));
    }
}
