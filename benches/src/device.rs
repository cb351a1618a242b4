//! A simulated device for the benchmarks: the real release `thymis-agent` in its own root,
//! and the TCP servers its relay channels lead to.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// The release agent, or `THYMIS_AGENT_BIN`.
pub fn agent_binary() -> PathBuf {
    std::env::var_os("THYMIS_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/thymis-agent")
        })
}

/// Lays out a device root: boot files (token, metadata, the controller's public key) and an
/// Ed25519 host key.
pub fn device_root(controller_public_key: &str, token: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("device root");
    let boot = root.path().join("boot");
    std::fs::create_dir_all(&boot).expect("boot dir");
    std::fs::write(boot.join("thymis-token.txt"), token).expect("token file");
    std::fs::write(
        boot.join("thymis-metadata.json"),
        r#"{"configuration_id":null}"#,
    )
    .expect("metadata");
    std::fs::write(
        boot.join("thymis-controller-ssh-pubkey.txt"),
        controller_public_key,
    )
    .expect("controller key");
    std::fs::create_dir_all(root.path().join("etc/ssh")).expect("ssh dir");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(root.path().join("etc/ssh/ssh_host_ed25519_key"))
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    root
}

/// Starts the agent for `root` against the controller at `url`.
pub fn start_agent(url: &str, root: &Path, args: &[String]) -> Child {
    Command::new(agent_binary())
        .arg("--root")
        .arg(root)
        .args(args)
        .env("CONTROLLER_HOST", url)
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .spawn()
        .expect("build the agent first: cargo build --release -p thymis-agent")
}

/// `--allow-port` arguments mapping device ports to local servers.
pub fn allow_ports(ports: &[(u16, u16)]) -> Vec<String> {
    ports
        .iter()
        .flat_map(|(device_port, local)| {
            [
                "--allow-port".to_owned(),
                format!("{device_port}=127.0.0.1:{local}"),
            ]
        })
        .collect()
}

/// Bytes the sink and the source move per connection.
pub const BULK_BYTES: usize = 1 << 30;

const SERVICES_ARG: &str = "--device-services";

/// The device's TCP services, in a process of their own as on a real device (so that the
/// plain loopback baseline crosses processes just as the relay does).
pub struct DeviceServices {
    /// Reads [`BULK_BYTES`], then answers one byte.
    pub sink: u16,
    /// Echoes.
    pub echo: u16,
    /// Sends [`BULK_BYTES`], then closes.
    pub source: u16,
    child: Child,
}

impl DeviceServices {
    /// Starts them: this benchmark binary again, in service mode.
    pub fn start() -> DeviceServices {
        let mut child = Command::new(std::env::current_exe().expect("own binary"))
            .arg(SERVICES_ARG)
            .stdout(Stdio::piped())
            .spawn()
            .expect("device services");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("ports");
        let ports: Vec<u16> = line
            .split_whitespace()
            .map(|port| port.parse().expect("port"))
            .collect();
        DeviceServices {
            sink: ports[0],
            echo: ports[1],
            source: ports[2],
            child,
        }
    }
}

impl Drop for DeviceServices {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `main` of a benchmark using [`DeviceServices`]: runs `bench` on two worker threads,
/// or, in the process [`DeviceServices::start`] spawned, the services until killed.
pub fn run_with_device_services<F: std::future::Future<Output = ()>>(bench: impl FnOnce() -> F) {
    if std::env::args().nth(1).as_deref() != Some(SERVICES_ARG) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(bench());
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sink = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let source = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = |listener: &TcpListener| listener.local_addr().expect("addr").port();
        println!("{} {} {}", port(&sink), port(&echo), port(&source));
        tokio::join!(
            serve(sink, |mut stream| async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0;
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    total += n;
                    if total == BULK_BYTES {
                        let _ = stream.write_all(b"!").await;
                    }
                }
            }),
            serve(echo, |mut stream| async move {
                let _ = stream.set_nodelay(true);
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }),
            serve(source, |mut stream| async move {
                push(&mut stream, BULK_BYTES).await;
            }),
        );
    });
    std::process::exit(0);
}

async fn serve<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(handle(stream));
    }
}

/// Sends [`BULK_BYTES`] to the sink and waits for its acknowledgement; the time it took.
pub async fn to_sink<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Duration {
    let began = Instant::now();
    push(stream, BULK_BYTES).await;
    let mut ack = [0u8; 1];
    stream
        .read_exact(&mut ack)
        .await
        .expect("sink acknowledgement");
    began.elapsed()
}

/// Reads the source until it closes; the time it took.
pub async fn from_source<S: AsyncRead + Unpin>(stream: &mut S) -> Duration {
    let began = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        total += n;
    }
    assert_eq!(total, BULK_BYTES, "every byte arrives");
    began.elapsed()
}

/// Throughput in MiB/s.
pub fn mib_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

/// Writes `bytes` bytes in 64 KiB blocks; returns when the last one was accepted.
pub async fn push<S: AsyncWrite + Unpin>(stream: &mut S, bytes: usize) {
    let block = vec![0xa5u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len());
        stream.write_all(&block[..n]).await.expect("write");
        left -= n;
    }
    stream.flush().await.expect("flush");
}

/// Times `count` round trips of a 64-byte message through an echo; sorted.
pub async fn round_trips<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    count: usize,
) -> Vec<Duration> {
    let message = [7u8; 64];
    let mut echoed = [0u8; 64];
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let began = Instant::now();
        stream.write_all(&message).await.expect("write");
        stream.read_exact(&mut echoed).await.expect("read");
        times.push(began.elapsed());
    }
    times.sort();
    times
}
