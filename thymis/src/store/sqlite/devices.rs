//! SQL of agent tokens, devices, hardware identities and agent connections.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::types::{Type, Value};
use rusqlite::{params, params_from_iter, Connection, ErrorCode, OptionalExtension, Row};
use thymis_protocol::NetworkInterface;
use uuid::Uuid;

use super::{bad_column, conflict_on_unique, get_opt_ts, get_parsed, get_ts, ts};
use crate::store::{
    now, AdmissionRecorded, AgentTokenRecord, ConnectionRecord, DeviceListEntry,
    DeviceListSnapshot, DeviceRecord, DeviceUpdate, HardwareDeviceRecord, IdentityLookup,
    NewAdmission, NewAgentToken, StoreError,
};

// --- shared decoding ---

fn get_opt_uuid(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Uuid>> {
    row.get::<_, Option<String>>(idx)?
        .map(|text| text.parse().map_err(|err| bad_column(idx, Type::Text, err)))
        .transpose()
}

/// A `NOT FOUND`-style answer when a row refers to a device that does not exist.
pub(super) fn device_not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        what: "device",
        id: id.to_string(),
    }
}

/// Turns a foreign-key violation (a device that was deleted meanwhile) into
/// [`StoreError::NotFound`]; other errors pass through.
pub(super) fn missing_device(err: rusqlite::Error, device_id: Uuid) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, _) = &err {
        if code.code == ErrorCode::ConstraintViolation
            && code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
        {
            return device_not_found(device_id);
        }
    }
    StoreError::Database(err)
}

// --- agent tokens ---

const AGENT_TOKEN_COLUMNS: &str =
    "id, name, original_config_id, original_config_commit, created_at, revoked_at, last_used_at";

fn agent_token_row(row: &Row<'_>) -> rusqlite::Result<AgentTokenRecord> {
    Ok(AgentTokenRecord {
        id: get_parsed(row, 0)?,
        name: row.get(1)?,
        original_config_id: row.get(2)?,
        original_config_commit: row.get(3)?,
        created_at: get_ts(row, 4)?,
        revoked_at: get_opt_ts(row, 5)?,
        last_used_at: get_opt_ts(row, 6)?,
    })
}

pub(super) fn create_agent_token(
    conn: &Connection,
    token: &NewAgentToken,
) -> Result<AgentTokenRecord, StoreError> {
    let record = AgentTokenRecord {
        id: Uuid::new_v4(),
        name: token.name.clone(),
        original_config_id: token.config_id.clone(),
        original_config_commit: token.config_commit.clone(),
        created_at: now(),
        revoked_at: None,
        last_used_at: None,
    };
    conn.execute(
        "INSERT INTO agent_tokens (id, token_hash, name, original_config_id, \
         original_config_commit, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            record.id.to_string(),
            token.token_hash,
            record.name,
            record.original_config_id,
            record.original_config_commit,
            ts(&record.created_at),
        ],
    )
    .map_err(|err| conflict_on_unique(err, "an agent token with this hash already exists"))?;
    Ok(record)
}

pub(super) fn find_agent_token(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<AgentTokenRecord>, StoreError> {
    // An index lookup by hash: timing can reveal nothing useful about a 512-bit random token.
    Ok(conn
        .query_row(
            &format!("SELECT {AGENT_TOKEN_COLUMNS} FROM agent_tokens WHERE token_hash = ?1"),
            [token_hash],
            agent_token_row,
        )
        .optional()?)
}

pub(super) fn get_agent_token(
    conn: &Connection,
    id: Uuid,
) -> Result<Option<AgentTokenRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {AGENT_TOKEN_COLUMNS} FROM agent_tokens WHERE id = ?1"),
            [id.to_string()],
            agent_token_row,
        )
        .optional()?)
}

