//! Application endpoints under `/v2/organisations/{o}/applications`: create (validating exactly
//! what the reference sends), get, list, delete, env (PUT and GET), deployments and instances.
//! An application created without `instanceLifetime` (`REGULAR`) gets its helper listener at
//! creation and loses it at deletion (see [`super::helper`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::auth::check_api;
use super::faults::Endpoint;
use super::handlers::{
    api_error, guard, hang, Guard, ERR_BAD_DEPLOY, ERR_BAD_ENV, ERR_BAD_FIELD, ERR_BAD_FLAVOR,
    ERR_BAD_INSTANCES, ERR_BAD_JSON, ERR_BAD_LIFETIME, ERR_BAD_TYPE, ERR_BAD_VARIANT, ERR_BAD_ZONE,
    ERR_EMPTY_NAME, ERR_ENV_INVALID, ERR_INTERNAL, ERR_STALE_VERSION, ERR_UNKNOWN_APP,
};
use super::helper::{self, state::Helper};
use super::ledger::AppEntry;
use super::model::{new_uuid, unix_ms, App, SharedWorld, World};
use super::products::FlavorSpec;
use super::repos;

/// Keys of a create body the fake accepts (the reference's, plus the other [OAS] fields).
const CREATE_KEYS: &[&str] = &[
    "name",
    "zone",
    "deploy",
    "instanceType",
    "instanceVersion",
    "instanceVariant",
    "instanceLifetime",
    "minInstances",
    "maxInstances",
    "minFlavor",
    "maxFlavor",
    "description",
    "shutdownable",
    "tags",
    "archived",
    "stickySessions",
    "homogeneous",
    "favourite",
    "cancelOnPush",
    "separateBuild",
    "buildFlavor",
    "oauthService",
    "oauthAppId",
    "oauthApp",
    "applianceId",
    "branch",
    "forceHttps",
    "env",
    "enabled",
];

/// The lifetime of an application created without `instanceLifetime`: a regular application
/// that stays up, a service application (with a helper listener).
pub const SERVICE_LIFETIME: &str = "REGULAR";

/// A validated create request.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    /// Name.
    pub name: String,
    /// Description (the name when absent).
    pub description: String,
    /// Zone.
    pub zone: String,
    /// Instance version.
    pub instance_version: String,
    /// Variant.
    pub variant: String,
    /// Lifetime.
    pub lifetime: String,
    /// Min instances.
    pub min_instances: u64,
    /// Max instances.
    pub max_instances: u64,
    /// Min flavor.
    pub min_flavor: FlavorSpec,
    /// Max flavor.
    pub max_flavor: FlavorSpec,
    /// Initial env.
    pub env: BTreeMap<String, String>,
}

type Invalid = (i64, String);

fn field_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, Invalid> {
    match body.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err((ERR_BAD_FIELD, format!("field `{key}` must be a string"))),
        None => Err((ERR_BAD_FIELD, format!("missing field `{key}`"))),
    }
}

fn field_u64(body: &Map<String, Value>, key: &str) -> Result<u64, Invalid> {
    match body.get(key) {
        Some(v) => v.as_u64().ok_or_else(|| {
            (
                ERR_BAD_FIELD,
                format!("field `{key}` must be a non-negative integer"),
            )
        }),
        None => Err((ERR_BAD_FIELD, format!("missing field `{key}`"))),
    }
}

fn heptapod_flavor(world: &World, key: &str, name: &str) -> Result<FlavorSpec, Invalid> {
    let prefix = format!("{}-", world.flavor_context);
    if !name.starts_with(&prefix) {
        return Err((
            ERR_BAD_FLAVOR,
            format!("{key}: {name} is not a {prefix}* flavor"),
        ));
    }
    match world.flavors.iter().find(|f| f.name == name) {
        Some(f) if f.available => Ok(f.clone()),
        Some(_) => Err((
            ERR_BAD_FLAVOR,
            format!("{key}: flavor {name} is not available"),
        )),
        None => Err((ERR_BAD_FLAVOR, format!("{key}: unknown flavor {name}"))),
    }
}

