//! SQL of access-client tokens.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use uuid::Uuid;

use super::{get_opt_ts, get_parsed, get_ts, ts};
use crate::store::{now, AccessClientTokenRecord, StoreError};

pub(super) fn create(
    tx: &Transaction<'_>,
    token_hash: &str,
    device_id: Uuid,
    task_id: Option<Uuid>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO access_client_tokens (token_hash, device_id, task_id, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            token_hash,
            device_id.to_string(),
            task_id.map(|id| id.to_string()),
            ts(&now())
        ],
    )?;
    Ok(())
}

pub(super) fn find(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<AccessClientTokenRecord>, StoreError> {
    let record = conn
        .query_row(
            "SELECT device_id, task_id, created_at, revoked_at FROM access_client_tokens
             WHERE token_hash = ?1",
            [token_hash],
            |row| {
                let task: Option<String> = row.get(1)?;
                Ok(AccessClientTokenRecord {
                    device_id: get_parsed(row, 0)?,
                    task_id: task.and_then(|t| t.parse().ok()),
                    created_at: get_ts(row, 2)?,
                    revoked_at: get_opt_ts(row, 3)?,
                })
            },
        )
        .optional()?;
    Ok(record)
}
