//! Helpers of the tests of service applications: an application made and deployed as
//! `clever-service-docker` does, and calls to its helper's API.

use std::net::SocketAddr;
use std::time::Duration;

use paas_sim::clever::checker::{dependency_proxy_rewrite, HELPER_TOKEN_LEN};
use paas_sim::clever::CleverHandle;
use serde_json::{json, Value};

use super::{call, client, commit_tree, create_body, git, with_credentials};

/// A helper token of the right shape, different per `seed`.
pub fn helper_token(seed: char) -> String {
    std::iter::repeat_n(seed, HELPER_TOKEN_LEN).collect()
}

/// A service application as `clever-service-docker` makes it.
pub struct ServiceApp {
    /// Application id.
    pub id: String,
    /// Its `vhosts[0].fqdn`.
    pub fqdn: String,
    /// Its helper token.
    pub token: String,
    /// Git URL with the organisation's credentials.
    pub push_url: String,
    /// Its URL in the Clever API.
    pub api_url: String,
    /// The organisation's API token.
    pub api_token: String,
}

impl ServiceApp {
    /// URL of `path` on its helper.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.fqdn)
    }

    /// Its helper's address.
    pub fn addr(&self) -> SocketAddr {
        match self.fqdn.parse() {
            Ok(a) => a,
            Err(e) => panic!("fqdn {}: {e}", self.fqdn),
        }
    }
}

/// Creates an application without `instanceLifetime` in `org` (with `api_token`) and sets
/// its env with the helper token `token`.
pub async fn create_service_app(
    h: &CleverHandle,
    org: &str,
    api_token: &str,
    name: &str,
    token: &str,
) -> ServiceApp {
    let mut body = create_body(name, "heptapod-runner-XS");
    if let Some(m) = body.as_object_mut() {
        m.remove("instanceLifetime");
    }
    let url = format!("{}/organisations/{org}/applications", h.api_url());
    let (status, app) = call(&client(), "POST", &url, Some(api_token), Some(&body)).await;
    assert_eq!(status, 200, "create: {app}");
    let id = app["id"].as_str().unwrap_or_default().to_owned();
    let env_url = format!("{url}/{id}/env");
    let env = json!({"CC_MOUNT_DOCKER_SOCKET": "true", "HEPTAPOD_PAAS_RUNNER_TOKEN": token});
    let (status, _) = call(&client(), "PUT", &env_url, Some(api_token), Some(&env)).await;
    assert_eq!(status, 200);
    ServiceApp {
        id,
        fqdn: app["vhosts"][0]["fqdn"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        token: token.to_owned(),
        push_url: with_credentials(
            app["deployment"]["httpUrl"].as_str().unwrap_or_default(),
            "Jenkins",
            api_token,
        ),
        api_url: env_url.trim_end_matches("/env").to_owned(),
        api_token: api_token.to_owned(),
    }
}

/// The helper Dockerfile of `image`.
pub fn helper_dockerfile(image: &str) -> String {
    format!("FROM {image}\nCMD [\"--http1\", \"--listen-address\", \"0.0.0.0:8080\"]\n")
}

/// Pushes a single `Dockerfile` to the application's repository, once it is created.
pub async fn push_dockerfile(app: &ServiceApp, dockerfile: String) {
    let mut created = false;
    for _ in 0..600 {
        let (_, got) = call(&client(), "GET", &app.api_url, Some(&app.api_token), None).await;
        if got["deployment"]["repoState"] == "CREATED" {
            created = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(created, "the repository of {} was never created", app.id);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    commit_tree(dir.path(), &[("Dockerfile", dockerfile)]).await;
    let (ok, _, err) = git(
        dir.path(),
        &["push", "-q", &app.push_url, "HEAD:refs/heads/master"],
    )
    .await;
    assert!(ok, "push: {err}");
}

/// `GET /can-take-job` with `auth` as the `Authorization` header: status and JSON answer.
pub async fn can_take_job(app: &ServiceApp, auth: Option<&str>) -> (u16, Value) {
    let mut req = client().get(app.url("/can-take-job"));
    if let Some(a) = auth {
        req = req.insert_header(("Authorization", a.to_owned()));
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => panic!("can-take-job: {e}"),
    };
    let body = resp.body().limit(1 << 20).await.unwrap_or_default();
    (
        resp.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// `can-take-job` answers `true`.
pub async fn ready(app: &ServiceApp) -> bool {
    can_take_job(app, Some(&format!("Bearer {}", app.token))).await == (200, json!(true))
}

/// Polls `can-take-job` until it answers `true` (at most 600 times, 50 ms apart).
pub async fn wait_ready(app: &ServiceApp) -> bool {
    for _ in 0..600 {
        if ready(app).await {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `POST /launch-job` with a raw body: status, `Retry-After`, body text.
pub async fn launch_raw(app: &ServiceApp, body: Vec<u8>) -> (u16, Option<String>, String) {
    let resp = client()
        .post(app.url("/launch-job"))
        .insert_header(("Authorization", format!("Bearer {}", app.token)))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await;
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => panic!("launch-job: {e}"),
    };
    let retry = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.body().limit(1 << 20).await.unwrap_or_default();
    (
        resp.status().as_u16(),
        retry,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// `POST /launch-job` with `body`.
pub async fn launch(app: &ServiceApp, body: &Value) -> (u16, Option<String>, String) {
    launch_raw(app, body.to_string().into_bytes()).await
}

/// The launch request `clever-service-docker` sends for `payload`, handed out by the
/// coordinator at `coordinator_url` to `runner_token`.
pub fn launch_body(coordinator_url: &str, runner_token: &str, payload: &Value) -> Value {
    let mut job = payload.clone();
    dependency_proxy_rewrite(&mut job);
    let config = format!(
        "[[runners]]\nname = \"helper-test\"\nurl = \"{coordinator_url}\"\n\
         token = \"{runner_token}\"\nexecutor = \"docker\"\n"
    );
    json!({"job_id": payload["id"], "runner_name": "glrt-hel",
           "specification": job.to_string(), "config": config})
}
