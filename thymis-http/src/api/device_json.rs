//! The JSON of devices (upstream `DeploymentInfo`). A device is written from a fragment that
//! holds everything but its fast-changing fields (last seen, online), cached by the device's
//! revision: a 10,000-device list re-encodes only the devices that changed since the last list
//! and splices in the fast-changing fields, read fresh for every request.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};
use thymis::agent::protocol::NetworkInterface;
use thymis::agent::AgentHub;
use thymis::devices::{DeviceInfo, DeviceRegistry};
use thymis::store::{DeviceListEntry, DeviceRecord, HardwareDeviceRecord};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;

/// A time as the API writes it (ISO 8601, UTC, ending in `Z`, as [`thymis::devices::iso`]),
/// serialized without a temporary string: a 10,000-device list has 20,000 of them.
#[derive(Debug, Clone, Copy)]
pub struct IsoTime<'a>(&'a DateTime<Utc>);

impl Serialize for IsoTime<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Digits written by hand into a stack buffer: chrono's formatter parses its pattern on
        // every call, and `write!` with padding costs as much again.
        let time = self.0;
        let (date, clock) = (time.date_naive(), time.time());
        let mut text = StackText::default();
        match u32::try_from(date.year()) {
            Ok(year) if year <= 9999 => text.push_digits(year, 4),
            _ => {
                let _ = write!(text, "{:04}", date.year());
            }
        }
        for (separator, value) in [
            (b'-', date.month()),
            (b'-', date.day()),
            (b'T', clock.hour()),
            (b':', clock.minute()),
            (b':', clock.second()),
        ] {
            text.push_byte(separator);
            text.push_digits(value, 2);
        }
        // As `SecondsFormat::AutoSi`: no fraction, or 3, 6 or 9 digits.
        let nanos = clock.nanosecond() % 1_000_000_000;
        let fraction = match nanos {
            0 => None,
            n if n % 1_000_000 == 0 => Some((n / 1_000_000, 3)),
            n if n % 1_000 == 0 => Some((n / 1_000, 6)),
            n => Some((n, 9)),
        };
        if let Some((value, digits)) = fraction {
            text.push_byte(b'.');
            text.push_digits(value, digits);
        }
        text.push_byte(b'Z');
        serializer.serialize_str(text.as_str())
    }
}

/// Up to 32 bytes of text on the stack (an ISO time has at most 30).
#[derive(Default)]
struct StackText {
    bytes: [u8; 32],
    len: usize,
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only ASCII and whole `&str`s are ever written in.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    /// Appends an ASCII byte; a full buffer drops it.
    fn push_byte(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// Appends the last `width` decimal digits of `value`, zero-padded.
    fn push_digits(&mut self, mut value: u32, width: usize) {
        let Some(slots) = self.bytes.get_mut(self.len..self.len + width) else {
            return;
        };
        for slot in slots.iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len += width;
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn iso_time(time: &Option<DateTime<Utc>>) -> Option<IsoTime<'_>> {
    time.as_ref().map(IsoTime)
}

/// A hardware identity (upstream `HardwareDevice`).
#[derive(Debug, Serialize, ToSchema)]
pub struct HardwareDevice<'a> {
    id: Uuid,
    hardware_ids: &'a BTreeMap<String, String>,
    deployment_info_id: Option<Uuid>,
    #[schema(value_type = Option<String>)]
    last_seen: Option<IsoTime<'a>>,
}

impl<'a> From<&'a HardwareDeviceRecord> for HardwareDevice<'a> {
    fn from(row: &'a HardwareDeviceRecord) -> Self {
        HardwareDevice {
            id: row.id,
            hardware_ids: &row.hardware_ids,
            deployment_info_id: row.device_id,
            last_seen: iso_time(&row.last_seen_at),
        }
    }
}

/// A device (upstream `DeploymentInfo`, fields in its order); `connected` is whether its
/// agent is online now.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentInfo<'a> {
    id: Uuid,
    ssh_public_key: &'a str,
    deployed_config_commit: Option<&'a str>,
    deployed_config_id: Option<&'a str>,
    reachable_deployed_host: Option<&'a str>,
    pending_config_id: Option<&'a str>,
    #[schema(value_type = Option<String>)]
    last_seen: Option<IsoTime<'a>>,
    #[schema(value_type = Option<String>)]
    first_seen: Option<IsoTime<'a>>,
    archived: bool,
    hardware_devices: Vec<HardwareDevice<'a>>,
    #[schema(value_type = Option<Vec<Object>>)]
    network_interfaces: Option<&'a [NetworkInterface]>,
    location: Option<&'a str>,
    name: Option<&'a str>,
    connected: bool,
    ram_bytes: Option<u64>,
    notes: Option<&'a str>,
}

