//! `/api/controller-settings`: the auto-update switch and schedule.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use thymis::auto_update::{AutoUpdateSettings, Schedule};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, patch_settings))
}

/// `{auto_update_enabled, auto_update_schedule: {frequency, time, weekdays, weekday, day_of_month, nth_weekday}}`.
#[utoipa::path(get, path = "/api/controller-settings", tag = "settings",
    responses((status = 200, body = Object)))]
async fn get_settings(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<AutoUpdateSettings>, ApiError> {
    let store = app.store.clone();
    Ok(Json(
        blocking(move || AutoUpdateSettings::load(store.as_ref()).map_err(ApiError::internal))
            .await?,
    ))
}

/// Changes to the settings; omitted fields stay.
#[derive(Debug, Deserialize, ToSchema)]
struct SettingsChange {
    auto_update_enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    auto_update_schedule: Option<Schedule>,
}

/// Changes the auto-update settings; 422 names what a schedule lacks.
#[utoipa::path(patch, path = "/api/controller-settings", tag = "settings", request_body = SettingsChange,
    responses((status = 200, body = Object), (status = 422, description = "Incomplete schedule")))]
async fn patch_settings(
    State(app): State<AppState>,
    caller: Caller,
    Json(change): Json<SettingsChange>,
) -> Result<Json<AutoUpdateSettings>, ApiError> {
    if let Some(schedule) = &change.auto_update_schedule {
        let problems = schedule.problems();
        if !problems.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                problems.join("; "),
            ));
        }
    }
    let store = app.store.clone();
    let settings = blocking(move || {
        let mut settings = AutoUpdateSettings::load(store.as_ref()).map_err(ApiError::internal)?;
        if let Some(enabled) = change.auto_update_enabled {
            settings.auto_update_enabled = enabled;
        }
        if let Some(schedule) = change.auto_update_schedule {
            settings.auto_update_schedule = schedule;
        }
        settings.save(store.as_ref()).map_err(ApiError::internal)
    })
    .await?;
    app.audit(&caller, "settings.auto_update", "");
    Ok(Json(settings))
}
