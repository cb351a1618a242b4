//! Schema migrations, embedded in the binary so a controller never depends on files next to it.
//!
//! Migration *n* (1-based) turns schema version *n − 1* into *n*; the version lives in SQLite's
//! `PRAGMA user_version`, which is part of the database header and therefore changes atomically
//! with the migration's transaction. Never edit a released migration: add the next file.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// One embedded migration.
struct Migration {
    name: &'static str,
    sql: &'static str,
}

/// All migrations in order; the position + 1 is the version each produces.
const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_initial.sql",
        sql: include_str!("../../migrations/0001_initial.sql"),
    },
    Migration {
        name: "0002_task_processes.sql",
        sql: include_str!("../../migrations/0002_task_processes.sql"),
    },
    Migration {
        name: "0003_device_registry.sql",
        sql: include_str!("../../migrations/0003_device_registry.sql"),
    },
    Migration {
        name: "0004_device_revisions.sql",
        sql: include_str!("../../migrations/0004_device_revisions.sql"),
    },
];

/// The schema version this build creates and understands (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`SCHEMA_VERSION`], applying each missing migration once. Refuses a
/// database from a newer build instead of guessing at a schema it does not know.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE takes the write lock before reading the version, so two processes opening the
    // same new file cannot both decide to apply the same migration.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > i64::from(SCHEMA_VERSION) {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    if current < 0 {
        return Err(StoreError::Migration {
            version: 0,
            name: "user_version",
            source: rusqlite::Error::IntegralValueOutOfRange(0, current),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as u32 + 1;
        let failed = |source| StoreError::Migration {
            version,
            name: migration.name,
            source,
        };
        tx.execute_batch(migration.sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(failed)?;
        tracing::info!(version, name = migration.name, "applied database migration");
    }
    tx.commit()?;
    Ok(())
}
