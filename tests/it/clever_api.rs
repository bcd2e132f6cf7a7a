//! The clever-docker executor against a small scripted Clever API (this
//! file): provisioning steps, retries, error classes and recovery paths
//! that need exact fault injection. Tests of the whole job flow against
//! paas-sim's fake Clever Cloud are in `clever_sim.rs`.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use heptapod_paas_runner::executors::clever::{
    CleverExecutor, CleverSettings, GroupAttributes, GroupInfo, HttpSettings, RetryPolicy, Tenancy,
};
use heptapod_paas_runner::git::RemoteSchemes;
use heptapod_paas_runner::secret::Secret;
use paas_actors::ports::{
    weight_of_mem_mib, CoordinatorError, Job, Paas, PaasErrorClass, PortFuture,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ORGA: &str = "orga_test";
const TOKEN: &str = "tok-single";
const UNIQUE: &str = "D3adNQYu";

/// A scripted answer replacing the normal behaviour of an endpoint.
#[derive(Clone, Debug)]
enum Inject {
    /// Answer this status and body (with an optional `Retry-After`).
    Status(u16, Value, Option<u64>),
    /// Create the app, then answer this status.
    CreateThen(u16),
    /// Create the app, then never answer (past the client timeout).
    CreateThenHang,
}

#[derive(Clone, Debug)]
struct MockApp {
    name: String,
    flavor: (String, u64),
    env: Option<Value>,
    polls: u32,
    created_ms: i64,
}

#[derive(Debug)]
struct Mock {
    version: String,
    flavors: Vec<(String, u64, bool)>,
    /// token -> organisation it may use.
    tokens: HashMap<String, String>,
    apps: BTreeMap<String, MockApp>,
    next_id: u64,
    /// (method, path, had an Authorization header)
    log: Vec<(String, String, bool)>,
    inject: HashMap<&'static str, VecDeque<Inject>>,
    polls_before_created: u32,
    fixed_repo_state: Option<String>,
    base: String,
    /// When set, every app's `httpUrl` (e.g. a `file://` bare repository).
    git_url: Option<String>,
}

type Shared = Arc<Mutex<Mock>>;

fn flavor_table() -> Vec<(String, u64, bool)> {
    [
        ("XS", 2048, true),
        ("S", 4096, true),
        ("M", 8192, true),
        ("L", 12288, true),
        ("XL", 16384, true),
        ("2XL", 24576, false),
        ("3XL", 32768, true),
    ]
    .iter()
    .map(|(n, m, a)| (format!("heptapod-runner-{n}"), *m, *a))
    .collect()
}

fn app_json(m: &Mock, id: &str, app: &MockApp, repo_state: &str) -> Value {
    json!({"id": id, "name": app.name, "zone": "par", "ownerId": "orga",
        "creationDate": app.created_ms, "commitId": null,
        "deployment": {"type": "GIT", "repoState": repo_state,
            "httpUrl": m.git_url.clone().unwrap_or_else(|| format!("{}/git/{id}.git", m.base))},
        "instance": {"type": "docker", "version": m.version,
            "maxFlavor": {"name": app.flavor.0, "mem": app.flavor.1, "cpus": 2}}})
}

fn err(status: u16, id: i64, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .json(json!({"id": id, "message": message, "type": "error"}))
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<Shared>) -> HttpResponse {
    let path = req.path().to_string();
    let method = req.method().to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let key: &'static str = match (method.as_str(), segs.as_slice()) {
        ("GET", ["v2", "products", "flavors"]) => "flavors",
        ("GET", ["v2", "products", "instances"]) => "instances",
        ("POST", ["v2", "organisations", _, "applications"]) => "create",
        ("GET", ["v2", "organisations", _, "applications"]) => "list",
        ("GET", ["v2", "organisations", _, "applications", _]) => "get",
        ("DELETE", ["v2", "organisations", _, "applications", _]) => "delete",
        ("PUT", ["v2", "organisations", _, "applications", _, "env"]) => "env",
        _ => return err(404, 404, "no such endpoint"),
    };
    let mut hang = false;
    let response = {
        let mut m = state.lock().expect("mock lock");
        m.log.push((method.clone(), path.clone(), auth.is_some()));
        if let (Some(&"organisations"), Some(orga)) = (segs.get(1), segs.get(2)) {
            let allowed = auth
                .as_deref()
                .and_then(|a| a.strip_prefix("token "))
                .and_then(|t| m.tokens.get(t));
            match allowed {
                None => return err(401, 401, "not authenticated"),
                Some(o) if o != orga => return err(403, 4002, "not your organisation"),
                Some(_) => {}
            }
        }
        let injected = m.inject.get_mut(key).and_then(VecDeque::pop_front);
        let mut create_then = None;
        match injected {
            Some(Inject::Status(status, body, retry_after)) => {
                let mut r = HttpResponse::build(
                    actix_web::http::StatusCode::from_u16(status).expect("status"),
                );
                if let Some(s) = retry_after {
                    r.insert_header(("Retry-After", s.to_string()));
                }
                return r.json(body);
            }
            Some(Inject::CreateThen(s)) => create_then = Some(s),
            Some(Inject::CreateThenHang) => hang = true,
            None => {}
        }
        match key {
            "flavors" => HttpResponse::Ok().json(
                m.flavors
                    .iter()
                    .map(|(n, mem, a)| json!({"name": n, "mem": mem, "cpus": 2, "available": a}))
                    .collect::<Vec<_>>(),
            ),
            "instances" => HttpResponse::Ok().json(json!([
                {"type": "node", "name": "Node", "version": "29990101", "enabled": true},
                {"type": "docker", "name": "Docker", "version": m.version, "enabled": true}])),
            "create" => {
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if req["instanceVersion"] != json!(m.version) {
                    return err(400, 4010, "instance version is not valid");
                }
                let Some(flavor) = m
                    .flavors
                    .iter()
                    .find(|(n, _, a)| *a && req["maxFlavor"] == json!(n))
                    .map(|(n, mem, _)| (n.clone(), *mem))
                else {
                    return err(400, 4011, "flavor unknown");
                };
                m.next_id += 1;
                let id = format!("app_{:08}", m.next_id);
                let app = MockApp {
                    name: req["name"].as_str().unwrap_or_default().to_string(),
                    flavor,
                    env: None,
                    polls: 0,
                    created_ms: m.next_id as i64,
                };
                let body = app_json(&m, &id, &app, "CREATING");
                m.apps.insert(id, app);
                match create_then {
                    Some(s) => err(s, 500, "internal error"),
                    None => HttpResponse::Ok().json(body),
                }
            }
            "list" => {
                let all: Vec<Value> = m
                    .apps
                    .iter()
                    .map(|(id, a)| app_json(&m, id, a, "CREATED"))
                    .collect();
                HttpResponse::Ok().json(all)
            }
            "get" | "delete" | "env" => {
                let id = segs.get(4).copied().unwrap_or_default().to_string();
                let before = m.polls_before_created;
                let fixed = m.fixed_repo_state.clone();
                let Some(app) = m.apps.get_mut(&id) else {
                    return err(404, 4004, "application not found");
                };
                match key {
                    "get" => {
                        app.polls += 1;
                        let state = fixed.unwrap_or_else(|| {
                            if app.polls > before {
                                "CREATED".into()
                            } else {
                                "CREATING".into()
                            }
                        });
                        let app = app.clone();
                        HttpResponse::Ok().json(app_json(&m, &id, &app, &state))
                    }
                    "env" => {
                        app.env = serde_json::from_slice(&body).ok();
                        let app = app.clone();
                        HttpResponse::Ok().json(app_json(&m, &id, &app, "CREATING"))
                    }
                    _ => {
                        m.apps.remove(&id);
                        HttpResponse::Ok()
                            .json(json!({"id": 0, "message": "deleted", "type": "success"}))
                    }
                }
            }
            _ => err(404, 404, "no such endpoint"),
        }
    };
    if hang {
        actix_rt::time::sleep(Duration::from_secs(5)).await;
    }
    response
}

