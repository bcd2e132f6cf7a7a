//! The service's Prometheus metrics: one [`Metrics`] registry of counters,
//! gauges and histograms (atomics, `Send + Sync`), updated by the
//! supervisor from its transitions (all in one place:
//! `supervisor/counting.rs`) and by the root crate's API clients, and
//! encoded in the Prometheus text format by [`Metrics::encode`]. Serving
//! it over HTTP is the root crate's business: this module does no I/O.
//!
//! Every label value comes from a bounded set: runner names from the
//! configuration, phase names, fixed reasons, actions, route names and
//! HTTP status codes; never a job id, a token or free text.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

mod live;

pub(crate) use live::BillLabels;

/// Prefix of every metric name.
pub const PREFIX: &str = "heptapod_paas_runner";

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the state write histogram: from a write to
/// a RAM-backed file to a disk that stalls.
const WRITE_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Upper bounds (seconds) of the latency histograms: from a simulated PAAS
/// (sub-second) to a slow real deployment (half an hour).
const LATENCY_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
];

/// Upper bounds (seconds) of `job_duration_seconds`: from a job of a few
/// seconds to a day (GitLab's longest job timeouts).
const JOB_DURATION_BUCKETS: [f64; 13] = [
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
    86400.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunnerLabel {
    runner: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunnerPhase {
    runner: String,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunnerResource {
    runner: String,
    resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunnerReason {
    runner: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunnerClass {
    runner: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabel {
    level: &'static str,
}

/// The level of a log record counted by `errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// ERROR (and CRITICAL).
    Error,
    /// WARN.
    Warn,
}

impl LogLevel {
    fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunnerOutcome {
    runner: String,
    outcome: &'static str,
}

/// How a job ended, as the runner saw it: the `outcome` label of
/// `jobs_finished_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum JobOutcome {
    /// It started on its resource and the coordinator says it is over
    /// (succeeded, failed or cancelled there).
    Finished,
    /// The coordinator said it was over before it started (cancelled
    /// while it was being launched).
    CancelledBeforeStart,
    /// Its launch failed.
    LaunchFailed,
}

impl JobOutcome {
    /// Every outcome.
    pub(crate) const ALL: [JobOutcome; 3] = [
        JobOutcome::Finished,
        JobOutcome::CancelledBeforeStart,
        JobOutcome::LaunchFailed,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Finished => "finished",
            JobOutcome::CancelledBeforeStart => "cancelled_before_start",
            JobOutcome::LaunchFailed => "launch_failed",
        }
    }
}

/// The error classes of `decommission_failures_total`.
const DECOMMISSION_FAILURE_CLASSES: [&str; 1] = ["permanent"];

/// How a poll of a runner ended, as monitoring sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PollAnswer {
    /// The coordinator answered (a job or none).
    Answered,
    /// The coordinator answered by refusing the runner's token (401, 403,
    /// 422): it is up, the credential is not valid.
    TokenRefused,
    /// No usable answer (connection error, timeout, 5xx, unexpected).
    Unanswered,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    runner: String,
    api: &'static str,
    endpoint: &'static str,
    status: String,
}

/// Why a launch failed: the `reason` label of `launch_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum LaunchFailureReason {
    /// The expected weight of the job could not be known.
    Weight,
    /// The runner could not write its state before an external call.
    State,
    /// The resource could not be created (or found by name).
    Create,
    /// The resource could not be prepared (environment, repository).
    Prepare,
    /// The job could not be pushed to its resource.
    Launch,
    /// The job trace did not grow within the trace-watch timeout.
    TraceTimeout,
    /// The job trace could not be read.
    TraceUnreadable,
}

impl LaunchFailureReason {
    /// Every reason, for documentation and tests.
    pub(crate) const ALL: [LaunchFailureReason; 7] = [
        LaunchFailureReason::Weight,
        LaunchFailureReason::State,
        LaunchFailureReason::Create,
        LaunchFailureReason::Prepare,
        LaunchFailureReason::Launch,
        LaunchFailureReason::TraceTimeout,
        LaunchFailureReason::TraceUnreadable,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LaunchFailureReason::Weight => "weight",
            LaunchFailureReason::State => "state",
            LaunchFailureReason::Create => "create",
            LaunchFailureReason::Prepare => "prepare",
            LaunchFailureReason::Launch => "launch",
            LaunchFailureReason::TraceTimeout => "trace_timeout",
            LaunchFailureReason::TraceUnreadable => "trace_unreadable",
        }
    }
}

/// What a reconciliation pass did with a listed resource or a tracked
/// entry: the `action` label of `reconcile_actions_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ReconcileAction {
    /// An unknown resource whose job still runs, tracked to its end.
    Adopted,
    /// An unknown resource sent to decommissioning.
    Decommissioned,
    /// A tracked entry whose resource vanished, forgotten.
    Forgotten,
    /// An unknown resource left alone (configuration keeps resources, or
    /// its job could not be identified yet).
    LeftAlone,
}

