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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
struct ActionLabel {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
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

/// The registry and every family of the service (see README, "Monitoring",
/// for the contract). Shared as an `Arc`; every update is an atomic
/// operation (families take a short lock to find a label set).
pub struct Metrics {
    registry: Registry,
    version_info: Family<VersionLabels, Gauge>,
    jobs: Family<RunnerPhase, Gauge>,
    quota_weight: Family<KindLabel, Gauge<f64, AtomicU64>>,
    /// The `limit`, `used` and `reserved` series of `quota_weight`, kept
    /// once created: set after every transition of the supervisor, they
    /// then cost no label lookup.
    quota_series: OnceLock<[Gauge<f64, AtomicU64>; 3]>,
    concurrent_limit: Gauge,
    provisioning_limit: Gauge,
    jobs_acquired: Family<RunnerLabel, Counter>,
    resources_created: Family<RunnerLabel, Counter>,
    resources_deleted: Family<RunnerLabel, Counter>,
    launch_failures: Family<RunnerReason, Counter>,
    reconcile_actions: Family<ActionLabel, Counter>,
    state_writes: Counter,
    state_write_errors: Counter,
    state_write_duration: Histogram,
    api_requests: Family<ApiLabels, Counter>,
    provision_duration: Histogram,
    start_duration: Histogram,
    decommission_lag: Histogram,
    coordinator_up: Family<RunnerLabel, Gauge>,
    last_successful_poll: Family<RunnerLabel, Gauge<f64, AtomicU64>>,
    trace_watch_token_refused: Family<RunnerLabel, Gauge>,
    decommission_failures: Family<RunnerClass, Counter>,
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

impl Metrics {
    /// Every family registered, all values at zero.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix(PREFIX),
            version_info: Family::default(),
            jobs: Family::default(),
            quota_weight: Family::default(),
            quota_series: OnceLock::new(),
            concurrent_limit: Gauge::default(),
            provisioning_limit: Gauge::default(),
            jobs_acquired: Family::default(),
            resources_created: Family::default(),
            resources_deleted: Family::default(),
            launch_failures: Family::default(),
            reconcile_actions: Family::default(),
            state_writes: Counter::default(),
            state_write_errors: Counter::default(),
            state_write_duration: Histogram::new(WRITE_BUCKETS),
            api_requests: Family::default(),
            provision_duration: latency(),
            start_duration: latency(),
            decommission_lag: latency(),
            coordinator_up: Family::default(),
            last_successful_poll: Family::default(),
            trace_watch_token_refused: Family::default(),
            decommission_failures: Family::default(),
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
                "Weighted quota: the limit, the weight used by tracked jobs, the weight reserved by polls in flight";
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

    /// Declares a runner: its series appear at zero, `coordinator_up` at 1.
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
        self.resources_created.get_or_create(&r).inc_by(0);
        self.resources_deleted.get_or_create(&r).inc_by(0);
        self.coordinator_up.get_or_create(&r).set(1);
        self.trace_watch_token_refused.get_or_create(&r).inc_by(0);
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
    }

    /// Sets the quota gauges.
    pub fn set_quota(&self, limit: f64, used: f64, reserved: f64) {
        let series = self.quota_series.get_or_init(|| {
            ["limit", "used", "reserved"]
                .map(|kind| self.quota_weight.get_or_create_owned(&KindLabel { kind }))
        });
        for (gauge, v) in series.iter().zip([limit, used, reserved]) {
            gauge.set(v);
        }
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

    /// One request to `api` on the fixed route `endpoint`.
    pub fn api_request(&self, api: Api, endpoint: &'static str, status: ApiStatus) {
        let status = match status {
            ApiStatus::Http(s) => s.to_string(),
            ApiStatus::Ok => "ok".to_string(),
            ApiStatus::Error => "error".to_string(),
        };
        self.api_requests
            .get_or_create(&ApiLabels {
                api: api.as_str(),
                endpoint,
                status,
            })
            .inc();
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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_successful_poll
            .get_or_create(&runner_label(runner))
            .set(now);
        self.set_coordinator_up(runner, true);
    }

    /// A poll of `runner` ended, answered by its coordinator or not.
    pub(crate) fn poll_ended(&self, runner: &str, answered: bool) {
        if answered {
            self.polled(runner);
        } else {
            self.set_coordinator_up(runner, false);
        }
    }

    /// Whether `runner`'s trace-watch token is refused.
    pub(crate) fn set_trace_watch_token_refused(&self, runner: &str, refused: bool) {
        self.trace_watch_token_refused
            .get_or_create(&runner_label(runner))
            .set(i64::from(refused));
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
        m.api_request(Api::Clever, "create_app", ApiStatus::Http(500));
        m.api_request(Api::Gitlab, "request_job", ApiStatus::Error);
        m.observe_provision(Duration::from_secs(3));
        m.set_quota(10.0, 2.5, 1.0);
        let text = m.encode().expect("encodes");
        for line in [
            "heptapod_paas_runner_version_info{version=\"1.2.3\",revision=\"abc\"} 1",
            "heptapod_paas_runner_jobs{runner=\"r1\",phase=\"started\"} 1",
            "heptapod_paas_runner_jobs{runner=\"r1\",phase=\"acquired\"} 0",
            "heptapod_paas_runner_jobs_acquired_total{runner=\"r1\"} 1",
            "heptapod_paas_runner_api_requests_total{api=\"clever\",endpoint=\"create_app\",status=\"500\"} 1",
            "heptapod_paas_runner_api_requests_total{api=\"gitlab\",endpoint=\"request_job\",status=\"error\"} 1",
            "heptapod_paas_runner_provision_duration_seconds_count 1",
            "heptapod_paas_runner_quota_weight{kind=\"used\"} 2.5",
            "heptapod_paas_runner_coordinator_up{runner=\"r1\"} 1",
            "heptapod_paas_runner_launch_failures_total{runner=\"r1\",reason=\"trace_timeout\"} 0",
            "heptapod_paas_runner_reconcile_actions_total{action=\"left_alone\"} 0",
            "heptapod_paas_runner_state_writes_total 0",
            "heptapod_paas_runner_state_write_duration_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
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
