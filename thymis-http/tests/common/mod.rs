//! Starting the real `thymis-controller` on a loopback port with its own data directory, and
//! small helpers the server tests share (login, git, WebSockets).

#![allow(dead_code)]

pub mod agents;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::redirect::Policy;
use serde_json::Value;

/// How long the controller may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running controller; killed when dropped.
pub struct Controller {
    child: Option<Child>,
    stdout_thread: Option<JoinHandle<()>>,
    stdout: Arc<Mutex<Vec<String>>>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The password printed on first start, if it printed one.
    pub printed_password: Option<String>,
    stderr_path: PathBuf,
}

/// A logged-in browser: a client with the session cookies, and the cookies themselves.
pub struct Session {
    /// Sends the session cookies; follows no redirects.
    pub client: reqwest::Client,
    /// `session-id` cookie value.
    pub id: String,
    /// `session-token` cookie value.
    pub token: String,
}

impl Session {
    /// The `Cookie` header a browser would send.
    pub fn cookie_header(&self) -> String {
        format!("session-id={}; session-token={}", self.id, self.token)
    }
}

impl Controller {
    /// Starts a controller on `data_dir` (created if needed) listening on a free loopback port.
    pub fn start(data_dir: &Path) -> Controller {
        Self::start_with(data_dir, &[])
    }

    /// Like [`Controller::start`] with extra command-line arguments.
    pub fn start_with(data_dir: &Path, extra_args: &[&str]) -> Controller {
        let first_start = !data_dir.join("auth-basic-password").exists();
        let stderr_path = data_dir.with_extension(format!(
            "stderr-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        if let Some(parent) = stderr_path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_thymis-controller"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("THYMIS_") {
                command.env_remove(&key);
            }
        }
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra_args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        if !extra_args.contains(&"--listen-port") {
            command.args(["--listen-port", "0"]);
        }
        let mut child = command.spawn().expect("cannot start thymis-controller");

        // Read stdout on a thread for the whole life of the process (so it never blocks on a
        // full pipe), handing each line to the starter as well.
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let thread_lines = lines.clone();
        let stdout_thread = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                thread_lines.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });

        let mut controller = Controller {
            child: Some(child),
            stdout_thread: Some(stdout_thread),
            stdout: lines,
            data_dir: data_dir.to_path_buf(),
            addr: "127.0.0.1:1".parse().unwrap(),
            printed_password: None,
            stderr_path,
        };
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        let next_line = |controller: &Controller| -> String {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(err) => panic!(
                    "controller did not print the expected line ({err}); stderr:\n{}",
                    controller.stderr()
                ),
            }
        };
        loop {
            let line = next_line(&controller);
            if let Some(rest) = line.strip_prefix("Thymis controller listening on ") {
                let (addr, open) = rest
                    .split_once("; open ")
                    .unwrap_or_else(|| panic!("unexpected listening line {line:?}"));
                assert!(!open.is_empty(), "{line}");
                controller.addr = addr.parse().unwrap();
                break;
            }
        }
        if first_start {
            let line = next_line(&controller);
            let rest = line
                .strip_prefix("First start: log in as `admin` with password ")
                .unwrap_or_else(|| panic!("expected the first-start line, got {line:?}"));
            let (password, saved) = rest
                .split_once(" (saved in ")
                .unwrap_or_else(|| panic!("unexpected first-start line {line:?}"));
            assert!(saved.ends_with(')'), "{line}");
            controller.printed_password = Some(password.to_owned());
        }
        controller
    }

    /// The controller's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("controller is running")
    }

    /// The URL of `path` on this controller.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The WebSocket URL of `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// The controller's own origin as a browser on its listening address sends it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The project repository.
    pub fn repo(&self) -> PathBuf {
        self.data_dir.join("repository")
    }

    /// The password in the password file.
    pub fn password(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("auth-basic-password"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// What the controller wrote to stderr so far (its log).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// What the controller printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Stops the controller and returns everything it printed on stdout.
    pub fn stop(mut self) -> Vec<String> {
        self.kill();
        self.stdout_lines()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(thread) = self.stdout_thread.take() {
            let _ = thread.join();
        }
    }

    /// Logs in as `admin` and returns a client carrying the session cookies.
    pub async fn login(&self) -> reqwest::Client {
        self.login_session().await.client
    }

    /// Logs in as `admin`; the client and the cookie values.
    pub async fn login_session(&self) -> Session {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(Policy::none())
            .build()
            .unwrap();
        let response = client
            .post(self.url("/auth/login/basic"))
            .form(&[("username", "admin"), ("password", &self.password())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "login failed");
        let mut id = None;
        let mut token = None;
        for (name, value) in set_cookies(response.headers()) {
            match name.as_str() {
                "session-id" => id = Some(value),
                "session-token" => token = Some(value),
                _ => {}
            }
        }
        Session {
            client,
            id: id.expect("no session-id cookie"),
            token: token.expect("no session-token cookie"),
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client without cookies that follows no redirects.
pub fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// `(name, value)` of every `Set-Cookie` header.
pub fn set_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let first = v.split(';').next()?;
            let (name, value) = first.split_once('=')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// The raw `Set-Cookie` header for cookie `name`.
pub fn set_cookie_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .starts_with(&format!("{name}="))
        })
        .map(str::to_owned)
}

/// The attributes of a `Set-Cookie` header, lower-cased, without the name=value pair.
pub fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// The body as JSON, with the status in the panic message when it is not JSON.
pub async fn json(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("status {status}: body is not JSON ({err}): {text:?}"))
}

/// The `ETag` header without quotes.
pub fn etag(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::ETAG)
        .expect("no ETag")
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

/// Runs `git` in `repo` (ignoring the user's and the system's git configuration) and returns
/// its stdout, trimmed.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("cannot run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A project state with one config per identifier, each with the required device module.
pub fn state_with_configs(ids: &[&str]) -> Value {
    let configs: Vec<Value> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "displayName": format!("Config {id}"),
                "identifier": id,
                "tags": [],
                "modules": [{
                    "type": "thymis_controller.modules.thymis.ThymisDevice",
                    "settings": {"device_type": "generic-x86_64"}
                }]
            })
        })
        .collect();
    serde_json::json!({
        "version": "0.0.9",
        "repositories": {},
        "tags": [],
        "configs": configs
    })
}

