//! The simulated inner runner: on each deployment, read the pushed tree of `master`, check it
//! (see [`super::checker`]), snapshot the env, then behave like `gitlab-runner
//! exec-fetched-job`: after the start delay append a line to the job trace with the job token
//! (resyncing on 416), and after the job's duration report its outcome.
//!
//! A service application's deployment (one helper `Dockerfile`) boots its helper instead
//! ([`super::helper::lifecycle`]); the helper then runs each job it accepts with the same
//! [`run_job`], on a [`JobHost::Helper`].
//!
//! Agreed convention with the fake coordinator: the job variables `PAAS_SIM_DURATION_MS`
//! (integer string, default 0) and `PAAS_SIM_OUTCOME` (`success` | `failed`, default
//! `success`) drive the simulated job; the handed-out payload is read from
//! `GET {origin of url}/__sim/jobs/{id}` (`{"payload": …}`).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::checker::{self, BuildContext, Finding, InnerJob};
use super::helper::lifecycle;
use super::ledger::DeploymentEntry;
use super::model::{new_uuid, unix_ms, Deployment, SharedWorld};
use super::repos::git_output;

/// Variable giving the simulated job duration in ms.
pub const DURATION_VARIABLE: &str = "PAAS_SIM_DURATION_MS";
/// Variable giving the simulated job outcome.
pub const OUTCOME_VARIABLE: &str = "PAAS_SIM_OUTCOME";
/// Timeout of every call to the coordinator.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of one trace append or job update (416 resyncs, transient
/// errors); like the real runner, a coordinator outage is waited out.
const TRACE_ATTEMPTS: usize = 40;
/// Total time those attempts may take (bounded back-off between them).
const RETRY_BUDGET: Duration = Duration::from_secs(45);

/// Delay before retry `attempt` (0-based): 200 ms doubling up to 2 s.
fn retry_delay(attempt: usize) -> Duration {
    let factor = 1u32 << attempt.min(4);
    (Duration::from_millis(200) * factor).min(Duration::from_secs(2))
}
/// Step of the wait loop while the job "runs" (to notice a deletion).
const RUN_STEP: Duration = Duration::from_millis(50);

/// Reads `master` of a bare repository into a [`BuildContext`].
pub async fn read_build_context(repo: &Path, commit: &str) -> BuildContext {
    let files = git_output(repo, &["ls-tree", "--name-only", commit])
        .await
        .map(|o| {
            String::from_utf8_lossy(&o)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let read = |name: &'static str| async move {
        let spec = format!("{commit}:{name}");
        git_output(repo, &["cat-file", "blob", &spec])
            .await
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    };
    BuildContext {
        files,
        dockerfile: read("Dockerfile").await,
        runner_toml: read("runner.toml").await,
        job_json: read("job.json").await,
    }
}

fn record(world: &SharedWorld, app_id: &str, job_id: Option<i64>, findings: Vec<Finding>) {
    world.lock().record_findings(app_id, job_id, findings);
}

/// Where a simulated job runs, and where its progress is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobHost {
    /// Pushed as a build context: the deployment at this ledger index.
    Deployment(usize),
    /// Accepted by a service application's helper: the ledger's helper job at `index`,
    /// running as long as the helper instance of `generation` lives.
    Helper {
        /// Index in the ledger's helper jobs.
        index: usize,
        /// Helper generation it runs in.
        generation: u64,
    },
}

fn set_status(world: &SharedWorld, host: JobHost, status: &str, checked: Option<bool>) {
    let mut w = world.lock();
    match host {
        JobHost::Deployment(index) => w.ledger.update_deployment(index, |d| {
            d.inner_status = status.to_owned();
            if let Some(c) = checked {
                d.checked = c;
            }
        }),
        JobHost::Helper { index, .. } => w.ledger.update_helper_job(index, |j| {
            j.inner_status = status.to_owned();
            if let Some(c) = checked {
                j.checked = c;
            }
        }),
    }
}

