//! External repositories over HTTP: parsed flake references, and the fetch test's limits
//! (remote references only; tokens only for the host they were configured for).

mod common;

use common::{json, state_with_configs, Controller};
use serde_json::json as j;

fn encode(url: &str) -> String {
    url.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn flake_references_are_parsed_and_fetch_tests_stay_remote() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;

    let secret = json(
        client
            .post(controller.url("/api/secrets"))
            .json(&j!({"display_name": "github token", "type": "single_line", "value_str": "ghp_abc"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let secret_id = secret["id"].as_str().unwrap().to_owned();
    let mut state = state_with_configs(&["pi-1"]);
    state["repositories"] = j!({"acme": {
        "url": "github:acme/thymis-modules/v1.2",
        "follows": null, "inputs_follows": {}, "api_key_secret": secret_id
    }});
    let response = client
        .patch(controller.url("/api/state"))
        .json(&state)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);

    // The state's repository, parsed in upstream's shape.
    let parsed = json(
        client
            .get(controller.url("/api/external-repositories/flake-ref/acme"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        parsed,
        j!({"type": "github", "host": null, "owner": "acme", "repo": "thymis-modules", "ref": "v1.2", "rev": null})
    );
    let missing = client
        .get(controller.url("/api/external-repositories/flake-ref/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Local references would copy the controller's own files into the Nix store.
    for local in [
        format!("path:{}", tmp.path().join("data").display()),
        format!("git+file://{}", controller.repo().display()),
    ] {
        let response = client
            .get(controller.url(&format!(
                "/api/external-repositories/test-flake-ref/prefetch/{}",
                encode(&local)
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{local}");
        assert!(json(response).await["detail"]
            .as_str()
            .unwrap()
            .contains("remote"));
    }

    // The token may only go to the host it was configured for.
    let elsewhere = encode("github:acme/thymis-modules?host=evil.example");
    let response = client
        .get(controller.url(&format!(
            "/api/external-repositories/test-flake-ref/prefetch/{elsewhere}?api_key_secret={secret_id}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let unrelated = encode("gitlab:acme/other");
    let response = client
        .get(controller.url(&format!(
            "/api/external-repositories/test-flake-ref/prefetch/{unrelated}?api_key_secret={secret_id}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn a_single_line_secret_with_a_file_name_is_still_not_downloadable() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let secret = json(
        client
            .post(controller.url("/api/secrets"))
            .json(&j!({"display_name": "pw", "type": "single_line", "value_str": "hunter2", "filename": "pw.txt"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = secret["id"].as_str().unwrap();
    let response = client
        .get(controller.url(&format!("/api/secrets/{id}/download")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(!response.text().await.unwrap().contains("hunter2"));
}

#[tokio::test]
async fn redirect_success_follows_upstreams_login_redirect_cookie() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let session = controller.login_session().await;
    let response = session
        .client
        .get(controller.url("/auth/redirect_success?redirect=k1"))
        .header(
            "cookie",
            format!(
                "{}; login-redirect=k1-/configuration/pi-1",
                session.cookie_header()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/configuration/pi-1");
    let anonymous = common::anonymous()
        .get(controller.url("/auth/redirect_success"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
