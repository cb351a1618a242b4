//! The TCP relay (spec §9 and the protocol crate's docs): channels from the controller to
//! allowed ports on the device, each run by its own task so that one slow device-side socket
//! never stalls another.
//!
//! Binary channels have credit flow control in both directions: the agent sends at most the
//! credit the controller granted, and grants credit back once its writes to the device socket
//! have drained, so each direction holds at most one window of bytes. JSON channels (upstream
//! controllers) carry base64 `tcp_data` without flow control, as upstream does.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::{BufMut, Bytes};
use thymis_protocol::frame::{data_header, BinaryFrame, HEADER_BYTES};
use thymis_protocol::{AgentMessage, InitiateConnection, MAX_DATA_FRAME_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use crate::outgoing::{Frame, Outgoing};

/// Bytes read per `tcp_data` frame on JSON channels (as upstream agents do).
pub const JSON_READ_BYTES: usize = 1024;

/// A port the controller may open, and where it really goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPort {
    /// The port the controller asks for.
    pub port: u16,
    /// The host the agent connects to.
    pub target_host: String,
    /// The port the agent connects to.
    pub target_port: u16,
}

impl AllowedPort {
    /// `port` on 127.0.0.1.
    pub fn same(port: u16) -> Self {
        AllowedPort {
            port,
            target_host: "127.0.0.1".into(),
            target_port: port,
        }
    }
}

impl FromStr for AllowedPort {
    type Err = String;

    /// `PORT` or `PORT=HOST:PORT` (an IPv6 host in brackets).
    fn from_str(spec: &str) -> Result<Self, String> {
        let bad = || format!("--allow-port {spec:?} is not PORT or PORT=HOST:PORT");
        let parse_port = |s: &str| s.parse::<u16>().ok().filter(|&p| p > 0);
        let (port, redirect) = match spec.split_once('=') {
            Some((port, redirect)) => (port, Some(redirect)),
            None => (spec, None),
        };
        let port = parse_port(port).ok_or_else(bad)?;
        let Some(redirect) = redirect else {
            return Ok(AllowedPort::same(port));
        };
        let (host, target_port) = redirect.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(AllowedPort {
            port,
            target_host: host.to_owned(),
            target_port: parse_port(target_port).ok_or_else(bad)?,
        })
    }
}

/// Relay limits.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Ports that may be opened.
    pub allowed: Vec<AllowedPort>,
    /// How long opening the device-side connection may take.
    pub connect_timeout: Duration,
    /// Open channels per connection.
    pub max_channels: usize,
    /// The agent's receive window per binary channel.
    pub window: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            allowed: thymis_protocol::DEFAULT_ALLOWED_PORTS
                .iter()
                .map(|&p| AllowedPort::same(p))
                .collect(),
            connect_timeout: Duration::from_secs(10),
            max_channels: 256,
            window: thymis_protocol::DEFAULT_WINDOW_BYTES,
        }
    }
}

/// What the connection hands to a channel's task.
#[derive(Debug)]
enum Inbound {
    Data(Bytes),
    Eof,
    Close,
}

/// Credit the controller granted for one binary channel.
#[derive(Debug, Default)]
struct Credit {
    available: AtomicU64,
    notify: Notify,
}

