//! `paas-sim` command: serve the simulated world for a runner started by
//! hand (`serve`), or run the whole demo (`demo`): world, runner binary,
//! mixed jobs, live progress, verdict.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use paas_sim::coordinator::{JobSpec, Outcome};
use paas_sim::runner_process::RunnerProcess;
use paas_sim::scenario::{dependency_proxy_prefix, Scenario, Schedule};
use paas_sim::world::{RunnerConfigOptions, ServiceOptions, World, WorldConfig, WorldSummary};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use structopt::StructOpt;

/// Name of the runner binary looked for next to this one.
const RUNNER_BINARY: &str = "heptapod-paas-runner";
/// Progress refresh period on a terminal.
const TTY_REFRESH: Duration = Duration::from_millis(250);
/// Period of the plain progress lines when stderr is not a terminal.
const PLAIN_REFRESH: Duration = Duration::from_secs(2);
/// How long the runner gets to stop after SIGTERM before SIGKILL.
const RUNNER_GRACE: Duration = Duration::from_secs(60);
/// How long the demo waits for decommissions once every job is over.
const DRAIN_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, StructOpt)]
#[structopt(
    name = "paas-sim",
    about = "The simulated world of heptapod-paas-runner: a fake GitLab coordinator, a fake \
             Clever Cloud API with its Git deployment endpoint and a simulated inner runner, \
             all on 127.0.0.1.",
    after_help = "`paas-sim demo` is the one-command tour: it starts the world, runs the \
                  heptapod-paas-runner binary against it, feeds it mixed jobs and checks that \
                  no application leaked, no job got two applications, the weighted quota held \
                  and the pushed build contexts were right.\n\
                  `paas-sim serve --scenario FILE` keeps a world up for a runner you start \
                  yourself (see the scenario format in tests/sim/src/scenario.rs).\n\
                  `paas-sim bench` measures runners side by side on one load \
                  (scripts/bench builds and runs it; exit 130 when interrupted).\n\
                  Exit codes: 0 clean run, 1 problems found or runtime failure, 2 bad \
                  arguments or scenario."
)]
// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Cli {
    /// Start the world of a scenario, write a ready-to-use runner
    /// configuration, print the URLs, play the scenario's jobs and faults,
    /// and serve until SIGINT or SIGTERM (then print a summary).
    Serve(ServeArgs),
    /// Run heptapod-paas-runner against a fresh world with N mixed jobs,
    /// show progress, stop the runner with SIGTERM once every job is over,
    /// print a summary; exit 0 only for a clean run.
    Demo(DemoArgs),
    /// Measure heptapod-paas-runner (and optionally the Python runner) on
    /// the same simulated load: wall time, CPU per job, memory, threads,
    /// latencies and requests per job, side by side (see scripts/bench).
    Bench(paas_sim::bench::cli::BenchArgs),
}

#[derive(Debug, StructOpt)]
struct ServeArgs {
    /// Scenario file (TOML: world, timing, runner options, jobs, faults).
    #[structopt(long, parse(from_os_str))]
    scenario: PathBuf,
    /// Directory for the runner configuration (`runner.toml`) and its state
    /// file; a new temporary directory (kept) when absent.
    #[structopt(long = "config-dir", parse(from_os_str))]
    config_dir: Option<PathBuf>,
}

