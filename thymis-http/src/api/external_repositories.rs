//! External repositories (flake inputs of the project): their discovery status, parsed flake
//! references, connection tests, and branch and tag lists from GitHub and GitLab. The
//! repositories themselves are edited as part of the state.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use thymis::external::forge::ForgeError;
use thymis::external::{token_for_reference, TokenError};
use thymis::nix::flake_ref::{FlakeRef, FlakeRefError};
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
        .routes(routes!(status))
        .routes(routes!(flake_ref))
        .routes(routes!(test_prefetch))
        .routes(routes!(test_api_access))
        .routes(routes!(branches))
        .routes(routes!(tags))
}

/// What each repository of the state turned out to be:
/// `{"<input name>": {status, modules, details}}` with status `loading`, `no-url`, `no-path`,
/// `no-readme`, `no-magic-string` or `loaded`.
#[utoipa::path(get, path = "/api/external-repositories/status", tag = "repositories",
    responses((status = 200, body = Object)))]
async fn status(State(app): State<AppState>, _caller: Caller) -> Json<Value> {
    Json(json!(app.repository_discovery.statuses()))
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
    let reference: FlakeRef = url.parse().map_err(|err: FlakeRefError| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
    })?;
    Ok(Json(reference.to_wire()))
}

#[derive(Debug, Deserialize, IntoParams)]
struct TokenQuery {
    /// A secret holding an access token for a private repository; it must be the token of a
    /// repository of the state on the same host.
    api_key_secret: Option<Uuid>,
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::NotForThisHost => ApiError::forbidden(err.to_string()),
            TokenError::Vault(err) => err.into(),
        }
    }
}

/// Parses a flake reference from the path and looks up the token it may use.
async fn reference_and_token(
    app: &AppState,
    flake_url: &str,
    query: &TokenQuery,
) -> Result<(FlakeRef, Option<String>), ApiError> {
    let reference: FlakeRef = flake_url
        .parse()
        .map_err(|err: FlakeRefError| ApiError::bad_request(err.to_string()))?;
    let Some(secret) = query.api_key_secret else {
        return Ok((reference, None));
    };
    let (project, vault) = (app.project.clone(), app.vault.clone());
    let lookup = reference.clone();
    let token = blocking(move || {
        Ok(token_for_reference(
            &project.snapshot().state,
            &vault,
            secret,
            &lookup,
        )?)
    })
    .await?;
    Ok((reference, Some(token)))
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
    let (reference, token) = reference_and_token(&app, &flake_url, &query).await?;
    if !thymis::nix::prefetch::is_remote(&reference) {
        return Err(ApiError::bad_request(
            "only remote flake references (github:, gitlab:, git+https://, …) can be tested",
        ));
    }
    let result = blocking(move || {
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

/// Asks the repository's forge (GitHub, GitLab) for the commit the reference points at:
/// `{status: "success", commit_hash}`, `{status: "rate_limited", detail}` or
/// `{status: "error", detail}`.
#[utoipa::path(get, path = "/api/external-repositories/test-flake-ref/api-access/{flake_url}", tag = "repositories",
    params(("flake_url" = String, Path, description = "The flake reference"), TokenQuery),
    responses((status = 200, body = Object), (status = 400, description = "Not a flake reference"),
        (status = 403, description = "The secret is not a token for that host"),
        (status = 404, description = "Unknown token secret")))]
async fn test_api_access(
    State(app): State<AppState>,
    _caller: Caller,
    Path(flake_url): Path<String>,
    Query(query): Query<TokenQuery>,
) -> Result<Json<Value>, ApiError> {
    let (reference, token) = reference_and_token(&app, &flake_url, &query).await?;
    Ok(Json(
        match app.forges.head_commit(&reference, token.as_deref()).await {
            Ok(commit) => json!({"status": "success", "commit_hash": commit}),
            Err(err @ ForgeError::RateLimited(_)) => {
                json!({"status": "rate_limited", "detail": err.to_string()})
            }
            Err(err) => json!({"status": "error", "detail": err.to_string()}),
        },
    ))
}

/// The forge's list of branches of the repository (GitHub's or GitLab's JSON as is); `[]` for
/// repositories on other hosts. Cached for a minute.
#[utoipa::path(get, path = "/api/external-repositories/branches/{flake_url}", tag = "repositories",
    params(("flake_url" = String, Path, description = "The flake reference"), TokenQuery),
    responses((status = 200, body = Object), (status = 400, description = "Not a flake reference"),
        (status = 403, description = "The secret is not a token for that host"),
        (status = 404, description = "Unknown token secret or repository"),
        (status = 429, description = "The forge's rate limit is reached"),
        (status = 502, description = "The forge cannot be reached")))]
async fn branches(
    State(app): State<AppState>,
    _caller: Caller,
    Path(flake_url): Path<String>,
    Query(query): Query<TokenQuery>,
) -> Result<Json<Value>, ApiError> {
    let (reference, token) = reference_and_token(&app, &flake_url, &query).await?;
    forge_list(app.forges.branches(&reference, token.as_deref()).await)
}

/// The forge's list of tags of the repository; `[]` for repositories on other hosts.
#[utoipa::path(get, path = "/api/external-repositories/tags/{flake_url}", tag = "repositories",
    params(("flake_url" = String, Path, description = "The flake reference"), TokenQuery),
    responses((status = 200, body = Object), (status = 400, description = "Not a flake reference"),
        (status = 403, description = "The secret is not a token for that host"),
        (status = 404, description = "Unknown token secret or repository"),
        (status = 429, description = "The forge's rate limit is reached"),
        (status = 502, description = "The forge cannot be reached")))]
async fn tags(
    State(app): State<AppState>,
    _caller: Caller,
    Path(flake_url): Path<String>,
    Query(query): Query<TokenQuery>,
) -> Result<Json<Value>, ApiError> {
    let (reference, token) = reference_and_token(&app, &flake_url, &query).await?;
    forge_list(app.forges.tags(&reference, token.as_deref()).await)
}

/// A forge's list as the answer; its refusals keep their status (a missing repository is 404).
fn forge_list(answer: Result<Value, ForgeError>) -> Result<Json<Value>, ApiError> {
    match answer {
        Ok(list) => Ok(Json(list)),
        Err(ForgeError::Unsupported) => Ok(Json(json!([]))),
        Err(err @ ForgeError::Invalid(_)) => Err(ApiError::bad_request(err.to_string())),
        Err(err @ ForgeError::RateLimited(_)) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            err.to_string(),
        )),
        Err(ForgeError::Refused { status, message }) => {
            // A token the forge rejects is 403: 401 would tell the dashboard its own session
            // ended.
            let status = match StatusCode::from_u16(status) {
                Ok(StatusCode::UNAUTHORIZED) => StatusCode::FORBIDDEN,
                Ok(status) if status.is_client_error() => status,
                _ => StatusCode::BAD_GATEWAY,
            };
            Err(ApiError::new(status, message))
        }
        Err(err @ ForgeError::Unreachable(_)) => {
            Err(ApiError::new(StatusCode::BAD_GATEWAY, err.to_string()))
        }
    }
}