struct Harness {
    state: Shared,
    server: actix_web::dev::ServerHandle,
    addr: SocketAddr,
}

impl Harness {
    async fn start() -> Harness {
        let mut tokens = HashMap::new();
        tokens.insert(TOKEN.to_string(), ORGA.to_string());
        let state: Shared = Arc::new(Mutex::new(Mock {
            version: "20231106".into(),
            flavors: flavor_table(),
            tokens,
            apps: BTreeMap::new(),
            next_id: 0,
            log: Vec::new(),
            inject: HashMap::new(),
            polls_before_created: 2,
            fixed_repo_state: None,
            base: String::new(),
            git_url: None,
        }));
        let data = web::Data::new(state.clone());
        let srv = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind(("127.0.0.1", 0))
        .expect("bind 127.0.0.1:0");
        let addr = *srv.addrs().first().expect("bound address");
        state.lock().expect("lock").base = format!("http://{addr}");
        let server = srv.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Harness {
            state,
            server: handle,
            addr,
        }
    }

    fn settings(&self, tenancy: Tenancy) -> CleverSettings {
        let mut s = CleverSettings::new(UNIQUE, tenancy);
        s.api_url = format!("http://{}/v2/", self.addr);
        s.deployment_repo_wait_step = Duration::from_millis(20);
        s.deployment_repo_timeout = Duration::from_millis(200);
        s.extra_env = [
            ("CC_ENABLE_HEPTAPOD_RUNNER".into(), "true".into()),
            ("CC_MOUNT_DOCKER_SOCKET".into(), "false-overridden".into()),
        ]
        .into();
        s.http = HttpSettings {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(700),
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
            },
        };
        s
    }

    fn single(&self) -> CleverSettings {
        self.settings(Tenancy::Single {
            orga_id: ORGA.into(),
            token: Secret::new(TOKEN),
        })
    }

    fn executor(&self, settings: CleverSettings) -> CleverExecutor {
        CleverExecutor::new(settings, None, logger()).expect("executor")
    }

    fn inject(&self, key: &'static str, what: Inject) {
        self.state
            .lock()
            .expect("lock")
            .inject
            .entry(key)
            .or_default()
            .push_back(what);
    }

    fn with<T>(&self, f: impl FnOnce(&mut Mock) -> T) -> T {
        f(&mut self.state.lock().expect("lock"))
    }

    fn count(&self, method: &str, path_contains: &str) -> usize {
        self.with(|m| {
            m.log
                .iter()
                .filter(|(me, p, _)| me == method && p.contains(path_contains))
                .count()
        })
    }

    async fn stop(self) {
        self.server.stop(false).await;
    }
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn job(id: i64, vars: &[(&str, &str)]) -> Job {
    let variables: Vec<Value> = vars
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v, "public": true}))
        .collect();
    Job::from_payload(json!({"id": id, "token": "job-token", "variables": variables}))
        .expect("job payload")
}

