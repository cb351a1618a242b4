//! One connection to the controller (spec §3–6 and the protocol crate's connection flow):
//! challenge, start message, admission, keep-alive, the controller's messages and the relay.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use thymis_protocol::{
    AgentMessage, ControllerMessage, NetworkInterface, SecretsMessage, Start,
    AGENT_KEEP_ALIVE_SECS, MAX_MESSAGE_BYTES, SILENCE_TIMEOUT_SECS,
};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::Connector;

use crate::device::Device;
use crate::identity::HostKey;
use crate::notify::Notifier;
use crate::outgoing::{Frame, Link, Outgoing, Queues};
use crate::relay::{Relay, RelayConfig};
use crate::{hostname, identity, secrets, sysinfo};

/// How long the agent waits for the controller's challenge before assuming an upstream
/// controller (which waits for the start message first).
pub const CHALLENGE_WAIT: Duration = Duration::from_secs(10);
/// How long opening the WebSocket (TCP, TLS, upgrade) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `update_public_key` waits for sshd to create the new host key.
pub const REKEY_WAIT: Duration = Duration::from_secs(60);

/// What every connection needs; built once at start.
#[derive(Clone)]
pub struct Shared {
    /// The device.
    pub device: Device,
    /// The relay WebSocket URL.
    pub url: String,
    /// TLS settings for `wss://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The agent token.
    pub token: String,
    /// Relay limits.
    pub relay: Arc<RelayConfig>,
    /// The admitted connection, for background tasks.
    pub link: Link,
    /// systemd notifications.
    pub notifier: Notifier,
    /// The interfaces last reported to the controller (start message or update).
    pub last_interfaces: Arc<Mutex<Option<Vec<NetworkInterface>>>>,
    /// Serialises changes to device files (secrets, hostname, host keys).
    pub device_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out of logs.
        f.debug_struct("Shared")
            .field("device", &self.device)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs one connection until it ends; returns why (sent as `last_error` next time).
pub async fn run(shared: &Shared, last_error: Option<String>) -> String {
    match connect_and_serve(shared, last_error).await {
        Ok(reason) | Err(reason) => reason,
    }
}

async fn connect_and_serve(shared: &Shared, last_error: Option<String>) -> Result<String, String> {
    let device = shared.device.clone();
    let host_key = tokio::task::spawn_blocking(move || HostKey::load(&device))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let connector = match &shared.tls {
        Some(tls) if shared.url.starts_with("wss://") => Some(Connector::Rustls(tls.clone())),
        _ => None,
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        shared.url.as_str(),
        Some(ws_config),
        true,
        connector,
    );
    let (mut ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("connecting to {} timed out", shared.url))?
        .map_err(|e| format!("cannot connect to {}: {e}", shared.url))?;
    log::debug!("connected to {}", shared.url);

    // Our controller challenges at once; an upstream one waits for the start message.
    let mut early = None;
    let mut proof = None;
    match tokio::time::timeout(CHALLENGE_WAIT, next_data(&mut ws)).await {
        Ok(Some(Ok(Message::Text(text)))) => match thymis_protocol::decode(text.as_str()) {
            Ok(ControllerMessage::Challenge { nonce }) => {
                proof = Some(host_key.sign_challenge(&nonce).map_err(|e| e.to_string())?);
            }
            _ => early = Some(text.as_str().to_owned()),
        },
        Ok(Some(Ok(_))) => log::warn!("ignoring a binary frame before the start message"),
        Ok(Some(Err(e))) => return Err(format!("connection failed: {e}")),
        Ok(None) => return Err("the controller closed the connection before the start".into()),
        Err(_) => log::info!("no challenge from the controller: speaking the upstream protocol"),
    }
    let binary = proof.is_some();
    let start = start_message(shared, &host_key, proof, last_error).await;
    ws.send(Message::text(thymis_protocol::encode(&start)))
        .await
        .map_err(|e| format!("cannot send the start message: {e}"))?;
    if let AgentMessage::Start(start) = &start {
        if let Ok(mut last) = shared.last_interfaces.lock() {
            *last = Some(start.network_interfaces.clone());
        }
    }
    log::info!("connected to {}; waiting for admission", shared.url);

    let (sink, stream) = ws.split();
    let (out, queues) = Outgoing::new();
    let writer = tokio::spawn(write_frames(sink, queues));
    let mut connection = Connection {
        shared,
        relay: Relay::new(shared.relay.clone(), out.clone()),
        out,
        binary,
        events: mpsc::unbounded_channel(),
        rekey: None,
    };
    let reason = connection.serve(stream, early, writer).await;
    shared.link.set(None);
    Ok(reason)
}

/// The next data or close message (pings are answered by tungstenite itself).
async fn next_data(ws: &mut Ws) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    loop {
        match ws.next().await? {
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            other => return Some(other),
        }
    }
}

