//! Tasks through the HTTP API with the real controller and the real nix, offline: the project's
//! `thymis` and `nixpkgs` inputs are replaced by local stub flakes (`--nix-override-input`).

mod common;
#[path = "../../thymis/tests/common/nix_stub.rs"]
mod nix_stub;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{git, json, Controller};
use futures_util::{SinkExt, StreamExt};
use nix_stub::NixStub;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const SECURITY: &str = "thymis_controller.modules.security.SecurityAccessModule";
const CUSTOM_NIX: &str = "thymis_controller.modules.whatever.WhateverModule";
const DEVICE: &str = "thymis_controller.modules.thymis.ThymisDevice";

/// Starts a controller whose nix builds against the stubs, offline.
fn start(dir: &Path, stub: &NixStub, extra: &[&str]) -> Controller {
    let overrides: Vec<String> = stub
        .input_overrides()
        .into_iter()
        .map(|(input, reference)| format!("{input}={reference}"))
        .collect();
    let mut args: Vec<&str> = vec!["--nix-substituters", ""];
    for pair in &overrides {
        args.extend(["--nix-override-input", pair.as_str()]);
    }
    args.extend(extra);
    Controller::start_with(&dir.join("data"), &args)
}

fn config(id: &str, device_type: &str, extra_modules: Vec<Value>) -> Value {
    let mut modules =
        vec![json!({"type": DEVICE, "settings": {"device_type": device_type, "device_name": id}})];
    modules.extend(extra_modules);
    json!({"displayName": id, "identifier": id, "tags": [], "modules": modules})
}

fn custom_nix(text: &str) -> Value {
    json!({"type": CUSTOM_NIX, "settings": {"settings": text}})
}