#[actix_rt::test]
async fn single_org_create_and_prepare() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    let j = job(275833, &[("CI_CLEVER_CLOUD_FLAVOR", "L")]);

    assert_eq!(ex.expected_weight(&j).await, Ok(weight_of_mem_mib(12288)));
    assert_eq!(ex.max_job_weight().await, Ok(weight_of_mem_mib(32768)));
    assert_eq!(ex.resource_name(j.id), "hpd-job-D3adNQYu-275833");

    let created = ex.create(&j).await.expect("create");
    assert_eq!(created.name, "hpd-job-D3adNQYu-275833");
    assert_eq!(created.weight, weight_of_mem_mib(12288));
    assert!(!created.launched);
    let ready = ex.prepare(&created, &j).await.expect("prepare");
    assert_eq!(
        ready.detail["deploy_url"],
        json!(format!("http://{}/git/{}.git", h.addr, created.id))
    );
    h.with(|m| {
        let app = m.apps.get(&created.id).expect("app exists");
        assert_eq!(
            app.env,
            Some(json!({"CC_MOUNT_DOCKER_SOCKET": "false-overridden",
                        "CC_ENABLE_HEPTAPOD_RUNNER": "true"}))
        );
        assert_eq!(app.flavor.0, "heptapod-runner-L");
        assert!(app.polls >= 3, "polled until CREATED: {}", app.polls);
        // Products are public; every organisation call is authenticated.
        for (_, path, auth) in &m.log {
            assert_eq!(*auth, path.contains("/organisations/"), "{path}");
        }
    });
    // The flavors and instance version are cached.
    assert_eq!(h.count("GET", "/products/flavors"), 1);
    assert_eq!(h.count("GET", "/products/instances"), 1);
    h.stop().await;
}

#[actix_rt::test]
async fn user_flavor_errors_are_permanent_and_list_the_choices() {
    let h = Harness::start().await;
    let mut s = h.single();
    s.max_flavor = Some("L".into());
    let ex = h.executor(s);
    assert_eq!(ex.max_job_weight().await, Ok(weight_of_mem_mib(12288)));
    for (flavor, part) in [
        (
            "XXL",
            "\"XXL\" (CI_CLEVER_CLOUD_FLAVOR) is not available; allowed flavors: XS, S, M, L",
        ),
        (
            "3XL",
            "bigger than this runner's maximum \"L\"; allowed flavors: XS, S, M, L",
        ),
        ("2XL", "\"2XL\" (CI_CLEVER_CLOUD_FLAVOR) is not available"),
    ] {
        let j = job(1, &[("CI_CLEVER_CLOUD_FLAVOR", flavor)]);
        for e in [
            ex.expected_weight(&j).await.expect_err("weight"),
            ex.create(&j).await.expect_err("create"),
        ] {
            assert_eq!(e.action, "check-flavor");
            assert_eq!(e.class, PaasErrorClass::Permanent);
            assert!(e.message.contains(part), "{:?} lacks {part:?}", e.message);
        }
    }
    assert_eq!(h.count("POST", ""), 0);
    h.stop().await;
}

#[actix_rt::test]
async fn create_answering_500_without_app_is_transient_and_creates_nothing() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    h.inject(
        "create",
        Inject::Status(
            500,
            json!({"id": 1, "message": "boom", "type": "error"}),
            None,
        ),
    );
    let e = ex.create(&job(7, &[])).await.expect_err("500");
    assert_eq!(e.action, "create-app");
    assert_eq!(e.class, PaasErrorClass::Transient);
    assert!(
        e.message.contains("HTTP 500 (error id 1): boom"),
        "{}",
        e.message
    );
    assert_eq!(h.count("POST", ""), 1, "create never retried");
    assert_eq!(h.count("GET", "/applications"), 1, "looked up by name");
    assert!(h.with(|m| m.apps.is_empty()));
    h.stop().await;
}

#[actix_rt::test]
async fn create_answered_429_is_sent_again_after_the_wait_and_not_forever() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    // A rate-limited create was refused unprocessed: sending it again
    // repeats nothing, so the client waits and re-sends it.
    h.inject("create", Inject::Status(429, json!({}), Some(0)));
    let r = ex
        .create(&job(11, &[]))
        .await
        .expect("created after the 429");
    assert_eq!(r.name, "hpd-job-D3adNQYu-11");
    assert_eq!(h.count("POST", ""), 2, "one refused, one created");
    assert_eq!(h.with(|m| m.apps.len()), 1);

    // Rate limiting that does not end is returned to the caller (the
    // launcher) after a bounded number of waits.
    for _ in 0..6 {
        h.inject("create", Inject::Status(429, json!({}), Some(0)));
    }
    let e = ex.create(&job(12, &[])).await.expect_err("still 429");
    assert_eq!(e.class, PaasErrorClass::Transient);
    assert_eq!(h.count("POST", ""), 2 + 4, "three waits, then the 429");
    assert_eq!(h.with(|m| m.apps.len()), 1);
    h.stop().await;
}