pub(super) fn list_agent_tokens(conn: &Connection) -> Result<Vec<AgentTokenRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {AGENT_TOKEN_COLUMNS} FROM agent_tokens ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([], agent_token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn revoke_agent_token(
    conn: &Connection,
    id: Uuid,
) -> Result<AgentTokenRecord, StoreError> {
    let mut token = get_agent_token(conn, id)?.ok_or_else(|| StoreError::NotFound {
        what: "agent token",
        id: id.to_string(),
    })?;
    if token.revoked_at.is_some() {
        return Err(StoreError::Conflict(format!(
            "agent token {id} is already revoked"
        )));
    }
    let at = now();
    conn.execute(
        "UPDATE agent_tokens SET revoked_at = ?1 WHERE id = ?2",
        params![ts(&at), id.to_string()],
    )?;
    token.revoked_at = Some(at);
    Ok(token)
}

pub(super) fn touch_agent_token(
    conn: &Connection,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let changed = conn.execute(
        "UPDATE agent_tokens SET last_used_at = ?1 WHERE id = ?2",
        params![ts(&at), id.to_string()],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound {
            what: "agent token",
            id: id.to_string(),
        });
    }
    Ok(())
}

// --- devices ---

const DEVICE_COLUMNS: &str = "id, ssh_public_key, name, notes, location, deployed_config_id, \
     deployed_config_commit, pending_config_id, reachable_deployed_host, network_interfaces, \
     ram_bytes, archived, first_seen_at, last_seen_at, created_at, agent_token_id, revision";

fn device_row(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    // Interfaces are informational: a value that does not decode (e.g. imported from an older
    // database) shows as unknown rather than failing every device list.
    let network_interfaces = row
        .get::<_, Option<String>>(9)?
        .and_then(|text| serde_json::from_str::<Vec<NetworkInterface>>(&text).ok());
    Ok(DeviceRecord {
        id: get_parsed(row, 0)?,
        ssh_public_key: row.get(1)?,
        name: row.get(2)?,
        notes: row.get(3)?,
        location: row.get(4)?,
        deployed_config_id: row.get(5)?,
        deployed_config_commit: row.get(6)?,
        pending_config_id: row.get(7)?,
        reachable_deployed_host: row.get(8)?,
        network_interfaces,
        ram_bytes: row.get::<_, Option<i64>>(10)?.map(|b| b.max(0) as u64),
        archived: row.get(11)?,
        first_seen_at: get_opt_ts(row, 12)?,
        last_seen_at: get_opt_ts(row, 13)?,
        created_at: get_ts(row, 14)?,
        agent_token_id: get_opt_uuid(row, 15)?,
        revision: row.get(16)?,
    })
}

pub(super) fn get_device(conn: &Connection, id: Uuid) -> Result<Option<DeviceRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
            [id.to_string()],
            device_row,
        )
        .optional()?)
}

pub(super) fn find_device_by_key(
    conn: &Connection,
    public_key: &str,
) -> Result<Option<DeviceRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE ssh_public_key = ?1"),
            [public_key],
            device_row,
        )
        .optional()?)
}

pub(super) fn list_devices(
    conn: &Connection,
    config_id: Option<&str>,
) -> Result<Vec<DeviceRecord>, StoreError> {
    let devices: Vec<DeviceRecord> = match config_id {
        Some(config_id) => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE deployed_config_id = ?1"
            ))?;
            let rows = stmt.query_map([config_id], device_row)?;
            rows.collect::<Result<_, _>>()?
        }
        None => {
            let mut stmt = conn.prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM devices"))?;
            let rows = stmt.query_map([], device_row)?;
            rows.collect::<Result<_, _>>()?
        }
    };
    Ok(in_list_order(devices, |device| ListOrder {
        id: device.id,
        first_seen_at: device.first_seen_at,
        last_seen_at: device.last_seen_at,
        deployed_config_id: device.deployed_config_id.as_deref(),
        deployed_config_commit: device.deployed_config_commit.as_deref(),
    }))
}

