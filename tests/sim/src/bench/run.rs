//! One measured run: a fresh world, the runner started against it and left
//! to settle, the jobs enqueued (at once, or evenly over the arrival
//! spread), `/proc` sampled until every job is finished and every
//! application deleted, then the runner stopped and the figures computed
//! from `/proc` and from the world's records.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::child::{ChildError, GroupChild};
use super::fleet::{self, FleetWatch};
use super::params::Params;
use super::phases;
use super::procfs;
use super::report::{Figures, Unit};
use super::stats::Distribution;
use crate::clever::{Endpoint as CleverEndpoint, RepoDelay, Timing};
use crate::coordinator::{Endpoint, JobSpec, JobState, Outcome};
use crate::world::{
    job_id_of_app_name, RunnerConfigOptions, ServiceOptions, World, WorldConfig, WorldError,
};

/// Step of the sampling loop (threads, children, completion).
const SAMPLE_STEP: Duration = Duration::from_millis(50);
/// Polls of the coordinator the runner must have made before it counts as idle.
const IDLE_POLLS: u64 = 2;
/// Longest wait for those polls.
const IDLE_WAIT: Duration = Duration::from_secs(60);
/// How long the runner gets to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How long perf gets to write its file after SIGINT.
const PERF_GRACE: Duration = Duration::from_secs(60);
/// Name of the tenant (top-level group) of the bench's jobs.
const TENANT: &str = "bench-group";

