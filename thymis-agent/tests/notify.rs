//! sd_notify to real unix datagram sockets.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use thymis_agent::notify::Notifier;

#[test]
fn notifies_a_path_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    Notifier::to_socket(path.to_str().unwrap())
        .notify("READY=1\nSTATUS=Connected to controller")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1\nSTATUS=Connected to controller");
}

#[test]
fn notifies_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("thymis-agent-test-{}", std::process::id());
    let socket =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    Notifier::to_socket(format!("@{name}"))
        .notify("STATUS=Connection closed, reconnecting...")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STATUS=Connection closed, reconnecting...");
}

#[test]
fn without_a_socket_nothing_happens_and_a_missing_socket_is_an_error() {
    Notifier::default().notify("READY=1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(
        Notifier::to_socket(dir.path().join("gone").to_str().unwrap())
            .notify("READY=1")
            .is_err()
    );
}