/// Validates a create body against the world (current version, flavors, variants, zones).
pub fn validate_create(body: &Value, world: &World) -> Result<CreateRequest, Invalid> {
    let Value::Object(body) = body else {
        return Err((ERR_BAD_JSON, "the body must be a JSON object".to_owned()));
    };
    if let Some(unknown) = body.keys().find(|k| !CREATE_KEYS.contains(&k.as_str())) {
        return Err((ERR_BAD_FIELD, format!("unknown field `{unknown}`")));
    }
    let name = field_str(body, "name")?;
    if name.trim().is_empty() {
        return Err((ERR_EMPTY_NAME, "the name must not be empty".to_owned()));
    }
    let zone = field_str(body, "zone")?;
    if !world.zones.iter().any(|z| z == zone) {
        return Err((ERR_BAD_ZONE, format!("unknown zone {zone}")));
    }
    if field_str(body, "deploy")? != "git" {
        return Err((ERR_BAD_DEPLOY, "deploy must be `git`".to_owned()));
    }
    let instance_type = field_str(body, "instanceType")?;
    if instance_type != "docker" {
        return Err((
            ERR_BAD_TYPE,
            format!("unsupported instanceType {instance_type}"),
        ));
    }
    let version = field_str(body, "instanceVersion")?;
    if version != world.docker_version {
        return Err((
            ERR_STALE_VERSION,
            format!("instanceVersion {version} is not a current version of docker"),
        ));
    }
    let variant = field_str(body, "instanceVariant")?;
    if !world.known_variants.iter().any(|v| v == variant) {
        return Err((
            ERR_BAD_VARIANT,
            format!("unknown instanceVariant {variant}"),
        ));
    }
    let lifetime = match body.get("instanceLifetime") {
        None => SERVICE_LIFETIME,
        Some(Value::String(s)) if ["REGULAR", "MIGRATION", "TASK"].contains(&s.as_str()) => s,
        Some(_) => {
            return Err((
                ERR_BAD_LIFETIME,
                "instanceLifetime must be REGULAR, MIGRATION or TASK".to_owned(),
            ))
        }
    };
    let min_instances = field_u64(body, "minInstances")?;
    let max_instances = field_u64(body, "maxInstances")?;
    if min_instances < 1 || min_instances > max_instances {
        return Err((
            ERR_BAD_INSTANCES,
            format!("invalid instance counts min={min_instances} max={max_instances}"),
        ));
    }
    let min_flavor = heptapod_flavor(world, "minFlavor", field_str(body, "minFlavor")?)?;
    let max_flavor = heptapod_flavor(world, "maxFlavor", field_str(body, "maxFlavor")?)?;
    if min_flavor.mem > max_flavor.mem {
        return Err((
            ERR_BAD_FLAVOR,
            "minFlavor is larger than maxFlavor".to_owned(),
        ));
    }
    let description = match body.get("description") {
        None => name.to_owned(),
        Some(Value::String(d)) => d.clone(),
        Some(_) => {
            return Err((
                ERR_BAD_FIELD,
                "field `description` must be a string".to_owned(),
            ))
        }
    };
    let env = match body.get("env") {
        None => BTreeMap::new(),
        Some(v) => parse_env(v).map_err(|m| (ERR_BAD_FIELD, m))?,
    };
    Ok(CreateRequest {
        name: name.to_owned(),
        description,
        zone: zone.to_owned(),
        instance_version: version.to_owned(),
        variant: variant.to_owned(),
        lifetime: lifetime.to_owned(),
        min_instances,
        max_instances,
        min_flavor,
        max_flavor,
        env,
    })
}

/// Parses a flat `{"NAME": "value"}` env object.
fn parse_env(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(m) = v else {
        return Err("env must be a JSON object of strings".to_owned());
    };
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(format!("env variable {k} must be a string")),
        })
        .collect()
}

/// Env names Clever accepts: letters, digits, `_`, `-` and `.`, not starting with a digit.
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn unknown_app(app: &str) -> HttpResponse {
    api_error(
        StatusCode::NOT_FOUND,
        ERR_UNKNOWN_APP,
        format!("Application not found: {app}"),
    )
}

