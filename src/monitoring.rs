//! The monitoring endpoints on `listen_address` (actix-web, on the
//! service's actix System, one worker, no signal handling of its own):
//!
//! - `GET /metrics`: the service's [`Metrics`] in the Prometheus text format,
//!   then the process metrics ([`crate::process_metrics`]);
//! - `GET /healthz` (liveness): 200 while the supervisor answers within
//!   [`HEALTH_TIMEOUT`] and is not draining, 503 otherwise; one-line JSON;
//! - `GET /readyz` (readiness): 200 while the runner can take jobs, 503
//!   with the reason otherwise (the supervisor's
//!   [`paas_actors::service::NotReady`], or fewer
//!   free descriptors than the [`Budget`] keeps for the runner);
//! - `GET /debug/jobs/list`: one JSON object per tracked job (no token).
//!
//! Bound before the wiring's first network call (a bind failure is a
//! start-up error; until the service runs, `/healthz` answers 503); stopped
//! when the service has drained.
//!
//! Anyone who reaches the port can use it (no authentication), so what it
//! costs is bounded: at most [`Budget::monitoring_connections`] connections
//! at once and as long a kernel backlog (connections beyond wait there or
//! are refused: they hold no descriptor of the process), a request head
//! within [`REQUEST_TIMEOUT`], idle keep-alive connections closed after
//! [`KEEP_ALIVE`], and the supervisor asked at most once per
//! [`ANSWER_REUSE`] for its health and its job list, whatever the rate of
//! requests (the answers are kept that long).

use crate::descriptors::Budget;
use actix_web::dev::ServerHandle;
use actix_web::http::KeepAlive;
use actix_web::{web, App, HttpResponse, HttpServer};
use paas_actors::metrics::{Metrics, CONTENT_TYPE};
use paas_actors::service::ServiceHandle;
use paas_actors::service::{Health, JobView};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long `/healthz`, `/readyz` and `/debug/jobs/list` wait for the
/// supervisor.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// An idle keep-alive connection is closed after this long.
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);

/// A connection that has not sent its request head within this long is
/// closed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an answer of the supervisor serves further requests.
pub const ANSWER_REUSE: Duration = Duration::from_millis(250);

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

    /// The addresses it listens on that other hosts may reach (not
    /// loopback): the endpoints have no authentication.
    pub fn reachable_addrs(&self) -> Vec<SocketAddr> {
        reachable(&self.addrs)
    }
}

/// The addresses of `addrs` that are not loopback (`0.0.0.0` and `::`
/// included: every interface).
fn reachable(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    addrs
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .copied()
        .collect()
}

/// Sets `version_info` in `metrics`.
pub fn set_version(metrics: &Metrics) {
    metrics.set_version(env!("CARGO_PKG_VERSION"), crate::build_info::REVISION);
}

/// What the handlers share: the service, the descriptor budget, and the
/// supervisor's last answers.
struct Shared {
    service: ServiceHandle,
    budget: Budget,
    health: Reused<Answer<Health>>,
    jobs: Reused<Answer<Vec<JobView>>>,
}

/// An answer of the supervisor, or why there is none.
#[derive(Clone)]
enum Answer<T> {
    Given(T),
    /// The service stopped.
    Stopped,
    /// No answer within [`HEALTH_TIMEOUT`].
    Unresponsive,
}

impl<T> Answer<T> {
    async fn ask(query: impl std::future::Future<Output = Option<T>>) -> Answer<T> {
        match actix_rt::time::timeout(HEALTH_TIMEOUT, query).await {
            Ok(Some(t)) => Answer::Given(t),
            Ok(None) => Answer::Stopped,
            Err(_) => Answer::Unresponsive,
        }
    }
}

/// The last value fetched, served for [`ANSWER_REUSE`].
struct Reused<T>(Mutex<Option<(Instant, T)>>);

impl<T: Clone> Reused<T> {
    fn new() -> Self {
        Reused(Mutex::new(None))
    }

    async fn get<F: std::future::Future<Output = T>>(&self, fetch: impl FnOnce() -> F) -> T {
        let fresh = self.0.lock().ok().and_then(|kept| {
            kept.as_ref()
                .filter(|(at, _)| at.elapsed() < ANSWER_REUSE)
                .map(|(_, t)| t.clone())
        });
        if let Some(t) = fresh {
            return t;
        }
        let t = fetch().await;
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some((Instant::now(), t.clone()));
        }
        t
    }
}

/// Binds `address` and serves the endpoints for `service`, within the
/// connection share of `budget`. Must be called inside the actix System
/// of the service.
pub fn start(
    address: &str,
    service: ServiceHandle,
    budget: Budget,
) -> Result<MonitoringServer, BindError> {
    let bind_error = |source| BindError {
        address: address.to_string(),
        source,
    };
    let shared = Arc::new(Shared {
        service,
        budget,
        health: Reused::new(),
        jobs: Reused::new(),
    });
    let connections = budget.monitoring_connections;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::from(shared.clone()))
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/debug/jobs/list", web::get().to(jobs_list))
    })
    .workers(1)
    .max_connections(connections)
    .backlog(u32::try_from(connections).unwrap_or(u32::MAX))
    .keep_alive(KeepAlive::Timeout(KEEP_ALIVE))
    .client_request_timeout(REQUEST_TIMEOUT)
    .client_disconnect_timeout(Duration::from_secs(1))
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

