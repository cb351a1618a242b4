//! The controller's side of the agent connections (`AgentTransport`): admission, the live
//! registry of online devices, messages to agents and relay channels to device ports.

mod admission;
mod connection;
mod hub;
mod relay;

pub use admission::verify_proof;
pub use connection::{AgentService, WsMessage};
pub use hub::{AgentError, AgentHub, AgentLink, AgentTransport};
pub use relay::{
    ChannelMux, FrameVerdict, Outbox, OutboxReceiver, Outgoing, RelayError, RelayLimits,
    RelayStream,
};
pub use thymis_protocol as protocol;
