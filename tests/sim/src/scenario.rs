//! Scenario files: what a simulated world contains and what happens in it
//! over time (TOML, parsed in two stages: serde structs that refuse unknown
//! keys, then validation naming the culprit key, e.g. `jobs[2].tenant`).
//!
//! ```toml
//! [world]                 # all optional
//! tenants = ["acme", "beta"]   # top-level groups, one Clever organisation each
//! runner_tokens = 2
//! seed = 7
//!
//! [timing]                # fake Clever Cloud timing, milliseconds (optional)
//! repo_create_delay_ms = 300   # CREATING -> CREATED
//! start_delay_ms = 500         # push -> first trace line of the inner runner
//! create_latency_ms = 100
//! delete_latency_ms = 50
//! helper_boot_delay_ms = 500   # helper Dockerfile push -> can-take-job true
//! helper_start_delay_ms = 50   # launch-job 201 -> first trace line
//!
//! [runner]                # options of the written runner configuration (optional)
//! runners = 1
//! multi_tenant = false
//! check_interval_ms = 200
//! quota_flavor = "M"
//! quota_jobs = 4
//! default_flavor = "S"
//! max_flavor = "L"
//! keep_resources = false
//! service = false         # true: clever-service-docker sections, with
//! keep_for_reuse_ms = 10000     #   these three (optional) options
//! max_jobs_per_resource = 20
//! service_ready_timeout_ms = 600000
//!
//! [[jobs]]                # one entry per job, or `count` identical ones
//! count = 3
//! every_ms = 500          # spacing of the repeated jobs
//! start_ms = 0            # when the first one is enqueued
//! name = "build"
//! flavor = "S"
//! duration_ms = 2000
//! outcome = "success"     # or "failed"
//! tenant = "acme"
//! dependency_proxy = true
//! services = ["postgres:15"]
//!
//! [[faults]]
//! kind = "coordinator_down"      # from_ms, until_ms
//! from_ms = 4000
//! until_ms = 6000
//!
//! [[faults]]
//! kind = "clever_errors"         # at_ms, endpoint, count, status
//! endpoint = "create_app"
//! at_ms = 1000
//! count = 3
//! status = 500
//! ```
//!
//! Fault kinds: `coordinator_down` (from/until), `coordinator_errors`
//! (at, endpoint, count, status), `coordinator_latency` (from/until,
//! endpoint, latency_ms), `clever_errors` (at, endpoint, count, status),
//! `clever_outage` (from/until, endpoint, status), `clever_latency`
//! (from/until, endpoint, latency_ms), `helper_never_ready` (at, count:
//! helper deployments that never boot), `helper_refuse_launch` (at, count:
//! launch-job calls answered 503), `helper_die_on_standby` (at, count:
//! helpers dying once their job ends). [`Schedule::start`] plays the jobs
//! and faults against a [`World`].

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::clever::{
    self, CleverControl, FaultCommand, FaultKind, HelperFaultCommand, RepoDelay, Timing,
};
use crate::coordinator::{self, CoordinatorControl, Fault, JobSpec, Outcome};
use crate::world::{RunnerConfigOptions, ServiceOptions, World, WorldConfig};

/// Flavor short names a job may ask for (the default flavor table).
pub const KNOWN_FLAVORS: &[&str] = &["XS", "S", "M", "L", "XL", "2XL", "3XL"];
/// Most jobs one scenario may enqueue.
pub const MAX_JOBS: u64 = 10_000;

