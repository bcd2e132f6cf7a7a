//! Shared helpers of the end-to-end tests: the real `heptapod-paas-runner`
//! binary against paas-sim (fake coordinator + fake Clever Cloud).
//!
//! - [`Sim`]: one fake Clever Cloud and one or more fake coordinators, a
//!   private temporary directory, and the config writer ([`ConfigSpec`]).
//! - [`Runner`]: the binary as a child process, its stderr captured in a
//!   log file, signals sent by pid, killed and reaped on drop.
//! - [`wait_until`]: polling bounded by count and time.
//! - [`assert_no_secret`]: every token used must be absent from a log.
//!
//! Every server binds 127.0.0.1 on an ephemeral port.

#![allow(dead_code)] // each test binary uses a different subset

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use paas_sim::clever::config::{DEFAULT_ORG, DEFAULT_TOKEN};
use paas_sim::clever::{CleverHandle, CleverSimConfig, FakeClever, FlavorSpec};
use paas_sim::coordinator::{CoordinatorConfig, CoordinatorHandle, FakeCoordinator, JobState};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_heptapod-paas-runner");

/// Administrator token of every fake coordinator (trace watch).
pub const ADMIN_TOKEN: &str = "glpat-e2e-admin-0123456789";

/// Flavor context of the sim's default table (`cc_flavor_context`).
pub const FLAVOR_PREFIX: &str = "heptapod-runner-";

