//! One agent WebSocket from the first frame to the close: challenge, admission (§5), the
//! receive loop (relay frames, keep-alives, metrics, interfaces, logs) and clean-up.
//! The HTTP layer hands over the socket as a stream and a sink of [`WsMessage`], so this
//! module does not depend on a web framework.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use thymis_protocol::{AgentMessage, ControllerMessage, Start};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::admission::{self, Admitted, Refusal};
use super::hub::{AgentHub, AgentLink};
use super::relay::{ChannelMux, FrameVerdict, Outbox, OutboxReceiver, Outgoing, RelayLimits};
use crate::devices::DeviceRegistry;
use crate::events::{Event, EventBus};
use crate::ssh::ControllerKey;

/// A WebSocket message, independent of the web framework.
#[derive(Debug, Clone, PartialEq)]
pub enum WsMessage {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
    /// A ping.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close frame with a reason.
    Close(String),
}

/// Data frames queued per connection before local writers wait.
const DATA_QUEUE_FRAMES: usize = 64;

/// How long a new connection has to send its start message.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything an agent connection needs from the controller.
#[derive(Clone)]
pub struct AgentService {
    /// The live connections.
    pub hub: AgentHub,
    /// Device records.
    pub registry: Arc<DeviceRegistry>,
    /// The controller key (SSH proof of upstream agents).
    pub controller_key: Arc<ControllerKey>,
    /// The event bus.
    pub events: EventBus,
    /// Relay limits per connection.
    pub limits: RelayLimits,
}

