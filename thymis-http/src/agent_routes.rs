//! Routes under `/agent` that devices call without a session (http-api.md §2.14): log
//! ingestion for rsyslog (`POST /agent/logs`) and the removed polling API, which answers 404.
//! The agent WebSocket (`/agent/relay`) joins these routes.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use thymis::agent::protocol::LogEntry;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::devices::registry;
use crate::app::AppState;
use crate::error::ApiError;

/// Largest log batch accepted; rsyslog sends far smaller ones.
pub const MAX_LOG_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(
            OpenApiRouter::new()
                .routes(routes!(agent_logs))
                .layer(DefaultBodyLimit::max(MAX_LOG_BATCH_BYTES)),
        )
        .routes(routes!(register))
        .routes(routes!(heartbeat))
        .routes(routes!(notify))
}

/// One entry of an rsyslog batch (agent-protocol.md §8), upstream's field names. Numbers may
/// arrive as JSON numbers or strings, depending on the rsyslog template.
#[derive(Debug, Deserialize)]
struct UpstreamLogEntry {
    uuid: String,
    timestamp: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    facility: Option<Value>,
    #[serde(default)]
    severity: Option<Value>,
    #[serde(default)]
    programname: Option<String>,
    #[serde(default)]
    syslogtag: Option<String>,
}

/// A syslog number clamped into `0..=max`; `None` when it is not a number.
fn syslog_number(value: Option<&Value>, max: u8) -> Option<u8> {
    let number = match value? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some(number.clamp(0, i64::from(max)) as u8)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Answered to anything unauthorised: says nothing about what was wrong.
fn not_found() -> ApiError {
    ApiError::not_found("Not Found")
}

/// Log ingestion for the rsyslog `omhttp` output of devices: a JSON array of entries with the
/// headers `X-Thymis-Token` and `X-Thymis-Ssh-Pubkey`. A missing or invalid token, or a key
/// whose device was not admitted with that token, is answered 404. Entries are stored by
/// their `uuid`, so a resent batch is stored once.
#[utoipa::path(post, path = "/agent/logs", tag = "agent",
    params(
        ("X-Thymis-Token" = String, Header, description = "The device's agent token"),
        ("X-Thymis-Ssh-Pubkey" = String, Header, description = "The device's SSH host key"),
        ("X-Thymis-Hostname" = Option<String>, Header, description = "The device's hostname")),
    request_body(content = Vec<Object>, description = "[{uuid, timestamp, message, host, facility, severity, programname, syslogtag}]"),
    responses((status = 200, description = "Stored (`null`)"),
        (status = 404, description = "Missing or invalid token or key"),
        (status = 408, description = "The body did not arrive"),
        (status = 413, description = "The batch is larger than 4 MiB"),
        (status = 422, description = "Not a JSON array of log entries")))]
async fn agent_logs(State(app): State<AppState>, request: Request) -> Result<Json<()>, ApiError> {
    let headers = request.headers();
    let (Some(token), Some(public_key)) = (
        header(headers, "x-thymis-token"),
        header(headers, "x-thymis-ssh-pubkey"),
    ) else {
        return Err(not_found());
    };
    let default_host = header(headers, "x-thymis-hostname");
    // Checked before the body is read, so unauthorised senders cannot make us buffer it.
    let device = registry(&app, move |r| r.log_sender(&token, &public_key)).await?;
    let Some(device) = device else {
        return Err(not_found());
    };
    let body = Bytes::from_request(request, &app)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the log batch is larger than 4 MiB",
                )
            } else {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "the log batch did not arrive")
            }
        })?;
    let entries: Vec<UpstreamLogEntry> = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("not a JSON array of log entries: {err}"),
        )
    })?;
    // One batch per host name (they only differ around a rename).
    let mut by_host: BTreeMap<Option<String>, Vec<LogEntry>> = BTreeMap::new();
    for entry in entries {
        let host = entry.host.clone().or_else(|| default_host.clone());
        by_host.entry(host).or_default().push(LogEntry {
            uuid: entry.uuid,
            timestamp: entry.timestamp,
            message: entry.message,
            facility: syslog_number(entry.facility.as_ref(), 23),
            severity: syslog_number(entry.severity.as_ref(), 7),
            programname: entry.programname,
            syslogtag: entry.syslogtag,
        });
    }
    registry(&app, move |r| {
        for (host, entries) in by_host {
            r.record_logs(
                Some(device.id),
                &device.ssh_public_key,
                host.as_deref(),
                &entries,
            )?;
        }
        Ok(())
    })
    .await?;
    Ok(Json(()))
}

fn deprecated(endpoint: &str) -> ApiError {
    ApiError::not_found(format!("The /agent/{endpoint} endpoint is deprecated"))
}

/// Removed: agents connect to `/agent/relay` instead.
#[utoipa::path(post, path = "/agent/register", tag = "agent",
    responses((status = 404, description = "Deprecated")))]
async fn register() -> ApiError {
    deprecated("register")
}

/// Removed: agents keep alive on `/agent/relay` instead.
#[utoipa::path(post, path = "/agent/heartbeat", tag = "agent",
    responses((status = 404, description = "Deprecated")))]
async fn heartbeat() -> ApiError {
    deprecated("heartbeat")
}

/// Removed: agents report themselves on `/agent/relay` instead.
#[utoipa::path(post, path = "/agent/notify", tag = "agent",
    responses((status = 404, description = "Deprecated")))]
async fn notify() -> ApiError {
    deprecated("notify")
}
