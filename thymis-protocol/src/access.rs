//! The access-client WebSocket `/agent/relay_for_clients` (agent-protocol.md §9.4): one relay
//! channel per socket, used by `ssh`/`nix copy` ProxyCommands and tools. Upstream clients send
//! base64 `tcp_data`; a client that sets [`AccessStart::binary`] exchanges raw bytes as binary
//! frames instead.

use serde::{Deserialize, Serialize};

/// The first frame of an access client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessStart {
    /// The device (`deployment_info` id).
    pub connection_target: String,
    /// Must be the device's loopback.
    pub target_ip: String,
    /// The device port.
    pub target_port: u16,
    /// Always `tcp`.
    pub protocol: String,
    /// The access-client token.
    pub secret: String,
    /// Ours: raw binary frames instead of base64 `tcp_data`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
}

/// Frames from an access client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccessClientMessage {
    /// The first frame.
    Start(AccessStart),
    /// Bytes for the device.
    TcpData {
        /// The bytes, base64.
        data_base64: String,
    },
    /// Any other kind.
    #[serde(other)]
    Unknown,
}

/// Frames to an access client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccessServerMessage {
    /// The channel is open.
    StartOk {
        /// The relay channel's id.
        connection_id: String,
    },
    /// It could not be opened.
    Error {
        /// Why.
        message: String,
    },
    /// Bytes from the device.
    TcpData {
        /// The bytes, base64.
        data_base64: String,
    },
}