impl AgentService {
    /// Serves one agent WebSocket until it closes.
    pub async fn serve<R, W>(&self, mut reader: R, writer: W, remote_addr: Option<IpAddr>)
    where
        R: Stream<Item = WsMessage> + Unpin + Send,
        W: Sink<WsMessage> + Unpin + Send + 'static,
    {
        let (outbox, outbox_rx) = Outbox::new(DATA_QUEUE_FRAMES);
        let stop = CancellationToken::new();
        let liveness = Arc::new(Notify::new());
        let writer_task = tokio::spawn(write_frames(writer, outbox_rx, stop.clone()));

        let nonce = admission::new_nonce();
        outbox.message(&ControllerMessage::Challenge {
            nonce: base64::engine::general_purpose::STANDARD.encode(nonce),
        });
        let start = match tokio::time::timeout(START_TIMEOUT, reader.next()).await {
            Ok(Some(WsMessage::Text(text))) => match thymis_protocol::decode(&text) {
                Ok(AgentMessage::Start(start)) => Some(start),
                _ => None,
            },
            _ => None,
        };
        let Some(start) = start else {
            tracing::info!(?remote_addr, "agent connection closed: no start message");
            close(&stop, writer_task, "expected a start message").await;
            return;
        };
        let mux = ChannelMux::new(start.binary_frames, self.limits.clone(), outbox.clone());
        let link_closer = CancellationToken::new();
        let mut connection = Connection {
            service: self.clone(),
            mux: mux.clone(),
            admitted: None,
            hostname: None,
            last_heard: Instant::now(),
            liveness: liveness.clone(),
        };

        // Admission runs beside the receive loop: the SSH proof of an upstream agent needs
        // relay frames to flow.
        let (admission_tx, mut admission_rx) = oneshot::channel();
        {
            let service = self.clone();
            let mux = mux.clone();
            let start = start.clone();
            tokio::spawn(async move {
                let result = service.admit(&start, &nonce, &mux, remote_addr).await;
                let _ = admission_tx.send(result);
            });
        }
        let mut admission_pending = true;
        let keep_alive = Duration::from_secs(thymis_protocol::CONTROLLER_KEEP_ALIVE_SECS);
        let silence = Duration::from_secs(thymis_protocol::SILENCE_TIMEOUT_SECS);
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
        let reason = loop {
            tokio::select! {
                frame = reader.next() => match frame {
                    None => break "the agent closed the connection".to_owned(),
                    Some(WsMessage::Close(_)) => break "the agent closed the connection".to_owned(),
                    Some(frame) => {
                        connection.last_heard = Instant::now();
                        if let Err(violation) = connection.handle(frame, &start) {
                            tracing::warn!(?remote_addr, %violation, "agent broke the protocol");
                            break violation;
                        }
                    }
                },
                result = &mut admission_rx, if admission_pending => {
                    admission_pending = false;
                    match result {
                        Ok(Ok(admitted)) => {
                            let hostname = admitted.hostname.clone();
                            let link = Arc::new(AgentLink {
                                device_id: admitted.device_id,
                                public_key: start.public_key.clone(),
                                agent_token_id: admitted.agent_token_id,
                                mux: mux.clone(),
                                closer: link_closer.clone(),
                                liveness: liveness.clone(),
                            });
                            self.hub.insert(link.clone());
                            self.events.publish(Event::DeviceConnected(admitted.device_id));
                            admitted.send_welcome(&outbox);
                            connection.hostname = hostname;
                            connection.admitted = Some((link, admitted));
                        }
                        Ok(Err(refusal)) => {
                            if let Refusal::Rekey(_) = refusal {
                                outbox.message(&ControllerMessage::UpdatePublicKey);
                            }
                            tracing::info!(?remote_addr, reason = %refusal, "agent refused");
                            break refusal.to_string();
                        }
                        Err(_) => break "admission ended unexpectedly".to_owned(),
                    }
                },
                _ = ticker.tick() => {
                    if connection.last_heard.elapsed() > silence {
                        break "no keep-alive from the agent".to_owned();
                    }
                    outbox.message(&ControllerMessage::KeepAlive);
                },
                _ = link_closer.cancelled() => break "replaced by a newer connection".to_owned(),
            }
        };
        mux.shut_down();
        if let Some((link, admitted)) = connection.admitted.take() {
            if self.hub.remove(&link) {
                self.events
                    .publish(Event::DeviceDisconnected(link.device_id));
            }
            let registry = self.registry.clone();
            let (device_id, connection_id) = (admitted.device_id, admitted.connection_id);
            let _ = tokio::task::spawn_blocking(move || {
                registry.disconnected(device_id, connection_id)
            })
            .await;
            tracing::info!(%device_id, %reason, "agent disconnected");
        }
        close(&stop, writer_task, &reason).await;
    }
}

/// Asks the writer to send a close frame and waits for it to finish.
async fn close(stop: &CancellationToken, writer: tokio::task::JoinHandle<()>, reason: &str) {
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    tracing::debug!(%reason, "agent socket closed");
}

/// The receive side of an open connection.
struct Connection {
    service: AgentService,
    mux: Arc<ChannelMux>,
    admitted: Option<(Arc<AgentLink>, Admitted)>,
    hostname: Option<String>,
    last_heard: Instant,
    /// Woken by every pong, for liveness probes of this connection.
    liveness: Arc<Notify>,
}

impl Connection {
    /// Handles one frame; an error is a protocol violation that ends the connection.
    fn handle(&mut self, frame: WsMessage, start: &Start) -> Result<(), String> {
        match frame {
            WsMessage::Binary(bytes) => verdict(self.mux.binary_frame(&bytes)),
            WsMessage::Text(text) => match thymis_protocol::decode::<AgentMessage>(&text) {
                Ok(message) => self.message(message, start),
                Err(err) => Err(err.to_string()),
            },
            WsMessage::Pong(_) => {
                self.liveness.notify_waiters();
                Ok(())
            }
            WsMessage::Ping(_) | WsMessage::Close(_) => Ok(()),
        }
    }