impl<'a> DeploymentInfo<'a> {
    fn new(
        device: &'a DeviceRecord,
        last_seen: Option<IsoTime<'a>>,
        hardware_devices: Vec<HardwareDevice<'a>>,
        connected: bool,
    ) -> Self {
        DeploymentInfo {
            id: device.id,
            ssh_public_key: &device.ssh_public_key,
            deployed_config_commit: device.deployed_config_commit.as_deref(),
            deployed_config_id: device.deployed_config_id.as_deref(),
            reachable_deployed_host: device.reachable_deployed_host.as_deref(),
            pending_config_id: device.pending_config_id.as_deref(),
            last_seen,
            first_seen: iso_time(&device.first_seen_at),
            archived: device.archived,
            hardware_devices,
            network_interfaces: device.network_interfaces.as_deref(),
            location: device.location.as_deref(),
            name: device.name.as_deref(),
            connected,
            ram_bytes: device.ram_bytes,
            notes: device.notes.as_deref(),
        }
    }
}

/// The fast-changing fields of a [`DeploymentInfo`] and how they are written empty, in order.
const DEVICE_LIVE_FIELDS: [(&str, &str); 3] = [
    ("last_seen", "null"),
    ("hardware_devices", "[]"),
    ("connected", "false"),
];
/// The fast-changing field of a [`HardwareDevice`].
const HARDWARE_LIVE_FIELDS: [(&str, &str); 1] = [("last_seen", "null")];

/// JSON with holes where the values of some fields go.
#[derive(Debug)]
struct Template {
    bytes: Box<[u8]>,
    holes: Vec<usize>,
}

impl Template {
    /// Cuts the values of `fields` (each `(key, value as written)`, in the order they appear)
    /// out of `json`. A key is only found as a key: inside JSON strings quotes are escaped.
    fn new(json: &[u8], fields: &[(&str, &str)]) -> Result<Self, ApiError> {
        let mut bytes = Vec::with_capacity(json.len());
        let mut holes = Vec::with_capacity(fields.len());
        let mut rest = json;
        for (key, written) in fields {
            let field = format!("\"{key}\":{written}");
            let at = memchr::memmem::find(rest, field.as_bytes())
                .ok_or_else(|| ApiError::internal(format!("no field {key} to fill in")))?;
            let value_at = at + field.len() - written.len();
            bytes.extend_from_slice(&rest[..value_at]);
            holes.push(bytes.len());
            rest = &rest[at + field.len()..];
        }
        bytes.extend_from_slice(rest);
        Ok(Template {
            bytes: bytes.into_boxed_slice(),
            holes,
        })
    }

    /// Writes the JSON, with `value(n, out)` writing the value of the n-th hole.
    fn write(
        &self,
        out: &mut Vec<u8>,
        mut value: impl FnMut(usize, &mut Vec<u8>) -> serde_json::Result<()>,
    ) -> serde_json::Result<()> {
        let mut from = 0;
        for (index, &hole) in self.holes.iter().enumerate() {
            out.extend_from_slice(&self.bytes[from..hole]);
            value(index, out)?;
            from = hole;
        }
        out.extend_from_slice(&self.bytes[from..]);
        Ok(())
    }
}

/// A device's JSON without its fast-changing fields, valid for one revision.
#[derive(Debug)]
struct DeviceFragment {
    id: Uuid,
    revision: i64,
    template: Template,
    hardware: Vec<HardwareFragment>,
}

#[derive(Debug)]
struct HardwareFragment {
    id: Uuid,
    template: Template,
    /// Its last-seen time when the fragment was made, for a row the live read missed.
    last_seen_at: Option<DateTime<Utc>>,
}

/// The fast-changing fields of a device, written into its fragment.
struct LiveFields<'a> {
    last_seen_at: Option<&'a DateTime<Utc>>,
    connected: bool,
    hardware_seen: &'a dyn Fn(&HardwareFragment) -> Option<DateTime<Utc>>,
}

