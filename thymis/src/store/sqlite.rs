//! [`SqliteStore`]: the [`Store`] on a SQLite file (bundled SQLite, so the controller does not
//! depend on the system's library version).
//!
//! Connections: one writer connection behind a `Mutex`, plus a small pool of read-only
//! connections opened on demand. SQLite admits one writer at a time anyway; queueing writers
//! on a mutex in-process means they wait in order instead of polling in SQLite's busy handler,
//! and our own writes never fail with `SQLITE_BUSY`. WAL lets the readers proceed alongside
//! the writer and each other, so a slow write never blocks `GET` requests. The busy timeout
//! remains for locks held by other processes (a backup, the `sqlite3` shell) and checkpoints.

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{Type, Value};
use rusqlite::{
    params, params_from_iter, Connection, ErrorCode, OpenFlags, OptionalExtension, Row,
    TransactionBehavior,
};
use uuid::Uuid;

mod access_tokens;
mod device_data;
mod devices;
mod tasks;

use super::token::constant_time_eq;
use super::{
    migrations, now, truncate, AccessClientTokenRecord, AdmissionRecorded, AgentTokenRecord,
    ApiTokenRecord, AuditEntry, ConnectionRecord, DeviceListSnapshot, DeviceRecord, DeviceUpdate,
    HardwareDeviceRecord, IdentityLookup, LatestMetric, LogQuery, LogRecord, MetricSample,
    NewAdmission, NewAgentToken, NewLogEntry, NewOutput, NewSecret, NewSession, NewTask,
    OutputChunk, SecretRecord, SecretUpdate, SessionRecord, Store, StoreError, TaskFilter,
    TaskProcessRecord, TaskRecord, TaskUpdate,
};

/// How long a connection waits for a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most reader connections open at once. Reads take microseconds to milliseconds; beyond a few
/// connections, extra concurrency only costs memory (each has its own page cache).
const MAX_READERS: usize = 4;

/// The default [`Store`]: a SQLite database in WAL mode with embedded migrations.
pub struct SqliteStore {
    /// The file, or `None` in memory.
    path: Option<PathBuf>,
    /// The only connection that writes.
    writer: Mutex<Connection>,
    /// Read-only connections; `None` in memory, where a private database is visible to its own
    /// connection only, so reads go to the writer.
    readers: Option<ReaderPool>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed, with its directory) the database at `path` and brings its
    /// schema up to date. Refuses a database written by a newer Thymis
    /// ([`StoreError::SchemaTooNew`]).
    ///
    /// `:memory:` behaves like [`SqliteStore::open_in_memory`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if path == Path::new(":memory:") {
            return Self::open_in_memory();
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        create_private_file(path)?;
        // Without SQLITE_OPEN_URI, so a path that happens to start with `file:` stays a path.
        let mut writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure_writer(&writer)?;
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // E.g. on file systems without shared memory; still correct, only less concurrent.
            tracing::warn!(path = %path.display(), mode, "SQLite refused WAL mode");
        }
        migrations::migrate(&mut writer)?;
        Ok(SqliteStore {
            path: Some(path.to_owned()),
            writer: Mutex::new(writer),
            readers: Some(ReaderPool::new(path.to_owned())),
        })
    }

    /// Opens a fresh database in memory, e.g. for tests and examples. Its contents vanish with
    /// the store.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let mut writer = Connection::open_in_memory()?;
        configure_writer(&writer)?;
        migrations::migrate(&mut writer)?;
        Ok(SqliteStore {
            path: None,
            writer: Mutex::new(writer),
            readers: None,
        })
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `f` on a reader connection (or the writer in memory).
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.readers {
            Some(pool) => {
                let conn = pool.get()?;
                f(&conn)
            }
            None => f(&lock(&self.writer)),
        }
    }

    /// Runs `f` in an IMMEDIATE transaction on the writer and commits if it succeeds; any error
    /// rolls everything back.
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Recommended at close: lets SQLite refresh query planner statistics cheaply.
        let conn = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Err(err) = conn.execute_batch("PRAGMA optimize") {
            tracing::debug!(%err, "PRAGMA optimize failed at close");
        }
    }
}

