//! Access clients (agent-protocol.md §9.4): `POST /api/access_client_token/{id}` issues a
//! token scoped to one device, and `WS /agent/relay_for_clients` turns a socket holding such a
//! token into one relay channel to that device. Unlike upstream, the target is always the
//! device's loopback and an allowed port, tokens are stored hashed and expire.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use thymis::agent::protocol::access::{AccessClientMessage, AccessServerMessage, AccessStart};
use thymis::agent::protocol::{decode, encode};
use thymis::agent::RelayStream;
use thymis::store::{hash_token, new_token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// How long an access-client token stays valid.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a client has to send its start frame.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_access_client_token))
        .routes(routes!(relay_for_clients))
}

/// A new access-client token.
#[derive(Debug, Serialize, ToSchema)]
struct AccessClientToken {
    /// The token; shown once.
    token: String,
    /// The device it opens channels to.
    deployment_info_id: Uuid,
    /// Upstream's field: the deploy task the token belongs to (`"None"` when unbound).
    deploy_device_task_id: String,
}

/// Issues a token for opening relay channels to one device (e.g. for `ssh` with the
/// `access-client` ProxyCommand). Valid for 7 days.
#[utoipa::path(post, path = "/api/access_client_token/{deployment_info_id}", tag = "devices",
    params(("deployment_info_id" = Uuid, Path, description = "The device")),
    responses((status = 200, body = AccessClientToken), (status = 404, description = "Unknown device")))]
async fn create_access_client_token(
    State(app): State<AppState>,
    caller: Caller,
    Path(device_id): Path<Uuid>,
) -> Result<Json<AccessClientToken>, ApiError> {
    let store = app.store.clone();
    let token = new_token();
    let hash = hash_token(&token);
    let created = tokio::task::spawn_blocking(move || {
        if store.get_device(device_id)?.is_none() {
            return Ok(false);
        }
        store
            .create_access_client_token(&hash, device_id, None)
            .map(|()| true)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    if !created {
        return Err(ApiError::not_found(format!("device {device_id} not found")));
    }
    app.audit(
        &caller,
        "access_client_token.create",
        &device_id.to_string(),
    );
    Ok(Json(AccessClientToken {
        token,
        deployment_info_id: device_id,
        deploy_device_task_id: "None".into(),
    }))
}

/// WebSocket carrying one TCP connection to a device port. Authenticated by an access-client
/// token in the first frame.
#[utoipa::path(get, path = "/agent/relay_for_clients", tag = "agent",
    responses((status = 101, description = "Switching to the WebSocket protocol")))]
async fn relay_for_clients(State(app): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(thymis::agent::protocol::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, app))
}

async fn serve(mut socket: WebSocket, app: AppState) {
    let start = match tokio::time::timeout(START_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => match decode::<AccessClientMessage>(&text) {
            Ok(AccessClientMessage::Start(start)) => start,
            _ => return refuse(socket, "expected a start frame").await,
        },
        _ => return refuse(socket, "expected a start frame").await,
    };
    let binary = start.binary;
    let stream = match open(&app, start).await {
        Ok(stream) => stream,
        Err(message) => return refuse(socket, &message).await,
    };
    let ok = AccessServerMessage::StartOk {
        connection_id: Uuid::new_v4().to_string(),
    };
    if socket
        .send(Message::Text(encode(&ok).into()))
        .await
        .is_err()
    {
        return;
    }
    pump(socket, stream, binary).await;
}

async fn refuse(mut socket: WebSocket, message: &str) {
    let error = AccessServerMessage::Error {
        message: message.to_owned(),
    };
    let _ = socket.send(Message::Text(encode(&error).into())).await;
    let _ = socket.send(Message::Close(None)).await;
}

/// Checks the token and the target, then opens the channel.
async fn open(app: &AppState, start: AccessStart) -> Result<RelayStream, String> {
    let device_id: Uuid = start
        .connection_target
        .parse()
        .map_err(|_| "connection_target is not a device id")?;
    if !matches!(start.target_ip.as_str(), "localhost" | "127.0.0.1" | "::1") {
        return Err("only the device's own loopback can be reached".into());
    }
    if start.protocol != "tcp" {
        return Err("only tcp is supported".into());
    }
    let store = app.store.clone();
    let hash = hash_token(&start.secret);
    let record = tokio::task::spawn_blocking(move || store.find_access_client_token(&hash))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| err.to_string())?;
    let valid = record.is_some_and(|record| {
        record.device_id == device_id
            && record.revoked_at.is_none()
            && record.created_at + ACCESS_TOKEN_LIFETIME > chrono::Utc::now()
    });
    if !valid {
        return Err("invalid access token".into());
    }
    thymis::agent::AgentTransport::open_channel(&app.agents, device_id, start.target_port)
        .await
        .map_err(|err| err.to_string())
}

/// Copies bytes both ways until either side closes.
async fn pump(socket: WebSocket, stream: RelayStream, binary: bool) {
    let (mut sink, mut source) = socket.split();
    let (mut device_read, mut device_write) = tokio::io::split(stream);
    let to_device = async {
        while let Some(Ok(message)) = source.next().await {
            let bytes = match message {
                Message::Binary(bytes) if binary => bytes,
                Message::Text(text) if !binary => match decode::<AccessClientMessage>(&text) {
                    Ok(AccessClientMessage::TcpData { data_base64 }) => {
                        match base64::engine::general_purpose::STANDARD.decode(data_base64) {
                            Ok(bytes) => bytes::Bytes::from(bytes),
                            Err(_) => break,
                        }
                    }
                    _ => continue,
                },
                Message::Close(_) => break,
                _ => continue,
            };
            if device_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = device_write.shutdown().await;
    };
    let from_device = async {
        let mut buf = vec![0u8; thymis::agent::protocol::MAX_DATA_FRAME_BYTES];
        loop {
            let n = match device_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let message = if binary {
                Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n]))
            } else {
                let data = AccessServerMessage::TcpData {
                    data_base64: base64::engine::general_purpose::STANDARD.encode(&buf[..n]),
                };
                Message::Text(encode(&data).into())
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    };
    // Either direction ending ends the channel (upstream has no half close here).
    tokio::select! {
        _ = to_device => {},
        _ = from_device => {},
    }
}
