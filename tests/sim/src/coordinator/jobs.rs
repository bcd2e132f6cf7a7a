//! Jobs of the fake coordinator: what a test enqueues ([`JobSpec`]), the
//! job statuses, and the payload handed out by `POST /jobs/request`.
//!
//! Convention with the simulated inner runner: the job's duration and
//! outcome travel in the payload as the variables `PAAS_SIM_DURATION_MS`
//! (integer string) and `PAAS_SIM_OUTCOME` (`success` | `failed`).

use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// Job variable carrying the simulated duration in milliseconds.
pub const DURATION_VARIABLE: &str = "PAAS_SIM_DURATION_MS";
/// Job variable carrying the simulated outcome (`success` | `failed`).
pub const OUTCOME_VARIABLE: &str = "PAAS_SIM_OUTCOME";

/// How a simulated job ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The inner runner reports `success`.
    #[default]
    Success,
    /// The inner runner reports `failed`.
    Failed,
}

impl Outcome {
    /// Wire spelling (`state` of `PUT /jobs/:id`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failed => "failed",
        }
    }
}

/// One extra job variable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// Variable name.
    pub key: String,
    /// Variable value.
    pub value: String,
}

/// What a test or scenario enqueues. Every field has a default, so JSON
/// specs may give only what they care about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSpec {
    /// Job name (`job_info.name`).
    pub name: String,
    /// Stage name.
    pub stage: String,
    /// Clever flavor (variable `CI_CLEVER_CLOUD_FLAVOR`), if the job sets one.
    pub flavor: Option<String>,
    /// Top-level namespace (`CI_PROJECT_ROOT_NAMESPACE`).
    pub root_namespace: String,
    /// Project name (path is `<root_namespace>/<project_name>`).
    pub project_name: String,
    /// Project id (`job_info.project_id`).
    pub project_id: i64,
    /// `CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX`, if the group has one.
    pub dependency_proxy_prefix: Option<String>,
    /// Main image (`image.name`); `None` sends `"image": null`.
    pub image: Option<String>,
    /// Service images.
    pub services: Vec<String>,
    /// Script lines of the `script` step.
    pub script: Vec<String>,
    /// Simulated run time, in milliseconds.
    pub duration_ms: u64,
    /// Simulated outcome.
    pub outcome: Outcome,
    /// Extra variables, appended after the standard ones.
    pub variables: Vec<Variable>,
    /// Variables placed before the standard ones (user-defined variables
    /// that GitLab may order first, predefined names included).
    pub leading_variables: Vec<Variable>,
    /// Runner features the job needs: with `feature_gating` on, a runner
    /// that does not announce them all fails the job as `runner_unsupported`.
    pub required_features: Vec<String>,
    /// A project runner's job: only the runner with this token is handed
    /// it, and only that runner's queue version changes with it (`None`:
    /// any runner).
    pub runner_token: Option<String>,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            name: "test".to_owned(),
            stage: "test".to_owned(),
            flavor: None,
            root_namespace: "group".to_owned(),
            project_name: "demo".to_owned(),
            project_id: 17,
            dependency_proxy_prefix: None,
            image: Some("debian:bookworm".to_owned()),
            services: Vec::new(),
            script: vec!["make test".to_owned()],
            duration_ms: 1000,
            outcome: Outcome::Success,
            variables: Vec::new(),
            leading_variables: Vec::new(),
            required_features: Vec::new(),
            runner_token: None,
        }
    }
}

impl JobSpec {
    /// A default job with this name.
    pub fn new(name: impl Into<String>) -> JobSpec {
        JobSpec {
            name: name.into(),
            ..JobSpec::default()
        }
    }

    /// Only the runner with this token may take the job.
    pub fn for_runner(mut self, token: impl Into<String>) -> JobSpec {
        self.runner_token = Some(token.into());
        self
    }

    /// Sets the flavor variable.
    pub fn flavor(mut self, flavor: impl Into<String>) -> JobSpec {
        self.flavor = Some(flavor.into());
        self
    }

    /// Sets the root namespace.
    pub fn root_namespace(mut self, ns: impl Into<String>) -> JobSpec {
        self.root_namespace = ns.into();
        self
    }

