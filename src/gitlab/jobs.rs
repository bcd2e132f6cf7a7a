//! Job calls: `POST /jobs/request` (job polling), `GET /job` (job-token
//! check) and `PUT /jobs/:id` (job state update).

use super::client::Call;
use super::errors::{describe, rejected, status_error};
use super::reply::{CallName, Reply};
use super::GitlabCoordinator;
use awc::http::Method;
use paas_actors::ports::{CoordinatorError, FailureReason, Job, JobOwner, JobStatus, PollKind};
use serde_json::{json, Map, Value};

/// The features the Python reference advertises, in its order.
pub const REFERENCE_FEATURES: [(&str, bool); 17] = [
    ("upload_multiple_artifacts", true),
    ("upload_raw_artifacts", true),
    ("refspecs", true),
    ("artifacts", true),
    ("artifacts_exclude", true),
    ("multi_build_steps", true),
    ("return_exit_code", true),
    ("raw_variables", true),
    ("cache", true),
    ("masking", true),
    ("variables", true),
    ("image", true),
    ("services", true),
    ("session", true),
    ("terminal", true),
    ("shared", false),
    ("proxy", false),
];

/// Gating features (GitLab refuses a job needing one the runner does not
/// advertise) the reference forgot although the inner
/// Heptapod Runner supports them: without them modern GitLab fails such
/// jobs `runner_unsupported`. `two_phase_job_commit` and `cancel_gracefully`
/// are deliberately absent: they change the job state machine.
pub const EXTRA_FEATURES: [&str; 2] = ["fallback_cache_keys", "vault_secrets"];

/// What `POST /jobs/request` sends.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRequestOptions {
    /// `info.executor`: the *inner* executor.
    pub executor: String,
    /// `info.features`, in order.
    pub features: Vec<(String, bool)>,
    /// `info.name` (shown in the runner manager details), when identity is sent.
    pub name: Option<String>,
    /// Send `system_id` and `info.name/version/platform/architecture`.
    pub send_identity: bool,
}

impl Default for JobRequestOptions {
    fn default() -> Self {
        let mut features: Vec<(String, bool)> = REFERENCE_FEATURES
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        features.extend(EXTRA_FEATURES.iter().map(|k| ((*k).to_owned(), true)));
        JobRequestOptions {
            executor: "docker".to_owned(),
            features,
            name: None,
            send_identity: true,
        }
    }
}

impl JobRequestOptions {
    /// Exactly the body of the Python reference (drop-in parity).
    pub fn reference() -> JobRequestOptions {
        JobRequestOptions {
            features: REFERENCE_FEATURES
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            send_identity: false,
            ..JobRequestOptions::default()
        }
    }
}

/// Requests one poll may send: a short one to learn the queue version, the
/// long one, and the short one that follows a hold Workhorse ended.
const MAX_REQUESTS_PER_POLL: usize = 3;

/// Terminal job statuses of the Job entity.
const TERMINAL: [&str; 4] = ["success", "failed", "canceled", "skipped"];

/// The fields of a `GET /job` answer a status check reads; the rest of the
/// (large) job entity is skipped while parsing, never built. Each field
/// is kept as whatever JSON it holds (`Null` when absent), so that one of
/// an unexpected type spoils only itself.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct StatusEntity {
    id: Value,
    status: Value,
    runner: Value,
    runner_manager: Value,
}

