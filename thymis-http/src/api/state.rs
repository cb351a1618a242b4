//! State, modules, repository status, commits, history and revert.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thymis::project::StateSnapshot;
use thymis::repository::{ChangeKind, CommitInfo, FileChange};
use thymis::state::State as ProjectState;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_state, patch_state))
        .routes(routes!(available_modules))
        .routes(routes!(repo_status))
        .routes(routes!(commit))
        .routes(routes!(history))
        .routes(routes!(history_diff))
        .routes(routes!(history_changes))
        .routes(routes!(revert_commit))
}

fn etag(revision: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// The project state (`state.json`). The `ETag` header carries its revision; send it back as
/// `If-Match` with `PATCH /api/state` so a concurrent change is detected instead of overwritten.
#[utoipa::path(get, path = "/api/state", tag = "state",
    responses((status = 200, description = "The state", body = Object)))]
async fn get_state(State(app): State<AppState>, _caller: Caller) -> Response {
    state_response(&app.project.snapshot())
}

/// The snapshot's JSON, sent without copying it (it can be megabytes).
fn state_response(snapshot: &StateSnapshot) -> Response {
    struct Text(Arc<str>);
    impl AsRef<[u8]> for Text {
        fn as_ref(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag(&snapshot.revision)),
        ],
        Body::from(Bytes::from_owner(Text(snapshot.json.clone()))),
    )
        .into_response()
}

/// The revision a change is based on, from `If-Match` or the `revision` query parameter.
#[derive(Debug, Deserialize, IntoParams)]
struct RevisionQuery {
    /// The revision (as in `ETag`) the new state is based on.
    revision: Option<String>,
}

/// Replaces the whole state. Refused with 409 and the current state when `If-Match` (or
/// `?revision=`) names an older revision, and with 422 listing every problem when the state has
/// errors.
#[utoipa::path(patch, path = "/api/state", tag = "state", params(RevisionQuery),
    request_body(content = Object, description = "The whole state"),
    responses(
        (status = 200, description = "The new state", body = Object),
        (status = 409, description = "Changed by someone else; carries the current state"),
        (status = 422, description = "The state has errors")))]
async fn patch_state(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<RevisionQuery>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let expected = match headers.get(header::IF_MATCH) {
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| ApiError::bad_request("If-Match must be an ETag of /api/state"))?
                .trim();
            // `*` matches any existing state.
            (value != "*").then(|| value.trim_start_matches("W/").trim_matches('"').to_owned())
        }
        None => query.revision,
    };
    let (state, _) = ProjectState::from_json_value(body).map_err(|err| match err {
        thymis::state::StateError::Shape(problems) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, String::new())
                .with_detail(serde_json::to_value(problems).unwrap_or(Value::Null))
        }
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
    })?;
    let project = app.project.clone();
    let (snapshot, _warnings) =
        blocking(move || Ok(project.replace_state(state, expected.as_deref())?)).await?;
    app.audit(&caller, "state.replace", &snapshot.revision);
    Ok(state_response(&snapshot))
}

/// Modules that can be added to configs and tags, localised by the `locale` cookie (en, de).
#[utoipa::path(get, path = "/api/available_modules", tag = "state",
    responses((status = 200, description = "Module catalogue", body = [Object])))]
async fn available_modules(
    State(app): State<AppState>,
    _caller: Caller,
    cookies: CookieJar,
) -> Json<Value> {
    let locale = match cookies.get("locale").map(|c| c.value()) {
        Some("de") => "de",
        _ => "en",
    };
    Json(app.project.registry().to_wire(locale))
}

/// One uncommitted change, in upstream's shape.
#[derive(Debug, Serialize, ToSchema)]
struct RepoChange {
    /// Repository-relative path.
    path: String,
    /// Its folder.
    dir: String,
    /// Its file name.
    file: String,
    /// Unified diff against the last commit.
    diff: String,
    /// added, modified or deleted.
    kind: String,
}

/// Uncommitted changes.
#[derive(Debug, Serialize, ToSchema)]
struct RepoStatus {
    changes: Vec<RepoChange>,
}

fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "added",
        ChangeKind::Modified => "modified",
        ChangeKind::Deleted => "deleted",
    }
}

impl From<FileChange> for RepoChange {
    fn from(change: FileChange) -> Self {
        let (dir, file) = match change.path.rsplit_once('/') {
            Some((dir, file)) => (dir.to_owned(), file.to_owned()),
            None => (String::new(), change.path.clone()),
        };
        RepoChange {
            kind: kind_name(change.kind).to_owned(),
            path: change.path,
            dir,
            file,
            diff: change.diff,
        }
    }
}

