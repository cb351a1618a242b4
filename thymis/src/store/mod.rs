//! The controller's database: web sessions, API tokens, secrets, the audit log, controller
//! settings, tasks and their output, and the device registry (devices, hardware ids, agent
//! tokens, agent connections, metrics and device logs), with a table laid out for
//! access-client tokens.
//!
//! [`Store`] is the interface the rest of the controller uses; [`SqliteStore`] is the default
//! implementation (bundled SQLite, WAL, migrations embedded in the binary and applied at open).
//!
//! Every method is blocking. Async callers run them on `tokio::task::spawn_blocking` so a slow
//! disk never stalls the runtime's worker threads.
//!
//! Tokens and session secrets never reach the database in plaintext: callers hash them with
//! [`hash_token`] and the store only ever stores and compares hashes. [`new_token`] is the one
//! place that makes new secrets, from the operating system's random source.
//!
//! ```
//! use thymis::store::{hash_token, new_token, SqliteStore, Store};
//!
//! let store = SqliteStore::open_in_memory()?;
//! let token = new_token();
//! let record = store.create_api_token("ci", &hash_token(&token), "admin")?;
//! let found = store.find_active_api_token(&hash_token(&token))?;
//! assert_eq!(found.map(|t| t.id), Some(record.id));
//! # Ok::<(), thymis::store::StoreError>(())
//! ```

mod access_records;
mod device_records;
mod migrations;
mod records;
mod sqlite;
mod task_records;
mod token;
mod url;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use access_records::AccessClientTokenRecord;
pub use device_records::{
    AdmissionRecorded, AgentTokenRecord, ConnectionRecord, DeviceListEntry, DeviceListSnapshot,
    DeviceRecord, DeviceUpdate, HardwareDeviceRecord, IdentityLookup, LatestMetric, LogQuery,
    LogRecord, MetricSample, NewAdmission, NewAgentToken, NewLogEntry,
};
pub use migrations::SCHEMA_VERSION;
pub use records::{
    ApiTokenRecord, AuditEntry, NewSecret, NewSession, SecretRecord, SecretUpdate, SecretValue,
    SessionRecord,
};
pub use sqlite::SqliteStore;
pub use task_records::{
    NewOutput, NewTask, OutputChunk, OutputStream, TaskFilter, TaskProcessRecord, TaskRecord,
    TaskState, TaskUpdate, UnknownTaskState,
};
pub use token::{hash_token, new_agent_token, new_token};
pub use url::parse_database_url;

/// Errors of the store. The variants are chosen so the HTTP layer can map them to a status:
/// [`StoreError::NotFound`] → 404, [`StoreError::Conflict`] → 409, anything else → 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed record does not exist (or is deleted).
    #[error("{what} {id} not found")]
    NotFound {
        /// Kind of record, e.g. `"secret"`.
        what: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// A uniqueness constraint refused the write, e.g. a token hash that already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    /// SQLite reported an error, or a stored value could not be decoded.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// A schema migration failed; the database is left at the previous version.
    #[error("database migration {version} ({name}) failed: {source}")]
    Migration {
        /// The schema version the migration would have produced.
        version: u32,
        /// The migration's file name.
        name: &'static str,
        /// What SQLite reported.
        source: rusqlite::Error,
    },
    /// The database was written by a newer Thymis; opening it could corrupt it.
    #[error(
        "database schema version {found} is newer than this Thymis supports ({supported}); \
         upgrade Thymis or restore a backup made for this version"
    )]
    SchemaTooNew {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest schema version this build knows.
        supported: u32,
    },
    /// A `database-url` that is not a SQLite URL or path.
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// The database's directory could not be created.
    #[error("cannot create database directory {path}: {source}")]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The controller's persistent records. `SqliteStore` is the default; embedders may provide their
/// own (e.g. for PostgreSQL). All methods block; call them from `spawn_blocking` in async code.
///
/// Token-like secrets are passed as hashes from [`hash_token`]; an implementation must never see
/// or store the plaintext.
pub trait Store: Send + Sync {
    // --- sessions ---

