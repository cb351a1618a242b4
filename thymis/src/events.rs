//! The controller's event bus: one broadcast channel of typed events that the HTTP layer
//! forwards to browsers (and later issues extend with tasks and devices).

use tokio::sync::broadcast;
use uuid::Uuid;

/// Something that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `state.json` changed.
    StateChanged,
    /// The uncommitted changes or the history changed.
    RepoStatusChanged,
    /// Artifacts were uploaded, renamed or deleted.
    ArtifactsChanged,
    /// Secrets were created, changed or deleted.
    SecretsChanged,
    /// API tokens were created or revoked.
    ApiTokensChanged,
    /// The discovery status of an external repository changed.
    ExternalRepositoriesChanged,
    /// `flake.nix` changed, so `flake.lock` must be written again.
    FlakeChanged,
    /// A task was submitted.
    TaskSubmitted(Uuid),
    /// A task's state or progress changed.
    TaskChanged(Uuid),
    /// A task has new output (or a new command).
    TaskOutput(Uuid),
    /// A device's agent was admitted; it is online.
    DeviceConnected(Uuid),
    /// A device's agent connection ended; it is offline.
    DeviceDisconnected(Uuid),
    /// A device's record changed (created, renamed, archived, interfaces, config, …).
    DeviceChanged(Uuid),
    /// A device was deleted.
    DeviceDeleted(Uuid),
    /// A device sent a metrics sample.
    DeviceMetrics(Uuid),
    /// A device sent log lines.
    DeviceLogs(Uuid),
    /// Agent tokens were created or revoked.
    AgentTokensChanged,
}

/// A broadcast bus; cloning gives another handle to the same bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus that keeps up to 1,024 events for slow subscribers.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        EventBus { sender }
    }

    /// Publishes an event; without subscribers it is dropped.
    pub fn publish(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    /// A new subscription receiving every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