/// Locks a connection mutex. A panic while it was held leaves the connection usable (an open
/// transaction was rolled back when it was dropped during unwinding), so poisoning is ignored.
fn lock(mutex: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-connection settings of the writer.
fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Per connection, off by default in SQLite; the schema's references rely on it.
    conn.pragma_update(None, "foreign_keys", true)?;
    // In WAL mode NORMAL is durable against application crashes and consistent after power
    // loss (the last commits may be lost), and avoids an fsync per commit.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Only takes effect on a new, empty database: lets retention clean-ups give space back
    // with `PRAGMA incremental_vacuum` instead of a full VACUUM.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    Ok(())
}

/// Reader connections, opened when first needed and kept for reuse, at most [`MAX_READERS`].
struct ReaderPool {
    path: PathBuf,
    state: Mutex<PoolState>,
    /// Signalled when a connection returns or a slot frees up.
    returned: Condvar,
}

struct PoolState {
    idle: Vec<Connection>,
    /// Connections in existence, idle or lent out.
    open: usize,
}

impl ReaderPool {
    fn new(path: PathBuf) -> Self {
        ReaderPool {
            path,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// Lends a connection, waiting for one if all are in use.
    fn get(&self) -> Result<PooledReader<'_>, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(PooledReader {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < MAX_READERS {
                state.open += 1;
                drop(state);
                return match self.open_reader() {
                    Ok(conn) => Ok(PooledReader {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(err) => {
                        self.release_slot();
                        Err(err)
                    }
                };
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Read-write open (read-only WAL connections need extra care with the -shm file), but
        // refuse writes so a bug cannot bypass the writer's serialisation.
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    /// Forgets a connection that will not come back.
    fn release_slot(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.open = state.open.saturating_sub(1);
        self.returned.notify_one();
    }
}

/// A lent reader connection; returns to the pool when dropped.
struct PooledReader<'a> {
    pool: &'a ReaderPool,
    /// Always `Some` until `drop` takes it.
    conn: Option<Connection>,
}

impl Deref for PooledReader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a pooled connection is present until dropped")
    }
}

impl Drop for PooledReader<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if std::thread::panicking() {
            // A panic mid-read may leave a statement or transaction open; start afresh.
            drop(conn);
            self.pool.release_slot();
            return;
        }
        let mut state = self
            .pool
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.idle.push(conn);
        self.pool.returned.notify_one();
    }
}

// --- encoding of column values ---

/// A timestamp as stored: RFC 3339 UTC with exactly six fractional digits, so that text order
/// equals time order and `expires_at <= ?` comparisons work in SQL.
fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Wraps a decoding error of column `idx` as rusqlite does for its own conversions.
fn bad_column(
    idx: usize,
    ty: Type,
    err: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(err))
}

fn parse_ts(idx: usize, text: &str) -> rusqlite::Result<DateTime<Utc>> {
    if let Some(time) = parse_stored_ts(text) {
        return Ok(time);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|err| bad_column(idx, Type::Text, err))
}

/// Reads the exact form [`ts`] writes (`2024-01-02T03:04:05.123456Z`) without chrono's
/// general parser, which took a tenth of a 10,000-device list; `None` for anything else.
fn parse_stored_ts(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 27 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'.' || b[26] != b'Z' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, digit| {
            digit
                .is_ascii_digit()
                .then(|| n * 10 + u32::from(digit - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(5, 7)?,
        number(8, 10)?,
    )?;
    let time = chrono::NaiveTime::from_hms_micro_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
        number(20, 26)?,
    )?;
    Some(date.and_time(time).and_utc())
}

fn get_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    parse_ts(idx, &row.get::<_, String>(idx)?)
}

fn get_opt_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<String>>(idx)?
        .map(|text| parse_ts(idx, &text))
        .transpose()
}

/// Reads a text column through `FromStr` (ids, enums).
fn get_parsed<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    row.get::<_, String>(idx)?
        .parse()
        .map_err(|err| bad_column(idx, Type::Text, err))
}

