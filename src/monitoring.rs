//! The monitoring endpoints on `listen_address` (actix-web, on the
//! service's actix System, one worker, no signal handling of its own):
//!
//! - `GET /metrics`: the service's [`Metrics`] in the Prometheus text format;
//! - `GET /healthz`: 200 while the supervisor answers within
//!   [`HEALTH_TIMEOUT`] and is not draining, 503 otherwise; one-line JSON;
//! - `GET /debug/jobs/list`: one JSON object per tracked job (no token).
//!
//! Bound before the wiring's first network call (a bind failure is a
//! start-up error; until the service runs, `/healthz` answers 503); stopped
//! when the service has drained.

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use paas_actors::metrics::{Metrics, CONTENT_TYPE};
use paas_actors::service::ServiceHandle;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

/// How long `/healthz` and `/debug/jobs/list` wait for the supervisor.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// The monitoring server could not listen.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on listen_address {address:?}: {source}")]
pub struct BindError {
    /// The address asked for.
    pub address: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// A running monitoring server.
pub struct MonitoringServer {
    handle: ServerHandle,
    /// The addresses it listens on.
    pub addrs: Vec<SocketAddr>,
}

impl MonitoringServer {
    /// Stops listening; requests in flight get up to a second.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// Sets `version_info` in `metrics`.
pub fn set_version(metrics: &Metrics) {
    metrics.set_version(env!("CARGO_PKG_VERSION"), crate::build_info::REVISION);
}

/// Binds `address` and serves the endpoints for `service`. Must be called
/// inside the actix System of the service.
pub fn start(address: &str, service: ServiceHandle) -> Result<MonitoringServer, BindError> {
    let bind_error = |source| BindError {
        address: address.to_string(),
        source,
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(service.clone()))
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/debug/jobs/list", web::get().to(jobs_list))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(address)
    .map_err(bind_error)?;
    let addrs = server.addrs();
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(MonitoringServer { handle, addrs })
}

async fn metrics(service: web::Data<ServiceHandle>) -> HttpResponse {
    match service.metrics().encode() {
        Ok(text) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn healthz(service: web::Data<ServiceHandle>) -> HttpResponse {
    let health = actix_rt::time::timeout(HEALTH_TIMEOUT, service.health()).await;
    let (ok, body) = match health {
        Ok(Some(h)) if h.draining => (false, json!({"status": "draining", "jobs": h.jobs})),
        Ok(Some(h)) => (
            true,
            json!({
                "status": "ok",
                "jobs": h.jobs,
                "used_weight": round2(h.used_weight),
                "quota": round2(h.quota),
            }),
        ),
        Ok(None) => (false, json!({"status": "stopped"})),
        Err(_) => (false, json!({"status": "unresponsive"})),
    };
    let mut resp = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    resp.content_type("application/json")
        .body(format!("{body}\n"))
}

async fn jobs_list(service: web::Data<ServiceHandle>) -> HttpResponse {
    match actix_rt::time::timeout(HEALTH_TIMEOUT, service.jobs()).await {
        Ok(Some(jobs)) => {
            let list: Vec<serde_json::Value> = jobs
                .iter()
                .map(|j| {
                    json!({
                        "job_id": j.job_id,
                        "runner": j.runner,
                        "unique_name": j.unique_name,
                        "phase": j.phase,
                        "weight": round2(j.weight),
                        "resource": j.resource_id.as_ref().map(|id| json!({
                            "id": id,
                            "name": j.resource_name,
                        })).or_else(|| j.resource_name.as_ref().map(|n| json!({"name": n}))),
                        "since": j.since.as_secs(),
                    })
                })
                .collect();
            HttpResponse::Ok().json(list)
        }
        Ok(None) => HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body("{\"status\":\"stopped\"}\n"),
        Err(_) => HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body("{\"status\":\"unresponsive\"}\n"),
    }
}

fn round2(w: f64) -> f64 {
    (w * 100.0).round() / 100.0
}
