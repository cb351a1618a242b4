//! Agent tokens: list (never their values), create for devices installed without a Thymis
//! image, and revoke (upstream has no way to revoke a leaked token).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use thymis::devices::{iso, AgentTokenCreated};
use thymis::store::AgentTokenRecord;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::devices::registry;
use crate::api::params::ValidPath;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agent_tokens, create_agent_token))
        .routes(routes!(revoke_agent_token))
}

/// An agent token as listed: never its value or hash.
#[derive(Debug, Serialize, ToSchema)]
struct AgentToken {
    id: Uuid,
    name: String,
    original_config_id: Option<String>,
    original_config_commit: Option<String>,
    created_at: String,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
}

impl From<AgentTokenRecord> for AgentToken {
    fn from(record: AgentTokenRecord) -> Self {
        AgentToken {
            id: record.id,
            name: record.name,
            original_config_id: record.original_config_id,
            original_config_commit: record.original_config_commit,
            created_at: iso(&record.created_at),
            revoked_at: record.revoked_at.as_ref().map(iso),
            last_used_at: record.last_used_at.as_ref().map(iso),
        }
    }
}

/// A token just created: the record and, this once, the token.
#[derive(Serialize, ToSchema)]
struct CreatedAgentToken {
    #[serde(flatten)]
    token_record: AgentToken,
    /// The token, for `thymis-token.txt` on the device; shown only here.
    token: String,
}

/// A new agent token.
#[derive(Debug, Deserialize, ToSchema)]
struct NewAgentToken {
    /// What the token is for (1–100 characters).
    name: String,
    /// The config devices using it are meant to run.
    config_id: Option<String>,
}

/// Agent tokens, oldest first, revoked ones included; never their values.
#[utoipa::path(get, path = "/api/agent_tokens", tag = "agent tokens",
    responses((status = 200, body = [AgentToken])))]
async fn list_agent_tokens(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<AgentToken>>, ApiError> {
    let tokens = registry(&app, |r| r.agent_tokens()).await?;
    Ok(Json(tokens.into_iter().map(AgentToken::from).collect()))
}

/// Creates an agent token; the answer is the only time the token is shown.
#[utoipa::path(post, path = "/api/agent_tokens", tag = "agent tokens",
    request_body = NewAgentToken,
    responses((status = 201, body = CreatedAgentToken),
        (status = 422, description = "Invalid name or unknown config")))]
async fn create_agent_token(
    State(app): State<AppState>,
    caller: Caller,
    Json(request): Json<NewAgentToken>,
) -> Result<(StatusCode, Json<CreatedAgentToken>), ApiError> {
    let AgentTokenCreated { record, token } = registry(&app, move |r| {
        r.create_agent_token(&request.name, request.config_id.as_deref())
    })
    .await?;
    app.audit(&caller, "agent_token.create", &record.id.to_string());
    Ok((
        StatusCode::CREATED,
        Json(CreatedAgentToken {
            token_record: record.into(),
            token,
        }),
    ))
}

/// Revokes an agent token: it admits no agent and authenticates no log upload any more.
#[utoipa::path(delete, path = "/api/agent_tokens/{id}", tag = "agent tokens",
    params(("id" = Uuid, Path, description = "The token")),
    responses((status = 200, body = AgentToken), (status = 404, description = "No such token"),
        (status = 409, description = "Already revoked")))]
async fn revoke_agent_token(
    State(app): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<AgentToken>, ApiError> {
    let record = registry(&app, move |r| r.revoke_agent_token(id)).await?;
    // A leaked token stops working at once, not only at the next connection.
    app.agents.disconnect_token(id);
    app.audit(&caller, "agent_token.revoke", &id.to_string());
    Ok(Json(record.into()))
}