/// `POST /v2/organisations/{o}/applications`.
pub async fn create(
    world: web::Data<SharedWorld>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let lost = match guard(&world, Endpoint::CreateApp, &req).await {
        Guard::Answer(r) => return r,
        Guard::ProceedThenHang => true,
        _ => false,
    };
    let org = path.into_inner();
    let (id, repo_path, request, latency, requested_ms) = {
        let mut w = world.lock();
        let requested_ms = w.now_ms();
        if let Err(f) = check_api(&w, &req, &org) {
            return f.response();
        }
        let parsed: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    ERR_BAD_JSON,
                    format!("invalid JSON body: {e}"),
                )
            }
        };
        let request = match validate_create(&parsed, &w) {
            Ok(r) => r,
            Err((id, message)) => return api_error(StatusCode::BAD_REQUEST, id, message),
        };
        let id = format!("app_{}", new_uuid(&mut w.rng));
        let repo_path: PathBuf = w.repo_root.join(format!("{id}.git"));
        (
            id,
            repo_path,
            request,
            w.timing.create_latency,
            requested_ms,
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Err(e) = repos::init_repo(&repo_path).await {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ERR_INTERNAL,
            format!("could not create the repository: {e}"),
        );
    }
    let helper = if request.lifetime == SERVICE_LIFETIME {
        match helper::server::open(&world, &id) {
            Ok((addr, server)) => Some(Helper::new(addr, Some(server))),
            Err(e) => {
                return api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ERR_INTERNAL,
                    format!("could not open the helper listener: {e}"),
                )
            }
        }
    } else {
        None
    };
    let body = {
        let mut w = world.lock();
        let now = std::time::Instant::now();
        let app = App {
            id: id.clone(),
            org: org.clone(),
            name: request.name,
            description: request.description,
            zone: request.zone,
            instance_version: request.instance_version,
            variant: request.variant,
            lifetime: request.lifetime,
            min_instances: request.min_instances,
            max_instances: request.max_instances,
            min_flavor: request.min_flavor,
            max_flavor: request.max_flavor,
            env: request.env,
            created: now,
            creation_unix_ms: unix_ms(),
            repo_ready_at: w.repo_ready_at(now),
            forced_repo_state: None,
            deleted: false,
            state: "SHOULD_BE_DOWN".to_owned(),
            instance_state: "NONE".to_owned(),
            deployments: Vec::new(),
            repo_path,
            last_context: None,
            helper,
        };
        let entry = AppEntry {
            id: app.id.clone(),
            name: app.name.clone(),
            org,
            flavor: app.max_flavor.name.clone(),
            weight: app.max_flavor.weight(),
            requested_ms,
            created_ms: w.now_ms(),
            deleted_ms: None,
            deployments: 0,
            service: app.helper.is_some(),
            helper_jobs: 0,
        };
        let body = app.to_json(now, &w.git_base_url);
        w.apps.insert(id, app);
        w.ledger.app_created(entry);
        body
    };
    if lost {
        return hang().await;
    }
    HttpResponse::Ok().json(body)
}

/// Runs the common prologue of calls on one application: guard, auth, lookup.
async fn prologue(
    world: &SharedWorld,
    endpoint: Endpoint,
    req: &HttpRequest,
    org: &str,
    app: &str,
) -> Result<bool, HttpResponse> {
    let lost = match guard(world, endpoint, req).await {
        Guard::Answer(r) => return Err(r),
        Guard::ProceedThenHang => true,
        _ => false,
    };
    let w = world.lock();
    check_api(&w, req, org).map_err(|f| f.response())?;
    if w.live_app(org, app).is_none() {
        return Err(unknown_app(app));
    }
    Ok(lost)
}

/// `GET /v2/organisations/{o}/applications/{app}`.
pub async fn get(
    world: web::Data<SharedWorld>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (org, app) = path.into_inner();
    if let Err(r) = prologue(&world, Endpoint::GetApp, &req, &org, &app).await {
        return r;
    }
    let w = world.lock();
    match w.live_app(&org, &app) {
        Some(a) => HttpResponse::Ok().json(a.to_json(std::time::Instant::now(), &w.git_base_url)),
        None => unknown_app(&app),
    }
}

/// `GET /v2/organisations/{o}/applications`.
pub async fn list(
    world: web::Data<SharedWorld>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    if let Guard::Answer(r) = guard(&world, Endpoint::ListApps, &req).await {
        return r;
    }
    let org = path.into_inner();
    let w = world.lock();
    if let Err(f) = check_api(&w, &req, &org) {
        return f.response();
    }
    let now = std::time::Instant::now();
    let apps: Vec<Value> = w
        .apps
        .values()
        .filter(|a| !a.deleted && a.org == org)
        .map(|a| a.to_json(now, &w.git_base_url))
        .collect();
    HttpResponse::Ok().json(apps)
}

