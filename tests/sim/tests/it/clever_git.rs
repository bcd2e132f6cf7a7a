//! The git deployment endpoint with the real `git` CLI over HTTP (401 challenge, credentials,
//! 404 before CREATED, deployments on pushes moving master), and the simulated inner runner
//! against a small stub coordinator (trace with 416 resync, final state, checks of the tree).

use crate::clever_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clever_support::*;
use paas_sim::clever::config::DEFAULT_MAIN_IMAGE;
use paas_sim::clever::{CleverHandle, Endpoint, FaultCommand, FaultKind, RepoDelay, Timing};
use serde_json::{json, Value};

// ---------------------------------------------------------------- stub coordinator

#[derive(Default)]
struct StubState {
    payloads: HashMap<i64, Value>,
    tokens: HashMap<i64, String>,
    traces: HashMap<i64, Vec<u8>>,
    updates: Vec<(i64, Value)>,
    patches: Vec<(i64, String, u16)>,
}

#[derive(Clone, Default)]
struct Stub(Arc<Mutex<StubState>>);

impl Stub {
    fn lock(&self) -> std::sync::MutexGuard<'_, StubState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct StubServer {
    url: String,
    stub: Stub,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for StubServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn stub_job(stub: web::Data<Stub>, id: web::Path<i64>) -> HttpResponse {
    match stub.lock().payloads.get(&id) {
        Some(p) => HttpResponse::Ok().json(json!({"payload": p})),
        None => HttpResponse::NotFound().json(json!({"message": "404 Not Found"})),
    }
}

async fn stub_trace(
    stub: web::Data<Stub>,
    id: web::Path<i64>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let id = *id;
    let token = req
        .headers()
        .get("JOB-TOKEN")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let range = req
        .headers()
        .get("Content-Range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut s = stub.lock();
    if s.tokens.get(&id) != Some(&token) {
        s.patches.push((id, range, 403));
        return HttpResponse::Forbidden().json(json!({"message": "403 Forbidden"}));
    }
    let start: Option<usize> = range.split('-').next().and_then(|v| v.parse().ok());
    let trace = s.traces.entry(id).or_default();
    let len = trace.len();
    if start != Some(len) {
        s.patches.push((id, range, 416));
        return HttpResponse::RangeNotSatisfiable()
            .insert_header(("Range", format!("0-{len}")))
            .finish();
    }
    trace.extend_from_slice(&body);
    let new_len = trace.len();
    s.patches.push((id, range, 202));
    HttpResponse::Accepted()
        .insert_header(("Range", format!("0-{new_len}")))
        .body("3")
}

async fn stub_update(
    stub: web::Data<Stub>,
    id: web::Path<i64>,
    body: web::Json<Value>,
) -> HttpResponse {
    let mut s = stub.lock();
    if s.tokens.get(&*id).map(String::as_str) != body["token"].as_str() {
        return HttpResponse::Forbidden().json(json!({"message": "403 Forbidden"}));
    }
    s.updates.push((*id, body.into_inner()));
    HttpResponse::Ok().body("200")
}

fn start_stub() -> StubServer {
    let stub = Stub::default();
    let data = web::Data::new(stub.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let system = actix_rt::System::new();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/__sim/jobs/{id}", web::get().to(stub_job))
                .route("/api/v4/jobs/{id}/trace", web::patch().to(stub_trace))
                .route("/api/v4/jobs/{id}", web::put().to(stub_update))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0));
        let server = match server {
            Ok(s) => s,
            Err(e) => panic!("stub bind: {e}"),
        };
        let addr = server.addrs().first().copied();
        let server = server.run();
        let _ = tx.send((addr, server.handle()));
        let _ = system.block_on(server);
    });
    let (addr, handle) = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok((Some(a), h)) => (a, h),
        _ => panic!("stub did not start"),
    };
    StubServer {
        url: format!("http://{addr}/"),
        stub,
        handle,
        thread: Some(thread),
    }
}

// ---------------------------------------------------------------- build contexts

const PROXY: &str = "gitlab.example:443/grp/dependency_proxy/containers";