pub(super) fn device_list_snapshot(
    conn: &Connection,
    config_id: Option<&str>,
    known: &dyn Fn(Uuid, i64) -> bool,
) -> Result<DeviceListSnapshot, StoreError> {
    // One read transaction: the full records below belong to the same moment as the entries.
    let tx = conn.unchecked_transaction()?;
    // With no config, `?1 IS NULL` selects every device.
    let mut stmt = tx.prepare_cached(
        "SELECT id, revision, first_seen_at, last_seen_at, deployed_config_id, \
         deployed_config_commit FROM devices WHERE ?1 IS NULL OR deployed_config_id = ?1",
    )?;
    let rows = stmt.query_map([config_id], |row| {
        Ok(DeviceListEntry {
            id: get_parsed(row, 0)?,
            revision: row.get(1)?,
            first_seen_at: get_opt_ts(row, 2)?,
            last_seen_at: get_opt_ts(row, 3)?,
            deployed_config_id: row.get(4)?,
            deployed_config_commit: row.get(5)?,
        })
    })?;
    let entries: Vec<DeviceListEntry> = rows.collect::<Result<_, _>>()?;
    let devices = in_list_order(entries, |entry| ListOrder {
        id: entry.id,
        first_seen_at: entry.first_seen_at,
        last_seen_at: entry.last_seen_at,
        deployed_config_id: entry.deployed_config_id.as_deref(),
        deployed_config_commit: entry.deployed_config_commit.as_deref(),
    });

    // Every linked row, filtered here: a join with devices read every wide device row again.
    let mut stmt = tx.prepare_cached(
        "SELECT id, device_id, last_seen_at FROM hardware_devices WHERE device_id IS NOT NULL",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            get_parsed::<Uuid>(row, 0)?,
            get_parsed::<Uuid>(row, 1)?,
            get_opt_ts(row, 2)?,
        ))
    })?;
    let listed: Option<HashSet<Uuid>> =
        config_id.map(|_| devices.iter().map(|entry| entry.id).collect());
    let mut hardware_seen = HashMap::with_capacity(devices.len());
    for row in rows {
        let (id, device_id, last_seen_at) = row?;
        if listed
            .as_ref()
            .is_none_or(|listed| listed.contains(&device_id))
        {
            hardware_seen.insert(id, last_seen_at);
        }
    }

    let changed_ids: Vec<Uuid> = devices
        .iter()
        .filter(|entry| !known(entry.id, entry.revision))
        .map(|entry| entry.id)
        .collect();
    let (changed, changed_hardware) = if changed_ids.is_empty() {
        (Vec::new(), Vec::new())
    } else if changed_ids.len() * 4 >= devices.len() {
        // Most devices are new to the caller (its first list): one pass over each table costs
        // less than a lookup per id.
        let wanted: HashSet<Uuid> = changed_ids.into_iter().collect();
        let mut stmt = tx.prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM devices"))?;
        let mut changed = Vec::with_capacity(wanted.len());
        for device in stmt.query_map([], device_row)? {
            let device = device?;
            if wanted.contains(&device.id) {
                changed.push(device);
            }
        }
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {HARDWARE_COLUMNS} FROM hardware_devices WHERE device_id IS NOT NULL"
        ))?;
        let mut hardware = Vec::new();
        for row in stmt.query_map([], hardware_row)? {
            let row = row?;
            if row.device_id.is_some_and(|id| wanted.contains(&id)) {
                hardware.push(row);
            }
        }
        hardware.sort_by_key(|row| row.id);
        (changed, hardware)
    } else {
        let ids = id_array(&changed_ids);
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id IN (SELECT value FROM json_each(?1))"
        ))?;
        let changed = stmt
            .query_map([&ids], device_row)?
            .collect::<Result<_, _>>()?;
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {HARDWARE_COLUMNS} FROM hardware_devices \
             WHERE device_id IN (SELECT value FROM json_each(?1)) ORDER BY id"
        ))?;
        let hardware = stmt
            .query_map([&ids], hardware_row)?
            .collect::<Result<_, _>>()?;
        (changed, hardware)
    };
    Ok(DeviceListSnapshot {
        devices,
        hardware_seen,
        changed,
        changed_hardware,
    })
}

/// What upstream orders device lists by.
struct ListOrder<'a> {
    id: Uuid,
    first_seen_at: Option<DateTime<Utc>>,
    last_seen_at: Option<DateTime<Utc>>,
    deployed_config_id: Option<&'a str>,
    deployed_config_commit: Option<&'a str>,
}

