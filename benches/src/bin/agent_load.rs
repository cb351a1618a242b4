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

fn one_line(key: &ssh_key::PrivateKey) -> String {
    let line = key.public_key().to_openssh().expect("openssh encoding");
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One simulated agent: admitted, then keeping alive until the process ends.
async fn agent(
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
        hardware_ids: Default::default(),
        public_key: one_line(&key),
        deployed_config_id: None,
        ip_addresses: Vec::new(),
        network_interfaces: Vec::new(),
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
    for key in keys {
        tokio::spawn(agent(
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
    let mut list_times = Vec::new();
    let mut online = 0;
    for _ in 0..20 {
        let asked = Instant::now();
        let devices: serde_json::Value = client
            .get(format!("{}/api/all_deployment_infos", controller.url))
            .send()
            .await
            .expect("device list")
            .json()
            .await
            .expect("device list json");
        list_times.push(asked.elapsed());
        online = devices
            .as_array()
            .map_or(0, |d| d.iter().filter(|d| d["connected"] == true).count());
    }
    list_times.sort();
    println!(
        "steady {:?}: controller RSS {:.1} MiB (idle before agents {:.1} MiB), CPU {:.1}% of a core; {online} online; device list p50 {:?}, max {:?}",
        steady,
        rss_mib(pid),
        idle_rss,
        cpu * 100.0,
        percentile(&list_times, 0.5),
        list_times.last().copied().unwrap_or_default(),
    );
}
