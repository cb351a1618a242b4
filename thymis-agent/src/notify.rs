//! systemd notifications (`sd_notify`): a datagram to `$NOTIFY_SOCKET`, abstract sockets
//! (`@name`) included.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// A notifier; without `NOTIFY_SOCKET` (not run by systemd) it does nothing.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`.
    pub fn from_env() -> Self {
        Notifier {
            socket: std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }

    /// To an explicit socket path (`@` for abstract).
    pub fn to_socket(socket: impl Into<String>) -> Self {
        Notifier {
            socket: Some(socket.into()),
        }
    }

    /// Sends `state` (newline-separated `KEY=value` lines).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        let addr = match socket.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None => SocketAddr::from_pathname(socket)?,
        };
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
        Ok(())
    }

    /// Sends `state`, logging a failure instead of returning it.
    pub fn notify_or_log(&self, state: &str) {
        if let Err(e) = self.notify(state) {
            log::warn!("systemd notification failed: {e}");
        }
    }
}
