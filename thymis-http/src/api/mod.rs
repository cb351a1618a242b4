//! The `/api` routes.

pub mod actions;
pub mod agent_tokens;
pub mod artifacts;
pub mod controller_settings;
pub mod device_json;
pub mod devices;
pub mod external_repositories;
pub mod fleet;
pub mod logs;
pub mod params;
pub mod secrets;
pub mod state;
pub mod tasks;
pub mod timer_check;

use axum::http::HeaderValue;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

/// The routes of the device registry: devices, fleet views, device logs and agent tokens.
pub fn device_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(devices::routes())
        .merge(fleet::routes())
        .merge(logs::routes())
        .merge(agent_tokens::routes())
}

/// A `Content-Disposition: attachment` header naming `filename`: an ASCII fallback plus the
/// exact name in RFC 5987 form, so browsers keep non-ASCII names.
pub fn attachment(filename: &str) -> HeaderValue {
    let fallback: String = filename
        .chars()
        .map(|c| match c {
            ' ' => ' ',
            '"' | '\\' => '_',
            c if c.is_ascii_graphic() => c,
            _ => '_',
        })
        .collect();
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}
