//! Arguments of `paas-sim bench` and the command itself.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use structopt::StructOpt;

use super::{bench, describe_machine, Params, RunError, RunnerCommand};

/// Longest accepted duration argument, seconds.
const MAX_SECONDS: f64 = 3600.0;

/// `paas-sim bench` arguments.
#[derive(Debug, StructOpt)]
pub struct BenchArgs {
    /// The fleet load: 1000 jobs running 600 s each, concurrent 1000 (and a
    /// quota of as many jobs), job_progress_poll_interval 30 (the runner's
    /// default), a timeout of 1800 s; the options below override it. The
    /// table adds the steady state while every job runs.
    #[structopt(long)]
    pub fleet: bool,
    /// Jobs enqueued [default: 200, --fleet: 1000].
    #[structopt(long)]
    pub jobs: Option<usize>,
    /// Enqueue the jobs evenly over this many seconds (0: all at once), so
    /// that the pickup latency (job created -> acquired) measures polling.
    #[structopt(long = "arrival-spread", default_value = "0")]
    pub arrival_spread: f64,
    /// Also measure this runner with `paas_long_polling = true` (a column
    /// of its own, runs alternating with the others).
    #[structopt(long = "long-polling")]
    pub long_polling: bool,
    /// Also measure this runner with the clever-service-docker executor (a
    /// column of its own): a helper service per application, finished
    /// jobs' applications kept on standby and reused. Adds the reuse ratio,
    /// the Clever API requests per job and acquired -> launched for jobs on
    /// new and on reused applications.
    #[structopt(long)]
    pub reuse: bool,
    /// How long the simulated GitLab Workhorse holds a long poll, seconds.
    #[structopt(long = "long-poll-window", default_value = "20")]
    pub long_poll_window: f64,
    /// Flavor of every job.
    #[structopt(long, default_value = "XS")]
    pub flavor: String,
    /// Run time of every job, seconds [default: 2, --fleet: 600].
    #[structopt(long = "job-seconds")]
    pub job_seconds: Option<f64>,
    /// Deployment repository ready this many seconds after the app creation.
    #[structopt(long = "repo-delay", default_value = "0.5")]
    pub repo_delay: f64,
    /// Inner runner starting this many seconds after the push.
    #[structopt(long = "start-delay", default_value = "0.5")]
    pub start_delay: f64,
    /// `concurrent` [default: 50, --fleet: 1000].
    #[structopt(long)]
    pub concurrent: Option<usize>,
    /// `paas_max_concurrent_provisioning`.
    #[structopt(long = "max-provisioning", default_value = "50")]
    pub max_provisioning: usize,
    /// `check_interval`, seconds.
    #[structopt(long = "check-interval", default_value = "1")]
    pub check_interval: f64,
    /// `job_progress_poll_interval`, seconds [default: 1, --fleet: 30].
    #[structopt(long = "progress-interval")]
    pub progress_interval: Option<f64>,
    /// `cc_deployment_repo_wait_step`, seconds.
    #[structopt(long = "repo-wait-step", default_value = "1")]
    pub repo_wait_step: f64,
    /// `[runners.paas_job_trace_watch] poll_step`, seconds.
    #[structopt(long = "trace-poll-step", default_value = "1")]
    pub trace_poll_step: f64,
    /// Time limit of each run, seconds [default: 300, --fleet: 1800].
    #[structopt(long)]
    pub timeout: Option<f64>,
    /// Runs of each runner (the table shows medians).
    #[structopt(long, default_value = "1")]
    pub repeat: usize,
    /// The heptapod-paas-runner binary (default: next to this executable).
    #[structopt(long, parse(from_os_str))]
    pub runner: Option<PathBuf>,
    /// Also measure this Python `heptapod-paas-runner` entry point (run as
    /// `PROGRAM CONFIG`).
    #[structopt(long = "python-runner", parse(from_os_str))]
    pub python_runner: Option<PathBuf>,
    /// Measure only the `--python-runner` (not this runner).
    #[structopt(long = "python-only")]
    pub python_only: bool,
    /// Column label of the Python runner.
    #[structopt(long = "python-label", default_value = "python")]
    pub python_label: String,
    /// Directory of the runs (configurations, state files, runner logs);
    /// a new temporary directory when absent, kept.
    #[structopt(long, parse(from_os_str))]
    pub dir: Option<PathBuf>,
    /// Record a `perf record -g` profile of the first run of this runner
    /// into this file (needs `perf` on PATH).
    #[structopt(long, parse(from_os_str))]
    pub perf: Option<PathBuf>,
}