    /// Creates a web session and returns it with a fresh id.
    fn create_session(&self, session: &NewSession) -> Result<SessionRecord, StoreError>;

    /// Finds the session `id` if `token_hash` matches (compared in constant time) and it has not
    /// expired. A wrong hash and a missing session look the same to the caller.
    fn find_session(&self, id: Uuid, token_hash: &str)
        -> Result<Option<SessionRecord>, StoreError>;

    /// Deletes a session (logout). Returns whether it existed.
    fn delete_session(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Deletes every session whose expiry has passed; returns how many.
    fn delete_expired_sessions(&self) -> Result<usize, StoreError>;

    // --- API tokens ---

    /// Stores a new API token by its hash. A hash that already exists is a
    /// [`StoreError::Conflict`].
    fn create_api_token(
        &self,
        name: &str,
        token_hash: &str,
        created_by: &str,
    ) -> Result<ApiTokenRecord, StoreError>;

    /// Lists all API tokens, revoked ones included, oldest first.
    fn list_api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError>;

    /// Finds the unrevoked token with this hash.
    fn find_active_api_token(&self, token_hash: &str)
        -> Result<Option<ApiTokenRecord>, StoreError>;

    /// Revokes a token. Returns `true` if it existed and was active, `false` if it does not exist
    /// or was already revoked.
    fn revoke_api_token(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Records that a token was just used.
    fn touch_api_token(&self, id: Uuid) -> Result<(), StoreError>;

    // --- secrets ---

    /// Stores a new secret (already encrypted) and returns it with a fresh id.
    fn insert_secret(&self, secret: &NewSecret) -> Result<SecretRecord, StoreError>;

    /// Changes the given fields of a live secret and returns the result;
    /// [`StoreError::NotFound`] if it does not exist or is deleted.
    fn update_secret(&self, id: Uuid, update: &SecretUpdate) -> Result<SecretRecord, StoreError>;

    /// Gets a live (not deleted) secret.
    fn get_secret(&self, id: Uuid) -> Result<Option<SecretRecord>, StoreError>;

    /// Lists live secrets ordered by display name.
    fn list_secrets(&self) -> Result<Vec<SecretRecord>, StoreError>;

    /// Marks a secret deleted (sets `delete_at`). Returns `false` if it does not exist or was
    /// already deleted.
    fn soft_delete_secret(&self, id: Uuid) -> Result<bool, StoreError>;

    // --- audit log ---

    /// Appends an entry to the audit log and returns it.
    fn append_audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<AuditEntry, StoreError>;

    /// The newest `limit` audit entries, newest first.
    fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    // --- controller settings ---

    /// The JSON value stored under `key`, if any.
    fn get_setting(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError>;

    /// Stores `value` under `key`, replacing any previous value.
    fn set_setting(&self, key: &str, value: &serde_json::Value) -> Result<(), StoreError>;

    // --- tasks ---

    /// Stores a new `pending` task and returns it with a fresh id.
    fn insert_task(&self, task: &NewTask) -> Result<TaskRecord, StoreError>;

    /// Gets a task.
    fn get_task(&self, id: Uuid) -> Result<Option<TaskRecord>, StoreError>;

    /// Tasks matching `filter`, newest submission first, from `offset`, at most `limit`; and
    /// how many match in all.
    fn list_tasks(
        &self,
        filter: &TaskFilter,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<TaskRecord>, u64), StoreError>;

    /// Changes a task and returns it; [`StoreError::NotFound`] if it does not exist.
    fn update_task(&self, id: Uuid, update: &TaskUpdate) -> Result<TaskRecord, StoreError>;

    /// Records a command a task starts (or replaces the record of the same index).
    fn put_task_process(
        &self,
        task_id: Uuid,
        process: &TaskProcessRecord,
    ) -> Result<(), StoreError>;

    /// The commands a task ran, in order.
    fn list_task_processes(&self, task_id: Uuid) -> Result<Vec<TaskProcessRecord>, StoreError>;

    /// Appends output to a task. When the task's output would exceed `max_bytes`, the oldest
    /// chunks are dropped (and counted in `output_dropped_bytes`) so the newest output, where
    /// errors are, is kept. Returns the sequence number of the last chunk written.
    fn append_task_output(
        &self,
        task_id: Uuid,
        output: &[NewOutput],
        max_bytes: u64,
    ) -> Result<i64, StoreError>;

    /// A task's output chunks after sequence number `after_seq`, in order.
    fn task_output(&self, task_id: Uuid, after_seq: i64) -> Result<Vec<OutputChunk>, StoreError>;

    // --- agent tokens ---

    /// Stores an agent token by its hash. A hash that already exists is a
    /// [`StoreError::Conflict`].
    fn create_agent_token(&self, token: &NewAgentToken) -> Result<AgentTokenRecord, StoreError>;

    /// Finds the token with this hash, revoked or not.
    fn find_agent_token(&self, token_hash: &str) -> Result<Option<AgentTokenRecord>, StoreError>;

    /// Gets a token.
    fn get_agent_token(&self, id: Uuid) -> Result<Option<AgentTokenRecord>, StoreError>;

    /// Lists all agent tokens, revoked ones included, oldest first.
    fn list_agent_tokens(&self) -> Result<Vec<AgentTokenRecord>, StoreError>;

    /// Revokes a token and returns it; [`StoreError::NotFound`] if it does not exist,
    /// [`StoreError::Conflict`] if it was already revoked.
    fn revoke_agent_token(&self, id: Uuid) -> Result<AgentTokenRecord, StoreError>;

    /// Records that a token was used at `at`.
    fn touch_agent_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError>;

    // --- devices ---

    /// Gets a device.
    fn get_device(&self, id: Uuid) -> Result<Option<DeviceRecord>, StoreError>;

    /// Finds the device with this SSH host key.
    fn find_device_by_key(&self, public_key: &str) -> Result<Option<DeviceRecord>, StoreError>;

    /// Every device: first seen newest first, then last seen newest first, then by config id
    /// and commit (upstream's order).
    fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError>;

    /// The devices recorded as running `config_id`, in the order of [`Store::list_devices`].
    fn list_devices_by_config(&self, config_id: &str) -> Result<Vec<DeviceRecord>, StoreError>;

    /// Every device (or those running `config_id`) in the order of [`Store::list_devices`],
    /// read in one snapshot: each one's revision and fast-changing fields, and the full
    /// records of those whose (id, revision) `known` does not accept.
    fn device_list_snapshot(
        &self,
        config_id: Option<&str>,
        known: &dyn Fn(Uuid, i64) -> bool,
    ) -> Result<DeviceListSnapshot, StoreError>;

    /// Changes the given fields of a device and returns it; [`StoreError::NotFound`] if it does
    /// not exist, [`StoreError::Conflict`] if the new host key belongs to another device.
    fn update_device(&self, id: Uuid, update: &DeviceUpdate) -> Result<DeviceRecord, StoreError>;

    /// Deletes a device with its connections, metrics and logs; its hardware rows stay,
    /// detached. Returns whether it existed.
    fn delete_device(&self, id: Uuid) -> Result<bool, StoreError>;

    /// What is recorded about a host key and hardware ids an agent claims.
    fn lookup_identity(
        &self,
        public_key: &str,
        hardware_ids: &std::collections::BTreeMap<String, String>,
    ) -> Result<IdentityLookup, StoreError>;

    /// Records an admission in one transaction (agent-protocol.md §5 step 7): upserts the device
    /// by key (`archived` cleared, `last_seen` set, `first_seen` on creation; a pending config
    /// stays pending unless the device reports it; logs of a new key are attached), closes any
    /// open connection of the device and opens a new one, and re-points the hardware row sharing
    /// an id with the reported ones (or adds one), detaching the device's other rows. More than
    /// one matching hardware row is a [`StoreError::Conflict`] and changes nothing.
    fn record_admission(&self, admission: &NewAdmission) -> Result<AdmissionRecorded, StoreError>;

    /// Sets `last_seen` of these devices and their hardware to `at` and clears `archived`, in
    /// one transaction. Returns the devices that were archived until now.
    fn touch_devices(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError>;

    /// Stores a device's interfaces; [`StoreError::NotFound`] if it does not exist.
    fn set_network_interfaces(
        &self,
        id: Uuid,
        interfaces: &[thymis_protocol::NetworkInterface],
    ) -> Result<(), StoreError>;

    /// Every hardware identity, last seen first.
    fn list_hardware_devices(&self) -> Result<Vec<HardwareDeviceRecord>, StoreError>;

    // --- agent connections ---

    /// Opens a connection row for a device, closing any still-open one first.
    fn open_agent_connection(
        &self,
        device_id: Uuid,
        ip: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<ConnectionRecord, StoreError>;

    /// Closes a connection row if it is still open. Returns whether it was.
    fn close_agent_connection(
        &self,
        device_id: Uuid,
        connection_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Closes every open connection row (controller start and shutdown); returns how many.
    fn close_all_agent_connections(&self, at: DateTime<Utc>) -> Result<usize, StoreError>;

    /// A device's newest `limit` connections, newest first.
    fn connection_history(
        &self,
        device_id: Uuid,
        limit: usize,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;

    /// Every connection that was open at some time between `from` and `to`.
    fn connections_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;

    // --- metrics ---

    /// Stores a sample (a second sample with the same time replaces the first).
    fn insert_metric(&self, device_id: Uuid, sample: &MetricSample) -> Result<(), StoreError>;

    /// Averages of a device's samples between `from` and `to` in buckets of `bucket_secs`
    /// aligned to the Unix epoch, oldest first; each is stamped with its bucket's start.
    fn metric_buckets(
        &self,
        device_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_secs: u32,
    ) -> Result<Vec<MetricSample>, StoreError>;

    /// The newest sample of every device that is not archived.
    fn latest_metrics(&self) -> Result<Vec<LatestMetric>, StoreError>;

    /// Deletes samples older than `cutoff`; returns how many.
    fn delete_metrics_before(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError>;

    // --- device logs ---

    /// Stores log lines by their id: a line sent again replaces the stored one, but only if
    /// it comes from the same host key. Returns how many were stored.
    fn upsert_logs(&self, entries: &[NewLogEntry]) -> Result<usize, StoreError>;

    /// A device's log lines matching `query`, newest first.
    fn query_logs(&self, device_id: Uuid, query: &LogQuery) -> Result<Vec<LogRecord>, StoreError>;

    /// The distinct program names in a device's logs, sorted.
    fn log_program_names(&self, device_id: Uuid) -> Result<Vec<String>, StoreError>;

    /// The time of a device's newest log line.
    fn latest_log_time(&self, device_id: Uuid) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// A device's log lines at or after `from`, oldest first; at most the newest `limit`.
    fn logs_since(
        &self,
        device_id: Uuid,
        from: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError>;

    /// Deletes up to `batch` log lines older than `cutoff`; returns how many.
    fn delete_logs_before(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<usize, StoreError>;

    // --- access clients ---

    /// Stores an access-client token for a device by its hash.
    fn create_access_client_token(
        &self,
        token_hash: &str,
        device_id: Uuid,
        task_id: Option<Uuid>,
    ) -> Result<(), StoreError>;

    /// Finds the access-client token with this hash, revoked or not.
    fn find_access_client_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccessClientTokenRecord>, StoreError>;
}

/// The current time, truncated to the microsecond precision the store keeps, so a record
/// returned from a write equals the same record read back.
pub(crate) fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// Truncates to microseconds (see [`now`]).
pub(crate) fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}
