//! The device registry against a real SQLite file, a real git project and real keys: admission
//! (hardware-id resolution, moved disks, pending configs), keep-alive batching, metrics buckets,
//! logs, retention, agent tokens, hostnames, secret delivery and fleet views.
//!
//! Needs `ssh-keygen` (Debian `openssh-client`) and `mkpasswd` (Debian `whois`) on `PATH`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;
use thymis::agent::protocol::{LogEntry, Metrics, NetworkInterface};
use thymis::devices::{
    Admission, AdmissionOutcome, DeviceError, DeviceRegistry, MetricGranularity,
};
use thymis::events::{Event, EventBus};
use thymis::module::{ModuleRegistry, SecretKind, SecretProcessing};
use thymis::project::Project;
use thymis::repository::RenderOptions;
use thymis::secrets::{decrypt_with_ssh_identity, SecretBox, SecretInput, Vault};
use thymis::ssh::ControllerKey;
use thymis::state::{Config, ModuleSettings, State, Tag, DEVICE_MODULE_TYPE};
use thymis::store::{hash_token, DeviceUpdate, LogQuery, SqliteStore, Store};
use tokio::sync::broadcast;
use uuid::Uuid;

const SECURITY: &str = "thymis_controller.modules.security.SecurityAccessModule";
const FILES: &str = "thymis_controller.modules.files.FilesModule";

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    vault: Arc<Vault>,
    project: Arc<Project>,
    registry: DeviceRegistry,
    events: broadcast::Receiver<Event>,
}

fn config(id: &str, modules: Vec<ModuleSettings>, tags: &[&str]) -> Config {
    let mut all =
        vec![ModuleSettings::new(DEVICE_MODULE_TYPE).with("device_type", json!("generic-x86_64"))];
    all.extend(modules);
    Config {
        display_name: format!("Config {id}"),
        identifier: id.to_owned(),
        modules: all,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        extra: Default::default(),
    }
}

fn fixture() -> Fixture {
    common::isolate_git_config();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("thymis.sqlite")).unwrap());
    let key = ControllerKey::load_or_create(dir.path()).unwrap();
    let vault = Arc::new(Vault::new(store.clone(), SecretBox::new(&key).unwrap()));
    let events = EventBus::new();
    let project = Arc::new(
        Project::open(
            &dir.path().join("repository"),
            ModuleRegistry::with_builtins(),
            RenderOptions::default(),
            events.clone(),
        )
        .unwrap(),
    );
    let mut state = State::default();
    state.configs.push(config("kiosk", vec![], &[]));
    state.configs.push(config("other", vec![], &[]));
    project.replace_state(state, None).unwrap();
    let registry = DeviceRegistry::new(
        store.clone(),
        events.clone(),
        project.clone(),
        vault.clone(),
    );
    let events = events.subscribe();
    Fixture {
        dir,
        store,
        vault,
        project,
        registry,
        events,
    }
}

impl Fixture {
    /// A new agent token and its id.
    fn token(&self) -> (String, Uuid) {
        let created = self
            .registry
            .create_agent_token("test devices", None)
            .unwrap();
        (created.token, created.record.id)
    }

    fn admit(&self, admission: &Admission) -> AdmissionOutcome {
        self.registry.admit(admission).unwrap()
    }

    /// Admits and returns (device id, connection id); panics on any other outcome.
    fn admitted(&self, admission: &Admission) -> (Uuid, Uuid) {
        match self.admit(admission) {
            AdmissionOutcome::Admitted {
                device_id,
                connection_id,
            } => (device_id, connection_id),
            other => panic!("not admitted: {other:?}"),
        }
    }

    /// Every event published since the last call.
    fn drain(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            events.push(event);
        }
        events
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("thymis.sqlite")).unwrap()
    }
}

fn key(n: u32) -> String {
    format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{n:043}")
}

fn admission(public_key: &str, hardware: &[(&str, &str)], token: Uuid) -> Admission {
    Admission {
        public_key: public_key.to_owned(),
        hardware_ids: hardware
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        deployed_config_id: Some("kiosk".to_owned()),
        network_interfaces: vec![NetworkInterface {
            interface: "eth0".into(),
            ipv4_addresses: vec!["10.0.0.2".into()],
            ipv6_addresses: vec![],
            mac_address: Some("aa:bb:cc:dd:ee:ff".into()),
        }],
        ram_bytes: Some(4 << 30),
        remote_addr: Some("192.0.2.7".parse().unwrap()),
        agent_token_id: token,
    }
}

fn open_connections(fx: &Fixture, device: Uuid) -> usize {
    fx.store
        .connection_history(device, 100)
        .unwrap()
        .iter()
        .filter(|c| c.disconnected_at.is_none())
        .count()
}

// ---------------------------------------------------------------------------------------------
// admission