#[actix_rt::test]
async fn create_that_happened_despite_the_error_is_adopted() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    h.inject("create", Inject::CreateThen(502));
    let r = ex.create(&job(8, &[])).await.expect("adopted after 502");
    assert_eq!(r.name, "hpd-job-D3adNQYu-8");
    assert_eq!(r.weight, weight_of_mem_mib(8192));

    h.inject("create", Inject::CreateThenHang);
    let r2 = ex
        .create(&job(9, &[]))
        .await
        .expect("adopted after lost answer");
    assert_eq!(r2.name, "hpd-job-D3adNQYu-9");
    assert_ne!(r2.id, r.id);
    assert_eq!(h.count("POST", ""), 2);
    h.stop().await;
}

#[actix_rt::test]
async fn lost_create_answer_with_failed_lookup_is_uncertain() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    h.inject("create", Inject::CreateThenHang);
    for _ in 0..3 {
        h.inject(
            "list",
            Inject::Status(503, json!({"message": "down"}), Some(0)),
        );
    }
    let e = ex.create(&job(10, &[])).await.expect_err("uncertain");
    assert_eq!(e.class, PaasErrorClass::Uncertain);
    assert!(e.message.contains("hpd-job-D3adNQYu-10"), "{}", e.message);
    h.stop().await;
}

#[actix_rt::test]
async fn stale_instance_version_is_refreshed_and_create_sent_again() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    // Warm the cache, then rotate the version server-side.
    ex.max_job_weight().await.expect("flavors");
    ex.create(&job(1, &[])).await.expect("first create");
    h.with(|m| m.version = "20240101".into());
    let r = ex
        .create(&job(2, &[]))
        .await
        .expect("create after rotation");
    assert_eq!(r.name, "hpd-job-D3adNQYu-2");
    assert_eq!(h.count("POST", ""), 3);
    assert_eq!(h.count("GET", "/products/instances"), 2);

    // A 400 that is not about the version is not retried.
    h.inject(
        "create",
        Inject::Status(
            400,
            json!({"id": 4099, "message": "bad zone", "type": "error"}),
            None,
        ),
    );
    let e = ex.create(&job(3, &[])).await.expect_err("400");
    assert_eq!(e.class, PaasErrorClass::Permanent);
    assert!(e.message.contains("HTTP 400 (error id 4099): bad zone"));
    assert_eq!(h.count("POST", ""), 4);
    h.stop().await;
}

#[actix_rt::test]
async fn env_failure_after_create_keeps_the_app_known_for_decommission() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    let j = job(11, &[]);
    let r = ex.create(&j).await.expect("create");
    h.inject(
        "env",
        Inject::Status(
            400,
            json!({"id": 557, "message": "Application environment is invalid", "type": "error"}),
            None,
        ),
    );
    let e = ex.prepare(&r, &j).await.expect_err("env");
    assert_eq!(e.action, "put-env");
    assert_eq!(e.class, PaasErrorClass::Permanent);
    assert!(e.message.contains("557"));
    ex.decommission(&r).await.expect("delete");
    assert!(h.with(|m| m.apps.is_empty()), "nothing leaked");
    // Deleting again: already gone is success.
    ex.decommission(&r).await.expect("delete twice");
    assert_eq!(h.count("DELETE", ""), 2);
    h.stop().await;
}

#[actix_rt::test]
async fn repository_never_ready_times_out_with_a_last_poll_at_the_deadline() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    let j = job(12, &[]);
    let r = ex.create(&j).await.expect("create");
    h.with(|m| m.fixed_repo_state = Some("CREATING".into()));
    let started = std::time::Instant::now();
    let e = ex.prepare(&r, &j).await.expect_err("timeout");
    let elapsed = started.elapsed();
    assert_eq!(e.action, "wait-git");
    assert!(
        e.message.contains("not deployable after 0.2 s"),
        "{}",
        e.message
    );
    assert!(e.message.contains("CREATING"), "{}", e.message);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    let polls = h.with(|m| m.apps.get(&r.id).map(|a| a.polls).unwrap_or(0));
    // 200 ms / 20 ms: at most 11 polls, the last one at the deadline.
    assert!((3..=11).contains(&polls), "{polls} polls");
    h.stop().await;
}

#[actix_rt::test]
async fn repository_is_polled_on_short_growing_steps_up_to_the_configured_one() {
    let h = Harness::start().await;
    let mut s = h.single();
    s.deployment_repo_wait_step = Duration::from_secs(30);
    s.deployment_repo_timeout = Duration::from_secs(300);
    let ex = h.executor(s);
    let j = job(14, &[]);
    let r = ex.create(&j).await.expect("create");
    h.with(|m| m.polls_before_created = 3);
    let started = std::time::Instant::now();
    ex.prepare(&r, &j).await.expect("prepare");
    let elapsed = started.elapsed();
    // Waits of 0.1, 0.2 and 0.4 s between the four polls, not 3 × 30 s.
    assert_eq!(h.with(|m| m.apps.get(&r.id).map(|a| a.polls)), Some(4));
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    h.stop().await;
}

#[actix_rt::test]
async fn repository_not_needed_fails_fast() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    let j = job(13, &[]);
    let r = ex.create(&j).await.expect("create");
    h.with(|m| m.fixed_repo_state = Some("NOT_NEEDED".into()));
    let e = ex.prepare(&r, &j).await.expect_err("not needed");
    assert_eq!(e.action, "wait-deployability");
    assert!(e.message.contains("NOT_NEEDED"));
    assert_eq!(h.with(|m| m.apps.get(&r.id).map(|a| a.polls)), Some(1));
    h.stop().await;
}

