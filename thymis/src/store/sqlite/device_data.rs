//! SQL of what devices send continuously: metrics samples and log lines.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, Row};
use uuid::Uuid;

use super::devices::missing_device;
use super::{get_opt_ts, get_parsed, get_ts, parse_ts, ts};
use crate::store::{LatestMetric, LogQuery, LogRecord, MetricSample, NewLogEntry, StoreError};

// --- metrics ---

/// The JSON of the `"values"` column.
fn metric_values(sample: &MetricSample) -> String {
    serde_json::json!({
        "cpu_percent": sample.cpu_percent,
        "ram_percent": sample.ram_percent,
        "disk_percent": sample.disk_percent,
    })
    .to_string()
}

fn percent(values: &serde_json::Value, key: &str) -> f64 {
    values
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0)
}

pub(super) fn insert_metric(
    conn: &Connection,
    device_id: Uuid,
    sample: &MetricSample,
) -> Result<(), StoreError> {
    // Bucket 0 holds raw samples; a resent sample (same time) replaces the first.
    conn.prepare_cached(
        "INSERT OR REPLACE INTO device_metrics (device_id, at, bucket, \"values\") \
         VALUES (?1, ?2, 0, ?3)",
    )?
    .execute(params![
        device_id.to_string(),
        ts(&sample.at),
        metric_values(sample)
    ])
    .map_err(|err| missing_device(err, device_id))?;
    Ok(())
}