#[test]
fn admission_creates_a_device_then_updates_it_by_key() {
    let mut fx = fixture();
    let (_, token) = fx.token();
    fx.drain();
    let first = admission(&key(1), &[("pi-serial-number", "1000")], token);
    let (device_id, first_connection) = fx.admitted(&first);
    assert_eq!(fx.drain(), vec![Event::DeviceChanged(device_id)]);

    let info = fx.registry.device(device_id).unwrap();
    let device = &info.device;
    assert_eq!(device.ssh_public_key, key(1));
    assert_eq!(device.deployed_config_id.as_deref(), Some("kiosk"));
    assert_eq!(device.ram_bytes, Some(4 << 30));
    assert_eq!(device.agent_token_id, Some(token));
    assert_eq!(
        device.network_interfaces.as_ref().unwrap()[0].interface,
        "eth0"
    );
    assert!(!device.archived);
    assert!(device.first_seen_at.is_some());
    assert_eq!(device.first_seen_at, device.last_seen_at);
    assert_eq!(info.hardware_devices.len(), 1);
    assert_eq!(
        info.hardware_devices[0].hardware_ids["pi-serial-number"],
        "1000"
    );
    let history = fx.registry.connection_history(device_id).unwrap();
    assert_eq!(history[0].id, first_connection);
    assert_eq!(history[0].ip.as_deref(), Some("192.0.2.7"));

    // Archived devices come back when they connect; the previous connection is closed.
    fx.registry
        .update(
            device_id,
            DeviceUpdate {
                archived: Some(true),
                ..DeviceUpdate::default()
            },
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let mut again = first.clone();
    again.ram_bytes = None;
    again
        .hardware_ids
        .insert("dmi-product-uuid".into(), "u-1".into());
    let (same_id, second_connection) = fx.admitted(&again);
    assert_eq!(same_id, device_id);
    assert_ne!(second_connection, first_connection);
    let device = fx.registry.device(device_id).unwrap();
    assert!(!device.device.archived);
    assert_eq!(
        device.device.ram_bytes,
        Some(4 << 30),
        "an unknown RAM size keeps the old one"
    );
    assert_eq!(device.device.first_seen_at, info.device.first_seen_at);
    assert!(device.device.last_seen_at > info.device.last_seen_at);
    // The hardware row learned the new id.
    assert_eq!(device.hardware_devices.len(), 1);
    assert_eq!(device.hardware_devices[0].hardware_ids.len(), 2);
    assert_eq!(open_connections(&fx, device_id), 1);
    assert_eq!(fx.registry.devices().unwrap().len(), 1);
}

#[test]
fn moved_disks_rekey_and_ambiguous_hardware_is_refused() {
    let fx = fixture();
    let (_, token) = fx.token();
    let (pi_a, _) = fx.admitted(&admission(&key(1), &[("pi-serial-number", "A")], token));
    let (pc_b, _) = fx.admitted(&admission(&key(2), &[("dmi-product-uuid", "B")], token));

    // Key 1's disk now runs in another Pi: it must make new keys.
    let moved = admission(&key(1), &[("pi-serial-number", "C")], token);
    assert!(matches!(fx.admit(&moved), AdmissionOutcome::Rekey { .. }));
    assert_eq!(
        fx.store.connection_history(pi_a, 10).unwrap().len(),
        1,
        "nothing recorded"
    );

    // Ids that match two different known machines identify nothing.
    let ambiguous = admission(
        &key(3),
        &[("pi-serial-number", "A"), ("dmi-product-uuid", "B")],
        token,
    );
    let AdmissionOutcome::Refused { reason } = fx.admit(&ambiguous) else {
        panic!("ambiguous hardware admitted");
    };
    assert!(reason.contains("2 known hardware devices"), "{reason}");
    assert!(fx.store.find_device_by_key(&key(3)).unwrap().is_none());

    // A Pi re-flashed (new key, same serial) is a new device on the same hardware.
    let (reflashed, _) = fx.admitted(&admission(&key(4), &[("pi-serial-number", "A")], token));
    assert_ne!(reflashed, pi_a);
    assert!(fx
        .registry
        .device(pi_a)
        .unwrap()
        .hardware_devices
        .is_empty());
    let hardware = fx.registry.device(reflashed).unwrap().hardware_devices;
    assert_eq!(hardware.len(), 1);
    assert_eq!(hardware[0].device_id, Some(reflashed));
    assert_eq!(fx.registry.hardware_devices().unwrap().len(), 2);

    // A known device that never reported hardware ids has nothing to contradict.
    let (quiet, _) = fx.admitted(&admission(&key(5), &[], token));
    let (same, _) = fx.admitted(&admission(&key(5), &[("dmi-board-serial", "D")], token));
    assert_eq!(quiet, same);
    assert_ne!(pc_b, same);

    // Bad claims are refused before anything is looked up.
    for bad in [
        admission("", &[], token),
        admission("ssh-ed25519", &[], token),
        admission("ssh-ed25519 AAAA\nx", &[], token),
    ] {
        assert!(
            matches!(fx.admit(&bad), AdmissionOutcome::Refused { .. }),
            "{bad:?}"
        );
    }
    let many: Vec<(String, String)> = (0..20).map(|i| (format!("id-{i}"), "x".into())).collect();
    let mut too_many = admission(&key(6), &[], token);
    too_many.hardware_ids = many.into_iter().collect::<BTreeMap<_, _>>();
    assert!(matches!(
        fx.admit(&too_many),
        AdmissionOutcome::Refused { .. }
    ));
}

#[test]
fn a_pending_switch_stays_pending_until_the_device_reports_it() {
    let fx = fixture();
    let (_, token) = fx.token();
    let (id, _) = fx.admitted(&admission(&key(1), &[], token));
    fx.store
        .update_device(
            id,
            &DeviceUpdate {
                pending_config_id: Some(Some("other".into())),
                deployed_config_commit: Some(Some("abc123".into())),
                ..DeviceUpdate::default()
            },
        )
        .unwrap();

    // Reconnecting with the old config (e.g. after a rollback) does not promote the switch.
    fx.admitted(&admission(&key(1), &[], token));
    let device = fx.registry.device(id).unwrap().device;
    assert_eq!(device.deployed_config_id.as_deref(), Some("kiosk"));
    assert_eq!(device.pending_config_id.as_deref(), Some("other"));
    assert_eq!(device.deployed_config_commit.as_deref(), Some("abc123"));

    // An agent without image metadata keeps the recorded config.
    let mut unknown = admission(&key(1), &[], token);
    unknown.deployed_config_id = None;
    fx.admitted(&unknown);
    assert_eq!(
        fx.registry
            .device(id)
            .unwrap()
            .device
            .deployed_config_id
            .as_deref(),
        Some("kiosk")
    );

    // Reporting the pending config completes the switch; the old commit no longer applies.
    let mut switched = admission(&key(1), &[], token);
    switched.deployed_config_id = Some("other".into());
    fx.admitted(&switched);
    let device = fx.registry.device(id).unwrap().device;
    assert_eq!(device.deployed_config_id.as_deref(), Some("other"));
    assert_eq!(device.pending_config_id, None);
    assert_eq!(device.deployed_config_commit, None);
    assert_eq!(fx.registry.devices_by_config("other").unwrap().len(), 1);
    assert!(fx.registry.devices_by_config("kiosk").unwrap().is_empty());
}

#[test]
fn connections_open_close_and_are_closed_at_startup() {
    let fx = fixture();
    let (_, token) = fx.token();
    let (id, connection) = fx.admitted(&admission(&key(1), &[], token));
    fx.registry.disconnected(id, connection).unwrap();
    assert_eq!(open_connections(&fx, id), 0);
    // Closing twice is harmless.
    fx.registry.disconnected(id, connection).unwrap();
    for _ in 0..12 {
        fx.admitted(&admission(&key(1), &[], token));
    }
    let history = fx.registry.connection_history(id).unwrap();
    assert_eq!(history.len(), 10, "the ten newest");
    assert!(history
        .windows(2)
        .all(|w| w[0].connected_at >= w[1].connected_at));
    assert_eq!(open_connections(&fx, id), 1);
    assert_eq!(fx.registry.close_open_connections().unwrap(), 1);
    assert_eq!(open_connections(&fx, id), 0);
    assert!(matches!(
        fx.registry.connection_history(Uuid::new_v4()),
        Err(DeviceError::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// reports

#[test]
fn keep_alives_are_written_in_one_batch_per_flush() {
    let mut fx = fixture();
    let (_, token) = fx.token();
    let ids: Vec<Uuid> = (0..200)
        .map(|n| {
            fx.admitted(&admission(
                &key(n),
                &[("dmi-product-uuid", &format!("u{n}"))],
                token,
            ))
            .0
        })
        .collect();
    let archived = ids[7];
    fx.registry
        .update(
            archived,
            DeviceUpdate {
                archived: Some(true),
                ..DeviceUpdate::default()
            },
        )
        .unwrap();
    let before = fx.registry.device(ids[0]).unwrap();
    fx.drain();
    assert_eq!(
        fx.registry.flush_last_seen().unwrap(),
        0,
        "nothing to write"
    );

    std::thread::sleep(std::time::Duration::from_millis(5));
    // Ten rounds of keep-alives from every device before one flush: one row update each.
    let db = fx.db();
    let version_before: i64 = db
        .pragma_query_value(None, "data_version", |r| r.get(0))
        .unwrap();
    for _ in 0..10 {
        for id in &ids {
            fx.registry.keep_alive(*id);
        }
    }
    // A keep-alive of a deleted device is ignored.
    fx.registry.keep_alive(Uuid::new_v4());
    assert_eq!(fx.registry.flush_last_seen().unwrap(), 201);
    let version_after: i64 = db
        .pragma_query_value(None, "data_version", |r| r.get(0))
        .unwrap();
    assert_ne!(version_before, version_after, "the flush committed");

    let after = fx.registry.device(ids[0]).unwrap();
    assert!(after.device.last_seen_at > before.device.last_seen_at);
    assert!(after.hardware_devices[0].last_seen_at > before.hardware_devices[0].last_seen_at);
    assert!(!fx.registry.device(archived).unwrap().device.archived);
    // Only the un-archived device is announced; moving last_seen is not worth a reload.
    assert_eq!(fx.drain(), vec![Event::DeviceChanged(archived)]);
    assert_eq!(fx.registry.flush_last_seen().unwrap(), 0);
}

fn metrics_at(at: DateTime<Utc>, cpu: f64, ram: f64, disk: f64) -> Metrics {
    Metrics {
        timestamp: at.to_rfc3339(),
        cpu_percent: cpu,
        ram_percent: ram,
        disk_percent: disk,
    }
}

#[test]
fn metrics_are_averaged_in_epoch_aligned_buckets() {
    let mut fx = fixture();
    let (_, token) = fx.token();
    let (id, _) = fx.admitted(&admission(&key(1), &[], token));
    let now = Utc::now();
    let hour = now.duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(3);
    fx.drain();
    for (offset, cpu) in [
        (10, 10.0),
        (20 * 60, 30.0),
        (3600 + 300, 50.0),
        (3600 + 16 * 60, 70.0),
    ] {
        let at = hour + Duration::seconds(offset);
        fx.registry
            .record_metrics(id, &metrics_at(at, cpu, cpu / 2.0, 150.0))
            .unwrap();
    }
    assert_eq!(fx.drain(), vec![Event::DeviceMetrics(id); 4]);
    // Outside the 168 h window.
    fx.registry
        .record_metrics(
            id,
            &metrics_at(now - Duration::hours(200), 99.0, 99.0, 99.0),
        )
        .unwrap();

    let hourly = fx
        .registry
        .metrics(id, now, 168, MetricGranularity::OneHour)
        .unwrap();
    assert_eq!(hourly.len(), 2);
    assert_eq!(hourly[0].at, hour);
    assert_eq!(hourly[0].cpu_percent, 20.0);
    assert_eq!(hourly[0].ram_percent, 10.0);
    assert_eq!(hourly[0].disk_percent, 100.0, "clamped to 100");
    assert_eq!(hourly[1].at, hour + Duration::hours(1));
    assert_eq!(hourly[1].cpu_percent, 60.0);

    let quarters = fx
        .registry
        .metrics(id, now, 168, MetricGranularity::FifteenMinutes)
        .unwrap();
    let starts: Vec<_> = quarters.iter().map(|s| s.at - hour).collect();
    assert_eq!(
        starts,
        vec![
            Duration::zero(),
            Duration::minutes(15),
            Duration::minutes(60),
            Duration::minutes(75)
        ]
    );
    let daily = fx
        .registry
        .metrics(id, now, 168, MetricGranularity::OneDay)
        .unwrap();
    assert!(daily.iter().all(|s| s.at.timestamp() % 86_400 == 0));
    assert_eq!(
        fx.registry
            .metrics(id, now, 1, MetricGranularity::OneMinute)
            .unwrap()
            .len(),
        0
    );

    // The newest sample shows in the fleet view.
    let latest = fx.registry.latest_metrics().unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].sample.cpu_percent, 70.0);

    // Errors.
    assert!(matches!(
        fx.registry.metrics(id, now, 0, MetricGranularity::OneHour),
        Err(DeviceError::Invalid(_))
    ));
    assert!(matches!(
        fx.registry
            .metrics(id, now, 169, MetricGranularity::OneHour),
        Err(DeviceError::Invalid(_))
    ));
    assert!(matches!(
        fx.registry
            .metrics(Uuid::new_v4(), now, 1, MetricGranularity::OneHour),
        Err(DeviceError::NotFound { .. })
    ));
    let mut bad = metrics_at(now, 1.0, 1.0, 1.0);
    bad.timestamp = "soon".into();
    assert!(matches!(
        fx.registry.record_metrics(id, &bad),
        Err(DeviceError::Invalid(_))
    ));
    let nan = metrics_at(now, f64::NAN, 1.0, 1.0);
    assert!(matches!(
        fx.registry.record_metrics(id, &nan),
        Err(DeviceError::Invalid(_))
    ));
    assert!(matches!(
        fx.registry
            .record_metrics(Uuid::new_v4(), &metrics_at(now, 1.0, 1.0, 1.0)),
        Err(DeviceError::NotFound { .. })
    ));
}

#[test]
fn network_interfaces_are_recorded() {
    let mut fx = fixture();
    let (_, token) = fx.token();
    let (id, _) = fx.admitted(&admission(&key(1), &[], token));
    fx.drain();
    let wifi = NetworkInterface {
        interface: "wlan0".into(),
        ipv4_addresses: vec!["192.168.1.9".into()],
        ipv6_addresses: vec!["fe80::1".into()],
        mac_address: None,
    };
    fx.registry
        .record_network_interfaces(id, std::slice::from_ref(&wifi))
        .unwrap();
    assert_eq!(fx.drain(), vec![Event::DeviceChanged(id)]);
    assert_eq!(
        fx.registry.device(id).unwrap().device.network_interfaces,
        Some(vec![wifi])
    );
}

fn log(uuid: &str, at: DateTime<Utc>, severity: u8, program: &str, message: &str) -> LogEntry {
    LogEntry {
        uuid: uuid.to_owned(),
        timestamp: at.to_rfc3339(),
        message: message.to_owned(),
        facility: Some(3),
        severity: Some(severity),
        programname: Some(program.to_owned()),
        syslogtag: Some(format!("{program}[1]:")),
    }
}

#[test]
fn logs_are_upserted_once_and_filtered() {
    let mut fx = fixture();
    let (_, token) = fx.token();
    let (id, _) = fx.admitted(&admission(&key(1), &[], token));
    let (other, _) = fx.admitted(&admission(&key(2), &[], token));
    let base = Utc::now() - Duration::hours(1);
    let at = |minutes: i64| base + Duration::minutes(minutes);
    let mut entries = vec![
        log(
            "00000000-0000-4000-8000-000000000001",
            at(0),
            6,
            "sshd",
            "Accepted key",
        ),
        log(
            "00000000-0000-4000-8000-000000000002",
            at(1),
            3,
            "nginx",
            "upstream FAILED 50% of time",
        ),
        log(
            "00000000-0000-4000-8000-000000000003",
            at(2),
            2,
            "kernel",
            "oops",
        ),
        log(
            "00000000000040008000000000000004",
            at(3),
            7,
            "sshd-session",
            "debug line",
        ),
        log(
            "00000000-0000-4000-8000-000000000005",
            at(4),
            4,
            "nginx",
            "warning: failed once",
        ),
    ];
    let mut clamped = log(
        "00000000-0000-4000-8000-000000000006",
        at(5),
        6,
        "app",
        &"x".repeat(70_000),
    );
    clamped.severity = Some(12);
    clamped.facility = Some(99);
    entries.push(clamped);
    let mut bad_time = log(
        "00000000-0000-4000-8000-000000000007",
        at(6),
        6,
        "app",
        "never",
    );
    bad_time.timestamp = "last tuesday".into();
    entries.push(bad_time);
    entries.push(log("not a uuid!", at(7), 6, "app", "never"));
    fx.drain();
    let stored = fx
        .registry
        .record_logs(Some(id), &key(1), Some("kiosk-1"), &entries)
        .unwrap();
    assert_eq!(stored, 6, "two entries are unusable");
    assert_eq!(fx.drain(), vec![Event::DeviceLogs(id)]);

    // A resend after a reconnect is stored once, and replaces the stored text.
    let mut resend = entries[..1].to_vec();
    resend[0].message = "Accepted key (resent)".into();
    fx.registry
        .record_logs(Some(id), &key(1), Some("kiosk-1"), &resend)
        .unwrap();
    // Another device cannot overwrite it by reusing the id.
    let mut stolen = entries[..1].to_vec();
    stolen[0].message = "forged".into();
    assert_eq!(
        fx.registry
            .record_logs(Some(other), &key(2), None, &stolen)
            .unwrap(),
        0
    );

    let all = fx.registry.logs(id, &LogQuery::default()).unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].at >= w[1].at), "newest first");
    let first = all.iter().find(|l| l.id.ends_with("000000000001")).unwrap();
    assert_eq!(first.message, "Accepted key (resent)");
    assert_eq!(first.hostname.as_deref(), Some("kiosk-1"));
    let rsyslog_id = all
        .iter()
        .find(|l| l.program.as_deref() == Some("sshd-session"))
        .unwrap();
    assert_eq!(
        rsyslog_id.id, "00000000-0000-4000-8000-000000000004",
        "hyphenated uuid"
    );
    let long = all
        .iter()
        .find(|l| l.program.as_deref() == Some("app"))
        .unwrap();
    assert_eq!(long.message.len(), 64 * 1024);
    assert_eq!((long.severity, long.facility), (Some(7), Some(23)));

    let query = |q: LogQuery| -> Vec<String> {
        fx.registry
            .logs(id, &q)
            .unwrap()
            .into_iter()
            .map(|l| l.message.chars().take(20).collect())
            .collect()
    };
    assert_eq!(
        query(LogQuery {
            program: Some("sshd".into()),
            ..LogQuery::default()
        }),
        vec!["debug line", "Accepted key (resent"]
    );
    assert_eq!(
        query(LogQuery {
            program: Some("sshd".into()),
            exact_program: true,
            ..LogQuery::default()
        }),
        vec!["Accepted key (resent"]
    );
    assert_eq!(
        query(LogQuery {
            search: Some("FAILED".into()),
            ..LogQuery::default()
        }),
        vec!["warning: failed once", "upstream FAILED 50% "],
        "search ignores ASCII case"
    );
    assert_eq!(
        query(LogQuery {
            search: Some("50%".into()),
            ..LogQuery::default()
        }),
        vec!["upstream FAILED 50% "],
        "% is literal"
    );
    assert_eq!(
        query(LogQuery {
            max_severity: Some(3),
            ..LogQuery::default()
        }),
        vec!["oops", "upstream FAILED 50% "]
    );
    assert_eq!(
        query(LogQuery {
            from: Some(at(1)),
            to: Some(at(3)),
            ..LogQuery::default()
        }),
        vec!["debug line", "oops", "upstream FAILED 50% "]
    );
    assert_eq!(
        query(LogQuery {
            limit: 2,
            offset: 1,
            ..LogQuery::default()
        }),
        vec!["warning: failed once", "debug line"]
    );
    assert!(matches!(
        fx.registry.logs(
            id,
            &LogQuery {
                limit: 0,
                ..LogQuery::default()
            }
        ),
        Err(DeviceError::Invalid(_))
    ));
    assert!(matches!(
        fx.registry.logs(Uuid::new_v4(), &LogQuery::default()),
        Err(DeviceError::NotFound { .. })
    ));

    let errors = fx.registry.error_logs(id).unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        fx.registry.log_program_names(id).unwrap(),
        vec!["app", "kernel", "nginx", "sshd", "sshd-session"]
    );

    // The download covers the window before the newest line, oldest first.
    let download = fx.registry.log_download(id, 2).unwrap();
    let lines: Vec<&str> = download.text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].ends_with(" kiosk-1 sshd-session[1]: debug line"),
        "{}",
        lines[0]
    );
    assert!(lines[2].contains(" kiosk-1 app[1]: xxx"));
    assert!(
        download.filename.starts_with("logs_kiosk_"),
        "{}",
        download.filename
    );
    assert!(matches!(
        fx.registry.log_download(id, 0),
        Err(DeviceError::Invalid(_))
    ));
}

