//! Devices (upstream "deployment infos", http-api.md §2.6): list, show, edit, archive and
//! delete devices, their hardware, connection history, metrics and error logs.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use thymis::agent::protocol::ControllerMessage;
use thymis::devices::{iso, DeviceError, DeviceInfo, MetricGranularity};
use thymis::store::{ConnectionRecord, DeviceUpdate, MetricSample};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::device_json::{device_json, DeploymentInfo, HardwareDevice};
use crate::api::logs::LogEntryView;
use crate::api::params::{ValidPath, ValidQuery};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(devices_by_config))
        .routes(routes!(all_devices))
        .routes(routes!(get_device, update_device, delete_device))
        .routes(routes!(hardware_devices))
        .routes(routes!(connection_history))
        .routes(routes!(device_metrics))
        .routes(routes!(error_logs))
}

impl From<DeviceError> for ApiError {
    fn from(err: DeviceError) -> Self {
        match err {
            DeviceError::NotFound { .. } => ApiError::not_found(err.to_string()),
            DeviceError::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
            }
            DeviceError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, message),
            DeviceError::Store(_) | DeviceError::Vault(_) | DeviceError::Secret(_) => {
                ApiError::internal(err)
            }
        }
    }
}

/// Runs a registry call off the async threads.
pub(crate) async fn registry<T, F>(app: &AppState, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&thymis::devices::DeviceRegistry) -> Result<T, DeviceError> + Send + 'static,
    T: Send + 'static,
{
    let devices = app.devices.clone();
    blocking(move || f(&devices).map_err(ApiError::from)).await
}

/// A JSON body.
fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// One device as a JSON response.
fn device_response(info: &DeviceInfo, app: &AppState) -> Result<Response, ApiError> {
    let connected = app.agents.is_connected(info.device.id);
    Ok(json_response(device_json(info, connected)?))
}

/// Every device, or those running `config_id`, as a JSON response. Read and written off the
/// async threads: at 10,000 devices the body is about 10 MiB.
async fn device_list(app: &AppState, config_id: Option<String>) -> Result<Response, ApiError> {
    let (cache, devices, agents) = (
        app.device_list.clone(),
        app.devices.clone(),
        app.agents.clone(),
    );
    let body = blocking(move || cache.write_list(&devices, &agents, config_id.as_deref())).await?;
    Ok(json_response(body))
}

/// The devices recorded as running a config.
#[utoipa::path(get, path = "/api/deployment_infos_by_config_id/{config_id}", tag = "devices",
    params(("config_id" = String, Path, description = "The config's identifier")),
    responses((status = 200, body = [DeploymentInfo])))]
async fn devices_by_config(
    State(app): State<AppState>,
    _caller: Caller,
    ValidPath(config_id): ValidPath<String>,
) -> Result<Response, ApiError> {
    device_list(&app, Some(config_id)).await
}

/// Every device: first seen newest first, then last seen, config and commit.
#[utoipa::path(get, path = "/api/all_deployment_infos", tag = "devices",
    responses((status = 200, body = [DeploymentInfo])))]
async fn all_devices(State(app): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    device_list(&app, None).await
}

/// One device.
#[utoipa::path(get, path = "/api/deployment_info/{id}", tag = "devices",
    params(("id" = Uuid, Path, description = "The device")),
    responses((status = 200, body = DeploymentInfo), (status = 404, description = "No such device")))]
async fn get_device(
    State(app): State<AppState>,
    _caller: Caller,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Response, ApiError> {
    let info = registry(&app, move |r| r.device(id)).await?;
    device_response(&info, &app)
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Changes to a device (upstream `UpdateDeploymentInfo`): only the fields present are applied;
/// `name`, `location`, `notes`, `deployed_config_id` and `reachable_deployed_host` may be null.
#[derive(Debug, Default, Deserialize, ToSchema)]
struct UpdateDeploymentInfo {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    deployed_config_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    ssh_public_key: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    reachable_deployed_host: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    location: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    archived: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    notes: Option<Option<String>>,
}

fn not_null<T>(field: &str, value: Option<Option<T>>) -> Result<Option<T>, ApiError> {
    match value {
        Some(None) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field} cannot be null"),
        )),
        Some(Some(value)) => Ok(Some(value)),
        None => Ok(None),
    }
}

/// Edits a device. A new name (or config) is pushed to the device's agent as its hostname.
#[utoipa::path(patch, path = "/api/deployment_info/{id}", tag = "devices",
    params(("id" = Uuid, Path, description = "The device")),
    request_body = UpdateDeploymentInfo,
    responses((status = 200, body = DeploymentInfo), (status = 404, description = "No such device"),
        (status = 409, description = "Another device has this key"),
        (status = 422, description = "Invalid value")))]