    fn message(&mut self, message: AgentMessage, start: &Start) -> Result<(), String> {
        match message {
            AgentMessage::InitiateConnectionOk {
                connection_id,
                window,
            } => verdict(self.mux.opened(&connection_id, window)),
            AgentMessage::InitiateConnectionError {
                connection_id,
                message,
            }
            | AgentMessage::ConnectionReset {
                connection_id,
                message,
            } => {
                self.mux.failed(&connection_id, &message);
                Ok(())
            }
            AgentMessage::TcpData {
                connection_id,
                data_base64,
            } => verdict(self.mux.json_data(&connection_id, &data_base64)),
            AgentMessage::Start(_) => Err("a second start message".into()),
            AgentMessage::Unknown => Ok(()),
            // Device reports count only once the device is admitted.
            other => {
                let Some((link, _)) = &self.admitted else {
                    return Ok(());
                };
                self.report(link.device_id, other, start);
                Ok(())
            }
        }
    }

    /// Records what an admitted device reports, off the receive loop.
    fn report(&self, device_id: Uuid, message: AgentMessage, start: &Start) {
        let registry = self.service.registry.clone();
        match message {
            AgentMessage::KeepAlive => registry.keep_alive(device_id),
            AgentMessage::Metrics(metrics) => {
                spawn_recording(move || registry.record_metrics(device_id, &metrics).map(drop))
            }
            AgentMessage::NetworkInterfaces { network_interfaces } => spawn_recording(move || {
                registry
                    .record_network_interfaces(device_id, &network_interfaces)
                    .map(drop)
            }),
            AgentMessage::DeviceLogs { entries } => {
                let public_key = start.public_key.clone();
                let hostname = self.hostname.clone();
                spawn_recording(move || {
                    registry
                        .record_logs(Some(device_id), &public_key, hostname.as_deref(), &entries)
                        .map(drop)
                })
            }
            AgentMessage::SwitchToNewConfigResult(_) => {
                // Deploys (issue 7) wait for these; nothing asks for a switch yet.
                tracing::debug!(%device_id, "switch result without a deploy");
            }
            _ => {}
        }
    }
}

fn verdict(verdict: FrameVerdict) -> Result<(), String> {
    match verdict {
        FrameVerdict::Ok => Ok(()),
        FrameVerdict::Violation(why) => Err(why),
    }
}

fn spawn_recording<E: std::fmt::Display + Send + 'static>(
    work: impl FnOnce() -> Result<(), E> + Send + 'static,
) {
    tokio::task::spawn_blocking(move || {
        if let Err(err) = work() {
            tracing::warn!(%err, "could not record a device report");
        }
    });
}

/// Writes queued frames, control frames first, flushing when the queues run dry.
async fn write_frames<W>(mut writer: W, mut queues: OutboxReceiver, stop: CancellationToken)
where
    W: Sink<WsMessage> + Unpin + Send,
{
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some(frame) = queues.control.recv() => frame,
            Some(frame) = queues.data.recv() => frame,
            else => break,
        };
        if writer.feed(to_ws(next)).await.is_err() {
            return;
        }
        // Batch whatever is already queued into one flush.
        loop {
            let more = match queues.control.try_recv() {
                Ok(frame) => frame,
                Err(_) => match queues.data.try_recv() {
                    Ok(frame) => frame,
                    Err(_) => break,
                },
            };
            if writer.feed(to_ws(more)).await.is_err() {
                return;
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
    // Whatever control frames were queued before the stop (e.g. update_public_key) go out.
    while let Ok(frame) = queues.control.try_recv() {
        if writer.feed(to_ws(frame)).await.is_err() {
            return;
        }
    }
    let _ = writer.send(WsMessage::Close(String::new())).await;
}

fn to_ws(frame: Outgoing) -> WsMessage {
    match frame {
        Outgoing::Text(text) => WsMessage::Text(text),
        Outgoing::Binary(bytes) => WsMessage::Binary(bytes),
        Outgoing::Ping => WsMessage::Ping(Bytes::new()),
    }
}