/// A WebSocket handshake request for `url` with extra headers.
pub fn ws_request(
    url: &str,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    request
}

/// The HTTP status a refused WebSocket handshake answered with; panics if it was accepted.
pub async fn ws_refusal_status(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> u16 {
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => panic!(
            "the WebSocket handshake was accepted ({})",
            response.status()
        ),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(err) => panic!("the WebSocket handshake failed without an HTTP answer: {err}"),
    }
}

/// A client WebSocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/api/notification` with a cookie header and waits until the server forwards events.
pub async fn open_notifications(controller: &Controller, cookie: &str) -> Socket {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, response) = tokio_tungstenite::connect_async(ws_request(
        &controller.ws_url("/api/notification"),
        &[("cookie", cookie)],
    ))
    .await
    .expect("notification WebSocket refused");
    assert_eq!(response.status(), 101);
    // The server answers a ping only once its forwarding loop runs, i.e. after it subscribed
    // to the event bus; without this, a change right after the handshake could be missed.
    socket
        .send(Message::Ping(b"ready?".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Pong(payload))) => return payload.to_vec(),
                Some(Ok(_)) => continue,
                other => panic!("socket ended before the pong: {other:?}"),
            }
        }
    })
    .await
    .expect("no pong from the notification socket");
    assert_eq!(pong, b"ready?");
    socket
}

/// Waits up to `within` for a `should_invalidate` frame naming `path`; returns every frame seen.
pub async fn wait_for_invalidation(
    socket: &mut Socket,
    path: &str,
    within: Duration,
) -> Vec<Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut seen = Vec::new();
    let found = tokio::time::timeout(within, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|err| panic!("frame is not JSON ({err}): {text}"));
                    seen.push(frame.clone());
                    let inner = &frame["inner"];
                    if inner["kind"] == "should_invalidate"
                        && inner["should_invalidate_paths"]
                            .as_array()
                            .is_some_and(|paths| paths.iter().any(|p| p == path))
                    {
                        return;
                    }
                }
                Some(Ok(_)) => continue,
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no invalidation of {path} within {within:?}; frames: {seen:?}"
    );
    seen
}