fn duration(name: &str, secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && (0.0..=MAX_SECONDS).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!(
            "--{name} must be between 0 and {MAX_SECONDS} seconds"
        ))
    }
}

impl BenchArgs {
    /// The bench parameters, or what is wrong with the arguments.
    pub fn params(&self) -> Result<Params, String> {
        let count = |fleet: usize, default| if self.fleet { fleet } else { default };
        let secs = |fleet: f64, default| if self.fleet { fleet } else { default };
        let jobs = self.jobs.unwrap_or(count(1000, 200));
        let concurrent = self.concurrent.unwrap_or(count(1000, 50));
        let job_seconds = self.job_seconds.unwrap_or(secs(600.0, 2.0));
        let progress_interval = self.progress_interval.unwrap_or(secs(30.0, 1.0));
        let timeout = self.timeout.unwrap_or(secs(1800.0, 300.0));
        if jobs == 0 || jobs > 10_000 {
            return Err("--jobs must be between 1 and 10000".to_owned());
        }
        if concurrent == 0 || self.max_provisioning == 0 {
            return Err("--concurrent and --max-provisioning must be positive".to_owned());
        }
        if self.repeat == 0 || self.repeat > 20 {
            return Err("--repeat must be between 1 and 20".to_owned());
        }
        let timeout = duration("timeout", timeout)?;
        if timeout.is_zero() {
            return Err("--timeout must be positive".to_owned());
        }
        let long_poll_window = duration("long-poll-window", self.long_poll_window)?;
        if long_poll_window.is_zero() {
            return Err("--long-poll-window must be positive".to_owned());
        }
        Ok(Params {
            fleet: self.fleet,
            jobs,
            arrival_spread: duration("arrival-spread", self.arrival_spread)?,
            long_poll_window,
            flavor: self.flavor.clone(),
            job_duration: duration("job-seconds", job_seconds)?,
            repo_delay: duration("repo-delay", self.repo_delay)?,
            start_delay: duration("start-delay", self.start_delay)?,
            concurrent,
            max_provisioning: self.max_provisioning,
            check_interval: duration("check-interval", self.check_interval)?,
            progress_interval: duration("progress-interval", progress_interval)?,
            repo_wait_step: duration("repo-wait-step", self.repo_wait_step)?,
            trace_poll_step: duration("trace-poll-step", self.trace_poll_step)?,
            timeout,
            perf_output: self.perf.clone(),
        })
    }
}