    /// Sets the simulated duration.
    pub fn duration(mut self, d: Duration) -> JobSpec {
        self.duration_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets the simulated outcome.
    pub fn outcome(mut self, outcome: Outcome) -> JobSpec {
        self.outcome = outcome;
        self
    }

    /// Adds an extra variable.
    pub fn variable(mut self, key: impl Into<String>, value: impl Into<String>) -> JobSpec {
        self.variables.push(Variable {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a variable before the standard ones.
    pub fn leading_variable(mut self, key: impl Into<String>, value: impl Into<String>) -> JobSpec {
        self.leading_variables.push(Variable {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Full project path.
    pub fn project_path(&self) -> String {
        format!("{}/{}", self.root_namespace, self.project_name)
    }
}

/// Status of a job at the fake coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting in the queue.
    Pending,
    /// Handed out to a runner.
    Running,
    /// Cancel requested; the runner may still send updates.
    Canceling,
    /// Finished successfully.
    Success,
    /// Finished with a failure.
    Failed,
    /// Cancelled.
    Canceled,
}

impl JobState {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Canceling => "canceling",
            JobState::Success => "success",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    /// Parses a wire spelling.
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "pending" => JobState::Pending,
            "running" => JobState::Running,
            "canceling" => JobState::Canceling,
            "success" => JobState::Success,
            "failed" => JobState::Failed,
            "canceled" => JobState::Canceled,
            _ => return None,
        })
    }

    /// `running` or `canceling`: the job token is accepted.
    pub fn is_executing(self) -> bool {
        matches!(self, JobState::Running | JobState::Canceling)
    }

    /// Success, failed or canceled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Success | JobState::Failed | JobState::Canceled
        )
    }
}

/// Failure reasons GitLab knows; others are stored as
/// `unknown_failure`.
pub const FAILURE_REASONS: &[&str] = &[
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "missing_dependency_failure",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
    "forward_deployment_failure",
    "user_blocked",
    "project_deleted",
    "ci_quota_exceeded",
    "pipeline_loop_detected",
    "no_matching_runner",
    "trace_size_exceeded",
    "builds_disabled",
    "environment_creation_failure",
    "deployment_rejected",
    "failed_outdated_deployment_job",
    "job_execution_server_timeout",
    "runner_configuration_error",
    "runner_external_dependency_failure",
    "runner_interrupted",
    "protected_environment_failure",
    "secrets_provider_not_found",
    "ip_restriction_failure",
    "job_token_expired",
];

/// A random job token in the modern DB form (`glcbt-` + 20 alphanumerics).
pub fn new_job_token() -> String {
    format!("glcbt-{}", Alphanumeric.sample_string(&mut rand::rng(), 20))
}

fn variable(key: &str, value: &str, public: bool, masked: bool) -> Value {
    json!({"key": key, "value": value, "public": public, "masked": masked})
}

/// The job payload (201 body of `POST /jobs/request`).
/// `base_url` is the coordinator's public URL (no `/api/v4`), used for the
/// repository URL and `CI_SERVER_URL`.
pub fn build_payload(id: i64, token: &str, spec: &JobSpec, base_url: &str) -> Value {
    let project_path = spec.project_path();
    let (scheme, host) = base_url
        .split_once("://")
        .unwrap_or(("http", base_url.trim_start_matches('/')));
    let repo_url = format!("{scheme}://gitlab-ci-token:{token}@{host}/{project_path}.git");
    let mut variables: Vec<Value> = spec
        .leading_variables
        .iter()
        .map(|v| variable(&v.key, &v.value, true, false))
        .collect();
    variables.extend([
        variable("CI_SERVER_URL", base_url, true, false),
        variable("CI_JOB_ID", &id.to_string(), true, false),
        variable("CI_JOB_NAME", &spec.name, true, false),
        variable("CI_JOB_STAGE", &spec.stage, true, false),
        variable("CI_PROJECT_ID", &spec.project_id.to_string(), true, false),
        variable("CI_PROJECT_NAME", &spec.project_name, true, false),
        variable("CI_PROJECT_PATH", &project_path, true, false),
        variable("CI_PROJECT_NAMESPACE", &spec.root_namespace, true, false),
        variable(
            "CI_PROJECT_ROOT_NAMESPACE",
            &spec.root_namespace,
            true,
            false,
        ),
    ]);
    if let Some(prefix) = &spec.dependency_proxy_prefix {
        variables.push(variable(
            "CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX",
            prefix,
            true,
            false,
        ));
    }
    if let Some(flavor) = &spec.flavor {
        variables.push(variable("CI_CLEVER_CLOUD_FLAVOR", flavor, true, false));
    }
    variables.push(variable("CI_JOB_TOKEN", token, false, true));
    variables.push(variable(
        DURATION_VARIABLE,
        &spec.duration_ms.to_string(),
        true,
        false,
    ));
    variables.push(variable(
        OUTCOME_VARIABLE,
        spec.outcome.as_str(),
        true,
        false,
    ));
    for v in &spec.variables {
        variables.push(variable(&v.key, &v.value, true, false));
    }
    let image = match &spec.image {
        Some(name) => json!({"name": name, "entrypoint": null, "ports": []}),
        None => Value::Null,
    };
    let services: Vec<Value> = spec
        .services
        .iter()
        .map(|name| {
            json!({"name": name, "alias": null, "entrypoint": null, "command": null, "ports": []})
        })
        .collect();
    json!({
        "id": id,
        "token": token,
        "allow_git_fetch": true,
        "job_info": {
            "id": id,
            "name": spec.name,
            "stage": spec.stage,
            "project_id": spec.project_id,
            "project_name": spec.project_name,
            "project_full_path": project_path,
            "time_in_queue_seconds": 0,
        },
        "git_info": {
            "repo_url": repo_url,
            "ref": "main",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "before_sha": "0000000000000000000000000000000000000000",
            "ref_type": "branch",
            "refspecs": ["+refs/heads/main:refs/remotes/origin/main"],
            "depth": 20,
            "repo_object_format": "sha1",
            "protected": false,
        },
        "runner_info": {"timeout": 3600, "runner_session_url": null},
        "variables": variables,
        "steps": [{
            "name": "script",
            "script": spec.script,
            "timeout": 3600,
            "when": "on_success",
            "allow_failure": false,
        }],
        "image": image,
        "services": services,
        "artifacts": null,
        "cache": [],
        "credentials": [],
        "dependencies": [],
        "features": {
            "trace_sections": true,
            "failure_reasons": ["unknown_failure", "script_failure", "runner_system_failure",
                                "job_execution_timeout", "runner_unsupported"],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_carries_the_agreed_variables() {
        let spec = JobSpec::new("build")
            .flavor("M")
            .duration(Duration::from_millis(250))
            .outcome(Outcome::Failed)
            .variable("EXTRA", "x");
        let p = build_payload(7, "glcbt-abc", &spec, "http://127.0.0.1:1234/gl");
        assert_eq!(p["id"], 7);
        assert_eq!(p["token"], "glcbt-abc");
        assert_eq!(p["job_info"]["project_id"], 17);
        assert_eq!(
            p["git_info"]["repo_url"],
            "http://gitlab-ci-token:glcbt-abc@127.0.0.1:1234/gl/group/demo.git"
        );
        let vars = p["variables"].as_array().expect("array");
        let get = |k: &str| {
            vars.iter()
                .find(|v| v["key"] == k)
                .map(|v| v["value"].clone())
        };
        assert_eq!(get("CI_CLEVER_CLOUD_FLAVOR"), Some(json!("M")));
        assert_eq!(get("CI_PROJECT_ROOT_NAMESPACE"), Some(json!("group")));
        assert_eq!(get(DURATION_VARIABLE), Some(json!("250")));
        assert_eq!(get(OUTCOME_VARIABLE), Some(json!("failed")));
        assert_eq!(get("EXTRA"), Some(json!("x")));
        assert_eq!(get("CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX"), None);
        let token_var = vars.iter().find(|v| v["key"] == "CI_JOB_TOKEN");
        assert_eq!(token_var.map(|v| v["masked"].clone()), Some(json!(true)));
    }

    #[test]
    fn job_spec_json_defaults() {
        let spec: JobSpec = serde_json::from_str(r#"{"name": "x", "flavor": "XS"}"#).expect("spec");
        assert_eq!(spec.root_namespace, "group");
        assert_eq!(spec.flavor.as_deref(), Some("XS"));
        assert_eq!(spec.outcome, Outcome::Success);
        assert!(serde_json::from_str::<JobSpec>(r#"{"nmae": "x"}"#).is_err());
    }
}
