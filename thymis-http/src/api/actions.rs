//! Project actions that start tasks (`POST /api/action/build`, `…/update`,
//! `…/build-download-image`) and the download of built images (`GET /api/download-image`).

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use thymis::task::TaskSubmission;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(build))
        .routes(routes!(update))
        .routes(routes!(build_download_image))
        .routes(routes!(download_image))
}

async fn submit(
    app: &AppState,
    caller: &Caller,
    submission: TaskSubmission,
    message: &str,
) -> Result<Json<Value>, ApiError> {
    let kind = submission.kind();
    let task = app
        .tasks
        .submit(submission, Some(caller.user.username.clone()))
        .await
        .map_err(ApiError::internal)?;
    app.audit(caller, &format!("task.submit.{kind}"), &task.id.to_string());
    Ok(Json(json!({"message": message, "task_id": task.id})))
}

/// Builds every config of the working tree (uncommitted changes included).
#[utoipa::path(post, path = "/api/action/build", tag = "actions",
    responses((status = 200, description = "The task was submitted")))]
async fn build(State(app): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    submit(
        &app,
        &caller,
        TaskSubmission::BuildProject {},
        "command started",
    )
    .await
}

/// Updates the project's flake inputs (`flake.lock`).
#[utoipa::path(post, path = "/api/action/update", tag = "actions",
    responses((status = 200, description = "The task was submitted")))]
async fn update(State(app): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    submit(
        &app,
        &caller,
        TaskSubmission::ProjectFlakeUpdate {},
        "update started",
    )
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
struct ConfigQuery {
    /// The config's identifier.
    identifier: String,
}

/// Builds the image of a config from the last commit; refused while there are uncommitted
/// changes, because the image would not contain them.
#[utoipa::path(post, path = "/api/action/build-download-image", tag = "actions",
    params(ConfigQuery),
    responses((status = 200, description = "The task was submitted"),
        (status = 400, description = "The config has no image format"),
        (status = 404, description = "No such config"),
        (status = 409, description = "The repository has uncommitted changes")))]
async fn build_download_image(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<ConfigQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = app.project.clone();
    let config_id = query.identifier;
    let submission = blocking(move || {
        let snapshot = project.snapshot();
        if !snapshot
            .state
            .configs
            .iter()
            .any(|c| c.identifier == config_id)
        {
            return Err(ApiError::not_found(format!(
                "config `{config_id}` not found"
            )));
        }
        if !project.status()?.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the repository has uncommitted changes; commit them first, so the image \
                 contains them",
            ));
        }
        let commit = project.head_commit()?.ok_or_else(|| {
            ApiError::new(StatusCode::CONFLICT, "the repository has no commit yet")
        })?;
        let image_format =
            thymis::image::image_format(&snapshot.state, &config_id).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "config `{config_id}` has no Device module with an image format"
                ))
            })?;
        Ok(TaskSubmission::BuildDeviceImage {
            configuration_id: config_id,
            commit,
            image_format,
        })
    })
    .await?;
    submit(&app, &caller, submission, "image build started").await
}

/// Downloads a config's built image (`Range` requests supported, so a broken download can be
/// resumed). Each download keeps the image for another retention period.
#[utoipa::path(get, path = "/api/download-image", tag = "actions", params(ConfigQuery),
    responses((status = 200, description = "The image", content_type = "application/octet-stream"),
        (status = 206, description = "Part of the image"),
        (status = 404, description = "No image was built for this config")))]
async fn download_image(
    State(app): State<AppState>,
    _caller: Caller,
    Query(query): Query<ConfigQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let images_dir = app.settings.images_dir();
    let config_id = query.identifier;
    let valid_id = !config_id.is_empty()
        && config_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let path = valid_id
        .then(|| thymis::image::find_image(&images_dir, &config_id))
        .flatten()
        .ok_or_else(|| ApiError::not_found(format!("no image built for `{config_id}`")))?;
    if request.method() == Method::GET {
        if let Err(err) = thymis::image::touch(&path) {
            tracing::warn!(path = %path.display(), error = %err, "cannot mark an image as used");
        }
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("img")
        .to_owned();
    let mut response = ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(ApiError::internal)?
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        super::attachment(&format!("thymis-image-{config_id}.{extension}")),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