/// Called by the Git endpoint after a push moved `master` of `app_id` to `commit`: records
/// the deployment, checks the tree synchronously, then spawns the job on the current arbiter.
pub async fn on_deployment(world: SharedWorld, app_id: String, commit: String) {
    let (repo, expected_image, start_delay, env, index) = {
        let mut w = world.lock();
        let now_ms = w.now_ms();
        let uuid = new_uuid(&mut w.rng);
        let expected_image = w.expected_main_image.clone();
        let start_delay = w.timing.start_delay;
        let Some(app) = w.apps.get_mut(&app_id) else {
            return;
        };
        let env = app.env.clone();
        app.deployments.push(Deployment {
            id: format!("deployment_{uuid}"),
            commit: commit.clone(),
            env: env.clone(),
            date_ms: unix_ms(),
            state: "WIP".to_owned(),
        });
        app.state = "WANTS_TO_BE_UP".to_owned();
        app.instance_state = "DEPLOYING".to_owned();
        let repo = app.repo_path.clone();
        let index = w.ledger.deployment(DeploymentEntry {
            t_ms: now_ms,
            app_id: app_id.clone(),
            commit: commit.clone(),
            job_id: None,
            checked: false,
            inner_status: "checking".to_owned(),
        });
        (repo, expected_image, start_delay, env, index)
    };
    let ctx = read_build_context(&repo, &commit).await;
    let service = {
        let mut w = world.lock();
        match w.apps.get_mut(&app_id) {
            Some(app) => {
                app.last_context = Some(ctx.clone());
                app.helper.is_some()
            }
            None => false,
        }
    };
    if service && checker::is_helper_tree(&ctx) {
        lifecycle::boot(&world, &app_id, index, &ctx, &env);
        return;
    }
    let (mut findings, job) = checker::check_build_context(&ctx, &expected_image);
    if env.get("CC_MOUNT_DOCKER_SOCKET").map(String::as_str) != Some("true") {
        findings.push(Finding {
            kind: "env_snapshot",
            message: "CC_MOUNT_DOCKER_SOCKET=true was not in the env when the deployment started"
                .to_owned(),
        });
    }
    let job_id = job.as_ref().map(|j| j.job_id);
    record(&world, &app_id, job_id, findings);
    world
        .lock()
        .ledger
        .update_deployment(index, |d| d.job_id = job_id);
    let host = JobHost::Deployment(index);
    match job {
        None => set_status(&world, host, "aborted:unusable build context", Some(true)),
        Some(job) => {
            actix_rt::spawn(run_job(world, app_id, host, job, start_delay));
        }
    }
}

/// Whether the job may go on: its application is alive and, on a helper, the helper
/// instance that accepted it still runs it. The reason to stop otherwise.
fn still_running(world: &SharedWorld, app_id: &str, host: JobHost) -> Result<(), &'static str> {
    let w = world.lock();
    let Some(app) = w.apps.get(app_id).filter(|a| !a.deleted) else {
        return Err("app deleted");
    };
    match host {
        JobHost::Deployment(_) => Ok(()),
        JobHost::Helper { generation, .. } => match &app.helper {
            Some(h) if h.runs(generation) => Ok(()),
            _ => Err("helper died"),
        },
    }
}

fn set_app_states(
    world: &SharedWorld,
    app_id: &str,
    instance: &str,
    deployment: &str,
    state: &str,
) {
    let mut w = world.lock();
    if let Some(a) = w.apps.get_mut(app_id).filter(|a| !a.deleted) {
        a.instance_state = instance.to_owned();
        a.state = state.to_owned();
        if let Some(d) = a.deployments.last_mut() {
            d.state = deployment.to_owned();
        }
    }
}

/// Runs `job` like `gitlab-runner exec-fetched-job` would on `host`: compares it with the job
/// the coordinator handed out, writes its trace, reports its outcome. Stops early when the
/// application (or the helper instance) goes away, recording why.
pub async fn run_job(
    world: SharedWorld,
    app_id: String,
    host: JobHost,
    job: InnerJob,
    start_delay: Duration,
) {
    let client = awc::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .disable_redirects()
        .finish();
    let findings = match fetch_handed(&client, &job).await {
        Ok(handed) => checker::compare_jobs(&job.job, &handed),
        Err(f) => vec![f],
    };
    record(&world, &app_id, Some(job.job_id), findings);
    set_status(&world, host, "waiting", Some(true));

    tokio::time::sleep(start_delay).await;
    if let Err(why) = still_running(&world, &app_id, host) {
        set_status(&world, host, &format!("aborted:{why} before start"), None);
        return;
    }
    if let JobHost::Deployment(_) = host {
        set_app_states(
            &world,
            &app_id,
            "TASK_IN_PROGRESS",
            "TASK_RUNNING",
            "WANTS_TO_BE_UP",
        );
    }
    let vars = checker::job_variables(&job.job);
    let line = format!(
        "Running with paas-sim inner runner on {app_id}\r\nExecuting job {}\r\n",
        job.job_id
    );
    let mut trace = Trace { offset: 0 };
    if let Err(why) = trace.append(&client, &job, &line).await {
        set_status(&world, host, &format!("aborted:{why}"), None);
        return;
    }
    set_status(&world, host, "trace_written", None);

    let duration = vars
        .get(DURATION_VARIABLE)
        .and_then(|d| d.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_millis);
    let deadline = tokio::time::Instant::now() + duration;
    while tokio::time::Instant::now() < deadline {
        if let Err(why) = still_running(&world, &app_id, host) {
            set_status(&world, host, &format!("aborted:{why} while running"), None);
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(left.min(RUN_STEP)).await;
    }
    if let Err(why) = still_running(&world, &app_id, host) {
        set_status(&world, host, &format!("aborted:{why} while running"), None);
        return;
    }
    let outcome = match vars.get(OUTCOME_VARIABLE).map(String::as_str) {
        Some("failed") => "failed",
        _ => "success",
    };
    let last = if outcome == "success" {
        "Job succeeded\r\n"
    } else {
        "ERROR: Job failed: exit code 1\r\n"
    };
    // the last line is best effort, as for the real runner
    let _ = trace.append(&client, &job, last).await;
    let status = match report(&client, &job, outcome).await {
        Ok(code) => format!("finished:{outcome}:{code}"),
        Err(why) => format!("aborted:{why}"),
    };
    if let JobHost::Deployment(_) = host {
        let deployment_state = if outcome == "success" { "OK" } else { "FAIL" };
        set_app_states(
            &world,
            &app_id,
            "DELETED",
            deployment_state,
            "SHOULD_BE_DOWN",
        );
    }
    set_status(&world, host, &status, None);
}

/// `scheme://host:port` of a URL (the coordinator's `/__sim/` sits at the root, outside any
/// relative URL root).
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url.get(after_scheme..).and_then(|rest| rest.find('/')) {
        Some(i) => url.get(..after_scheme + i).unwrap_or(url),
        None => url,
    }
}

