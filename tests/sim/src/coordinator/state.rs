//! State of the fake coordinator: runners, tokens, the job queue, traces,
//! group attributes, the request journal, and the settings that pick
//! between GitLab behaviours. Shared by the HTTP handlers and the control
//! API behind one mutex (never held across an `.await`).

use super::faults::{Endpoint, Faults};
use super::jobs::{build_payload, new_job_token, JobSpec, JobState};
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Most recorded requests kept (older ones are dropped; counts are exact).
pub const JOURNAL_LIMIT: usize = 50_000;

/// Shape of the runner tokens a registration token yields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStyle {
    /// 20 random alphanumerics (GitLab < 15.10).
    #[default]
    Legacy,
    /// `glrt-` + 20 characters.
    Glrt,
    /// `glrtr-` + 20 characters (registered through a registration token, 2025+).
    Glrtr,
    /// `glrt-t1_` + 20 characters (partition prefix).
    Partition,
}

impl TokenStyle {
    /// A new random token of this style.
    pub fn generate(self) -> String {
        let random = Alphanumeric.sample_string(&mut rand::rng(), 20);
        match self {
            TokenStyle::Legacy => random,
            TokenStyle::Glrt => format!("glrt-{random}"),
            TokenStyle::Glrtr => format!("glrtr-{random}"),
            TokenStyle::Partition => format!("glrt-t1_{random}"),
        }
    }

    /// The style a token looks like.
    pub fn of(token: &str) -> TokenStyle {
        if token.starts_with("glrt-t1_")
            || token.starts_with("glrt-t2_")
            || token.starts_with("glrt-t3_")
        {
            TokenStyle::Partition
        } else if token.starts_with("glrtr-") {
            TokenStyle::Glrtr
        } else if token.starts_with("glrt-") {
            TokenStyle::Glrt
        } else {
            TokenStyle::Legacy
        }
    }
}

/// Wording of the 403 answered to job-token calls on a job that is no
/// longer executing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForbiddenFlavour {
    /// `403 Forbidden - Job is not running` (legacy GitLab; what the reference matches).
    #[default]
    NotRunning,
    /// `403 Forbidden - Job is not processing on runner` (modern GitLab).
    NotProcessing,
    /// Plain `403 Forbidden`.
    Plain,
}

impl ForbiddenFlavour {
    /// The `message` of the 403 body.
    pub fn message(self) -> &'static str {
        match self {
            ForbiddenFlavour::NotRunning => "403 Forbidden - Job is not running",
            ForbiddenFlavour::NotProcessing => "403 Forbidden - Job is not processing on runner",
            ForbiddenFlavour::Plain => "403 Forbidden",
        }
    }
}

/// Behaviour switches; every one can be changed at run time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// 403 wording for non-executing jobs.
    pub forbidden_flavour: ForbiddenFlavour,
    /// Modern GitLab: job tokens stop working once the job completes, so
    /// later job-token calls get a plain 403 (PUT/PATCH) or 401 (GET /job).
    pub invalidate_job_tokens: bool,
    /// `X-GitLab-Trace-Update-Interval` of trace PATCH answers (seconds).
    pub trace_update_interval: u32,
    /// Trace size limit in bytes: a PATCH beyond it fails the job
    /// (`trace_size_exceeded`) and answers 403.
    pub trace_size_limit: Option<u64>,
    /// Old GitLab: reading an empty trace answers 404 instead of 200 "".
    pub legacy_empty_trace_404: bool,
    /// Old GitLab: `POST /runners/verify` answers plain `200`.
    pub legacy_verify_plain: bool,
    /// Registration tokens disabled: `POST /runners` answers 410.
    pub registration_disabled: bool,
    /// Workhorse long polling: hold `/jobs/request` carrying the current
    /// `last_update` this long (milliseconds). `None`: answer at once.
    pub long_poll_ms: Option<u64>,
    /// Jobs needing a feature the request does not advertise are failed
    /// `runner_unsupported` instead of being handed out.
    pub feature_gating: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            forbidden_flavour: ForbiddenFlavour::NotRunning,
            invalidate_job_tokens: false,
            trace_update_interval: 30,
            trace_size_limit: None,
            legacy_empty_trace_404: false,
            legacy_verify_plain: false,
            registration_disabled: false,
            long_poll_ms: None,
            feature_gating: true,
        }
    }
}

