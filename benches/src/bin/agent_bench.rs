//! The real release `thymis-agent` against the release controller: stripped binary size, time
//! from agent start to online, idle RSS, and the relay as an access client outside the
//! controller uses it (access-client WebSocket → controller → agent → device TCP) against
//! plain loopback TCP measured in the same run: bulk throughput and small-message round
//! trips. `relay_bench` measures the controller's own channels.
//!
//! `cargo build --release -p thymis-http -p thymis-agent && cargo run --release -p thymis-benches --bin agent_bench`

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use thymis_benches::controller::{self, percentile, rss_mib, Controller};
use thymis_benches::device::{
    agent_binary, allow_ports, device_root, mib_per_s, round_trips, run_with_device_services,
    start_agent, to_sink, DeviceServices, BULK_BYTES,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const ROUND_TRIPS: usize = 2000;

async fn devices(client: &reqwest::Client, controller: &Controller) -> Vec<serde_json::Value> {
    let list: serde_json::Value = client
        .get(format!("{}/api/all_deployment_infos", controller.url))
        .send()
        .await
        .expect("device list")
        .json()
        .await
        .expect("json");
    list.as_array().cloned().unwrap_or_default()
}

async fn wait_connected(client: &reqwest::Client, controller: &Controller, online: bool) -> String {
    loop {
        let list = devices(client, controller).await;
        if let Some(device) = list.iter().find(|d| d["connected"] == online) {
            return device["id"].as_str().unwrap_or_default().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn access_channel(
    client: &reqwest::Client,
    controller: &Controller,
    device: &str,
    port: u16,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let token: serde_json::Value = client
        .post(format!(
            "{}/api/access_client_token/{device}",
            controller.url
        ))
        .send()
        .await
        .expect("access token")
        .json()
        .await
        .expect("json");
    let url = format!(
        "{}/agent/relay_for_clients",
        controller.url.replacen("http", "ws", 1)
    );
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .expect("access socket");
    let start = serde_json::json!({"inner": {"kind": "start", "connection_target": device,
        "target_ip": "127.0.0.1", "target_port": port, "protocol": "tcp",
        "secret": token["token"], "binary": true}});
    socket
        .send(Message::Text(start.to_string().into()))
        .await
        .expect("start");
    match socket.next().await {
        Some(Ok(Message::Text(text))) if text.contains("start_ok") => socket,
        other => panic!("channel refused: {other:?}"),
    }
}

fn main() {
    run_with_device_services(bench);
}

async fn bench() {
    let binary = agent_binary();
    let stripped = std::env::temp_dir().join("thymis-agent-stripped");
    std::fs::copy(&binary, &stripped).expect("agent binary");
    let _ = Command::new("strip").arg(&stripped).status();
    println!(
        "agent binary: {:.2} MiB, stripped {:.2} MiB",
        std::fs::metadata(&binary).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64,
        std::fs::metadata(&stripped).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64,
    );

    let controller = controller::start(&["--relay-allowed-ports".into(), "22,7000,7001".into()]);
    let client = controller.login().await;
    let token: serde_json::Value = client
        .post(format!("{}/api/agent_tokens", controller.url))
        .json(&serde_json::json!({"name": "bench"}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["token"].as_str().expect("token").to_owned();
    let controller_key = std::fs::read_to_string(controller.dir.path().join("data/id_thymis.pub"))
        .expect("controller key");
    let root = device_root(&controller_key, &token);
    let services = DeviceServices::start();
    let args = allow_ports(&[(7000, services.sink), (7001, services.echo)]);

    // Start → online, ten times.
    let mut online_times = Vec::new();
    let mut agent = None;
    for round in 0..10 {
        let began = Instant::now();
        let child = start_agent(&controller.url, root.path(), &args);
        wait_connected(&client, &controller, true).await;
        online_times.push(began.elapsed());
        if round < 9 {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            wait_connected(&client, &controller, false).await;
        } else {
            agent = Some(child);
        }
    }
    online_times.sort();
    println!(
        "agent start → online: median {:?}, min {:?}, max {:?} (10 starts)",
        percentile(&online_times, 0.5),
        online_times[0],
        online_times[9]
    );
    let mut agent = agent.expect("agent");
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!(
        "agent idle RSS after 10 s online: {:.2} MiB",
        rss_mib(agent.id())
    );
    let device = wait_connected(&client, &controller, true).await;

    // Bulk: plain loopback first, then through the relay; the sink acknowledges the last byte.
    let mut direct = TcpStream::connect(("127.0.0.1", services.sink))
        .await
        .expect("connect");
    let plain = to_sink(&mut direct).await;
    drop(direct);
    let mut relay = access_channel(&client, &controller, &device, 7000).await;
    let block = vec![0xa5u8; 64 * 1024];
    let began = Instant::now();
    for _ in 0..BULK_BYTES / block.len() {
        relay
            .feed(Message::Binary(block.clone().into()))
            .await
            .expect("send");
    }
    relay.flush().await.expect("flush");
    match relay.next().await {
        Some(Ok(Message::Binary(ack))) if ack.as_ref() == b"!" => {}
        other => panic!("no acknowledgement from the sink: {other:?}"),
    }
    let relayed = began.elapsed();
    println!(
        "bulk 1 GiB: loopback TCP {:.0} MiB/s, through the relay {:.0} MiB/s ({:.0}%); agent RSS {:.2} MiB, controller RSS {:.2} MiB",
        mib_per_s(BULK_BYTES, plain),
        mib_per_s(BULK_BYTES, relayed),
        100.0 * plain.as_secs_f64() / relayed.as_secs_f64(),
        rss_mib(agent.id()),
        rss_mib(controller.child.id()),
    );
    drop(relay);

    // Round trips of 64 bytes.
    let message = [7u8; 64];
    let mut direct = TcpStream::connect(("127.0.0.1", services.echo))
        .await
        .expect("connect");
    direct.set_nodelay(true).expect("nodelay");
    let plain_rtt = round_trips(&mut direct, ROUND_TRIPS).await;
    let mut relay = access_channel(&client, &controller, &device, 7001).await;
    let mut relay_rtt = Vec::new();
    for _ in 0..ROUND_TRIPS {
        let began = Instant::now();
        relay
            .send(Message::Binary(message.to_vec().into()))
            .await
            .expect("send");
        let mut got = 0;
        while got < message.len() {
            match relay.next().await {
                Some(Ok(Message::Binary(bytes))) => got += bytes.len(),
                Some(Ok(_)) => {}
                other => panic!("echo channel ended: {other:?}"),
            }
        }
        relay_rtt.push(began.elapsed());
    }
    relay_rtt.sort();
    let (p, r) = (percentile(&plain_rtt, 0.5), percentile(&relay_rtt, 0.5));
    println!(
        "64-byte round trip, median of {ROUND_TRIPS}: loopback TCP {p:?}, through the relay {r:?} ({:.1}×)",
        r.as_secs_f64() / p.as_secs_f64()
    );
    let _ = agent.kill();
    let _ = agent.wait();
}