async fn update_device(
    State(app): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<Uuid>,
    Json(request): Json<UpdateDeploymentInfo>,
) -> Result<Response, ApiError> {
    let renames = request.name.is_some() || request.deployed_config_id.is_some();
    let update = DeviceUpdate {
        ssh_public_key: not_null("ssh_public_key", request.ssh_public_key)?,
        archived: not_null("archived", request.archived)?,
        name: request.name,
        notes: request.notes,
        location: request.location,
        deployed_config_id: request.deployed_config_id,
        reachable_deployed_host: request.reachable_deployed_host,
        ..DeviceUpdate::default()
    };
    let info = registry(&app, move |r| r.update(id, update)).await?;
    app.audit(&caller, "device.update", &id.to_string());
    if renames && app.agents.is_connected(id) {
        let hostname = registry(&app, move |r| r.hostname_for(id)).await?;
        if let Err(err) = app
            .agents
            .send(id, &ControllerMessage::UpdateHostname { hostname })
            .await
        {
            // It disconnected meanwhile; it gets the hostname when it is admitted again.
            tracing::debug!(error = %err, "hostname update not sent");
        }
    }
    device_response(&info, &app)
}

/// Deletes a device with its connection history, metrics and logs.
#[utoipa::path(delete, path = "/api/deployment_info/{id}", tag = "devices",
    params(("id" = Uuid, Path, description = "The device")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such device")))]
async fn delete_device(
    State(app): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    registry(&app, move |r| r.delete(id)).await?;
    // Its agent must not stay connected to a record that no longer exists.
    app.agents.disconnect(id);
    app.audit(&caller, "device.delete", &id.to_string());
    Ok(StatusCode::NO_CONTENT)
}

/// Every hardware identity, last seen first.
#[utoipa::path(get, path = "/api/hardware_device", tag = "devices",
    responses((status = 200, body = [HardwareDevice])))]
async fn hardware_devices(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let rows = registry(&app, |r| r.hardware_devices()).await?;
    Ok(Json(rows.iter().map(HardwareDevice::from).collect::<Vec<_>>()).into_response())
}

/// One agent connection (upstream `AgentConnectionShort`).
#[derive(Debug, Serialize, ToSchema)]
struct AgentConnection {
    id: Uuid,
    connected_at: String,
    disconnected_at: Option<String>,
}

impl From<ConnectionRecord> for AgentConnection {
    fn from(row: ConnectionRecord) -> Self {
        AgentConnection {
            id: row.id,
            connected_at: iso(&row.connected_at),
            disconnected_at: row.disconnected_at.as_ref().map(iso),
        }
    }
}

/// A device's ten newest connections, newest first.
#[utoipa::path(get, path = "/api/deployment_info/{id}/connection_history", tag = "devices",
    params(("id" = Uuid, Path, description = "The device")),
    responses((status = 200, body = [AgentConnection]), (status = 404, description = "No such device")))]
async fn connection_history(
    State(app): State<AppState>,
    _caller: Caller,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Vec<AgentConnection>>, ApiError> {
    let rows = registry(&app, move |r| r.connection_history(id)).await?;
    Ok(Json(rows.into_iter().map(AgentConnection::from).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
struct MetricsQuery {
    /// How many hours back (1–168, default 168).
    hours: Option<u32>,
    /// Bucket width: `1min`, `15min`, `1h` (default), `6h` or `1d`.
    granularity: Option<String>,
}

/// A bucket of metrics (upstream `DeviceMetricPoint`).
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricPoint {
    timestamp: String,
    cpu_percent: f64,
    ram_percent: f64,
    disk_percent: f64,
}

impl From<MetricSample> for MetricPoint {
    fn from(sample: MetricSample) -> Self {
        MetricPoint {
            timestamp: iso(&sample.at),
            cpu_percent: sample.cpu_percent,
            ram_percent: sample.ram_percent,
            disk_percent: sample.disk_percent,
        }
    }
}

/// A device's metrics averaged in epoch-aligned buckets, oldest first.
#[utoipa::path(get, path = "/api/deployment_info/{id}/metrics", tag = "devices",
    params(("id" = Uuid, Path, description = "The device"), MetricsQuery),
    responses((status = 200, body = [MetricPoint]), (status = 404, description = "No such device"),
        (status = 422, description = "Invalid hours or granularity")))]
async fn device_metrics(
    State(app): State<AppState>,
    _caller: Caller,
    ValidPath(id): ValidPath<Uuid>,
    ValidQuery(query): ValidQuery<MetricsQuery>,
) -> Result<Json<Vec<MetricPoint>>, ApiError> {
    let granularity = match query.granularity.as_deref() {
        Some(text) => text
            .parse::<MetricGranularity>()
            .map_err(|message| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message))?,
        None => MetricGranularity::default(),
    };
    let hours = query.hours.unwrap_or(168);
    let now = chrono::Utc::now();
    let samples = registry(&app, move |r| r.metrics(id, now, hours, granularity)).await?;
    Ok(Json(samples.into_iter().map(MetricPoint::from).collect()))
}

/// A device's 50 newest log lines of severity error or worse.
#[utoipa::path(get, path = "/api/deployment_info/{id}/error_logs", tag = "devices",
    params(("id" = Uuid, Path, description = "The device")),
    responses((status = 200, body = [LogEntryView]), (status = 404, description = "No such device")))]
async fn error_logs(
    State(app): State<AppState>,
    _caller: Caller,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Vec<LogEntryView>>, ApiError> {
    let lines = registry(&app, move |r| r.error_logs(id)).await?;
    Ok(Json(lines.into_iter().map(LogEntryView::from).collect()))
}
