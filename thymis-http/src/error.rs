//! API errors: every failure becomes `{"detail": …}` with the right status, and client errors are
//! never reported as 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use thymis::project::ProjectError;
use thymis::repository::RepositoryError;

/// An error answer of the API (boxed: it travels through every `Result` of the handlers).
#[derive(Debug)]
pub struct ApiError(Box<ErrorBody>);

#[derive(Debug)]
struct ErrorBody {
    status: StatusCode,
    detail: Value,
    extra: Option<(&'static str, Value)>,
}

impl ApiError {
    /// An error with a text detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorBody {
            status,
            detail: Value::String(detail.into()),
            extra: None,
        }))
    }

    /// 400
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "No valid session")
    }

    /// 403
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 500: logged, and the client gets no internals.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the controller log",
        )
    }

    /// Replaces the detail with structured data, e.g. a list of problems.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.0.detail = detail;
        self
    }

    /// Adds a field beside `detail`, e.g. the current state of a conflict.
    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        self.0.extra = Some((key, value));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ErrorBody {
            status,
            detail,
            extra,
        } = *self.0;
        let mut body = json!({ "detail": detail });
        if let Some((key, value)) = extra {
            body[key] = value;
        }
        (status, Json(body)).into_response()
    }
}

impl From<RepositoryError> for ApiError {
    fn from(err: RepositoryError) -> Self {
        match err {
            RepositoryError::NothingToCommit | RepositoryError::Dirty => {
                ApiError::new(StatusCode::CONFLICT, err.to_string())
            }
            RepositoryError::UnknownCommit(_) => ApiError::not_found(err.to_string()),
            RepositoryError::EmptyMessage => ApiError::bad_request(err.to_string()),
            RepositoryError::Render(_) | RepositoryError::State(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
            }
            RepositoryError::Io(_) | RepositoryError::Git(_) => ApiError::internal(err),
        }
    }
}

impl From<ProjectError> for ApiError {
    fn from(err: ProjectError) -> Self {
        match err {
            ProjectError::Conflict { current } => {
                let state: Value = serde_json::from_str(&current.json).unwrap_or(Value::Null);
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "the state was changed by someone else; it is now at revision {}",
                        current.revision
                    ),
                )
                .with(
                    "state",
                    json!({"revision": current.revision, "state": state}),
                )
            }
            ProjectError::Invalid(problems) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, String::new())
                    .with_detail(serde_json::to_value(&problems).unwrap_or(Value::Null))
            }
            ProjectError::Repository(err) => err.into(),
        }
    }
}

/// Runs blocking work (git, SQLite, files) off the async threads.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// Gives error answers that did not come from [`ApiError`] (e.g. the framework's own rejections
/// of malformed JSON, query strings or oversize bodies) the API's `{"detail": …}` shape.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut rewritten = (status, Json(json!({ "detail": detail }))).into_response();
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}
