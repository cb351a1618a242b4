//! Artifacts: upload (streamed to disk, size-limited), download, rename (references in the state
//! follow), delete. Names that are not plain file names are refused with 403, as upstream.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Write;
use thymis::project::{ArtifactError, ArtifactInfo};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};

/// The largest artifact upload (all files of one request together).
pub const MAX_UPLOAD_BYTES: usize = 512 * 1024 * 1024;

/// The most files one upload may carry (each holds a file open until the request is done).
pub const MAX_UPLOAD_FILES: usize = 64;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_artifacts))
        .routes(routes!(upload_artifacts))
        .routes(routes!(get_artifact, delete_artifact))
        .routes(routes!(rename_artifact))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
}

impl From<ArtifactError> for ApiError {
    fn from(err: ArtifactError) -> Self {
        match err {
            ArtifactError::InvalidName(message) => ApiError::forbidden(message),
            ArtifactError::NotFound(_) => ApiError::not_found(err.to_string()),
            ArtifactError::Exists(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            ArtifactError::Project(err) => err.into(),
            ArtifactError::Io(_) => ApiError::internal(err),
        }
    }
}

/// Every artifact: `[{name, media_type, size, created_at, modified_at}]`.
#[utoipa::path(get, path = "/api/artifacts", tag = "artifacts",
    responses((status = 200, body = [Object])))]
async fn list_artifacts(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<ArtifactInfo>>, ApiError> {
    let project = app.project.clone();
    Ok(Json(blocking(move || Ok(project.list_artifacts()?)).await?))
}

/// Multipart upload: one or more parts named `files`, each stored under its file name
/// (replacing an artifact of that name).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    #[schema(format = Binary)]
    files: Vec<String>,
}

/// Uploads artifacts (note the trailing slash, as upstream).
#[utoipa::path(post, path = "/api/artifacts/", tag = "artifacts",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "Stored names"), (status = 403, description = "Bad file name"),
        (status = 413, description = "Too large")))]
async fn upload_artifacts(
    State(app): State<AppState>,
    caller: Caller,
    mut multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    // Every part is received into a temporary file first; only when the whole request is
    // good are they moved into place, so a bad part stores nothing.
    let mut received = Vec::new();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|err| ApiError::new(err.status(), err.body_text()))?
    {
        if field.name() != Some("files") {
            continue;
        }
        if received.len() >= MAX_UPLOAD_FILES {
            return Err(ApiError::bad_request(format!(
                "at most {MAX_UPLOAD_FILES} files per upload"
            )));
        }
        let name = field
            .file_name()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request("each uploaded file needs a file name"))?;
        thymis::repository::check_artifact_name(&name).map_err(ApiError::forbidden)?;
        let project = app.project.clone();
        let mut upload = blocking(move || Ok(project.artifact_upload()?)).await?;
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|err| ApiError::new(err.status(), err.body_text()))?
        {
            upload = blocking(move || {
                upload.write_all(&chunk).map_err(ApiError::internal)?;
                Ok(upload)
            })
            .await?;
        }
        received.push((name, upload));
    }
    if received.is_empty() {
        return Err(ApiError::bad_request(
            "no file was uploaded in a part named `files`",
        ));
    }
    let mut stored = Vec::new();
    for (name, upload) in received {
        let project = app.project.clone();
        let stored_name = name.clone();
        blocking(move || Ok(project.store_artifact(&stored_name, upload)?)).await?;
        app.audit(&caller, "artifact.upload", &name);
        stored.push(name);
    }
    Ok(Json(json!({"stored": stored})))
}

/// Downloads an artifact.
#[utoipa::path(get, path = "/api/artifacts/{name}", tag = "artifacts",
    params(("name" = String, Path, description = "File name")),
    responses((status = 200, description = "The file"), (status = 403, description = "Bad name"),
        (status = 404, description = "No such artifact")))]
async fn get_artifact(
    State(app): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let project = app.project.clone();
    let lookup = name.clone();
    let path = blocking(move || Ok(project.artifact_path(&lookup)?)).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(ApiError::internal)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let disposition = crate::api::attachment(&name);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Deletes an artifact.
#[utoipa::path(delete, path = "/api/artifacts/{name}", tag = "artifacts",
    params(("name" = String, Path, description = "File name")),
    responses((status = 200, description = "Deleted"), (status = 404, description = "No such artifact")))]
async fn delete_artifact(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project = app.project.clone();
    let target = name.clone();
    blocking(move || Ok(project.delete_artifact(&target)?)).await?;
    app.audit(&caller, "artifact.delete", &name);
    Ok(Json(json!({"message": "artifact deleted"})))
}

#[derive(Debug, Deserialize, IntoParams)]
struct RenameQuery {
    /// The new file name.
    new_name: String,
}

/// Renames an artifact; settings that refer to it are updated in the state.
#[utoipa::path(post, path = "/api/artifacts/rename/{name}", tag = "artifacts",
    params(("name" = String, Path, description = "Current file name"), RenameQuery),
    responses((status = 200, description = "Renamed"), (status = 404, description = "No such artifact"),
        (status = 409, description = "The new name exists")))]
async fn rename_artifact(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<RenameQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = app.project.clone();
    let (old, new) = (name.clone(), query.new_name.clone());
    let updated = blocking(move || Ok(project.rename_artifact(&old, &new)?)).await?;
    app.audit(
        &caller,
        "artifact.rename",
        &format!("{name} -> {}", query.new_name),
    );
    Ok(Json(
        json!({"message": "artifact renamed", "references_updated": updated}),
    ))
}
