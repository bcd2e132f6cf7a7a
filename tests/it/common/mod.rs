//! Shared helpers of the end-to-end tests: the real `heptapod-paas-runner`
//! binary against paas-sim's [`World`] (fake coordinator + fake Clever
//! Cloud wired together), as thin wrappers:
//!
//! - [`E2e`]: a world and a private temporary directory; writes runner
//!   configurations (the world's, optionally with extra global keys),
//!   knows the quota, checks the verdict ([`E2e::assert_clean`]).
//! - [`start_runner`] / [`run_to_end`]: the binary as a child process
//!   ([`RunnerProcess`]: log captured, signals by pid, kill + reap on drop).
//! - [`assert_no_secret`]: every token of the world must be absent from a log.
//! - [`get`]: one HTTP/1.1 request to the runner's monitoring endpoints.
//!
//! Every server binds 127.0.0.1 on an ephemeral port.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use paas_sim::coordinator::JobState;
use paas_sim::runner_process::RunnerProcess;
use paas_sim::world::{RunnerConfigOptions, World, WorldConfig};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use paas_sim::world::{job_id_of_app_name, wait_until};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_heptapod-paas-runner");

/// Step of the tests' polling loops.
pub const STEP: Duration = Duration::from_millis(50);

/// Runner options of the e2e tests: short intervals, fast trace watch.
pub fn options() -> RunnerConfigOptions {
    RunnerConfigOptions {
        check_interval: Duration::from_millis(200),
        job_progress_poll_interval: Duration::from_millis(500),
        trace_watch_poll_step: Duration::from_millis(200),
        trace_watch_timeout: Duration::from_secs(20),
        deployment_repo_wait_step: Duration::from_millis(50),
        deployment_repo_timeout: Duration::from_secs(10),
        ..RunnerConfigOptions::default()
    }
}

/// A world and a private directory (configs, state file, logs).
pub struct E2e {
    /// The simulated world.
    pub world: World,
    /// Private directory.
    pub dir: tempfile::TempDir,
}