async fn put_state(controller: &Controller, client: &reqwest::Client, configs: Vec<Value>) {
    let state = json!({"version": "0.0.9", "repositories": {}, "tags": [], "configs": configs});
    let response = client
        .patch(controller.url("/api/state"))
        .json(&state)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn commit(controller: &Controller, client: &reqwest::Client) {
    let response = client
        .post(controller.url("/api/action/commit?message=test"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn post_action(controller: &Controller, client: &reqwest::Client, path: &str) -> String {
    let response = client.post(controller.url(path)).send().await.unwrap();
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 200, "{path}: {body}");
    body["task_id"].as_str().unwrap().to_owned()
}

async fn task(controller: &Controller, client: &reqwest::Client, id: &str) -> Value {
    let response = client
        .get(controller.url(&format!("/api/tasks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    json(response).await
}

async fn wait_for(
    controller: &Controller,
    client: &reqwest::Client,
    id: &str,
    done: impl Fn(&Value) -> bool,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let task = task(controller, client, id).await;
        if done(&task) {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "task did not get there in {within:?}: {task:#}\ncontroller stderr:\n{}",
            controller.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn finished(controller: &Controller, client: &reqwest::Client, id: &str) -> Value {
    wait_for(
        controller,
        client,
        id,
        |t| !matches!(t["state"].as_str(), Some("pending" | "running")),
        Duration::from_secs(120),
    )
    .await
}

/// Processes (other than this test) whose command line or environment mentions `marker`.
fn processes_mentioning(marker: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        for file in ["cmdline", "environ"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(file)) {
                let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
                if text.contains(marker) {
                    found.push(format!(
                        "{name}: {}",
                        text.chars().take(200).collect::<String>()
                    ));
                    break;
                }
            }
        }
    }
    found
}

async fn wait_until_gone(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = processes_mentioning(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes left behind: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn untar(image: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(image)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_to_commit_to_image_to_download() {
    let dir = tempfile::tempdir().unwrap();
    let stub = NixStub::new_in(dir.path()).unwrap();
    let controller = start(dir.path(), &stub, &[]);
    let client = controller.login().await;

    // A root password secret that goes into the image.
    let response = client
        .post(controller.url("/api/secrets"))
        .json(
            &json!({"display_name": "root password", "type": "single_line",
                      "value_str": "correct horse", "include_in_image": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let secret_id = json(response).await["id"].as_str().unwrap().to_owned();
    let security = json!({"type": SECURITY, "settings": {"password_secret": secret_id}});
    put_state(
        &controller,
        &client,
        vec![config("lobby-pi", "raspberry-pi-4", vec![security])],
    )
    .await;

    // Uncommitted changes: the image would not contain them.
    let response = client
        .post(controller.url("/api/action/build-download-image?identifier=lobby-pi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert!(json(response).await["detail"]
        .as_str()
        .unwrap()
        .contains("uncommitted changes"));
    commit(&controller, &client).await;
    let head = git(&controller.repo(), &["rev-parse", "HEAD"]);

    let unknown = client
        .post(controller.url("/api/action/build-download-image?identifier=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let id = post_action(
        &controller,
        &client,
        "/api/action/build-download-image?identifier=lobby-pi",
    )
    .await;
    let done = finished(&controller, &client, &id).await;
    assert_eq!(done["state"], "completed", "{done:#}");
    assert_eq!(done["task_type"], "build_device_image_task");
    assert_eq!(done["task_submission_data"]["commit"], head.as_str());
    assert_eq!(
        done["task_submission_data"]["image_format"],
        "sd-card-image"
    );
    let processes = done["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 2, "nix build, then the image assembler");
    assert!(processes[0]["process_args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a
            .as_str()
            .unwrap()
            .contains(&format!("?rev={head}#nixosConfigurations.\"lobby-pi\""))));
    assert!(
        done["nix_status"]["done"].as_u64().unwrap() >= 1,
        "{done:#}"
    );
    let tasks_dir = controller.data_dir.join("tasks");
    assert!(
        std::fs::read_dir(&tasks_dir).map_or(true, |mut d| d.next().is_none()),
        "the boot files (with the token) are gone"
    );

    // The download is the built file, with its name; ranges work.
    let built = std::fs::read(controller.data_dir.join("images/lobby-pi.img")).unwrap();
    let response = client
        .get(controller.url("/api/download-image?identifier=lobby-pi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.contains("thymis-image-lobby-pi.img"),
        "{disposition}"
    );
    let downloaded = response.bytes().await.unwrap();
    assert_eq!(downloaded.as_ref(), built.as_slice());
    let response = client
        .get(controller.url("/api/download-image?identifier=lobby-pi"))
        .header("range", "bytes=10-99")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await.unwrap().as_ref(), &built[10..100]);
    let head_response = client
        .head(controller.url("/api/download-image?identifier=lobby-pi"))
        .send()
        .await
        .unwrap();
    assert_eq!(head_response.status(), 200);
    for missing in ["nope", "../images/lobby-pi", ""] {
        let response = client
            .get(controller.url(&format!("/api/download-image?identifier={missing}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{missing}");
    }

    // The image carries the boot files; its token is stored hashed with config and commit.
    let unpacked = dir.path().join("unpacked");
    let image_path = dir.path().join("download.img");
    std::fs::write(&image_path, &downloaded).unwrap();
    untar(&image_path, &unpacked);
    let token = std::fs::read_to_string(unpacked.join("thymis-token.txt")).unwrap();
    assert!(
        token.starts_with("thymis-") && token.len() == 7 + 128,
        "{token}"
    );
    let metadata: Value = serde_json::from_str(
        &std::fs::read_to_string(unpacked.join("thymis-metadata.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(metadata["configuration_id"], "lobby-pi");
    assert_eq!(metadata["configuration_commit"], head.as_str());
    let pubkey =
        std::fs::read_to_string(unpacked.join("thymis-controller-ssh-pubkey.txt")).unwrap();
    let own_key = std::fs::read_to_string(controller.data_dir.join("id_thymis.pub")).unwrap();
    assert_eq!(pubkey.trim(), own_key.trim());
    let system_path = std::fs::read_to_string(unpacked.join("thymis-system-path")).unwrap();
    assert!(
        system_path.contains("nixos-system-lobby-pi"),
        "{system_path}"
    );
    let initial: Value = serde_json::from_str(
        &std::fs::read_to_string(unpacked.join("thymis-secrets-initial.json")).unwrap(),
    )
    .unwrap();
    let sealed = initial["secrets"][&secret_id].as_str().unwrap();
    use base64::Engine;
    let ciphertext = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .unwrap();
    let plaintext = thymis::secrets::decrypt_with_passphrase(&token, &ciphertext).unwrap();
    assert_eq!(plaintext, b"correct horse");
    assert_eq!(initial["secret_infos"][0]["secret_id"], secret_id.as_str());
    assert_eq!(initial["secret_infos"][0]["mode"], "0400");

    let db = rusqlite::Connection::open(controller.data_dir.join("thymis.sqlite")).unwrap();
    let (config_id, commit_sha): (String, String) = db
        .query_row(
            "SELECT original_config_id, original_config_commit FROM agent_tokens WHERE token_hash = ?1",
            [thymis::store::hash_token(&token)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (config_id.as_str(), commit_sha.as_str()),
        ("lobby-pi", head.as_str())
    );
    let stored = std::fs::read(controller.data_dir.join("thymis.sqlite")).unwrap();
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token itself is never stored"
    );
    assert!(
        !controller.stderr().contains(&token),
        "the token is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_shows_the_nix_error_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let stub = NixStub::new_in(dir.path()).unwrap();
    let controller = start(dir.path(), &stub, &[]);
    let client = controller.login().await;
    put_state(
        &controller,
        &client,
        vec![config(
            "broken",
            "generic-x86_64",
            vec![custom_nix("environment.etc.motd.text = undefinedThing;")],
        )],
    )
    .await;
    // Building the project uses the working tree: no commit needed.
    let id = post_action(&controller, &client, "/api/action/build").await;
    let done = finished(&controller, &client, &id).await;
    assert_eq!(done["state"], "failed", "{done:#}");
    assert!(
        done["exception"]
            .as_str()
            .unwrap()
            .contains("undefined variable"),
        "{done:#}"
    );
    let errors = done["processes"][0]["nix_errors"].as_array().unwrap();
    let error = errors
        .iter()
        .find(|e| e["msg"].as_str().unwrap().contains("undefinedThing"))
        .unwrap_or_else(|| panic!("{errors:#?}"));
    assert!(
        error["file"].as_str().unwrap().contains("/hosts/broken/"),
        "{error:#}"
    );
    assert!(error["line"].as_u64().unwrap() >= 2, "{error:#}");
    assert!(error["column"].as_u64().is_some(), "{error:#}");
    let log = done["processes"][0]["process_stderr"].as_str().unwrap();
    assert!(log.contains("undefinedThing"), "{log}");
    assert!(
        !log.contains("@nix "),
        "the internal-json lines are not shown"
    );
}

/// Submits a two-minute build of a config named `marker` and waits until its builder runs.
async fn start_long_build(
    controller: &Controller,
    client: &reqwest::Client,
    marker: &str,
) -> String {
    let slow = format!(
        "thymis.stub.buildSeconds = 120; {}",
        nix_stub::unique_nonce_definition()
    );
    put_state(
        controller,
        client,
        vec![config(marker, "generic-x86_64", vec![custom_nix(&slow)])],
    )
    .await;
    let id = post_action(controller, client, "/api/action/build").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_mentioning(&format!("nixos-system-{marker}")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the build never started: {:#}",
            task(controller, client, &id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_build_leaves_no_nix_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let stub = NixStub::new_in(dir.path()).unwrap();
    let controller = start(dir.path(), &stub, &[]);
    let client = controller.login().await;
    let marker = format!("cancel-me-{}", std::process::id());
    let id = start_long_build(&controller, &client, &marker).await;
    let response = client
        .post(controller.url(&format!("/api/tasks/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let done = finished(&controller, &client, &id).await;
    assert_eq!(done["state"], "cancelled", "{done:#}");
    assert_eq!(
        done["processes"][0]["nix_errors"],
        json!([]),
        "being stopped is not a Nix error"
    );
    wait_until_gone(&format!("nixos-system-{marker}")).await;
    wait_until_gone(&controller.repo().display().to_string()).await;
    let again = client
        .post(controller.url(&format!("/api/tasks/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_task_marks_it_interrupted_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let stub = NixStub::new_in(dir.path()).unwrap();
    let marker = format!("killed-{}", std::process::id());
    let id = {
        let controller = start(dir.path(), &stub, &[]);
        let client = controller.login().await;
        // Leaving this block drops the controller, which kills it (SIGKILL).
        start_long_build(&controller, &client, &marker).await
    };
    // Its nix is told to stop when the controller dies.
    wait_until_gone(&format!("nixos-system-{marker}")).await;
    let controller = start(dir.path(), &stub, &[]);
    let client = controller.login().await;
    let task = task(&controller, &client, &id).await;
    assert_eq!(task["state"], "failed", "{task:#}");
    assert!(task["exception"]
        .as_str()
        .unwrap()
        .contains("interrupted by a restart"));
    // And it can be retried.
    let response = client
        .post(controller.url(&format!("/api/tasks/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let retried = json(response).await["task_id"].as_str().unwrap().to_owned();
    assert_ne!(retried, id);
    let response = client
        .post(controller.url(&format!("/api/tasks/{retried}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    finished(&controller, &client, &retried).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tasks_respect_the_concurrency_limit_and_list_with_paging() {
    let dir = tempfile::tempdir().unwrap();
    let stub = NixStub::new_in(dir.path()).unwrap();
    let controller = start(dir.path(), &stub, &["--task-concurrency", "1"]);
    let client = controller.login().await;
    put_state(
        &controller,
        &client,
        vec![config("one", "generic-x86_64", vec![])],
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(post_action(&controller, &client, "/api/action/build").await);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let response = client
            .get(controller.url("/api/tasks?state=running"))
            .send()
            .await
            .unwrap();
        let running: usize = response.headers()["total-count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(running <= 1, "{running} tasks running at once");
        let response = client
            .get(controller.url("/api/tasks?state=completed&task_type=build_project_task"))
            .send()
            .await
            .unwrap();
        let completed: usize = response.headers()["total-count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if completed == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "not all builds completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = client
        .get(controller.url("/api/tasks?limit=2&offset=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["total-count"], "6");
    let page = json(response).await;
    let page_ids: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        page_ids,
        vec![ids[4].as_str(), ids[3].as_str()],
        "newest first"
    );
    let bad = client
        .get(controller.url("/api/tasks?state=done"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(json(bad).await["detail"]
        .as_str()
        .unwrap()
        .contains("unknown task state"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_status_streams_changes_and_only_new_output() {
    let dir = tempfile::tempdir().unwrap();
    let stub = NixStub::new_in(dir.path()).unwrap();
    let controller = start(dir.path(), &stub, &[]);
    let session = controller.login_session().await;
    let client = &session.client;
    put_state(
        &controller,
        client,
        vec![config(
            &format!("chatty-{}", std::process::id()),
            "generic-x86_64",
            vec![custom_nix(&format!(
                "thymis.stub.buildSeconds = 2; thymis.stub.logLines = 300; {}",
                nix_stub::unique_nonce_definition()
            ))],
        )],
    )
    .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(common::ws_request(
        &controller.ws_url("/api/task_status"),
        &[
            ("cookie", &session.cookie_header()),
            ("origin", &controller.origin()),
        ],
    ))
    .await
    .unwrap();
    // A pong comes once the server's loop runs, i.e. after it listens to task events.
    socket
        .send(Message::Ping(b"ready?".to_vec().into()))
        .await
        .unwrap();
    while !matches!(socket.next().await, Some(Ok(Message::Pong(_)))) {}
    let id = post_action(&controller, client, "/api/action/build").await;
    socket
        .send(Message::Text(
            json!({"type": "subscribe_task", "task_id": id})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    let mut stderr = String::new();
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let frame: Value = serde_json::from_str(&text).unwrap();
            let kind = frame["type"].as_str().unwrap().to_owned();
            if frame["task_id"] != id.as_str() {
                continue;
            }
            if kind == "subscribed_task" || kind == "subscribed_task_output" {
                for process in frame["task"]["processes"].as_array().unwrap() {
                    stderr.push_str(process["process_stderr"].as_str().unwrap());
                }
            }
            let state = frame["task"]["state"].as_str().unwrap_or("").to_owned();
            kinds.push(kind.clone());
            if kind == "subscribed_task_output" && state == "completed" {
                return;
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "no completion over the socket; saw {kinds:?}"
    );
    assert!(kinds.contains(&"new_short_task".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"subscribed_task".to_owned()));
    assert!(kinds.contains(&"short_task_update".to_owned()));
    assert!(
        kinds
            .iter()
            .filter(|k| *k == "subscribed_task_output")
            .count()
            >= 2,
        "{kinds:?}"
    );
    // Appending every frame's output gives the whole output exactly once.
    let full = task(&controller, client, &id).await;
    assert_eq!(
        stderr,
        full["processes"][0]["process_stderr"].as_str().unwrap()
    );
    assert_eq!(
        stderr.matches("stub build log line 300 of 300").count(),
        1,
        "{stderr}"
    );

    // Nonsense is answered, not fatal.
    socket
        .send(Message::Text("{nonsense".into()))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Text(text))) = socket.next().await {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "error" {
                    return frame;
                }
            }
        }
    })
    .await
    .unwrap();
    assert!(answer["detail"]
        .as_str()
        .unwrap()
        .contains("subscribe_task"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_writes_flake_lock_and_flake_changes_lock_again() {
    let dir = tempfile::tempdir().unwrap();
    let stub = NixStub::new_in(dir.path()).unwrap();
    let controller = start(dir.path(), &stub, &[]);
    let client = controller.login().await;
    let lock = controller.repo().join("flake.lock");
    assert!(!lock.exists());
    let id = post_action(&controller, &client, "/api/action/update").await;
    let done = finished(&controller, &client, &id).await;
    assert_eq!(done["state"], "completed", "{done:#}");
    let locked: Value = serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    let thymis_path = locked["nodes"]["thymis"]["locked"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(Path::new(thymis_path), stub.thymis_dir());

    // A new external repository changes flake.nix: the controller locks again by itself.
    std::fs::remove_file(&lock).unwrap();
    let extra = dir.path().join("extra-flake");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("flake.nix"), "{ outputs = { self }: { }; }\n").unwrap();
    let state = json!({"version": "0.0.9", "tags": [], "configs": [],
        "repositories": {"extra": {"url": format!("path:{}", extra.display())}}});
    let response = client
        .patch(controller.url("/api/state"))
        .json(&state)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = client
            .get(controller.url("/api/tasks?task_type=project_flake_lock_task"))
            .send()
            .await
            .unwrap();
        let tasks = json(response).await;
        if let Some(task) = tasks.as_array().unwrap().first() {
            if task["state"] == "completed" {
                assert_eq!(task["submitted_by"], "controller");
                break;
            }
            assert!(
                matches!(task["state"].as_str(), Some("pending" | "running")),
                "{task:#}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "no lock task completed: {tasks:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let locked: Value = serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    assert!(locked["nodes"]["extra"].is_object(), "{locked:#}");
}
