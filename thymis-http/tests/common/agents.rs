//! Simulated devices for the server tests: the real `thymis-agent` binary with its own
//! `--root` holding boot files and an SSH host key, and a client of the upstream agent
//! protocol written from the spec (JSON frames, base64 relay) for compatibility tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{json as response_json, Controller};

/// The `thymis-agent` binary, built once per test process (it belongs to another package, so
/// cargo does not build it for this package's tests by itself).
pub fn agent_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let controller = PathBuf::from(env!("CARGO_BIN_EXE_thymis-controller"));
            let dir = controller.parent().expect("binary directory").to_owned();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "thymis-agent",
                    "--bin",
                    "thymis-agent",
                ])
                .status()
                .expect("cannot run cargo to build thymis-agent");
            assert!(status.success(), "building thymis-agent failed");
            dir.join("thymis-agent")
        })
        .clone()
}

/// Creates an agent token through the API and returns its value.
pub async fn create_agent_token(
    controller: &Controller,
    client: &reqwest::Client,
    name: &str,
) -> String {
    let response = client
        .post(controller.url("/api/agent_tokens"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response_json(response).await["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Generates an ed25519 key pair with `ssh-keygen` at `path` (and `path.pub`); returns the
/// public key as agents send it (`ssh-ed25519 <base64>`).
pub fn generate_host_key(path: &Path) -> String {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    key_line(&path.with_extension("pub"))
}

/// The first two fields of an OpenSSH public key file.
pub fn key_line(pub_path: &Path) -> String {
    let text = std::fs::read_to_string(pub_path).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A simulated device: a root directory and, while running, its agent process.
pub struct SimDevice {
    /// The device's `--root`.
    pub root: PathBuf,
    /// `ssh-ed25519 <base64>` of its host key.
    pub public_key: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl SimDevice {
    /// Lays out a device root: boot files (token, metadata naming `config_id`, the
    /// controller's public key), a fresh host key, and a product uuid as hardware id.
    pub fn prepare(
        root: &Path,
        controller: &Controller,
        token: &str,
        config_id: Option<&str>,
    ) -> SimDevice {
        let boot = root.join("boot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(boot.join("thymis-token.txt"), token).unwrap();
        let metadata = json!({
            "configuration_id": config_id,
            "configuration_commit": null,
            "datetime": "2026-01-01 00:00:00",
        });
        std::fs::write(boot.join("thymis-metadata.json"), metadata.to_string()).unwrap();
        std::fs::copy(
            controller.data_dir.join("id_thymis.pub"),
            boot.join("thymis-controller-ssh-pubkey.txt"),
        )
        .unwrap();
        let public_key = generate_host_key(&root.join("etc/ssh/ssh_host_ed25519_key"));
        // Owners of placed secrets are looked up in the device's own user database.
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
        let dmi = root.join("sys/class/dmi/id");
        std::fs::create_dir_all(&dmi).unwrap();
        std::fs::write(
            dmi.join("product_uuid"),
            format!("{}\n", uuid::Uuid::new_v4()),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("var/log")).unwrap();
        SimDevice {
            root: root.to_owned(),
            public_key,
            child: None,
            log_path: root.join("agent.log"),
        }
    }

    /// A device whose root was laid out before (e.g. a copied disk).
    pub fn prepare_existing(root: &Path) -> SimDevice {
        let public_key = key_line(&root.join("etc/ssh/ssh_host_ed25519_key.pub"));
        SimDevice {
            root: root.to_owned(),
            public_key,
            child: None,
            log_path: root.join("agent.log"),
        }
    }

    /// Starts the agent against `controller` with extra flags.
    pub fn start(&mut self, controller: &Controller, extra_args: &[&str]) {
        self.start_at(&controller.url(""), extra_args);
    }

    /// Starts the agent against a controller URL.
    pub fn start_at(&mut self, url: &str, extra_args: &[&str]) {
        assert!(self.child.is_none(), "agent already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let child = Command::new(agent_binary())
            .arg("--root")
            .arg(&self.root)
            .args(extra_args)
            .env("CONTROLLER_HOST", url.trim_end_matches('/'))
            .env("RUST_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("cannot start thymis-agent");
        self.child = Some(child);
    }

    /// The agent's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the agent process has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().unwrap().is_some())
    }

    /// Kills the agent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the agent logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for SimDevice {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The device record with `public_key`, if the controller has one.
pub async fn find_device(
    controller: &Controller,
    client: &reqwest::Client,
    public_key: &str,
) -> Option<Value> {
    let response = client
        .get(controller.url("/api/all_deployment_infos"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let devices = response_json(response).await;
    devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ssh_public_key"] == public_key)
        .cloned()
}

/// Waits until the device with `public_key` is online (or offline), returning its record.
pub async fn wait_online(
    controller: &Controller,
    client: &reqwest::Client,
    device: &SimDevice,
    online: bool,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(record) = find_device(controller, client, &device.public_key).await {
            if record["connected"] == online {
                return record;
            }
        }
        assert!(
            Instant::now() < deadline,
            "device did not become {} within {within:?}; agent log:\n{}\ncontroller stderr:\n{}",
            if online { "online" } else { "offline" },
            device.log(),
            controller.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resident memory of a process in KiB, from `/proc`.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
