//! The fake Clever Cloud API over HTTP: products, auth failures, create validation, the
//! repoState transition, get/list/env/delete with their error paths, the ledger, faults and
//! the `/__sim/` control API.

use crate::clever_support;

use std::time::Duration;

use clever_support::*;
use paas_sim::clever::{
    weight_of_mem_mib, CleverSimConfig, Endpoint, FaultCommand, FaultKind, RepoDelay, Timing,
};
use serde_json::{json, Value};

#[actix_rt::test]
async fn products_need_no_auth_and_follow_the_tables() {
    let h = start(config());
    let c = client();
    let (status, instances) = call(
        &c,
        "GET",
        &format!("{}/products/instances", h.api_url()),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let list = instances.as_array().cloned().unwrap_or_default();
    assert!(list.len() >= 2, "{instances}");
    assert_ne!(
        list.first().map(|i| i["name"].clone()),
        Some(json!("Docker")),
        "Docker must not be first"
    );
    let docker: Vec<&Value> = list.iter().filter(|i| i["name"] == "Docker").collect();
    assert_eq!(docker.len(), 1);
    assert_eq!(
        docker.first().map(|d| d["version"].clone()),
        Some(json!("20231106"))
    );
    assert_eq!(
        docker.first().map(|d| d["type"].clone()),
        Some(json!("docker"))
    );

    let (status, flavors) = call(
        &c,
        "GET",
        &format!("{}/products/flavors?context=heptapod-runner", h.api_url()),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let table = CleverSimConfig::default().flavors;
    let served = flavors.as_array().cloned().unwrap_or_default();
    assert_eq!(served.len(), table.len());
    for (f, spec) in served.iter().zip(&table) {
        assert_eq!(f["name"], json!(spec.name));
        assert_eq!(f["mem"], json!(spec.mem));
        assert_eq!(f["available"], json!(spec.available));
        assert_eq!(f["memory"]["value"], json!(spec.mem * 1024 * 1024));
    }
    assert!(served.iter().any(|f| f["available"] == false));
    assert!(served.iter().any(|f| !f["name"]
        .as_str()
        .unwrap_or("")
        .starts_with("heptapod-runner-")));

    let (_, std) = call(
        &c,
        "GET",
        &format!("{}/products/flavors", h.api_url()),
        None,
        None,
    )
    .await;
    assert!(std
        .as_array()
        .is_some_and(|a| a.iter().any(|f| f["name"] == "pico")));
    let (_, none) = call(
        &c,
        "GET",
        &format!("{}/products/flavors?context=nope", h.api_url()),
        None,
        None,
    )
    .await;
    assert_eq!(none, json!([]));
    h.shutdown();
}

fn assert_error(body: &Value, id: i64) {
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["id"], id, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[actix_rt::test]
async fn organisation_endpoints_check_the_token_per_org() {
    let h = start(config());
    let c = client();
    let url = format!("{}/organisations/{ORG}/applications", h.api_url());
    let (status, body) = call(&c, "GET", &url, None, None).await;
    assert_eq!(status, 401);
    assert_error(&body, 9001);
    let (status, body) = call(&c, "GET", &url, Some("nope"), None).await;
    assert_eq!(status, 401);
    assert_error(&body, 9002);
    let (status, body) = call(&c, "GET", &url, Some(OTHER_TOKEN), None).await;
    assert_eq!(status, 403);
    assert_error(&body, 4002);
    let resp = c
        .get(&url)
        .insert_header(("Authorization", format!("Bearer {TOKEN}")))
        .send()
        .await;
    assert_eq!(resp.map(|r| r.status().as_u16()).ok(), Some(401));
    // create is refused too, and nothing is created
    let (status, _) = call(
        &c,
        "POST",
        &url,
        Some(OTHER_TOKEN),
        Some(&create_body("x", "heptapod-runner-S")),
    )
    .await;
    assert_eq!(status, 403);
    let (status, list) = call(&c, "GET", &url, Some(TOKEN), None).await;
    assert_eq!((status, list), (200, json!([])));
    assert_eq!(h.control().summary().apps_created, 0);
    h.shutdown();
}

#[actix_rt::test]
async fn create_answers_the_full_application_and_validates() {
    let h = start(config());
    let c = client();
    let url = format!("{}/organisations/{ORG}/applications", h.api_url());
    let app = create_app(&h, "hpd-job-abcdefgh-42", "heptapod-runner-M").await;
    let id = app["id"].as_str().unwrap_or_default().to_owned();
    assert!(id.starts_with("app_"), "{app}");
    assert_eq!(app["ownerId"], ORG);
    assert_eq!(app["zone"], "par");
    assert_eq!(app["name"], "hpd-job-abcdefgh-42");
    assert_eq!(app["state"], "SHOULD_BE_DOWN");
    assert_eq!(app["instance"]["lifetime"], "TASK");
    assert_eq!(app["instance"]["maxFlavor"]["name"], "heptapod-runner-M");
    assert_eq!(app["instance"]["maxFlavor"]["mem"], 8192);
    assert_eq!(
        app["deployment"]["httpUrl"],
        format!("{}/{id}.git", h.git_base_url())
    );
    assert!(app["deployment"]["repoState"].is_string());

    let cases = [
        ("instanceVersion", json!("20200101"), 5003),
        ("maxFlavor", json!("heptapod-runner-4XL"), 5006),
        ("maxFlavor", json!("M"), 5006),
        ("zone", json!("atlantis"), 5007),
        (
            "instanceVariant",
            json!("00000000-0000-0000-0000-000000000000"),
            5005,
        ),
        ("extra", json!(1), 5002),
    ];
    for (key, value, id) in cases {
        let mut body = create_body("x", "heptapod-runner-S");
        body[key] = value;
        let (status, err) = call(&c, "POST", &url, Some(TOKEN), Some(&body)).await;
        assert_eq!(status, 400, "{key}");
        assert_error(&err, id);
    }
    let resp = c
        .post(&url)
        .insert_header(("Authorization", format!("token {TOKEN}")))
        .insert_header(("Content-Type", "application/json"))
        .send_body("{not json")
        .await;
    assert_eq!(resp.map(|r| r.status().as_u16()).ok(), Some(400));

    // a version rotation makes the old version stale
    h.control().set_docker_version("20991231");
    let (status, err) = call(
        &c,
        "POST",
        &url,
        Some(TOKEN),
        Some(&create_body("x", "heptapod-runner-S")),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&err, 5003);
    assert_eq!(h.control().summary().apps_created, 1);
    h.shutdown();
}

#[actix_rt::test]
async fn repo_state_goes_from_creating_to_created_after_the_delay() {
    let mut cfg = config();
    cfg.timing = Timing {
        repo_create_delay: RepoDelay::After(Duration::from_millis(300)),
        ..Timing::default()
    };
    let h = start(cfg);
    let c = client();
    let app = create_app(&h, "n", "heptapod-runner-S").await;
    assert_eq!(app["deployment"]["repoState"], "CREATING");
    let url = format!(
        "{}/organisations/{ORG}/applications/{}",
        h.api_url(),
        app["id"].as_str().unwrap_or("")
    );
    let mut seen = Vec::new();
    for _ in 0..100 {
        let (status, body) = call(&c, "GET", &url, Some(TOKEN), None).await;
        assert_eq!(status, 200);
        let state = body["deployment"]["repoState"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == "CREATED" {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, ["CREATING", "CREATED"]);

    // "never" mode
    h.control().set_timing(Timing {
        repo_create_delay: RepoDelay::Never,
        ..Timing::default()
    });
    let app = create_app(&h, "n2", "heptapod-runner-S").await;
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let url = format!(
        "{}/organisations/{ORG}/applications/{}",
        h.api_url(),
        app["id"].as_str().unwrap_or("")
    );
    let (_, body) = call(&c, "GET", &url, Some(TOKEN), None).await;
    assert_eq!(body["deployment"]["repoState"], "CREATING");
    h.shutdown();
}

#[actix_rt::test]
async fn get_list_env_and_delete_with_their_error_paths() {
    let h = start(config());
    let c = client();
    let app = create_app(&h, "hpd-job-abcdefgh-7", "heptapod-runner-S").await;
    let id = app["id"].as_str().unwrap_or_default().to_owned();
    let base = format!("{}/organisations/{ORG}/applications", h.api_url());
    let app_url = format!("{base}/{id}");

    let (status, got) = call(&c, "GET", &app_url, Some(TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(got["id"], id.as_str());

    // unknown app
    let (status, err) = call(
        &c,
        "GET",
        &format!("{base}/app_00000000-0000-4000-8000-000000000000"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&err, 4004);
    // the app seen through another org (token allowed on both) is unknown there
    h.control().seed_org(&paas_sim::clever::OrgSeed {
        id: OTHER_ORG.to_owned(),
        tokens: vec![TOKEN.to_owned()],
    });
    let (status, err) = call(
        &c,
        "GET",
        &format!(
            "{}/organisations/{OTHER_ORG}/applications/{id}",
            h.api_url()
        ),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&err, 4004);

    // env replace + read back
    let env = json!({"CC_MOUNT_DOCKER_SOCKET": "true", "CC_ENABLE_HEPTAPOD_RUNNER": "true"});
    let (status, body) = call(
        &c,
        "PUT",
        &format!("{app_url}/env"),
        Some(TOKEN),
        Some(&env),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], id.as_str());
    let (status, body) = call(
        &c,
        "PUT",
        &format!("{app_url}/env"),
        Some(TOKEN),
        Some(&json!({"ONLY": "1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&c, "GET", &format!("{app_url}/env"), Some(TOKEN), None).await;
    assert_eq!(
        (status, body),
        (200, json!([{"name": "ONLY", "value": "1"}]))
    );
    let (status, err) = call(
        &c,
        "PUT",
        &format!("{app_url}/env"),
        Some(TOKEN),
        Some(&json!({"A": 1})),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&err, 5020);
    let (status, err) = call(
        &c,
        "PUT",
        &format!("{app_url}/env?check=true"),
        Some(TOKEN),
        Some(&json!({"1BAD": "x"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&err, 557);
    assert!(err["fields"]["1BAD"].is_string());
    env_with(&h, &id, "ONLY", "1");

    // list
    let (status, list) = call(&c, "GET", &base, Some(TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    // delete, then 404 everywhere
    let (status, body) = call(&c, "DELETE", &app_url, Some(TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["type"], "success");
    for (method, url) in [
        ("GET", app_url.clone()),
        ("DELETE", app_url.clone()),
        ("GET", format!("{app_url}/env")),
    ] {
        let (status, err) = call(&c, method, &url, Some(TOKEN), None).await;
        assert_eq!(status, 404, "{method} {url}");
        assert_error(&err, 4004);
    }
    let (status, err) = call(
        &c,
        "PUT",
        &format!("{app_url}/env"),
        Some(TOKEN),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&err, 4004);
    let (_, list) = call(&c, "GET", &base, Some(TOKEN), None).await;
    assert_eq!(list, json!([]));
    // auth is checked before existence
    let (status, _) = call(&c, "DELETE", &app_url, None, None).await;
    assert_eq!(status, 401);
    h.shutdown();
}

fn env_with(h: &paas_sim::clever::CleverHandle, id: &str, k: &str, v: &str) {
    let env = h.control().app_env(id).unwrap_or_default();
    assert_eq!(env.get(k).map(String::as_str), Some(v));
    assert_eq!(env.len(), 1, "PUT env replaces the whole set");
}

#[actix_rt::test]
async fn the_ledger_tracks_weights_leaks_and_duplicates() {
    let h = start(config());
    let c = client();
    let table = CleverSimConfig::default().flavors;
    let mem = |name: &str| table.iter().find(|f| f.name == name).map_or(0, |f| f.mem);
    let a = create_app(&h, "hpd-job-x-1", "heptapod-runner-XS").await;
    let _b = create_app(&h, "hpd-job-x-2", "heptapod-runner-3XL").await;
    let _dup = create_app(&h, "hpd-job-x-2", "heptapod-runner-3XL").await;
    let url = format!(
        "{}/organisations/{ORG}/applications/{}",
        h.api_url(),
        a["id"].as_str().unwrap_or("")
    );
    let (status, _) = call(&c, "DELETE", &url, Some(TOKEN), None).await;
    assert_eq!(status, 200);

    let s = h.control().summary();
    let w_xs = weight_of_mem_mib(mem("heptapod-runner-XS"));
    let w_3xl = weight_of_mem_mib(mem("heptapod-runner-3XL"));
    assert_eq!(
        (
            s.apps_created,
            s.apps_deleted,
            s.max_live_count,
            s.live_count
        ),
        (3, 1, 3, 2)
    );
    assert!((s.max_live_weight - (w_xs + 2.0 * w_3xl)).abs() < 1e-9);
    assert!((s.live_weight - 2.0 * w_3xl).abs() < 1e-9);
    assert_eq!(s.leaks.len(), 2);
    assert_eq!(s.duplicates.get("hpd-job-x-2").map(Vec::len), Some(2));
    assert_eq!(s.requests.get(&Endpoint::CreateApp), Some(&3));
    assert_eq!(s.requests.get(&Endpoint::DeleteApp), Some(&1));
    let apps = h.control().apps();
    assert!(apps.iter().any(|a| a.deleted_ms.is_some()));

    // the same over HTTP
    let (status, ledger) = call(&c, "GET", &format!("{}/ledger", h.sim_url()), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(ledger["apps_created"], 3);
    assert_eq!(ledger["leaks"].as_array().map(Vec::len), Some(2));
    let (_, apps) = call(&c, "GET", &format!("{}/apps", h.sim_url()), None, None).await;
    assert_eq!(apps.as_array().map(Vec::len), Some(3));
    h.shutdown();
}

#[actix_rt::test]
async fn injected_faults_hit_the_targeted_endpoint() {
    let h = start(config());
    let c = client();
    let url = format!("{}/organisations/{ORG}/applications", h.api_url());
    h.control().fault(FaultCommand::FailNext {
        endpoint: Endpoint::CreateApp,
        count: 1,
        fault: FaultKind::Status {
            status: 503,
            id: None,
            html: true,
            retry_after_s: Some(7),
        },
    });
    let resp = c
        .post(&url)
        .insert_header(("Authorization", format!("token {TOKEN}")))
        .send_json(&create_body("x", "heptapod-runner-S"))
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(
        resp.headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_eq!(h.control().summary().apps_created, 0);
    create_app(&h, "x", "heptapod-runner-S").await;

    // response lost: the app exists but the client times out
    h.control().fault(FaultCommand::FailNext {
        endpoint: Endpoint::CreateApp,
        count: 1,
        fault: FaultKind::PerformThenHang,
    });
    let short = awc::Client::builder()
        .timeout(Duration::from_millis(500))
        .finish();
    let r = short
        .post(&url)
        .insert_header(("Authorization", format!("token {TOKEN}")))
        .send_json(&create_body("lost", "heptapod-runner-S"))
        .await;
    assert!(r.is_err(), "the response should be lost");
    // the creation itself completes (maybe after the client gave up, on a loaded machine)
    let created = wait_until(Duration::from_secs(20), || {
        h.control().summary().apps_created == 2
    })
    .await;
    assert!(created);

    // a verbatim body: an app without `deployment`, then back to normal
    let app = create_app(&h, "verbatim", "heptapod-runner-S").await;
    let app_url = format!("{url}/{}", app["id"].as_str().unwrap_or(""));
    h.control().fault(FaultCommand::FailNext {
        endpoint: Endpoint::GetApp,
        count: 1,
        fault: FaultKind::Respond {
            status: 200,
            body: json!({"id": app["id"].clone()}),
        },
    });
    let (status, body) = call(&c, "GET", &app_url, Some(TOKEN), None).await;
    assert_eq!((status, body.get("deployment").is_none()), (200, true));
    let (status, body) = call(&c, "GET", &app_url, Some(TOKEN), None).await;
    assert_eq!(
        (status, body["deployment"]["repoState"].clone()),
        (200, json!("CREATED"))
    );

    // faults over HTTP: a 500 on the products listing for the next call only
    let cmd = json!({"op": "fail_next", "endpoint": "products_instances", "count": 1,
                     "fault": {"kind": "status", "status": 500}});
    let (status, _) = call(
        &c,
        "POST",
        &format!("{}/faults", h.sim_url()),
        None,
        Some(&cmd),
    )
    .await;
    assert_eq!(status, 200);
    let inst = format!("{}/products/instances", h.api_url());
    let (status, body) = call(&c, "GET", &inst, None, None).await;
    assert_eq!(status, 500);
    assert_error(&body, 500);
    assert_eq!(call(&c, "GET", &inst, None, None).await.0, 200);

    // outage window starting now
    h.control().fault(FaultCommand::Outage {
        endpoint: Endpoint::ProductsFlavors,
        start_in_ms: 0,
        duration_ms: 60_000,
        fault: FaultKind::status(502),
    });
    let fl = format!("{}/products/flavors?context=heptapod-runner", h.api_url());
    assert_eq!(call(&c, "GET", &fl, None, None).await.0, 502);
    assert_eq!(call(&c, "GET", &fl, None, None).await.0, 502);
    h.control().fault(FaultCommand::Clear);
    assert_eq!(call(&c, "GET", &fl, None, None).await.0, 200);

    // latency
    h.control().fault(FaultCommand::Latency {
        endpoint: Endpoint::ProductsFlavors,
        latency_ms: 300,
    });
    let t = std::time::Instant::now();
    assert_eq!(call(&c, "GET", &fl, None, None).await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // every call was counted, faulted or not
    assert_eq!(h.control().request_count(Endpoint::ProductsFlavors), 4);
    h.shutdown();
}

#[actix_rt::test]
async fn sim_control_over_http() {
    let h = start(config());
    let c = client();
    let (status, _) = call(
        &c,
        "PUT",
        &format!("{}/docker-version", h.sim_url()),
        None,
        Some(&json!({"version": "20250101"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, instances) = call(
        &c,
        "GET",
        &format!("{}/products/instances", h.api_url()),
        None,
        None,
    )
    .await;
    assert!(instances
        .as_array()
        .is_some_and(|a| a.iter().any(|i| i["version"] == "20250101")));
    let (status, _) = call(
        &c,
        "POST",
        &format!("{}/orgs", h.sim_url()),
        None,
        Some(&json!({"id": "orga_new", "tokens": ["t-new"]})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &c,
        "GET",
        &format!("{}/organisations/orga_new/applications", h.api_url()),
        Some("t-new"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let flavors =
        json!([{"name": "heptapod-runner-S", "mem": 4096, "cpus": 2, "available": false}]);
    let (status, _) = call(
        &c,
        "PUT",
        &format!("{}/flavors", h.sim_url()),
        None,
        Some(&flavors),
    )
    .await;
    assert_eq!(status, 200);
    let (_, served) = call(
        &c,
        "GET",
        &format!("{}/products/flavors?context=heptapod-runner", h.api_url()),
        None,
        None,
    )
    .await;
    assert_eq!(served.as_array().map(Vec::len), Some(1));
    for path in ["violations", "deployments", "requests", "curve", "faults"] {
        let (status, _) = call(&c, "GET", &format!("{}/{path}", h.sim_url()), None, None).await;
        assert_eq!(status, 200, "{path}");
    }
    h.shutdown();
}
