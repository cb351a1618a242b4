//! The controller's side of the agent connections (`AgentTransport`): which devices are online,
//! sending them messages, and (in later modules) admission and relay channels.

mod hub;

pub use hub::{AgentError, AgentHub, AgentLink, Outgoing};
pub use thymis_protocol as protocol;
