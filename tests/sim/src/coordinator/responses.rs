//! Response builders shared by the `/api/v4` handlers and the `/__sim/`
//! control routes.

use super::faults::reason_phrase;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde_json::json;

/// A `{"message": …}` answer.
pub(crate) fn message(status: u16, msg: &str) -> HttpResponse {
    builder(status).json(json!({ "message": msg }))
}

/// The standard `{"message": "<status> <Reason>"}` answer.
pub(crate) fn std_message(status: u16) -> HttpResponse {
    message(status, &format!("{status} {}", reason_phrase(status)))
}

/// A response builder for a status number (500 when out of range).
pub(crate) fn builder(status: u16) -> HttpResponseBuilder {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
}
