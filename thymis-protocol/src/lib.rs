//! The wire protocol between the Thymis controller and its device agents on `/agent/relay`
//! (spec: agent-protocol.md §3–6, §9). Both the controller and the small `thymis-agent`
//! binary depend on this crate, so it holds only types and codecs: no I/O, no crypto.
//!
//! # Frames
//! Every text frame is JSON `{"inner": {"kind": "<kind>", ...}}` ([`Envelope`]); kinds of the
//! relay library and of Thymis share one namespace. Upstream (Python) agents speak only text
//! frames and carry relayed bytes as base64 in `tcp_data`. Our agent additionally negotiates
//! binary frames ([`frame::BinaryFrame`]) for everything that happens on an open channel.
//!
//! # A connection of our agent
//! 1. The agent opens the WebSocket. The controller at once sends [`ControllerMessage::Challenge`]
//!    with a fresh random nonce (an upstream agent logs the unknown kind and skips it).
//! 2. The agent answers with [`AgentMessage::Start`]: its
//!    token, host key, hardware ids, interfaces, and in [`Start::proof`] an SSH signature
//!    (`sshsig`, namespace [`PROOF_NAMESPACE`]) of the nonce's bytes made with its SSH host key.
//!    It also sets [`Start::binary_frames`]. An upstream agent sends the same start message
//!    without the proof; the controller then proves the key the upstream way (an SSH login
//!    through the relay, pinned to the claimed key).
//! 3. The controller checks the token and the proof, records the device, and sends
//!    `send_secrets`, `update_hostname` and finally `successfully_ssh_connected`.
//! 4. Keep-alive: the agent sends `keep_alive` every [`AGENT_KEEP_ALIVE_SECS`], the controller
//!    every [`CONTROLLER_KEEP_ALIVE_SECS`]. A side that hears nothing for
//!    [`SILENCE_TIMEOUT_SECS`] treats the connection as dead.
//!
//! # Channels
//! The controller opens a channel with `initiate_connection` (a uuid `connection_id`). With
//! binary frames it adds a numeric [`InitiateConnection::channel`] and its receive
//! [`InitiateConnection::window`]; the agent answers `initiate_connection_ok` with its own
//! window. From then on every byte, credit, EOF and close of that channel travels as a
//! [`frame::BinaryFrame`]. A sender may have at most the peer's granted credit in flight; the
//! receiver grants more ([`frame::BinaryFrame::Credit`]) as its consumer reads, so a slow reader
//! only ever holds one window per channel and never stalls other channels.

pub mod access;
pub mod frame;
mod messages;

pub use messages::*;

/// The path of the agent WebSocket on the controller.
pub const RELAY_PATH: &str = "/agent/relay";

/// The `sshsig` namespace of the admission proof, so a signature made for admission cannot be
/// replayed as any other kind of SSH signature and vice versa.
pub const PROOF_NAMESPACE: &str = "thymis-agent-admission";

/// Bytes of random nonce in a challenge.
pub const CHALLENGE_NONCE_BYTES: usize = 32;

/// How often the agent sends `keep_alive` (upstream: 10 s).
pub const AGENT_KEEP_ALIVE_SECS: u64 = 10;

/// How often the controller sends `keep_alive` (upstream: 30 s).
pub const CONTROLLER_KEEP_ALIVE_SECS: u64 = 30;

/// Silence after which either side considers the connection dead (covers a lost keep-alive
/// of the slower side plus margin).
pub const SILENCE_TIMEOUT_SECS: u64 = 75;

/// Largest WebSocket message either side accepts; larger ones close the connection.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Largest payload of one binary data frame.
pub const MAX_DATA_FRAME_BYTES: usize = 256 * 1024;

/// Largest payload of one base64 `tcp_data` frame sent to an upstream agent (it reads 1 KiB
/// per frame itself; it decodes any size).
pub const MAX_JSON_DATA_BYTES: usize = 16 * 1024;

/// Default receive window of a channel, per direction.
pub const DEFAULT_WINDOW_BYTES: u32 = 1024 * 1024;

/// The SSH and VNC ports, the targets the controller opens by default.
pub const DEFAULT_ALLOWED_PORTS: [u16; 2] = [22, 5900];