#[actix_rt::test]
async fn gets_are_retried_on_429_and_503_but_not_forever() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    h.inject("flavors", Inject::Status(429, json!({}), Some(0)));
    h.inject("flavors", Inject::Status(503, json!("<html>"), None));
    assert_eq!(ex.max_job_weight().await, Ok(weight_of_mem_mib(32768)));
    assert_eq!(h.count("GET", "/products/flavors"), 3);

    let h2 = Harness::start().await;
    let ex2 = h2.executor(h2.single());
    for _ in 0..5 {
        h2.inject("flavors", Inject::Status(502, json!("bad gateway"), None));
    }
    let e = ex2.max_job_weight().await.expect_err("exhausted");
    assert_eq!(e.class, PaasErrorClass::Transient);
    assert_eq!(h2.count("GET", "/products/flavors"), 3, "max_attempts");
    // A 401 on an organisation call is permanent and not retried.
    let mut bad = h2.single();
    bad.tenancy = Tenancy::Single {
        orga_id: ORGA.into(),
        token: Secret::new("wrong"),
    };
    let ex3 = h2.executor(bad);
    let e = ex3.list_resources().await.expect_err("401");
    assert_eq!(e.class, PaasErrorClass::Permanent);
    assert!(!e.message.contains("wrong"), "no token in messages");
    assert_eq!(h2.count("GET", "/applications"), 1);
    h.stop().await;
    h2.stop().await;
}

#[actix_rt::test]
async fn listing_keeps_only_this_runners_apps() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    let mine = ex.create(&job(20, &[])).await.expect("create");
    let mut other = h.single();
    other.unique_name = "someone".into();
    h.executor(other)
        .create(&job(21, &[]))
        .await
        .expect("other runner");
    let listed = ex.list_resources().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed.first().map(|r| &r.id), Some(&mine.id));
    assert_eq!(listed.first().map(|r| r.weight), Some(mine.weight));
    h.stop().await;
}

#[actix_rt::test]
async fn state_round_trip_is_python_compatible() {
    let h = Harness::start().await;
    let ex = h.executor(h.single());
    let j = job(30, &[("CI_CLEVER_CLOUD_FLAVOR", "S")]);
    let r = ex.create(&j).await.expect("create");
    let r = ex.prepare(&r, &j).await.expect("prepare");
    let saved = ex.dump_resource(&r);
    assert_eq!(
        saved,
        json!({"id": r.id, "gitlab_namespace": null, "orga_id": ORGA,
               "weight": weight_of_mem_mib(4096), "launched": false, "deploy_url": format!("http://{}/git/{}.git", h.addr, r.id),
               "name": "hpd-job-D3adNQYu-30"})
    );
    let back = ex.load_resource(&saved).await.expect("load");
    assert_eq!(back, r);

    // A record of the Python runner (no weight: the largest flavor's).
    let python = json!({"id": "app_old", "gitlab_namespace": null, "launched": true,
                        "deploy_url": "https://push.example/app_old.git"});
    let old = ex.load_resource(&python).await.expect("load python");
    assert_eq!(old.weight, weight_of_mem_mib(32768));
    assert!(old.launched);
    assert_eq!(
        ex.dump_resource(&old),
        json!({"id": "app_old", "gitlab_namespace": null, "orga_id": ORGA,
               "weight": weight_of_mem_mib(32768), "launched": true,
               "deploy_url": "https://push.example/app_old.git"})
    );
    let e = ex
        .load_resource(&json!({"weight": 2.0}))
        .await
        .expect_err("no id");
    assert_eq!(e.class, PaasErrorClass::Permanent);
    h.stop().await;
}

/// Group attributes from a table; namespaces not in it answer 404.
/// Project `n` is in the namespace `PROJECTS[n]`.
#[derive(Clone)]
struct Attrs(HashMap<String, Vec<(String, String)>>);

/// [`Attrs`] that a test changes: a group's attributes removed or restored,
/// GitLab down (every answer a 502).
struct SwitchAttrs {
    table: std::cell::RefCell<Attrs>,
    down: std::cell::Cell<bool>,
}

impl SwitchAttrs {
    /// A copy of the table now, or the 502 of a GitLab that is down.
    fn now(&self) -> Result<Attrs, CoordinatorError> {
        if self.down.get() {
            return Err(CoordinatorError::Unavailable {
                detail: "HTTP 502".into(),
                retry_after: None,
            });
        }
        Ok(self.table.borrow().clone())
    }
}

impl GroupAttributes for SwitchAttrs {
    fn group_by_path<'a>(
        &'a self,
        path: &'a str,
    ) -> PortFuture<'a, Result<GroupInfo, CoordinatorError>> {
        let now = self.now();
        Box::pin(async move { now?.group_by_path(path).await })
    }

    fn project_namespace(
        &self,
        project_id: i64,
    ) -> PortFuture<'_, Result<String, CoordinatorError>> {
        let now = self.now();
        Box::pin(async move { now?.project_namespace(project_id).await })
    }

    fn group_custom_attributes<'a>(
        &'a self,
        group_path: &'a str,
    ) -> PortFuture<'a, Result<Vec<(String, String)>, CoordinatorError>> {
        let now = self.now();
        Box::pin(async move { now?.group_custom_attributes(group_path).await })
    }
}

const PROJECTS: [&str; 4] = ["acme/sub", "half", "ghost", "beta/app"];

/// A job of project `project` (none: a payload without `job_info`).
fn project_job(id: i64, project: Option<i64>, vars: &[(&str, &str)]) -> Job {
    let mut j = job(id, vars);
    j.project_id = project;
    j
}

