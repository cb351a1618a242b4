//! The real `thymis-agent` binary: command line, `--just-place-secrets`, start-up errors, the
//! reconnect loop with systemd notifications, and TLS trust through `--ca-file` against a
//! real TLS server (`openssl s_server`).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use thymis_protocol::{SecretInfo, SecretsMessage};

const AGENT: &str = env!("CARGO_BIN_EXE_thymis-agent");

fn agent(args: &[&str]) -> Command {
    let mut command = Command::new(AGENT);
    command
        .args(args)
        .env_remove("CONTROLLER_HOST")
        .env_remove("THYMIS_AGENT_CA_FILE")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM");
    command
}

fn run(command: &mut Command) -> (Output, String) {
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

#[test]
fn version_help_and_usage_errors() {
    let (out, _) = run(&mut agent(&["--version"]));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("thymis-agent {}", env!("CARGO_PKG_VERSION"))
    );
    let (out, _) = run(&mut agent(&["--help"]));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--controller-host",
        "--root",
        "--ca-file",
        "--allow-port",
        "--log-file",
        "--metrics-interval-secs",
        "--interfaces-interval-secs",
        "--log-level",
        "--just-place-secrets",
        "CONTROLLER_HOST",
        "THYMIS_AGENT_CA_FILE",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
    let (out, stderr) = run(&mut agent(&[]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("CONTROLLER_HOST"), "{stderr}");
    let (out, stderr) = run(agent(&["--allow-port", "x"]).env("CONTROLLER_HOST", "http://c"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--allow-port"), "{stderr}");
}

#[test]
fn just_place_secrets_places_and_exits() {
    let dev = TestDevice::new();
    dev.write(
        "boot/thymis-controller-ssh-pubkey.txt",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx0cXUcbpH1vp3a3lHZJgAqJ8dF/xs7gfHtR0p5Kd4Y c\n",
    );
    let (uid, gid) = my_ids();
    dev.write("etc/passwd", format!("svc:x:{uid}:{gid}::/:/bin/false\n"));
    let initial = SecretsMessage {
        secrets: [("w".to_owned(), encrypt_for_image(TOKEN, b"wifi-psk-value"))].into(),
        secret_infos: vec![SecretInfo {
            secret_id: "w".into(),
            path: "/run/thymis/wifi".into(),
            owner: Some("svc".into()),
            group: None,
            mode: Some("0440".into()),
        }],
    };
    dev.write(
        "boot/thymis-secrets-initial.json",
        serde_json::to_string(&initial).unwrap(),
    );
    let root = dev.root().to_str().unwrap();
    let (out, stderr) = run(&mut agent(&["--just-place-secrets", "--root", root]));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read(dev.path("run/thymis/wifi")).unwrap(),
        b"wifi-psk-value"
    );
    assert_eq!(mode_of(&dev.path("run/thymis/wifi")), 0o440);
    assert!(
        std::fs::read_to_string(dev.path("root/.ssh/authorized_keys"))
            .unwrap()
            .contains("AAAAC3Nza")
    );
    assert!(stderr.contains("/run/thymis/wifi"), "{stderr}");
    assert!(
        !stderr.contains("wifi-psk-value") && !stderr.contains(TOKEN),
        "secrets leak: {stderr}"
    );

    // One failing secret: exit 1, the reason named, the others still placed.
    let mut broken = initial.clone();
    broken.secret_infos.push(SecretInfo {
        secret_id: "w".into(),
        path: "/etc/x".into(),
        owner: Some("ghost".into()),
        group: None,
        mode: None,
    });
    std::fs::remove_file(dev.path("run/thymis/wifi")).unwrap();
    dev.write(
        "boot/thymis-secrets-initial.json",
        serde_json::to_string(&broken).unwrap(),
    );
    let (out, stderr) = run(&mut agent(&["--just-place-secrets", "--root", root]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/etc/x") && stderr.contains("ghost"),
        "{stderr}"
    );
    assert!(dev.path("run/thymis/wifi").exists());
}

#[test]
fn start_up_errors_name_the_problem() {
    let dev = TestDevice::new();
    let root = dev.root().to_str().unwrap().to_owned();
    let (out, stderr) = run(
        agent(&["--root", &root, "--ca-file", "/nonexistent/ca.pem"])
            .env("CONTROLLER_HOST", "https://c.example"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
    let (out, stderr) = run(agent(&["--root", &root]).env("CONTROLLER_HOST", "c.example"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("scheme"), "{stderr}");
    std::fs::remove_file(dev.path("boot/thymis-token.txt")).unwrap();
    let (out, stderr) = run(agent(&["--root", &root]).env("CONTROLLER_HOST", "http://c.example"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("no agent token") && stderr.contains("thymis-token.txt"),
        "{stderr}"
    );
}

/// A running agent whose stderr lines arrive on a channel; killed on drop.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(command: &mut Command) -> Self {
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no line with {needle:?}; saw:\n{}", seen.join("\n"));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_unreachable_controller_is_retried_with_backoff_and_reported_to_systemd() {
    let dev = TestDevice::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let notify_dir = tempfile::tempdir().unwrap();
    let notify_path = notify_dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let running = Running::start(
        agent(&["--root", dev.root().to_str().unwrap()])
            .env("CONTROLLER_HOST", format!("http://127.0.0.1:{port}/base/"))
            .env("NOTIFY_SOCKET", &notify_path),
    );
    let first = running.wait_for("controller connection ended", Duration::from_secs(10));
    assert!(
        first.contains(&format!("ws://127.0.0.1:{port}/base/agent/relay")),
        "{first}"
    );
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STATUS=Connection closed, reconnecting...");
    let delays: Vec<f64> = (0..3)
        .map(|_| {
            let line = running.wait_for("reconnecting in", Duration::from_secs(20));
            line.split("reconnecting in ")
                .nth(1)
                .unwrap()
                .trim_end_matches(" s")
                .parse()
                .unwrap()
        })
        .collect();
    // Jittered within [base/2, base] for bases 1, 2 and 4 s (printed to 0.1 s).
    for (delay, base) in delays.iter().zip([1.0, 2.0, 4.0]) {
        assert!(
            (base / 2.0 - 0.05..=base + 0.05).contains(delay),
            "{delays:?}"
        );
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a `localhost` server certificate signed by it, made with the openssl tool.
fn make_certs(dir: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Thymis Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        dir,
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        dir,
    );
}

#[test]
fn tls_trusts_the_extra_ca_file_and_nothing_else() {
    if Command::new("openssl").arg("version").output().is_err() {
        panic!("the openssl tool is needed to make test certificates");
    }
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &port.to_string(),
            "-cert",
            "server.pem",
            "-key",
            "server.key",
        ])
        .current_dir(certs.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dev = TestDevice::new();
    let url = format!("https://localhost:{port}");
    // Without the CA the certificate is refused.
    let untrusting = Running::start(
        agent(&["--root", dev.root().to_str().unwrap()]).env("CONTROLLER_HOST", &url),
    );
    let line = untrusting.wait_for("controller connection ended", Duration::from_secs(10));
    assert!(line.to_lowercase().contains("certificate"), "{line}");
    drop(untrusting);
    // With it the TLS handshake succeeds; the server then answers plain HTTP, not a WebSocket.
    let ca = certs.path().join("ca.pem");
    let trusting = Running::start(
        agent(&["--root", dev.root().to_str().unwrap()])
            .env("CONTROLLER_HOST", &url)
            .env("THYMIS_AGENT_CA_FILE", &ca),
    );
    let line = trusting.wait_for("controller connection ended", Duration::from_secs(10));
    assert!(!line.to_lowercase().contains("certificate"), "{line}");
    assert!(line.contains("HTTP") || line.contains("200"), "{line}");
    drop(trusting);
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn ca_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = thymis_agent::agent::tls_config(Some(&empty)).unwrap_err();
    assert!(
        err.contains("no certificate") && err.contains("empty.pem"),
        "{err}"
    );
    make_certs(dir.path());
    thymis_agent::agent::tls_config(Some(&dir.path().join("ca.pem"))).unwrap();
}