/// Sorts `items` in upstream's list order: first seen newest first, then last seen newest
/// first (unknown times last), then config id and commit (devices without a commit after
/// those with one), then id. Sorted here rather than by SQLite: its sorter copies every whole
/// row and took most of the time of a 10,000-device list. Indices are sorted, not the items:
/// moving records about in the sort copied megabytes.
fn in_list_order<T>(items: Vec<T>, key: impl Fn(&T) -> ListOrder<'_>) -> Vec<T> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (key(&items[a]), key(&items[b]));
        b.first_seen_at
            .cmp(&a.first_seen_at)
            .then_with(|| b.last_seen_at.cmp(&a.last_seen_at))
            .then_with(|| a.deployed_config_id.cmp(&b.deployed_config_id))
            .then_with(|| {
                let (a, b) = (a.deployed_config_commit, b.deployed_config_commit);
                a.is_none().cmp(&b.is_none()).then_with(|| a.cmp(&b))
            })
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|index| slots[index].take())
        .collect()
}

fn text_or_null(value: &Option<String>) -> Value {
    value.clone().map_or(Value::Null, Value::Text)
}

pub(super) fn update_device(
    conn: &Connection,
    id: Uuid,
    update: &DeviceUpdate,
) -> Result<DeviceRecord, StoreError> {
    // Only the given columns appear in the statement, so concurrent updates of different
    // fields (a rename in the dashboard, a switch result) do not overwrite each other.
    let mut sets: Vec<&'static str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(key) = &update.ssh_public_key {
        sets.push("ssh_public_key");
        values.push(Value::Text(key.clone()));
    }
    let nullable = [
        ("name", &update.name),
        ("notes", &update.notes),
        ("location", &update.location),
        ("deployed_config_id", &update.deployed_config_id),
        ("deployed_config_commit", &update.deployed_config_commit),
        ("pending_config_id", &update.pending_config_id),
        ("reachable_deployed_host", &update.reachable_deployed_host),
    ];
    for (column, change) in nullable {
        if let Some(value) = change {
            sets.push(column);
            values.push(text_or_null(value));
        }
    }
    if let Some(archived) = update.archived {
        sets.push("archived");
        values.push(Value::Integer(i64::from(archived)));
    }
    if !sets.is_empty() {
        let assignments = sets
            .iter()
            .enumerate()
            .map(|(i, column)| format!("{column} = ?{}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let id_param = sets.len() + 1;
        values.push(Value::Text(id.to_string()));
        let changed = conn
            .execute(
                &format!("UPDATE devices SET {assignments} WHERE id = ?{id_param}"),
                params_from_iter(values.iter()),
            )
            .map_err(|err| {
                conflict_on_unique(err, "another device already has this SSH public key")
            })?;
        if changed == 0 {
            return Err(device_not_found(id));
        }
    }
    get_device(conn, id)?.ok_or_else(|| device_not_found(id))
}

pub(super) fn delete_device(conn: &Connection, id: Uuid) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM devices WHERE id = ?1", [id.to_string()])? > 0)
}

pub(super) fn set_network_interfaces(
    conn: &Connection,
    id: Uuid,
    interfaces: &[NetworkInterface],
) -> Result<(), StoreError> {
    let changed = conn.execute(
        "UPDATE devices SET network_interfaces = ?1 WHERE id = ?2",
        params![interfaces_json(interfaces), id.to_string()],
    )?;
    if changed == 0 {
        return Err(device_not_found(id));
    }
    Ok(())
}

fn interfaces_json(interfaces: &[NetworkInterface]) -> String {
    // Plain structs of strings always serialise.
    serde_json::to_string(interfaces).unwrap_or_else(|_| "[]".to_owned())
}