impl Attrs {
    /// Group ids are the ranks of the paths in sorted order.
    fn paths(&self) -> Vec<&String> {
        let mut paths: Vec<&String> = self.0.keys().collect();
        paths.sort();
        paths
    }
}

impl GroupAttributes for Attrs {
    fn group_by_path<'a>(
        &'a self,
        path: &'a str,
    ) -> PortFuture<'a, Result<GroupInfo, CoordinatorError>> {
        let answer = self
            .paths()
            .iter()
            .position(|p| *p == path)
            .map(|i| GroupInfo {
                id: i64::try_from(i).unwrap_or(-1),
                full_path: path.to_string(),
                parent_id: None,
            })
            .ok_or_else(|| CoordinatorError::Unexpected {
                detail: format!("HTTP 404 Group Not Found: {path:?}"),
            });
        Box::pin(async move { answer })
    }

    fn project_namespace(
        &self,
        project_id: i64,
    ) -> PortFuture<'_, Result<String, CoordinatorError>> {
        let answer = usize::try_from(project_id)
            .ok()
            .and_then(|i| PROJECTS.get(i))
            .map(|p| p.to_string())
            .ok_or_else(|| CoordinatorError::Unexpected {
                detail: "HTTP 404 Project Not Found".into(),
            });
        Box::pin(async move { answer })
    }

    fn group_custom_attributes<'a>(
        &'a self,
        group_path: &'a str,
    ) -> PortFuture<'a, Result<Vec<(String, String)>, CoordinatorError>> {
        let answer = group_path
            .parse::<usize>()
            .ok()
            .and_then(|i| self.paths().get(i).and_then(|p| self.0.get(*p)))
            .cloned()
            .ok_or_else(|| CoordinatorError::Unexpected {
                detail: "HTTP 404 Group Not Found".into(),
            });
        Box::pin(async move { answer })
    }
}

#[actix_rt::test]
async fn multi_tenant_uses_the_groups_organisation() {
    let h = Harness::start().await;
    h.with(|m| {
        m.tokens.insert("tok-acme".into(), "orga_acme".into());
    });
    let mut table = HashMap::new();
    table.insert(
        "acme".to_string(),
        vec![
            ("cc_orga_id".to_string(), "orga_acme".to_string()),
            ("cc_orga_token".to_string(), "tok-acme".to_string()),
        ],
    );
    table.insert(
        "half".to_string(),
        vec![("cc_orga_id".to_string(), "orga_half".to_string())],
    );
    let attrs: Rc<dyn GroupAttributes> = Rc::new(Attrs(table));
    let settings = h.settings(Tenancy::Multi {
        attributes_token: Secret::new("attributes-token"),
        orga_id_attribute: "cc_orga_id".into(),
        orga_token_attribute: "cc_orga_token".into(),
    });
    assert!(CleverExecutor::new(settings.clone(), None, logger()).is_err());
    let ex = CleverExecutor::new(settings, Some(attrs), logger()).expect("executor");

    // The variable a user may define never chooses the tenant.
    let j = project_job(40, Some(0), &[("CI_PROJECT_ROOT_NAMESPACE", "half")]);
    let r = ex.create(&j).await.expect("create in acme");
    assert!(h.count("POST", "/organisations/orga_acme/applications") == 1);
    let r = ex.prepare(&r, &j).await.expect("prepare");
    let saved = ex.dump_resource(&r);
    assert_eq!(saved["gitlab_namespace"], json!("acme"));
    assert_eq!(ex.list_resources().await.expect("list").len(), 1);

    for (project, part) in [
        (
            Some(1),
            "has no (or an empty) custom attribute \"cc_orga_token\"",
        ),
        (
            Some(2),
            "cannot read the custom attributes of GitLab group \"ghost\"",
        ),
        (Some(7), "cannot read the namespace of GitLab project 7"),
        (None, "no job_info.project_id"),
    ] {
        let vars = [("CI_PROJECT_ROOT_NAMESPACE", "acme")];
        let e = ex
            .create(&project_job(41, project, &vars))
            .await
            .expect_err("no orga");
        assert_eq!(e.action, "find-orga");
        assert_eq!(e.class, PaasErrorClass::Permanent);
        assert!(e.message.contains(part), "{}", e.message);
    }

    // A record whose organisation cannot be found now is kept, and its
    // deletion fails transiently (retried later), naming the cause.
    let orphan = json!({"id": "app_orphan", "gitlab_namespace": "ghost", "weight": 2.0,
                        "launched": true, "deploy_url": "http://x/app_orphan.git"});
    let kept = ex.load_resource(&orphan).await.expect("kept");
    let mut dumped = orphan.clone();
    dumped["orga_id"] = Value::Null;
    assert_eq!(ex.dump_resource(&kept), dumped);
    let e = ex.decommission(&kept).await.expect_err("org unknown");
    assert_eq!(e.action, "delete");
    assert_eq!(e.class, PaasErrorClass::Transient);
    assert!(e.message.contains("app_orphan") && e.message.contains("ghost"));

    let loaded = ex.load_resource(&saved).await.expect("reload");
    ex.decommission(&loaded).await.expect("delete in acme");
    assert!(h.with(|m| m.apps.is_empty()));
    h.stop().await;
}