async fn fetch_handed(client: &awc::Client, job: &InnerJob) -> Result<Value, Finding> {
    let url = format!("{}/__sim/jobs/{}", origin(&job.coordinator_url), job.job_id);
    let unreachable = |why: String| Finding {
        kind: "job_unknown",
        message: format!(
            "could not fetch job {} from the coordinator: {why}",
            job.job_id
        ),
    };
    let mut resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(unreachable(format!("status {}", resp.status())));
    }
    let body: Value = resp
        .json()
        .limit(16 << 20)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    body.get("payload")
        .cloned()
        .ok_or_else(|| unreachable("no `payload` in the answer".to_owned()))
}

/// Trace writer tracking the byte offset like the real runner.
struct Trace {
    offset: u64,
}

impl Trace {
    async fn append(
        &mut self,
        client: &awc::Client,
        job: &InnerJob,
        text: &str,
    ) -> Result<(), String> {
        let url = format!("{}/api/v4/jobs/{}/trace", job.coordinator_url, job.job_id);
        let len = text.len() as u64;
        let started = std::time::Instant::now();
        for attempt in 0..TRACE_ATTEMPTS {
            if started.elapsed() > RETRY_BUDGET {
                break;
            }
            let range = format!("{}-{}", self.offset, self.offset + len);
            let resp = client
                .patch(&url)
                .insert_header(("JOB-TOKEN", job.job_token.as_str()))
                .insert_header(("Content-Range", range))
                .insert_header(("Content-Type", "text/plain"))
                .send_body(text.to_owned())
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(_) => {
                    tokio::time::sleep(retry_delay(attempt)).await;
                    continue;
                }
            };
            let range_end = resp
                .headers()
                .get("Range")
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.split_once('-'))
                .and_then(|(_, end)| end.trim().parse::<u64>().ok());
            match resp.status().as_u16() {
                202 => {
                    self.offset = range_end.unwrap_or(self.offset + len);
                    return Ok(());
                }
                416 => match range_end {
                    Some(end) => self.offset = end,
                    None => return Err("trace 416 without Range".to_owned()),
                },
                403 => return Err("trace 403 (job not running)".to_owned()),
                _ => tokio::time::sleep(retry_delay(attempt)).await,
            }
        }
        Err("trace append kept failing".to_owned())
    }
}

async fn report(client: &awc::Client, job: &InnerJob, outcome: &str) -> Result<u16, String> {
    let url = format!("{}/api/v4/jobs/{}", job.coordinator_url, job.job_id);
    let mut body = json!({"token": job.job_token, "state": outcome});
    if outcome == "failed" {
        body["failure_reason"] = json!("script_failure");
        body["exit_code"] = json!(1);
    }
    let started = std::time::Instant::now();
    for attempt in 0..TRACE_ATTEMPTS {
        if started.elapsed() > RETRY_BUDGET {
            break;
        }
        match client
            .put(&url)
            .insert_header(("JOB-TOKEN", job.job_token.as_str()))
            .send_json(&body)
            .await
        {
            Ok(r) if r.status().is_server_error() => {}
            Ok(r) => return Ok(r.status().as_u16()),
            Err(_) => {}
        }
        tokio::time::sleep(retry_delay(attempt)).await;
    }
    Err("job update kept failing".to_owned())
}

#[cfg(test)]
mod tests {
    use super::origin;

    #[test]
    fn origins() {
        assert_eq!(origin("http://127.0.0.1:5/gitlab"), "http://127.0.0.1:5");
        assert_eq!(origin("http://127.0.0.1:5"), "http://127.0.0.1:5");
        assert_eq!(origin("https://h/a/b/"), "https://h");
        assert_eq!(origin("weird"), "weird");
    }
}