/// Runs the bench with `runner` (this runner's binary, already located);
/// prints the table on stdout. Exit codes: 0 done, 1 a run failed, 2 bad
/// arguments, 130 interrupted.
pub fn main(args: &BenchArgs, runner: &Path, interrupted: &dyn Fn() -> bool) -> ExitCode {
    let params = match args.params() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("paas-sim bench: {e}");
            return ExitCode::from(2);
        }
    };
    let mut runners = vec![RunnerCommand {
        label: "this runner".to_owned(),
        program: runner.to_path_buf(),
        args: vec![OsString::from("run")],
        long_polling: false,
        reuse: false,
        serves_metrics: true,
    }];
    if args.long_polling {
        runners.push(RunnerCommand {
            label: "this runner, long polling".to_owned(),
            program: runner.to_path_buf(),
            args: vec![OsString::from("run")],
            long_polling: true,
            reuse: false,
            serves_metrics: true,
        });
    }
    if args.reuse {
        runners.push(RunnerCommand {
            label: "this runner, reuse".to_owned(),
            program: runner.to_path_buf(),
            args: vec![OsString::from("run")],
            long_polling: false,
            reuse: true,
            serves_metrics: true,
        });
    }
    if args.python_only {
        if args.python_runner.is_none() {
            eprintln!("paas-sim bench: --python-only needs --python-runner");
            return ExitCode::from(2);
        }
        runners.clear();
    }
    if let Some(py) = &args.python_runner {
        if !py.is_file() {
            eprintln!(
                "paas-sim bench: --python-runner {}: no such file",
                py.display()
            );
            return ExitCode::from(2);
        }
        runners.push(RunnerCommand {
            label: args.python_label.clone(),
            program: py.clone(),
            args: Vec::new(),
            long_polling: false,
            reuse: false,
            serves_metrics: false,
        });
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => match tempfile::Builder::new().prefix("paas-sim-bench-").tempdir() {
            Ok(d) => d.keep(),
            Err(e) => {
                eprintln!("paas-sim bench: cannot create a temporary directory: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let machine_before = describe_machine();
    eprintln!("paas-sim bench: files in {}", dir.display());
    match bench(&params, &runners, args.repeat, &dir, interrupted) {
        Ok(table) => {
            println!("load: {}", params.describe());
            println!("machine at start: {machine_before}");
            println!("machine at end:   {}", describe_machine());
            println!(
                "figures: median of {} run(s) per runner, runs alternating",
                args.repeat
            );
            print!("{table}");
            println!(
                "note: the coordinator's trace_patch and job_update counts include the \
                 simulated inner runner's own requests (2 and 1 per job); the Python runner's \
                 CPU includes its git subprocesses, its RSS does not"
            );
            ExitCode::SUCCESS
        }
        Err(RunError::Interrupted) => {
            eprintln!("paas-sim bench: interrupted; every process started was stopped");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("paas-sim bench: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> BenchArgs {
        let mut argv = vec!["bench"];
        argv.extend_from_slice(extra);
        BenchArgs::from_iter_safe(argv).expect("valid arguments")
    }

    #[test]
    fn defaults_are_the_documented_load() {
        let p = args(&[]).params().expect("valid");
        assert_eq!((p.jobs, p.flavor.as_str()), (200, "XS"));
        assert_eq!(p.job_duration, Duration::from_secs(2));
        assert_eq!(p.repo_delay, Duration::from_millis(500));
        assert_eq!(p.start_delay, Duration::from_millis(500));
        assert_eq!((p.concurrent, p.max_provisioning), (50, 50));
        assert_eq!(p.check_interval, Duration::from_secs(1));
        assert_eq!(p.progress_interval, Duration::from_secs(1));
        assert_eq!(p.arrival_spread, Duration::ZERO);
        assert_eq!(p.long_poll_window, Duration::from_secs(20));
        assert!(!args(&[]).long_polling);
        assert!(!args(&[]).reuse);
        assert!(args(&["--reuse"]).reuse);
        assert!(!p.fleet);
    }

    #[test]
    fn fleet_is_the_long_load_and_options_override_it() {
        let p = args(&["--fleet"]).params().expect("valid");
        assert!(p.fleet);
        assert_eq!((p.jobs, p.concurrent), (1000, 1000));
        assert_eq!(p.job_duration, Duration::from_secs(600));
        assert_eq!(p.progress_interval, Duration::from_secs(30));
        assert_eq!(p.timeout, Duration::from_secs(1800));
        let short = args(&["--fleet", "--job-seconds", "60", "--jobs", "100"])
            .params()
            .expect("valid");
        assert_eq!((short.jobs, short.concurrent), (100, 1000));
        assert_eq!(short.job_duration, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(args(&["--jobs", "0"]).params().is_err());
        assert!(args(&["--timeout", "0"]).params().is_err());
        assert!(args(&["--job-seconds=-1"]).params().is_err());
        assert!(args(&["--check-interval", "NaN"]).params().is_err());
        assert!(args(&["--repeat", "0"]).params().is_err());
        assert!(args(&["--arrival-spread=-1"]).params().is_err());
        assert!(args(&["--long-poll-window", "0"]).params().is_err());
        assert!(args(&["--arrival-spread", "30", "--long-polling"])
            .params()
            .is_ok());
        assert!(args(&["--jobs", "3", "--job-seconds", "0.2"])
            .params()
            .is_ok());
    }
}
