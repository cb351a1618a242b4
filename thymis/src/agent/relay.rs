//! Relay channels: TCP connections the controller opens to a device port through its agent's
//! WebSocket (agent-protocol.md §9), exposed as async byte streams ([`RelayStream`]).
//!
//! With our agent, every channel has credit-based flow control in both directions: the
//! controller may send at most what the agent granted, and grants more only as the local
//! reader consumes, so a slow reader holds at most one window and never stalls the other
//! channels of the same WebSocket. Upstream agents cannot be flow-controlled; their channels
//! are bounded by a receive buffer limit instead, past which the channel is reset.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use thymis_protocol::frame::BinaryFrame;
use thymis_protocol::{ControllerMessage, InitiateConnection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;
use uuid::Uuid;

/// Limits of the relay, per agent connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLimits {
    /// Device ports the controller may open.
    pub allowed_ports: Vec<u16>,
    /// Open channels per device at most.
    pub max_channels: usize,
    /// How long the agent has to open the device-side connection.
    pub open_timeout: Duration,
    /// Receive window granted to the agent per channel.
    pub window: u32,
    /// Bytes buffered per channel from an agent without flow control before it is reset.
    pub unflowed_buffer: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            allowed_ports: thymis_protocol::DEFAULT_ALLOWED_PORTS.to_vec(),
            max_channels: 64,
            open_timeout: Duration::from_secs(10),
            window: thymis_protocol::DEFAULT_WINDOW_BYTES,
            unflowed_buffer: 4 << 20,
        }
    }
}

/// Why a channel could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The port is not in the allow-list.
    #[error("port {0} is not allowed for relay channels")]
    PortNotAllowed(u16),
    /// Too many open channels on this device.
    #[error("the device already has {0} open channels")]
    TooManyChannels(usize),
    /// The agent did not answer in time.
    #[error("the device did not open the connection within {0:?}")]
    Timeout(Duration),
    /// The agent could not open it.
    #[error("the device could not open the connection: {0}")]
    Refused(String),
    /// The agent connection ended.
    #[error("the agent connection is closed")]
    Disconnected,
}

/// A frame for the agent's WebSocket writer.
#[derive(Debug)]
pub enum Outgoing {
    /// A JSON text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
    /// A WebSocket ping (liveness probe).
    Ping,
}

/// The two queues to the writer: control frames (messages, credits, EOF, close) are never
/// held back; data frames are bounded so a fast local writer waits for the socket.
#[derive(Debug, Clone)]
pub struct Outbox {
    control: mpsc::UnboundedSender<Outgoing>,
    data: mpsc::Sender<Outgoing>,
}

/// The writer's ends of an [`Outbox`].
#[derive(Debug)]
pub struct OutboxReceiver {
    /// Control frames, to be written first.
    pub control: mpsc::UnboundedReceiver<Outgoing>,
    /// Data frames.
    pub data: mpsc::Receiver<Outgoing>,
}

impl Outbox {
    /// A new outbox holding up to `data_frames` queued data frames.
    pub fn new(data_frames: usize) -> (Outbox, OutboxReceiver) {
        let (control, control_rx) = mpsc::unbounded_channel();
        let (data, data_rx) = mpsc::channel(data_frames);
        (
            Outbox { control, data },
            OutboxReceiver {
                control: control_rx,
                data: data_rx,
            },
        )
    }

    /// Queues a control frame; false when the connection is gone.
    pub fn control(&self, frame: Outgoing) -> bool {
        self.control.send(frame).is_ok()
    }

    /// Queues a message as a control frame.
    pub fn message(&self, message: &ControllerMessage) -> bool {
        self.control(Outgoing::Text(thymis_protocol::encode(message)))
    }
}

/// How channel frames are spoken with this agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Our agent: binary frames with credits.
    Binary,
    /// Upstream agents: base64 `tcp_data`, no flow control.
    Json,
}

#[derive(Debug)]
enum Opening {
    Waiting(oneshot::Sender<Result<(), RelayError>>),
    Open,
}

#[derive(Debug)]
struct ChannelState {
    opening: Opening,
    incoming: VecDeque<Bytes>,
    incoming_bytes: usize,
    /// The agent sent EOF.
    eof: bool,
    /// The channel is gone, with why.
    closed: Option<String>,
    read_waker: Option<Waker>,
    /// Bytes we may still send (binary framing).
    send_credit: u64,
    write_waker: Option<Waker>,
    /// Bytes read by the consumer not yet returned to the agent as credit.
    unacknowledged: u32,
    /// Bytes the agent may still send us before it exceeds its window.
    receive_allowance: u64,
}