impl StatusEntity {
    /// The fields of `body`; all `Null` when it is not a JSON object (a
    /// derived struct would also read a JSON array, field by position).
    fn read(body: &[u8]) -> StatusEntity {
        if body.trim_ascii_start().first() != Some(&b'{') {
            return StatusEntity::default();
        }
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// Recovers a job id from an undecodable payload, for the log (public for
/// the fuzz targets of `fuzz/`).
pub fn scan_job_id(body: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(body);
    let rest = text.split_once("\"id\"")?.1.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl GitlabCoordinator {
    /// The `/jobs/request` body (public for parity tests).
    pub fn request_body(&self, last_update: Option<&str>) -> Value {
        let opts = &self.request;
        let mut body = Map::new();
        body.insert("token".into(), json!(self.token.expose()));
        if opts.send_identity {
            if let Some(id) = &self.system_id {
                body.insert("system_id".into(), json!(id));
            }
        }
        if let Some(v) = last_update {
            body.insert("last_update".into(), json!(v));
        }
        let mut info = Map::new();
        if opts.send_identity {
            if let Some(name) = &opts.name {
                info.insert("name".into(), json!(name));
            }
            info.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
            info.insert("revision".into(), json!(crate::build_info::REVISION));
            info.insert("platform".into(), json!(std::env::consts::OS));
            info.insert("architecture".into(), json!(std::env::consts::ARCH));
        }
        info.insert("executor".into(), json!(opts.executor));
        let features: Map<String, Value> = opts
            .features
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        info.insert("features".into(), Value::Object(features));
        body.insert("info".into(), Value::Object(info));
        Value::Object(body)
    }

    /// `POST /jobs/request`, at most [`MAX_REQUESTS_PER_POLL`] requests.
    ///
    /// A [`PollKind::Long`] poll sends the queue version last announced
    /// (`X-GitLab-Last-Update`, remembered from every answer that carries
    /// one) as `last_update`, with the long-poll timeout. Before any
    /// version is known it first sends a short request, and, answered 204
    /// with a version, the long one at once. When GitLab Workhorse ends a
    /// hold with a 204 that carries `Gitlab-Ci-Builds-Polling: yes` but no
    /// version (the queue changed, or its window ended), one short request
    /// follows at once: it reaches Rails, which hands out the job or
    /// announces the new version.
    pub(super) async fn request_job_impl(
        &self,
        kind: PollKind,
    ) -> Result<Option<Job>, CoordinatorError> {
        let url = format!("{}/jobs/request", self.api);
        let mut kind = kind;
        for _ in 0..MAX_REQUESTS_PER_POLL {
            let last = match kind {
                PollKind::Long => self.last_update.borrow().clone(),
                PollKind::Short => None,
            };
            let body = self.request_body(last.as_deref());
            let timeout = if last.is_some() {
                self.http.timeouts.long_poll
            } else {
                self.http.timeouts.request
            };
            let call = Call::new("job request", Method::POST, url.clone(), timeout).json(&body);
            let reply = self.http.call(call).await?;
            let name = reply.name();
            let new_version = reply
                .header("x-gitlab-last-update")
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            if let Some(v) = &new_version {
                *self.last_update.borrow_mut() = Some(v.clone());
            }
            match reply.status {
                201 => return self.parse_job(name, &reply.body).map(Some),
                204 => {
                    if kind == PollKind::Long && last.is_none() && new_version.is_some() {
                        // now a version is known: hold with it
                        continue;
                    }
                    let polled = reply.header("gitlab-ci-builds-polling") == Some("yes");
                    if last.is_some() && polled && new_version.is_none() {
                        kind = PollKind::Short;
                        continue;
                    }
                    return Ok(None);
                }
                409 => {
                    slog::info!(
                        self.log,
                        "job request conflict (409): no job this time, will poll again"
                    );
                    return Ok(None);
                }
                401 | 403 | 422 => {
                    return Err(rejected(
                        name,
                        &reply,
                        &self.secrets(None),
                        "the runner token is invalid, expired or the runner is orphaned",
                    ))
                }
                _ => return Err(status_error(name, &reply, &self.secrets(None))),
            }
        }
        Ok(None)
    }

    fn parse_job(&self, name: CallName<'_>, body: &[u8]) -> Result<Job, CoordinatorError> {
        let assigned = |what: &str| match scan_job_id(body) {
            Some(id) => format!(
                "{name}: 201 with {what}; job {id} is assigned to this runner and will stay \
                 running until GitLab times it out"
            ),
            None => format!("{name}: 201 with {what}"),
        };
        let payload: Value =
            serde_json::from_slice(body).map_err(|e| CoordinatorError::Unavailable {
                detail: assigned(&format!("an undecodable job payload ({e})")),
                retry_after: None,
            })?;
        Job::from_payload(payload).map_err(|e| CoordinatorError::Unexpected {
            detail: assigned(&format!("an unusable job payload ({e})")),
        })
    }

    pub(super) async fn job_status_impl(&self, job: &Job) -> Result<JobStatus, CoordinatorError> {
        Ok(self.job_owner_impl(job).await?.status)
    }

    /// `GET /job` with the job token: status, and the entity's `id` and
    /// `runner.id`.
    pub(super) async fn job_owner_impl(&self, job: &Job) -> Result<JobOwner, CoordinatorError> {
        let url = format!("{}/job", self.api);
        let call = Call::new("job status", Method::GET, url, self.http.timeouts.request)
            .header("JOB-TOKEN", job.token.expose());
        let reply = self.http.call(call).await?;
        let name = reply.name();
        match reply.status {
            200 => {
                // 200 only comes for executing jobs; a terminal status is
                // still honoured, an unreadable body reads as running.
                let entity = StatusEntity::read(&reply.body);
                let status = match entity.status.as_str() {
                    Some(s) if TERMINAL.contains(&s) => JobStatus::Finished,
                    _ => JobStatus::Running,
                };
                let manager = entity
                    .runner_manager
                    .get("system_id")
                    .and_then(Value::as_str);
                Ok(JobOwner {
                    status,
                    job_id: entity.id.as_i64(),
                    runner_id: entity.runner.get("id").and_then(Value::as_i64),
                    same_manager: match (manager, self.system_id.as_deref()) {
                        (Some(theirs), Some(ours)) => Some(theirs == ours),
                        _ => None,
                    },
                })
            }
            401 | 403 if from_gitlab(&reply) => Ok(JobOwner {
                status: JobStatus::TokenRefused,
                job_id: None,
                runner_id: None,
                same_manager: None,
            }),
            // A proxy's page (HTML, no `Job-Status`) says nothing of the job.
            401 | 403 => Err(CoordinatorError::Unavailable {
                detail: format!(
                    "{}, not from GitLab (no JSON body, no Job-Status header)",
                    describe(name, &reply, &self.secrets(Some(job)))
                ),
                retry_after: None,
            }),
            _ => Err(status_error(name, &reply, &self.secrets(Some(job)))),
        }
    }

    pub(super) async fn report_failed_impl(
        &self,
        job: &Job,
        reason: FailureReason,
        exit_code: i32,
    ) -> Result<(), CoordinatorError> {
        let accepted = job
            .payload
            .get("features")
            .and_then(|f| f.get("failure_reasons"))
            .and_then(Value::as_array);
        if let Some(list) = accepted {
            if !list.iter().any(|r| r.as_str() == Some(reason.as_str())) {
                slog::warn!(self.log, "coordinator does not list this failure reason; sending it anyway";
                    "job_id" => job.id, "failure_reason" => reason.as_str());
            }
        }
        let url = format!("{}/jobs/{}", self.api, job.id);
        // The token also goes in the body: GitLab 13.x requires the param.
        let body = json!({
            "token": job.token.expose(),
            "state": "failed",
            "failure_reason": reason.as_str(),
            "exit_code": exit_code,
        });
        let call = Call::new("job update", Method::PUT, url, self.http.timeouts.request)
            .header("JOB-TOKEN", job.token.expose())
            .json(&body);
        let reply = self.http.call(call).await?;
        let name = reply.name();
        match reply.status {
            200..=202 => Ok(()),
            403 => {
                slog::info!(self.log, "job no longer accepts updates: failure report dropped";
                    "job_id" => job.id,
                    "job_status" => reply.header("job-status").unwrap_or("unknown").to_owned(),
                    "answer" => super::errors::excerpt(&reply.body, &self.secrets(Some(job))));
                Ok(())
            }
            _ => Err(status_error(name, &reply, &self.secrets(Some(job)))),
        }
    }
}

/// True when a 401/403 is GitLab's own answer: a `Job-Status` header, or a
/// JSON object body (`{"message": …}`). A reverse proxy's refusal is an
/// HTML page without either.
fn from_gitlab(reply: &Reply) -> bool {
    reply.header("job-status").is_some()
        || serde_json::from_slice::<Value>(&reply.body).is_ok_and(|v| v.is_object())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_recovered_from_broken_payloads() {
        assert_eq!(scan_job_id(br#"{"id": 42, "token": "#), Some(42));
        assert_eq!(scan_job_id(br#"{"id":7}"#), Some(7));
        assert_eq!(scan_job_id(b"<html>"), None);
        assert_eq!(scan_job_id(br#"{"id": "x"}"#), None);
    }

    #[test]
    fn a_status_answer_keeps_its_four_fields_and_skips_the_rest() {
        let body = br#"{"id": 12, "name": "build", "status": "success",
            "pipeline": {"id": 3, "user": {"name": "x", "bio": "y"}},
            "commit": {"message": "m", "parent_ids": ["a", "b"]},
            "runner": {"id": 7, "description": "d", "tag_list": []},
            "runner_manager": {"system_id": "s_1", "version": "17"},
            "artifacts": [{"file_type": "trace", "size": 1}]}"#;
        let e = StatusEntity::read(body);
        assert_eq!(e.id.as_i64(), Some(12));
        assert_eq!(e.status.as_str(), Some("success"));
        assert_eq!(e.runner.get("id").and_then(Value::as_i64), Some(7));
        assert_eq!(
            e.runner_manager.get("system_id").and_then(Value::as_str),
            Some("s_1")
        );
        // a field of an unexpected type spoils only itself
        let e = StatusEntity::read(br#"{"id": "12", "status": "failed", "runner": 3}"#);
        assert_eq!((e.id.as_i64(), e.status.as_str()), (None, Some("failed")));
        assert_eq!(e.runner.get("id"), None);
        // not an object: nothing
        for body in [&b"[1]"[..], b" [12, \"success\"]", b"<html>", b"", b"null"] {
            let e = StatusEntity::read(body);
            assert!(e.status.is_null() && e.id.is_null(), "{body:?}");
        }
    }

    #[test]
    fn default_features_extend_the_reference_without_state_machine_changes() {
        let opts = JobRequestOptions::default();
        let names: Vec<&str> = opts.features.iter().map(|(k, _)| k.as_str()).collect();
        for (k, _) in REFERENCE_FEATURES {
            assert!(names.contains(&k), "{k}");
        }
        assert!(names.contains(&"fallback_cache_keys"));
        assert!(!names.contains(&"two_phase_job_commit"));
        assert!(!names.contains(&"cancel_gracefully"));
    }
}