#[test]
fn logs_of_an_unknown_key_join_the_device_when_it_is_admitted() {
    let fx = fixture();
    let (_, token) = fx.token();
    let line = log(
        "00000000-0000-4000-8000-0000000000aa",
        Utc::now(),
        6,
        "early",
        "boot",
    );
    assert_eq!(
        fx.registry
            .record_logs(None, &key(9), None, &[line])
            .unwrap(),
        1
    );
    let (id, _) = fx.admitted(&admission(&key(9), &[], token));
    assert_eq!(fx.registry.logs(id, &LogQuery::default()).unwrap().len(), 1);
}

#[test]
fn retention_deletes_old_metrics_and_logs_in_batches() {
    let fx = fixture();
    let (_, token) = fx.token();
    let (id, _) = fx.admitted(&admission(&key(1), &[], token));
    let now = Utc::now();
    for days in [31, 29, 1] {
        fx.registry
            .record_metrics(id, &metrics_at(now - Duration::days(days), 1.0, 1.0, 1.0))
            .unwrap();
    }
    let old: Vec<LogEntry> = (0..25_000)
        .map(|n| {
            let at = now - Duration::days(8) + Duration::seconds(n);
            log(&Uuid::new_v4().to_string(), at, 6, "old", "old line")
        })
        .collect();
    fx.registry
        .record_logs(Some(id), &key(1), None, &old)
        .unwrap();
    let recent = log(
        &Uuid::new_v4().to_string(),
        now - Duration::days(6),
        6,
        "new",
        "kept",
    );
    fx.registry
        .record_logs(Some(id), &key(1), None, &[recent])
        .unwrap();

    let counts = fx.registry.prune(now).unwrap();
    assert_eq!((counts.metrics, counts.logs), (1, 25_000));
    let left = fx
        .registry
        .logs(
            id,
            &LogQuery {
                limit: 10_000,
                ..LogQuery::default()
            },
        )
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].message, "kept");
    let samples = fx
        .registry
        .metrics(id, now, 168, MetricGranularity::OneDay)
        .unwrap();
    assert_eq!(samples.len(), 1, "29 days is outside the chart but kept");
    let kept: i64 = fx
        .db()
        .query_row("SELECT count(*) FROM device_metrics", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 2);
    assert_eq!(fx.registry.prune(now).unwrap().logs, 0);
}