/// A runner known to the fake coordinator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunnerView {
    /// Runner id.
    pub id: i64,
    /// Authentication token (kept in clear: this is a test fake).
    pub token: String,
    /// Paused runners get 204 from `/jobs/request`.
    pub paused: bool,
    /// Description given at registration.
    pub description: Option<String>,
    /// `system_id`s seen (runner managers).
    pub managers: BTreeSet<String>,
    /// `info` of the last `/jobs/request` or verify.
    pub last_info: Option<Value>,
    /// Number of `/jobs/request` calls authenticated as this runner.
    pub job_requests: u64,
    /// This runner's queue version (`X-GitLab-Last-Update`): it changes
    /// when the pending jobs this runner could take change (a job enqueued,
    /// handed out, cancelled or forced to a status; a job of
    /// [`JobSpec::runner_token`] for that runner only, any other job for
    /// every runner), not when a running job ends, as at GitLab.
    pub queue_version: u64,
}

/// One custom attribute group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Group {
    pub(crate) id: i64,
    pub(crate) path: String,
    pub(crate) attributes: Vec<(String, String)>,
}

/// A request as the fake received it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Endpoint it was routed to.
    pub endpoint: Endpoint,
    /// HTTP method.
    pub method: String,
    /// Raw (still percent-encoded) path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Headers, names lower-cased (secrets kept: this is a test fake).
    pub headers: Vec<(String, String)>,
    /// Body bytes, as lossy UTF-8.
    pub body: String,
    /// Client address (`ip:port`): equal ports mean a reused connection.
    #[serde(default)]
    pub peer: Option<String>,
    /// When it arrived (in-process clock, not serialised).
    #[serde(skip)]
    pub at: Option<Instant>,
}

impl RecordedRequest {
    /// Value of a header (first match, name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// A job as the control API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// Job id.
    pub id: i64,
    /// Job name.
    pub name: String,
    /// Current status.
    pub status: JobState,
    /// Every status the job went through, oldest first.
    pub history: Vec<JobState>,
    /// The payload handed out (same for every observer).
    pub payload: Value,
    /// Job token.
    pub token: String,
    /// Trace length in bytes.
    pub trace_len: u64,
    /// Failure reason stored by the last `failed` update.
    pub failure_reason: Option<String>,
    /// Exit code stored by the last update.
    pub exit_code: Option<i64>,
    /// Runner the job was handed to.
    pub runner_id: Option<i64>,
    /// Bodies of every `PUT /jobs/:id` accepted for this job.
    pub updates: Vec<Value>,
    /// The spec it was enqueued with.
    pub spec: JobSpec,
    /// Milliseconds from hand-out to terminal status, if both happened.
    pub run_ms: Option<u64>,
    /// When the job reached its milestones (in-process clock, not serialised).
    #[serde(skip)]
    pub times: JobTimes,
}

/// When a job reached its milestones, on this process's monotonic clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobTimes {
    /// Enqueued (created at the coordinator).
    pub created: Option<Instant>,
    /// Handed out to a runner (first move to `running`).
    pub handed_out: Option<Instant>,
    /// First trace bytes accepted: the job log shows something.
    pub first_trace: Option<Instant>,
    /// Terminal status reached.
    pub finished: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct JobRecord {
    pub(crate) id: i64,
    pub(crate) spec: JobSpec,
    pub(crate) token: String,
    pub(crate) payload: Value,
    pub(crate) status: JobState,
    pub(crate) history: Vec<JobState>,
    pub(crate) trace: Vec<u8>,
    pub(crate) failure_reason: Option<String>,
    pub(crate) exit_code: Option<i64>,
    pub(crate) runner_id: Option<i64>,
    /// The `system_id` of the request that acquired the job, if it sent one.
    pub(crate) manager: Option<String>,
    pub(crate) token_valid: bool,
    pub(crate) updates: Vec<Value>,
    pub(crate) created: Instant,
    pub(crate) started: Option<Instant>,
    pub(crate) first_trace: Option<Instant>,
    pub(crate) finished: Option<Instant>,
}

