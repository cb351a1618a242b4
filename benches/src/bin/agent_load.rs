//! Load generator for the agent endpoint: N simulated agents speaking the real protocol
//! (challenge, signed start, keep-alives every 10 s) against the release controller.
//! Reports the admission rate and latency, the controller's RSS and CPU at steady state, and
//! the device list latency with N devices.
//!
//! `cargo build --release -p thymis-http && cargo run --release -p thymis-benches --bin agent_load -- 10000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use thymis::agent::protocol::{self, AgentMessage, ControllerMessage, Start};
use thymis_benches::controller::{cpu_time, percentile, rss_mib, start};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Handshakes in flight at once (a fleet booting together, but not all in one instant).
const CONNECTING_AT_ONCE: usize = 256;

/// Raises the open-file limit to its maximum: each agent is one socket on both ends.
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// What a Raspberry Pi reports: a serial number and a board UUID, unique per agent.
fn hardware_ids(index: usize) -> std::collections::BTreeMap<String, String> {
    [
        ("pi-serial-number", format!("10000000{index:08x}")),
        (
            "dmi-product-uuid",
            format!("4c4c4544-0000-1000-8000-{index:012x}"),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

/// Loopback and one Ethernet interface with an IPv4 and an IPv6 address.
fn network_interfaces(index: usize) -> Vec<protocol::NetworkInterface> {
    vec![
        protocol::NetworkInterface {
            interface: "lo".into(),
            ipv4_addresses: vec!["127.0.0.1".into()],
            ipv6_addresses: vec!["::1".into()],
            mac_address: None,
        },
        protocol::NetworkInterface {
            interface: "eth0".into(),
            ipv4_addresses: vec![format!(
                "10.{}.{}.{}",
                index >> 16 & 255,
                index >> 8 & 255,
                index & 255
            )],
            ipv6_addresses: vec![format!(
                "fe80::dea6:32ff:fe{:02x}:{:04x}",
                index >> 16 & 255,
                index & 0xffff
            )],
            mac_address: Some(format!(
                "dc:a6:32:{:02x}:{:02x}:{:02x}",
                index >> 16 & 255,
                index >> 8 & 255,
                index & 255
            )),
        },
    ]
}

fn one_line(key: &ssh_key::PrivateKey) -> String {
    let line = key.public_key().to_openssh().expect("openssh encoding");
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One simulated agent: admitted, then keeping alive until the process ends.
async fn agent(
    index: usize,
    url: String,
    token: String,
    key: ssh_key::PrivateKey,
    admitted: mpsc::UnboundedSender<Duration>,
    gate: Arc<Semaphore>,
) {
    let permit = gate.acquire_owned().await.expect("semaphore");
    let began = Instant::now();
    let Ok((socket, _)) = tokio_tungstenite::connect_async_with_config(&url, None, true).await
    else {
        eprintln!("connect failed");
        return;
    };
    let (mut sink, mut source) = socket.split();
    let nonce = match source.next().await {
        Some(Ok(Message::Text(text))) => match protocol::decode::<ControllerMessage>(&text) {
            Ok(ControllerMessage::Challenge { nonce }) => nonce,
            _ => return,
        },
        _ => return,
    };
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(nonce)
        .unwrap_or_default();
    let proof = key
        .sign(protocol::PROOF_NAMESPACE, ssh_key::HashAlg::Sha512, &nonce)
        .and_then(|sig| sig.to_pem(ssh_key::LineEnding::LF))
        .expect("signature");
    let start = AgentMessage::Start(Start {
        token,
        hardware_ids: hardware_ids(index),
        public_key: one_line(&key),
        deployed_config_id: None,
        ip_addresses: Vec::new(),
        network_interfaces: network_interfaces(index),
        ram_bytes: Some(1 << 30),
        last_error: None,
        agent_version: Some("agent_load".into()),
        proof: Some(proof),
        binary_frames: true,
    });
    if sink
        .send(Message::Text(protocol::encode(&start).into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        match source.next().await {
            Some(Ok(Message::Text(text))) if text.contains("successfully_ssh_connected") => break,
            Some(Ok(_)) => continue,
            _ => {
                eprintln!("refused before admission");
                return;
            }
        }
    }
    let _ = admitted.send(began.elapsed());
    drop(permit);
    // Keep-alives every 10 s from a random phase; frames from the controller are read and
    // dropped (tungstenite answers pings while reading).
    let phase = Duration::from_millis(u64::from(nonce.first().copied().unwrap_or(0)) * 39);
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + phase,
        Duration::from_secs(protocol::AGENT_KEEP_ALIVE_SECS),
    );
    let keep_alive = protocol::encode(&AgentMessage::KeepAlive);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if sink.send(Message::Text(keep_alive.clone().into())).await.is_err() {
                    eprintln!("keep-alive failed");
                    return;
                }
            }
            frame = source.next() => if !matches!(frame, Some(Ok(_))) {
                // The controller ended the connection (it stops when the run ends).
                return;
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let agents: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let steady = Duration::from_secs(
        std::env::args()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(30),
    );
    raise_file_limit();
    let controller = start(&[]);
    let pid = controller.child.id();
    let client = controller.login().await;
    let token: serde_json::Value = client
        .post(format!("{}/api/agent_tokens", controller.url))
        .json(&serde_json::json!({"name": "load"}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let token = token["token"].as_str().expect("token value").to_owned();
    let idle_rss = rss_mib(pid);

    let mut rng = ssh_key::rand_core::OsRng;
    let keys: Vec<ssh_key::PrivateKey> = (0..agents)
        .map(|_| ssh_key::PrivateKey::random(&mut rng, ssh_key::Algorithm::Ed25519).expect("key"))
        .collect();
    let url = format!("{}/agent/relay", controller.url.replacen("http", "ws", 1));
    let (admitted_tx, mut admitted_rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let began = Instant::now();
    let cpu_before = cpu_time(pid);
    for (index, key) in keys.into_iter().enumerate() {
        tokio::spawn(agent(
            index,
            url.clone(),
            token.clone(),
            key,
            admitted_tx.clone(),
            gate.clone(),
        ));
    }
    let mut latencies = Vec::with_capacity(agents);
    while latencies.len() < agents {
        match tokio::time::timeout(Duration::from_secs(120), admitted_rx.recv()).await {
            Ok(Some(latency)) => latencies.push(latency),
            _ => break,
        }
    }
    let admission = began.elapsed();
    let admission_cpu = cpu_time(pid) - cpu_before;
    latencies.sort();
    println!(
        "{agents} agents: {} admitted in {:.2} s ({:.0}/s); handshake p50 {:?}, p99 {:?}; controller CPU {:.2} s",
        latencies.len(),
        admission.as_secs_f64(),
        latencies.len() as f64 / admission.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        admission_cpu.as_secs_f64(),
    );

    // Steady state: only keep-alives (and the controller's own) flow.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (cpu_start, wall_start) = (cpu_time(pid), Instant::now());
    tokio::time::sleep(steady).await;
    let cpu = (cpu_time(pid) - cpu_start).as_secs_f64() / wall_start.elapsed().as_secs_f64();
    // The list as a client receives it (every byte of the body), then parsed apart.
    // The controller renders the whole body before it answers, so the time to the headers is
    // its own share. The first list encodes every device; later ones only what changed.
    let mut list_times = Vec::new();
    let mut header_times = Vec::new();
    let mut parse_times = Vec::new();
    let mut body_bytes = 0;
    let mut online = 0;
    for _ in 0..20 {
        let asked = Instant::now();
        let response = client
            .get(format!("{}/api/all_deployment_infos", controller.url))
            .send()
            .await
            .expect("device list");
        header_times.push(asked.elapsed());
        let body = response.bytes().await.expect("device list body");
        list_times.push(asked.elapsed());
        body_bytes = body.len();
        let parsing = Instant::now();
        let devices: serde_json::Value = serde_json::from_slice(&body).expect("device list json");
        parse_times.push(parsing.elapsed());
        online = devices
            .as_array()
            .map_or(0, |d| d.iter().filter(|d| d["connected"] == true).count());
    }
    let first_list = list_times.first().copied().unwrap_or_default();
    parse_times.sort();
    header_times.sort();
    list_times.sort();
    println!(
        "steady {:?}: controller RSS {:.1} MiB (idle before agents {:.1} MiB), CPU {:.1}% of a core; {online} online; device list ({:.1} MiB) p50 {:?} (headers after {:?}), first {:?}; client JSON parse p50 {:?}",
        steady,
        rss_mib(pid),
        idle_rss,
        cpu * 100.0,
        body_bytes as f64 / (1 << 20) as f64,
        percentile(&list_times, 0.5),
        percentile(&header_times, 0.5),
        first_list,
        percentile(&parse_times, 0.5),
    );
}