impl DeviceFragment {
    fn new(device: &DeviceRecord, hardware: &[&HardwareDeviceRecord]) -> Result<Self, ApiError> {
        let info = DeploymentInfo::new(device, None, Vec::new(), false);
        let json = serde_json::to_vec(&info).map_err(ApiError::internal)?;
        let hardware = hardware
            .iter()
            .map(|row| {
                let hardware = HardwareDevice {
                    last_seen: None,
                    ..HardwareDevice::from(*row)
                };
                let json = serde_json::to_vec(&hardware).map_err(ApiError::internal)?;
                Ok(HardwareFragment {
                    id: row.id,
                    template: Template::new(&json, &HARDWARE_LIVE_FIELDS)?,
                    last_seen_at: row.last_seen_at,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(DeviceFragment {
            id: device.id,
            revision: device.revision,
            template: Template::new(&json, &DEVICE_LIVE_FIELDS)?,
            hardware,
        })
    }

    fn write(&self, out: &mut Vec<u8>, live: &LiveFields<'_>) -> serde_json::Result<()> {
        self.template.write(out, |field, out| match field {
            0 => serde_json::to_writer(&mut *out, &live.last_seen_at.map(IsoTime)),
            1 => {
                out.push(b'[');
                for (index, hardware) in self.hardware.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    let seen = (live.hardware_seen)(hardware);
                    hardware.template.write(out, |_, out| {
                        serde_json::to_writer(&mut *out, &seen.as_ref().map(IsoTime))
                    })?;
                }
                out.push(b']');
                Ok(())
            }
            _ => {
                out.extend_from_slice(if live.connected { b"true" } else { b"false" });
                Ok(())
            }
        })
    }
}

/// One device as the API writes it, with `connected` as given.
pub fn device_json(info: &DeviceInfo, connected: bool) -> Result<Vec<u8>, ApiError> {
    let hardware: Vec<&HardwareDeviceRecord> = info.hardware_devices.iter().collect();
    let fragment = DeviceFragment::new(&info.device, &hardware)?;
    let mut out = Vec::with_capacity(fragment.template.bytes.len() + 256);
    let hardware_seen = |row: &HardwareFragment| row.last_seen_at;
    let live = LiveFields {
        last_seen_at: info.device.last_seen_at.as_ref(),
        connected,
        hardware_seen: &hardware_seen,
    };
    fragment
        .write(&mut out, &live)
        .map_err(ApiError::internal)?;
    Ok(out)
}

/// A typical device's size in the list (key, hardware, two interfaces), to size the buffer.
const LIST_BYTES_PER_DEVICE: usize = 1024;

/// The fragments of the devices listed so far, by device id.
#[derive(Debug, Default)]
pub struct DeviceListCache {
    fragments: RwLock<HashMap<Uuid, Arc<DeviceFragment>>>,
}

impl DeviceListCache {
    /// Every device (or those running `config_id`) as a JSON array in list order. Blocking:
    /// it reads the database.
    pub fn write_list(
        &self,
        registry: &DeviceRegistry,
        agents: &AgentHub,
        config_id: Option<&str>,
    ) -> Result<Vec<u8>, ApiError> {
        // The fragments this list uses, taken while the snapshot is read: a concurrent list
        // may evict or replace cache entries meanwhile.
        let held = RefCell::new(HashMap::new());
        let snapshot = {
            let fragments = self
                .fragments
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let known = |id: Uuid, revision: i64| match fragments.get(&id) {
                Some(fragment) if fragment.revision >= revision => {
                    held.borrow_mut().insert(id, fragment.clone());
                    true
                }
                _ => false,
            };
            registry.device_list_snapshot(config_id, &known)?
        };
        let mut held = held.into_inner();

        let mut hardware_of: HashMap<Uuid, Vec<&HardwareDeviceRecord>> = HashMap::new();
        for row in &snapshot.changed_hardware {
            if let Some(device_id) = row.device_id {
                hardware_of.entry(device_id).or_default().push(row);
            }
        }
        let mut fragments = Vec::with_capacity(snapshot.changed.len());
        for device in &snapshot.changed {
            let hardware = hardware_of.get(&device.id).map_or(&[][..], Vec::as_slice);
            fragments.push(Arc::new(DeviceFragment::new(device, hardware)?));
        }
        self.keep(
            &fragments,
            config_id.is_none().then_some(snapshot.devices.as_slice()),
        );
        held.extend(
            fragments
                .into_iter()
                .map(|fragment| (fragment.id, fragment)),
        );

        // A row linked after the snapshot (to a device whose newer fragment another request
        // made) keeps the time it had then.
        let hardware_seen = |row: &HardwareFragment| match snapshot.hardware_seen.get(&row.id) {
            Some(seen) => *seen,
            None => row.last_seen_at,
        };
        let mut out = Vec::with_capacity(snapshot.devices.len() * LIST_BYTES_PER_DEVICE + 2);
        out.push(b'[');
        for entry in &snapshot.devices {
            // Every listed device is held or fresh: the snapshot read those it did not know.
            let Some(fragment) = held.get(&entry.id) else {
                continue;
            };
            if out.len() > 1 {
                out.push(b',');
            }
            let live = LiveFields {
                last_seen_at: entry.last_seen_at.as_ref(),
                connected: agents.is_connected(entry.id),
                hardware_seen: &hardware_seen,
            };
            fragment
                .write(&mut out, &live)
                .map_err(ApiError::internal)?;
        }
        out.push(b']');
        Ok(out)
    }

    /// Caches new fragments; with every device's entry (a full list), forgets deleted ones.
    fn keep(&self, new: &[Arc<DeviceFragment>], all: Option<&[DeviceListEntry]>) {
        let mut fragments = self
            .fragments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for fragment in new {
            // Revisions only grow: a slower request never puts back an older fragment.
            match fragments.get(&fragment.id) {
                Some(cached) if cached.revision >= fragment.revision => {}
                _ => {
                    fragments.insert(fragment.id, fragment.clone());
                }
            }
        }
        if let Some(all) = all.filter(|all| fragments.len() > all.len()) {
            let listed: HashSet<Uuid> = all.iter().map(|entry| entry.id).collect();
            fragments.retain(|id, _| listed.contains(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thymis::devices::iso;

    fn time(seconds: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_763_856_000 + seconds, nanos).unwrap()
    }

    /// A device with every field set, and text that looks like the fields filled in.
    fn device_info() -> DeviceInfo {
        let id = Uuid::new_v4();
        let hardware = |n: u8, ids: &[(&str, &str)], seen| HardwareDeviceRecord {
            id: Uuid::from_bytes([n; 16]),
            hardware_ids: ids
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            device_id: Some(id),
            last_seen_at: seen,
        };
        DeviceInfo {
            device: DeviceRecord {
                id,
                ssh_public_key: "ssh-ed25519 AAAA".into(),
                name: Some("kiosk \"last_seen\":null".into()),
                notes: Some(r#","connected":false,"hardware_devices":[]}"#.into()),
                location: Some("Hall ✓".into()),
                deployed_config_id: Some("kiosk".into()),
                deployed_config_commit: Some("0123abc".into()),
                pending_config_id: Some("other".into()),
                reachable_deployed_host: Some("10.0.0.2".into()),
                network_interfaces: Some(vec![NetworkInterface {
                    interface: "eth0".into(),
                    ipv4_addresses: vec!["10.0.0.2".into()],
                    ipv6_addresses: vec!["fe80::1".into()],
                    mac_address: Some("aa:bb:cc:dd:ee:ff".into()),
                }]),
                ram_bytes: Some(4 << 30),
                archived: true,
                first_seen_at: Some(time(0, 0)),
                last_seen_at: Some(time(60, 123_456_000)),
                created_at: time(0, 0),
                agent_token_id: None,
                revision: 7,
            },
            hardware_devices: vec![
                hardware(1, &[("last_seen", "null"), ("pi-serial-number", "1")], None),
                hardware(2, &[("dmi-product-uuid", "u")], Some(time(30, 5_000))),
            ],
        }
    }

    #[test]
    fn a_spliced_device_is_what_its_struct_writes() {
        let info = device_info();
        let device = &info.device;
        for connected in [false, true] {
            let whole = DeploymentInfo::new(
                device,
                iso_time(&device.last_seen_at),
                info.hardware_devices
                    .iter()
                    .map(HardwareDevice::from)
                    .collect(),
                connected,
            );
            let expected = serde_json::to_string(&whole).unwrap();
            let spliced = String::from_utf8(device_json(&info, connected).unwrap()).unwrap();
            assert_eq!(spliced, expected);
        }
    }

    #[test]
    fn a_device_without_hardware_or_times_is_spliced_too() {
        let mut info = device_info();
        info.hardware_devices.clear();
        info.device.last_seen_at = None;
        let written: serde_json::Value =
            serde_json::from_slice(&device_json(&info, false).unwrap()).unwrap();
        assert_eq!(written["last_seen"], serde_json::Value::Null);
        assert_eq!(written["hardware_devices"], serde_json::json!([]));
        assert_eq!(written["notes"], info.device.notes.unwrap().as_str());
    }

    #[test]
    fn iso_time_writes_what_iso_does() {
        let seconds = [1_763_856_000, 0, -62_135_596_800, 253_402_300_799];
        for (seconds, nanos) in seconds.into_iter().flat_map(|seconds| {
            [0, 120_000_000, 123_456_000, 123_456_789, 1_000, 7].map(|nanos| (seconds, nanos))
        }) {
            let time = DateTime::from_timestamp(seconds, nanos).unwrap();
            let written = serde_json::to_string(&IsoTime(&time)).unwrap();
            assert_eq!(
                written,
                format!("\"{}\"", iso(&time)),
                "{seconds} s {nanos} ns"
            );
        }
    }
}