impl JobRecord {
    pub(crate) fn view(&self) -> JobView {
        let run_ms = match (self.started, self.finished) {
            (Some(s), Some(f)) => {
                Some(u64::try_from(f.saturating_duration_since(s).as_millis()).unwrap_or(u64::MAX))
            }
            _ => None,
        };
        JobView {
            id: self.id,
            name: self.spec.name.clone(),
            status: self.status,
            history: self.history.clone(),
            payload: self.payload.clone(),
            token: self.token.clone(),
            trace_len: self.trace.len() as u64,
            failure_reason: self.failure_reason.clone(),
            exit_code: self.exit_code,
            runner_id: self.runner_id,
            updates: self.updates.clone(),
            spec: self.spec.clone(),
            run_ms,
            times: JobTimes {
                created: Some(self.created),
                handed_out: self.started,
                first_trace: self.first_trace,
                finished: self.finished,
            },
        }
    }

    /// Moves to `status`, recording history and completion.
    pub(crate) fn set_status(&mut self, status: JobState, invalidate_token: bool) {
        if self.status == status {
            return;
        }
        self.status = status;
        self.history.push(status);
        if status == JobState::Running && self.started.is_none() {
            self.started = Some(Instant::now());
        }
        if status.is_terminal() {
            self.finished = Some(Instant::now());
            if invalidate_token {
                self.token_valid = false;
            }
        }
    }

    /// Fails the job with a reason.
    pub(crate) fn fail(&mut self, reason: &str, invalidate_token: bool) {
        self.failure_reason = Some(reason.to_owned());
        self.set_status(JobState::Failed, invalidate_token);
    }
}

/// Why a trace append was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AppendOutcome {
    /// Appended; new length.
    Appended(u64),
    /// Offset mismatch; current length.
    Mismatch(u64),
    /// Size limit hit: the job was failed.
    TooLarge,
}

/// Counts of jobs per status and of requests per endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests per endpoint (every endpoint present, zeros included).
    pub requests: BTreeMap<Endpoint, u64>,
    /// Jobs per status.
    pub jobs: BTreeMap<JobState, u64>,
    /// Jobs ever enqueued.
    pub jobs_total: u64,
    /// Jobs still waiting in the queue.
    pub queue_len: u64,
    /// Latest queue version given to any runner.
    pub queue_version: u64,
    /// Long polls being held now (Workhorse emulation).
    pub long_polls_holding: u64,
    /// Long polls held so far (each request held counts once).
    pub long_polls_held: u64,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) base_url: String,
    pub(crate) settings: Settings,
    pub(crate) runners: Vec<RunnerView>,
    next_runner_id: i64,
    pub(crate) registration_tokens: HashMap<String, TokenStyle>,
    pub(crate) admin_tokens: HashSet<String>,
    pub(crate) user_tokens: HashSet<String>,
    pub(crate) groups: Vec<Group>,
    next_group_id: i64,
    /// Projects: id → `path_with_namespace`. Filled by `enqueue` (a job's
    /// project) and by `set_project` (a transfer).
    pub(crate) projects: BTreeMap<i64, String>,
    pub(crate) jobs: BTreeMap<i64, JobRecord>,
    pub(crate) queue: VecDeque<i64>,
    next_job_id: i64,
    pub(crate) queue_version: u64,
    pub(crate) long_polls_holding: u64,
    pub(crate) long_polls_held: u64,
    pub(crate) journal: VecDeque<RecordedRequest>,
    pub(crate) counts: BTreeMap<Endpoint, u64>,
    pub(crate) faults: Faults,
    /// Job requests that take a job never answer (the job stays running at
    /// the coordinator, handed out to a runner that never hears of it).
    pub(crate) hold_job_answers: bool,
    /// Job answers held so far.
    pub(crate) job_answers_held: u64,
}

