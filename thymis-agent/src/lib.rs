//! The Thymis device agent (`thymis-agent`): it runs on every managed device, connects out
//! to the controller's `/agent/relay` WebSocket (spec agent-protocol.md §2–3, §6, §9), and
//! keeps the device admitted, reported and reachable.
//!
//! Every device file lives under a root directory (`--root`, `/` on a real device), so
//! several simulated devices can run side by side; only with root `/` does the agent change
//! the host itself (clock, hostname, root password, sshd).
//!
//! The library exists so the pieces can be tested one by one; the binary is `src/main.rs`.

#![warn(missing_docs)]

pub mod accounts;
pub mod agent;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod device;
pub mod files;
pub mod hostname;
pub mod identity;
pub mod logger;
pub mod logs;
pub mod notify;
pub mod outgoing;
pub mod relay;
pub mod secrets;
pub mod session;
pub mod sysinfo;