async fn metrics(shared: web::Data<Shared>) -> HttpResponse {
    match shared.service.metrics().encode() {
        Ok(mut text) => {
            crate::process_metrics::append(&mut text);
            HttpResponse::Ok().content_type(CONTENT_TYPE).body(text)
        }
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn health(shared: &Shared) -> Answer<Health> {
    shared
        .health
        .get(|| Answer::ask(shared.service.health()))
        .await
}

async fn healthz(shared: web::Data<Shared>) -> HttpResponse {
    let (ok, body) = match health(&shared).await {
        Answer::Given(h) if h.draining => (false, json!({"status": "draining", "jobs": h.jobs})),
        Answer::Given(h) => (
            true,
            json!({
                "status": "ok",
                "jobs": h.jobs,
                "used_weight": round2(h.used_weight),
                "quota": round2(h.quota),
            }),
        ),
        Answer::Stopped => (false, json!({"status": "stopped"})),
        Answer::Unresponsive => (false, json!({"status": "unresponsive"})),
    };
    json_answer(ok, &body)
}

/// Why the runner cannot take jobs: its own reason, the process's
/// descriptors, or no answer; `None` when it can.
fn readiness(answer: &Answer<Health>, budget: &Budget) -> Option<(&'static str, String)> {
    match answer {
        Answer::Given(h) => match h.not_ready {
            Some(why) => Some((why.as_str(), why.detail().to_string())),
            None => budget.below_reserve().map(|free| {
                (
                    "descriptors_exhausted",
                    format!(
                        "{free} file descriptors free, fewer than the {} kept for state writes \
                         and API calls (limit {})",
                        budget.reserve, budget.limit
                    ),
                )
            }),
        },
        Answer::Stopped => Some(("stopped", "the service has stopped".to_string())),
        Answer::Unresponsive => Some((
            "unresponsive",
            format!(
                "the service did not answer within {} s (starting, or stuck)",
                HEALTH_TIMEOUT.as_secs()
            ),
        )),
    }
}

async fn readyz(shared: web::Data<Shared>) -> HttpResponse {
    let answer = health(&shared).await;
    match readiness(&answer, &shared.budget) {
        None => json_answer(true, &json!({"status": "ready"})),
        Some((reason, detail)) => json_answer(
            false,
            &json!({"status": "not_ready", "reason": reason, "detail": detail}),
        ),
    }
}

/// 200 or 503 with a one-line JSON body.
fn json_answer(ok: bool, body: &serde_json::Value) -> HttpResponse {
    let mut resp = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    resp.content_type("application/json")
        .body(format!("{body}\n"))
}

async fn jobs_list(shared: web::Data<Shared>) -> HttpResponse {
    let answer = shared.jobs.get(|| Answer::ask(shared.service.jobs())).await;
    match answer {
        Answer::Given(jobs) => {
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
        Answer::Stopped => json_answer(false, &json!({"status": "stopped"})),
        Answer::Unresponsive => json_answer(false, &json!({"status": "unresponsive"})),
    }
}

fn round2(w: f64) -> f64 {
    (w * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_private() {
        let addrs: Vec<SocketAddr> = [
            "127.0.0.1:9252",
            "127.0.0.2:9252",
            "[::1]:9252",
            "0.0.0.0:9252",
            "[::]:9252",
            "10.0.0.8:9252",
        ]
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
        let shown: Vec<String> = reachable(&addrs).iter().map(|a| a.to_string()).collect();
        assert_eq!(shown, ["0.0.0.0:9252", "[::]:9252", "10.0.0.8:9252"]);
    }

    fn health(not_ready: Option<paas_actors::service::NotReady>) -> Answer<Health> {
        Answer::Given(Health {
            draining: false,
            not_ready,
            jobs: 0,
            used_weight: 0.0,
            quota: 1.0,
        })
    }

    #[test]
    fn readiness_reasons() {
        use paas_actors::service::NotReady;
        let roomy = Budget::for_limit(1 << 20);
        assert_eq!(readiness(&health(None), &roomy), None);
        let (reason, detail) =
            readiness(&health(Some(NotReady::StateWritesFailing)), &roomy).expect("not ready");
        assert_eq!(reason, "state_writes_failing");
        assert!(detail.contains("state file"), "{detail}");
        // Fewer descriptors free than the reserve: not ready.
        let open = crate::descriptors::open_count().expect("count");
        let tight = Budget {
            limit: open + 2,
            monitoring_connections: 4,
            reserve: 64,
        };
        let (reason, detail) = readiness(&health(None), &tight).expect("not ready");
        assert_eq!(reason, "descriptors_exhausted");
        assert!(detail.contains("fewer than the 64 kept"), "{detail}");
        assert_eq!(
            readiness(&Answer::Unresponsive, &roomy).map(|r| r.0),
            Some("unresponsive")
        );
        assert_eq!(
            readiness(&Answer::Stopped, &roomy).map(|r| r.0),
            Some("stopped")
        );
    }
}
