//! Records of the device registry: devices, hardware identities, agent connections, metrics,
//! device logs and agent tokens (agent-protocol.md §10). Token hashes are never part of a record.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use thymis_protocol::NetworkInterface;
use uuid::Uuid;

/// A device: one per SSH host key (upstream `deployment_info`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceRecord {
    /// Device id (`deployment_info_id` in the API).
    pub id: Uuid,
    /// Its SSH host key, `<type> <base64>`.
    pub ssh_public_key: String,
    /// Name given in the dashboard; also its hostname.
    pub name: Option<String>,
    /// Free-text notes.
    pub notes: Option<String>,
    /// Where it is.
    pub location: Option<String>,
    /// The config it runs.
    pub deployed_config_id: Option<String>,
    /// The commit of that config, known after a deploy.
    pub deployed_config_commit: Option<String>,
    /// The config it is being switched to.
    pub pending_config_id: Option<String>,
    /// Legacy direct-SSH host.
    pub reachable_deployed_host: Option<String>,
    /// Its network interfaces as last reported.
    pub network_interfaces: Option<Vec<NetworkInterface>>,
    /// Its RAM in bytes.
    pub ram_bytes: Option<u64>,
    /// Hidden from the active list; cleared whenever the device is seen.
    pub archived: bool,
    /// First admission.
    pub first_seen_at: Option<DateTime<Utc>>,
    /// Last admission or keep-alive.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// The agent token it was last admitted with.
    pub agent_token_id: Option<Uuid>,
    /// Changes whenever anything a device list shows about it changes, except its last-seen
    /// times: its columns, or the hardware linked to it. Unique across devices and never
    /// reused, so lists can cache a device's entry by (id, revision).
    pub revision: i64,
}

/// A device's place in a list and its fast-changing fields, read for every list request.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceListEntry {
    /// Device id.
    pub id: Uuid,
    /// Its [`DeviceRecord::revision`].
    pub revision: i64,
    /// First admission.
    pub first_seen_at: Option<DateTime<Utc>>,
    /// Last admission or keep-alive.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The config it runs.
    pub deployed_config_id: Option<String>,
    /// The commit of that config.
    pub deployed_config_commit: Option<String>,
}

/// A device list as of one moment, for callers that cache each device by its revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceListSnapshot {
    /// The listed devices in list order (first seen newest first, then last seen newest
    /// first, then config id and commit).
    pub devices: Vec<DeviceListEntry>,
    /// When each hardware row linked to a listed device was last seen, by hardware id.
    pub hardware_seen: HashMap<Uuid, Option<DateTime<Utc>>>,
    /// The full records of the listed devices whose revision the caller did not know.
    pub changed: Vec<DeviceRecord>,
    /// The hardware rows linked to the devices in `changed`.
    pub changed_hardware: Vec<HardwareDeviceRecord>,
}

/// Fields to change on a device; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceUpdate {
    /// New host key.
    pub ssh_public_key: Option<String>,
    /// New name.
    pub name: Option<Option<String>>,
    /// New notes.
    pub notes: Option<Option<String>>,
    /// New location.
    pub location: Option<Option<String>>,
    /// New config.
    pub deployed_config_id: Option<Option<String>>,
    /// New commit.
    pub deployed_config_commit: Option<Option<String>>,
    /// New pending config.
    pub pending_config_id: Option<Option<String>>,
    /// New legacy host.
    pub reachable_deployed_host: Option<Option<String>>,
    /// New archive flag.
    pub archived: Option<bool>,
}

impl DeviceUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &DeviceUpdate::default()
    }
}

/// A hardware identity: the ids an agent reported (`pi-serial-number`, `dmi-board-serial`,
/// `dmi-product-uuid`) and the device it currently belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HardwareDeviceRecord {
    /// Its id.
    pub id: Uuid,
    /// The ids.
    pub hardware_ids: BTreeMap<String, String>,
    /// The device using this hardware now (`deployment_info_id` in the API).
    pub device_id: Option<Uuid>,
    /// When it was last seen.
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// What the store knows about an identity an agent claims, read before admitting it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityLookup {
    /// The device with the claimed host key.
    pub device: Option<DeviceRecord>,
    /// Hardware rows sharing any (key, value) with the reported ids.
    pub matching_hardware: Vec<HardwareDeviceRecord>,
    /// Hardware rows attached to `device`.
    pub device_hardware: Vec<HardwareDeviceRecord>,
}

