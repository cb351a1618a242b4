//! External repositories (flake inputs of the project): their parsed flake references and a
//! fetch test. The repositories themselves are edited as part of the state.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use thymis::nix::flake_ref::FlakeRef;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(flake_ref))
        .routes(routes!(test_prefetch))
}

/// The flake reference of the state's repository `flake_name`, parsed:
/// `{type, owner, repo, ref, rev, host, …}`.
#[utoipa::path(get, path = "/api/external-repositories/flake-ref/{flake_name}", tag = "repositories",
    params(("flake_name" = String, Path, description = "The repository's input name")),
    responses((status = 200, body = Object), (status = 404, description = "No such repository"),
        (status = 422, description = "The URL is not a flake reference")))]
async fn flake_ref(
    State(app): State<AppState>,
    _caller: Caller,
    Path(flake_name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = app.project.snapshot();
    let url = snapshot
        .state
        .repositories
        .get(&flake_name)
        .and_then(|repo| repo.url.clone())
        .ok_or_else(|| ApiError::not_found("Flake not found"))?;
    let reference: FlakeRef =
        url.parse()
            .map_err(|err: thymis::nix::flake_ref::FlakeRefError| {
                ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    err.to_string(),
                )
            })?;
    Ok(Json(reference.to_wire()))
}

#[derive(Debug, Deserialize, IntoParams)]
struct TokenQuery {
    /// A secret holding an access token for a private repository.
    api_key_secret: Option<Uuid>,
}

/// Tries to fetch a flake (`nix flake prefetch --refresh`): `{status: "success"}` or
/// `{status: "error", detail}`.
#[utoipa::path(get, path = "/api/external-repositories/test-flake-ref/prefetch/{flake_url}", tag = "repositories",
    params(("flake_url" = String, Path, description = "The flake reference"), TokenQuery),
    responses((status = 200, body = Object), (status = 400, description = "Not a remote flake reference"),
        (status = 403, description = "The secret is not a token for that host"),
        (status = 404, description = "Unknown token secret")))]
async fn test_prefetch(
    State(app): State<AppState>,
    _caller: Caller,
    Path(flake_url): Path<String>,
    Query(query): Query<TokenQuery>,
) -> Result<Json<Value>, ApiError> {
    let reference: FlakeRef =
        flake_url
            .parse()
            .map_err(|err: thymis::nix::flake_ref::FlakeRefError| {
                ApiError::bad_request(err.to_string())
            })?;
    if !thymis::nix::prefetch::is_remote(&reference) {
        return Err(ApiError::bad_request(
            "only remote flake references (github:, gitlab:, git+https://, …) can be tested",
        ));
    }
    // A token goes only to the host of a repository it was configured for in the state.
    if let Some(secret) = query.api_key_secret {
        let host = reference.token_host();
        let allowed = app
            .project
            .snapshot()
            .state
            .repositories
            .values()
            .any(|repo| {
                repo.api_key_secret.as_deref() == Some(secret.to_string().as_str())
                    && repo
                        .url
                        .as_deref()
                        .and_then(|url| url.parse::<FlakeRef>().ok())
                        .is_some_and(|configured| configured.token_host() == host)
            });
        if !allowed {
            return Err(ApiError::forbidden(
                "this secret is not the token of a repository on that host",
            ));
        }
    }
    let vault = app.vault.clone();
    let result = blocking(move || {
        let token = match query.api_key_secret {
            Some(id) => Some(
                String::from_utf8_lossy(&vault.reveal(id)?.1)
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(thymis::nix::prefetch::prefetch(
            &flake_url,
            token.as_deref(),
        ))
    })
    .await?;
    Ok(Json(match result {
        Ok(()) => json!({"status": "success"}),
        Err(detail) => json!({"status": "error", "detail": detail}),
    }))
}
