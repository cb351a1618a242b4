//! Load of the task system:
//! - submission rate of the engine itself (SQLite file, a handler doing nothing) and through the
//!   HTTP API (`POST /api/action/build` while one build holds the only slot);
//! - output fan-out of one busy build (real nix on the offline stub flakes) to 50
//!   `WS /api/task_status` subscribers: delivery latency after the command ended and the
//!   controller's CPU compared with the same build watched by nobody.
//!
//! ```sh
//! cargo build --release -p thymis-http
//! cargo run --release -p thymis-benches --bin task_load [-- <subscribers> <log lines>]
//! ```

#[path = "../../../thymis/tests/common/nix_stub.rs"]
mod nix_stub;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use thymis::events::EventBus;
use thymis::store::{SqliteStore, TaskRecord};
use thymis::task::{TaskEngine, TaskEngineConfig, TaskHandler, TaskRun, TaskSubmission};
use thymis_benches::controller::{cpu_time, percentile, start, Controller};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct Nothing;

#[async_trait::async_trait]
impl TaskHandler for Nothing {
    async fn run(&self, _: &TaskRecord, _: &TaskSubmission, _: &TaskRun) -> Result<(), String> {
        Ok(())
    }
}

/// Submits `count` tasks to an engine on a SQLite file and waits until all ran.
async fn engine_rate(count: usize) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Arc::new(SqliteStore::open(&dir.path().join("thymis.sqlite")).expect("store"));
    let engine = TaskEngine::new(
        store,
        EventBus::new(),
        Arc::new(Nothing),
        TaskEngineConfig::default(),
    );
    engine.start().await.expect("start");
    let started = Instant::now();
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(
            engine
                .submit(TaskSubmission::BuildProject {}, None)
                .await
                .expect("submit")
                .id,
        );
    }
    let submitted = started.elapsed();
    for id in ids {
        while !engine.get(id).await.expect("get").state.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let finished = started.elapsed();
    println!(
        "engine: {count} tasks submitted in {submitted:.2?} ({:.0}/s), all run and recorded in {finished:.2?} ({:.0}/s)",
        count as f64 / submitted.as_secs_f64(),
        count as f64 / finished.as_secs_f64()
    );
}

fn custom_nix(text: &str) -> Value {
    json!({"type": "thymis_controller.modules.whatever.WhateverModule", "settings": {"settings": text}})
}

async fn set_config(controller: &Controller, client: &reqwest::Client, id: &str, nix: &str) {
    let state = json!({"version": "0.0.9", "repositories": {}, "tags": [], "configs": [{
    "displayName": id, "identifier": id, "tags": [],
    "modules": [
        {"type": "thymis_controller.modules.thymis.ThymisDevice",
         "settings": {"device_type": "generic-x86_64", "device_name": id}},
        custom_nix(nix)
    ]}]});
    let response = client
        .patch(format!("{}/api/state", controller.url))
        .json(&state)
        .send()
        .await
        .expect("patch");
    assert!(response.status().is_success(), "{}", response.status());
}

async fn submit_build(controller: &Controller, client: &reqwest::Client) -> String {
    let answer: Value = client
        .post(format!("{}/api/action/build", controller.url))
        .send()
        .await
        .expect("build")
        .json()
        .await
        .expect("json");
    answer["task_id"].as_str().expect("task id").to_owned()
}

async fn task(controller: &Controller, client: &reqwest::Client, id: &str) -> Value {
    client
        .get(format!("{}/api/tasks/{id}", controller.url))
        .send()
        .await
        .expect("task")
        .json()
        .await
        .expect("json")
}

async fn wait_finished(controller: &Controller, client: &reqwest::Client, id: &str) -> Value {
    loop {
        let task = task(controller, client, id).await;
        if !matches!(task["state"].as_str(), Some("pending" | "running")) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The session cookies of a fresh login, for WebSocket handshakes.
async fn session_cookie(controller: &Controller) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client
        .post(format!("{}/auth/login/basic", controller.url))
        .form(&[
            ("username", "admin"),
            ("password", controller.password.as_str()),
        ])
        .send()
        .await
        .expect("login");
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One subscriber: the time its last byte of output arrived, and how many bytes it got.
async fn subscribe(
    url: String,
    origin: String,
    cookie: String,
    task_id: String,
) -> (Instant, usize) {
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("cookie", cookie.parse().expect("cookie"));
    request
        .headers_mut()
        .insert("origin", origin.parse().expect("origin"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("socket");
    socket
        .send(Message::Text(
            json!({"type": "subscribe_task", "task_id": task_id})
                .to_string()
                .into(),
        ))
        .await
        .expect("subscribe");
    let (mut bytes, mut last) = (0usize, Instant::now());
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).expect("json frame");
        if frame["task_id"] != task_id.as_str() {
            continue;
        }
        let kind = frame["type"].as_str().unwrap_or_default();
        if kind == "subscribed_task" || kind == "subscribed_task_output" {
            let added: usize = frame["task"]["processes"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| p["process_stderr"].as_str().map_or(0, str::len))
                        .sum()
                })
                .unwrap_or(0);
            if added > 0 {
                bytes += added;
                last = Instant::now();
            }
            if kind == "subscribed_task_output" && frame["task"]["state"] != "running" {
                break;
            }
        }
    }
    (last, bytes)
}