/// An admission to record: the device is upserted by its key, a connection row opened and the
/// hardware identity re-pointed, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAdmission {
    /// The host key.
    pub public_key: String,
    /// Reported hardware ids (may be empty).
    pub hardware_ids: BTreeMap<String, String>,
    /// The config the device says it runs; `None` keeps the recorded one.
    pub deployed_config_id: Option<String>,
    /// Its interfaces.
    pub network_interfaces: Vec<NetworkInterface>,
    /// Its RAM; `None` keeps the recorded value.
    pub ram_bytes: Option<u64>,
    /// The address it connected from.
    pub ip: Option<String>,
    /// The token it was admitted with.
    pub agent_token_id: Uuid,
    /// The time of admission.
    pub at: DateTime<Utc>,
}

/// The result of [`NewAdmission`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionRecorded {
    /// The device after the admission.
    pub device: DeviceRecord,
    /// The connection row opened.
    pub connection_id: Uuid,
    /// Whether the device row was created.
    pub created: bool,
}

/// One agent connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionRecord {
    /// Its id.
    pub id: Uuid,
    /// The device.
    pub device_id: Uuid,
    /// When it was admitted.
    pub connected_at: DateTime<Utc>,
    /// When it ended; `None` while open.
    pub disconnected_at: Option<DateTime<Utc>>,
    /// The agent's address.
    pub ip: Option<String>,
}

/// One metrics sample or bucket average, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricSample {
    /// When it was taken (or the start of its bucket).
    pub at: DateTime<Utc>,
    /// CPU use.
    pub cpu_percent: f64,
    /// RAM use.
    pub ram_percent: f64,
    /// Use of the root file system.
    pub disk_percent: f64,
}

/// The newest sample of a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestMetric {
    /// The device.
    pub device_id: Uuid,
    /// Its name.
    pub name: Option<String>,
    /// The sample.
    pub sample: MetricSample,
}

/// A device log line to store (already validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogEntry {
    /// The sender's id of the entry (upsert key).
    pub id: String,
    /// The device, if known.
    pub device_id: Option<Uuid>,
    /// The sender's host key.
    pub ssh_public_key: String,
    /// The sender's hostname.
    pub hostname: Option<String>,
    /// When it was logged.
    pub at: DateTime<Utc>,
    /// Syslog severity 0–7.
    pub severity: Option<u8>,
    /// Syslog facility 0–23.
    pub facility: Option<u8>,
    /// Program name.
    pub program: Option<String>,
    /// Syslog tag.
    pub syslogtag: Option<String>,
    /// Text.
    pub message: String,
}

/// A stored device log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    /// The sender's id of the entry.
    pub id: String,
    /// The device.
    pub device_id: Option<Uuid>,
    /// The sender's hostname.
    pub hostname: Option<String>,
    /// When it was logged.
    pub at: DateTime<Utc>,
    /// Syslog severity 0–7.
    pub severity: Option<u8>,
    /// Syslog facility 0–23.
    pub facility: Option<u8>,
    /// Program name.
    pub program: Option<String>,
    /// Syslog tag.
    pub syslogtag: Option<String>,
    /// Text.
    pub message: String,
}

/// Which log lines of a device to read, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// Only lines at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only lines at or before this time.
    pub to: Option<DateTime<Utc>>,
    /// Only lines of programs whose name contains this (or equals it, see `exact_program`).
    pub program: Option<String>,
    /// Whether `program` must match exactly.
    pub exact_program: bool,
    /// Only lines whose message contains this (ASCII case-insensitive).
    pub search: Option<String>,
    /// Only lines at this severity or more severe (a lower number).
    pub max_severity: Option<u8>,
    /// At most this many lines.
    pub limit: usize,
    /// Skip this many of the newest.
    pub offset: usize,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            from: None,
            to: None,
            program: None,
            exact_program: false,
            search: None,
            max_severity: None,
            limit: 100,
            offset: 0,
        }
    }
}

/// An agent token as stored (never the token itself nor its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentTokenRecord {
    /// Its id.
    pub id: Uuid,
    /// What it is for, e.g. `Image of kiosk` or a name given in the dashboard.
    pub name: String,
    /// The config the image was built for, or the token was made for.
    pub original_config_id: Option<String>,
    /// The commit the image was built from.
    pub original_config_commit: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked token admits nothing.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last admitted an agent or authenticated a log upload.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// An agent token to store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewAgentToken {
    /// [`hash_token`](super::hash_token) of the token.
    pub token_hash: String,
    /// What it is for.
    pub name: String,
    /// The config it was made for.
    pub config_id: Option<String>,
    /// The commit of that config (image builds).
    pub config_commit: Option<String>,
}

// Hand-written so that the hash never lands in a log line through `{:?}`.
impl fmt::Debug for NewAgentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAgentToken")
            .field("token_hash", &"<redacted>")
            .field("name", &self.name)
            .field("config_id", &self.config_id)
            .field("config_commit", &self.config_commit)
            .finish()
    }
}
