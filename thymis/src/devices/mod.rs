//! The device registry (agent-protocol.md §5 steps 6–7, §10–11; http-api.md §2.6–2.8, §11):
//! admission of agents into device records, what connected devices report (keep-alives,
//! metrics, interfaces, logs), what devices are sent (hostname, secrets), the dashboard's edits,
//! fleet views, agent tokens and retention.
//!
//! Every method blocks (SQLite, and `mkpasswd` when secrets are processed); async callers use
//! `spawn_blocking`. Each change is published on the [`EventBus`]: [`Event::DeviceChanged`],
//! [`Event::DeviceDeleted`], [`Event::DeviceMetrics`], [`Event::DeviceLogs`] and
//! [`Event::AgentTokensChanged`]. Online state is not kept here: it is the agent connections'
//! (`crate::agent::AgentHub`).

mod fleet;
mod hostname;
mod validate;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use thymis_protocol::{LogEntry, Metrics, NetworkInterface, SecretsMessage};
use uuid::Uuid;

use crate::events::{Event, EventBus};
use crate::project::Project;
use crate::secrets::{encrypt_for_device, SecretError, Vault, VaultError};
use crate::store::{
    hash_token, new_agent_token, AgentTokenRecord, ConnectionRecord, DeviceListSnapshot,
    DeviceRecord, DeviceUpdate, HardwareDeviceRecord, LatestMetric, LogQuery, LogRecord,
    MetricSample, NewAdmission, NewAgentToken, Store, StoreError,
};

pub use fleet::{
    Availability, AvailabilityRow, ConnectivityPoint, FleetAlert, MetricGranularity,
    FLAPPING_CONNECTS, OFFLINE_HOURS, RESOURCE_CRITICAL, RESOURCE_WARNING,
};
pub use hostname::{config_device_name, effective_hostname, sanitize_hostname, DEFAULT_HOSTNAME};
pub use validate::{MAX_HARDWARE_IDS, MAX_LOG_MESSAGE_BYTES};

/// Metrics are kept this long.
pub const METRICS_RETENTION: Duration = Duration::days(30);
/// Device logs are kept this long.
pub const LOGS_RETENTION: Duration = Duration::days(7);
/// Expired log lines are deleted this many per transaction, so the writer is never held long.
pub const LOG_DELETE_BATCH: usize = 10_000;
/// Connections shown in a device's history.
pub const CONNECTION_HISTORY: usize = 10;
/// The error-log panel shows this many lines.
pub const ERROR_LOG_LINES: usize = 50;
/// The most severe syslog severity counted as an error (0 emergency … 3 error).
pub const ERROR_SEVERITY: u8 = 3;
/// Most lines in one log download (the newest are kept).
pub const MAX_DOWNLOAD_LINES: usize = 200_000;
/// Most interfaces stored for a device.
const MAX_INTERFACES: usize = 256;
/// How often a token's `last_used_at` is written at most: agents upload logs many times a
/// minute, and a write per upload would only add load.
const TOKEN_TOUCH_INTERVAL: StdDuration = StdDuration::from_secs(60);

/// Why a registry operation failed. The HTTP layer maps [`DeviceError::NotFound`] to 404,
/// [`DeviceError::Invalid`] to 422, [`DeviceError::Conflict`] to 409 and the rest to 500.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The addressed device or token does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// Kind of record, e.g. `"device"`.
        what: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// The input is not acceptable; the message names the problem.
    #[error("{0}")]
    Invalid(String),
    /// The change contradicts what is stored (a host key of another device, a token that is
    /// already revoked).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
    /// Secrets could not be read.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Secrets could not be encrypted to the device.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl From<StoreError> for DeviceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { what, id } => DeviceError::NotFound { what, id },
            StoreError::Conflict(message) => DeviceError::Conflict(message),
            other => DeviceError::Store(other),
        }
    }
}

fn device_not_found(id: Uuid) -> DeviceError {
    DeviceError::NotFound {
        what: "device",
        id: id.to_string(),
    }
}