/// A JSON array of ids, for `IN (SELECT value FROM json_each(?))`: one statement for any
/// number of ids.
fn id_array(ids: &[Uuid]) -> String {
    let texts: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    serde_json::to_string(&texts).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn touch_devices(
    conn: &Connection,
    ids: &[Uuid],
    at: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = id_array(ids);
    let at = ts(&at);
    let unarchived = {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM devices WHERE archived = 1 AND id IN (SELECT value FROM json_each(?1))",
        )?;
        let rows = stmt.query_map([&ids], |row| get_parsed::<Uuid>(row, 0))?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    conn.prepare_cached(
        "UPDATE devices SET last_seen_at = ?2, archived = 0 \
         WHERE id IN (SELECT value FROM json_each(?1))",
    )?
    .execute(params![ids, at])?;
    conn.prepare_cached(
        "UPDATE hardware_devices SET last_seen_at = ?2 \
         WHERE device_id IN (SELECT value FROM json_each(?1))",
    )?
    .execute(params![ids, at])?;
    Ok(unarchived)
}

// --- hardware identities ---

const HARDWARE_COLUMNS: &str = "id, device_id, hardware_ids, last_seen_at";

fn hardware_row(row: &Row<'_>) -> rusqlite::Result<HardwareDeviceRecord> {
    let text = row.get_ref(2)?.as_str()?;
    Ok(HardwareDeviceRecord {
        id: get_parsed(row, 0)?,
        device_id: get_opt_uuid(row, 1)?,
        hardware_ids: hardware_ids(text).map_err(|err| bad_column(2, Type::Text, err))?,
        last_seen_at: get_opt_ts(row, 3)?,
    })
}

/// The text values of a stored hardware-id object; upstream allowed null values, which
/// identify nothing. Decoded straight into strings when every value is one (the usual case).
fn hardware_ids(text: &str) -> serde_json::Result<BTreeMap<String, String>> {
    if let Ok(ids) = serde_json::from_str::<BTreeMap<String, String>>(text) {
        return Ok(ids);
    }
    let ids: BTreeMap<String, serde_json::Value> = serde_json::from_str(text)?;
    Ok(ids
        .into_iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::String(value) => Some((key, value)),
            _ => None,
        })
        .collect())
}

