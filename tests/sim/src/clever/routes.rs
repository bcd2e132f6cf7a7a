//! The route table of the fake: `/v2` API endpoints, the `/git` smart-HTTP endpoint and the
//! `/__sim` control routes, with a 404 for anything else.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::faults::Endpoint;
use super::handlers::api_error;
use super::model::SharedWorld;
use super::{apps, control, git_http, product_endpoints};

/// Answers 404 for anything not routed.
pub async fn not_found(world: web::Data<SharedWorld>, req: HttpRequest) -> HttpResponse {
    world
        .lock()
        .enter(Endpoint::Other, req.method().as_str(), req.path());
    api_error(
        StatusCode::NOT_FOUND,
        404,
        format!("no route for {}", req.path()),
    )
}

/// The route table of the whole fake.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v2")
            .route(
                "/products/instances",
                web::get().to(product_endpoints::instances),
            )
            .route(
                "/products/flavors",
                web::get().to(product_endpoints::flavors),
            )
            .route(
                "/organisations/{org}/applications",
                web::get().to(apps::list),
            )
            .route(
                "/organisations/{org}/applications",
                web::post().to(apps::create),
            )
            .route(
                "/organisations/{org}/applications/{app}",
                web::get().to(apps::get),
            )
            .route(
                "/organisations/{org}/applications/{app}",
                web::delete().to(apps::delete),
            )
            .route(
                "/organisations/{org}/applications/{app}/env",
                web::put().to(apps::put_env),
            )
            .route(
                "/organisations/{org}/applications/{app}/env",
                web::get().to(apps::get_env),
            )
            .route(
                "/organisations/{org}/applications/{app}/deployments",
                web::get().to(apps::deployments),
            )
            .route(
                "/organisations/{org}/applications/{app}/instances",
                web::get().to(apps::instances),
            )
            .default_service(web::to(not_found)),
    )
    .service(web::scope("/git").default_service(web::to(git_http::serve)))
    .service(web::scope("/__sim").configure(control::routes))
    .default_service(web::to(not_found));
}