async fn start_message(
    shared: &Shared,
    host_key: &HostKey,
    proof: Option<String>,
    last_error: Option<String>,
) -> AgentMessage {
    let device = shared.device.clone();
    let (hardware_ids, metadata) = tokio::task::spawn_blocking(move || {
        let metadata = device.metadata().ok().flatten().unwrap_or_default();
        (device.hardware_ids(), metadata)
    })
    .await
    .unwrap_or_default();
    let network_interfaces = sysinfo::network_interfaces().unwrap_or_else(|e| {
        log::warn!("cannot list network interfaces: {e}");
        Vec::new()
    });
    AgentMessage::Start(Start {
        token: shared.token.clone(),
        hardware_ids,
        public_key: host_key.public_key_line(),
        deployed_config_id: metadata.configuration_id,
        ip_addresses: Vec::new(),
        network_interfaces,
        ram_bytes: sysinfo::ram_total_bytes().ok(),
        last_error,
        agent_version: Some(concat!("thymis-agent/", env!("CARGO_PKG_VERSION")).to_owned()),
        binary_frames: proof.is_some(),
        proof,
    })
}

/// Writes queued frames to the WebSocket, batching what is ready before each flush.
async fn write_frames<S>(mut sink: S, mut queues: Queues) -> String
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    const BATCH: usize = 32;
    let mut acks = Vec::new();
    while let Some(first) = queues.next().await {
        let mut item = Some(first);
        let mut fed = 0;
        while let Some(outbound) = item.take() {
            let message = match outbound.frame {
                Frame::Text(text) => Message::text(text),
                Frame::Binary(bytes) => Message::binary(bytes),
            };
            if let Err(e) = sink.feed(message).await {
                return format!("sending failed: {e}");
            }
            acks.extend(outbound.ack);
            fed += 1;
            if fed < BATCH {
                item = queues.try_next();
            }
        }
        if let Err(e) = sink.flush().await {
            return format!("sending failed: {e}");
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    "the connection was closed".into()
}

/// Something a spawned handler reports back to its connection.
enum Event {
    /// End this connection and connect again (after re-keying).
    Reconnect(String),
}

struct Connection<'a> {
    shared: &'a Shared,
    relay: Relay,
    out: Outgoing,
    binary: bool,
    events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    /// A re-key in progress.
    rekey: Option<tokio::task::JoinHandle<()>>,
}