fn handed_job(id: i64, duration_ms: u64, outcome: &str) -> Value {
    json!({
        "id": id, "token": format!("job-token-{id}"), "allow_git_fetch": true,
        "job_info": {"id": id, "name": "test", "stage": "test", "project_id": 3, "project_name": "p"},
        "variables": [
            {"key": "CI_JOB_ID", "value": id.to_string(), "public": true, "masked": false},
            {"key": "CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX", "value": PROXY, "public": true, "masked": false},
            {"key": "PAAS_SIM_DURATION_MS", "value": duration_ms.to_string(), "public": true, "masked": false},
            {"key": "PAAS_SIM_OUTCOME", "value": outcome, "public": true, "masked": false},
        ],
        "image": {"name": "alpine:3.19", "entrypoint": null},
        "services": [{"name": "postgres:13", "alias": null}, {"name": "registry.example/x:1"}],
        "steps": [{"name": "script", "script": ["true"], "timeout": 3600, "when": "on_success", "allow_failure": false}],
    })
}

/// The job as the PAAS runner must push it (rewrite written out by hand).
fn pushed_job(id: i64, duration_ms: u64, outcome: &str) -> Value {
    let mut j = handed_job(id, duration_ms, outcome);
    j["image"]["name"] = json!(format!("{PROXY}/library/alpine:3.19"));
    j["services"][0] = json!({"name": format!("{PROXY}/library/postgres:13"), "alias": "postgres"});
    j
}

fn dockerfile(image: &str) -> String {
    format!(
        "FROM {image}\nCOPY runner.toml /etc/gitlab-runner/runner.toml\n\
         COPY job.json /etc/gitlab-runner/job.json\nENV DEBUG=\"true\"\n\
         ENTRYPOINT [\"/usr/bin/gitlab-runner\", \"exec-fetched-job\", \"--config\", \
         \"/etc/gitlab-runner/runner.toml\",\"/etc/gitlab-runner/job.json\"]\n"
    )
}

fn runner_toml(url: &str, extra: &str) -> String {
    format!(
        "[[runners]]\nname = \"paas\"\nurl = \"{url}\"\ntoken = \"glrt-runner-token\"\n\
         executor = \"docker\"\n{extra}[runners.docker]\nimage = \"alpine\"\n"
    )
}

fn good_tree(stub_url: &str, job: &Value) -> Vec<(&'static str, String)> {
    vec![
        ("Dockerfile", dockerfile(DEFAULT_MAIN_IMAGE)),
        ("runner.toml", runner_toml(stub_url, "")),
        ("job.json", job.to_string()),
    ]
}

// ---------------------------------------------------------------- helpers

