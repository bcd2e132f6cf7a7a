//! The ledger: what happened in the fake Clever Cloud, for assertions and the demo summary.
//!
//! Requests counted per endpoint, every application with its creation and deletion times and
//! weight, the live weight and live application count over time (maxima kept), deployments,
//! inner-runner reports, the calls to service applications' helpers and the jobs they ran,
//! and violations. Times are milliseconds since the fake started.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::faults::Endpoint;

/// Bound of the request journal (oldest entries dropped first).
const JOURNAL_CAP: usize = 10_000;

/// One application as the ledger knows it.
#[derive(Debug, Clone, Serialize)]
pub struct AppEntry {
    /// Application id (`app_<uuid>`).
    pub id: String,
    /// Application name (`hpd-job-<unique>-<job id>` for the runner).
    pub name: String,
    /// Owning organisation.
    pub org: String,
    /// Name of the max flavor.
    pub flavor: String,
    /// Weight `(maxFlavor mem MiB / 1024) ^ 1.25`.
    pub weight: f64,
    /// Arrival of the create request (ms since start).
    pub requested_ms: u64,
    /// Creation time (ms since start): the create request answered.
    pub created_ms: u64,
    /// Deletion time (ms since start), `None` while alive.
    pub deleted_ms: Option<u64>,
    /// Number of deployments (pushes moving `master`).
    pub deployments: u32,
    /// Created without `instanceLifetime` (a service application, with its own helper
    /// listener).
    pub service: bool,
    /// Jobs its helper accepted (`launch-job` answered 201).
    pub helper_jobs: u32,
}

/// A point of the live weight / live count curve, taken after each change.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LivePoint {
    /// Time of the change (ms since start).
    pub t_ms: u64,
    /// Sum of the weights of live applications.
    pub live_weight: f64,
    /// Number of live applications.
    pub live_count: usize,
}

/// Something a client did that the real service or the inner runner would not accept.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// Time (ms since start).
    pub t_ms: u64,
    /// Application concerned, if any.
    pub app_id: Option<String>,
    /// Job concerned, if known.
    pub job_id: Option<i64>,
    /// Short machine-friendly kind, e.g. `dockerfile_from`.
    pub kind: String,
    /// Human explanation (never contains a token).
    pub message: String,
}

/// A deployment (push moving `refs/heads/master`).
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentEntry {
    /// Time (ms since start).
    pub t_ms: u64,
    /// Application deployed.
    pub app_id: String,
    /// Commit pushed to `master`.
    pub commit: String,
    /// Job id read from the pushed `job.json`, when readable.
    pub job_id: Option<i64>,
    /// True once every check (including the comparison with the coordinator) is done.
    pub checked: bool,
    /// What the simulated inner runner did last (`checking`, `waiting`, `trace_written`,
    /// `finished:<state>`, `aborted:<why>`).
    pub inner_status: String,
}

/// A route of a service application's helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelperRoute {
    /// `GET /can-take-job`
    CanTakeJob,
    /// `POST /launch-job`
    LaunchJob,
    /// Anything else (answered 404 or 405)
    Other,
}

/// One call to a helper (no header, no body: tokens never land here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HelperCall {
    /// Time (ms since start).
    pub t_ms: u64,
    /// Application whose helper was called.
    pub app_id: String,
    /// Route called.
    pub route: HelperRoute,
    /// Status answered.
    pub status: u16,
    /// For a `can-take-job` answered 200: the JSON boolean answered.
    pub answer: Option<bool>,
}

/// A job a helper accepted and runs with the simulated inner runner.
#[derive(Debug, Clone, Serialize)]
pub struct HelperJobEntry {
    /// Time of the 201 (ms since start).
    pub t_ms: u64,
    /// Application running it.
    pub app_id: String,
    /// Job id of the launch request.
    pub job_id: i64,
    /// `runner_name` of the launch request.
    pub runner_name: String,
    /// The job's tenant: the organisation its top-level group maps to (see
    /// [`super::CleverControl::set_tenant_orgs`]), else `group:<top-level group>`.
    pub tenant: String,
    /// The application had run another job before (a reuse).
    pub reused: bool,
    /// True once every check (including the comparison with the coordinator) is done.
    pub checked: bool,
    /// What the simulated inner runner did last (as [`DeploymentEntry::inner_status`]).
    pub inner_status: String,
}

