//! Fleet views (http-api.md §2.7, §11): connectivity over time, availability per device, the
//! newest metrics of every device, and alerts.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use thymis::devices::{iso, FleetAlert};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::devices::registry;
use crate::api::params::ValidQuery;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(connectivity))
        .routes(routes!(latest_metrics))
        .routes(routes!(availability))
        .routes(routes!(alerts))
}

#[derive(Debug, Deserialize, IntoParams)]
struct SeriesQuery {
    /// How many hours back (1–2160, default 24).
    hours: Option<u32>,
    /// Number of intervals (1–200, default 48); there is one more sample point.
    buckets: Option<u32>,
}

impl SeriesQuery {
    fn hours_and_buckets(&self) -> (u32, u32) {
        (self.hours.unwrap_or(24), self.buckets.unwrap_or(48))
    }
}

/// Connected devices at one time.
#[derive(Debug, Serialize, ToSchema)]
struct ConnectivityPoint {
    timestamp: String,
    connected_count: u64,
}

/// How many devices were connected at evenly spaced times up to now.
#[utoipa::path(get, path = "/api/fleet/connectivity", tag = "fleet", params(SeriesQuery),
    responses((status = 200, body = [ConnectivityPoint]),
        (status = 422, description = "hours or buckets out of range")))]
async fn connectivity(
    State(app): State<AppState>,
    _caller: Caller,
    ValidQuery(query): ValidQuery<SeriesQuery>,
) -> Result<Json<Vec<ConnectivityPoint>>, ApiError> {
    let (hours, buckets) = query.hours_and_buckets();
    let now = chrono::Utc::now();
    let points = registry(&app, move |r| r.connectivity(now, hours, buckets)).await?;
    Ok(Json(
        points
            .into_iter()
            .map(|p| ConnectivityPoint {
                timestamp: iso(&p.timestamp),
                connected_count: p.connected_count,
            })
            .collect(),
    ))
}

/// The newest metrics of a device (upstream `FleetDeviceMetric`).
#[derive(Debug, Serialize, ToSchema)]
struct FleetDeviceMetric {
    deployment_info_id: Uuid,
    name: Option<String>,
    cpu_percent: f64,
    ram_percent: f64,
    disk_percent: f64,
    timestamp: String,
}

/// The newest metrics sample of every device that is not archived.
#[utoipa::path(get, path = "/api/fleet/metrics/latest", tag = "fleet",
    responses((status = 200, body = [FleetDeviceMetric])))]
async fn latest_metrics(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<FleetDeviceMetric>>, ApiError> {
    let latest = registry(&app, |r| r.latest_metrics()).await?;
    Ok(Json(
        latest
            .into_iter()
            .map(|m| FleetDeviceMetric {
                deployment_info_id: m.device_id,
                name: m.name,
                cpu_percent: m.sample.cpu_percent,
                ram_percent: m.sample.ram_percent,
                disk_percent: m.sample.disk_percent,
                timestamp: iso(&m.sample.at),
            })
            .collect(),
    ))
}

/// One device's online state per sample time.
#[derive(Debug, Serialize, ToSchema)]
struct DeviceAvailabilityRow {
    deployment_info_id: Uuid,
    name: Option<String>,
    states: Vec<bool>,
}

/// Every non-archived device's online state at the sample times.
#[derive(Debug, Serialize, ToSchema)]
struct FleetAvailability {
    timestamps: Vec<String>,
    devices: Vec<DeviceAvailabilityRow>,
}

/// Whether each non-archived device was online at evenly spaced times up to now.
#[utoipa::path(get, path = "/api/fleet/availability", tag = "fleet", params(SeriesQuery),
    responses((status = 200, body = FleetAvailability),
        (status = 422, description = "hours or buckets out of range")))]
async fn availability(
    State(app): State<AppState>,
    _caller: Caller,
    ValidQuery(query): ValidQuery<SeriesQuery>,
) -> Result<Json<FleetAvailability>, ApiError> {
    let (hours, buckets) = query.hours_and_buckets();
    let now = chrono::Utc::now();
    let matrix = registry(&app, move |r| r.availability(now, hours, buckets)).await?;
    Ok(Json(FleetAvailability {
        timestamps: matrix.timestamps.iter().map(iso).collect(),
        devices: matrix
            .devices
            .into_iter()
            .map(|row| DeviceAvailabilityRow {
                deployment_info_id: row.deployment_info_id,
                name: row.name,
                states: row.states,
            })
            .collect(),
    }))
}

/// Offline, flapping and resource alerts, critical first.
#[utoipa::path(get, path = "/api/fleet/alerts", tag = "fleet",
    responses((status = 200, description = "Alerts: {deployment_info_id, name, kind, severity, detail, value}",
        body = [Object])))]
async fn alerts(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<FleetAlert>>, ApiError> {
    let now = chrono::Utc::now();
    Ok(Json(registry(&app, move |r| r.alerts(now)).await?))
}