fn get_json(row: &Row<'_>, idx: usize) -> rusqlite::Result<serde_json::Value> {
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(serde_json::Value::Null),
        Some(text) => serde_json::from_str(&text).map_err(|err| bad_column(idx, Type::Text, err)),
    }
}

/// Turns a uniqueness violation into [`StoreError::Conflict`]; other errors pass through.
fn conflict_on_unique(err: rusqlite::Error, message: &str) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, _) = &err {
        if code.code == ErrorCode::ConstraintViolation
            && matches!(
                code.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            )
        {
            return StoreError::Conflict(message.to_owned());
        }
    }
    StoreError::Database(err)
}

// --- row mappers; column lists and mappers are kept side by side so they cannot drift ---

const SESSION_COLUMNS: &str =
    "id, username, given_name, family_name, email, created_at, expires_at, token_hash";

fn session_row(row: &Row<'_>) -> rusqlite::Result<(SessionRecord, String)> {
    Ok((
        SessionRecord {
            id: get_parsed(row, 0)?,
            username: row.get(1)?,
            given_name: row.get(2)?,
            family_name: row.get(3)?,
            email: row.get(4)?,
            created_at: get_ts(row, 5)?,
            expires_at: get_ts(row, 6)?,
        },
        row.get(7)?,
    ))
}

const API_TOKEN_COLUMNS: &str = "id, name, created_by, created_at, last_used_at, revoked_at";

fn api_token_row(row: &Row<'_>) -> rusqlite::Result<ApiTokenRecord> {
    Ok(ApiTokenRecord {
        id: get_parsed(row, 0)?,
        name: row.get(1)?,
        created_by: row.get(2)?,
        created_at: get_ts(row, 3)?,
        last_used_at: get_opt_ts(row, 4)?,
        revoked_at: get_opt_ts(row, 5)?,
    })
}

const SECRET_COLUMNS: &str = "id, display_name, type, value_enc, value_size, filename, \
                              include_in_image, processing_type, created_at, updated_at, delete_at";

fn secret_row(row: &Row<'_>) -> rusqlite::Result<SecretRecord> {
    Ok(SecretRecord {
        id: get_parsed(row, 0)?,
        display_name: row.get(1)?,
        secret_type: get_parsed(row, 2)?,
        value_enc: row.get(3)?,
        value_size: row.get(4)?,
        filename: row.get(5)?,
        include_in_image: row.get(6)?,
        processing_type: get_parsed(row, 7)?,
        created_at: get_ts(row, 8)?,
        updated_at: get_ts(row, 9)?,
        delete_at: get_opt_ts(row, 10)?,
    })
}

const AUDIT_COLUMNS: &str = "id, at, actor, action, target, detail";

fn audit_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.get(0)?,
        at: get_ts(row, 1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        target: row.get(4)?,
        detail: get_json(row, 5)?,
    })
}

fn select_live_secret(conn: &Connection, id: Uuid) -> Result<Option<SecretRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE id = ?1 AND delete_at IS NULL"),
            [id.to_string()],
            secret_row,
        )
        .optional()?)
}