/// Uncommitted changes of the project, each with its diff.
#[utoipa::path(get, path = "/api/repo_status", tag = "history",
    responses((status = 200, description = "Changes", body = RepoStatus)))]
async fn repo_status(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<RepoStatus>, ApiError> {
    let project = app.project.clone();
    let changes = blocking(move || Ok(project.status()?)).await?;
    Ok(Json(RepoStatus {
        changes: changes.into_iter().map(RepoChange::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
struct CommitQuery {
    /// The commit message.
    message: String,
}

/// Commits every change, with the logged-in user as author.
#[utoipa::path(post, path = "/api/action/commit", tag = "history", params(CommitQuery),
    responses((status = 200, description = "Committed"), (status = 409, description = "Nothing to commit")))]
async fn commit(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<CommitQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = app.project.clone();
    let author = caller.author();
    let info = blocking(move || Ok(project.commit(&query.message, Some(&author))?)).await?;
    app.audit(&caller, "repository.commit", &info.sha);
    Ok(Json(
        serde_json::json!({"message": "commit successful", "commit": commit_json(&info)}),
    ))
}

fn commit_json(info: &CommitInfo) -> Value {
    serde_json::to_value(info).unwrap_or(Value::Null)
}

#[derive(Debug, Deserialize, IntoParams)]
struct HistoryQuery {
    /// At most this many commits (default 100).
    limit: Option<usize>,
}

/// Commits, newest first: `[{SHA, SHA1, message, date, author}]`.
#[utoipa::path(get, path = "/api/history", tag = "history", params(HistoryQuery),
    responses((status = 200, description = "Commits", body = [Object])))]
async fn history(
    State(app): State<AppState>,
    _caller: Caller,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Vec<CommitInfo>>, ApiError> {
    let project = app.project.clone();
    let limit = query.limit.unwrap_or(100).min(10_000);
    Ok(Json(blocking(move || Ok(project.history(limit)?)).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case)]
struct DiffQuery {
    /// From this commit (default: the empty project).
    refA: Option<String>,
    /// To this commit (default: HEAD).
    refB: Option<String>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

async fn changes_between(app: &AppState, query: DiffQuery) -> Result<Vec<FileChange>, ApiError> {
    let project = app.project.clone();
    blocking(move || {
        Ok(project.diff(
            non_empty(query.refA).as_deref(),
            non_empty(query.refB).as_deref(),
        )?)
    })
    .await
}

/// The diff of `state.json` between two commits, as a JSON string (upstream's shape).
#[utoipa::path(get, path = "/api/history/diff", tag = "history", params(DiffQuery),
    responses((status = 200, description = "Unified diff of state.json", body = String)))]
async fn history_diff(
    State(app): State<AppState>,
    _caller: Caller,
    Query(query): Query<DiffQuery>,
) -> Result<Json<String>, ApiError> {
    let changes = changes_between(&app, query).await?;
    Ok(Json(
        changes
            .into_iter()
            .find(|c| c.path == "state.json")
            .map(|c| c.diff)
            .unwrap_or_default(),
    ))
}

/// Every file changed between two commits, each with its diff.
#[utoipa::path(get, path = "/api/history/changes", tag = "history", params(DiffQuery),
    responses((status = 200, description = "Changed files", body = [RepoChange])))]
async fn history_changes(
    State(app): State<AppState>,
    _caller: Caller,
    Query(query): Query<DiffQuery>,
) -> Result<Json<Vec<RepoChange>>, ApiError> {
    let changes = changes_between(&app, query).await?;
    Ok(Json(changes.into_iter().map(RepoChange::from).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
struct RevertQuery {
    /// The commit whose project is restored.
    commit_sha: String,
}

/// Restores the whole project as it was at a commit, recorded as a new commit. Refused with
/// 409 while there are uncommitted changes.
#[utoipa::path(post, path = "/api/history/revert-commit", tag = "history", params(RevertQuery),
    responses((status = 200, description = "The new commit"), (status = 404, description = "Unknown commit"),
        (status = 409, description = "Uncommitted changes")))]
async fn revert_commit(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<RevertQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = app.project.clone();
    let author = caller.author();
    let info = blocking(move || Ok(project.revert_to(&query.commit_sha, Some(&author))?)).await?;
    app.audit(&caller, "repository.revert", &info.sha);
    Ok(Json(
        serde_json::json!({"message": info.message, "commit": commit_json(&info)}),
    ))
}