async fn app_with_env(h: &CleverHandle, name: &str) -> (String, String) {
    let app = create_app(h, name, "heptapod-runner-S").await;
    let id = app["id"].as_str().unwrap_or_default().to_owned();
    let url = format!("{}/organisations/{ORG}/applications/{id}/env", h.api_url());
    let env = json!({"CC_MOUNT_DOCKER_SOCKET": "true", "CC_ENABLE_HEPTAPOD_RUNNER": "true"});
    let (status, _) = call(&client(), "PUT", &url, Some(TOKEN), Some(&env)).await;
    assert_eq!(status, 200);
    (
        id,
        app["deployment"]["httpUrl"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn deployments_checked(h: &CleverHandle, app_id: &str, n: usize) -> bool {
    wait_until(Duration::from_secs(20), || {
        let d: Vec<_> = h
            .control()
            .deployments()
            .into_iter()
            .filter(|d| d.app_id == app_id)
            .collect();
        d.len() == n && d.iter().all(|d| d.checked)
    })
    .await
}

fn violation_kinds(h: &CleverHandle, app_id: &str) -> Vec<String> {
    let mut k: Vec<String> = h
        .control()
        .violations()
        .into_iter()
        .filter(|v| v.app_id.as_deref() == Some(app_id))
        .map(|v| v.kind)
        .collect();
    k.sort();
    k
}

fn push_args(url: &str) -> Vec<String> {
    vec![
        "push".into(),
        "-q".into(),
        url.into(),
        "HEAD:refs/heads/master".into(),
    ]
}

async fn push(dir: &std::path::Path, url: &str) -> (bool, String) {
    let args = push_args(url);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = git(dir, &refs).await;
    (ok, err)
}

// ---------------------------------------------------------------- tests

#[actix_rt::test]
async fn push_needs_basic_auth_then_deploys_and_runs_the_job() {
    let stub = start_stub();
    let h = start(config());
    let (app_id, http_url) = app_with_env(&h, "hpd-job-abcdefgh-42").await;
    assert!(http_url.starts_with(&h.git_base_url()), "{http_url}");
    let job_handed = handed_job(42, 300, "success");
    stub.stub.lock().payloads.insert(42, job_handed);
    stub.stub.lock().tokens.insert(42, "job-token-42".into());

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    commit_tree(
        dir.path(),
        &good_tree(&stub.url, &pushed_job(42, 300, "success")),
    )
    .await;

    // no credentials: the 401 challenge, git gives up (no prompt)
    let (ok, _, err) = git(dir.path(), &["ls-remote", &http_url, "master"]).await;
    assert!(!ok, "ls-remote without credentials must fail");
    assert!(
        err.contains("Authentication failed") || err.contains("could not read"),
        "{err}"
    );
    // wrong password
    let (ok, _) = push(
        dir.path(),
        &with_credentials(&http_url, "Jenkins", OTHER_TOKEN),
    )
    .await;
    assert!(!ok);
    assert_eq!(h.control().deployments().len(), 0);

    // right credentials: empty repository advertises nothing, then the push deploys
    let creds = with_credentials(&http_url, "Jenkins", TOKEN);
    let (ok, out, err) = git(dir.path(), &["ls-remote", &creds, "master"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "");
    let (ok, err) = push(dir.path(), &creds).await;
    assert!(ok, "push: {err}");
    let (ok, out, _) = git(dir.path(), &["ls-remote", &creds, "master"]).await;
    assert!(ok && out.contains("refs/heads/master"), "{out}");

    assert!(
        deployments_checked(&h, &app_id, 1).await,
        "deployment not checked"
    );
    assert_eq!(
        violation_kinds(&h, &app_id),
        Vec::<String>::new(),
        "{:?}",
        h.control().violations()
    );
    // env snapshot taken at deployment start
    let envs = h.control().deployment_envs(&app_id);
    assert_eq!(
        envs.first()
            .and_then(|e| e.get("CC_MOUNT_DOCKER_SOCKET"))
            .map(String::as_str),
        Some("true")
    );

    // the inner runner wrote the trace with the job token, then reported success
    let finished = wait_until(Duration::from_secs(20), || {
        !stub.stub.lock().updates.is_empty()
    })
    .await;
    assert!(finished, "no final update");
    {
        let s = stub.stub.lock();
        let trace =
            String::from_utf8_lossy(s.traces.get(&42).map_or(&[][..], Vec::as_slice)).into_owned();
        assert!(trace.contains(&app_id), "{trace}");
        assert!(trace.contains("Job succeeded"), "{trace}");
        assert!(s.patches.iter().all(|p| p.2 == 202), "{:?}", s.patches);
        assert_eq!(s.patches.first().map(|p| p.1.starts_with("0-")), Some(true));
        assert_eq!(
            s.updates.first().map(|u| u.1["state"].clone()),
            Some(json!("success"))
        );
    }
    // The inner runner records its final status once the coordinator has
    // answered the update, a moment after the stub saw it.
    let recorded = wait_until(Duration::from_secs(20), || {
        h.control().deployments().first().is_some_and(|d| {
            d.inner_status.starts_with("finished") || d.inner_status.starts_with("aborted")
        })
    })
    .await;
    assert!(recorded, "{:?}", h.control().deployments());
    let d = h.control().deployments();
    assert!(
        d.first()
            .is_some_and(|d| d.inner_status.starts_with("finished:success")),
        "{d:?}"
    );
    assert_eq!(d.first().and_then(|d| d.job_id), Some(42));
    let tree = h.control().pushed_tree(&app_id).unwrap_or_default();
    assert_eq!(tree.files, ["Dockerfile", "job.json", "runner.toml"]);
    assert!(tree.job_json.is_some_and(|j| j.contains("job-token-42")));

    // a second push moving master is a second deployment; another branch is not
    std::fs::write(
        dir.path().join("runner.toml"),
        runner_toml(&stub.url, "limit = 1\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    commit_all(dir.path(), "second").await;
    let (ok, err) = push(dir.path(), &creds).await;
    assert!(ok, "second push: {err}");
    assert!(deployments_checked(&h, &app_id, 2).await);
    let (ok, _, err) = git(dir.path(), &["push", "-q", &creds, "HEAD:refs/heads/other"]).await;
    assert!(ok, "{err}");
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.control().deployments().len(), 2);
    assert_eq!(h.control().apps().first().map(|a| a.deployments), Some(2));
    assert!(h.control().request_count(Endpoint::GitReceivePack) >= 3);

    // the app's API view reflects the deployments
    let (_, app) = call(
        &client(),
        "GET",
        &format!("{}/organisations/{ORG}/applications/{app_id}", h.api_url()),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(app["last_deploy"], 2);
    assert!(app["commitId"].is_string());
    h.shutdown();
}

#[actix_rt::test]
async fn the_repository_is_404_until_created_and_after_delete() {
    let mut cfg = config();
    cfg.timing = Timing {
        repo_create_delay: RepoDelay::Never,
        ..Timing::default()
    };
    let h = start(cfg);
    let (app_id, http_url) = app_with_env(&h, "n").await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    commit_tree(dir.path(), &[("f", "x".to_owned())]).await;
    let creds = with_credentials(&http_url, "Jenkins", TOKEN);
    let (ok, _, err) = git(dir.path(), &["ls-remote", &creds, "master"]).await;
    assert!(!ok);
    assert!(err.contains("not found") || err.contains("404"), "{err}");
    // forcing CREATED opens it, deleting the app closes it
    assert!(h
        .control()
        .force_repo_state(&app_id, Some(paas_sim::clever::RepoState::Created)));
    let (ok, _, err) = git(dir.path(), &["ls-remote", &creds, "master"]).await;
    assert!(ok, "{err}");
    let url = format!("{}/organisations/{ORG}/applications/{app_id}", h.api_url());
    assert_eq!(
        call(&client(), "DELETE", &url, Some(TOKEN), None).await.0,
        200
    );
    let (ok, _, err) = git(dir.path(), &["ls-remote", &creds, "master"]).await;
    assert!(!ok);
    assert!(err.contains("not found") || err.contains("404"), "{err}");
    // unknown repository
    let unknown = with_credentials(
        &format!(
            "{}/app_00000000-0000-4000-8000-000000000000.git",
            h.git_base_url()
        ),
        "Jenkins",
        TOKEN,
    );
    let (ok, _, _) = git(dir.path(), &["ls-remote", &unknown, "master"]).await;
    assert!(!ok);
    h.shutdown();
}

#[actix_rt::test]
async fn a_bad_build_context_is_flagged() {
    let stub = start_stub();
    let h = start(config());
    let (app_id, http_url) = app_with_env(&h, "hpd-job-abcdefgh-43").await;
    stub.stub
        .lock()
        .payloads
        .insert(43, handed_job(43, 0, "success"));
    stub.stub.lock().tokens.insert(43, "job-token-43".into());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // wrong image, cc_ key and trace-watch table forwarded, job pushed without the rewrite
    let tree = vec![
        ("Dockerfile", dockerfile("alpine:latest")),
        (
            "runner.toml",
            runner_toml(
                &stub.url,
                "cc_token = \"leak\"\n[runners.paas_job_trace_watch]\ntimeout_seconds = 3\n",
            ),
        ),
        ("job.json", handed_job(43, 0, "success").to_string()),
    ];
    commit_tree(dir.path(), &tree).await;
    let (ok, err) = push(dir.path(), &with_credentials(&http_url, "Jenkins", TOKEN)).await;
    assert!(ok, "{err}");
    assert!(deployments_checked(&h, &app_id, 1).await);
    assert_eq!(
        violation_kinds(&h, &app_id),
        [
            "dockerfile_from",
            "job_json_mismatch",
            "runner_toml_forbidden_key",
            "runner_toml_forbidden_key"
        ]
    );
    let v = h.control().violations();
    assert!(
        v.iter()
            .all(|v| !v.message.contains("leak") && !v.message.contains("job-token")),
        "{v:?}"
    );
    assert!(v.iter().all(|v| v.job_id == Some(43)));
    h.shutdown();
}

#[actix_rt::test]
async fn env_set_after_the_push_is_caught_and_unknown_jobs_are_flagged() {
    let stub = start_stub();
    let h = start(config());
    let app = create_app(&h, "hpd-job-abcdefgh-44", "heptapod-runner-S").await;
    let app_id = app["id"].as_str().unwrap_or_default().to_owned();
    let http_url = app["deployment"]["httpUrl"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    commit_tree(
        dir.path(),
        &good_tree(&stub.url, &pushed_job(44, 0, "success")),
    )
    .await;
    let (ok, err) = push(dir.path(), &with_credentials(&http_url, "Jenkins", TOKEN)).await;
    assert!(ok, "{err}");
    assert!(deployments_checked(&h, &app_id, 1).await);
    assert_eq!(
        violation_kinds(&h, &app_id),
        ["env_snapshot", "job_unknown"]
    );
    h.shutdown();
}

#[actix_rt::test]
async fn the_inner_runner_resyncs_on_416_reports_failure_and_stops_with_its_app() {
    let stub = start_stub();
    let mut cfg = config();
    cfg.timing.start_delay = Duration::from_millis(50);
    let h = start(cfg);
    // the PAAS runner already wrote 18 bytes to job 45's trace
    {
        let mut s = stub.stub.lock();
        s.payloads.insert(45, handed_job(45, 0, "failed"));
        s.tokens.insert(45, "job-token-45".into());
        s.traces.insert(45, b"launch was slow..\n".to_vec());
        s.payloads.insert(46, handed_job(46, 60_000, "success"));
        s.tokens.insert(46, "job-token-46".into());
    }
    let (app45, url45) = app_with_env(&h, "hpd-job-abcdefgh-45").await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    commit_tree(
        dir.path(),
        &good_tree(&stub.url, &pushed_job(45, 0, "failed")),
    )
    .await;
    let (ok, err) = push(dir.path(), &with_credentials(&url45, "Jenkins", TOKEN)).await;
    assert!(ok, "{err}");
    assert!(
        wait_until(Duration::from_secs(20), || !stub
            .stub
            .lock()
            .updates
            .is_empty())
        .await
    );
    {
        let s = stub.stub.lock();
        let codes: Vec<u16> = s
            .patches
            .iter()
            .filter(|p| p.0 == 45)
            .map(|p| p.2)
            .collect();
        assert_eq!(codes.first(), Some(&416));
        assert!(codes.iter().skip(1).all(|c| *c == 202), "{:?}", s.patches);
        assert_eq!(
            s.patches.get(1).map(|p| p.1.starts_with("18-")),
            Some(true),
            "{:?}",
            s.patches
        );
        let trace = s.traces.get(&45).cloned().unwrap_or_default();
        assert!(trace.starts_with(b"launch was slow..\n"));
        let update = s.updates.first().map(|u| u.1.clone()).unwrap_or_default();
        assert_eq!(update["state"], "failed");
        assert_eq!(update["token"], "job-token-45");
    }
    assert_eq!(violation_kinds(&h, &app45), Vec::<String>::new());

    // job 46 runs for a minute, but its app is deleted: the inner runner dies with it
    let (app46, url46) = app_with_env(&h, "hpd-job-abcdefgh-46").await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    commit_tree(
        dir.path(),
        &good_tree(&stub.url, &pushed_job(46, 60_000, "success")),
    )
    .await;
    let (ok, err) = push(dir.path(), &with_credentials(&url46, "Jenkins", TOKEN)).await;
    assert!(ok, "{err}");
    let started = wait_until(Duration::from_secs(20), || {
        h.control()
            .deployments()
            .iter()
            .any(|d| d.app_id == app46 && d.inner_status == "trace_written")
    })
    .await;
    assert!(started);
    let url = format!("{}/organisations/{ORG}/applications/{app46}", h.api_url());
    assert_eq!(
        call(&client(), "DELETE", &url, Some(TOKEN), None).await.0,
        200
    );
    let aborted = wait_until(Duration::from_secs(20), || {
        h.control()
            .deployments()
            .iter()
            .any(|d| d.app_id == app46 && d.inner_status.starts_with("aborted:app deleted"))
    })
    .await;
    assert!(aborted, "{:?}", h.control().deployments());
    assert!(stub.stub.lock().updates.iter().all(|u| u.0 != 46));
    h.shutdown();
}

#[actix_rt::test]
async fn git_faults_and_strict_user() {
    let mut cfg = config();
    cfg.git_strict_user = true;
    let h = start(cfg);
    let (_, http_url) = app_with_env(&h, "n").await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    commit_tree(dir.path(), &[("Dockerfile", "FROM x\n".to_owned())]).await;
    let (ok, _) = push(dir.path(), &with_credentials(&http_url, "someone", TOKEN)).await;
    assert!(!ok, "strict mode refuses another user");

    let creds = with_credentials(&http_url, "Jenkins", TOKEN);
    h.control().fault(FaultCommand::FailNext {
        endpoint: Endpoint::GitReceivePack,
        count: 1,
        fault: FaultKind::RejectPush,
    });
    let (ok, err) = push(dir.path(), &creds).await;
    assert!(!ok);
    assert!(err.contains("pre-receive"), "{err}");
    assert_eq!(h.control().deployments().len(), 0);

    h.control().fault(FaultCommand::FailNext {
        endpoint: Endpoint::GitInfoRefs,
        count: 1,
        fault: FaultKind::status(500),
    });
    let (ok, _) = push(dir.path(), &creds).await;
    assert!(!ok);
    let (ok, err) = push(dir.path(), &creds).await;
    assert!(ok, "{err}");
    assert_eq!(h.control().deployments().len(), 1);
    h.shutdown();
}