#[derive(Debug)]
struct Channel {
    number: u32,
    connection_id: String,
    state: Mutex<ChannelState>,
}

impl Channel {
    fn lock(&self) -> MutexGuard<'_, ChannelState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the channel closed and wakes whoever waits on it.
    fn close(&self, reason: &str) {
        let mut state = self.lock();
        if state.closed.is_none() {
            state.closed = Some(reason.to_owned());
        }
        if let Opening::Waiting(_) = state.opening {
            if let Opening::Waiting(tx) = std::mem::replace(&mut state.opening, Opening::Open) {
                let _ = tx.send(Err(RelayError::Refused(reason.to_owned())));
            }
        }
        wake(&mut state.read_waker);
        wake(&mut state.write_waker);
    }
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(waker) = waker.take() {
        waker.wake();
    }
}

/// The channels of one agent connection.
#[derive(Debug)]
pub struct ChannelMux {
    framing: Framing,
    limits: RelayLimits,
    outbox: Outbox,
    next_number: AtomicU32,
    channels: Mutex<Channels>,
}

#[derive(Debug, Default)]
struct Channels {
    by_number: HashMap<u32, Arc<Channel>>,
    by_id: HashMap<String, u32>,
    /// Set when the connection ended: no new channels.
    shut: bool,
}

/// What the connection loop learned from a frame it handed to the mux.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameVerdict {
    /// Handled (or about a channel that no longer exists, which is harmless).
    Ok,
    /// The agent broke the protocol; the connection must be closed.
    Violation(String),
}

impl ChannelMux {
    /// The channels of a new connection; `binary` when the agent negotiated binary frames.
    pub fn new(binary: bool, limits: RelayLimits, outbox: Outbox) -> Arc<ChannelMux> {
        Arc::new(ChannelMux {
            framing: if binary {
                Framing::Binary
            } else {
                Framing::Json
            },
            limits,
            outbox,
            next_number: AtomicU32::new(1),
            channels: Mutex::new(Channels::default()),
        })
    }

    /// The connection's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Number of open channels.
    pub fn open_channels(&self) -> usize {
        self.table().by_number.len()
    }

    fn table(&self) -> MutexGuard<'_, Channels> {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens a channel to `port` on the device's loopback.
    pub async fn open(self: &Arc<Self>, port: u16) -> Result<RelayStream, RelayError> {
        if !self.limits.allowed_ports.contains(&port) {
            return Err(RelayError::PortNotAllowed(port));
        }
        let number = self.next_number.fetch_add(1, Ordering::Relaxed);
        let connection_id = Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        let binary = self.framing == Framing::Binary;
        let channel = Arc::new(Channel {
            number,
            connection_id: connection_id.clone(),
            state: Mutex::new(ChannelState {
                opening: Opening::Waiting(tx),
                incoming: VecDeque::new(),
                incoming_bytes: 0,
                eof: false,
                closed: None,
                read_waker: None,
                send_credit: if binary { 0 } else { u64::MAX },
                write_waker: None,
                unacknowledged: 0,
                receive_allowance: if binary {
                    u64::from(self.limits.window)
                } else {
                    self.limits.unflowed_buffer as u64
                },
            }),
        });
        {
            // Registered before the request is sent, so an early answer is not lost.
            let mut table = self.table();
            if table.shut {
                return Err(RelayError::Disconnected);
            }
            if table.by_number.len() >= self.limits.max_channels {
                return Err(RelayError::TooManyChannels(table.by_number.len()));
            }
            table.by_number.insert(number, channel.clone());
            table.by_id.insert(connection_id.clone(), number);
        }
        let request = ControllerMessage::InitiateConnection(InitiateConnection {
            connection_id,
            target_ip: "127.0.0.1".into(),
            target_port: port,
            protocol: "tcp".into(),
            channel: binary.then_some(number),
            window: binary.then_some(self.limits.window),
        });
        let stream = RelayStream {
            mux: self.clone(),
            channel: channel.clone(),
            data: PollSender::new(self.outbox.data.clone()),
            shut_down: false,
        };
        if !self.outbox.message(&request) {
            return Err(RelayError::Disconnected);
        }
        match tokio::time::timeout(self.limits.open_timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(stream),
            Ok(Ok(Err(err))) => Err(err),
            Ok(Err(_)) => Err(RelayError::Disconnected),
            Err(_) => Err(RelayError::Timeout(self.limits.open_timeout)),
        }
        // On error `stream` drops here, which removes the channel and tells the agent.
    }

