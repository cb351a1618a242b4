//! Records of access-client tokens (agent-protocol.md §9.4).

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// An access-client token: opens relay channels to one device. Only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClientTokenRecord {
    /// The device it is scoped to.
    pub device_id: Uuid,
    /// The task it was issued for, if any.
    pub task_id: Option<Uuid>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}
