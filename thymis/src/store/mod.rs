//! The controller's database: web sessions, API tokens, secrets, the audit log and controller
//! settings, with tables laid out for devices, hardware ids, agent and access-client tokens,
//! agent connections, tasks and their output, metrics and device logs.
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

mod migrations;
mod records;
mod sqlite;
mod task_records;
mod token;
mod url;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use migrations::SCHEMA_VERSION;
pub use records::{
    ApiTokenRecord, AuditEntry, NewSecret, NewSession, SecretRecord, SecretUpdate, SecretValue,
    SessionRecord,
};
pub use sqlite::SqliteStore;
pub use task_records::{
    AgentTokenRecord, NewOutput, NewTask, OutputChunk, OutputStream, TaskFilter, TaskProcessRecord,
    TaskRecord, TaskState, TaskUpdate, UnknownTaskState,
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

    /// Stores an agent token (by its hash) made for an image of `config_id` at `commit`.
    fn create_agent_token(
        &self,
        token_hash: &str,
        config_id: &str,
        commit: &str,
    ) -> Result<AgentTokenRecord, StoreError>;
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