pub(super) fn list_hardware_devices(
    conn: &Connection,
) -> Result<Vec<HardwareDeviceRecord>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {HARDWARE_COLUMNS} FROM hardware_devices"))?;
    let rows = stmt.query_map([], hardware_row)?;
    let mut hardware: Vec<HardwareDeviceRecord> = rows.collect::<Result<_, _>>()?;
    // Last seen first (unknown last), as for devices sorted here rather than by SQLite.
    hardware.sort_by(|a, b| {
        b.last_seen_at
            .cmp(&a.last_seen_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(hardware)
}

fn hardware_of_device(
    conn: &Connection,
    device_id: Uuid,
) -> Result<Vec<HardwareDeviceRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {HARDWARE_COLUMNS} FROM hardware_devices WHERE device_id = ?1 \
         ORDER BY last_seen_at DESC, id"
    ))?;
    let rows = stmt.query_map([device_id.to_string()], hardware_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Hardware rows sharing any (key, value) with `ids`, through the index table.
fn matching_hardware(
    conn: &Connection,
    ids: &BTreeMap<String, String>,
) -> Result<Vec<HardwareDeviceRecord>, StoreError> {
    let mut found = BTreeSet::new();
    let mut stmt = conn.prepare_cached(
        "SELECT hardware_device_id FROM hardware_device_ids WHERE key = ?1 AND value = ?2",
    )?;
    for (key, value) in ids {
        let rows = stmt.query_map(params![key, value], |row| row.get::<_, String>(0))?;
        for row in rows {
            found.insert(row?);
        }
    }
    let mut records = Vec::with_capacity(found.len());
    let mut select = conn.prepare_cached(&format!(
        "SELECT {HARDWARE_COLUMNS} FROM hardware_devices WHERE id = ?1"
    ))?;
    for id in found {
        if let Some(record) = select.query_row([id], hardware_row).optional()? {
            records.push(record);
        }
    }
    Ok(records)
}

pub(super) fn lookup_identity(
    conn: &Connection,
    public_key: &str,
    hardware_ids: &BTreeMap<String, String>,
) -> Result<IdentityLookup, StoreError> {
    let device = find_device_by_key(conn, public_key)?;
    let device_hardware = match &device {
        Some(device) => hardware_of_device(conn, device.id)?,
        None => Vec::new(),
    };
    Ok(IdentityLookup {
        matching_hardware: matching_hardware(conn, hardware_ids)?,
        device,
        device_hardware,
    })
}

/// Writes a hardware row's ids (JSON and index table).
fn write_hardware_ids(
    conn: &Connection,
    hardware_id: &str,
    ids: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(ids).unwrap_or_else(|_| "{}".to_owned());
    conn.execute(
        "UPDATE hardware_devices SET hardware_ids = ?1 WHERE id = ?2",
        params![json, hardware_id],
    )?;
    conn.execute(
        "DELETE FROM hardware_device_ids WHERE hardware_device_id = ?1",
        [hardware_id],
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO hardware_device_ids (key, value, hardware_device_id) \
         VALUES (?1, ?2, ?3)",
    )?;
    for (key, value) in ids {
        insert.execute(params![key, value, hardware_id])?;
    }
    Ok(())
}

/// Points the hardware sharing an id with `ids` (or a new row) at the device and detaches the
/// device's other hardware rows (agent-protocol.md §10.1).
fn upsert_hardware(
    conn: &Connection,
    device_id: Uuid,
    ids: &BTreeMap<String, String>,
    at: &str,
) -> Result<(), StoreError> {
    let matching = matching_hardware(conn, ids)?;
    let hardware_id = match matching.as_slice() {
        [] => {
            let id = Uuid::new_v4().to_string();
            conn.execute(
                "INSERT INTO hardware_devices (id, device_id, hardware_ids, last_seen_at) \
                 VALUES (?1, ?2, '{}', ?3)",
                params![id, device_id.to_string(), at],
            )?;
            write_hardware_ids(conn, &id, ids)?;
            id
        }
        [existing] => {
            // Ids the agent reports now are added (an upgraded agent may report more).
            let mut merged = existing.hardware_ids.clone();
            merged.extend(ids.iter().map(|(k, v)| (k.clone(), v.clone())));
            let id = existing.id.to_string();
            conn.execute(
                "UPDATE hardware_devices SET device_id = ?1, last_seen_at = ?2 WHERE id = ?3",
                params![device_id.to_string(), at, id],
            )?;
            write_hardware_ids(conn, &id, &merged)?;
            id
        }
        _ => {
            return Err(StoreError::Conflict(format!(
                "the hardware ids match {} known hardware devices",
                matching.len()
            )))
        }
    };
    conn.execute(
        "UPDATE hardware_devices SET device_id = NULL WHERE device_id = ?1 AND id != ?2",
        params![device_id.to_string(), hardware_id],
    )?;
    Ok(())
}

pub(super) fn record_admission(
    conn: &Connection,
    admission: &NewAdmission,
) -> Result<AdmissionRecorded, StoreError> {
    let at = ts(&admission.at);
    let interfaces = interfaces_json(&admission.network_interfaces);
    let ram = admission
        .ram_bytes
        .map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX));
    let token = admission.agent_token_id.to_string();
    let (device_id, created) = match find_device_by_key(conn, &admission.public_key)? {
        Some(device) => {
            let config = admission
                .deployed_config_id
                .clone()
                .or_else(|| device.deployed_config_id.clone());
            // The commit belongs to the recorded config; a different config has none known yet.
            let commit = if config == device.deployed_config_id {
                device.deployed_config_commit.clone()
            } else {
                None
            };
            // A pending switch stays pending until the device reports the new config.
            let pending = device
                .pending_config_id
                .clone()
                .filter(|pending| Some(pending) != config.as_ref());
            conn.execute(
                "UPDATE devices SET deployed_config_id = ?1, deployed_config_commit = ?2, \
                 pending_config_id = ?3, network_interfaces = ?4, \
                 ram_bytes = COALESCE(?5, ram_bytes), archived = 0, last_seen_at = ?6, \
                 first_seen_at = COALESCE(first_seen_at, ?6), agent_token_id = ?7 WHERE id = ?8",
                params![
                    config,
                    commit,
                    pending,
                    interfaces,
                    ram,
                    at,
                    token,
                    device.id.to_string()
                ],
            )?;
            (device.id, false)
        }
        None => {
            let id = Uuid::new_v4();
            conn.execute(
                "INSERT INTO devices (id, ssh_public_key, deployed_config_id, network_interfaces, \
                 ram_bytes, archived, first_seen_at, last_seen_at, created_at, agent_token_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6, ?6, ?7)",
                params![
                    id.to_string(),
                    admission.public_key,
                    admission.deployed_config_id,
                    interfaces,
                    ram,
                    at,
                    token
                ],
            )
            .map_err(|err| conflict_on_unique(err, "a device with this key already exists"))?;
            // Logs that arrived before the device was known belong to it now.
            conn.execute(
                "UPDATE device_logs SET device_id = ?1 \
                 WHERE ssh_public_key = ?2 AND device_id IS NULL",
                params![id.to_string(), admission.public_key],
            )?;
            (id, true)
        }
    };
    let connection = open_connection(conn, device_id, admission.ip.as_deref(), admission.at)?;
    if !admission.hardware_ids.is_empty() {
        upsert_hardware(conn, device_id, &admission.hardware_ids, &at)?;
    }
    let device = get_device(conn, device_id)?.ok_or_else(|| device_not_found(device_id))?;
    Ok(AdmissionRecorded {
        device,
        connection_id: connection.id,
        created,
    })
}