/// A deployment repository past the fetch bounds is remembered as
/// unreadable: later reconciliation passes do not fetch it again.
#[actix_rt::test]
async fn an_oversized_repository_is_not_fetched_again() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bare = dir.path().join("app.git");
    {
        let repo = git2::Repository::init_bare(&bare).expect("bare repository");
        let big = vec![b' '; heptapod_paas_runner::git::MAX_JOB_FILE_BYTES + 1];
        let mut tree = repo.treebuilder(None).expect("treebuilder");
        let blob = repo.blob(&big).expect("blob");
        tree.insert("job.json", blob, 0o100_644).expect("insert");
        let tree = repo
            .find_tree(tree.write().expect("tree"))
            .expect("find tree");
        let sig = git2::Signature::now("t", "t@example.test").expect("signature");
        repo.commit(Some("refs/heads/master"), &sig, &sig, "x", &tree, &[])
            .expect("commit");
    }
    let url = url::Url::from_file_path(&bare)
        .expect("file URL")
        .to_string();
    h.with(|m| m.git_url = Some(url.clone()));
    let mut s = h.single();
    s.deployment_url_schemes = RemoteSchemes::NetworkAndLocalPaths;
    let ex = h.executor(s);
    let j = job(51, &[]);
    let r = ex.create(&j).await.expect("create");
    let r = ex.prepare(&r, &j).await.expect("prepare");
    let first = ex.recover_job(&r).await.expect_err("too large");
    assert_eq!(first.class, PaasErrorClass::Permanent);
    assert!(first.message.contains("more than the"), "{}", first.message);
    // Gone from disk: a new fetch would fail otherwise.
    std::fs::remove_dir_all(&bare).expect("remove");
    let again = ex.recover_job(&r).await.expect_err("remembered");
    assert_eq!(again.class, PaasErrorClass::Permanent);
    assert!(again.message.contains("more than the"), "{}", again.message);
    assert!(
        again.message.contains("not fetched again"),
        "{}",
        again.message
    );
    h.stop().await;
}

#[actix_rt::test]
async fn an_organisation_that_cannot_be_listed_is_skipped() {
    let h = Harness::start().await;
    h.with(|m| {
        m.tokens.insert("tok-acme".into(), "orga_acme".into());
        m.tokens.insert("tok-beta".into(), "orga_beta".into());
    });
    let mut table = HashMap::new();
    for (ns, orga, token) in [
        ("acme", "orga_acme", "tok-acme"),
        ("beta", "orga_beta", "tok-beta"),
    ] {
        table.insert(
            ns.to_string(),
            vec![
                ("cc_orga_id".to_string(), orga.to_string()),
                ("cc_orga_token".to_string(), token.to_string()),
            ],
        );
    }
    let attrs: Rc<dyn GroupAttributes> = Rc::new(Attrs(table));
    let settings = h.settings(Tenancy::Multi {
        attributes_token: Secret::new("attributes-token"),
        orga_id_attribute: "cc_orga_id".into(),
        orga_token_attribute: "cc_orga_token".into(),
    });
    let ex = CleverExecutor::new(settings, Some(attrs), logger()).expect("executor");
    // Projects 0 and 3 of the mock's GitLab are in groups acme and beta.
    let a = ex
        .create(&project_job(60, Some(0), &[]))
        .await
        .expect("create in acme");
    let b = ex
        .create(&project_job(61, Some(3), &[]))
        .await
        .expect("create in beta");
    assert_eq!(ex.resource_scope(&b).as_deref(), Some("orga_beta"));
    assert!(ex
        .list_resources_by_scope()
        .await
        .expect("list")
        .skipped
        .is_empty());

    // beta's token is revoked: acme is still listed, beta is skipped.
    h.with(|m| {
        m.tokens.remove("tok-beta");
    });
    let listing = ex.list_resources_by_scope().await.expect("partial listing");
    // (This mock lists every app in every organisation.)
    assert!(listing.resources.iter().any(|r| r.id == a.id));
    assert_eq!(listing.skipped, vec!["orga_beta".to_owned()]);
    // The strict listing still fails as a whole.
    let e = ex.list_resources().await.expect_err("strict");
    assert_eq!(e.class, PaasErrorClass::Permanent);
    h.stop().await;
}

