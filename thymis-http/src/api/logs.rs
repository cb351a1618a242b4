//! Device logs (http-api.md §2.8): paged and filtered lines, program names, and a download.
//! Besides upstream's filters, `search` (text in the message) and `max_severity`.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use thymis::devices::iso;
use thymis::store::{LogQuery, LogRecord};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::devices::registry;
use crate::api::params::{ValidPath, ValidQuery};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(device_logs))
        .routes(routes!(program_names))
        .routes(routes!(download_logs))
}

/// A log line (upstream `LogEntry`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntryView {
    uuid: String,
    timestamp: String,
    message: String,
    host: Option<String>,
    facility: Option<u8>,
    severity: Option<u8>,
    programname: Option<String>,
    syslogtag: Option<String>,
}

impl From<LogRecord> for LogEntryView {
    fn from(line: LogRecord) -> Self {
        LogEntryView {
            uuid: line.id,
            timestamp: iso(&line.at),
            message: line.message,
            host: line.hostname,
            facility: line.facility,
            severity: line.severity,
            programname: line.program,
            syslogtag: line.syslogtag,
        }
    }
}

/// Upstream's `LogList`.
#[derive(Debug, Serialize, ToSchema)]
struct LogList {
    logs: Vec<LogEntryView>,
}

#[derive(Debug, Deserialize, IntoParams)]
struct LogsQuery {
    /// Only lines at or after this ISO time (UTC when it has no offset).
    from_datetime: Option<String>,
    /// Only lines at or before this ISO time.
    to_datetime: Option<String>,
    /// Only programs whose name contains this.
    program_name: Option<String>,
    /// `program_name` must match exactly.
    #[serde(default)]
    exact_program_name: bool,
    /// Only lines whose message contains this (ASCII letters in any case).
    search: Option<String>,
    /// Only lines this severe or more (0 emergency … 7 debug).
    max_severity: Option<u8>,
    /// At most this many lines (1–10000, default 100).
    limit: Option<usize>,
    /// Skip this many of the newest (default 0).
    offset: Option<usize>,
}

/// An ISO time from a query: RFC 3339, or without offset (then UTC) as Python's
/// `fromisoformat` accepts it.
fn query_time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc());
        }
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("{field} is not an ISO date and time"),
    ))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A device's log lines, newest first.
#[utoipa::path(get, path = "/api/logs/{id}", tag = "logs",
    params(("id" = Uuid, Path, description = "The device"), LogsQuery),
    responses((status = 200, body = LogList), (status = 404, description = "No such device"),
        (status = 422, description = "Invalid filter")))]
async fn device_logs(
    State(app): State<AppState>,
    _caller: Caller,
    ValidPath(id): ValidPath<Uuid>,
    ValidQuery(query): ValidQuery<LogsQuery>,
) -> Result<Json<LogList>, ApiError> {
    let log_query = LogQuery {
        from: query
            .from_datetime
            .as_deref()
            .map(|t| query_time("from_datetime", t))
            .transpose()?,
        to: query
            .to_datetime
            .as_deref()
            .map(|t| query_time("to_datetime", t))
            .transpose()?,
        program: non_empty(query.program_name),
        exact_program: query.exact_program_name,
        search: non_empty(query.search),
        max_severity: query.max_severity,
        limit: query.limit.unwrap_or(100),
        offset: query.offset.unwrap_or(0),
    };
    let lines = registry(&app, move |r| r.logs(id, &log_query)).await?;
    Ok(Json(LogList {
        logs: lines.into_iter().map(LogEntryView::from).collect(),
    }))
}

/// The program names in a device's logs, sorted.
#[utoipa::path(get, path = "/api/logs/{id}/program-names", tag = "logs",
    params(("id" = Uuid, Path, description = "The device")),
    responses((status = 200, body = [String]), (status = 404, description = "No such device")))]
async fn program_names(
    State(app): State<AppState>,
    _caller: Caller,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(
        registry(&app, move |r| r.log_program_names(id)).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
struct DownloadQuery {
    /// Minutes before the newest line (1–10080).
    duration_minutes: u32,
}

/// A device's log lines of the last `duration_minutes` before its newest line, as a text file.
#[utoipa::path(get, path = "/api/logs/{id}/download", tag = "logs",
    params(("id" = Uuid, Path, description = "The device"), DownloadQuery),
    responses((status = 200, description = "The lines", content_type = "text/plain"),
        (status = 404, description = "No such device"),
        (status = 422, description = "Missing or invalid duration")))]
async fn download_logs(
    State(app): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<Uuid>,
    ValidQuery(query): ValidQuery<DownloadQuery>,
) -> Result<Response, ApiError> {
    let download = registry(&app, move |r| r.log_download(id, query.duration_minutes)).await?;
    app.audit(&caller, "device.logs.download", &id.to_string());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                crate::api::attachment(&download.filename),
            ),
        ],
        download.text,
    )
        .into_response())
}
