//! `WS /api/notification`: pushes cache invalidations to every open dashboard, so two tabs stay
//! in sync. Frames are upstream's `{"inner": {"kind": "should_invalidate", …}}`.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use thymis::events::Event;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;

/// Invalidations arriving within this time are sent as one frame.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The route of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(notification))
}

/// The API paths whose cached answers an event makes stale (prefixes: `/api/deployment_info`
/// covers every device's own routes).
fn invalidated_paths(event: &Event) -> Vec<String> {
    let fixed: &[&str] = match event {
        Event::StateChanged => &["/api/state", "/api/repo_status"],
        Event::RepoStatusChanged => &["/api/repo_status", "/api/history"],
        Event::ArtifactsChanged => &["/api/artifacts", "/api/repo_status"],
        Event::SecretsChanged => &["/api/secrets"],
        Event::ApiTokensChanged => &["/api/tokens"],
        Event::ExternalRepositoriesChanged => &["/api/external-repositories/status"],
        Event::DeviceConnected(_)
        | Event::DeviceDisconnected(_)
        | Event::DeviceChanged(_)
        | Event::DeviceDeleted(_) => &[
            "/api/all_deployment_infos",
            "/api/deployment_infos_by_config_id",
            "/api/deployment_info",
            "/api/hardware_device",
            "/api/fleet",
        ],
        // A sample or a log line concerns one device: other devices' pages stay as they are.
        Event::DeviceMetrics(id) => {
            return vec![
                format!("/api/deployment_info/{id}/metrics"),
                "/api/fleet".into(),
            ]
        }
        Event::DeviceLogs(id) => {
            return vec![
                format!("/api/logs/{id}"),
                format!("/api/deployment_info/{id}/error_logs"),
            ]
        }
        Event::AgentTokensChanged => &["/api/agent_tokens"],
        // flake.nix changes arrive with StateChanged; tasks have their own socket.
        Event::FlakeChanged
        | Event::TaskSubmitted(_)
        | Event::TaskChanged(_)
        | Event::TaskOutput(_) => &[],
    };
    fixed.iter().map(|path| (*path).to_owned()).collect()
}

/// WebSocket of invalidation notices (`should_invalidate_paths`). Needs a session or token.
#[utoipa::path(get, path = "/api/notification", tag = "notifications",
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, description = "Not logged in")))]
async fn notification(
    State(app): State<AppState>,
    caller: Caller,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| forward(socket, app, caller))
}

/// How often an open socket checks that its session or token is still valid.
const RECHECK: Duration = Duration::from_secs(5);

async fn forward(socket: WebSocket, app: AppState, caller: Caller) {
    let mut events = app.events.subscribe();
    let (mut sender, mut receiver) = socket.split();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    loop {
        let mut paths = BTreeSet::new();
        tokio::select! {
            _ = recheck.tick() => {
                if !caller.still_valid(&app).await {
                    // Logged out, expired or revoked: the dashboard must not keep listening.
                    let _ = sender.send(Message::Close(None)).await;
                    return;
                }
                continue;
            },
            event = events.recv() => match event {
                Ok(event) => paths.extend(invalidated_paths(&event)),
                // A slow client missed events: everything may be stale.
                Err(RecvError::Lagged(_)) => { paths.insert("/api".to_owned()); }
                Err(RecvError::Closed) => return,
            },
            message = receiver.next() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        }
        if paths.is_empty() {
            continue;
        }
        // Merge what else arrives shortly after.
        let deadline = tokio::time::sleep(DEBOUNCE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                event = events.recv() => match event {
                    Ok(event) => paths.extend(invalidated_paths(&event)),
                    Err(RecvError::Lagged(_)) => { paths.insert("/api".to_owned()); }
                    Err(RecvError::Closed) => return,
                },
            }
        }
        let frame =
            json!({"inner": {"kind": "should_invalidate", "should_invalidate_paths": paths}});
        if sender
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
    }
}
