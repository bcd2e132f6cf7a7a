//! The ledger: what happened in the fake Clever Cloud, for assertions and the demo summary.
//!
//! Requests counted per endpoint, every application with its creation and deletion times and
//! weight, the live weight and live application count over time (maxima kept), deployments,
//! inner-runner reports, and violations. Times are milliseconds since the fake started.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

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
    /// Creation time (ms since start).
    pub created_ms: u64,
    /// Deletion time (ms since start), `None` while alive.
    pub deleted_ms: Option<u64>,
    /// Number of deployments (pushes moving `master`).
    pub deployments: u32,
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
            created_ms: t,
            deleted_ms: None,
            deployments: 0,
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
}