// --- agent connections ---

const CONNECTION_COLUMNS: &str = "id, device_id, connected_at, disconnected_at, ip";

fn connection_row(row: &Row<'_>) -> rusqlite::Result<ConnectionRecord> {
    Ok(ConnectionRecord {
        id: get_parsed(row, 0)?,
        device_id: get_parsed(row, 1)?,
        connected_at: get_ts(row, 2)?,
        disconnected_at: get_opt_ts(row, 3)?,
        ip: row.get(4)?,
    })
}

pub(super) fn open_connection(
    conn: &Connection,
    device_id: Uuid,
    ip: Option<&str>,
    at: DateTime<Utc>,
) -> Result<ConnectionRecord, StoreError> {
    let record = ConnectionRecord {
        id: Uuid::new_v4(),
        device_id,
        connected_at: at,
        disconnected_at: None,
        ip: ip.map(str::to_owned),
    };
    conn.prepare_cached(
        "UPDATE agent_connections SET disconnected_at = ?1 \
         WHERE device_id = ?2 AND disconnected_at IS NULL",
    )?
    .execute(params![ts(&at), device_id.to_string()])?;
    conn.prepare_cached(&format!(
        "INSERT INTO agent_connections ({CONNECTION_COLUMNS}) VALUES (?1, ?2, ?3, NULL, ?4)"
    ))?
    .execute(params![
        record.id.to_string(),
        device_id.to_string(),
        ts(&at),
        record.ip
    ])
    .map_err(|err| missing_device(err, device_id))?;
    Ok(record)
}

pub(super) fn close_connection(
    conn: &Connection,
    device_id: Uuid,
    connection_id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE agent_connections SET disconnected_at = ?1 \
         WHERE id = ?2 AND device_id = ?3 AND disconnected_at IS NULL",
        params![ts(&at), connection_id.to_string(), device_id.to_string()],
    )? > 0)
}

pub(super) fn close_all_connections(
    conn: &Connection,
    at: DateTime<Utc>,
) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE agent_connections SET disconnected_at = ?1 WHERE disconnected_at IS NULL",
        [ts(&at)],
    )?)
}

pub(super) fn connection_history(
    conn: &Connection,
    device_id: Uuid,
    limit: usize,
) -> Result<Vec<ConnectionRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(&format!(
        "SELECT {CONNECTION_COLUMNS} FROM agent_connections WHERE device_id = ?1 \
         ORDER BY connected_at DESC, rowid DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![device_id.to_string(), limit], connection_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn connections_between(
    conn: &Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ConnectionRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {CONNECTION_COLUMNS} FROM agent_connections \
         WHERE connected_at <= ?2 AND (disconnected_at IS NULL OR disconnected_at >= ?1) \
         ORDER BY connected_at, rowid"
    ))?;
    let rows = stmt.query_map(params![ts(&from), ts(&to)], connection_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
