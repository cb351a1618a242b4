//! Device agents against the real controller: the real `thymis-agent` binary with simulated
//! device roots, a client of the upstream agent protocol against a real OpenSSH `sshd`, relay
//! channels through access clients to TCP servers on the device side.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::agents::{
    create_agent_token, eventually, find_device, rss_kib, wait_online, SimDevice,
};
use common::{json, Controller};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json as j, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const ONLINE_WITHIN: Duration = Duration::from_secs(20);

/// Port of the test echo service on simulated devices (allowed on both sides).
const ECHO_PORT: &str = "7000";

fn start_controller(dir: &std::path::Path, extra: &[&str]) -> Controller {
    let mut args = vec!["--relay-allowed-ports", "22,5900,7000,7001"];
    args.extend_from_slice(extra);
    Controller::start_with(&dir.join("data"), &args)
}

/// A controller, a logged-in client and an agent token named "lab".
async fn lab(dir: &std::path::Path, extra: &[&str]) -> (Controller, reqwest::Client, String) {
    let controller = start_controller(dir, extra);
    let client = controller.login().await;
    let token = create_agent_token(&controller, &client, "lab").await;
    (controller, client, token)
}

/// A TCP echo server on a free loopback port.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    port
}

/// Opens an access-client channel to `port` on a device; `binary` selects raw frames.
async fn open_channel(
    controller: &Controller,
    client: &reqwest::Client,
    device_id: &str,
    port: u16,
    binary: bool,
) -> common::Socket {
    let response = client
        .post(controller.url(&format!("/api/access_client_token/{device_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token = json(response).await["token"].as_str().unwrap().to_owned();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(controller.ws_url("/agent/relay_for_clients"))
            .await
            .unwrap();
    let start = j!({"inner": {"kind": "start", "connection_target": device_id,
        "target_ip": "127.0.0.1", "target_port": port, "protocol": "tcp", "secret": token,
        "binary": binary}});
    socket
        .send(Message::Text(start.to_string().into()))
        .await
        .unwrap();
    match socket.next().await {
        Some(Ok(Message::Text(text))) => {
            let reply: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(reply["inner"]["kind"], "start_ok", "{reply}");
        }
        other => panic!("no start_ok: {other:?}"),
    }
    socket
}

/// Sends `data` through a binary access-client channel and reads the same amount back.
async fn echo_through(socket: common::Socket, data: Vec<u8>) -> Vec<u8> {
    let (mut sink, mut source) = socket.split();
    let expected = data.len();
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(50_000) {
            sink.send(Message::Binary(chunk.to_vec().into()))
                .await
                .unwrap();
        }
        sink
    });
    let mut received = Vec::with_capacity(expected);
    while received.len() < expected {
        match tokio::time::timeout(Duration::from_secs(20), source.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => received.extend_from_slice(&bytes),
            Ok(Some(Ok(_))) => continue,
            other => panic!("channel ended after {} bytes: {other:?}", received.len()),
        }
    }
    drop(writer.await.unwrap());
    received
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift: reproducible and incompressible enough for an integrity check.
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_is_admitted_reports_and_receives_hostname_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let controller = start_controller(dir.path(), &[]);
    let client = controller.login().await;

    // A config whose root password secret has a path on the device.
    let response = client
        .post(controller.url("/api/secrets"))
        .json(&j!({"display_name": "root password", "type": "single_line", "value_str": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let secret_id = json(response).await["id"].as_str().unwrap().to_owned();
    let mut state = json(
        client
            .get(controller.url("/api/state"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    state["configs"] = j!([{
        "identifier": "lobby", "displayName": "Lobby", "tags": [],
        "modules": [
            {"type": "thymis_controller.modules.thymis.ThymisDevice",
             "settings": {"device_type": "generic-x86_64", "device_name": "lobby-screen"}},
            {"type": "thymis_controller.modules.security.SecurityAccessModule",
             "settings": {"password_secret": secret_id}}
        ]
    }]);
    let response = client
        .patch(controller.url("/api/state"))
        .json(&state)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let token = create_agent_token(&controller, &client, "lab").await;
    let root = dir.path().join("device");
    let mut device = SimDevice::prepare(&root, &controller, &token, Some("lobby"));
    std::fs::write(
        root.join("var/log/messages"),
        "Nov 22 10:00:00 lobby sshd[812]: Accepted publickey for root\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    device.start(&controller, &["--metrics-interval-secs", "1"]);
    let record = wait_online(&controller, &client, &device, true, ONLINE_WITHIN).await;
    eprintln!("agent start -> online: {:?}", started.elapsed());
    let id = record["id"].as_str().unwrap().to_owned();
    assert_eq!(record["deployed_config_id"], "lobby");
    assert!(record["ram_bytes"].as_u64().unwrap() > 0);
    assert!(
        record["hardware_devices"].as_array().unwrap().len() == 1,
        "{record}"
    );
    assert!(record["first_seen"].as_str().unwrap().ends_with('Z'));

    // Hostname from the config, secret placed with its mode.
    let hostname = eventually(Duration::from_secs(10), "the hostname file", || async {
        std::fs::read_to_string(root.join("etc/hostname")).ok()
    })
    .await;
    assert_eq!(hostname.trim(), "lobby-screen");
    let secret_path = root.join("run/thymis/root_password_hash");
    let placed = eventually(Duration::from_secs(10), "the placed secret", || async {
        std::fs::read(&secret_path).ok()
    })
    .await;
    // Delivered encrypted to the host key and decrypted on the device.
    assert_eq!(placed, b"correct horse");
    let mode = std::fs::metadata(&secret_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o400);
    // The persisted delivery holds ciphertext only.
    let message = std::fs::read_to_string(root.join("boot/thymis-secrets-message.json")).unwrap();
    assert!(!message.contains("correct horse"));

    // Metrics and logs arrive over the agent connection.
    let metrics = eventually(Duration::from_secs(15), "a metrics sample", || async {
        let url = controller.url(&format!(
            "/api/deployment_info/{id}/metrics?hours=1&granularity=1min"
        ));
        let points = json(client.get(url).send().await.unwrap()).await;
        (!points.as_array()?.is_empty()).then_some(points)
    })
    .await;
    let cpu = metrics[0]["cpu_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu));
    let logs = eventually(Duration::from_secs(15), "the device's log line", || async {
        let logs = json(
            client
                .get(controller.url(&format!("/api/logs/{id}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let found = logs["logs"].as_array()?.iter().any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("Accepted publickey"))
        });
        found.then_some(logs)
    })
    .await;
    assert_eq!(logs["logs"][0]["programname"], "sshd");

    let history = json(
        client
            .get(controller.url(&format!("/api/deployment_info/{id}/connection_history")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert!(history[0]["disconnected_at"].is_null());

    // Renaming pushes the new hostname.
    let response = client
        .patch(controller.url(&format!("/api/deployment_info/{id}")))
        .json(&j!({"name": "Front Desk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    eventually(Duration::from_secs(10), "the renamed hostname", || async {
        let name = std::fs::read_to_string(root.join("etc/hostname")).ok()?;
        (name.trim() == "front-desk").then_some(())
    })
    .await;

    // The token never appears in the controller's log.
    device.stop();
    wait_online(
        &controller,
        &client,
        &device,
        false,
        Duration::from_secs(10),
    )
    .await;
    assert!(!controller.stderr().contains(&token));
    let history = json(
        client
            .get(controller.url(&format!("/api/deployment_info/{id}/connection_history")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(!history[0]["disconnected_at"].is_null());
}

/// A raw client of the agent protocol (what a forged or broken agent can send).
async fn raw_agent(controller: &Controller) -> (common::Socket, Vec<u8>) {
    let (mut socket, _) = tokio_tungstenite::connect_async(controller.ws_url("/agent/relay"))
        .await
        .unwrap();
    let challenge = match socket.next().await {
        Some(Ok(Message::Text(text))) => serde_json::from_str::<Value>(&text).unwrap(),
        other => panic!("no challenge: {other:?}"),
    };
    assert_eq!(challenge["inner"]["kind"], "challenge");
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(challenge["inner"]["nonce"].as_str().unwrap())
        .unwrap();
    (socket, nonce)
}

/// Reads until the controller closes the socket; returns the kinds of the frames seen.
async fn kinds_until_closed(socket: &mut common::Socket) -> Vec<String> {
    let mut kinds = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    kinds.push(value["inner"]["kind"].as_str().unwrap_or("").to_owned());
                }
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the controller kept the socket open; saw {kinds:?}"
    );
    kinds
}

fn start_frame(token: &str, public_key: &str, proof: Option<String>) -> Message {
    let mut start = j!({"kind": "start", "token": token, "hardware_ids": {},
        "public_key": public_key, "deployed_config_id": null, "ip_addresses": [],
        "network_interfaces": [], "ram_bytes": 1024, "last_error": null, "binary_frames": true});
    if let Some(proof) = proof {
        start["proof"] = j!(proof);
    }
    Message::Text(j!({ "inner": start }).to_string().into())
}

/// Connects as a raw agent with `token` claiming `public_key`, signs `signed` (the challenge
/// when `None`) with `key`, and asserts the controller closes the socket without admitting it.
async fn assert_refused(
    controller: &Controller,
    token: &str,
    public_key: &str,
    key: &ssh_key::PrivateKey,
    signed: Option<&[u8]>,
) {
    let (mut socket, nonce) = raw_agent(controller).await;
    let proof = sign(key, signed.unwrap_or(&nonce));
    socket
        .send(start_frame(token, public_key, Some(proof)))
        .await
        .unwrap();
    let kinds = kinds_until_closed(&mut socket).await;
    assert!(
        !kinds.contains(&"successfully_ssh_connected".into()),
        "{kinds:?}"
    );
}

fn sign(key: &ssh_key::PrivateKey, nonce: &[u8]) -> String {
    key.sign(
        thymis::agent::protocol::PROOF_NAMESPACE,
        ssh_key::HashAlg::Sha512,
        nonce,
    )
    .unwrap()
    .to_pem(ssh_key::LineEnding::LF)
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_forged_keys_and_broken_frames_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, client, token) = lab(dir.path(), &[]).await;

    // A healthy device that must stay online through everything below.
    let mut healthy = SimDevice::prepare(&dir.path().join("healthy"), &controller, &token, None);
    healthy.start(&controller, &[]);
    let healthy_record = wait_online(&controller, &client, &healthy, true, ONLINE_WITHIN).await;

    let mut rng = ssh_key::rand_core::OsRng;
    let own_key = ssh_key::PrivateKey::random(&mut rng, ssh_key::Algorithm::Ed25519).unwrap();
    let own_line = own_key.public_key().to_openssh().unwrap();
    let own_line: String = own_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");

    // Unknown token.
    assert_refused(&controller, "thymis-00", &own_line, &own_key, None).await;

    // A valid token, but claiming the healthy device's key without holding it.
    assert_refused(&controller, &token, &healthy.public_key, &own_key, None).await;
    // A signature of another nonce (replay) is refused as well.
    assert_refused(&controller, &token, &own_line, &own_key, Some(b"old nonce")).await;

    // Its own key, properly signed: admitted; then malformed frames close only this socket.
    for broken in [
        Message::Text("{not json".into()),
        Message::Binary(vec![0u8, 0, 0].into()),
        Message::Binary(vec![7u8; 2 << 20].into()),
    ] {
        let (mut socket, nonce) = raw_agent(&controller).await;
        socket
            .send(start_frame(&token, &own_line, Some(sign(&own_key, &nonce))))
            .await
            .unwrap();
        let admitted = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(frame)) = socket.next().await {
                if let Message::Text(text) = frame {
                    if text.contains("successfully_ssh_connected") {
                        return true;
                    }
                }
            }
            false
        })
        .await
        .unwrap();
        assert!(admitted);
        let _ = socket.send(broken).await;
        kinds_until_closed(&mut socket).await;
    }
    let record = find_device(&controller, &client, &healthy.public_key)
        .await
        .unwrap();
    assert_eq!(record["connected"], true);
    assert_eq!(record["id"], healthy_record["id"]);
    let forged = find_device(&controller, &client, &own_line).await.unwrap();
    assert_eq!(forged["connected"], false);

    // Revoking the token: new connections with it are refused.
    let tokens = json(
        client
            .get(controller.url("/api/agent_tokens"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let token_id = tokens[0]["id"].as_str().unwrap().to_owned();
    assert!(!tokens.to_string().contains(&token));
    let response = client
        .delete(controller.url(&format!("/api/agent_tokens/{token_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Connections admitted with it end at once, and reconnecting with it fails.
    wait_online(
        &controller,
        &client,
        &healthy,
        false,
        Duration::from_secs(10),
    )
    .await;
    assert_refused(&controller, &token, &own_line, &own_key, None).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let record = find_device(&controller, &client, &healthy.public_key)
        .await
        .unwrap();
    assert_eq!(
        record["connected"], false,
        "the agent got back in with a revoked token"
    );
    assert!(!controller.stderr().contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_agent_reconnects_after_a_controller_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port().to_string()
    };
    let (controller, client, token) = lab(dir.path(), &["--listen-port", &port]).await;
    let mut devices: Vec<SimDevice> = (0..3)
        .map(|n| {
            SimDevice::prepare(
                &dir.path().join(format!("device-{n}")),
                &controller,
                &token,
                None,
            )
        })
        .collect();
    for device in &mut devices {
        device.start(&controller, &[]);
    }
    for device in &devices {
        wait_online(&controller, &client, device, true, ONLINE_WITHIN).await;
    }
    controller.stop();

    let controller = start_controller(dir.path(), &["--listen-port", &port]);
    let client = controller.login().await;
    for device in &mut devices {
        let record = wait_online(&controller, &client, device, true, Duration::from_secs(30)).await;
        let history = json(
            client
                .get(controller.url(&format!(
                    "/api/deployment_info/{}/connection_history",
                    record["id"].as_str().unwrap()
                )))
                .send()
                .await
                .unwrap(),
        )
        .await;
        // The first connection was closed by the restart, the second is open.
        assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
        assert!(history[0]["disconnected_at"].is_null());
        assert!(!history[1]["disconnected_at"].is_null());
        assert!(!device.exited());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_channels_carry_bytes_intact_in_order_and_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, client, token) = lab(dir.path(), &[]).await;
    let echo = echo_server().await;
    let mut device = SimDevice::prepare(&dir.path().join("device"), &controller, &token, None);
    let redirect = format!("{ECHO_PORT}=127.0.0.1:{echo}");
    device.start(&controller, &["--allow-port", &redirect]);
    let record = wait_online(&controller, &client, &device, true, ONLINE_WITHIN).await;
    let id = record["id"].as_str().unwrap().to_owned();

    // Eight concurrent binary channels of 2 MiB each.
    let mut runs = Vec::new();
    for n in 0..8u64 {
        let socket = open_channel(&controller, &client, &id, 7000, true).await;
        let data = random_bytes(2 << 20, n + 1);
        runs.push(tokio::spawn(async move {
            let received = echo_through(socket, data.clone()).await;
            assert!(received == data, "channel {n} corrupted its bytes");
        }));
    }
    for run in runs {
        run.await.unwrap();
    }

    // The upstream access-client form: base64 tcp_data frames.
    let mut socket = open_channel(&controller, &client, &id, 7000, false).await;
    let payload = random_bytes(40_000, 99);
    for chunk in payload.chunks(1024) {
        let frame = j!({"inner": {"kind": "tcp_data",
            "data_base64": base64::engine::general_purpose::STANDARD.encode(chunk)}});
        socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    let mut received = Vec::new();
    while received.len() < payload.len() {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(frame["inner"]["kind"], "tcp_data");
                received.extend(
                    base64::engine::general_purpose::STANDARD
                        .decode(frame["inner"]["data_base64"].as_str().unwrap())
                        .unwrap(),
                );
            }
            other => panic!("json channel ended: {other:?}"),
        }
    }
    assert!(received == payload);

    // Ports outside the allow-list and foreign targets are refused.
    let response = client
        .post(controller.url(&format!("/api/access_client_token/{id}")))
        .send()
        .await
        .unwrap();
    let access = json(response).await["token"].as_str().unwrap().to_owned();
    for (ip, port) in [("127.0.0.1", 8080), ("10.0.0.1", 7000)] {
        let (mut socket, _) =
            tokio_tungstenite::connect_async(controller.ws_url("/agent/relay_for_clients"))
                .await
                .unwrap();
        let start = j!({"inner": {"kind": "start", "connection_target": id, "target_ip": ip,
            "target_port": port, "protocol": "tcp", "secret": access}});
        socket
            .send(Message::Text(start.to_string().into()))
            .await
            .unwrap();
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            panic!("no answer")
        };
        assert!(text.contains("\"error\""), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_holds_back_only_its_own_channel() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, client, token) = lab(dir.path(), &[]).await;
    // A device-side service that sends 256 MiB as fast as it is allowed to.
    let firehose = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let firehose_port = firehose.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = firehose.accept().await {
            tokio::spawn(async move {
                let block = vec![0x5au8; 1 << 20];
                for _ in 0..256 {
                    if stream.write_all(&block).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let echo = echo_server().await;
    let mut device = SimDevice::prepare(&dir.path().join("device"), &controller, &token, None);
    let firehose_map = format!("7001=127.0.0.1:{firehose_port}");
    let echo_map = format!("{ECHO_PORT}=127.0.0.1:{echo}");
    device.start(
        &controller,
        &["--allow-port", &firehose_map, "--allow-port", &echo_map],
    );
    let record = wait_online(&controller, &client, &device, true, ONLINE_WITHIN).await;
    let id = record["id"].as_str().unwrap().to_owned();
    let controller_before = rss_kib(controller.pid());
    let agent_before = rss_kib(device.pid().unwrap());

    // Open the firehose and read only a little of it.
    let mut slow = open_channel(&controller, &client, &id, 7001, true).await;
    let mut first = 0;
    while first < 100_000 {
        if let Some(Ok(Message::Binary(bytes))) = slow.next().await {
            first += bytes.len();
        }
    }
    // Meanwhile another channel on the same device works normally.
    let socket = open_channel(&controller, &client, &id, 7000, true).await;
    let data = random_bytes(1 << 20, 7);
    let received =
        tokio::time::timeout(Duration::from_secs(20), echo_through(socket, data.clone()))
            .await
            .expect("the echo channel stalled behind the slow one");
    assert!(received == data);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Nobody buffered the firehose: growth stays far below the 256 MiB it wants to send.
    let controller_growth = rss_kib(controller.pid()).saturating_sub(controller_before);
    let agent_growth = rss_kib(device.pid().unwrap()).saturating_sub(agent_before);
    assert!(
        controller_growth < 32 * 1024,
        "controller grew by {controller_growth} KiB"
    );
    assert!(agent_growth < 16 * 1024, "agent grew by {agent_growth} KiB");

    // The slow reader then gets the rest, in order and complete.
    let mut total = first;
    while total < 256 << 20 {
        match tokio::time::timeout(Duration::from_secs(30), slow.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => {
                assert!(bytes.iter().all(|b| *b == 0x5a));
                total += bytes.len();
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("firehose ended after {total} bytes: {other:?}"),
        }
    }
}

#[path = "../../thymis/tests/common/netns.rs"]
mod netns;
#[path = "../../thymis/tests/common/sshd.rs"]
#[allow(dead_code)]
mod sshd;

/// An agent speaking only the upstream protocol, written from agent-protocol.md: JSON frames,
/// no proof, base64 `tcp_data` of at most 1 KiB. Its device is the network namespace `device`,
/// whose port 22 is the test's sshd.
async fn upstream_agent(
    controller: &Controller,
    token: &str,
    public_key: &str,
    device: Arc<netns::NetNs>,
) -> tokio::sync::oneshot::Receiver<()> {
    let (socket, _) = tokio_tungstenite::connect_async(controller.ws_url("/agent/relay"))
        .await
        .unwrap();
    let (mut sink, mut source) = socket.split();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            let text = j!({ "inner": frame }).to_string();
            if sink.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
    });
    out_tx
        .send(
            j!({"kind": "start", "token": token, "hardware_ids": {}, "public_key": public_key,
            "deployed_config_id": null, "ip_addresses": [], "network_interfaces": [],
            "ram_bytes": 2048, "last_error": null}),
        )
        .unwrap();
    let (admitted_tx, admitted_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut admitted_tx = Some(admitted_tx);
        let mut sockets: std::collections::HashMap<String, tokio::net::tcp::OwnedWriteHalf> =
            Default::default();
        while let Some(Ok(frame)) = source.next().await {
            let Message::Text(text) = frame else { continue };
            let frame: Value = serde_json::from_str(&text).unwrap();
            let inner = &frame["inner"];
            let id = inner["connection_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match inner["kind"].as_str().unwrap_or_default() {
                "initiate_connection" => {
                    assert_eq!(inner["target_port"], 22);
                    let device = device.clone();
                    let stream = tokio::task::spawn_blocking(move || {
                        let port_22 = std::net::SocketAddr::from(([127, 0, 0, 1], 22));
                        device.connect(port_22, Duration::from_secs(5))
                    })
                    .await
                    .unwrap()
                    .unwrap();
                    stream.set_nonblocking(true).unwrap();
                    let stream = tokio::net::TcpStream::from_std(stream).unwrap();
                    let (mut read, write) = stream.into_split();
                    sockets.insert(id.clone(), write);
                    out_tx
                        .send(j!({"kind": "initiate_connection_ok", "connection_id": id}))
                        .unwrap();
                    let out_tx = out_tx.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut read, &mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let data = base64::engine::general_purpose::STANDARD.encode(&buf[..n]);
                            let frame =
                                j!({"kind": "tcp_data", "connection_id": id, "data_base64": data});
                            if out_tx.send(frame).is_err() {
                                break;
                            }
                        }
                    });
                }
                "tcp_data" => {
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(inner["data_base64"].as_str().unwrap())
                        .unwrap();
                    if let Some(socket) = sockets.get_mut(&id) {
                        let _ = socket.write_all(&data).await;
                    }
                }
                "connection_close" => {
                    sockets.remove(&id);
                }
                "successfully_ssh_connected" => {
                    if let Some(tx) = admitted_tx.take() {
                        let _ = tx.send(());
                    }
                }
                // `challenge` (ours) and anything else unknown is skipped, as upstream does.
                _ => {}
            }
        }
    });
    admitted_rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_agent_is_proved_over_ssh_and_relays_through_json_frames() {
    let dir = tempfile::tempdir().unwrap();
    let controller = start_controller(dir.path(), &[]);
    let client = controller.login().await;
    let token = create_agent_token(&controller, &client, "upstream image").await;
    let controller_key = common::agents::key_line(&controller.data_dir.join("id_thymis.pub"));
    // The device's sshd is in a network of its own: only the agent's relay reaches it.
    let device = Arc::new(netns::NetNs::new());
    let sshd = sshd::Sshd::start_in(&device, &[&controller_key]);
    let host_key = sshd.host_key_line();

    let admitted = upstream_agent(&controller, &token, &host_key, device.clone()).await;
    tokio::time::timeout(Duration::from_secs(20), admitted)
        .await
        .expect("the upstream agent was not admitted")
        .unwrap();
    // The proof was a real SSH login as root with the controller key.
    sshd.wait_for_log("the controller's login", |log| {
        log.contains("Accepted publickey for root")
    });
    let record = eventually(Duration::from_secs(5), "the device record", || async {
        find_device(&controller, &client, &host_key)
            .await
            .filter(|d| d["connected"] == true)
    })
    .await;

    // A relay channel to its port 22 reaches sshd through base64 frames.
    let id = record["id"].as_str().unwrap().to_owned();
    let mut socket = open_channel(&controller, &client, &id, 22, true).await;
    let banner = match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
        Ok(Some(Ok(Message::Binary(bytes)))) => String::from_utf8_lossy(&bytes).into_owned(),
        other => panic!("no banner: {other:?}"),
    };
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner}");

    // Claiming a key that sshd does not hold fails the proof.
    let other_key = common::agents::generate_host_key(&dir.path().join("other/key"));
    let refused = upstream_agent(&controller, &token, &other_key, device).await;
    assert!(tokio::time::timeout(Duration::from_secs(20), refused)
        .await
        .unwrap()
        .is_err());
    assert!(find_device(&controller, &client, &other_key)
        .await
        .is_none());
}

/// Copies a device root (its boot files and host keys: the disk).
fn clone_disk(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_file(to.join("agent.log"));
}

async fn online_keys(controller: &Controller, client: &reqwest::Client) -> Vec<String> {
    let devices = json(
        client
            .get(controller.url("/api/all_deployment_infos"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    devices
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["connected"] == true)
        .map(|d| d["ssh_public_key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_moved_to_other_hardware_or_cloned_gets_new_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, client, token) = lab(dir.path(), &[]).await;
    let mut first = SimDevice::prepare(&dir.path().join("first"), &controller, &token, None);
    first.start(&controller, &[]);
    wait_online(&controller, &client, &first, true, ONLINE_WITHIN).await;
    let original_key = first.public_key.clone();

    // A running clone of the same disk (same key, same hardware): the device already connected
    // is told to re-key and returns as a new device; the clone then gets the original key.
    let clone_root = dir.path().join("clone");
    clone_disk(&first.root, &clone_root);
    let mut clone = SimDevice::prepare_existing(&clone_root);
    clone.start(&controller, &[]);
    let keys = eventually(
        Duration::from_secs(40),
        "two devices online with distinct keys",
        || async {
            let keys = online_keys(&controller, &client).await;
            (keys.len() == 2).then_some(keys)
        },
    )
    .await;
    assert!(keys.contains(&original_key), "{keys:?}");
    let renamed = first.root.join("etc/ssh/ssh_host_ed25519_key.old.0");
    assert!(
        renamed.exists(),
        "the first device kept its old key: {}",
        first.log()
    );
    first.stop();
    clone.stop();

    // A disk moved to other hardware: same key, another product uuid → re-key. (The cloned
    // pair above shares one hardware id, so a device of its own is used.)
    let mut third = SimDevice::prepare(&dir.path().join("third"), &controller, &token, None);
    third.start(&controller, &[]);
    wait_online(&controller, &client, &third, true, ONLINE_WITHIN).await;
    third.stop();
    wait_online(&controller, &client, &third, false, ONLINE_WITHIN).await;
    let original_key = third.public_key.clone();
    let moved_root = dir.path().join("moved");
    clone_disk(&third.root, &moved_root);
    std::fs::write(
        moved_root.join("sys/class/dmi/id/product_uuid"),
        "00000000-0000-0000-0000-00000000beef\n",
    )
    .unwrap();
    let mut moved = SimDevice::prepare_existing(&moved_root);
    moved.start(&controller, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let new_key = loop {
        let keys = online_keys(&controller, &client).await;
        let rekeyed = moved_root
            .join("etc/ssh/ssh_host_ed25519_key.old.0")
            .exists();
        if let Some(key) = keys
            .into_iter()
            .find(|k| *k != original_key)
            .filter(|_| rekeyed)
        {
            break key;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the moved disk did not come back with a new key; its log:\n{}\ncontroller:\n{}",
            moved.log(),
            controller.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let on_disk = common::agents::key_line(&moved_root.join("etc/ssh/ssh_host_ed25519_key.pub"));
    assert_eq!(new_key, on_disk);
    let original = find_device(&controller, &client, &original_key)
        .await
        .unwrap();
    assert_eq!(original["connected"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_per_device_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, client, token) = lab(dir.path(), &["--relay-max-channels", "2"]).await;
    let echo = echo_server().await;
    let mut device = SimDevice::prepare(&dir.path().join("device"), &controller, &token, None);
    let redirect = format!("{ECHO_PORT}=127.0.0.1:{echo}");
    device.start(&controller, &["--allow-port", &redirect]);
    let record = wait_online(&controller, &client, &device, true, ONLINE_WITHIN).await;
    let id = record["id"].as_str().unwrap().to_owned();
    let first = open_channel(&controller, &client, &id, 7000, true).await;
    let second = open_channel(&controller, &client, &id, 7000, true).await;

    let response = client
        .post(controller.url(&format!("/api/access_client_token/{id}")))
        .send()
        .await
        .unwrap();
    let access = json(response).await["token"].as_str().unwrap().to_owned();
    let third_attempt = || async {
        let (mut socket, _) =
            tokio_tungstenite::connect_async(controller.ws_url("/agent/relay_for_clients"))
                .await
                .unwrap();
        let start = j!({"inner": {"kind": "start", "connection_target": id, "target_ip": "127.0.0.1",
            "target_port": 7000, "protocol": "tcp", "secret": access, "binary": true}});
        socket
            .send(Message::Text(start.to_string().into()))
            .await
            .unwrap();
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            panic!("no answer")
        };
        text.to_string()
    };
    let refused = third_attempt().await;
    assert!(refused.contains("open channels"), "{refused}");

    // Closing one frees its place.
    drop(first);
    let reopened = eventually(Duration::from_secs(10), "a free channel", || async {
        let answer = third_attempt().await;
        answer.contains("start_ok").then_some(answer)
    })
    .await;
    assert!(reopened.contains("start_ok"));
    drop(second);
}
