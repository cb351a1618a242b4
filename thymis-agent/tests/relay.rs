//! Relay channels driven through the agent's channel code against real TCP servers on
//! loopback. The test plays the controller's part of the channel protocol (it calls the
//! relay with the frames a controller sends and reads what the agent queues for the
//! WebSocket), obeying the credit rules unless a test breaks them on purpose.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use thymis_agent::outgoing::{Frame, Outgoing, Queues};
use thymis_agent::relay::{AllowedPort, Relay, RelayConfig, JSON_READ_BYTES};
use thymis_protocol::frame::BinaryFrame;
use thymis_protocol::{AgentMessage, InitiateConnection, MAX_DATA_FRAME_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Bytes;

/// A frame as the controller's binary WebSocket message.
fn frame(frame: BinaryFrame<'_>) -> Bytes {
    Bytes::from(frame.encode())
}

/// What the agent queued for the WebSocket (test-only, so size does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
enum Got {
    Msg(AgentMessage),
    Data(u32, Vec<u8>),
    Credit(u32, u32),
    Eof(u32),
    Close(u32, String),
}

async fn next(queues: &mut Queues) -> Got {
    let item = tokio::time::timeout(Duration::from_secs(10), queues.next())
        .await
        .expect("the agent sent nothing for 10 s")
        .expect("queues closed");
    decode(item.frame)
}

fn decode(frame: Frame) -> Got {
    match frame {
        Frame::Text(text) => Got::Msg(thymis_protocol::decode(&text).unwrap()),
        Frame::Binary(bytes) => match BinaryFrame::decode(&bytes).unwrap() {
            BinaryFrame::Data { channel, data } => {
                assert!(data.len() <= MAX_DATA_FRAME_BYTES);
                Got::Data(channel, data.to_vec())
            }
            BinaryFrame::Credit { channel, bytes } => Got::Credit(channel, bytes),
            BinaryFrame::Eof { channel } => Got::Eof(channel),
            BinaryFrame::Close { channel, reason } => Got::Close(channel, reason.to_owned()),
        },
    }
}

/// Nothing more from the agent within `wait`.
async fn quiet(queues: &mut Queues, wait: Duration) -> Option<Got> {
    tokio::time::timeout(wait, queues.next())
        .await
        .ok()
        .flatten()
        .map(|i| decode(i.frame))
}

fn relay_to(port: u16, config: RelayConfig) -> (Relay, Queues) {
    let (out, queues) = Outgoing::new();
    let config = RelayConfig {
        allowed: vec![AllowedPort {
            port: 22,
            target_host: "127.0.0.1".into(),
            target_port: port,
        }],
        ..config
    };
    (Relay::new(Arc::new(config), out), queues)
}

fn open(id: &str, channel: Option<u32>, window: Option<u32>) -> InitiateConnection {
    InitiateConnection {
        connection_id: id.into(),
        target_ip: "localhost".into(),
        target_port: 22,
        protocol: "tcp".into(),
        channel,
        window,
    }
}

async fn expect_ok(queues: &mut Queues, id: &str) -> Option<u32> {
    match next(queues).await {
        Got::Msg(AgentMessage::InitiateConnectionOk {
            connection_id,
            window,
        }) => {
            assert_eq!(connection_id, id);
            window
        }
        other => panic!("expected initiate_connection_ok, got {other:?}"),
    }
}

async fn expect_error(queues: &mut Queues, id: &str) -> String {
    match next(queues).await {
        Got::Msg(AgentMessage::InitiateConnectionError {
            connection_id,
            message,
        }) => {
            assert_eq!(connection_id, id);
            message
        }
        other => panic!("expected initiate_connection_error, got {other:?}"),
    }
}

/// An echo server: each connection copies its input back and half-closes at EOF.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The controller's side of one binary channel, obeying credit both ways.
struct Peer {
    channel: u32,
    /// Bytes the agent still lets us send.
    send_credit: u64,
    /// Bytes we have allowed the agent to send in total.
    granted: u64,
    received: Vec<u8>,
    consumed_ungranted: u64,
}

impl Peer {
    fn new(channel: u32, agent_window: u32, our_window: u32) -> Self {
        Peer {
            channel,
            send_credit: u64::from(agent_window),
            granted: u64::from(our_window),
            received: Vec::new(),
            consumed_ungranted: 0,
        }
    }

    /// Sends what the credit allows from `data[*sent..]`.
    fn send(&mut self, relay: &mut Relay, data: &[u8], sent: &mut usize, window: usize) {
        while *sent < data.len() && self.send_credit > 0 {
            let n = (data.len() - *sent)
                .min(MAX_DATA_FRAME_BYTES)
                .min(self.send_credit as usize);
            relay.binary_frame(&frame(BinaryFrame::Data {
                channel: self.channel,
                data: &data[*sent..*sent + n],
            }));
            *sent += n;
            self.send_credit -= n as u64;
            assert!(
                relay.buffered_bytes() <= window,
                "agent buffers {} > window",
                relay.buffered_bytes()
            );
        }
    }

    /// Takes data from the agent, checking it never exceeds what we granted, and grants
    /// more once `grant_step` bytes were consumed.
    fn receive(&mut self, relay: &mut Relay, data: Vec<u8>, grant_step: u64) {
        self.received.extend_from_slice(&data);
        assert!(
            self.received.len() as u64 <= self.granted,
            "agent sent {} bytes with only {} granted",
            self.received.len(),
            self.granted
        );
        self.consumed_ungranted += data.len() as u64;
        if self.consumed_ungranted >= grant_step {
            relay.binary_frame(&frame(BinaryFrame::Credit {
                channel: self.channel,
                bytes: self.consumed_ungranted as u32,
            }));
            self.granted += self.consumed_ungranted;
            self.consumed_ungranted = 0;
        }
    }
}

#[tokio::test]
async fn binary_channel_echoes_in_order_within_credit_both_ways() {
    let port = echo_server().await;
    let (mut relay, mut queues) = relay_to(port, RelayConfig::default());
    let our_window = 64 * 1024;
    relay.open(open("c1", Some(1), Some(our_window)), true);
    let agent_window = expect_ok(&mut queues, "c1")
        .await
        .expect("binary channels announce a window");
    assert_eq!(agent_window, thymis_protocol::DEFAULT_WINDOW_BYTES);

    let data = pattern(3 * 1024 * 1024 + 17);
    let mut peer = Peer::new(1, agent_window, our_window);
    let mut sent = 0;
    let mut eof_sent = false;
    let mut eof_received = false;
    let mut reads_until_pause = 16u32;
    loop {
        peer.send(&mut relay, &data, &mut sent, agent_window as usize);
        if sent == data.len() && !eof_sent {
            relay.binary_frame(&frame(BinaryFrame::Eof { channel: 1 }));
            eof_sent = true;
        }
        match next(&mut queues).await {
            Got::Credit(1, n) => peer.send_credit += u64::from(n),
            Got::Data(1, bytes) => {
                assert!(!eof_received, "data after EOF");
                // A slow consumer now and then.
                reads_until_pause -= 1;
                if reads_until_pause == 0 {
                    reads_until_pause = 16;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                peer.receive(&mut relay, bytes, 16 * 1024);
            }
            Got::Eof(1) => eof_received = true,
            Got::Close(1, reason) => {
                assert_eq!(reason, "closed");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(eof_received);
    assert_eq!(peer.received.len(), data.len());
    assert!(peer.received == data, "echo differs");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(relay.open_channels(), 0);
}

/// A server whose connections read nothing until `go` fires, then read everything and
/// report it.
async fn stalled_server(
    rcvbuf: u32,
) -> (
    u16,
    mpsc::UnboundedSender<()>,
    mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(rcvbuf).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let listener = socket.listen(16).unwrap();
    let (go_tx, mut go_rx) = mpsc::unbounded_channel::<()>();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            if go_rx.recv().await.is_none() {
                return;
            }
            let done = done_tx.clone();
            tokio::spawn(async move {
                let mut all = Vec::new();
                let _ = stream.read_to_end(&mut all).await;
                let _ = done.send(all);
            });
        }
    });
    (port, go_tx, done_rx)
}

#[tokio::test]
async fn a_stalled_device_socket_stops_credit_bounds_memory_and_does_not_stall_others() {
    let (stalled_port, go, mut done) = stalled_server(16 * 1024).await;
    let echo_port = echo_server().await;
    let (out, mut queues) = Outgoing::new();
    let config = RelayConfig {
        allowed: vec![
            AllowedPort {
                port: 22,
                target_host: "127.0.0.1".into(),
                target_port: stalled_port,
            },
            AllowedPort {
                port: 5900,
                target_host: "127.0.0.1".into(),
                target_port: echo_port,
            },
        ],
        ..RelayConfig::default()
    };
    let window = config.window as usize;
    let mut relay = Relay::new(Arc::new(config), out);
    relay.open(open("slow", Some(1), Some(64 * 1024)), true);
    let agent_window = expect_ok(&mut queues, "slow").await.unwrap();

    // Push until the agent stops granting credit: its writes to the device no longer drain.
    let data = pattern(64 * 1024 * 1024);
    let mut peer = Peer::new(1, agent_window, 64 * 1024);
    let mut sent = 0;
    loop {
        peer.send(&mut relay, &data, &mut sent, window);
        match quiet(&mut queues, Duration::from_millis(500)).await {
            Some(Got::Credit(1, n)) => peer.send_credit += u64::from(n),
            None => break,
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        sent < data.len(),
        "everything fit into kernel buffers; the test proves nothing"
    );
    assert!(relay.buffered_bytes() <= window);
    assert_eq!(
        peer.send_credit, 0,
        "stalled with credit left means the agent is slow, not blocked"
    );

    // Another channel works meanwhile.
    let mut echo_open = open("fast", Some(2), Some(64 * 1024));
    echo_open.target_port = 5900;
    relay.open(echo_open, true);
    expect_ok(&mut queues, "fast").await.unwrap();
    relay.binary_frame(&frame(BinaryFrame::Data {
        channel: 2,
        data: b"ping",
    }));
    let mut echoed = Vec::new();
    while echoed.len() < 4 {
        match next(&mut queues).await {
            Got::Data(2, bytes) => echoed.extend(bytes),
            Got::Credit(..) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, b"ping");

    // The device reads again: the rest flows, in order, and nothing is lost.
    let total = sent + (data.len() - sent).min(8 * 1024 * 1024);
    let data = &data[..total];
    go.send(()).unwrap();
    loop {
        peer.send(&mut relay, data, &mut sent, window);
        if sent == data.len() {
            break;
        }
        match next(&mut queues).await {
            Got::Credit(1, n) => peer.send_credit += u64::from(n),
            Got::Credit(2, _) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    relay.binary_frame(&frame(BinaryFrame::Eof { channel: 1 }));
    let received = tokio::time::timeout(Duration::from_secs(20), done.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.len(), data.len());
    assert!(received == data, "the device received different bytes");
}

#[tokio::test]
async fn a_controller_that_ignores_the_window_loses_the_channel() {
    let (port, _go, _done) = stalled_server(16 * 1024).await;
    let config = RelayConfig {
        window: 64 * 1024,
        ..RelayConfig::default()
    };
    let (mut relay, mut queues) = relay_to(port, config);
    relay.open(open("greedy", Some(7), None), true);
    assert_eq!(expect_ok(&mut queues, "greedy").await, Some(64 * 1024));
    let chunk = vec![1u8; 32 * 1024];
    let mut sent = 0usize;
    let reason = loop {
        relay.binary_frame(&frame(BinaryFrame::Data {
            channel: 7,
            data: &chunk,
        }));
        sent += chunk.len();
        assert!(relay.buffered_bytes() <= 64 * 1024);
        assert!(sent < 256 * 1024 * 1024, "never cut off");
        match quiet(&mut queues, Duration::from_millis(1)).await {
            Some(Got::Close(7, reason)) => break reason,
            Some(Got::Credit(7, _)) | None => {}
            Some(other) => panic!("unexpected {other:?}"),
        }
    };
    assert!(reason.contains("window"), "{reason}");
    assert_eq!(relay.open_channels(), 0);
}

#[tokio::test]
async fn eof_travels_both_ways_and_half_closed_channels_keep_working() {
    // The device reads the request to EOF, then answers and closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        stream.write_all(b"got ").await.unwrap();
        stream.write_all(&request).await.unwrap();
    });
    let (mut relay, mut queues) = relay_to(port, RelayConfig::default());
    relay.open(open("h", Some(3), None), true);
    expect_ok(&mut queues, "h").await;
    relay.binary_frame(&frame(BinaryFrame::Data {
        channel: 3,
        data: b"hello",
    }));
    relay.binary_frame(&frame(BinaryFrame::Eof { channel: 3 }));
    let mut answer = Vec::new();
    loop {
        match next(&mut queues).await {
            Got::Data(3, bytes) => answer.extend(bytes),
            Got::Credit(3, _) => {}
            Got::Eof(3) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(answer, b"got hello");
    assert_eq!(next(&mut queues).await, Got::Close(3, "closed".into()));
}

#[tokio::test]
async fn controller_close_and_session_end_drop_device_sockets() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let closed = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                let _ = closed.send(());
            });
        }
    });
    let (mut relay, mut queues) = relay_to(port, RelayConfig::default());
    relay.open(open("a", Some(1), None), true);
    relay.open(open("b", Some(2), None), true);
    relay.open(open("j", None, None), true);
    for _ in 0..3 {
        assert!(matches!(
            next(&mut queues).await,
            Got::Msg(AgentMessage::InitiateConnectionOk { .. })
        ));
    }
    assert_eq!(relay.open_channels(), 3);
    relay.binary_frame(&frame(BinaryFrame::Close {
        channel: 1,
        reason: "bye",
    }));
    tokio::time::timeout(Duration::from_secs(5), closed_rx.recv())
        .await
        .unwrap()
        .unwrap();
    relay.json_close("j");
    tokio::time::timeout(Duration::from_secs(5), closed_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(relay.open_channels(), 1);
    // The agent does not answer a controller's close.
    assert_eq!(quiet(&mut queues, Duration::from_millis(200)).await, None);
    // The WebSocket ends: every channel goes.
    drop(relay);
    tokio::time::timeout(Duration::from_secs(5), closed_rx.recv())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_device_side_reset_is_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (reset_tx, reset_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = reset_rx.await;
        // Abortive close: the agent sees a connection reset.
        stream.set_zero_linger().unwrap();
        drop(stream);
    });
    let (mut relay, mut queues) = relay_to(port, RelayConfig::default());
    relay.open(open("r", Some(4), None), true);
    expect_ok(&mut queues, "r").await;
    reset_tx.send(()).unwrap();
    match next(&mut queues).await {
        Got::Close(4, reason) => assert!(reason.contains("reset"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn refused_targets_get_initiate_connection_error() {
    let echo = echo_server().await;
    let unused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (out, mut queues) = Outgoing::new();
    let config = RelayConfig {
        allowed: vec![
            AllowedPort {
                port: 22,
                target_host: "127.0.0.1".into(),
                target_port: echo,
            },
            AllowedPort {
                port: 5900,
                target_host: "127.0.0.1".into(),
                target_port: unused,
            },
        ],
        max_channels: 2,
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(Arc::new(config), out);

    let mut bad_port = open("p", Some(1), None);
    bad_port.target_port = 23;
    relay.open(bad_port, true);
    assert!(expect_error(&mut queues, "p").await.contains("port 23"));
    let mut remote = open("ip", Some(1), None);
    remote.target_ip = "10.0.0.1".into();
    relay.open(remote, true);
    assert!(expect_error(&mut queues, "ip")
        .await
        .contains("not localhost"));
    let mut udp = open("u", Some(1), None);
    udp.protocol = "udp".into();
    relay.open(udp, true);
    assert!(expect_error(&mut queues, "u").await.contains("udp"));
    let mut refused = open("x", Some(1), None);
    refused.target_port = 5900;
    relay.open(refused, true);
    let message = expect_error(&mut queues, "x").await;
    assert!(
        message.contains(&format!("127.0.0.1:{unused}")),
        "{message}"
    );

    for (id, ip, channel) in [("1", "127.0.0.1", 1), ("2", "::1", 2)] {
        let mut ok = open(id, Some(channel), None);
        ok.target_ip = ip.into();
        relay.open(ok, true);
        expect_ok(&mut queues, id).await;
    }
    relay.open(open("dup", Some(2), None), true);
    assert!(expect_error(&mut queues, "dup").await.contains("too many"));
    relay.binary_frame(&frame(BinaryFrame::Close {
        channel: 1,
        reason: "",
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    relay.open(open("dup", Some(2), None), true);
    assert!(expect_error(&mut queues, "dup")
        .await
        .contains("already open"));
    relay.open(open("3", Some(3), None), true);
    expect_ok(&mut queues, "3").await;
}

#[tokio::test]
async fn json_channels_speak_base64_tcp_data() {
    let port = echo_server().await;
    let (mut relay, mut queues) = relay_to(port, RelayConfig::default());
    // A channel number without binary frames on the connection still means JSON.
    relay.open(open("j1", Some(9), None), false);
    assert_eq!(
        expect_ok(&mut queues, "j1").await,
        None,
        "no window on JSON channels"
    );
    let data = pattern(5000);
    for chunk in data.chunks(3000) {
        relay.json_data(
            "j1",
            &base64::engine::general_purpose::STANDARD.encode(chunk),
        );
    }
    let mut echoed = Vec::new();
    while echoed.len() < data.len() {
        match next(&mut queues).await {
            Got::Msg(AgentMessage::TcpData {
                connection_id,
                data_base64,
            }) => {
                assert_eq!(connection_id, "j1");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data_base64)
                    .unwrap();
                assert!(!bytes.is_empty() && bytes.len() <= JSON_READ_BYTES);
                echoed.extend(bytes);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, data);
    // Bad base64 resets the channel.
    relay.json_data("j1", "!!!");
    match next(&mut queues).await {
        Got::Msg(AgentMessage::ConnectionReset {
            connection_id,
            message,
        }) => {
            assert_eq!(connection_id, "j1");
            assert!(message.contains("base64"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(relay.open_channels(), 0);
    // Unknown channels are ignored.
    relay.json_data("nope", "aGk=");
    relay.binary_frame(&frame(BinaryFrame::Data {
        channel: 99,
        data: b"x",
    }));
    assert_eq!(quiet(&mut queues, Duration::from_millis(100)).await, None);
}

#[tokio::test]
async fn json_write_failure_is_a_connection_reset() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (reset_tx, reset_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = reset_rx.await;
        stream.set_zero_linger().unwrap();
        drop(stream);
    });
    let (mut relay, mut queues) = relay_to(port, RelayConfig::default());
    relay.open(open("w", None, None), false);
    expect_ok(&mut queues, "w").await;
    reset_tx.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let chunk = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 4096]);
    for _ in 0..50 {
        relay.json_data("w", &chunk);
        if let Some(got) = quiet(&mut queues, Duration::from_millis(20)).await {
            match got {
                Got::Msg(AgentMessage::ConnectionReset { connection_id, .. }) => {
                    assert_eq!(connection_id, "w");
                    return;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    panic!("no connection_reset");
}

#[test]
fn allow_port_specs() {
    assert_eq!("22".parse::<AllowedPort>().unwrap(), AllowedPort::same(22));
    assert_eq!(
        "22=127.0.0.1:2201".parse::<AllowedPort>().unwrap(),
        AllowedPort {
            port: 22,
            target_host: "127.0.0.1".into(),
            target_port: 2201
        }
    );
    assert_eq!(
        "5900=[::1]:5901"
            .parse::<AllowedPort>()
            .unwrap()
            .target_host,
        "::1"
    );
    for bad in ["", "0", "ssh", "22=", "22=host", "22=:1", "22=h:0", "70000"] {
        assert!(bad.parse::<AllowedPort>().is_err(), "{bad}");
    }
}
