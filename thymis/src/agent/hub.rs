//! The live registry of admitted agent connections: online state is "has a link here", never
//! stored (agent-protocol.md §11).

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use thymis_protocol::ControllerMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::relay::{ChannelMux, RelayError, RelayStream};

/// Why a message or channel could not reach a device.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The device has no admitted connection.
    #[error("device {0} is not connected")]
    NotConnected(Uuid),
    /// The relay refused or failed.
    #[error(transparent)]
    Relay(#[from] RelayError),
}

/// One admitted connection.
#[derive(Debug)]
pub struct AgentLink {
    /// The device (`devices.id`).
    pub device_id: Uuid,
    /// Its SSH host key, `ssh-ed25519 <base64>`.
    pub public_key: String,
    /// The agent token it was admitted with.
    pub agent_token_id: Uuid,
    /// Its channels and outbox.
    pub mux: Arc<ChannelMux>,
    /// Cancelled to end the connection (replaced by a newer one, or the device was deleted).
    pub closer: CancellationToken,
    /// Woken whenever the agent answers a ping.
    pub liveness: Arc<tokio::sync::Notify>,
}

impl AgentLink {
    /// Whether the agent still answers: a WebSocket ping answered within `within`.
    pub async fn is_alive(&self, within: std::time::Duration) -> bool {
        let answered = self.liveness.notified();
        if !self.mux.outbox().control(super::relay::Outgoing::Ping) {
            return false;
        }
        tokio::time::timeout(within, answered).await.is_ok()
    }
}

/// The agent connections as the rest of the controller uses them (DESIGN.md: `AgentTransport`).
#[async_trait]
pub trait AgentTransport: Send + Sync {
    /// Whether the device is online.
    fn is_connected(&self, device_id: Uuid) -> bool;
    /// The devices online now.
    fn connected_devices(&self) -> Vec<Uuid>;
    /// Sends a message to a device's agent.
    async fn send(&self, device_id: Uuid, message: &ControllerMessage) -> Result<(), AgentError>;
    /// Opens a relay channel to a port on the device's loopback.
    async fn open_channel(&self, device_id: Uuid, port: u16) -> Result<RelayStream, AgentError>;
}

#[derive(Debug, Default)]
struct Links {
    by_device: HashMap<Uuid, Arc<AgentLink>>,
    by_key: HashMap<String, Uuid>,
}

/// Every admitted connection, by device. Cloning gives another handle to the same registry.
#[derive(Debug, Clone, Default)]
pub struct AgentHub {
    links: Arc<RwLock<Links>>,
}

impl AgentHub {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the device is online.
    pub fn is_connected(&self, device_id: Uuid) -> bool {
        self.read().by_device.contains_key(&device_id)
    }

    /// The devices that are online now.
    pub fn connected_devices(&self) -> Vec<Uuid> {
        self.read().by_device.keys().copied().collect()
    }

    /// The connection of a device, if it is online.
    pub fn link(&self, device_id: Uuid) -> Option<Arc<AgentLink>> {
        self.read().by_device.get(&device_id).cloned()
    }

    /// The connection holding a host key, if any.
    pub fn link_by_key(&self, public_key: &str) -> Option<Arc<AgentLink>> {
        let links = self.read();
        links
            .by_key
            .get(public_key)
            .and_then(|id| links.by_device.get(id))
            .cloned()
    }

    /// Sends a message to a device's agent.
    pub async fn send(
        &self,
        device_id: Uuid,
        message: &ControllerMessage,
    ) -> Result<(), AgentError> {
        let link = self
            .link(device_id)
            .ok_or(AgentError::NotConnected(device_id))?;
        if link.mux.outbox().message(message) {
            Ok(())
        } else {
            Err(AgentError::NotConnected(device_id))
        }
    }

    /// Ends a device's connection, if it has one (e.g. it was deleted).
    pub fn disconnect(&self, device_id: Uuid) {
        if let Some(link) = self.link(device_id) {
            link.closer.cancel();
        }
    }

    /// Ends every connection admitted with an agent token (it was revoked).
    pub fn disconnect_token(&self, agent_token_id: Uuid) {
        for link in self.read().by_device.values() {
            if link.agent_token_id == agent_token_id {
                link.closer.cancel();
            }
        }
    }

    /// Registers an admitted connection. A connection it replaces is told to close.
    pub fn insert(&self, link: Arc<AgentLink>) {
        let replaced = {
            let mut links = self.write();
            links.by_key.insert(link.public_key.clone(), link.device_id);
            links.by_device.insert(link.device_id, link)
        };
        if let Some(old) = replaced {
            old.closer.cancel();
        }
    }

    /// Removes a connection if it is still the registered one for its device; true if it was.
    pub fn remove(&self, link: &Arc<AgentLink>) -> bool {
        let mut links = self.write();
        match links.by_device.get(&link.device_id) {
            Some(current) if Arc::ptr_eq(current, link) => {
                links.by_device.remove(&link.device_id);
                if links.by_key.get(&link.public_key) == Some(&link.device_id) {
                    links.by_key.remove(&link.public_key);
                }
                true
            }
            _ => false,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Links> {
        // A panic while holding the lock cannot leave the maps half-updated: recover them.
        self.links
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Links> {
        self.links
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl AgentTransport for AgentHub {
    fn is_connected(&self, device_id: Uuid) -> bool {
        AgentHub::is_connected(self, device_id)
    }

    fn connected_devices(&self) -> Vec<Uuid> {
        AgentHub::connected_devices(self)
    }

    async fn send(&self, device_id: Uuid, message: &ControllerMessage) -> Result<(), AgentError> {
        AgentHub::send(self, device_id, message).await
    }

    async fn open_channel(&self, device_id: Uuid, port: u16) -> Result<RelayStream, AgentError> {
        let link = self
            .link(device_id)
            .ok_or(AgentError::NotConnected(device_id))?;
        Ok(link.mux.open(port).await?)
    }
}