/// Runs one busy build watched by `subscribers` sockets; returns the controller's CPU time for
/// it, the wall time, and per subscriber the delay from the command's end to its last output.
async fn busy_build(
    controller: &Controller,
    client: &reqwest::Client,
    subscribers: usize,
    lines: usize,
) -> (Duration, Duration, Vec<Duration>) {
    let nonce = nix_stub::unique_nonce_definition();
    set_config(
        controller,
        client,
        "busy",
        &format!("thymis.stub.buildSeconds = 2; thymis.stub.logLines = {lines}; {nonce}"),
    )
    .await;
    let cookie = session_cookie(controller).await;
    let ws_url = format!(
        "{}/api/task_status",
        controller.url.replacen("http", "ws", 1)
    );
    let pid = controller.child.id();
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let id = submit_build(controller, client).await;
    let watchers: Vec<_> = (0..subscribers)
        .map(|_| {
            tokio::spawn(subscribe(
                ws_url.clone(),
                controller.url.clone(),
                cookie.clone(),
                id.clone(),
            ))
        })
        .collect();
    let done = wait_finished(controller, client, &id).await;
    let mut arrivals = Vec::new();
    for watcher in watchers {
        arrivals.push(watcher.await.expect("subscriber"));
    }
    let wall = started.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    assert_eq!(done["state"], "completed", "{done:#}");
    let full = done["processes"][0]["process_stderr"]
        .as_str()
        .map_or(0, str::len);
    for (_, bytes) in &arrivals {
        assert_eq!(
            *bytes, full,
            "every subscriber got the whole output exactly once"
        );
    }
    // The command's end as the controller recorded it, in this process's clock.
    let ended = chrono_to_instant(done["processes"][0]["ended_at"].as_str().expect("ended"));
    let mut delays: Vec<Duration> = arrivals
        .iter()
        .map(|(last, _)| last.saturating_duration_since(ended))
        .collect();
    delays.sort();
    (cpu, wall, delays)
}

/// Maps an RFC 3339 time of this machine's clock to an `Instant`.
fn chrono_to_instant(text: &str) -> Instant {
    let at: std::time::SystemTime = chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339 time")
        .with_timezone(&chrono::Utc)
        .into();
    let ago = std::time::SystemTime::now()
        .duration_since(at)
        .unwrap_or_default();
    Instant::now() - ago
}

async fn api_rate(controller: &Controller, client: &reqwest::Client, count: usize) {
    // One long build holds the only slot, so the submitted ones wait in the queue.
    let nonce = nix_stub::unique_nonce_definition();
    set_config(
        controller,
        client,
        "busy",
        &format!("thymis.stub.buildSeconds = 600; {nonce}"),
    )
    .await;
    let blocker = submit_build(controller, client).await;
    let started = Instant::now();
    let workers = 16;
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (client, url) = (client.clone(), controller.url.clone());
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut ids = Vec::new();
            for _ in 0..count / workers {
                let sent = Instant::now();
                let answer: Value = client
                    .post(format!("{url}/api/action/build"))
                    .send()
                    .await
                    .expect("build")
                    .json()
                    .await
                    .expect("json");
                latencies.push(sent.elapsed());
                ids.push(answer["task_id"].as_str().unwrap_or_default().to_owned());
            }
            (latencies, ids)
        }));
    }
    let mut latencies = Vec::new();
    let mut ids = Vec::new();
    for handle in handles {
        let (l, i) = handle.await.expect("worker");
        latencies.extend(l);
        ids.extend(i);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "API: {} build submissions from {workers} clients in {elapsed:.2?} ({:.0}/s), latency p50 {:.2?} p99 {:.2?}",
        ids.len(),
        ids.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    let started = Instant::now();
    for id in ids.iter().chain(std::iter::once(&blocker)) {
        client
            .post(format!("{}/api/tasks/{id}/cancel", controller.url))
            .send()
            .await
            .expect("cancel");
    }
    println!(
        "API: {} queued tasks cancelled in {:.2?}",
        ids.len() + 1,
        started.elapsed()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let subscribers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let lines: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20_000);

    engine_rate(5_000).await;

    let stub = nix_stub::NixStub::new();
    let mut controller_args = vec![
        "--nix-substituters".to_owned(),
        String::new(),
        "--task-concurrency".to_owned(),
        "1".to_owned(),
    ];
    for (input, reference) in stub.input_overrides() {
        controller_args.push("--nix-override-input".to_owned());
        controller_args.push(format!("{input}={reference}"));
    }
    let controller = start(&controller_args);
    let client = controller.login().await;

    // Warm up nix's evaluation of the stubs once.
    busy_build(&controller, &client, 0, 10).await;
    let (idle_cpu, idle_wall, _) = busy_build(&controller, &client, 0, lines).await;
    let (cpu, wall, delays) = busy_build(&controller, &client, subscribers, lines).await;
    println!(
        "fan-out: a build printing {lines} log lines, watched by {subscribers} subscribers: \
         controller CPU {cpu:.2?} over {wall:.2?} ({:.1}% of a core); unwatched {idle_cpu:.2?} over {idle_wall:.2?} ({:.1}%)",
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        100.0 * idle_cpu.as_secs_f64() / idle_wall.as_secs_f64(),
    );
    println!(
        "fan-out: last output reached the subscribers {:.0?} (p50) / {:.0?} (max) after the command ended",
        percentile(&delays, 0.5),
        delays.last().copied().unwrap_or_default()
    );

    api_rate(&controller, &client, 1_000).await;
}