// ---------------------------------------------------------------------------------------------
// agent tokens

fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read(path)
        .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .unwrap_or(false)
}

#[test]
fn agent_tokens_are_stored_hashed_revocable_and_track_use() {
    let mut fx = fixture();
    fx.drain();
    let created = fx
        .registry
        .create_agent_token("  Lab bench  ", Some("kiosk"))
        .unwrap();
    assert_eq!(fx.drain(), vec![Event::AgentTokensChanged]);
    let token = created.token.clone();
    assert!(
        token.starts_with("thymis-") && token.len() == 7 + 128,
        "{token}"
    );
    assert_eq!(created.record.name, "Lab bench");
    assert_eq!(created.record.original_config_id.as_deref(), Some("kiosk"));
    assert!(
        !format!("{created:?}").contains(&token),
        "Debug hides the token"
    );
    let stored_hash: String = fx
        .db()
        .query_row("SELECT token_hash FROM agent_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored_hash, hash_token(&token));
    for file in ["thymis.sqlite", "thymis.sqlite-wal"] {
        assert!(
            !file_contains(&fx.dir.path().join(file), &token),
            "{file} holds the token"
        );
    }

    assert_eq!(fx.registry.agent_tokens().unwrap()[0].last_used_at, None);
    let found = fx.registry.check_agent_token(&token).unwrap().unwrap();
    assert_eq!(found.id, created.record.id);
    assert!(found.last_used_at.is_some());
    assert_eq!(
        fx.registry.agent_tokens().unwrap()[0].last_used_at,
        found.last_used_at
    );
    assert!(fx
        .registry
        .check_agent_token("thymis-00")
        .unwrap()
        .is_none());

    // Log uploads need the token the device was admitted with.
    let (device, _) = fx.admitted(&admission(&key(1), &[], created.record.id));
    let other = fx.registry.create_agent_token("other", None).unwrap();
    assert_eq!(
        fx.registry
            .log_sender(&token, &key(1))
            .unwrap()
            .map(|d| d.id),
        Some(device)
    );
    assert!(fx
        .registry
        .log_sender(&other.token, &key(1))
        .unwrap()
        .is_none());
    assert!(fx.registry.log_sender(&token, &key(2)).unwrap().is_none());

    let revoked = fx.registry.revoke_agent_token(created.record.id).unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(fx.registry.check_agent_token(&token).unwrap().is_none());
    assert!(fx.registry.log_sender(&token, &key(1)).unwrap().is_none());
    assert!(matches!(
        fx.registry.revoke_agent_token(created.record.id),
        Err(DeviceError::Conflict(_))
    ));
    assert!(matches!(
        fx.registry.revoke_agent_token(Uuid::new_v4()),
        Err(DeviceError::NotFound { .. })
    ));
    assert_eq!(fx.registry.agent_tokens().unwrap().len(), 2);

    for (name, config) in [
        ("", None),
        ("   ", None),
        (&*"n".repeat(101), None),
        ("a\nb", None),
        ("ok", Some("nope")),
    ] {
        assert!(
            matches!(
                fx.registry.create_agent_token(name, config),
                Err(DeviceError::Invalid(_))
            ),
            "{name:?} {config:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// what devices are sent

#[test]
fn hostnames_come_from_the_device_then_its_config_then_the_default() {
    let fx = fixture();
    let device_module =
        |name: &str| ModuleSettings::new(DEVICE_MODULE_TYPE).with("device_name", json!(name));
    let mut state = State::default();
    for (id, priority, name) in [("late", 90, "late-tag"), ("early", 60, "Early Tag!")] {
        state.tags.push(Tag {
            display_name: id.into(),
            identifier: id.into(),
            priority,
            modules: vec![device_module(name)],
            extra: Default::default(),
        });
    }
    let mut named = config("named", vec![], &["late", "early"]);
    named.modules[0] = ModuleSettings::new(DEVICE_MODULE_TYPE)
        .with("device_type", json!("generic-x86_64"))
        .with("device_name", json!("config-name"));
    state.configs.push(named);
    state.configs.push(config("tagged", vec![], &["late"]));
    state.configs.push(config("plain", vec![], &[]));
    fx.project.replace_state(state, None).unwrap();

    let (_, token) = fx.token();
    let device = |n: u32, config: Option<&str>| {
        let mut a = admission(&key(n), &[], token);
        a.deployed_config_id = config.map(str::to_owned);
        fx.admitted(&a).0
    };
    // A tag with a lower priority number beats the config's own setting (80).
    assert_eq!(
        fx.registry.hostname_for(device(1, Some("named"))).unwrap(),
        "early-tag"
    );
    assert_eq!(
        fx.registry.hostname_for(device(2, Some("tagged"))).unwrap(),
        "late-tag"
    );
    assert_eq!(
        fx.registry.hostname_for(device(3, Some("plain"))).unwrap(),
        "thymis"
    );
    assert_eq!(fx.registry.hostname_for(device(4, None)).unwrap(), "thymis");
    let renamed = device(5, Some("named"));
    fx.registry
        .update(
            renamed,
            DeviceUpdate {
                name: Some(Some("Lobby Screen #2".into())),
                ..DeviceUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(
        fx.registry.hostname_for(renamed).unwrap(),
        "lobby-screen--2"
    );
    assert!(matches!(
        fx.registry.hostname_for(Uuid::new_v4()),
        Err(DeviceError::NotFound { .. })
    ));
}

/// `ssh-keygen -t ed25519`: the private key file and the public key line.
fn host_key(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("ssh_host_ed25519_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "root@device", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen must be installed (Debian openssh-client)");
    assert!(status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    let line: Vec<&str> = public.split_whitespace().take(2).collect();
    (path, line.join(" "))
}

#[test]
fn secrets_are_encrypted_to_the_device_host_key() {
    let fx = fixture();
    let secret = |name: &str, value: &str, processing| {
        fx.vault
            .create(SecretInput {
                display_name: name.into(),
                kind: SecretKind::SingleLine,
                value: value.as_bytes().to_vec(),
                filename: None,
                include_in_image: false,
                processing,
            })
            .unwrap()
            .id
            .to_string()
    };
    let api_key = secret("api key", "s3cret-value", SecretProcessing::None);
    let password = secret(
        "root password",
        "hunter2",
        SecretProcessing::MkpasswdYescrypt,
    );
    let deleted = secret("gone", "x", SecretProcessing::None);
    fx.vault.delete(deleted.parse().unwrap()).unwrap();
    let mut state = State::default();
    state.configs.push(config(
        "kiosk",
        vec![
            ModuleSettings::new(SECURITY).with("password_secret", json!(password)),
            ModuleSettings::new(FILES).with(
                "secrets",
                json!([
                    {"secret": api_key, "path": "/run/app/key", "owner": "app", "group": "app", "mode": "0440"},
                    {"secret": deleted, "path": "/run/app/gone"}
                ]),
            ),
        ],
        &[],
    ));
    fx.project.replace_state(state, None).unwrap();

    let keys = tempfile::tempdir().unwrap();
    let (private, public) = host_key(keys.path());
    let (_, token) = fx.token();
    let (id, _) = fx.admitted(&admission(&public, &[], token));
    let message = fx
        .registry
        .secrets_for(id)
        .unwrap()
        .expect("the config is known");
    assert_eq!(message.secrets.len(), 2, "the deleted secret is left out");
    let pem = std::fs::read(&private).unwrap();
    let open = |id: &str| {
        use base64::Engine;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&message.secrets[id])
            .unwrap();
        String::from_utf8(decrypt_with_ssh_identity(&pem, &sealed).unwrap()).unwrap()
    };
    assert_eq!(open(&api_key), "s3cret-value");
    let hash = open(&password);
    assert!(
        hash.starts_with("$y$"),
        "processed to a yescrypt hash: {hash}"
    );
    let info = message
        .secret_infos
        .iter()
        .find(|i| i.secret_id == api_key)
        .unwrap();
    assert_eq!(info.path, "/run/app/key");
    assert_eq!(
        (
            info.owner.as_deref(),
            info.group.as_deref(),
            info.mode.as_deref()
        ),
        (Some("app"), Some("app"), Some("0440"))
    );
    assert!(message
        .secret_infos
        .iter()
        .any(|i| i.secret_id == password && i.path == "/run/thymis/root_password_hash"));
    // Another key cannot open them.
    let other_dir = keys.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let (other_private, _) = host_key(&other_dir);
    let other_pem = std::fs::read(other_private).unwrap();
    let sealed = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&message.secrets[&api_key])
            .unwrap()
    };
    assert!(decrypt_with_ssh_identity(&other_pem, &sealed).is_err());

    // A device of an unknown config, or without one, gets no message.
    let mut elsewhere = admission(&key(1), &[], token);
    elsewhere.deployed_config_id = Some("deleted-config".into());
    let (lost, _) = fx.admitted(&elsewhere);
    assert!(fx.registry.secrets_for(lost).unwrap().is_none());
    assert!(matches!(
        fx.registry.secrets_for(Uuid::new_v4()),
        Err(DeviceError::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// the dashboard's edits and fleet views

#[test]
fn edits_apply_only_given_fields_and_deletes_remove_history() {
    let mut fx = fixture();
    let (_, token) = fx.token();
    let (id, _) = fx.admitted(&admission(&key(1), &[("pi-serial-number", "1")], token));
    let (other, _) = fx.admitted(&admission(&key(2), &[], token));
    fx.drain();
    let info = fx
        .registry
        .update(
            id,
            DeviceUpdate {
                name: Some(Some("Lobby".into())),
                notes: Some(Some("line 1\nline 2".into())),
                location: Some(Some("Hall".into())),
                ..DeviceUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(fx.drain(), vec![Event::DeviceChanged(id)]);
    assert_eq!(info.device.name.as_deref(), Some("Lobby"));
    // Only the location changes; blank means none.
    let info = fx
        .registry
        .update(
            id,
            DeviceUpdate {
                location: Some(Some("  ".into())),
                ..DeviceUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(info.device.location, None);
    assert_eq!(info.device.name.as_deref(), Some("Lobby"));
    assert_eq!(info.device.notes.as_deref(), Some("line 1\nline 2"));
    // A key is stored without its comment; another device's key is a conflict.
    let info = fx
        .registry
        .update(
            id,
            DeviceUpdate {
                ssh_public_key: Some(format!("{}  root@pi", key(3))),
                ..DeviceUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(info.device.ssh_public_key, key(3));
    let taken = DeviceUpdate {
        ssh_public_key: Some(key(2)),
        ..DeviceUpdate::default()
    };
    assert!(matches!(
        fx.registry.update(id, taken),
        Err(DeviceError::Conflict(_))
    ));
    let bad_name = DeviceUpdate {
        name: Some(Some("a\u{7}b".into())),
        ..DeviceUpdate::default()
    };
    assert!(matches!(
        fx.registry.update(id, bad_name),
        Err(DeviceError::Invalid(_))
    ));
    assert!(matches!(
        fx.registry.update(Uuid::new_v4(), DeviceUpdate::default()),
        Err(DeviceError::NotFound { .. })
    ));

    fx.registry
        .record_metrics(id, &metrics_at(Utc::now(), 1.0, 1.0, 1.0))
        .unwrap();
    fx.registry
        .record_logs(
            Some(id),
            &key(1),
            None,
            &[log(&Uuid::new_v4().to_string(), Utc::now(), 6, "a", "b")],
        )
        .unwrap();
    fx.drain();
    fx.registry.delete(id).unwrap();
    assert_eq!(fx.drain(), vec![Event::DeviceDeleted(id)]);
    assert!(matches!(
        fx.registry.device(id),
        Err(DeviceError::NotFound { .. })
    ));
    assert!(matches!(
        fx.registry.delete(id),
        Err(DeviceError::NotFound { .. })
    ));
    let db = fx.db();
    for table in ["agent_connections", "device_metrics", "device_logs"] {
        let left: i64 = db
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE device_id = ?1"),
                [id.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0, "{table}");
    }
    let hardware = fx.registry.hardware_devices().unwrap();
    assert_eq!(hardware.len(), 1, "hardware stays, detached");
    assert_eq!(hardware[0].device_id, None);
    assert_eq!(fx.registry.devices().unwrap()[0].device.id, other);
}

#[test]
fn fleet_views_count_connections_and_raise_alerts() {
    let fx = fixture();
    let (_, token) = fx.token();
    let mut ids = Vec::new();
    for (n, name) in [
        (1, "b-stable"),
        (2, "a-flapping"),
        (3, "c-archived"),
        (4, "offline"),
    ] {
        let (id, connection) = fx.admitted(&admission(&key(n), &[], token));
        fx.registry.disconnected(id, connection).unwrap();
        fx.registry
            .update(
                id,
                DeviceUpdate {
                    name: Some(Some(name.into())),
                    archived: Some(name == "c-archived"),
                    ..DeviceUpdate::default()
                },
            )
            .unwrap();
        ids.push(id);
    }
    let (stable, flapping, archived, offline) = (ids[0], ids[1], ids[2], ids[3]);
    // Connection rows are wiped so the scenario below is all there is.
    fx.db()
        .execute("DELETE FROM agent_connections", [])
        .unwrap();
    let now = Utc::now();
    let hours_ago = |h: i64| now - Duration::hours(h);
    let connect = |id: Uuid, from: DateTime<Utc>, to: Option<DateTime<Utc>>| {
        let c = fx.store.open_agent_connection(id, None, from).unwrap();
        if let Some(to) = to {
            fx.store.close_agent_connection(id, c.id, to).unwrap();
        }
    };
    connect(stable, hours_ago(30), None);
    for i in 0..6 {
        // Between the hourly sample points.
        let start = hours_ago(12) + Duration::minutes(1 + 10 * i);
        connect(flapping, start, Some(start + Duration::minutes(5)));
    }
    connect(archived, hours_ago(20), None);
    // Last seen long ago: offline alerts (4 days: critical; the other one 2 days: warning).
    fx.store.touch_devices(&[offline], hours_ago(96)).unwrap();
    fx.store.touch_devices(&[flapping], hours_ago(48)).unwrap();
    // (Touching clears `archived`, so the archived device is left alone.)
    fx.store.touch_devices(&[stable], now).unwrap();
    fx.registry
        .record_metrics(
            stable,
            &metrics_at(now - Duration::minutes(1), 95.0, 85.0, 10.0),
        )
        .unwrap();
    fx.registry
        .record_metrics(
            offline,
            &metrics_at(now - Duration::hours(30), 99.0, 99.0, 99.0),
        )
        .unwrap();

    let series = fx.registry.connectivity(now, 24, 24).unwrap();
    assert_eq!(series.len(), 25);
    assert_eq!(series[0].timestamp, hours_ago(24));
    assert_eq!(series[24].timestamp, now);
    assert_eq!(series[0].connected_count, 1, "only the stable device");
    assert_eq!(series[24].connected_count, 2, "stable and the archived one");

    let matrix = fx.registry.availability(now, 24, 24).unwrap();
    assert_eq!(matrix.timestamps.len(), 25);
    let names: Vec<_> = matrix
        .devices
        .iter()
        .map(|r| r.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["a-flapping", "b-stable", "offline"],
        "archived left out"
    );
    assert!(matrix.devices[1].states.iter().all(|s| *s));
    assert!(matrix.devices[2].states.iter().all(|s| !*s));
    assert_eq!(
        matrix.devices[0].states.iter().filter(|s| **s).count(),
        0,
        "short visits between samples"
    );

    let alerts = fx.registry.alerts(now).unwrap();
    let summary: Vec<(Uuid, &str, &str)> = alerts
        .iter()
        .map(|a| (a.deployment_info_id, a.kind, a.severity))
        .collect();
    assert_eq!(
        summary,
        vec![
            (stable, "cpu", "critical"),
            (offline, "offline", "critical"),
            (flapping, "flapping", "warning"),
            (flapping, "offline", "warning"),
            (stable, "ram", "warning"),
        ]
    );
    let cpu = &alerts[0];
    assert_eq!(cpu.detail, "CPU at 95%");
    assert_eq!(cpu.name.as_deref(), Some("b-stable"));
    assert_eq!(alerts[2].detail, "6 reconnects in 24h");
    assert_eq!(alerts[1].detail, "Offline for 4.0 days");

    for (hours, buckets) in [(0, 1), (2161, 1), (1, 0), (1, 201)] {
        assert!(matches!(
            fx.registry.connectivity(now, hours, buckets),
            Err(DeviceError::Invalid(_))
        ));
    }
}

#[test]
fn devices_are_listed_in_upstreams_order() {
    let fx = fixture();
    let (_, token) = fx.token();
    let ids: Vec<Uuid> = (0..5)
        .map(|n| fx.admitted(&admission(&key(n), &[], token)).0)
        .collect();
    // (first seen, last seen, config, commit) per device, written directly to get ties.
    let rows = [
        (Some("2024-01-02"), Some("2024-01-05"), Some("b"), None),
        (
            Some("2024-01-02"),
            Some("2024-01-05"),
            Some("b"),
            Some("c1"),
        ),
        (Some("2024-01-02"), Some("2024-01-05"), Some("a"), None),
        (Some("2024-01-02"), None, None, None),
        (None, None, None, None),
    ];
    let db = fx.db();
    for (id, (first, last, config, commit)) in ids.iter().zip(rows) {
        let ts = |d: Option<&str>| d.map(|d| format!("{d}T00:00:00.000000Z"));
        db.execute(
            "UPDATE devices SET first_seen_at = ?1, last_seen_at = ?2, deployed_config_id = ?3, \
             deployed_config_commit = ?4 WHERE id = ?5",
            rusqlite::params![ts(first), ts(last), config, commit, id.to_string()],
        )
        .unwrap();
    }
    let listed: Vec<Uuid> = fx
        .registry
        .devices()
        .unwrap()
        .iter()
        .map(|d| d.device.id)
        .collect();
    assert_eq!(listed, vec![ids[2], ids[1], ids[0], ids[3], ids[4]]);
}

#[test]
fn hardware_ids_with_null_values_from_upstream_list_their_text_values() {
    let fx = fixture();
    let (_, token_id) = fx.token();
    let (device, _) = fx.admitted(&admission(
        &key(1),
        &[("pi-serial-number", "abc")],
        token_id,
    ));
    // Upstream stored ids without a value as null.
    fx.db()
        .execute(
            "UPDATE hardware_devices SET hardware_ids = ?1 WHERE device_id = ?2",
            rusqlite::params![
                r#"{"pi-serial-number":"abc","dmi-board-serial":null}"#,
                device.to_string()
            ],
        )
        .unwrap();
    let hardware = fx.registry.hardware_devices().unwrap();
    assert_eq!(hardware.len(), 1);
    assert_eq!(
        hardware[0].hardware_ids,
        BTreeMap::from([("pi-serial-number".to_owned(), "abc".to_owned())])
    );
    let listed = fx.registry.devices().unwrap();
    assert_eq!(listed[0].hardware_devices[0].hardware_ids.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// list snapshots

/// Each device's revision, by id.
fn revisions(fx: &Fixture) -> BTreeMap<Uuid, i64> {
    fx.registry
        .device_list_snapshot(None, &|_, _| true)
        .unwrap()
        .devices
        .iter()
        .map(|entry| (entry.id, entry.revision))
        .collect()
}

#[test]
fn revisions_move_with_what_lists_show_and_not_with_keep_alives() {
    let fx = fixture();
    let (_, token) = fx.token();
    let (a, _) = fx.admitted(&admission(&key(1), &[("pi-serial-number", "A")], token));
    let (b, _) = fx.admitted(&admission(&key(2), &[("pi-serial-number", "B")], token));
    let start = revisions(&fx);
    assert_ne!(start[&a], start[&b], "revisions are unique");

    // Keep-alives and an unchanged re-admission move only last-seen times.
    std::thread::sleep(std::time::Duration::from_millis(5));
    fx.registry.keep_alive(a);
    assert_eq!(fx.registry.flush_last_seen().unwrap(), 1);
    fx.admitted(&admission(&key(2), &[("pi-serial-number", "B")], token));
    assert_eq!(revisions(&fx), start);

    // Each shown change moves the revision of exactly the devices it shows on.
    let mut last = start;
    let mut expect_moved = |fx: &Fixture, moved: &[Uuid], what: &str| {
        let now = revisions(fx);
        for id in [a, b] {
            assert_eq!(
                now[&id] > last[&id],
                moved.contains(&id),
                "{what}: revision of {id}"
            );
            assert!(now[&id] >= last[&id], "{what}: revisions never go back");
        }
        last = now;
    };
    let rename = DeviceUpdate {
        name: Some(Some("kiosk-1".into())),
        ..DeviceUpdate::default()
    };
    fx.registry.update(a, rename.clone()).unwrap();
    expect_moved(&fx, &[a], "rename");
    fx.registry.update(a, rename).unwrap();
    expect_moved(&fx, &[], "the same name again");
    fx.registry
        .update(
            b,
            DeviceUpdate {
                archived: Some(true),
                ..DeviceUpdate::default()
            },
        )
        .unwrap();
    expect_moved(&fx, &[b], "archive");
    fx.registry.keep_alive(b);
    fx.registry.flush_last_seen().unwrap();
    expect_moved(&fx, &[b], "a keep-alive that un-archives");
    let wifi = NetworkInterface {
        interface: "wlan0".into(),
        ipv4_addresses: vec![],
        ipv6_addresses: vec![],
        mac_address: None,
    };
    fx.registry.record_network_interfaces(b, &[wifi]).unwrap();
    expect_moved(&fx, &[b], "new interfaces");
    // A re-flashed Pi takes A's hardware: both devices' hardware lists change.
    let (reflashed, _) = fx.admitted(&admission(&key(3), &[("pi-serial-number", "A")], token));
    expect_moved(&fx, &[a], "hardware moved away");
    fx.db()
        .execute(
            "UPDATE hardware_devices SET device_id = ?1 WHERE device_id = ?2",
            rusqlite::params![b.to_string(), reflashed.to_string()],
        )
        .unwrap();
    expect_moved(&fx, &[b], "hardware moved to b");
    fx.db()
        .execute(
            "UPDATE hardware_devices SET hardware_ids = '{\"pi-serial-number\":\"Z\"}' \
             WHERE hardware_ids LIKE '%\"B\"%'",
            [],
        )
        .unwrap();
    expect_moved(&fx, &[b], "hardware ids edited");
    fx.db()
        .execute(
            "DELETE FROM hardware_devices WHERE device_id = ?1",
            [b.to_string()],
        )
        .unwrap();
    expect_moved(&fx, &[b], "hardware deleted");

    // A deleted device re-created under the same id never meets its old revision.
    let old = last[&a];
    let db = fx.db();
    let row: (String, String) = db
        .query_row(
            "SELECT ssh_public_key, created_at FROM devices WHERE id = ?1",
            [a.to_string()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert!(fx.registry.delete(a).is_ok());
    db.execute(
        "INSERT INTO devices (id, ssh_public_key, created_at) VALUES (?1, ?2, ?3)",
        rusqlite::params![a.to_string(), row.0, row.1],
    )
    .unwrap();
    assert!(revisions(&fx)[&a] > old);
}

#[test]
fn list_snapshots_read_in_full_only_the_devices_not_known() {
    let fx = fixture();
    let (_, token) = fx.token();
    let ids: Vec<Uuid> = (0..4)
        .map(|n| {
            fx.admitted(&admission(
                &key(n),
                &[("pi-serial-number", &format!("s{n}"))],
                token,
            ))
            .0
        })
        .collect();
    let first = fx
        .registry
        .device_list_snapshot(None, &|_, _| false)
        .unwrap();
    let listed: Vec<Uuid> = fx
        .registry
        .devices()
        .unwrap()
        .iter()
        .map(|d| d.device.id)
        .collect();
    let order: Vec<Uuid> = first.devices.iter().map(|entry| entry.id).collect();
    assert_eq!(order, listed, "the order of full lists");
    assert_eq!(first.changed.len(), 4);
    assert_eq!(first.changed_hardware.len(), 4);
    assert_eq!(first.hardware_seen.len(), 4);
    for device in &first.changed {
        let entry = first.devices.iter().find(|e| e.id == device.id).unwrap();
        assert_eq!(device.revision, entry.revision);
        assert_eq!(device.last_seen_at, entry.last_seen_at);
    }

    // Known at their revisions, only the renamed device is read again.
    let known: BTreeMap<Uuid, i64> = first.devices.iter().map(|e| (e.id, e.revision)).collect();
    fx.registry
        .update(
            ids[2],
            DeviceUpdate {
                notes: Some(Some("rack 4".into())),
                ..DeviceUpdate::default()
            },
        )
        .unwrap();
    let known_fn = |id: Uuid, revision: i64| known.get(&id) == Some(&revision);
    let second = fx.registry.device_list_snapshot(None, &known_fn).unwrap();
    assert_eq!(second.devices.len(), 4);
    assert_eq!(second.changed.len(), 1);
    assert_eq!(second.changed[0].id, ids[2]);
    assert_eq!(second.changed[0].notes.as_deref(), Some("rack 4"));
    assert_eq!(second.changed_hardware.len(), 1);
    assert_eq!(second.changed_hardware[0].device_id, Some(ids[2]));

    // By config: only the devices running it, with only their hardware.
    fx.registry
        .update(
            ids[0],
            DeviceUpdate {
                deployed_config_id: Some(Some("other".into())),
                ..DeviceUpdate::default()
            },
        )
        .unwrap();
    let other = fx
        .registry
        .device_list_snapshot(Some("other"), &known_fn)
        .unwrap();
    assert_eq!(other.devices.len(), 1);
    assert_eq!(other.devices[0].id, ids[0]);
    assert_eq!(other.changed.len(), 1);
    assert_eq!(other.hardware_seen.len(), 1);
}
