//! The HTTP server: every route, the OpenAPI document built from them, and the middleware that
//! applies to all (Origin check, body size limit).

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;
use crate::{agent_clients, agent_relay, agent_routes, api, auth, notifications};

/// The largest request body: a `state.json` of 10,000 configs is about 11 MiB.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

#[derive(OpenApi)]
#[openapi(info(
    title = "Thymis Controller API",
    description = "Provision, configure and manage fleets of NixOS devices."
))]
struct ApiDoc;

/// Every route with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::auth_routes())
        .merge(auth::token_routes())
        .merge(api::state::routes())
        .merge(api::secrets::routes())
        .merge(api::artifacts::routes())
        .merge(api::controller_settings::routes())
        .merge(api::external_repositories::routes())
        .merge(api::timer_check::routes())
        .merge(api::actions::routes())
        .merge(api::tasks::routes())
        .merge(api::device_routes())
        .merge(agent_routes::routes())
        .merge(agent_relay::routes())
        .merge(agent_clients::routes())
        .merge(notifications::routes())
}

/// The application, ready to serve.
pub fn app(state: AppState) -> Router {
    let (router, mut doc) = routes().split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.servers = Some(vec![utoipa::openapi::Server::new(
        state.settings.base_url_trimmed(),
    )]);
    let openapi_json = doc.clone();
    router
        .route(
            "/openapi.json",
            get(move || async move { Json(openapi_json) }),
        )
        .merge(SwaggerUi::new("/docs").url("/docs/openapi.json", doc))
        .fallback(crate::ui::fallback)
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check_origin,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