/// Why a scenario file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax or an unknown / mistyped key (the message names it and its line).
    #[error("scenario {file}: {message}")]
    Syntax {
        /// File name.
        file: String,
        /// The TOML error, with line and key.
        message: String,
    },
    /// A value is wrong.
    #[error("scenario {file}: `{key}`: {message}")]
    Invalid {
        /// File name.
        file: String,
        /// Dotted key path, e.g. `jobs[2].flavor`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    world: RawWorld,
    #[serde(default)]
    timing: RawTiming,
    #[serde(default)]
    runner: RawRunner,
    #[serde(default)]
    jobs: Vec<RawJob>,
    #[serde(default)]
    faults: Vec<RawFault>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorld {
    tenants: Option<Vec<String>>,
    runner_tokens: Option<usize>,
    seed: Option<u64>,
    coordinator_path_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiming {
    repo_create_delay_ms: Option<u64>,
    start_delay_ms: Option<u64>,
    create_latency_ms: Option<u64>,
    delete_latency_ms: Option<u64>,
    helper_boot_delay_ms: Option<u64>,
    helper_start_delay_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunner {
    runners: Option<usize>,
    multi_tenant: Option<bool>,
    concurrent: Option<usize>,
    check_interval_ms: Option<u64>,
    job_progress_poll_interval_ms: Option<u64>,
    max_concurrent_provisioning: Option<usize>,
    quota_flavor: Option<String>,
    quota_jobs: Option<u32>,
    default_flavor: Option<String>,
    max_flavor: Option<String>,
    keep_resources: Option<bool>,
    decommission_launch_failures: Option<bool>,
    trace_watch_timeout_ms: Option<u64>,
    trace_watch_poll_step_ms: Option<u64>,
    deployment_repo_timeout_ms: Option<u64>,
    deployment_repo_wait_step_ms: Option<u64>,
    service: Option<bool>,
    keep_for_reuse_ms: Option<u64>,
    max_jobs_per_resource: Option<u32>,
    service_ready_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    count: Option<u64>,
    every_ms: Option<u64>,
    start_ms: Option<u64>,
    name: Option<String>,
    flavor: Option<String>,
    duration_ms: Option<u64>,
    outcome: Option<String>,
    tenant: Option<String>,
    dependency_proxy: Option<bool>,
    services: Option<Vec<String>>,
    image: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: String,
    at_ms: Option<u64>,
    from_ms: Option<u64>,
    until_ms: Option<u64>,
    endpoint: Option<String>,
    count: Option<u32>,
    status: Option<u16>,
    latency_ms: Option<u64>,
}

/// A job to enqueue `at` after the schedule starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledJob {
    /// Offset from the start of the schedule.
    pub at: Duration,
    /// The job.
    pub spec: JobSpec,
}

/// Something done to a fake at a point in time.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Switches the coordinator's down mode (502 HTML everywhere).
    CoordinatorDown(bool),
    /// Queues a coordinator fault rule.
    CoordinatorFault(coordinator::Endpoint, Fault),
    /// Sets (or clears) a coordinator endpoint's latency.
    CoordinatorLatency(coordinator::Endpoint, Option<Duration>),
    /// A fake Clever Cloud fault command.
    Clever(FaultCommand),
    /// A helper fault command.
    Helper(HelperFaultCommand),
}

/// A fault action `at` after the schedule starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledFault {
    /// Offset from the start of the schedule.
    pub at: Duration,
    /// What to do.
    pub action: FaultAction,
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// How to start the world.
    pub world: WorldConfig,
    /// Options of the runner configuration to write.
    pub runner: RunnerConfigOptions,
    /// Jobs, by time.
    pub jobs: Vec<ScheduledJob>,
    /// Fault actions, by time.
    pub faults: Vec<ScheduledFault>,
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Parses and validates scenario text (`file` names it in errors).
    pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Syntax {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Validator { file }.scenario(raw)
    }

    /// When the last scheduled job is enqueued.
    pub fn last_job_at(&self) -> Duration {
        self.jobs.iter().map(|j| j.at).max().unwrap_or_default()
    }
}

struct Validator<'a> {
    file: &'a str,
}

