//! The relay as the controller's own features use it (deploy, terminal, VNC): the controller
//! side of the `thymis` library in this process opens a channel with
//! `AgentTransport::open_channel` and gets a byte stream through the real release agent to a
//! TCP service of the device (a process of its own). Measured against plain loopback TCP to
//! the same services in the same run, alternating, three rounds: bulk throughput both ways
//! and 64-byte round trips.
//!
//! The agent socket is served by tokio-tungstenite with the controller's settings (16 KiB
//! buffers, 1 MiB message limit), as axum does in `thymis-controller`.
//!
//! `cargo build --release -p thymis-agent && cargo run --release -p thymis-benches --bin relay_bench`

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use thymis::agent::{AgentHub, AgentService, AgentTransport, RelayLimits, WsMessage};
use thymis::devices::DeviceRegistry;
use thymis::events::{Event, EventBus};
use thymis::module::ModuleRegistry;
use thymis::project::Project;
use thymis::repository::RenderOptions;
use thymis::secrets::{SecretBox, Vault};
use thymis::ssh::ControllerKey;
use thymis::store::SqliteStore;
use thymis_benches::controller::percentile;
use thymis_benches::device::{
    allow_ports, device_root, from_source, mib_per_s, round_trips, run_with_device_services,
    start_agent, to_sink, DeviceServices, BULK_BYTES,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const ROUNDS: usize = 3;
const ROUND_TRIPS: usize = 5000;
const SINK_PORT: u16 = 7000;
const ECHO_PORT: u16 = 7001;
const SOURCE_PORT: u16 = 7002;

/// The controller's agent endpoint, in this process.
struct ControllerSide {
    service: AgentService,
    events: EventBus,
    url: String,
    public_key: String,
    token: String,
    _dir: tempfile::TempDir,
}

async fn controller_side() -> ControllerSide {
    let dir = tempfile::tempdir().expect("data dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("thymis.sqlite")).expect("store"));
    let key = ControllerKey::load_or_create(dir.path()).expect("controller key");
    let vault = Arc::new(Vault::new(
        store.clone(),
        SecretBox::new(&key).expect("secret box"),
    ));
    let events = EventBus::new();
    let project = Arc::new(
        Project::open(
            &dir.path().join("repository"),
            ModuleRegistry::with_builtins(),
            RenderOptions::default(),
            events.clone(),
        )
        .expect("project"),
    );
    let registry = Arc::new(DeviceRegistry::new(store, events.clone(), project, vault));
    let token = registry
        .create_agent_token("relay bench", None)
        .expect("agent token")
        .token;
    let public_key = key.public_key_openssh();
    let service = AgentService {
        hub: AgentHub::new(),
        registry,
        controller_key: Arc::new(key),
        events: events.clone(),
        limits: RelayLimits {
            allowed_ports: vec![SINK_PORT, ECHO_PORT, SOURCE_PORT],
            ..RelayLimits::default()
        },
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let serving = service.clone();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let service = serving.clone();
            tokio::spawn(async move { serve_agent(service, stream, peer).await });
        }
    });
    ControllerSide {
        service,
        events,
        url,
        public_key,
        token,
        _dir: dir,
    }
}

async fn serve_agent(service: AgentService, stream: TcpStream, peer: std::net::SocketAddr) {
    let _ = stream.set_nodelay(true);
    let limit = thymis::agent::protocol::MAX_MESSAGE_BYTES;
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let Ok(socket) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (sink, source) = socket.split();
    let reader = source
        .take_while(|message| std::future::ready(message.is_ok()))
        .filter_map(|message| {
            std::future::ready(match message {
                Ok(Message::Text(text)) => Some(WsMessage::Text(text.to_string())),
                Ok(Message::Binary(bytes)) => Some(WsMessage::Binary(bytes)),
                Ok(Message::Pong(bytes)) => Some(WsMessage::Pong(bytes)),
                Ok(Message::Close(_)) => Some(WsMessage::Close(String::new())),
                _ => None,
            })
        });
    let writer = sink.with(|message: WsMessage| {
        std::future::ready(Ok::<_, tokio_tungstenite::tungstenite::Error>(
            match message {
                WsMessage::Text(text) => Message::text(text),
                WsMessage::Binary(bytes) => Message::Binary(bytes),
                WsMessage::Ping(bytes) => Message::Ping(bytes),
                WsMessage::Pong(bytes) => Message::Pong(bytes),
                WsMessage::Close(_) => Message::Close(None),
            },
        ))
    });
    service
        .serve(Box::pin(reader), Box::pin(writer), Some(peer.ip()))
        .await;
}

