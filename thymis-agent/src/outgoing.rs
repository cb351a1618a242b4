//! Frames on their way to the controller, and the link to the admitted connection.
//!
//! A connection has two queues into its WebSocket writer: an unbounded one for small control
//! frames (answers, credits, keep-alives, reports), which is drained first and never blocks its
//! sender, and a bounded one for channel data, whose senders wait when the WebSocket is slow
//! (the per-channel credit already bounds what each channel may queue).

use std::sync::Arc;

use thymis_protocol::AgentMessage;
use tokio::sync::{mpsc, oneshot, watch};

/// Channel data frames that may wait in the data queue.
pub const DATA_QUEUE_FRAMES: usize = 64;

/// One WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A JSON text frame.
    Text(String),
    /// A binary channel frame.
    Binary(Vec<u8>),
}

/// A frame and, optionally, who wants to know when it was written to the socket.
#[derive(Debug)]
pub struct Outbound {
    /// The frame.
    pub frame: Frame,
    /// Completed once the frame was written and flushed.
    pub ack: Option<oneshot::Sender<()>>,
}

/// The sending side of a connection's queues (cheap to clone).
#[derive(Debug, Clone)]
pub struct Outgoing {
    control: mpsc::UnboundedSender<Outbound>,
    data: mpsc::Sender<Outbound>,
}

/// The receiving side, read by the connection's writer.
#[derive(Debug)]
pub struct Queues {
    control: mpsc::UnboundedReceiver<Outbound>,
    data: mpsc::Receiver<Outbound>,
}

impl Outgoing {
    /// New queues.
    pub fn new() -> (Outgoing, Queues) {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE_FRAMES);
        (
            Outgoing {
                control: control_tx,
                data: data_tx,
            },
            Queues {
                control: control_rx,
                data: data_rx,
            },
        )
    }

    /// Queues a control frame; `false` if the connection is gone.
    pub fn control(&self, frame: Frame) -> bool {
        self.control.send(Outbound { frame, ack: None }).is_ok()
    }

    /// Queues a message as a control frame; `false` if the connection is gone.
    pub fn message(&self, message: &AgentMessage) -> bool {
        self.control(Frame::Text(thymis_protocol::encode(message)))
    }

    /// Sends a frame and waits until it was written to the socket; `false` if the
    /// connection ended first.
    pub async fn frame_written(&self, frame: Frame) -> bool {
        let (ack, written) = oneshot::channel();
        if self
            .control
            .send(Outbound {
                frame,
                ack: Some(ack),
            })
            .is_err()
        {
            return false;
        }
        written.await.is_ok()
    }

    /// Queues a channel data frame, waiting while the data queue is full; `false` if the
    /// connection is gone.
    pub async fn data(&self, frame: Frame) -> bool {
        self.data.send(Outbound { frame, ack: None }).await.is_ok()
    }

    /// Whether the connection's writer is gone.
    pub fn is_closed(&self) -> bool {
        self.control.is_closed()
    }
}

impl Queues {
    /// The next frame to write: control frames first. `None` once every sender is gone.
    pub async fn next(&mut self) -> Option<Outbound> {
        tokio::select! {
            biased;
            Some(item) = self.control.recv() => Some(item),
            Some(item) = self.data.recv() => Some(item),
            else => None,
        }
    }

    /// A frame that is ready now, control frames first.
    pub fn try_next(&mut self) -> Option<Outbound> {
        self.control
            .try_recv()
            .ok()
            .or_else(|| self.data.try_recv().ok())
    }
}

/// The admitted connection, if any: background tasks (metrics, interfaces, logs) send through
/// it only while the controller has admitted the device.
#[derive(Debug, Clone)]
pub struct Link {
    current: Arc<watch::Sender<Option<Outgoing>>>,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            current: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl Link {
    /// Sets (admitted) or clears (disconnected) the connection.
    pub fn set(&self, outgoing: Option<Outgoing>) {
        self.current.send_replace(outgoing);
    }

    /// The admitted connection now.
    pub fn current(&self) -> Option<Outgoing> {
        self.current.borrow().clone().filter(|o| !o.is_closed())
    }

    /// Waits for an admitted connection.
    pub async fn admitted(&self) -> Outgoing {
        let mut rx = self.current.subscribe();
        loop {
            if let Some(out) = rx.borrow_and_update().clone().filter(|o| !o.is_closed()) {
                return out;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`, so this cannot happen; wait forever like a
                // device that never gets admitted.
                std::future::pending::<()>().await;
            }
        }
    }
}