#[actix_rt::test]
async fn a_tenant_that_cannot_be_resolved_is_skipped_and_tried_again_at_every_listing() {
    let h = Harness::start().await;
    h.with(|m| {
        m.tokens.insert("tok-acme".into(), "orga_acme".into());
        m.tokens.insert("tok-beta".into(), "orga_beta".into());
    });
    let mut table = HashMap::new();
    for (ns, orga, token) in [
        ("acme", "orga_acme", "tok-acme"),
        ("beta", "orga_beta", "tok-beta"),
    ] {
        table.insert(
            ns.to_string(),
            vec![
                ("cc_orga_id".to_string(), orga.to_string()),
                ("cc_orga_token".to_string(), token.to_string()),
            ],
        );
    }
    let switch = Rc::new(SwitchAttrs {
        table: std::cell::RefCell::new(Attrs(table)),
        down: std::cell::Cell::new(false),
    });
    let multi = || {
        h.settings(Tenancy::Multi {
            attributes_token: Secret::new("attributes-token"),
            orga_id_attribute: "cc_orga_id".into(),
            orga_token_attribute: "cc_orga_token".into(),
        })
    };
    let first = CleverExecutor::new(multi(), Some(switch.clone()), logger()).expect("executor");
    let acme_job = project_job(70, Some(0), &[]);
    let a = first.create(&acme_job).await.expect("create in acme");
    let b = first
        .create(&project_job(71, Some(3), &[]))
        .await
        .expect("create in beta");
    let (saved_a, saved_b) = (first.dump_resource(&a), first.dump_resource(&b));

    // A restart with beta's attributes removed: both records load.
    let beta = switch.table.borrow_mut().0.remove("beta").expect("beta");
    let ex = CleverExecutor::new(multi(), Some(switch.clone()), logger()).expect("executor");
    ex.load_resource(&saved_a).await.expect("acme record");
    ex.load_resource(&saved_b).await.expect("beta record");
    for _pass in 0..2 {
        // Every pass lists acme and skips beta, naming it as unresolved
        // for a reason that needs someone to act.
        let listing = ex.list_resources_by_scope().await.expect("partial listing");
        assert!(
            listing.resources.iter().any(|r| r.id == a.id),
            "{listing:?}"
        );
        assert_eq!(listing.skipped, vec!["orga_beta".to_owned()]);
        assert_eq!(listing.unresolved, vec!["beta".to_owned()]);
    }
    // The strict listing fails as a whole; acme's job still finds its app.
    let e = ex.list_resources().await.expect_err("strict");
    assert!(e.message.contains("unknown now"), "{e}");
    let found = ex
        .find_resource(&acme_job, &a.name)
        .await
        .expect("look-up in acme only");
    assert_eq!(found.map(|r| r.id), Some(a.id.clone()));

    // GitLab down: beta is skipped as transient, not counted as unresolved.
    switch.down.set(true);
    let listing = ex.list_resources_by_scope().await.expect("partial listing");
    assert_eq!(listing.skipped, vec!["orga_beta".to_owned()]);
    assert!(listing.unresolved.is_empty(), "{listing:?}");
    switch.down.set(false);

    // The attributes restored: the next listing covers beta again.
    switch.table.borrow_mut().0.insert("beta".into(), beta);
    let listing = ex.list_resources_by_scope().await.expect("full listing");
    assert!(listing.skipped.is_empty(), "{listing:?}");
    assert!(listing.unresolved.is_empty(), "{listing:?}");
    assert!(
        listing.resources.iter().any(|r| r.id == b.id),
        "{listing:?}"
    );
    assert!(ex.list_resources().await.is_ok());
    h.stop().await;
}

/// An empty bare repository in `dir`, given as every app's deployment
/// URL: its path and its `file:` URL.
fn bare_deployment_repository(h: &Harness, dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let bare = dir.join("app.git");
    git2::Repository::init_bare(&bare).expect("bare repository");
    let url = url::Url::from_file_path(&bare)
        .expect("file URL")
        .to_string();
    h.with(|m| m.git_url = Some(url.clone()));
    (bare, url)
}

#[actix_rt::test]
async fn launch_pushes_once_then_reports_already_launched() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (bare, url) = bare_deployment_repository(&h, dir.path());
    let mut s = h.single();
    s.inner_runner_toml = "[[runners]]\nname = \"inner\"\nexecutor = \"docker\"\n".into();
    s.deployment_url_schemes = RemoteSchemes::NetworkAndLocalPaths;
    let ex = h.executor(s);
    let j = job(50, &[]);
    let r = ex.create(&j).await.expect("create");
    let r = ex.prepare(&r, &j).await.expect("prepare");
    assert_eq!(r.detail["deploy_url"], json!(url));
    let launched = ex.launch(&r, &j).await.expect("launch");
    assert!(launched.launched);
    let repo = git2::Repository::open_bare(&bare).expect("open");
    let master = repo
        .find_reference("refs/heads/master")
        .expect("master pushed");
    let tree = master.peel_to_tree().expect("tree");
    let mut names: Vec<String> = tree
        .iter()
        .filter_map(|e| e.name().ok().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, ["Dockerfile", "job.json", "runner.toml"]);
    let first = master.target();
    // Again (a restart after the push): master exists, nothing pushed.
    let again = ex.launch(&r, &j).await.expect("already launched");
    assert!(again.launched);
    let repo = git2::Repository::open_bare(&bare).expect("open");
    assert_eq!(
        repo.find_reference("refs/heads/master")
            .expect("master")
            .target(),
        first
    );
    h.stop().await;
}

/// A Clever API answering a local path as an application's deployment
/// URL gets nothing pushed there nor read from there: the executor's
/// settings (what the configuration builds) accept network URLs only.
#[actix_rt::test]
async fn a_local_path_as_deployment_url_is_refused() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (bare, _url) = bare_deployment_repository(&h, dir.path());
    let s = h.single();
    assert_eq!(s.deployment_url_schemes, RemoteSchemes::Network);
    let ex = h.executor(s);
    let j = job(52, &[]);
    let r = ex.create(&j).await.expect("create");
    let r = ex.prepare(&r, &j).await.expect("prepare");
    let e = ex.launch(&r, &j).await.expect_err("refused");
    assert_eq!(e.class, PaasErrorClass::Permanent, "{}", e.message);
    assert!(e.message.contains("local path"), "{}", e.message);
    let e = ex.recover_job(&r).await.expect_err("refused");
    assert!(e.message.contains("local path"), "{}", e.message);
    let repo = git2::Repository::open_bare(&bare).expect("open");
    assert!(
        repo.find_reference("refs/heads/master").is_err(),
        "nothing pushed"
    );
    h.stop().await;
}
