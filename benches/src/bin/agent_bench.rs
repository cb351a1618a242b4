//! The real release `thymis-agent` against the release controller: stripped binary size, time
//! from agent start to online, idle RSS, and the relay (access client → controller → agent →
//! device TCP) against plain loopback TCP measured in the same run: bulk throughput and
//! small-message round trips.
//!
//! `cargo build --release -p thymis-http -p thymis-agent && cargo run --release -p thymis-benches --bin agent_bench`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use thymis_benches::controller::{percentile, rss_mib, start, Controller};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const BULK_BYTES: usize = 1 << 30;
const ROUND_TRIPS: usize = 2000;

fn agent_binary() -> PathBuf {
    std::env::var_os("THYMIS_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/thymis-agent")
        })
}

/// Lays out a device root with boot files and a host key.
fn device_root(controller: &Controller, token: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("device root");
    let boot = root.path().join("boot");
    std::fs::create_dir_all(&boot).expect("boot dir");
    std::fs::write(boot.join("thymis-token.txt"), token).expect("token file");
    std::fs::write(
        boot.join("thymis-metadata.json"),
        r#"{"configuration_id":null}"#,
    )
    .expect("metadata");
    std::fs::copy(
        controller.dir.path().join("data/id_thymis.pub"),
        boot.join("thymis-controller-ssh-pubkey.txt"),
    )
    .expect("controller key");
    std::fs::create_dir_all(root.path().join("etc/ssh")).expect("ssh dir");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(root.path().join("etc/ssh/ssh_host_ed25519_key"))
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    root
}

fn start_agent(controller: &Controller, root: &Path, args: &[String]) -> Child {
    Command::new(agent_binary())
        .arg("--root")
        .arg(root)
        .args(args)
        .env("CONTROLLER_HOST", &controller.url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("build the agent first: cargo build --release -p thymis-agent")
}

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

/// A server that reads and discards, reporting each connection's byte count.
async fn sink_server() -> (u16, tokio::sync::mpsc::UnboundedReceiver<(usize, Instant)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0;
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            total += n;
                            if total >= BULK_BYTES {
                                let _ = tx.send((total, Instant::now()));
                            }
                        }
                    }
                }
            });
        }
    });
    (port, rx)
}

async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

fn mib_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let binary = agent_binary();
    let stripped = std::env::temp_dir().join("thymis-agent-stripped");
    std::fs::copy(&binary, &stripped).expect("agent binary");
    let _ = Command::new("strip").arg(&stripped).status();
    println!(
        "agent binary: {:.2} MiB, stripped {:.2} MiB",
        std::fs::metadata(&binary).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64,
        std::fs::metadata(&stripped).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64,
    );

    let controller = start(&["--relay-allowed-ports".into(), "22,7000,7001".into()]);
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
    let root = device_root(&controller, &token);
    let (sink_port, mut sink_done) = sink_server().await;
    let echo_port = echo_server().await;
    let args = vec![
        "--allow-port".to_owned(),
        format!("7000=127.0.0.1:{sink_port}"),
        "--allow-port".to_owned(),
        format!("7001=127.0.0.1:{echo_port}"),
    ];

    // Start → online, ten times.
    let mut online_times = Vec::new();
    let mut agent = None;
    for round in 0..10 {
        let began = Instant::now();
        let child = start_agent(&controller, root.path(), &args);
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

    // Bulk: plain loopback first, then through the relay.
    let block = vec![0xa5u8; 64 * 1024];
    let began = Instant::now();
    let mut direct = TcpStream::connect(("127.0.0.1", sink_port))
        .await
        .expect("connect");
    for _ in 0..BULK_BYTES / block.len() {
        direct.write_all(&block).await.expect("write");
    }
    let (_, done) = sink_done.recv().await.expect("sink");
    let plain = done - began;
    drop(direct);
    let mut relay = access_channel(&client, &controller, &device, 7000).await;
    let began = Instant::now();
    for _ in 0..BULK_BYTES / block.len() {
        relay
            .feed(Message::Binary(block.clone().into()))
            .await
            .expect("send");
    }
    relay.flush().await.expect("flush");
    let (_, done) = sink_done.recv().await.expect("sink");
    let relayed = done - began;
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
    let mut direct = TcpStream::connect(("127.0.0.1", echo_port))
        .await
        .expect("connect");
    direct.set_nodelay(true).expect("nodelay");
    let mut plain_rtt = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..ROUND_TRIPS {
        let began = Instant::now();
        direct.write_all(&message).await.expect("write");
        direct.read_exact(&mut buf).await.expect("read");
        plain_rtt.push(began.elapsed());
    }
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
    plain_rtt.sort();
    relay_rtt.sort();
    let (p, r) = (percentile(&plain_rtt, 0.5), percentile(&relay_rtt, 0.5));
    println!(
        "64-byte round trip, median of {ROUND_TRIPS}: loopback TCP {p:?}, through the relay {r:?} ({:.1}×)",
        r.as_secs_f64() / p.as_secs_f64()
    );
    let _ = agent.kill();
    let _ = agent.wait();
}
