//! A real OpenSSH server (Debian `openssh-server`) for tests: `/usr/sbin/sshd` in the
//! foreground with its own configuration, a fresh ed25519 host key and an authorized_keys file in a
//! temporary directory, listening on a free port of 127.0.0.1, or on port 22 of a network
//! namespace of its own as on a device. Logins as root with the authorized keys work (tests run
//! as root). The server is killed when the value is dropped.

use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::netns::NetNs;

const SSHD: &str = "/usr/sbin/sshd";
/// sshd's privilege separation directory, which must exist before it starts.
const PRIVSEP_DIR: &str = "/run/sshd";
const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running sshd; see the module docs.
pub struct Sshd {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    child: Child,
    host_key_line: String,
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 accepting the given OpenSSH public key lines (with options such
    /// as `command="…"` if wanted) for every user.
    pub fn start(authorized_keys: &[&str]) -> Sshd {
        Sshd::start_at(None, authorized_keys)
    }

    /// [`Sshd::start`] on 127.0.0.1:22 inside `netns`: only sockets made in the namespace
    /// ([`NetNs::connect`]) reach it.
    pub fn start_in(netns: &NetNs, authorized_keys: &[&str]) -> Sshd {
        Sshd::start_at(Some(netns), authorized_keys)
    }

    fn start_at(netns: Option<&NetNs>, authorized_keys: &[&str]) -> Sshd {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing (apt-get install openssh-server)"
        );
        fs::create_dir_all(PRIVSEP_DIR).expect("create sshd's privilege separation directory");
        let dir = tempfile::tempdir().expect("temporary directory");
        let host_key = dir.path().join("ssh_host_ed25519_key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "test-sshd", "-f"])
            .arg(&host_key)
            .status()
            .expect("ssh-keygen must be installed (apt-get install openssh-client)");
        assert!(status.success(), "ssh-keygen failed");
        let public = fs::read_to_string(dir.path().join("ssh_host_ed25519_key.pub"))
            .expect("read the host public key");
        let host_key_line = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let authorized: String = authorized_keys.iter().map(|k| format!("{k}\n")).collect();
        fs::write(dir.path().join("authorized_keys"), authorized).expect("write authorized_keys");

        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            // The port is free now; if another process takes it before sshd binds, sshd exits
            // and the next attempt picks another. A namespace of its own has every port free.
            let port = if netns.is_some() { 22 } else { free_port(ip) };
            let addr = SocketAddr::new(ip, port);
            let config = write_config(dir.path(), &host_key, addr);
            let log = fs::File::create(dir.path().join("sshd.log")).expect("create sshd.log");
            let mut command = match netns {
                Some(netns) => netns.command(SSHD),
                None => Command::new(SSHD),
            };
            let mut child = command
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            let connect = |addr: SocketAddr| match netns {
                Some(netns) => netns.connect(addr, Duration::from_secs(1)),
                None => TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
            };
            match wait_until_ready(&mut child, addr, connect) {
                Ok(()) => {
                    return Sshd {
                        dir,
                        addr,
                        child,
                        host_key_line,
                    }
                }
                Err(reason) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default();
                    failures.push(format!("{reason}\n{log}"));
                }
            }
        }
        panic!("sshd did not start:\n{}", failures.join("\n---\n"));
    }

    /// The port sshd listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address sshd listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host public key as an agent claims it: `ssh-ed25519 <base64>`, no comment.
    pub fn host_key_line(&self) -> String {
        self.host_key_line.clone()
    }

    /// Appends a public key line to authorized_keys (sshd reads it at every login).
    pub fn authorize_key(&self, line: &str) {
        let path = self.dir.path().join("authorized_keys");
        let mut keys = fs::read_to_string(&path).expect("read authorized_keys");
        keys.push_str(line);
        keys.push('\n');
        // Replaced whole, so a login never sees a half-written file.
        let tmp = self.dir.path().join("authorized_keys.tmp");
        fs::write(&tmp, keys).expect("write authorized_keys");
        fs::rename(&tmp, &path).expect("replace authorized_keys");
    }

    /// What sshd has logged so far (LogLevel VERBOSE).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Polls the log until `condition` holds for it, for up to 10 s; returns the log.
    pub fn wait_for_log(&self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            if condition(&log) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "sshd never logged {what}; its log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The temporary directory holding the configuration, keys and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until sshd answers with its version banner, or fails if it exits first.
fn wait_until_ready(
    child: &mut Child,
    addr: SocketAddr,
    connect: impl Fn(SocketAddr) -> std::io::Result<TcpStream>,
) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("sshd exited with {status}"));
        }
        if let Ok(mut stream) = connect(addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut banner = [0u8; 8];
            if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0-" {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("sshd did not answer on {addr} in time"))
}

fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

fn write_config(dir: &Path, host_key: &Path, addr: SocketAddr) -> PathBuf {
    let config = format!(
        "ListenAddress {addr}\n\
         HostKey {host_key}\n\
         AuthorizedKeysFile {authorized_keys}\n\
         PidFile {pid_file}\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         StrictModes no\n\
         UsePAM no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         LogLevel VERBOSE\n\
         Subsystem sftp internal-sftp\n",
        host_key = host_key.display(),
        authorized_keys = dir.join("authorized_keys").display(),
        pid_file = dir.join("sshd.pid").display(),
    );
    let path = dir.join("sshd_config");
    fs::write(&path, config).expect("write sshd_config");
    path
}