impl State {
    pub(crate) fn new(settings: Settings) -> State {
        State {
            base_url: String::new(),
            settings,
            runners: Vec::new(),
            next_runner_id: 1,
            registration_tokens: HashMap::new(),
            admin_tokens: HashSet::new(),
            user_tokens: HashSet::new(),
            groups: Vec::new(),
            next_group_id: 100,
            projects: BTreeMap::new(),
            jobs: BTreeMap::new(),
            queue: VecDeque::new(),
            next_job_id: 1001,
            queue_version: 1,
            long_polls_holding: 0,
            long_polls_held: 0,
            journal: VecDeque::new(),
            counts: BTreeMap::new(),
            faults: Faults::default(),
            hold_job_answers: false,
            job_answers_held: 0,
        }
    }

    pub(crate) fn record(&mut self, req: RecordedRequest) {
        *self.counts.entry(req.endpoint).or_default() += 1;
        if self.journal.len() >= JOURNAL_LIMIT {
            self.journal.pop_front();
        }
        self.journal.push_back(req);
    }

    pub(crate) fn add_runner(&mut self, token: &str, paused: bool) -> i64 {
        if let Some(r) = self.runners.iter_mut().find(|r| r.token == token) {
            r.paused = paused;
            return r.id;
        }
        let id = self.next_runner_id;
        self.next_runner_id += 1;
        self.runners.push(RunnerView {
            id,
            token: token.to_owned(),
            paused,
            description: None,
            managers: BTreeSet::new(),
            last_info: None,
            job_requests: 0,
            queue_version: self.queue_version,
        });
        id
    }

    pub(crate) fn runner_mut(&mut self, token: &str) -> Option<&mut RunnerView> {
        self.runners.iter_mut().find(|r| r.token == token)
    }

    pub(crate) fn set_group(&mut self, path: &str, attributes: Vec<(String, String)>) -> i64 {
        if let Some(g) = self.groups.iter_mut().find(|g| g.path == path) {
            g.attributes = attributes;
            return g.id;
        }
        let id = self.next_group_id;
        self.next_group_id += 1;
        self.groups.push(Group {
            id,
            path: path.to_owned(),
            attributes,
        });
        id
    }

    /// A new queue version for every runner.
    pub(crate) fn bump_version(&mut self) -> u64 {
        self.queue_version += 1;
        let v = self.queue_version;
        for r in &mut self.runners {
            r.queue_version = v;
        }
        v
    }

    /// A new queue version for the runners that may take a job meant for
    /// `runner_token` (every runner when `None`).
    pub(crate) fn tick_for(&mut self, runner_token: Option<&str>) {
        let Some(token) = runner_token else {
            self.bump_version();
            return;
        };
        self.queue_version += 1;
        let v = self.queue_version;
        if let Some(r) = self.runner_mut(token) {
            r.queue_version = v;
        }
    }

    /// The queue version of the job `id`'s runners, ticked.
    fn tick_job(&mut self, id: i64) {
        let target = self.jobs.get(&id).and_then(|j| j.spec.runner_token.clone());
        self.tick_for(target.as_deref());
    }

    /// The project id of `spec`'s project: its own when that id is free or
    /// already that project's, else the id of the project of that path, else
    /// a new one (two paths never share an id, as at GitLab).
    fn project_id_of(&mut self, spec: &JobSpec) -> i64 {
        let path = spec.project_path();
        match self.projects.get(&spec.project_id) {
            None => {
                self.projects.insert(spec.project_id, path);
                spec.project_id
            }
            Some(p) if *p == path => spec.project_id,
            Some(_) => {
                if let Some((id, _)) = self.projects.iter().find(|(_, p)| **p == path) {
                    return *id;
                }
                let id = self
                    .projects
                    .keys()
                    .next_back()
                    .map_or(1, |k| k + 1)
                    .max(1000);
                self.projects.insert(id, path);
                id
            }
        }
    }