impl Validator<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.file.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn flavor(&self, key: &str, name: &str) -> Result<String, ScenarioError> {
        if KNOWN_FLAVORS.contains(&name) {
            Ok(name.to_owned())
        } else {
            Err(self.err(
                key,
                format!(
                    "unknown flavor {name:?}; known: {}",
                    KNOWN_FLAVORS.join(", ")
                ),
            ))
        }
    }

    fn scenario(&self, raw: RawScenario) -> Result<Scenario, ScenarioError> {
        let mut world = WorldConfig::default();
        if let Some(t) = raw.world.tenants {
            if t.is_empty() {
                return Err(self.err("world.tenants", "must name at least one tenant"));
            }
            for (i, name) in t.iter().enumerate() {
                if name.is_empty() || name.contains('/') || name.contains(char::is_whitespace) {
                    return Err(self.err(
                        format!("world.tenants[{i}]"),
                        "a tenant is a top-level group path: non-empty, no '/' or space",
                    ));
                }
                if t.iter().take(i).any(|o| o == name) {
                    return Err(self.err(
                        format!("world.tenants[{i}]"),
                        format!("tenant {name:?} is listed twice"),
                    ));
                }
            }
            world.tenants = t;
        }
        if let Some(n) = raw.world.runner_tokens {
            if n == 0 || n > 999 {
                return Err(self.err("world.runner_tokens", "must be between 1 and 999"));
            }
            world.runner_tokens = n;
        }
        if let Some(s) = raw.world.seed {
            world.seed = s;
        }
        if let Some(p) = raw.world.coordinator_path_prefix {
            if !p.is_empty() && !p.starts_with('/') {
                return Err(self.err(
                    "world.coordinator_path_prefix",
                    "must be empty or start with '/'",
                ));
            }
            world.coordinator_path_prefix = p;
        }
        world.timing = timing(&raw.timing, world.timing);
        let runner = self.runner(raw.runner, &world)?;
        let jobs = self.jobs(raw.jobs, &world)?;
        let faults = self.faults(raw.faults)?;
        Ok(Scenario {
            world,
            runner,
            jobs,
            faults,
        })
    }

    fn runner(
        &self,
        r: RawRunner,
        world: &WorldConfig,
    ) -> Result<RunnerConfigOptions, ScenarioError> {
        let mut o = RunnerConfigOptions::default();
        let service = self.service(&r)?;
        if let Some(n) = r.runners {
            if n == 0 || n > world.runner_tokens {
                return Err(self.err(
                    "runner.runners",
                    format!(
                        "must be between 1 and world.runner_tokens ({})",
                        world.runner_tokens
                    ),
                ));
            }
            o.runners = n;
        }
        let positive = |key: &str, v: usize| -> Result<usize, ScenarioError> {
            if v == 0 {
                Err(self.err(key, "must be positive"))
            } else {
                Ok(v)
            }
        };
        let ms = |key: &str, v: u64| -> Result<Duration, ScenarioError> {
            if v == 0 {
                Err(self.err(key, "must be a positive number of milliseconds"))
            } else {
                Ok(Duration::from_millis(v))
            }
        };
        if let Some(b) = r.multi_tenant {
            o.multi_tenant = b;
        }
        if let Some(v) = r.concurrent {
            o.concurrent = positive("runner.concurrent", v)?;
        }
        if let Some(v) = r.max_concurrent_provisioning {
            o.max_concurrent_provisioning = positive("runner.max_concurrent_provisioning", v)?;
        }
        if let Some(v) = r.check_interval_ms {
            o.check_interval = ms("runner.check_interval_ms", v)?;
        }
        if let Some(v) = r.job_progress_poll_interval_ms {
            o.job_progress_poll_interval = ms("runner.job_progress_poll_interval_ms", v)?;
        }
        if let Some(v) = r.trace_watch_timeout_ms {
            o.trace_watch_timeout = ms("runner.trace_watch_timeout_ms", v)?;
        }
        if let Some(v) = r.trace_watch_poll_step_ms {
            o.trace_watch_poll_step = ms("runner.trace_watch_poll_step_ms", v)?;
        }
        if let Some(v) = r.deployment_repo_timeout_ms {
            o.deployment_repo_timeout = ms("runner.deployment_repo_timeout_ms", v)?;
        }
        if let Some(v) = r.deployment_repo_wait_step_ms {
            o.deployment_repo_wait_step = ms("runner.deployment_repo_wait_step_ms", v)?;
        }
        if let Some(f) = r.quota_flavor {
            o.quota_flavor = self.flavor("runner.quota_flavor", &f)?;
        }
        if let Some(n) = r.quota_jobs {
            if n == 0 {
                return Err(self.err("runner.quota_jobs", "must be positive"));
            }
            o.quota_jobs = n;
        }
        if let Some(f) = r.default_flavor {
            o.default_flavor = self.flavor("runner.default_flavor", &f)?;
        }
        if let Some(f) = r.max_flavor {
            o.max_flavor = if f.is_empty() {
                None
            } else {
                Some(self.flavor("runner.max_flavor", &f)?)
            };
        }
        if let Some(b) = r.keep_resources {
            o.keep_resources = b;
        }
        if let Some(b) = r.decommission_launch_failures {
            o.decommission_launch_failures = b;
        }
        o.service = service;
        Ok(o)
    }

    fn service(&self, r: &RawRunner) -> Result<Option<ServiceOptions>, ScenarioError> {
        if r.service != Some(true) {
            let given = [
                ("runner.keep_for_reuse_ms", r.keep_for_reuse_ms.is_some()),
                (
                    "runner.max_jobs_per_resource",
                    r.max_jobs_per_resource.is_some(),
                ),
                (
                    "runner.service_ready_timeout_ms",
                    r.service_ready_timeout_ms.is_some(),
                ),
            ];
            return match given.iter().find(|(_, g)| *g) {
                Some((key, _)) => Err(self.err(*key, "needs runner.service = true")),
                None => Ok(None),
            };
        }
        let mut service = ServiceOptions::default();
        if let Some(v) = r.keep_for_reuse_ms {
            service.keep_for_reuse = Duration::from_millis(v);
        }
        if let Some(n) = r.max_jobs_per_resource {
            if n == 0 {
                return Err(self.err("runner.max_jobs_per_resource", "must be positive"));
            }
            service.max_jobs_per_resource = Some(n);
        }
        if let Some(v) = r.service_ready_timeout_ms {
            if v == 0 {
                return Err(self.err(
                    "runner.service_ready_timeout_ms",
                    "must be a positive number of milliseconds",
                ));
            }
            service.ready_timeout = Some(Duration::from_millis(v));
        }
        Ok(Some(service))
    }

    fn jobs(
        &self,
        raw: Vec<RawJob>,
        world: &WorldConfig,
    ) -> Result<Vec<ScheduledJob>, ScenarioError> {
        let mut out = Vec::new();
        let mut total: u64 = 0;
        for (i, j) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("jobs[{i}].{k}");
            let count = j.count.unwrap_or(1);
            if count == 0 {
                return Err(self.err(key("count"), "must be positive"));
            }
            total = total.saturating_add(count);
            if total > MAX_JOBS {
                return Err(self.err(
                    key("count"),
                    format!("the scenario would enqueue more than {MAX_JOBS} jobs"),
                ));
            }
            let tenant = match j.tenant {
                Some(t) if !world.tenants.contains(&t) => {
                    return Err(self.err(
                        key("tenant"),
                        format!(
                            "unknown tenant {t:?}; declared in world.tenants: {}",
                            world.tenants.join(", ")
                        ),
                    ))
                }
                Some(t) => t,
                None => world.tenants.first().cloned().unwrap_or_default(),
            };
            let outcome = match j.outcome.as_deref() {
                None | Some("success") => Outcome::Success,
                Some("failed") => Outcome::Failed,
                Some(other) => {
                    return Err(self.err(
                        key("outcome"),
                        format!("expected \"success\" or \"failed\", not {other:?}"),
                    ))
                }
            };
            let flavor = match j.flavor {
                Some(f) => Some(self.flavor(&key("flavor"), &f)?),
                None => None,
            };
            let name = j.name.unwrap_or_else(|| format!("job-{i}"));
            if name.is_empty() {
                return Err(self.err(key("name"), "must not be empty"));
            }
            let start = Duration::from_millis(j.start_ms.unwrap_or(0));
            let every = Duration::from_millis(j.every_ms.unwrap_or(0));
            let defaults = JobSpec::default();
            let spec = JobSpec {
                name: name.clone(),
                flavor,
                root_namespace: tenant.clone(),
                project_name: format!("{name}-project"),
                dependency_proxy_prefix: j
                    .dependency_proxy
                    .unwrap_or(false)
                    .then(|| dependency_proxy_prefix(&tenant)),
                image: j.image.or(defaults.image.clone()),
                services: j.services.unwrap_or_default(),
                duration_ms: j.duration_ms.unwrap_or(defaults.duration_ms),
                outcome,
                ..defaults
            };
            for n in 0..count {
                let offset = every.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
                let mut spec = spec.clone();
                if count > 1 {
                    spec.name = format!("{name}-{}", n + 1);
                }
                out.push(ScheduledJob {
                    at: start.saturating_add(offset),
                    spec,
                });
            }
        }
        out.sort_by_key(|j| j.at);
        Ok(out)
    }

    fn faults(&self, raw: Vec<RawFault>) -> Result<Vec<ScheduledFault>, ScenarioError> {
        let mut out = Vec::new();
        for (i, f) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("faults[{i}].{k}");
            let need = |v: Option<u64>, k: &str| -> Result<u64, ScenarioError> {
                v.ok_or_else(|| self.err(key(k), format!("required for kind = {:?}", f.kind)))
            };
            let window = || -> Result<(Duration, Duration), ScenarioError> {
                let from = need(f.from_ms, "from_ms")?;
                let until = need(f.until_ms, "until_ms")?;
                if until <= from {
                    return Err(self.err(key("until_ms"), "must be after from_ms"));
                }
                Ok((Duration::from_millis(from), Duration::from_millis(until)))
            };
            let status = |default: u16| -> Result<u16, ScenarioError> {
                match f.status {
                    Some(s) if !(100..=599).contains(&s) => {
                        Err(self.err(key("status"), format!("{s} is not an HTTP status")))
                    }
                    Some(s) => Ok(s),
                    None => Ok(default),
                }
            };
            let count = match f.count {
                Some(0) => return Err(self.err(key("count"), "must be positive")),
                Some(c) => c,
                None => 1,
            };
            let coord_ep = || -> Result<coordinator::Endpoint, ScenarioError> {
                let name = f.endpoint.as_deref().ok_or_else(|| {
                    self.err(key("endpoint"), format!("required for kind = {:?}", f.kind))
                })?;
                coordinator::Endpoint::ALL
                    .iter()
                    .copied()
                    .find(|e| e.as_str() == name)
                    .ok_or_else(|| {
                        let known: Vec<&str> = coordinator::Endpoint::ALL
                            .iter()
                            .map(|e| e.as_str())
                            .collect();
                        self.err(
                            key("endpoint"),
                            format!(
                                "unknown coordinator endpoint {name:?}; known: {}",
                                known.join(", ")
                            ),
                        )
                    })
            };
            let clever_ep = || -> Result<clever::Endpoint, ScenarioError> {
                let name = f.endpoint.as_deref().ok_or_else(|| {
                    self.err(key("endpoint"), format!("required for kind = {:?}", f.kind))
                })?;
                serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|e| {
                    self.err(
                        key("endpoint"),
                        format!("unknown Clever Cloud endpoint: {e}"),
                    )
                })
            };
            let at = |t: u64| Duration::from_millis(t);
            match f.kind.as_str() {
                "coordinator_down" => {
                    let (from, until) = window()?;
                    out.push(ScheduledFault {
                        at: from,
                        action: FaultAction::CoordinatorDown(true),
                    });
                    out.push(ScheduledFault {
                        at: until,
                        action: FaultAction::CoordinatorDown(false),
                    });
                }
                "coordinator_errors" => {
                    let when = at(need(f.at_ms, "at_ms")?);
                    out.push(ScheduledFault {
                        at: when,
                        action: FaultAction::CoordinatorFault(
                            coord_ep()?,
                            Fault::status(status(500)?, count),
                        ),
                    });
                }
                "coordinator_latency" => {
                    let (from, until) = window()?;
                    let ep = coord_ep()?;
                    let latency = Duration::from_millis(need(f.latency_ms, "latency_ms")?);
                    out.push(ScheduledFault {
                        at: from,
                        action: FaultAction::CoordinatorLatency(ep, Some(latency)),
                    });
                    out.push(ScheduledFault {
                        at: until,
                        action: FaultAction::CoordinatorLatency(ep, None),
                    });
                }
                "clever_errors" => {
                    let when = at(need(f.at_ms, "at_ms")?);
                    out.push(ScheduledFault {
                        at: when,
                        action: FaultAction::Clever(FaultCommand::FailNext {
                            endpoint: clever_ep()?,
                            count: count as usize,
                            fault: FaultKind::status(status(500)?),
                        }),
                    });
                }
                "clever_outage" => {
                    let (from, until) = window()?;
                    out.push(ScheduledFault {
                        at: from,
                        action: FaultAction::Clever(FaultCommand::Outage {
                            endpoint: clever_ep()?,
                            start_in_ms: 0,
                            duration_ms: u64::try_from((until - from).as_millis())
                                .unwrap_or(u64::MAX),
                            fault: FaultKind::status(status(503)?),
                        }),
                    });
                }
                "clever_latency" => {
                    let (from, until) = window()?;
                    let endpoint = clever_ep()?;
                    let latency_ms = need(f.latency_ms, "latency_ms")?;
                    out.push(ScheduledFault {
                        at: from,
                        action: FaultAction::Clever(FaultCommand::Latency {
                            endpoint,
                            latency_ms,
                        }),
                    });
                    out.push(ScheduledFault {
                        at: until,
                        action: FaultAction::Clever(FaultCommand::Latency {
                            endpoint,
                            latency_ms: 0,
                        }),
                    });
                }
                "helper_never_ready" | "helper_refuse_launch" | "helper_die_on_standby" => {
                    let when = at(need(f.at_ms, "at_ms")?);
                    let count = count as usize;
                    let cmd = match f.kind.as_str() {
                        "helper_never_ready" => HelperFaultCommand::NeverReady { count },
                        "helper_refuse_launch" => HelperFaultCommand::RefuseLaunch {
                            count,
                            retry_after_s: None,
                        },
                        _ => HelperFaultCommand::DieOnStandby { count },
                    };
                    out.push(ScheduledFault {
                        at: when,
                        action: FaultAction::Helper(cmd),
                    });
                }
                other => {
                    return Err(self.err(
                        key("kind"),
                        format!(
                            "unknown fault kind {other:?}; known: coordinator_down, \
                             coordinator_errors, coordinator_latency, clever_errors, \
                             clever_outage, clever_latency, helper_never_ready, \
                             helper_refuse_launch, helper_die_on_standby"
                        ),
                    ))
                }
            }
        }
        out.sort_by_key(|f| f.at);
        Ok(out)
    }
}