/// One recorded request (no header, no body: tokens never land here).
#[derive(Debug, Clone, Serialize)]
pub struct RequestEntry {
    /// Time (ms since start).
    pub t_ms: u64,
    /// Endpoint classification.
    pub endpoint: Endpoint,
    /// HTTP method.
    pub method: String,
    /// Request path (no query string).
    pub path: String,
}

/// The ledger itself (owned by the world, behind its lock).
#[derive(Debug, Default)]
pub struct Ledger {
    requests: BTreeMap<Endpoint, u64>,
    journal: VecDeque<RequestEntry>,
    apps: Vec<AppEntry>,
    live_weight: f64,
    live_count: usize,
    max_live_weight: f64,
    max_live_count: usize,
    curve: Vec<LivePoint>,
    violations: Vec<Violation>,
    deployments: Vec<DeploymentEntry>,
    helper_calls: VecDeque<HelperCall>,
    helper_call_counts: BTreeMap<HelperRoute, BTreeMap<u16, u64>>,
    helper_jobs: Vec<HelperJobEntry>,
}

/// Summary of the ledger, as served by `GET /__sim/ledger`.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerSummary {
    /// Requests per endpoint.
    pub requests: BTreeMap<Endpoint, u64>,
    /// Applications created.
    pub apps_created: usize,
    /// Applications deleted.
    pub apps_deleted: usize,
    /// Applications still alive (leaks when the runner should have cleaned up).
    pub leaks: Vec<AppEntry>,
    /// Names used by more than one application, with their ids (duplicate apps per job).
    pub duplicates: BTreeMap<String, Vec<String>>,
    /// Current live weight.
    pub live_weight: f64,
    /// Current live application count.
    pub live_count: usize,
    /// Maximum live weight ever reached.
    pub max_live_weight: f64,
    /// Maximum live application count ever reached.
    pub max_live_count: usize,
    /// Number of deployments.
    pub deployments: usize,
    /// Number of violations.
    pub violations: usize,
    /// Helper calls per route (every status).
    pub helper_calls: BTreeMap<HelperRoute, u64>,
    /// Jobs accepted by helpers.
    pub helper_jobs: usize,
    /// Of those, jobs accepted by an application that had run a job before.
    pub helper_jobs_reused: usize,
    /// Service applications created.
    pub service_apps: usize,
}

impl Ledger {
    /// Counts a request on `endpoint`.
    pub fn record_request(&mut self, t_ms: u64, endpoint: Endpoint, method: &str, path: &str) {
        *self.requests.entry(endpoint).or_insert(0) += 1;
        if self.journal.len() >= JOURNAL_CAP {
            self.journal.pop_front();
        }
        self.journal.push_back(RequestEntry {
            t_ms,
            endpoint,
            method: method.to_owned(),
            path: path.to_owned(),
        });
    }

    /// Records the creation of an application.
    pub fn app_created(&mut self, entry: AppEntry) {
        self.live_weight += entry.weight;
        self.live_count += 1;
        let t_ms = entry.created_ms;
        self.apps.push(entry);
        self.push_point(t_ms);
    }

    /// Records the deletion of an application (idempotent).
    pub fn app_deleted(&mut self, app_id: &str, t_ms: u64) {
        let Some(entry) = self
            .apps
            .iter_mut()
            .find(|a| a.id == app_id && a.deleted_ms.is_none())
        else {
            return;
        };
        entry.deleted_ms = Some(t_ms);
        self.live_weight = (self.live_weight - entry.weight).max(0.0);
        self.live_count = self.live_count.saturating_sub(1);
        if self.live_count == 0 {
            self.live_weight = 0.0;
        }
        self.push_point(t_ms);
    }