    fn by_id(&self, connection_id: &str) -> Option<Arc<Channel>> {
        let table = self.table();
        let number = table.by_id.get(connection_id)?;
        table.by_number.get(number).cloned()
    }

    fn by_number(&self, number: u32) -> Option<Arc<Channel>> {
        self.table().by_number.get(&number).cloned()
    }

    fn forget(&self, channel: &Channel) {
        let mut table = self.table();
        table.by_number.remove(&channel.number);
        table.by_id.remove(&channel.connection_id);
    }

    /// The agent opened the device-side connection.
    pub fn opened(&self, connection_id: &str, window: Option<u32>) -> FrameVerdict {
        let Some(channel) = self.by_id(connection_id) else {
            return FrameVerdict::Ok;
        };
        let mut state = channel.lock();
        if self.framing == Framing::Binary {
            match window {
                Some(window) => state.send_credit = u64::from(window),
                None => return FrameVerdict::Violation("channel opened without a window".into()),
            }
        }
        if let Opening::Waiting(tx) = std::mem::replace(&mut state.opening, Opening::Open) {
            let _ = tx.send(Ok(()));
        }
        FrameVerdict::Ok
    }

    /// The agent could not open it, or reset it.
    pub fn failed(&self, connection_id: &str, message: &str) {
        if let Some(channel) = self.by_id(connection_id) {
            channel.close(message);
            self.forget(&channel);
        }
    }

    /// Base64 bytes from an upstream agent.
    pub fn json_data(&self, connection_id: &str, data_base64: &str) -> FrameVerdict {
        let Ok(data) = base64::engine::general_purpose::STANDARD.decode(data_base64) else {
            return FrameVerdict::Violation("tcp_data is not base64".into());
        };
        if let Some(channel) = self.by_id(connection_id) {
            self.deliver(&channel, Bytes::from(data));
        }
        FrameVerdict::Ok
    }

    /// A binary frame from our agent.
    pub fn binary_frame(&self, bytes: &Bytes) -> FrameVerdict {
        if self.framing != Framing::Binary {
            return FrameVerdict::Violation("binary frame without negotiation".into());
        }
        let frame = match BinaryFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(err) => return FrameVerdict::Violation(err.to_string()),
        };
        let Some(channel) = self.by_number(frame.channel()) else {
            return FrameVerdict::Ok;
        };
        match frame {
            BinaryFrame::Data { data, .. } => {
                // Zero-copy: a slice of the WebSocket message.
                let offset = data.as_ptr() as usize - bytes.as_ptr() as usize;
                self.deliver(&channel, bytes.slice(offset..offset + data.len()));
            }
            BinaryFrame::Credit { bytes: more, .. } => {
                let mut state = channel.lock();
                state.send_credit = state.send_credit.saturating_add(u64::from(more));
                wake(&mut state.write_waker);
            }
            BinaryFrame::Eof { .. } => {
                let mut state = channel.lock();
                state.eof = true;
                wake(&mut state.read_waker);
            }
            BinaryFrame::Close { reason, .. } => {
                channel.close(reason);
                self.forget(&channel);
            }
        }
        FrameVerdict::Ok
    }

    fn deliver(&self, channel: &Arc<Channel>, data: Bytes) {
        let mut state = channel.lock();
        if state.closed.is_some() {
            return;
        }
        let len = data.len() as u64;
        if len > state.receive_allowance {
            // Beyond the window (ours) or the buffer limit (upstream): this channel is reset,
            // the others go on.
            drop(state);
            self.reset(channel, "receive window exceeded");
            return;
        }
        state.receive_allowance -= len;
        state.incoming_bytes += data.len();
        state.incoming.push_back(data);
        wake(&mut state.read_waker);
    }

    /// Closes a channel on both sides.
    fn reset(&self, channel: &Arc<Channel>, reason: &str) {
        channel.close(reason);
        self.forget(channel);
        self.send_close(channel, reason);
    }

    fn send_close(&self, channel: &Channel, reason: &str) {
        match self.framing {
            Framing::Binary => {
                let frame = BinaryFrame::Close {
                    channel: channel.number,
                    reason,
                };
                self.outbox
                    .control(Outgoing::Binary(Bytes::from(frame.encode())));
            }
            Framing::Json => {
                self.outbox.message(&ControllerMessage::ConnectionClose {
                    connection_id: channel.connection_id.clone(),
                    message: reason.to_owned(),
                });
            }
        }
    }

    /// The connection ended: every channel is closed, no new ones open.
    pub fn shut_down(&self) {
        let channels: Vec<Arc<Channel>> = {
            let mut table = self.table();
            table.shut = true;
            table.by_id.clear();
            table
                .by_number
                .drain()
                .map(|(_, channel)| channel)
                .collect()
        };
        for channel in channels {
            channel.close("the agent connection closed");
        }
    }
}