impl E2e {
    /// Starts a world.
    pub fn start(config: WorldConfig) -> E2e {
        E2e {
            world: World::start(config).expect("world starts"),
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// Writes the world's runner configuration (`runner.toml`, state file
    /// `state.json` in the private directory), plus `extra` global keys.
    pub fn write_config(
        &self,
        options: RunnerConfigOptions,
        extra: &[(&str, toml::Value)],
    ) -> PathBuf {
        let path = self
            .world
            .write_runner_config(self.dir.path(), options)
            .expect("runner config written");
        if !extra.is_empty() {
            let text = std::fs::read_to_string(&path).expect("read config");
            let mut table: toml::Table = toml::from_str(&text).expect("config is TOML");
            for (k, v) in extra {
                table.insert((*k).to_owned(), v.clone());
            }
            std::fs::write(&path, toml::to_string(&table).expect("TOML")).expect("rewrite");
        }
        path
    }

    /// The state file of [`E2e::write_config`].
    pub fn state_file(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    /// A log file path in the private directory.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The quota the runner computes for the written configuration: weight
    /// of the reference flavor × count, from the sim's flavor table.
    pub fn quota(&self) -> f64 {
        self.world
            .summary()
            .quota_weight
            .expect("a config was written")
    }

    /// Weight of a flavor (short name) in the sim's table.
    pub fn weight(&self, short: &str) -> f64 {
        self.world
            .flavor_weight(short)
            .expect("flavor in the sim table")
    }

    /// True when every job in `ids` is over.
    pub fn all_over(&self, ids: &[i64]) -> bool {
        let c = self.world.coordinator();
        ids.iter().all(|id| {
            matches!(
                c.job_status(*id),
                Some(JobState::Success | JobState::Failed | JobState::Canceled)
            )
        })
    }

    /// Waits (bounded) until every job of `ids` is over and no app is alive.
    pub fn wait_done(&self, ids: &[i64], timeout: Duration) -> bool {
        wait_until(
            || self.all_over(ids) && self.world.clever().control().summary().live_count == 0,
            timeout,
            STEP,
        )
    }

    /// Job status at the coordinator.
    pub fn status(&self, id: i64) -> Option<JobState> {
        self.world.coordinator().job_status(id)
    }

    /// Human summary for failure messages (no token in it).
    pub fn describe(&self) -> String {
        let mut out = self.world.summary().render();
        for j in self.world.coordinator().jobs() {
            let _ = writeln!(
                out,
                "job {} {:?} runner {:?} history {:?} reason {:?}",
                j.id, j.status, j.runner_id, j.history, j.failure_reason
            );
        }
        out
    }

    /// The world's verdict is clean (no job left, no leak, no duplicate,
    /// quota held, no violation), every app created was deleted, and at
    /// least `apps` were created.
    pub fn assert_clean(&self, apps: usize) {
        let s = self.world.summary();
        assert_eq!(s.problems(), Vec::<String>::new(), "{}", self.describe());
        assert!(s.quota_weight.is_some(), "quota known");
        assert!(s.apps_created >= apps, "apps created\n{}", self.describe());
        assert_eq!(s.apps_created, s.apps_deleted, "{}", self.describe());
    }
}

/// Starts `heptapod-paas-runner run CONFIG -l DEBUG [extra]`, output to `log`.
pub fn start_runner(config: &Path, log: &Path, extra: &[&str]) -> RunnerProcess {
    let mut args = vec!["-l", "DEBUG"];
    args.extend(extra);
    RunnerProcess::spawn_runner(Path::new(BIN), config, log, &args).expect("runner starts")
}

/// The Python runner's form (no `run`), as existing systemd units run it:
/// `heptapod-paas-runner CONFIG -l DEBUG` (no `run`).
pub fn start_runner_seed_form(config: &Path, log: &Path) -> RunnerProcess {
    let args = [config.as_os_str(), OsStr::new("-l"), OsStr::new("DEBUG")];
    RunnerProcess::spawn(Path::new(BIN), &args, log).expect("runner starts")
}

/// SIGTERM, then the exit status within `grace` (killed if needed: fails).
pub fn stop_ok(runner: &mut RunnerProcess, grace: Duration) {
    let (status, killed) = runner.stop(grace).expect("stop");
    assert!(
        !killed && status.success(),
        "exit {status} (killed: {killed})\nlog tail:\n{}",
        tail(&runner.log())
    );
}

/// The last 40 lines of a log.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Fails if any token of the world, or of `extra`, appears in `log`.
pub fn assert_no_secret(world: &World, log: &str, extra: &[&str]) {
    assert!(!log.is_empty(), "empty runner log");
    assert_eq!(
        world.leaked_secrets(log),
        Vec::<String>::new(),
        "secrets in the log"
    );
    for (i, s) in extra.iter().enumerate() {
        assert!(!log.contains(s), "extra secret #{i} appears in the log");
    }
}

/// Runs the binary to completion (bounded; killed by pid past `timeout`),
/// returning exit code, stdout, stderr.
pub fn run_to_end(args: &[&OsStr], timeout: Duration) -> (Option<i32>, String, String) {
    run_to_end_with_env(args, &[], timeout)
}

/// [`run_to_end`] with `env` added to (or, with an empty value, removed
/// from) the environment.
pub fn run_to_end_with_env(
    args: &[&OsStr],
    env: &[(&str, &OsStr)],
    timeout: Duration,
) -> (Option<i32>, String, String) {
    let mut command = Command::new(BIN);
    for (key, value) in env {
        if value.is_empty() {
            command.env_remove(key);
        } else {
            command.env(key, value);
        }
    }
    let child = command
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

/// `GET path` over HTTP/1.1 with `Connection: close`: status and body, or
/// `None` when nothing answers.
pub fn get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
