//! Shared pieces of the HTTP handlers: the error body, the fixed error ids of the fake and the
//! fault guard run at the start of every call. The route table is in `routes.rs`.
//!
//! Error ids of the fake (fixed; real ids are unknown except 4004, 4002 and 557):
//!
//! | status | id   | meaning |
//! |--------|------|---------|
//! | 401    | 9001 | no `Authorization: token …` header |
//! | 401    | 9002 | unknown token |
//! | 403    | 4002 | token not allowed on this organisation |
//! | 404    | 4004 | unknown application |
//! | 400    | 5001 | body is not a JSON object |
//! | 400    | 5002 | missing field, wrong type or unknown field |
//! | 400    | 5003 | stale or unknown `instanceVersion` |
//! | 400    | 5004 | `instanceType` is not `docker` |
//! | 400    | 5005 | unknown `instanceVariant` |
//! | 400    | 5006 | unknown or unavailable flavor |
//! | 400    | 5007 | unknown zone |
//! | 400    | 5008 | `deploy` is not `git` |
//! | 400    | 5009 | `instanceLifetime` not in `REGULAR`, `MIGRATION`, `TASK` |
//! | 400    | 5010 | instance counts not `1 <= min <= max` |
//! | 400    | 5011 | empty name |
//! | 400    | 5020 | env body is not a flat object of strings |
//! | 400    | 557  | invalid env names with `?check=true` |
//! | 500    | 5500 | internal failure of the fake (e.g. `git init`) |

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::faults::{Endpoint, FaultKind};
use super::model::SharedWorld;

/// Missing `Authorization` header.
pub const ERR_NO_AUTH: i64 = 9001;
/// Unknown token.
pub const ERR_BAD_TOKEN: i64 = 9002;
/// Token not allowed on the organisation.
pub const ERR_WRONG_ORG: i64 = 4002;
/// Unknown application.
pub const ERR_UNKNOWN_APP: i64 = 4004;
/// Body is not a JSON object.
pub const ERR_BAD_JSON: i64 = 5001;
/// Missing, mistyped or unknown field.
pub const ERR_BAD_FIELD: i64 = 5002;
/// Stale `instanceVersion`.
pub const ERR_STALE_VERSION: i64 = 5003;
/// Bad `instanceType`.
pub const ERR_BAD_TYPE: i64 = 5004;
/// Unknown variant.
pub const ERR_BAD_VARIANT: i64 = 5005;
/// Unknown or unavailable flavor.
pub const ERR_BAD_FLAVOR: i64 = 5006;
/// Unknown zone.
pub const ERR_BAD_ZONE: i64 = 5007;
/// `deploy` is not `git`.
pub const ERR_BAD_DEPLOY: i64 = 5008;
/// Bad lifetime.
pub const ERR_BAD_LIFETIME: i64 = 5009;
/// Bad instance counts.
pub const ERR_BAD_INSTANCES: i64 = 5010;
/// Empty name.
pub const ERR_EMPTY_NAME: i64 = 5011;
/// Env body not a flat object of strings.
pub const ERR_BAD_ENV: i64 = 5020;
/// Invalid env names (`?check=true`).
pub const ERR_ENV_INVALID: i64 = 557;
/// Internal failure.
pub const ERR_INTERNAL: i64 = 5500;

/// Longest a `Hang` fault holds a request.
const HANG_LIMIT: Duration = Duration::from_secs(600);

/// `{"type":"error","id":…,"message":…}` with `status`.
pub fn api_error(status: StatusCode, id: i64, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "type": "error",
        "id": id,
        "message": message.into(),
    }))
}

/// The response of a `Status` fault.
pub fn fault_response(
    status: u16,
    id: Option<i64>,
    html: bool,
    retry_after_s: Option<u64>,
) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = HttpResponse::build(code);
    if let Some(s) = retry_after_s {
        b.insert_header(("Retry-After", s.to_string()));
    }
    if html {
        b.content_type("text/html").body(format!(
            "<html><head><title>{status}</title></head><body><h1>{status} {}</h1>\
             <p>injected by paas-sim</p></body></html>",
            code.canonical_reason().unwrap_or("Error")
        ))
    } else {
        b.json(json!({
            "type": "error",
            "id": id.unwrap_or(i64::from(status)),
            "message": format!("injected fault ({status})"),
        }))
    }
}

/// Holds the request for a long time (a "hang" fault), then answers 504.
pub async fn hang() -> HttpResponse {
    tokio::time::sleep(HANG_LIMIT).await;
    api_error(StatusCode::GATEWAY_TIMEOUT, 5504, "hung by paas-sim")
}

/// What the handler must do after the guard.
pub enum Guard {
    /// Proceed normally.
    Proceed,
    /// Proceed, then never answer (response lost).
    ProceedThenHang,
    /// Proceed; the push must be rejected by the pre-receive hook.
    ProceedRejectingPush,
    /// Answer this right away.
    Answer(HttpResponse),
}

/// Counts the call, applies the latency and decides the fault of `endpoint`.
pub async fn guard(world: &SharedWorld, endpoint: Endpoint, req: &HttpRequest) -> Guard {
    let decision = world
        .lock()
        .enter(endpoint, req.method().as_str(), req.path());
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.fault {
        None => Guard::Proceed,
        Some(FaultKind::Status {
            status,
            id,
            html,
            retry_after_s,
        }) => Guard::Answer(fault_response(status, id, html, retry_after_s)),
        Some(FaultKind::Respond { status, body }) => Guard::Answer(
            HttpResponse::build(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            )
            .json(body),
        ),
        Some(FaultKind::Hang) => Guard::Answer(hang().await),
        Some(FaultKind::PerformThenHang) => Guard::ProceedThenHang,
        Some(FaultKind::RejectPush) => Guard::ProceedRejectingPush,
    }
}
