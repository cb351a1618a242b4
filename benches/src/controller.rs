//! Starting the release controller for load generators, and reading its resource use.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running controller on a temporary data directory; killed when dropped.
pub struct Controller {
    /// The process.
    pub child: Child,
    /// Its base URL.
    pub url: String,
    /// The admin password it printed.
    pub password: String,
    /// Its data directory's parent (removed when dropped).
    pub dir: tempfile::TempDir,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    /// A client logged in as admin.
    pub async fn login(&self) -> reqwest::Client {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        client
            .post(format!("{}/auth/login/basic", self.url))
            .form(&[("username", "admin"), ("password", self.password.as_str())])
            .send()
            .await
            .expect("login");
        client
    }
}

fn controller_binary() -> PathBuf {
    std::env::var_os("THYMIS_CONTROLLER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/thymis-controller")
        })
}

/// Starts the release controller (or `$THYMIS_CONTROLLER_BIN`) with `extra_args`.
pub fn start(extra_args: &[String]) -> Controller {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut child = Command::new(controller_binary())
        .args(["--listen-port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(extra_args)
        .env("RUST_LOG", "warn")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("build the controller first: cargo build --release -p thymis-http");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut url = String::new();
    let mut password = String::new();
    while url.is_empty() || password.is_empty() {
        let line = lines.next().expect("controller output").expect("utf-8");
        if let Some(rest) = line.strip_prefix("Thymis controller listening on ") {
            url = format!("http://{}", rest.split(';').next().unwrap_or_default());
        } else if let Some(rest) = line.split("with password ").nth(1) {
            password = rest.split(' ').next().unwrap_or_default().to_owned();
        }
    }
    Controller {
        child,
        url,
        password,
        dir,
    }
}

/// Resident memory of a process in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat: indices 11 and 12 after the name.
    let per_second = 100; // USER_HZ on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / per_second)
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}
