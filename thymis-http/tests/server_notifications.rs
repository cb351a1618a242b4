//! `WS /api/notification`: every open dashboard learns that the state changed.

mod common;

use std::time::Duration;

use common::{
    open_notifications as open, state_with_configs, wait_for_invalidation, ws_refusal_status,
    ws_request, Controller,
};
use serde_json::Value;

#[tokio::test]
async fn a_state_change_reaches_every_open_dashboard() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let editor = controller.login_session().await;
    let viewer = controller.login_session().await;
    assert_ne!(editor.id, viewer.id);
    let mut editor_socket = open(&controller, &editor.cookie_header()).await;
    let mut viewer_socket = open(&controller, &viewer.cookie_header()).await;

    let response = editor
        .client
        .patch(controller.url("/api/state"))
        .json(&state_with_configs(&["kiosk-1"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let within = Duration::from_secs(2);
    let (editor_frames, viewer_frames) = tokio::join!(
        wait_for_invalidation(&mut editor_socket, "/api/state", within),
        wait_for_invalidation(&mut viewer_socket, "/api/state", within),
    );
    for frame in editor_frames.iter().chain(&viewer_frames) {
        assert_eq!(frame.as_object().map(|o| o.len()), Some(1), "{frame}");
    }

    // A commit invalidates the repository status.
    let response = editor
        .client
        .post(controller.url("/api/action/commit?message=kiosk"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_for_invalidation(&mut viewer_socket, "/api/repo_status", within).await;

    let _ = editor_socket.close(None).await;
    let _ = viewer_socket.close(None).await;
}

#[tokio::test]
async fn a_bearer_token_opens_the_notification_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let created: Value = client
        .post(controller.url("/api/tokens"))
        .json(&serde_json::json!({"name": "watcher"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(
        &controller.ws_url("/api/notification"),
        &[("authorization", &format!("Bearer {token}"))],
    ))
    .await
    .expect("bearer WebSocket refused");
    let _ = socket.close(None).await;
}

#[tokio::test]
async fn anonymous_notification_sockets_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let url = controller.ws_url("/api/notification");
    assert_eq!(ws_refusal_status(ws_request(&url, &[])).await, 401);
    let forged = format!(
        "session-id={}; session-token={}",
        uuid::Uuid::new_v4(),
        "00".repeat(32)
    );
    assert_eq!(
        ws_refusal_status(ws_request(&url, &[("cookie", &forged)])).await,
        401
    );
    // A logged-out session no longer opens it.
    let session = controller.login_session().await;
    let cookie = session.cookie_header();
    let response = session
        .client
        .get(controller.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        ws_refusal_status(ws_request(&url, &[("cookie", &cookie)])).await,
        401
    );
}

/// A socket opened with a session closes soon after the session ends.
#[tokio::test]
async fn logging_out_closes_the_notification_socket() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let session = controller.login_session().await;
    let mut socket = open(&controller, &session.cookie_header()).await;
    let response = session
        .client
        .get(controller.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket stayed open after logout");
}