    fn push_point(&mut self, t_ms: u64) {
        if self.live_weight > self.max_live_weight {
            self.max_live_weight = self.live_weight;
        }
        if self.live_count > self.max_live_count {
            self.max_live_count = self.live_count;
        }
        self.curve.push(LivePoint {
            t_ms,
            live_weight: self.live_weight,
            live_count: self.live_count,
        });
    }

    /// Records a deployment; returns its index for later updates.
    pub fn deployment(&mut self, entry: DeploymentEntry) -> usize {
        if let Some(app) = self.apps.iter_mut().find(|a| a.id == entry.app_id) {
            app.deployments += 1;
        }
        self.deployments.push(entry);
        self.deployments.len() - 1
    }

    /// Updates the deployment at `index` (as returned by [`Ledger::deployment`]).
    pub fn update_deployment(&mut self, index: usize, f: impl FnOnce(&mut DeploymentEntry)) {
        if let Some(d) = self.deployments.get_mut(index) {
            f(d);
        }
    }

    /// Records a violation.
    pub fn violation(&mut self, v: Violation) {
        self.violations.push(v);
    }

    /// Records a call to a helper.
    pub fn helper_call(&mut self, call: HelperCall) {
        *self
            .helper_call_counts
            .entry(call.route)
            .or_default()
            .entry(call.status)
            .or_insert(0) += 1;
        if self.helper_calls.len() >= JOURNAL_CAP {
            self.helper_calls.pop_front();
        }
        self.helper_calls.push_back(call);
    }

    /// Records a job a helper accepted; returns its index for later updates.
    pub fn helper_job(&mut self, entry: HelperJobEntry) -> usize {
        if let Some(app) = self.apps.iter_mut().find(|a| a.id == entry.app_id) {
            app.helper_jobs += 1;
        }
        self.helper_jobs.push(entry);
        self.helper_jobs.len() - 1
    }

    /// Updates the helper job at `index` (as returned by [`Ledger::helper_job`]).
    pub fn update_helper_job(&mut self, index: usize, f: impl FnOnce(&mut HelperJobEntry)) {
        if let Some(j) = self.helper_jobs.get_mut(index) {
            f(j);
        }
    }

    /// Helper calls counted on `route`, with status `status` (every status when `None`).
    /// Exact: the count is kept apart from the bounded journal.
    pub fn helper_call_count(&self, route: HelperRoute, status: Option<u16>) -> u64 {
        let Some(by_status) = self.helper_call_counts.get(&route) else {
            return 0;
        };
        match status {
            Some(s) => by_status.get(&s).copied().unwrap_or(0),
            None => by_status.values().sum(),
        }
    }

    /// The helper calls (bounded journal, oldest first).
    pub fn helper_calls(&self) -> Vec<HelperCall> {
        self.helper_calls.iter().cloned().collect()
    }

    /// Every job a helper accepted.
    pub fn helper_jobs(&self) -> Vec<HelperJobEntry> {
        self.helper_jobs.clone()
    }

    /// Requests counted on `endpoint`.
    pub fn requests(&self, endpoint: Endpoint) -> u64 {
        self.requests.get(&endpoint).copied().unwrap_or(0)
    }

    /// The request journal (bounded, oldest first).
    pub fn journal(&self) -> Vec<RequestEntry> {
        self.journal.iter().cloned().collect()
    }

    /// Every application ever created, deleted ones included.
    pub fn apps(&self) -> Vec<AppEntry> {
        self.apps.clone()
    }

    /// The live weight / count curve.
    pub fn curve(&self) -> Vec<LivePoint> {
        self.curve.clone()
    }

    /// Every violation.
    pub fn violations(&self) -> Vec<Violation> {
        self.violations.clone()
    }

    /// Every deployment.
    pub fn deployments(&self) -> Vec<DeploymentEntry> {
        self.deployments.clone()
    }