/// An open relay channel: bytes to and from a port on the device.
#[derive(Debug)]
pub struct RelayStream {
    mux: Arc<ChannelMux>,
    channel: Arc<Channel>,
    data: PollSender<Outgoing>,
    shut_down: bool,
}

impl RelayStream {
    fn broken(reason: &str) -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, reason.to_owned())
    }

    /// Returns consumed bytes to the agent as credit once half a window has been read.
    fn acknowledge(&self, state: &mut ChannelState, consumed: usize) {
        match self.mux.framing {
            Framing::Binary => {
                state.unacknowledged += consumed as u32;
                if state.unacknowledged >= self.mux.limits.window / 2 {
                    let more = std::mem::take(&mut state.unacknowledged);
                    state.receive_allowance += u64::from(more);
                    let frame = BinaryFrame::Credit {
                        channel: self.channel.number,
                        bytes: more,
                    };
                    self.mux
                        .outbox
                        .control(Outgoing::Binary(Bytes::from(frame.encode())));
                }
            }
            Framing::Json => state.receive_allowance += consumed as u64,
        }
    }
}

impl AsyncRead for RelayStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut state = this.channel.lock();
        let mut consumed = 0;
        while buf.remaining() > 0 {
            let Some(front) = state.incoming.front_mut() else {
                break;
            };
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front.split_to(n));
            consumed += n;
            if front.is_empty() {
                state.incoming.pop_front();
            }
        }
        if consumed > 0 {
            state.incoming_bytes -= consumed;
            this.acknowledge(&mut state, consumed);
            return Poll::Ready(Ok(()));
        }
        if state.eof || state.closed.is_some() {
            // End of stream (a reset reads as EOF after the buffered bytes).
            return Poll::Ready(Ok(()));
        }
        state.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for RelayStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let limit = match this.mux.framing {
            Framing::Binary => thymis_protocol::MAX_DATA_FRAME_BYTES,
            Framing::Json => thymis_protocol::MAX_JSON_DATA_BYTES,
        };
        {
            let mut state = this.channel.lock();
            if let Some(reason) = &state.closed {
                return Poll::Ready(Err(Self::broken(reason)));
            }
            if this.shut_down {
                return Poll::Ready(Err(Self::broken("write after shutdown")));
            }
            if state.send_credit == 0 {
                state.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        match this.data.poll_reserve(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(Err(Self::broken("agent disconnected"))),
            Poll::Ready(Ok(())) => {}
        }
        let mut state = this.channel.lock();
        let n = buf
            .len()
            .min(limit)
            .min(usize::try_from(state.send_credit).unwrap_or(limit));
        if this.mux.framing == Framing::Binary {
            state.send_credit -= n as u64;
        }
        drop(state);
        let frame = match this.mux.framing {
            Framing::Binary => Outgoing::Binary(Bytes::from(
                BinaryFrame::Data {
                    channel: this.channel.number,
                    data: &buf[..n],
                }
                .encode(),
            )),
            Framing::Json => Outgoing::Text(thymis_protocol::encode(&ControllerMessage::TcpData {
                connection_id: this.channel.connection_id.clone(),
                data_base64: base64::engine::general_purpose::STANDARD.encode(&buf[..n]),
            })),
        };
        match this.data.send_item(frame) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(Self::broken("agent disconnected"))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Frames are queued whole; the writer flushes the socket.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut_down {
            this.shut_down = true;
            // Upstream agents have no half close; the channel closes when dropped.
            if this.mux.framing == Framing::Binary && this.channel.lock().closed.is_none() {
                let frame = BinaryFrame::Eof {
                    channel: this.channel.number,
                };
                this.mux
                    .outbox
                    .control(Outgoing::Binary(Bytes::from(frame.encode())));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        let was_open = self.channel.lock().closed.is_none();
        self.channel.close("Connection closed by relay");
        self.mux.forget(&self.channel);
        if was_open {
            self.mux
                .send_close(&self.channel, "Connection closed by relay");
        }
    }
}
