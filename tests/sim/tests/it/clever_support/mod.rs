//! Helpers shared by the fake Clever Cloud tests: starting a fake, an awc client, JSON calls,
//! bounded polling, and running the `git` CLI with a clean environment.

pub mod helper;

use std::path::Path;
use std::time::{Duration, Instant};

use paas_sim::clever::{CleverHandle, CleverSimConfig, FakeClever, OrgSeed};
use serde_json::{json, Value};

pub const ORG: &str = "orga_11111111-1111-4111-8111-111111111111";
pub const OTHER_ORG: &str = "orga_22222222-2222-4222-8222-222222222222";
pub const TOKEN: &str = "tok-org1";
pub const OTHER_TOKEN: &str = "tok-org2";

/// A config with two orgs, one token each.
pub fn config() -> CleverSimConfig {
    CleverSimConfig {
        orgs: vec![
            OrgSeed {
                id: ORG.to_owned(),
                tokens: vec![TOKEN.to_owned()],
            },
            OrgSeed {
                id: OTHER_ORG.to_owned(),
                tokens: vec![OTHER_TOKEN.to_owned()],
            },
        ],
        ..CleverSimConfig::default()
    }
}

pub fn start(config: CleverSimConfig) -> CleverHandle {
    match FakeClever::start(config) {
        Ok(h) => h,
        Err(e) => panic!("fake Clever did not start: {e}"),
    }
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(20))
        .finish()
}

/// The body the Python reference sends on create.
pub fn create_body(name: &str, flavor: &str) -> Value {
    json!({"name": name, "zone": "par", "deploy": "git", "instanceType": "docker",
           "instanceVersion": "20231106",
           "instanceVariant": "70d676a0-a775-4dc9-a43d-3121036e8515",
           "instanceLifetime": "TASK", "minInstances": 1, "maxInstances": 1,
           "minFlavor": flavor, "maxFlavor": flavor})
}

/// Sends a request, returns status and JSON body (`Value::Null` when not JSON).
pub async fn call(
    client: &awc::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let m = match awc::http::Method::from_bytes(method.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("bad method {method}: {e}"),
    };
    let mut req = client.request(m, url);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("token {t}")));
    }
    let resp = match body {
        Some(b) => req.send_json(b).await,
        None => req.send().await,
    };
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status().as_u16();
    let bytes = match resp.body().limit(64 << 20).await {
        Ok(b) => b,
        Err(e) => panic!("{method} {url} body: {e}"),
    };
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Takes the next job from the coordinator API at `api_url` as the PAAS runner would.
pub async fn take_job(api_url: &str, runner_token: &str) -> Value {
    let (status, payload) = call(
        &client(),
        "POST",
        &format!("{api_url}/jobs/request"),
        None,
        Some(&json!({"token": runner_token, "info": {"executor": "docker"}})),
    )
    .await;
    assert_eq!(status, 201, "{payload}");
    payload
}

/// Creates an app with the reference body; returns its JSON.
pub async fn create_app(h: &CleverHandle, name: &str, flavor: &str) -> Value {
    let url = format!("{}/organisations/{ORG}/applications", h.api_url());
    let (status, body) = call(
        &client(),
        "POST",
        &url,
        Some(TOKEN),
        Some(&create_body(name, flavor)),
    )
    .await;
    assert_eq!(status, 200, "create: {body}");
    body
}

/// Polls `f` every 20 ms until it returns true, at most `limit` (bounded by count and time).
pub async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    for _ in 0..10_000 {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Runs `git args…` in `dir` with a clean environment; (success, stdout, stderr).
pub async fn git(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("LC_ALL", "C")
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(o) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => panic!("cannot run git: {e}"),
    }
}

/// Writes the files and commits them in a fresh repository at `dir` on branch `master`.
pub async fn commit_tree(dir: &Path, files: &[(&str, String)]) {
    let (ok, _, err) = git(dir, &["init", "-q", "--initial-branch=master"]).await;
    assert!(ok, "git init: {err}");
    for (name, content) in files {
        if let Err(e) = std::fs::write(dir.join(name), content) {
            panic!("write {name}: {e}");
        }
    }
    commit_all(dir, "Job definition").await;
}

pub async fn commit_all(dir: &Path, message: &str) {
    let (ok, _, err) = git(dir, &["add", "."]).await;
    assert!(ok, "git add: {err}");
    let (ok, _, err) = git(
        dir,
        &[
            "-c",
            "user.name=Heptapod Paas Runner",
            "-c",
            "user.email=paasrunner@heptapod.test",
            "commit",
            "-q",
            "-m",
            message,
        ],
    )
    .await;
    assert!(ok, "git commit: {err}");
}

/// `http://user:password@host/...` from `http://host/...`.
pub fn with_credentials(url: &str, user: &str, password: &str) -> String {
    url.replacen("http://", &format!("http://{user}:{password}@"), 1)
}