/// `DELETE /v2/organisations/{o}/applications/{app}`: 200 Message, then 404 4004.
pub async fn delete(
    world: web::Data<SharedWorld>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (org, app) = path.into_inner();
    let lost = match prologue(&world, Endpoint::DeleteApp, &req, &org, &app).await {
        Ok(lost) => lost,
        Err(r) => return r,
    };
    let latency = world.lock().timing.delete_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let repo = {
        let mut w = world.lock();
        let now_ms = w.now_ms();
        let Some(a) = w.apps.get_mut(&app).filter(|a| !a.deleted && a.org == org) else {
            // deleted concurrently during the latency
            return unknown_app(&app);
        };
        a.deleted = true;
        if let Some(h) = a.helper.as_mut() {
            h.close();
        }
        a.state = "SHOULD_BE_DOWN".to_owned();
        a.instance_state = "DELETED".to_owned();
        if let Some(d) = a.deployments.last_mut() {
            if d.state == "WIP" || d.state == "TASK_RUNNING" {
                d.state = "CANCELLED".to_owned();
            }
        }
        let repo = a.repo_path.clone();
        w.ledger.app_deleted(&app, now_ms);
        repo
    };
    // The repository goes with the app; a failure only leaves a temp dir behind.
    let _ = tokio::fs::remove_dir_all(&repo).await;
    if lost {
        return hang().await;
    }
    HttpResponse::Ok().json(json!({
        "id": 303,
        "message": "The application has been deleted",
        "type": "success",
    }))
}

/// `PUT /v2/organisations/{o}/applications/{app}/env`: replaces the whole env.
pub async fn put_env(
    world: web::Data<SharedWorld>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (org, app) = path.into_inner();
    let lost = match prologue(&world, Endpoint::PutEnv, &req, &org, &app).await {
        Ok(lost) => lost,
        Err(r) => return r,
    };
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                ERR_BAD_ENV,
                format!("invalid JSON body: {e}"),
            )
        }
    };
    let env = match parse_env(&parsed) {
        Ok(env) => env,
        Err(m) => return api_error(StatusCode::BAD_REQUEST, ERR_BAD_ENV, m),
    };
    let check = req.query_string().split('&').any(|p| p == "check=true");
    if check {
        let fields: Map<String, Value> = env
            .keys()
            .filter(|k| !valid_env_name(k))
            .map(|k| (k.clone(), Value::String("invalid name".to_owned())))
            .collect();
        if !fields.is_empty() {
            return HttpResponse::BadRequest().json(json!({
                "id": ERR_ENV_INVALID,
                "message": "Application environment is invalid",
                "type": "error",
                "fields": fields,
            }));
        }
    }
    let body = {
        let mut w = world.lock();
        let base = w.git_base_url.clone();
        let Some(a) = w.apps.get_mut(&app).filter(|a| !a.deleted && a.org == org) else {
            return unknown_app(&app);
        };
        a.env = env;
        a.to_json(std::time::Instant::now(), &base)
    };
    if lost {
        return hang().await;
    }
    HttpResponse::Ok().json(body)
}

/// `GET /v2/organisations/{o}/applications/{app}/env`: `[{name, value}]`.
pub async fn get_env(
    world: web::Data<SharedWorld>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (org, app) = path.into_inner();
    if let Err(r) = prologue(&world, Endpoint::GetEnv, &req, &org, &app).await {
        return r;
    }
    let w = world.lock();
    match w.live_app(&org, &app) {
        Some(a) => HttpResponse::Ok().json(
            a.env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect::<Vec<_>>(),
        ),
        None => unknown_app(&app),
    }
}

/// `GET …/deployments`: the deployments, newest first.
pub async fn deployments(
    world: web::Data<SharedWorld>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (org, app) = path.into_inner();
    if let Err(r) = prologue(&world, Endpoint::AppActivity, &req, &org, &app).await {
        return r;
    }
    let w = world.lock();
    let Some(a) = w.live_app(&org, &app) else {
        return unknown_app(&app);
    };
    let list: Vec<Value> = a
        .deployments
        .iter()
        .rev()
        .map(|d| {
            json!({
                "id": d.id, "uuid": d.id.trim_start_matches("deployment_"), "date": d.date_ms,
                "state": d.state, "action": "DEPLOY", "commit": d.commit, "cause": "git push",
                "instances": 1, "author": {"id": null, "name": "paas-sim"},
            })
        })
        .collect();
    HttpResponse::Ok().json(list)
}

