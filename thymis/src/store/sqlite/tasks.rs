//! SQL of tasks, their commands and output.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use uuid::Uuid;

use super::{get_json, get_opt_ts, get_parsed, get_ts, ts};
use crate::store::{
    now, NewOutput, NewTask, OutputChunk, StoreError, TaskFilter, TaskProcessRecord, TaskRecord,
    TaskState, TaskUpdate,
};

const TASK_COLUMNS: &str = "id, kind, state, submission_data, submitted_by, parent_id, \
     submitted_at, started_at, ended_at, exception, progress, output_bytes, output_dropped_bytes";

fn task_row(row: &Row<'_>) -> rusqlite::Result<TaskRecord> {
    let parent: Option<String> = row.get(5)?;
    Ok(TaskRecord {
        id: get_parsed(row, 0)?,
        kind: row.get(1)?,
        state: get_parsed(row, 2)?,
        submission_data: get_json(row, 3)?,
        submitted_by: row.get(4)?,
        parent_id: parent
            .map(|p| p.parse())
            .transpose()
            .map_err(|err| super::bad_column(5, rusqlite::types::Type::Text, err))?,
        children: Vec::new(),
        submitted_at: get_ts(row, 6)?,
        started_at: get_opt_ts(row, 7)?,
        ended_at: get_opt_ts(row, 8)?,
        exception: row.get(9)?,
        progress: match get_json(row, 10)? {
            serde_json::Value::Null => None,
            value => Some(value),
        },
        output_bytes: row.get::<_, i64>(11)?.max(0) as u64,
        output_dropped_bytes: row.get::<_, i64>(12)?.max(0) as u64,
    })
}

fn with_children(conn: &Connection, mut task: TaskRecord) -> Result<TaskRecord, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT id FROM tasks WHERE parent_id = ?1 ORDER BY submitted_at, rowid")?;
    task.children = stmt
        .query_map([task.id.to_string()], |row| get_parsed(row, 0))?
        .collect::<Result<_, _>>()?;
    Ok(task)
}

pub(super) fn get(conn: &Connection, id: Uuid) -> Result<Option<TaskRecord>, StoreError> {
    let task = conn
        .query_row(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"),
            [id.to_string()],
            task_row,
        )
        .optional()?;
    task.map(|task| with_children(conn, task)).transpose()
}

pub(super) fn insert(tx: &Transaction<'_>, task: &NewTask) -> Result<TaskRecord, StoreError> {
    let id = Uuid::new_v4();
    tx.execute(
        "INSERT INTO tasks (id, parent_id, kind, state, submitted_by, submission_data, submitted_at)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6)",
        params![
            id.to_string(),
            task.parent_id.map(|p| p.to_string()),
            task.kind,
            task.submitted_by,
            task.submission_data.to_string(),
            ts(&now()),
        ],
    )?;
    get(tx, id)?.ok_or_else(|| not_found(id))
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        what: "task",
        id: id.to_string(),
    }
}

pub(super) fn list(
    conn: &Connection,
    filter: &TaskFilter,
    limit: usize,
    offset: usize,
) -> Result<(Vec<TaskRecord>, u64), StoreError> {
    let mut conditions = Vec::new();
    let mut values: Vec<String> = Vec::new();
    if let Some(state) = filter.state {
        values.push(state.as_str().to_owned());
        conditions.push(format!("state = ?{}", values.len()));
    }
    if let Some(kind) = &filter.kind {
        values.push(kind.clone());
        conditions.push(format!("kind = ?{}", values.len()));
    }
    if let Some(parent) = filter.parent_id {
        values.push(parent.to_string());
        conditions.push(format!("parent_id = ?{}", values.len()));
    }
    let condition = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM tasks {condition}"),
        rusqlite::params_from_iter(values.iter()),
        |row| row.get(0),
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks {condition}
         ORDER BY submitted_at DESC, rowid DESC LIMIT {limit} OFFSET {offset}"
    ))?;
    let tasks = stmt
        .query_map(rusqlite::params_from_iter(values.iter()), task_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let tasks = tasks
        .into_iter()
        .map(|task| with_children(conn, task))
        .collect::<Result<_, _>>()?;
    Ok((tasks, total.max(0) as u64))
}

pub(super) fn update(
    tx: &Transaction<'_>,
    id: Uuid,
    update: &TaskUpdate,
) -> Result<TaskRecord, StoreError> {
    let at = ts(&now());
    let key = id.to_string();
    if let Some(state) = update.state {
        let changed = match state {
            TaskState::Running => tx.execute(
                "UPDATE tasks SET state = ?2, started_at = coalesce(started_at, ?3) WHERE id = ?1",
                params![key, state.as_str(), at],
            )?,
            TaskState::Pending => tx.execute(
                "UPDATE tasks SET state = ?2 WHERE id = ?1",
                params![key, state.as_str()],
            )?,
            _ => tx.execute(
                "UPDATE tasks SET state = ?2, ended_at = ?3 WHERE id = ?1",
                params![key, state.as_str(), at],
            )?,
        };
        if changed == 0 {
            return Err(not_found(id));
        }
    }
    if let Some(message) = &update.append_exception {
        tx.execute(
            "UPDATE tasks SET exception = CASE WHEN exception IS NULL OR exception = ''
                THEN ?2 ELSE exception || char(10) || ?2 END WHERE id = ?1",
            params![key, message],
        )?;
    }
    if let Some(progress) = &update.progress {
        tx.execute(
            "UPDATE tasks SET progress = ?2 WHERE id = ?1",
            params![key, progress.to_string()],
        )?;
    }
    get(tx, id)?.ok_or_else(|| not_found(id))
}