/// A runner to measure: its program and the arguments before the
/// configuration file path.
#[derive(Debug, Clone)]
pub struct RunnerCommand {
    /// Column label.
    pub label: String,
    /// Program.
    pub program: PathBuf,
    /// Arguments put before the configuration path (`run` for this runner).
    pub args: Vec<OsString>,
    /// `paas_long_polling = true` in its runner section.
    pub long_polling: bool,
    /// The clever-service-docker executor (standby and reuse) instead of
    /// clever-docker.
    pub reuse: bool,
    /// Takes `--listen-address` and serves this runner's `/metrics` (read
    /// for the state write figures).
    pub serves_metrics: bool,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The world did not start or the configuration could not be written.
    #[error(transparent)]
    World(#[from] WorldError),
    /// The runner could not be started or waited for.
    #[error(transparent)]
    Child(#[from] ChildError),
    /// `/proc` could not be read for the runner.
    #[error("{label}: {source}")]
    Proc {
        /// Runner label.
        label: String,
        /// Cause.
        #[source]
        source: procfs::ProcError,
    },
    /// The run did not end as it should (timeout, leak, early exit…).
    #[error("{label}: {message} (runner log: {log})")]
    Unfinished {
        /// Runner label.
        label: String,
        /// What went wrong.
        message: String,
        /// The runner's log file.
        log: PathBuf,
    },
    /// A run directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// Directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// SIGINT or SIGTERM received.
    #[error("interrupted")]
    Interrupted,
}

/// The figures of one run, plus its side facts.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The figures.
    pub figures: Figures,
    /// The runner's log file.
    pub log: PathBuf,
}

/// Where the runner is while a run goes on.
enum Wait {
    Done,
    TimedOut,
    Exited(String),
}

/// Runs `runner` once against a fresh world described by `params`, with its
/// files in `dir`. `interrupted` is polled in every wait.
pub fn run_once(
    params: &Params,
    runner: &RunnerCommand,
    dir: &Path,
    interrupted: &dyn Fn() -> bool,
) -> Result<RunOutcome, RunError> {
    let deadline = Instant::now() + params.timeout;
    let world = World::start(WorldConfig {
        tenants: vec![TENANT.to_owned()],
        timing: Timing {
            repo_create_delay: RepoDelay::After(params.repo_delay),
            start_delay: params.start_delay,
            // A new helper boots as long after its push as an inner runner
            // starts after the job's push: the same load shape.
            helper_boot_delay: params.start_delay,
            ..WorldConfig::fast_timing()
        },
        coordinator_settings: crate::coordinator::Settings {
            long_poll_ms: Some(
                u64::try_from(params.long_poll_window.as_millis()).unwrap_or(u64::MAX),
            ),
            ..crate::coordinator::Settings::default()
        },
        ..WorldConfig::default()
    })?;
    let options = RunnerConfigOptions {
        concurrent: params.concurrent,
        check_interval: params.check_interval,
        job_progress_poll_interval: params.progress_interval,
        max_concurrent_provisioning: params.max_provisioning,
        // a quota that never binds: `concurrent` jobs of the bench's flavor
        quota_flavor: params.flavor.clone(),
        quota_jobs: u32::try_from(params.concurrent).unwrap_or(u32::MAX),
        default_flavor: params.flavor.clone(),
        max_flavor: Some(params.flavor.clone()),
        trace_watch_poll_step: params.trace_poll_step,
        deployment_repo_wait_step: params.repo_wait_step,
        long_polling: runner.long_polling,
        service: runner.reuse.then(ServiceOptions::default),
        ..RunnerConfigOptions::default()
    };
    let config = world.write_runner_config(dir, options)?;
    let log = dir.join("runner.log");
    let mut args = runner.args.clone();
    let metrics = if runner.serves_metrics {
        fleet::free_local_address()
    } else {
        None
    };
    if let Some(addr) = metrics {
        args.push(OsString::from("--listen-address"));
        args.push(OsString::from(addr.to_string()));
    }
    args.push(config.into_os_string());
    let mut child = GroupChild::spawn(&runner.program, &args, &log)?;
    let pid = child.pid();
    let label = runner.label.clone();
    let unfinished = |message: String| RunError::Unfinished {
        label: label.clone(),
        message,
        log: log.clone(),
    };
    let proc_err = |source| RunError::Proc {
        label: label.clone(),
        source,
    };
    eprintln!(
        "paas-sim bench: {label}: started, pid {pid}, log {}",
        log.display()
    );

    // idle: the runner has polled the coordinator a few times and has no job
    let idle_by = deadline.min(Instant::now() + IDLE_WAIT);
    loop {
        if interrupted() {
            return Err(RunError::Interrupted);
        }
        if let Some(status) = child.try_wait()? {
            return Err(unfinished(format!("exited before taking jobs ({status})")));
        }
        let polls = world.coordinator().count(Endpoint::JobsRequest);
        if polls >= IDLE_POLLS {
            break;
        }
        if Instant::now() >= idle_by {
            return Err(unfinished(format!(
                "made {polls} job request(s) in {} s, expected {IDLE_POLLS}",
                IDLE_WAIT.as_secs()
            )));
        }
        std::thread::sleep(SAMPLE_STEP);
    }
    let idle = procfs::sample(pid).map_err(proc_err)?;
    let idle_names = procfs::thread_names(pid).unwrap_or_default();
    let mut peak_names = idle_names.clone();
    let before = world.summary();
    let api_before = clever_api_requests(&world);
    let profiler = params
        .perf_output
        .as_deref()
        .and_then(|out| Profiler::attach(pid, out));

    let t0 = Instant::now();
    let mut arrivals = Arrivals::new(params, t0);
    arrivals.enqueue_due(&world, Instant::now());
    let mut peak_threads = idle.threads;
    let mut peak_children = procfs::child_count(pid).unwrap_or(0);
    let mut last = idle;
    let mut watch = params.fleet.then(|| FleetWatch::new(params.jobs, metrics));
    // bounded by the deadline, and by a count as a second guard
    let max_loops = params.timeout.as_millis() / SAMPLE_STEP.as_millis() + 2;
    let mut wait = Wait::TimedOut;
    for _ in 0..max_loops {
        if interrupted() {
            return Err(RunError::Interrupted);
        }
        if let Some(status) = child.try_wait()? {
            wait = Wait::Exited(status.to_string());
            break;
        }
        if let Ok(s) = procfs::sample(pid) {
            peak_threads = peak_threads.max(s.threads);
            last = s;
        }
        if let Some(names) = procfs::thread_names(pid) {
            procfs::raise_peaks(&mut peak_names, &names);
        }
        if let Some(n) = procfs::child_count(pid) {
            peak_children = peak_children.max(n);
        }
        arrivals.enqueue_due(&world, Instant::now());
        if let Some(w) = watch.as_mut() {
            w.observe(&world, pid, Instant::now());
        }
        if all_done(&world, params.jobs) {
            wait = Wait::Done;
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(SAMPLE_STEP);
    }
    let detected = t0.elapsed();
    let end = match wait {
        Wait::Done => procfs::sample(pid).unwrap_or(last),
        Wait::Exited(_) | Wait::TimedOut => last,
    };
    if let Some(p) = profiler {
        p.stop();
    }
    let final_metrics = metrics.and_then(fleet::scrape);
    let stopped = child.stop(STOP_GRACE)?;
    let summary = world.summary();
    let jobs_left = summary.jobs_pending + summary.jobs_running;
    let state = format!(
        "{jobs_left} of {} job(s) not finished, {} application(s) not deleted",
        params.jobs,
        summary.leaks.len()
    );
    match wait {
        Wait::Done => {}
        Wait::TimedOut => {
            return Err(unfinished(format!(
                "timed out after {} s: {state}",
                params.timeout.as_secs()
            )))
        }
        Wait::Exited(status) => {
            return Err(unfinished(format!(
                "the runner exited during the run ({status}): {state}"
            )))
        }
    }
    let problems = summary.problems();
    if !problems.is_empty() {
        return Err(unfinished(format!(
            "the run was not clean: {}",
            problems.join("; ")
        )));
    }
    if stopped.killed {
        eprintln!(
            "paas-sim bench: {label}: did not stop within {} s of SIGTERM and was killed",
            STOP_GRACE.as_secs()
        );
    }

    let mut figures = Figures::default();
    let timeline = Timeline::collect(&world);
    let n = params.jobs as f64;
    let wall = timeline
        .last_event
        .map_or(detected, |t| t.saturating_duration_since(t0));
    figures.push("jobs succeeded", summary.jobs_success as f64, Unit::Count);
    figures.push(
        "wall time, all jobs finished and apps deleted",
        wall.as_secs_f64(),
        Unit::Seconds,
    );
    let run_cpu = end.total_cpu_ms().saturating_sub(idle.total_cpu_ms());
    figures.push("CPU per job", run_cpu as f64 / n, Unit::Millis);
    figures.push(
        "  of which subprocesses",
        end.children_cpu_ms.saturating_sub(idle.children_cpu_ms) as f64 / n,
        Unit::Millis,
    );
    figures.push(
        "CPU before the first job (start-up)",
        idle.total_cpu_ms() as f64,
        Unit::Millis,
    );
    figures.push("peak RSS (VmHWM)", kib_to_mib(end.hwm_kib), Unit::MiB);
    figures.push(
        "idle RSS (before the first job)",
        kib_to_mib(idle.rss_kib),
        Unit::MiB,
    );
    figures.push("peak threads", peak_threads as f64, Unit::Count);
    // each name's own peak: they need not all peak at the same moment
    for (name, peak) in &peak_names {
        figures.push(
            format!("  peak threads named {name:?}"),
            *peak as f64,
            Unit::Count,
        );
    }
    figures.push("idle threads", idle.threads as f64, Unit::Count);
    for (name, n) in &idle_names {
        figures.push(
            format!("  idle threads named {name:?}"),
            *n as f64,
            Unit::Count,
        );
    }
    figures.push("peak child processes", peak_children as f64, Unit::Count);
    figures.push_distribution(
        "created -> acquired (pickup)",
        Distribution::of(&timeline.pickup_latencies),
    );
    figures.push_distribution(
        "acquired -> started",
        Distribution::of(&timeline.start_latencies),
    );
    figures.push_distribution(
        "finished -> app deleted",
        Distribution::of(&timeline.delete_lags),
    );
    phases::push_figures(&mut figures, &phases::collect(&world), params.concurrent);
    figures.push(
        "stop after SIGTERM",
        stopped.took.as_secs_f64(),
        Unit::Seconds,
    );
    push_requests(
        &mut figures,
        "coordinator",
        &before.coordinator_requests,
        &summary.coordinator_requests,
        n,
    );
    push_requests(
        &mut figures,
        "clever",
        &before.clever_requests,
        &summary.clever_requests,
        n,
    );
    let api = clever_api_requests(&world).saturating_sub(api_before);
    figures.push(
        "Clever API requests per job (git excluded)",
        api as f64 / n,
        Unit::PerJob,
    );
    if runner.reuse {
        push_reuse(&mut figures, &world);
    }
    match (&watch, &final_metrics) {
        (Some(w), _) => w.push_figures(&mut figures, &world, final_metrics.as_deref()),
        (None, Some(text)) => fleet::push_state_writes(&mut figures, text, params.jobs),
        (None, None) => {}
    }
    world.shutdown();
    Ok(RunOutcome { figures, log })
}

/// The Clever API requests so far (the git exchanges excluded).
fn clever_api_requests(world: &World) -> u64 {
    let control = world.clever().control();
    [
        CleverEndpoint::ProductsInstances,
        CleverEndpoint::ProductsFlavors,
        CleverEndpoint::CreateApp,
        CleverEndpoint::GetApp,
        CleverEndpoint::ListApps,
        CleverEndpoint::DeleteApp,
        CleverEndpoint::PutEnv,
        CleverEndpoint::GetEnv,
        CleverEndpoint::AppActivity,
        CleverEndpoint::Other,
    ]
    .into_iter()
    .map(|e| control.request_count(e))
    .sum()
}

/// The reuse figures of a clever-service-docker run: the share of the
/// helpers' jobs that ran on a reused application, and acquired ->
/// launched (the helper's `201`) for jobs on new and on reused ones.
fn push_reuse(figures: &mut Figures, world: &World) {
    let summary = world.summary();
    figures.push(
        "reuse ratio (jobs on a reused application)",
        summary.reuse_ratio().unwrap_or(0.0) * 100.0,
        Unit::Percent,
    );
    let (new, reused) = launch_latencies(world);
    figures.push_distribution(
        "acquired -> launched, new application",
        Distribution::of(&new),
    );
    figures.push_distribution(
        "acquired -> launched, reused application",
        Distribution::of(&reused),
    );
}

/// Acquired (handed out by the coordinator) -> launched (accepted by a
/// helper) of each job, for jobs on new and on reused applications.
fn launch_latencies(world: &World) -> (Vec<Duration>, Vec<Duration>) {
    let epoch = world.clever().control().epoch();
    let handed_out: BTreeMap<i64, Instant> = world
        .coordinator()
        .jobs()
        .into_iter()
        .filter_map(|j| Some((j.id, j.times.handed_out?)))
        .collect();
    let (mut new, mut reused) = (Vec::new(), Vec::new());
    for entry in world.clever().control().helper_jobs() {
        let Some(acquired) = handed_out.get(&entry.job_id) else {
            continue;
        };
        let launched = epoch + Duration::from_millis(entry.t_ms);
        let latency = launched.saturating_duration_since(*acquired);
        if entry.reused {
            reused.push(latency);
        } else {
            new.push(latency);
        }
    }
    (new, reused)
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Every job terminal and no application alive.
fn all_done(world: &World, jobs: usize) -> bool {
    let stats = world.coordinator().stats();
    let terminal: u64 = stats
        .jobs
        .iter()
        .filter(|(s, _)| s.is_terminal())
        .map(|(_, n)| *n)
        .sum();
    terminal >= jobs as u64 && world.clever().control().summary().live_count == 0
}

/// Requests per job made during the run (after the idle snapshot), one row
/// per endpoint that saw any, and their total.
fn push_requests(
    figures: &mut Figures,
    side: &str,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    n: f64,
) {
    let mut total = 0u64;
    let mut rows = Vec::new();
    for (endpoint, count) in after {
        let during = count.saturating_sub(before.get(endpoint).copied().unwrap_or(0));
        if during > 0 {
            total += during;
            rows.push((endpoint.clone(), during));
        }
    }
    figures.push(
        format!("{side} requests per job (all)"),
        total as f64 / n,
        Unit::PerJob,
    );
    for (endpoint, during) in rows {
        figures.push(
            format!("  {side} {endpoint}"),
            during as f64 / n,
            Unit::PerJob,
        );
    }
}

/// Per-job latencies from the coordinator's job records and the fake Clever
/// Cloud's application ledger.
struct Timeline {
    /// Creation at the coordinator to hand-out (job pickup).
    pickup_latencies: Vec<Duration>,
    /// Hand-out to the first trace bytes (written by the inner runner).
    start_latencies: Vec<Duration>,
    /// Terminal status to deletion of the job's application.
    delete_lags: Vec<Duration>,
    /// Latest job end or application deletion.
    last_event: Option<Instant>,
}

impl Timeline {
    fn collect(world: &World) -> Timeline {
        let epoch = world.clever().control().epoch();
        let mut deleted: BTreeMap<i64, Instant> = BTreeMap::new();
        for app in world.clever().control().apps() {
            let (Some(job), Some(ms)) = (job_id_of_app_name(&app.name), app.deleted_ms) else {
                continue;
            };
            let at = epoch + Duration::from_millis(ms);
            let slot = deleted.entry(job).or_insert(at);
            *slot = (*slot).max(at);
        }
        let mut pickup_latencies = Vec::new();
        let mut start_latencies = Vec::new();
        let mut delete_lags = Vec::new();
        let mut last_event: Option<Instant> = deleted.values().max().copied();
        for job in world.coordinator().jobs() {
            let t = job.times;
            if let (Some(c), Some(a)) = (t.created, t.handed_out) {
                pickup_latencies.push(a.saturating_duration_since(c));
            }
            if let (Some(a), Some(s)) = (t.handed_out, t.first_trace) {
                start_latencies.push(s.saturating_duration_since(a));
            }
            if let Some(f) = t.finished {
                last_event = Some(last_event.map_or(f, |l| l.max(f)));
                if job.status == JobState::Success || job.status == JobState::Failed {
                    if let Some(d) = deleted.get(&job.id) {
                        delete_lags.push(d.saturating_duration_since(f));
                    }
                }
            }
        }
        Timeline {
            pickup_latencies,
            start_latencies,
            delete_lags,
            last_event,
        }
    }
}

/// The bench's jobs, enqueued at once or evenly over the arrival spread.
struct Arrivals {
    spec: JobSpec,
    t0: Instant,
    spread: Duration,
    total: usize,
    enqueued: usize,
}

impl Arrivals {
    fn new(params: &Params, t0: Instant) -> Arrivals {
        Arrivals {
            spec: JobSpec {
                flavor: Some(params.flavor.clone()),
                root_namespace: TENANT.to_owned(),
                duration_ms: u64::try_from(params.job_duration.as_millis()).unwrap_or(u64::MAX),
                outcome: Outcome::Success,
                ..JobSpec::default()
            },
            t0,
            spread: params.arrival_spread,
            total: params.jobs,
            enqueued: 0,
        }
    }

    /// When job `i` (from 0) is due: `i / total` of the spread after t0.
    fn due(&self, i: usize) -> Instant {
        let fraction = i as f64 / self.total.max(1) as f64;
        self.t0 + self.spread.mul_f64(fraction)
    }

    /// Enqueues every job due by `now`.
    fn enqueue_due(&mut self, world: &World, now: Instant) {
        while self.enqueued < self.total && self.due(self.enqueued) <= now {
            self.enqueued += 1;
            world.enqueue(JobSpec {
                name: format!("bench-{}", self.enqueued),
                ..self.spec.clone()
            });
        }
    }
}

/// `perf record -g` attached to the runner for the busy part of the run.
struct Profiler {
    child: GroupChild,
}

impl Profiler {
    /// Starts `perf record -g -p PID -o OUT` (stderr next to OUT); `None`,
    /// with a message, when perf cannot be started.
    fn attach(pid: u32, out: &Path) -> Option<Profiler> {
        let log = out.with_extension("log");
        let args: Vec<OsString> = [
            "record",
            "-g",
            "-F",
            "499",
            "-p",
            &pid.to_string(),
            "-o",
            &out.display().to_string(),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let perf = which("perf")?;
        match GroupChild::spawn(&perf, &args, &log) {
            Ok(child) => {
                eprintln!(
                    "paas-sim bench: perf recording pid {pid} into {}",
                    out.display()
                );
                Some(Profiler { child })
            }
            Err(e) => {
                eprintln!("paas-sim bench: no profile: {e}");
                None
            }
        }
    }

    /// SIGINT (perf then writes its file), a bounded wait, then a stop.
    fn stop(mut self) {
        let ended = self
            .child
            .signal(nix::sys::signal::Signal::SIGINT)
            .and_then(|()| self.child.wait_timeout(PERF_GRACE));
        if !matches!(ended, Ok(Some(_))) {
            eprintln!(
                "paas-sim bench: perf did not stop within {} s of SIGINT",
                PERF_GRACE.as_secs()
            );
        }
        if let Err(e) = self.child.stop(PERF_GRACE) {
            eprintln!("paas-sim bench: perf did not stop cleanly: {e}");
        }
    }
}

/// `program` in a directory of `PATH`, if there.
fn which(program: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("paas-sim bench: no profile: {program} is not on PATH");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_spread_evenly_from_the_start() {
        let t0 = Instant::now();
        let spread = |s: u64, total: usize| Arrivals {
            spec: JobSpec::default(),
            t0,
            spread: Duration::from_secs(s),
            total,
            enqueued: 0,
        };
        let a = spread(10, 5);
        let offsets: Vec<Duration> = (0..5).map(|i| a.due(i) - t0).collect();
        let secs = Duration::from_secs;
        assert_eq!(offsets, vec![secs(0), secs(2), secs(4), secs(6), secs(8)]);
        let at_once = spread(0, 3);
        assert!((0..3).all(|i| at_once.due(i) == t0));
    }
}