    pub(crate) fn enqueue(&mut self, mut spec: JobSpec) -> i64 {
        spec.project_id = self.project_id_of(&spec);
        let id = self.next_job_id;
        self.next_job_id += 1;
        let token = new_job_token();
        let payload = build_payload(id, &token, &spec, &self.base_url);
        self.jobs.insert(
            id,
            JobRecord {
                id,
                spec,
                token,
                payload,
                status: JobState::Pending,
                history: vec![JobState::Pending],
                trace: Vec::new(),
                failure_reason: None,
                exit_code: None,
                runner_id: None,
                manager: None,
                token_valid: true,
                updates: Vec::new(),
                created: Instant::now(),
                started: None,
                first_trace: None,
                finished: None,
            },
        );
        self.queue.push_back(id);
        self.tick_job(id);
        id
    }

    /// Retries a finished job (GitLab's `POST …/retry`): a new pending job
    /// of the same spec, queued. `None` if unknown or not finished.
    pub(crate) fn retry(&mut self, id: i64) -> Option<i64> {
        let job = self.jobs.get(&id)?;
        if !job.status.is_terminal() {
            return None;
        }
        let spec = job.spec.clone();
        Some(self.enqueue(spec))
    }

    /// Cancels a job: pending → canceled (leaves the queue), executing →
    /// canceled. False if unknown or already terminal.
    pub(crate) fn cancel(&mut self, id: i64) -> bool {
        let invalidate = self.settings.invalidate_job_tokens;
        let Some(job) = self.jobs.get_mut(&id) else {
            return false;
        };
        if job.status.is_terminal() {
            return false;
        }
        job.set_status(JobState::Canceled, invalidate);
        self.queue.retain(|j| *j != id);
        self.tick_job(id);
        true
    }

    /// Forces a status (test control: finish, fail, move to canceling).
    pub(crate) fn force_status(&mut self, id: i64, status: JobState) -> bool {
        let invalidate = self.settings.invalidate_job_tokens;
        let Some(job) = self.jobs.get_mut(&id) else {
            return false;
        };
        job.set_status(status, invalidate);
        if status != JobState::Pending {
            self.queue.retain(|j| *j != id);
        }
        self.tick_job(id);
        true
    }

    /// Takes the next job this runner may run (FIFO; a job meant for
    /// another runner stays queued), failing on the way the jobs whose
    /// required features the request lacks.
    pub(crate) fn dequeue(&mut self, runner_id: i64, features: Option<&Value>) -> Option<i64> {
        let gating = self.settings.feature_gating;
        let invalidate = self.settings.invalidate_job_tokens;
        let token = self
            .runners
            .iter()
            .find(|r| r.id == runner_id)
            .map(|r| r.token.clone());
        let mut i = 0;
        while let Some(&id) = self.queue.get(i) {
            let Some(job) = self.jobs.get_mut(&id) else {
                self.queue.remove(i);
                continue;
            };
            if job.status != JobState::Pending {
                self.queue.remove(i);
                continue;
            }
            if job
                .spec
                .runner_token
                .as_ref()
                .is_some_and(|t| Some(t) != token.as_ref())
            {
                i += 1;
                continue;
            }
            let unsupported = gating
                && job.spec.required_features.iter().any(|f| {
                    features.and_then(|fs| fs.get(f)).and_then(Value::as_bool) != Some(true)
                });
            self.queue.remove(i);
            if unsupported {
                job.fail("runner_unsupported", invalidate);
                continue;
            }
            job.runner_id = Some(runner_id);
            job.set_status(JobState::Running, invalidate);
            self.tick_job(id);
            return Some(id);
        }
        None
    }