    /// The summary.
    pub fn summary(&self) -> LedgerSummary {
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in &self.apps {
            by_name
                .entry(a.name.clone())
                .or_default()
                .push(a.id.clone());
        }
        by_name.retain(|_, ids| ids.len() > 1);
        LedgerSummary {
            requests: self.requests.clone(),
            apps_created: self.apps.len(),
            apps_deleted: self.apps.iter().filter(|a| a.deleted_ms.is_some()).count(),
            leaks: self
                .apps
                .iter()
                .filter(|a| a.deleted_ms.is_none())
                .cloned()
                .collect(),
            duplicates: by_name,
            live_weight: self.live_weight,
            live_count: self.live_count,
            max_live_weight: self.max_live_weight,
            max_live_count: self.max_live_count,
            deployments: self.deployments.len(),
            violations: self.violations.len(),
            helper_calls: self
                .helper_call_counts
                .iter()
                .map(|(route, by_status)| (*route, by_status.values().sum()))
                .collect(),
            helper_jobs: self.helper_jobs.len(),
            helper_jobs_reused: self.helper_jobs.iter().filter(|j| j.reused).count(),
            service_apps: self.apps.iter().filter(|a| a.service).count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, name: &str, weight: f64, t: u64) -> AppEntry {
        AppEntry {
            id: id.into(),
            name: name.into(),
            org: "o".into(),
            flavor: "f".into(),
            weight,
            requested_ms: t,
            created_ms: t,
            deleted_ms: None,
            deployments: 0,
            service: false,
            helper_jobs: 0,
        }
    }

    #[test]
    fn live_weight_and_maxima() {
        let mut l = Ledger::default();
        l.app_created(app("a", "n1", 2.0, 1));
        l.app_created(app("b", "n2", 3.0, 2));
        l.app_deleted("a", 3);
        l.app_deleted("a", 4); // idempotent
        l.app_created(app("c", "n2", 1.0, 5));
        let s = l.summary();
        assert_eq!(s.apps_created, 3);
        assert_eq!(s.apps_deleted, 1);
        assert_eq!(s.max_live_count, 2);
        assert!((s.max_live_weight - 5.0).abs() < 1e-9);
        assert!((s.live_weight - 4.0).abs() < 1e-9);
        assert_eq!(s.leaks.len(), 2);
        assert_eq!(s.duplicates.get("n2").map(Vec::len), Some(2));
        assert_eq!(l.curve().len(), 4);
    }

    #[test]
    fn helper_calls_are_counted_exactly_and_jobs_per_app() {
        let mut l = Ledger::default();
        let mut a = app("a", "n1", 1.0, 0);
        a.service = true;
        l.app_created(a);
        for status in [401, 200, 200] {
            l.helper_call(HelperCall {
                t_ms: 1,
                app_id: "a".into(),
                route: HelperRoute::CanTakeJob,
                status,
                answer: (status == 200).then_some(true),
            });
        }
        assert_eq!(l.helper_call_count(HelperRoute::CanTakeJob, None), 3);
        assert_eq!(l.helper_call_count(HelperRoute::CanTakeJob, Some(200)), 2);
        assert_eq!(l.helper_call_count(HelperRoute::LaunchJob, None), 0);
        for (job_id, reused) in [(1, false), (2, true)] {
            let i = l.helper_job(HelperJobEntry {
                t_ms: 2,
                app_id: "a".into(),
                job_id,
                runner_name: "r".into(),
                tenant: "t".into(),
                reused,
                checked: false,
                inner_status: "waiting".into(),
            });
            l.update_helper_job(i, |j| j.checked = true);
        }
        let s = l.summary();
        assert_eq!(
            (s.helper_jobs, s.helper_jobs_reused, s.service_apps),
            (2, 1, 1)
        );
        assert_eq!(s.helper_calls.get(&HelperRoute::CanTakeJob), Some(&3));
        assert_eq!(l.apps().first().map(|a| a.helper_jobs), Some(2));
        assert!(l.helper_jobs().iter().all(|j| j.checked));
    }
}