/// Throughput of the relay as a share of plain loopback's, for one round.
fn share(relay: Duration, plain: Duration) -> f64 {
    100.0 * plain.as_secs_f64() / relay.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    run_with_device_services(bench);
}

async fn bench() {
    let services = DeviceServices::start();
    let controller = controller_side().await;
    let root = device_root(&controller.public_key, &controller.token);
    let mut connected = controller.events.subscribe();
    let mut agent = start_agent(
        &controller.url,
        root.path(),
        &allow_ports(&[
            (SINK_PORT, services.sink),
            (ECHO_PORT, services.echo),
            (SOURCE_PORT, services.source),
        ]),
    );
    let device = loop {
        match tokio::time::timeout(Duration::from_secs(30), connected.recv()).await {
            Ok(Ok(Event::DeviceConnected(device))) => break device,
            Ok(Ok(_)) => continue,
            other => panic!("the agent did not come online: {other:?}"),
        }
    };
    let hub = &controller.service.hub;
    let direct = |port: u16| async move {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
    };

    // Plain and relayed runs alternate, so that drift of this VM hits both alike.
    let (mut down, mut up, mut rtt_p50, mut rtt_p99) = (vec![], vec![], vec![], vec![]);
    for round in 1..=ROUNDS {
        let plain = to_sink(&mut direct(services.sink).await).await;
        let mut channel = hub.open_channel(device, SINK_PORT).await.expect("channel");
        let relayed = to_sink(&mut channel).await;
        drop(channel);
        println!(
            "round {round}: 1 GiB controller → device: relay {:.0} MiB/s, loopback {:.0} MiB/s ({:.0}%)",
            mib_per_s(BULK_BYTES, relayed),
            mib_per_s(BULK_BYTES, plain),
            share(relayed, plain)
        );
        down.push(share(relayed, plain));

        let plain = from_source(&mut direct(services.source).await).await;
        let mut channel = hub
            .open_channel(device, SOURCE_PORT)
            .await
            .expect("channel");
        let relayed = from_source(&mut channel).await;
        drop(channel);
        println!(
            "round {round}: 1 GiB device → controller: relay {:.0} MiB/s, loopback {:.0} MiB/s ({:.0}%)",
            mib_per_s(BULK_BYTES, relayed),
            mib_per_s(BULK_BYTES, plain),
            share(relayed, plain)
        );
        up.push(share(relayed, plain));

        let plain = round_trips(&mut direct(services.echo).await, ROUND_TRIPS).await;
        let mut channel = hub.open_channel(device, ECHO_PORT).await.expect("channel");
        let relayed = round_trips(&mut channel, ROUND_TRIPS).await;
        drop(channel);
        for (label, p, ratios) in [("p50", 0.5, &mut rtt_p50), ("p99", 0.99, &mut rtt_p99)] {
            let (plain, relayed) = (percentile(&plain, p), percentile(&relayed, p));
            let ratio = relayed.as_secs_f64() / plain.as_secs_f64();
            println!(
                "round {round}: 64-byte round trip {label}: relay {relayed:?}, loopback {plain:?} ({ratio:.1}×)"
            );
            ratios.push(ratio);
        }
    }
    println!(
        "median of {ROUNDS} rounds: controller → device {:.0}% of loopback, device → controller {:.0}%; round trip p50 {:.1}×, p99 {:.1}× loopback",
        median(down),
        median(up),
        median(rtt_p50),
        median(rtt_p99)
    );
    let _ = agent.kill();
    let _ = agent.wait();
}
