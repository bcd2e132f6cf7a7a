//! The clever-service-docker executor against paas-sim: service
//! applications created without `instanceLifetime`, each with its own
//! helper listening on 127.0.0.1 (its `vhosts` fqdn), real HTTP and a real
//! `git http-backend`; and the helper client against a hostile helper
//! (huge bodies, wrong JSON, redirects, slow answers, echoed tokens).
//!
//! Every test against the sim checks at the end that its checker found no
//! violation and, where the test cleans up, that no application leaked.

use heptapod_paas_runner::config;
use heptapod_paas_runner::executors::clever::service::{HelperClient, HelperError, LaunchRequest};
use heptapod_paas_runner::executors::clever::{
    CleverServiceExecutor, CleverSettings, HttpSettings, RetryPolicy,
};
use heptapod_paas_runner::gitlab::{CoordinatorSettings, GitlabCoordinator};
use heptapod_paas_runner::secret::Secret;
use paas_actors::ports::{Coordinator, Job, Paas, PaasErrorClass, PollKind, Resource};
use paas_sim::clever::config::{DEFAULT_HELPER_IMAGE, DEFAULT_ORG, DEFAULT_TOKEN};
use paas_sim::clever::{
    CleverHandle, CleverSimConfig, FakeClever, HelperFaultCommand, HelperRoute, Timing,
};
use paas_sim::coordinator::{
    CoordinatorConfig, CoordinatorHandle, FakeCoordinator, JobSpec, JobState,
};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const RUNNER_TOKEN: &str = "glrt-serviceRunnerToken01";
/// Longest any wait of these tests lasts.
const WAIT: Duration = Duration::from_secs(30);

struct World {
    clever: CleverHandle,
    coord: CoordinatorHandle,
}

impl World {
    fn start(boot: Duration) -> World {
        let clever = FakeClever::start(CleverSimConfig {
            timing: Timing {
                helper_boot_delay: boot,
                ..Timing::default()
            },
            ..CleverSimConfig::default()
        })
        .expect("fake clever");
        let coord = FakeCoordinator::start(CoordinatorConfig {
            runner_tokens: vec![RUNNER_TOKEN.to_string()],
            ..CoordinatorConfig::default()
        })
        .expect("fake coordinator");
        World { clever, coord }
    }

    /// Settings as the wiring builds them, from a configuration file with
    /// `extra` lines in the section.
    fn settings(&self, extra: &str) -> CleverSettings {
        let text = format!(
            r#"
[quota_computation]
reference_runner = "svc"
reference_flavor = "M"
reference_jobs_count = 4
[[runners]]
name = "svc"
url = "{}"
token = "{RUNNER_TOKEN}"
executor = "clever-service-docker"
cc_api_url = "{}"
cc_orga_id = "{DEFAULT_ORG}"
cc_token = "{DEFAULT_TOKEN}"
cc_deployment_repo_timeout = 2
cc_deployment_repo_wait_step = 0.02
{extra}
[runners.cc_extra_env]
CC_ENABLE_HEPTAPOD_RUNNER = "true"
[runners.docker]
image = "debian:bookworm"
"#,
            self.coord.url(),
            self.clever.api_url()
        );
        let loaded = config::parse_str(&text, Path::new("test.toml")).expect("valid config");
        let runner = loaded.config.runners.first().expect("one runner");
        let mut s = runner.clever.clone().expect("clever runner");
        s.push_timeout = Duration::from_secs(30);
        s.http = HttpSettings {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
            },
        };
        s
    }

    fn executor(&self, extra: &str) -> CleverServiceExecutor {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        CleverServiceExecutor::new(self.settings(extra), None, logger).expect("executor")
    }

    /// Enqueues a job and acquires it as the runner does.
    async fn acquire(&self, spec: JobSpec) -> Job {
        self.coord.control().enqueue_job(spec);
        let client = GitlabCoordinator::new(CoordinatorSettings::new(
            self.coord.url(),
            Secret::new(RUNNER_TOKEN),
        ))
        .expect("gitlab client");
        client
            .request_job(PollKind::Short)
            .await
            .expect("jobs/request")
            .expect("a job is handed out")
    }

    async fn wait_status(&self, id: i64, state: JobState) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.coord.control().job_status(id) == Some(state) {
                return true;
            }
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    fn helper_calls(&self, route: HelperRoute, status: u16) -> u64 {
        self.clever.control().helper_call_count(route, Some(status))
    }

    fn assert_clean(&self) {
        let violations = self.clever.control().violations();
        assert!(violations.is_empty(), "sim violations: {violations:#?}");
        let summary = self.clever.control().summary();
        assert!(summary.leaks.is_empty(), "leaked: {:#?}", summary.leaks);
    }
}