/// Polls `cond` every 50 ms until it holds (true) or `timeout` passes
/// (false). Bounded by time and by count.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let max_rounds = timeout.as_millis() / 50 + 2;
    for _ in 0..max_rounds {
        if cond() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// One `[[runners]]` section (clever-docker).
#[derive(Clone, Debug)]
pub struct RunnerSpec {
    /// `name`.
    pub name: String,
    /// Coordinator base URL.
    pub url: String,
    /// Runner authentication token.
    pub token: String,
    /// Single-tenant organisation and token; `None` for multi-tenant
    /// (`cc_multi_tenant = true`, attributes read with [`ADMIN_TOKEN`]).
    pub orga: Option<(String, String)>,
    /// `cc_max_flavor`.
    pub max_flavor: Option<String>,
    /// `cc_api_url`.
    pub api_url: String,
    /// Extra raw TOML lines put in the section.
    pub extra: String,
}

/// A whole configuration file.
#[derive(Clone, Debug)]
pub struct ConfigSpec {
    /// `state_file`.
    pub state_file: Option<PathBuf>,
    /// `concurrent`.
    pub concurrent: u32,
    /// `[quota_computation]`: reference runner, flavor, jobs count.
    pub quota: Option<(String, String, u32)>,
    /// Sections.
    pub runners: Vec<RunnerSpec>,
    /// Extra raw global TOML lines.
    pub extra_global: String,
}

impl ConfigSpec {
    /// The TOML text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(sf) = &self.state_file {
            let _ = writeln!(out, "state_file = {}", toml_str(&sf.display().to_string()));
        }
        let _ = writeln!(out, "concurrent = {}", self.concurrent);
        out.push_str("check_interval = 0.2\njob_progress_poll_interval = 0.5\n");
        out.push_str(&self.extra_global);
        if let Some((runner, flavor, count)) = &self.quota {
            let _ = write!(
                out,
                "\n[quota_computation]\nreference_runner = {}\nreference_flavor = {}\n\
                 reference_jobs_count = {count}\n",
                toml_str(runner),
                toml_str(flavor)
            );
        }
        for r in &self.runners {
            let _ = write!(
                out,
                "\n[[runners]]\nname = {}\nurl = {}\ntoken = {}\nexecutor = \"clever-docker\"\n\
                 cc_api_url = {}\ncc_deployment_repo_wait_step = 0.05\n\
                 cc_deployment_repo_timeout = 10\n",
                toml_str(&r.name),
                toml_str(&r.url),
                toml_str(&r.token),
                toml_str(&r.api_url),
            );
            match &r.orga {
                Some((id, token)) => {
                    let _ = writeln!(
                        out,
                        "cc_orga_id = {}\ncc_token = {}",
                        toml_str(id),
                        toml_str(token)
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "cc_multi_tenant = true\ncc_gitlab_namespace_attributes_token = {}",
                        toml_str(ADMIN_TOKEN)
                    );
                }
            }
            if let Some(m) = &r.max_flavor {
                let _ = writeln!(out, "cc_max_flavor = {}", toml_str(m));
            }
            out.push_str(&r.extra);
            let _ = write!(
                out,
                "[runners.paas_job_trace_watch]\ntoken = {}\ntimeout_seconds = 20\npoll_step = 0.2\n\
                 [runners.cc_extra_env]\nCC_ENABLE_HEPTAPOD_RUNNER = \"true\"\n\
                 [runners.docker]\nimage = \"debian:bookworm\"\n",
                toml_str(ADMIN_TOKEN)
            );
        }
        out
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The simulated world of one test.
pub struct Sim {
    /// Fake Clever Cloud.
    pub clever: CleverHandle,
    /// The flavor table the fake serves.
    pub flavors: Vec<FlavorSpec>,
    /// Fake coordinators.
    pub coords: Vec<CoordinatorHandle>,
    /// Runner tokens per coordinator, in the order given.
    pub runner_tokens: Vec<Vec<String>>,
    /// Private directory (config, state, logs).
    pub dir: tempfile::TempDir,
}

impl Sim {
    /// A fake Clever Cloud with `clever` settings and one coordinator per
    /// entry of `tokens` (each knowing those runner tokens and
    /// [`ADMIN_TOKEN`]).
    pub fn start(clever: CleverSimConfig, tokens: &[&[&str]]) -> Sim {
        let flavors = clever.flavors.clone();
        let clever = FakeClever::start(clever).expect("fake clever starts");
        let coords = tokens
            .iter()
            .map(|ts| {
                FakeCoordinator::start(CoordinatorConfig {
                    runner_tokens: ts.iter().map(|t| (*t).to_owned()).collect(),
                    admin_tokens: vec![ADMIN_TOKEN.to_owned()],
                    ..CoordinatorConfig::default()
                })
                .expect("fake coordinator starts")
            })
            .collect();
        Sim {
            clever,
            flavors,
            coords,
            runner_tokens: tokens
                .iter()
                .map(|ts| ts.iter().map(|t| (*t).to_owned()).collect())
                .collect(),
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// The first coordinator.
    pub fn coord(&self) -> &CoordinatorHandle {
        self.coords.first().expect("a coordinator")
    }

    /// A single-organisation section on coordinator `coord` with `token`.
    pub fn runner(&self, name: &str, coord: usize, token: &str) -> RunnerSpec {
        RunnerSpec {
            name: name.to_owned(),
            url: self.coords.get(coord).expect("coordinator").url(),
            token: token.to_owned(),
            orga: Some((DEFAULT_ORG.to_owned(), DEFAULT_TOKEN.to_owned())),
            max_flavor: Some("L".to_owned()),
            api_url: self.clever.api_url(),
            extra: String::new(),
        }
    }

    /// State file path in the private directory.
    pub fn state_file(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    /// A config with the state file, `concurrent = 50` and the quota `M × count`
    /// on `runners[0]`.
    pub fn config(&self, runners: Vec<RunnerSpec>, ref_count: u32) -> ConfigSpec {
        let reference = runners.first().map(|r| r.name.clone()).unwrap_or_default();
        ConfigSpec {
            state_file: Some(self.state_file()),
            concurrent: 50,
            quota: Some((reference, "M".to_owned(), ref_count)),
            runners,
            extra_global: String::new(),
        }
    }

    /// Writes `spec` as `<name>` in the private directory.
    pub fn write_config(&self, name: &str, spec: &ConfigSpec) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, spec.render()).expect("config written");
        path
    }

    /// Weight of flavor `short` (`M`, not `heptapod-runner-M`) in the sim's table.
    pub fn weight(&self, short: &str) -> f64 {
        let full = format!("{FLAVOR_PREFIX}{short}");
        self.flavors
            .iter()
            .find(|f| f.name == full)
            .map(FlavorSpec::weight)
            .expect("flavor in the sim table")
    }

    /// True when every job in `ids` (on coordinator `coord`) is over.
    pub fn all_over(&self, coord: usize, ids: &[i64]) -> bool {
        let c = self.coords.get(coord).expect("coordinator");
        ids.iter().all(|id| {
            matches!(
                c.job_status(*id),
                Some(JobState::Success | JobState::Failed | JobState::Canceled)
            )
        })
    }

    /// Every job token the coordinators handed out, and the runner tokens,
    /// and the Clever tokens of the default organisation plus `extra`.
    pub fn secrets(&self, extra: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = vec![ADMIN_TOKEN.to_owned(), DEFAULT_TOKEN.to_owned()];
        for ts in &self.runner_tokens {
            out.extend(ts.iter().cloned());
        }
        for c in &self.coords {
            out.extend(c.jobs().into_iter().map(|j| j.token));
        }
        out.extend(extra.iter().map(|s| (*s).to_owned()));
        out.retain(|s| !s.is_empty());
        out
    }

    /// Human summary for failure messages.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "clever summary: {:?}\nviolations: {:?}\n",
            self.clever.control().summary(),
            self.clever.control().violations()
        );
        for (i, c) in self.coords.iter().enumerate() {
            for j in c.jobs() {
                let _ = writeln!(
                    out,
                    "coord {i} job {} {:?} history {:?} reason {:?}",
                    j.id, j.status, j.history, j.failure_reason
                );
            }
        }
        out
    }
}