/// `GET …/instances`: the running instance, if any.
pub async fn instances(
    world: web::Data<SharedWorld>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (org, app) = path.into_inner();
    if let Err(r) = prologue(&world, Endpoint::AppActivity, &req, &org, &app).await {
        return r;
    }
    let w = world.lock();
    let Some(a) = w.live_app(&org, &app) else {
        return unknown_app(&app);
    };
    let list: Vec<Value> = match a.deployments.last() {
        Some(d) if a.instance_state != "NONE" && a.instance_state != "DELETED" => vec![json!({
            "id": format!("instance_{}", d.id.trim_start_matches("deployment_")),
            "appId": a.id, "ip": "127.0.0.1", "appPort": 8080, "state": a.instance_state,
            "flavor": {"name": a.max_flavor.name, "mem": a.max_flavor.mem,
                       "cpus": a.max_flavor.cpus, "price": 0.0},
            "commit": d.commit, "deployNumber": a.deployments.len(), "deployId": d.id,
            "instanceNumber": 0, "displayName": "paas-sim", "creationDate": d.date_ms,
        })],
        _ => Vec::new(),
    };
    HttpResponse::Ok().json(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clever::config::CleverSimConfig;

    fn world() -> World {
        World::new(&CleverSimConfig::default(), PathBuf::from("/nonexistent"))
    }

    fn reference_body() -> Value {
        json!({"name": "hpd-job-D3adNQYu-275833", "zone": "par", "deploy": "git",
               "instanceType": "docker", "instanceVersion": "20231106",
               "instanceVariant": "70d676a0-a775-4dc9-a43d-3121036e8515",
               "instanceLifetime": "TASK", "minInstances": 1, "maxInstances": 1,
               "minFlavor": "heptapod-runner-M", "maxFlavor": "heptapod-runner-M"})
    }

    #[test]
    fn the_reference_body_is_accepted() {
        let r = validate_create(&reference_body(), &world()).map_err(|e| e.1);
        let r = r.as_ref().map(|r| (r.lifetime.as_str(), r.max_flavor.mem));
        assert_eq!(r, Ok(("TASK", 8192)));
    }

    #[test]
    fn each_bad_field_has_its_id() {
        let cases: &[(&str, Value, i64)] = &[
            ("instanceVersion", json!("20200101"), ERR_STALE_VERSION),
            ("instanceType", json!("node"), ERR_BAD_TYPE),
            ("instanceVariant", json!("nope"), ERR_BAD_VARIANT),
            ("maxFlavor", json!("heptapod-runner-4XL"), ERR_BAD_FLAVOR),
            ("maxFlavor", json!("heptapod-runner-9XL"), ERR_BAD_FLAVOR),
            ("zone", json!("mars"), ERR_BAD_ZONE),
            ("deploy", json!("ftp"), ERR_BAD_DEPLOY),
            ("instanceLifetime", json!("FOREVER"), ERR_BAD_LIFETIME),
            ("minInstances", json!(0), ERR_BAD_INSTANCES),
            ("maxInstances", json!("1"), ERR_BAD_FIELD),
            ("name", json!(" "), ERR_EMPTY_NAME),
            ("instance_type", json!("docker"), ERR_BAD_FIELD),
        ];
        let w = world();
        for (key, value, id) in cases {
            let mut body = reference_body();
            if let Some(m) = body.as_object_mut() {
                m.insert((*key).to_owned(), value.clone());
            }
            assert_eq!(
                validate_create(&body, &w).map(|_| ()).map_err(|e| e.0),
                Err(*id),
                "{key} = {value}"
            );
        }
        let mut body = reference_body();
        if let Some(m) = body.as_object_mut() {
            m.remove("maxFlavor");
        }
        assert_eq!(
            validate_create(&body, &w).map(|_| ()).map_err(|e| e.0),
            Err(ERR_BAD_FIELD)
        );
        assert_eq!(
            validate_create(&json!([1]), &w)
                .map(|_| ())
                .map_err(|e| e.0),
            Err(ERR_BAD_JSON)
        );
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("CC_MOUNT_DOCKER_SOCKET"));
        assert!(valid_env_name("a.b-c"));
        assert!(!valid_env_name("1A"));
        assert!(!valid_env_name("A B"));
        assert!(!valid_env_name(""));
    }
}