/// What an agent claims when it connects, after its token and key proof were checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// Its SSH host key, `<type> <base64>`.
    pub public_key: String,
    /// Its hardware ids.
    pub hardware_ids: BTreeMap<String, String>,
    /// The config it believes it runs.
    pub deployed_config_id: Option<String>,
    /// Its network interfaces.
    pub network_interfaces: Vec<NetworkInterface>,
    /// Its RAM in bytes.
    pub ram_bytes: Option<u64>,
    /// Where it connected from.
    pub remote_addr: Option<IpAddr>,
    /// The agent token it presented (from [`DeviceRegistry::check_agent_token`]).
    pub agent_token_id: Uuid,
}

/// The decision on an [`Admission`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmissionOutcome {
    /// The device is recorded and a connection row opened.
    Admitted {
        /// The device.
        device_id: Uuid,
        /// The connection row, to close with [`DeviceRegistry::disconnected`].
        connection_id: Uuid,
    },
    /// The host key is known from other hardware (a moved or cloned disk): send
    /// `update_public_key` and drop the connection, so the device returns with new keys.
    Rekey {
        /// Why, for the log.
        reason: String,
    },
    /// The identity is ambiguous; drop the connection.
    Refused {
        /// Why, for the log.
        reason: String,
    },
}

/// A device with its hardware identities, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// The device.
    pub device: DeviceRecord,
    /// The hardware it runs on (at most one row; upstream's list shape).
    pub hardware_devices: Vec<HardwareDeviceRecord>,
}

/// An agent token just created; `token` is shown once and never stored.
#[derive(Serialize)]
pub struct AgentTokenCreated {
    /// The stored record (without the token).
    #[serde(flatten)]
    pub record: AgentTokenRecord,
    /// The token, for `thymis-token.txt` on the device.
    pub token: String,
}

// Debug output never carries the token.
impl fmt::Debug for AgentTokenCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentTokenCreated")
            .field("record", &self.record)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A log download: the file name and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDownload {
    /// `logs_<config>_<from>.txt`.
    pub filename: String,
    /// One line per entry, `<time> <host> <tag> <message>`, oldest first.
    pub text: String,
}

/// How many rows a retention run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCounts {
    /// Metrics samples.
    pub metrics: usize,
    /// Log lines.
    pub logs: usize,
}

