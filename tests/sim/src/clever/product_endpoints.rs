//! The product listings over HTTP: `GET /v2/products/instances` and `GET /v2/products/flavors`,
//! served from the catalogue in `products.rs` and the world's configured flavor table.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::faults::Endpoint;
use super::handlers::{guard, Guard};
use super::model::SharedWorld;
use super::products::{instances_json, standard_flavors, FlavorSpec};

/// `GET /v2/products/instances` (no auth).
pub async fn instances(world: web::Data<SharedWorld>, req: HttpRequest) -> HttpResponse {
    if let Guard::Answer(r) = guard(&world, Endpoint::ProductsInstances, &req).await {
        return r;
    }
    let version = world.lock().docker_version.clone();
    HttpResponse::Ok().json(instances_json(&version))
}

/// `GET /v2/products/flavors?context=…` (no auth): the configured table for the configured
/// context, the standard flavors without context, `[]` for an unknown context.
pub async fn flavors(world: web::Data<SharedWorld>, req: HttpRequest) -> HttpResponse {
    if let Guard::Answer(r) = guard(&world, Endpoint::ProductsFlavors, &req).await {
        return r;
    }
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let w = world.lock();
    let table: Vec<Value> = match query.get("context") {
        None => standard_flavors().iter().map(FlavorSpec::to_json).collect(),
        Some(ctx) if *ctx == w.flavor_context => {
            w.flavors.iter().map(FlavorSpec::to_json).collect()
        }
        Some(_) => Vec::new(),
    };
    HttpResponse::Ok().json(table)
}