fn timing(raw: &RawTiming, mut t: Timing) -> Timing {
    if let Some(v) = raw.repo_create_delay_ms {
        t.repo_create_delay = RepoDelay::After(Duration::from_millis(v));
    }
    if let Some(v) = raw.start_delay_ms {
        t.start_delay = Duration::from_millis(v);
    }
    if let Some(v) = raw.create_latency_ms {
        t.create_latency = Duration::from_millis(v);
    }
    if let Some(v) = raw.delete_latency_ms {
        t.delete_latency = Duration::from_millis(v);
    }
    if let Some(v) = raw.helper_boot_delay_ms {
        t.helper_boot_delay = Duration::from_millis(v);
    }
    if let Some(v) = raw.helper_start_delay_ms {
        t.helper_start_delay = Duration::from_millis(v);
    }
    t
}

/// The `CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX` GitLab gives jobs of `group`.
pub fn dependency_proxy_prefix(group: &str) -> String {
    format!("heptapod.example:443/{group}/dependency_proxy/containers")
}

/// Applies one fault action to the world.
pub fn apply_fault(world: &World, action: &FaultAction) {
    play(
        &world.coordinator().control(),
        world.clever().control(),
        action,
    );
}

fn play(coordinator: &CoordinatorControl, clever: &CleverControl, action: &FaultAction) {
    match action {
        FaultAction::CoordinatorDown(down) => coordinator.set_down(*down),
        FaultAction::CoordinatorFault(ep, fault) => coordinator.inject_fault(*ep, fault.clone()),
        FaultAction::CoordinatorLatency(ep, latency) => coordinator.set_latency(*ep, *latency),
        FaultAction::Clever(cmd) => clever.fault(cmd.clone()),
        FaultAction::Helper(cmd) => clever.helper_fault(cmd.clone()),
    }
}