impl Credit {
    fn grant(&self, bytes: u32) {
        self.available
            .fetch_add(u64::from(bytes), Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// Waits until some credit is available and returns it.
    async fn wait(&self) -> u64 {
        loop {
            let available = self.available.load(Ordering::Relaxed);
            if available > 0 {
                return available;
            }
            self.notify.notified().await;
        }
    }

    fn consume(&self, bytes: usize) {
        self.available.fetch_sub(bytes as u64, Ordering::Relaxed);
    }
}

/// The connection's side of one channel.
#[derive(Debug)]
struct Handle {
    inbound: mpsc::UnboundedSender<Inbound>,
    /// Bytes from the controller not yet written to the device socket.
    queued: Arc<AtomicUsize>,
    credit: Arc<Credit>,
    /// The most that may be queued (the window; unlimited on JSON channels).
    limit: usize,
}

impl Handle {
    fn is_gone(&self) -> bool {
        self.inbound.is_closed()
    }
}

/// The channels of one controller connection. Dropping it closes them all.
#[derive(Debug)]
pub struct Relay {
    config: Arc<RelayConfig>,
    out: Outgoing,
    binary: HashMap<u32, Handle>,
    json: HashMap<String, Handle>,
}

impl Relay {
    /// A relay sending through `out`.
    pub fn new(config: Arc<RelayConfig>, out: Outgoing) -> Self {
        Relay {
            config,
            out,
            binary: HashMap::new(),
            json: HashMap::new(),
        }
    }

    /// Open channels (finished ones are forgotten first).
    pub fn open_channels(&mut self) -> usize {
        self.binary.retain(|_, h| !h.is_gone());
        self.json.retain(|_, h| !h.is_gone());
        self.binary.len() + self.json.len()
    }

    /// Bytes from the controller waiting to be written to device sockets, over all channels.
    pub fn buffered_bytes(&self) -> usize {
        self.binary
            .values()
            .chain(self.json.values())
            .map(|h| h.queued.load(Ordering::Relaxed))
            .sum()
    }

    /// Handles `initiate_connection`: checks the target and starts the channel's task, which
    /// answers `initiate_connection_ok` or `initiate_connection_error`. A binary channel is
    /// used when the connection speaks binary frames and the request has a channel number.
    pub fn open(&mut self, request: InitiateConnection, binary_frames: bool) {
        let refuse = |out: &Outgoing, message: String| {
            log::info!(
                "refused channel to {}:{}: {message}",
                request.target_ip,
                request.target_port
            );
            out.message(&AgentMessage::InitiateConnectionError {
                connection_id: request.connection_id.clone(),
                message,
            });
        };
        let channel = request.channel.filter(|_| binary_frames);
        if let Err(message) = self.check(&request, channel) {
            refuse(&self.out, message);
            return;
        }
        let Some(allowed) = self
            .config
            .allowed
            .iter()
            .find(|a| a.port == request.target_port)
            .cloned()
        else {
            refuse(
                &self.out,
                format!("port {} is not allowed", request.target_port),
            );
            return;
        };
        let (inbound, rx) = mpsc::unbounded_channel();
        let credit = Arc::new(Credit::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let task = ChannelTask {
            connection_id: request.connection_id.clone(),
            target: allowed,
            config: self.config.clone(),
            out: self.out.clone(),
            rx,
            queued: queued.clone(),
        };
        match channel {
            Some(number) => {
                credit.grant(
                    request
                        .window
                        .unwrap_or(thymis_protocol::DEFAULT_WINDOW_BYTES),
                );
                self.binary.insert(
                    number,
                    Handle {
                        inbound,
                        queued,
                        credit: credit.clone(),
                        limit: self.config.window as usize,
                    },
                );
                tokio::spawn(task.run_binary(number, credit));
            }
            None => {
                self.json.insert(
                    request.connection_id.clone(),
                    Handle {
                        inbound,
                        queued,
                        credit,
                        limit: usize::MAX,
                    },
                );
                tokio::spawn(task.run_json());
            }
        }
    }

    fn check(&mut self, request: &InitiateConnection, channel: Option<u32>) -> Result<(), String> {
        if request.protocol != "tcp" {
            return Err(format!("protocol {:?} is not supported", request.protocol));
        }
        let ip = request
            .target_ip
            .trim_start_matches('[')
            .trim_end_matches(']');
        if !(ip.eq_ignore_ascii_case("localhost") || ip == "127.0.0.1" || ip == "::1") {
            return Err(format!("target {} is not localhost", request.target_ip));
        }
        if self.open_channels() >= self.config.max_channels {
            return Err(format!(
                "too many open channels (at most {})",
                self.config.max_channels
            ));
        }
        let duplicate = match channel {
            Some(number) => self.binary.contains_key(&number),
            None => self.json.contains_key(&request.connection_id),
        };
        if duplicate {
            return Err("the channel is already open".into());
        }
        Ok(())
    }

    /// Handles a binary WebSocket message from the controller; data is passed on as a slice
    /// of the message, not copied.
    pub fn binary_frame(&mut self, message: &Bytes) {
        let frame = match BinaryFrame::decode(message) {
            Ok(frame) => frame,
            Err(e) => {
                log::warn!("skipping a malformed binary frame: {e}");
                return;
            }
        };
        let number = frame.channel();
        let Some(handle) = self.binary.get(&number) else {
            log::debug!("binary frame for unknown channel {number}");
            return;
        };
        match frame {
            BinaryFrame::Data { data, .. } => {
                let queued = handle.queued.load(Ordering::Relaxed);
                if queued + data.len() > handle.limit {
                    log::warn!("channel {number}: the controller sent beyond the window");
                    self.reset_binary(number, "flow control window exceeded");
                    return;
                }
                handle.queued.fetch_add(data.len(), Ordering::Relaxed);
                if handle
                    .inbound
                    .send(Inbound::Data(message.slice_ref(data)))
                    .is_err()
                {
                    self.binary.remove(&number);
                }
            }
            BinaryFrame::Credit { bytes, .. } => handle.credit.grant(bytes),
            BinaryFrame::Eof { .. } => {
                let _ = handle.inbound.send(Inbound::Eof);
            }
            BinaryFrame::Close { .. } => {
                let _ = handle.inbound.send(Inbound::Close);
                self.binary.remove(&number);
            }
        }
    }

    fn reset_binary(&mut self, number: u32, reason: &str) {
        if let Some(handle) = self.binary.remove(&number) {
            let _ = handle.inbound.send(Inbound::Close);
        }
        self.out.control(Frame::Binary(
            BinaryFrame::Close {
                channel: number,
                reason,
            }
            .encode(),
        ));
    }

    /// Handles `tcp_data` from the controller.
    pub fn json_data(&mut self, connection_id: &str, data_base64: &str) {
        let Some(handle) = self.json.get(connection_id) else {
            log::debug!("tcp_data for unknown channel {connection_id}");
            return;
        };
        let Ok(data) = base64::engine::general_purpose::STANDARD.decode(data_base64) else {
            log::warn!("channel {connection_id}: tcp_data is not base64");
            self.json_reset(connection_id, "tcp_data is not base64");
            return;
        };
        handle.queued.fetch_add(data.len(), Ordering::Relaxed);
        if handle.inbound.send(Inbound::Data(data.into())).is_err() {
            self.json.remove(connection_id);
        }
    }

    fn json_reset(&mut self, connection_id: &str, message: &str) {
        self.json_close(connection_id);
        self.out.message(&AgentMessage::ConnectionReset {
            connection_id: connection_id.to_owned(),
            message: message.to_owned(),
        });
    }

    /// Handles `connection_close`: the channel's socket is dropped.
    pub fn json_close(&mut self, connection_id: &str) {
        if let Some(handle) = self.json.remove(connection_id) {
            let _ = handle.inbound.send(Inbound::Close);
        }
    }
}

/// How one direction of a channel ended.
enum End {
    /// Cleanly (EOF passed on).
    Finished,
    /// The controller closed the channel or the connection ended: drop the socket silently.
    Dropped,
    /// A device-side error or protocol violation: tell the controller why.
    Failed(String),
}

/// A channel's task, before it knows whether it is binary or JSON.
struct ChannelTask {
    connection_id: String,
    target: AllowedPort,
    config: Arc<RelayConfig>,
    out: Outgoing,
    rx: mpsc::UnboundedReceiver<Inbound>,
    queued: Arc<AtomicUsize>,
}

impl ChannelTask {
    /// Connects to the target and answers the controller; `None` if it failed.
    async fn connect(&self, window: Option<u32>) -> Option<TcpStream> {
        let (host, port) = (self.target.target_host.as_str(), self.target.target_port);
        let result = tokio::time::timeout(
            self.config.connect_timeout,
            TcpStream::connect((host, port)),
        )
        .await;
        let error = match result {
            Ok(Ok(stream)) => {
                // Interactive traffic (SSH keystrokes) must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                self.out.message(&AgentMessage::InitiateConnectionOk {
                    connection_id: self.connection_id.clone(),
                    window,
                });
                return Some(stream);
            }
            Ok(Err(e)) => format!("connect to {host}:{port} failed: {e}"),
            Err(_) => format!(
                "connect to {host}:{port} timed out after {} s",
                self.config.connect_timeout.as_secs()
            ),
        };
        log::info!("channel {}: {error}", self.connection_id);
        self.out.message(&AgentMessage::InitiateConnectionError {
            connection_id: self.connection_id.clone(),
            message: error,
        });
        None
    }

    async fn run_binary(mut self, number: u32, credit: Arc<Credit>) {
        let Some(stream) = self.connect(Some(self.config.window)).await else {
            return;
        };
        let (read_half, write_half) = stream.into_split();
        let eof_in = AtomicBool::new(false);
        let reader_done = AtomicBool::new(false);
        let window = self.config.window as usize;
        let out = self.out.clone();
        let writer = write_binary(
            number,
            &mut self.rx,
            write_half,
            &self.queued,
            window,
            &out,
            &eof_in,
            &reader_done,
        );
        let reader = read_binary(number, read_half, &credit, &out);
        tokio::pin!(writer, reader);
        let end = loop {
            tokio::select! {
                end = &mut writer => break end,
                end = &mut reader, if !reader_done.load(Ordering::Relaxed) => match end {
                    End::Finished => {
                        reader_done.store(true, Ordering::Relaxed);
                        if eof_in.load(Ordering::Relaxed) {
                            break End::Finished;
                        }
                    }
                    other => break other,
                },
            }
        };
        let reason = match end {
            End::Dropped => return,
            End::Finished => "closed".to_owned(),
            End::Failed(reason) => reason,
        };
        log::debug!("channel {number} ends: {reason}");
        out.data(Frame::Binary(
            BinaryFrame::Close {
                channel: number,
                reason: &reason,
            }
            .encode(),
        ))
        .await;
    }

    async fn run_json(mut self) {
        let Some(stream) = self.connect(None).await else {
            return;
        };
        let (read_half, write_half) = stream.into_split();
        let out = self.out.clone();
        let id = self.connection_id.clone();
        let writer = write_json(&mut self.rx, write_half, &self.queued);
        let reader = read_json(&id, read_half, &out);
        tokio::pin!(writer, reader);
        let mut reading = true;
        let end = loop {
            tokio::select! {
                end = &mut writer => break end,
                end = &mut reader, if reading => match end {
                    // Upstream semantics: a device-side EOF only stops reading.
                    End::Finished => reading = false,
                    other => break other,
                },
            }
        };
        if let End::Failed(message) = end {
            log::debug!("channel {id} reset: {message}");
            out.data(Frame::Text(thymis_protocol::encode(
                &AgentMessage::ConnectionReset {
                    connection_id: id.clone(),
                    message,
                },
            )))
            .await;
        }
    }
}

/// Controller → device for a binary channel: writes data, grants credit as writes drain,
/// half-closes on EOF. Ends only on close, connection loss, error, or when both directions
/// have finished.
#[allow(clippy::too_many_arguments)]
async fn write_binary(
    number: u32,
    rx: &mut mpsc::UnboundedReceiver<Inbound>,
    mut socket: OwnedWriteHalf,
    queued: &AtomicUsize,
    window: usize,
    out: &Outgoing,
    eof_in: &AtomicBool,
    reader_done: &AtomicBool,
) -> End {
    let mut consumed = 0usize;
    loop {
        match rx.recv().await {
            None | Some(Inbound::Close) => return End::Dropped,
            Some(Inbound::Data(bytes)) => {
                if eof_in.load(Ordering::Relaxed) {
                    return End::Failed("data after EOF".into());
                }
                if let Err(e) = socket.write_all(&bytes).await {
                    return End::Failed(format!("write failed: {e}"));
                }
                queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                consumed += bytes.len();
                // Granting in half-window steps leaves the controller at least half a window
                // to send at any time, with few credit frames.
                if consumed >= window / 2 {
                    let bytes = u32::try_from(consumed).unwrap_or(u32::MAX);
                    out.control(Frame::Binary(
                        BinaryFrame::Credit {
                            channel: number,
                            bytes,
                        }
                        .encode(),
                    ));
                    consumed = 0;
                }
            }
            Some(Inbound::Eof) => {
                eof_in.store(true, Ordering::Relaxed);
                if let Err(e) = socket.shutdown().await {
                    return End::Failed(format!("shutdown failed: {e}"));
                }
                if reader_done.load(Ordering::Relaxed) {
                    return End::Finished;
                }
            }
        }
    }
}

/// Device → controller for a binary channel: reads at most the granted credit, in frames of
/// at most [`MAX_DATA_FRAME_BYTES`]; EOF becomes an Eof frame.
async fn read_binary(
    number: u32,
    mut socket: OwnedReadHalf,
    credit: &Credit,
    out: &Outgoing,
) -> End {
    loop {
        let available = credit.wait().await;
        let size = usize::try_from(available)
            .unwrap_or(usize::MAX)
            .min(MAX_DATA_FRAME_BYTES);
        // The bytes are read straight into the frame after its header: no copy, no zeroing.
        let mut frame = Vec::with_capacity(HEADER_BYTES + size);
        frame.extend_from_slice(&data_header(number));
        let n = match socket.read_buf(&mut (&mut frame).limit(size)).await {
            Ok(n) => n,
            Err(e) => return End::Failed(format!("read failed: {e}")),
        };
        let frame = if n == 0 {
            BinaryFrame::Eof { channel: number }.encode()
        } else {
            credit.consume(n);
            frame
        };
        if !out.data(Frame::Binary(frame)).await {
            return End::Dropped;
        }
        if n == 0 {
            return End::Finished;
        }
    }
}

/// Controller → device for a JSON channel.
async fn write_json(
    rx: &mut mpsc::UnboundedReceiver<Inbound>,
    mut socket: OwnedWriteHalf,
    queued: &AtomicUsize,
) -> End {
    loop {
        match rx.recv().await {
            None | Some(Inbound::Close) => return End::Dropped,
            Some(Inbound::Data(bytes)) => {
                if let Err(e) = socket.write_all(&bytes).await {
                    return End::Failed(e.to_string());
                }
                queued.fetch_sub(bytes.len(), Ordering::Relaxed);
            }
            // JSON channels have no EOF frame from the controller.
            Some(Inbound::Eof) => {}
        }
    }
}

/// Device → controller for a JSON channel: `tcp_data` of at most [`JSON_READ_BYTES`].
async fn read_json(connection_id: &str, mut socket: OwnedReadHalf, out: &Outgoing) -> End {
    let mut buf = [0u8; JSON_READ_BYTES];
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) => return End::Finished,
            Ok(n) => n,
            Err(e) => return End::Failed(e.to_string()),
        };
        let message = AgentMessage::TcpData {
            connection_id: connection_id.to_owned(),
            data_base64: base64::engine::general_purpose::STANDARD.encode(&buf[..n]),
        };
        if !out
            .data(Frame::Text(thymis_protocol::encode(&message)))
            .await
        {
            return End::Dropped;
        }
    }
}