pub(super) fn metric_buckets(
    conn: &Connection,
    device_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket_secs: u32,
) -> Result<Vec<MetricSample>, StoreError> {
    let bucket = i64::from(bucket_secs.max(1));
    let mut stmt = conn.prepare_cached(
        "SELECT (unixepoch(at) / ?4) * ?4 AS start, \
                avg(json_extract(\"values\", '$.cpu_percent')), \
                avg(json_extract(\"values\", '$.ram_percent')), \
                avg(json_extract(\"values\", '$.disk_percent')) \
         FROM device_metrics \
         WHERE device_id = ?1 AND bucket = 0 AND at >= ?2 AND at <= ?3 \
         GROUP BY start ORDER BY start",
    )?;
    let rows = stmt.query_map(
        params![device_id.to_string(), ts(&from), ts(&to), bucket],
        |row| {
            let start: i64 = row.get(0)?;
            Ok(MetricSample {
                at: Utc
                    .timestamp_opt(start, 0)
                    .single()
                    .unwrap_or(DateTime::UNIX_EPOCH),
                cpu_percent: row.get::<_, Option<f64>>(1)?.unwrap_or(0.0),
                ram_percent: row.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
                disk_percent: row.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn latest_metrics(conn: &Connection) -> Result<Vec<LatestMetric>, StoreError> {
    // The newest raw sample per device comes from the primary key (device, bucket, at).
    let mut stmt = conn.prepare(
        "SELECT d.id, d.name, m.at, m.\"values\" FROM devices d \
         JOIN device_metrics m ON m.device_id = d.id AND m.bucket = 0 AND m.at = \
             (SELECT max(at) FROM device_metrics WHERE device_id = d.id AND bucket = 0) \
         WHERE d.archived = 0 ORDER BY d.name IS NULL, d.name, d.id",
    )?;
    let rows = stmt.query_map([], |row| {
        let values = super::get_json(row, 3)?;
        Ok(LatestMetric {
            device_id: get_parsed(row, 0)?,
            name: row.get(1)?,
            sample: MetricSample {
                at: get_ts(row, 2)?,
                cpu_percent: percent(&values, "cpu_percent"),
                ram_percent: percent(&values, "ram_percent"),
                disk_percent: percent(&values, "disk_percent"),
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn delete_metrics_before(
    conn: &Connection,
    cutoff: DateTime<Utc>,
) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM device_metrics WHERE at < ?1", [ts(&cutoff)])?)
}

// --- logs ---

const LOG_COLUMNS: &str =
    "id, device_id, hostname, at, severity, facility, program, syslogtag, message";

/// A syslog number as stored; anything outside 0–255 (never written by this store) is dropped.
fn small_number(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u8>> {
    Ok(row
        .get::<_, Option<i64>>(idx)?
        .and_then(|n| u8::try_from(n).ok()))
}

fn log_row(row: &Row<'_>) -> rusqlite::Result<LogRecord> {
    let device_id: Option<String> = row.get(1)?;
    Ok(LogRecord {
        id: row.get(0)?,
        device_id: device_id.and_then(|id| id.parse().ok()),
        hostname: row.get(2)?,
        at: parse_ts(3, &row.get::<_, String>(3)?)?,
        severity: small_number(row, 4)?,
        facility: small_number(row, 5)?,
        program: row.get(6)?,
        syslogtag: row.get(7)?,
        message: row.get(8)?,
    })
}

pub(super) fn upsert_logs(conn: &Connection, entries: &[NewLogEntry]) -> Result<usize, StoreError> {
    // A resend replaces the stored line, but a line can never be taken over by another key:
    // ids come from devices, and one device must not overwrite another's logs.
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO device_logs (ssh_public_key, {LOG_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (id) DO UPDATE SET device_id = excluded.device_id, \
             hostname = excluded.hostname, at = excluded.at, severity = excluded.severity, \
             facility = excluded.facility, program = excluded.program, \
             syslogtag = excluded.syslogtag, message = excluded.message \
         WHERE device_logs.ssh_public_key IS excluded.ssh_public_key"
    ))?;
    let mut stored = 0;
    for entry in entries {
        stored += stmt
            .execute(params![
                entry.ssh_public_key,
                entry.id,
                entry.device_id.map(|id| id.to_string()),
                entry.hostname,
                ts(&entry.at),
                entry.severity,
                entry.facility,
                entry.program,
                entry.syslogtag,
                entry.message,
            ])
            .map_err(|err| match entry.device_id {
                Some(device_id) => missing_device(err, device_id),
                None => StoreError::Database(err),
            })?;
    }
    Ok(stored)
}

/// `text` as a LIKE pattern matching any value containing it (with `ESCAPE '\'`).
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(super) fn query_logs(
    conn: &Connection,
    device_id: Uuid,
    query: &LogQuery,
) -> Result<Vec<LogRecord>, StoreError> {
    let mut conditions = vec!["device_id = ?1".to_owned()];
    let mut values = vec![Value::Text(device_id.to_string())];
    let mut add = |condition: &str, value: Value| {
        values.push(value);
        conditions.push(condition.replace('?', &format!("?{}", values.len())));
    };
    if let Some(from) = &query.from {
        add("at >= ?", Value::Text(ts(from)));
    }
    if let Some(to) = &query.to {
        add("at <= ?", Value::Text(ts(to)));
    }
    if let Some(program) = &query.program {
        if query.exact_program {
            add("program = ?", Value::Text(program.clone()));
        } else {
            add(
                "program LIKE ? ESCAPE '\\'",
                Value::Text(contains_pattern(program)),
            );
        }
    }
    if let Some(search) = &query.search {
        add(
            "message LIKE ? ESCAPE '\\'",
            Value::Text(contains_pattern(search)),
        );
    }
    if let Some(max) = query.max_severity {
        add("severity <= ?", Value::Integer(i64::from(max)));
    }
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
    values.push(Value::Integer(limit));
    values.push(Value::Integer(offset));
    let sql = format!(
        "SELECT {LOG_COLUMNS} FROM device_logs WHERE {} \
         ORDER BY at DESC, id DESC LIMIT ?{} OFFSET ?{}",
        conditions.join(" AND "),
        values.len() - 1,
        values.len()
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(values.iter()), log_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn log_program_names(
    conn: &Connection,
    device_id: Uuid,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT program FROM device_logs \
         WHERE device_id = ?1 AND program IS NOT NULL ORDER BY program",
    )?;
    let rows = stmt.query_map([device_id.to_string()], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn latest_log_time(
    conn: &Connection,
    device_id: Uuid,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(conn.query_row(
        "SELECT max(at) FROM device_logs WHERE device_id = ?1",
        [device_id.to_string()],
        |row| get_opt_ts(row, 0),
    )?)
}

pub(super) fn logs_since(
    conn: &Connection,
    device_id: Uuid,
    from: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<LogRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(&format!(
        "SELECT {LOG_COLUMNS} FROM device_logs WHERE device_id = ?1 AND at >= ?2 \
         ORDER BY at DESC, id DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![device_id.to_string(), ts(&from), limit], log_row)?;
    let mut lines: Vec<LogRecord> = rows.collect::<Result<_, _>>()?;
    lines.reverse();
    Ok(lines)
}

pub(super) fn delete_logs_before(
    conn: &Connection,
    cutoff: DateTime<Utc>,
    batch: usize,
) -> Result<usize, StoreError> {
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    Ok(conn.execute(
        "DELETE FROM device_logs WHERE rowid IN \
         (SELECT rowid FROM device_logs WHERE at < ?1 LIMIT ?2)",
        params![ts(&cutoff), batch],
    )?)
}
