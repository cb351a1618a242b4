//! A network namespace of its own (`ip netns`, Debian `iproute2`; needs root), standing for a
//! device's network: only its loopback is up, so nothing outside can reach what listens in it.
//! Test code reaches in through sockets made on a thread that entered the namespace.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A network namespace, deleted when dropped.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a namespace with its loopback up.
    pub fn new() -> NetNs {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "thymis-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let netns = NetNs { name };
        ip(&["-n", &netns.name, "link", "set", "lo", "up"]);
        netns
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// A TCP connection to `addr` as seen from inside the namespace.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
        let path = format!("/run/netns/{}", self.name);
        // A thread of its own enters the namespace; a socket stays in the namespace it was
        // made in, whichever thread uses it later.
        std::thread::spawn(move || {
            let namespace = File::open(path)?;
            // SAFETY: setns only changes this thread's network namespace to the one the
            // open file refers to.
            if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            TcpStream::connect_timeout(&addr, timeout)
        })
        .join()
        .expect("the connecting thread panicked")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Processes still inside keep their network until they exit; the name goes now.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("ip must be installed (apt-get install iproute2)");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