#[derive(Debug, StructOpt)]
struct DemoArgs {
    /// Number of jobs to run.
    #[structopt(long, default_value = "12")]
    jobs: usize,
    /// The heptapod-paas-runner binary (default: next to this executable).
    #[structopt(long, parse(from_os_str))]
    runner: Option<PathBuf>,
    /// Seed of the job mix (flavors, durations, failures).
    #[structopt(long, default_value = "1")]
    seed: u64,
    /// Overall time limit, seconds.
    #[structopt(long, default_value = "300")]
    timeout: u64,
    /// Keep the temporary directory (configuration, state file, runner log).
    #[structopt(long)]
    keep: bool,
    /// Run the jobs with the clever-service-docker executor: a helper
    /// service in each application, finished jobs' applications kept on
    /// standby for the next ones (the summary gives the reuse ratio).
    #[structopt(long)]
    reuse: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::from_args_safe() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            println!("{e}");
            return ExitCode::SUCCESS;
        }
    };
    let result = match cli {
        Cli::Serve(args) => serve(args),
        Cli::Demo(args) => demo(args),
        Cli::Bench(args) => bench(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("paas-sim: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Counts SIGINT and SIGTERM received, from a dedicated thread.
#[derive(Clone)]
struct Signals {
    count: Arc<AtomicUsize>,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        let count = Arc::new(AtomicUsize::new(0));
        let thread_count = Arc::clone(&count);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build the signal runtime")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("paas-sim-signals".to_owned())
            .spawn(move || {
                rt.block_on(async move {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (mut int, mut term) = match (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) {
                        (Ok(i), Ok(t)) => (i, t),
                        (Err(e), _) | (_, Err(e)) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(()));
                    loop {
                        tokio::select! {
                            _ = int.recv() => {}
                            _ = term.recv() => {}
                        }
                        thread_count.fetch_add(1, Ordering::SeqCst);
                    }
                });
            })
            .context("cannot start the signal thread")?;
        match rx.recv() {
            Ok(Ok(())) => Ok(Signals { count }),
            Ok(Err(e)) => Err(anyhow!("cannot install signal handlers: {e}")),
            Err(_) => Err(anyhow!("the signal thread died")),
        }
    }

    fn received(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("paas-sim: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let signals = Signals::install()?;
    let world = World::start(scenario.world.clone())?;
    let dir = match args.config_dir {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("paas-sim-")
            .tempdir()
            .context("cannot create a temporary directory")?
            .keep(),
    };
    let config = world.write_runner_config(&dir, scenario.runner.clone())?;
    print_urls(&world, &config);
    let schedule = Schedule::start(&world, &scenario);
    let mut progress = Progress::new("serve");
    while signals.received() == 0 {
        progress.tick(&world.summary(), false);
        std::thread::sleep(Duration::from_millis(100));
    }
    progress.finish();
    schedule.stop();
    eprintln!("paas-sim: stopping");
    let summary = world.summary();
    print!("{}", summary.render());
    let problems = summary.problems();
    for p in &problems {
        println!("problem: {p}");
    }
    world.shutdown();
    Ok(ExitCode::SUCCESS)
}

fn bench(args: &paas_sim::bench::cli::BenchArgs) -> anyhow::Result<ExitCode> {
    let runner = find_runner(args.runner.clone())?;
    let signals = Signals::install()?;
    Ok(paas_sim::bench::cli::main(args, &runner, &|| {
        signals.received() > 0
    }))
}

fn print_urls(world: &World, config: &Path) {
    let c = world.coordinator();
    let cc = world.clever();
    println!("coordinator:           {}", c.url());
    println!("coordinator control:   {}/jobs", c.sim_url());
    println!("clever cloud API:      {}", cc.api_url());
    println!("clever cloud control:  {}/ledger", cc.sim_url());
    println!("runner configuration:  {}", config.display());
    println!(
        "run the runner with:   {RUNNER_BINARY} run {}",
        config.display()
    );
    println!("stop with Ctrl-C (SIGINT) or SIGTERM");
    let _ = std::io::stdout().flush();
}

/// The compact live status line on stderr.
struct Progress {
    label: &'static str,
    tty: bool,
    start: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl Progress {
    fn new(label: &'static str) -> Progress {
        Progress {
            label,
            tty: std::io::stderr().is_terminal(),
            start: Instant::now(),
            last: None,
            drawn: false,
        }
    }

    fn line(&self, s: &WorldSummary) -> String {
        let done = s.jobs_success + s.jobs_failed + s.jobs_canceled;
        let quota = s.quota_weight.map_or(String::new(), |q| format!("/{q:.1}"));
        // most telling first: on a terminal the line is cut to its width
        format!(
            "[{} {:.1}s] jobs {done}/{} done ({} failed), {} running, {} pending | \
             {} violations | {} live apps, weight {:.1}{quota} (peak {:.1}) | \
             apps created {}, deleted {}",
            self.label,
            self.start.elapsed().as_secs_f64(),
            s.jobs_total,
            s.jobs_failed,
            s.jobs_running,
            s.jobs_pending,
            s.violations.len(),
            s.apps_created.saturating_sub(s.apps_deleted),
            s.live_weight,
            s.max_live_weight,
            s.apps_created,
            s.apps_deleted,
        )
    }

    /// Terminal width from `COLUMNS` (80 when unset or unreadable).
    fn width() -> usize {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|w| *w >= 20)
            .unwrap_or(80)
    }

    /// Draws the line if it is time (always when `force`).
    fn tick(&mut self, s: &WorldSummary, force: bool) {
        let period = if self.tty { TTY_REFRESH } else { PLAIN_REFRESH };
        let due = self.last.is_none_or(|t| t.elapsed() >= period);
        if !due && !force {
            return;
        }
        self.last = Some(Instant::now());
        let line = self.line(s);
        let mut err = std::io::stderr().lock();
        if self.tty {
            // one terminal row, or `\r` would not rewrite it
            let line: String = line.chars().take(Progress::width() - 1).collect();
            let _ = write!(err, "\r{line}\x1b[K");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// Ends the rewritten line.
    fn finish(&mut self) {
        if self.tty && self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// Where the runner binary is: `--runner`, else next to this executable.
fn find_runner(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        if p.is_file() {
            return Ok(p);
        }
        bail!("--runner {}: no such file", p.display());
    }
    let exe = std::env::current_exe().context("cannot locate the paas-sim executable")?;
    let candidate = exe
        .parent()
        .map(|d| d.join(RUNNER_BINARY))
        .ok_or_else(|| anyhow!("the paas-sim executable has no parent directory"))?;
    if candidate.is_file() {
        Ok(candidate)
    } else {
        bail!(
            "{} not found; build it (`cargo build -p heptapod-paas-runner`, same profile as \
             paas-sim) or pass --runner PATH",
            candidate.display()
        )
    }
}

/// The demo's job mix: mixed flavors and durations, some failing, a couple
/// with the dependency proxy and services.
fn demo_jobs(n: usize, seed: u64, tenant: &str) -> Vec<JobSpec> {
    let mut rng = StdRng::seed_from_u64(seed);
    let flavors = [None, Some("XS"), Some("S"), Some("M"), Some("L")];
    let stages = ["build", "test", "lint", "package"];
    (0..n)
        .map(|i| {
            let flavor = flavors
                .get(rng.random_range(0..flavors.len()))
                .copied()
                .flatten();
            let stage = stages.get(i % stages.len()).copied().unwrap_or("test");
            let failed = i % 5 == 3 || rng.random_bool(0.1);
            let proxy = i == 1 || i == 6;
            JobSpec {
                name: format!("{stage}-{}", i + 1),
                stage: stage.to_owned(),
                flavor: flavor.map(str::to_owned),
                root_namespace: tenant.to_owned(),
                project_name: "demo".to_owned(),
                dependency_proxy_prefix: proxy.then(|| dependency_proxy_prefix(tenant)),
                image: Some(
                    if proxy {
                        "python:3.12"
                    } else {
                        "debian:bookworm"
                    }
                    .to_owned(),
                ),
                services: if proxy {
                    vec!["postgres:16".to_owned(), "redis:7".to_owned()]
                } else {
                    Vec::new()
                },
                duration_ms: rng.random_range(1500..5000),
                outcome: if failed {
                    Outcome::Failed
                } else {
                    Outcome::Success
                },
                ..JobSpec::default()
            }
        })
        .collect()
}

fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.jobs == 0 || args.jobs > 1000 {
        eprintln!("paas-sim: --jobs must be between 1 and 1000");
        return Ok(ExitCode::from(2));
    }
    let runner_bin = find_runner(args.runner)?;
    let signals = Signals::install()?;
    let tenant = "demo-group";
    let world = World::start(WorldConfig {
        tenants: vec![tenant.to_owned()],
        seed: args.seed,
        ..WorldConfig::default()
    })?;
    let dir = tempfile::Builder::new()
        .prefix("paas-sim-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let options = RunnerConfigOptions {
        service: args.reuse.then(ServiceOptions::default),
        ..RunnerConfigOptions::default()
    };
    let config = world.write_runner_config(dir.path(), options.clone())?;
    let log = dir.path().join("runner.log");
    eprintln!(
        "paas-sim demo: coordinator {}, Clever Cloud {}, runner {}",
        world.coordinator().url(),
        world.clever().api_url(),
        runner_bin.display()
    );
    eprintln!(
        "paas-sim demo: {} jobs{}, quota {} x {} (weight {:.1}), runner log {}",
        args.jobs,
        if args.reuse {
            " on clever-service-docker (reuse)"
        } else {
            ""
        },
        options.quota_jobs,
        options.quota_flavor,
        world.quota_weight(&options).unwrap_or(0.0),
        log.display()
    );
    let mut runner = RunnerProcess::spawn_runner(&runner_bin, &config, &log, &[])?;
    for spec in demo_jobs(args.jobs, args.seed, tenant) {
        world.enqueue(spec);
    }

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut progress = Progress::new("demo");
    let mut notes: Vec<String> = Vec::new();
    let mut drain_deadline: Option<Instant> = None;
    // bounded by the deadline (and by a count as a second guard)
    let max_loops = args
        .timeout
        .saturating_mul(20)
        .saturating_add(DRAIN_WAIT.as_secs() * 20);
    for _ in 0..max_loops {
        let summary = world.summary();
        progress.tick(&summary, false);
        if signals.received() > 0 {
            notes.push("interrupted by a signal".to_owned());
            break;
        }
        if let Some(status) = runner.try_wait()? {
            notes.push(format!("the runner exited early ({status})"));
            break;
        }
        let jobs_over = summary.jobs_pending == 0 && summary.jobs_running == 0;
        if jobs_over {
            let drain = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_WAIT);
            if summary.leaks.is_empty() || Instant::now() >= drain {
                break;
            }
        }
        if Instant::now() >= deadline {
            notes.push(format!("timed out after {} s", args.timeout));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    progress.tick(&world.summary(), true);
    progress.finish();

    eprintln!(
        "paas-sim demo: stopping the runner (SIGTERM, pid {})",
        runner.pid()
    );
    let (status, killed) = runner.stop(RUNNER_GRACE)?;
    if killed {
        notes.push(format!(
            "the runner did not stop within {} s of SIGTERM and was killed",
            RUNNER_GRACE.as_secs()
        ));
    } else if !status.success() {
        notes.push(format!("the runner exited with {status}"));
    }
    for what in world.leaked_secrets(&runner.log()) {
        notes.push(format!("the runner log contains the {what}"));
    }
    let summary = world.summary();
    println!("\n== paas-sim demo summary");
    print!("{}", summary.render());
    let mut problems = summary.problems();
    problems.extend(notes);
    let clean = problems.is_empty();
    for p in &problems {
        println!("problem: {p}");
    }
    if clean {
        println!(
            "verdict: clean run (no leak, no violation, no duplicate, quota held, no secret in the runner log)"
        );
    } else {
        println!("verdict: PROBLEMS FOUND");
        print_log_tail(&runner.log());
    }
    if args.keep || !clean {
        let kept = dir.keep();
        println!("files kept in {}", kept.display());
    }
    world.shutdown();
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_log_tail(log: &str) {
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(30);
    println!("-- last lines of the runner log:");
    for l in lines.iter().skip(from) {
        println!("   {l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_mix_is_mixed_and_seeded() {
        let a = demo_jobs(12, 1, "g");
        assert_eq!(a, demo_jobs(12, 1, "g"));
        assert!(a.iter().any(|j| j.outcome == Outcome::Failed));
        assert!(a.iter().any(|j| j.outcome == Outcome::Success));
        assert_eq!(
            a.iter()
                .filter(|j| j.dependency_proxy_prefix.is_some() && !j.services.is_empty())
                .count(),
            2
        );
        let flavors: std::collections::BTreeSet<_> = a.iter().map(|j| j.flavor.clone()).collect();
        assert!(flavors.len() >= 3, "{flavors:?}");
        assert!(a
            .iter()
            .all(|j| (1500..5000).contains(&j.duration_ms) && j.root_namespace == "g"));
    }
}
