//! Secrets: create, change, list (never with values), download file secrets, delete.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use thymis::events::Event;
use thymis::secrets::{
    process_value, SecretChanges, SecretInput, SecretKind, SecretProcessing, VaultError,
};
use thymis::store::SecretRecord;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_secrets, create_secret))
        .routes(routes!(update_secret, delete_secret))
        .routes(routes!(download_secret))
}

impl From<VaultError> for ApiError {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::Invalid(message) => ApiError::bad_request(message),
            VaultError::NotFound(_) => ApiError::not_found(err.to_string()),
            VaultError::Crypto(_) | VaultError::Store(_) => ApiError::internal(err),
        }
    }
}

/// A secret as listed: upstream's `SecretShort`, but `value_str` is always null — values are
/// never sent back.
#[derive(Debug, Serialize, ToSchema)]
struct SecretShort {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    record: SecretRecord,
    /// Always null.
    value_str: Option<String>,
    /// Always null.
    error: Option<String>,
}

impl From<SecretRecord> for SecretShort {
    fn from(record: SecretRecord) -> Self {
        SecretShort {
            record,
            value_str: None,
            error: None,
        }
    }
}

/// Every secret by id, without values.
#[utoipa::path(get, path = "/api/secrets", tag = "secrets",
    responses((status = 200, description = "Secrets by id", body = Object)))]
async fn list_secrets(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<IndexMap<String, SecretShort>>, ApiError> {
    let vault = app.vault.clone();
    let secrets = blocking(move || Ok(vault.list()?)).await?;
    Ok(Json(
        secrets
            .into_iter()
            .map(|s| (s.id.to_string(), SecretShort::from(s)))
            .collect(),
    ))
}

/// A new secret (upstream's `SecretCreateRequest`): the value as text (`value_str`) or base64
/// (`value_b64`, e.g. for files).
#[derive(Debug, Deserialize, ToSchema)]
struct SecretCreateRequest {
    display_name: String,
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "single_line")]
    kind: SecretKind,
    value_str: Option<String>,
    value_b64: Option<String>,
    filename: Option<String>,
    #[serde(default)]
    include_in_image: bool,
    #[serde(default = "no_processing")]
    #[schema(value_type = String, example = "none")]
    processing_type: SecretProcessing,
}

fn no_processing() -> SecretProcessing {
    SecretProcessing::None
}

fn decode_value(
    value_str: Option<String>,
    value_b64: Option<String>,
) -> Result<Option<Vec<u8>>, ApiError> {
    match (value_str, value_b64) {
        (Some(text), _) => Ok(Some(text.into_bytes())),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map(Some)
            .map_err(|_| ApiError::bad_request("value_b64 is not valid base64")),
        (None, None) => Ok(None),
    }
}

/// Creates a secret; answers it without its value.
#[utoipa::path(post, path = "/api/secrets", tag = "secrets", request_body = SecretCreateRequest,
    responses((status = 200, body = SecretShort), (status = 400, description = "Invalid secret")))]
async fn create_secret(
    State(app): State<AppState>,
    caller: Caller,
    Json(request): Json<SecretCreateRequest>,
) -> Result<Json<SecretShort>, ApiError> {
    let value = decode_value(request.value_str, request.value_b64)?
        .ok_or_else(|| ApiError::bad_request("give the value as value_str or value_b64"))?;
    let input = SecretInput {
        display_name: request.display_name,
        kind: request.kind,
        value,
        filename: request.filename,
        include_in_image: request.include_in_image,
        processing: request.processing_type,
    };
    let vault = app.vault.clone();
    let record = blocking(move || Ok(vault.create(input)?)).await?;
    app.audit(&caller, "secret.create", &record.id.to_string());
    app.events.publish(Event::SecretsChanged);
    Ok(Json(record.into()))
}

/// Changes to a secret; omitted fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
struct SecretUpdateRequest {
    display_name: Option<String>,
    #[serde(rename = "type")]
    #[schema(value_type = Option<String>)]
    kind: Option<SecretKind>,
    value_str: Option<String>,
    value_b64: Option<String>,
    filename: Option<String>,
    include_in_image: Option<bool>,
    #[schema(value_type = Option<String>)]
    processing_type: Option<SecretProcessing>,
}

/// Changes a secret. Unlike upstream, leaving out `include_in_image` keeps it.
#[utoipa::path(patch, path = "/api/secrets/{secret_id}", tag = "secrets",
    params(("secret_id" = Uuid, Path, description = "The secret's id")),
    request_body = SecretUpdateRequest,
    responses((status = 200, body = SecretShort), (status = 400, description = "Invalid change"),
        (status = 404, description = "No such secret")))]
async fn update_secret(
    State(app): State<AppState>,
    caller: Caller,
    Path(secret_id): Path<Uuid>,
    Json(request): Json<SecretUpdateRequest>,
) -> Result<Json<SecretShort>, ApiError> {
    // Upstream's editor sends empty strings for fields it did not change (it never sees the
    // value), so empty strings mean "keep".
    let keep_empty = |field: Option<String>| field.filter(|v| !v.is_empty());
    let changes = SecretChanges {
        display_name: keep_empty(request.display_name),
        kind: request.kind,
        value: decode_value(keep_empty(request.value_str), keep_empty(request.value_b64))?,
        filename: keep_empty(request.filename),
        include_in_image: request.include_in_image,
        processing: request.processing_type,
    };
    let vault = app.vault.clone();
    let record = blocking(move || Ok(vault.update(secret_id, changes)?)).await?;
    app.audit(&caller, "secret.update", &secret_id.to_string());
    app.events.publish(Event::SecretsChanged);
    Ok(Json(record.into()))
}

/// Deletes a secret.
#[utoipa::path(delete, path = "/api/secrets/{secret_id}", tag = "secrets",
    params(("secret_id" = Uuid, Path, description = "The secret's id")),
    responses((status = 200, description = "Deleted"), (status = 404, description = "No such secret")))]
async fn delete_secret(
    State(app): State<AppState>,
    caller: Caller,
    Path(secret_id): Path<Uuid>,
) -> Result<Json<()>, ApiError> {
    let vault = app.vault.clone();
    blocking(move || Ok(vault.delete(secret_id)?)).await?;
    app.audit(&caller, "secret.delete", &secret_id.to_string());
    app.events.publish(Event::SecretsChanged);
    Ok(Json(()))
}

/// Downloads a file secret, processed as it would be delivered.
#[utoipa::path(get, path = "/api/secrets/{secret_id}/download", tag = "secrets",
    params(("secret_id" = Uuid, Path, description = "The secret's id")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 404, description = "No such file secret")))]
async fn download_secret(
    State(app): State<AppState>,
    caller: Caller,
    Path(secret_id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let vault = app.vault.clone();
    let (record, value) = blocking(move || {
        let (record, value) = vault.reveal(secret_id)?;
        // Only file secrets: other values are never sent back, whatever their file name.
        if record.secret_type != SecretKind::File {
            return Err(ApiError::not_found("only file secrets can be downloaded"));
        }
        let value = process_value(record.processing_type, &value).map_err(ApiError::internal)?;
        Ok((record, value))
    })
    .await?;
    app.audit(&caller, "secret.download", &secret_id.to_string());
    let filename = record
        .filename
        .unwrap_or_else(|| format!("secret-{secret_id}"));
    let disposition = crate::api::attachment(&filename);
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        value,
    )
        .into_response())
}
