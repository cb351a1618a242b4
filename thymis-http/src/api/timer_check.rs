//! `GET /api/config/check-systemd-timer`: checks a timer expression typed into a timer setting.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use thymis::module::timer_check::{self, TimerCheckError};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};

/// The route of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(check_systemd_timer))
}

/// Which kind of timer expression.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum TimerType {
    /// An `OnCalendar=` expression such as `Mon *-*-* 04:00`.
    Calendar,
    /// A time span such as `1h 30min`.
    Timespan,
}

#[derive(Debug, Deserialize, IntoParams)]
struct TimerQuery {
    /// `calendar` or `timespan`.
    #[param(inline)]
    timer_type: TimerType,
    /// The expression.
    value: String,
    /// How many elapse times to list (calendar; 1 to 100).
    #[param(minimum = 1, maximum = 100)]
    iterations: Option<u32>,
}

/// For `calendar`, the next elapse times in UTC (`["Mon 2026-11-23 04:00:00 UTC", …]`); for
/// `timespan`, the normalised span (`"1h 30min"`); 400 when systemd rejects the expression.
#[utoipa::path(get, path = "/api/config/check-systemd-timer", tag = "config",
    params(TimerQuery),
    responses((status = 200, body = Object), (status = 400, description = "Invalid expression")))]
async fn check_systemd_timer(
    _caller: Caller,
    Query(query): Query<TimerQuery>,
) -> Result<Json<Value>, ApiError> {
    let result = blocking(move || {
        Ok(match query.timer_type {
            TimerType::Calendar => {
                timer_check::next_elapses(&query.value, query.iterations.unwrap_or(1))
                    .map(|times| json!(times))
            }
            TimerType::Timespan => timer_check::normalize_timespan(&query.value).map(Value::from),
        })
    })
    .await?;
    result.map(Json).map_err(|err| match err {
        TimerCheckError::Invalid(message) => ApiError::bad_request(message),
        TimerCheckError::Unavailable(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
        }
    })
}
