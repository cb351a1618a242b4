//! The device registry's HTTP API on the real controller: devices, hardware, connection
//! history, metrics, logs, fleet views, agent tokens and `/agent/logs`.
//!
//! Agents cannot be admitted from outside without the agent connection, so each test seeds
//! the controller's own database through the real `SqliteStore` (WAL lets this process and
//! the controller use the file at the same time), the way admissions and reports write it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::{json, Controller};
use serde_json::{json, Value};
use thymis::store::{
    hash_token, MetricSample, NewAdmission, NewAgentToken, NewLogEntry, SqliteStore, Store,
};
use uuid::Uuid;

/// A started controller, its database, and a logged-in client.
struct Setup {
    dir: tempfile::TempDir,
    controller: Controller,
    store: SqliteStore,
    client: reqwest::Client,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let controller = Controller::start(&data);
    let client = controller.login().await;
    // The state names the configs the devices run.
    let response = client
        .patch(controller.url("/api/state"))
        .json(&common::state_with_configs(&["kiosk", "other"]))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let store = SqliteStore::open(&data.join("thymis.sqlite")).unwrap();
    Setup {
        dir,
        controller,
        store,
        client,
    }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        self.controller.url(path)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        json(response).await
    }

    /// [`Setup::get_json`] of an owned path, for closures building it.
    async fn get_json_owned(&self, path: String) -> Value {
        self.get_json(&path).await
    }

    /// An agent token stored the way the image build stores one; returns (token, id).
    fn agent_token(&self, name: &str) -> (String, Uuid) {
        let token = thymis::store::new_agent_token();
        let record = self
            .store
            .create_agent_token(&NewAgentToken {
                token_hash: hash_token(&token),
                name: name.to_owned(),
                config_id: Some("kiosk".into()),
                config_commit: Some("0123abc".into()),
            })
            .unwrap();
        (token, record.id)
    }

    /// Records an admission of `key` with `token` (as the agent connection does).
    fn admit(&self, key: &str, hardware: &[(&str, &str)], config: &str, token: Uuid) -> Uuid {
        self.store
            .record_admission(&NewAdmission {
                public_key: key.to_owned(),
                hardware_ids: hardware
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                deployed_config_id: Some(config.to_owned()),
                network_interfaces: vec![thymis::agent::protocol::NetworkInterface {
                    interface: "eth0".into(),
                    ipv4_addresses: vec!["10.1.2.3".into()],
                    ipv6_addresses: vec![],
                    mac_address: Some("02:00:00:00:00:01".into()),
                }],
                ram_bytes: Some(1 << 30),
                ip: Some("192.0.2.1".into()),
                agent_token_id: token,
                at: Utc::now(),
            })
            .unwrap()
            .device
            .id
    }

    fn log(
        &self,
        device: Uuid,
        key: &str,
        at: DateTime<Utc>,
        severity: u8,
        program: &str,
        message: &str,
    ) {
        self.store
            .upsert_logs(&[NewLogEntry {
                id: Uuid::new_v4().to_string(),
                device_id: Some(device),
                ssh_public_key: key.to_owned(),
                hostname: Some("kiosk-1".into()),
                at,
                severity: Some(severity),
                facility: Some(1),
                program: Some(program.to_owned()),
                syslogtag: Some(format!("{program}:")),
                message: message.to_owned(),
            }])
            .unwrap();
    }

    /// The audit log entries of `action`, newest first, after the controller wrote them (it
    /// writes them in the background).
    async fn audit(&self, action: &str, count: usize) -> Vec<thymis::store::AuditEntry> {
        for _ in 0..100 {
            let entries: Vec<_> = self
                .store
                .list_audit(1000)
                .unwrap()
                .into_iter()
                .filter(|e| e.action == action)
                .collect();
            if entries.len() >= count {
                return entries;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        panic!("no {count} audit entries {action}");
    }
}

fn key(n: u32) -> String {
    format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{n:043}")
}

async fn expect_error(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status, "{}", response.url());
    let body = json(response).await;
    body["detail"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| body["detail"].to_string())
}

fn is_utc(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && DateTime::parse_from_rfc3339(t).is_ok())
}

