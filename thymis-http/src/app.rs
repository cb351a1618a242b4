//! The state shared by every request handler.

use std::sync::Arc;

use thymis::agent::{AgentHub, AgentService};
use thymis::auth::Authenticator;
use thymis::devices::DeviceRegistry;
use thymis::events::EventBus;
use thymis::external::discovery::RepositoryDiscovery;
use thymis::external::forge::ForgeClient;
use thymis::project::Project;
use thymis::secrets::Vault;
use thymis::settings::ControllerSettings;
use thymis::store::Store;
use thymis::task::TaskEngine;

use crate::api::device_json::DeviceListCache;
use crate::auth::{Caller, LoginLimiter};

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Resolved settings.
    pub settings: Arc<ControllerSettings>,
    /// The project (state, repository).
    pub project: Arc<Project>,
    /// The database.
    pub store: Arc<dyn Store>,
    /// Sessions, passwords and API tokens.
    pub auth: Arc<Authenticator>,
    /// Secrets, encrypted at rest.
    pub vault: Arc<Vault>,
    /// The event bus.
    pub events: EventBus,
    /// Failed-login counter.
    pub login_limiter: Arc<LoginLimiter>,
    /// GitHub and GitLab API client.
    pub forges: Arc<ForgeClient>,
    /// What each external repository turned out to be.
    pub repository_discovery: Arc<RepositoryDiscovery>,
    /// Builds, flake updates, images.
    pub tasks: TaskEngine,
    /// The connected device agents.
    pub agents: AgentHub,
    /// Serves agent WebSockets (admission, relay).
    pub agent_service: AgentService,
    /// Devices, their reports, agent tokens.
    pub devices: Arc<DeviceRegistry>,
    /// Each listed device's JSON, by revision.
    pub device_list: Arc<DeviceListCache>,
}

impl AppState {
    /// Records who changed what in the audit log, without making the request wait or fail.
    pub fn audit(&self, caller: &Caller, action: &str, target: &str) {
        let store = self.store.clone();
        let actor = caller.user.username.clone();
        let (action, target) = (action.to_owned(), target.to_owned());
        tokio::task::spawn_blocking(move || {
            if let Err(err) =
                store.append_audit(&actor, &action, Some(&target), &serde_json::Value::Null)
            {
                tracing::warn!(error = %err, "audit log entry lost");
            }
        });
    }
}