pub(super) fn put_process(
    tx: &Transaction<'_>,
    task_id: Uuid,
    process: &TaskProcessRecord,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO task_processes
            (task_id, process_index, program, args, started_at, ended_at, exit_code, progress, errors)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            task_id.to_string(),
            process.index,
            process.program,
            serde_json::to_string(&process.args).unwrap_or_else(|_| "[]".into()),
            ts(&process.started_at),
            process.ended_at.as_ref().map(ts),
            process.exit_code,
            process.progress.as_ref().map(|p| p.to_string()),
            process.errors.to_string(),
        ],
    )?;
    Ok(())
}

pub(super) fn list_processes(
    conn: &Connection,
    task_id: Uuid,
) -> Result<Vec<TaskProcessRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT process_index, program, args, started_at, ended_at, exit_code, progress, errors
         FROM task_processes WHERE task_id = ?1 ORDER BY process_index",
    )?;
    let processes = stmt
        .query_map([task_id.to_string()], |row| {
            let args: String = row.get(2)?;
            Ok(TaskProcessRecord {
                index: row.get(0)?,
                program: row.get(1)?,
                args: serde_json::from_str(&args).unwrap_or_default(),
                started_at: get_ts(row, 3)?,
                ended_at: get_opt_ts(row, 4)?,
                exit_code: row.get(5)?,
                progress: match get_json(row, 6)? {
                    serde_json::Value::Null => None,
                    value => Some(value),
                },
                errors: get_json(row, 7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(processes)
}

pub(super) fn append_output(
    tx: &Transaction<'_>,
    task_id: Uuid,
    output: &[NewOutput],
    max_bytes: u64,
) -> Result<i64, StoreError> {
    let key = task_id.to_string();
    let mut seq: i64 = tx.query_row(
        "SELECT coalesce(max(seq), 0) FROM task_output WHERE task_id = ?1",
        [&key],
        |row| row.get(0),
    )?;
    let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let (mut added, mut cut): (i64, i64) = (0, 0);
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO task_output (task_id, seq, stream, data, process_index)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for chunk in output.iter().filter(|chunk| !chunk.data.is_empty()) {
            // A chunk larger than the whole limit keeps only its end.
            let data = &chunk.data[chunk.data.len().saturating_sub(limit)..];
            cut += (chunk.data.len() - data.len()) as i64;
            seq += 1;
            added += data.len() as i64;
            insert.execute(params![
                key,
                seq,
                chunk.stream.as_str(),
                data,
                chunk.process_index
            ])?;
        }
    }
    let changed = tx.execute(
        "UPDATE tasks SET output_bytes = output_bytes + ?2,
            output_dropped_bytes = output_dropped_bytes + ?3 WHERE id = ?1",
        params![key, added, cut],
    )?;
    if changed == 0 {
        return Err(not_found(task_id));
    }
    let stored: i64 = tx.query_row(
        "SELECT output_bytes FROM tasks WHERE id = ?1",
        [&key],
        |row| row.get(0),
    )?;
    let max_bytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
    if stored > max_bytes {
        // Drop whole chunks from the front until the rest fits.
        let mut excess = stored - max_bytes;
        let mut dropped = 0i64;
        let mut last_dropped = 0i64;
        {
            let mut oldest = tx.prepare_cached(
                "SELECT seq, length(data) FROM task_output WHERE task_id = ?1 ORDER BY seq",
            )?;
            let mut rows = oldest.query([&key])?;
            while excess > 0 {
                let Some(row) = rows.next()? else { break };
                let (chunk_seq, len): (i64, i64) = (row.get(0)?, row.get(1)?);
                last_dropped = chunk_seq;
                dropped += len;
                excess -= len;
            }
        }
        tx.execute(
            "DELETE FROM task_output WHERE task_id = ?1 AND seq <= ?2",
            params![key, last_dropped],
        )?;
        tx.execute(
            "UPDATE tasks SET output_bytes = output_bytes - ?2,
                output_dropped_bytes = output_dropped_bytes + ?2 WHERE id = ?1",
            params![key, dropped],
        )?;
    }
    Ok(seq)
}

pub(super) fn output(
    conn: &Connection,
    task_id: Uuid,
    after_seq: i64,
) -> Result<Vec<OutputChunk>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, process_index, stream, data FROM task_output
         WHERE task_id = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let chunks = stmt
        .query_map(params![task_id.to_string(), after_seq], |row| {
            Ok(OutputChunk {
                seq: row.get(0)?,
                process_index: row.get(1)?,
                stream: get_parsed(row, 2)?,
                data: row.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(chunks)
}