enum Event {
    Job(Box<JobSpec>),
    Fault(FaultAction),
}

/// A scenario being played in a background thread (jobs enqueued and faults
/// applied on time). Dropping it stops the thread.
#[derive(Debug)]
pub struct Schedule {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Step of the schedule thread's sleeps (how fast it notices a stop).
const SCHEDULE_STEP: Duration = Duration::from_millis(20);

impl Schedule {
    /// Plays `scenario`'s jobs and faults against `world`, from now.
    pub fn start(world: &World, scenario: &Scenario) -> Schedule {
        let mut events: Vec<(Duration, Event)> = scenario
            .jobs
            .iter()
            .map(|j| (j.at, Event::Job(Box::new(j.spec.clone()))))
            .chain(
                scenario
                    .faults
                    .iter()
                    .map(|f| (f.at, Event::Fault(f.action.clone()))),
            )
            .collect();
        events.sort_by_key(|(at, _)| *at);
        let coordinator = world.coordinator().control();
        let clever = world.clever().control().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (thread_stop, thread_done) = (Arc::clone(&stop), Arc::clone(&done));
        let thread = std::thread::Builder::new()
            .name("paas-sim-schedule".to_owned())
            .spawn(move || {
                let start = Instant::now();
                for (at, event) in events {
                    // bounded: the wait ends at `at` or on stop
                    while !thread_stop.load(Ordering::Relaxed) {
                        let elapsed = start.elapsed();
                        if elapsed >= at {
                            break;
                        }
                        std::thread::sleep(SCHEDULE_STEP.min(at - elapsed));
                    }
                    if thread_stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match event {
                        Event::Job(spec) => {
                            coordinator.enqueue_job(*spec);
                        }
                        Event::Fault(action) => play(&coordinator, &clever, &action),
                    }
                }
                thread_done.store(true, Ordering::Relaxed);
            })
            .ok();
        if thread.is_none() {
            done.store(true, Ordering::Relaxed);
        }
        Schedule { stop, done, thread }
    }

    /// True once every event was played.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// Stops playing and waits for the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Schedule {
    fn drop(&mut self) {
        self.halt();
    }
}