    /// Appends to a trace at `start` (`PATCH /jobs/:id/trace`), masking
    /// the job token with same-length `x`.
    pub(crate) fn append_trace(&mut self, id: i64, start: i64, chunk: &[u8]) -> AppendOutcome {
        let limit = self.settings.trace_size_limit;
        let invalidate = self.settings.invalidate_job_tokens;
        let Some(job) = self.jobs.get_mut(&id) else {
            return AppendOutcome::Mismatch(0);
        };
        let len = job.trace.len() as u64;
        if i64::try_from(len).ok() != Some(start) {
            return AppendOutcome::Mismatch(len);
        }
        if let Some(limit) = limit {
            if len + chunk.len() as u64 > limit {
                job.fail("trace_size_exceeded", invalidate);
                return AppendOutcome::TooLarge;
            }
        }
        let masked = mask(chunk, job.token.as_bytes());
        if job.first_trace.is_none() && !masked.is_empty() {
            job.first_trace = Some(Instant::now());
        }
        job.trace.extend_from_slice(&masked);
        AppendOutcome::Appended(job.trace.len() as u64)
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut requests: BTreeMap<Endpoint, u64> = Endpoint::ALL.iter().map(|e| (*e, 0)).collect();
        for (e, n) in &self.counts {
            requests.insert(*e, *n);
        }
        let mut jobs = BTreeMap::new();
        for j in self.jobs.values() {
            *jobs.entry(j.status).or_default() += 1;
        }
        Stats {
            requests,
            jobs,
            jobs_total: self.jobs.len() as u64,
            queue_len: self.queue.len() as u64,
            queue_version: self.queue_version,
            long_polls_holding: self.long_polls_holding,
            long_polls_held: self.long_polls_held,
        }
    }
}

/// Replaces every occurrence of `secret` in `chunk` by as many `x`.
fn mask(chunk: &[u8], secret: &[u8]) -> Vec<u8> {
    let mut out = chunk.to_vec();
    if secret.is_empty() || chunk.len() < secret.len() {
        return out;
    }
    let mut i = 0;
    while let Some(window) = out.get(i..i + secret.len()) {
        if window == secret {
            for b in out.iter_mut().skip(i).take(secret.len()) {
                *b = b'x';
            }
            i += secret.len();
        } else {
            i += 1;
        }
    }
    out
}

/// State plus the queue-version channel, shared by all workers.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Carries the queue version, for long polling.
    pub(crate) version: watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn new(state: State) -> Shared {
        let (version, _) = watch::channel(state.queue_version);
        Shared {
            state: Mutex::new(state),
            version,
        }
    }

    /// Locks the state (a poisoned lock is recovered: the fake must keep
    /// answering even if a handler panicked).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state, then publishes the queue version.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, v) = {
            let mut st = self.lock();
            let r = f(&mut st);
            (r, st.queue_version)
        };
        self.version.send_if_modified(|cur| {
            let changed = *cur != v;
            *cur = v;
            changed
        });
        r
    }
}

/// Converts milliseconds to a duration.
pub(crate) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_length() {
        assert_eq!(mask(b"a tok b tok", b"tok"), b"a xxx b xxx".to_vec());
        assert_eq!(mask(b"to", b"tok"), b"to".to_vec());
        assert_eq!(mask(b"", b"tok"), b"".to_vec());
    }

    #[test]
    fn token_styles_round_trip() {
        for style in [
            TokenStyle::Legacy,
            TokenStyle::Glrt,
            TokenStyle::Glrtr,
            TokenStyle::Partition,
        ] {
            let t = style.generate();
            assert_eq!(TokenStyle::of(&t), style, "{t}");
        }
        assert_eq!(TokenStyle::Legacy.generate().len(), 20);
    }

    #[test]
    fn append_requires_matching_offset() {
        let mut st = State::new(Settings::default());
        let id = st.enqueue(JobSpec::default());
        assert_eq!(st.append_trace(id, 0, b"abc"), AppendOutcome::Appended(3));
        assert_eq!(st.append_trace(id, 0, b"abc"), AppendOutcome::Mismatch(3));
        assert_eq!(
            st.append_trace(id, 3, "é".as_bytes()),
            AppendOutcome::Appended(5)
        );
        st.settings.trace_size_limit = Some(6);
        assert_eq!(st.append_trace(id, 5, b"xx"), AppendOutcome::TooLarge);
        assert_eq!(st.jobs.get(&id).map(|j| j.status), Some(JobState::Failed));
    }
}