impl ReconcileAction {
    /// Every action.
    pub(crate) const ALL: [ReconcileAction; 4] = [
        ReconcileAction::Adopted,
        ReconcileAction::Decommissioned,
        ReconcileAction::Forgotten,
        ReconcileAction::LeftAlone,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReconcileAction::Adopted => "adopted",
            ReconcileAction::Decommissioned => "decommissioned",
            ReconcileAction::Forgotten => "forgotten",
            ReconcileAction::LeftAlone => "left_alone",
        }
    }
}

/// Which outside API a request went to: the `api` label of
/// `api_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// The GitLab coordinator.
    Gitlab,
    /// The Clever Cloud API.
    Clever,
    /// A git remote (deployment repository).
    Git,
    /// The helper service of a service application.
    Helper,
}

impl Api {
    fn as_str(self) -> &'static str {
        match self {
            Api::Gitlab => "gitlab",
            Api::Clever => "clever",
            Api::Git => "git",
            Api::Helper => "helper",
        }
    }
}

/// How a request to an outside API ended: the `status` label of
/// `api_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiStatus {
    /// An HTTP answer with this status.
    Http(u16),
    /// Done, without an HTTP status to show (a git exchange).
    Ok,
    /// No answer (connection refused, timeout, lost answer) or a failure
    /// without an HTTP status.
    Error,
}

/// The API requests of one runner: what its clients (coordinator, PAAS
/// API, git, helper services) count in `api_requests_total`, with its
/// `runner` label.
#[derive(Clone, Debug)]
pub struct ApiCounter {
    metrics: std::sync::Arc<Metrics>,
    runner: std::sync::Arc<str>,
}

impl ApiCounter {
    /// The requests of the runner labelled `runner`, counted in `metrics`.
    pub fn new(metrics: std::sync::Arc<Metrics>, runner: &str) -> ApiCounter {
        ApiCounter {
            metrics,
            runner: std::sync::Arc::from(runner),
        }
    }

    /// One request to `api` on the fixed route `endpoint`.
    pub fn api_request(&self, api: Api, endpoint: &'static str, status: ApiStatus) {
        self.metrics
            .api_request(&self.runner, api, endpoint, status);
    }
}

/// The registry and every family of the service (see README, "Monitoring",
/// for the contract). Shared as an `Arc`; every update is an atomic
/// operation (families take a short lock to find a label set).
pub struct Metrics {
    registry: Registry,
    version_info: Family<VersionLabels, Gauge>,
    jobs: Family<RunnerPhase, Gauge>,
    quota_weight: Family<KindLabel, Gauge<f64, AtomicU64>>,
    /// The `limit`, `used`, `reserved` and `standby` series of
    /// `quota_weight`, kept once created: set after every transition of the
    /// supervisor, they then cost no label lookup.
    quota_series: OnceLock<[Gauge<f64, AtomicU64>; 4]>,
    standby_resources: Family<RunnerLabel, Gauge>,
    jobs_launched: Family<RunnerResource, Counter>,
    concurrent_limit: Gauge,
    provisioning_limit: Gauge,
    jobs_acquired: Family<RunnerLabel, Counter>,
    resources_created: Family<RunnerLabel, Counter>,
    resources_deleted: Family<RunnerLabel, Counter>,
    jobs_given_back: Family<RunnerLabel, Counter>,
    launch_failures: Family<RunnerReason, Counter>,
    reconcile_actions: Family<ActionLabel, Counter>,
    state_writes: Counter,
    state_write_errors: Counter,
    state_write_duration: Histogram,
    api_requests: Family<ApiLabels, Counter>,
    /// The label sets of `api_requests` created, to delete a removed
    /// runner's (routes × statuses × runners: bounded).
    api_series: std::sync::Mutex<std::collections::HashSet<ApiLabels>>,
    /// Runners removed from the configuration: their clients' requests
    /// (a reconciliation of a removed runner's leftovers) are not counted.
    removed_runners: std::sync::Mutex<std::collections::HashSet<String>>,
    provision_duration: Histogram,
    start_duration: Histogram,
    decommission_lag: Histogram,
    coordinator_up: Family<RunnerLabel, Gauge>,
    last_successful_poll: Family<RunnerLabel, Gauge<f64, AtomicU64>>,
    trace_watch_token_refused: Family<RunnerLabel, Gauge>,
    decommission_failures: Family<RunnerClass, Counter>,
    runner_wants_jobs: Family<RunnerLabel, Gauge>,
    runner_token_valid: Family<RunnerLabel, Gauge>,
    jobs_finished: Family<RunnerOutcome, Counter>,
    job_duration: Histogram,
    log_records: Family<LevelLabel, Counter>,
    /// The series computed at scrape time (resource seconds, refused
    /// deletions).
    live: std::sync::Arc<live::Live>,
    tenants_unresolved: Family<RunnerLabel, Gauge>,
    /// Jobs whose life ended: counted for the state dump and the tests,
    /// not exported.
    completed: Counter,
    /// Reconciliation passes completed: counted for the state dump and
    /// the tests, not exported.
    reconcile_passes: Counter,
}