/// The binary, running.
pub struct Runner {
    child: Option<Child>,
    /// Captured stderr (the log).
    pub log: PathBuf,
}

impl Runner {
    /// Starts `heptapod-paas-runner run CONFIG -l DEBUG` with stderr to `log`.
    pub fn start(config: &Path, log: &Path) -> Runner {
        Runner::start_with(config, log, &[])
    }

    /// Same, with extra arguments.
    pub fn start_with(config: &Path, log: &Path, extra: &[&str]) -> Runner {
        let mut args: Vec<&OsStr> = vec![OsStr::new("run"), config.as_os_str()];
        args.extend(["-l", "DEBUG"].iter().chain(extra).map(OsStr::new));
        Runner::spawn(&args, log)
    }

    /// The seed's form, as existing systemd units run it:
    /// `heptapod-paas-runner CONFIG -l DEBUG` (no `run`).
    pub fn start_seed_form(config: &Path, log: &Path) -> Runner {
        Runner::spawn(
            &[config.as_os_str(), OsStr::new("-l"), OsStr::new("DEBUG")],
            log,
        )
    }

    /// The binary with `args`, stdin closed, stderr appended to `log`.
    pub fn spawn(args: &[&OsStr], log: &Path) -> Runner {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("runner binary starts");
        Runner {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .map(Pid::from_raw)
    }

    /// Sends `sig` to the child (by its pid).
    pub fn signal(&self, sig: Signal) {
        if let Some(pid) = self.pid() {
            kill(pid, sig).expect("signal sent");
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits for the exit, at most `timeout` (None if still running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        for _ in 0..(timeout.as_millis() / 20 + 2) {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if start.elapsed() > timeout {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, then waits for the exit (at most `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal(Signal::SIGTERM);
        self.wait_exit(timeout)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = c.wait();
        }
    }
}

/// Fails if any of `secrets` appears in `log`.
pub fn assert_no_secret(log: &str, secrets: &[String]) {
    assert!(!log.is_empty(), "empty runner log");
    for s in secrets {
        assert!(
            !log.contains(s.as_str()),
            "a secret ({}…, {} chars) appears in the runner log",
            s.get(..4).unwrap_or(""),
            s.len()
        );
    }
}

/// Runs the binary to completion (bounded), returning exit code, stdout, stderr.
pub fn run_to_end(args: &[&std::ffi::OsStr], timeout: Duration) -> (Option<i32>, String, String) {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let pid = i32::try_from(child.id()).expect("pid");
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let start = Instant::now();
    while !waiter.is_finished() && start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !waiter.is_finished() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let out = waiter.join().expect("waiter").expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Sim {
    /// The quota the runner computes: weight of `flavor` × `count`, from the
    /// sim's flavor table.
    pub fn quota(&self, flavor: &str, count: u32) -> f64 {
        self.weight(flavor) * f64::from(count)
    }

    /// Nothing leaked, no duplicate app, no violation, live weight never
    /// above `quota`, and at least `apps` applications created.
    pub fn assert_clean(&self, quota: f64, apps: usize) {
        let s = self.clever.control().summary();
        let why = self.describe();
        assert!(s.leaks.is_empty(), "leaked apps\n{why}");
        assert!(s.duplicates.is_empty(), "duplicate apps\n{why}");
        assert_eq!(s.violations, 0, "sim violations\n{why}");
        assert!(s.apps_created >= apps, "apps created\n{why}");
        assert_eq!(s.apps_created, s.apps_deleted, "not all deleted\n{why}");
        assert!(
            s.max_live_weight <= quota + 1e-6,
            "live weight {} above the quota {quota}\n{why}",
            s.max_live_weight
        );
    }
}

/// Job id in an app name `hpd-job-<unique>-<job id>`.
pub fn job_of_app(name: &str) -> Option<i64> {
    name.rsplit('-').next().and_then(|s| s.parse().ok())
}
