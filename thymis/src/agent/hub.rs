//! The live registry of admitted agent connections: online state is "has a link here", never
//! stored (agent-protocol.md §11).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use thymis_protocol::ControllerMessage;
use tokio::sync::mpsc;
use uuid::Uuid;

/// A frame queued for an agent's WebSocket writer.
#[derive(Debug)]
pub enum Outgoing {
    /// A JSON text frame.
    Text(String),
    /// A binary channel frame.
    Binary(Vec<u8>),
}

/// Why a message could not reach a device.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The device has no admitted connection.
    #[error("device {0} is not connected")]
    NotConnected(Uuid),
}

/// One admitted connection.
#[derive(Debug)]
pub struct AgentLink {
    /// The device (`devices.id`).
    pub device_id: Uuid,
    /// Its SSH host key, `ssh-ed25519 <base64>`.
    pub public_key: String,
    /// Frames to the agent.
    pub outgoing: mpsc::Sender<Outgoing>,
}

/// Every admitted connection, by device. Cloning gives another handle to the same registry.
#[derive(Debug, Clone, Default)]
pub struct AgentHub {
    links: Arc<RwLock<HashMap<Uuid, Arc<AgentLink>>>>,
}

impl AgentHub {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the device is online.
    pub fn is_connected(&self, device_id: Uuid) -> bool {
        self.read().contains_key(&device_id)
    }

    /// The devices that are online now.
    pub fn connected_devices(&self) -> Vec<Uuid> {
        self.read().keys().copied().collect()
    }

    /// The connection of a device, if it is online.
    pub fn link(&self, device_id: Uuid) -> Option<Arc<AgentLink>> {
        self.read().get(&device_id).cloned()
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
        let text = thymis_protocol::encode(message);
        link.outgoing
            .send(Outgoing::Text(text))
            .await
            .map_err(|_| AgentError::NotConnected(device_id))
    }

    /// Registers an admitted connection, returning the one it replaces, if any.
    pub fn insert(&self, link: Arc<AgentLink>) -> Option<Arc<AgentLink>> {
        self.write().insert(link.device_id, link)
    }

    /// Removes a connection if it is still the registered one for its device.
    pub fn remove(&self, link: &Arc<AgentLink>) -> bool {
        let mut links = self.write();
        match links.get(&link.device_id) {
            Some(current) if Arc::ptr_eq(current, link) => links.remove(&link.device_id).is_some(),
            _ => false,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Arc<AgentLink>>> {
        // A panic while holding the lock cannot leave the map half-updated: recover it.
        self.links
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, Arc<AgentLink>>> {
        self.links
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
