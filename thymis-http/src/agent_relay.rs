//! `WS /agent/relay`: the persistent connection of every device agent (agent-protocol.md
//! §3–6). There is no session: the agent authenticates in its first frame (token and host-key
//! proof), which `thymis::agent::AgentService` checks.

use std::net::SocketAddr;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use thymis::agent::WsMessage;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

/// Read and write buffer of each agent socket.
const IO_BUFFER_BYTES: usize = 16 * 1024;

/// The route of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(relay))
}

/// WebSocket of a device agent. Authenticated by the agent token and host-key proof in the
/// first frame; a message larger than 1 MiB closes the connection.
#[utoipa::path(get, path = "/agent/relay", tag = "agent",
    responses((status = 101, description = "Switching to the WebSocket protocol")))]
async fn relay(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Small buffers: an idle agent should cost kilobytes (10,000 agents on one controller),
    // and relay frames are at most 256 KiB anyway.
    upgrade
        .read_buffer_size(IO_BUFFER_BYTES)
        .write_buffer_size(IO_BUFFER_BYTES)
        .max_message_size(thymis_protocol_limit())
        .max_frame_size(thymis_protocol_limit())
        .on_upgrade(move |socket| serve(socket, app, peer))
}

fn thymis_protocol_limit() -> usize {
    thymis::agent::protocol::MAX_MESSAGE_BYTES
}

async fn serve(socket: WebSocket, app: AppState, peer: SocketAddr) {
    let (sink, stream) = socket.split();
    // A read error (e.g. an oversized or malformed frame) ends this connection only.
    let reader = stream
        .take_while(|message| std::future::ready(message.is_ok()))
        .filter_map(|message| std::future::ready(message.ok().map(from_axum)));
    let writer =
        sink.with(|message: WsMessage| std::future::ready(Ok::<_, axum::Error>(to_axum(message))));
    app.agent_service
        .serve(Box::pin(reader), Box::pin(writer), Some(peer.ip()))
        .await;
}

fn from_axum(message: Message) -> WsMessage {
    match message {
        Message::Text(text) => WsMessage::Text(text.to_string()),
        Message::Binary(bytes) => WsMessage::Binary(bytes),
        Message::Ping(bytes) => WsMessage::Ping(bytes),
        Message::Pong(bytes) => WsMessage::Pong(bytes),
        Message::Close(frame) => {
            WsMessage::Close(frame.map(|f| f.reason.to_string()).unwrap_or_default())
        }
    }
}

fn to_axum(message: WsMessage) -> Message {
    match message {
        WsMessage::Text(text) => Message::Text(text.into()),
        WsMessage::Binary(bytes) => Message::Binary(bytes),
        WsMessage::Ping(bytes) => Message::Ping(bytes),
        WsMessage::Pong(bytes) => Message::Pong(bytes),
        WsMessage::Close(_) => Message::Close(None),
    }
}