/// Event totals since start, read back from [`Metrics`] (summed over the
/// runners' series): what the state dump logs and the tests read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Jobs acquired.
    pub acquired: u64,
    /// Jobs whose life ended (resource gone or released).
    pub completed: u64,
    /// Launch failures.
    pub launch_failures: u64,
    /// Reconciliation passes completed (one per runner and pass), whether
    /// the listing succeeded or not.
    pub reconcile_passes: u64,
    /// Unknown resources adopted because their job still runs.
    pub adopted: u64,
    /// Unknown resources sent to decommissioning (job over, or no job).
    pub unknown_decommissioned: u64,
    /// Tracked entries forgotten because their resource vanished.
    pub vanished: u64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The `resource` label of `jobs_launched_total`: a new resource, or a
/// reused standby one (indexed by `reused`).
const LAUNCHED_ON: [&str; 2] = ["new", "reused"];

impl Metrics {
    /// Every family registered, all values at zero.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix(PREFIX),
            version_info: Family::default(),
            jobs: Family::default(),
            quota_weight: Family::default(),
            quota_series: OnceLock::new(),
            standby_resources: Family::default(),
            jobs_launched: Family::default(),
            concurrent_limit: Gauge::default(),
            provisioning_limit: Gauge::default(),
            jobs_acquired: Family::default(),
            resources_created: Family::default(),
            resources_deleted: Family::default(),
            jobs_given_back: Family::default(),
            launch_failures: Family::default(),
            reconcile_actions: Family::default(),
            state_writes: Counter::default(),
            state_write_errors: Counter::default(),
            state_write_duration: Histogram::new(WRITE_BUCKETS),
            api_requests: Family::default(),
            api_series: std::sync::Mutex::default(),
            removed_runners: std::sync::Mutex::default(),
            provision_duration: latency(),
            start_duration: latency(),
            decommission_lag: latency(),
            coordinator_up: Family::default(),
            last_successful_poll: Family::default(),
            trace_watch_token_refused: Family::default(),
            decommission_failures: Family::default(),
            runner_wants_jobs: Family::default(),
            runner_token_valid: Family::default(),
            jobs_finished: Family::default(),
            job_duration: Histogram::new(JOB_DURATION_BUCKETS),
            log_records: Family::default(),
            live: std::sync::Arc::default(),
            tenants_unresolved: Family::default(),
            completed: Counter::default(),
            reconcile_passes: Counter::default(),
        };
        m.register()
    }

    /// Registers every family: its field, name and help text, in the
    /// order of the output.
    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        macro_rules! families {
            ($($family:ident: $name:literal, $help:literal;)+) => {
                $(r.register($name, $help, self.$family.clone());)+
            };
        }
        families! {
            version_info: "version_info",
                "Version and revision of the running binary (always 1)";
            jobs: "jobs",
                "Tracked jobs per runner and phase (each job in exactly one phase)";
            quota_weight: "quota_weight",
                "Weighted quota: the limit, the weight used by tracked jobs, the weight reserved by polls in flight, the weight of standby resources (part of used)";
            standby_resources: "standby_resources",
                "Resources kept on standby for another job, per runner";
            jobs_launched: "jobs_launched",
                "Jobs launched, on a new resource or on a reused standby resource";
            concurrent_limit: "concurrent_limit",
                "Largest number of tracked jobs (concurrent)";
            provisioning_limit: "provisioning_limit",
                "Largest number of jobs being provisioned at once (paas_max_concurrent_provisioning)";
            jobs_acquired: "jobs_acquired",
                "Jobs acquired from the coordinator";
            resources_created: "resources_created",
                "PAAS resources created (or found by name after an uncertain create)";
            resources_deleted: "resources_deleted",
                "PAAS resources deleted (decommissioned)";
            jobs_given_back: "jobs_given_back",
                "Jobs the coordinator showed running for this runner that nothing here knew (lost at acquisition), cancelled and retried";
            launch_failures: "launch_failures",
                "Jobs whose launch failed, per reason";
            reconcile_actions: "reconcile_actions",
                "What reconciliation passes did with resources and entries";
            state_writes: "state_writes",
                "State file writes completed";
            state_write_errors: "state_write_errors",
                "State file writes that failed";
            state_write_duration: "state_write_duration_seconds",
                "Time of each completed state file write, content building to the directory's fsync";
            api_requests: "api_requests",
                "Requests to the coordinator, the PAAS API and git remotes, per route and status (\"error\" when no status came back)";
            provision_duration: "provision_duration_seconds",
                "Time from a job's acquisition to its push to the resource";
            start_duration: "start_duration_seconds",
                "Time from a job's acquisition to its start (job trace seen growing)";
            decommission_lag: "decommission_lag_seconds",
                "Time from a job seen finished to the deletion of its resource";
            coordinator_up: "coordinator_up",
                "1 when the runner's coordinator answers, 0 while its polls back off";
            last_successful_poll: "last_successful_poll_timestamp_seconds",
                "Unix time of the runner's last poll that the coordinator answered";
            trace_watch_token_refused: "trace_watch_token_refused",
                "1 while the runner's trace-watch token is refused by the coordinator";
            decommission_failures: "decommission_failures",
                "Failed resource deletions, per error class";
            runner_wants_jobs: "runner_wants_jobs",
                "1 while the runner wants jobs (configured, not stopping, not blocked by the limits), 0 otherwise";
            runner_token_valid: "runner_token_valid",
                "1 when the coordinator accepted the runner's token at the last poll it answered, 0 when it refused it (absent until the first answer)";
            jobs_finished: "jobs_finished",
                "Jobs whose end the runner saw, per outcome";
            job_duration: "job_duration_seconds",
                "Time from a job's acquisition to the coordinator saying it is over";
            log_records: "errors",
                "Log records at level ERROR (CRITICAL included) and WARN";
            tenants_unresolved: "tenants_unresolved",
                "Tenants (top-level groups) of tracked resources whose organisation cannot be found at the last reconciliation pass, for a reason that needs someone to act";
        }
        r.register_collector(Box::new(live::LiveCollector(self.live.clone())));
        for level in [LogLevel::Error, LogLevel::Warn] {
            self.log_records
                .get_or_create(&LevelLabel {
                    level: level.as_str(),
                })
                .inc_by(0);
        }
        self
    }

    /// The whole registry in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Sets `version_info{version, revision}` to 1.
    pub fn set_version(&self, version: &str, revision: &str) {
        self.version_info
            .get_or_create(&VersionLabels {
                version: version.to_string(),
                revision: revision.to_string(),
            })
            .set(1);
    }

    /// Declares a runner: its series appear at zero (`coordinator_up`,
    /// `runner_token_valid` and `last_successful_poll_timestamp_seconds`
    /// appear with the first poll that ends: unknown until then).
    pub fn add_runner(&self, runner: &str, phases: &[&'static str]) {
        let r = RunnerLabel {
            runner: runner.to_string(),
        };
        for phase in phases {
            self.jobs
                .get_or_create(&RunnerPhase {
                    runner: runner.to_string(),
                    phase,
                })
                .inc_by(0);
        }
        self.jobs_acquired.get_or_create(&r).inc_by(0);
        self.standby_resources.get_or_create(&r).inc_by(0);
        for resource in LAUNCHED_ON {
            self.jobs_launched
                .get_or_create(&RunnerResource {
                    runner: runner.to_string(),
                    resource,
                })
                .inc_by(0);
        }
        self.resources_created.get_or_create(&r).inc_by(0);
        self.resources_deleted.get_or_create(&r).inc_by(0);
        self.jobs_given_back.get_or_create(&r).inc_by(0);
        self.trace_watch_token_refused.get_or_create(&r).inc_by(0);
        self.runner_wants_jobs.get_or_create(&r).inc_by(0);
        for class in DECOMMISSION_FAILURE_CLASSES {
            self.decommission_failures
                .get_or_create(&RunnerClass {
                    runner: runner.to_string(),
                    class,
                })
                .inc_by(0);
        }
        for outcome in JobOutcome::ALL {
            self.jobs_finished
                .get_or_create(&RunnerOutcome {
                    runner: runner.to_string(),
                    outcome: outcome.as_str(),
                })
                .inc_by(0);
        }
        self.live.add_runner(runner);
        if let Ok(mut removed) = self.removed_runners.lock() {
            removed.remove(runner);
        }
        self.tenants_unresolved.get_or_create(&r).inc_by(0);
        for reason in LaunchFailureReason::ALL {
            self.launch_failures
                .get_or_create(&RunnerReason {
                    runner: runner.to_string(),
                    reason: reason.as_str(),
                })
                .inc_by(0);
        }
        for action in ReconcileAction::ALL {
            self.reconcile_actions
                .get_or_create(&ActionLabel {
                    action: action.as_str(),
                })
                .inc_by(0);
        }
    }

    /// The series that say how `runner` polls go (it is no longer polled):
    /// `coordinator_up`, `runner_token_valid`, `runner_wants_jobs`,
    /// `last_successful_poll_timestamp_seconds`, `trace_watch_token_refused`.
    pub(crate) fn remove_runner_polling(&self, runner: &str) {
        let r = runner_label(runner);
        self.coordinator_up.remove(&r);
        self.runner_token_valid.remove(&r);
        self.runner_wants_jobs.remove(&r);
        self.last_successful_poll.remove(&r);
        self.trace_watch_token_refused.remove(&r);
    }

    /// Every series labelled `runner` goes (the runner was removed from
    /// the configuration and nothing of it is tracked any more).
    pub(crate) fn remove_runner(&self, runner: &str, phases: &[&'static str]) {
        self.remove_runner_polling(runner);
        let r = runner_label(runner);
        let owned = || runner.to_string();
        for phase in phases {
            self.jobs.remove(&RunnerPhase {
                runner: owned(),
                phase,
            });
        }
        self.jobs_acquired.remove(&r);
        self.standby_resources.remove(&r);
        self.tenants_unresolved.remove(&r);
        self.jobs_given_back.remove(&r);
        for resource in LAUNCHED_ON {
            self.jobs_launched.remove(&RunnerResource {
                runner: owned(),
                resource,
            });
        }
        self.resources_created.remove(&r);
        self.resources_deleted.remove(&r);
        for reason in LaunchFailureReason::ALL {
            self.launch_failures.remove(&RunnerReason {
                runner: owned(),
                reason: reason.as_str(),
            });
        }
        for class in DECOMMISSION_FAILURE_CLASSES {
            self.decommission_failures.remove(&RunnerClass {
                runner: owned(),
                class,
            });
        }
        for outcome in JobOutcome::ALL {
            self.jobs_finished.remove(&RunnerOutcome {
                runner: owned(),
                outcome: outcome.as_str(),
            });
        }
        if let Ok(mut removed) = self.removed_runners.lock() {
            removed.insert(owned());
        }
        if let Ok(mut seen) = self.api_series.lock() {
            seen.retain(|labels| {
                let gone = labels.runner == runner;
                if gone {
                    self.api_requests.remove(labels);
                }
                !gone
            });
        }
        self.live.remove_runner(runner);
    }

    /// One log record at `level`.
    pub fn log_record(&self, level: LogLevel) {
        self.log_records
            .get_or_create(&LevelLabel {
                level: level.as_str(),
            })
            .inc();
    }

    /// Whether `runner` wants jobs now.
    pub(crate) fn set_wants_jobs(&self, runner: &str, wants: bool) {
        self.runner_wants_jobs
            .get_or_create(&runner_label(runner))
            .set(i64::from(wants));
    }

    /// One job of `runner` ended with `outcome`; `took` from its
    /// acquisition when it ran to its end at the coordinator.
    pub(crate) fn job_finished(&self, runner: &str, outcome: JobOutcome, took: Option<Duration>) {
        self.jobs_finished
            .get_or_create(&RunnerOutcome {
                runner: runner.to_string(),
                outcome: outcome.as_str(),
            })
            .inc();
        if let Some(took) = took {
            self.job_duration.observe(took.as_secs_f64());
        }
    }

    /// The resource of job `job_id` exists from now, billed to `bill`.
    pub(crate) fn resource_alive(&self, bill: BillLabels, job_id: i64) {
        self.live.resource_alive(bill, job_id, live::unix_now());
    }

    /// The resource of job `job_id` of `runner` is gone (or no longer
    /// ours): its seconds are counted for good.
    pub(crate) fn resource_gone(&self, runner: &str, job_id: i64) {
        self.live.resource_gone(runner, job_id, live::unix_now());
    }

    /// The PAAS refused to delete the resource of job `job_id` of
    /// `runner` with a permanent error.
    pub(crate) fn delete_refused(&self, runner: &str, job_id: i64) {
        self.live.delete_refused(runner, job_id, live::unix_now());
        self.decommission_failed(runner, "permanent");
    }

    /// One job of `runner` left phase `from` (`None`: newly tracked) for
    /// phase `to` (`None`: no longer tracked).
    pub(crate) fn job_moved(
        &self,
        runner: &str,
        from: Option<&'static str>,
        to: Option<&'static str>,
    ) {
        if let Some(phase) = from {
            self.jobs
                .get_or_create(&RunnerPhase {
                    runner: runner.to_string(),
                    phase,
                })
                .dec();
        }
        if let Some(phase) = to {
            self.jobs
                .get_or_create(&RunnerPhase {
                    runner: runner.to_string(),
                    phase,
                })
                .inc();
        }
        // A standby resource is a job entry in phase `standby`.
        let standby = |p: Option<&str>| p == Some("standby");
        if standby(from) != standby(to) {
            let gauge = self.standby_resources.get_or_create(&runner_label(runner));
            if standby(to) {
                gauge.inc();
            } else {
                gauge.dec();
            }
        }
    }

    /// One job of `runner` launched, on a `reused` standby resource or not.
    pub(crate) fn job_launched(&self, runner: &str, reused: bool) {
        self.jobs_launched
            .get_or_create(&RunnerResource {
                runner: runner.to_string(),
                resource: LAUNCHED_ON[usize::from(reused)],
            })
            .inc();
    }

    /// Sets the quota gauges.
    pub fn set_quota(&self, limit: f64, used: f64, reserved: f64) {
        let series = self.quota_series();
        // A weight never shows as `-0` (nor as a rounding error below 0).
        let weight = |v: f64| if v > 0.0 { v } else { 0.0 };
        for (gauge, v) in series
            .iter()
            .zip([weight(limit), weight(used), weight(reserved)])
        {
            gauge.set(v);
        }
    }

    /// Sets `quota_weight{kind="standby"}` (part of `used`).
    pub(crate) fn set_standby_weight(&self, standby: f64) {
        if let Some(gauge) = self.quota_series().get(3) {
            gauge.set(if standby > 0.0 { standby } else { 0.0 });
        }
    }

    fn quota_series(&self) -> &[Gauge<f64, AtomicU64>; 4] {
        self.quota_series.get_or_init(|| {
            ["limit", "used", "reserved", "standby"]
                .map(|kind| self.quota_weight.get_or_create_owned(&KindLabel { kind }))
        })
    }

    /// Sets `concurrent_limit` and `provisioning_limit`.
    pub(crate) fn set_limits(&self, concurrent: usize, provisioning: usize) {
        self.concurrent_limit
            .set(i64::try_from(concurrent).unwrap_or(i64::MAX));
        self.provisioning_limit
            .set(i64::try_from(provisioning).unwrap_or(i64::MAX));
    }

    /// One job acquired by `runner`.
    pub(crate) fn job_acquired(&self, runner: &str) {
        self.jobs_acquired
            .get_or_create(&runner_label(runner))
            .inc();
    }

    /// One resource created for `runner`.
    pub(crate) fn resource_created(&self, runner: &str) {
        self.resources_created
            .get_or_create(&runner_label(runner))
            .inc();
    }

    /// One job of `runner` given back to its coordinator (cancelled, then
    /// retried).
    pub(crate) fn job_given_back(&self, runner: &str) {
        self.jobs_given_back
            .get_or_create(&runner_label(runner))
            .inc();
    }

    /// One resource of `runner` deleted.
    pub(crate) fn resource_deleted(&self, runner: &str) {
        self.resources_deleted
            .get_or_create(&runner_label(runner))
            .inc();
    }

    /// One launch failure of `runner`.
    pub(crate) fn launch_failed(&self, runner: &str, reason: LaunchFailureReason) {
        self.launch_failures
            .get_or_create(&RunnerReason {
                runner: runner.to_string(),
                reason: reason.as_str(),
            })
            .inc();
    }

    /// One reconciliation action.
    pub(crate) fn reconcile_action(&self, action: ReconcileAction) {
        self.reconcile_actions
            .get_or_create(&ActionLabel {
                action: action.as_str(),
            })
            .inc();
    }

    /// One state write completed (`ok`, taking `took`) or failed.
    pub(crate) fn state_written(&self, ok: bool, took: Duration) {
        if ok {
            self.state_writes.inc();
            self.state_write_duration.observe(took.as_secs_f64());
        } else {
            self.state_write_errors.inc();
        }
    }

    /// One request of `runner` to `api` on the fixed route `endpoint`.
    pub fn api_request(&self, runner: &str, api: Api, endpoint: &'static str, status: ApiStatus) {
        let status = match status {
            ApiStatus::Http(s) => s.to_string(),
            ApiStatus::Ok => "ok".to_string(),
            ApiStatus::Error => "error".to_string(),
        };
        let removed = self
            .removed_runners
            .lock()
            .is_ok_and(|removed| removed.contains(runner));
        if removed {
            return;
        }
        let labels = ApiLabels {
            runner: runner.to_string(),
            api: api.as_str(),
            endpoint,
            status,
        };
        if self.api_requests.get(&labels).is_none() {
            if let Ok(mut seen) = self.api_series.lock() {
                seen.insert(labels.clone());
            }
        }
        self.api_requests.get_or_create(&labels).inc();
    }

    /// A job pushed to its resource, `took` after its acquisition.
    pub(crate) fn observe_provision(&self, took: Duration) {
        self.provision_duration.observe(took.as_secs_f64());
    }

    /// A job started, `took` after its acquisition.
    pub(crate) fn observe_start(&self, took: Duration) {
        self.start_duration.observe(took.as_secs_f64());
    }

    /// A resource deleted, `took` after its job was seen finished.
    pub(crate) fn observe_decommission_lag(&self, took: Duration) {
        self.decommission_lag.observe(took.as_secs_f64());
    }

    /// Whether `runner`'s coordinator answers (false while backing off).
    pub(crate) fn set_coordinator_up(&self, runner: &str, up: bool) {
        self.coordinator_up
            .get_or_create(&runner_label(runner))
            .set(i64::from(up));
    }

    /// `runner`'s coordinator answered a poll now.
    pub fn polled(&self, runner: &str) {
        self.last_successful_poll
            .get_or_create(&runner_label(runner))
            .set(live::unix_now());
        self.set_coordinator_up(runner, true);
        self.set_token_valid(runner, true);
    }

    fn set_token_valid(&self, runner: &str, valid: bool) {
        self.runner_token_valid
            .get_or_create(&runner_label(runner))
            .set(i64::from(valid));
    }

    /// A poll of `runner` ended: a refused token is a coordinator that is
    /// up (`coordinator_up` 1, `runner_token_valid` 0).
    pub(crate) fn poll_ended(&self, runner: &str, answer: PollAnswer) {
        match answer {
            PollAnswer::Answered => self.polled(runner),
            PollAnswer::TokenRefused => {
                self.set_coordinator_up(runner, true);
                self.set_token_valid(runner, false);
            }
            PollAnswer::Unanswered => self.set_coordinator_up(runner, false),
        }
    }

    /// Whether `runner`'s trace-watch token is refused.
    pub(crate) fn set_trace_watch_token_refused(&self, runner: &str, refused: bool) {
        self.trace_watch_token_refused
            .get_or_create(&runner_label(runner))
            .set(i64::from(refused));
    }

    /// How many tenants of `runner` cannot be resolved (permanently) now.
    pub(crate) fn set_tenants_unresolved(&self, runner: &str, count: usize) {
        self.tenants_unresolved
            .get_or_create(&runner_label(runner))
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// One failed deletion of a resource of `runner`; `class` is a fixed
    /// error class name.
    pub fn decommission_failed(&self, runner: &str, class: &'static str) {
        self.decommission_failures
            .get_or_create(&RunnerClass {
                runner: runner.to_string(),
                class,
            })
            .inc();
    }

    /// One job's life ended (not exported).
    pub(crate) fn job_completed(&self) {
        self.completed.inc();
    }

    /// One reconciliation pass completed (not exported).
    pub(crate) fn reconcile_pass_ended(&self) {
        self.reconcile_passes.inc();
    }

    /// The totals since start, summed over the series of `runners` (each
    /// label counted once).
    pub(crate) fn totals<'a>(&self, runners: impl IntoIterator<Item = &'a str>) -> Totals {
        let labels: std::collections::BTreeSet<&str> = runners.into_iter().collect();
        let (mut acquired, mut launch_failures) = (0, 0);
        for runner in labels {
            let r = runner_label(runner);
            acquired += self.jobs_acquired.get(&r).map_or(0, |c| c.get());
            for reason in LaunchFailureReason::ALL {
                let labels = RunnerReason {
                    runner: runner.to_string(),
                    reason: reason.as_str(),
                };
                launch_failures += self.launch_failures.get(&labels).map_or(0, |c| c.get());
            }
        }
        let action = |action: ReconcileAction| {
            let labels = ActionLabel {
                action: action.as_str(),
            };
            self.reconcile_actions.get(&labels).map_or(0, |c| c.get())
        };
        Totals {
            acquired,
            completed: self.completed.get(),
            launch_failures,
            reconcile_passes: self.reconcile_passes.get(),
            adopted: action(ReconcileAction::Adopted),
            unknown_decommissioned: action(ReconcileAction::Decommissioned),
            vanished: action(ReconcileAction::Forgotten),
        }
    }
}

fn runner_label(runner: &str) -> RunnerLabel {
    RunnerLabel {
        runner: runner.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_named_and_counters_end_in_total() {
        let m = Metrics::new();
        m.set_version("1.2.3", "abc");
        m.add_runner("r1", &["acquired", "started"]);
        m.job_acquired("r1");
        m.job_moved("r1", None, Some("acquired"));
        m.job_moved("r1", Some("acquired"), Some("started"));
        m.api_request("r1", Api::Clever, "create_app", ApiStatus::Http(500));
        m.api_request("r1", Api::Gitlab, "request_job", ApiStatus::Error);
        m.observe_provision(Duration::from_secs(3));
        m.set_quota(10.0, 2.5, 1.0);
        let text = m.encode().expect("encodes");
        for line in [
            "heptapod_paas_runner_version_info{version=\"1.2.3\",revision=\"abc\"} 1",
            "heptapod_paas_runner_jobs{runner=\"r1\",phase=\"started\"} 1",
            "heptapod_paas_runner_jobs{runner=\"r1\",phase=\"acquired\"} 0",
            "heptapod_paas_runner_jobs_acquired_total{runner=\"r1\"} 1",
            "heptapod_paas_runner_api_requests_total{runner=\"r1\",api=\"clever\",endpoint=\"create_app\",status=\"500\"} 1",
            "heptapod_paas_runner_api_requests_total{runner=\"r1\",api=\"gitlab\",endpoint=\"request_job\",status=\"error\"} 1",
            "heptapod_paas_runner_provision_duration_seconds_count 1",
            "heptapod_paas_runner_quota_weight{kind=\"used\"} 2.5",
            "heptapod_paas_runner_decommission_failures_total{runner=\"r1\",class=\"permanent\"} 0",
            "heptapod_paas_runner_jobs_finished_total{runner=\"r1\",outcome=\"launch_failed\"} 0",
            "heptapod_paas_runner_runner_wants_jobs{runner=\"r1\"} 0",
            "heptapod_paas_runner_oldest_refused_delete_age_seconds{runner=\"r1\"} 0.0",
            "heptapod_paas_runner_launch_failures_total{runner=\"r1\",reason=\"trace_timeout\"} 0",
            "heptapod_paas_runner_reconcile_actions_total{action=\"left_alone\"} 0",
            "heptapod_paas_runner_state_writes_total 0",
            "heptapod_paas_runner_state_write_duration_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
        // Unknown until the first poll ends.
        assert!(!text.contains("coordinator_up{"), "{text}");
        assert!(!text.contains("runner_token_valid{"), "{text}");
    }

    #[test]
    fn a_refused_token_is_an_answering_coordinator_and_no_weight_is_negative_zero() {
        let m = Metrics::new();
        m.add_runner("r1", &["acquired"]);
        m.poll_ended("r1", PollAnswer::Unanswered);
        m.set_quota(4.0, 0.0, -0.0);
        let text = m.encode().expect("encodes");
        assert!(text.contains("coordinator_up{runner=\"r1\"} 0\n"), "{text}");
        assert!(!text.contains("runner_token_valid{"), "{text}");
        assert!(
            text.contains("quota_weight{kind=\"reserved\"} 0.0\n"),
            "{text}"
        );
        assert!(!text.contains("-0"), "{text}");
        m.poll_ended("r1", PollAnswer::TokenRefused);
        let text = m.encode().expect("encodes");
        assert!(text.contains("coordinator_up{runner=\"r1\"} 1\n"), "{text}");
        assert!(
            text.contains("runner_token_valid{runner=\"r1\"} 0\n"),
            "{text}"
        );
        assert!(
            !text.contains("last_successful_poll_timestamp_seconds{"),
            "{text}"
        );
        m.poll_ended("r1", PollAnswer::Answered);
        let text = m.encode().expect("encodes");
        assert!(
            text.contains("runner_token_valid{runner=\"r1\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("last_successful_poll_timestamp_seconds{runner=\"r1\"}"));
    }

    #[test]
    fn a_removed_runner_leaves_no_series_and_the_others_stay() {
        let m = Metrics::new();
        let phases = ["acquired", "started"];
        m.add_runner("r1", &phases);
        m.add_runner("r2", &phases);
        for r in ["r1", "r2"] {
            m.poll_ended(r, PollAnswer::Answered);
            m.set_wants_jobs(r, true);
            m.job_acquired(r);
            m.api_request(r, Api::Gitlab, "job request", ApiStatus::Http(201));
            m.delete_refused(r, 1);
            m.resource_alive(
                BillLabels {
                    runner: r.into(),
                    flavor: "M".into(),
                    organisation: "o".into(),
                },
                2,
            );
        }
        m.remove_runner_polling("r1");
        let text = m.encode().expect("encodes");
        assert!(!text.contains("coordinator_up{runner=\"r1\"}"), "{text}");
        assert!(
            text.contains("jobs_acquired_total{runner=\"r1\"} 1"),
            "{text}"
        );
        m.remove_runner("r1", &phases);
        // Its clients' late requests are not counted.
        m.api_request("r1", Api::Clever, "list-apps", ApiStatus::Http(200));
        let text = m.encode().expect("encodes");
        assert!(!text.contains("\"r1\""), "{text}");
        // Added again: counted again.
        m.add_runner("r1", &phases);
        m.api_request("r1", Api::Clever, "list-apps", ApiStatus::Http(200));
        let text = m.encode().expect("encodes");
        assert!(
            text.contains("api_requests_total{runner=\"r1\",api=\"clever\",endpoint=\"list-apps\",status=\"200\"} 1"),
            "{text}"
        );
        m.remove_runner("r1", &phases);
        for part in [
            "coordinator_up{runner=\"r2\"} 1",
            "jobs_acquired_total{runner=\"r2\"} 1",
            "api_requests_total{runner=\"r2\",api=\"gitlab\",endpoint=\"job request\",status=\"201\"} 1",
            "runner_wants_jobs{runner=\"r2\"} 1",
            "resource_seconds_total{runner=\"r2\",flavor=\"M\",organisation=\"o\"}",
            "decommission_failures_total{runner=\"r2\",class=\"permanent\"} 1",
            "oldest_refused_delete_age_seconds{runner=\"r2\"}",
        ] {
            assert!(text.contains(part), "{part} missing in\n{text}");
        }
    }

    #[test]
    fn totals_are_read_back_once_per_label_and_the_unexported_stay_out() {
        let m = Metrics::new();
        m.add_runner("r1", &["acquired"]);
        m.add_runner("r2", &["acquired"]);
        m.job_acquired("r1");
        m.job_acquired("r2");
        m.job_acquired("r2");
        m.launch_failed("r1", LaunchFailureReason::Create);
        m.launch_failed("r2", LaunchFailureReason::TraceTimeout);
        m.reconcile_action(ReconcileAction::Adopted);
        m.reconcile_action(ReconcileAction::Forgotten);
        m.reconcile_action(ReconcileAction::LeftAlone);
        m.job_completed();
        m.reconcile_pass_ended();
        m.reconcile_pass_ended();
        let want = Totals {
            acquired: 3,
            completed: 1,
            launch_failures: 2,
            reconcile_passes: 2,
            adopted: 1,
            unknown_decommissioned: 0,
            vanished: 1,
        };
        // A label shared by two runners is counted once.
        assert_eq!(m.totals(["r1", "r2", "r2"]), want);
        assert_eq!(m.totals(["r1"]).acquired, 1);
        let text = m.encode().expect("encodes");
        assert!(
            !text.contains("_completed") && !text.contains("reconcile_passes"),
            "{text}"
        );
    }
}