/// The device registry. Share it behind an `Arc`.
pub struct DeviceRegistry {
    store: Arc<dyn Store>,
    events: EventBus,
    project: Arc<Project>,
    vault: Arc<Vault>,
    /// Devices that sent a keep-alive since the last flush.
    seen: Mutex<HashSet<Uuid>>,
    /// When each token's `last_used_at` was last written.
    token_touched: Mutex<HashMap<Uuid, Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded sets stay consistent whatever panicked while holding them.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A user-given optional text: blank means "none".
fn optional_text(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl DeviceRegistry {
    /// A registry over `store`, publishing on `events`; `project` gives configs (hostnames,
    /// secrets) and `vault` the secret values.
    pub fn new(
        store: Arc<dyn Store>,
        events: EventBus,
        project: Arc<Project>,
        vault: Arc<Vault>,
    ) -> Self {
        DeviceRegistry {
            store,
            events,
            project,
            vault,
            seen: Mutex::new(HashSet::new()),
            token_touched: Mutex::new(HashMap::new()),
        }
    }

    // --- agents ---

    /// The agent token `token`, if it exists and is not revoked; records that it was used.
    pub fn check_agent_token(&self, token: &str) -> Result<Option<AgentTokenRecord>, DeviceError> {
        let Some(mut record) = self.store.find_agent_token(&hash_token(token))? else {
            return Ok(None);
        };
        if record.revoked_at.is_some() {
            return Ok(None);
        }
        let due = {
            let mut touched = lock(&self.token_touched);
            let due = !matches!(touched.get(&record.id),
                Some(at) if at.elapsed() < TOKEN_TOUCH_INTERVAL);
            if due {
                touched.insert(record.id, Instant::now());
            }
            due
        };
        if due {
            let now = crate::store::now();
            match self.store.touch_agent_token(record.id, now) {
                Ok(()) => {
                    record.last_used_at = Some(now);
                    self.events.publish(Event::AgentTokensChanged);
                }
                // Bookkeeping only: the token is valid either way.
                Err(err) => tracing::warn!(error = %err, "cannot record an agent token's use"),
            }
        }
        Ok(Some(record))
    }

    /// Decides on an agent whose token and key were checked, and records it (§5 steps 6–7):
    /// hardware ids matching two or more known hardware devices refuse it; a known key
    /// reporting hardware ids that match nothing while the device has hardware on record means
    /// the disk moved, so it must re-key; otherwise the device is upserted by key, a connection
    /// row opened and the hardware re-pointed. Publishes [`Event::DeviceChanged`].
    pub fn admit(&self, admission: &Admission) -> Result<AdmissionOutcome, DeviceError> {
        let refused = |reason: String| Ok(AdmissionOutcome::Refused { reason });
        if let Err(reason) = validate::public_key(&admission.public_key) {
            return refused(reason);
        }
        if let Err(reason) = validate::hardware_ids(&admission.hardware_ids) {
            return refused(reason);
        }
        if let Some(config) = &admission.deployed_config_id {
            if let Err(reason) = validate::text_field("deployed_config_id", config, 255, false) {
                return refused(reason);
            }
        }
        // Upstream agents may report ids without a value; they identify nothing.
        let hardware_ids: BTreeMap<String, String> = admission
            .hardware_ids
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let lookup = self
            .store
            .lookup_identity(&admission.public_key, &hardware_ids)?;
        if lookup.matching_hardware.len() >= 2 {
            return refused(format!(
                "the hardware ids match {} known hardware devices",
                lookup.matching_hardware.len()
            ));
        }
        // Only when the key's device is bound to other hardware: a device that never reported
        // ids (or whose hardware row was removed) has nothing to contradict.
        if lookup.device.is_some()
            && !hardware_ids.is_empty()
            && lookup.matching_hardware.is_empty()
            && !lookup.device_hardware.is_empty()
        {
            return Ok(AdmissionOutcome::Rekey {
                reason: "the host key is known from other hardware (moved or cloned disk)"
                    .to_owned(),
            });
        }
        let recorded = self.store.record_admission(&NewAdmission {
            public_key: admission.public_key.clone(),
            hardware_ids,
            deployed_config_id: optional_text(admission.deployed_config_id.clone()),
            network_interfaces: admission
                .network_interfaces
                .iter()
                .take(MAX_INTERFACES)
                .cloned()
                .collect(),
            ram_bytes: admission.ram_bytes,
            ip: admission.remote_addr.map(|addr| addr.to_string()),
            agent_token_id: admission.agent_token_id,
            at: Utc::now(),
        });
        let recorded = match recorded {
            Ok(recorded) => recorded,
            // Another admission changed the hardware or key rows since the lookup.
            Err(StoreError::Conflict(reason)) => return refused(reason),
            Err(err) => return Err(err.into()),
        };
        self.events
            .publish(Event::DeviceChanged(recorded.device.id));
        Ok(AdmissionOutcome::Admitted {
            device_id: recorded.device.id,
            connection_id: recorded.connection_id,
        })
    }

    /// Closes the connection row of an ended agent connection.
    pub fn disconnected(&self, device_id: Uuid, connection_id: Uuid) -> Result<(), DeviceError> {
        self.store
            .close_agent_connection(device_id, connection_id, Utc::now())?;
        Ok(())
    }

    /// Closes every open connection row; for controller start and shutdown, when no agent is
    /// connected. Returns how many were open.
    pub fn close_open_connections(&self) -> Result<usize, DeviceError> {
        Ok(self.store.close_all_agent_connections(Utc::now())?)
    }

    /// Notes a keep-alive; written by the next [`DeviceRegistry::flush_last_seen`]. Costs one
    /// set insertion, so 10,000 agents keeping alive every 10 s stay cheap.
    pub fn keep_alive(&self, device_id: Uuid) {
        lock(&self.seen).insert(device_id);
    }

    /// Writes `last_seen` (and clears `archived`) of every device that kept alive since the
    /// last flush, in one transaction. Publishes [`Event::DeviceChanged`] only for devices that
    /// were archived: a moving `last_seen` of an online device is not worth a dashboard reload.
    /// Returns how many devices were written.
    pub fn flush_last_seen(&self) -> Result<usize, DeviceError> {
        let ids: Vec<Uuid> = std::mem::take(&mut *lock(&self.seen)).into_iter().collect();
        if ids.is_empty() {
            return Ok(0);
        }
        match self.store.touch_devices(&ids, Utc::now()) {
            Ok(unarchived) => {
                for id in unarchived {
                    self.events.publish(Event::DeviceChanged(id));
                }
                Ok(ids.len())
            }
            Err(err) => {
                // Kept for the next flush.
                lock(&self.seen).extend(ids);
                Err(err.into())
            }
        }
    }

    /// Stores a metrics sample. Publishes [`Event::DeviceMetrics`].
    pub fn record_metrics(&self, device_id: Uuid, metrics: &Metrics) -> Result<(), DeviceError> {
        let sample = validate::metric_sample(metrics, Utc::now()).map_err(DeviceError::Invalid)?;
        self.store.insert_metric(device_id, &sample)?;
        self.events.publish(Event::DeviceMetrics(device_id));
        Ok(())
    }

    /// Stores a device's interfaces. Publishes [`Event::DeviceChanged`].
    pub fn record_network_interfaces(
        &self,
        device_id: Uuid,
        interfaces: &[NetworkInterface],
    ) -> Result<(), DeviceError> {
        let interfaces = &interfaces[..interfaces.len().min(MAX_INTERFACES)];
        self.store.set_network_interfaces(device_id, interfaces)?;
        self.events.publish(Event::DeviceChanged(device_id));
        Ok(())
    }

    /// Stores log lines of the device with key `public_key` (and id `device_id`, when known).
    /// Severity and facility are clamped to syslog's ranges and messages cut at
    /// [`MAX_LOG_MESSAGE_BYTES`]; entries with an unusable id or timestamp are skipped.
    /// Returns how many were stored. Publishes [`Event::DeviceLogs`].
    pub fn record_logs(
        &self,
        device_id: Option<Uuid>,
        public_key: &str,
        hostname: Option<&str>,
        entries: &[LogEntry],
    ) -> Result<usize, DeviceError> {
        let now = Utc::now();
        let batch: Vec<_> = entries
            .iter()
            .filter_map(|entry| validate::log_entry(entry, device_id, public_key, hostname, now))
            .collect();
        let skipped = entries.len() - batch.len();
        if skipped > 0 {
            tracing::debug!(
                skipped,
                ?device_id,
                "log entries with an invalid id or timestamp skipped"
            );
        }
        let stored = self.store.upsert_logs(&batch)?;
        if let (Some(id), true) = (device_id, stored > 0) {
            self.events.publish(Event::DeviceLogs(id));
        }
        Ok(stored)
    }

    /// The device that may upload logs with `token` while claiming `public_key`: the token must
    /// be valid and the device must have been admitted with it. `None` otherwise.
    pub fn log_sender(
        &self,
        token: &str,
        public_key: &str,
    ) -> Result<Option<DeviceRecord>, DeviceError> {
        let Some(token) = self.check_agent_token(token)? else {
            return Ok(None);
        };
        let device = self.store.find_device_by_key(public_key)?;
        Ok(device.filter(|device| device.agent_token_id == Some(token.id)))
    }

    /// The hostname to send to a device (http-api.md §11.1).
    pub fn hostname_for(&self, device_id: Uuid) -> Result<String, DeviceError> {
        let device = self.get(device_id)?;
        let snapshot = self.project.snapshot();
        Ok(effective_hostname(
            &snapshot.state,
            device.name.as_deref(),
            device.deployed_config_id.as_deref(),
        ))
    }

    /// The secrets of the device's config, processed (e.g. password hashing) and encrypted to
    /// its host key, as `send_secrets` carries them. `None` when its config is unknown. A secret
    /// that was deleted, or whose processing fails, is left out (and logged) so the others
    /// still arrive.
    pub fn secrets_for(&self, device_id: Uuid) -> Result<Option<SecretsMessage>, DeviceError> {
        let device = self.get(device_id)?;
        let Some(config_id) = device.deployed_config_id.as_deref() else {
            return Ok(None);
        };
        let snapshot = self.project.snapshot();
        if !snapshot
            .state
            .configs
            .iter()
            .any(|c| c.identifier == config_id)
        {
            return Ok(None);
        }
        let requirements =
            crate::image::secret_requirements(&snapshot.state, &self.project.registry(), config_id);
        let message = crate::image::seal_secrets(&self.vault, &requirements, false, |value| {
            encrypt_for_device(&device.ssh_public_key, value)
        })?;
        Ok(Some(message))
    }

    // --- devices in the dashboard ---

    fn get(&self, id: Uuid) -> Result<DeviceRecord, DeviceError> {
        self.store
            .get_device(id)?
            .ok_or_else(|| device_not_found(id))
    }

    fn with_hardware(&self, devices: Vec<DeviceRecord>) -> Result<Vec<DeviceInfo>, DeviceError> {
        let mut hardware: HashMap<Uuid, Vec<HardwareDeviceRecord>> = HashMap::new();
        for row in self.store.list_hardware_devices()? {
            if let Some(device_id) = row.device_id {
                hardware.entry(device_id).or_default().push(row);
            }
        }
        Ok(devices
            .into_iter()
            .map(|device| {
                // By id, as list snapshots give them: a device's page and its list entry agree.
                let mut hardware_devices = hardware.remove(&device.id).unwrap_or_default();
                hardware_devices.sort_by_key(|row| row.id);
                DeviceInfo {
                    hardware_devices,
                    device,
                }
            })
            .collect())
    }

    /// One device.
    pub fn device(&self, id: Uuid) -> Result<DeviceInfo, DeviceError> {
        let device = self.get(id)?;
        let mut infos = self.with_hardware(vec![device])?;
        infos.pop().ok_or_else(|| device_not_found(id))
    }

    /// Every device, in upstream's order (first seen newest first, …).
    pub fn devices(&self) -> Result<Vec<DeviceInfo>, DeviceError> {
        self.with_hardware(self.store.list_devices()?)
    }

    /// The devices recorded as running `config_id`.
    pub fn devices_by_config(&self, config_id: &str) -> Result<Vec<DeviceInfo>, DeviceError> {
        self.with_hardware(self.store.list_devices_by_config(config_id)?)
    }

    /// Every device (or those running `config_id`) in list order, with the full records of
    /// those whose (id, revision) `known` does not accept (see [`Store::device_list_snapshot`]).
    pub fn device_list_snapshot(
        &self,
        config_id: Option<&str>,
        known: &dyn Fn(Uuid, i64) -> bool,
    ) -> Result<DeviceListSnapshot, DeviceError> {
        Ok(self.store.device_list_snapshot(config_id, known)?)
    }

    /// Every hardware identity.
    pub fn hardware_devices(&self) -> Result<Vec<HardwareDeviceRecord>, DeviceError> {
        Ok(self.store.list_hardware_devices()?)
    }

    /// Applies the dashboard's edit (only the given fields; blank name, location, notes and
    /// config mean none) and returns the device. A new host key is stored as `<type> <base64>`.
    /// Publishes [`Event::DeviceChanged`]. The caller sends `update_hostname` to a connected
    /// device when the name changed.
    pub fn update(&self, id: Uuid, mut update: DeviceUpdate) -> Result<DeviceInfo, DeviceError> {
        let invalid = DeviceError::Invalid;
        if let Some(key) = &update.ssh_public_key {
            validate::public_key(key).map_err(invalid)?;
            let parts: Vec<&str> = key.split(' ').filter(|p| !p.is_empty()).collect();
            update.ssh_public_key = Some(parts[..2].join(" "));
        }
        let fields = [
            ("name", &mut update.name, 255, false),
            ("location", &mut update.location, 255, false),
            ("notes", &mut update.notes, 64 * 1024, true),
            (
                "deployed_config_id",
                &mut update.deployed_config_id,
                255,
                false,
            ),
            (
                "deployed_config_commit",
                &mut update.deployed_config_commit,
                255,
                false,
            ),
            (
                "pending_config_id",
                &mut update.pending_config_id,
                255,
                false,
            ),
            (
                "reachable_deployed_host",
                &mut update.reachable_deployed_host,
                255,
                false,
            ),
        ];
        for (field, change, max, multi_line) in fields {
            if let Some(value) = change.take() {
                if let Some(text) = &value {
                    validate::text_field(field, text, max, multi_line).map_err(invalid)?;
                }
                *change = Some(optional_text(value));
            }
        }
        self.store.update_device(id, &update)?;
        self.events.publish(Event::DeviceChanged(id));
        self.device(id)
    }

    /// Deletes a device with its history, metrics and logs. Publishes [`Event::DeviceDeleted`].
    pub fn delete(&self, id: Uuid) -> Result<(), DeviceError> {
        if !self.store.delete_device(id)? {
            return Err(device_not_found(id));
        }
        self.events.publish(Event::DeviceDeleted(id));
        Ok(())
    }

    /// A device's newest connections ([`CONNECTION_HISTORY`]), newest first.
    pub fn connection_history(&self, id: Uuid) -> Result<Vec<ConnectionRecord>, DeviceError> {
        self.get(id)?;
        Ok(self.store.connection_history(id, CONNECTION_HISTORY)?)
    }

    /// A device's metrics of the last `hours` (1–168) averaged per `granularity`, oldest first.
    pub fn metrics(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        hours: u32,
        granularity: MetricGranularity,
    ) -> Result<Vec<MetricSample>, DeviceError> {
        check_range("hours", hours, 1, 168)?;
        self.get(id)?;
        let from = now - Duration::hours(i64::from(hours));
        Ok(self
            .store
            .metric_buckets(id, from, now, granularity.seconds())?)
    }

    /// A device's log lines matching `query`, newest first.
    pub fn logs(&self, id: Uuid, query: &LogQuery) -> Result<Vec<LogRecord>, DeviceError> {
        if query.limit == 0 || query.limit > 10_000 {
            return Err(DeviceError::Invalid(
                "limit must be between 1 and 10000".to_owned(),
            ));
        }
        if let Some(max) = query.max_severity {
            check_range("max_severity", u32::from(max), 0, 7)?;
        }
        self.get(id)?;
        Ok(self.store.query_logs(id, query)?)
    }

    /// A device's newest error lines (severity ≤ [`ERROR_SEVERITY`]).
    pub fn error_logs(&self, id: Uuid) -> Result<Vec<LogRecord>, DeviceError> {
        self.logs(
            id,
            &LogQuery {
                max_severity: Some(ERROR_SEVERITY),
                limit: ERROR_LOG_LINES,
                ..LogQuery::default()
            },
        )
    }

    /// The program names in a device's logs, sorted.
    pub fn log_program_names(&self, id: Uuid) -> Result<Vec<String>, DeviceError> {
        self.get(id)?;
        Ok(self.store.log_program_names(id)?)
    }

    /// A device's log lines of the `duration_minutes` before its newest line (or now, without
    /// lines) as a text file.
    pub fn log_download(
        &self,
        id: Uuid,
        duration_minutes: u32,
    ) -> Result<LogDownload, DeviceError> {
        check_range("duration_minutes", duration_minutes, 1, 7 * 24 * 60)?;
        let device = self.get(id)?;
        let newest = self.store.latest_log_time(id)?.unwrap_or_else(Utc::now);
        let from = newest - Duration::minutes(i64::from(duration_minutes));
        let lines = self.store.logs_since(id, from, MAX_DOWNLOAD_LINES)?;
        let mut text = String::new();
        for line in &lines {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!(
                "{} {} {} {}",
                iso(&line.at),
                line.hostname.as_deref().unwrap_or("-"),
                line.syslogtag.as_deref().unwrap_or("-"),
                line.message
            ));
        }
        let name = device
            .deployed_config_id
            .unwrap_or_else(|| device.id.to_string());
        Ok(LogDownload {
            filename: format!("logs_{name}_{}.txt", iso(&from)),
            text,
        })
    }

    // --- fleet ---

    /// Connected devices at `buckets + 1` times over the last `hours` (1–2160; 1–200 buckets).
    pub fn connectivity(
        &self,
        now: DateTime<Utc>,
        hours: u32,
        buckets: u32,
    ) -> Result<Vec<ConnectivityPoint>, DeviceError> {
        let points = fleet_points(now, hours, buckets)?;
        let connections = self.store.connections_between(points[0], now)?;
        Ok(fleet::connectivity(&connections, &points))
    }

    /// Every non-archived device's online state at `buckets + 1` times over the last `hours`.
    pub fn availability(
        &self,
        now: DateTime<Utc>,
        hours: u32,
        buckets: u32,
    ) -> Result<Availability, DeviceError> {
        let points = fleet_points(now, hours, buckets)?;
        let connections = self.store.connections_between(points[0], now)?;
        let devices = self.store.list_devices()?;
        Ok(fleet::availability(&devices, &connections, points))
    }

    /// The newest metrics sample of every non-archived device.
    pub fn latest_metrics(&self) -> Result<Vec<LatestMetric>, DeviceError> {
        Ok(self.store.latest_metrics()?)
    }

    /// The fleet's alerts at `now`.
    pub fn alerts(&self, now: DateTime<Utc>) -> Result<Vec<FleetAlert>, DeviceError> {
        let devices = self.store.list_devices()?;
        let since = now - Duration::hours(fleet::FLAPPING_WINDOW_HOURS);
        let connections = self.store.connections_between(since, now)?;
        let latest = self.store.latest_metrics()?;
        Ok(fleet::alerts(&devices, &connections, &latest, now))
    }

    // --- agent tokens ---

    /// Creates an agent token named `name` (1–100 characters), optionally for a config of the
    /// state. Publishes [`Event::AgentTokensChanged`].
    pub fn create_agent_token(
        &self,
        name: &str,
        config_id: Option<&str>,
    ) -> Result<AgentTokenCreated, DeviceError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(DeviceError::Invalid(
                "the name must not be empty".to_owned(),
            ));
        }
        validate::text_field("name", name, 100, false).map_err(DeviceError::Invalid)?;
        if let Some(config_id) = config_id {
            let snapshot = self.project.snapshot();
            if !snapshot
                .state
                .configs
                .iter()
                .any(|c| c.identifier == config_id)
            {
                return Err(DeviceError::Invalid(format!(
                    "there is no config {config_id:?}"
                )));
            }
        }
        let token = new_agent_token();
        let record = self.store.create_agent_token(&NewAgentToken {
            token_hash: hash_token(&token),
            name: name.to_owned(),
            config_id: config_id.map(str::to_owned),
            config_commit: None,
        })?;
        self.events.publish(Event::AgentTokensChanged);
        Ok(AgentTokenCreated { record, token })
    }

    /// Every agent token (never their values), oldest first.
    pub fn agent_tokens(&self) -> Result<Vec<AgentTokenRecord>, DeviceError> {
        Ok(self.store.list_agent_tokens()?)
    }

    /// Revokes an agent token: it admits no agent and authenticates no log upload from now on
    /// (connected agents stay connected until they reconnect). Publishes
    /// [`Event::AgentTokensChanged`].
    pub fn revoke_agent_token(&self, id: Uuid) -> Result<AgentTokenRecord, DeviceError> {
        let record = self.store.revoke_agent_token(id)?;
        lock(&self.token_touched).remove(&id);
        self.events.publish(Event::AgentTokensChanged);
        Ok(record)
    }

    // --- retention ---

    /// Deletes metrics older than [`METRICS_RETENTION`] and logs older than [`LOGS_RETENTION`]
    /// (in batches of [`LOG_DELETE_BATCH`], each its own transaction).
    pub fn prune(&self, now: DateTime<Utc>) -> Result<PruneCounts, DeviceError> {
        let metrics = self.store.delete_metrics_before(now - METRICS_RETENTION)?;
        let cutoff = now - LOGS_RETENTION;
        let mut logs = 0;
        loop {
            let deleted = self.store.delete_logs_before(cutoff, LOG_DELETE_BATCH)?;
            logs += deleted;
            if deleted < LOG_DELETE_BATCH {
                break;
            }
        }
        Ok(PruneCounts { metrics, logs })
    }
}

/// A time as the API shows it: RFC 3339 UTC with a `Z`, fractions only when present.
pub fn iso(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn check_range(name: &str, value: u32, min: u32, max: u32) -> Result<(), DeviceError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(DeviceError::Invalid(format!(
            "{name} must be between {min} and {max}"
        )))
    }
}

/// The sample times of the fleet views; validates their parameters.
fn fleet_points(
    now: DateTime<Utc>,
    hours: u32,
    buckets: u32,
) -> Result<Vec<DateTime<Utc>>, DeviceError> {
    check_range("hours", hours, 1, 2160)?;
    check_range("buckets", buckets, 1, 200)?;
    let from = now - Duration::hours(i64::from(hours));
    Ok(fleet::sample_points(from, now, buckets))
}