async fn provision(ex: &CleverServiceExecutor, job: &Job) -> Resource {
    let r = ex.create(job).await.expect("create");
    let prepared = ex.prepare(&r, job).await.expect("prepare");
    ex.wait_ready(&prepared, job).await.expect("ready");
    prepared
}

#[actix_rt::test]
async fn a_job_runs_on_a_new_service_application_then_another_reuses_it() {
    let w = World::start(Duration::ZERO);
    let ex = w.executor("");
    assert!(ex.started_at_launch());
    let first = w.acquire(JobSpec::new("first").flavor("S")).await;
    assert_eq!(
        ex.job_scope(&first).await.expect("scope").as_deref(),
        Some(DEFAULT_ORG)
    );
    let created = ex.create(&first).await.expect("create");
    let token = created.credential.clone().expect("a helper token");
    assert_eq!(token.expose().len(), 40);
    assert!(token.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(ex.resource_scope(&created).as_deref(), Some(DEFAULT_ORG));
    // The service application: no instanceLifetime, its own listener as vhost,
    // recorded as the helper's address.
    let apps = w.clever.control().apps();
    assert_eq!(apps.iter().map(|a| a.service).collect::<Vec<_>>(), [true]);
    let addr = w.clever.control().helper_addr(&created.id).expect("helper");
    assert_eq!(created.detail["netloc"], json!(addr.to_string()));
    // The token is in no log-facing form of the resource.
    assert!(!format!("{created:?}").contains(token.expose()));
    assert!(!created.detail.to_string().contains(token.expose()));

    let prepared = ex.prepare(&created, &first).await.expect("prepare");
    assert!(!prepared.launched);
    ex.wait_ready(&prepared, &first).await.expect("ready");
    let tree = w.clever.control().pushed_tree(&created.id).expect("pushed");
    assert_eq!(tree.files, ["Dockerfile"]);
    assert_eq!(
        tree.dockerfile.as_deref(),
        Some(
            format!(
                "FROM {DEFAULT_HELPER_IMAGE}\n\
                 CMD [\"--http1\", \"--listen-address\", \"0.0.0.0:8080\"]\n"
            )
            .as_str()
        )
    );
    let env = w.clever.control().app_env(&created.id).expect("env");
    assert_eq!(
        env.get("HEPTAPOD_PAAS_RUNNER_TOKEN").map(String::as_str),
        Some(token.expose())
    );
    assert_eq!(
        env.get("CC_MOUNT_DOCKER_SOCKET").map(String::as_str),
        Some("true")
    );
    assert!(w.helper_calls(HelperRoute::CanTakeJob, 200) >= 1);

    let launched = ex.launch(&prepared, &first).await.expect("launch");
    assert!(launched.launched);
    assert!(
        w.wait_status(first.id, JobState::Success).await,
        "{:?}",
        w.clever.control().helper_jobs()
    );

    // The same application takes the next job once its helper is idle.
    let second = w.acquire(JobSpec::new("second").flavor("S")).await;
    let reused = ex
        .prepare_reuse(&launched, &second)
        .await
        .expect("reusable");
    ex.launch(&reused, &second).await.expect("second launch");
    assert!(w.wait_status(second.id, JobState::Success).await);
    let jobs: Vec<(i64, bool)> = w
        .clever
        .control()
        .helper_jobs()
        .iter()
        .map(|j| (j.job_id, j.reused))
        .collect();
    assert_eq!(jobs, [(first.id, false), (second.id, true)]);
    assert_eq!(w.helper_calls(HelperRoute::LaunchJob, 201), 2);
    assert_eq!(w.clever.control().summary().apps_created, 1);

    ex.decommission(&launched).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn the_state_record_holds_the_helper_token_and_address_as_1_1_writes_them() {
    let w = World::start(Duration::ZERO);
    let ex = w.executor("");
    let job = w.acquire(JobSpec::new("j")).await;
    let r = provision(&ex, &job).await;
    let saved = ex.dump_resource(&r);
    for key in [
        "id",
        "gitlab_namespace",
        "weight",
        "launched",
        "netloc",
        "paas_token",
        "deploy_url",
    ] {
        assert!(saved.get(key).is_some(), "{key} missing from {saved}");
    }
    assert_eq!(
        saved["paas_token"].as_str(),
        r.credential.as_ref().map(Secret::expose)
    );
    let loaded = ex.load_resource(&saved).await.expect("load");
    assert_eq!(loaded, r);

    // A 1.1.1 record: its own address rule and token.
    let record = json!({"id": "app_0b1c2d3e-1111-2222-3333-444455556666",
        "gitlab_namespace": null, "weight": 5.66, "launched": true,
        "netloc": "app-0b1c2d3e-1111-2222-3333-444455556666.cleverapps.io",
        "paas_token": "A".repeat(40), "deploy_url": "https://push.example/app.git"});
    let loaded = ex.load_resource(&record).await.expect("load 1.1.1");
    assert_eq!(
        loaded.credential.as_ref().map(Secret::expose),
        Some("A".repeat(40).as_str())
    );
    assert_eq!(
        loaded.detail["netloc"],
        json!("app-0b1c2d3e-1111-2222-3333-444455556666.cleverapps.io")
    );
    assert!(loaded.launched);
    // An unknown service application has no job to read back.
    assert_eq!(ex.recover_job(&r).await.expect("recover"), None);
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn a_helper_not_ready_at_first_is_waited_for() {
    let w = World::start(Duration::from_millis(1500));
    let ex = w.executor("");
    let job = w.acquire(JobSpec::new("slow boot")).await;
    let created = ex.create(&job).await.expect("create");
    let began = Instant::now();
    let prepared = ex.prepare(&created, &job).await.expect("prepare");
    ex.wait_ready(&prepared, &job).await.expect("ready");
    assert!(began.elapsed() >= Duration::from_millis(1400));
    let answers: Vec<Option<bool>> = w
        .clever
        .control()
        .helper_calls()
        .iter()
        .filter(|c| c.route == HelperRoute::CanTakeJob)
        .map(|c| c.answer)
        .collect();
    assert_eq!(answers.first(), Some(&Some(false)), "{answers:?}");
    assert_eq!(answers.last(), Some(&Some(true)), "{answers:?}");
    // Waits grow: far fewer asks than one per 0.1 s.
    assert!(answers.len() <= 8, "{answers:?}");
    ex.launch(&prepared, &job).await.expect("launch");
    assert!(w.wait_status(job.id, JobState::Success).await);
    ex.decommission(&prepared).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn a_helper_never_ready_fails_the_readiness_wait_at_the_timeout() {
    let w = World::start(Duration::ZERO);
    let ex = w.executor("cc_service_ready_timeout = 1");
    w.clever
        .control()
        .helper_fault(HelperFaultCommand::NeverReady { count: 1 });
    let job = w.acquire(JobSpec::new("never")).await;
    let created = ex.create(&job).await.expect("create");
    let prepared = ex.prepare(&created, &job).await.expect("prepare");
    let began = Instant::now();
    let e = ex
        .wait_ready(&prepared, &job)
        .await
        .expect_err("never ready");
    let took = began.elapsed();
    assert_eq!(e.class, PaasErrorClass::Permanent);
    assert_eq!(e.action, "wait-helper");
    assert!(
        e.message.contains(&created.id) && e.message.contains("within 1 s"),
        "{}",
        e.message
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(w.helper_calls(HelperRoute::LaunchJob, 201), 0);
    ex.decommission(&created).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn a_503_is_sent_again_after_its_retry_after_a_second_one_fails() {
    let w = World::start(Duration::ZERO);
    let ex = w.executor("");
    let job = w.acquire(JobSpec::new("busy once")).await;
    let r = provision(&ex, &job).await;
    w.clever
        .control()
        .helper_fault(HelperFaultCommand::RefuseLaunch {
            count: 1,
            retry_after_s: Some(1),
        });
    let began = Instant::now();
    ex.launch(&r, &job)
        .await
        .expect("launched at the second try");
    assert!(began.elapsed() >= Duration::from_millis(950));
    assert_eq!(w.helper_calls(HelperRoute::LaunchJob, 503), 1);
    assert_eq!(w.helper_calls(HelperRoute::LaunchJob, 201), 1);
    assert!(w.wait_status(job.id, JobState::Success).await);

    let job = w.acquire(JobSpec::new("busy twice")).await;
    let reused = ex.prepare_reuse(&r, &job).await.expect("idle again");
    w.clever
        .control()
        .helper_fault(HelperFaultCommand::RefuseLaunch {
            count: 2,
            retry_after_s: Some(0),
        });
    let e = ex.launch(&reused, &job).await.expect_err("503 twice");
    assert_eq!(e.class, PaasErrorClass::Permanent);
    assert!(e.message.contains("503"), "{}", e.message);
    assert_eq!(w.helper_calls(HelperRoute::LaunchJob, 503), 3);
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn the_helper_refuses_a_wrong_token_and_a_dead_one_is_not_reused() {
    let w = World::start(Duration::ZERO);
    let ex = w.executor("");
    let job = w.acquire(JobSpec::new("j")).await;
    let r = provision(&ex, &job).await;
    let mut forged = r.clone();
    forged.credential = Some(Secret::new("B".repeat(40)));
    let e = ex.launch(&forged, &job).await.expect_err("401");
    assert_eq!(e.class, PaasErrorClass::Permanent);
    assert!(e.message.contains("HTTP 401"), "{}", e.message);
    assert!(!e.message.contains(&"B".repeat(40)), "{}", e.message);
    assert_eq!(w.helper_calls(HelperRoute::LaunchJob, 401), 1);

    // A helper that died on standby: not ready within 10 s, never launched on.
    assert!(w.clever.control().kill_helper(&r.id));
    let began = Instant::now();
    let e = ex.prepare_reuse(&r, &job).await.expect_err("dead helper");
    let took = began.elapsed();
    assert_eq!(e.action, "reuse");
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(15),
        "{took:?}"
    );
    ex.decommission(&r).await.expect("delete");
    let violations = w.clever.control().violations();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(w.clever.control().summary().leaks.is_empty());
}

// --------------------------------------------------------------- hostile helper

mod hostile {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A helper that answers badly, on 127.0.0.1: one behaviour per path
    /// prefix. `hits` counts the calls of `/ok/…`.
    pub struct Hostile {
        pub addr: SocketAddr,
        pub hits: Arc<AtomicUsize>,
        handle: actix_web::dev::ServerHandle,
    }

    impl Hostile {
        pub fn base(&self, prefix: &str) -> String {
            format!("http://{}/{prefix}", self.addr)
        }

        pub fn ok_hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        pub async fn stop(self) {
            self.handle.stop(false).await;
        }
    }

    pub fn start() -> Hostile {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let server = HttpServer::new(move || {
            let counted = counted.clone();
            App::new()
                .route(
                    "/huge/can-take-job",
                    web::get().to(|| async { HttpResponse::Ok().body(vec![b' '; 4 << 20]) }),
                )
                .route(
                    "/stream/can-take-job",
                    web::get().to(|| async {
                        let chunks = (0..4096).map(|_| {
                            Ok::<_, actix_web::Error>(web::Bytes::from_static(&[b' '; 1024]))
                        });
                        HttpResponse::Ok().streaming(futures_util::stream::iter(chunks))
                    }),
                )
                .route(
                    "/wrong/can-take-job",
                    web::get().to(|| async { HttpResponse::Ok().body("yes") }),
                )
                .route(
                    "/redirect/can-take-job",
                    web::get().to(|| async {
                        HttpResponse::Found()
                            .insert_header(("Location", "/ok/can-take-job"))
                            .finish()
                    }),
                )
                .route(
                    "/ok/can-take-job",
                    web::get().to(move || {
                        counted.fetch_add(1, Ordering::SeqCst);
                        async { HttpResponse::Ok().body("true") }
                    }),
                )
                .route(
                    "/echo/launch-job",
                    web::post().to(|req: HttpRequest| async move {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        HttpResponse::InternalServerError().body(format!("denied for {auth}"))
                    }),
                )
                .route(
                    "/slow/launch-job",
                    web::post().to(|| async {
                        actix_rt::time::sleep(Duration::from_secs(20)).await;
                        HttpResponse::Created().finish()
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind 127.0.0.1");
        let addr = *server.addrs().first().expect("an address");
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Hostile { addr, hits, handle }
    }
}

fn hostile_client() -> HelperClient {
    HelperClient::new(HttpSettings {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        retry: RetryPolicy::default(),
    })
}

fn launch_body() -> LaunchRequest {
    LaunchRequest {
        job_id: 7,
        runner_name: "r".into(),
        specification: "{\"id\":7}".into(),
        config: "[[runners]]\n".into(),
    }
}

#[actix_rt::test]
async fn hostile_helper_answers_are_bounded_and_never_followed() {
    let h = hostile::start();
    let c = hostile_client();
    let token = Secret::new("T0kenT0kenT0kenT0kenT0kenT0kenT0kenT0ken");
    let limit = Duration::from_secs(2);
    for prefix in ["huge", "stream"] {
        let e = c
            .can_take_job(&h.base(prefix), &token, limit)
            .await
            .expect_err(prefix);
        assert!(
            matches!(&e, HelperError::Answer { detail, .. } if detail.contains("over 1024 bytes")),
            "{prefix}: {e}"
        );
    }
    let e = c
        .can_take_job(&h.base("wrong"), &token, limit)
        .await
        .expect_err("wrong JSON");
    assert!(e.to_string().contains("not the JSON true or false"), "{e}");
    let e = c
        .can_take_job(&h.base("redirect"), &token, limit)
        .await
        .expect_err("redirect");
    assert!(e.to_string().contains("redirect (HTTP 302)"), "{e}");
    assert_eq!(h.ok_hits(), 0, "the redirect was followed");
    assert!(c
        .can_take_job(&h.base("ok"), &token, limit)
        .await
        .expect("true"));
    assert_eq!(h.ok_hits(), 1);

    // A refusal echoing the token: masked in the error.
    let e = c
        .launch_job(&h.base("echo"), &token, &launch_body())
        .await
        .expect_err("500");
    let text = e.to_string();
    assert!(
        text.contains("HTTP 500") && text.contains("[MASKED]"),
        "{text}"
    );
    assert!(!text.contains(token.expose()), "{text}");
    assert_eq!(
        e.to_paas_error("launch-job").class,
        PaasErrorClass::Permanent
    );

    // No answer in time: maybe launched, never sent again.
    let began = Instant::now();
    let e = c
        .launch_job(&h.base("slow"), &token, &launch_body())
        .await
        .expect_err("timeout");
    assert!(began.elapsed() < Duration::from_secs(5));
    assert!(matches!(e, HelperError::Lost { .. }), "{e}");
    assert_eq!(
        e.to_paas_error("launch-job").class,
        PaasErrorClass::Uncertain
    );
    h.stop().await;

    // Nobody listening: nothing was sent, worth sending again.
    let e = c
        .launch_job(&h_base_closed(), &token, &launch_body())
        .await
        .expect_err("refused");
    assert!(matches!(e, HelperError::Unreachable { .. }), "{e}");
    assert_eq!(
        e.to_paas_error("launch-job").class,
        PaasErrorClass::Transient
    );
}

/// The base URL of a port nobody listens on (bound then closed).
fn h_base_closed() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}