impl Connection<'_> {
    async fn serve<St>(
        &mut self,
        mut stream: St,
        early: Option<String>,
        mut writer: tokio::task::JoinHandle<String>,
    ) -> String
    where
        St: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
    {
        if let Some(text) = early {
            self.handle_text(&text);
        }
        let silence_limit = Duration::from_secs(SILENCE_TIMEOUT_SECS);
        let silence = sleep(silence_limit);
        tokio::pin!(silence);
        let keep_alive_every = Duration::from_secs(AGENT_KEEP_ALIVE_SECS);
        let mut keep_alive =
            tokio::time::interval_at(Instant::now() + keep_alive_every, keep_alive_every);
        let reason = loop {
            tokio::select! {
                message = stream.next() => {
                    silence.as_mut().reset(Instant::now() + silence_limit);
                    match message {
                        Some(Ok(Message::Text(text))) => self.handle_text(text.as_str()),
                        Some(Ok(Message::Binary(bytes))) => self.handle_binary(&bytes),
                        Some(Ok(Message::Close(frame))) => {
                            break match frame {
                                Some(frame) => format!("the controller closed the connection ({} {})", frame.code, frame.reason),
                                None => "the controller closed the connection".into(),
                            };
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break format!("connection failed: {e}"),
                        None => break "the connection was closed".into(),
                    }
                }
                _ = keep_alive.tick() => {
                    self.out.message(&AgentMessage::KeepAlive);
                }
                () = &mut silence => {
                    break format!("no frame from the controller for {SILENCE_TIMEOUT_SECS} s");
                }
                Some(Event::Reconnect(reason)) = self.events.1.recv() => break reason,
                result = &mut writer => {
                    break result.unwrap_or_else(|e| format!("the writer failed: {e}"));
                }
            }
        };
        writer.abort();
        // The controller drops the connection right after asking for new keys: reconnect only
        // once they exist, or the old key would be presented again.
        if let Some(rekey) = self.rekey.take() {
            let _ = rekey.await;
        }
        reason
    }

    fn handle_binary(&mut self, bytes: &Bytes) {
        if !self.binary {
            log::warn!("skipping a binary frame on a connection without binary frames");
            return;
        }
        self.relay.binary_frame(bytes);
    }

    fn handle_text(&mut self, text: &str) {
        let message = match thymis_protocol::decode::<ControllerMessage>(text) {
            Ok(message) => message,
            Err(e) => {
                log::warn!("skipping a frame: {e}");
                return;
            }
        };
        match message {
            ControllerMessage::InitiateConnection(request) => self.relay.open(request, self.binary),
            ControllerMessage::TcpData {
                connection_id,
                data_base64,
            } => self.relay.json_data(&connection_id, &data_base64),
            ControllerMessage::ConnectionClose { connection_id, .. } => {
                self.relay.json_close(&connection_id)
            }
            ControllerMessage::KeepAlive => {}
            ControllerMessage::SuccessfullySshConnected => {
                log::info!("admitted by the controller");
                self.shared.link.set(Some(self.out.clone()));
                self.shared
                    .notifier
                    .notify_or_log("READY=1\nSTATUS=Connected to controller");
            }
            ControllerMessage::SendSecrets(message) => {
                tokio::spawn(receive_secrets(self.shared.clone(), message));
            }
            ControllerMessage::UpdateHostname { hostname } => {
                tokio::spawn(update_hostname(self.shared.clone(), hostname));
            }
            ControllerMessage::UpdatePublicKey => {
                self.rekey = Some(tokio::spawn(update_public_key(
                    self.shared.clone(),
                    self.events.0.clone(),
                )));
            }
            ControllerMessage::SwitchToNewConfig { task_id, .. } => {
                log::warn!(
                    "ignoring switch_to_new_config for task {task_id}: this agent version does not switch configurations yet"
                );
            }
            ControllerMessage::Challenge { .. } => log::debug!("ignoring a late challenge"),
            ControllerMessage::Unknown => log::debug!("skipping a message of an unknown kind"),
        }
    }
}

/// Runs blocking device work on the blocking pool, one change at a time.
async fn device_work<T: Send + 'static>(
    shared: &Shared,
    work: impl FnOnce(&Device) -> T + Send + 'static,
) -> Option<T> {
    let _guard = shared.device_lock.lock().await;
    let device = shared.device.clone();
    tokio::task::spawn_blocking(move || work(&device))
        .await
        .ok()
}

async fn receive_secrets(shared: Shared, message: SecretsMessage) {
    let outcome = device_work(&shared, move |device| {
        let key = HostKey::load(device).map_err(|e| e.to_string())?;
        let decryptor = secrets::Decryptor::host_key(key.pem())?;
        let report = secrets::place_all(device, &message, &decryptor);
        let saved = secrets::persist_message(device, &message);
        Ok::<_, String>((report, saved))
    })
    .await;
    match outcome {
        Some(Ok((report, saved))) => {
            report.log("send_secrets");
            match saved {
                Ok(Some(path)) => log::debug!("saved the secrets message to {}", path.display()),
                Ok(None) => log::warn!("no data dir: the secrets will not be placed again at boot"),
                Err(e) => log::error!("cannot save the secrets message: {e}"),
            }
        }
        Some(Err(e)) => log::error!("cannot place the controller's secrets: {e}"),
        None => log::error!("placing secrets failed"),
    }
}

async fn update_hostname(shared: Shared, name: String) {
    let shown = name.clone();
    match device_work(&shared, move |device| hostname::apply(device, &name)).await {
        Some(Ok(true)) => log::info!("hostname set to {shown}"),
        Some(Ok(false)) => log::debug!("hostname is already {shown}"),
        Some(Err(e)) => log::error!("cannot set the hostname {shown:?}: {e}"),
        None => log::error!("setting the hostname failed"),
    }
}

async fn update_public_key(shared: Shared, events: mpsc::UnboundedSender<Event>) {
    log::info!("the controller asked for a new host key");
    match device_work(&shared, |device| identity::rekey(device, REKEY_WAIT)).await {
        Some(Ok(())) => {
            log::info!("new host key in place; reconnecting with it");
            let _ = events.send(Event::Reconnect(
                "re-keyed on the controller's request".into(),
            ));
        }
        Some(Err(e)) => log::error!("re-keying failed: {e}"),
        None => log::error!("re-keying failed"),
    }
}