#[tokio::test]
async fn every_route_needs_a_login() {
    let setup = setup().await;
    let id = Uuid::new_v4();
    let anonymous = common::anonymous();
    let gets = [
        "/api/all_deployment_infos".to_owned(),
        "/api/deployment_infos_by_config_id/kiosk".to_owned(),
        format!("/api/deployment_info/{id}"),
        "/api/hardware_device".to_owned(),
        format!("/api/deployment_info/{id}/connection_history"),
        format!("/api/deployment_info/{id}/metrics"),
        format!("/api/deployment_info/{id}/error_logs"),
        "/api/fleet/connectivity".to_owned(),
        "/api/fleet/metrics/latest".to_owned(),
        "/api/fleet/availability".to_owned(),
        "/api/fleet/alerts".to_owned(),
        format!("/api/logs/{id}"),
        format!("/api/logs/{id}/program-names"),
        format!("/api/logs/{id}/download?duration_minutes=5"),
        "/api/agent_tokens".to_owned(),
    ];
    for path in &gets {
        let response = anonymous.get(setup.url(path)).send().await.unwrap();
        assert_eq!(
            expect_error(response, 401).await,
            "No valid session",
            "{path}"
        );
    }
    let patch = anonymous
        .patch(setup.url(&format!("/api/deployment_info/{id}")))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(patch, 401).await;
    let delete = anonymous
        .delete(setup.url(&format!("/api/deployment_info/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(delete, 401).await;
    let create = anonymous
        .post(setup.url("/api/agent_tokens"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(create, 401).await;
    let revoke = anonymous
        .delete(setup.url(&format!("/api/agent_tokens/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(revoke, 401).await;
}

#[tokio::test]
async fn devices_are_listed_shown_edited_and_deleted() {
    let setup = setup().await;
    let (_, token) = setup.agent_token("image");
    let pi = setup.admit(
        &key(1),
        &[("pi-serial-number", "10000000abcd")],
        "kiosk",
        token,
    );
    std::thread::sleep(StdDuration::from_millis(5));
    let pc = setup.admit(&key(2), &[], "other", token);

    // Newest first seen first.
    let all = setup.get_json("/api/all_deployment_infos").await;
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![pc.to_string(), pi.to_string()]);

    let device = setup.get_json(&format!("/api/deployment_info/{pi}")).await;
    let fields: Vec<&str> = device
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        vec![
            "id",
            "ssh_public_key",
            "deployed_config_commit",
            "deployed_config_id",
            "reachable_deployed_host",
            "pending_config_id",
            "last_seen",
            "first_seen",
            "archived",
            "hardware_devices",
            "network_interfaces",
            "location",
            "name",
            "connected",
            "ram_bytes",
            "notes"
        ]
    );
    assert_eq!(device["ssh_public_key"], key(1));
    assert_eq!(device["deployed_config_id"], "kiosk");
    assert_eq!(device["connected"], false, "no agent is connected");
    assert_eq!(device["archived"], false);
    assert_eq!(device["ram_bytes"], 1 << 30);
    assert!(
        is_utc(&device["last_seen"]) && is_utc(&device["first_seen"]),
        "{device}"
    );
    assert_eq!(device["network_interfaces"][0]["interface"], "eth0");
    let hardware = &device["hardware_devices"][0];
    assert_eq!(
        hardware["hardware_ids"],
        json!({"pi-serial-number": "10000000abcd"})
    );
    assert_eq!(hardware["deployment_info_id"], pi.to_string());
    assert!(is_utc(&hardware["last_seen"]));

    let by_config = setup
        .get_json("/api/deployment_infos_by_config_id/kiosk")
        .await;
    assert_eq!(by_config.as_array().unwrap().len(), 1);
    assert_eq!(by_config[0]["id"], pi.to_string());
    let hardware = setup.get_json("/api/hardware_device").await;
    assert_eq!(hardware.as_array().unwrap().len(), 1);

    // PATCH applies only the fields present; null clears the nullable ones.
    let patch = |body: Value| {
        setup
            .client
            .patch(setup.url(&format!("/api/deployment_info/{pi}")))
            .json(&body)
            .send()
    };
    let edited = json(
        patch(json!({"name": "Lobby", "notes": "behind the desk", "location": "Hall"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(edited["name"], "Lobby");
    assert_eq!(edited["notes"], "behind the desk");
    let edited = json(
        patch(json!({"notes": null, "archived": true}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(edited["notes"], Value::Null);
    assert_eq!(edited["name"], "Lobby");
    assert_eq!(edited["location"], "Hall");
    assert_eq!(edited["archived"], true);
    let shown = setup.get_json(&format!("/api/deployment_info/{pi}")).await;
    assert_eq!(shown["archived"], true);
    let edited = json(
        patch(json!({"deployed_config_id": "other", "archived": false}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(edited["deployed_config_id"], "other");
    assert_eq!(
        setup
            .get_json("/api/deployment_infos_by_config_id/other")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    setup.audit("device.update", 3).await;

    expect_error(patch(json!({"ssh_public_key": null})).await.unwrap(), 422).await;
    expect_error(patch(json!({"archived": null})).await.unwrap(), 422).await;
    expect_error(patch(json!({"name": "bell\u{7}"})).await.unwrap(), 422).await;
    expect_error(patch(json!({"ssh_public_key": key(2)})).await.unwrap(), 409).await;
    expect_error(patch(json!({"archived": "yes"})).await.unwrap(), 422).await;
    let unknown = setup
        .client
        .patch(setup.url(&format!("/api/deployment_info/{}", Uuid::new_v4())))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(unknown, 404).await;
    expect_error(
        setup
            .get(&format!("/api/deployment_info/{}", Uuid::new_v4()))
            .await,
        404,
    )
    .await;
    expect_error(setup.get("/api/deployment_info/not-a-uuid").await, 422).await;

    // DELETE answers 204 and the device is gone with its history.
    let response = setup
        .client
        .delete(setup.url(&format!("/api/deployment_info/{pc}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    expect_error(setup.get(&format!("/api/deployment_info/{pc}")).await, 404).await;
    let again = setup
        .client
        .delete(setup.url(&format!("/api/deployment_info/{pc}")))
        .send()
        .await
        .unwrap();
    expect_error(again, 404).await;
    assert_eq!(
        setup.audit("device.delete", 1).await[0].target,
        Some(pc.to_string())
    );
    assert_eq!(
        setup
            .get_json("/api/all_deployment_infos")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Each device of the full list by id, after checking it equals the device's own page.
async fn listed_devices(setup: &Setup) -> BTreeMap<String, Value> {
    let all = setup.get_json("/api/all_deployment_infos").await;
    let mut listed = BTreeMap::new();
    for device in all.as_array().unwrap() {
        let id = device["id"].as_str().unwrap().to_owned();
        let shown = setup.get_json(&format!("/api/deployment_info/{id}")).await;
        assert_eq!(device, &shown, "list entry and device page of {id}");
        listed.insert(id, device.clone());
    }
    listed
}

#[tokio::test]
async fn lists_show_every_change_made_after_they_were_cached() {
    let setup = setup().await;
    let (_, token) = setup.agent_token("image");
    let pi = setup.admit(&key(1), &[("pi-serial-number", "A")], "kiosk", token);
    let pc = setup.admit(&key(2), &[("dmi-product-uuid", "B")], "other", token);
    let gone = setup.admit(&key(3), &[], "kiosk", token);
    let before = listed_devices(&setup).await;
    assert_eq!(before.len(), 3);
    // Asked again unchanged, a list is the same.
    assert_eq!(listed_devices(&setup).await, before);

    // Changes written straight to the database, as other writers (agent connections, a
    // second controller process, an import) make them, without telling this controller.
    std::thread::sleep(StdDuration::from_millis(5));
    setup
        .store
        .update_device(
            pi,
            &thymis::store::DeviceUpdate {
                name: Some(Some("lobby".into())),
                ..Default::default()
            },
        )
        .unwrap();
    // Stored to the microsecond.
    let seen = Utc::now()
        .duration_trunc(Duration::microseconds(1))
        .unwrap();
    setup.store.touch_devices(&[pc], seen).unwrap();
    // Pi A's card now boots in a new Pi with a new key: the hardware moves to it.
    let reflashed = setup.admit(&key(4), &[("pi-serial-number", "A")], "kiosk", token);
    assert!(setup.store.delete_device(gone).unwrap());

    let after = listed_devices(&setup).await;
    let ids: Vec<String> = after.keys().cloned().collect();
    let mut expected = vec![pi.to_string(), pc.to_string(), reflashed.to_string()];
    expected.sort();
    assert_eq!(ids, expected, "the deleted device left, the new one came");
    let (pi_json, pc_json) = (&after[&pi.to_string()], &after[&pc.to_string()]);
    assert_eq!(pi_json["name"], "lobby");
    assert_eq!(pi_json["hardware_devices"], json!([]), "its hardware moved");
    let moved = &after[&reflashed.to_string()]["hardware_devices"][0];
    assert_eq!(moved["hardware_ids"], json!({"pi-serial-number": "A"}));
    assert_eq!(moved["deployment_info_id"], reflashed.to_string());
    let seen = thymis::devices::iso(&seen);
    assert_eq!(pc_json["last_seen"], seen.as_str());
    assert_eq!(pc_json["hardware_devices"][0]["last_seen"], seen.as_str());
    assert_ne!(
        before[&pc.to_string()]["last_seen"],
        pc_json["last_seen"],
        "last seen moved"
    );
    // The newest first seen comes first; everything else stayed as it was.
    let all = setup.get_json("/api/all_deployment_infos").await;
    assert_eq!(all[0]["id"], reflashed.to_string());
    assert_eq!(
        pc_json["network_interfaces"],
        before[&pc.to_string()]["network_interfaces"]
    );

    let by_config = setup
        .get_json("/api/deployment_infos_by_config_id/kiosk")
        .await;
    let kiosk: Vec<&str> = by_config
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(kiosk, vec![reflashed.to_string(), pi.to_string()]);
    assert_eq!(by_config[1], after[&pi.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lists_while_devices_come_and_go_list_every_lasting_device_once() {
    let setup = setup().await;
    let (_, token) = setup.agent_token("image");
    let lasting: Vec<String> = (0..20)
        .map(|n| setup.admit(&key(n), &[], "kiosk", token).to_string())
        .collect();
    let store = SqliteStore::open(&setup.dir.path().join("data/thymis.sqlite")).unwrap();
    let churn = tokio::task::spawn_blocking(move || {
        for n in 100..160 {
            let device = store
                .record_admission(&NewAdmission {
                    public_key: key(n),
                    hardware_ids: BTreeMap::from([("dmi-product-uuid".into(), format!("u{n}"))]),
                    deployed_config_id: Some("kiosk".into()),
                    network_interfaces: vec![],
                    ram_bytes: None,
                    ip: None,
                    agent_token_id: token,
                    at: Utc::now(),
                })
                .unwrap()
                .device
                .id;
            std::thread::sleep(StdDuration::from_millis(2));
            store.delete_device(device).unwrap();
        }
    });
    let list = || async {
        let all = setup.get_json("/api/all_deployment_infos").await;
        all.as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    for _ in 0..15 {
        let (a, b, c) = tokio::join!(list(), list(), list());
        for ids in [a, b, c] {
            let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "a device listed twice: {ids:?}");
            for id in &lasting {
                assert!(ids.contains(id), "{id} missing from {ids:?}");
            }
            assert!(ids.len() <= lasting.len() + 1, "{ids:?}");
        }
    }
    churn.await.unwrap();
}

#[tokio::test]
async fn connection_history_metrics_and_error_logs() {
    let setup = setup().await;
    let (_, token) = setup.agent_token("image");
    let id = setup.admit(&key(1), &[], "kiosk", token);
    for _ in 0..11 {
        setup.admit(&key(1), &[], "kiosk", token);
    }
    let history = setup
        .get_json(&format!("/api/deployment_info/{id}/connection_history"))
        .await;
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(
        rows[0]["disconnected_at"],
        Value::Null,
        "the newest is open"
    );
    assert!(is_utc(&rows[1]["disconnected_at"]));
    assert!(rows
        .windows(2)
        .all(|w| w[0]["connected_at"].as_str() >= w[1]["connected_at"].as_str()));
    let keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, vec!["id", "connected_at", "disconnected_at"]);

    let now = Utc::now();
    let day = now.duration_trunc(Duration::days(1)).unwrap() - Duration::days(2);
    for (offset_minutes, cpu) in [(0, 10.0), (30, 20.0), (6 * 60 + 1, 40.0), (25 * 60, 80.0)] {
        setup
            .store
            .insert_metric(
                id,
                &MetricSample {
                    at: day + Duration::minutes(offset_minutes),
                    cpu_percent: cpu,
                    ram_percent: 50.0,
                    disk_percent: 5.0,
                },
            )
            .unwrap();
    }
    let metrics =
        |query: &str| setup.get_json_owned(format!("/api/deployment_info/{id}/metrics{query}"));
    let default = metrics("").await;
    let hourly: Vec<(String, f64)> = default
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["timestamp"].as_str().unwrap().to_owned(),
                p["cpu_percent"].as_f64().unwrap(),
            )
        })
        .collect();
    let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        hourly,
        vec![
            (stamp(day), 15.0),
            (stamp(day + Duration::hours(6)), 40.0),
            (stamp(day + Duration::hours(25)), 80.0)
        ],
        "1h buckets by default, ascending, epoch-aligned"
    );
    let points = |value: &Value| value.as_array().unwrap().len();
    assert_eq!(points(&metrics("?granularity=1min").await), 4);
    assert_eq!(points(&metrics("?granularity=15min").await), 4);
    assert_eq!(points(&metrics("?granularity=6h").await), 3);
    let daily = metrics("?granularity=1d").await;
    assert_eq!(points(&daily), 2);
    assert_eq!(daily[0]["timestamp"], stamp(day));
    assert_eq!(daily[0]["cpu_percent"], 70.0 / 3.0);
    assert_eq!(points(&metrics("?hours=1").await), 0);
    for bad in ["?hours=0", "?hours=169", "?hours=abc", "?granularity=2h"] {
        let response = setup
            .get(&format!("/api/deployment_info/{id}/metrics{bad}"))
            .await;
        expect_error(response, 422).await;
    }
    expect_error(
        setup
            .get(&format!("/api/deployment_info/{}/metrics", Uuid::new_v4()))
            .await,
        404,
    )
    .await;

    let recent = now - Duration::minutes(5);
    setup.log(id, &key(1), recent, 2, "kernel", "disk failure");
    setup.log(
        id,
        &key(1),
        recent + Duration::seconds(1),
        6,
        "sshd",
        "login",
    );
    let errors = setup
        .get_json(&format!("/api/deployment_info/{id}/error_logs"))
        .await;
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert_eq!(errors[0]["message"], "disk failure");
    assert_eq!(errors[0]["host"], "kiosk-1");
}

#[tokio::test]
async fn logs_are_filtered_listed_and_downloaded() {
    let setup = setup().await;
    let (_, token) = setup.agent_token("image");
    let id = setup.admit(&key(1), &[], "kiosk", token);
    let base = Utc::now() - Duration::minutes(30);
    let at = |m: i64| base + Duration::minutes(m);
    setup.log(id, &key(1), at(0), 6, "sshd", "Accepted publickey for root");
    setup.log(id, &key(1), at(1), 3, "nginx", "connect() FAILED");
    setup.log(id, &key(1), at(2), 4, "sshd-session", "warning: slow");
    setup.log(id, &key(1), at(3), 7, "app", "debug 100% done");

    let messages = |body: Value| -> Vec<String> {
        body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let logs = |query: String| setup.get_json_owned(format!("/api/logs/{id}{query}"));
    let all = logs(String::new()).await;
    assert_eq!(
        messages(all.clone()),
        vec![
            "debug 100% done",
            "warning: slow",
            "connect() FAILED",
            "Accepted publickey for root"
        ]
    );
    let line = &all["logs"][0];
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        vec![
            "uuid",
            "timestamp",
            "message",
            "host",
            "facility",
            "severity",
            "programname",
            "syslogtag"
        ]
    );
    assert!(is_utc(&line["timestamp"]));
    assert_eq!(line["severity"], 7);

    assert_eq!(
        messages(logs("?program_name=sshd".into()).await),
        vec!["warning: slow", "Accepted publickey for root"]
    );
    assert_eq!(
        messages(logs("?program_name=sshd&exact_program_name=true".into()).await),
        vec!["Accepted publickey for root"]
    );
    assert_eq!(
        messages(logs("?search=failed".into()).await),
        vec!["connect() FAILED"]
    );
    assert_eq!(
        messages(logs("?search=100%25".into()).await),
        vec!["debug 100% done"]
    );
    assert_eq!(
        messages(logs("?max_severity=4".into()).await),
        vec!["warning: slow", "connect() FAILED"]
    );
    assert_eq!(
        messages(logs("?limit=1&offset=1".into()).await),
        vec!["warning: slow"]
    );
    let window = format!(
        "?from_datetime={}&to_datetime={}",
        urlencode(&at(1).to_rfc3339()),
        // Without an offset: UTC, as upstream's `fromisoformat` reads it.
        urlencode(
            &at(2)
                .naive_utc()
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string()
        )
    );
    assert_eq!(
        messages(logs(window).await),
        vec!["warning: slow", "connect() FAILED"]
    );
    for bad in [
        "?from_datetime=yesterday",
        "?max_severity=9",
        "?limit=0",
        "?limit=x",
        "?exact_program_name=maybe",
    ] {
        expect_error(setup.get(&format!("/api/logs/{id}{bad}")).await, 422).await;
    }
    expect_error(
        setup.get(&format!("/api/logs/{}", Uuid::new_v4())).await,
        404,
    )
    .await;
    expect_error(setup.get("/api/logs/nope").await, 422).await;

    let names = setup
        .get_json(&format!("/api/logs/{id}/program-names"))
        .await;
    assert_eq!(names, json!(["app", "nginx", "sshd", "sshd-session"]));

    let response = setup
        .get(&format!("/api/logs/{id}/download?duration_minutes=2"))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"logs_kiosk_"),
        "{disposition}"
    );
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].ends_with(" kiosk-1 nginx: connect() FAILED"),
        "{}",
        lines[0]
    );
    assert!(lines[2].ends_with(" kiosk-1 app: debug 100% done"));
    expect_error(setup.get(&format!("/api/logs/{id}/download")).await, 422).await;
    expect_error(
        setup
            .get(&format!("/api/logs/{id}/download?duration_minutes=0"))
            .await,
        422,
    )
    .await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn fleet_views() {
    let setup = setup().await;
    let (_, token) = setup.agent_token("image");
    let online = setup.admit(&key(1), &[], "kiosk", token);
    let gone = setup.admit(&key(2), &[], "kiosk", token);
    let hidden = setup.admit(&key(3), &[], "kiosk", token);
    for (id, name, archived) in [
        (online, "online", false),
        (gone, "gone", false),
        (hidden, "hidden", true),
    ] {
        let response = setup
            .client
            .patch(setup.url(&format!("/api/deployment_info/{id}")))
            .json(&json!({"name": name, "archived": archived}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // `gone` left three days ago and has been flapping before that; `online` is busy.
    let now = Utc::now();
    setup
        .store
        .close_all_agent_connections(now - Duration::hours(80))
        .unwrap();
    setup
        .store
        .touch_devices(&[gone], now - Duration::hours(80))
        .unwrap();
    let back = setup
        .store
        .open_agent_connection(online, None, now - Duration::hours(1))
        .unwrap();
    assert!(back.disconnected_at.is_none());
    setup
        .store
        .insert_metric(
            online,
            &MetricSample {
                at: now - Duration::minutes(2),
                cpu_percent: 12.0,
                ram_percent: 91.5,
                disk_percent: 82.0,
            },
        )
        .unwrap();

    let series = setup
        .get_json("/api/fleet/connectivity?hours=4&buckets=4")
        .await;
    let counts: Vec<u64> = series
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["connected_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![0, 0, 0, 1, 1]);
    assert!(is_utc(&series[0]["timestamp"]));
    assert_eq!(
        setup
            .get_json("/api/fleet/connectivity")
            .await
            .as_array()
            .unwrap()
            .len(),
        49
    );

    let matrix = setup
        .get_json("/api/fleet/availability?hours=4&buckets=4")
        .await;
    assert_eq!(matrix["timestamps"].as_array().unwrap().len(), 5);
    let rows: Vec<(String, Vec<bool>)> = matrix["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                serde_json::from_value(r["states"].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("gone".to_owned(), vec![false; 5]),
            ("online".to_owned(), vec![false, false, false, true, true])
        ]
    );

    let latest = setup.get_json("/api/fleet/metrics/latest").await;
    assert_eq!(latest.as_array().unwrap().len(), 1);
    assert_eq!(latest[0]["deployment_info_id"], online.to_string());
    assert_eq!(latest[0]["name"], "online");
    assert_eq!(latest[0]["ram_percent"], 91.5);
    assert!(is_utc(&latest[0]["timestamp"]));

    let alerts = setup.get_json("/api/fleet/alerts").await;
    let summary: Vec<(String, String, String)> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["kind"].as_str().unwrap().to_owned(),
                a["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "gone".to_owned(),
                "offline".to_owned(),
                "critical".to_owned()
            ),
            ("online".to_owned(), "ram".to_owned(), "critical".to_owned()),
            ("online".to_owned(), "disk".to_owned(), "warning".to_owned()),
        ]
    );
    assert_eq!(alerts[1]["detail"], "RAM at 92%");
    assert_eq!(alerts[0]["detail"], "Offline for 3.3 days");

    for bad in [
        "hours=0",
        "hours=2161",
        "buckets=0",
        "buckets=201",
        "hours=x",
    ] {
        expect_error(
            setup.get(&format!("/api/fleet/connectivity?{bad}")).await,
            422,
        )
        .await;
        expect_error(
            setup.get(&format!("/api/fleet/availability?{bad}")).await,
            422,
        )
        .await;
    }
}

#[tokio::test]
async fn agent_tokens_are_created_listed_without_values_and_revoked() {
    let setup = setup().await;
    let mut notifications = common::open_notifications(
        &setup.controller,
        &setup.controller.login_session().await.cookie_header(),
    )
    .await;
    let response = setup
        .client
        .post(setup.url("/api/agent_tokens"))
        .json(&json!({"name": "bench devices", "config_id": "kiosk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created = json(response).await;
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("thymis-"));
    assert_eq!(created["name"], "bench devices");
    assert_eq!(created["original_config_id"], "kiosk");
    assert_eq!(created["revoked_at"], Value::Null);
    assert!(is_utc(&created["created_at"]));
    let id = created["id"].as_str().unwrap().to_owned();
    common::wait_for_invalidation(
        &mut notifications,
        "/api/agent_tokens",
        StdDuration::from_secs(5),
    )
    .await;

    let listed = setup.get("/api/agent_tokens").await;
    let text = listed.text().await.unwrap();
    assert!(!text.contains(&token), "the list shows a token value");
    assert!(
        !text.contains(&hash_token(&token)),
        "the list shows a token hash"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = list[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        vec![
            "id",
            "name",
            "original_config_id",
            "original_config_commit",
            "created_at",
            "revoked_at",
            "last_used_at"
        ]
    );

    // The token works for log uploads of a device admitted with it until it is revoked.
    let device = setup.admit(&key(1), &[], "kiosk", id.parse().unwrap());
    let upload = || {
        setup
            .client
            .post(setup.url("/agent/logs"))
            .header("X-Thymis-Token", &token)
            .header("X-Thymis-Ssh-Pubkey", key(1))
            .json(&json!([]))
            .send()
    };
    assert_eq!(upload().await.unwrap().status(), 200);
    let used = setup.get_json("/api/agent_tokens").await;
    assert!(is_utc(&used[0]["last_used_at"]), "{used}");

    let revoke = |id: String| {
        setup
            .client
            .delete(setup.url(&format!("/api/agent_tokens/{id}")))
            .send()
    };
    let response = revoke(id.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    let revoked = json(response).await;
    assert!(is_utc(&revoked["revoked_at"]));
    assert!(revoked.get("token").is_none());
    assert_eq!(upload().await.unwrap().status(), 404);
    expect_error(revoke(id.clone()).await.unwrap(), 409).await;
    expect_error(revoke(Uuid::new_v4().to_string()).await.unwrap(), 404).await;
    expect_error(revoke("nope".into()).await.unwrap(), 422).await;

    let audit = setup.audit("agent_token.create", 1).await;
    assert_eq!(audit[0].target.as_deref(), Some(id.as_str()));
    setup.audit("agent_token.revoke", 1).await;
    for entry in setup.store.list_audit(1000).unwrap() {
        let text = serde_json::to_string(&entry).unwrap();
        assert!(
            !text.contains(&token),
            "the audit log holds the token: {text}"
        );
    }

    for body in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({}),
        json!({"name": "ok", "config_id": "missing"}),
    ] {
        let response = setup
            .client
            .post(setup.url("/api/agent_tokens"))
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(response, 422).await;
    }
    assert!(setup.get_json(&format!("/api/logs/{device}")).await["logs"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn agent_log_uploads_need_the_token_the_device_was_admitted_with() {
    let setup = setup().await;
    let (token, token_id) = setup.agent_token("image");
    let (other_token, other_id) = setup.agent_token("other image");
    let device = setup.admit(&key(1), &[], "kiosk", token_id);
    setup.admit(&key(2), &[], "kiosk", other_id);
    let anonymous = common::anonymous();
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut request = anonymous.post(setup.url("/agent/logs")).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let batch = json!([
        {"uuid": "0123456789abcdef0123456789abcdef", "timestamp": Utc::now().to_rfc3339(),
         "message": "Started nginx", "host": "kiosk-a", "facility": 3, "severity": "6",
         "programname": "systemd", "syslogtag": "systemd[1]:"},
        {"uuid": Uuid::new_v4().to_string(), "timestamp": "not a time", "message": "skipped"},
        {"uuid": Uuid::new_v4().to_string(), "timestamp": Utc::now().to_rfc3339(),
         "message": "alert", "severity": 99, "programname": "kernel"}
    ]);
    let body = serde_json::to_vec(&batch).unwrap();
    let both = |token: &str, key: &str| {
        vec![
            ("X-Thymis-Token", token.to_owned()),
            ("X-Thymis-Ssh-Pubkey", key.to_owned()),
        ]
    };

    // Missing headers, a wrong token, an unknown key, or another device's key: all 404.
    for headers in [
        vec![],
        vec![("X-Thymis-Token", token.clone())],
        vec![("X-Thymis-Ssh-Pubkey", key(1))],
        both("thymis-wrong", &key(1)),
        both(&token, &key(9)),
        both(&token, &key(2)),
        both(&other_token, &key(1)),
    ] {
        let response = post(headers.clone(), body.clone()).await.unwrap();
        assert_eq!(response.status(), 404, "{headers:?}");
        assert_eq!(json(response).await, json!({"detail": "Not Found"}));
    }
    assert!(setup.get_json(&format!("/api/logs/{device}")).await["logs"]
        .as_array()
        .unwrap()
        .is_empty());

    let response = post(both(&token, &key(1)), body.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "null");
    // A resent batch is stored once.
    assert_eq!(
        post(both(&token, &key(1)), body.clone())
            .await
            .unwrap()
            .status(),
        200
    );
    let logs = setup.get_json(&format!("/api/logs/{device}")).await;
    let lines = logs["logs"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{logs}");
    let started = lines
        .iter()
        .find(|l| l["message"] == "Started nginx")
        .unwrap();
    assert_eq!(started["uuid"], "01234567-89ab-cdef-0123-456789abcdef");
    assert_eq!(started["host"], "kiosk-a");
    assert_eq!(started["severity"], 6);
    let alert = lines.iter().find(|l| l["message"] == "alert").unwrap();
    assert_eq!(alert["severity"], 7, "clamped");

    // Malformed and oversized batches.
    for bad in [
        b"{\"not\": \"an array\"}".to_vec(),
        b"[".to_vec(),
        b"[{\"message\": 1}]".to_vec(),
    ] {
        let response = post(both(&token, &key(1)), bad).await.unwrap();
        expect_error(response, 422).await;
    }
    // On a connection of its own: the controller answers before reading the body and then
    // closes the connection, which a pooled client would try to reuse.
    let huge = vec![b' '; 5 * 1024 * 1024];
    let response = common::anonymous()
        .post(setup.url("/agent/logs"))
        .header("X-Thymis-Token", &token)
        .header("X-Thymis-Ssh-Pubkey", key(1))
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_error(response, 413).await;

    // The removed polling API.
    for endpoint in ["register", "heartbeat", "notify"] {
        let response = anonymous
            .post(setup.url(&format!("/agent/{endpoint}")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let detail = expect_error(response, 404).await;
        assert!(detail.contains("deprecated"), "{detail}");
    }
}

#[tokio::test]
async fn a_restart_closes_connections_left_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let controller = Controller::start(&data);
    let store = SqliteStore::open(&data.join("thymis.sqlite")).unwrap();
    let token = store
        .create_agent_token(&NewAgentToken {
            token_hash: hash_token("thymis-restart"),
            name: "restart".into(),
            config_id: None,
            config_commit: None,
        })
        .unwrap();
    let device = store
        .record_admission(&NewAdmission {
            public_key: key(1),
            hardware_ids: BTreeMap::new(),
            deployed_config_id: None,
            network_interfaces: vec![],
            ram_bytes: None,
            ip: None,
            agent_token_id: token.id,
            at: Utc::now(),
        })
        .unwrap()
        .device
        .id;
    assert!(store.connection_history(device, 1).unwrap()[0]
        .disconnected_at
        .is_none());
    drop(controller);
    let controller = Controller::start(&data);
    let client = controller.login().await;
    let history: Value = json(
        client
            .get(controller.url(&format!("/api/deployment_info/{device}/connection_history")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(is_utc(&history[0]["disconnected_at"]), "{history}");
    // The OpenAPI document describes the registry's routes.
    let doc: Value = json(
        client
            .get(controller.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    for path in [
        "/api/all_deployment_infos",
        "/api/fleet/alerts",
        "/api/agent_tokens",
        "/agent/logs",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
}