impl Store for SqliteStore {
    fn create_session(&self, session: &NewSession) -> Result<SessionRecord, StoreError> {
        let record = SessionRecord {
            id: Uuid::new_v4(),
            username: session.username.clone(),
            given_name: session.given_name.clone(),
            family_name: session.family_name.clone(),
            email: session.email.clone(),
            created_at: now(),
            expires_at: truncate(session.expires_at),
        };
        self.write(|tx| {
            tx.execute(
                "INSERT INTO sessions (id, token_hash, username, given_name, family_name, email, \
                 created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    record.id.to_string(),
                    session.token_hash,
                    record.username,
                    record.given_name,
                    record.family_name,
                    record.email,
                    ts(&record.created_at),
                    ts(&record.expires_at),
                ],
            )
            .map_err(|err| conflict_on_unique(err, "session id already exists"))?;
            Ok(())
        })?;
        Ok(record)
    }

    fn find_session(
        &self,
        id: Uuid,
        token_hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        // Fetched by id and compared here in constant time, so response timing says nothing
        // about how close a guessed secret was.
        let found = self.read(|conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"),
                    [id.to_string()],
                    session_row,
                )
                .optional()?)
        })?;
        Ok(found.and_then(|(record, stored_hash)| {
            (constant_time_eq(&stored_hash, token_hash) && record.expires_at > Utc::now())
                .then_some(record)
        }))
    }

    fn delete_session(&self, id: Uuid) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM sessions WHERE id = ?1", [id.to_string()])? > 0))
    }

    fn delete_expired_sessions(&self) -> Result<usize, StoreError> {
        self.write(
            |tx| Ok(tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [ts(&now())])?),
        )
    }

    fn create_api_token(
        &self,
        name: &str,
        token_hash: &str,
        created_by: &str,
    ) -> Result<ApiTokenRecord, StoreError> {
        let record = ApiTokenRecord {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            created_by: created_by.to_owned(),
            created_at: now(),
            last_used_at: None,
            revoked_at: None,
        };
        self.write(|tx| {
            tx.execute(
                "INSERT INTO api_tokens (id, name, token_hash, created_by, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    record.id.to_string(),
                    record.name,
                    token_hash,
                    record.created_by,
                    ts(&record.created_at),
                ],
            )
            .map_err(|err| conflict_on_unique(err, "an API token with this hash already exists"))?;
            Ok(())
        })?;
        Ok(record)
    }

    fn list_api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {API_TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([], api_token_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn find_active_api_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiTokenRecord>, StoreError> {
        // An index lookup by hash: its timing can only reveal something about SHA-256 digests,
        // which does not help anyone find a token with 256 random bits.
        self.read(|conn| {
            Ok(conn
                .query_row(
                    &format!(
                        "SELECT {API_TOKEN_COLUMNS} FROM api_tokens \
                         WHERE token_hash = ?1 AND revoked_at IS NULL"
                    ),
                    [token_hash],
                    api_token_row,
                )
                .optional()?)
        })
    }

    fn revoke_api_token(&self, id: Uuid) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE api_tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![ts(&now()), id.to_string()],
            )? > 0)
        })
    }

    fn touch_api_token(&self, id: Uuid) -> Result<(), StoreError> {
        let changed = self.write(|tx| {
            Ok(tx.execute(
                "UPDATE api_tokens SET last_used_at = ?1 WHERE id = ?2",
                params![ts(&now()), id.to_string()],
            )?)
        })?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "API token",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    fn insert_secret(&self, secret: &NewSecret) -> Result<SecretRecord, StoreError> {
        let at = now();
        let record = SecretRecord {
            id: Uuid::new_v4(),
            display_name: secret.display_name.clone(),
            secret_type: secret.secret_type,
            value_enc: secret.value.value_enc.clone(),
            value_size: secret.value.value_size,
            filename: secret.filename.clone(),
            include_in_image: secret.include_in_image,
            processing_type: secret.processing_type,
            created_at: at,
            updated_at: at,
            delete_at: None,
        };
        self.write(|tx| {
            tx.execute(
                &format!(
                    "INSERT INTO secrets ({SECRET_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL)"
                ),
                params![
                    record.id.to_string(),
                    record.display_name,
                    record.secret_type.as_str(),
                    record.value_enc,
                    record.value_size,
                    record.filename,
                    record.include_in_image,
                    record.processing_type.as_str(),
                    ts(&record.created_at),
                    ts(&record.updated_at),
                ],
            )
            .map_err(|err| conflict_on_unique(err, "secret id already exists"))?;
            Ok(())
        })?;
        Ok(record)
    }

    fn update_secret(&self, id: Uuid, update: &SecretUpdate) -> Result<SecretRecord, StoreError> {
        let not_found = || StoreError::NotFound {
            what: "secret",
            id: id.to_string(),
        };
        // Only the given columns appear in the statement, so concurrent updates of different
        // fields do not overwrite each other.
        let mut sets: Vec<&'static str> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(name) = &update.display_name {
            sets.push("display_name");
            values.push(Value::Text(name.clone()));
        }
        if let Some(kind) = update.secret_type {
            sets.push("type");
            values.push(Value::Text(kind.as_str().to_owned()));
        }
        if let Some(value) = &update.value {
            let size = i64::try_from(value.value_size)
                .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
            sets.push("value_enc");
            values.push(Value::Blob(value.value_enc.clone()));
            sets.push("value_size");
            values.push(Value::Integer(size));
        }
        if let Some(filename) = &update.filename {
            sets.push("filename");
            values.push(filename.clone().map_or(Value::Null, Value::Text));
        }
        if let Some(include) = update.include_in_image {
            sets.push("include_in_image");
            values.push(Value::Integer(i64::from(include)));
        }
        if let Some(processing) = update.processing_type {
            sets.push("processing_type");
            values.push(Value::Text(processing.as_str().to_owned()));
        }
        self.write(|tx| {
            if !sets.is_empty() {
                sets.push("updated_at");
                values.push(Value::Text(ts(&now())));
                let assignments = sets
                    .iter()
                    .enumerate()
                    .map(|(i, column)| format!("{column} = ?{}", i + 1))
                    .collect::<Vec<_>>()
                    .join(", ");
                let id_param = sets.len() + 1;
                values.push(Value::Text(id.to_string()));
                let changed = tx.execute(
                    &format!(
                        "UPDATE secrets SET {assignments} \
                         WHERE id = ?{id_param} AND delete_at IS NULL"
                    ),
                    params_from_iter(values.iter()),
                )?;
                if changed == 0 {
                    return Err(not_found());
                }
            }
            select_live_secret(tx, id)?.ok_or_else(not_found)
        })
    }

    fn get_secret(&self, id: Uuid) -> Result<Option<SecretRecord>, StoreError> {
        self.read(|conn| select_live_secret(conn, id))
    }

    fn list_secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {SECRET_COLUMNS} FROM secrets WHERE delete_at IS NULL \
                 ORDER BY display_name COLLATE NOCASE, created_at, id"
            ))?;
            let rows = stmt.query_map([], secret_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn soft_delete_secret(&self, id: Uuid) -> Result<bool, StoreError> {
        self.write(|tx| {
            let at = ts(&now());
            Ok(tx.execute(
                "UPDATE secrets SET delete_at = ?1, updated_at = ?1 \
                 WHERE id = ?2 AND delete_at IS NULL",
                params![at, id.to_string()],
            )? > 0)
        })
    }

    fn append_audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<AuditEntry, StoreError> {
        let at = now();
        // JSON null is stored as SQL NULL, which reads back as JSON null.
        let detail_text = (!detail.is_null()).then(|| detail.to_string());
        let id = self.write(|tx| {
            tx.execute(
                "INSERT INTO audit_log (at, actor, action, target, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ts(&at), actor, action, target, detail_text],
            )?;
            Ok(tx.last_insert_rowid())
        })?;
        Ok(AuditEntry {
            id,
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            detail: detail.clone(),
        })
    }

    fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            // By id, not time: ids follow insertion order even if the clock steps back.
            let mut stmt = conn.prepare(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit], audit_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn get_setting(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT value FROM controller_settings WHERE key = ?1",
                    [key],
                    |row| get_json(row, 0),
                )
                .optional()?)
        })
    }

    fn set_setting(&self, key: &str, value: &serde_json::Value) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO controller_settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value.to_string()],
            )?;
            Ok(())
        })
    }

    fn insert_task(&self, task: &NewTask) -> Result<TaskRecord, StoreError> {
        self.write(|tx| tasks::insert(tx, task))
    }

    fn get_task(&self, id: Uuid) -> Result<Option<TaskRecord>, StoreError> {
        self.read(|conn| tasks::get(conn, id))
    }

    fn list_tasks(
        &self,
        filter: &TaskFilter,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<TaskRecord>, u64), StoreError> {
        self.read(|conn| tasks::list(conn, filter, limit, offset))
    }

    fn update_task(&self, id: Uuid, update: &TaskUpdate) -> Result<TaskRecord, StoreError> {
        self.write(|tx| tasks::update(tx, id, update))
    }

    fn put_task_process(
        &self,
        task_id: Uuid,
        process: &TaskProcessRecord,
    ) -> Result<(), StoreError> {
        self.write(|tx| tasks::put_process(tx, task_id, process))
    }

    fn list_task_processes(&self, task_id: Uuid) -> Result<Vec<TaskProcessRecord>, StoreError> {
        self.read(|conn| tasks::list_processes(conn, task_id))
    }

    fn append_task_output(
        &self,
        task_id: Uuid,
        output: &[NewOutput],
        max_bytes: u64,
    ) -> Result<i64, StoreError> {
        self.write(|tx| tasks::append_output(tx, task_id, output, max_bytes))
    }

    fn task_output(&self, task_id: Uuid, after_seq: i64) -> Result<Vec<OutputChunk>, StoreError> {
        self.read(|conn| tasks::output(conn, task_id, after_seq))
    }

    fn create_agent_token(&self, token: &NewAgentToken) -> Result<AgentTokenRecord, StoreError> {
        self.write(|tx| devices::create_agent_token(tx, token))
    }

    fn find_agent_token(&self, token_hash: &str) -> Result<Option<AgentTokenRecord>, StoreError> {
        self.read(|conn| devices::find_agent_token(conn, token_hash))
    }

    fn get_agent_token(&self, id: Uuid) -> Result<Option<AgentTokenRecord>, StoreError> {
        self.read(|conn| devices::get_agent_token(conn, id))
    }

    fn list_agent_tokens(&self) -> Result<Vec<AgentTokenRecord>, StoreError> {
        self.read(devices::list_agent_tokens)
    }

    fn revoke_agent_token(&self, id: Uuid) -> Result<AgentTokenRecord, StoreError> {
        self.write(|tx| devices::revoke_agent_token(tx, id))
    }

    fn touch_agent_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.write(|tx| devices::touch_agent_token(tx, id, truncate(at)))
    }

    fn get_device(&self, id: Uuid) -> Result<Option<DeviceRecord>, StoreError> {
        self.read(|conn| devices::get_device(conn, id))
    }

    fn find_device_by_key(&self, public_key: &str) -> Result<Option<DeviceRecord>, StoreError> {
        self.read(|conn| devices::find_device_by_key(conn, public_key))
    }

    fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.read(|conn| devices::list_devices(conn, None))
    }

    fn list_devices_by_config(&self, config_id: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        self.read(|conn| devices::list_devices(conn, Some(config_id)))
    }

    fn device_list_snapshot(
        &self,
        config_id: Option<&str>,
        known: &dyn Fn(Uuid, i64) -> bool,
    ) -> Result<DeviceListSnapshot, StoreError> {
        self.read(|conn| devices::device_list_snapshot(conn, config_id, known))
    }

    fn update_device(&self, id: Uuid, update: &DeviceUpdate) -> Result<DeviceRecord, StoreError> {
        self.write(|tx| devices::update_device(tx, id, update))
    }

    fn delete_device(&self, id: Uuid) -> Result<bool, StoreError> {
        self.write(|tx| devices::delete_device(tx, id))
    }

    fn lookup_identity(
        &self,
        public_key: &str,
        hardware_ids: &std::collections::BTreeMap<String, String>,
    ) -> Result<IdentityLookup, StoreError> {
        self.read(|conn| devices::lookup_identity(conn, public_key, hardware_ids))
    }

    fn record_admission(&self, admission: &NewAdmission) -> Result<AdmissionRecorded, StoreError> {
        let admission = NewAdmission {
            at: truncate(admission.at),
            ..admission.clone()
        };
        self.write(|tx| devices::record_admission(tx, &admission))
    }

    fn touch_devices(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        self.write(|tx| devices::touch_devices(tx, ids, truncate(at)))
    }

    fn set_network_interfaces(
        &self,
        id: Uuid,
        interfaces: &[thymis_protocol::NetworkInterface],
    ) -> Result<(), StoreError> {
        self.write(|tx| devices::set_network_interfaces(tx, id, interfaces))
    }

    fn list_hardware_devices(&self) -> Result<Vec<HardwareDeviceRecord>, StoreError> {
        self.read(devices::list_hardware_devices)
    }

    fn open_agent_connection(
        &self,
        device_id: Uuid,
        ip: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<ConnectionRecord, StoreError> {
        self.write(|tx| devices::open_connection(tx, device_id, ip, truncate(at)))
    }

    fn close_agent_connection(
        &self,
        device_id: Uuid,
        connection_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| devices::close_connection(tx, device_id, connection_id, truncate(at)))
    }

    fn close_all_agent_connections(&self, at: DateTime<Utc>) -> Result<usize, StoreError> {
        self.write(|tx| devices::close_all_connections(tx, truncate(at)))
    }

    fn connection_history(
        &self,
        device_id: Uuid,
        limit: usize,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.read(|conn| devices::connection_history(conn, device_id, limit))
    }

    fn connections_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.read(|conn| devices::connections_between(conn, from, to))
    }

    fn insert_metric(&self, device_id: Uuid, sample: &MetricSample) -> Result<(), StoreError> {
        let sample = MetricSample {
            at: truncate(sample.at),
            ..*sample
        };
        self.write(|tx| device_data::insert_metric(tx, device_id, &sample))
    }

    fn metric_buckets(
        &self,
        device_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_secs: u32,
    ) -> Result<Vec<MetricSample>, StoreError> {
        self.read(|conn| device_data::metric_buckets(conn, device_id, from, to, bucket_secs))
    }

    fn latest_metrics(&self) -> Result<Vec<LatestMetric>, StoreError> {
        self.read(device_data::latest_metrics)
    }

    fn delete_metrics_before(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        self.write(|tx| device_data::delete_metrics_before(tx, cutoff))
    }

    fn upsert_logs(&self, entries: &[NewLogEntry]) -> Result<usize, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        self.write(|tx| device_data::upsert_logs(tx, entries))
    }

    fn query_logs(&self, device_id: Uuid, query: &LogQuery) -> Result<Vec<LogRecord>, StoreError> {
        self.read(|conn| device_data::query_logs(conn, device_id, query))
    }

    fn log_program_names(&self, device_id: Uuid) -> Result<Vec<String>, StoreError> {
        self.read(|conn| device_data::log_program_names(conn, device_id))
    }

    fn latest_log_time(&self, device_id: Uuid) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(|conn| device_data::latest_log_time(conn, device_id))
    }

    fn logs_since(
        &self,
        device_id: Uuid,
        from: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        self.read(|conn| device_data::logs_since(conn, device_id, from, limit))
    }

    fn delete_logs_before(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<usize, StoreError> {
        self.write(|tx| device_data::delete_logs_before(tx, cutoff, batch))
    }

    fn create_access_client_token(
        &self,
        token_hash: &str,
        device_id: Uuid,
        task_id: Option<Uuid>,
    ) -> Result<(), StoreError> {
        self.write(|tx| access_tokens::create(tx, token_hash, device_id, task_id))
    }

    fn find_access_client_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccessClientTokenRecord>, StoreError> {
        self.read(|conn| access_tokens::find(conn, token_hash))
    }
}

/// Creates a new database file readable only by its owner (it holds token hashes and encrypted
/// secrets); SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_read_back_as_written() {
        for (seconds, nanos) in [
            (1_763_856_000, 123_456_000),
            (0, 0),
            (253_402_300_799, 999_999_000),
        ] {
            let time = DateTime::from_timestamp(seconds, nanos).unwrap();
            assert_eq!(parse_stored_ts(&ts(&time)), Some(time));
            assert_eq!(parse_ts(0, &ts(&time)).unwrap(), time);
        }
        // Other RFC 3339 forms (older rows, imports) go through chrono.
        for other in ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123456+01:00"] {
            assert_eq!(parse_stored_ts(other), None, "{other}");
            assert!(parse_ts(0, other).is_ok(), "{other}");
        }
        for bad in [
            "2024-13-02T03:04:05.123456Z",
            "2024-01-02T03:04:05.12345xZ",
            "",
        ] {
            assert_eq!(parse_stored_ts(bad), None, "{bad}");
            assert!(parse_ts(0, bad).is_err(), "{bad}");
        }
    }
}
